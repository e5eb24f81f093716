extension String {
    /// Without leading and trailing spaces, tabs and line breaks.
    /// Without leading and trailing ASCII whitespace (header values, list entries), working on the
    /// UTF-8 view: no grapheme breaking, and no copy when there is nothing to trim.
    func trimmingWhitespace() -> String {
        func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || (0x09...0x0D).contains(byte) }
        let utf8 = self.utf8
        var start = utf8.startIndex
        var end = utf8.endIndex
        while start < end, isSpace(utf8[start]) { start = utf8.index(after: start) }
        while end > start, isSpace(utf8[utf8.index(before: end)]) { end = utf8.index(before: end) }
        if start == utf8.startIndex, end == utf8.endIndex { return self }
        return String(self[start..<end])
    }
}

extension Character {
    /// `0` to `9` only (`isNumber` also admits other scripts' digits and fractions).
    var isASCIIDigit: Bool { asciiValue.map { (0x30...0x39).contains($0) } ?? false }
}
