/// Splits a byte stream into `\n`-terminated lines, carrying a partial line across chunks.
struct LineSplitter {
    private var pending: [UInt8] = []

    mutating func feed(_ bytes: some Sequence<UInt8>, _ line: ([UInt8]) throws -> Void) rethrows {
        for byte in bytes {
            if byte == 0x0A {
                if !pending.isEmpty { try line(pending) }
                pending.removeAll(keepingCapacity: true)
            } else {
                pending.append(byte)
            }
        }
    }
}
