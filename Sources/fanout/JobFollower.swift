internal import AsyncHTTPClient
internal import FanoutCore
internal import NIOCore
internal import NIOHTTP1

/// Where a follower starts: a submission (retried with the same Idempotency-Key) or a job's events.
enum FollowStart {
    case submit(body: [UInt8], idempotencyKey: String)
    case events(id: String, after: Int)
}

/// Reads a job's lines to its end line, never losing one: a dropped stream resumes from
/// `/v1/jobs/{id}/events?after=<last seq>` with backoff, a failed submission is retried with the
/// same Idempotency-Key, and lines whose `seq` was already seen are skipped. It gives up when no
/// connection has delivered a line for `resumeTimeout`.
struct JobFollower {
    let client: FanoutClient
    let cursor: JobCursor
    let display: ProgressDisplay
    let resumeTimeout: Duration
    /// Called with the job's id when a Ctrl-C arrived before the id was known.
    let cancel: @Sendable (String) -> Void

    /// Follows the job and returns its end line; `onLine` gets every result and end line once.
    func follow(_ start: FollowStart, onLine: (String, JSONValue) throws -> Void) async throws -> JSONValue {
        var current = start
        var backoff = Duration.milliseconds(200)
        var failingSince: ContinuousClock.Instant?
        while true {
            var received = 0
            do {
                if let end = try await attempt(current, received: &received, onLine: onLine) { return end }
                throw TransportFailure(description: "the stream ended before the job's end line")
            } catch let failure as TransportFailure {
                if received > 0 {
                    failingSince = nil
                    backoff = .milliseconds(200)
                }
                let now = ContinuousClock.now
                let since = failingSince ?? now
                failingSince = since
                let left = resumeTimeout - (now - since)
                guard left > .zero else { throw CLIFailure(message: giveUp(failure)) }
                if cursor.interrupted && cursor.id == nil {
                    throw CLIFailure(message: "interrupted before the job was submitted", exitCode: ExitStatus.interrupted)
                }
                if let id = cursor.id { current = .events(id: id, after: cursor.seq) }
                display.note("reconnecting: \(failure.description)")
                try await Task.sleep(for: min(max(failure.retryAfter ?? .zero, backoff), left))
                backoff = min(backoff * 2, .seconds(5))
            }
        }
    }

    private func giveUp(_ failure: TransportFailure) -> String {
        let seconds = resumeTimeout.components.seconds
        guard let id = cursor.id else { return "could not submit the job in \(seconds) s: \(failure.description)" }
        return "could not resume job \(id) in \(seconds) s (\(failure.description)); "
            + "its lines after seq \(cursor.seq) may still be read with: fanout follow \(id) --after \(cursor.seq)"
    }

    /// One connection: returns the end line, or nil when the stream ended without it.
    private func attempt(_ start: FollowStart, received: inout Int, onLine: (String, JSONValue) throws -> Void) async throws -> JSONValue? {
        let response: HTTPClientResponse
        switch start {
        case .submit(let body, let key):
            response = try await client.send(.POST, "/v1/jobs", headers: [("Idempotency-Key", key)], body: body)
        case .events(let id, let after):
            response = try await client.send(.GET, "/v1/jobs/\(id)/events?after=\(after)")
        }
        let status = Int(response.status.code)
        if status == 202 {
            // A detached job (the file asked for it): follow its events from the start.
            let body = try await FanoutClient.collect(response)
            guard let id = (try? JSONParser.parse(body))?["job"]?.stringValue else {
                throw CLIFailure(message: "the server's 202 answer names no job")
            }
            learn(id)
            return try await attempt(.events(id: id, after: cursor.seq), received: &received, onLine: onLine)
        }
        guard status == 200 else {
            let body = try await FanoutClient.collect(response)
            let problem = CLIFailure.answer(status: status, body: body)
            if [409, 429, 502, 503, 504].contains(status) {
                throw TransportFailure(description: problem.message, retryAfter: FanoutClient.retryAfter(response))
            }
            if status == 404, case .events(let id, _) = start {
                throw CLIFailure(message: "job \(id) is gone (unknown, or expired after its retention): \(problem.message)")
            }
            throw problem
        }
        if let id = response.headers.first(name: "X-Job-Id") { learn(id) }
        display.note(nil)
        var splitter = LineSplitter()
        var end: JSONValue?
        do {
            for try await chunk in response.body {
                try splitter.feed(chunk.readableBytesView) { bytes in
                    let json: JSONValue
                    do { json = try JSONParser.parse(bytes) } catch {
                        throw CLIFailure(message: "the server sent a line that is not JSON (\(error))")
                    }
                    if let seq = json["seq"]?.numberValue {
                        guard cursor.advance(to: Int(seq)) else { return }
                    }
                    received += 1
                    switch json["event"]?.stringValue {
                    case "heartbeat":
                        display.heartbeat(json)
                    case "end":
                        end = json
                        try onLine(String(decoding: bytes, as: UTF8.self), json)
                    default:
                        display.result(json)
                        try onLine(String(decoding: bytes, as: UTF8.self), json)
                    }
                }
                if end != nil { break }
            }
        } catch let failure as CLIFailure {
            throw failure
        } catch {
            if end == nil { throw TransportFailure(description: FanoutClient.describe(error)) }
        }
        return end
    }

    private func learn(_ id: String) {
        if let pending = cursor.learn(id: id) { cancel(pending) }
    }
}
