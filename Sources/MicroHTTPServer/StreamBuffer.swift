/// The state one response stream shares between its producer task and the MHD thread that owns the
/// connection: a state machine behind one lock (``ResponseStream``). Each transition only decides;
/// it returns the actions (resume the connection, tell the waiting writer whether it may go on, end
/// the supervisor's wait) for the caller to perform after unlocking — except ``ReadAction/suspend``, which the
/// reader performs under the lock so that a writer sees `.suspended` only once MHD recorded it.
struct StreamBuffer {
    enum State: Equatable, Sendable {
        /// Open, nothing queued, the reader not waiting.
        case idle
        /// Open, bytes queued for the reader.
        case buffering
        /// Open, nothing queued: the reader suspended the connection; the next transition that
        /// leaves this state must resume it, exactly once.
        case suspended
        /// The producer is done: the rest is drained, then the body ends cleanly.
        case finished
        /// End the body with an error at the next read (client gone, or the server stopping).
        case cancelled
        /// MHD completed the request: never touch the connection again.
        case closed
    }

    enum WriteAction: Equatable {
        /// Stream over: the write fails.
        case refused
        /// Queued; `resume` the connection if the reader was suspended; `wait` for space when
        /// over the high-water mark.
        case queued(resume: Bool, wait: Bool)
    }

    /// A writer waiting for room: called once, `true` when the buffer drained to its low-water
    /// mark, `false` when the stream is over.
    typealias Writer = @Sendable (Bool) -> Void

    enum ReadAction {
        /// `count` bytes copied; tell `writer` it may go on (the buffer drained to its low-water mark).
        case copied(Int, writer: Writer?)
        /// Nothing to send: suspend the connection (under the lock).
        case suspend
        /// Nothing to send and already suspended (MHD called anyway): return 0, do nothing.
        case nothing
        case endOfStream
        case endWithError
    }

    /// What the caller does after a cancel or close.
    struct Wakeups {
        var resume = false
        /// Tell it `false`: the stream is over.
        var writer: Writer?
        var supervisor: CheckedContinuation<Void, Never>?
        /// Call it: the stream is over for the producer (``ResponseStream/onClose(_:)``).
        var closeObserver: (@Sendable () -> Void)?
    }

    private(set) var state: State = .idle
    private var chunks: [[UInt8]] = []
    /// Index of the first chunk not completely handed to MHD.
    private var head = 0
    /// Bytes of `chunks[head]` already handed to MHD.
    private var offset = 0
    /// Bytes queued and not yet handed to MHD.
    private(set) var buffered = 0
    /// The producer has returned.
    private(set) var producerDone = false
    /// The producer waiting for the buffer to drain, if any.
    private var writer: Writer?
    /// The task running the producer, waiting for it to return or the connection to close.
    private var supervisor: CheckedContinuation<Void, Never>?
    /// Told once when the stream ends under the producer (cancel or close), unless it returned first.
    private var closeObserver: (@Sendable () -> Void)?

    let highWater: Int
    let lowWater: Int

    init(highWater: Int) {
        self.highWater = max(highWater, 1)
        self.lowWater = max(highWater / 2, 1)
    }

    /// A body whose bytes are all known before MHD first reads: no producer.
    init(highWater: Int, finishedWith bytes: [UInt8]) {
        self.init(highWater: highWater)
        enqueue(bytes)
        state = .finished
        producerDone = true
    }

    var isEmpty: Bool { buffered == 0 }
    var isOpen: Bool { state != .cancelled && state != .closed }

    // MARK: Transitions

    /// The producer writes `pieces`, one after the other: each is queued as it is, uncopied.
    mutating func write(contentsOf pieces: some Collection<[UInt8]>) -> WriteAction {
        switch state {
        case .finished, .cancelled, .closed:
            return .refused
        case .idle, .buffering, .suspended:
            guard pieces.contains(where: { !$0.isEmpty }) else { return .queued(resume: false, wait: buffered > highWater) }
            let resume = state == .suspended
            for piece in pieces { enqueue(piece) }
            state = .buffering
            return .queued(resume: resume, wait: buffered > highWater)
        }
    }

