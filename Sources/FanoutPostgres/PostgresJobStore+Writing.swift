public import FanoutJobs
import NIOCore
import PostgresNIO

/// The writes of ``PostgresJobStore``: a job's row and its lines (what the dispatcher's flush
/// sends; retried until they land, see ``persist(_:_:)``), and a job's cancel, delete and expiry
/// (tried once).
extension PostgresJobStore {
    public func create(_ job: NewRetainedJob) async {
        runHere(job.id, onCancel: job.onCancel)
        let key = job.idempotencyKey.map { Self.scoped($0, owner: job.owner) }
        await persist("create") { client, schema, replica, lease in
            try await client.query("""
                with job as (
                    insert into \(unescaped: schema).fanout_jobs (id, owner, state, total, task_ids, created_at, lease_owner, lease_until)
                    values (\(job.id), \(job.owner), 'running', \(job.total), \(job.taskIDs), \(job.createdAt), \(replica), extract(epoch from clock_timestamp()) + \(lease))
                    on conflict (id) do nothing
                    returning id
                )
                update \(unescaped: schema).fanout_claims set job = (select id from job) where key = \(key) and exists (select 1 from job)
                """)
        }
    }

    public func append(_ id: String, lines: [RetainedLine]) async {
        guard !lines.isEmpty else { return }
        let columns = LineColumns(lines)
        let last = lines[lines.count - 1].seq
        let retention = settings.retentionSeconds
        let channel = self.channel
        let ends = lines.contains { $0.event == .end }
        await persist("append") { client, schema, replica, _ in
            let now = WallClock.now
            return try await client.query("""
                with ins as (
                    insert into \(unescaped: schema).fanout_lines (job, seq, event, status, task_index, body)
                    select \(id), u.seq, u.event, nullif(u.status, -1), nullif(u.idx, -1), u.body
                    from unnest(\(columns.seqs)::bigint[], \(columns.events)::smallint[], \(columns.statuses)::smallint[],
                                \(columns.indexes)::integer[], \(columns.bodies)::bytea[]) as u(seq, event, status, idx, body)
                    where exists (
                        select 1 from \(unescaped: schema).fanout_jobs where id = \(id) and state = 'running' and lease_owner = \(replica)
                    )
                    on conflict do nothing
                    returning event, status, octet_length(body) as size
                ), c as (
                    select count(*) filter (where status = 0) as ok, count(*) filter (where status = 1) as error,
                           count(*) filter (where status = 2) as timeout, count(*) filter (where status = 3) as cancelled,
                           count(*) filter (where event = 2) as ends, coalesce(sum(size + 64), 0) as bytes
                    from ins
                )
                update \(unescaped: schema).fanout_jobs j set
                    ok = j.ok + c.ok, error = j.error + c.error, timeout = j.timeout + c.timeout, cancelled = j.cancelled + c.cancelled,
                    bytes = j.bytes + c.bytes, last_seq = greatest(j.last_seq, \(last)),
                    state = case when c.ends > 0 then 'finished' else j.state end,
                    finished_at = case when c.ends > 0 then \(now) else j.finished_at end,
                    expires_at = case when c.ends > 0 then \(now + retention) else j.expires_at end
                from c
                where j.id = \(id) and c.ok + c.error + c.timeout + c.cancelled + c.ends + c.bytes > 0
                returning pg_notify(\(channel), \("l" + id))
                """)
        }
        if ends { endedHere(id) }
        wakeups.notify(id)
    }

    public func requestCancel(_ id: String, owner: String?) async -> RetainedJobStatus? {
        guard let status = await status(id, owner: owner) else { return nil }
        guard status.state == .running else { return status }
        let channel = self.channel
        _ = try? await query { client, schema in
            try await client.query("""
                update \(unescaped: schema).fanout_jobs set cancel_requested = true where id = \(id) and state = 'running'
                returning pg_notify(\(channel), \("c" + id))
                """)
        } decode: { _ in () }
        cancelLocally(id)
        return status
    }

    public func delete(_ id: String, owner: String?) async -> DeleteOutcome {
        guard let status = await status(id, owner: owner) else { return .notFound }
        if status.state == .running { return .running }
        let deleted = (try? await query { client, schema in
            try await client.query("delete from \(unescaped: schema).fanout_jobs where id = \(id) and state <> 'running' returning id")
        } decode: { try await Self.returnedRow($0) }) ?? false
        return deleted ? .deleted : .notFound
    }

    public func expire() async -> Int {
        let now = WallClock.now
        return (try? await query { client, schema in
            try await client.query("""
                with gone as (delete from \(unescaped: schema).fanout_jobs where expires_at <= \(now) returning id),
                     stale as (delete from \(unescaped: schema).fanout_claims where job is null and claimed_at < \(now - Self.claimLifetime) returning key)
                select (select count(*) from gone)::bigint
                """)
        } decode: { rows in
            var count = 0
            for try await value in rows.decode(Int.self) { count = value }
            return count
        }) ?? 0
    }
}
