import FanoutCore
import ServiceTestSupport
import TestSupport
import Testing

@testable import FanoutService

/// `cors.*` through real sockets: preflights on the head, the allow and expose headers on every
/// kind of answer (stream, 202, problem), nothing for other origins, and nothing at all when off.
@Suite("CORS")
struct CORSTests {
    static let app = "http://app.example:3000"
    static let preflightHeaders = [
        ("Origin", app), ("Access-Control-Request-Method", "POST"),
        ("Access-Control-Request-Headers", "content-type, idempotency-key"),
    ]

    static func enable(_ origins: [String], credentials: Bool = false) -> (inout FanoutConfiguration) -> Void {
        { configuration in
            configuration.cors.allowOrigins = origins
            configuration.cors.allowCredentials = credentials
            configuration.cors.maxAgeSeconds = 120
        }
    }

    /// Every value of a (possibly repeated) header, split on commas, trimmed, lower-cased.
    static func listValues(_ head: RawConnection.Head, _ name: String) -> Set<String> {
        var values = Set<String>()
        for (field, value) in head.headers where field.lowercased() == name.lowercased() {
            for item in value.split(separator: ",") { values.insert(item.filter { $0 != " " }.lowercased()) }
        }
        return values
    }

    /// A preflight's head (a 204 has no body, so no body is read), then a GET on the same
    /// connection, which parses only if the 204 really carried no byte of body.
    static func preflight(port: Int, path: String = "/v1/jobs", headers: [(String, String)]) async throws -> RawConnection.Head {
        let connection = try await RawConnection.connect(port: port)
        defer { connection.close() }
        try await connection.send(RawRequest.text(method: "OPTIONS", path: path, headers: headers))
        let head = try await connection.readHead()
        if head.status == 204 {
            try await connection.send(RawRequest.text(method: "GET", path: "/livez"))
            let next = try await connection.readHead()
            #expect(next.status == 200, "the connection stays usable after the 204")
            _ = try await connection.readBody(next)
        }
        return head
    }

    static func corsHeaders(_ head: RawConnection.Head) -> [String] {
        head.headers.map { $0.0.lowercased() }.filter { $0.hasPrefix("access-control-") }
    }

    @Test func aPreflightFromAnAllowedOriginIsAnswered204OnTheHead() async throws {
        try await withService(Self.enable([Self.app, "https://other.example"])) { _, port in
            let head = try await Self.preflight(port: port, headers: Self.preflightHeaders)
            #expect(head.status == 204)
            #expect(head.header("Content-Length") == nil || head.header("Content-Length") == "0")
            #expect(head.header("Access-Control-Allow-Origin") == Self.app)
            #expect(head.header("Access-Control-Allow-Credentials") == nil)
            let methods = Self.listValues(head, "Access-Control-Allow-Methods")
            #expect(methods.isSuperset(of: ["get", "post", "delete", "head"]))
            let headers = Self.listValues(head, "Access-Control-Allow-Headers")
            #expect(headers.isSuperset(of: ["content-type", "idempotency-key", "authorization", "last-event-id", "prefer"]))
            #expect(head.header("Access-Control-Max-Age") == "120")
            #expect(Self.listValues(head, "Vary").contains("origin"))
            // The same for a retained job's route, whatever the method asked for.
            let delete = try await Self.preflight(
                port: port, path: "/v1/jobs/0123456789abcdef0123456789abcdef",
                headers: [("Origin", "HTTPS://OTHER.example"), ("Access-Control-Request-Method", "DELETE")]
            )
            #expect(delete.status == 204)
            #expect(delete.header("Access-Control-Allow-Origin") == "HTTPS://OTHER.example")
        }
    }

