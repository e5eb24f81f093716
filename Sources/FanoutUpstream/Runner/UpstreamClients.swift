import AsyncHTTPClient
import Logging
import NIOCore
import NIOPosix
import FanoutSync

/// The runner's HTTP clients, all on one event loop group of its own, created on first use.
///
/// Every connection goes to an address the egress gate checked, never to a name:
/// - **the shared client** carries plain `http` (the URL's host replaced by the checked address,
///   the original `Host` header kept) and `https` to address literals. One pool for all of them.
/// - **pinned clients** carry `https` to names. AsyncHTTPClient 1.37 has no per-request way to
///   dial one address while sending SNI and verifying the certificate for another name; it only
///   has the client-wide `dnsOverride` map. So each (name, checked address) pair gets a client
///   whose `dnsOverride` maps exactly that name to exactly that address: the TLS handshake sends
///   the name as SNI and verifies the certificate against it, and the connection goes to the
///   checked address. These share the event loop group; idle ones are retired after
///   `idleTimeout`, and at most `maxPinnedClients` idle ones are kept.
/// - **fresh clients** (one beside the shared client, and one per pin when needed) use each
///   connection for one request only; a request that failed on a reused pooled connection before
///   any answer is sent once more through one of them (see ``HTTPRunner/attempt``).
///
/// Pooled connections are closed after `connectionIdleTimeout` unused (4 s by default), below the
/// keep-alive timeouts common upstreams close idle connections at (Node 5 s, nginx 75 s, Go 90 s),
/// so that the pool rarely sends on a connection the upstream is closing; sooner when the upstream
/// announces its timeout (`Keep-Alive: timeout=N`, see ``KeepAliveTimeoutHandler``).
///
/// Redirects are never followed, responses are never decompressed, and a failed connection fails
/// its request at once (`retryConnectionEstablishment` off) so the runner's own retry policy decides.
final class UpstreamClients: Sendable {
    struct Settings: Sendable {
        var perHostLimit: Int
        var connectTimeout: Duration
        var eventLoopThreads: Int
        /// How long an idle pinned client is kept.
        var idleTimeout: Duration = .seconds(60)
        var maxPinnedClients = 256
        /// How long a pooled connection may stay idle before the pool closes it.
        var connectionIdleTimeout: Duration = .seconds(4)
    }

    /// A client to send one request with, the URL to give it, and the `Host` header to set.
    struct Lease: Sendable {
        let client: HTTPClient
        let url: String
        let hostHeader: String?
        fileprivate let pin: PinKey?
    }

    fileprivate struct PinKey: Hashable, Sendable {
        let host: String
        let address: IPAddress
        /// A client whose connections carry one request each.
        let fresh: Bool
    }

    private struct Pinned {
        let client: HTTPClient
        var users: Int
        var lastUsed: ContinuousClock.Instant
    }

    private struct Running {
        let group: MultiThreadedEventLoopGroup
        let shared: HTTPClient
        /// Like `shared`, one request per connection.
        let fresh: HTTPClient
        var pinned: [PinKey: Pinned] = [:]
    }

    private enum State {
        case idle
        case running(Running)
        case shutDown
    }

    let settings: Settings
    private let logger: Logger
    private let state = Locked(State.idle)
    /// Shutdowns of retired pinned clients still running, by id; awaited by ``shutdown()``.
    private let retiring = Locked<(next: Int, tasks: [Int: Task<Void, Never>])>((0, [:]))
    /// Which connections carried a request before (for all clients: connection ids are unique).
    let reuse: ConnectionReuse

    init(settings: Settings, logger: Logger) {
        self.settings = settings
        self.logger = logger
        // Kept well past the idle timeout: a connection busy with one long request keeps its entry.
        self.reuse = ConnectionReuse(horizon: max(settings.connectionIdleTimeout * 2, .seconds(300)))
    }

    /// A client for a request to `url` over a connection to `address` (checked by the gate); nil
    /// once shut down. `fresh`: one whose connections carry a single request, so the request goes
    /// on a new connection. Pair with ``giveBack(_:)``.
    func lease(_ url: UpstreamURL, address: IPAddress, fresh: Bool = false) -> Lease? {
        let (lease, retired) = state.withLock { state -> (Lease?, [HTTPClient]) in
            var running: Running
            switch state {
            case .shutDown:
                return (nil, [])
            case .idle:
                let group = MultiThreadedEventLoopGroup(numberOfThreads: settings.eventLoopThreads)
                running = Running(
                    group: group,
                    shared: makeClient(group: group, dnsOverride: [:], fresh: false),
                    fresh: makeClient(group: group, dnsOverride: [:], fresh: true)
                )
            case .running(let current):
                running = current
            }
            defer { state = .running(running) }

            guard url.scheme == .https, case .name(let name) = url.host else {
                let lease = Lease(client: fresh ? running.fresh : running.shared, url: url.replacingHost(with: address), hostHeader: url.authority, pin: nil)
                return (lease, [])
            }
            let key = PinKey(host: name, address: address, fresh: fresh)
            let now = ContinuousClock.now
            if var entry = running.pinned[key] {
                entry.users += 1
                entry.lastUsed = now
                running.pinned[key] = entry
                return (Lease(client: entry.client, url: url.description, hostHeader: nil, pin: key), [])
            }
            let client = makeClient(group: running.group, dnsOverride: [name: address.description], fresh: fresh)
            running.pinned[key] = Pinned(client: client, users: 1, lastUsed: now)
            let retired = retireIdle(in: &running, now: now)
            return (Lease(client: client, url: url.description, hostHeader: nil, pin: key), retired)
        }
        retire(retired)
        return lease
    }

