extension JSONParser {
    /// Strings a parser hands out as these very values when a document spells them: the member
    /// names (and kinds) every subtask of a job repeats. Decoding a new `String` validates its
    /// bytes again (~150 instructions); a match is a hash of two 64-bit words and their compare.
    ///
    /// Each name has a code (below 64): an object's member names are then told apart by a bit
    /// each (``MemberCodes``), without comparing strings.
    public struct SharedNames: Sendable {
        private struct Entry: Sendable {
            /// The name's bytes packed little-endian: the first eight, the rest.
            var low: UInt64
            var high: UInt64
            var count: Int
            var name: String
        }

        /// Names of up to 16 bytes; a name's code is its position.
        private let entries: [Entry]
        /// Open addressing by ``slot(low:high:)``: a position in `entries`, or -1 for none.
        private let table: [Int8]
        private static let tableBits = 7

        public init(_ names: some Sequence<String>) {
            // At most 64, one bit of a mask each; past that a name is decoded as any string.
            let kept = Set(names).filter { $0.utf8.count <= 16 }.sorted().prefix(64)
            entries = kept.map { name in
                var utf8 = Array(name.utf8)
                let (low, high) = utf8.withUnsafeMutableBufferPointer { Self.pack($0.baseAddress!, count: $0.count) }
                return Entry(low: low, high: high, count: utf8.count, name: name)
            }
            var table = [Int8](repeating: -1, count: 1 << Self.tableBits)
            for (code, entry) in entries.enumerated() {
                var slot = Self.slot(low: entry.low, high: entry.high)
                while table[slot] >= 0 { slot = (slot + 1) & (table.count - 1) }
                table[slot] = Int8(code)
            }
            self.table = table
        }

        /// The shared name spelt by the `count` bytes at `base`, and its code, if any.
        /// - Parameter readable: How many bytes from `base` may be read (at least `count`): with
        ///   16, the name is packed from two loads instead of byte by byte.
        func match(_ base: UnsafePointer<UInt8>, count: Int, readable: Int = 0) -> (name: String, code: Int)? {
            guard count <= 16 else { return nil }
            let (low, high) = readable >= 16 ? Self.packLoading(base, count: count) : Self.pack(base, count: count)
            // At most 64 names in 128 slots: a run of filled slots ends.
            var slot = Self.slot(low: low, high: high)
            while true {
                let code = Int(table[slot])
                guard code >= 0 else { return nil }
                let entry = entries[code]
                if entry.low == low, entry.high == high, entry.count == count { return (entry.name, code) }
                slot = (slot + 1) & (table.count - 1)
            }
        }

        private static func slot(low: UInt64, high: UInt64) -> Int {
            let mixed = (low ^ (high &* 0xC2B2_AE3D_27D4_EB4F)) &* 0x9E37_79B9_7F4A_7C15
            return Int(truncatingIfNeeded: mixed >> UInt64(64 - tableBits))
        }

        /// The code of `name`, if it is shared.
        func code(of name: String) -> Int? {
            Array(name.utf8).withUnsafeBufferPointer { utf8 in utf8.baseAddress.flatMap { match($0, count: utf8.count)?.code } }
        }

        /// The bits of those of `names` that are shared (``MemberCodes/mask``).
        func mask(of names: some Sequence<String>) -> UInt64 {
            names.reduce(0) { mask, name in code(of: name).map { mask | 1 << UInt64($0) } ?? mask }
        }

        /// ``pack(_:count:)`` from two 8-byte loads, the bytes past `count` masked off; 16 bytes
        /// at `base` must be readable.
        private static func packLoading(_ base: UnsafePointer<UInt8>, count: Int) -> (UInt64, UInt64) {
            let raw = UnsafeRawPointer(base)
            let first = UInt64(littleEndian: raw.loadUnaligned(as: UInt64.self))
            let second = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
            let lowMask: UInt64 = count >= 8 ? ~0 : (1 << UInt64(count &* 8)) &- 1
            let highMask: UInt64 = count >= 16 ? ~0 : count <= 8 ? 0 : (1 << UInt64((count &- 8) &* 8)) &- 1
            return (first & lowMask, second & highMask)
        }

        private static func pack(_ base: UnsafePointer<UInt8>, count: Int) -> (UInt64, UInt64) {
            var low: UInt64 = 0
            var high: UInt64 = 0
            for position in 0..<Swift.min(count, 8) {
                low |= UInt64(base[position]) << (UInt64(position) &* 8)
            }
            if count > 8 {
                for position in 8..<count {
                    high |= UInt64(base[position]) << (UInt64(position &- 8) &* 8)
                }
            }
            return (low, high)
        }
    }

    /// Which names an object had, as the parser met them: a bit for each shared name
    /// (``SharedNames``), and whether it had any other. A shared name is met under its code however
    /// the document spells it (escapes included), so its bit is clear only if it is absent.
    struct MemberCodes: Sendable {
        var mask: UInt64 = 0
        /// Some name is not shared.
        var others = false

        /// Whether the object may have the shared name of `code` (nil: a name not shared, which
        /// only a lookup can tell).
        func mayHave(_ code: Int?) -> Bool {
            guard let code else { return true }
            return mask & 1 << UInt64(code) != 0
        }

        /// Whether every name is one of the shared names in `allowed` (a ``SharedNames/mask(of:)``).
        func allIn(_ allowed: UInt64) -> Bool {
            !others && mask & ~allowed == 0
        }
    }

    /// ``parseValue()``, but an object's members are put in `members`, in place of what it held: a
    /// caller that parses many objects one after the other, each dropped before the next, reuses
    /// one buffer (and members assigned over, not removed then appended, are destroyed without the
    /// runtime's generic destruction of an array's elements, ~130 instructions each). `codes`
    /// tells which names it had (empty for a value that is no object).
    mutating func parseValue(reusing members: inout [(String, JSONValue)], codes: inout MemberCodes) throws(Error) -> JSONValue {
        guard index < bytes.count, bytes[index] == UInt8(ascii: "{") else {
            codes = MemberCodes()
            return try parseValue()
        }
        var count = 0
        codes = try forEachMember { (parser, key) throws(Error) in
            let member = (key, try parser.parseValue())
            if count < members.count { members[count] = member } else { members.append(member) }
            count += 1
        }
        if count < members.count { members.removeLast(members.count - count) }
        return .object(members)
    }
}
