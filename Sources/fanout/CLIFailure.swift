internal import FanoutCore

/// Exit statuses (documented in `fanout --help` and the README).
enum ExitStatus {
    /// Every subtask ended `ok`.
    static let ok: Int32 = 0
    /// The job finished with at least one non-`ok` line.
    static let notAllOK: Int32 = 1
    /// Usage, validation (a problem+json answer) or transport failure; a job that could not be resumed.
    static let failure: Int32 = 2
    /// Interrupted by Ctrl-C (after cancelling the job and printing the summary, or at once on the second).
    static let interrupted: Int32 = 130
}

/// A failure reported as one message on stderr (`fanout: …`) with its exit status.
struct CLIFailure: Error, CustomStringConvertible {
    var message: String
    var exitCode: Int32 = ExitStatus.failure

    var description: String { message }

    /// A server's error answer as one line: `<title> (<status>): <detail> [field: <field>]`;
    /// a body that is not a problem document is quoted (shortened) instead.
    static func answer(status: Int, body: [UInt8]) -> CLIFailure {
        guard let document = try? JSONParser.parse(body), let title = document["title"]?.stringValue else {
            let text = String(decoding: body.prefix(300), as: UTF8.self).split(whereSeparator: \.isNewline).joined(separator: " ")
            return CLIFailure(message: "the server answered \(status)" + (text.isEmpty ? "" : ": \(text)"))
        }
        var message = "\(title) (\(status))"
        if let detail = document["detail"]?.stringValue, !detail.isEmpty { message += ": \(detail)" }
        if let field = document["field"]?.stringValue, !field.isEmpty { message += " [field: \(field)]" }
        return CLIFailure(message: message)
    }
}
