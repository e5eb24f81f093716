import FanoutCore
import FanoutSync
import Testing

@testable import FanoutJobs

/// A clock the test moves by hand.
final class ManualClock: Sendable {
    let seconds = Locked(1_000_000.0)
    func advance(_ by: Double) { seconds.withLock { $0 += by } }
    var now: Double { seconds.withLock { $0 } }
}

/// Lines as the dispatcher writes them, numbered by the sink.
func numbered(_ text: String, from next: inout Int) -> [RetainedLine] {
    SequencedSink.number(Array(text.utf8), from: &next)
}

func result(_ index: Int, _ status: String = "ok") -> String {
    #"{"event":"result","id":"\#(index)","index":\#(index),"status":"\#(status)","value":null,"elapsed_ms":1.0,"done":1,"total":1}"# + "\n"
}

let endLine = #"{"event":"end","job":"j","total":1,"ok":1,"error":0,"timeout":0,"cancelled":0,"elapsed_ms":1.0}"# + "\n"

@Suite("Memory job store")
struct MemoryJobStoreTests {
    func makeStore(maxBytes: Int = 1 << 20, retention: Double = 60, clock: ManualClock = ManualClock()) -> MemoryJobStore {
        MemoryJobStore(maxBytes: maxBytes, retentionSeconds: retention, clock: { clock.now })
    }

    func create(_ store: MemoryJobStore, _ id: String, owner: String? = nil, key: String? = nil, total: Int = 1, onCancel: @escaping @Sendable () -> Void = {}) async {
        await store.create(NewRetainedJob(id: id, owner: owner, idempotencyKey: key, total: total, createdAt: 0, onCancel: onCancel))
    }

    @Test func sha256MatchesTheStandardVectors() {
        #expect(SHA256.hex([]) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(SHA256.hex(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))
            == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    }

