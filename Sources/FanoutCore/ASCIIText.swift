extension StringProtocol {
    /// Without leading and trailing ASCII whitespace (spaces, tabs, line breaks): header values,
    /// list entries, configuration values. Works on the UTF-8 view (no grapheme breaking) and
    /// returns a slice (no copy).
    public func trimmingASCIIWhitespace() -> Substring {
        func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || (0x09...0x0D).contains(byte) }
        let text = Substring(self)
        let utf8 = text.utf8
        var start = utf8.startIndex
        var end = utf8.endIndex
        while start < end, isSpace(utf8[start]) { utf8.formIndex(after: &start) }
        while end > start, isSpace(utf8[utf8.index(before: end)]) { utf8.formIndex(before: &end) }
        return text[start..<end]
    }
}

/// What a `Content-Type` says.
public enum MediaType {
    /// JSON: `application/json` or an `application/*+json` type (`application/problem+json`, …),
    /// any parameters, any case, spaces around the type ignored. Compared on the bytes, without
    /// copying or lower-casing the header.
    public static func isJSON(_ contentType: String?) -> Bool {
        guard let contentType else { return false }
        let end = contentType.utf8.firstIndex(of: UInt8(ascii: ";")) ?? contentType.endIndex
        let type = contentType[..<end].trimmingASCIIWhitespace().utf8
        if matches(type, "application/json") { return true }
        return type.count >= 17 && matches(type.prefix(12), "application/") && matches(type.suffix(5), "+json")
    }

    /// Equal to a lower-case ASCII literal, letters in either case.
    private static func matches(_ bytes: some Collection<UInt8>, _ lower: StaticString) -> Bool {
        let literal = UnsafeBufferPointer(start: lower.utf8Start, count: lower.utf8CodeUnitCount)
        guard bytes.count == literal.count else { return false }
        return zip(bytes, literal).allSatisfy { byte, expected in
            ((0x41...0x5A).contains(byte) ? byte | 0x20 : byte) == expected
        }
    }
}
