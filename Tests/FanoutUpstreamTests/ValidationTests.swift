import FanoutCore
import FanoutUpstream
import Testing

/// Field validation of `http` subtasks: every refusal names its field.
@Suite("http subtask validation")
struct ValidationTests {
    let runner = HTTPRunner(configuration: HTTPRunner.Configuration())

    func refusal(_ task: JSONValue, path: FieldPath = .task(3)) -> JobValidationError? {
        do {
            _ = try runner.decode(task, path: path)
            return nil
        } catch {
            return error
        }
    }

    @Test func defaultsAndNormalisation() throws {
        let task = try runner.decode(httpTask("HTTP://API.Example.COM:8080/a/b?c=d#frag"), path: "tasks[0]")
        #expect(task.method == "GET")
        #expect(task.retries == 0)
        #expect(task.hedgeAfter == nil)
        #expect(task.body == nil)
        #expect(task.url.scheme == .http)
        #expect(task.url.host == .name("api.example.com"))
        #expect(task.url.port == 8080)
        #expect(task.url.target == "/a/b?c=d")
        #expect(task.url.authority == "api.example.com:8080")
        #expect(task.url.description == "http://api.example.com:8080/a/b?c=d")

        let lower = try runner.decode(httpTask("https://example.com", ("method", .string("put")), ("retries", .number(2)), ("hedge_after_ms", .number(50))), path: "tasks[0]")
        #expect(lower.method == "PUT")
        #expect(lower.isIdempotent)
        #expect(lower.url.port == 443)
        #expect(lower.url.target == "/")
        #expect(lower.retries == 2)
        #expect(lower.hedgeAfter == .milliseconds(50))
    }

    @Test func oddHostSpellingsBecomeAddresses() throws {
        for (url, address) in [
            ("http://2130706433/", "127.0.0.1"), ("http://0x7f.1:81/", "127.0.0.1"), ("http://[::FFFF:127.0.0.1]/", "::ffff:127.0.0.1"),
            ("http://127.1/", "127.0.0.1"), ("http://017700000001/", "127.0.0.1"),
        ] {
            let task = try runner.decode(httpTask(url), path: "tasks[0]")
            #expect(task.url.host == .address(try #require(IPAddress(address))), "\(url)")
        }
    }

    @Test func aJSONBodyIsSentAsJSONAndAStringAsIs() throws {
        let json = try runner.decode(httpTask("http://example.com/", ("method", .string("POST")), ("body", .object([("a", .number(1))]))), path: "tasks[0]")
        #expect(json.body == Array(#"{"a":1}"#.utf8))
        #expect(json.headers.contains { $0.name == "content-type" && $0.value == "application/json" })
        let typed = try runner.decode(
            httpTask("http://example.com/", ("body", .array([.number(1), .number(2)])), ("headers", .object([("Content-Type", .string("application/vnd.x+json"))]))),
            path: "tasks[0]"
        )
        #expect(typed.headers.count == 1, "a given content type is kept, not doubled")
        let text = try runner.decode(httpTask("http://example.com/", ("body", .string("a=1&b=2"))), path: "tasks[0]")
        #expect(text.body == Array("a=1&b=2".utf8))
        #expect(text.headers.isEmpty)
    }

