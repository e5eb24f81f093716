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
    /// Counts the digits from the bit length (``decimalDigits(_:)``), then writes two at a time
    /// from the back, each pair one 2-byte store from a table of `00`–`99`: one division for two
    /// digits (a 100,000-line job writes 500,000 numbers).
    @inlinable
    public static func writeDecimal(
        _ value: UInt, minimumDigits: Int = 1, into buffer: UnsafeMutableBufferPointer<UInt8>, at count: inout Int
    ) {
        let digits = max(decimalDigits(value), minimumDigits, 1)
        let pairs = UnsafeRawPointer(decimalPairs.utf8Start)
        let text = UnsafeMutableRawPointer(buffer.baseAddress!)
        var position = count &+ digits
        var rest = value
        while rest >= 100 {
            let pair = Int(truncatingIfNeeded: rest % 100) &* 2
            rest /= 100
            position &-= 2
            text.storeBytes(of: pairs.loadUnaligned(fromByteOffset: pair, as: UInt16.self), toByteOffset: position, as: UInt16.self)
        }
        if rest >= 10 {
            position &-= 2
            let pair = Int(truncatingIfNeeded: rest) &* 2
            text.storeBytes(of: pairs.loadUnaligned(fromByteOffset: pair, as: UInt16.self), toByteOffset: position, as: UInt16.self)
        } else {
            position &-= 1
            text.storeBytes(of: UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: rest), toByteOffset: position, as: UInt8.self)
        }
        while position > count {
            position &-= 1
            text.storeBytes(of: UInt8(ascii: "0"), toByteOffset: position, as: UInt8.self)
        }
        count &+= digits
    }

    /// How many decimal digits `value` has (0 for 0): the bit length times log10(2) (1233 / 4096)
    /// is the count or one less, and one comparison with a power of ten tells which. The loop of
    /// comparisons it replaces took one round per digit.
    @inlinable
    static func decimalDigits(_ value: UInt) -> Int {
        let bits = UInt.bitWidth &- (value | 1).leadingZeroBitCount
        let guess = (bits &* 1233) &>> 12
        return value >= powerOfTen(guess) ? guess &+ 1 : guess
    }

    /// 10 to the `exponent` (0–19, all that fit a `UInt`): a switch the compiler makes a table of.
    @inlinable
    static func powerOfTen(_ exponent: Int) -> UInt {
        switch exponent {
        case 0: 1
        case 1: 10
        case 2: 100
        case 3: 1_000
        case 4: 10_000
        case 5: 100_000
        case 6: 1_000_000
        case 7: 10_000_000
        case 8: 100_000_000
        case 9: 1_000_000_000
        case 10: 10_000_000_000
        case 11: 100_000_000_000
        case 12: 1_000_000_000_000
        case 13: 10_000_000_000_000
        case 14: 100_000_000_000_000
        case 15: 1_000_000_000_000_000
        case 16: 10_000_000_000_000_000
        case 17: 100_000_000_000_000_000
        case 18: 1_000_000_000_000_000_000
        default: 10_000_000_000_000_000_000
        }
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
