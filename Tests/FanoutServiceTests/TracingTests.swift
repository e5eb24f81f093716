import FanoutCore
import FanoutSync
import Logging
import ServiceTestSupport
import TestSupport
import Testing

@testable import FanoutService

/// Log lines kept in memory: each message with its metadata as text.
struct CapturedLogs: LogHandler {
    let lines = Locked<[(message: String, metadata: [String: String])]>([])
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .info

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var fields: [String: String] = [:]
        for (key, value) in event.metadata ?? [:] { fields[key] = "\(value)" }
        lines.withLock { $0.append(("\(event.message)", fields)) }
    }

    func finished() -> [[String: String]] {
        lines.withLock { $0.filter { $0.message == "job finished" }.map(\.metadata) }
    }
}

@Suite("Tracing")
struct TracingTests {
    static let incomingTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
    static let incomingSpan = "00f067aa0ba902b7"
    static let incoming = "00-\(incomingTrace)-\(incomingSpan)-01"
    static let state = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"

    /// A `tracestate` list's members, in order, without the optional spaces around them.
    static func members(_ list: String) -> [String] {
        list.split(separator: ",").map { String($0.filter { $0 != " " }) }
    }

    /// Parent links of the exported spans: the job's span continues the request's traceparent,
    /// subtask spans are its children, attempt spans (a retry too) the subtasks', and each
    /// upstream request carried a traceparent whose parent is its attempt's span. A hedge is an
    /// attempt span of its own, beside the one it overtook (which ends cancelled).
    @Test func exportedSpansLinkJobSubtasksAttemptsAndUpstream() async throws {
        try await TraceCollector.with { collector in try await Self.checkExportedSpans(collector) }
    }

    /// (A function of its own: Swift 6.3.1's region checker crashes on this body inside a closure.)
    static func checkExportedSpans(_ collector: TraceCollector) async throws {
        let logs = CapturedLogs()
        let job = """
            {"tasks":[
             {"id":"plain","kind":"http","url":"http://127.0.0.1:\(collector.port)/ok"},
             {"id":"retried","kind":"http","url":"http://127.0.0.1:\(collector.port)/flaky/a","retries":1},
             {"id":"hedged","kind":"http","url":"http://127.0.0.1:\(collector.port)/tail/h","hedge_after_ms":50},
             {"id":"timer","kind":"echo","delay_ms":5,"value":1}
            ]}
            """
        let stream = try await withService(logger: Logger(label: "test") { _ in logs }) { configuration in
            configuration.egress.allow = ["127.0.0.1"]
            configuration.tracing.otlpEndpoint = "http://127.0.0.1:\(collector.port)"
            configuration.tracing.serviceName = "fanoutd-test"
        } _: { _, port in
            let connection = try await RawConnection.connect(port: port)
            try await connection.send(RawRequest.job(job, extraHeaders: [("traceparent", Self.incoming), ("tracestate", Self.state)]))
            var stream = JobStream(head: try await connection.readHead())
            while let line = try await connection.readLine(stream.head) {
                stream.lines.append((.zero, try JSONParser.parse(Array(line.utf8))))
            }
            return stream
            // Leaving withService drains the service, which exports the spans still queued.
        }
        #expect(stream.head.status == 200)
        stream.checkInvariants(total: 4)
        #expect(stream.end?["ok"] == .number(4))

        let spans = collector.spans
        #expect(collector.serviceNames.allSatisfy { $0 == "fanoutd-test" } && !collector.serviceNames.isEmpty)
        #expect(spans.allSatisfy { $0.traceID == Self.incomingTrace })

        let jobs = spans.filter { $0.kind == 2 }
        try #require(jobs.count == 1)
        let jobSpan = jobs[0]
        #expect(jobSpan.name == "POST /v1/jobs")
        #expect(jobSpan.parentSpanID == Self.incomingSpan)
        // OpenTelemetry writes the list back with ", " between members: the same list.
        #expect(Self.members(jobSpan.traceState) == Self.members(Self.state))
        #expect(jobSpan.attributes["fanout.job.ok"] == "4")

        let subtasks = spans.filter { $0.kind == 1 }
        #expect(Set(subtasks.map(\.name)) == ["subtask plain", "subtask retried", "subtask hedged", "subtask timer"])
        #expect(subtasks.allSatisfy { $0.parentSpanID == jobSpan.spanID })
        let subtaskByName = Dictionary(uniqueKeysWithValues: subtasks.map { ($0.name, $0) })

        let attempts = spans.filter { $0.kind == 3 }
        let plainAttempts = attempts.filter { $0.parentSpanID == subtaskByName["subtask plain"]?.spanID }
        let retriedAttempts = attempts.filter { $0.parentSpanID == subtaskByName["subtask retried"]?.spanID }
        #expect(plainAttempts.count == 1)
        #expect(retriedAttempts.count == 2)
        let hedgedAttempts = attempts.filter { $0.parentSpanID == subtaskByName["subtask hedged"]?.spanID }
        #expect(hedgedAttempts.count == 2)
        let hedge = hedgedAttempts.first { $0.attributes["fanout.hedge"] == "true" }
        #expect(hedge?.attributes["http.response.status_code"] == "200")
        #expect(hedgedAttempts.first { $0.attributes["fanout.hedge"] == nil }?.statusCode == 2)
        #expect(attempts.count == 5)
        #expect(attempts.allSatisfy { $0.name == "GET" })
        #expect(Set(retriedAttempts.map { $0.attributes["http.response.status_code"] ?? "" }) == ["503", "200"])
        #expect(retriedAttempts.first { $0.attributes["http.response.status_code"] == "503" }?.statusCode == 2)

        // What the upstream saw: one request per attempt, each the child of its attempt's span.
        let calls = collector.calls
        #expect(calls.count == 5)
        var parents: [String] = []
        for call in calls {
            let header = try #require(call.traceparent.flatMap { TraceContext(traceparent: $0, tracestate: nil) })
            #expect(header.traceIDHex == Self.incomingTrace)
            #expect(header.sampled)
            #expect(Self.members(call.tracestate ?? "") == Self.members(Self.state))
            parents.append(header.spanIDHex)
        }
        #expect(Set(parents) == Set(attempts.map(\.spanID)))

        let line = try #require(logs.finished().first)
        #expect(line["trace_id"] == Self.incomingTrace)
        #expect(line["span_id"] == jobSpan.spanID)
    }

