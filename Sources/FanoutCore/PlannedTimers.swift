/// The timers of a job's planned outcomes in flight, by subtask index, until they fire or are
/// cancelled. The first sits in place, so a job of one timer (a small job's common shape) holds
/// no buffer: ~110 bytes less for every open stream. The rest are in a window by index: subtasks
/// start in input order, so every index arrives above those before it, and a timer is found by
/// subtracting the window's first index — no hashing, and no table to grow and rehash through
/// every power of two (a 100,000-timer job spent 4 % of its instructions there).
///
/// The window spans the oldest timer in flight to the newest, with a nil for each index that has
/// none (fired, cancelled, not a timer, or in place): one long timer among many short ones keeps
/// up to 12 bytes an index until it fires. It moves on past nils at its start and gives their
/// room back once they are half of it.
struct PlannedTimers {
    private var first: (index: Int, token: DeadlineTimer.Token)?
    private var window: [DeadlineTimer.Token?] = []
    /// The index of `window[0]`.
    private var base = 0
    /// `window[..<head]` is all nil; `head < window.count` unless the window is empty (`remove`
    /// empties it once its last timer goes).
    private var head = 0

    /// Records `index`'s timer; `index` is above every index recorded before. A window, when one
    /// is made, gets room for `expected()` at once.
    mutating func insert(_ token: DeadlineTimer.Token, for index: Int, expected: () -> Int) {
        guard first != nil else {
            first = (index, token)
            return
        }
        if window.capacity == 0 { window.reserveCapacity(expected()) }
        if window.isEmpty { base = index }
        precondition(index >= base + window.count, "planned timers arrive in index order")
        while base + window.count < index { window.append(nil) }
        window.append(token)
    }

    /// `index`'s timer fired (or has none).
    mutating func remove(_ index: Int) {
        if first?.index == index {
            first = nil
            return
        }
        let offset = index - base
        guard offset >= head, offset < window.count else { return }
        window[offset] = nil
        guard offset == head else { return }
        while head < window.count, window[head] == nil { head += 1 }
        if head == window.count {
            window.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 64, head * 2 >= window.count {
            window.removeSubrange(..<head)
            base += head
            head = 0
        }
    }

    /// Indices the window holds room for, nils included; for tests.
    var windowLength: Int { window.count }

    /// Empties the set, handing each timer to `cancel`.
    mutating func removeAll(_ cancel: (DeadlineTimer.Token) -> Void) {
        if let first { cancel(first.token) }
        first = nil
        for case let token? in window[head...] { cancel(token) }
        window.removeAll()
        head = 0
    }
}
