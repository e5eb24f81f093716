import FanoutCore
import ServiceTestSupport
import TestSupport
import Testing

@testable import FanoutService

@Suite("Admin listener")
struct AdminListenerTests {
    @Test func servesProbesAndMetricsOnlyOnItsOwnPort() async throws {
        try await withService({ $0.server.adminPort = 0 }) { service, port in
            let admin = try #require(service.adminPort)
            #expect(admin != port)
            for path in ["/livez", "/healthz", "/readyz"] {
                let exchange = try await HTTPExchange.send(port: admin, method: "GET", path: path)
                #expect(exchange.head.status == 200, "\(path)")
            }
            let metrics = try await HTTPExchange.send(port: admin, method: "GET", path: "/metrics")
            #expect(metrics.head.status == 200)
            #expect(metrics.text.contains("fanout_jobs_in_flight"))
            let job = try await HTTPExchange.send(port: admin, method: "POST", path: "/v1/jobs", body: #"{"tasks":[{"kind":"echo"}]}"#)
            #expect(job.head.status == 404, "jobs are not served on the admin port")
            #expect(try problem(job)["status"] == .number(404))
        }
    }

    /// With every connection of the main listener taken, the admin listener still answers.
    @Test func answersWhileTheMainListenerIsFull() async throws {
        try await withService({
            $0.server.adminPort = 0
            $0.server.connectionLimit = 16
        }) { service, port in
            let admin = try #require(service.adminPort)
            var held: [RawConnection] = []
            defer { for connection in held { connection.close() } }
            for _ in 0..<32 {
                let connection = try await RawConnection.connect(port: port)
                try await connection.send("GET /livez HTTP/1.1\r\nHost: x\r\n")
                held.append(connection)
            }
            // The main listener is full: a probe there is not answered 200 (it waits, or is refused).
            let probe = try await RawConnection.connect(port: port)
            defer { probe.close() }
            try await probe.send("GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
            let mainAnswer = try? await probe.readHead(timeout: .milliseconds(500))
            #expect(mainAnswer?.status != 200, "the main listener has no slot left")
            for _ in 0..<20 {
                let exchange = try await HTTPExchange.send(port: admin, method: "GET", path: "/livez")
                #expect(exchange.head.status == 200)
            }
        }
    }

    @Test func refusesTheMainPort() throws {
        let loader = ConfigurationLoader(environment: ["FANOUT_SERVER_ADMIN_PORT": "8080"])
        #expect(throws: ConfigurationError.self) {
            try loader.load(configPath: "/dev/null/none", overrides: [])
        }
        var failure = ""
        do {
            _ = try ConfigurationLoader(environment: [:]).load(configPath: nil, overrides: [("server.admin_port", "8080"), ("server.port", "8080")])
        } catch {
            failure = error.description
        }
        #expect(failure.contains("server.admin_port"))
    }
}
