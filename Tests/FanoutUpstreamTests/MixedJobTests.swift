import TestSupport
import FanoutCore
import FanoutSync
import FanoutUpstream
import Testing

/// A sink collecting the job's lines as they are sent.
final class CollectingSink: LineSink {
    private let lines = Locked<[JSONValue]>([])

    var results: [JSONValue] { lines.withLock { $0 }.filter { $0["event"] == .string("result") } }
    var end: JSONValue? { lines.withLock { $0.last } }

    func send(_ bytes: [UInt8]) async throws {
        let parsed = try bytes.split(separator: UInt8(ascii: "\n")).map { try JSONParser.parse(Array($0)) }
        lines.withLock { $0.append(contentsOf: parsed) }
    }
}

extension UpstreamEndToEnd {
    /// Whole jobs of `http` subtasks through the dispatcher: one line per subtask as it finishes,
    /// every failure class its own line, and the dispatcher's cancellations closing upstream requests.
    @Suite("Mixed http jobs")
    struct MixedJobTests {
        func decoder(_ runner: HTTPRunner) -> JobDecoder {
            var runners = RunnerRegistry()
            runners.register(runner)
            return JobDecoder(policy: JobPolicy(), runners: runners)
        }

        @Test func everyOutcomeClassArrivesAsItsOwnLineInCompletionOrder() async throws {
            try await withUpstream { upstream in
                var configuration = try testConfiguration()
                configuration.maxResponseBytes = 50_000
                try await withRunner(configuration) { runner in
                    let hang = Token.next()
                    let endless = Token.next()
                    let refused = try closedPort()
                    let job = """
                    {"tasks":[
                      {"id":"slow","kind":"http","url":"\(upstream.url("/slow/250"))"},
                      {"id":"json","kind":"http","url":"\(upstream.url("/json"))"},
                      {"id":"500","kind":"http","url":"\(upstream.url("/status/500"))"},
                      {"id":"big","kind":"http","url":"\(upstream.url("/endless/\(endless)"))"},
                      {"id":"refused","kind":"http","url":"http://127.0.0.1:\(refused)/"},
                      {"id":"forbidden","kind":"http","url":"http://0.0.0.0:\(upstream.port)/json"},
                      {"id":"hang","kind":"http","url":"\(upstream.url("/hang/\(hang)"))","timeout_ms":500}
                    ]}
                    """
                    let sink = CollectingSink()
                    let summary = await Dispatcher.run(try decoder(runner).decode(Array(job.utf8)), id: "job", sink: sink)

                    let byID = Dictionary(uniqueKeysWithValues: sink.results.map { ($0["id"]?.stringValue ?? "?", $0) })
                    #expect(byID.count == 7)
                    #expect(byID["json"]?["status"] == .string("ok"))
                    #expect(byID["json"]?["value"]?["body"]?["hello"] == .string("world"))
                    #expect(byID["slow"]?["status"] == .string("ok"))
                    #expect(byID["500"]?["error"]?["code"] == .string("http_status"))
                    #expect(byID["500"]?["response"]?["status"] == .number(500))
                    #expect(byID["big"]?["error"]?["code"] == .string("too_large"))
                    #expect(byID["refused"]?["error"]?["code"] == .string("connect"))
                    #expect(byID["forbidden"]?["error"]?["code"] == .string("forbidden"))
                    #expect(byID["hang"]?["status"] == .string("timeout"))

                    let order = sink.results.compactMap { $0["id"]?.stringValue }
                    #expect(try #require(order.firstIndex(of: "json")) < (try #require(order.firstIndex(of: "slow"))), "lines leave as subtasks finish")
                    #expect(order.last == "hang")
                    #expect(summary.ok == 2 && summary.error == 4 && summary.timeout == 1)
                    #expect(upstream.probe.hits("/json") == 1, "the forbidden spelling of the upstream never reached it")
                    #expect(sink.end?["event"] == .string("end"))
                    #expect(await eventually(within: .seconds(2)) { upstream.probe.closed(hang) == 1 && upstream.probe.closed(endless) == 1 })
                }
            }
        }

        @Test func firstCancelsTheRestAndClosesTheirRequests() async throws {
            try await withUpstream { upstream in
                try await withRunner { runner in
                    let tokens = (0..<3).map { _ in Token.next() }
                    let hangs = tokens.map { #"{"kind":"http","url":"\#(upstream.url("/hang/\($0)"))"}"# }.joined(separator: ",")
                    let job = #"{"first":1,"tasks":[\#(hangs),{"kind":"http","url":"\#(upstream.url("/slow/100"))"}]}"#
                    let sink = CollectingSink()
                    let start = ContinuousClock.now
                    let summary = await Dispatcher.run(try decoder(runner).decode(Array(job.utf8)), id: "race", sink: sink)
                    #expect(ContinuousClock.now - start < .seconds(1))
                    #expect(summary.ok == 1 && summary.cancelled == 3)
                    #expect(await eventually(within: .seconds(2)) { tokens.allSatisfy { upstream.probe.closed($0) == 1 } }, "every losing request was closed")
                }
            }
        }
    }
}
