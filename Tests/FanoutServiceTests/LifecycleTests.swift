import FanoutCore
import Logging
import MicroHTTPServer
import ServiceTestSupport
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
        async let serving: Void = service.serve()

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
        await serving
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
            #expect(metric(text, #"fanout_rejections_total{reason="not_found"}"#) == 1)
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

@Suite("Refusals on the head, and the service's own lifetime")
struct HeadAndLifetimeTests {
    /// Sends a job head announcing a body, with `Expect: 100-continue`, and returns the first answer.
    func firstAnswer(port: Int, path: String = "/v1/jobs", method: String = "POST", headers: [(String, String)]) async throws -> RawConnection.Head {
        let connection = try await RawConnection.connect(port: port)
        defer { connection.close() }
        var text = "\(method) \(path) HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\nExpect: 100-continue\r\n"
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        try await connection.send(text + "\r\n")
        return try await connection.readHead()
    }

    @Test func refusalsComeBeforeAnyBodyIsAskedFor() async throws {
        try await withService({ $0.auth.tokens = ["s3cret"] }) { _, port in
            let json = ("Content-Type", "application/json")
            let bearer = ("Authorization", "Bearer s3cret")
            let unauthorized = try await firstAnswer(port: port, headers: [json])
            let unknown = try await firstAnswer(port: port, path: "/v1/nothing", headers: [json, bearer])
            let wrongMethod = try await firstAnswer(port: port, method: "PUT", headers: [json, bearer])
            let notJSON = try await firstAnswer(port: port, headers: [("Content-Type", "text/plain"), bearer])
            let good = try await firstAnswer(port: port, headers: [json, bearer])
            #expect(unauthorized.status == 401)
            #expect(unknown.status == 404)
            #expect(wrongMethod.status == 405)
            #expect(notJSON.status == 415)
            #expect(good.status == 100, "a good head is asked for its body")
        }
    }

    @Test func bodiesOverTheBudgetGetAProblem503() async throws {
        try await withService({
            $0.server.maxBodyBytes = 64 * 1024
            $0.server.maxPendingBodyBytes = 64 * 1024
        }) { service, port in
            let holder = try await RawConnection.connect(port: port)
            defer { holder.close() }
            try await holder.send("POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 40000\r\nExpect: 100-continue\r\n\r\n")
            #expect(try await holder.readHead().status == 100)
            #expect(service.server.pendingBodyBytes == 40000)
            let refused = try await HTTPExchange.send(
                port: port, method: "POST", path: "/v1/jobs", headers: [("Content-Type", "application/json")],
                body: #"{"tasks":[{"kind":"echo","value":"\#(String(repeating: "v", count: 30000))"}]}"#
            )
            #expect(refused.head.status == 503)
            #expect(refused.head.header("Retry-After") == "1")
            #expect(try problem(refused)["type"]?.stringValue?.hasSuffix("body-budget") == true)
        }
    }

    @Test(arguments: [0, 16 * 1024])
    func jobsDecodedInATaskStreamAsAnyOther(inlineBodyBytes: Int) async throws {
        try await withService({ $0.server.inlineBodyBytes = inlineBodyBytes }) { service, port in
            let connection = try await RawConnection.connect(port: port)
            defer { connection.close() }
            let big = String(repeating: "b", count: 20_000)
            for (job, total) in [
                (#"{"tasks":[{"kind":"echo","value":1},{"kind":"echo","value":2,"delay_ms":20}]}"#, 2),
                (#"{"tasks":[{"kind":"echo","value":"\#(big)"},{"kind":"echo","value":3}]}"#, 2),
                (#"{"tasks":[{"kind":"echo","value":4}]}"#, 1),
            ] {
                let stream = try await JobStream.run(job, port: port, on: connection)
                #expect(stream.head.status == 200)
                stream.checkInvariants(total: total)
            }
            #expect(service.server.pendingBodyBytes == 0)
        }
    }

    @Test func aStoppedServiceIsFreed() async throws {
        weak var weakService: FanoutService?
        weak var weakServer: HTTPServer?
        do {
            var configuration = FanoutConfiguration()
            configuration.server.port = 0
            configuration.server.adminPort = 0
            configuration.shutdown.graceSeconds = 1
            let service = FanoutService(configuration: configuration, logger: Logger(label: "test"))
            weakService = service
            weakServer = service.server
            try service.start()
            let port = try #require(service.port)
            async let serving: Void = service.serve()
            let job = try await JobStream.run(#"{"tasks":[{"kind":"echo","value":1,"delay_ms":10}]}"#, port: port)
            job.checkInvariants(total: 1)
            #expect(try await HTTPExchange.send(port: port, method: "GET", path: "/metrics").head.status == 200)
            await service.drain()
            await serving
        }
        #expect(await eventually(within: .seconds(3)) { weakService == nil && weakServer == nil }, "no cycle keeps the service alive")
    }

    @Test func aCancelledDrainDoesNotWaitOutTheGrace() async throws {
        var configuration = FanoutConfiguration()
        configuration.server.port = 0
        configuration.server.adminPort = 0
        configuration.shutdown.graceSeconds = 60
        let service = FanoutService(configuration: configuration, logger: Logger(label: "test"))
        try service.start()
        let port = try #require(service.port)
        async let serving: Void = service.serve()
        let connection = try await RawConnection.connect(port: port)
        defer { connection.close() }
        try await connection.send(RawRequest.job(#"{"tasks":[{"kind":"echo","delay_ms":60000}]}"#))
        #expect(try await connection.readHead().status == 200)
        let start = ContinuousClock.now
        let drain = Task { await service.drain() }
        drain.cancel()
        await drain.value
        // A drain honouring the 60 s grace (or spinning through it) would take a minute.
        #expect(ContinuousClock.now - start < .seconds(30))
        await serving
    }
}
