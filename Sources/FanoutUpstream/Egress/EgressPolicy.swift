import FanoutCore
/// Which upstream addresses `http` subtasks may reach (SPEC "Egress policy").
///
/// By default only ``AddressClass/global`` addresses are allowed. The allow-list (`egress.allow`,
/// `FANOUT_EGRESS_ALLOW`) adds:
/// - address blocks and single addresses (`10.1.0.0/16`, `127.0.0.1`, `fd00::/8`): an address in
///   one is allowed whatever its class;
/// - host names (`users`, `api.internal`) and wildcard suffixes (`*.svc.cluster.local`, which
///   matches subdomains only): a URL naming such a host may reach whatever address the name
///   resolves to. The connection still goes to the address resolved and checked for this subtask.
///
/// The policy is a value; ``EgressGate`` applies it to URLs at connection time.
public struct EgressPolicy: Sendable, Equatable {
    /// An allow-list entry that is neither a host name nor an address block.
    public struct InvalidEntry: Error, Sendable, Equatable, CustomStringConvertible {
        public var entry: String
        public var reason: String
        public var description: String { "\"\(entry)\": \(reason)" }
    }

    public private(set) var hosts: Set<String> = []
    /// Suffixes from `*.example.com` entries, stored as `.example.com`.
    public private(set) var hostSuffixes: [String] = []
    public private(set) var blocks: [CIDRBlock] = []
    /// Whether public (global unicast) addresses are allowed without an allow-list entry
    /// (`egress.allow_public`). Off, only what the allow-list names is reachable.
    public var allowsPublicAddresses = true

    /// The default policy: public addresses only.
    public init() {}

    /// - Throws: ``InvalidEntry`` for the first entry that is not a host name, `*.suffix`, address
    ///   or CIDR block (so a typo stops the service instead of silently allowing nothing).
    public init(allow entries: some Sequence<String>) throws(InvalidEntry) {
        for raw in entries {
            let entry = String(raw.trimmingASCIIWhitespace())
            guard !entry.isEmpty else { throw InvalidEntry(entry: raw, reason: "is empty") }
            if let block = CIDRBlock(entry) {
                blocks.append(block)
                continue
            }
            if entry.contains("/") || entry.contains(":") {
                throw InvalidEntry(entry: entry, reason: "is not a valid address or CIDR block (host bits must be zero, e.g. 10.0.0.0/8)")
            }
            let wildcard = entry.hasPrefix("*.")
            let name = Self.normalize(wildcard ? String(entry.dropFirst(2)) : entry)
            guard UpstreamURL.isValidHostName(name) else {
                throw InvalidEntry(entry: entry, reason: "is not a host name, *.domain, address or CIDR block")
            }
            guard URLHostNumber(host: name) == .notANumber else {
                throw InvalidEntry(entry: entry, reason: "is a numeric host; write the address in dotted form (e.g. 127.0.0.1)")
            }
            if wildcard {
                hostSuffixes.append("." + name)
            } else {
                hosts.insert(name)
            }
        }
    }

    /// Whether the allow-list names this host (lower case, no trailing dot).
    public func allowsHost(_ name: String) -> Bool {
        let name = Self.normalize(name)
        return hosts.contains(name) || hostSuffixes.contains { name.hasSuffix($0) }
    }

    /// The verdict on one address. An IPv4-mapped address is judged as the IPv4 address it reaches.
    public func decision(for address: IPAddress) -> EgressDecision {
        let reached = address.unmapped
        if blocks.contains(where: { $0.contains(reached) || $0.contains(address) }) { return .allowed }
        let kind = AddressClass.of(reached)
        return kind == .global && allowsPublicAddresses ? .allowed : .denied(kind)
    }

    static func normalize(_ name: String) -> String {
        var name = name.lowercased()
        if name.count > 1, name.hasSuffix(".") { name.removeLast() }
        return name
    }
}

/// What the policy says about one address.
public enum EgressDecision: Sendable, Equatable {
    case allowed
    case denied(AddressClass)
}
