import FanoutCore
import FanoutJobs
import Logging
import PostgresNIO

/// The background work of ``PostgresJobStore``: the one LISTEN connection, and the lease loop.
extension PostgresJobStore {
    /// Holds one pooled connection LISTENing on the store's channel; payload `l<id>` (new lines:
    /// wake readers) or `c<id>` (cancel asked: end the job if it runs here). Reconnects with
    /// backoff; after a reconnect every reader reads again (notifications may have been missed).
    func listen() async {
        var backoff = 0.1
        let channel = self.channel
        while !Task.isCancelled {
            do {
                try await client.withConnection { connection in
                    try await connection.listen(on: channel) { notifications in
                        self.wakeups.notifyAll()
                        backoff = 0.1
                        for try await notification in notifications {
                            let payload = notification.payload
                            let id = String(payload.dropFirst())
                            if payload.hasPrefix("c") { self.cancelLocally(id) } else { self.wakeups.notify(id) }
                        }
                    }
                }
            } catch {
                if !Task.isCancelled { logger.warning("job store listener lost; reconnecting", metadata: ["error": "\(String(reflecting: error))"]) }
            }
            wakeups.notifyAll()
            try? await Task.sleep(for: .milliseconds(Int(backoff * 1000)))
            backoff = min(backoff * 2, 5)
        }
    }

    /// Every ``tick``: renews this replica's leases (a job whose lease was lost, or whose cancel was
    /// asked, is cancelled here), ends lapsed jobs of other replicas as `interrupted`, and every
    /// few ticks refreshes the usage figures. The renewal doubles as the reconnect probe.
    func maintain() async {
        var round = 0
        while !Task.isCancelled {
            try? await Task.sleep(for: tick)
            if Task.isCancelled { return }
            round += 1
            await renew()
            if let lapsed = try? await lapsedJobs() {
                for id in lapsed { _ = try? await interrupt(id) }
            }
            if round % 5 == 1 { await refreshUsage() }
        }
    }

    private func renew() async {
        let replica = self.replica
        let lease = settings.leaseSeconds
        let mine = runningHere
        guard let renewed = try? await query({ client, schema in
            try await client.query("""
                update \(unescaped: schema).fanout_jobs set lease_until = extract(epoch from clock_timestamp()) + \(lease)
                where lease_owner = \(replica) and state = 'running' returning id, cancel_requested
                """)
        }, decode: { rows in
            var out: [String: Bool] = [:]
            for try await (id, cancel) in rows.decode((String, Bool).self) { out[id] = cancel }
            return out
        }) else { return }
        for id in mine {
            // Not ours any more (interrupted by another replica after a lapse), or cancelled elsewhere.
            // A job not yet in the table (its create is in flight) is absent too: only act on rows seen.
            if renewed[id] == true { cancelLocally(id) }
        }
        let lost = try? await query({ client, schema in
            try await client.query("select id from \(unescaped: schema).fanout_jobs where id = any(\(mine)) and state <> 'running'")
        }, decode: { rows in
            var out: [String] = []
            for try await id in rows.decode(String.self) { out.append(id) }
            return out
        })
        for id in lost ?? [] {
            logger.warning("job ended elsewhere while running here (its lease lapsed); cancelling it", metadata: ["job.id": "\(id)"])
            cancelLocally(id)
        }
    }

    private func lapsedJobs() async throws -> [String] {
        try await query({ client, schema in
            try await client.query("""
                select id from \(unescaped: schema).fanout_jobs
                where state = 'running' and lease_until < extract(epoch from clock_timestamp()) limit 100
                """)
        }, decode: { rows in
            var out: [String] = []
            for try await id in rows.decode(String.self) { out.append(id) }
            return out
        })
    }

