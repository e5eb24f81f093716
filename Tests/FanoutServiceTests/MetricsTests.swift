import FanoutCore
import FanoutJobs
import Logging
import ServiceTestSupport
import TestSupport
import Testing

@testable import FanoutService

/// `GET /metrics` scraped over a real connection.
private func scrape(_ port: Int) async throws -> String {
    let exchange = try await HTTPExchange.send(port: port, method: "GET", path: "/metrics")
    #expect(exchange.head.status == 200)
    return exchange.text
}

/// Every `fanout_subtasks_total` sample of `kind`, by status.
private func subtaskEnds(_ exposition: String, kind: String = "echo") -> [String: Double] {
    var ends: [String: Double] = [:]
    for status in ["ok", "error", "timeout", "cancelled"] {
        ends[status] = metric(exposition, #"fanout_subtasks_total{kind="\#(kind)",status="\#(status)"}"#)
    }
    return ends
}

@Suite("Prometheus metrics")
struct MetricsTests {
    @Test func everyFamilyHasHelpAndTypeAndSnakeCaseLabelValues() async throws {
        try await withService { _, port in
            _ = try await JobStream.run(#"{"tasks":[{"kind":"echo","value":1},{"kind":"echo","delay_ms":5,"error":"x"}]}"#, port: port)
            _ = try await HTTPExchange.send(port: port, method: "GET", path: "/nope")
            let text = try await scrape(port)
            var families: Set<String> = []
            var helped: Set<String> = []
            var typed: [String: String] = [:]
            for line in text.split(separator: "\n") {
                let words = line.split(separator: " ", maxSplits: 3)
                if line.hasPrefix("# HELP ") {
                    helped.insert(String(words[2]))
                    #expect(words.count == 4, "HELP text is not empty: \(line)")
                } else if line.hasPrefix("# TYPE ") {
                    typed[String(words[2])] = String(words[3])
                } else if !line.hasPrefix("#") {
                    let name = String(line.prefix { $0 != "{" && $0 != " " })
                    families.insert(name)
                    if let labels = line.firstRange(of: "{").map({ line[$0.upperBound...].prefix { $0 != "}" } }) {
                        for pair in labels.split(separator: ",") {
                            let parts = pair.split(separator: "=", maxSplits: 1)
                            let label = String(parts[0])
                            let value = parts[1].dropFirst().dropLast()
                            guard label != "le", label != "version" else { continue }
                            #expect(value.allSatisfy { $0.isLowercase || $0.isNumber || $0 == "_" }, "\(label)=\(value) is snake_case")
                        }
                    }
                }
            }
            #expect(families.count > 20)
            for sample in families {
                var family = sample
                for suffix in ["_bucket", "_sum", "_count"] where sample.hasSuffix(suffix) && typed[sample] == nil {
                    family = String(sample.dropLast(suffix.count))
                }
                #expect(typed[family] != nil, "# TYPE for \(family)")
                #expect(helped.contains(family), "# HELP for \(family)")
            }
            #expect(typed["fanout_subtasks_total"] == "counter")
            #expect(typed["fanout_job_duration_seconds"] == "histogram")
            #expect(typed["process_cpu_seconds_total"] == "counter")
            #expect(typed["process_resident_memory_bytes"] == "gauge")
        }
    }

    @Test func rejectionsAreCountedByReasonAndMalformedJSONApartFromInvalidJobs() async throws {
        try await withService { _, port in
            let json = [("Content-Type", "application/json")]
            let malformed = try await HTTPExchange.send(port: port, method: "POST", path: "/v1/jobs", headers: json, body: #"{"tasks":["#)
            #expect(try problem(malformed)["type"] == .string("https://fanoutd.dev/problems/malformed-json"))
            let invalid = try await HTTPExchange.send(
                port: port, method: "POST", path: "/v1/jobs", headers: json, body: #"{"tasks":[{"kind":"nope"}]}"#
            )
            #expect(try problem(invalid)["type"] == .string("https://fanoutd.dev/problems/invalid-job"))
            for _ in 0..<2 { _ = try await HTTPExchange.send(port: port, method: "GET", path: "/nope") }
            _ = try await HTTPExchange.send(port: port, method: "POST", path: "/v1/jobs", headers: [("Content-Type", "text/plain")], body: "{}")
            let text = try await scrape(port)
            #expect(metric(text, #"fanout_rejections_total{reason="malformed_json"}"#) == 1)
            #expect(metric(text, #"fanout_rejections_total{reason="invalid_job"}"#) == 1)
            #expect(metric(text, #"fanout_rejections_total{reason="not_found"}"#) == 2)
            #expect(metric(text, #"fanout_rejections_total{reason="unsupported_media_type"}"#) == 1)
            #expect(!text.contains("not-found"))
        }
    }

    @Test func subtasksLeftByAClientHangUpAreCountedCancelled() async throws {
        try await withService { service, port in
            let connection = try await RawConnection.connect(port: port)
            // Three start (concurrency 3), one or two never do; the quick one's line is read before the hang-up.
            let slow = Array(repeating: #"{"kind":"echo","delay_ms":60000}"#, count: 4).joined(separator: ",")
            let job = #"{"tasks":[{"kind":"echo","delay_ms":10,"value":1},\#(slow)],"concurrency":3,"heartbeat_ms":0}"#
            try await connection.send(RawRequest.job(job))
            let head = try await connection.readHead()
            #expect(try await connection.readLine(head)?.contains(#""status":"ok""#) == true)
            connection.abort()
            #expect(await eventually(within: .seconds(10)) { service.admission.running == 0 })
            let text = try await scrape(port)
            #expect(subtaskEnds(text) == ["ok": 1, "error": 0, "timeout": 0, "cancelled": 4])
            // Three started at once; a fourth may have taken the quick one's slot before the hang-up.
            let started = metric(text, #"fanout_subtask_duration_seconds_count{kind="echo"}"#) ?? 0
            #expect(started >= 3 && started <= 4, "only started subtasks have a duration: \(started)")
            #expect(metric(text, #"fanout_jobs_total{outcome="client_gone"}"#) == 1)
            #expect(metric(text, "fanout_subtasks_in_flight") == 0)
        }
    }

    @Test func subtasksEndedByTheDeadlineAreCountedOnce() async throws {
        try await withService { _, port in
            let slow = #"{"kind":"echo","delay_ms":60000}"#
            let stream = try await JobStream.run(#"{"tasks":[{"kind":"echo","value":1},\#(slow),\#(slow)],"concurrency":1,"timeout_ms":200}"#, port: port)
            stream.checkInvariants(total: 3)
            let text = try await scrape(port)
            #expect(subtaskEnds(text) == ["ok": 1, "error": 0, "timeout": 2, "cancelled": 0])
            #expect(metric(text, #"fanout_jobs_total{outcome="failed"}"#) == 1)
        }
    }

    @Test func subtasksOfACancelledRetainedJobAreCountedOnce() async throws {
        try await withService { service, port in
            let (_, status) = try await detach(
                #"{"tasks":[{"kind":"echo","delay_ms":60000},{"kind":"echo","delay_ms":60000},{"kind":"echo","value":2}]}"#, port: port
            )
            let id = try #require(status["job"]?.stringValue)
            let cancelled = try await HTTPExchange.send(port: port, method: "POST", path: "/v1/jobs/\(id)/cancel")
            #expect(cancelled.head.status == 200)
            #expect(await eventually(within: .seconds(10)) { service.admission.running == 0 })
            let text = try await scrape(port)
            #expect(subtaskEnds(text) == ["ok": 1, "error": 0, "timeout": 0, "cancelled": 2])
        }
    }

    @Test func subtasksCancelledByShutdownAreCountedOnce() async throws {
        var configuration = FanoutConfiguration()
        configuration.server.port = 0
        configuration.server.adminPort = nil
        configuration.shutdown.graceSeconds = 1
        let service = FanoutService(configuration: configuration, logger: Logger(label: "test"))
        try service.start()
        let port = try #require(service.port)
        async let serving: Void = service.serve()
        let connection = try await RawConnection.connect(port: port)
        defer { connection.close() }
        try await connection.send(RawRequest.job(
            #"{"tasks":[{"kind":"echo","value":1},{"kind":"echo","delay_ms":60000},{"kind":"echo","delay_ms":60000}],"heartbeat_ms":0}"#
        ))
        let head = try await connection.readHead()
        let drained = Task { await service.drain() }
        var lines: [String] = []
        while let line = try await connection.readLine(head) { lines.append(line) }
        #expect(lines.last?.contains(#""cancelled":2"#) == true)
        await drained.value
        await serving
        let text = service.metrics.exposition()
        #expect(subtaskEnds(text) == ["ok": 1, "error": 0, "timeout": 0, "cancelled": 2])
    }

    @Test func processAndBuildInfoFamilies() async throws {
        try await withService { _, port in
            let text = try await scrape(port)
            #expect((metric(text, "process_resident_memory_bytes") ?? 0) > 1_000_000)
            #expect((metric(text, "process_virtual_memory_bytes") ?? 0) > 1_000_000)
            #expect((metric(text, "process_open_fds") ?? 0) >= 3)
            #expect((metric(text, "process_max_fds") ?? 0) >= (metric(text, "process_open_fds") ?? .infinity))
            #expect((metric(text, "process_cpu_seconds_total") ?? -1) >= 0)
            let now = WallClock.now
            let started = try #require(metric(text, "process_start_time_seconds"))
            // The test process started before this test and at most a day ago.
            #expect(started <= now + 1 && started > now - 86400, "start \(started), now \(now)")
            #expect(metric(text, #"fanout_build_info{version="\#(FanoutService.version)"}"#) == 1)
            let document = try #require(ConfigurationLoader.readFile("openapi.yaml"), "run from the package root")
            let version = "\n  version: \(FanoutService.version)\n"
            #expect(String(decoding: document, as: UTF8.self).contains(version), "openapi.yaml's info.version is the build's")
        }
    }
}
