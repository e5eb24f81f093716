/// The resolve-then-check step: decides where an upstream URL may connect, or why it may not.
///
/// An address literal is judged as it is. A name named by the allow-list is resolved and may use
/// every address it resolves to. Any other name is resolved and every address is judged; the
/// allowed ones are kept (in resolver order) and the rest dropped, so a name answering with one
/// public and one private address can only ever be dialled on the public one. The caller connects
/// to the addresses returned and nothing else: the name is never looked up a second time.
public struct EgressGate: Sendable {
    public enum Verdict: Sendable, Equatable {
        /// Connect to one of these (never empty).
        case connect([IPAddress])
        /// The policy refuses it (error code `forbidden`), with the reason.
        case forbidden(String)
        /// The name did not resolve (error code `connect`).
        case unresolvable(String)
        /// The caller was cancelled while resolving.
        case cancelled
    }

    public var policy: EgressPolicy
    public var resolver: any HostResolver

    public init(policy: EgressPolicy, resolver: any HostResolver) {
        self.policy = policy
        self.resolver = resolver
    }

    public func check(_ url: UpstreamURL) async -> Verdict {
        switch url.host {
        case .address(let address):
            switch policy.decision(for: address) {
            case .allowed:
                return .connect([address.unmapped])
            case .denied(let kind):
                return .forbidden("\(address) is \(kind.rawValue); the egress policy does not allow it")
            }
        case .name(let name):
            if !policy.allowsPublicAddresses, policy.blocks.isEmpty, !policy.allowsHost(name) {
                // Nothing this name could resolve to is allowed: do not even ask DNS.
                return .forbidden("\"\(name)\" is not on the egress allow-list and egress.allow_public is off")
            }
            let addresses: [IPAddress]
            do {
                addresses = try await resolver.resolve(name)
            } catch let error as ResolutionError {
                return .unresolvable(error.description)
            } catch is CancellationError {
                return .cancelled
            } catch {
                return .unresolvable("cannot resolve \"\(name)\": \(error)")
            }
            if Task.isCancelled { return .cancelled }
            guard !addresses.isEmpty else { return .unresolvable("cannot resolve \"\(name)\": no addresses") }
            if policy.allowsHost(name) { return .connect(addresses.map(\.unmapped)) }
            var allowed: [IPAddress] = []
            var firstDenied: (IPAddress, AddressClass)?
            for address in addresses {
                switch policy.decision(for: address) {
                case .allowed:
                    if !allowed.contains(address.unmapped) { allowed.append(address.unmapped) }
                case .denied(let kind):
                    if firstDenied == nil { firstDenied = (address, kind) }
                }
            }
            guard let (address, kind) = firstDenied, allowed.isEmpty else { return .connect(allowed) }
            return .forbidden("\"\(name)\" resolves to \(address), which is \(kind.rawValue); the egress policy does not allow it")
        }
    }
}
