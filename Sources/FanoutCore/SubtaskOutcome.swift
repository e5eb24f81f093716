/// How a subtask ended: the `status`, and its `value` or `error` on the result line.
///
/// Compact, because a job keeps one per subtask whose outcome is planned (every `echo`): the value
/// or response shares one slot, and the rarer error code and message live in one shared box.
public struct SubtaskOutcome: Sendable, Equatable {
    public enum Status: String, Sendable {
        case ok, error, timeout, cancelled
    }

    /// An error's code and message (immutable, so shared by copies).
    private final class Failure: Sendable {
        let code: String
        let message: String
        let hasResponse: Bool

        init(code: String, message: String, hasResponse: Bool) {
            self.code = code
            self.message = message
            self.hasResponse = hasResponse
        }
    }

    private let failure: Failure?
    /// `ok`: the value; an error with a response: the response; else null.
    private let payload: JSONValue
    public let status: Status

    private init(status: Status, payload: JSONValue, failure: Failure?) {
        self.failure = failure
        self.payload = payload
        self.status = status
    }

    /// The result of an `ok` subtask.
    public var value: JSONValue? { status == .ok ? payload : nil }
    /// `error.code` of a non-`ok` subtask: `task_error`, `connect`, `http_status`, `too_large`,
    /// `forbidden`, `timeout`, `cancelled` or `internal`.
    public var errorCode: String? { failure?.code }
    public var errorMessage: String? { failure?.message }
    /// For `http_status`: the upstream's response.
    public var response: JSONValue? { failure?.hasResponse == true ? payload : nil }

    public static func ok(_ value: JSONValue) -> SubtaskOutcome {
        SubtaskOutcome(status: .ok, payload: value, failure: nil)
    }

    public static func error(code: String, message: String, response: JSONValue? = nil) -> SubtaskOutcome {
        SubtaskOutcome(
            status: .error, payload: response ?? .null,
            failure: Failure(code: code, message: message, hasResponse: response != nil)
        )
    }

    public static func timeout(_ message: String) -> SubtaskOutcome {
        SubtaskOutcome(status: .timeout, payload: .null, failure: Failure(code: "timeout", message: message, hasResponse: false))
    }

    /// A subtask past its own `timeout_ms` (a planned outcome's timer, or an `echo` task's sleep).
    public static var ownTimeout: SubtaskOutcome { .timeout("the task did not finish within its timeout") }

    /// `code` is `cancelled`, or `interrupted` for a subtask whose replica died (SPEC v1.1).
    public static func cancelled(_ message: String, code: String = "cancelled") -> SubtaskOutcome {
        SubtaskOutcome(status: .cancelled, payload: .null, failure: Failure(code: code, message: message, hasResponse: false))
    }

    public static func == (lhs: SubtaskOutcome, rhs: SubtaskOutcome) -> Bool {
        lhs.status == rhs.status && lhs.payload == rhs.payload && lhs.errorCode == rhs.errorCode
            && lhs.errorMessage == rhs.errorMessage && lhs.response == rhs.response
    }

    /// Heap bytes this outcome holds beyond its own size (for ``Job/estimatedBytes``).
    var heapBytes: Int {
        var bytes = payload.heapBytes
        if let failure { bytes += 48 + failure.code.utf8.count + failure.message.utf8.count }
        return bytes
    }
}
