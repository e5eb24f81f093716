import FanoutCore
import FanoutService
import ServiceTestSupport
import Foundation
import TestSupport
import Testing

/// `fanout` as a subprocess against a real fanoutd on port 0.
@Suite("fanout CLI end to end")
struct CLIEndToEndTests {
    @Test("run JOB.json: NDJSON on a pipe, exit 1 for a non-ok line, no escape codes")
    func runFile() async throws {
        try await withService { _, port in
            let path = try temporaryFile(echoJob([(10, "one"), (20, nil), (30, "three")]))
            let result = try await fanout(["run", path, "--server", "http://127.0.0.1:\(port)"])
            #expect(result.status == 1, "\(result)")
            #expect(result.results.count == 3)
            #expect(result.results.map { $0["status"]?.stringValue } == ["ok", "error", "ok"])
            #expect(result.end?["ok"] == .number(2))
            #expect(result.end?["error"] == .number(1))
            // Retained (on_disconnect: continue): every line is numbered.
            #expect(result.lines.compactMap { $0["seq"]?.numberValue } == [1, 2, 3, 4])
            #expect(!result.stdout.contains("\u{1B}") && !result.stderr.contains("\u{1B}"))
            #expect(result.stderr.isEmpty, "no progress line and no summary off a terminal")
        }
    }

    @Test("run - from stdin, FANOUT_URL, all ok is exit 0; --output json and none; --summary")
    func runStdinModes() async throws {
        try await withService { _, port in
            let job = echoJob([(5, "a"), (5, "b")])
            let environment = ["FANOUT_URL": "http://127.0.0.1:\(port)"]
            let ndjson = try await fanout(["run", "-"], stdin: job, environment: environment)
            #expect(ndjson.status == 0, "\(ndjson)")
            #expect(ndjson.results.count == 2)

            let json = try await fanout(["run", "-", "--output", "json", "--summary"], stdin: job, environment: environment)
            #expect(json.status == 0, "\(json)")
            let document = try JSONParser.parse(Array(json.stdout.utf8))
            guard case .array(let results) = document["results"] ?? .null else {
                Issue.record("no results array: \(json)")
                return
            }
            #expect(results.count == 2)
            #expect(document["end"]?["event"] == .string("end"))
            #expect(document["job"]?.stringValue?.count == 32)
            #expect(json.stderr.contains("ok") && json.stderr.contains("slowest") && json.stderr.contains("total"), "\(json)")
            #expect(!json.stderr.contains("\u{1B}"))

            let none = try await fanout(["run", "-", "--output", "none"], stdin: job, environment: environment)
            #expect(none.status == 0)
            #expect(none.stdout.isEmpty)

            let table = try await fanout(["run", "-", "--output", "table"], stdin: job, environment: environment)
            #expect(table.status == 0)
            #expect(table.stdout.hasPrefix("STATUS"))
            #expect(table.stdout.split(separator: "\n").count == 3, "\(table)")
        }
    }

    @Test("get: URLs from stdin with -H, against a loopback upstream; a 404 is a non-ok line")
    func getFromStdin() async throws {
        try await withService({ $0.egress.allow = ["127.0.0.1"] }) { _, port in
            let base = "http://127.0.0.1:\(port)"
            let urls = "# probes\n\(base)/livez\n\n\(base)/healthz\n\(base)/no-such-page\n"
            let result = try await fanout(
                ["get", "--server", base, "-H", "X-Probe: cli", "--concurrency", "2", "--retries", "1",
                 "--task-timeout-ms", "5000", "--order", "input", "--summary"],
                stdin: urls
            )
            #expect(result.status == 1, "\(result)")
            #expect(result.results.map { $0["index"]?.numberValue } == [0, 1, 2], "order: input")
            #expect(result.results.map { $0["status"]?.stringValue } == ["ok", "ok", "error"])
            #expect(result.results[0]["value"]?["status"] == .number(200))
            #expect(result.results[2]["error"]?["code"] == .string("http_status"))
            #expect(result.stderr.contains("http_status"), "the summary's error codes: \(result)")
            #expect(result.stderr.contains("\(base)/no-such-page"), "the summary names subtasks by URL")
        }
    }

