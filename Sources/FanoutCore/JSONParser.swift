/// A strict RFC 8259 parser over UTF-8 bytes, with a nesting limit so hostile input cannot exhaust
/// the stack of the server thread it runs on.
///
/// Stricter than RFC 8259 requires, as I-JSON (RFC 7493) does, because parsers disagree on these and
/// a job must mean one thing to every parser that reads it (a proxy, a log pipeline, us):
/// - a repeated member name in an object is refused (others keep the first, the last, or both);
/// - invalid UTF-8 in a string is refused (others replace it with U+FFFD, or pass it through);
/// - an escaped lone surrogate (`"\ud800"`) is refused (it is no Unicode scalar: it cannot be
///   echoed back as valid UTF-8).
public struct JSONParser: Sendable {
    public struct Error: Swift.Error, Sendable, CustomStringConvertible {
        public var offset: Int
        public var reason: String
        public var description: String { "\(reason) at byte \(offset)" }
    }

    let bytes: [UInt8]
    private(set) var index = 0
    private var depth = 0
    private let maxDepth: Int
    private let shared: SharedNames?

    /// Parses one JSON document (surrounding whitespace allowed).
    public static func parse(_ bytes: [UInt8], maxDepth: Int = 64) throws(Error) -> JSONValue {
        var parser = JSONParser(bytes: bytes, maxDepth: maxDepth)
        parser.skipWhitespace()
        let value = try parser.parseValue()
        try parser.finish()
        return value
    }

    /// - Parameter shared: Strings to return as themselves where the document spells them (no
    ///   escapes), instead of a new `String` for each occurrence.
    init(bytes: [UInt8], maxDepth: Int = 64, shared: SharedNames? = nil) {
        self.bytes = bytes
        self.maxDepth = maxDepth
        self.shared = shared
    }

    private func error(_ reason: String) -> Error { Error(offset: index, reason: reason) }

