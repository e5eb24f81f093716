import FanoutCore
import ServiceTestSupport
import TestSupport
import Testing

@testable import FanoutService

@Suite("Errors before the stream")
struct RejectionTests {
    static let json = [("Content-Type", "application/json")]

    @Test(arguments: [
        (#"{"tasks": [1,"#, 400, nil as String?, "malformed-json"),
        (#"[1,2]"#, 400, nil, "invalid-job"),
        (#"{"tasks": "all"}"#, 400, "tasks", "invalid-job"),
        (#"{"tasks": [{"kind":"teleport"}]}"#, 400, "tasks[0].kind", "invalid-job"),
        (#"{"tasks": [{"id":"a","kind":"echo"},{"id":"a","kind":"echo"}]}"#, 400, "tasks[1].id", "invalid-job"),
        (#"{"tasks": [{"kind":"echo","delay_ms":-5}]}"#, 400, "tasks[0].delay_ms", "invalid-job"),
        (#"{"tasks": [{"kind":"echo"}], "concurrency": -1}"#, 400, "concurrency", "invalid-job"),
        (#"{"tasks": [{"kind":"echo"}], "order": "sideways"}"#, 400, "order", "invalid-job"),
        (#"{"tasks": [{"kind":"echo"}], "first": true}"#, 400, "first", "invalid-job"),
        (#"{"tasks": [{"kind":"echo"},{"kind":"echo"},{"kind":"echo"},{"kind":"echo"}]}"#, 413, "tasks", "too-many-tasks"),
    ])
    func refusesBadJobsWithProblemDetails(body: String, status: Int, field: String?, slug: String) async throws {
        try await withService({ $0.limits.maxTasks = 3 }) { _, port in
            let exchange = try await HTTPExchange.send(port: port, method: "POST", path: "/v1/jobs", headers: Self.json, body: body)
            #expect(exchange.head.status == status)
            let document = try problem(exchange)
            #expect(document["field"]?.stringValue == field)
            #expect(document["type"]?.stringValue?.hasSuffix(slug) == true)
            // The server stays up.
            #expect(try await HTTPExchange.send(port: port, method: "GET", path: "/livez").head.status == 200)
        }
    }

    @Test func refusesWhatIsNotJSON() async throws {
        try await withService { _, port in
            for headers in [[("Content-Type", "text/plain")], []] {
                let exchange = try await HTTPExchange.send(port: port, method: "POST", path: "/v1/jobs", headers: headers, body: "tasks")
                #expect(exchange.head.status == 415)
                _ = try problem(exchange)
            }
            let charset = try await HTTPExchange.send(
                port: port, method: "POST", path: "/v1/jobs", headers: [("Content-Type", "application/json; charset=utf-8")],
                body: #"{"tasks":[{"kind":"echo"}]}"#
            )
            #expect(charset.head.status == 200)
        }
    }

    /// What counts as JSON (`application/json`, any parameters, any `+json` suffix), compared
    /// without copying the header.
    @Test(arguments: [
        ("application/json", true), ("Application/JSON", true), (" application/json ; charset=utf-8", true),
        ("application/problem+json", true), ("APPLICATION/VND.X+JSON;v=1", true), ("application/+json", true),
        ("text/json", false), ("application/jsonx", false), ("application/json5", false), ("application/xjson", false),
        ("", false), (";application/json", false), ("text/plain+json", false),
    ])
    func recognisesJSONMediaTypes(contentType: String, isJSON: Bool) {
        #expect(MediaType.isJSON(contentType) == isJSON)
    }

    @Test func refusesBodiesOverTheCap() async throws {
        try await withService({ $0.server.maxBodyBytes = 1024 }) { _, port in
            let big = #"{"tasks":[{"kind":"echo","value":"\#(String(repeating: "z", count: 2000))"}]}"#
            let announced = try await HTTPExchange.send(port: port, method: "POST", path: "/v1/jobs", headers: Self.json, body: big)
            #expect(announced.head.status == 413)
            #expect(try problem(announced)["type"]?.stringValue?.hasSuffix("body-too-large") == true)

            let connection = try await RawConnection.connect(port: port)
            defer { connection.close() }
            let size = String(big.utf8.count, radix: 16)
            try await connection.send("POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n\(size)\r\n\(big)\r\n0\r\n\r\n")
            let head = try await connection.readHead()
            #expect(head.status == 413)
            _ = try await connection.readBody(head)
        }
    }

    @Test func answersWrongMethodsAndUnknownPaths() async throws {
        try await withService { _, port in
            // GET /v1/jobs lists retained jobs (SPEC v1.1); PUT is no method of the path.
            let put = try await HTTPExchange.send(port: port, method: "PUT", path: "/v1/jobs")
            #expect(put.head.status == 405)
            #expect(put.head.header("Allow") == "GET, HEAD, POST")
            _ = try problem(put)
            let post = try await HTTPExchange.send(port: port, method: "POST", path: "/healthz", headers: Self.json, body: "{}")
            #expect(post.head.status == 405)
            #expect(post.head.header("Allow") == "GET, HEAD")
            let missing = try await HTTPExchange.send(port: port, method: "GET", path: "/v2/nothing")
            #expect(missing.head.status == 404)
            _ = try problem(missing)
        }
    }

    @Test func requiresABearerTokenWhenConfigured() async throws {
        try await withService({ $0.auth.tokens = ["s3cret", "other"] }) { _, port in
            let job = #"{"tasks":[{"kind":"echo"}]}"#
            let none = try await HTTPExchange.send(port: port, method: "POST", path: "/v1/jobs", headers: Self.json, body: job)
            #expect(none.head.status == 401)
            #expect(none.head.header("WWW-Authenticate")?.hasPrefix("Bearer") == true)
            _ = try problem(none)
            let wrong = try await HTTPExchange.send(
                port: port, method: "POST", path: "/v1/jobs", headers: Self.json + [("Authorization", "Bearer s3cres")], body: job
            )
            #expect(wrong.head.status == 401)
            let right = try await HTTPExchange.send(
                port: port, method: "POST", path: "/v1/jobs", headers: Self.json + [("Authorization", "Bearer other")], body: job
            )
            #expect(right.head.status == 200)
            #expect(try await HTTPExchange.send(port: port, method: "GET", path: "/healthz").head.status == 200)
            #expect(try await HTTPExchange.send(port: port, method: "GET", path: "/metrics").head.status == 200)
        }
    }

    @Test func comparesTokensWholly() {
        #expect(BearerAuth.constantTimeEquals(Array("abc".utf8), Array("abc".utf8)))
        #expect(!BearerAuth.constantTimeEquals(Array("abc".utf8), Array("abd".utf8)))
        #expect(!BearerAuth.constantTimeEquals(Array("abc".utf8), Array("abcd".utf8)))
        #expect(!BearerAuth.constantTimeEquals([], Array("a".utf8)))
    }
}
