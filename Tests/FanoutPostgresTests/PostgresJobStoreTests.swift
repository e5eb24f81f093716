import FanoutCore
import FanoutJobs
import FanoutSync
import Logging
import PostgresNIO
import Testing

@testable import FanoutPostgres

func numbered(_ text: String, from next: inout Int) -> [RetainedLine] {
    SequencedSink.number(Array(text.utf8), from: &next)
}

func result(_ index: Int, _ status: String = "ok", total: Int = 3) -> String {
    #"{"event":"result","id":"t\#(index)","index":\#(index),"status":"\#(status)","value":null,"elapsed_ms":1.0,"done":1,"total":\#(total)}"# + "\n"
}

func endLine(_ job: String) -> String {
    #"{"event":"end","job":"\#(job)","total":3,"ok":3,"error":0,"timeout":0,"cancelled":0,"elapsed_ms":1.0}"# + "\n"
}

func newJob(_ id: String, owner: String? = nil, key: String? = nil, total: Int = 3, onCancel: @escaping @Sendable () -> Void = {}) -> NewRetainedJob {
    NewRetainedJob(id: id, owner: owner, idempotencyKey: key, total: total, taskIDs: (0..<total).map { "t\($0)" }, onCancel: onCancel)
}

/// Reads everything after `after` up to the end line, as one reader would.
func readAll(_ store: PostgresJobStore, _ id: String, owner: String? = nil, after: Int = 0) async throws -> [RetainedLine] {
    var lines: [RetainedLine] = []
    var after = after
    while true {
        let read = try await store.read(id, owner: owner, after: after, maxLines: 2)
        lines += read.lines
        after = read.lines.last?.seq ?? after
        if read.ended { return lines }
    }
}

/// Polls `condition` for up to `seconds` (generous: the machine is loaded). No timing is asserted.
func eventually(_ seconds: Double = 20, _ condition: @Sendable () async -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    while ContinuousClock.now < deadline {
        if await condition() { return true }
        try? await Task.sleep(for: .milliseconds(50))
    }
    return await condition()
}

