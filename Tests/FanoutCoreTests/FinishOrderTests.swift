import Testing

@testable import FanoutCore

/// `DispatchLoop.finishOrder`: outcomes by their stamp (arrival order among equal stamps), then the
/// other events in arrival order — whether the batch is already so (a burst from the timer thread,
/// returned as it is) or not (outcomes posted from several threads).
@Suite("Finish order")
struct FinishOrderTests {
    /// What each event is, to compare orders: an outcome's index, or the other event's arrival position.
    private static func key(_ event: DispatchEvent, _ position: Int) -> String {
        if case .finished(let index, _, _) = event { return "f\(index)" }
        return "o\(position)"
    }

    private static func reference(_ batch: [DispatchEvent]) -> [String] {
        var finished: [(at: MonotonicTime, position: Int, key: String)] = []
        var others: [String] = []
        for (position, event) in batch.enumerated() {
            if case .finished(_, _, let at) = event {
                finished.append((at, position, key(event, position)))
            } else {
                others.append(key(event, position))
            }
        }
        return finished.sorted { ($0.at.nanoseconds, $0.position) < ($1.at.nanoseconds, $1.position) }.map(\.key) + others
    }

    private static func keys(_ ordered: [DispatchEvent]) -> [String] {
        // Other events carry no index: find each one's arrival position by its payload.
        ordered.map { event in
            if case .stop(let reason) = event { return "o\(Int(reason)!)" }
            return key(event, -1)
        }
    }

    @Test func ordersOutcomesByStampThenTheRest() {
        var random = SplitMix(seed: 12)
        for round in 0..<300 {
            let count = Int.random(in: 1...40, using: &random)
            // Some rounds in order already (the fast path), some shuffled, some with ties.
            let sorted = round % 3 == 0
            var stamp: Int64 = 1_000
            var batch: [DispatchEvent] = []
            for position in 0..<count {
                if Int.random(in: 0..<5, using: &random) == 0, !(sorted && position < count - 3) {
                    batch.append(.stop(reason: String(position)))
                } else {
                    stamp += sorted ? Int64.random(in: 0...2, using: &random) : Int64.random(in: -5...5, using: &random)
                    batch.append(.finished(index: position, outcome: .ok(.null), at: MonotonicTime(nanoseconds: stamp)))
                }
            }
            let ordered = DispatchLoop.finishOrder(batch)
            #expect(Self.keys(ordered) == Self.reference(batch), "round \(round)")
        }
    }

    @Test func aBatchInOrderIsRecognised() {
        let inOrder: [DispatchEvent] = [
            .finished(index: 3, outcome: .ok(.null), at: MonotonicTime(nanoseconds: 5)),
            .finished(index: 1, outcome: .ok(.null), at: MonotonicTime(nanoseconds: 5)),
            .finished(index: 2, outcome: .ok(.null), at: MonotonicTime(nanoseconds: 9)),
            .heartbeatTick,
        ]
        #expect(DispatchLoop.isInFinishOrder(inOrder))
        #expect(!DispatchLoop.isInFinishOrder(Array(inOrder.reversed())))
        #expect(!DispatchLoop.isInFinishOrder([.deadline] + inOrder), "an outcome after another event moves before it")
    }
}
