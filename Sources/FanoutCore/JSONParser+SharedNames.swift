extension JSONParser {
    /// Strings a parser hands out as these very values when a document spells them: the member
    /// names (and kinds) every subtask of a job repeats. Decoding a new `String` validates its
    /// bytes again (~150 instructions); a match is two 64-bit compares in a table by length.
    public struct SharedNames: Sendable {
        private struct Entry: Sendable {
            /// The name's bytes packed little-endian: the first eight, the rest.
            var low: UInt64
            var high: UInt64
            var name: String
        }

        /// Names of up to 16 bytes, ordered by length; those of length `n` are at
        /// `start[n]..<start[n + 1]`.
        private let entries: [Entry]
        private let start: [Int]

        public init(_ names: some Sequence<String>) {
            let kept = Set(names).filter { $0.utf8.count <= 16 }.sorted { ($0.utf8.count, $0) < ($1.utf8.count, $1) }
            entries = kept.map { name in
                var utf8 = Array(name.utf8)
                let (low, high) = utf8.withUnsafeMutableBufferPointer { Self.pack($0.baseAddress!, count: $0.count) }
                return Entry(low: low, high: high, name: name)
            }
            start = (0...17).map { length in kept.firstIndex { $0.utf8.count >= length } ?? kept.count }
        }

        /// The shared name spelt by the `count` bytes at `base`, if any.
        func match(_ base: UnsafePointer<UInt8>, count: Int) -> String? {
            guard count <= 16 else { return nil }
            let end = start[count + 1]
            var candidate = start[count]
            guard candidate < end else { return nil }
            let (low, high) = Self.pack(base, count: count)
            while candidate < end {
                if entries[candidate].low == low, entries[candidate].high == high { return entries[candidate].name }
                candidate += 1
            }
            return nil
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
}
