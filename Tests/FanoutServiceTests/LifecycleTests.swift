import FanoutCore
import Logging
import TestSupport
import Testing

@testable import FanoutService

@Suite("Health, load shedding, metrics and drain")
struct LifecycleTests {
    @Test func healthEndpointsAnswer() async throws {
        try await withService { _, port in
            for path in ["/livez", "/healthz"] {
                let exchange = try await HTTPExchange.send(port: port, method: "GET", path: path)
                #expect(exchange.head.status == 200)
                #expect(exchange.text == "ok\n")
            }
            #expect(try await HTTPExchange.send(port: port, method: "GET", path: "/readyz").head.status == 200)
        }
    }

    @Test func shedsLoadWhenSaturated() async throws {
        try await withService({ $0.limits.maxConcurrentJobs = 1 }) { service, port in
            let connection = try await RawConnection.connect(port: port)
            defer { connection.close() }
            try await connection.send(RawRequest.job(#"{"tasks":[{"kind":"echo","delay_ms":400}]}"#))
            #expect(try await connection.readHead().status == 200)
            let refused = try await HTTPExchange.send(
                port: port, method: "POST", path: "/v1/jobs", headers: [("Content-Type", "application/json")], body: #"{"tasks":[{"kind":"echo"}]}"#
            )
            #expect(refused.head.status == 503)
            #expect(refused.head.header("Retry-After") != nil)
            _ = try problem(refused)
            #expect(try await HTTPExchange.send(port: port, method: "GET", path: "/readyz").head.status == 503)
            #expect(await eventually(within: .seconds(2)) { service.admission.running == 0 })
            #expect(try await HTTPExchange.send(port: port, method: "GET", path: "/readyz").head.status == 200)
        }
    }

    @Test func drainLetsShortJobsFinishAndCutsNone() async throws {
        var configuration = FanoutConfiguration()
        configuration.server.port = 0
        configuration.server.adminPort = 0
        configuration.shutdown.graceSeconds = 1
        let service = FanoutService(configuration: configuration, logger: .init(label: "test"))
        try service.start()
        let port = try #require(service.port)

        let short = try await RawConnection.connect(port: port)
        try await short.send(RawRequest.job(#"{"tasks":[{"kind":"echo","delay_ms":300,"value":1}]}"#))
        let long = try await RawConnection.connect(port: port)
        try await long.send(RawRequest.job(#"{"tasks":[{"kind":"echo","delay_ms":100},{"kind":"echo","delay_ms":30000},{"kind":"echo","delay_ms":30000}]}"#))
        let shortHead = try await short.readHead()
        let longHead = try await long.readHead()

        let drained = Task { await service.drain() }
        #expect(await eventually(within: .seconds(1)) { service.admission.isDraining })
        let readiness = try await HTTPExchange.send(port: port, method: "GET", path: "/readyz")
        #expect(readiness.head.status == 503)
        let refused = try await HTTPExchange.send(
            port: port, method: "POST", path: "/v1/jobs", headers: [("Content-Type", "application/json")], body: #"{"tasks":[{"kind":"echo"}]}"#
        )
        #expect(refused.head.status == 503)
        #expect(try problem(refused)["type"]?.stringValue?.hasSuffix("draining") == true)

        var shortLines: [JSONValue] = []
        while let line = try await short.readLine(shortHead) { shortLines.append(try JSONParser.parse(Array(line.utf8))) }
        #expect(shortLines.map { $0["event"]?.stringValue } == ["result", "end"], "a job that ends within the grace is untouched")
        #expect(shortLines.first?["status"] == .string("ok"))

        var longLines: [JSONValue] = []
        while let line = try await long.readLine(longHead) { longLines.append(try JSONParser.parse(Array(line.utf8))) }
        #expect(longLines.map { $0["status"]?.stringValue ?? $0["event"]?.stringValue } == ["ok", "cancelled", "cancelled", "end"])
        #expect(longLines.last?["cancelled"] == .number(2))
        await drained.value
        short.close()
        long.close()
    }

    @Test func exposesPrometheusMetrics() async throws {
        try await withService { _, port in
            _ = try await JobStream.run(#"{"tasks":[{"kind":"echo","value":1},{"kind":"echo","error":"x"}]}"#, port: port)
            _ = try await HTTPExchange.send(port: port, method: "GET", path: "/nope")
            let exchange = try await HTTPExchange.send(port: port, method: "GET", path: "/metrics")
            #expect(exchange.head.status == 200)
            #expect(exchange.head.header("Content-Type")?.hasPrefix("text/plain") == true)
            let text = exchange.text
            #expect(metric(text, #"fanout_jobs_total{outcome="failed"}"#) == 1)
            #expect(metric(text, #"fanout_subtasks_total{kind="echo",status="ok"}"#) == 1)
            #expect(metric(text, #"fanout_subtasks_total{kind="echo",status="error"}"#) == 1)
            #expect(metric(text, #"fanout_rejections_total{reason="not-found"}"#) == 1)
            #expect(metric(text, "fanout_jobs_in_flight") == 0)
            #expect(metric(text, "fanout_open_streams") != nil)
            #expect(text.contains("fanout_job_duration_seconds_bucket"))
            #expect((metric(text, "fanout_stream_bytes_total") ?? 0) > 100)
        }
    }
}

@Suite("API description")
struct OpenAPITests {
    @Test func servesTheRepositorysOpenAPIDocument() async throws {
        let file = try #require(ConfigurationLoader.readFile("openapi.yaml"), "run from the package root")
        try await withService { _, port in
            let exchange = try await HTTPExchange.send(port: port, method: "GET", path: "/v1/openapi.yaml")
            #expect(exchange.head.status == 200)
            #expect(exchange.head.header("Content-Type")?.contains("yaml") == true)
            #expect(exchange.body == file, "the served document is the file (embedded with .embedInCode)")
        }
    }
}
