/// How a subtask ended: the `status`, and its `value` or `error` on the result line.
public struct SubtaskOutcome: Sendable, Equatable {
    public enum Status: String, Sendable {
        case ok, error, timeout, cancelled
    }

    public var status: Status
    /// The result of an `ok` subtask.
    public var value: JSONValue?
    /// `error.code` of a non-`ok` subtask: `task_error`, `connect`, `http_status`, `too_large`,
    /// `forbidden`, `timeout`, `cancelled` or `internal`.
    public var errorCode: String?
    public var errorMessage: String?
    /// For `http_status`: the upstream's response.
    public var response: JSONValue?

    public static func ok(_ value: JSONValue) -> SubtaskOutcome {
        SubtaskOutcome(status: .ok, value: value)
    }

    public static func error(code: String, message: String, response: JSONValue? = nil) -> SubtaskOutcome {
        SubtaskOutcome(status: .error, errorCode: code, errorMessage: message, response: response)
    }

    public static func timeout(_ message: String) -> SubtaskOutcome {
        SubtaskOutcome(status: .timeout, errorCode: "timeout", errorMessage: message)
    }

    public static func cancelled(_ message: String) -> SubtaskOutcome {
        SubtaskOutcome(status: .cancelled, errorCode: "cancelled", errorMessage: message)
    }
}
