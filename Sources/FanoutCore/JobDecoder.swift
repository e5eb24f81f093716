import Dispatch
import FanoutSync
import Glibc

/// Limits and defaults that validation applies (the service's `limits.*` and `defaults.*`).
public struct JobPolicy: Sendable {
    public var maxTasks: Int
    public var maxConcurrency: Int
    public var maxTimeoutMilliseconds: Int
    public var defaultConcurrency: Int
    public var defaultTimeoutMilliseconds: Int
    /// The per-subtask timeout when neither the job nor the subtask names one; nil for none.
    public var defaultTaskTimeoutMilliseconds: Int?
    public var defaultHeartbeatMilliseconds: Int

    public init(
        maxTasks: Int = 100_000,
        maxConcurrency: Int = 100_000,
        maxTimeoutMilliseconds: Int = 3_600_000,
        defaultConcurrency: Int = 1_000,
        defaultTimeoutMilliseconds: Int = 60_000,
        defaultTaskTimeoutMilliseconds: Int? = nil,
        defaultHeartbeatMilliseconds: Int = 15_000
    ) {
        self.maxTasks = maxTasks
        self.maxConcurrency = maxConcurrency
        self.maxTimeoutMilliseconds = maxTimeoutMilliseconds
        self.defaultConcurrency = defaultConcurrency
        self.defaultTimeoutMilliseconds = defaultTimeoutMilliseconds
        self.defaultTaskTimeoutMilliseconds = defaultTaskTimeoutMilliseconds
        self.defaultHeartbeatMilliseconds = defaultHeartbeatMilliseconds
    }
}

/// Turns a request body into a ``Job``, or a ``JobValidationError`` naming the first bad field.
public struct JobDecoder: Sendable {
    public var policy: JobPolicy
    public let runners: RunnerRegistry
    /// The job's and its subtasks' field names and kinds, shared by every job decoded.
    private let names: JSONParser.SharedNames
    /// The codes in `names` of the optional fields every subtask may have (nil: not shared).
    private let idCode, timeoutCode: Int?
    /// Each runner's field names as a mask of their codes (``JSONParser/SharedNames/mask(of:)``),
    /// by its position in `runners`: a subtask whose names are all in its runner's needs no check.
    private let runnerFieldMasks: [UInt64]

    /// Shortest heartbeat interval accepted, so a job cannot make the server spin on heartbeats.
    public static let minimumHeartbeatMilliseconds = 10

