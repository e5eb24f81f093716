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
    func decode(_ task: JSONValue, path: String) throws(JobValidationError) -> Payload

    /// Runs one subtask. Must return by `context.deadline` (with a timeout outcome) and soon after
    /// the calling task is cancelled (with a cancelled outcome, which the dispatcher relabels). It
    /// never throws: every failure is an outcome, delivered as a line.
    func run(_ payload: Payload, context: SubtaskContext) async -> SubtaskOutcome
}

/// The runners a service offers, by kind.
public struct RunnerRegistry: Sendable {
    fileprivate struct Entry: Sendable {
        let fields: Set<String>
        let bind: @Sendable (JSONValue, String) throws(JobValidationError) -> @Sendable (SubtaskContext) async -> SubtaskOutcome
    }

    fileprivate var entries: [String: Entry] = [:]

    public init() {}

    public mutating func register<Runner: SubtaskRunner>(_ runner: Runner) {
        entries[runner.kind] = Entry(fields: runner.fields) { (task, path) throws(JobValidationError) in
            let payload = try runner.decode(task, path: path)
            return { context in await runner.run(payload, context: context) }
        }
    }

    public var kinds: [String] { entries.keys.sorted() }

    func fields(of kind: String) -> Set<String>? { entries[kind]?.fields }

    func bind(kind: String, task: JSONValue, path: String) throws(JobValidationError) -> (@Sendable (SubtaskContext) async -> SubtaskOutcome)? {
        guard let entry = entries[kind] else { return nil }
        return try entry.bind(task, path)
    }
}
