import Logging

/// What the C callbacks need from the server, reached through the daemon's `cls` pointer.
/// Unmanaged ownership: unretained; ``HTTPServer`` keeps it alive until `MHD_stop_daemon` returned.
final class ServerContext: Sendable {
    let handler: any HTTPHandler
    let maxBodyBytes: Int
    let streamBufferBytes: Int
    let inlineBodyBytes: Int
    let registry = StreamRegistry()
    /// Request bodies held at once, across connections.
    let budget: BodyBudget
    /// Stream producers and deferred responses, run by ``HTTPServer/run()``.
    let work = WorkQueue()
    let logger: Logger
    let connections: ConnectionGuard

    init(handler: any HTTPHandler, configuration: HTTPServerConfiguration, logger: Logger) {
        self.handler = handler
        self.maxBodyBytes = configuration.maxBodyBytes
        self.streamBufferBytes = configuration.streamBufferBytes
        self.inlineBodyBytes = configuration.inlineBodyBytes
        self.budget = BodyBudget(limit: configuration.maxPendingBodyBytes)
        self.logger = logger
        self.connections = ConnectionGuard(configuration: configuration)
    }
}
