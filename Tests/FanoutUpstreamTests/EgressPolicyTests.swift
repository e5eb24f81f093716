import FanoutUpstream
import TestSupport
import Testing

/// The egress policy's decisions on addresses, as pure functions: nothing here opens a socket.
@Suite("Egress policy")
struct EgressPolicyTests {
    @Test(arguments: [
        ("8.8.8.8", AddressClass.global),
        ("1.1.1.1", .global),
        ("172.32.0.1", .global),
        ("100.128.0.1", .global),
        ("127.0.0.1", .loopback),
        ("127.255.255.254", .loopback),
        ("10.1.2.3", .privateUse),
        ("172.16.0.1", .privateUse),
        ("172.31.255.255", .privateUse),
        ("192.168.1.1", .privateUse),
        ("169.254.169.254", .linkLocal),
        ("169.254.0.1", .linkLocal),
        ("100.64.0.1", .sharedAddressSpace),
        ("100.127.255.255", .sharedAddressSpace),
        ("0.0.0.0", .unspecified),
        ("0.1.2.3", .unspecified),
        ("224.0.0.1", .multicast),
        ("239.255.255.250", .multicast),
        ("255.255.255.255", .broadcast),
        ("240.0.0.1", .reserved),
        ("192.88.99.1", .reserved),
        ("192.0.2.1", .documentation),
        ("198.51.100.7", .documentation),
        ("203.0.113.9", .documentation),
        ("198.18.0.1", .benchmarking),
        ("192.0.0.170", .protocolAssignment),
    ])
    func classifiesIPv4(text: String, expected: AddressClass) throws {
        let address = try #require(IPAddress(text))
        #expect(AddressClass.of(address) == expected)
    }

    @Test(arguments: [
        ("2606:4700:4700::1111", AddressClass.global),
        ("2a00:1450:4001:80e::200e", .global),
        ("::", .unspecified),
        ("::1", .loopback),
        ("fe80::1", .linkLocal),
        ("febf:ffff::1", .linkLocal),
        ("fec0::1", .siteLocal),
        ("fc00::1", .uniqueLocal),
        ("fd12:3456:789a::1", .uniqueLocal),
        ("ff02::1", .multicast),
        ("ff0e::1", .multicast),
        ("2001:db8::1", .documentation),
        ("3fff::1", .documentation),
        ("2001::1", .protocolAssignment),
        ("::7f00:1", .reserved),
        ("100::1", .reserved),
        ("64:ff9b:1::1", .reserved),
        // IPv4-mapped: judged by the IPv4 address inside.
        ("::ffff:127.0.0.1", .loopback),
        ("::ffff:7f00:1", .loopback),
        ("::ffff:10.0.0.1", .privateUse),
        ("::ffff:169.254.169.254", .linkLocal),
        ("::ffff:100.64.0.1", .sharedAddressSpace),
        ("::ffff:8.8.8.8", .global),
        // NAT64 and 6to4: judged by the IPv4 address they reach.
        ("64:ff9b::a9fe:a9fe", .linkLocal),
        ("64:ff9b::7f00:1", .loopback),
        ("64:ff9b::808:808", .global),
        ("2002:7f00:1::1", .loopback),
        ("2002:c0a8:101::1", .privateUse),
        ("2002:808:808::1", .global),
    ])
    func classifiesIPv6(text: String, expected: AddressClass) throws {
        let address = try #require(IPAddress(text))
        #expect(AddressClass.of(address) == expected)
    }

