import Glibc
import Logging
import Testing

@testable import FanoutService

@Suite("Configuration")
struct ConfigurationTests {
    func writeTemporary(_ text: String) throws -> String {
        var template = Array("/tmp/fanoutd-config-XXXXXX".utf8CString)
        let fd = mkstemp(&template)
        try #require(fd >= 0)
        _ = text.withCString { write(fd, $0, strlen($0)) }
        close(fd)
        return template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    @Test func theShippedDefaultFileLoadsAndMatchesTheBuiltInDefaults() throws {
        let loaded = try ConfigurationLoader(environment: [:]).load(configPath: "config/fanoutd.json", overrides: [])
        #expect(loaded == FanoutConfiguration())
    }

    @Test func environmentOverridesTheFileAndFlagsOverrideBoth() throws {
        let path = try writeTemporary(#"{"server":{"port":9000,"host":"0.0.0.0"},"limits":{"max_tasks":10},"egress":{"allow":["users"]}}"#)
        defer { unlink(path) }
        let environment = [
            "FANOUT_PORT": "9100", "FANOUT_LIMITS_MAX_TASKS": "20", "FANOUT_EGRESS_ALLOW": "10.0.0.0/8, api.internal",
            "FANOUT_AUTH_TOKENS": "a,b", "FANOUT_DEFAULTS_TASK_TIMEOUT_MS": "1500",
        ]
        let config = try ConfigurationLoader(environment: environment).load(configPath: path, overrides: [("server.port", "0")])
        #expect(config.server.host == "0.0.0.0")
        #expect(config.server.port == 0)
        #expect(config.limits.maxTasks == 20)
        #expect(config.egress.allow == ["users", "10.0.0.0/8", "api.internal"], "FANOUT_EGRESS_ALLOW adds to the file's list")
        #expect(config.auth.tokens == ["a", "b"])
        #expect(config.defaults.taskTimeoutMilliseconds == 1500)
    }

    @Test(arguments: [
        (#"{"server":{"prot":8080}}"#, "server.prot"),
        (#"{"limits":{"max_tasks":"many"}}"#, "limits.max_tasks"),
        (#"{"limits":{"max_tasks":0}}"#, "limits.max_tasks"),
        (#"{"log":{"level":"loud"}}"#, "log.level"),
        (#"{"server": 3}"#, "server"),
        (#"{"server":{"port":8080}"#, "not valid JSON"),
        (#"{"defaults":{"concurrency":500},"limits":{"max_concurrency":100}}"#, "defaults.concurrency"),
        (#"{"egress":{"allow":["10.0.0.1/8"]}}"#, "egress.allow"),
    ])
    func refusesABadFileNamingTheKey(text: String, named: String) throws {
        let path = try writeTemporary(text)
        defer { unlink(path) }
        let error = #expect(throws: ConfigurationError.self) {
            try ConfigurationLoader(environment: [:]).load(configPath: path, overrides: [])
        }
        #expect(error?.description.contains(named) == true, "\(String(describing: error))")
    }

    @Test func refusesBadVariablesAndFlags() {
        let badPort = #expect(throws: ConfigurationError.self) {
            try ConfigurationLoader(environment: ["FANOUT_PORT": "eighty"]).load(configPath: nil, overrides: [])
        }
        #expect(badPort?.description.contains("server.port") == true)
        #expect(badPort?.description.contains("FANOUT_PORT") == true)
        let badKey = #expect(throws: ConfigurationError.self) {
            try ConfigurationLoader(environment: [:]).load(configPath: nil, overrides: [("limits.max_taks", "3")])
        }
        #expect(badKey?.description.contains("limits.max_taks") == true)
        #expect(throws: ConfigurationError.self) {
            try ConfigurationLoader(environment: [:]).load(configPath: "/nonexistent/fanoutd.json", overrides: [])
        }
    }

    @Test func aTokensFileAddsToTheListWhereverItStands() throws {
        let tokens = try writeTemporary("gamma\n")
        defer { unlink(tokens) }
        let config = try writeTemporary(#"{"auth":{"tokens_file":"\#(tokens)","tokens":["delta"]}}"#)
        defer { unlink(config) }
        let loaded = try ConfigurationLoader(environment: [:]).load(configPath: config, overrides: [])
        #expect(loaded.auth.tokens == ["delta", "gamma"])
    }

    @Test func readsTokensFromAFile() throws {
        let path = try writeTemporary("# tokens\nalpha\n\n beta \n")
        defer { unlink(path) }
        let config = try ConfigurationLoader(environment: ["FANOUT_AUTH_TOKENS_FILE": path]).load(configPath: nil, overrides: [])
        #expect(config.auth.tokens == ["alpha", "beta"])
        #expect(config.redactedMetadata["auth.tokens"]?.description.contains("alpha") == false)
    }
}
