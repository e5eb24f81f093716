import Logging
import Testing

@testable import FanoutUpstream

/// Which client a request goes through, and the lifetime of the pinned `https` clients.
/// Leasing opens no connection: nothing here touches the network.
@Suite("Upstream clients")
struct UpstreamClientsTests {
    func clients(idleTimeout: Duration = .seconds(60), maxPinned: Int = 256) -> UpstreamClients {
        UpstreamClients(
            settings: .init(perHostLimit: 4, connectTimeout: .seconds(1), eventLoopThreads: 1, idleTimeout: idleTimeout, maxPinnedClients: maxPinned),
            logger: Logger(label: "test")
        )
    }

    let loopback = IPAddress.v4(0x7F00_0001)

    @Test func plainHTTPGoesToTheCheckedAddressWithTheOriginalHost() async throws {
        let clients = clients()
        let lease = try #require(clients.lease(try UpstreamURL(parsing: "http://api.test:8080/a?b=c"), address: loopback))
        #expect(lease.url == "http://127.0.0.1:8080/a?b=c")
        #expect(lease.hostHeader == "api.test:8080")
        clients.giveBack(lease)
        #expect(clients.pinnedCount == 0)
        try await clients.shutdown()
    }

    @Test func httpsToANameGetsAPinnedClientKeepingTheName() async throws {
        let clients = clients()
        let url = try UpstreamURL(parsing: "https://api.test/x")
        let first = try #require(clients.lease(url, address: loopback))
        #expect(first.url == "https://api.test/x", "the name stays in the URL for SNI and certificate checks")
        #expect(first.hostHeader == nil)
        let second = try #require(clients.lease(url, address: loopback))
        #expect(first.client === second.client, "one client per name and address")
        let other = try #require(clients.lease(url, address: .v4(0x7F00_0002)))
        #expect(other.client !== first.client, "another checked address, another client")
        let literal = try #require(clients.lease(try UpstreamURL(parsing: "https://127.0.0.1/"), address: loopback))
        #expect(literal.url == "https://127.0.0.1/")
        #expect(clients.pinnedCount == 2)
        for lease in [first, second, other, literal] { clients.giveBack(lease) }
        try await clients.shutdown()
        #expect(clients.lease(url, address: loopback) == nil, "no leases after shutdown")
    }

    @Test func idlePinnedClientsAreRetired() async throws {
        let clients = clients(idleTimeout: .zero)
        let lease = try #require(clients.lease(try UpstreamURL(parsing: "https://api.test/"), address: loopback))
        #expect(clients.pinnedCount == 1)
        clients.giveBack(lease)
        #expect(clients.pinnedCount == 0)
        try await clients.shutdown()

        let bounded = self.clients(maxPinned: 1)
        let a = try #require(bounded.lease(try UpstreamURL(parsing: "https://a.test/"), address: loopback))
        let b = try #require(bounded.lease(try UpstreamURL(parsing: "https://b.test/"), address: loopback))
        #expect(bounded.pinnedCount == 2, "clients in use are never retired")
        bounded.giveBack(a)
        #expect(bounded.pinnedCount == 1)
        bounded.giveBack(b)
        try await bounded.shutdown()
    }
}
