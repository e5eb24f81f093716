internal import FanoutCore
import FanoutSync
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The live one-line display on stderr: bar done/total, counts per status, lines/s, elapsed, ETA,
/// and a note ("reconnecting: …"). Redrawn in place at most 10 times a second; draws nothing
/// (no escape codes at all) when disabled.
final class ProgressDisplay: Sendable {
    struct Counts {
        var total = 0
        var done = 0
        var ok = 0
        var error = 0
        var timeout = 0
        var cancelled = 0
    }

    private struct State {
        var counts = Counts()
        var note: String?
        var lastDraw: ContinuousClock.Instant?
        var visible = false
        var finished = false
    }

    let enabled: Bool
    private let start = ContinuousClock.now
    private let state = Locked(State())
    static let minimumInterval = Duration.milliseconds(100)

    init(enabled: Bool) { self.enabled = enabled }

    func result(_ line: JSONValue) {
        update(force: false) { state in
            state.counts.progress(from: line)
            switch line["status"]?.stringValue {
            case "ok": state.counts.ok += 1
            case "error": state.counts.error += 1
            case "timeout": state.counts.timeout += 1
            case "cancelled": state.counts.cancelled += 1
            default: break
            }
        }
    }

    func heartbeat(_ line: JSONValue) { update(force: false) { $0.counts.progress(from: line) } }

    /// Shows (or with nil removes) a note after the counts; drawn at once.
    func note(_ text: String?) {
        update(force: true) { state in
            guard state.note != text else { return }
            state.note = text
        }
    }

    /// A redraw for the clock (elapsed, ETA, rate) when nothing else changed.
    func tick() { update(force: false) { _ in } }

    /// Removes the line for good (before the summary).
    func finish() {
        guard enabled else { return }
        state.withLock { state in
            if state.visible { Terminal.err("\r\u{1B}[2K") }
            state.visible = false
            state.finished = true
        }
    }

    /// Runs `body` (a write to the same terminal) with the line removed, then redraws it.
    func around(_ body: () -> Void) {
        guard enabled else { return body() }
        state.withLock { state in
            if state.visible { Terminal.err("\r\u{1B}[2K") }
            state.visible = false
            body()
            draw(&state)
        }
    }

    private func update(force: Bool, _ change: (inout State) -> Void) {
        state.withLock { state in
            change(&state)
            guard enabled, !state.finished else { return }
            let now = ContinuousClock.now
            if !force, let last = state.lastDraw, now - last < Self.minimumInterval { return }
            draw(&state)
        }
    }

    private func draw(_ state: inout State) {
        guard !state.finished else { return }
        let now = ContinuousClock.now
        state.lastDraw = now
        state.visible = true
        var line = Self.render(state.counts, elapsed: now - start, note: state.note)
        let width = Terminal.columns(STDERR_FILENO) - 1
        if line.count > width { line = String(line.prefix(max(0, width))) }
        Terminal.err("\r" + line + "\u{1B}[K")
    }

    /// The line's text, e.g. `[██████░░░░] 512/1000  ok 500  error 10  timeout 2  cancelled 0  84.1/s  0:06  ETA 0:06`.
    static func render(_ counts: Counts, elapsed: Duration, note: String?) -> String {
        let width = 24
        let fraction = counts.total > 0 ? Double(counts.done) / Double(counts.total) : 0
        let filled = min(width, Int(fraction * Double(width)))
        let bar = "[" + String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled) + "]"
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let rate = seconds > 0 ? Double(counts.done) / seconds : 0
        var line = "\(bar) \(counts.done)/\(counts.total)  ok \(counts.ok)  error \(counts.error)  timeout \(counts.timeout)"
            + "  cancelled \(counts.cancelled)  \(format(rate: rate))/s  \(clock(seconds))"
        if counts.total > counts.done, rate > 0 {
            line += "  ETA \(clock(Double(counts.total - counts.done) / rate))"
        }
        if let note { line += "  \(note)" }
        return line
    }

    static func format(rate: Double) -> String {
        let tenths = Int((rate * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)"
    }

    /// `m:ss` (or `h:mm:ss`).
    static func clock(_ seconds: Double) -> String {
        let total = Int(seconds.rounded(.down))
        let (h, m, s) = (total / 3600, total / 60 % 60, total % 60)
        let ss = s < 10 ? "0\(s)" : "\(s)"
        if h > 0 { return "\(h):" + (m < 10 ? "0\(m)" : "\(m)") + ":" + ss }
        return "\(m):" + ss
    }
}

extension ProgressDisplay.Counts {
    /// `done`/`total` from a line that carries them.
    mutating func progress(from line: JSONValue) {
        if let done = line["done"]?.numberValue { self.done = max(self.done, Int(done)) }
        if let total = line["total"]?.numberValue { self.total = Int(total) }
    }
}
