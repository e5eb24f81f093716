/// The problems of the retained-job routes (SPEC "Jobs that outlive their connection").
extension Problem {
    static func unknownJob(_ id: String) -> Problem {
        Problem(status: 404, title: "Not Found", detail: "no retained job \"\(id)\" (unknown, expired, deleted, or not yours)", slug: "unknown-job")
    }

    static func invalidCursor(_ field: String, _ value: String) -> Problem {
        Problem(
            status: 400, title: "Invalid Cursor",
            detail: "\(field) must be a non-negative integer (the last seq seen), got \"\(value)\"",
            field: field, slug: "invalid-cursor"
        )
    }

    static func invalidStateFilter(_ value: String) -> Problem {
        Problem(
            status: 400, title: "Invalid Query", detail: "state must be running, finished or interrupted, got \"\(value)\"",
            field: "state", slug: "invalid-query"
        )
    }

    static func invalidIdempotencyKey() -> Problem {
        Problem(
            status: 400, title: "Invalid Idempotency-Key",
            detail: "Idempotency-Key must be 1 to 255 visible ASCII characters",
            field: "Idempotency-Key", slug: "invalid-idempotency-key"
        )
    }

    static func idempotencyKeyReused() -> Problem {
        Problem(
            status: 422, title: "Idempotency-Key Reused",
            detail: "this Idempotency-Key was used with a different job; use a new key for a new job",
            field: "Idempotency-Key", slug: "idempotency-key-reused"
        )
    }

    static func idempotencyKeyInProgress() -> Problem {
        Problem(
            status: 409, title: "Conflict",
            detail: "the first request with this Idempotency-Key is still being admitted; retry in a moment",
            field: "Idempotency-Key", slug: "idempotency-key-in-progress", headers: [("Retry-After", "1")]
        )
    }

    static func jobStoreUnavailable() -> Problem {
        Problem(
            status: 503, title: "Service Unavailable",
            detail: "the retained-job store (jobs.store) cannot be reached; plain jobs still run; retry in a moment",
            slug: "job-store-unavailable", headers: [("Retry-After", "2")]
        )
    }

    static func jobRunning(_ id: String) -> Problem {
        Problem(
            status: 409, title: "Conflict",
            detail: "job \"\(id)\" is still running; cancel it (POST /v1/jobs/\(id)/cancel) or wait for its end",
            slug: "job-running"
        )
    }
}