    @Test func aPreflightFromAnotherOriginGetsAProblemAndNoCORSHeader() async throws {
        try await withService(Self.enable([Self.app])) { _, port in
            let exchange = try await HTTPExchange.send(
                port: port, method: "OPTIONS", path: "/v1/jobs",
                headers: [("Origin", "http://evil.example"), ("Access-Control-Request-Method", "POST")]
            )
            #expect(exchange.head.status == 403)
            let document = try problem(exchange)
            #expect(document["type"]?.stringValue?.hasSuffix("origin-not-allowed") == true)
            #expect(Self.corsHeaders(exchange.head).isEmpty)
            // A near miss is another origin too: the port is part of it.
            let port80 = try await HTTPExchange.send(
                port: port, method: "OPTIONS", path: "/v1/jobs",
                headers: [("Origin", "http://app.example"), ("Access-Control-Request-Method", "POST")]
            )
            #expect(port80.head.status == 403)
            #expect(try await HTTPExchange.send(port: port, method: "GET", path: "/livez").head.status == 200)
        }
    }

    @Test func aStreamedJobFromAnAllowedOriginCarriesTheAllowAndExposeHeaders() async throws {
        try await withService(Self.enable([Self.app])) { _, port in
            let connection = try await RawConnection.connect(port: port)
            defer { connection.close() }
            let job = #"{"tasks":[{"kind":"echo","delay_ms":200,"value":"late"},{"kind":"echo","delay_ms":10,"value":"soon"}]}"#
            try await connection.send(RawRequest.text(
                method: "POST", path: "/v1/jobs", headers: [("Origin", Self.app), ("Content-Type", "application/json")], body: job
            ))
            let start = ContinuousClock.now
            let head = try await connection.readHead()
            #expect(head.status == 200)
            #expect(head.header("Content-Type") == "application/x-ndjson")
            #expect(head.header("Access-Control-Allow-Origin") == Self.app)
            #expect(Self.listValues(head, "Access-Control-Expose-Headers").isSuperset(of: ["x-job-id", "location", "retry-after"]))
            #expect(Self.listValues(head, "Vary").contains("origin"))
            var arrivals: [Duration] = []
            while let line = try await connection.readLine(head) {
                if line.contains(#""event":"result""#) { arrivals.append(.now - start) }
            }
            // Still streamed: the quick line does not wait for the slow one.
            #expect(arrivals.count == 2)
            if arrivals.count == 2 { #expect(arrivals[0] < arrivals[1]) }
        }
    }

    @Test func problemsAndTheDetachedAnswerCarryThemToo() async throws {
        try await withService({ configuration in
            Self.enable([Self.app])(&configuration)
            configuration.auth.tokens = ["s3cret"]
        }) { _, port in
            let refused = try await HTTPExchange.send(
                port: port, method: "POST", path: "/v1/jobs",
                headers: [("Origin", Self.app), ("Content-Type", "application/json")], body: #"{"tasks":[{"kind":"echo"}]}"#
            )
            #expect(refused.head.status == 401)
            _ = try problem(refused)
            #expect(refused.head.header("Access-Control-Allow-Origin") == Self.app)
            let detached = try await HTTPExchange.send(
                port: port, method: "POST", path: "/v1/jobs",
                headers: [("Origin", Self.app), ("Content-Type", "application/json"), ("Authorization", "Bearer s3cret")],
                body: #"{"detach":true,"tasks":[{"kind":"echo","delay_ms":10}]}"#
            )
            #expect(detached.head.status == 202)
            #expect(detached.head.header("Location")?.hasPrefix("/v1/jobs/") == true)
            #expect(detached.head.header("Access-Control-Allow-Origin") == Self.app)
            #expect(Self.listValues(detached.head, "Access-Control-Expose-Headers").contains("location"))
            // A plain OPTIONS (no preflight) is still the route's 405, with the allow header for the page.
            let options = try await HTTPExchange.send(port: port, method: "OPTIONS", path: "/v1/jobs", headers: [("Origin", Self.app)])
            #expect(options.head.status == 405)
            #expect(options.head.header("Access-Control-Allow-Origin") == Self.app)
        }
    }

    @Test func anotherOriginIsServedWithoutCORSHeaders() async throws {
        try await withService(Self.enable([Self.app])) { _, port in
            let exchange = try await HTTPExchange.send(
                port: port, method: "POST", path: "/v1/jobs",
                headers: [("Origin", "http://evil.example"), ("Content-Type", "application/json")],
                body: #"{"tasks":[{"kind":"echo","value":1}]}"#
            )
            #expect(exchange.head.status == 200)
            #expect(exchange.text.contains(#""event":"end""#))
            #expect(Self.corsHeaders(exchange.head).isEmpty)
            #expect(Self.listValues(exchange.head, "Vary").contains("origin"), "caches must not serve it to an allowed origin")
        }
    }

    @Test func theWildcardAnswersStarAndCredentialsEchoTheOrigin() async throws {
        try await withService(Self.enable(["*"])) { _, port in
            let head = try await Self.preflight(port: port, headers: Self.preflightHeaders)
            #expect(head.status == 204)
            #expect(head.header("Access-Control-Allow-Origin") == "*")
            #expect(head.header("Access-Control-Allow-Credentials") == nil)
        }
        try await withService(Self.enable([Self.app], credentials: true)) { _, port in
            let exchange = try await HTTPExchange.send(port: port, method: "GET", path: "/livez", headers: [("Origin", Self.app)])
            #expect(exchange.head.status == 200)
            #expect(exchange.head.header("Access-Control-Allow-Origin") == Self.app)
            #expect(exchange.head.header("Access-Control-Allow-Credentials") == "true")
        }
    }

    @Test func offByDefault() async throws {
        try await withService { _, port in
            let preflight = try await HTTPExchange.send(port: port, method: "OPTIONS", path: "/v1/jobs", headers: Self.preflightHeaders)
            #expect(preflight.head.status == 405)
            #expect(Self.corsHeaders(preflight.head).isEmpty)
            let job = try await HTTPExchange.send(
                port: port, method: "POST", path: "/v1/jobs",
                headers: [("Origin", Self.app), ("Content-Type", "application/json")], body: #"{"tasks":[{"kind":"echo"}]}"#
            )
            #expect(job.head.status == 200)
            #expect(Self.corsHeaders(job.head).isEmpty)
            #expect(job.head.header("Vary") == nil)
        }
    }

    @Test(arguments: [
        ("https://app.example/", "trailing slash"),
        ("app.example", "scheme://host"),
        ("https://", "no host"),
        ("https://app.example:99999", "invalid port"),
        ("https://user@app.example", "user info"),
        ("null", "scheme://host"),
    ])
    func refusesAnEntryThatIsNotAnOrigin(entry: String, reason: String) throws {
        #expect(throws: ConfigurationError.self) {
            try ConfigurationLoader(environment: ["FANOUT_CORS_ALLOW_ORIGINS": entry]).load(configPath: nil, overrides: [])
        }
        let error = #expect(throws: ConfigurationError.self) {
            try ConfigurationLoader(environment: [:]).load(configPath: nil, overrides: [("cors.allow_origins", entry)])
        }
        #expect(error?.description.hasPrefix("cors.allow_origins") == true, "\(reason)")
        #expect(error?.description.contains(entry) == true)
    }

    @Test func acceptsOriginsAndRefusesTheWildcardWithCredentials() throws {
        let loaded = try ConfigurationLoader(environment: ["FANOUT_CORS_ALLOW_ORIGINS": "http://127.0.0.1:8080, https://[::1]:8443,chrome-extension://abcdef"])
            .load(configPath: nil, overrides: [])
        #expect(loaded.cors.allowOrigins == ["http://127.0.0.1:8080", "https://[::1]:8443", "chrome-extension://abcdef"])
        #expect(throws: ConfigurationError.self) {
            try ConfigurationLoader(environment: [:]).load(configPath: nil, overrides: [("cors.allow_origins", "*"), ("cors.allow_credentials", "true")])
        }
        #expect(throws: ConfigurationError.self) {
            try ConfigurationLoader(environment: [:]).load(configPath: nil, overrides: [("cors.allow_origins", "*,https://app.example")])
        }
    }
}
