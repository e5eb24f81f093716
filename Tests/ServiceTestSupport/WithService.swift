public import FanoutService
public import Logging
import Testing

/// Runs `body` against a started service on 127.0.0.1 with an ephemeral port (its tasks — server,
/// admin listener, retained jobs — running beside it, as in ``FanoutService/run()``), then drains it.
/// Shared by every test target that needs a whole fanoutd in process.
public func withService<T>(
    logger: Logger = Logger(label: "test"),
    _ configure: (inout FanoutConfiguration) -> Void = { _ in },
    _ body: (FanoutService, Int) async throws -> T
) async throws -> T {
    var configuration = FanoutConfiguration()
    configuration.server.port = 0
    configuration.server.adminPort = nil
    configuration.server.threads = 2
    configuration.server.connectionLimit = 2048
    configuration.shutdown.graceSeconds = 1
    configure(&configuration)
    let service = FanoutService(configuration: configuration, logger: logger)
    try await service.connectStore()
    try service.start()
    let port = try #require(service.port)
    // drain() ends the tasks that serve() runs.
    async let serving: Void = service.serve()
    do {
        let result = try await body(service, port)
        await service.drain()
        await serving
        return result
    } catch {
        await service.drain()
        await serving
        throw error
    }
}
