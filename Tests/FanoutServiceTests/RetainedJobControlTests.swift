import FanoutCore
import FanoutJobs
import MicroHTTPServer
import Logging
import ServiceTestSupport
import TestSupport
import Testing

@testable import FanoutService

@Suite("Retained jobs: idempotency, cancel, delete, expiry, auth, bounds, drain")
struct RetainedJobControlTests {
    static func post(_ body: String, port: Int, headers: [(String, String)]) async throws -> HTTPExchange {
        try await HTTPExchange.send(port: port, method: "POST", path: "/v1/jobs", headers: [("Content-Type", "application/json")] + headers, body: body)
    }

    /// A retry needs no slot: while the one slot is taken, a keyed retry of a job made already is
    /// replayed, a keyed POST of a new job is refused 503 without claiming its key, and an unkeyed
    /// POST is refused on its head as before.
    @Test func aKeyedRetryIsReplayedWhileTheServerIsSaturated() async throws {
        try await withService({ $0.limits.maxConcurrentJobs = 1 }) { service, port in
            let job = #"{"detach":true,"tasks":[{"kind":"echo","delay_ms":60000}]}"#
            let made = try await Self.post(job, port: port, headers: [("Idempotency-Key", "slow-1")])
            #expect(made.head.status == 202)
            let id = try #require(try JSONParser.parse(made.body)["job"]?.stringValue)
            #expect(service.admission.running == 1)

            let retried = try await Self.post(job, port: port, headers: [("Idempotency-Key", "slow-1")])
            #expect(retried.head.status == 202)
            #expect(try JSONParser.parse(retried.body)["job"] == .string(id))
            #expect(retried.head.header("Idempotent-Replayed") == "true")

            let fresh = #"{"detach":true,"tasks":[{"kind":"echo","value":1}]}"#
            let refused = try await Self.post(fresh, port: port, headers: [("Idempotency-Key", "new-1")])
            #expect(refused.head.status == 503)
            #expect(try problem(refused)["type"]?.stringValue?.hasSuffix("saturated") == true)
            let unkeyed = try await Self.post(fresh, port: port, headers: [])
            #expect(unkeyed.head.status == 503)

            // Once the slot is free, the refused key makes its job: it was never claimed.
            let cancelled = try await HTTPExchange.send(port: port, method: "POST", path: "/v1/jobs/\(id)/cancel")
            #expect(cancelled.head.status == 200)
            #expect(await eventually(within: .seconds(5)) { service.admission.running == 0 })
            let later = try await Self.post(fresh, port: port, headers: [("Idempotency-Key", "new-1")])
            #expect(later.head.status == 202)
            #expect(later.head.header("Idempotent-Replayed") == nil)
        }
    }

