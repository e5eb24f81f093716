internal import CMicroHTTPD
internal import CMicroHTTPDShims
import Glibc
import Logging

/// The C callbacks MHD calls on its own threads. They capture nothing and reach Swift objects through
/// `Unmanaged` context pointers; they live here, not in `main.swift`, where Swift 6 would make them
/// `@MainActor` and the runtime would trap when an MHD thread calls them.
enum Callbacks {
    /// `MHD_AccessHandlerCallback`. Call 1 has the head only: make the request context and let the
    /// handler decide on it (``RequestFlow/head(_:on:server:)``). Later calls bring upload data; the
    /// last call (no data) queues the answer, or hands the request to a task and suspends.
    static let access: MHD_AccessHandlerCallback = { cls, connection, url, method, version, uploadData, uploadSize, requestContext in
        guard let cls, let connection, let requestContext, let uploadSize else { return .NO }
        let server = Unmanaged<ServerContext>.fromOpaque(cls).takeUnretainedValue()
        let firstCall = requestContext.pointee == nil
        if let refused = ConnectionHooks.screen(connection, method: method, url: url, version: version, firstCall: firstCall, server: server) {
            return refused
        }

        guard let pointer = requestContext.pointee else {
            let context = RequestContext(
                method: method.map(knownMethod) ?? "GET",
                path: url.map { String(cString: $0) } ?? "/",
                version: version.map(knownVersion) ?? "HTTP/1.1"
            )
            withUnsafeMutablePointer(to: &context.headers) { headers in
                _ = MHD_get_connection_values(connection, .HEADER_KIND, Callbacks.collectHeader, headers)
            }
            withUnsafeMutablePointer(to: &context.query) { query in
                _ = MHD_get_connection_values(connection, .GET_ARGUMENT_KIND, Callbacks.collectHeader, query)
            }
            context.peer = ConnectionHooks.peer(of: connection)
            // Pattern "one-shot transfer": released in `completed`.
            requestContext.pointee = Unmanaged.passRetained(context).toOpaque()
            return RequestFlow.head(context, on: connection, server: server)
        }
        let context = Unmanaged<RequestContext>.fromOpaque(pointer).takeUnretainedValue()
        if uploadSize.pointee > 0 {
            if let uploadData {
                context.receive(
                    UnsafeRawBufferPointer(start: uploadData, count: uploadSize.pointee),
                    limit: server.maxBodyBytes, budget: server.budget
                )
            }
            if ConnectionHooks.uploadIsHopeless(connection, data: uploadData, size: uploadSize.pointee, over: context.bodyTooLarge, server: server) {
                return .NO
            }
            uploadSize.pointee = 0
            return .YES
        }
        return RequestFlow.final(context, on: connection, server: server)
    }

    /// `MHD_KeyValueIterator` collecting request headers (or query arguments) into an `HTTPHeaders`.
    static let collectHeader: MHD_KeyValueIterator = { cls, _, key, value in
        guard let cls, let key else { return .YES }
        let headers = cls.assumingMemoryBound(to: HTTPHeaders.self)
        headers.pointee.add(name: String(cString: key), value: value.map { String(cString: $0) } ?? "")
        return .YES
    }

    /// `MHD_RequestCompletedCallback`: the request is over (sent, failed, timed out, or the daemon stopped).
    static let completed: MHD_RequestCompletedCallback = { cls, connection, requestContext, code in
        guard let cls else { return }
        ConnectionHooks.requestCompleted(connection, code: code, server: Unmanaged<ServerContext>.fromOpaque(cls).takeUnretainedValue())
        guard let requestContext, let pointer = requestContext.pointee else { return }
        requestContext.pointee = nil
        let context = Unmanaged<RequestContext>.fromOpaque(pointer).takeRetainedValue()
        let server = Unmanaged<ServerContext>.fromOpaque(cls).takeUnretainedValue()
        // The client left mid-upload, or the request was answered before its body was read.
        context.dropBody(server.budget)
        if let stream = context.stream {
            stream.markClosed()
            server.registry.remove(stream)
        }
        // Ended before its deferred answer was queued: the registry must not wait for it.
        if case .awaiting(let deferred) = context.phase { server.registry.deferredEnded(deferred) }
    }

    /// `MHD_ContentReaderCallback` of a streamed response; `cls` is its ``ResponseStream``.
    static let read: MHD_ContentReaderCallback = { cls, _, buffer, max in
        guard let cls, let buffer else { return Int(MHD_CONTENT_READER_END_WITH_ERROR) }
        return Unmanaged<ResponseStream>.fromOpaque(cls).takeUnretainedValue().read(into: buffer, max: max)
    }

    /// `MHD_ContentReaderFreeCallback`: balances the retain taken when the response was created.
    static let freeStream: MHD_ContentReaderFreeCallback = { cls in
        guard let cls else { return }
        Unmanaged<ResponseStream>.fromOpaque(cls).release()
    }

    /// `MHD_LogCallback`: MHD's own diagnostics, at debug level.
    static let log: MHD_LogCallback = { cls, format, arguments in
        guard let cls, let format, let arguments else { return }
        var buffer = [CChar](repeating: 0, count: 512)
        _ = vsnprintf(&buffer, buffer.count, format, arguments)
        var message = buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        while message.last == "\n" { message.removeLast() }
        Unmanaged<ServerContext>.fromOpaque(cls).takeUnretainedValue().logger.debug("libmicrohttpd: \(message)")
    }

    /// The request's method as a `String`: the common ones without copying and validating the C string.
    static func knownMethod(_ method: UnsafePointer<CChar>) -> String {
        if strcmp(method, "GET") == 0 { return "GET" }
        if strcmp(method, "POST") == 0 { return "POST" }
        return String(cString: method)
    }

    /// The request's HTTP version as a `String`, as ``knownMethod(_:)``.
    static func knownVersion(_ version: UnsafePointer<CChar>) -> String {
        if strcmp(version, "HTTP/1.1") == 0 { return "HTTP/1.1" }
        if strcmp(version, "HTTP/1.0") == 0 { return "HTTP/1.0" }
        return String(cString: version)
    }

    static func peerAddress(_ connection: OpaquePointer) -> String? {
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: 64) { buffer in
            guard let start = buffer.baseAddress, cmhd_client_address(connection, start, buffer.count) == 0 else { return nil }
            return String(cString: start)
        }
    }
}
