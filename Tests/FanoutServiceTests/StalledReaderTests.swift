import FanoutCore
import ServiceTestSupport
import TestSupport
import Testing

@testable import FanoutService

/// A client that stops reading cannot hold a job past its deadline (issue 7, item 6).
@Suite("A reader that stalls")
struct StalledReaderTests {
    @Test func theDeadlineEndsInFlightSubtasksWhileTheClientIsNotReading() async throws {
        try await withService({ $0.server.maxBodyBytes = 64 * 1024 * 1024 }) { service, port in
            // Ten subtasks that would take a minute, then 5 MB of lines that stall the stream.
            let waiting = Array(repeating: #"{"kind":"echo","delay_ms":60000}"#, count: 10)
            let filling = Array(repeating: #"{"kind":"echo","value":"\#(String(repeating: "y", count: 1000))"}"#, count: 5_000)
            let job = #"{"tasks":[\#((waiting + filling).joined(separator: ","))],"timeout_ms":1000,"heartbeat_ms":0}"#
            let connection = try await RawConnection.connect(port: port, receiveBuffer: 4096)
            defer { connection.close() }
            try await connection.send(RawRequest.job(job))
            #expect(await eventually(within: .seconds(10)) {
                metric(service.metrics.exposition(), "fanout_subtasks_in_flight") == 10
            }, "the ten are in flight")
            // Nothing is read: the deadline still ends them, about a second after the start.
            #expect(await eventually(within: .seconds(10)) {
                metric(service.metrics.exposition(), "fanout_subtasks_in_flight") == 0
            }, "the deadline ended the in-flight subtasks while the writer waited")
            // The stream is stalled indeed: the job cannot finish while its lines are not read.
            try await Task.sleep(for: .milliseconds(300))
            #expect(service.admission.running == 1, "the job still owes the client its lines")

            // Once the client reads, every line arrives.
            let head = try await connection.readHead()
            var statuses: [String: Int] = [:]
            var last = ""
            while let line = try await connection.readLine(head) {
                let json = try JSONParser.parse(Array(line.utf8))
                if json["event"] == .string("result") { statuses[json["status"]?.stringValue ?? "?", default: 0] += 1 }
                last = line
            }
            #expect(statuses.values.reduce(0, +) == 5_010)
            #expect(statuses["timeout", default: 0] >= 10, "\(statuses)")
            #expect(last.hasPrefix(#"{"event":"end""#))
            #expect(await eventually(within: .seconds(5)) { service.admission.running == 0 })
        }
    }
}
