import FanoutSync

/// What a running `http` subtask is doing, so a timeout can say where the time went
/// ("while waiting for a connection slot to api:443"). The phase is kept as values and put into
/// words only when a timeout asks: most subtasks never time out, and every attempt sets it.
final class SubtaskProgress: Sendable {
    enum Phase: Sendable, CustomStringConvertible {
        case starting
        case resolving(UpstreamURL)
        case waitingForSlot(key: String, waiting: Int, inFlight: Int)
        case waitingForResponse(IPAddress, port: Int, attempt: Int)
        case readingBody(UpstreamURL, attempt: Int)
        case waitingToRetry(Duration, retry: Int)

        var description: String {
            switch self {
            case .starting: "starting"
            case .resolving(let url): "resolving \(url.hostText)"
            case .waitingForSlot(let key, let waiting, let inFlight):
                "waiting for a connection slot to \(key) (\(waiting) waiting, \(inFlight) in flight)"
            case .waitingForResponse(let address, let port, let attempt):
                "waiting for the response from \(address.urlHost):\(port) (attempt \(attempt))"
            case .readingBody(let url, let attempt): "reading the response body from \(url.hostAndPort) (attempt \(attempt))"
            case .waitingToRetry(let wait, let retry): "waiting \(wait) before retry \(retry)"
            }
        }
    }

    private let phase = Locked(Phase.starting)

    func set(_ now: Phase) {
        phase.withLock { $0 = now }
    }

    var current: String { phase.withLock { $0 }.description }
}
