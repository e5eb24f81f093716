/// The timers of a job's planned outcomes in flight, by subtask index, until they fire or are
/// cancelled. The first sits in place and the rest in a table made only once a second one is in
/// flight: a job of one timer (a small job's common shape) has no table, ~110 bytes less for
/// every open stream.
struct PlannedTimers {
    private var first: (index: Int, token: DeadlineTimer.Token)?
    private var rest: [Int: DeadlineTimer.Token] = [:]

    /// Records `index`'s timer; a table, when one is made, gets room for `expected()` at once
    /// instead of growing through every power of two.
    mutating func insert(_ token: DeadlineTimer.Token, for index: Int, expected: () -> Int) {
        guard first != nil else {
            first = (index, token)
            return
        }
        if rest.capacity == 0 { rest.reserveCapacity(expected()) }
        rest[index] = token
    }

    /// `index`'s timer fired (or has none).
    mutating func remove(_ index: Int) {
        if first?.index == index {
            first = nil
        } else if !rest.isEmpty {
            rest.removeValue(forKey: index)
        }
    }

    /// Empties the set, handing each timer to `cancel`.
    mutating func removeAll(_ cancel: (DeadlineTimer.Token) -> Void) {
        if let first { cancel(first.token) }
        first = nil
        for token in rest.values { cancel(token) }
        rest.removeAll()
    }
}
