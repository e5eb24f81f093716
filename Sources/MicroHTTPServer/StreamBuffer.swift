/// The state one response stream shares between its producer task and the MHD thread that owns the
/// connection. It lives behind one lock (``ResponseStream``) and only decides; the caller performs
/// the actions it returns (resume the connection, wake the writer) after unlocking.
struct StreamBuffer {
    private var chunks: [[UInt8]] = []
    /// Index of the first chunk not completely handed to MHD.
    private var head = 0
    /// Bytes of `chunks[head]` already handed to MHD.
    private var offset = 0
    /// Bytes queued and not yet handed to MHD.
    private(set) var buffered = 0

    /// The reader suspended the connection; whoever clears this must resume it, exactly once.
    var suspended = false
    /// The producer is done: once drained, the body ends cleanly.
    var finished = false
    /// End the body with an error at the next read (client gone, or the server stopping).
    var cancelled = false
    /// MHD completed the request: never touch the connection again.
    var closed = false
    /// The producer waiting for the buffer to drain, if any.
    var writer: CheckedContinuation<Void, any Error>?
    /// The producer task, cancelled when the connection closes.
    var producer: Task<Void, Never>?

    let highWater: Int
    let lowWater: Int

    init(highWater: Int) {
        self.highWater = max(highWater, 1)
        self.lowWater = max(highWater / 2, 1)
    }

    var isEmpty: Bool { buffered == 0 }
    var acceptsWrites: Bool { !closed && !cancelled && !finished }

    mutating func append(_ bytes: [UInt8]) {
        guard !bytes.isEmpty else { return }
        chunks.append(bytes)
        buffered += bytes.count
    }

    /// Copies up to `max` queued bytes to `destination`; returns how many.
    mutating func drain(into destination: UnsafeMutableRawPointer, max: Int) -> Int {
        var copied = 0
        while copied < max, head < chunks.count {
            let count = chunks[head].withUnsafeBytes { source -> Int in
                let count = min(source.count - offset, max - copied)
                (destination + copied).copyMemory(from: source.baseAddress! + offset, byteCount: count)
                return count
            }
            copied += count
            offset += count
            if offset == chunks[head].count {
                chunks[head] = []
                head += 1
                offset = 0
            }
        }
        buffered -= copied
        if head == chunks.count {
            chunks.removeAll(keepingCapacity: chunks.capacity <= 64)
            head = 0
        } else if head >= 64, head * 2 >= chunks.count {
            chunks.removeFirst(head)
            head = 0
        }
        return copied
    }

    /// Takes the waiting writer if the buffer has drained enough for it to go on.
    mutating func takeWriterIfDrained() -> CheckedContinuation<Void, any Error>? {
        guard buffered <= lowWater, let writer else { return nil }
        self.writer = nil
        return writer
    }

    /// Clears `suspended`; returns whether the caller must resume the connection.
    mutating func takeSuspended() -> Bool {
        defer { suspended = false }
        return suspended
    }
}
