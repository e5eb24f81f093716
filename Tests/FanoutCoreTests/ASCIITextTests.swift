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

    @Test func keepsNonASCIISpaces() {
        #expect("\u{00A0}x\u{00A0}".trimmingASCIIWhitespace() == "\u{00A0}x\u{00A0}")
    }
}
