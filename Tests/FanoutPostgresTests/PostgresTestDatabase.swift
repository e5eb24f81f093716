import FanoutJobs
import Logging
import PostgresNIO
import Testing

@testable import FanoutPostgres

/// The PostgreSQL the tests use: `FANOUT_TEST_POSTGRES_URL` (scripts/postgres.sh start prints one).
/// Unset or unreachable, the tests that need it are skipped with that message, unless
/// `FANOUT_REQUIRE_POSTGRES=1` (CI), where they run and fail. Each test works in a schema of its
/// own (`t_<random>`), dropped at its end, so runs never collide.
enum PostgresTestDatabase {
    static let url = Environment.get("FANOUT_TEST_POSTGRES_URL").flatMap { $0.isEmpty ? nil : $0 }
    static let required = Environment.get("FANOUT_REQUIRE_POSTGRES") == "1"

    /// Whether to run: required, or set and answering.
    static let reachable: Task<Bool, Never> = Task {
        if required { return true }
        guard let url, let parsed = try? PostgresURL(url) else { return false }
        guard let store = try? PostgresJobStore(settings: .init(url: parsed), logger: Logger(label: "probe")) else { return false }
        do {
            try await store.start(limit: .seconds(3))
            await store.stop()
            return true
        } catch {
            return false
        }
    }

    static let skipMessage: Comment = "needs PostgreSQL: set FANOUT_TEST_POSTGRES_URL (scripts/postgres.sh start prints one); FANOUT_REQUIRE_POSTGRES=1 makes this a failure"

    static func makeSchema() -> String {
        var generator = SystemRandomNumberGenerator()
        return "t_" + String(generator.next() as UInt64, radix: 16)
    }

    /// A started store on `schema` (a "replica"). Stop it with `stop()`.
    static func store(schema: String, lease: Double = 15, retention: Double = 900) async throws -> PostgresJobStore {
        guard let url else {
            Issue.record("FANOUT_REQUIRE_POSTGRES=1 but FANOUT_TEST_POSTGRES_URL is not set")
            throw JobStoreError.unavailable
        }
        var parsed = try PostgresURL(url)
        parsed.schema = schema
        let store = try PostgresJobStore(
            settings: .init(url: parsed, poolSize: 4, leaseSeconds: lease, retentionSeconds: retention),
            logger: Logger(label: "test")
        )
        try await store.start()
        return store
    }

    static func dropSchema(_ schema: String) async {
        guard let store = try? await store(schema: "public") else { return }
        _ = try? await store.query({ client, _ in try await client.query("drop schema if exists \(unescaped: schema) cascade") }, decode: { _ in () })
        await store.stop()
    }
}

/// getenv, without Foundation.
enum Environment {
    static func get(_ name: String) -> String? {
        getenv(name).map { String(cString: $0) }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
