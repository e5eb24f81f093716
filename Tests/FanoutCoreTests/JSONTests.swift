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

    /// Refused, each with a reason naming the problem and the byte where it is (see JSONParser).
    @Test(arguments: [
        (Array(#"{"a":1,"a":2}"#.utf8), "duplicate member name \"a\"", 7),
        (Array(#"{"x":{"k":[],"k":null}}"#.utf8), "duplicate member name \"k\"", 13),
        // Past the four names held inline, and past the sixteen kept in a list.
        (Array(#"{"a":1,"b":2,"c":3,"d":4,"e":5,"c":6}"#.utf8), "duplicate member name \"c\"", 31),
        (Array(("{" + (0..<20).map { "\"m\($0)\":0" }.joined(separator: ",") + ",\"m3\":1}").utf8), "duplicate member name \"m3\"", 151),
        (Array(#"["\ud800"]"#.utf8), "lone surrogate \\ud800", 2),
        (Array(#""\ud800x""#.utf8), "lone surrogate \\ud800", 1),
        (Array(#""\udfff""#.utf8), "lone surrogate \\udfff", 1),
        (Array(#""\ud800\u0041""#.utf8), "invalid surrogate pair", 1),
        ([0x22, 0xFF, 0x22], "invalid UTF-8", 1),
        ([0x22, 0x61, 0xC3, 0x22], "invalid UTF-8", 2),  // truncated 2-byte sequence
        ([0x22, 0xC0, 0xAF, 0x22], "invalid UTF-8", 1),  // overlong "/"
        ([0x22, 0xED, 0xA0, 0x80, 0x22], "invalid UTF-8", 1),  // a surrogate encoded in UTF-8
        ([0x22, 0xF4, 0x90, 0x80, 0x80, 0x22], "invalid UTF-8", 1),  // past U+10FFFF
        ([0x22, 0x5C, 0x6E, 0xE2, 0x82, 0x22], "invalid UTF-8", 3),  // after an escape
        ([0x22, 0xE2, 0x82], "invalid UTF-8", 1),  // truncated at the end of input
    ])
    func refusesWhatParsersDisagreeOn(bytes: [UInt8], reason: String, offset: Int) {
        let error = #expect(throws: JSONParser.Error.self) { try JSONParser.parse(bytes) }
        #expect(error?.reason.contains(reason) == true, "\(String(describing: error))")
        #expect(error?.offset == offset, "\(String(describing: error))")
    }

    @Test func acceptsManyDistinctMemberNames() throws {
        let names = (0..<40).map { "m\($0)" }
        let value = try JSONParser.parse(Array(("{" + names.map { "\"\($0)\":0" }.joined(separator: ",") + "}").utf8))
        #expect(names.allSatisfy { value[$0] == .number(0) })
        // The empty name is a name like any other.
        #expect(throws: JSONParser.Error.self) { try JSONParser.parse(Array(#"{"":1,"":2}"#.utf8)) }
        #expect(try JSONParser.parse(Array(#"{"":1,"a":2}"#.utf8))["a"] == .number(2))
    }

    @Test func acceptsWhatIsWellFormed() throws {
        // Every UTF-8 length, raw and escaped, and the largest scalar.
        let text = "\"é€😀\u{10FFFF}\\u00e9\\u20ac\\ud83d\\ude00\\udbff\\udfff\""
        #expect(try JSONParser.parse(Array(text.utf8)) == .string("é€😀\u{10FFFF}é€😀\u{10FFFF}"))
        // The same name in different objects is no duplicate; nor are many distinct names.
        _ = try JSONParser.parse(Array(#"[{"a":1},{"a":2},{"a":{"a":3}}]"#.utf8))
        let wide = "{" + (0..<1000).map { "\"k\($0)\":\($0)" }.joined(separator: ",") + "}"
        #expect(try JSONParser.parse(Array(wide.utf8))["k999"] == .number(999))
        let repeated = "{" + (0..<1000).map { "\"k\($0)\":\($0)" }.joined(separator: ",") + ",\"k500\":0}"
        #expect(throws: JSONParser.Error.self) { try JSONParser.parse(Array(repeated.utf8)) }
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

    @Test func writerGrowsFromNoBufferAndTakeLeavesItEmpty() {
        var writer = JSONWriter(capacity: 0)
        #expect(writer.isEmpty && writer.bytes == [])
        var expected: [UInt8] = []
        for round in 0..<200 {
            // Runs longer than the buffer's doubling, single bytes, and another writer's bytes.
            let text = String(repeating: "x", count: round % 70)
            writer.write(string: text)
            writer.append(UInt8(ascii: ","))
            expected += Array("\"\(text)\",".utf8)
        }
        var other = JSONWriter(capacity: 1)
        other.write(int: -1234567890123)
        writer.append(other)
        expected += Array("-1234567890123".utf8)
        #expect(writer.count == expected.count)
        #expect(writer.bytes == expected)
        #expect(writer.take() == expected)
        #expect(writer.isEmpty && writer.count == 0 && writer.bytes == [])
        writer.raw("{}")
        #expect(writer.take() == Array("{}".utf8))
    }

    /// What it wrote, again, also when the copy grows the buffer (so the source moves first).
    @Test func writerAppendsWhatItWroteAgainAcrossAGrowth() {
        var writer = JSONWriter(capacity: 8)
        writer.raw("id:")
        writer.write(int: 98765)
        #expect(writer.count == 8, "full")
        writer.appendWritten(3..<8)
        writer.appendWritten(0..<0)
        writer.appendWritten(0..<3)
        #expect(String(decoding: writer.bytes, as: UTF8.self) == "id:9876598765id:")
    }

    @Test func sharedNamesAreTheParsersStringsWhereverTheDocumentSpellsThem() throws {
        // Names of 1, 8, 9 and 16 bytes (the packing's word edges), one too long to share.
        let names = ["a", "delay_ms", "timeout_m", "sixteen_bytes_ab", "seventeen_bytes_a"]
        let text = #"{"a":"delay_ms","delay_ms":1,"timeout_m":"timeout_mx","sixteen_bytes_ab":"sixteen_bytes_ac","seventeen_bytes_a":"\u0061","b":"\u0061"}"#
        var parser = JSONParser(bytes: Array(text.utf8), shared: JSONParser.SharedNames(names))
        let shared = try parser.parseValue()
        // Exactly what parsing without the table gives: near misses and escapes are decoded as before.
        #expect(shared == (try JSONParser.parse(Array(text.utf8))))
        #expect(shared["a"] == .string("delay_ms"))
        #expect(shared["timeout_m"] == .string("timeout_mx"))
        #expect(shared["sixteen_bytes_ab"] == .string("sixteen_bytes_ac"))
        #expect(shared["seventeen_bytes_a"] == .string("a"))
        #expect(shared["b"] == .string("a"))
    }

    /// Past 64 shared names the rest are not shared; every name is still told apart, shared or
    /// not, however it is spelt, and the codes say which shared ones an object had.
    @Test func memberCodesTellSharedNamesApart() throws {
        let names = (0..<70).map { "n\($0)" }
        let table = JSONParser.SharedNames(names)
        let shared = names.filter { table.code(of: $0) != nil }
        #expect(shared.count == 64)
        #expect(Set((shared.compactMap { table.code(of: $0) })) == Set(0..<64))
        let unshared = try #require(names.first { table.code(of: $0) == nil })
        let first = try #require(shared.first)

        func parse(_ text: String) throws(JSONParser.Error) -> (JSONValue, JSONParser.MemberCodes) {
            var parser = JSONParser(bytes: Array(text.utf8), shared: table)
            var members: [(String, JSONValue)] = []
            var codes = JSONParser.MemberCodes()
            let value = try parser.parseValue(reusing: &members, codes: &codes)
            try parser.finish()
            return (value, codes)
        }
        let (value, codes) = try parse("{\"\(first)\":1,\"\(unshared)\":2,\"other\":3}")
        #expect(value == (try JSONParser.parse(Array("{\"\(first)\":1,\"\(unshared)\":2,\"other\":3}".utf8))))
        #expect(codes.mask == 1 << UInt64(table.code(of: first)!))
        #expect(codes.others)
        #expect(codes.mayHave(table.code(of: first)) && !codes.mayHave(table.code(of: shared[1])))
        #expect(codes.mayHave(nil), "a name not shared is only found by looking")
        #expect(!codes.allIn(~0), "it had names not shared")
        #expect(try parse("{\"\(first)\":1}").1.allIn(table.mask(of: [first])))
        #expect(try !parse("{\"\(first)\":1,\"\(shared[1])\":2}").1.allIn(table.mask(of: [first])))
        for repeated in [first, unshared, "other"] {
            let escaped = "\\u00" + String(Array(repeated.utf8)[0], radix: 16) + String(repeated.dropFirst())
            #expect(throws: JSONParser.Error.self, "\(repeated)") { try parse("{\"\(repeated)\":1,\"\(escaped)\":2}") }
        }
        // The NUL an escape can put after a name makes another name.
        #expect(try parse("{\"\(first)\":1,\"\(first)\\u0000\":2}").1.others)
    }
}