    func giveBack(_ lease: Lease) {
        guard let key = lease.pin else { return }
        let retired = state.withLock { state -> [HTTPClient] in
            guard case .running(var running) = state else { return [] }
            let now = ContinuousClock.now
            running.pinned[key]?.users -= 1
            running.pinned[key]?.lastUsed = now
            let retired = retireIdle(in: &running, now: now)
            state = .running(running)
            return retired
        }
        retire(retired)
    }

    /// Pinned clients currently kept (for tests).
    var pinnedCount: Int {
        state.withLock { state in
            if case .running(let running) = state { return running.pinned.count }
            return 0
        }
    }

    /// Shuts every client down (requests still in flight fail), then the event loop group.
    /// Later leases get nil. Safe to call more than once.
    func shutdown() async throws {
        let running = state.withLock { state -> Running? in
            defer { state = .shutDown }
            if case .running(let running) = state { return running }
            return nil
        }
        var firstError: (any Error)?
        if let running {
            for client in [running.shared, running.fresh] + running.pinned.values.map(\.client) {
                do { try await client.shutdown() } catch { firstError = firstError ?? error }
            }
        }
        for task in retiring.withLock({ Array($0.tasks.values) }) {
            await task.value
        }
        if let running {
            do { try await running.group.shutdownGracefully() } catch { firstError = firstError ?? error }
        }
        if let firstError { throw firstError }
    }

    /// Removes idle pinned clients that have been unused for `idleTimeout`, and the least recently
    /// used idle ones beyond `maxPinnedClients`; returns them for shutting down.
    private func retireIdle(in running: inout Running, now: ContinuousClock.Instant) -> [HTTPClient] {
        var retired: [HTTPClient] = []
        for (key, entry) in running.pinned where entry.users == 0 && now - entry.lastUsed >= settings.idleTimeout {
            running.pinned[key] = nil
            retired.append(entry.client)
        }
        if running.pinned.count > settings.maxPinnedClients {
            let idle = running.pinned.filter { $0.value.users == 0 }.sorted { $0.value.lastUsed < $1.value.lastUsed }
            for (key, entry) in idle.prefix(running.pinned.count - settings.maxPinnedClients) {
                running.pinned[key] = nil
                retired.append(entry.client)
            }
        }
        return retired
    }

    private func retire(_ clients: [HTTPClient]) {
        guard !clients.isEmpty else { return }
        retiring.withLock { retiring in
            retiring.next += 1
            let id = retiring.next
            // The task removes itself when done; it cannot get the lock before it is registered.
            retiring.tasks[id] = Task {
                for client in clients { try? await client.shutdown() }
                self.retiring.withLock { _ = $0.tasks.removeValue(forKey: id) }
            }
        }
    }

    private func makeClient(group: MultiThreadedEventLoopGroup, dnsOverride: [String: String], fresh: Bool) -> HTTPClient {
        var configuration = HTTPClient.Configuration(
            redirectConfiguration: .disallow,
            timeout: .init(connect: .nanoseconds(settings.connectTimeout.wholeNanoseconds)),
            connectionPool: .init(
                idleTimeout: .nanoseconds(settings.connectionIdleTimeout.wholeNanoseconds),
                concurrentHTTP1ConnectionsPerHostSoftLimit: settings.perHostLimit
            ),
            decompression: .disabled
        )
        configuration.connectionPool.retryConnectionEstablishment = false
        if fresh {
            configuration.maximumUsesPerConnection = 1
        } else {
            let poolIdleTimeout = TimeAmount.nanoseconds(settings.connectionIdleTimeout.wholeNanoseconds)
            configuration.http1_1ConnectionDebugInitializer = { channel in
                KeepAliveTimeoutHandler.install(on: channel, poolIdleTimeout: poolIdleTimeout)
            }
        }
        configuration.dnsOverride = dnsOverride
        // The runner makes its own client spans and `traceparent` per attempt (HTTPRunner+Attempt);
        // AsyncHTTPClient's would be a second span per request, and building their attributes cost
        // ~6 % of the CPU of jobs of `http` subtasks even with no tracer bootstrapped (perf).
        configuration.tracing.tracer = nil
        return HTTPClient(eventLoopGroup: group, configuration: configuration, backgroundActivityLogger: logger)
    }
}
