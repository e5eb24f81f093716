import FanoutCore
import FanoutJobs
import MicroHTTPServer

/// The routes of retained jobs (SPEC "Jobs that outlive their connection"): the retained POST, and
/// `GET /v1/jobs`, `GET|DELETE /v1/jobs/{id}`, `GET /v1/jobs/{id}/events`, `POST /v1/jobs/{id}/cancel`.
/// Each is `(HTTPRequest) async -> HTTPResponse`; auth is checked by the caller.
struct RetainedJobRoutes: Sendable {
    let runner: RetainedJobs
    let admission: JobAdmission
    let auth: BearerAuth
    let metrics: ServiceMetrics
    /// Answers a problem (counted and logged like every refusal).
    let reject: @Sendable (Problem, HTTPRequest) -> HTTPResponse

    var store: any JobStore { runner.store }

    /// SSE `retry:` hint, milliseconds.
    static let retryMilliseconds = 2000
    /// Lines handed to a reader's stream per write at most: what a reader holds beyond its
    /// stream buffer while its client is slow.
    static let readBatch = 256

    /// Whether a POST asks for a retained job.
    static func wantsRetention(_ job: Job, _ request: HTTPRequest) -> Bool {
        job.detach || job.onDisconnect == .continue || request.headers["Idempotency-Key"] != nil || prefersRespondAsync(request)
    }

    /// `Prefer: respond-async` (RFC 7240), among other preferences.
    static func prefersRespondAsync(_ request: HTTPRequest) -> Bool {
        guard let prefer = request.headers["Prefer"] else { return false }
        return prefer.split(separator: ",").contains { preference in
            preference.split(separator: ";").first.map { $0.trimmingASCIIWhitespace().lowercased() == "respond-async" } ?? false
        }
    }

    /// The job owner: a hash of the bearer token (never the token itself); nil with auth off.
    func owner(_ request: HTTPRequest) -> String? {
        guard auth.isEnabled, let header = request.headers["Authorization"], header.count > 7 else { return nil }
        return SHA256.hex(Array(header.dropFirst(7).utf8))
    }

    /// 128 random bits in hex (SystemRandomNumberGenerator: the kernel's CSPRNG).
    static func makeID() -> String {
        var generator = SystemRandomNumberGenerator()
        return [generator.next() as UInt64, generator.next() as UInt64].map { word in
            let hex = String(word, radix: 16)
            return String(repeating: "0", count: 16 - hex.count) + hex
        }.joined()
    }