    /// Without an endpoint nothing is exported, yet the upstream still gets a child traceparent
    /// of the request's trace, and the job's log line names the trace.
    @Test func withoutAnEndpointTheTraceIsStillPassedOn() async throws {
        try await TraceCollector.with { collector in
            let logs = CapturedLogs()
            let job = #"{"tasks":[{"kind":"http","url":"http://127.0.0.1:\#(collector.port)/ok"}]}"#
            try await withService(logger: Logger(label: "test") { _ in logs }) { configuration in
                configuration.egress.allow = ["127.0.0.1"]
            } _: { _, port in
                let exchange = try await HTTPExchange.send(
                    port: port, method: "POST", path: "/v1/jobs",
                    headers: [("Content-Type", "application/json"), ("traceparent", Self.incoming), ("tracestate", Self.state)], body: job
                )
                #expect(exchange.head.status == 200)
            }
            #expect(collector.spans.isEmpty)
            let call = try #require(collector.calls.first)
            let header = try #require(call.traceparent.flatMap { TraceContext(traceparent: $0, tracestate: nil) })
            #expect(header.traceIDHex == Self.incomingTrace)
            #expect(header.spanIDHex != Self.incomingSpan)
            #expect(header.sampled)
            // Passed on as received.
            #expect(call.tracestate == Self.state)
            let line = try #require(logs.finished().first)
            #expect(line["trace_id"] == Self.incomingTrace)
            #expect(line["span_id"]?.count == 16)
            #expect(line["span_id"] != Self.incomingSpan)
        }
    }

    /// A malformed traceparent is not an error: the job runs (200) in a new trace, unsampled.
    @Test func anInvalidTraceparentStartsANewTrace() async throws {
        try await TraceCollector.with { collector in
            let logs = CapturedLogs()
            let job = #"{"tasks":[{"kind":"http","url":"http://127.0.0.1:\#(collector.port)/ok"}]}"#
            let invalid = "00-\(Self.incomingTrace.uppercased())-\(Self.incomingSpan)-01"
            try await withService(logger: Logger(label: "test") { _ in logs }) { configuration in
                configuration.egress.allow = ["127.0.0.1"]
            } _: { _, port in
                let exchange = try await HTTPExchange.send(
                    port: port, method: "POST", path: "/v1/jobs",
                    headers: [("Content-Type", "application/json"), ("traceparent", invalid), ("tracestate", "a=b")], body: job
                )
                #expect(exchange.head.status == 200)
            }
            let call = try #require(collector.calls.first)
            let header = try #require(call.traceparent.flatMap { TraceContext(traceparent: $0, tracestate: nil) })
            #expect(header.traceIDHex != Self.incomingTrace)
            #expect(!header.sampled)
            #expect(call.tracestate == nil)
            #expect(logs.finished().first?["trace_id"] == header.traceIDHex)
        }
    }

    /// A retained (detached) job continues the POST's trace too: its server span, its subtask's
    /// span and attempt, the upstream's traceparent, and its log line.
    @Test func aDetachedJobContinuesThePostsTrace() async throws {
        try await TraceCollector.with { collector in try await Self.checkDetachedJob(collector) }
    }