    @Test func anIdempotentRetryRunsEachHTTPSubtaskOnce() async throws {
        let upstream = try CountingUpstream()
        defer { Task { [server = upstream.server] in await server.shutdown() } }
        try await withService({ $0.egress.allow = ["127.0.0.1"] }) { service, port in
            let base = "http://127.0.0.1:\(upstream.port)"
            let job = #"{"tasks":[{"kind":"http","url":"\#(base)/a/150"},{"kind":"http","method":"POST","url":"\#(base)/b/50","body":"pay"},{"kind":"http","url":"\#(base)/c/0"}]}"#
            let key = [("Idempotency-Key", "order-42")]
            let first = try await Self.post("{\"detach\":true," + job.dropFirst(), port: port, headers: key)
            #expect(first.head.status == 202)
            let id = try #require(try JSONParser.parse(first.body)["job"]?.stringValue)

            // The same body (other spacing) detached again: the same job, nothing new runs.
            let again = try await Self.post("{ \"detach\": true, " + job.dropFirst(), port: port, headers: key)
            #expect(again.head.status == 202)
            #expect(try JSONParser.parse(again.body)["job"] == .string(id))
            #expect(again.head.header("Idempotent-Replayed") == "true")

            // A streamed retry: the lines from seq 1, following live to the end.
            let connection = try await RawConnection.connect(port: port)
            defer { connection.close() }
            try await connection.send(RawRequest.job(job, extraHeaders: key))
            let head = try await connection.readHead()
            #expect(head.status == 200)
            #expect(head.header("X-Job-Id") == id)
            var lines: [JSONValue] = []
            while let line = try await connection.readLine(head) { lines.append(try JSONParser.parse(Array(line.utf8))) }
            checkContiguous(lines, from: 1)
            #expect(lines.filter { $0["status"] == .string("ok") }.count == 3)
            #expect(lines.last?["event"] == .string("end"))

            #expect(upstream.count("/a/150") == 1)
            #expect(upstream.count("/b/50") == 1)
            #expect(upstream.count("/c/0") == 1)

            // The same key with another job: 422, and still nothing ran again.
            let other = try await Self.post(#"{"tasks":[{"kind":"echo"}]}"#, port: port, headers: key)
            #expect(other.head.status == 422)
            #expect(try problem(other)["field"] == .string("Idempotency-Key"))
            #expect(upstream.total == 3)

            let badKey = try await Self.post(job, port: port, headers: [("Idempotency-Key", "")])
            #expect(badKey.head.status == 400)

            let exposition = try await HTTPExchange.send(port: port, method: "GET", path: "/metrics").text
            #expect(metric(exposition, "fanout_idempotent_replays_total") == 2)
            #expect(metric(exposition, "fanout_retained_jobs") == 1)
            #expect((metric(exposition, "fanout_retained_bytes") ?? 0) > 0)
            #expect(service.retainedJobs.store.usage().jobs == 1)
        }
    }

    @Test func cancelEndsWhatRunsWithCancelledLinesAndTheEndLine() async throws {
        try await withService { _, port in
            let (_, status) = try await detach(#"{"tasks":[{"kind":"echo","delay_ms":10},{"kind":"echo","delay_ms":30000},{"kind":"echo","delay_ms":30000}]}"#, port: port)
            let id = try #require(status["job"]?.stringValue)
            let cancel = try await HTTPExchange.send(port: port, method: "POST", path: "/v1/jobs/\(id)/cancel")
            #expect(cancel.head.status == 200)
            let document = try JSONParser.parse(cancel.body)
            #expect(document["state"] == .string("finished"))
            #expect(document["done"] == .number(3))
            let lines = try await readEvents(id, port: port).map(\.json)
            checkContiguous(lines, from: 1)
            let cancelled = lines.filter { $0["status"] == .string("cancelled") }
            #expect(cancelled.count + Int(document["ok"]?.numberValue ?? 0) == 3)
            #expect(cancelled.count >= 2)
            #expect(cancelled.allSatisfy { $0["error"]?["message"] == .string("cancelled by request") })
            #expect(lines.last?["event"] == .string("end"))
            #expect(try await HTTPExchange.send(port: port, method: "POST", path: "/v1/jobs/nope/cancel").head.status == 404)
        }
    }

    @Test func deleteIsRefusedWhileRunningThenForgetsTheJob() async throws {
        try await withService { _, port in
            let (_, status) = try await detach(#"{"tasks":[{"kind":"echo","delay_ms":300}]}"#, port: port)
            let id = try #require(status["job"]?.stringValue)
            let early = try await HTTPExchange.send(port: port, method: "DELETE", path: "/v1/jobs/\(id)")
            #expect(early.head.status == 409)
            _ = try problem(early)
            _ = try await readEvents(id, port: port)
            #expect(try await statusCode("DELETE", "/v1/jobs/\(id)", port: port) == 204)
            #expect(try await getJSON("/v1/jobs/\(id)", port: port).status == 404)
            #expect(try await HTTPExchange.send(port: port, method: "GET", path: "/v1/jobs/\(id)/events").head.status == 404)
            #expect(try await HTTPExchange.send(port: port, method: "DELETE", path: "/v1/jobs/\(id)").head.status == 404)
        }
    }

    @Test func aJobExpiresAfterItsRetention() async throws {
        try await withService({ $0.jobs.retentionSeconds = 1 }) { _, port in
            let (_, status) = try await detach(#"{"tasks":[{"kind":"echo","value":1}]}"#, port: port)
            let id = try #require(status["job"]?.stringValue)
            _ = try await readEvents(id, port: port)
            #expect(try await getJSON("/v1/jobs/\(id)", port: port).status == 200)
            var gone = false
            for _ in 0..<100 where !gone {
                try await Task.sleep(for: .milliseconds(100))
                gone = try await getJSON("/v1/jobs/\(id)", port: port).status == 404
            }
            #expect(gone)
        }
    }

    @Test func withAuthAJobBelongsToTheTokenThatMadeIt() async throws {
        try await withService({ $0.auth.tokens = ["alice-token", "bob-token"] }) { _, port in
            let alice = [("Authorization", "Bearer alice-token")]
            let bob = [("Authorization", "Bearer bob-token")]
            let (_, status) = try await detach(#"{"tasks":[{"kind":"echo","delay_ms":100}]}"#, port: port, headers: alice)
            let id = try #require(status["job"]?.stringValue)
            #expect(try await getJSON("/v1/jobs/\(id)", port: port, headers: alice).status == 200)
            #expect(try await getJSON("/v1/jobs/\(id)", port: port, headers: bob).status == 404)
            #expect(try await getJSON("/v1/jobs/\(id)", port: port).status == 401)
            for (method, path) in [("GET", "/v1/jobs/\(id)/events"), ("POST", "/v1/jobs/\(id)/cancel"), ("DELETE", "/v1/jobs/\(id)")] {
                #expect(try await HTTPExchange.send(port: port, method: method, path: path, headers: bob).head.status == 404)
            }
            #expect(try await getJSON("/v1/jobs", port: port, headers: bob).json?["jobs"] == .array([]))
            let listed = try await getJSON("/v1/jobs", port: port, headers: alice).json?["jobs"]
            guard case .array(let jobs)? = listed else {
                Issue.record("no job list")
                return
            }
            #expect(jobs.map { $0["job"] } == [.string(id)])
            // Keys are per token: bob's "k" is not alice's "k".
            let job = #"{"detach":true,"tasks":[{"kind":"echo"}]}"#
            let aliceKeyed = try await Self.post(job, port: port, headers: alice + [("Idempotency-Key", "k")])
            let bobKeyed = try await Self.post(job, port: port, headers: bob + [("Idempotency-Key", "k")])
            #expect(aliceKeyed.head.status == 202 && bobKeyed.head.status == 202)
            #expect(try JSONParser.parse(aliceKeyed.body)["job"] != JSONParser.parse(bobKeyed.body)["job"])
        }
    }

    @Test func listIsNewestFirstAndFiltersByState() async throws {
        try await withService { _, port in
            let (_, quick) = try await detach(#"{"tasks":[{"kind":"echo"}]}"#, port: port)
            let quickID = try #require(quick["job"]?.stringValue)
            _ = try await readEvents(quickID, port: port)
            let (_, slow) = try await detach(#"{"tasks":[{"kind":"echo","delay_ms":30000}]}"#, port: port)
            let slowID = try #require(slow["job"]?.stringValue)
            func ids(_ query: String) async throws -> [String] {
                guard case .array(let jobs)? = try await getJSON("/v1/jobs\(query)", port: port).json?["jobs"] else { return [] }
                return jobs.compactMap { $0["job"]?.stringValue }
            }
            #expect(try await ids("") == [slowID, quickID])
            #expect(try await ids("?state=running") == [slowID])
            #expect(try await ids("?state=finished") == [quickID])
        }
    }

    @Test func aFullStoreMakesTheJobWaitAndLosesNothing() async throws {
        // The first job's lines (about 2,300 bytes with the per-line overhead) take most of the
        // store; the second cannot store all of its own until the first is deleted, then finishes
        // with every line.
        let value = String(repeating: "v", count: 100)
        let eight = (0..<8).map { #"{"kind":"echo","delay_ms":\#($0 * 5),"value":"\#(value)"}"# }.joined(separator: ",")
        try await withService({ $0.jobs.maxRetainedBytes = 3000 }) { service, port in
            let (_, first) = try await detach(#"{"tasks":[\#(eight)]}"#, port: port)
            let firstID = try #require(first["job"]?.stringValue)
            _ = try await readEvents(firstID, port: port)
            let held = service.retainedJobs.store.usage().bytes
            #expect(held > 1500 && held <= 3000)

            let (_, second) = try await detach(#"{"tasks":[\#(eight)]}"#, port: port)
            let secondID = try #require(second["job"]?.stringValue)
            try await Task.sleep(for: .milliseconds(500))
            let waiting = try await getJSON("/v1/jobs/\(secondID)", port: port).json
            #expect(waiting?["state"] == .string("running"))
            #expect((waiting?["last_seq"]?.numberValue ?? 99) < 9)

            #expect(try await statusCode("DELETE", "/v1/jobs/\(firstID)", port: port) == 204)
            let lines = try await readEvents(secondID, port: port).map(\.json)
            checkContiguous(lines, from: 1)
            #expect(lines.filter { $0["status"] == .string("ok") }.count == 8)
            #expect(lines.last?["event"] == .string("end"))
        }
    }
}

@Suite("Retained jobs: drain")
struct RetainedJobDrainTests {
    @Test func sigtermDrainEndsADetachedJobWithCancelledLinesAndTheEndLine() async throws {
        var configuration = FanoutConfiguration()
        configuration.server.port = 0
        configuration.server.adminPort = 0
        configuration.shutdown.graceSeconds = 1
        let service = FanoutService(configuration: configuration, logger: .init(label: "test"))
        try service.start()
        let port = try #require(service.port)
        let serving = Task { await service.serve() }

        let (_, status) = try await detach(#"{"tasks":[{"kind":"echo","delay_ms":50},{"kind":"echo","delay_ms":30000}]}"#, port: port)
        let id = try #require(status["job"]?.stringValue)
        let reader = Task { try await readEvents(id, port: port).map(\.json) }
        try await Task.sleep(for: .milliseconds(200))
        await service.drain()
        await serving.value

        let lines = try await reader.value
        checkContiguous(lines, from: 1)
        #expect(lines.filter { $0["event"] == .string("result") }.count == 2)
        let cancelled = lines.filter { $0["status"] == .string("cancelled") }
        #expect(cancelled.count == 1)
        #expect(cancelled.first?["error"]?["message"] == .string("the server is shutting down"))
        #expect(lines.last?["event"] == .string("end"))
        #expect(service.admission.running == 0)
        #expect(await service.retainedJobs.store.status(id, owner: nil)?.state == .finished)
    }
}
