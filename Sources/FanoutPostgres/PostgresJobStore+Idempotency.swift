public import FanoutJobs
import PostgresNIO

/// `Idempotency-Key` claims of ``PostgresJobStore``: the key's primary key in `fanout_claims` makes
/// "never run twice" hold across replicas, including two that receive the same key at once.
extension PostgresJobStore {
    /// A claim whose job was never created (its replica died while admitting it) is free after this long.
    static let claimLifetime = 60.0

    public func claim(key: String, fingerprint: String, owner: String?) async -> IdempotencyClaim {
        let scoped = Self.scoped(key, owner: owner)
        for _ in 0..<5 {
            let now = WallClock.now
            do {
                let inserted = try await query { client, schema in
                    try await client.query("""
                        insert into \(unescaped: schema).fanout_claims (key, fingerprint, job, claimed_at) values (\(scoped), \(fingerprint), null, \(now))
                        on conflict (key) do nothing returning key
                        """)
                } decode: { try await Self.returnedRow($0) }
                if inserted { return .claimed }
                let existing = try await query { client, schema in
                    try await client.query("""
                        select c.fingerprint, c.job, c.claimed_at, j.expires_at from \(unescaped: schema).fanout_claims c
                        left join \(unescaped: schema).fanout_jobs j on j.id = c.job where c.key = \(scoped)
                        """)
                } decode: { rows in
                    var out: (String, String?, Double, Double?)?
                    for try await row in rows.decode((String, String?, Double, Double?).self) { out = row }
                    return out
                }
                guard let (claimedFingerprint, job, claimedAt, expiresAt) = existing else { continue }
                let expired = job != nil && (expiresAt.map { $0 <= now } ?? false)
                let abandoned = job == nil && claimedAt < now - Self.claimLifetime
                if expired || abandoned {
                    // Free again: take it over, unless another replica just did.
                    let taken = try await query { client, schema in
                        try await client.query("""
                            update \(unescaped: schema).fanout_claims set fingerprint = \(fingerprint), job = null, claimed_at = \(now)
                            where key = \(scoped) and job is not distinct from \(job) and claimed_at = \(claimedAt) returning key
                            """)
                    } decode: { try await Self.returnedRow($0) }
                    if taken { return .claimed }
                    continue
                }
                guard claimedFingerprint == fingerprint else { return .mismatch }
                guard let job else { return .inProgress }
                return .existing(jobID: job)
            } catch {
                return .unavailable
            }
        }
        return .inProgress
    }

    public func releaseClaim(key: String, owner: String?) async {
        let scoped = Self.scoped(key, owner: owner)
        _ = try? await query { client, schema in
            try await client.query("delete from \(unescaped: schema).fanout_claims where key = \(scoped) and job is null")
        } decode: { _ in () }
    }
}
