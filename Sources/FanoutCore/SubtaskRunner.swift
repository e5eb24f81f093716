/// A subtask kind: how its fields are validated and how it runs. The dispatcher knows runners only
/// through this protocol; `echo` and `http` implement it.
public protocol SubtaskRunner: Sendable {
    /// What validation extracts from a subtask's fields.
    associatedtype Payload: Sendable

    /// The `kind` value this runner handles.
    var kind: String { get }

    /// The fields a subtask of this kind may carry besides `id`, `kind` and `timeout_ms`.
    var fields: Set<String> { get }

    /// Validates a subtask's fields.
    /// - Parameter path: The subtask's location for error messages, e.g. `tasks[3]`.
    /// - Throws: ``JobValidationError`` naming the bad field.
    func decode(_ task: JSONValue, path: FieldPath) throws(JobValidationError) -> Payload

    /// Runs one subtask, in a task of its own that the dispatcher cancels at `context.deadline`.
    /// Must return soon after that task is cancelled: with a timeout outcome if the deadline has
    /// passed (``SubtaskContext/deadlinePassed``), else with a cancelled one (which the dispatcher
    /// relabels). It never throws: every failure is an outcome, delivered as a line.
    func run(_ payload: Payload, context: SubtaskContext) async -> SubtaskOutcome

    /// The outcome when it is known in advance and only its time is not (an `echo` is a timer:
    /// its value, after its delay), else nil. The dispatcher then records it when due, on the
    /// shared ``DeadlineTimer``, instead of starting a task that would only sleep.
    func plannedOutcome(_ payload: Payload) -> PlannedOutcome?
}

extension SubtaskRunner {
    public func plannedOutcome(_ payload: Payload) -> PlannedOutcome? { nil }
}

/// An outcome known in advance, due some time after the subtask starts.
public struct PlannedOutcome: Sendable {
    public var outcome: SubtaskOutcome
    /// Whole microseconds after the start (0: at once; a positive delay is at least 1), as a
    /// job's list keeps it: `Duration`'s 128-bit arithmetic, to make one and to read it back, was
    /// ~400 instructions of each `echo` subtask's decoding.
    var microseconds: Int64

    public var delay: Duration { .microseconds(microseconds) }

    public init(_ outcome: SubtaskOutcome, after delay: Duration) {
        self.init(outcome, afterMicroseconds: delay <= .zero ? 0 : delay.timerMicroseconds)
    }

    init(_ outcome: SubtaskOutcome, afterMicroseconds microseconds: Int64) {
        self.outcome = outcome
        self.microseconds = microseconds
    }
}

/// A subtask bound to its runner: how the dispatcher performs it.
public enum SubtaskWork: Sendable {
    /// Start a task that runs this.
    case run(@Sendable (SubtaskContext) async -> SubtaskOutcome)
    /// Known already; no task needed.
    case immediate(SubtaskOutcome)
    /// Known already but due after a delay from the subtask's start: a timer, no task.
    case delayed(SubtaskOutcome, after: Duration)
}

/// The runners a service offers, by kind.
public struct RunnerRegistry: Sendable {
    fileprivate struct Entry: Sendable {
        let kind: String
        /// The runner's fields plus the common ones (`id`, `kind`, `timeout_ms`).
        let fields: [String]
        let bind: @Sendable (JSONValue, FieldPath) throws(JobValidationError) -> BoundWork
    }

    static let commonFields: Set<String> = ["id", "kind", "timeout_ms"]

    /// By kind, in registration order: a service has a few, and comparing a short string with
    /// each beats hashing it for a dictionary (done for every subtask).
    fileprivate var entries: [Entry] = []

    public init() {}

    public mutating func register<Runner: SubtaskRunner>(_ runner: Runner) {
        let entry = Entry(kind: runner.kind, fields: Array(runner.fields.union(Self.commonFields)).sorted()) { (task, path) throws(JobValidationError) in
            let payload = try runner.decode(task, path: path)
            if let planned = runner.plannedOutcome(payload) {
                return .planned(planned.outcome, microseconds: planned.microseconds)
            }
            return .run { context in await runner.run(payload, context: context) }
        }
        entries.removeAll { $0.kind == runner.kind }
        entries.append(entry)
    }

    public var kinds: [String] { entries.map(\.kind).sorted() }

    /// Every field name some subtask kind accepts (for ``JSONParser/SharedNames``).
    var fieldNames: Set<String> { Set(entries.flatMap(\.fields)) }

    /// Each runner's field names, the common ones included, in registration order: the
    /// positions ``runner(ofKind:)`` gives.
    var fieldsByRunner: [[String]] { entries.map(\.fields) }

    /// The position of the runner of `kind`, nil for an unknown kind.
    func runner(ofKind kind: String) -> Int? {
        entries.firstIndex { $0.kind == kind }
    }

    /// Binds a subtask to the runner at `runner` (``runner(ofKind:)``), checking its fields first
    /// unless the caller has (`fieldsChecked`: every member name is in ``fieldsByRunner``).
    func bind(runner: Int, task: JSONValue, path: FieldPath, fieldsChecked: Bool) throws(JobValidationError) -> BoundWork {
        let entry = entries[runner]
        if !fieldsChecked { try task.requireOnly(entry.fields, path: path) }
        return try entry.bind(task, path)
    }
}
