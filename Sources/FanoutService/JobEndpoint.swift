import FanoutCore
import Glibc
import Logging
import MicroHTTPServer

/// `POST /v1/jobs`: checks the request, admits and validates the job, and answers with a stream
/// whose task runs the dispatcher.
struct JobEndpoint: Sendable {
    let decoder: JobDecoder
    let admission: JobAdmission
    let metrics: ServiceMetrics
    let maxBodyBytes: Int
    /// Jobs whose lines are all known at once and fit in this are answered without a task; in input
    /// order, lines waiting for an earlier one may take this much before no new subtask starts.
    let streamBufferBytes: Int
    /// Told of every large body once its job or rejection no longer needs it.
    let reclaimer: MemoryReclaimer
    let tracing: JobTracing
    let logger: Logger
    /// Retained jobs (SPEC v1.1): a POST asking for retention goes there once admitted and valid.
    var retained: RetainedJobRoutes?
    /// What ends every plain job: slot, metrics, span, log line (one object, shared by all).
    let completion: JobCompletion

    init(
        decoder: JobDecoder, admission: JobAdmission, metrics: ServiceMetrics, maxBodyBytes: Int, streamBufferBytes: Int,
        reclaimer: MemoryReclaimer, tracing: JobTracing, logger: Logger
    ) {
        self.decoder = decoder
        self.admission = admission
        self.metrics = metrics
        self.maxBodyBytes = maxBodyBytes
        self.streamBufferBytes = streamBufferBytes
        self.reclaimer = reclaimer
        self.tracing = tracing
        self.logger = logger
        self.completion = JobCompletion(admission: admission, metrics: metrics, reclaimer: reclaimer, logger: logger)
    }

    /// The refusals decided on the head, before the body is read (nil: read it): a body announced
    /// over the cap, a media type other than JSON, a draining or saturated server (saturated: not
    /// for a POST with an `Idempotency-Key`). Admission is only looked at here; the slot is taken
    /// in ``submit(_:)`` once the body is in.
    func checkHead(_ request: HTTPRequest) -> HTTPResponse? {
        if request.bodyTooLarge { return reject(.bodyTooLarge(limit: maxBodyBytes), request) }
        guard MediaType.isJSON(request.headers["Content-Type"]) else {
            return reject(.unsupportedMediaType(request.headers["Content-Type"]), request)
        }
        if admission.isDraining { return reject(.draining(retryAfter: 5), request) }
        // A keyed retry may be the replay of a job made already, which needs no slot: its body is
        // read, and `submit` decides.
        if !admission.isReady, retained == nil || request.headers["Idempotency-Key"] == nil {
            return reject(.saturated(retryAfter: 1), request)
        }
        return nil
    }

    /// What a read job body comes to: an answer now, or an admitted, valid job to retain (whose
    /// answer needs the job store, so it is made in a task).
    enum Submission {
        case answer(HTTPResponse)
        case retain(Job, ticket: UInt64, control: JobControl)
        /// No slot free now: refused, unless it is the retry of a retained job (``submit(_:)``).
        case saturated
    }

    /// A job whose head passed ``checkHead(_:)`` and whose body has been read, in a task.
    func submit(_ request: HTTPRequest) async -> HTTPResponse {
        switch prepare(request) {
        case .answer(let response):
            return response
        case .retain(let job, let ticket, let control):
            guard let retained else { return reject(.notFound(request.path), request) }
            return await retained.submit(request, job: job, ticket: ticket, control: control)
        case .saturated:
            // A retry whose Idempotency-Key names a job already made needs no slot: its replay.
            if let retained, let replay = await retained.replay(request) { return replay }
            return reject(.saturated, request)
        }
    }

    /// The same on the server thread, for a small body: nil when the job is (or may be) one to
    /// retain, which is answered in a task instead. A body that names neither `detach` nor
    /// `on_disconnect`, without `Prefer` or `Idempotency-Key`, cannot be one.
    func submitInline(_ request: HTTPRequest) -> HTTPResponse? {
        if retained != nil, Self.mayAskForRetention(request) { return nil }
        switch prepare(request) {
        case .answer(let response):
            return response
        case .retain(_, let ticket, _):
            // Only through an escaped member name (`"\u0064etach"`): redo it in a task.
            admission.release(ticket)
            return nil
        case .saturated:
            // No Idempotency-Key here (``mayAskForRetention(_:)``): nothing to replay.
            return reject(.saturated, request)
        }
    }

    static func mayAskForRetention(_ request: HTTPRequest) -> Bool {
        if request.headers["Prefer"] != nil || request.headers["Idempotency-Key"] != nil { return true }
        return contains(request.body, Self.detachKey) || contains(request.body, Self.onDisconnectKey)
    }

    private static let detachKey = Array("detach\"".utf8)
    private static let onDisconnectKey = Array("on_disconnect\"".utf8)

