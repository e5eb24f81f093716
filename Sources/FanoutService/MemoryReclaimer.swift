internal import CAllocator
import Dispatch
import FanoutSync

/// Gives memory back to the system after large frees (big request bodies, big jobs).
///
/// glibc keeps freed memory in its arenas: without a trim, RSS after a burst of 16 MiB bodies stays at
/// its peak for good. ``noteRelease(bytes:)`` asks for `malloc_trim(0)` once at least
/// ``threshold`` bytes were freed; the trim runs on a utility queue at most once per
/// ``minimumInterval``, never on an I/O thread (it takes every arena's lock, a few ms on a large heap).
/// The arena count is capped at startup (``capArenas(_:)``): each thread that mallocs may otherwise get
/// an arena of its own (up to 8 per core), each holding freed memory apart.
final class MemoryReclaimer: Sendable {
    private struct State {
        var releasedSinceTrim = 0
        var scheduled = false
        var lastTrim: ContinuousClock.Instant?
        var trims = 0
    }

    let threshold: Int
    let minimumInterval: Duration
    private let state = Locked(State())
    private let queue = DispatchQueue(label: "fanoutd.memory-reclaimer", qos: .utility)

    init(threshold: Int = 8 * 1024 * 1024, minimumInterval: Duration = .seconds(1)) {
        self.threshold = threshold
        self.minimumInterval = minimumInterval
    }

    /// Caps glibc's malloc arenas (process-wide); call once at startup, before threads allocate.
    static func capArenas(_ count: Int) {
        _ = callocator_set_arena_max(Int32(count))
    }

    /// Allocations smaller than this are not worth a lock: glibc reuses them at once.
    static let smallest = 64 * 1024

    /// `bytes` of a large allocation were just freed; trims once enough has been freed.
    func noteRelease(bytes: Int) {
        guard bytes >= Self.smallest else { return }
        let delay: Duration? = state.withLock { state in
            state.releasedSinceTrim += bytes
            guard state.releasedSinceTrim >= threshold, !state.scheduled else { return nil }
            state.scheduled = true
            guard let last = state.lastTrim else { return .zero }
            return max(.zero, minimumInterval - (.now - last))
        }
        guard let delay else { return }
        let milliseconds = Int((delay / .milliseconds(1)).rounded(.up))
        queue.asyncAfter(deadline: .now() + .milliseconds(milliseconds)) { [self] in
            state.withLock { state in
                state.releasedSinceTrim = 0
                state.scheduled = false
                state.lastTrim = .now
            }
            _ = callocator_trim(0)
            state.withLock { $0.trims += 1 }
        }
    }

    /// Trims completed so far (tests, metrics).
    var trims: Int { state.withLock { $0.trims } }
}
