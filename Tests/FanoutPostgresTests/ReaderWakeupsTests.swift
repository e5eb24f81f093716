import Testing

@testable import FanoutPostgres

/// The wake-ups behind live readers: no notification is lost between a reader's query and its
/// wait, a parked reader is woken, and the fallback poll bounds a wait with none. (A broken wake-up
/// would hang its test for the 10-minute wait; the time limit turns that into a failure.)
@Suite("Reader wake-ups", .timeLimit(.minutes(1)))
struct ReaderWakeupsTests {
    @Test func aNotificationBeforeTheWaitIsNotLost() async {
        let wakeups = ReaderWakeups()
        let generation = wakeups.watch("j")
        wakeups.notify("j")
        await wakeups.wait(for: "j", since: generation, atMost: .seconds(600))
        wakeups.unwatch("j")
    }

    @Test func aParkedReaderIsWokenByItsJobOnly() async throws {
        let wakeups = ReaderWakeups()
        let generation = wakeups.watch("j")
        let other = wakeups.watch("k")
        let reader = Task { await wakeups.wait(for: "j", since: generation, atMost: .seconds(600)) }
        try await Task.sleep(for: .milliseconds(100))
        wakeups.notify("k")
        wakeups.notify("j")
        await reader.value
        // "k" was notified after its generation was taken: its wait returns at once too.
        await wakeups.wait(for: "k", since: other, atMost: .seconds(600))
        wakeups.unwatch("j")
        wakeups.unwatch("k")
    }

    @Test func theFallbackPollEndsAWaitWithoutNotification() async {
        let wakeups = ReaderWakeups()
        let generation = wakeups.watch("j")
        await wakeups.wait(for: "j", since: generation, atMost: .milliseconds(50))
        wakeups.notifyAll()
        await wakeups.wait(for: "j", since: generation, atMost: .seconds(600))
        wakeups.unwatch("j")
    }

    @Test func aCancelledReaderStopsWaiting() async throws {
        let wakeups = ReaderWakeups()
        let generation = wakeups.watch("j")
        let reader = Task { await wakeups.wait(for: "j", since: generation, atMost: .seconds(600)) }
        try await Task.sleep(for: .milliseconds(50))
        reader.cancel()
        await reader.value
        wakeups.unwatch("j")
    }
}
