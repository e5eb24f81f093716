/// Appends compact JSON to a growable buffer of its own: the NDJSON lines' encoder.
///
/// Not an `Array`: every `append(contentsOf:)` on one goes through a generic copy with a
/// uniqueness check (~120 instructions, and a line takes a dozen); here an append is a capacity
/// check and a `memcpy`. Noncopyable, as it owns the memory; ``take()`` hands the bytes on.
public struct JSONWriter: ~Copyable {
    @usableFromInline var base: UnsafeMutablePointer<UInt8>?
    @usableFromInline var used = 0
    @usableFromInline var capacity: Int

    /// - Parameter capacity: Bytes to allocate now; 0 allocates on the first write.
    public init(capacity: Int = 256) {
        self.capacity = max(capacity, 0)
        base = capacity > 0 ? .allocate(capacity: capacity) : nil
    }

    deinit { base?.deallocate() }

    /// Bytes written.
    public var count: Int { used }
    public var isEmpty: Bool { used == 0 }

    /// A copy of what was written.
    public var bytes: [UInt8] {
        guard let base else { return [] }
        return Array(UnsafeBufferPointer(start: base, count: used))
    }

    /// What was written, leaving the writer empty and without a buffer.
    public mutating func take() -> [UInt8] {
        let taken = bytes
        base?.deallocate()
        base = nil
        used = 0
        capacity = 0
        return taken
    }

    /// Forgets what was written, keeping the buffer for what comes next.
    public mutating func removeAll() {
        used = 0
    }

    /// Room for `more` bytes past what is written, so the next writes do not grow the buffer.
    public mutating func reserve(_ more: Int) {
        if capacity - used < more { grow(toHold: used + more) }
    }

    @usableFromInline mutating func grow(toHold needed: Int) {
        let newCapacity = max(needed, capacity * 2, 64)
        let newBase = UnsafeMutablePointer<UInt8>.allocate(capacity: newCapacity)
        if let base {
            newBase.initialize(from: base, count: used)
            base.deallocate()
        }
        base = newBase
        capacity = newCapacity
    }

    @inlinable @inline(__always) public mutating func append(_ byte: UInt8) {
        if used == capacity { grow(toHold: used + 1) }
        base.unsafelyUnwrapped[used] = byte
        used += 1
    }

    @inlinable public mutating func append(_ source: UnsafeBufferPointer<UInt8>) {
        let length = source.count
        guard length > 0 else { return }
        if capacity - used < length { grow(toHold: used + length) }
        (base.unsafelyUnwrapped + used).initialize(from: source.baseAddress.unsafelyUnwrapped, count: length)
        used += length
    }

    public mutating func append(_ source: [UInt8]) {
        source.withUnsafeBufferPointer { append($0) }
    }

    /// What `other` holds, after what this holds.
    public mutating func append(_ other: borrowing JSONWriter) {
        guard let otherBase = other.base else { return }
        append(UnsafeBufferPointer(start: otherBase, count: other.count))
    }

    /// Bytes this writer already holds, at `range`, again at the end.
    public mutating func appendWritten(_ range: Range<Int>) {
        precondition(range.lowerBound >= 0 && range.upperBound <= used, "written bytes")
        reserve(range.count)
        // Offsets, not pointers: `reserve` may have moved the buffer.
        (base.unsafelyUnwrapped + used).initialize(from: base.unsafelyUnwrapped + range.lowerBound, count: range.count)
        used += range.count
    }

    public mutating func write(_ value: JSONValue) {
        switch value {
        case .null: raw("null")
        case .bool(let flag): raw(flag ? "true" : "false")
        case .number(let number): write(number: number)
        case .string(let string): write(string: string)
        case .array(let elements):
            append(UInt8(ascii: "["))
            for (position, element) in elements.enumerated() {
                if position > 0 { append(UInt8(ascii: ",")) }
                write(element)
            }
            append(UInt8(ascii: "]"))
        case .object(let members):
            append(UInt8(ascii: "{"))
            for (position, member) in members.enumerated() {
                if position > 0 { append(UInt8(ascii: ",")) }
                write(string: member.0)
                append(UInt8(ascii: ":"))
                write(member.1)
            }
            append(UInt8(ascii: "}"))
        }
    }

    /// ASCII known to need no escaping (keys, punctuation).
    @inlinable @inline(__always) public mutating func raw(_ text: StaticString) {
        append(UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    public mutating func write(int: Int) {
        if int < 0 {
            append(UInt8(ascii: "-"))
            write(unsigned: UInt(int.magnitude))
        } else {
            write(unsigned: UInt(int))
        }
    }

    private mutating func write(unsigned: UInt) {
        if unsigned < 10 {
            append(UInt8(ascii: "0") + UInt8(unsigned))
            return
        }
        // Straight into the buffer: at most 20 digits.
        reserve(20)
        ASCII.writeDecimal(unsigned, into: UnsafeMutableBufferPointer(start: base, count: capacity), at: &used)
    }

    /// Integral values in the exact range print without a fraction; others as Swift's shortest form.
    public mutating func write(number: Double) {
        if number.rounded() == number, abs(number) < 9_007_199_254_740_992 {
            write(int: Int(number))
        } else if number.isFinite {
            var text = "\(number)"
            text.withUTF8 { append($0) }
        } else {
            raw("null")
        }
    }

    /// Milliseconds with one decimal, e.g. `10.4`.
    public mutating func write(milliseconds: Double) {
        let tenths = Int((max(milliseconds, 0) * 10).rounded())
        write(int: tenths / 10)
        append(UInt8(ascii: "."))
        append(UInt8(ascii: "0") + UInt8(tenths % 10))
    }

    public mutating func write(string: String) {
        // Native and small strings have contiguous UTF-8 (a small one is copied to the stack);
        // only a bridged one needs the mutable copy `withUTF8` takes.
        if string.utf8.withContiguousStorageIfAvailable({ write(quoted: $0) }) == nil {
            var string = string
            string.withUTF8 { write(quoted: $0) }
        }
    }

    /// `utf8` as a JSON string: quoted, with runs that need no escape copied whole.
    mutating func write(quoted utf8: UnsafeBufferPointer<UInt8>) {
        reserve(utf8.count + 2)
        append(UInt8(ascii: "\""))
        var runStart = 0
        for position in 0..<utf8.count {
            let byte = utf8[position]
            guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { continue }
            append(UnsafeBufferPointer(rebasing: utf8[runStart..<position]))
            runStart = position + 1
            switch byte {
            case UInt8(ascii: "\""): raw("\\\"")
            case UInt8(ascii: "\\"): raw("\\\\")
            case 0x0A: raw("\\n")
            case 0x0D: raw("\\r")
            case 0x09: raw("\\t")
            default:
                raw("\\u00")
                let hex: StaticString = "0123456789abcdef"
                append(hex.utf8Start[Int(byte >> 4)])
                append(hex.utf8Start[Int(byte & 0x0F)])
            }
        }
        append(UnsafeBufferPointer(rebasing: utf8[runStart..<utf8.count]))
        append(UInt8(ascii: "\""))
    }
}
