/// A job's subtasks, stored compactly: a job of 100,000 subtasks keeps 100,000 of these, so every
/// byte per subtask counts (issue 7, item 4).
///
/// Structure of arrays: the work (a planned outcome with its delay, or a runner call) per subtask;
/// the kind as a one-byte code into a table of the job's few kinds, once it has two; ids and own
/// timeouts only once some subtask names one (a default id is the index, a default timeout the
/// job's). A subscript gives the ``Subtask`` view.
public struct SubtaskList: RandomAccessCollection, Sendable {
    private var works: [BoundWork] = []
    /// Each subtask's kind, once the job has a second one; nil while every subtask is of the first.
    private var kindCodes: [UInt8]?
    /// The first subtask's kind, and the job's other kinds in the order they appear (code 1, 2, …):
    /// a job of one kind keeps no table.
    private var firstKind = ""
    private var otherKinds: [String] = []
    /// Every id, once some subtask names its own; nil while each id is its index.
    private var ids: [String]?
    /// Every own timeout in milliseconds (-1: none), once some subtask names one.
    private var ownTimeouts: [Int32]?
    /// The timeout of a subtask that names none (the job's `task_timeout_ms`), if any.
    var defaultTimeoutMilliseconds: Int?
    /// Estimated heap held by what the subtasks carry (values, messages, runner payloads).
    private(set) var payloadBytes = 0
    /// The index of this list's first subtask in its job: a run of a job's subtasks decoded on
    /// its own (``append(contentsOf:)`` joins them) spells its default ids from there.
    private let firstIndex: Int

    public init() { firstIndex = 0 }

    /// An empty list for the subtasks of a job from its `firstIndex`-th on.
    init(from firstIndex: Int) { self.firstIndex = firstIndex }

    public var startIndex: Int { 0 }
    public var endIndex: Int { works.count }

    public subscript(position: Int) -> Subtask {
        Subtask(
            id: id(at: position), index: position, kind: kind(at: position),
            timeoutMilliseconds: timeoutMilliseconds(at: position), work: work(at: position)
        )
    }

    func id(at position: Int) -> String { ownID(at: position) ?? String(firstIndex + position) }

    /// The id the subtask was given, or nil when it is its index.
    func ownID(at position: Int) -> String? { ids?[position] }

    func kind(at position: Int) -> String {
        guard let code = kindCodes?[position], code > 0 else { return firstKind }
        return otherKinds[Int(code) - 1]
    }

    func timeoutMilliseconds(at position: Int) -> Int? {
        if let own = ownTimeouts?[position], own >= 0 { return Int(own) }
        return defaultTimeoutMilliseconds
    }

    func work(at position: Int) -> SubtaskWork {
        switch works[position] {
        case .run(let body): .run(body)
        case .planned(let outcome, 0): .immediate(outcome)
        case .planned(let outcome, let microseconds): .delayed(outcome, after: .microseconds(microseconds))
        }
    }

    /// How long after its start a subtask's planned outcome is due, in microseconds (0: at once);
    /// nil for one that runs. Reads no outcome (a timer's is read when it fires).
    func plannedDelayMicroseconds(at position: Int) -> Int64? {
        if case .planned(_, let microseconds) = works[position] { microseconds } else { nil }
    }

    /// The outcome of a subtask whose outcome is known in advance; nil for one that runs.
    func plannedOutcome(at position: Int) -> SubtaskOutcome? {
        if case .planned(let outcome, _) = works[position] { outcome } else { nil }
    }

    /// Whether every subtask's outcome is known in advance (at once or after a delay).
    var allPlanned: Bool {
        works.allSatisfy { if case .planned = $0 { true } else { false } }
    }

    /// Whether every subtask's outcome is known at once.
    var allImmediate: Bool {
        works.allSatisfy { if case .planned(_, 0) = $0 { true } else { false } }
    }