    /// How many threads may parse one body's `tasks` array, each a run of it (the online CPUs,
    /// at most 4); 1: the calling thread alone.
    var parallelism = min(4, max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    /// The fewest bytes of `tasks` a run is given: below twice this, a body is parsed in one piece
    /// (a thread's hop costs more than parsing a small job).
    var minimumRunBytes = 512 * 1024

    private static let jobFields: [String] = [
        "tasks", "concurrency", "timeout_ms", "task_timeout_ms", "order", "fail_fast", "first", "heartbeat_ms",
        "detach", "on_disconnect",
    ]

    public init(policy: JobPolicy, runners: RunnerRegistry) {
        self.policy = policy
        self.runners = runners
        let names = JSONParser.SharedNames(Self.jobFields + runners.fieldNames + runners.kinds)
        self.names = names
        (idCode, timeoutCode) = (names.code(of: "id"), names.code(of: "timeout_ms"))
        runnerFieldMasks = runners.fieldsByRunner.map { names.mask(of: $0) }
    }

    /// Decodes and validates a job. The body is parsed in one pass and each subtask is bound to
    /// its runner as soon as it is parsed, so the parse tree of one subtask is held at a time, never
    /// the whole document's. Errors are reported as a whole-document pass would: malformed JSON
    /// anywhere first, then the job's fields, then the first bad subtask, then memory.
    /// - Parameter maxBytes: Most the job may take (``Job/estimatedBytes``): past it, subtasks are
    ///   no longer kept (the rest of the body is only checked) and the answer is `.overMemory`.
    ///
    /// A large `tasks` array is cut into runs parsed and bound on as many threads
    /// (``parallelism``), then joined in order; if any run fails in any way, the body is decoded
    /// again in one piece, so the error reported is the one a single pass finds.
    public func decode(_ body: [UInt8], maxBytes: Int = .max) throws(JobValidationError) -> Job {
        try decodeCountingRuns(body, maxBytes: maxBytes).job
    }

    /// ``decode(_:maxBytes:)``, and how many runs the job's subtasks were bound in (1: in one piece).
    func decodeCountingRuns(_ body: [UInt8], maxBytes: Int = .max) throws(JobValidationError) -> (job: Job, runs: Int) {
        try decode(body, maxBytes: maxBytes, inRuns: parallelism)
    }

    private func decode(_ body: [UInt8], maxBytes: Int, inRuns runs: Int) throws(JobValidationError) -> (job: Job, runs: Int) {
        var scan = Scan(decoder: self, maxBytes: maxBytes)
        var parser = JSONParser(bytes: body, shared: names)
        var nonObject: JSONValue?
        var runFailed = false
        var bound = 1
        do {
            if parser.peek() == UInt8(ascii: "{") {
                try parser.forEachMember { (parser, key) throws(JSONParser.Error) in
                    if key == "tasks", parser.peek() == UInt8(ascii: "[") {
                        scan.sawTasks = true
                        // Each run at least `minimumRunBytes`: fewer than two is one piece.
                        let parts = min(runs, (body.count - parser.index) / minimumRunBytes)
                        if let cuts = parser.cuts(parts: parts) {
                            guard let end = scan.addInRuns(of: parser, cuts: cuts) else {
                                runFailed = true
                                throw JSONParser.Error(offset: parser.index, reason: "a run of the tasks array failed")
                            }
                            parser.skipArray(endingAt: end)
                            bound = cuts.count + 1
                        } else {
                            try parser.forEachElement { (parser) throws(JSONParser.Error) in try scan.parseAndAdd(&parser) }
                        }
                    } else {
                        scan.members.append((key, try parser.parseValue()))
                    }
                }
            } else {
                nonObject = try parser.parseValue()
            }
            try parser.finish()
        } catch {
            if runFailed { return try decode(body, maxBytes: maxBytes, inRuns: 1) }
            throw JobValidationError(.malformedJSON, field: nil, detail: "the body is not valid JSON: \(error)")
        }
        if let nonObject {
            throw JobValidationError(field: nil, detail: "the job must be a JSON object, got \(nonObject.typeName)")
        }
        let document = JSONValue.object(scan.members)
        try document.requireOnly(Self.jobFields, path: .document)
        let timeouts = 1...policy.maxTimeoutMilliseconds

        if !scan.sawTasks {
            guard let tasksValue = document["tasks"] else {
                throw JobValidationError(field: "tasks", detail: "is required")
            }
            throw JobValidationError(field: "tasks", detail: "must be an array, got \(tasksValue.typeName)")
        }
        guard scan.count > 0 else { throw JobValidationError(field: "tasks", detail: "must hold at least one task") }
        guard scan.count <= policy.maxTasks else {
            throw JobValidationError(
                .tooManyTasks,
                field: "tasks",
                detail: "holds \(scan.count) tasks; the limit is \(policy.maxTasks)"
            )
        }

        let concurrency = try document.integer("concurrency", path: .document, in: 1...policy.maxConcurrency) ?? min(policy.defaultConcurrency, policy.maxConcurrency)
        let timeout = try document.integer("timeout_ms", path: .document, in: timeouts) ?? min(policy.defaultTimeoutMilliseconds, policy.maxTimeoutMilliseconds)
        let taskTimeout = try document.integer("task_timeout_ms", path: .document, in: timeouts) ?? policy.defaultTaskTimeoutMilliseconds
        let order: Job.Order
        switch try document.string("order", path: .document) {
        case nil: order = .completion
        case let name?:
            guard let named = Job.Order(rawValue: name) else {
                throw JobValidationError(field: "order", detail: "must be \"completion\" or \"input\", got \"\(name)\"")
            }
            order = named
        }
        let failFast = try document.boolean("fail_fast", path: .document) ?? false
        let first = try document.integer("first", path: .document, in: 1...scan.count)
        let heartbeat = try document.integer("heartbeat_ms", path: .document, in: 0...policy.maxTimeoutMilliseconds) ?? policy.defaultHeartbeatMilliseconds
        if heartbeat != 0, heartbeat < Self.minimumHeartbeatMilliseconds {
            throw JobValidationError(field: "heartbeat_ms", detail: "must be 0 (off) or at least \(Self.minimumHeartbeatMilliseconds)")
        }
        if let error = scan.firstError { throw error }
        if scan.overMemory {
            throw JobValidationError(.overMemory, field: nil, detail: "the job would take more than \(maxBytes) bytes of memory")
        }

        scan.tasks.defaultTimeoutMilliseconds = taskTimeout
        scan.tasks.shrinkToFit()
        var job = Job(
            tasks: scan.tasks,
            concurrency: concurrency,
            timeoutMilliseconds: timeout,
            order: order,
            failFast: failFast,
            first: first,
            heartbeatMilliseconds: heartbeat
        )
        try decodeRetention(document, into: &job)
        return (job, bound)
    }

    /// The retained-job fields (SPEC "Jobs that outlive their connection").
    private func decodeRetention(_ document: JSONValue, into job: inout Job) throws(JobValidationError) {
        job.detach = try document.boolean("detach", path: .document) ?? false
        if let name = try document.string("on_disconnect", path: .document) {
            guard let policy = Job.DisconnectPolicy(rawValue: name) else {
                throw JobValidationError(field: "on_disconnect", detail: "must be \"cancel\" or \"continue\", got \"\(name)\"")
            }
            job.onDisconnect = policy
        }
    }

    /// What one pass over the body gathers: the job's fields but `tasks`, and the subtasks, bound
    /// as they are parsed, up to the first bad one (the rest are only parsed, for syntax).
    private struct Scan: Sendable {
        let decoder: JobDecoder
        let maxBytes: Int
        var members: [(String, JSONValue)] = []
        var sawTasks = false
        var tasks: SubtaskList
        /// Subtasks seen, counted from the first of this scan's run: the next one's index.
        var count: Int
        var firstError: JobValidationError?
        /// The subtasks kept so far passed `maxBytes`.
        var overMemory = false
        /// Ids must be unique. Defaults (the index) are unique among themselves, so a set is only
        /// kept once some task names its own id.
        private var seen: Set<String>?
        private var defaulted: [Int] = []
        /// The members of the subtask being bound: one buffer for them all.
        private var taskMembers: [(String, JSONValue)] = []

        /// - Parameter firstIndex: The index of the first subtask this scan sees (a run's).
        init(decoder: JobDecoder, maxBytes: Int, firstIndex: Int = 0) {
            self.decoder = decoder
            self.maxBytes = maxBytes
            self.count = firstIndex
            self.tasks = SubtaskList(from: firstIndex)
        }

        /// Parses and binds the runs of the `tasks` array at `parser` that `cuts` make, one
        /// thread each, and joins them. nil if some run failed: malformed, a bad subtask, over
        /// its share of `maxBytes`, or an id that an earlier run used.
        /// - Returns: Where the array ended.
        mutating func addInRuns(of parser: JSONParser, cuts: [JSONParser.ArrayCut]) -> Int? {
            let runs = cuts.count + 1
            let (decoder, share) = (decoder, maxBytes / runs)
            let results = Locked([(scan: Scan, end: Int)?](repeating: nil, count: runs))
            DispatchQueue.concurrentPerform(iterations: runs) { run in
                var part = Scan(decoder: decoder, maxBytes: share, firstIndex: run == 0 ? 0 : cuts[run - 1].elementsBefore)
                let end = try? parser.forEachElement(ofRun: run, cuts: cuts) { (parser) throws(JSONParser.Error) in
                    try part.parseAndAdd(&parser)
                    // This run is done for: the whole is decoded again in one piece.
                    if part.firstError != nil || part.overMemory { throw JSONParser.Error(offset: parser.index, reason: "") }
                }
                if let end { results.withLock { $0[run] = (part, end) } }
            }
            let parsed = results.withLock { $0 }
            for (run, slot) in parsed.enumerated() {
                guard let part = slot?.scan else { return nil }
                if run == 0 { tasks = part.tasks } else { tasks.append(contentsOf: part.tasks) }
                count = part.count
            }
            let joined = tasks
            if joined.namesOwnIDs, Set(joined.indices.lazy.map { joined.id(at: $0) }).count != joined.count { return nil }
            if Job.estimatedBytes(of: tasks) > maxBytes { return nil }
            return parsed[runs - 1]?.end
        }

        /// Parses the subtask at `parser` and adds it.
        mutating func parseAndAdd(_ parser: inout JSONParser) throws(JSONParser.Error) {
            var codes = JSONParser.MemberCodes()
            let task = try parser.parseValue(reusing: &taskMembers, codes: &codes)
            add(task, codes: codes)
        }

        /// Binds a subtask (unless an earlier one failed, or the job is over its memory) and
        /// counts it; `codes` are its member names (``JSONParser/parseValue(reusing:codes:)``).
        private mutating func add(_ task: JSONValue, codes: JSONParser.MemberCodes) {
            let index = count
            count += 1
            guard firstError == nil, !overMemory, count <= decoder.policy.maxTasks else { return }
            do {
                try bind(task, codes: codes, index: index)
            } catch {
                firstError = error
            }
            if Job.estimatedBytes(of: tasks) > maxBytes {
                overMemory = true
                tasks = SubtaskList()
            }
        }

        private mutating func bind(_ taskValue: JSONValue, codes: JSONParser.MemberCodes, index: Int) throws(JobValidationError) {
            let path = FieldPath.task(index)
            guard case .object = taskValue else {
                throw JobValidationError(field: path.description, detail: "must be an object, got \(taskValue.typeName)")
            }
            // Fields the subtask has not are not looked up.
            var id: String?
            if codes.mayHave(decoder.idCode), let named = try taskValue.string("id", path: path) {
                guard !named.isEmpty else { throw JobValidationError(field: "\(path).id", detail: "must not be empty") }
                if seen == nil { seen = Set(defaulted.map(String.init)) }
                guard seen!.insert(named).inserted else {
                    throw JobValidationError(field: "\(path).id", detail: "\"\(named)\" is used by an earlier task; ids must be unique")
                }
                // A name equal to the index is stored as the default.
                id = named == String(index) ? nil : named
            } else if seen != nil {
                let defaultID = String(index)
                guard seen!.insert(defaultID).inserted else {
                    throw JobValidationError(field: "\(path).id", detail: "the default id \"\(defaultID)\" (its index) is used by an earlier task; ids must be unique")
                }
            } else {
                defaulted.append(index)
            }
            let runners = decoder.runners
            guard let kind = try taskValue.string("kind", path: path) else {
                throw JobValidationError(field: "\(path).kind", detail: "is required (one of: \(runners.kinds.joined(separator: ", ")))")
            }
            let ownTimeout = codes.mayHave(decoder.timeoutCode) ? try taskValue.integer("timeout_ms", path: path, in: 1...decoder.policy.maxTimeoutMilliseconds) : nil
            guard let runner = runners.runner(ofKind: kind) else {
                throw JobValidationError(field: "\(path).kind", detail: "\"\(kind)\" is not a known kind (one of: \(runners.kinds.joined(separator: ", ")))")
            }
            let work = try runners.bind(runner: runner, task: taskValue, path: path, fieldsChecked: codes.allIn(decoder.runnerFieldMasks[runner]))
            // Only a runner call holds the task's payload; a planned outcome is counted by the list.
            let payloadBytes = if case .run = work { taskValue.heapBytes } else { 0 }
            tasks.append(id: id, kind: kind, timeoutMilliseconds: ownTimeout, bound: work, payloadBytes: payloadBytes)
        }
    }
}
