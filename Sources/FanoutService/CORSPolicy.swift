import MicroHTTPServer

/// Cross-origin access for browsers (the Fetch standard's CORS protocol), from `cors.*`.
/// Off when `cors.allow_origins` is empty. It only adds headers a browser reads: a request from an
/// origin not on the list is still served (the browser then hides the answer from the page), except
/// a preflight, which gets a 403 problem with no CORS header.
struct CORSPolicy: Sendable {
    /// Lower-cased serialized origins (`https://app.example.com:8443`).
    let origins: Set<String>
    /// `*` was given: every origin is allowed (and credentials are not).
    let anyOrigin: Bool
    let allowCredentials: Bool
    let maxAgeSeconds: Int

    static let allowedMethods = "GET, HEAD, POST, DELETE"
    /// The request headers the API reads; `Accept` and `Content-Type` are listed because a
    /// preflight names them when their values are not CORS-safelisted (`application/json` is not).
    static let allowedHeaders = "Accept, Authorization, Content-Type, Idempotency-Key, Last-Event-ID, Prefer, traceparent, tracestate"
    /// The response headers a script needs besides the safelisted ones.
    static let exposedHeaders = "X-Job-Id, Location, Retry-After, Idempotent-Replayed"

    init(_ configuration: FanoutConfiguration.CORS) {
        anyOrigin = configuration.allowOrigins.contains("*")
        origins = Set(configuration.allowOrigins.filter { $0 != "*" }.map { $0.lowercased() })
        allowCredentials = configuration.allowCredentials
        maxAgeSeconds = configuration.maxAgeSeconds
    }

    var isEnabled: Bool { anyOrigin || !origins.isEmpty }

    func allows(_ origin: String) -> Bool {
        anyOrigin || origins.contains(origin.lowercased())
    }

    /// `Access-Control-Allow-Origin` (and `-Credentials`) for an allowed origin.
    private func allowHeaders(_ origin: String) -> [(name: String, value: String)] {
        if anyOrigin, !allowCredentials { return [("Access-Control-Allow-Origin", "*")] }
        var headers: [(name: String, value: String)] = [("Access-Control-Allow-Origin", origin)]
        if allowCredentials { headers.append(("Access-Control-Allow-Credentials", "true")) }
        return headers
    }

    /// The answer to a preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) from
    /// an allowed origin: 204 with what may be sent and for how long the browser may cache it.
    func preflight(origin: String) -> HTTPResponse {
        HTTPResponse(
            status: 204,
            headers: allowHeaders(origin) + [
                ("Access-Control-Allow-Methods", Self.allowedMethods),
                ("Access-Control-Allow-Headers", Self.allowedHeaders),
                ("Access-Control-Max-Age", "\(maxAgeSeconds)"),
                ("Vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"),
                ("Cache-Control", "no-store"),
            ]
        )
    }

    /// Any other answer: `Vary: Origin` always (the headers differ by origin, so caches must key on
    /// it), the allow and expose headers when the request's origin is allowed.
    func decorate(_ response: HTTPResponse, origin: String?) -> HTTPResponse {
        var response = response
        response.headers.append(("Vary", "Origin"))
        if let origin, allows(origin) {
            response.headers += allowHeaders(origin)
            response.headers.append(("Access-Control-Expose-Headers", Self.exposedHeaders))
        }
        return response
    }

    /// Why a `cors.allow_origins` entry is not a serialized origin (`scheme://host[:port]`), or nil.
    static func invalidOrigin(_ entry: String) -> String? {
        if entry == "*" { return nil }
        guard let separator = entry.firstRange(of: "://") else { return "is not scheme://host[:port] (or *)" }
        let scheme = entry[..<separator.lowerBound]
        let authority = entry[separator.upperBound...]
        guard let first = scheme.first, first.isASCII, first.isLetter,
              scheme.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "+-.".contains($0)) })
        else { return "has no valid scheme" }
        guard !authority.isEmpty else { return "has no host" }
        if authority.contains(where: { "/?#".contains($0) }) { return "has a path, query or trailing slash; an origin is scheme://host[:port] only" }
        if authority.contains(where: { $0 == "@" || $0.isWhitespace || !$0.isASCII }) {
            return "has user info, spaces or non-ASCII characters (write the host in punycode)"
        }
        // A port after the last colon that is not inside an IPv6 literal's brackets.
        if let colon = authority.lastIndex(of: ":"), !authority[colon...].contains("]") {
            let port = authority[authority.index(after: colon)...]
            guard !port.isEmpty, port.allSatisfy({ $0.isASCII && $0.isNumber }), let number = Int(port), number <= 65535 else {
                return "has an invalid port"
            }
            if colon == authority.startIndex { return "has no host" }
        }
        return nil
    }
}

/// Adds the CORS policy to every answer of the service's handler, and answers preflights on the
/// head. A decorator, so the routes know nothing of it and the server nothing of the policy.
struct CORSHandler: HTTPHandler {
    let inner: FanoutHandler
    let policy: CORSPolicy

    func head(_ request: HTTPRequest) -> HeadDecision {
        let origin = request.headers["Origin"]
        if request.method == "OPTIONS", let origin, request.headers["Access-Control-Request-Method"] != nil {
            guard policy.allows(origin) else {
                return .respond(policy.decorate(inner.reject(.originNotAllowed(origin), request), origin: nil))
            }
            return .respond(policy.preflight(origin: origin))
        }
        switch inner.head(request) {
        case .respond(let response): return .respond(policy.decorate(response, origin: origin))
        case .readBody: return .readBody
        }
    }

    func respond(to request: HTTPRequest) async -> HTTPResponse {
        policy.decorate(await inner.respond(to: request), origin: request.headers["Origin"])
    }

    func respondInline(to request: HTTPRequest) -> HTTPResponse? {
        inner.respondInline(to: request).map { policy.decorate($0, origin: request.headers["Origin"]) }
    }

    func bodyBudgetExceeded(_ request: HTTPRequest) -> HTTPResponse {
        policy.decorate(inner.bodyBudgetExceeded(request), origin: request.headers["Origin"])
    }
}
