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
}