    /// Inlined: called about a dozen times a subtask, mostly to find no whitespace.
    @inline(__always) private mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }

    mutating func parseValue() throws(Error) -> JSONValue {
        guard index < bytes.count else { throw error("unexpected end of input") }
        switch bytes[index] {
        case UInt8(ascii: "{"): return try parseObject()
        case UInt8(ascii: "["): return try parseArray()
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try expect("true"); return .bool(true)
        case UInt8(ascii: "f"): try expect("false"); return .bool(false)
        case UInt8(ascii: "n"): try expect("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try parseNumber())
        default: throw error("unexpected character")
        }
    }

    private mutating func expect(_ word: StaticString) throws(Error) {
        let count = word.utf8CodeUnitCount
        guard index + count <= bytes.count else { throw error("unexpected end of input") }
        for offset in 0..<count where bytes[index + offset] != word.utf8Start[offset] {
            throw error("invalid literal")
        }
        index += count
    }

    private mutating func enter() throws(Error) {
        depth += 1
        guard depth <= maxDepth else { throw error("nesting deeper than \(maxDepth)") }
    }

    private mutating func parseObject() throws(Error) -> JSONValue {
        var members: [(String, JSONValue)] = []
        // Most objects (a subtask) have a few members: one allocation instead of three.
        members.reserveCapacity(4)
        try forEachMember { (parser, key) throws(Error) in members.append((key, try parser.parseValue())) }
        return .object(members)
    }

    private mutating func parseArray() throws(Error) -> JSONValue {
        var elements: [JSONValue] = []
        try forEachElement { (parser) throws(Error) in elements.append(try parser.parseValue()) }
        return .array(elements)
    }

    /// Parses the object that starts here member by member: `member` gets each name with the parser
    /// at its value, and must parse the value. A repeated name is refused.
    /// - Returns: Which names the object had (``MemberCodes``).
    @discardableResult
    mutating func forEachMember(_ member: (inout JSONParser, String) throws(Error) -> Void) throws(Error) -> MemberCodes {
        try enter()
        defer { depth -= 1 }
        index += 1
        var codes = MemberCodes()
        // Names not shared, told apart by comparing them: made at the first.
        var others: MemberNames?
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
            index += 1
            return codes
        }
        while true {
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw error("expected a member name") }
            let keyOffset = index
            var code = -1
            let key = try parseString(sharedCode: &code)
            let isNew: Bool
            if code >= 0 {
                let bit: UInt64 = 1 << UInt64(code)
                isNew = codes.mask & bit == 0
                codes.mask |= bit
            } else {
                codes.others = true
                if others == nil { others = MemberNames() }
                isNew = others!.insert(key)
            }
            guard isNew else { throw Error(offset: keyOffset, reason: "duplicate member name \"\(key)\"") }
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw error("expected ':'") }
            index += 1
            skipWhitespace()
            try member(&self, key)
            skipWhitespace()
            guard index < bytes.count else { throw error("unexpected end of input") }
            if bytes[index] == UInt8(ascii: ",") {
                index += 1
                continue
            }
            guard bytes[index] == UInt8(ascii: "}") else { throw error("expected ',' or '}'") }
            index += 1
            return codes
        }
    }

    /// Parses the array that starts here element by element: `element` gets the parser at each
    /// element, and must parse it.
    mutating func forEachElement(_ element: (inout JSONParser) throws(Error) -> Void) throws(Error) {
        try enter()
        defer { depth -= 1 }
        index += 1
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
            index += 1
            return
        }
        try forEachElement(until: nil, element)
    }

    /// Parses an array's elements from here, the start of one: up to the comma at `stop`, or with
    /// `stop` nil through the array's `]`.
    private mutating func forEachElement(until stop: Int?, _ element: (inout JSONParser) throws(Error) -> Void) throws(Error) {
        while true {
            skipWhitespace()
            try element(&self)
            skipWhitespace()
            if let stop {
                guard index <= stop else { throw error("an element runs past the cut at byte \(stop)") }
                if index == stop { return }
            }
            guard index < bytes.count else { throw error("unexpected end of input") }
            if bytes[index] == UInt8(ascii: ",") {
                index += 1
                continue
            }
            guard bytes[index] == UInt8(ascii: "]") else { throw error("expected ',' or ']'") }
            index += 1
            return
        }
    }

    /// Parses one run of the array that starts here, cut where ``cuts(parts:)`` said:
    /// run `run` of `cuts.count + 1`, with a parser of its own (so runs may be parsed on as many
    /// threads). The last run ends past the array's `]`; ``skipArray(endingAt:)`` then moves this
    /// parser there.
    /// - Returns: Where the run ended.
    func forEachElement(
        ofRun run: Int, cuts: [ArrayCut], _ element: (inout JSONParser) throws(Error) -> Void
    ) throws(Error) -> Int {
        var runner = self
        try runner.enter()
        runner.index = run == 0 ? index + 1 : cuts[run - 1].comma + 1
        try runner.forEachElement(until: run < cuts.count ? cuts[run].comma : nil, element)
        return runner.index
    }

    /// Moves past an array that runs were parsed of (``forEachElement(ofRun:cuts:_:)``), to where
    /// its last run ended.
    mutating func skipArray(endingAt end: Int) {
        index = end
    }

    /// The byte at the parser's position (after whitespace), if any.
    mutating func peek() -> UInt8? {
        skipWhitespace()
        return index < bytes.count ? bytes[index] : nil
    }

    /// Only whitespace is left.
    mutating func finish() throws(Error) {
        skipWhitespace()
        guard index == bytes.count else { throw error("unexpected data after the document") }
    }

    private mutating func parseNumber() throws(Error) -> Double {
        let start = index
        if bytes[index] == UInt8(ascii: "-") { index += 1 }
        guard index < bytes.count, ASCII.isDigit(bytes[index]) else { throw error("invalid number") }
        if bytes[index] == UInt8(ascii: "0") {
            index += 1
        } else {
            while index < bytes.count, ASCII.isDigit(bytes[index]) { index += 1 }
        }
        var integral = true
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            integral = false
            index += 1
            guard index < bytes.count, ASCII.isDigit(bytes[index]) else { throw error("invalid number") }
            while index < bytes.count, ASCII.isDigit(bytes[index]) { index += 1 }
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            integral = false
            index += 1
            if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
            guard index < bytes.count, ASCII.isDigit(bytes[index]) else { throw error("invalid number") }
            while index < bytes.count, ASCII.isDigit(bytes[index]) { index += 1 }
        }
        // Fast path for short integers, the common case (delays, timeouts, indexes).
        if integral, index - start <= 15 {
            var value = 0
            var position = start
            let negative = bytes[position] == UInt8(ascii: "-")
            if negative { position += 1 }
            while position < index {
                value = value * 10 + Int(bytes[position] &- UInt8(ascii: "0"))
                position += 1
            }
            return Double(negative ? -value : value)
        }
        let text = String(decoding: bytes[start..<index], as: UTF8.self)
        guard let value = Double(text), value.isFinite else { throw Error(offset: start, reason: "number out of range") }
        return value
    }

    private mutating func parseString() throws(Error) -> String {
        var code = -1
        return try parseString(sharedCode: &code)
    }

    /// The string that starts here; `sharedCode` is set to its code if it is a shared name
    /// (``SharedNames``), however it is spelt, and left alone if not.
    private mutating func parseString(sharedCode: inout Int) throws(Error) -> String {
        index += 1
        let start = index
        // A run of printable ASCII other than `"` and `\` (most of any string), scanned on the
        // buffer: if a quote ends it, it may be a shared name; else what ends it is judged below.
        let shared = shared
        let (end, match) = bytes.withUnsafeBufferPointer { buffer -> (Int, (name: String, code: Int)?) in
            var position = start
            while position < buffer.count {
                let byte = buffer[position]
                guard byte >= 0x20, byte < 0x80, byte != UInt8(ascii: "\""), byte != UInt8(ascii: "\\") else { break }
                position += 1
            }
            guard let shared, position < buffer.count, buffer[position] == UInt8(ascii: "\"") else { return (position, nil) }
            return (position, shared.match(buffer.baseAddress! + start, count: position - start, readable: buffer.count - start))
        }
        index = end
        if let match {
            index += 1
            sharedCode = match.code
            return match.name
        }
        // Fast path: no escapes.
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                defer { index += 1 }
                // Validated as it was scanned: decoding replaces nothing.
                return String(decoding: bytes[start..<index], as: UTF8.self)
            }
            if byte == UInt8(ascii: "\\") { break }
            guard byte >= 0x20 else { throw error("control character in string") }
            index += byte < 0x80 ? 1 : try utf8SequenceLength()
        }
        var scalars: [UInt8] = Array(bytes[start..<index])
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "\""):
                index += 1
                // A shared name spelt with escapes is still that name (a repeat of it is seen).
                if let shared, let match = scalars.withUnsafeBufferPointer({ buffer in buffer.baseAddress.flatMap { shared.match($0, count: buffer.count) } }) {
                    sharedCode = match.code
                    return match.name
                }
                return String(decoding: scalars, as: UTF8.self)
            case UInt8(ascii: "\\"):
                index += 1
                guard index < bytes.count else { throw error("unexpected end of input") }
                let escape = bytes[index]
                index += 1
                switch escape {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): scalars.append(escape)
                case UInt8(ascii: "b"): scalars.append(0x08)
                case UInt8(ascii: "f"): scalars.append(0x0C)
                case UInt8(ascii: "n"): scalars.append(0x0A)
                case UInt8(ascii: "r"): scalars.append(0x0D)
                case UInt8(ascii: "t"): scalars.append(0x09)
                case UInt8(ascii: "u"):
                    let escapeStart = index - 2
                    var code = try parseHex4()
                    if (0xD800..<0xDC00).contains(code) {
                        guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") else {
                            throw Error(offset: escapeStart, reason: "lone surrogate \\u\(String(code, radix: 16)) (a high surrogate needs a low one after it)")
                        }
                        index += 2
                        let low = try parseHex4()
                        guard (0xDC00..<0xE000).contains(low) else {
                            throw Error(offset: escapeStart, reason: "invalid surrogate pair \\u\(String(code, radix: 16))\\u\(String(low, radix: 16))")
                        }
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00..<0xE000).contains(code) {
                        throw Error(offset: escapeStart, reason: "lone surrogate \\u\(String(code, radix: 16)) (a low surrogate without a high one)")
                    }
                    // Not a surrogate, so a scalar.
                    UTF8.encode(Unicode.Scalar(code)!) { scalars.append($0) }
                default:
                    throw Error(offset: index - 2, reason: "invalid escape")
                }
            default:
                guard byte >= 0x20 else { throw error("control character in string") }
                let length = byte < 0x80 ? 1 : try utf8SequenceLength()
                scalars.append(contentsOf: bytes[index..<index + length])
                index += length
            }
        }
        throw error("unterminated string")
    }

    /// The length of the well-formed UTF-8 sequence at `index` whose lead byte is not ASCII (RFC 3629
    /// table 3-7: no overlong forms, no surrogates, nothing past U+10FFFF).
    private func utf8SequenceLength() throws(Error) -> Int {
        let lead = bytes[index]
        let length: Int
        var second: ClosedRange<UInt8> = 0x80...0xBF
        switch lead {
        case 0xC2...0xDF: length = 2
        case 0xE0: length = 3; second = 0xA0...0xBF
        case 0xE1...0xEC, 0xEE...0xEF: length = 3
        case 0xED: length = 3; second = 0x80...0x9F
        case 0xF0: length = 4; second = 0x90...0xBF
        case 0xF1...0xF3: length = 4
        case 0xF4: length = 4; second = 0x80...0x8F
        default: throw error("invalid UTF-8 in string")
        }
        guard index + length <= bytes.count else { throw error("invalid UTF-8 in string (truncated sequence)") }
        guard second.contains(bytes[index + 1]) else { throw error("invalid UTF-8 in string") }
        for position in index + 2 ..< index + length where bytes[position] & 0xC0 != 0x80 {
            throw error("invalid UTF-8 in string")
        }
        return length
    }

    private mutating func parseHex4() throws(Error) -> UInt32 {
        guard index + 4 <= bytes.count else { throw error("unexpected end of input") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            guard let digit = ASCII.hexDigitValue(bytes[index]) else { throw error("invalid \\u escape") }
            value = value << 4 | UInt32(digit)
            index += 1
        }
        return value
    }
}
