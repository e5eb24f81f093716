extension JSONParser {
    /// A place to cut an array into runs of whole elements: one of its commas.
    struct ArrayCut: Equatable, Sendable {
        /// The comma's offset in the document.
        var comma: Int
        /// How many elements come before it: the index of the first element after it.
        var elementsBefore: Int
    }

    /// Where the array that starts here can be cut into `parts` runs of about equal size, found by
    /// a scan of its bytes that follows only strings and nesting (a few instructions a byte, a
    /// small part of parsing them). nil for one part, or when the array ends before its last cut.
    /// Whether it is worth cutting is the caller's to judge (``JobDecoder/minimumRunBytes``).
    ///
    /// The scan does not validate: in a malformed document a cut may fall inside an element, and
    /// then parsing some run fails, as parsing the whole array would (the caller parses again in
    /// one piece for the error to report).
    func cuts(parts: Int) -> [ArrayCut]? {
        let start = index
        let length = bytes.count - start
        guard parts > 1, start < bytes.count, bytes[start] == UInt8(ascii: "[") else { return nil }
        // The array is most of the document (a job's `tasks`), so cut its bytes from here to the end.
        let targets = (1..<parts).map { start + length * $0 / parts }
        return bytes.withUnsafeBufferPointer { buffer -> [ArrayCut]? in
            var cuts: [ArrayCut] = []
            var position = start + 1
            var nesting = 0
            var commas = 0
            while position < buffer.count {
                switch buffer[position] {
                case UInt8(ascii: "\""):
                    // To the closing quote: a backslash escapes the byte after it.
                    position += 1
                    while position < buffer.count, buffer[position] != UInt8(ascii: "\"") {
                        position += buffer[position] == UInt8(ascii: "\\") ? 2 : 1
                    }
                case UInt8(ascii: "["), UInt8(ascii: "{"):
                    nesting += 1
                case UInt8(ascii: "]"), UInt8(ascii: "}"):
                    if nesting == 0 { return nil }
                    nesting -= 1
                case UInt8(ascii: ",") where nesting == 0:
                    commas += 1
                    if position >= targets[cuts.count] {
                        cuts.append(ArrayCut(comma: position, elementsBefore: commas))
                        if cuts.count == targets.count { return cuts }
                    }
                default:
                    break
                }
                position += 1
            }
            return nil
        }
    }
}
