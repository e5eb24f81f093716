/// What wakes the dispatcher's loop.
enum DispatchEvent: Sendable {
    case finished(index: Int, outcome: SubtaskOutcome, at: MonotonicTime)
    case deadline
    case heartbeatTick
    case stop(reason: String)
    /// The lines handed to the sink are with the client (true), or the client is gone (false).
    case sent(Bool)
    /// The client went away (``JobControl/clientGone()``): stop as when a send fails.
    case clientGone
}
