internal import CMicroHTTPD
internal import CMicroHTTPDShims
import Logging

/// What the access handler does at each step of a request, on the MHD thread owning the connection
/// (LIBMICROHTTPD.md §4):
///
/// 1. **Head** (first call): the handler decides. An answer to a request that announces a body is
///    queued at once (no `100 Continue`, nothing buffered, `Connection: close`); an answer to one
///    without a body waits for the final call, which keeps the connection alive. To read a body,
///    its `Content-Length` is reserved in the server's ``BodyBudget`` — or it is refused with 503.
/// 2. **Upload** calls append to the body (``RequestContext/receive(_:limit:budget:)``).
/// 3. **Final** call: queue the head's answer (or ``HTTPHandler/respondInline(to:)``'s, for a small
///    body), or suspend the connection and hand the request to a task of ``HTTPServer/run()``; when
///    ``HTTPHandler/respond(to:)`` returned, the connection is resumed and the next call queues its answer.
enum RequestFlow {
    /// `block_size` of a streamed response. MHD callocs this much with every response and keeps
    /// it for the stream's life, but a chunked reply (any HTTP/1.1 client) is read straight into
    /// the connection's pool and never uses it (LIBMICROHTTPD.md §1, `try_ready_chunked_body`);
    /// only an HTTP/1.0 client's close-delimited body goes through it. So an HTTP/1.1 stream gets
    /// a token block (at 4 KiB it was 4 KiB of every open stream's heap; at 32 KiB its zeroing
    /// alone cost a job10 request ~34,000 instructions; 8 bytes keep MHD's 184-byte response in
    /// a 208-byte heap chunk), an HTTP/1.0 one a block worth a read.
    static func streamReadBlockBytes(version: String) -> Int {
        version == "HTTP/1.1" ? 8 : 4 * 1024
    }

    static func head(_ context: RequestContext, on connection: OpaquePointer, server: ServerContext) -> MHD_Result {
        let length = context.headers["Content-Length"].flatMap(Int.init)
        let hasBody = (length ?? 0) > 0 || context.headers["Transfer-Encoding"] != nil
        if let length, length > server.maxBodyBytes { context.bodyTooLarge = true }
        let request = context.request()
        switch server.handler.head(request) {
        case .respond(let response):
            guard hasBody else {
                context.headResponse = response
                return .YES
            }
            return answer(response, context, on: connection, server: server)
        case .readBody:
            if context.bodyTooLarge { return answer(ServerProblem.bodyTooLarge, context, on: connection, server: server) }
            guard let length, length > 0 else { return .YES }
            guard server.budget.reserve(length) else {
                return answer(server.handler.bodyBudgetExceeded(request), context, on: connection, server: server)
            }
            context.reserved = length
            context.body.reserveCapacity(length)
            return .YES
        }
    }

    static func final(_ context: RequestContext, on connection: OpaquePointer, server: ServerContext) -> MHD_Result {
        switch context.phase {
        case .answered:
            return .YES
        case .awaiting(let deferred):
            guard let response = deferred.takeOrSuspend() else { return .YES }
            let queued = answer(response, context, on: connection, server: server)
            // Counted until queued (not merely computed), so shutdown never stops the daemon
            // between the handler's return and its answer.
            server.registry.deferredEnded(deferred)
            return queued
        case .reading:
            break
        }
        if let response = context.headResponse {
            context.headResponse = nil
            return answer(response, context, on: connection, server: server)
        }
        if context.overBudget {
            return answer(server.handler.bodyBudgetExceeded(context.request()), context, on: connection, server: server)
        }
        let request = context.request()
        if request.body.count <= server.inlineBodyBytes, let response = server.handler.respondInline(to: request) {
            return answer(response, context, on: connection, server: server)
        }
        // The task owns the body and its reservation from here.
        let reserved = context.reserved
        context.body = []
        context.reserved = 0
        let deferred = DeferredResponse(connection: connection)
        context.phase = .awaiting(deferred)
        _ = deferred.takeOrSuspend()
        let handler = server.handler
        let budget = server.budget
        server.registry.deferredBegan(deferred)
        let accepted = server.work.enqueue {
            let response = await handler.respond(to: request)
            budget.release(reserved)
            deferred.complete(response)
        }
        if !accepted {
            budget.release(reserved)
            deferred.complete(ServerProblem.stopping)
        }
        return .YES
    }