    static func checkDetachedJob(_ collector: TraceCollector) async throws {
        let logs = CapturedLogs()
        let job = #"{"tasks":[{"id":"call","kind":"http","url":"http://127.0.0.1:\#(collector.port)/ok"}]}"#
        try await withService(logger: Logger(label: "test") { _ in logs }) { configuration in
            configuration.egress.allow = ["127.0.0.1"]
            configuration.tracing.otlpEndpoint = "http://127.0.0.1:\(collector.port)/v1/traces"
        } _: { _, port in
            let (_, status) = try await detach(job, port: port, headers: [("traceparent", Self.incoming)])
            let id = try #require(status["job"]?.stringValue)
            let events = try await readEvents(id, port: port)
            #expect(events.last?.json["event"] == .string("end"))
        }
        let spans = collector.spans
        let jobSpan = try #require(spans.first { $0.kind == 2 })
        #expect(jobSpan.parentSpanID == Self.incomingSpan && jobSpan.traceID == Self.incomingTrace)
        #expect(jobSpan.attributes["fanout.job.retained"] == "true")
        let subtask = try #require(spans.first { $0.kind == 1 })
        #expect(subtask.parentSpanID == jobSpan.spanID)
        let attempt = try #require(spans.first { $0.kind == 3 })
        #expect(attempt.parentSpanID == subtask.spanID)
        let header = try #require(collector.calls.first?.traceparent.flatMap { TraceContext(traceparent: $0, tracestate: nil) })
        #expect(header.spanIDHex == attempt.spanID)
        let line = try #require(logs.finished().first)
        #expect(line["job.retained"] == "true")
        #expect(line["trace_id"] == Self.incomingTrace)
        #expect(line["span_id"] == jobSpan.spanID)
    }

    /// The tracing keys from the file and variables, and what is refused (naming the key).
    @Test func tracingKeysAreReadAndChecked() throws {
        let environment = ["FANOUT_TRACING_OTLP_ENDPOINT": "http://127.0.0.1:4318", "FANOUT_TRACING_SAMPLE_RATIO": "0.25"]
        let config = try ConfigurationLoader(environment: environment).load(
            configPath: nil, overrides: [("tracing.service_name", "edge"), ("tracing.otlp_protocol", "http/json")]
        )
        #expect(config.tracing == FanoutConfiguration.Tracing(otlpEndpoint: "http://127.0.0.1:4318", otlpProtocol: "http/json", serviceName: "edge", sampleRatio: 0.25))
        for (key, value) in [
            ("tracing.sample_ratio", "1.5"), ("tracing.sample_ratio", "half"), ("tracing.otlp_protocol", "grpc"),
            ("tracing.otlp_endpoint", "collector:4318"), ("tracing.service_name", ""),
        ] {
            #expect {
                try ConfigurationLoader(environment: [:]).load(configPath: nil, overrides: [(key, value)])
            } throws: { "\($0)".contains(key) }
        }
    }

    /// A big job records spans for its first 1000 subtasks only (each costs memory until exported).
    @Test func aBigJobRecordsABoundedNumberOfSubtaskSpans() async throws {
        try await TraceCollector.with { collector in
            let tasks = (0..<1100).map { #"{"kind":"echo","delay_ms":1,"value":\#($0)}"# }.joined(separator: ",")
            try await withService { configuration in
                configuration.tracing.otlpEndpoint = "http://127.0.0.1:\(collector.port)"
            } _: { _, port in
                let stream = try await JobStream.run(#"{"tasks":[\#(tasks)]}"#, port: port)
                stream.checkInvariants(total: 1100)
            }
            let spans = collector.spans
            #expect(spans.filter { $0.kind == 2 }.count == 1)
            #expect(spans.filter { $0.kind == 1 }.count == 1000)
        }
    }

    /// Two `traceparent` fields restart the trace (W3C); two `tracestate` fields are one list.
    @Test func repeatedTraceHeaders() async throws {
        try await TraceCollector.with { collector in
            let job = #"{"tasks":[{"kind":"http","url":"http://127.0.0.1:\#(collector.port)/ok"}]}"#
            try await withService { configuration in
                configuration.egress.allow = ["127.0.0.1"]
            } _: { _, port in
                for headers in [
                    [("traceparent", Self.incoming), ("traceparent", Self.incoming)],
                    [("traceparent", Self.incoming), ("tracestate", "a=1"), ("tracestate", "b=2")],
                ] {
                    let exchange = try await HTTPExchange.send(
                        port: port, method: "POST", path: "/v1/jobs", headers: [("Content-Type", "application/json")] + headers, body: job
                    )
                    #expect(exchange.head.status == 200)
                }
            }
            let calls = collector.calls
            try #require(calls.count == 2)
            let parents = calls.compactMap { $0.traceparent.flatMap { TraceContext(traceparent: $0, tracestate: nil) } }
            try #require(parents.count == 2)
            #expect(parents[0].traceIDHex != Self.incomingTrace)
            #expect(parents[1].traceIDHex == Self.incomingTrace)
            #expect(calls[1].tracestate == "a=1,b=2")
        }
    }
}
