internal import CMicroHTTPD
internal import CMicroHTTPDShims
import Glibc
import Logging

/// The C callbacks MHD calls on its own threads. They capture nothing and reach Swift objects through
/// `Unmanaged` context pointers; they live here, not in `main.swift`, where Swift 6 would make them
/// `@MainActor` and the runtime would trap when an MHD thread calls them.
enum Callbacks {
    /// `MHD_AccessHandlerCallback`. Call 1 has the head only: allocate the request context and read on
    /// (MHD then answers `100 Continue` itself); answering here would force `Connection: close` in
    /// 0.9.75, so only a body announced too large is answered early. Later calls bring upload data.
    /// The last call (no data) queues the handler's response.
    static let access: MHD_AccessHandlerCallback = { cls, connection, url, method, version, uploadData, uploadSize, requestContext in
        guard let cls, let connection, let requestContext, let uploadSize else { return .NO }
        let server = Unmanaged<ServerContext>.fromOpaque(cls).takeUnretainedValue()
        let firstCall = requestContext.pointee == nil
        if let refused = ConnectionHooks.screen(connection, method: method, url: url, version: version, firstCall: firstCall, server: server) {
            return refused
        }

        guard let pointer = requestContext.pointee else {
            let context = RequestContext(
                method: method.map { String(cString: $0) } ?? "GET",
                path: url.map { String(cString: $0) } ?? "/",
                version: version.map { String(cString: $0) } ?? "HTTP/1.1"
            )
            withUnsafeMutablePointer(to: &context.headers) { headers in
                _ = MHD_get_connection_values(connection, .HEADER_KIND, Callbacks.collectHeader, headers)
            }
            withUnsafeMutablePointer(to: &context.query) { query in
                _ = MHD_get_connection_values(connection, .GET_ARGUMENT_KIND, Callbacks.collectHeader, query)
            }
            // Pattern "one-shot transfer": released in `completed`.
            requestContext.pointee = Unmanaged.passRetained(context).toOpaque()
            if let length = context.headers["Content-Length"].flatMap(Int.init), length > server.maxBodyBytes {
                context.bodyTooLarge = true
                return respond(context, on: connection, server: server)
            }
            return .YES
        }
        let context = Unmanaged<RequestContext>.fromOpaque(pointer).takeUnretainedValue()
        if uploadSize.pointee > 0 {
            if !context.responded, let uploadData {
                context.receive(UnsafeRawBufferPointer(start: uploadData, count: uploadSize.pointee), limit: server.maxBodyBytes)
            }
            if ConnectionHooks.uploadIsHopeless(connection, data: uploadData, size: uploadSize.pointee, over: context.bodyTooLarge, server: server) {
                return .NO
            }
            uploadSize.pointee = 0
            return .YES
        }
        if context.responded { return .YES }
        return respond(context, on: connection, server: server)
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
        if let stream = context.stream {
            stream.markClosed()
            Unmanaged<ServerContext>.fromOpaque(cls).takeUnretainedValue().registry.remove(stream)
        }
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

    /// Calls the handler and queues its response; for a stream, starts its producer task.
    private static func respond(_ context: RequestContext, on connection: OpaquePointer, server: ServerContext) -> MHD_Result {
        context.responded = true
        let response = server.handler.respond(to: context.request(peer: peerAddress(connection)))
        // The handler is done with the body; do not keep it for the lifetime of a stream.
        context.body = []
        let mhdResponse: OpaquePointer?
        var producer: (@Sendable (ResponseStream) async -> Void)?
        switch response.body {
        case .bytes(let bytes):
            mhdResponse = bytes.withUnsafeBytes { raw in
                MHD_create_response_from_buffer(raw.count, UnsafeMutableRawPointer(mutating: raw.baseAddress), .RESPMEM_MUST_COPY)
            }
        case .stream, .finishedStream:
            let stream = ResponseStream(
                connection: connection,
                socket: cmhd_connection_fd(connection),
                highWater: server.streamBufferBytes
            )
            if case .finishedStream(let bytes) = response.body { stream.prefill(bytes) }
            // Pattern "long-lived context": this retain is released by `freeStream` when MHD destroys the response.
            mhdResponse = MHD_create_response_from_callback(
                cmhd_size_unknown(),
                32 * 1024,
                Callbacks.read,
                Unmanaged.passRetained(stream).toOpaque(),
                Callbacks.freeStream
            )
            if mhdResponse == nil { Unmanaged.passUnretained(stream).release() }
            context.stream = stream
            if case .stream(let body) = response.body { producer = body }
        }
        var queued = MHD_Result.NO
        if let mhdResponse {
            for (name, value) in response.headers {
                _ = MHD_add_response_header(mhdResponse, name, value)
            }
            queued = MHD_queue_response(connection, UInt32(response.status), mhdResponse)
            if queued == .YES { ConnectionHooks.responseQueued(connection, server: server) }
            MHD_destroy_response(mhdResponse)
        }
        guard let stream = context.stream else { return queued }
        if queued == .YES {
            server.registry.add(stream)
        } else {
            // Never sent: end the stream at once. Its producer still runs, so whatever it holds
            // (a job's admission slot, its metrics) is given back; every write fails at once.
            context.stream = nil
            stream.cancel()
        }
        if let producer {
            stream.attach(producer: Task {
                await producer(stream)
                stream.finish()
            })
        }
        return queued
    }

    private static func peerAddress(_ connection: OpaquePointer) -> String? {
        var buffer = [CChar](repeating: 0, count: 64)
        guard cmhd_client_address(connection, &buffer, buffer.count) == 0 else { return nil }
        return buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }
}
