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

/// ASCII text by the byte: what the service writes and compares without `Character`s or
/// interpolation (both cost thousands of instructions on paths every request takes).
public enum ASCII {
    /// `0`–`9` only (`Character.isNumber` also admits other scripts' digits and fractions).
    @inlinable
    public static func isDigit(_ byte: UInt8) -> Bool { byte &- UInt8(ascii: "0") < 10 }

    /// A hex digit's value (`0`–`9`, `a`–`f`, `A`–`F`), nil for any other byte.
    @inlinable
    public static func hexDigitValue(_ byte: UInt8) -> UInt8? {
        if isDigit(byte) { return byte &- UInt8(ascii: "0") }
        let letter = byte | 0x20
        return letter >= UInt8(ascii: "a") && letter <= UInt8(ascii: "f") ? letter - UInt8(ascii: "a") + 10 : nil
    }

    /// The byte with `A`–`Z` lower-cased.
    public static func lowercased(_ byte: UInt8) -> UInt8 {
        (0x41...0x5A).contains(byte) ? byte | 0x20 : byte
    }

    /// Equal but for the case of ASCII letters.
    public static func equalIgnoringCase(_ a: some Collection<UInt8>, _ b: some Collection<UInt8>) -> Bool {
        a.count == b.count && a.elementsEqual(b) { lowercased($0) == lowercased($1) }
    }

    /// Writes `value` in decimal at `buffer[count...]`, zero-padded to at least `minimumDigits`,
    /// and advances `count` past it (at most 20 digits, or `minimumDigits`). Inlinable, so that the
    /// line encoder's numbers, the log line's timestamp (seven numbers) and IPv4 text get it folded in.
    ///
    /// Counts the digits by comparison, then writes two at a time from the back, from a table of
    /// `00`–`99`: one division for two digits, where a division a digit to count them and another
    /// to write them cost ~30 instructions a digit (a 100,000-line job writes 500,000 numbers).
    @inlinable
    public static func writeDecimal(
        _ value: UInt, minimumDigits: Int = 1, into buffer: UnsafeMutableBufferPointer<UInt8>, at count: inout Int
    ) {
        var digits = 1
        var power: UInt = 10
        while digits < 20, value >= power {
            digits += 1
            power &*= 10
        }
        digits = max(digits, minimumDigits)
        let pairs = decimalPairs.utf8Start
        var position = count + digits
        var rest = value
        while rest >= 100 {
            let pair = Int(rest % 100) &* 2
            rest /= 100
            position -= 2
            buffer[position] = pairs[pair]
            buffer[position + 1] = pairs[pair + 1]
        }
        if rest >= 10 {
            let pair = Int(rest) &* 2
            position -= 2
            buffer[position] = pairs[pair]
            buffer[position + 1] = pairs[pair + 1]
        } else {
            position -= 1
            buffer[position] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: rest)
        }
        while position > count {
            position -= 1
            buffer[position] = UInt8(ascii: "0")
        }
        count += digits
    }

    /// `00` to `99`, two bytes each, for ``writeDecimal(_:minimumDigits:into:at:)``.
    @inlinable static var decimalPairs: StaticString {
        """
        00010203040506070809101112131415161718192021222324252627282930313233343536373839\
        40414243444546474849505152535455565758596061626364656667686970717273747576777879\
        8081828384858687888990919293949596979899
        """
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
        if ASCII.equalIgnoringCase(type, bytes("application/json")) { return true }
        return type.count >= 17 && ASCII.equalIgnoringCase(type.prefix(12), bytes("application/"))
            && ASCII.equalIgnoringCase(type.suffix(5), bytes("+json"))
    }

    /// A literal's bytes, read in place (a `String`'s UTF-8 view checks its storage on every byte).
    private static func bytes(_ literal: StaticString) -> UnsafeBufferPointer<UInt8> {
        UnsafeBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount)
    }
}