    /// Whether `needle` occurs in `haystack`: `memchr` to each candidate first byte, then `memcmp`
    /// (the generic `firstRange(of:)` costs more than decoding a small job, and a byte loop in Swift
    /// 6,000 instructions per job10 request; Glibc's module does not export `memmem`).
    private static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        haystack.withUnsafeBytes { hay in
            needle.withUnsafeBytes { pin in
                guard let first = pin.first, let base = hay.baseAddress, hay.count >= pin.count else { return false }
                var offset = 0
                let last = hay.count - pin.count
                while offset <= last, let found = memchr(base + offset, Int32(first), last - offset + 1) {
                    if memcmp(found, pin.baseAddress!, pin.count) == 0 { return true }
                    offset = base.distance(to: UnsafeRawPointer(found)) + 1
                }
                return false
            }
        }
    }

    /// Admits and decodes the job; plain v1 jobs get their stream here.
    private func prepare(_ request: HTTPRequest) -> Submission {
        // A chunked body can only be found too large while it is read.
        if request.bodyTooLarge { return .answer(reject(.bodyTooLarge(limit: maxBodyBytes), request)) }
        // Memory: the worst that decoding this body can take, or what is free; the job itself then
        // (its estimate, and its stream's buffers: the response stream's and, in input order, the
        // lines waiting for an earlier one — no more than all its lines, when they are bounded).
        let buffers = 2 * streamBufferBytes
        // Before decoding, at least what the smallest such job needs (a subtask takes at least 16
        // bytes of body, so its lines are at most 40× the body); 10,000 one-task streams need not
        // hold 128 KiB each of the budget.
        let leastBuffers = min(buffers, 40 * request.body.count + 1024)
        let admitted: JobAdmission.Admitted
        switch admission.admit(wanting: JobAdmission.decodingCost(bodyBytes: request.body.count) + buffers, minimum: leastBuffers + 8192) {
        case .success(let granted):
            admitted = granted
        case .failure(.saturated):
            return .saturated
        case .failure(let refusal):
            return .answer(reject(refusal, request))
        }
        let (ticket, control) = (admitted.ticket, admitted.control)
        let job: Job
        do {
            job = try decoder.decode(request.body, maxBytes: admitted.grantedBytes - leastBuffers)
        } catch {
            admission.release(ticket)
            if error.kind == .overMemory {
                return .answer(reject(admitted.limitedByOthers ? .overBudget : .tooLarge(cost: admitted.grantedBytes), request))
            }
            return .answer(reject(.invalidJob(error), request))
        }
        let jobBuffers = min(buffers, job.plannedOutputBound(bodyBytes: request.body.count) ?? buffers)
        if case .failure(let refusal) = admission.settle(ticket, cost: job.estimatedBytes + jobBuffers) {
            admission.release(ticket)
            return .answer(reject(refusal, request))
        }
        if retained != nil, RetainedJobRoutes.wantsRetention(job, request) {
            return .retain(job, ticket: ticket, control: control)
        }

        let id = Self.makeJobID()
        let headers: [(name: String, value: String)] = [
            ("Content-Type", "application/x-ndjson"),
            ("Cache-Control", "no-store"),
            ("X-Accel-Buffering", "no"),
            ("X-Job-Id", id),
        ]
        let trace = tracing.start(request, job: id)
        metrics.jobStarted()
        let client = request.peer ?? "unknown"
        // Every outcome known already (e.g. echo tasks without delay): the whole stream is ready now.
        if let (lines, summary) = Dispatcher.runImmediately(job, id: id, maxBytes: streamBufferBytes) {
            completion.finished(
                id: id, client: client, ticket: ticket, summary: summary, duration: .milliseconds(summary.elapsedMilliseconds),
                trace: trace, bodyBytes: request.body.count
            )
            return .answer(HTTPResponse(status: 200, headers: headers, body: .finishedStream(lines)))
        }
        let run = PlainJobStream(
            job: job, id: id, client: client, ticket: ticket, control: control, trace: trace,
            bodyBytes: request.body.count, bufferBytes: streamBufferBytes, completion: completion
        )
        return .answer(HTTPResponse(status: 200, headers: headers, body: run.body))
    }

    func reject(_ refusal: JobAdmission.Refusal, _ request: HTTPRequest) -> HTTPResponse {
        switch refusal {
        case .saturated: reject(.saturated(retryAfter: 1), request)
        case .draining: reject(.draining(retryAfter: 5), request)
        case .overBudget: reject(.memoryBudget(retryAfter: 1), request)
        case .tooLarge(let cost): reject(.jobTooLarge(cost: cost, budget: admission.memoryBudget), request)
        }
    }

    /// Answers `problem`, counted in `fanout_rejections_total` under its slug.
    func reject(_ problem: Problem, _ request: HTTPRequest) -> HTTPResponse {
        metrics.rejected(problem)
        logRejection(problem, request)
        reclaimer.noteRelease(bytes: request.body.count)
        return problem.response
    }

    func logRejection(_ problem: Problem, _ request: HTTPRequest) {
        logger.info(
            "request rejected",
            metadata: [
                "http.method": "\(request.method)",
                "http.path": "\(request.path)",
                "http.status": "\(problem.status)",
                "http.client": "\(request.peer ?? "unknown")",
                "problem.detail": "\(problem.detail)",
            ]
        )
    }

    /// `application/json`, any parameters, or any `+json` structured syntax suffix.
    static func makeJobID() -> String {
        let hex = String(UInt64.random(in: .min ... .max), radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}