    /// Appends a subtask. `id` nil: its index; `timeoutMilliseconds` nil: the default.
    /// - Parameter payloadBytes: Heap its work holds that this list cannot see (a runner's payload).
    mutating func append(id: String?, kind: String, timeoutMilliseconds: Int?, work: SubtaskWork, payloadBytes: Int = 0) {
        append(id: id, kind: kind, timeoutMilliseconds: timeoutMilliseconds, bound: BoundWork(work), payloadBytes: payloadBytes)
    }

    /// Appends a subtask as a runner bound it.
    mutating func append(id: String?, kind: String, timeoutMilliseconds: Int?, bound work: BoundWork, payloadBytes: Int = 0) {
        let position = works.count
        if let id {
            if ids == nil { ids = defaultIDs(0..<position, reserving: works.capacity) }
            ids!.append(id)
            self.payloadBytes += id.heapBytes
        } else {
            ids?.append(String(firstIndex + position))
        }
        if let timeoutMilliseconds {
            if ownTimeouts == nil { ownTimeouts = Array(repeating: -1, count: position, reserving: works.capacity) }
            ownTimeouts!.append(Int32(clamping: timeoutMilliseconds))
        } else {
            ownTimeouts?.append(-1)
        }
        if position == 0 {
            firstKind = kind
        } else if kindCodes == nil, kind == firstKind {
            // Still a job of one kind: no codes.
        } else {
            let code = self.code(of: kind)
            if kindCodes == nil { kindCodes = Array(repeating: 0, count: position, reserving: works.capacity) }
            kindCodes!.append(code)
        }
        works.append(work)
        switch work {
        case .run: self.payloadBytes += payloadBytes + 64  // the closure's context
        case .planned(let outcome, _): self.payloadBytes += outcome.heapBytes
        }
    }

    /// The code of `kind` in this list's table (0: the first kind), added if new.
    private mutating func code(of kind: String) -> UInt8 {
        if kind == firstKind { return 0 }
        if let other = otherKinds.firstIndex(of: kind) { return UInt8(other + 1) }
        precondition(otherKinds.count < 255, "a job has at most 256 kinds")
        otherKinds.append(kind)
        return UInt8(otherKinds.count)
    }

    /// The default ids (each its index in the job) of the subtasks at `positions`.
    private func defaultIDs(_ positions: Range<Int>, reserving capacity: Int) -> [String] {
        var ids: [String] = []
        ids.reserveCapacity(Swift.max(capacity, positions.count))
        for position in positions { ids.append(String(firstIndex + position)) }
        return ids
    }

    /// Appends the subtasks of `other`, a list of the job's next subtasks (made with
    /// ``init(from:)`` at this list's end).
    mutating func append(contentsOf other: SubtaskList) {
        precondition(other.firstIndex == firstIndex + count, "a list of the subtasks after this one's")
        guard !other.isEmpty else { return }
        let position = works.count
        let total = position + other.count
        if ids != nil || other.ids != nil {
            if ids == nil { ids = defaultIDs(0..<position, reserving: total) }
            ids!.append(contentsOf: other.ids ?? other.defaultIDs(0..<other.count, reserving: 0))
        }
        if ownTimeouts != nil || other.ownTimeouts != nil {
            if ownTimeouts == nil { ownTimeouts = Array(repeating: -1, count: position, reserving: total) }
            ownTimeouts!.append(contentsOf: other.ownTimeouts ?? Array(repeating: -1, count: other.count))
        }
        if position == 0 {
            firstKind = other.firstKind
            otherKinds = other.otherKinds
            kindCodes = other.kindCodes
        } else if kindCodes == nil, other.kindCodes == nil, other.firstKind == firstKind {
            // Still a job of one kind: no codes.
        } else {
            // Other's codes (0: its first kind, then its others) in this list's table.
            let codes = ([other.firstKind] + other.otherKinds).map { code(of: $0) }
            if kindCodes == nil { kindCodes = Array(repeating: 0, count: position, reserving: total) }
            if let otherCodes = other.kindCodes {
                kindCodes!.append(contentsOf: otherCodes.lazy.map { codes[Int($0)] })
            } else {
                kindCodes!.append(contentsOf: repeatElement(codes[0], count: other.count))
            }
        }
        works.append(contentsOf: other.works)
        payloadBytes += other.payloadBytes
    }