@Suite("PostgreSQL job store", .serialized, .enabled(PostgresTestDatabase.skipMessage) { await PostgresTestDatabase.reachable.value })
struct PostgresJobStoreTests {
    @Test func linesAreStoredInBatchesAndReadByCursor() async throws {
        let schema = PostgresTestDatabase.makeSchema()
        let store = try await PostgresTestDatabase.store(schema: schema, retention: 60)
        await store.create(newJob("j1"))
        var next = 1
        await store.append("j1", lines: numbered(result(0) + #"{"event":"heartbeat","done":1,"total":3,"elapsed_ms":5.0}"# + "\n", from: &next))
        var status = try #require(await store.status("j1", owner: nil))
        #expect(status.state == .running && status.ok == 1 && status.lastSeq == 2 && status.expiresAt == nil)
        await store.append("j1", lines: numbered(result(1, "error") + result(2, "timeout") + endLine("j1"), from: &next))
        let all = try await readAll(store, "j1")
        #expect(all.map(\.seq) == [1, 2, 3, 4, 5])
        #expect(all.map(\.event) == [.result, .heartbeat, .result, .result, .end])
        #expect(String(decoding: all[0].bytes, as: UTF8.self).hasPrefix(#"{"seq":1,"event":"result","id":"t0""#))
        let rest = try await store.read("j1", owner: nil, after: 3, maxLines: 10)
        #expect(rest.lines.map(\.seq) == [4, 5] && rest.ended)
        status = try #require(await store.status("j1", owner: nil))
        #expect(status.state == .finished && status.ok == 1 && status.error == 1 && status.timeout == 1 && status.lastSeq == 5)
        #expect(status.expiresAt != nil && status.finishedAt != nil)
        // An append sent again (its answer lost) changes nothing.
        var again = 3
        await store.append("j1", lines: numbered(result(1, "error"), from: &again))
        #expect(try #require(await store.status("j1", owner: nil)).error == 1)
        await store.stop()
        await PostgresTestDatabase.dropSchema(schema)
    }

    @Test func aReaderOnAnotherReplicaIsWokenByTheAppend() async throws {
        let schema = PostgresTestDatabase.makeSchema()
        let a = try await PostgresTestDatabase.store(schema: schema)
        let b = try await PostgresTestDatabase.store(schema: schema)
        await a.create(newJob("j2", total: 1))
        let reader = Task { try await readAll(b, "j2") }
        try await Task.sleep(for: .milliseconds(300))
        var next = 1
        await a.append("j2", lines: numbered(result(0, total: 1), from: &next))
        await a.append("j2", lines: numbered(endLine("j2"), from: &next))
        let lines = try await reader.value
        #expect(lines.map(\.seq) == [1, 2] && lines.last?.event == .end)
        #expect(try #require(await b.status("j2", owner: nil)).state == .finished)
        await a.stop()
        await b.stop()
        await PostgresTestDatabase.dropSchema(schema)
    }

    @Test func onlyOneReplicaClaimsAKeyEvenAtOnce() async throws {
        let schema = PostgresTestDatabase.makeSchema()
        let a = try await PostgresTestDatabase.store(schema: schema)
        let b = try await PostgresTestDatabase.store(schema: schema)
        async let first = a.claim(key: "k", fingerprint: "f", owner: "o")
        async let second = b.claim(key: "k", fingerprint: "f", owner: "o")
        let claims = await [first, second]
        #expect(claims.filter { $0 == .claimed }.count == 1)
        #expect(claims.contains(.inProgress))
        await a.create(newJob("j3", owner: "o", key: "k"))
        #expect(await b.claim(key: "k", fingerprint: "f", owner: "o") == .existing(jobID: "j3"))
        #expect(await b.claim(key: "k", fingerprint: "other", owner: "o") == .mismatch)
        // Scoped by owner: another token's same key is a new key.
        #expect(await b.claim(key: "k", fingerprint: "f", owner: "p") == .claimed)
        await b.releaseClaim(key: "k", owner: "p")
        #expect(await a.claim(key: "k", fingerprint: "g", owner: "p") == .claimed)
        await a.stop()
        await b.stop()
        await PostgresTestDatabase.dropSchema(schema)
    }

    @Test func aCancelAskedOnAnotherReplicaReachesTheRunningOne() async throws {
        let schema = PostgresTestDatabase.makeSchema()
        let a = try await PostgresTestDatabase.store(schema: schema)
        let b = try await PostgresTestDatabase.store(schema: schema)
        let cancelled = Locked(0)
        await a.create(newJob("j4") { cancelled.withLock { $0 += 1 } })
        let status = try #require(await b.requestCancel("j4", owner: nil))
        #expect(status.state == .running)
        #expect(await eventually { cancelled.withLock { $0 } == 1 })
        #expect(await b.requestCancel("nope", owner: nil) == nil)
        await a.stop()
        await b.stop()
        await PostgresTestDatabase.dropSchema(schema)
    }

    @Test func aLapsedLeaseEndsTheJobInterruptedExactlyOnce() async throws {
        let schema = PostgresTestDatabase.makeSchema()
        let dead = try await PostgresTestDatabase.store(schema: schema, lease: 1)
        await dead.create(newJob("j5"))
        var next = 1
        await dead.append("j5", lines: numbered(result(1), from: &next))
        await dead.stop()  // stops renewing, as a killed replica does
        let b = try await PostgresTestDatabase.store(schema: schema, lease: 1)
        let c = try await PostgresTestDatabase.store(schema: schema, lease: 1)
        try await Task.sleep(for: .milliseconds(1300))
        // Race the two explicitly (their lease loops may also be at it): one transaction decides.
        async let byB = (try? await b.interrupt("j5")) ?? false
        async let byC = (try? await c.interrupt("j5")) ?? false
        let winners = await [byB, byC].filter { $0 }.count
        #expect(winners <= 1)
        #expect(await eventually { await b.status("j5", owner: nil)?.state == .interrupted })
        let lines = try await readAll(c, "j5")
        #expect(lines.map(\.seq) == [1, 2, 3, 4])
        let texts = lines.map { String(decoding: $0.bytes, as: UTF8.self) }
        #expect(texts[1].contains(#""id":"t0","index":0,"status":"cancelled","error":{"code":"interrupted""#))
        #expect(texts[2].contains(#""id":"t2","index":2,"status":"cancelled","error":{"code":"interrupted""#))
        #expect(texts[3].hasPrefix(#"{"seq":4,"event":"end","job":"j5","total":3,"ok":1,"error":0,"timeout":0,"cancelled":2"#))
        let status = try #require(await c.status("j5", owner: nil))
        #expect(status.state == .interrupted && status.ok == 1 && status.cancelled == 2 && status.lastSeq == 4)
        #expect(try await b.interrupt("j5") == false)
        await b.stop()
        await c.stop()
        await PostgresTestDatabase.dropSchema(schema)
    }

    @Test func ownersDeleteListAndExpiry() async throws {
        let schema = PostgresTestDatabase.makeSchema()
        let store = try await PostgresTestDatabase.store(schema: schema, retention: 1)
        await store.create(newJob("mine", owner: "o", total: 1))
        await store.create(newJob("theirs", owner: "p", total: 1))
        #expect(await store.status("mine", owner: "p") == nil)
        await #expect(throws: JobStoreError.self) { try await store.read("mine", owner: "p", after: 0, maxLines: 1) }
        #expect(await store.list(owner: "o", state: nil).map(\.job) == ["mine"])
        #expect(await store.delete("mine", owner: "o") == .running)
        var next = 1
        await store.append("mine", lines: numbered(result(0, total: 1) + endLine("mine"), from: &next))
        #expect(await store.list(owner: "o", state: .running).isEmpty)
        #expect(await store.list(owner: "o", state: .finished).map(\.job) == ["mine"])
        #expect(await store.delete("mine", owner: "p") == .notFound)
        #expect(await store.delete("mine", owner: "o") == .deleted)
        #expect(await store.status("mine", owner: "o") == nil)
        var other = 1
        await store.append("theirs", lines: numbered(endLine("theirs"), from: &other))
        try await Task.sleep(for: .milliseconds(1100))
        #expect(await store.status("theirs", owner: "p") == nil)
        #expect(await store.expire() == 1)
        await store.stop()
        await PostgresTestDatabase.dropSchema(schema)
    }

    @Test func theMigrationIsIdempotentAcrossReplicasStartingTogether() async throws {
        let schema = PostgresTestDatabase.makeSchema()
        async let a = PostgresTestDatabase.store(schema: schema)
        async let b = PostgresTestDatabase.store(schema: schema)
        let stores = try await [a, b]
        let versions = try await stores[0].query({ client, schema in
            try await client.query("select version from \(unescaped: schema).fanout_schema_version")
        }, decode: { rows in
            var out: [Int] = []
            for try await version in rows.decode(Int.self) { out.append(version) }
            return out
        })
        #expect(versions == [PostgresSchema.version])
        for store in stores { await store.stop() }
        await PostgresTestDatabase.dropSchema(schema)
    }
}

@Suite("PostgreSQL store URL")
struct PostgresURLTests {
    @Test func parsesTheURL() throws {
        let url = try PostgresURL("postgres://app:p%40ss@db.internal:6432/fanout?sslmode=require&schema=fanout_a")
        #expect(url.host == "db.internal" && url.port == 6432 && url.username == "app" && url.password == "p@ss")
        #expect(url.database == "fanout" && url.sslMode == "require" && url.schema == "fanout_a")
        let plain = try PostgresURL("postgresql://127.0.0.1/x")
        #expect(plain.port == 5432 && plain.username == "postgres" && plain.password == nil && plain.sslMode == "prefer")
    }

    @Test func refusesWhatItCannotUse() {
        #expect(throws: PostgresURL.Invalid.self) { try PostgresURL("mysql://x/y") }
        #expect(throws: PostgresURL.Invalid.self) { try PostgresURL("postgres://h:99999/d") }
        #expect(throws: PostgresURL.Invalid.self) { try PostgresURL("postgres://h/d?sslmode=sometimes") }
        #expect(throws: PostgresURL.Invalid.self) { try PostgresURL("postgres://h/d?schema=Robert;drop") }
        #expect(throws: PostgresURL.Invalid.self) { try PostgresURL("postgres://h/d?pool=3") }
    }

    @Test func redactsThePassword() {
        #expect(PostgresURL.redacted("postgres://app:secret@db:5432/f?sslmode=require") == "postgres://app:***@db:5432/f?sslmode=require")
        #expect(PostgresURL.redacted("postgres://app@db/f") == "postgres://app@db/f")
    }

    @Test func anUnreachableDatabaseFailsTheStart() async throws {
        // Port 1 on loopback: refused at once, nothing leaves the machine.
        let store = try PostgresJobStore(settings: .init(url: try PostgresURL("postgres://postgres@127.0.0.1:1/x?sslmode=disable")), logger: Logger(label: "test"))
        await #expect(throws: (any Error).self) { try await store.start(limit: .seconds(3)) }
    }
}
