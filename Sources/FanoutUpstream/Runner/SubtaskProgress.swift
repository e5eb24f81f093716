import FanoutSync

/// What a running `http` subtask is doing, so a timeout can say where the time went
/// ("while waiting for a connection slot to api:443").
final class SubtaskProgress: Sendable {
    private let phase = Locked("starting")

    func set(_ text: String) {
        phase.withLock { $0 = text }
    }

    var current: String { phase.withLock { $0 } }
}
