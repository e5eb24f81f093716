import MicroHTTPServer
import FanoutCore

/// An RFC 9457 problem document (`application/problem+json`), the answer to every refused request.
struct Problem: Sendable {
    var status: Int
    var title: String
    var detail: String
    /// The offending field of a job, e.g. `tasks[2].delay_ms`.
    var field: String?
    /// A stable slug, turned into the `type` URI.
    var slug: String
    var headers: [(name: String, value: String)] = []

    static let typeBase = "https://fanoutd.dev/problems/"

    var response: HTTPResponse {
        var writer = JSONWriter(capacity: 256)
        var members: [(String, JSONValue)] = [
            ("type", .string(Self.typeBase + slug)),
            ("title", .string(title)),
            ("status", .number(Double(status))),
            ("detail", .string(detail)),
        ]
        if let field { members.append(("field", .string(field))) }
        writer.write(.object(members))
        writer.append(UInt8(ascii: "\n"))
        return HTTPResponse(
            status: status,
            headers: [("Content-Type", "application/problem+json"), ("Cache-Control", "no-store")] + headers,
            body: .bytes(writer.take())
        )
    }

    static func notFound(_ path: String) -> Problem {
        Problem(status: 404, title: "Not Found", detail: "no resource at \(path)", slug: "not-found")
    }

    static func methodNotAllowed(_ method: String, path: String, allowed: String) -> Problem {
        Problem(
            status: 405, title: "Method Not Allowed", detail: "\(path) does not accept \(method); use \(allowed)",
            slug: "method-not-allowed", headers: [("Allow", allowed)]
        )
    }

    static func unsupportedMediaType(_ contentType: String?) -> Problem {
        Problem(
            status: 415, title: "Unsupported Media Type",
            detail: "a job must be sent as Content-Type: application/json, got \(contentType.map { "\"\($0)\"" } ?? "none")",
            slug: "unsupported-media-type"
        )
    }

    static func bodyTooLarge(limit: Int) -> Problem {
        Problem(
            status: 413, title: "Content Too Large",
            detail: "the request body is over the limit of \(limit) bytes (server.max_body_bytes)",
            slug: "body-too-large"
        )
    }

    static func invalidJob(_ error: JobValidationError) -> Problem {
        switch error.kind {
        case .malformedJSON:
            Problem(status: 400, title: "Malformed JSON", detail: error.detail, slug: "malformed-json")
        case .invalidField:
            Problem(status: 400, title: "Invalid Job", detail: error.description, field: error.field, slug: "invalid-job")
        case .tooManyTasks:
            Problem(status: 413, title: "Too Many Tasks", detail: error.description, field: error.field, slug: "too-many-tasks")
        case .overMemory:
            Problem(status: 413, title: "Content Too Large", detail: error.description, slug: "job-too-large")
        }
    }

    static func bodyBudgetExceeded(retryAfter: Int) -> Problem {
        Problem(
            status: 503, title: "Service Unavailable",
            detail: "too many request bodies are being read at once (server.max_pending_body_bytes); retry later",
            slug: "body-budget", headers: [("Retry-After", "\(retryAfter)")]
        )
    }

    static func saturated(retryAfter: Int) -> Problem {
        Problem(
            status: 503, title: "Service Unavailable",
            detail: "too many jobs are running (limits.max_concurrent_jobs); retry later",
            slug: "saturated", headers: [("Retry-After", "\(retryAfter)")]
        )
    }

    static func memoryBudget(retryAfter: Int) -> Problem {
        Problem(
            status: 503, title: "Service Unavailable",
            detail: "the running jobs hold the memory budget (limits.max_job_memory_bytes); retry later",
            slug: "memory-budget", headers: [("Retry-After", "\(retryAfter)")]
        )
    }

    static func jobTooLarge(cost: Int, budget: Int) -> Problem {
        Problem(
            status: 413, title: "Content Too Large",
            detail: "the job would take more than \(cost) bytes of memory; limits.max_job_memory_bytes is \(budget)",
            slug: "job-too-large"
        )
    }

    static func draining(retryAfter: Int) -> Problem {
        Problem(
            status: 503, title: "Service Unavailable",
            detail: "the server is shutting down and accepts no new jobs; retry on another replica",
            slug: "draining", headers: [("Retry-After", "\(retryAfter)")]
        )
    }

    static func originNotAllowed(_ origin: String) -> Problem {
        Problem(
            status: 403, title: "Forbidden",
            detail: "cross-origin requests from \(origin) are not allowed (cors.allow_origins)",
            slug: "origin-not-allowed"
        )
    }

    static func unauthorized(_ detail: String) -> Problem {
        Problem(
            status: 401, title: "Unauthorized", detail: detail, slug: "unauthorized",
            headers: [("WWW-Authenticate", "Bearer realm=\"fanoutd\"")]
        )
    }
}