    static func validKey(_ key: String) -> Bool {
        !key.isEmpty && key.utf8.count <= 255 && key.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7F } && key.contains { $0 != " " }
    }

    // MARK: Submitting

    /// A POST that asked for retention, admitted (`ticket`) and validated.
    func submit(_ request: HTTPRequest, job: Job, ticket: UInt64, control: JobControl) async -> HTTPResponse {
        guard store.isAvailable else {
            admission.release(ticket)
            return reject(.jobStoreUnavailable(), request)
        }
        let owner = owner(request)
        let detach = job.detach || Self.prefersRespondAsync(request)
        let key = request.headers["Idempotency-Key"]
        if let key {
            guard Self.validKey(key) else {
                admission.release(ticket)
                return reject(.invalidIdempotencyKey(), request)
            }
            let fingerprint = (try? JSONParser.parse(request.body)).map(JobFingerprint.of) ?? SHA256.hex(request.body)
            switch await store.claim(key: key, fingerprint: fingerprint, owner: owner) {
            case .claimed:
                break
            case .existing(let id):
                admission.release(ticket)
                return await replay(of: id, owner: owner, detach: detach, request) ?? reject(unknown(id), request)
            case .mismatch:
                admission.release(ticket)
                return reject(.idempotencyKeyReused(), request)
            case .inProgress:
                admission.release(ticket)
                return reject(.idempotencyKeyInProgress(), request)
            case .unavailable:
                admission.release(ticket)
                return reject(.jobStoreUnavailable(), request)
            }
        }
        let id = Self.makeID()
        let created = NewRetainedJob(id: id, owner: owner, idempotencyKey: key, total: job.tasks.count, taskIDs: job.tasks.map(\.id)) {
            control.cancelRemaining(reason: "cancelled by request")
        }
        await store.create(created)
        metrics.jobStarted()
        let trace = runner.tracing.start(request, job: id)
        trace.span?.set("fanout.job.retained", "true")
        runner.start(RetainedJobs.Start(job: job, id: id, ticket: ticket, control: control, client: request.peer ?? "unknown", trace: trace))
        if detach {
            let status = await store.status(id, owner: owner)
                ?? RetainedJobStatus(job: id, state: .running, total: job.tasks.count, createdAt: created.createdAt)
            return accepted(status, request, replayed: false)
        }
        return live(id, owner: owner, cancelling: job.onDisconnect == .cancel ? control : nil, request, replayed: false)
    }

    /// A POST refused a slot (the server is saturated) whose `Idempotency-Key` names a job made
    /// already: its replay, as ``submit(_:job:ticket:control:)`` answers it, for a replay runs
    /// nothing. A key not seen before is left unclaimed; nil means the refusal stands.
    func replay(_ request: HTTPRequest) async -> HTTPResponse? {
        guard let key = request.headers["Idempotency-Key"], Self.validKey(key), store.isAvailable,
              let body = try? JSONParser.parse(request.body)
        else { return nil }
        let owner = owner(request)
        switch await store.claim(key: key, fingerprint: JobFingerprint.of(body), owner: owner) {
        case .existing(let id):
            return await replay(of: id, owner: owner, detach: body["detach"] == .bool(true) || Self.prefersRespondAsync(request), request)
        case .claimed:
            await store.releaseClaim(key: key, owner: owner)
            return nil
        case .mismatch:
            return reject(.idempotencyKeyReused(), request)
        case .inProgress:
            return reject(.idempotencyKeyInProgress(), request)
        case .unavailable:
            return nil
        }
    }

    /// The answer to a POST whose key names job `id`, made already: its status (detached) or its
    /// stream from `seq` 1, marked replayed; nothing runs again. Nil if the job is gone.
    private func replay(of id: String, owner: String?, detach: Bool, _ request: HTTPRequest) async -> HTTPResponse? {
        guard let status = await store.status(id, owner: owner) else { return nil }
        metrics.retained.idempotentReplay()
        return detach ? accepted(status, request, replayed: true) : live(id, owner: owner, cancelling: nil, request, replayed: true)
    }

    private func accepted(_ status: RetainedJobStatus, _ request: HTTPRequest, replayed: Bool) -> HTTPResponse {
        var headers = Self.documentHeaders + [("Location", "/v1/jobs/\(status.job)"), ("X-Job-Id", status.job)]
        if Self.prefersRespondAsync(request) { headers.append(("Preference-Applied", "respond-async")) }
        if replayed { headers.append(("Idempotent-Replayed", "true")) }
        return HTTPResponse(status: 202, headers: headers, body: .bytes(Self.document(status)))
    }

    /// The POST's own stream: one more reader of the store, from the first line.
    private func live(_ id: String, owner: String?, cancelling control: JobControl?, _ request: HTTPRequest, replayed: Bool) -> HTTPResponse {
        var headers = Self.streamHeaders(id, sse: false) + [("Location", "/v1/jobs/\(id)")]
        if replayed { headers.append(("Idempotent-Replayed", "true")) }
        let routes = self
        return HTTPResponse(status: 200, headers: headers, body: .stream { stream in
            await routes.pump(id, owner: owner, after: 0, sse: false, into: stream, cancelling: control)
        })
    }

    // MARK: Reading and control

    /// Routes `GET /v1/jobs` and everything under `/v1/jobs/`.
    func handle(_ request: HTTPRequest) async -> HTTPResponse {
        guard store.isAvailable else { return reject(.jobStoreUnavailable(), request) }
        if request.path == "/v1/jobs" { return await list(request) }
        let parts = request.path.dropFirst("/v1/jobs/".count).split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard let id = parts.first, !id.isEmpty, parts.count <= 2 else { return reject(.notFound(request.path), request) }
        // HEAD is answered like GET (the server sends no body).
        switch (parts.count == 2 ? parts[1] : nil, request.method == "HEAD" ? "GET" : request.method) {
        case (nil, "GET"): return await status(id, request)
        case (nil, "DELETE"): return await delete(id, request)
        case (nil, _): return reject(.methodNotAllowed(request.method, path: request.path, allowed: "GET, HEAD, DELETE"), request)
        case ("events", "GET"): return await events(id, request)
        case ("events", _): return reject(.methodNotAllowed(request.method, path: request.path, allowed: "GET, HEAD"), request)
        case ("cancel", "POST"): return await cancel(id, request)
        case ("cancel", _): return reject(.methodNotAllowed(request.method, path: request.path, allowed: "POST"), request)
        default: return reject(.notFound(request.path), request)
        }
    }

    /// 404 for a job the store does not know, or 503 when the store could not be asked.
    func unknown(_ id: String) -> Problem {
        store.isAvailable ? .unknownJob(id) : .jobStoreUnavailable()
    }

    func list(_ request: HTTPRequest) async -> HTTPResponse {
        var wanted: RetainedJobState?
        if let text = request.query["state"] {
            guard let state = RetainedJobState(rawValue: text) else { return reject(.invalidStateFilter(text), request) }
            wanted = state
        }
        let jobs = await store.list(owner: owner(request), state: wanted)
        var writer = JSONWriter(capacity: 256 + jobs.count * 300)
        writer.raw("{\"jobs\":[")
        for (position, status) in jobs.enumerated() {
            if position > 0 { writer.raw(",") }
            status.write(into: &writer)
        }
        writer.raw("]}\n")
        return HTTPResponse(status: 200, headers: Self.documentHeaders, body: .bytes(writer.take()))
    }

    func status(_ id: String, _ request: HTTPRequest) async -> HTTPResponse {
        guard let status = await store.status(id, owner: owner(request)) else { return reject(unknown(id), request) }
        return HTTPResponse(status: 200, headers: Self.documentHeaders, body: .bytes(Self.document(status)))
    }

    /// Ends the job and answers its status once the end line is stored (or after 5 s).
    func cancel(_ id: String, _ request: HTTPRequest) async -> HTTPResponse {
        let owner = owner(request)
        guard await store.requestCancel(id, owner: owner) != nil,
              let status = await store.waitUntilEnded(id, owner: owner, limit: .seconds(5)) else {
            return reject(unknown(id), request)
        }
        return HTTPResponse(status: 200, headers: Self.documentHeaders, body: .bytes(Self.document(status)))
    }

    func delete(_ id: String, _ request: HTTPRequest) async -> HTTPResponse {
        switch await store.delete(id, owner: owner(request)) {
        case .deleted: return HTTPResponse(status: 204, headers: [("Cache-Control", "no-store")])
        case .running: return reject(.jobRunning(id), request)
        case .notFound: return reject(unknown(id), request)
        }
    }

    /// `?after=N` (or `Last-Event-ID`): the lines after N, then live ones, up to the end line.
    func events(_ id: String, _ request: HTTPRequest) async -> HTTPResponse {
        var after = 0
        let cursor = request.query["after"].map { ("after", $0) } ?? request.headers["Last-Event-ID"].map { ("Last-Event-ID", $0) }
        if let (field, text) = cursor {
            guard let number = Int(text), number >= 0 else { return reject(.invalidCursor(field, text), request) }
            after = number
        }
        let owner = owner(request)
        guard await store.status(id, owner: owner) != nil else { return reject(unknown(id), request) }
        let sse = request.headers["Accept"]?.lowercased().contains("text/event-stream") ?? false
        if request.method == "HEAD" { return HTTPResponse(status: 200, headers: Self.streamHeaders(id, sse: sse), body: .finishedStream([])) }
        let routes = self
        let from = after
        return HTTPResponse(status: 200, headers: Self.streamHeaders(id, sse: sse), body: .stream { stream in
            await routes.pump(id, owner: owner, after: from, sse: sse, into: stream, cancelling: nil)
        })
    }

    /// Copies the job's lines after `after` from the store to one client, at the client's pace,
    /// until the end line. If the client goes away first and `control` is set (a streamed job with
    /// `on_disconnect: cancel`), the job is cancelled.
    func pump(_ id: String, owner: String?, after: Int, sse: Bool, into stream: ResponseStream, cancelling control: JobControl?) async {
        metrics.retained.readerStarted(resuming: after > 0)
        defer { metrics.retained.readerEnded() }
        var after = after
        var ended = false
        do {
            if sse { try await stream.write(Array("retry: \(Self.retryMilliseconds)\n\n".utf8)) }
            while !ended {
                let read = try await store.read(id, owner: owner, after: after, maxLines: Self.readBatch)
                if let last = read.lines.last {
                    var bytes: [UInt8] = []
                    bytes.reserveCapacity(read.lines.reduce(0) { $0 + $1.bytes.count + (sse ? 40 : 0) })
                    for line in read.lines {
                        if sse { Self.appendEvent(line, to: &bytes) } else { bytes.append(contentsOf: line.bytes) }
                    }
                    try await stream.write(bytes)
                    after = last.seq
                }
                ended = read.ended
            }
        } catch {
            if !ended, let control { control.cancelRemaining(reason: "cancelled: the client went away") }
        }
    }

    /// `id: <seq>`, `event: <event>`, `data: <the line's JSON>`, blank line.
    static func appendEvent(_ line: RetainedLine, to bytes: inout [UInt8]) {
        bytes.append(contentsOf: "id: \(line.seq)\nevent: \(line.event.rawValue)\ndata: ".utf8)
        bytes.append(contentsOf: line.bytes.dropLast())
        bytes.append(contentsOf: "\n\n".utf8)
    }

    static let documentHeaders: [(name: String, value: String)] = [("Content-Type", "application/json"), ("Cache-Control", "no-store")]

    static func streamHeaders(_ id: String, sse: Bool) -> [(name: String, value: String)] {
        [
            ("Content-Type", sse ? "text/event-stream" : "application/x-ndjson"),
            ("Cache-Control", "no-store"),
            ("X-Accel-Buffering", "no"),
            ("X-Job-Id", id),
        ]
    }

    static func document(_ status: RetainedJobStatus) -> [UInt8] {
        var writer = JSONWriter(capacity: 320)
        status.write(into: &writer)
        writer.append(UInt8(ascii: "\n"))
        return writer.take()
    }
}
