import FanoutCore
import Testing

@Suite("ASCII text")
struct ASCIITextTests {
    @Test(arguments: [
        ("  a b \t", "a b"), ("\r\n x\n", "x"), ("", ""), (" \t ", ""), ("é ", "é"), ("none", "none"),
    ])
    func trimsASCIIWhitespaceOnly(text: String, trimmed: String) {
        #expect(text.trimmingASCIIWhitespace() == trimmed)
        #expect(Substring("[\(text)]").dropFirst().dropLast().trimmingASCIIWhitespace() == trimmed, "a slice trims the same")
    }

    /// The one digit and hex-digit test the decoders share, against every byte.
    @Test func digitsAndHexDigitsOfEveryByte() {
        let hex = Array("0123456789abcdef".utf8)
        for value in 0...255 {
            let byte = UInt8(value)
            let character = Character(Unicode.Scalar(byte))
            #expect(ASCII.isDigit(byte) == ("0"..."9").contains(character), "\(byte)")
            let expected = hex.firstIndex(of: byte | (character.isLetter ? 0x20 : 0)).map(UInt8.init)
            #expect(ASCII.hexDigitValue(byte) == (byte < 0x80 ? expected : nil), "\(byte)")
        }
    }

    @Test func keepsNonASCIISpaces() {
        #expect("\u{00A0}x\u{00A0}".trimmingASCIIWhitespace() == "\u{00A0}x\u{00A0}")
    }

    /// Decimal text as `String(_:)` writes it, at every length (each power of ten and one below),
    /// zero-padded where asked, after what the buffer already holds and no further.
    @Test func writesDecimalsOfEveryLength() {
        var values: [UInt] = [0, 1, 9, UInt.max, UInt.max - 1, 18_446_744_073_709_551_609]
        var power: UInt = 1
        for _ in 0..<19 {
            power *= 10
            values += [power - 1, power, power + 1, power / 2 + 7]
        }
        for value in values {
            for minimumDigits in [1, 2, 4, 7, 22] {
                var buffer = [UInt8](repeating: UInt8(ascii: "#"), count: 30)
                var count = 3
                buffer.withUnsafeMutableBufferPointer { ASCII.writeDecimal(value, minimumDigits: minimumDigits, into: $0, at: &count) }
                let text = String(value)
                let padded = String(repeating: "0", count: max(minimumDigits - text.count, 0)) + text
                #expect(String(decoding: buffer[3..<count], as: UTF8.self) == padded, "\(value), \(minimumDigits) digits at least")
                #expect(buffer[..<3].allSatisfy { $0 == UInt8(ascii: "#") } && buffer[count...].allSatisfy { $0 == UInt8(ascii: "#") })
            }
        }
    }
}