    /// Ends a job whose lease lapsed: a `cancelled` line with `"code":"interrupted"` for every
    /// subtask without a line, the end line, state `interrupted`. One transaction that locks the
    /// job's row (`for update skip locked`, re-checking the lapse) decides: when several replicas
    /// notice at once, exactly one writes. Returns whether this call did.
    @discardableResult
    func interrupt(_ id: String) async throws -> Bool {
        let schema = self.schema
        let channel = self.channel
        let retention = settings.retentionSeconds
        let logger = self.logger
        let done = try await Self.deadline(Self.statementLimit) {
            try await self.client.withTransaction(logger: logger) { connection -> Bool in
                var row: (Int, [String], Int, Int, Int, Int, Int, Double)?
                for try await found in try await connection.query("""
                    select total, task_ids, ok, error, timeout, cancelled, last_seq, created_at from \(unescaped: schema).fanout_jobs
                    where id = \(id) and state = 'running' and lease_until < extract(epoch from clock_timestamp())
                    for update skip locked
                    """, logger: logger).decode((Int, [String], Int, Int, Int, Int, Int, Double).self) {
                    row = found
                }
                guard let (total, taskIDs, ok, error, timeout, cancelled, lastSeq, createdAt) = row else { return false }
                var have = Set<Int>()
                for try await index in try await connection.query(
                    "select task_index from \(unescaped: schema).fanout_lines where job = \(id) and task_index is not null", logger: logger
                ).decode(Int.self) {
                    have.insert(index)
                }
                let now = WallClock.now
                let elapsed = max(0, (now - createdAt) * 1000)
                var summary = JobSummary(total: total)
                summary.ok = ok
                summary.error = error
                summary.timeout = timeout
                summary.cancelled = cancelled
                summary.elapsedMilliseconds = elapsed
                var writer = JSONWriter(capacity: 256 * (total - have.count + 1))
                let outcome = SubtaskOutcome.cancelled("the replica running this job stopped before it finished", code: "interrupted")
                for index in 0..<total where !have.contains(index) {
                    summary.cancelled += 1
                    let taskID = index < taskIDs.count ? taskIDs[index] : nil
                    LineEncoder.result(id: taskID, index: index, outcome: outcome, elapsedMilliseconds: elapsed, done: summary.done, total: total, into: &writer)
                }
                LineEncoder.end(job: id, summary: summary, into: &writer)
                var next = lastSeq + 1
                let lines = SequencedSink.number(writer.bytes, from: &next)
                let columns = LineColumns(lines)
                let bytes = lines.reduce(0) { $0 + $1.retainedBytes }
                try await connection.query("""
                    insert into \(unescaped: schema).fanout_lines (job, seq, event, status, task_index, body)
                    select \(id), u.seq, u.event, nullif(u.status, -1), nullif(u.idx, -1), u.body
                    from unnest(\(columns.seqs)::bigint[], \(columns.events)::smallint[], \(columns.statuses)::smallint[],
                                \(columns.indexes)::integer[], \(columns.bodies)::bytea[]) as u(seq, event, status, idx, body)
                    """, logger: logger)
                try await connection.query("""
                    update \(unescaped: schema).fanout_jobs set state = 'interrupted', cancelled = \(summary.cancelled),
                        last_seq = \(next - 1), bytes = bytes + \(bytes), finished_at = \(now), expires_at = \(now + retention)
                    where id = \(id)
                    """, logger: logger)
                try await connection.query("select pg_notify(\(channel), \("l" + id))", logger: logger)
                return true
            }
        }
        if done { logger.warning("job interrupted: its replica's lease lapsed", metadata: ["job.id": "\(id)"]) }
        wakeups.notify(id)
        return done
    }

    private func refreshUsage() async {
        guard let usage = try? await query({ client, schema in
            try await client.query("""
                select count(*)::bigint, (count(*) filter (where state = 'running'))::bigint,
                       coalesce(sum(bytes), 0)::bigint, coalesce(sum(last_seq), 0)::bigint
                from \(unescaped: schema).fanout_jobs
                """)
        }, decode: { rows in
            var usage = JobStoreUsage()
            for try await (jobs, running, bytes, lines) in rows.decode((Int, Int, Int, Int).self) {
                usage.jobs = jobs
                usage.running = running
                usage.bytes = bytes
                usage.lines = lines
            }
            return usage
        }) else { return }
        setUsage(usage)
    }
}
