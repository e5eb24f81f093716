import FanoutCore
import FanoutUpstream
import Glibc

/// Builds the configuration from, in rising precedence: the built-in defaults, the config file
/// (JSON, `config/fanoutd.json` by default), `FANOUT_*` environment variables, and flags.
/// Unknown keys, wrong types and out-of-range values are refused with the key's name.
public struct ConfigurationLoader: Sendable {
    /// The file used when neither `--config` nor `FANOUT_CONFIG` names one (optional: skipped if absent).
    public static let defaultPath = "config/fanoutd.json"

    public var environment: [String: String]

    public init(environment: [String: String]) {
        self.environment = environment
    }

    /// - Parameters:
    ///   - configPath: `--config`; else `FANOUT_CONFIG`; else ``defaultPath`` if it exists.
    ///   - overrides: flag values by key name, e.g. `["server.port": "0"]`, applied last.
    public func load(configPath: String?, overrides: [(String, String)]) throws(ConfigurationError) -> FanoutConfiguration {
        var config = FanoutConfiguration()
        if let path = configPath ?? environment["FANOUT_CONFIG"] {
            try applyFile(path, to: &config, required: true)
        } else {
            try applyFile(Self.defaultPath, to: &config, required: false)
        }
        // Fixed short names (SPEC "Configuration") first, then the general FANOUT_SECTION_KEY form.
        let aliases = ["FANOUT_HOST": "server.host", "FANOUT_PORT": "server.port"]
        for (variable, name) in aliases.sorted(by: { $0.key < $1.key }) {
            if let text = environment[variable] { try apply(text: text, to: name, source: variable, config: &config) }
        }
        for key in ConfigurationKey.all {
            guard let text = environment[key.environmentName] else { continue }
            if key.name == "egress.allow" {
                // SPEC: FANOUT_EGRESS_ALLOW adds to the allow-list of the file.
                let fromFile = config.egress.allow
                try apply(text: text, to: key.name, source: key.environmentName, config: &config)
                config.egress.allow = fromFile + config.egress.allow.filter { !fromFile.contains($0) }
            } else {
                try apply(text: text, to: key.name, source: key.environmentName, config: &config)
            }
        }
        if let path = environment["FANOUT_AUTH_TOKENS_FILE"] {
            config.auth.tokens += try Self.readTokens(path)
        }
        for (name, text) in overrides {
            try apply(text: text, to: name, source: "flag", config: &config)
        }
        try Self.checkConsistency(config)
        return config
    }

    /// Applies a flag or variable given as text.
    func apply(text: String, to name: String, source: String, config: inout FanoutConfiguration) throws(ConfigurationError) {
        guard let key = ConfigurationKey.byName[name] else {
            throw ConfigurationError("\(source): \"\(name)\" is not a configuration key")
        }
        let value: ConfigurationValue
        let trimmed = String(text.trimmingASCIIWhitespace())
        switch key.kind {
        case .integer(let range), .optionalInteger(let range):
            if case .optionalInteger = key.kind, trimmed.isEmpty || trimmed == "null" {
                value = .integer(nil)
            } else {
                guard let number = Int(trimmed) else {
                    throw ConfigurationError("\(key.name) (\(source)): \"\(text)\" is not an integer")
                }
                guard range.contains(number) else {
                    throw ConfigurationError("\(key.name) (\(source)): \(number) is not in \(range.lowerBound)...\(range.upperBound)")
                }
                value = .integer(number)
            }
        case .string:
            value = .string(trimmed)
        case .boolean:
            switch trimmed.lowercased() {
            case "true", "1", "yes", "on": value = .boolean(true)
            case "false", "0", "no", "off": value = .boolean(false)
            default: throw ConfigurationError("\(key.name) (\(source)): \"\(text)\" is not a boolean")
            }
        case .fraction:
            guard let number = Double(trimmed), (0...1).contains(number) else {
                throw ConfigurationError("\(key.name) (\(source)): \"\(text)\" is not a number from 0 to 1")
            }
            value = .fraction(number)
        case .list:
            value = .list(trimmed.split(separator: ",").map { String($0.trimmingASCIIWhitespace()) }.filter { !$0.isEmpty })
        }
        try key.apply(&config, value)
    }

    private func applyFile(_ path: String, to config: inout FanoutConfiguration, required: Bool) throws(ConfigurationError) {
        guard let bytes = Self.readFile(path) else {
            if required { throw ConfigurationError("config file \(path): cannot be read") }
            return
        }
        let document: JSONValue
        do {
            document = try JSONParser.parse(bytes)
        } catch {
            throw ConfigurationError("config file \(path): not valid JSON: \(error)")
        }
        guard case .object(let sections) = document else {
            throw ConfigurationError("config file \(path): must be a JSON object of sections")
        }
        var tokensFiles: [String] = []
        for (section, members) in sections {
            if section.hasPrefix("//") || section == "$comment" { continue }
            guard case .object(let entries) = members else {
                throw ConfigurationError("config file \(path): \"\(section)\" must be an object")
            }
            for (name, raw) in entries {
                let fullName = "\(section).\(name)"
                if name.hasPrefix("//") { continue }
                if fullName == "auth.tokens_file" {
                    guard case .string(let tokensPath) = raw else { throw ConfigurationError("\(fullName) (\(path)): must be a string") }
                    tokensFiles.append(tokensPath)
                    continue
                }
                guard let key = ConfigurationKey.byName[fullName] else {
                    throw ConfigurationError("config file \(path): \"\(fullName)\" is not a configuration key")
                }
                try key.apply(&config, try Self.value(raw, for: key, source: path))
            }
        }
        // Tokens from a file add to `auth.tokens`, wherever the two keys stand in the file.
        for tokensPath in tokensFiles {
            config.auth.tokens += try Self.readTokens(tokensPath)
        }
    }