    /// Queues `response` on the connection; for a stream, hands its producer to ``HTTPServer/run()``.
    private static func answer(_ response: HTTPResponse, _ context: RequestContext, on connection: OpaquePointer, server: ServerContext) -> MHD_Result {
        context.phase = .answered
        // Whatever was read of the body is not needed any more.
        context.dropBody(server.budget)
        let mhdResponse: OpaquePointer?
        var producer: WorkQueue.Item?
        var driven: (any DrivenStreamProducer)?
        switch response.body {
        case .bytes(let bytes):
            mhdResponse = bytes.withUnsafeBytes { raw in
                MHD_create_response_from_buffer(raw.count, UnsafeMutableRawPointer(mutating: raw.baseAddress), .RESPMEM_MUST_COPY)
            }
        case .stream, .closeObservingStream, .drivenStream, .finishedStream:
            let buffer: StreamBuffer
            if case .finishedStream(let bytes) = response.body {
                buffer = StreamBuffer(highWater: server.streamBufferBytes, finishedWith: bytes)
            } else {
                buffer = StreamBuffer(highWater: server.streamBufferBytes)
            }
            let stream = ResponseStream(connection: connection, socket: cmhd_connection_fd(connection), buffer: buffer)
            // Pattern "long-lived context": this retain is released by `freeStream` when MHD destroys the response.
            mhdResponse = MHD_create_response_from_callback(
                cmhd_size_unknown(),
                streamReadBlockBytes(version: context.version),
                Callbacks.read,
                Unmanaged.passRetained(stream).toOpaque(),
                Callbacks.freeStream
            )
            if mhdResponse == nil { Unmanaged.passUnretained(stream).release() }
            context.stream = stream
            switch response.body {
            case .stream(let body): producer = .supervisedStream(stream, body)
            case .closeObservingStream(let body): producer = .observingStream(stream, body)
            case .drivenStream(let body): driven = body
            case .bytes, .finishedStream: break
            }
        }
        var queued = MHD_Result.NO
        if let mhdResponse {
            for (name, value) in response.headers {
                // withCString lends a native string's own bytes (a small one's from the stack); the
                // implicit String-to-pointer conversion copied each into a new array.
                _ = name.withCString { name in value.withCString { MHD_add_response_header(mhdResponse, name, $0) } }
            }
            queued = MHD_queue_response(connection, UInt32(response.status), mhdResponse)
            if queued == .YES { ConnectionHooks.responseQueued(connection, server: server) }
            MHD_destroy_response(mhdResponse)
        }
        guard let stream = context.stream else { return queued }
        if queued == .YES {
            server.registry.add(stream)
            context.releaseHead()
        } else {
            // Never sent: end the stream at once. Its producer still runs, so whatever it holds
            // (a job's admission slot, its metrics) is given back; every write fails at once.
            context.stream = nil
            stream.cancel()
        }
        if let producer {
            if !server.work.enqueue(producer) {
                server.logger.warning("a stream was answered while the server stops; its producer does not run")
                stream.cancel()
            }
        }
        if let driven {
            // No task and no hop: started here, on the connection's MHD thread, once its head is
            // queued (its first pass is bounded: it starts at most a batch of timers, then yields to
            // a queue). Counted until its ending, so that a shutdown waits for it. A stream never
            // sent is cancelled already, so the producer ends at once and gives back what it holds.
            server.registry.drivenBegan()
            driven.start(into: stream, ending: StreamEnding(stream: stream, registry: server.registry))
        }
        return queued
    }
}
