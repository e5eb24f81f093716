internal import ArgumentParser
internal import FanoutCore
import Foundation

/// The job `fanout get` submits: one `http` GET subtask per URL, the options as job fields.
struct GetJob {
    var urls: [String]
    var headers: [(String, String)] = []
    var concurrency: Int?
    var timeoutMilliseconds: Int?
    var taskTimeoutMilliseconds: Int?
    var retries: Int?
    var hedgeMilliseconds: Int?
    var order: String?
    var failFast = false
    var first: Int?

    /// A `-H 'name: value'` argument as a header.
    static func header(_ argument: String) throws -> (String, String) {
        guard let colon = argument.firstIndex(of: ":") else {
            throw ValidationError("-H '\(argument)': expected 'name: value'")
        }
        let name = argument[..<colon].trimmingCharacters(in: .whitespaces)
        let value = argument[argument.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        guard !name.isEmpty else { throw ValidationError("-H '\(argument)': the header name is empty") }
        return (name, value)
    }

    /// URLs one per line; blank lines and `#` comments are skipped.
    static func urls(fromLines text: String) -> [String] {
        text.split(whereSeparator: \.isNewline)
            .map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
            .filter { !$0.isEmpty && !$0.hasPrefix("#") }
    }

    var json: JSONValue {
        let task: [(String, JSONValue)] = [("kind", .string("http")), ("method", .string("GET"))]
        var extra: [(String, JSONValue)] = []
        if !headers.isEmpty { extra.append(("headers", .object(headers.map { ($0.0, .string($0.1)) }))) }
        if let retries { extra.append(("retries", .number(Double(retries)))) }
        if let hedgeMilliseconds { extra.append(("hedge_after_ms", .number(Double(hedgeMilliseconds)))) }
        var job: [(String, JSONValue)] = [
            ("tasks", .array(urls.map { .object(task + [("url", .string($0))] + extra) }))
        ]
        if let concurrency { job.append(("concurrency", .number(Double(concurrency)))) }
        if let timeoutMilliseconds { job.append(("timeout_ms", .number(Double(timeoutMilliseconds)))) }
        if let taskTimeoutMilliseconds { job.append(("task_timeout_ms", .number(Double(taskTimeoutMilliseconds)))) }
        if let order { job.append(("order", .string(order))) }
        if failFast { job.append(("fail_fast", .bool(true))) }
        if let first { job.append(("first", .number(Double(first)))) }
        return .object(job)
    }
}

/// A job document made ready to follow: `on_disconnect: continue`, so a lost stream loses nothing.
enum JobDocument {
    static func continuing(_ job: JSONValue) throws -> [UInt8] {
        guard case .object(var members) = job else { throw CLIFailure(message: "the job must be a JSON object") }
        members.removeAll { $0.0 == "on_disconnect" }
        members.append(("on_disconnect", .string("continue")))
        var writer = JSONWriter()
        writer.write(.object(members))
        return writer.bytes
    }

    /// A fresh Idempotency-Key: 128 random bits as 32 hex digits.
    static func freshKey() -> String {
        var generator = SystemRandomNumberGenerator()
        let digits = Array("0123456789abcdef")
        return String((0..<32).map { _ in digits[Int(generator.next() % 16)] })
    }
}