    private static func value(_ raw: JSONValue, for key: ConfigurationKey, source: String) throws(ConfigurationError) -> ConfigurationValue {
        let problem = ConfigurationError("\(key.name) (\(source)): \(raw.jsonText) is not \(key.kind.expectation)")
        switch key.kind {
        case .integer(let range), .optionalInteger(let range):
            if case .optionalInteger = key.kind, raw == .null { return .integer(nil) }
            guard case .number(let number) = raw, number.rounded() == number, number.magnitude < 1e15 else { throw problem }
            guard range.contains(Int(number)) else {
                throw ConfigurationError("\(key.name) (\(source)): \(Int(number)) is not in \(range.lowerBound)...\(range.upperBound)")
            }
            return .integer(Int(number))
        case .string:
            guard case .string(let text) = raw else { throw problem }
            return .string(text)
        case .boolean:
            guard case .bool(let flag) = raw else { throw problem }
            return .boolean(flag)
        case .list:
            guard case .array(let elements) = raw else { throw problem }
            var list: [String] = []
            for element in elements {
                guard case .string(let text) = element else { throw problem }
                list.append(text)
            }
            return .list(list)
        case .fraction:
            guard case .number(let number) = raw, (0...1).contains(number) else { throw problem }
            return .fraction(number)
        }
    }

    static func checkConsistency(_ config: FanoutConfiguration) throws(ConfigurationError) {
        do {
            _ = try EgressPolicy(allow: config.egress.allow)
        } catch {
            throw ConfigurationError("egress.allow: \(error)")
        }
        if let admin = config.server.adminPort, admin != 0, admin == config.server.port {
            throw ConfigurationError("server.admin_port (\(admin)) must differ from server.port")
        }
        if config.server.maxPendingBodyBytes < config.server.maxBodyBytes {
            throw ConfigurationError("server.max_pending_body_bytes (\(config.server.maxPendingBodyBytes)) is below server.max_body_bytes (\(config.server.maxBodyBytes)): a body between the two could never be read")
        }
        if config.defaults.concurrency > config.limits.maxConcurrency {
            throw ConfigurationError("defaults.concurrency (\(config.defaults.concurrency)) is above limits.max_concurrency (\(config.limits.maxConcurrency))")
        }
        if config.defaults.timeoutMilliseconds > config.limits.maxJobTimeoutMilliseconds {
            throw ConfigurationError("defaults.timeout_ms (\(config.defaults.timeoutMilliseconds)) is above limits.max_job_timeout_ms (\(config.limits.maxJobTimeoutMilliseconds))")
        }
        for origin in config.cors.allowOrigins {
            if let reason = CORSPolicy.invalidOrigin(origin) {
                throw ConfigurationError("cors.allow_origins: \"\(origin)\" \(reason)")
            }
        }
        if config.cors.allowOrigins.contains("*") {
            if config.cors.allowOrigins.count > 1 {
                throw ConfigurationError("cors.allow_origins: \"*\" allows every origin and must be alone in the list")
            }
            if config.cors.allowCredentials {
                throw ConfigurationError("cors.allow_credentials cannot be true with cors.allow_origins \"*\" (browsers refuse credentials with a wildcard origin)")
            }
        }
        if config.defaults.heartbeatMilliseconds != 0, config.defaults.heartbeatMilliseconds < JobDecoder.minimumHeartbeatMilliseconds {
            throw ConfigurationError("defaults.heartbeat_ms must be 0 (off) or at least \(JobDecoder.minimumHeartbeatMilliseconds)")
        }
    }

    /// Tokens from a file: one per line, blank lines and `#` comments ignored.
    static func readTokens(_ path: String) throws(ConfigurationError) -> [String] {
        guard let bytes = readFile(path) else { throw ConfigurationError("auth tokens file \(path): cannot be read") }
        return String(decoding: bytes, as: UTF8.self).split(whereSeparator: \.isNewline)
            .map { String($0.trimmingASCIIWhitespace()) }
            .filter { !$0.isEmpty && !$0.hasPrefix("#") }
    }

    static func readFile(_ path: String) -> [UInt8]? {
        guard let file = fopen(path, "rb") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = fread(&chunk, 1, chunk.count, file)
            if count > 0 { bytes.append(contentsOf: chunk[0..<count]) }
            if count < chunk.count { break }
        }
        return ferror(file) == 0 ? bytes : nil
    }
}

extension ConfigurationKey.Kind {
    var expectation: String {
        switch self {
        case .integer(let range): "an integer in \(range.lowerBound)...\(range.upperBound)"
        case .optionalInteger(let range): "null or an integer in \(range.lowerBound)...\(range.upperBound)"
        case .string: "a string"
        case .boolean: "a boolean"
        case .list: "an array of strings"
        case .fraction: "a number from 0 to 1"
        }
    }
}

