import Logging
import Testing

@testable import FanoutService

@Suite("Retained jobs: configuration")
struct RetainedJobConfigurationTests {
    @Test func readsTheJobsKeysFromTheEnvironment() throws {
        let environment = ["FANOUT_JOBS_STORE": "memory", "FANOUT_JOBS_RETENTION_S": "60", "FANOUT_JOBS_MAX_RETAINED_BYTES": "1048576"]
        let config = try ConfigurationLoader(environment: environment).load(configPath: nil, overrides: [])
        #expect(config.jobs.store == "memory")
        #expect(config.jobs.retentionSeconds == 60)
        #expect(config.jobs.maxRetainedBytes == 1_048_576)
        #expect(FanoutConfiguration().jobs.retentionSeconds == 900)
    }

    @Test func acceptsAPostgresStoreWithItsKeys() throws {
        let environment = [
            "FANOUT_JOBS_STORE": "postgres://app:secret@db:5432/fanoutd?sslmode=require", "FANOUT_JOBS_POOL_SIZE": "4", "FANOUT_JOBS_LEASE_S": "5",
        ]
        let config = try ConfigurationLoader(environment: environment).load(configPath: nil, overrides: [])
        #expect(config.jobs.store == "postgres://app:secret@db:5432/fanoutd?sslmode=require")
        #expect(config.jobs.poolSize == 4 && config.jobs.leaseSeconds == 5)
        #expect(config.redactedMetadata["jobs.store"]?.description == "postgres://app:***@db:5432/fanoutd?sslmode=require")
    }

    @Test func refusesAnotherStoreNamingTheKey() {
        for (environment, overrides) in [
            (["FANOUT_JOBS_STORE": "mysql://db/fanoutd"], [(String, String)]()),
            ([:], [("jobs.store", "redis")]),
            ([:], [("jobs.store", "postgres://app:secret@db:70000/fanoutd")]),
            ([:], [("jobs.store", "postgres://db/fanoutd?sslmode=maybe")]),
        ] {
            let error = #expect(throws: ConfigurationError.self) {
                try ConfigurationLoader(environment: environment).load(configPath: nil, overrides: overrides)
            }
            #expect(error?.description.contains("jobs.store") == true, "\(String(describing: error))")
            #expect(error?.description.contains("secret") == false)
        }
        let small = #expect(throws: ConfigurationError.self) {
            try ConfigurationLoader(environment: ["FANOUT_JOBS_RETENTION_S": "0"]).load(configPath: nil, overrides: [])
        }
        #expect(small?.description.contains("jobs.retention_s") == true)
    }
}
