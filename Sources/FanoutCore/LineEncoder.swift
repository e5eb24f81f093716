/// Encodes the stream's NDJSON lines (SPEC "The stream"), each ending in `\n`.
public enum LineEncoder {
    /// - Parameter id: The subtask's own id; nil for the default, its index (written as digits, with
    ///   no `String` made for it).
    public static func result(
        id: String?,
        index: Int,
        outcome: SubtaskOutcome,
        elapsedMilliseconds: Double,
        done: Int,
        total: Int,
        into writer: inout JSONWriter
    ) {
        writer.raw("{\"event\":\"result\",\"id\":")
        // The default id is the index's digits: written once, then copied.
        var indexDigits: Range<Int>?
        if let id {
            writer.write(string: id)
        } else {
            writer.raw("\"")
            let digitsStart = writer.count
            writer.write(int: index)
            indexDigits = digitsStart..<writer.count
            writer.raw("\"")
        }
        writer.raw(",\"index\":")
        if let indexDigits { writer.appendWritten(indexDigits) } else { writer.write(int: index) }
        writer.raw(",\"status\":\"")
        switch outcome.status {
        case .ok: writer.raw("ok\"")
        case .error: writer.raw("error\"")
        case .timeout: writer.raw("timeout\"")
        case .cancelled: writer.raw("cancelled\"")
        }
        if outcome.status == .ok {
            writer.raw(",\"value\":")
            writer.write(outcome.value ?? .null)
        } else {
            writer.raw(",\"error\":{\"code\":")
            writer.write(string: outcome.errorCode ?? "internal")
            writer.raw(",\"message\":")
            writer.write(string: outcome.errorMessage ?? "")
            writer.raw("}")
            if let response = outcome.response {
                writer.raw(",\"response\":")
                writer.write(response)
            }
        }
        writer.raw(",\"elapsed_ms\":")
        writer.write(milliseconds: elapsedMilliseconds)
        writer.raw(",\"done\":")
        writer.write(int: done)
        writer.raw(",\"total\":")
        writer.write(int: total)
        writer.raw("}\n")
    }

    public static func heartbeat(done: Int, total: Int, elapsedMilliseconds: Double, into writer: inout JSONWriter) {
        writer.raw("{\"event\":\"heartbeat\",\"done\":")
        writer.write(int: done)
        writer.raw(",\"total\":")
        writer.write(int: total)
        writer.raw(",\"elapsed_ms\":")
        writer.write(milliseconds: elapsedMilliseconds)
        writer.raw("}\n")
    }

    public static func end(job: String, summary: JobSummary, into writer: inout JSONWriter) {
        writer.raw("{\"event\":\"end\",\"job\":")
        writer.write(string: job)
        writer.raw(",\"total\":")
        writer.write(int: summary.total)
        writer.raw(",\"ok\":")
        writer.write(int: summary.ok)
        writer.raw(",\"error\":")
        writer.write(int: summary.error)
        writer.raw(",\"timeout\":")
        writer.write(int: summary.timeout)
        writer.raw(",\"cancelled\":")
        writer.write(int: summary.cancelled)
        writer.raw(",\"elapsed_ms\":")
        writer.write(milliseconds: summary.elapsedMilliseconds)
        writer.raw("}\n")
    }
}

extension Duration {
    /// This duration in (fractional) milliseconds.
    public var milliseconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) * 1000 + Double(attoseconds) / 1e15
    }
}
