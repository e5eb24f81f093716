import FanoutCore
import FanoutSync
import Logging
import PostgresNIO
import ServiceTestSupport
import TestSupport
@testable import FanoutPostgres
import Testing

@testable import FanoutService

/// Two fanoutd services ("replicas") on one PostgreSQL schema, through real sockets: a job
/// submitted on one is read, replayed, cancelled, listed and deleted from the other.
@Suite("Replicas on PostgreSQL", .serialized, .enabled(PostgresTestDatabase.skipMessage) { await PostgresTestDatabase.reachable.value })
struct ReplicasOnPostgresTests {
    /// Runs `body` with two started services (``withService``) on a fresh schema, then drains both.
    func withReplicas(_ body: (_ a: Int, _ b: Int, _ schema: String) async throws -> Void) async throws {
        let schema = PostgresTestDatabase.makeSchema()
        let base = try #require(PostgresTestDatabase.url)
        let url = base + (base.contains("?") ? "&" : "?") + "schema=\(schema)"
        let shared: (inout FanoutConfiguration) -> Void = { configuration in
            configuration.jobs.store = url
            configuration.jobs.poolSize = 4
        }
        do {
            try await withService(shared) { _, a in
                try await withService(shared) { _, b in try await body(a, b, schema) }
            }
        } catch {
            await PostgresTestDatabase.dropSchema(schema)
            throw error
        }
        await PostgresTestDatabase.dropSchema(schema)
    }

    func send(_ port: Int, _ method: String, _ path: String, headers: [(String, String)] = [], body: String? = nil) async throws -> HTTPExchange {
        try await HTTPExchange.send(port: port, method: method, path: path, headers: body == nil ? headers : [("Content-Type", "application/json")] + headers, body: body)
    }

    /// The status of an answer that may have no body (204).
    func statusCode(_ port: Int, _ method: String, _ path: String) async throws -> Int {
        let connection = try await RawConnection.connect(port: port)
        defer { connection.close() }
        try await connection.send(RawRequest.text(method: method, path: path))
        return try await connection.readHead().status
    }

    func jobIDs(_ list: JSONValue) -> [String] {
        guard case .array(let jobs)? = list["jobs"] else { return [] }
        return jobs.compactMap { $0["job"]?.stringValue }
    }

    func lines(_ exchange: HTTPExchange) throws -> [JSONValue] {
        try exchange.text.split(separator: "\n").map { try JSONParser.parse(Array($0.utf8)) }
    }