    @Test(arguments: [
        (JSONValue.object([("kind", .string("http"))]), "tasks[3].url", "required"),
        (httpTask("ftp://example.com/"), "tasks[3].url", "http or https"),
        (httpTask("example.com/path"), "tasks[3].url", "absolute"),
        (httpTask("http://user:secret@example.com/"), "tasks[3].url", "credentials"),
        (httpTask("http://127.0.0.1@example.com/"), "tasks[3].url", "credentials"),
        (httpTask("http://example.com:99999/"), "tasks[3].url", "port"),
        (httpTask("http://example.com:0/"), "tasks[3].url", "port"),
        (httpTask("http://1.2.3.4.5/"), "tasks[3].url", "number"),
        (httpTask("http://256.0.0.1/"), "tasks[3].url", "number"),
        (httpTask("http://exa mple.com/"), "tasks[3].url", "spaces"),
        (httpTask("http://example.com/a b"), "tasks[3].url", "spaces"),
        (httpTask("http://example.com\\@evil.com/"), "tasks[3].url", "backslash"),
        (httpTask("http://ex_ample!.com/"), "tasks[3].url", "invalid host"),
        (httpTask("http://[fe80::1%25eth0]/"), "tasks[3].url", "zone"),
        (httpTask("http://[1.2.3.4]/"), "tasks[3].url", "IPv6"),
        (httpTask("http://ëxample.com/"), "tasks[3].url", "ASCII"),
        (httpTask("http://example.com/{x}"), "tasks[3].url", "percent-encoded"),
        (httpTask("http:///path"), "tasks[3].url", "no host"),
        (.object([("kind", .string("http")), ("url", .number(42))]), "tasks[3].url", "string"),
        (httpTask("http://example.com/", ("method", .number(5))), "tasks[3].method", "string"),
        (httpTask("http://example.com/", ("method", .string("GET /x"))), "tasks[3].method", "HTTP method"),
        (httpTask("http://example.com/", ("method", .string("CONNECT"))), "tasks[3].method", "CONNECT"),
        (httpTask("http://example.com/", ("headers", .string("x"))), "tasks[3].headers", "object"),
        (httpTask("http://example.com/", ("headers", .object([("x-n", .number(1))]))), "tasks[3].headers.x-n", "string"),
        (httpTask("http://example.com/", ("headers", .object([("bad name", .string("v"))]))), "tasks[3].headers.bad name", "header name"),
        (httpTask("http://example.com/", ("headers", .object([("Host", .string("evil"))]))), "tasks[3].headers.Host", "set by the service"),
        (httpTask("http://example.com/", ("headers", .object([("x-a", .string("a\r\nx-b: b"))]))), "tasks[3].headers.x-a", "control"),
        (httpTask("http://example.com/", ("retries", .number(11))), "tasks[3].retries", "between 0 and 10"),
        (httpTask("http://example.com/", ("retries", .number(-1))), "tasks[3].retries", "between"),
        (httpTask("http://example.com/", ("retries", .number(1.5))), "tasks[3].retries", "integer"),
        (httpTask("http://example.com/", ("hedge_after_ms", .number(0))), "tasks[3].hedge_after_ms", "between 1"),
        (httpTask("http://example.com/", ("hedge_after_ms", .string("10"))), "tasks[3].hedge_after_ms", "integer"),
    ])
    func refusalsNameTheField(task: JSONValue, field: String, detail: String) throws {
        let error = try #require(refusal(task))
        #expect(error.field == field)
        #expect(error.detail.contains(detail), "\(error.detail)")
    }

    @Test func theJobDecoderNamesHTTPFieldsAndRefusesUnknownOnes() throws {
        var runners = RunnerRegistry()
        runners.register(runner)
        let decoder = JobDecoder(policy: JobPolicy(), runners: runners)
        let good = #"{"tasks":[{"kind":"http","url":"http://example.com/","retries":1}]}"#
        #expect(try decoder.decode(Array(good.utf8)).tasks.count == 1)
        let badURL = #"{"tasks":[{"kind":"http","url":"http://example.com/"},{"kind":"http","url":"gopher://x"}]}"#
        #expect(throws: JobValidationError(field: "tasks[1].url", detail: "must use http or https, not \"gopher\"")) {
            try decoder.decode(Array(badURL.utf8))
        }
        let unknown = #"{"tasks":[{"kind":"http","url":"http://example.com/","retry":1}]}"#
        #expect(throws: JobValidationError(field: "tasks[0].retry", detail: "is not a known field")) {
            try decoder.decode(Array(unknown.utf8))
        }
    }
}
