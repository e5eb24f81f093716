import ArgumentParser
import FanoutService
import Glibc
import Logging
import ServiceLifecycle
import UnixSignals

@main
struct Fanoutd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fanoutd",
        abstract: "A fan-out job server: POST a job of subtasks, get each result as an NDJSON line the moment it finishes.",
        subcommands: [Serve.self, Healthcheck.self],
        defaultSubcommand: Serve.self
    )
}

/// Flags shared by the subcommands: where the configuration comes from.
struct ConfigurationOptions: ParsableArguments {
    @Option(name: .long, help: "Configuration file (JSON). Default: $FANOUT_CONFIG, else config/fanoutd.json if present.")
    var config: String?

    @Option(name: .long, help: "Listen address (server.host).")
    var host: String?

    @Option(name: .long, help: "Listen port, 0 for any free one (server.port).")
    var port: Int?

    @Option(name: .long, help: "Admin listener port (probes, /metrics), 0 for any free one (server.admin_port).")
    var adminPort: Int?

    @Option(name: .long, help: "Polling threads, 0 for one per core (server.threads).")
    var threads: Int?

    @Option(name: .long, help: "trace, debug, info, notice, warning, error or critical (log.level).")
    var logLevel: String?

    @Option(name: .long, help: "auto, text or json (log.format).")
    var logFormat: String?

    @Option(name: .customLong("set"), help: ArgumentHelp("Set any configuration key, e.g. --set limits.max_tasks=1000.", valueName: "key=value"))
    var settings: [String] = []

    func load() throws -> FanoutConfiguration {
        var overrides: [(String, String)] = []
        if let host { overrides.append(("server.host", host)) }
        if let port { overrides.append(("server.port", String(port))) }
        if let adminPort { overrides.append(("server.admin_port", String(adminPort))) }
        if let threads { overrides.append(("server.threads", String(threads))) }
        if let logLevel { overrides.append(("log.level", logLevel)) }
        if let logFormat { overrides.append(("log.format", logFormat)) }
        for setting in settings {
            guard let equals = setting.firstIndex(of: "=") else {
                throw ValidationError("--set \(setting): expected key=value")
            }
            overrides.append((String(setting[..<equals]), String(setting[setting.index(after: equals)...])))
        }
        do {
            return try ConfigurationLoader(environment: Environment.variables).load(configPath: config, overrides: overrides)
        } catch {
            throw ValidationError("configuration refused: \(error)")
        }
    }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the server (the default).")

    @OptionGroup var options: ConfigurationOptions

    func run() async throws {
        FanoutService.prepareProcess()
        let configuration = try options.load()
        LogSetup.bootstrap(configuration.log)
        let logger = Logger(label: "fanoutd")
        logger.info("configuration", metadata: configuration.redactedMetadata)
        let service = FanoutService(configuration: configuration, logger: logger)
        do {
            try await service.connectStore()
        } catch {
            // A store that cannot be reached is a configuration to fix, like a bad key: exit 64.
            logger.critical("cannot start", metadata: ["error": "\(error)"])
            throw ExitCode(64)
        }
        do {
            try service.start()
        } catch {
            logger.critical("cannot start", metadata: ["error": "\(error)"])
            throw ExitCode(2)
        }
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: service)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        try await group.run()
    }
}

struct Healthcheck: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Exit 0 if the local server answers GET /healthz with 200 on its admin port (else its port), for a container HEALTHCHECK.")

    @OptionGroup var options: ConfigurationOptions

    func run() throws {
        let configuration = try options.load()
        // The admin listener when there is one: it answers even when the main one is full.
        let port = configuration.server.adminPort.flatMap { $0 == 0 ? nil : $0 } ?? configuration.server.port
        guard HealthCheck.probe(host: configuration.server.host, port: port) else {
            throw ExitCode.failure
        }
    }
}

enum Environment {
    static var variables: [String: String] {
        var result: [String: String] = [:]
        var pointer = environ
        while let entry = pointer.pointee {
            let text = String(cString: entry)
            if let equals = text.firstIndex(of: "=") {
                result[String(text[..<equals])] = String(text[text.index(after: equals)...])
            }
            pointer += 1
        }
        return result
    }
}
