import MicroHTTPServer

/// The endpoints an orchestrator and Prometheus call (`/livez`, `/healthz`, `/readyz`, `/metrics`),
/// answered the same on the main listener and on the admin listener (`server.admin_port`).
struct OperationalEndpoints: Sendable {
    let admission: JobAdmission
    let auth: BearerAuth
    let metrics: ServiceMetrics

    /// The answer for `request` if its path is one of these endpoints, else nil.
    func respond(to request: HTTPRequest, reject: (Problem) -> HTTPResponse) -> HTTPResponse? {
        switch request.path {
        case "/livez", "/healthz", "/readyz", "/metrics":
            break
        default:
            return nil
        }
        guard request.method == "GET" || request.method == "HEAD" else {
            return reject(.methodNotAllowed(request.method, path: request.path, allowed: "GET, HEAD"))
        }
        switch request.path {
        case "/readyz":
            if admission.isDraining { return Self.plain(503, "draining\n") }
            if !admission.isReady { return Self.plain(503, "saturated\n") }
            // Plain jobs need no store: still ready, but say that retained jobs are refused.
            if !metrics.retained.storeAvailable { return Self.plain(200, "ready; jobs.store unavailable: retained jobs get 503\n") }
            return Self.plain(200, "ready\n")
        case "/metrics":
            if auth.protectMetrics, let problem = auth.check(request) { return reject(problem) }
            return HTTPResponse(status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8", text: metrics.exposition())
        default:
            return Self.plain(200, "ok\n")
        }
    }

    private static func plain(_ status: Int, _ text: String) -> HTTPResponse {
        HTTPResponse(status: status, contentType: "text/plain; charset=utf-8", text: text, headers: [("Cache-Control", "no-store")])
    }
}

/// The admin listener: the operational endpoints only, on a daemon of its own, so probes and
/// scrapes are answered while the main listener is at its connection limit.
final class AdminHandler: HTTPHandler {
    let endpoints: OperationalEndpoints

    init(endpoints: OperationalEndpoints) {
        self.endpoints = endpoints
    }

    /// Everything is answered on the head: no route here reads a body.
    func head(_ request: HTTPRequest) -> HeadDecision {
        .respond(answer(request))
    }

    func respond(to request: HTTPRequest) async -> HTTPResponse {
        answer(request)
    }

    private func answer(_ request: HTTPRequest) -> HTTPResponse {
        endpoints.respond(to: request) { $0.response } ?? Problem.notFound(request.path).response
    }
}
