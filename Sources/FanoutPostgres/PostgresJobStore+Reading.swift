public import FanoutJobs
import NIOCore
import PostgresNIO

/// The reads of ``PostgresJobStore``: a job's lines by cursor (waiting for more), its status
/// document, the owner's list, and the wait for a job's end.
extension PostgresJobStore {
    public func read(_ id: String, owner: String?, after: Int, maxLines: Int) async throws -> JobRead {
        var failingSince: ContinuousClock.Instant?
        while true {
            try Task.checkCancellation()
            let generation = wakeups.watch(id)
            defer { wakeups.unwatch(id) }
            let step: JobRead?
            do {
                step = try await readOnce(id, owner: owner, after: after, maxLines: maxLines)
                failingSince = nil
            } catch let error as JobStoreError {
                throw error
            } catch {
                // The database is away: keep trying for a while, then let the reader go (it resumes).
                try Task.checkCancellation()
                let since = failingSince ?? .now
                failingSince = since
                if ContinuousClock.now - since > .seconds(10) { throw JobStoreError.unavailable }
                try await Task.sleep(for: .milliseconds(250))
                continue
            }
            if let step { return step }
            await wakeups.wait(for: id, since: generation, atMost: Self.pollInterval)
        }
    }

    /// One query: the job's row and its next lines. nil: none yet, the job runs.
    private func readOnce(_ id: String, owner: String?, after: Int, maxLines: Int) async throws -> JobRead? {
        let limit = max(maxLines, 1)
        let rows = try await query { client, schema in
            try await client.query("""
                select j.state, j.owner, j.expires_at, j.last_seq, l.seq, l.event, l.status, l.body
                from \(unescaped: schema).fanout_jobs j
                left join lateral (
                    select seq, event, status, body from \(unescaped: schema).fanout_lines
                    where job = j.id and seq > \(after) order by seq limit \(limit)
                ) l on true
                where j.id = \(id)
                order by l.seq
                """)
        } decode: { rows in
            var out: [(String, String?, Double?, Int, Int?, Int?, Int?, ByteBuffer?)] = []
            for try await row in rows.decode((String, String?, Double?, Int, Int?, Int?, Int?, ByteBuffer?).self) { out.append(row) }
            return out
        }
        guard let first = rows.first, first.1 == nil || first.1 == owner, first.2.map({ $0 > WallClock.now }) ?? true else {
            throw JobStoreError.notFound
        }
        let ended = first.0 != RetainedJobState.running.rawValue
        let lines = rows.compactMap { row -> RetainedLine? in
            guard let seq = row.4, let event = row.5, let body = row.7 else { return nil }
            return RetainedLine(seq: seq, event: Self.event(event), status: row.6.flatMap(Self.status), bytes: Array(body.readableBytesView))
        }
        if let lastLine = lines.last { return JobRead(lines: lines, ended: ended && lastLine.seq >= first.3) }
        return ended ? JobRead(lines: [], ended: true) : nil
    }

    public func status(_ id: String, owner: String?) async -> RetainedJobStatus? {
        try? await statuses(id: id, owner: owner).first
    }

    public func list(owner: String?, state: RetainedJobState?) async -> [RetainedJobStatus] {
        (try? await statuses(id: nil, owner: owner, state: state)) ?? []
    }

    static let statusColumns = "id, state, total, ok, error, timeout, cancelled, created_at, finished_at, expires_at, last_seq, owner"

    /// Status documents of the job `id` if visible to `owner`, or (nil) the owner's jobs (in
    /// `state`, if given), newest first, at most 10,000.
    private func statuses(id: String?, owner: String?, state: RetainedJobState? = nil) async throws -> [RetainedJobStatus] {
        let wanted = state?.rawValue
        let now = WallClock.now
        return try await query { client, schema in
            let sql: PostgresQuery
            switch id {
            case .some(let id):
                sql = "select \(unescaped: Self.statusColumns) from \(unescaped: schema).fanout_jobs where id = \(id) and (owner is null or owner = \(owner)) and (expires_at is null or expires_at > \(now))"
            case .none:
                sql = "select \(unescaped: Self.statusColumns) from \(unescaped: schema).fanout_jobs where (owner is null or owner = \(owner)) and (expires_at is null or expires_at > \(now)) and (\(wanted)::text is null or state = \(wanted)) order by serial desc limit 10000"
            }
            return try await client.query(sql)
        } decode: { rows in
            var out: [RetainedJobStatus] = []
            for try await row in rows.decode((String, String, Int, Int, Int, Int, Int, Double, Double?, Double?, Int, String?).self) {
                var status = RetainedJobStatus(job: row.0, state: RetainedJobState(rawValue: row.1) ?? .running, total: row.2, createdAt: row.7)
                status.ok = row.3
                status.error = row.4
                status.timeout = row.5
                status.cancelled = row.6
                status.finishedAt = row.8
                status.expiresAt = row.9
                status.lastSeq = row.10
                out.append(status)
            }
            return out
        }
    }

    public func waitUntilEnded(_ id: String, owner: String?, limit: Duration) async -> RetainedJobStatus? {
        let deadline = ContinuousClock.now + limit
        while true {
            let generation = wakeups.watch(id)
            defer { wakeups.unwatch(id) }
            guard let status = await status(id, owner: owner) else { return nil }
            if status.state != .running || ContinuousClock.now >= deadline { return status }
            await wakeups.wait(for: id, since: generation, atMost: min(.milliseconds(250), deadline - .now))
        }
    }
}