    @Test func submitOnOneReadReplayAndDeleteOnTheOther() async throws {
        try await withReplicas { a, b, _ in
            let job = #"{"detach":true,"tasks":[{"id":"x","kind":"echo","delay_ms":50,"value":1},{"id":"y","kind":"echo","delay_ms":300,"error":"no"}]}"#
            let submitted = try await send(a, "POST", "/v1/jobs", headers: [("Idempotency-Key", "order-1")], body: job)
            #expect(submitted.head.status == 202)
            let id = try #require(try JSONParser.parse(submitted.body)["job"]?.stringValue)
            // Read on the other replica, live, to the end line.
            let events = try await send(b, "GET", "/v1/jobs/\(id)/events")
            #expect(events.head.status == 200)
            let read = try lines(events)
            #expect(read.compactMap { $0["seq"]?.numberValue } == [1, 2, 3])
            #expect(read.last?["event"]?.stringValue == "end")
            #expect(Set(read.prefix(2).compactMap { $0["id"]?.stringValue }) == ["x", "y"])
            // Resume after seq 1 on the first replica, as SSE with Last-Event-ID.
            let sse = try await send(a, "GET", "/v1/jobs/\(id)/events", headers: [("Accept", "text/event-stream"), ("Last-Event-ID", "1")])
            #expect(sse.text.hasPrefix("retry: 2000\n\nid: 2\n"))
            #expect(sse.text.contains("id: 3\nevent: end\n"))
            // The same key on the other replica: the same job, not run again.
            let replay = try await send(b, "POST", "/v1/jobs", headers: [("Idempotency-Key", "order-1")], body: job)
            #expect(replay.head.status == 202 && replay.head.header("Idempotent-Replayed") == "true")
            #expect(try JSONParser.parse(replay.body)["job"]?.stringValue == id)
            let other = try await send(b, "POST", "/v1/jobs", headers: [("Idempotency-Key", "order-1")], body: #"{"detach":true,"tasks":[{"kind":"echo"}]}"#)
            #expect(other.head.status == 422)
            let status = try await send(b, "GET", "/v1/jobs/\(id)")
            let document = try JSONParser.parse(status.body)
            #expect(document["state"]?.stringValue == "finished" && document["ok"]?.numberValue == 1 && document["error"]?.numberValue == 1)
            let listed = try JSONParser.parse(try await send(a, "GET", "/v1/jobs").body)
            #expect(jobIDs(listed) == [id])
            #expect(try await statusCode(b, "DELETE", "/v1/jobs/\(id)") == 204)
            #expect(try await send(a, "GET", "/v1/jobs/\(id)").head.status == 404)
        }
    }

    @Test func aCancelOnOneReplicaEndsTheJobRunningOnTheOther() async throws {
        try await withReplicas { a, b, _ in
            let job = #"{"detach":true,"tasks":[{"id":"quick","kind":"echo","value":0},{"id":"long","kind":"echo","delay_ms":60000,"value":1}]}"#
            let submitted = try await send(a, "POST", "/v1/jobs", body: job)
            let id = try #require(try JSONParser.parse(submitted.body)["job"]?.stringValue)
            let cancelled = try await send(b, "POST", "/v1/jobs/\(id)/cancel")
            #expect(cancelled.head.status == 200)
            let document = try JSONParser.parse(cancelled.body)
            #expect(document["state"]?.stringValue == "finished", "\(cancelled.text)")
            #expect(document["cancelled"]?.numberValue == 1 && document["ok"]?.numberValue == 1)
            let read = try lines(try await send(b, "GET", "/v1/jobs/\(id)/events"))
            #expect(read.contains { $0["id"]?.stringValue == "long" && $0["status"]?.stringValue == "cancelled" })
            #expect(read.last?["event"]?.stringValue == "end")
        }
    }

    @Test func twoReplicasGivenTheSameKeyAtOnceRunItOnce() async throws {
        try await withReplicas { a, b, _ in
            let job = #"{"detach":true,"tasks":[{"kind":"echo","delay_ms":200,"value":"charged"}]}"#
            async let first = send(a, "POST", "/v1/jobs", headers: [("Idempotency-Key", "pay-7")], body: job)
            async let second = send(b, "POST", "/v1/jobs", headers: [("Idempotency-Key", "pay-7")], body: job)
            let answers = try await [first, second]
            // One created it; the other replayed it, or was told the first is still being admitted.
            #expect(answers.filter { $0.head.status == 202 && $0.head.header("Idempotent-Replayed") == nil }.count == 1)
            #expect(answers.allSatisfy { $0.head.status == 202 || $0.head.status == 409 })
            let listed = try JSONParser.parse(try await send(b, "GET", "/v1/jobs").body)
            #expect(jobIDs(listed).count == 1)
        }
    }

    /// The database stops answering (another session holds an exclusive lock on the store's
    /// tables): new retained jobs get 503 with Retry-After, plain jobs still run, /readyz says so;
    /// the running job waits, and once the database answers again every one of its lines is there.
    @Test func whileTheDatabaseIsAwayRetainedJobsGet503AndPlainJobsRun() async throws {
        try await withReplicas { a, _, schema in
            let job = #"{"detach":true,"tasks":[{"id":"early","kind":"echo","value":1},{"id":"late","kind":"echo","delay_ms":1500,"value":2}]}"#
            let submitted = try await send(a, "POST", "/v1/jobs", body: job)
            let id = try #require(try JSONParser.parse(submitted.body)["job"]?.stringValue)
            let holder = try await PostgresTestDatabase.store(schema: "public")
            let release = Locked(false)
            let locked = Locked(false)
            let lock = Task {
                try await holder.client.withTransaction(logger: Logger(label: "lock")) { connection in
                    try await connection.query("lock table \(unescaped: schema).fanout_jobs, \(unescaped: schema).fanout_lines in access exclusive mode", logger: Logger(label: "lock"))
                    locked.withLock { $0 = true }
                    while !release.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(50)) }
                }
            }
            defer { release.withLock { $0 = true } }
            #expect(await eventually { locked.withLock { $0 } })
            #expect(await eventually(30) { (try? await send(a, "GET", "/readyz"))?.text.contains("jobs.store unavailable") == true })
            let refused = try await send(a, "POST", "/v1/jobs", body: job)
            #expect(refused.head.status == 503 && refused.head.header("Retry-After") != nil, "\(refused.text)")
            #expect(refused.text.contains("job-store-unavailable"))
            let plain = try await send(a, "POST", "/v1/jobs", body: #"{"tasks":[{"kind":"echo","value":"still here"}]}"#)
            #expect(plain.head.status == 200 && plain.text.contains("still here") && plain.text.contains(#""event":"end""#))
            release.withLock { $0 = true }
            try await lock.value
            await holder.stop()
            #expect(await eventually(30) { (try? await send(a, "GET", "/readyz"))?.text == "ready\n" })
            let read = try lines(try await send(a, "GET", "/v1/jobs/\(id)/events"))
            #expect(read.compactMap { $0["seq"]?.numberValue } == [1, 2, 3])
            #expect(Set(read.prefix(2).compactMap { $0["id"]?.stringValue }) == ["early", "late"] && read.last?["event"]?.stringValue == "end")
        }
    }
}

@Suite("PostgreSQL store at start")
struct PostgresStartTests {
    @Test func anUnreachableStoreStopsTheStartNamingTheKey() async throws {
        var configuration = FanoutConfiguration()
        configuration.server.port = 0
        configuration.jobs.store = "postgres://fanoutd:secret@127.0.0.1:1/fanout?sslmode=disable"
        let service = FanoutService(configuration: configuration, logger: Logger(label: "test"))
        do {
            try await service.connectStore()
            Issue.record("connectStore succeeded against a closed port")
        } catch {
            let text = "\(error)"
            #expect(text.hasPrefix("jobs.store: cannot reach PostgreSQL at postgres://fanoutd:***@127.0.0.1:1/fanout"), "\(text)")
            #expect(!text.contains("secret"))
        }
    }
}
