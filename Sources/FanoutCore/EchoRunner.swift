/// The `echo` kind: waits `delay_ms`, then yields `value`, or fails with `error`. No I/O: for demos,
/// tests and benchmarks.
public struct EchoRunner: SubtaskRunner {
    public struct Payload: Sendable {
        public var delayMilliseconds: Double
        public var value: JSONValue
        public var error: String?
    }

    /// Longest delay accepted (a day), so the arithmetic on instants cannot overflow.
    static let maxDelayMilliseconds = 86_400_000.0

    public let kind = "echo"
    public let fields: Set<String> = ["delay_ms", "value", "error"]

    public init() {}

    public func decode(_ task: JSONValue, path: FieldPath) throws(JobValidationError) -> Payload {
        var delay = 0.0
        if let value = task["delay_ms"], !value.isNull {
            guard case .number(let number) = value else {
                throw JobValidationError(field: "\(path).delay_ms", detail: "must be a number of milliseconds, got \(value.typeName)")
            }
            guard number >= 0, number <= Self.maxDelayMilliseconds else {
                throw JobValidationError(
                    field: "\(path).delay_ms",
                    detail: "must be between 0 and \(Int(Self.maxDelayMilliseconds)), got \(JSONValue.number(number).jsonText)"
                )
            }
            delay = number
        }
        return Payload(delayMilliseconds: delay, value: task["value"] ?? .null, error: try task.string("error", path: path))
    }

    /// An echo does no work: its outcome is known, due after its delay (as `setTimeout` or
    /// `asyncio.sleep` would make it in the peers).
    public func plannedOutcome(_ payload: Payload) -> PlannedOutcome? {
        let outcome: SubtaskOutcome = payload.error.map { .error(code: "task_error", message: $0) } ?? .ok(payload.value)
        return PlannedOutcome(outcome, afterMicroseconds: Int64(payload.delayMilliseconds * 1000))
    }

    public func run(_ payload: Payload, context: SubtaskContext) async -> SubtaskOutcome {
        if payload.delayMilliseconds > 0 {
            do {
                try await DeadlineTimer.shared.sleep(until: .now + .microseconds(Int64(payload.delayMilliseconds * 1000)))
            } catch {
                // The dispatcher cancels the task at its deadline (SubtaskRunner.run).
                return context.deadlinePassed ? .ownTimeout : .cancelled("the task was cancelled")
            }
        } else if Task.isCancelled {
            return .cancelled("the task was cancelled")
        }
        if let message = payload.error { return .error(code: "task_error", message: message) }
        return .ok(payload.value)
    }
}