    @Test func fingerprintIgnoresKeyOrderSpacingAndDeliveryFields() throws {
        let a = try JSONParser.parse(Array(#"{"tasks":[{"kind":"echo","value":{"b":1,"a":2}}],"concurrency":2}"#.utf8))
        let b = try JSONParser.parse(Array(#"{ "concurrency" : 2, "detach": true, "tasks" : [ {"value":{"a":2,"b":1},"kind":"echo"} ] }"#.utf8))
        let c = try JSONParser.parse(Array(#"{"tasks":[{"kind":"echo","value":{"b":1,"a":3}}],"concurrency":2}"#.utf8))
        #expect(JobFingerprint.of(a) == JobFingerprint.of(b))
        #expect(JobFingerprint.of(a) != JobFingerprint.of(c))
        #expect(JobFingerprint.of(a).count == 64)
    }

    @Test func sinkNumbersEveryLineFirstAndClassifiesIt() throws {
        var next = 1
        let text = result(0) + result(1, "timeout") + #"{"event":"heartbeat","done":2,"total":3,"elapsed_ms":5.0}"# + "\n" + result(2, "cancelled") + endLine
        let lines = numbered(text, from: &next)
        #expect(lines.map(\.seq) == [1, 2, 3, 4, 5])
        #expect(next == 6)
        #expect(lines.map(\.event) == [.result, .result, .heartbeat, .result, .end])
        #expect(lines.map(\.status) == [.ok, .timeout, nil, .cancelled, nil])
        for line in lines {
            #expect(line.bytes.starts(with: Array(#"{"seq":\#(line.seq),"event":""#.utf8)))
            #expect(line.bytes.last == UInt8(ascii: "\n"))
            let parsed = try JSONParser.parse(Array(line.bytes.dropLast()))
            #expect(parsed["seq"] == .number(Double(line.seq)))
        }
    }

    @Test func readsAfterACursorAndEndsAfterTheEndLine() async throws {
        let store = makeStore()
        await create(store, "j", total: 3)
        var next = 1
        await store.append("j", lines: numbered(result(0) + result(1, "error"), from: &next))
        let first = try await store.read("j", owner: nil, after: 0, maxLines: 10)
        #expect(first.lines.map(\.seq) == [1, 2])
        #expect(!first.ended)
        let limited = try await store.read("j", owner: nil, after: 0, maxLines: 1)
        #expect(limited.lines.map(\.seq) == [1])
        await store.append("j", lines: numbered(result(2) + endLine, from: &next))
        let rest = try await store.read("j", owner: nil, after: 2, maxLines: 10)
        #expect(rest.lines.map(\.seq) == [3, 4])
        #expect(rest.ended)
        let none = try await store.read("j", owner: nil, after: 4, maxLines: 10)
        #expect(none.lines.isEmpty && none.ended)
        let status = try #require(await store.status("j", owner: nil))
        #expect(status.state == .finished)
        #expect((status.ok, status.error, status.done, status.lastSeq) == (2, 1, 3, 4))
        #expect(status.expiresAt != nil && status.finishedAt != nil)
    }

    @Test func aWaitingReaderIsWokenByTheNextLine() async throws {
        let store = makeStore()
        await create(store, "j")
        let reader = Task { try await store.read("j", owner: nil, after: 0, maxLines: 10) }
        try await Task.sleep(for: .milliseconds(50))
        var next = 1
        await store.append("j", lines: numbered(result(0), from: &next))
        let read = try await reader.value
        #expect(read.lines.map(\.seq) == [1])
    }

    @Test func aCancelledReaderStopsWaiting() async throws {
        let store = makeStore()
        await create(store, "j")
        let reader = Task { try await store.read("j", owner: nil, after: 0, maxLines: 10) }
        try await Task.sleep(for: .milliseconds(50))
        reader.cancel()
        await #expect(throws: CancellationError.self) { try await reader.value }
    }

    @Test func aFullStoreMakesTheAppendWaitUntilADeleteFreesRoom() async throws {
        var next = 1
        let filler = numbered(result(0) + endLine, from: &next)
        let fillerBytes = filler.reduce(0) { $0 + $1.bytes.count + RetainedLine.overheadBytes }
        let store = makeStore(maxBytes: fillerBytes + 100)
        await create(store, "old")
        await store.append("old", lines: filler)
        await create(store, "new")
        var newNext = 1
        let lines = numbered(result(0) + endLine, from: &newNext)
        let appended = Task { await store.append("new", lines: lines) }
        try await Task.sleep(for: .milliseconds(100))
        #expect(await store.status("new", owner: nil)?.lastSeq == 0)
        #expect(await store.delete("old", owner: nil) == .deleted)
        await appended.value
        let read = try await store.read("new", owner: nil, after: 0, maxLines: 10)
        #expect(read.lines == lines)
        #expect(read.ended)
        #expect(store.usage().bytes == fillerBytes)
    }

    @Test func expiredJobsGoFirstWhenFull() async throws {
        let clock = ManualClock()
        var next = 1
        let filler = numbered(result(0) + endLine, from: &next)
        let fillerBytes = filler.reduce(0) { $0 + $1.bytes.count + RetainedLine.overheadBytes }
        let store = makeStore(maxBytes: fillerBytes + 100, retention: 10, clock: clock)
        await create(store, "old")
        await store.append("old", lines: filler)
        clock.advance(11)
        await create(store, "new")
        var newNext = 1
        await store.append("new", lines: numbered(result(0) + endLine, from: &newNext))
        #expect(await store.status("old", owner: nil) == nil)
        #expect(await store.status("new", owner: nil)?.state == .finished)
    }

    @Test func expiryForgetsAJobAndItsKey() async throws {
        let clock = ManualClock()
        let store = makeStore(retention: 10, clock: clock)
        #expect(await store.claim(key: "k", fingerprint: "f", owner: nil) == .claimed)
        await create(store, "j", key: "k")
        var next = 1
        await store.append("j", lines: numbered(result(0) + endLine, from: &next))
        clock.advance(5)
        #expect(await store.expire() == 0)
        #expect(await store.status("j", owner: nil) != nil)
        clock.advance(6)
        #expect(await store.status("j", owner: nil) == nil)
        await #expect(throws: JobStoreError.self) { try await store.read("j", owner: nil, after: 0, maxLines: 1) }
        #expect(await store.expire() == 1)
        #expect(store.usage() == JobStoreUsage())
        #expect(await store.claim(key: "k", fingerprint: "other", owner: nil) == .claimed)
    }

    @Test func idempotencyKeysAreClaimedOnceAndScopedPerOwner() async {
        let store = makeStore()
        #expect(await store.claim(key: "k", fingerprint: "f", owner: "alice") == .claimed)
        #expect(await store.claim(key: "k", fingerprint: "f", owner: "alice") == .inProgress)
        #expect(await store.claim(key: "k", fingerprint: "g", owner: "alice") == .mismatch)
        #expect(await store.claim(key: "k", fingerprint: "g", owner: "bob") == .claimed)
        await create(store, "j", owner: "alice", key: "k")
        #expect(await store.claim(key: "k", fingerprint: "f", owner: "alice") == .existing(jobID: "j"))
        #expect(await store.claim(key: "k", fingerprint: "g", owner: "alice") == .mismatch)
        await store.releaseClaim(key: "k", owner: "bob")
        #expect(await store.claim(key: "k", fingerprint: "h", owner: "bob") == .claimed)
    }

    @Test func otherOwnersSeeNothing() async throws {
        let store = makeStore()
        await create(store, "j", owner: "alice")
        #expect(await store.status("j", owner: "bob") == nil)
        #expect(await store.list(owner: "bob", state: nil).isEmpty)
        #expect(await store.delete("j", owner: "bob") == .notFound)
        #expect(await store.requestCancel("j", owner: "bob") == nil)
        await #expect(throws: JobStoreError.self) { try await store.read("j", owner: "bob", after: 0, maxLines: 1) }
        #expect(await store.list(owner: "alice", state: .running).map(\.job) == ["j"])
    }

    @Test func deleteRefusesARunningJobAndCancelCallsTheRunner() async throws {
        final class Calls: Sendable { let count = Locked(0) }
        let calls = Calls()
        let store = makeStore()
        await create(store, "j") { calls.count.withLock { $0 += 1 } }
        #expect(await store.delete("j", owner: nil) == .running)
        #expect(await store.requestCancel("j", owner: nil)?.state == .running)
        #expect(calls.count.withLock { $0 } == 1)
        var next = 1
        await store.append("j", lines: numbered(result(0, "cancelled") + endLine, from: &next))
        #expect(await store.waitUntilEnded("j", owner: nil, limit: .seconds(5))?.cancelled == 1)
        #expect(await store.requestCancel("j", owner: nil)?.state == .finished)
        #expect(calls.count.withLock { $0 } == 1)
        #expect(await store.delete("j", owner: nil) == .deleted)
        #expect(await store.status("j", owner: nil) == nil)
    }

    @Test func listsNewestFirstAndFiltersByState() async {
        let store = makeStore()
        await create(store, "a")
        await create(store, "b")
        await create(store, "c")
        var next = 1
        await store.append("b", lines: numbered(result(0) + endLine, from: &next))
        #expect(await store.list(owner: nil, state: nil).map(\.job) == ["c", "b", "a"])
        #expect(await store.list(owner: nil, state: .running).map(\.job) == ["c", "a"])
        #expect(await store.list(owner: nil, state: .finished).map(\.job) == ["b"])
    }
}
