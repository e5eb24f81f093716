import FanoutCore
import FanoutJobs
import MicroHTTPServer
import Logging
import ServiceTestSupport
import TestSupport
import Testing

@testable import FanoutService

@Suite("Retained jobs: detach, resume, readers")
struct RetainedJobTests {
    /// Echo tasks finishing `step` ms apart.
    static func spaced(_ count: Int, step: Int, extra: String = "") -> String {
        let tasks = (0..<count).map { #"{"kind":"echo","delay_ms":\#(($0 + 1) * step),"value":\#($0)}"# }
        return #"{"tasks":[\#(tasks.joined(separator: ","))]\#(extra)}"#
    }

    @Test func detachAnswers202ThenTheEventsReadBackEveryLine() async throws {
        try await withService { _, port in
            let (exchange, status) = try await detach(Self.spaced(3, step: 50), port: port)
            let id = try #require(status["job"]?.stringValue)
            #expect(id.count == 32 && id.allSatisfy(\.isHexDigit))
            #expect(exchange.head.header("Location") == "/v1/jobs/\(id)")
            #expect(exchange.head.header("Content-Type") == "application/json")
            #expect(status["state"] == .string("running"))
            #expect(status["total"] == .number(3))
            #expect(status["last_seq"] == .number(0))
            #expect(status["created_at"]?.stringValue?.hasSuffix("Z") == true)

            let lines = try await readEvents(id, port: port).map(\.json)
            checkContiguous(lines, from: 1)
            let results = lines.filter { $0["event"] == .string("result") }
            #expect(results.compactMap { $0["index"]?.numberValue }.sorted() == [0, 1, 2])
            #expect(lines.last?["event"] == .string("end"))
            #expect(lines.last?["job"] == .string(id))

            let (code, final) = try await getJSON("/v1/jobs/\(id)", port: port)
            #expect(code == 200)
            #expect(final?["state"] == .string("finished"))
            #expect(final?["ok"] == .number(3))
            #expect(final?["done"] == .number(3))
            #expect(final?["last_seq"] == .number(Double(lines.count)))
            #expect(final?["finished_at"]?.stringValue != nil)
            #expect(final?["expires_at"]?.stringValue != nil)
        }
    }

    @Test func preferRespondAsyncDetachesToo() async throws {
        try await withService { _, port in
            let exchange = try await HTTPExchange.send(
                port: port, method: "POST", path: "/v1/jobs",
                headers: [("Content-Type", "application/json"), ("Prefer", "wait=10, respond-async")],
                body: #"{"tasks":[{"kind":"echo","value":1}]}"#
            )
            #expect(exchange.head.status == 202)
            #expect(exchange.head.header("Preference-Applied") == "respond-async")
            let id = try #require(try JSONParser.parse(exchange.body)["job"]?.stringValue)
            let lines = try await readEvents(id, port: port).map(\.json)
            #expect(lines.count == 2)
            checkContiguous(lines, from: 1)
        }
    }

    @Test func continueSurvivesADisconnectAndResumesWithAfterAndLastEventID() async throws {
        try await withService { _, port in
            let connection = try await RawConnection.connect(port: port)
            try await connection.send(RawRequest.job(Self.spaced(8, step: 60, extra: #","on_disconnect":"continue""#)))
            let head = try await connection.readHead()
            #expect(head.status == 200)
            #expect(head.header("Content-Type") == "application/x-ndjson")
            let id = try #require(head.header("X-Job-Id"))
            var seen: [JSONValue] = []
            for _ in 0..<2 {
                let line = try #require(try await connection.readLine(head))
                seen.append(try JSONParser.parse(Array(line.utf8)))
            }
            connection.abort()
            checkContiguous(seen, from: 1)

            // The job went on without its connection: the rest, from seq 3, nothing cancelled.
            let rest = try await readEvents(id, port: port, query: "?after=2").map(\.json)
            checkContiguous(rest, from: 3)
            let all = seen + rest
            #expect(all.filter { $0["event"] == .string("result") }.compactMap { $0["index"]?.numberValue }.sorted() == (0..<8).map(Double.init))
            #expect(all.filter { $0["status"] == .string("cancelled") }.isEmpty)
            #expect(rest.last?["event"] == .string("end"))

            // The same through SSE with Last-Event-ID.
            let sse = try await HTTPExchange.send(
                port: port, method: "GET", path: "/v1/jobs/\(id)/events",
                headers: [("Accept", "text/event-stream"), ("Last-Event-ID", "2")]
            )
            #expect(sse.head.status == 200)
            #expect(sse.head.header("Content-Type") == "text/event-stream")
            let (retry, events) = parseEvents(sse.text)
            #expect(retry == RetainedJobRoutes.retryMilliseconds)
            #expect(sse.text.hasPrefix("retry: "))
            #expect(events.map(\.id) == rest.map { $0["seq"]?.numberValue.map { String(Int($0)) } })
            #expect(events.map(\.event) == rest.map { $0["event"]?.stringValue })
            #expect(try events.map { try JSONParser.parse(Array($0.data.utf8)) } == rest)
            #expect(events.last?.event == "end")
        }
    }

    @Test func threeConcurrentReadersSeeTheSameSequence() async throws {
        try await withService { _, port in
            let (_, status) = try await detach(Self.spaced(30, step: 10, extra: #","heartbeat_ms":15"#), port: port)
            let id = try #require(status["job"]?.stringValue)
            async let a = readEvents(id, port: port)
            async let b = readEvents(id, port: port)
            async let c = readEvents(id, port: port)
            let (first, second, third) = try await (a.map(\.text), b.map(\.text), c.map(\.text))
            #expect(first == second)
            #expect(second == third)
            let parsed = try first.map { try JSONParser.parse(Array($0.utf8)) }
            checkContiguous(parsed, from: 1)
            #expect(parsed.filter { $0["event"] == .string("result") }.count == 30)
            #expect(parsed.last?["event"] == .string("end"))
        }
    }

    @Test func aStalledReaderDoesNotHoldTheJobBack() async throws {
        try await withService({ $0.limits.streamBufferBytes = 4096 }) { service, port in
            // Few big lines: the bytes matter here, and few tasks keep the CPU (and other suites'
            // timing) out of it.
            let filler = String(repeating: "x", count: 2000)
            let tasks = (0..<600).map { #"{"kind":"echo","delay_ms":\#($0 % 5),"value":"\#(filler)"}"# }
            let (_, status) = try await detach(#"{"tasks":[\#(tasks.joined(separator: ","))]}"#, port: port)
            let id = try #require(status["job"]?.stringValue)
            // Over a megabyte of lines: far more than the stream buffer plus the socket buffers.
            let stalled = try await RawConnection.connect(port: port, receiveBuffer: 4096)
            defer { stalled.close() }
            try await stalled.send(RawRequest.text(method: "GET", path: "/v1/jobs/\(id)/events"))
            let head = try await stalled.readHead()
            #expect(head.status == 200)
            var finished = false
            for _ in 0..<300 where !finished {
                try await Task.sleep(for: .milliseconds(100))
                finished = try await getJSON("/v1/jobs/\(id)", port: port).json?["state"] == .string("finished")
            }
            #expect(finished, "the job finished while its only reader read nothing")
            #expect(service.retainedJobs.store.usage().lines == 601)
            var count = 0
            while try await stalled.readLine(head) != nil { count += 1 }
            #expect(count == 601)
        }
    }

    @Test func badCursorsAndUnknownJobsAreProblems() async throws {
        try await withService { _, port in
            let (_, status) = try await detach(#"{"tasks":[{"kind":"echo"}]}"#, port: port)
            let id = try #require(status["job"]?.stringValue)
            for query in ["?after=-1", "?after=abc", "?after="] {
                let exchange = try await HTTPExchange.send(port: port, method: "GET", path: "/v1/jobs/\(id)/events\(query)")
                #expect(exchange.head.status == 400)
                #expect(try problem(exchange)["field"] == .string("after"))
            }
            let badHeader = try await HTTPExchange.send(port: port, method: "GET", path: "/v1/jobs/\(id)/events", headers: [("Last-Event-ID", "x")])
            #expect(badHeader.head.status == 400)
            #expect(try problem(badHeader)["field"] == .string("Last-Event-ID"))
            for path in ["/v1/jobs/0123456789abcdef0123456789abcdef", "/v1/jobs/nope/events", "/v1/jobs/\(id)/other"] {
                let exchange = try await HTTPExchange.send(port: port, method: "GET", path: path)
                #expect(exchange.head.status == 404)
                _ = try problem(exchange)
            }
            let wrongMethod = try await HTTPExchange.send(port: port, method: "PUT", path: "/v1/jobs/\(id)")
            #expect(wrongMethod.head.status == 405)
            #expect(wrongMethod.head.header("Allow") == "GET, HEAD, DELETE")
            let badState = try await HTTPExchange.send(port: port, method: "GET", path: "/v1/jobs?state=done")
            #expect(badState.head.status == 400)
            _ = try problem(badState)
            let badDetach = try await HTTPExchange.send(
                port: port, method: "POST", path: "/v1/jobs", headers: [("Content-Type", "application/json")],
                body: #"{"tasks":[{"kind":"echo"}],"on_disconnect":"later"}"#
            )
            #expect(badDetach.head.status == 400)
            #expect(try problem(badDetach)["field"] == .string("on_disconnect"))
            #expect(try await HTTPExchange.send(port: port, method: "GET", path: "/livez").head.status == 200)
        }
    }
}

@Suite("Retained jobs: keyed streams and reader metrics")
struct RetainedJobStreamTests {
    @Test func aKeyedStreamWithCancelEndsTheJobWhenItsClientGoes() async throws {
        try await withService { _, port in
            let connection = try await RawConnection.connect(port: port)
            try await connection.send(RawRequest.job(
                #"{"tasks":[{"kind":"echo","delay_ms":10,"value":1},{"kind":"echo","delay_ms":30000},{"kind":"echo","delay_ms":30000}]}"#,
                extraHeaders: [("Idempotency-Key", "stream-1")]
            ))
            let head = try await connection.readHead()
            #expect(head.status == 200)
            let id = try #require(head.header("X-Job-Id"))
            #expect(head.header("Location") == "/v1/jobs/\(id)")
            let first = try JSONParser.parse(Array(try #require(try await connection.readLine(head)).utf8))
            #expect(first["seq"] == .number(1))
            connection.abort()
            // The job is cancelled (not cut): its readers see cancelled lines and the end line.
            let lines = try await readEvents(id, port: port).map(\.json)
            checkContiguous(lines, from: 1)
            let cancelled = lines.filter { $0["status"] == .string("cancelled") }
            #expect(cancelled.count == 2)
            #expect(cancelled.allSatisfy { $0["error"]?["message"] == .string("cancelled: the client went away") })
            #expect(lines.last?["event"] == .string("end"))
        }
    }

    @Test func readersAndResumesAreCounted() async throws {
        try await withService { _, port in
            let (_, status) = try await detach(#"{"tasks":[{"kind":"echo","delay_ms":400,"value":1}]}"#, port: port)
            let id = try #require(status["job"]?.stringValue)
            let connection = try await RawConnection.connect(port: port)
            defer { connection.close() }
            try await connection.send(RawRequest.text(method: "GET", path: "/v1/jobs/\(id)/events?after=0"))
            #expect(try await connection.readHead().status == 200)
            // The reader's task starts once its head is queued: wait for it to count.
            var exposition = ""
            for _ in 0..<250 {
                exposition = try await HTTPExchange.send(port: port, method: "GET", path: "/metrics").text
                if metric(exposition, "fanout_job_readers") == 1 { break }
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(metric(exposition, "fanout_job_readers") == 1)
            _ = try await readEvents(id, port: port, query: "?after=1")
            exposition = try await HTTPExchange.send(port: port, method: "GET", path: "/metrics").text
            #expect(metric(exposition, "fanout_job_resumes_total") == 1)
            #expect(metric(exposition, "fanout_retained_jobs_running") == 0)
        }
    }
}