    /// The producer waits for room: whether it may go on now (false: the stream is over), or nil
    /// if `writer` was stored (told `true` by a read, `false` by a cancel or close).
    mutating func awaitSpace(_ writer: @escaping Writer) -> Bool? {
        if !isOpen { return false }
        if buffered <= lowWater { return true }
        self.writer = writer
        return nil
    }

    /// MHD's content reader asks for up to `max` bytes.
    mutating func read(into destination: UnsafeMutableRawPointer, max: Int) -> ReadAction {
        switch state {
        case .cancelled, .closed:
            return .endWithError
        case .suspended:
            return .nothing
        case .idle:
            state = .suspended
            return .suspend
        case .buffering, .finished:
            if isEmpty { return .endOfStream }  // only `.finished` can be empty here
            let copied = drain(into: destination, max: max)
            if isEmpty, state == .buffering { state = .idle }
            var woken: Writer?
            if buffered <= lowWater, let waiting = writer {
                writer = nil
                woken = waiting
            }
            return .copied(copied, writer: woken)
        }
    }

    /// The producer returned: end the body once the rest is read. Returns whether to resume the
    /// connection, and the supervisor to wake.
    mutating func finish() -> Wakeups {
        producerDone = true
        closeObserver = nil
        var wakeups = Wakeups()
        wakeups.supervisor = takeSupervisor()
        switch state {
        case .idle, .buffering:
            state = .finished
        case .suspended:
            state = .finished
            wakeups.resume = true
        case .finished, .cancelled, .closed:
            break
        }
        return wakeups
    }

    /// End the body with an error at the next read; with `onlyIfSuspended`, only if the reader is
    /// suspended now (the watchdog). nil if nothing changed.
    mutating func cancel(onlyIfSuspended: Bool = false) -> Wakeups? {
        if state == .closed || (onlyIfSuspended && state != .suspended) { return nil }
        var wakeups = Wakeups()
        wakeups.resume = state == .suspended
        wakeups.writer = writer
        writer = nil
        wakeups.closeObserver = closeObserver.take()
        state = .cancelled
        return wakeups
    }

    /// MHD completed the request, for any reason: fail the writer, wake the supervisor (which
    /// cancels the producer), drop what is queued.
    mutating func close() -> Wakeups {
        var wakeups = Wakeups()
        wakeups.writer = writer
        writer = nil
        wakeups.supervisor = takeSupervisor()
        wakeups.closeObserver = closeObserver.take()
        state = .closed
        chunks = []
        head = 0
        offset = 0
        buffered = 0
        return wakeups
    }

    /// The supervisor waits for the producer to return or the connection to close: false (and
    /// nothing stored) if that has happened already.
    mutating func awaitEnd(_ supervisor: CheckedContinuation<Void, Never>) -> Bool {
        if producerDone || state == .closed { return false }
        self.supervisor = supervisor
        return true
    }

    /// The producer asks to be told when the stream ends under it: false (and nothing stored) if
    /// it has already (cancelled or closed), so the caller tells it at once.
    mutating func observeClose(_ observer: @escaping @Sendable () -> Void) -> Bool {
        if !isOpen { return false }
        if producerDone { return true }
        closeObserver = observer
        return true
    }

    // MARK: Queue

    private mutating func takeSupervisor() -> CheckedContinuation<Void, Never>? {
        defer { supervisor = nil }
        return supervisor
    }

    private mutating func enqueue(_ bytes: [UInt8]) {
        guard !bytes.isEmpty else { return }
        chunks.append(bytes)
        buffered += bytes.count
    }

    /// Copies up to `max` queued bytes to `destination`; returns how many.
    private mutating func drain(into destination: UnsafeMutableRawPointer, max: Int) -> Int {
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
}