    @Test(arguments: [
        ("2130706433", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0x7F.0.0.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("127.0.0.1.", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("0", "0.0.0.0"),
        ("0x", "0.0.0.0"),
        ("10.0.0.1", "10.0.0.1"),
        ("2852039166", "169.254.169.254"),
        ("0xa9.0xfe.0xa9.0xfe", "169.254.169.254"),
        ("4294967295", "255.255.255.255"),
    ])
    func readsOddIPv4Spellings(host: String, expected: String) throws {
        #expect(URLHostNumber(host: host) == .address(try #require(IPAddress(expected))))
    }

    @Test(arguments: ["1.2.3.4.5", "256.0.0.1", "4294967296", "09", "1.2.3.09", "foo.127", "0x100000000", "1.2.65536", "+1.2", "1.-2.3"])
    func refusesHostsThatEndInANumberButAreNoAddress(host: String) {
        #expect(URLHostNumber(host: host) == .invalid)
    }

    @Test(arguments: ["example.com", "localhost", "0x1g", "api.internal", "a1.b2"])
    func namesAreNotNumbers(host: String) {
        #expect(URLHostNumber(host: host) == .notANumber)
    }

    @Test func parsesStrictAddressesOnly() throws {
        #expect(IPAddress("192.0.2.1") == .v4(0xC000_0201))
        #expect(IPAddress("010.0.0.1") == nil)
        #expect(IPAddress("1.2.3") == nil)
        #expect(IPAddress("256.1.1.1") == nil)
        #expect(IPAddress("::1") == .v6(1))
        #expect(IPAddress("fe80::1%eth0") == nil)
        #expect(IPAddress("example.com") == nil)
        #expect(try #require(IPAddress("::ffff:127.0.0.1")).unmapped == IPAddress("127.0.0.1"))
        #expect(try #require(IPAddress("2001:db8::1")).description == "2001:db8::1")
        for text in ["0.0.0.0", "255.255.255.255", "10.0.100.9", "1.20.3.199", "127.0.0.1", "192.168.10.254"] {
            #expect(try #require(IPAddress(text)).description == text)
        }
        #expect(try #require(IPAddress("2001:db8::1")).urlHost == "[2001:db8::1]")
    }

    @Test func cidrBlocksMatchTheirRange() throws {
        let block = try #require(CIDRBlock("10.0.0.0/8"))
        #expect(block.contains(try #require(IPAddress("10.255.0.1"))))
        #expect(!block.contains(try #require(IPAddress("11.0.0.1"))))
        #expect(!block.contains(try #require(IPAddress("::ffff:10.0.0.1"))))
        let v6 = try #require(CIDRBlock("fd00::/8"))
        #expect(v6.contains(try #require(IPAddress("fd12::1"))))
        #expect(!v6.contains(try #require(IPAddress("fc00::1"))))
        #expect(try #require(CIDRBlock("0.0.0.0/0")).contains(try #require(IPAddress("8.8.8.8"))))
        #expect(try #require(CIDRBlock("127.0.0.1")).prefixLength == 32)
        #expect(CIDRBlock("10.0.0.1/8") == nil, "host bits set")
        #expect(CIDRBlock("10.0.0.0/33") == nil)
        #expect(CIDRBlock("10.0.0.0/") == nil)
    }

    @Test func theDefaultPolicyAllowsOnlyGlobalAddresses() throws {
        let policy = EgressPolicy()
        #expect(policy.decision(for: try #require(IPAddress("8.8.8.8"))) == .allowed)
        #expect(policy.decision(for: try #require(IPAddress("2606:4700:4700::1111"))) == .allowed)
        for text in ["127.0.0.1", "10.0.0.1", "169.254.169.254", "100.64.0.1", "0.0.0.0", "224.0.0.1", "::1", "fe80::1", "fd00::1", "::ffff:127.0.0.1"] {
            guard case .denied = policy.decision(for: try #require(IPAddress(text))) else {
                Issue.record("\(text) should be denied")
                continue
            }
        }
    }

    @Test func allowListAddsBlocksAndHosts() throws {
        let policy = try EgressPolicy(allow: ["10.0.0.0/8", " 127.0.0.1 ", "fd00::/8", "API.Internal", "*.svc.cluster.local"])
        #expect(policy.decision(for: try #require(IPAddress("10.9.8.7"))) == .allowed)
        #expect(policy.decision(for: try #require(IPAddress("127.0.0.1"))) == .allowed)
        #expect(policy.decision(for: try #require(IPAddress("::ffff:127.0.0.1"))) == .allowed, "mapped form of an allowed address")
        #expect(policy.decision(for: try #require(IPAddress("127.0.0.2"))) == .denied(.loopback))
        #expect(policy.decision(for: try #require(IPAddress("fd00::5"))) == .allowed)
        #expect(policy.decision(for: try #require(IPAddress("169.254.169.254"))) == .denied(.linkLocal))
        #expect(policy.allowsHost("api.internal"))
        #expect(policy.allowsHost("API.INTERNAL."))
        #expect(policy.allowsHost("users.default.svc.cluster.local"))
        #expect(!policy.allowsHost("svc.cluster.local"))
        #expect(!policy.allowsHost("internal"))
    }

    @Test(arguments: ["", "  ", "my host", "10.0.0.1/8", "10.0.0.0/40", "not a host!", "127.1", "2130706433", "300.1.1.1", "::1/200", "http://x"])
    func refusesBadAllowListEntries(entry: String) {
        #expect(throws: EgressPolicy.InvalidEntry.self) { try EgressPolicy(allow: [entry]) }
    }
}

/// The resolve-then-check step with a stub resolver: which addresses a URL may be dialled on.
@Suite("Egress gate")
struct EgressGateTests {
    func check(_ url: String, policy: EgressPolicy = EgressPolicy(), resolver: StubResolver) async throws -> EgressGate.Verdict {
        await EgressGate(policy: policy, resolver: resolver).check(try UpstreamURL(parsing: url))
    }

    let resolver = StubResolver([
        "public.test": ["8.8.8.8"],
        "private.test": ["10.0.0.5"],
        "metadata.test": ["169.254.169.254"],
        "cgnat.test": ["100.64.1.1"],
        "multicast.test": ["224.0.0.251"],
        "mixed.test": ["10.0.0.1", "8.8.4.4", "127.0.0.1"],
        "v6ula.test": ["fd00::1"],
        "v6linklocal.test": ["fe80::1"],
        "mapped.test": ["::ffff:127.0.0.1"],
        "nat64.test": ["64:ff9b::a9fe:a9fe"],
        "api.internal": ["10.1.1.1", "fd00::2"],
    ])

    @Test func aPublicNameConnectsToItsCheckedAddress() async throws {
        #expect(try await check("https://public.test/x", resolver: resolver) == .connect([try #require(IPAddress("8.8.8.8"))]))
    }

    @Test(arguments: [
        ("private.test", "private"),
        ("metadata.test", "link-local"),
        ("cgnat.test", "carrier-grade NAT"),
        ("multicast.test", "multicast"),
        ("v6ula.test", "unique local"),
        ("v6linklocal.test", "link-local"),
        ("mapped.test", "loopback"),
        ("nat64.test", "link-local"),
    ])
    func aNameResolvingToANonPublicAddressIsForbidden(host: String, reason: String) async throws {
        guard case .forbidden(let message) = try await check("http://\(host)/", resolver: resolver) else {
            Issue.record("\(host) should be forbidden")
            return
        }
        #expect(message.contains(reason), "\(message)")
        #expect(message.contains(host))
    }

    @Test func onlyTheAllowedAddressesOfAMixedAnswerAreKept() async throws {
        #expect(try await check("http://mixed.test/", resolver: resolver) == .connect([try #require(IPAddress("8.8.4.4"))]))
        let allowingLoopback = try EgressPolicy(allow: ["127.0.0.0/8"])
        #expect(
            try await check("http://mixed.test/", policy: allowingLoopback, resolver: resolver)
                == .connect([try #require(IPAddress("8.8.4.4")), try #require(IPAddress("127.0.0.1"))])
        )
    }

    @Test func anAllowListedHostMayUseWhatItResolvesTo() async throws {
        let policy = try EgressPolicy(allow: ["api.internal"])
        let verdict = try await check("http://api.internal:8080/u/1", policy: policy, resolver: resolver)
        #expect(verdict == .connect([try #require(IPAddress("10.1.1.1")), try #require(IPAddress("fd00::2"))]))
        guard case .forbidden = try await check("http://private.test/", policy: policy, resolver: resolver) else {
            Issue.record("an allow-listed host must not open other names")
            return
        }
    }

    @Test func withPublicAddressesOffOnlyTheAllowListIsReachable() async throws {
        var closed = try EgressPolicy(allow: ["api.internal"])
        closed.allowsPublicAddresses = false
        #expect(closed.decision(for: try #require(IPAddress("8.8.8.8"))) == .denied(.global))
        let lookups = StubResolver(["public.test": ["8.8.8.8"], "api.internal": ["10.1.1.1"]])
        guard case .forbidden(let message) = try await check("http://public.test/", policy: closed, resolver: lookups) else {
            Issue.record("a public name must be refused when egress.allow_public is off")
            return
        }
        #expect(message.contains("allow_public"))
        #expect(lookups.calls.isEmpty, "a name nothing could allow is refused without asking DNS")
        #expect(try await check("http://api.internal/", policy: closed, resolver: lookups) == .connect([try #require(IPAddress("10.1.1.1"))]))
    }

    @Test func anAllowListedBlockOpensNamesResolvingIntoIt() async throws {
        let policy = try EgressPolicy(allow: ["10.0.0.0/8"])
        #expect(try await check("http://private.test/", policy: policy, resolver: resolver) == .connect([try #require(IPAddress("10.0.0.5"))]))
    }

    @Test(arguments: [
        "http://127.0.0.1/", "http://[::1]/", "http://0.0.0.0/", "http://2130706433/", "http://0x7f.1/",
        "http://017700000001/", "http://127.1/", "http://[::ffff:127.0.0.1]/", "http://[::ffff:169.254.169.254]/",
        "http://169.254.169.254/latest/meta-data/", "http://0xa9fea9fe/", "http://[fe80::1]/", "http://10.0.0.1/",
    ])
    func addressLiteralsAreJudgedWithoutResolving(url: String) async throws {
        let resolver = StubResolver([:])
        guard case .forbidden = try await check(url, resolver: resolver) else {
            Issue.record("\(url) should be forbidden")
            return
        }
        #expect(resolver.calls.isEmpty)
    }

    @Test func aNameThatDoesNotResolveIsUnresolvable() async throws {
        guard case .unresolvable(let message) = try await check("http://nowhere.test/", resolver: resolver) else {
            Issue.record("expected unresolvable")
            return
        }
        #expect(message.contains("nowhere.test"))
    }

    @Test func cancellationStopsTheLookup() async throws {
        let gate = EgressGate(policy: EgressPolicy(), resolver: HangingResolver())
        let url = try UpstreamURL(parsing: "http://slow.test/")
        let task = Task { await gate.check(url) }
        try await Task.sleep(for: .milliseconds(50))
        let start = ContinuousClock.now
        task.cancel()
        #expect(await task.value == .cancelled)
        #expect(ContinuousClock.now - start < TestTime.scaled(.seconds(1)))
    }
}
