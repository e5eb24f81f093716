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
    public var runners: RunnerRegistry

    /// Shortest heartbeat interval accepted, so a job cannot make the server spin on heartbeats.
    public static let minimumHeartbeatMilliseconds = 10

    private static let jobFields: [String] = [
        "tasks", "concurrency", "timeout_ms", "task_timeout_ms", "order", "fail_fast", "first", "heartbeat_ms",
        "detach", "on_disconnect",
    ]

    public init(policy: JobPolicy, runners: RunnerRegistry) {
        self.policy = policy
        self.runners = runners
    }

    public func decode(_ body: [UInt8]) throws(JobValidationError) -> Job {
        let document: JSONValue
        do {
            document = try JSONParser.parse(body)
        } catch {
            throw JobValidationError(.malformedJSON, field: nil, detail: "the body is not valid JSON: \(error)")
        }
        guard case .object = document else {
            throw JobValidationError(field: nil, detail: "the job must be a JSON object, got \(document.typeName)")
        }
        try document.requireOnly(Self.jobFields, path: "")
        let timeouts = 1...policy.maxTimeoutMilliseconds

        guard let tasksValue = document["tasks"] else {
            throw JobValidationError(field: "tasks", detail: "is required")
        }
        guard case .array(let taskValues) = tasksValue else {
            throw JobValidationError(field: "tasks", detail: "must be an array, got \(tasksValue.typeName)")
        }
        guard !taskValues.isEmpty else { throw JobValidationError(field: "tasks", detail: "must hold at least one task") }
        guard taskValues.count <= policy.maxTasks else {
            throw JobValidationError(
                .tooManyTasks,
                field: "tasks",
                detail: "holds \(taskValues.count) tasks; the limit is \(policy.maxTasks)"
            )
        }

        let concurrency = try document.integer("concurrency", path: "", in: 1...policy.maxConcurrency) ?? min(policy.defaultConcurrency, policy.maxConcurrency)
        let timeout = try document.integer("timeout_ms", path: "", in: timeouts) ?? min(policy.defaultTimeoutMilliseconds, policy.maxTimeoutMilliseconds)
        let taskTimeout = try document.integer("task_timeout_ms", path: "", in: timeouts) ?? policy.defaultTaskTimeoutMilliseconds
        let order: Job.Order
        switch try document.string("order", path: "") {
        case nil: order = .completion
        case let name?:
            guard let named = Job.Order(rawValue: name) else {
                throw JobValidationError(field: "order", detail: "must be \"completion\" or \"input\", got \"\(name)\"")
            }
            order = named
        }
        let failFast = try document.boolean("fail_fast", path: "") ?? false
        let first = try document.integer("first", path: "", in: 1...taskValues.count)
        let heartbeat = try document.integer("heartbeat_ms", path: "", in: 0...policy.maxTimeoutMilliseconds) ?? policy.defaultHeartbeatMilliseconds
        if heartbeat != 0, heartbeat < Self.minimumHeartbeatMilliseconds {
            throw JobValidationError(field: "heartbeat_ms", detail: "must be 0 (off) or at least \(Self.minimumHeartbeatMilliseconds)")
        }

        var tasks: [Subtask] = []
        tasks.reserveCapacity(taskValues.count)
        // Ids must be unique. Defaults (the index) are unique among themselves, so a set is only
        // kept once some task names its own id.
        var seen: Set<String>?
        var defaulted: [Int] = []
        for (index, taskValue) in taskValues.enumerated() {
            let path = "tasks[\(index)]"
            guard case .object = taskValue else {
                throw JobValidationError(field: path, detail: "must be an object, got \(taskValue.typeName)")
            }
            let id: String
            if let named = try taskValue.string("id", path: path) {
                guard !named.isEmpty else { throw JobValidationError(field: "\(path).id", detail: "must not be empty") }
                if seen == nil { seen = Set(defaulted.map(String.init)) }
                guard seen!.insert(named).inserted else {
                    throw JobValidationError(field: "\(path).id", detail: "\"\(named)\" is used by an earlier task; ids must be unique")
                }
                id = named
            } else {
                id = String(index)
                if seen != nil {
                    guard seen!.insert(id).inserted else {
                        throw JobValidationError(field: "\(path).id", detail: "the default id \"\(id)\" (its index) is used by an earlier task; ids must be unique")
                    }
                } else {
                    defaulted.append(index)
                }
            }
            guard let kind = try taskValue.string("kind", path: path) else {
                throw JobValidationError(field: "\(path).kind", detail: "is required (one of: \(runners.kinds.joined(separator: ", ")))")
            }
            let ownTimeout = try taskValue.integer("timeout_ms", path: path, in: timeouts) ?? taskTimeout
            guard let work = try runners.bind(kind: kind, task: taskValue, path: path) else {
                throw JobValidationError(field: "\(path).kind", detail: "\"\(kind)\" is not a known kind (one of: \(runners.kinds.joined(separator: ", ")))")
            }
            tasks.append(Subtask(id: id, index: index, kind: kind, timeoutMilliseconds: ownTimeout, work: work))
        }
        var job = Job(
            tasks: tasks,
            concurrency: concurrency,
            timeoutMilliseconds: timeout,
            order: order,
            failFast: failFast,
            first: first,
            heartbeatMilliseconds: heartbeat
        )
        try decodeRetention(document, into: &job)
        return job
    }

    /// The retained-job fields (SPEC "Jobs that outlive their connection").
    private func decodeRetention(_ document: JSONValue, into job: inout Job) throws(JobValidationError) {
        job.detach = try document.boolean("detach", path: "") ?? false
        if let name = try document.string("on_disconnect", path: "") {
            guard let policy = Job.DisconnectPolicy(rawValue: name) else {
                throw JobValidationError(field: "on_disconnect", detail: "must be \"cancel\" or \"continue\", got \"\(name)\"")
            }
            job.onDisconnect = policy
        }
    }
}
