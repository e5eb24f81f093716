import FanoutCore
import FanoutUpstream
import Testing

extension UpstreamEndToEnd {
    /// The egress policy enforced by the runner. Every URL here points at loopback (where the test
    /// upstream listens), so even a broken policy could not send a packet off the machine.
    @Suite("Egress enforcement")
    struct EgressEnforcementTests {
        /// The runner as the service builds it: default policy (nothing but public addresses), the
        /// system resolver (`localhost` comes from /etc/hosts).
        func defaultPolicyConfiguration() throws -> HTTPRunner.Configuration {
            var configuration = try testConfiguration(allow: [])
            configuration.resolver = SystemResolver()
            return configuration
        }

        @Test(arguments: [
            "127.0.0.1", "localhost", "[::1]", "0.0.0.0", "2130706433", "0x7f.1", "[::ffff:127.0.0.1]", "127.1",
            "017700000001", "0x7f000001", "127.0.0.1.", "LOCALHOST", "[::ffff:7f00:1]", "[::]",
        ])
        func loopbackInAnySpellingIsForbiddenUnlessAllowed(host: String) async throws {
            try await withUpstream { upstream in
                try await withRunner(try defaultPolicyConfiguration()) { runner in
                    let outcome = try await runner.run(httpTask("http://\(host):\(upstream.port)/json"))
                    #expect(outcome.status == .error)
                    #expect(outcome.errorCode == "forbidden", "\(host): \(outcome.errorMessage ?? "")")
                    #expect(outcome.errorMessage?.contains("egress policy") == true)
                }
                #expect(upstream.probe.totalHits == 0, "nothing reached the upstream")
            }
        }

        @Test(arguments: [
            ("127.0.0.1", "127.0.0.1"), ("2130706433", "127.0.0.1"), ("0x7f.1", "127.0.0.1"), ("127.1", "127.0.0.1"),
            ("[::ffff:7f00:1]", "[::ffff:127.0.0.1]"),
        ])
        func anAllowListedAddressIsReachableInAnySpelling(host: String, canonical: String) async throws {
            try await withUpstream { upstream in
                try await withRunner { runner in
                    let outcome = try await runner.run(httpTask("http://\(host):\(upstream.port)/echo"))
                    #expect(outcome.status == .ok, "\(host): \(outcome.errorMessage ?? "")")
                    #expect(outcome.value?["body"]?["headers"]?["host"] == .string("\(canonical):\(upstream.port)"), "the canonical host")
                }
            }
        }

        @Test func anAllowListedHostNameIsReachable() async throws {
            try await withUpstream { upstream in
                let resolver = StubResolver(["localhost": ["127.0.0.1"]])
                try await withRunner(try testConfiguration(allow: ["localhost"], resolver: resolver)) { runner in
                    let outcome = try await runner.run(httpTask("http://localhost:\(upstream.port)/echo"))
                    #expect(outcome.status == .ok, "\(outcome.errorMessage ?? "")")
                    #expect(outcome.value?["body"]?["headers"]?["host"] == .string("localhost:\(upstream.port)"))
                    let other = try await runner.run(httpTask("http://127.0.0.1:\(upstream.port)/json"))
                    #expect(other.errorCode == "forbidden", "allowing a name does not allow its address under other spellings")
                }
            }
        }

        @Test func theSystemResolverReadsLocalNames() async throws {
            // Both answered locally (/etc/hosts, a literal): no query leaves the machine.
            let local = try await SystemResolver().resolve("localhost")
            #expect(!local.isEmpty)
            #expect(local.allSatisfy { AddressClass.of($0) == .loopback }, "\(local)")
            #expect(try await SystemResolver().resolve("127.0.0.1") == [try #require(IPAddress("127.0.0.1"))])
        }

        @Test func theConnectionGoesToTheCheckedAddressNotToASecondLookup() async throws {
            // The upstream listens on 127.0.0.2 only. The stub says localhost is 127.0.0.2; the system
            // says 127.0.0.1, where nothing listens on this port. Success means the request was sent
            // to the address the gate checked, with the original Host header.
            try await withUpstream(host: "127.0.0.2") { upstream in
                let resolver = StubResolver(["localhost": ["127.0.0.2"]])
                try await withRunner(try testConfiguration(allow: ["127.0.0.2"], resolver: resolver)) { runner in
                    let outcome = try await runner.run(httpTask("http://localhost:\(upstream.port)/echo"))
                    #expect(outcome.status == .ok, "\(outcome.errorMessage ?? "")")
                    #expect(outcome.value?["body"]?["headers"]?["host"] == .string("localhost:\(upstream.port)"))
                    #expect(resolver.calls == ["localhost"])
                }
            }
        }

        @Test func httpsToANameSendsTheNameAsSNIToTheCheckedAddress() async throws {
            let listener = try RawListener(.reset)
            defer { listener.stop() }
            let resolver = StubResolver(["localhost": ["127.0.0.1"]])
            try await withRunner(try testConfiguration(resolver: resolver)) { runner in
                let named = try await runner.run(httpTask("https://localhost:\(listener.port)/"))
                #expect(named.errorCode == "connect", "the listener resets the TLS handshake")
                let literal = try await runner.run(httpTask("https://127.0.0.1:\(listener.port)/"))
                #expect(literal.errorCode == "connect")
            }
            let hellos = listener.firstBytes
            try #require(hellos.count == 2)
            #expect(hellos[0].first == 0x16, "a TLS handshake record")
            #expect(hellos[0].contains(subsequence: Array("localhost".utf8)), "SNI carries the URL's name")
            #expect(hellos[1].first == 0x16)
            #expect(!hellos[1].contains(subsequence: Array("localhost".utf8)), "no SNI for an address literal")
            #expect(resolver.calls == ["localhost"])
        }
    }
}

extension Array where Element == UInt8 {
    func contains(subsequence: [UInt8]) -> Bool {
        guard !subsequence.isEmpty, count >= subsequence.count else { return false }
        return (0...(count - subsequence.count)).contains { Array(self[$0..<($0 + subsequence.count)]) == subsequence }
    }
}
