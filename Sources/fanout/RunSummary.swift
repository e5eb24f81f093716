internal import FanoutCore

/// What the summary at the end shows: the counts, the five slowest subtasks, error codes with counts.
struct RunSummary {
    struct Slow {
        var label: String
        var status: String
        var elapsedMilliseconds: Double
    }

    private(set) var slowest: [Slow] = []
    private(set) var errorCodes: [String: Int] = [:]
    static let slowestShown = 5

    mutating func add(_ line: JSONValue, label: String) {
        let status = line["status"]?.stringValue ?? "?"
        if let code = line["error"]?["code"]?.stringValue { errorCodes[code, default: 0] += 1 }
        let elapsed = line["elapsed_ms"]?.numberValue ?? 0
        guard slowest.count < Self.slowestShown || elapsed > slowest[slowest.count - 1].elapsedMilliseconds else { return }
        slowest.append(Slow(label: label, status: status, elapsedMilliseconds: elapsed))
        slowest.sort { $0.elapsedMilliseconds > $1.elapsedMilliseconds }
        if slowest.count > Self.slowestShown { slowest.removeLast() }
    }

    /// The table, from the end line's counts (or, without one, what was seen).
    func render(end: JSONValue?, jobID: String?, interrupted: Bool) -> String {
        func count(_ key: String) -> Int { Int(end?[key]?.numberValue ?? 0) }
        var text = "\n"
        let job = jobID ?? end?["job"]?.stringValue ?? "?"
        let elapsed = (end?["elapsed_ms"]?.numberValue).map { " in " + Self.milliseconds($0) } ?? ""
        text += "job \(job)\(interrupted ? " (cancelled by Ctrl-C)" : ""): \(count("total")) subtasks\(elapsed)\n\n"
        var rows = [["status", "count"]]
        for status in ["ok", "error", "timeout", "cancelled"] { rows.append([status, "\(count(status))"]) }
        rows.append(["total", "\(count("total"))"])
        text += Self.table(rows, rightAligned: [1])
        if !slowest.isEmpty {
            text += "\n"
            var rows = [["slowest", "elapsed", "status"]]
            for slow in slowest { rows.append([slow.label, Self.milliseconds(slow.elapsedMilliseconds), slow.status]) }
            text += Self.table(rows, rightAligned: [1])
        }
        if !errorCodes.isEmpty {
            text += "\n"
            var rows = [["error code", "count"]]
            for (code, n) in errorCodes.sorted(by: { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }) {
                rows.append([code, "\(n)"])
            }
            text += Self.table(rows, rightAligned: [1])
        }
        return text
    }

    /// `850.2 ms` or `3.00 s`.
    static func milliseconds(_ value: Double) -> String {
        if value < 1000 {
            let tenths = Int((value * 10).rounded())
            return "\(tenths / 10).\(tenths % 10) ms"
        }
        let hundredths = Int((value / 10).rounded())
        let cents = hundredths % 100
        return "\(hundredths / 100).\(cents < 10 ? "0" : "")\(cents) s"
    }

    /// Columns padded to their widest cell, two spaces apart; the first row is the header.
    static func table(_ rows: [[String]], rightAligned: Set<Int> = []) -> String {
        let columns = rows.map(\.count).max() ?? 0
        var widths = Array(repeating: 0, count: columns)
        for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
        var text = ""
        for row in rows {
            var cells: [String] = []
            for (i, cell) in row.enumerated() {
                let pad = String(repeating: " ", count: widths[i] - cell.count)
                cells.append(rightAligned.contains(i) ? pad + cell : (i == row.count - 1 ? cell : cell + pad))
            }
            text += "  " + cells.joined(separator: "  ") + "\n"
        }
        return text
    }
}