    /// Whether some subtask names an id of its own.
    var namesOwnIDs: Bool { ids != nil }

    /// Gives back what growing the arrays over-allocated (up to half), once the list is complete:
    /// when it is over an eighth and worth the copies (a few hundred bytes are not).
    mutating func shrinkToFit() {
        let spare = works.capacity - works.count
        guard spare > works.count / 8, spare * MemoryLayout<BoundWork>.stride >= 512 else { return }
        works = works.withUnsafeBufferPointer { Array($0) }
        if let kindCodes { self.kindCodes = kindCodes.withUnsafeBufferPointer { Array($0) } }
        if let ids { self.ids = ids.withUnsafeBufferPointer { Array($0) } }
        if let ownTimeouts { self.ownTimeouts = ownTimeouts.withUnsafeBufferPointer { Array($0) } }
    }

    /// Estimated heap the list holds: its arrays and what the subtasks carry.
    var estimatedBytes: Int {
        var bytes = works.capacity * MemoryLayout<BoundWork>.stride + (kindCodes?.capacity ?? 0) + payloadBytes
        if let ids { bytes += ids.capacity * MemoryLayout<String>.stride }
        if let ownTimeouts { bytes += ownTimeouts.capacity * MemoryLayout<Int32>.stride }
        return bytes
    }
}

/// What performing a subtask takes, as a job's list keeps it (fewer bytes than ``SubtaskWork``).
enum BoundWork: Sendable {
    case run(@Sendable (SubtaskContext) async -> SubtaskOutcome)
    /// Known in advance, due this many microseconds after the subtask starts (0: at once).
    case planned(SubtaskOutcome, microseconds: Int64)

    init(_ work: SubtaskWork) {
        switch work {
        case .run(let body): self = .run(body)
        case .immediate(let outcome): self = .planned(outcome, microseconds: 0)
        case .delayed(let outcome, let delay): self = .planned(outcome, microseconds: delay.timerMicroseconds)
        }
    }
}

extension Duration {
    /// In whole microseconds, but at least 1 (zero and below too): a delayed outcome stays a
    /// timer, however short. Not a plain conversion, hence not FanoutUpstream's `wholeNanoseconds`.
    var timerMicroseconds: Int64 {
        let (seconds, attoseconds) = components
        return Swift.max(seconds * 1_000_000 + attoseconds / 1_000_000_000_000, 1)
    }
}

extension String {
    /// Heap bytes a string holds: none when short enough to be stored inline, else its bytes, its
    /// header (32) and malloc's (16).
    var heapBytes: Int { utf8.count <= 15 ? 0 : 48 + utf8.count }
}

extension JSONValue {
    /// Estimated heap bytes this value holds (arrays and long strings), for ``Job/estimatedBytes``.
    var heapBytes: Int {
        switch self {
        case .null, .bool, .number: 0
        case .string(let string): string.heapBytes
        case .array(let elements):
            elements.reduce(48 + elements.capacity * MemoryLayout<JSONValue>.stride) { $0 + $1.heapBytes }
        case .object(let members):
            members.reduce(48 + members.capacity * MemoryLayout<(String, JSONValue)>.stride) { $0 + $1.0.heapBytes + $1.1.heapBytes }
        }
    }
}

extension Array {
    /// `count` copies of `element`, with room for `capacity` elements.
    fileprivate init(repeating element: Element, count: Int, reserving capacity: Int) {
        self.init()
        reserveCapacity(Swift.max(capacity, count))
        append(contentsOf: repeatElement(element, count: count))
    }
}
