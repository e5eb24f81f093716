import Logging
import PostgresNIO

/// The store's tables, created and migrated at start. `<schema>.fanout_schema_version` holds the
/// applied version; each migration runs once, in one transaction, under an advisory lock so
/// replicas starting together do not race. Version 1:
///
/// - `fanout_jobs`: one row per retained job (state, counts, times, `last_seq`, subtask ids for the
///   `interrupted` lines, the running replica's lease, whether a cancel was asked).
/// - `fanout_lines`: the numbered lines, primary key `(job, seq)`: the index readers' cursors use.
/// - `fanout_claims`: `Idempotency-Key`s, primary key the owner-scoped key: the unique constraint
///   that lets only one replica claim a key.
enum PostgresSchema {
    static let version = 1

    static func migrations(_ schema: String) -> [[String]] {
        [
            [
                """
                create table if not exists \(schema).fanout_jobs (
                    id text primary key,
                    serial bigserial not null,
                    owner text,
                    state text not null,
                    total integer not null,
                    task_ids text[] not null,
                    ok integer not null default 0,
                    error integer not null default 0,
                    timeout integer not null default 0,
                    cancelled integer not null default 0,
                    last_seq bigint not null default 0,
                    bytes bigint not null default 0,
                    created_at double precision not null,
                    finished_at double precision,
                    expires_at double precision,
                    lease_owner text,
                    lease_until double precision,
                    cancel_requested boolean not null default false
                )
                """,
                "create index if not exists fanout_jobs_owner_serial on \(schema).fanout_jobs (owner, serial desc)",
                "create index if not exists fanout_jobs_running_lease on \(schema).fanout_jobs (lease_until) where state = 'running'",
                "create index if not exists fanout_jobs_running_owner on \(schema).fanout_jobs (lease_owner) where state = 'running'",
                "create index if not exists fanout_jobs_expires on \(schema).fanout_jobs (expires_at) where expires_at is not null",
                """
                create table if not exists \(schema).fanout_lines (
                    job text not null references \(schema).fanout_jobs (id) on delete cascade,
                    seq bigint not null,
                    event smallint not null,
                    status smallint,
                    task_index integer,
                    body bytea not null,
                    primary key (job, seq)
                )
                """,
                """
                create table if not exists \(schema).fanout_claims (
                    key text primary key,
                    fingerprint text not null,
                    job text references \(schema).fanout_jobs (id) on delete cascade,
                    claimed_at double precision not null
                )
                """,
            ],
        ]
    }

    /// Brings the schema to ``version``; safe to run from every replica at every start.
    static func migrate(_ client: PostgresClient, schema: String, logger: Logger) async throws {
        try await client.withTransaction(logger: logger) { connection in
            // One migrator at a time across replicas (a transaction-scoped advisory lock).
            try await connection.query("select pg_advisory_xact_lock(hashtext(\(schema + ".fanout_schema")))", logger: logger)
            try await connection.query("create schema if not exists \(unescaped: schema)", logger: logger)
            try await connection.query("create table if not exists \(unescaped: schema).fanout_schema_version (version integer not null)", logger: logger)
            var current = 0
            for try await version in try await connection.query("select coalesce(max(version), 0) from \(unescaped: schema).fanout_schema_version", logger: logger).decode(Int.self) {
                current = version
            }
            let all = migrations(schema)
            guard current <= all.count else {
                throw PostgresURL.Invalid(description: "the schema \(schema) is at version \(current), newer than this fanoutd's \(all.count)")
            }
            for (offset, statements) in all.enumerated() where offset + 1 > current {
                for statement in statements {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                try await connection.query("insert into \(unescaped: schema).fanout_schema_version (version) values (\(offset + 1))", logger: logger)
                logger.info("job store schema migrated", metadata: ["jobs.store.schema": "\(schema)", "jobs.store.schema_version": "\(offset + 1)"])
            }
        }
    }
}