    @Test("exit 2: a problem+json answer as one message naming the field; usage errors; no server")
    func failures() async throws {
        try await withService { _, port in
            let base = "http://127.0.0.1:\(port)"
            let invalid = try await fanout(["run", "-", "--server", base], stdin: #"{"tasks":[{"kind":"echo","delay_ms":-5}]}"#)
            #expect(invalid.status == 2, "\(invalid)")
            #expect(invalid.stdout.isEmpty)
            let message = invalid.stderr.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(message.hasPrefix("fanout: "), "\(invalid)")
            #expect(message.contains("(400)") && message.contains("[field: "), "\(invalid)")
            #expect(!message.contains("\n"), "one line")

            let notJSON = try await fanout(["run", "-", "--server", base], stdin: "{nope")
            #expect(notJSON.status == 2)
            #expect(notJSON.stderr.contains("not JSON"))

            let noURLs = try await fanout(["get", "--server", base], stdin: "\n# nothing\n")
            #expect(noURLs.status == 2, "\(noURLs)")
            #expect(noURLs.stderr.contains("no URLs"))

            let badHeader = try await fanout(["get", "-H", "no-colon", "http://127.0.0.1:1/"])
            #expect(badHeader.status == 2)
            let unknownFlag = try await fanout(["get", "--bogus"])
            #expect(unknownFlag.status == 2)

            let unknownJob = try await fanout(["status", String(repeating: "0", count: 32), "--server", base])
            #expect(unknownJob.status == 2)
            #expect(unknownJob.stderr.contains("(404)"), "\(unknownJob)")
        }
        // Nothing listens: the submission is retried until --resume-timeout, then a clear message.
        let closedPort = try await withService { _, port in port }
        let refused = try await fanout(["run", "-", "--server", "http://127.0.0.1:\(closedPort)", "--resume-timeout", "1"], stdin: echoJob([(0, "x")]))
        #expect(refused.status == 2, "\(refused)")
        #expect(refused.stderr.contains("could not submit the job"), "\(refused)")
    }

    @Test("a stream cut mid-job resumes with after=<last seq>: every line exactly once")
    func resumeAfterCut() async throws {
        try await withService { _, port in
            let proxy = try CuttingProxy(target: port, cutAfter: 900)
            defer { proxy.stop() }
            let tasks = (0..<20).map { (delay: 40 * $0, value: Optional("v\($0)")) }
            let result = try await fanout(["run", "-", "--server", "http://127.0.0.1:\(proxy.port)"], stdin: echoJob(tasks))
            #expect(result.status == 0, "\(result)")
            let seqs = result.lines.compactMap { $0["seq"]?.numberValue.map(Int.init) }
            #expect(seqs == Array(1...21), "every line once, in order: \(result)")
            #expect(Set(result.results.compactMap { $0["index"]?.numberValue }).count == 20)
            let requests = proxy.requestLines
            #expect(requests.count >= 2, "\(requests)")
            #expect(requests.first?.hasPrefix("POST /v1/jobs ") == true)
            #expect(requests.dropFirst().allSatisfy { $0.hasPrefix("GET /v1/jobs/") && $0.contains("/events?after=") }, "\(requests)")
            #expect(requests.dropFirst().first?.contains("after=0") == false, "resumed after the lines already seen")
        }
    }

    @Test("a stream that cannot be resumed within --resume-timeout: a clear message naming the cursor, exit 2")
    func resumeGivesUp() async throws {
        try await withService { _, port in
            let proxy = try CuttingProxy(target: port, cutAfter: 700, vanishAtCut: true)
            defer { proxy.stop() }
            let tasks = (0..<20).map { (delay: 50 * $0, value: Optional("v\($0)")) }
            let result = try await fanout(
                ["run", "-", "--server", "http://127.0.0.1:\(proxy.port)", "--resume-timeout", "2"], stdin: echoJob(tasks)
            )
            #expect(result.status == 2, "\(result)")
            let seqs = result.lines.compactMap { $0["seq"]?.numberValue.map(Int.init) }
            #expect(!seqs.isEmpty && seqs == Array(1...seqs.count), "what arrived, once: \(result)")
            #expect(result.end == nil)
            #expect(result.stderr.contains("could not resume job "), "\(result)")
            #expect(result.stderr.contains("--after \(seqs.count)"), "names where to pick it up: \(result)")
        }
    }

    @Test("a 503 with Retry-After is retried with the same Idempotency-Key; the job runs once")
    func saturatedRetry() async throws {
        try await withService({ $0.limits.maxConcurrentJobs = 1 }) { _, port in
            let blocker = try await HTTPExchange.send(
                port: port, method: "POST", path: "/v1/jobs", headers: [("Content-Type", "application/json")],
                body: echoJob([(60_000, "blocker")], extra: #","detach":true"#)
            )
            let blockerID = try #require(try JSONParser.parse(blocker.body)["job"]?.stringValue)
            let proxy = try CuttingProxy(target: port, cutAfter: .max)
            defer { proxy.stop() }
            let process = try CLIProcess(["run", "-", "--server", "http://127.0.0.1:\(proxy.port)"], stdin: echoJob([(0, "once")]))
            // Refused while the blocker holds the only slot; then the slot frees.
            let refused = await eventually(within: .seconds(60)) { proxy.requestHeads.count >= 2 }
            #expect(refused, "\(proxy.requestLines)")
            _ = try await HTTPExchange.send(port: port, method: "POST", path: "/v1/jobs/\(blockerID)/cancel")
            let result = await process.finish()
            #expect(result.status == 0, "\(result)")
            #expect(result.results.map { $0["value"] } == [.string("once")])
            let keys = proxy.header("Idempotency-Key")
            // The first POST met the blocker (503); a later one was admitted: all with one key.
            #expect(keys.count >= 2 && Set(keys).count == 1, "every submission carries the same key: \(proxy.requestHeads)")
            #expect(keys.first?.count == 32)
            let list = try JSONParser.parse(try await HTTPExchange.send(port: port, method: "GET", path: "/v1/jobs").body)
            guard case .array(let jobs) = list["jobs"] ?? .null else {
                Issue.record("no job list")
                return
            }
            #expect(jobs.count == 2, "the blocker and one job, not one per attempt")
        }
    }

    @Test("Ctrl-C once cancels the job on the server and prints the summary (exit 130)")
    func interruptCancels() async throws {
        try await withService { _, port in
            let base = "http://127.0.0.1:\(port)"
            let process = try CLIProcess(
                ["run", "-", "--server", base, "--summary"],
                stdin: echoJob([(0, "fast"), (60_000, "slow"), (60_000, "slower")])
            )
            // Wait until the fast line is out: the job is running on the server.
            let started = await eventually(within: .seconds(60)) { process.stdout.contains("\"fast\"") }
            #expect(started, "\(process.stderr)")
            process.interrupt()
            let result = await process.finish()
            #expect(result.status == 130, "\(result)")
            #expect(result.results.map { $0["status"]?.stringValue } == ["ok", "cancelled", "cancelled"], "\(result)")
            #expect(result.end?["cancelled"] == .number(2))
            #expect(result.stderr.contains("cancelled by Ctrl-C"), "\(result)")
            let id = try #require(result.end?["job"]?.stringValue)
            let status = try await HTTPExchange.send(port: port, method: "GET", path: "/v1/jobs/\(id)")
            let document = try JSONParser.parse(status.body)
            #expect(document["state"] == .string("finished"))
            #expect(document["cancelled"] == .number(2))
        }
    }

    @Test("status, jobs, follow --after, cancel")
    func jobCommands() async throws {
        try await withService { _, port in
            let base = "http://127.0.0.1:\(port)"
            // A detached job (the file asks for it): run follows its events from seq 1.
            let run = try await fanout(["run", "-", "--server", base], stdin: echoJob([(0, "a"), (10, "b")], extra: #","detach":true"#))
            #expect(run.status == 0, "\(run)")
            let id = try #require(run.end?["job"]?.stringValue)

            let status = try await fanout(["status", id, "--server", base])
            #expect(status.status == 0, "\(status)")
            let document = try JSONParser.parse(Array(status.stdout.utf8))
            #expect(document["state"] == .string("finished"))
            #expect(document["ok"] == .number(2))

            let jobs = try await fanout(["jobs", "--server", base])
            #expect(jobs.status == 0)
            #expect(jobs.lines.contains { $0["job"] == .string(id) }, "\(jobs)")

            let follow = try await fanout(["follow", id, "--after", "1", "--server", base])
            #expect(follow.status == 0, "\(follow)")
            #expect(follow.lines.compactMap { $0["seq"]?.numberValue } == [2, 3])

            let detached = try await HTTPExchange.send(
                port: port, method: "POST", path: "/v1/jobs", headers: [("Content-Type", "application/json")],
                body: echoJob([(60_000, "slow")], extra: #","detach":true"#)
            )
            let slow = try #require(try JSONParser.parse(detached.body)["job"]?.stringValue)
            let cancel = try await fanout(["cancel", slow, "--server", base])
            #expect(cancel.status == 0, "\(cancel)")
            #expect(cancel.lines.first?["cancelled"] == .number(1), "\(cancel)")
            let gone = try await fanout(["follow", String(repeating: "f", count: 32), "--server", base])
            #expect(gone.status == 2)
            #expect(gone.stderr.contains("is gone"), "\(gone)")

            let again = try await fanout(["follow", slow, "--server", base])
            #expect(again.status == 1, "a cancelled line is not ok")
            #expect(again.results.first?["status"] == .string("cancelled"))
        }
    }
}
