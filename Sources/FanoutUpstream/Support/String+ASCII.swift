extension Character {
    /// `0` to `9` only (`isNumber` also admits other scripts' digits and fractions).
    var isASCIIDigit: Bool { asciiValue.map { (0x30...0x39).contains($0) } ?? false }
}
