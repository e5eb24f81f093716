internal import ArgumentParser
internal import FanoutCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How result lines go to stdout.
enum OutputMode: String, ExpressibleByArgument, CaseIterable {
    /// Each result line and the end line as received (the server's NDJSON, `seq` included).
    case ndjson
    /// One JSON document at the end: `{"job", "results": [...], "end"}`.
    case json
    /// One aligned row per result as it arrives.
    case table
    case none

    /// `ndjson` when stdout is not a terminal, else `table`.
    static var standard: OutputMode { Terminal.isTTY(STDOUT_FILENO) ? .table : .ndjson }
}

/// Writes a job's lines to stdout in the chosen mode; around the progress line when both share a terminal.
final class OutputWriter {
    let mode: OutputMode
    private let display: ProgressDisplay
    private let sharesTerminal: Bool
    private var results: [JSONValue] = []
    private var wroteHeader = false

    init(mode: OutputMode, display: ProgressDisplay) {
        self.mode = mode
        self.display = display
        sharesTerminal = Terminal.isTTY(STDOUT_FILENO) && display.enabled
    }

    func line(_ text: String, _ json: JSONValue, label: String) {
        let isEnd = json["event"]?.stringValue == "end"
        switch mode {
        case .none:
            return
        case .ndjson:
            write(text + "\n")
        case .json:
            if !isEnd { results.append(json) }
        case .table:
            guard !isEnd else { return }
            var text = ""
            if !wroteHeader {
                wroteHeader = true
                text += Self.row(["STATUS", "ELAPSED", "SUBTASK", "DETAIL"])
            }
            text += Self.row([
                json["status"]?.stringValue ?? "?",
                RunSummary.milliseconds(json["elapsed_ms"]?.numberValue ?? 0),
                label,
                Self.detail(json),
            ])
            write(text)
        }
    }

    /// The `json` mode's document, once the end line is in.
    func finish(end: JSONValue, jobID: String?) {
        guard mode == .json else { return }
        let document = JSONValue.object([
            ("job", jobID.map(JSONValue.string) ?? end["job"] ?? .null),
            ("results", .array(results)),
            ("end", end),
        ])
        write(document.jsonText + "\n")
    }

    private func write(_ text: String) {
        if sharesTerminal { display.around { Terminal.out(text) } } else { Terminal.out(text) }
    }

    private static func row(_ cells: [String]) -> String {
        func pad(_ text: String, _ width: Int) -> String { text + String(repeating: " ", count: max(1, width - text.count)) }
        return pad(cells[0], 10) + pad(cells[1], 11) + pad(cells[2], 24) + cells[3] + "\n"
    }

    /// A result's detail: the error's code and message, an http answer's status, else the value (shortened).
    private static func detail(_ line: JSONValue) -> String {
        let text: String
        if let error = line["error"] {
            text = (error["code"]?.stringValue ?? "?") + ": " + (error["message"]?.stringValue ?? "")
        } else if let value = line["value"], let status = value["status"]?.numberValue, value["headers"] != nil {
            text = "HTTP \(Int(status))"
        } else {
            text = line["value"]?.jsonText ?? "null"
        }
        return text.count > 80 ? String(text.prefix(79)) + "…" : text
    }
}
