import FanoutCore

extension Character {
    /// `0` to `9` only (`isNumber` also admits other scripts' digits and fractions).
    var isASCIIDigit: Bool { asciiValue.map(ASCII.isDigit) ?? false }
}
