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

    @Test func refusesAnotherStoreNamingTheKey() {
        for (environment, overrides) in [
            (["FANOUT_JOBS_STORE": "postgres://db/fanoutd"], [(String, String)]()),
            ([:], [("jobs.store", "redis")]),
        ] {
            let error = #expect(throws: ConfigurationError.self) {
                try ConfigurationLoader(environment: environment).load(configPath: nil, overrides: overrides)
            }
            #expect(error?.description.contains("jobs.store") == true, "\(String(describing: error))")
        }
        let small = #expect(throws: ConfigurationError.self) {
            try ConfigurationLoader(environment: ["FANOUT_JOBS_RETENTION_S": "0"]).load(configPath: nil, overrides: [])
        }
        #expect(small?.description.contains("jobs.retention_s") == true)
    }
}
