import FanoutCore
import ServiceTestSupport
import TestSupport
import Testing

@testable import FanoutService

@Suite("POST /v1/jobs end to end")
struct JobStreamingTests {
    @Test func streamsResultsInCompletionOrderAsTheyFinish() async throws {
        try await withService { _, port in
            let stream = try await JobStream.run(
                #"{"tasks":[{"id":"a","kind":"echo","delay_ms":\#(TestTime.ms(600)),"value":{"x":1}},{"id":"b","kind":"echo","delay_ms":\#(TestTime.ms(10)),"error":"boom"},{"id":"c","kind":"echo","delay_ms":\#(TestTime.ms(120)),"value":"c"}]}"#,
                port: port
            )
            #expect(stream.head.status == 200)
            #expect(stream.head.header("Content-Type") == "application/x-ndjson")
            #expect(stream.head.header("Transfer-Encoding") == "chunked")
            #expect(stream.head.header("Cache-Control") == "no-store")
            #expect(stream.head.header("X-Accel-Buffering") == "no")
            let jobID = try #require(stream.head.header("X-Job-Id"))
            #expect(stream.results.map { $0["id"]?.stringValue } == ["b", "c", "a"])
            #expect(stream.results[0]["error"] == .object([("code", .string("task_error")), ("message", .string("boom"))]))
            #expect(stream.results[2]["value"] == .object([("x", .number(1))]))
            let arrivals = stream.lines.map(\.at)
            // Each line leaves when its subtask finishes: b's and c's before a has even finished.
            #expect(arrivals[0] < TestTime.scaled(.milliseconds(600)), "b's line does not wait for a")
            #expect(
                arrivals[1] >= TestTime.scaled(.milliseconds(120)) && arrivals[1] < TestTime.scaled(.milliseconds(600)),
                "c's line does not wait for a"
            )
            #expect(arrivals[2] >= TestTime.scaled(.milliseconds(600)))
            #expect(stream.end?["job"] == .string(jobID))
            stream.checkInvariants(total: 3)
        }
    }

    @Test func failuresAreLinesAndNeverStopTheOthers() async throws {
        try await withService { _, port in
            let tasks = (0..<30).map { index in
                index % 3 == 0
                    ? #"{"kind":"echo","delay_ms":\#(index),"error":"e\#(index)"}"#
                    : #"{"kind":"echo","delay_ms":\#(index),"value":\#(index)}"#
            }
            let stream = try await JobStream.run(#"{"tasks":[\#(tasks.joined(separator: ","))],"task_timeout_ms":5000}"#, port: port)
            #expect(stream.end?["ok"] == .number(20))
            #expect(stream.end?["error"] == .number(10))
            stream.checkInvariants(total: 30)
        }
    }

    @Test func jobDeadlineAndOptionsWorkOverTheWire() async throws {
        try await withService { _, port in
            let stream = try await JobStream.run(
                #"{"tasks":[{"kind":"echo","delay_ms":20},{"kind":"echo","delay_ms":5000},{"kind":"echo","delay_ms":10,"timeout_ms":5}],"timeout_ms":300,"order":"input"}"#,
                port: port
            )
            #expect(stream.results.map { $0["status"]?.stringValue } == ["ok", "timeout", "timeout"])
            #expect((stream.end?["elapsed_ms"]?.numberValue ?? 0) < 1000)
            stream.checkInvariants(total: 3)
        }
    }

    @Test func instantJobsStreamLikeAnyOther() async throws {
        try await withService { _, port in
            let small = try await JobStream.run(#"{"tasks":[{"kind":"echo","value":1},{"kind":"echo","error":"no"},{"kind":"echo","value":3}],"fail_fast":true}"#, port: port)
            #expect(small.head.header("Transfer-Encoding") == "chunked")
            #expect(small.head.header("X-Job-Id") != nil)
            #expect(small.results.map { $0["status"]?.stringValue } == ["ok", "error", "cancelled"])
            small.checkInvariants(total: 3)
            // Larger than the stream buffer: streamed under backpressure rather than built at once.
            let value = String(repeating: "v", count: 200)
            let tasks = Array(repeating: #"{"kind":"echo","value":"\#(value)"}"#, count: 2000).joined(separator: ",")
            let big = try await JobStream.run(#"{"tasks":[\#(tasks)]}"#, port: port)
            big.checkInvariants(total: 2000)
            let old = try await JobStream.run(#"{"tasks":[{"kind":"echo","value":1}]}"#, port: port, version: "HTTP/1.0")
            #expect(old.head.header("Transfer-Encoding") == nil)
            old.checkInvariants(total: 1)
        }
    }

    @Test func servesHTTP10ClientsWithACloseDelimitedBody() async throws {
        try await withService { _, port in
            let stream = try await JobStream.run(#"{"tasks":[{"kind":"echo","delay_ms":30,"value":1},{"kind":"echo","value":2}]}"#, port: port, version: "HTTP/1.0")
            #expect(stream.head.status == 200)
            #expect(stream.head.header("Transfer-Encoding") == nil)
            stream.checkInvariants(total: 2)
        }
    }

    @Test func honoursExpect100Continue() async throws {
        try await withService { _, port in
            let connection = try await RawConnection.connect(port: port)
            defer { connection.close() }
            let body = #"{"tasks":[{"kind":"echo","value":"hi"}]}"#
            try await connection.send(
                "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\nExpect: 100-continue\r\n\r\n"
            )
            #expect(try await connection.readHead().status == 100)
            try await connection.send(body)
            let head = try await connection.readHead()
            #expect(head.status == 200)
            var lines: [String] = []
            while let line = try await connection.readLine(head) { lines.append(line) }
            #expect(lines.count == 2)
            #expect(lines.first?.contains(#""value":"hi""#) == true)
        }
    }

    @Test func runsSeveralJobsOnOneKeptAliveConnection() async throws {
        try await withService { _, port in
            let connection = try await RawConnection.connect(port: port)
            defer { connection.close() }
            for round in 0..<3 {
                let stream = try await JobStream.run(#"{"tasks":[{"kind":"echo","delay_ms":5,"value":\#(round)}]}"#, port: port, on: connection)
                #expect(stream.head.header("Connection")?.lowercased() != "close")
                #expect(stream.results.first?["value"] == .number(Double(round)))
                stream.checkInvariants(total: 1)
            }
        }
    }

    @Test func manyJobsInParallel() async throws {
        try await withService { _, port in
            try await withThrowingTaskGroup(of: JobStream.self) { group in
                for job in 0..<64 {
                    let tasks = (0..<20).map { #"{"kind":"echo","delay_ms":\#(($0 * 7 + job) % 50),"value":\#($0)}"# }
                    group.addTask { try await JobStream.run(#"{"tasks":[\#(tasks.joined(separator: ","))]}"#, port: port) }
                }
                var count = 0
                for try await stream in group {
                    stream.checkInvariants(total: 20)
                    let elapsed = stream.results.compactMap { $0["elapsed_ms"]?.numberValue }
                    #expect(elapsed == elapsed.sorted(), "completion order")
                    count += 1
                }
                #expect(count == 64)
            }
        }
    }

    @Test func aClientThatHangsUpHasItsSubtasksCancelled() async throws {
        try await withService { service, port in
            let connection = try await RawConnection.connect(port: port)
            try await connection.send(RawRequest.job(#"{"tasks":[{"kind":"echo","delay_ms":60000},{"kind":"echo","delay_ms":60000},{"kind":"echo","delay_ms":10,"value":1}],"heartbeat_ms":0}"#))
            let head = try await connection.readHead()
            #expect(try await connection.readLine(head) != nil)
            #expect(service.admission.running == 1)
            #expect(metric(service.metrics.exposition(), "fanout_subtasks_in_flight") == 2)
            connection.abort()
            #expect(await eventually(within: .seconds(2)) { service.admission.running == 0 }, "the job ends within about a second")
            let exposition = service.metrics.exposition()
            #expect(metric(exposition, "fanout_subtasks_in_flight") == 0)
            #expect(metric(exposition, "fanout_jobs_in_flight") == 0)
            #expect(metric(exposition, "fanout_client_disconnects_total") == 1)
        }
    }

    @Test func aSlowReaderLosesNothingAndHoldsTheJobBack() async throws {
        try await withService({ $0.server.maxBodyBytes = 64 * 1024 * 1024 }) { service, port in
            let value = String(repeating: "y", count: 1000)
            let total = 20_000
            // delay_ms 1: the subtasks really run (and are counted as they finish).
            let job = #"{"tasks":[\#(Array(repeating: #"{"kind":"echo","delay_ms":1,"value":"\#(value)"}"#, count: total).joined(separator: ","))],"concurrency":50}"#
            let connection = try await RawConnection.connect(port: port, receiveBuffer: 4096)
            defer { connection.close() }
            try await connection.send(RawRequest.job(job))
            try await Task.sleep(for: .milliseconds(700))
            let ranWhileStalled = metric(service.metrics.exposition(), #"fanout_subtask_duration_seconds_count{kind="echo"}"#) ?? 0
            #expect(ranWhileStalled < Double(total) / 2, "subtasks wait for the reader: \(ranWhileStalled) ran")
            let head = try await connection.readHead()
            var results = 0
            var last = ""
            while let line = try await connection.readLine(head) {
                if line.hasPrefix(#"{"event":"result""#) { results += 1 }
                last = line
            }
            #expect(results == total)
            #expect(last.hasPrefix(#"{"event":"end""#))
        }
    }
}
