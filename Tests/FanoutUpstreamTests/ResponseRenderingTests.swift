import FanoutCore
import Testing

@testable import FanoutUpstream

/// How an upstream's answer becomes the result's `value`.
@Suite("Response rendering")
struct ResponseRenderingTests {
    func render(_ contentType: String?, _ body: [UInt8]) -> JSONValue {
        let headers = contentType.map { [(name: "Content-Type", value: $0)] } ?? []
        return UpstreamResponse(status: 200, headers: headers, body: body).rendered(attempts: 1)
    }

    @Test func jsonContentTypesAreParsed() {
        #expect(render("application/json", Array(#"[1,"a"]"#.utf8))["body"] == .array([.number(1), .string("a")]))
        #expect(render("Application/Problem+JSON; charset=utf-8", Array(#"{"a":null}"#.utf8))["body"] == .object([("a", .null)]))
        #expect(render("application/json", Array("not json".utf8))["body"] == .string("not json"), "invalid JSON stays text")
        #expect(render("application/json", [])["body"] == .string(""))
        #expect(render("text/plain", Array(#"{"a":1}"#.utf8))["body"] == .string(#"{"a":1}"#), "only a JSON type is parsed")
        #expect(render(nil, Array("hi".utf8))["body"] == .string("hi"))
    }

    @Test func nonUTF8BytesAreBase64WithAMarker() {
        let value = render("image/png", [0x89, 0x50, 0x4E, 0x47])
        #expect(value["body"] == .string("iVBORw=="))
        #expect(value["body_encoding"] == .string("base64"))
        #expect(render("text/plain", Array("héllo".utf8))["body_encoding"] == nil)
    }

    @Test func headersAreLowerCasedAndRepeatsJoined() {
        let response = UpstreamResponse(
            status: 201,
            headers: [("Set-Cookie", "a=1"), ("X-One", "1"), ("set-cookie", "b=2")],
            body: []
        )
        let value = response.rendered(attempts: 3)
        #expect(value["status"] == .number(201))
        #expect(value["headers"] == .object([("set-cookie", .string("a=1, b=2")), ("x-one", .string("1"))]))
        #expect(value["attempts"] == .number(3))
    }

    /// Past the names found by a scan, repeats are still joined onto the first of their name.
    @Test func manyHeadersKeepTheirOrderAndJoinRepeats() {
        let names = (0..<40).map { "X-H\($0)" }
        var headers = names.map { (name: $0, value: "a") }
        headers += names.reversed().map { (name: $0.lowercased(), value: "b") }
        let rendered = UpstreamResponse(status: 200, headers: headers, body: []).rendered(attempts: 1)
        #expect(rendered["headers"] == .object(names.map { ($0.lowercased(), .string("a, b")) }))
    }

    @Test(arguments: [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE="), ("foobar", "Zm9vYmFy")])
    func base64MatchesRFC4648(text: String, encoded: String) {
        #expect(Base64.encode(Array(text.utf8)) == encoded)
    }
}
