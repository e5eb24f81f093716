import MicroHTTPServer

/// Optional bearer-token auth: off when no token is configured. Tokens are compared in constant time.
struct BearerAuth: Sendable {
    private let tokens: [[UInt8]]
    let protectMetrics: Bool

    init(tokens: [String], protectMetrics: Bool) {
        self.tokens = tokens.filter { !$0.isEmpty }.map { Array($0.utf8) }
        self.protectMetrics = protectMetrics
    }

    var isEnabled: Bool { !tokens.isEmpty }

    /// nil when the request may pass, else the 401 to answer.
    func check(_ request: HTTPRequest) -> Problem? {
        guard isEnabled else { return nil }
        guard let header = request.headers["Authorization"] else {
            return .unauthorized("this endpoint needs an Authorization: Bearer token")
        }
        let prefix = "bearer "
        guard header.count > prefix.count, header.prefix(prefix.count).lowercased() == prefix else {
            return .unauthorized("the Authorization header must use the Bearer scheme")
        }
        let presented = Array(header.dropFirst(prefix.count).utf8)
        var matched = false
        for token in tokens {
            matched = Self.constantTimeEquals(token, presented) || matched
        }
        return matched ? nil : .unauthorized("the bearer token is not valid")
    }

    /// Compares every byte whatever the contents, so timing tells nothing about where they differ.
    static func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(truncatingIfNeeded: a.count ^ b.count)
        let count = max(a.count, b.count)
        for index in 0..<count {
            let x = index < a.count ? a[index] : 0
            let y = index < b.count ? b[index] : 0
            difference |= x ^ y
        }
        return difference == 0
    }
}
