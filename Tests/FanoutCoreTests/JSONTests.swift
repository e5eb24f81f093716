import Testing

@testable import FanoutCore

@Suite("JSON parser and writer")
struct JSONTests {
    @Test func parsesEveryKindOfValue() throws {
        let value = try JSONParser.parse(Array(#" {"a": [1, -2.5, 3e2, true, false, null], "b": "x\"\\\/\n\u00e9\ud83d\ude00", "c": {}} "#.utf8))
        #expect(value["a"] == .array([.number(1), .number(-2.5), .number(300), .bool(true), .bool(false), .null]))
        #expect(value["b"] == .string("x\"\\/\né😀"))
        #expect(value["c"] == .object([]))
    }

    @Test(arguments: [
        "", "{", "[1,]", "{\"a\":}", "01", "1.", "-", "\"abc", "tru", "{\"a\" 1}", "[1 2]", "\"\u{01}\"", "{} x", "\"\\x\"", "1e",
    ])
    func rejectsMalformedInput(_ text: String) {
        #expect(throws: JSONParser.Error.self) { try JSONParser.parse(Array(text.utf8)) }
    }

    @Test func limitsNesting() throws {
        let deep = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        let error = #expect(throws: JSONParser.Error.self) { try JSONParser.parse(Array(deep.utf8)) }
        #expect(error?.reason.contains("nesting") == true)
        _ = try JSONParser.parse(Array((String(repeating: "[", count: 60) + String(repeating: "]", count: 60)).utf8))
    }

    @Test func writesCompactJSONWithoutRawNewlines() throws {
        let value: JSONValue = .object([
            ("n", .number(1)), ("f", .number(0.5)), ("big", .number(-12345678901)),
            ("s", .string("line\nbreak \"quoted\" tab\t\u{01}")), ("a", .array([.null, .bool(true)])),
        ])
        let text = value.jsonText
        #expect(text == #"{"n":1,"f":0.5,"big":-12345678901,"s":"line\nbreak \"quoted\" tab\t\u0001","a":[null,true]}"#)
        #expect(!text.contains("\n"))
        #expect(try JSONParser.parse(Array(text.utf8)) == value)
    }

    @Test func writesMillisecondsWithOneDecimal() {
        var writer = JSONWriter()
        writer.write(milliseconds: 10.44)
        writer.raw(" ")
        writer.write(milliseconds: 2001.75)
        writer.raw(" ")
        writer.write(milliseconds: 0)
        #expect(String(decoding: writer.bytes, as: UTF8.self) == "10.4 2001.8 0.0")
    }
}
