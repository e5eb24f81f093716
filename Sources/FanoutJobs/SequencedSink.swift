public import FanoutCore
import FanoutSync

/// The dispatcher's sink for a retained job: splits what it sends into lines, puts `"seq":N` first
/// in each (1, 2, 3 …, heartbeats included) and appends them to the store, waiting while the store
/// is full. Never throws: a retained job does not end because a reader went away.
public final class SequencedSink: LineSink {
    public let id: String
    private let store: any JobStore
    /// The next line's number. The dispatcher sends one batch at a time; the lock only makes that
    /// visible to the compiler.
    private let next = Locked(1)

    public init(id: String, store: any JobStore) {
        self.id = id
        self.store = store
    }

    public func send(_ bytes: [UInt8]) async throws {
        let lines = next.withLock { next in Self.number(bytes, from: &next) }
        await store.append(id, lines: lines)
    }

    /// Splits `bytes` (whole `\n`-terminated JSON objects; JSONWriter escapes newlines inside
    /// strings) and numbers each line from `next`.
    public static func number(_ bytes: [UInt8], from next: inout Int) -> [RetainedLine] {
        var lines: [RetainedLine] = []
        var start = 0
        let newline = UInt8(ascii: "\n")
        while start < bytes.count {
            guard let end = bytes[start...].firstIndex(of: newline) else { break }
            let line = bytes[start...end]
            start = end + 1
            guard line.first == UInt8(ascii: "{"), line.count > 2 else { continue }
            var numbered: [UInt8] = []
            numbered.reserveCapacity(line.count + 16)
            numbered.append(contentsOf: #"{"seq":"#.utf8)
            numbered.append(contentsOf: String(next).utf8)
            numbered.append(UInt8(ascii: ","))
            numbered.append(contentsOf: line.dropFirst())
            let (event, status) = classify(line)
            lines.append(RetainedLine(seq: next, event: event, status: status, index: event == .result ? index(line) : nil, bytes: numbered))
            next += 1
        }
        return lines
    }

    private static let resultPrefix = Array(#"{"event":"result""#.utf8)
    private static let endPrefix = Array(#"{"event":"end""#.utf8)
    private static let statusKey = Array(#","status":""#.utf8)
    private static let indexKey = Array(#","index":"#.utf8)

    /// A result line's `index` (written after `id`, whose JSON string cannot hold `,"index":` unescaped).
    static func index(_ line: ArraySlice<UInt8>) -> Int? {
        guard let at = firstRange(of: indexKey, in: line) else { return nil }
        var value = 0
        var position = at
        while position < line.endIndex, let digit = line[position].digitValue {
            value = value * 10 + digit
            position += 1
        }
        return position > at ? value : nil
    }

    /// The line's event and a result's status, from the fixed shape ``LineEncoder`` writes: the
    /// event first, then `id`, `index`, `status` (an id cannot contain `,"status":"` unescaped).
    static func classify(_ line: ArraySlice<UInt8>) -> (RetainedLine.Event, SubtaskOutcome.Status?) {
        if line.starts(with: endPrefix) { return (.end, nil) }
        guard line.starts(with: resultPrefix) else { return (.heartbeat, nil) }
        guard let at = firstRange(of: statusKey, in: line) else { return (.result, nil) }
        let rest = line[at...]
        for status in [SubtaskOutcome.Status.ok, .error, .timeout, .cancelled] where rest.starts(with: Array(status.rawValue.utf8)) {
            return (.result, status)
        }
        return (.result, nil)
    }

    /// Index just past the first occurrence of `needle` in `haystack`.
    private static func firstRange(of needle: [UInt8], in haystack: ArraySlice<UInt8>) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        var index = haystack.startIndex
        let last = haystack.endIndex - needle.count
        while index <= last {
            if haystack[index] == needle[0], haystack[index..<index + needle.count].elementsEqual(needle) {
                return index + needle.count
            }
            index += 1
        }
        return nil
    }
}

extension UInt8 {
    fileprivate var digitValue: Int? { ASCII.isDigit(self) ? Int(self - UInt8(ascii: "0")) : nil }
}
