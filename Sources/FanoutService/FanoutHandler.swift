import FanoutCore
import Logging
public import MicroHTTPServer

/// Routes requests (SPEC "Endpoints"). Everything is decided on the head, on libmicrohttpd's
/// threads (quick: the probes and `/metrics` never leave them); only `POST /v1/jobs` reads its body,
/// and is decoded in ``respond(to:)`` in a task of the server; a job's work runs in its stream's task.
public final class FanoutHandler: HTTPHandler {
    let jobs: JobEndpoint
    let admission: JobAdmission
    let auth: BearerAuth
    let metrics: ServiceMetrics
    let logger: Logger

    init(jobs: JobEndpoint, admission: JobAdmission, auth: BearerAuth, metrics: ServiceMetrics, logger: Logger) {
        self.jobs = jobs
        self.admission = admission
        self.auth = auth
        self.metrics = metrics
        self.logger = logger
    }

    /// Route, method, auth, media type and admission of a job, before its body is read: a refusal
    /// never gets `100 Continue` nor has its body buffered.
    public func head(_ request: HTTPRequest) -> HeadDecision {
        if request.path == "/v1/jobs" {
            guard request.method == "POST" else { return .respond(reject(.methodNotAllowed(request.method, path: request.path, allowed: "POST"), request)) }
            if let problem = auth.check(request) { return .respond(reject(problem, request)) }
            if let refusal = jobs.checkHead(request) { return .respond(refusal) }
            return .readBody
        }
        return .respond(answer(request))
    }

    /// A job whose body has been read: decoded here, off libmicrohttpd's threads.
    public func respond(to request: HTTPRequest) async -> HTTPResponse {
        guard request.path == "/v1/jobs" else { return answer(request) }
        return jobs.submit(request)
    }

    /// A small job (`server.inline_body_bytes`) is decoded on the server thread: cheaper than the
    /// hop to a task and back, and its decode is short.
    public func respondInline(to request: HTTPRequest) -> HTTPResponse? {
        request.path == "/v1/jobs" ? jobs.submit(request) : nil
    }

    public func bodyBudgetExceeded(_ request: HTTPRequest) -> HTTPResponse {
        jobs.reject(.bodyBudgetExceeded(retryAfter: 1), request, reason: "body_budget")
    }

    /// Every route but `POST /v1/jobs`, answered on the head.
    func answer(_ request: HTTPRequest) -> HTTPResponse {
        switch request.path {
        case "/livez", "/healthz":
            guard request.method == "GET" || request.method == "HEAD" else {
                return reject(.methodNotAllowed(request.method, path: request.path, allowed: "GET, HEAD"), request)
            }
            return HTTPResponse(status: 200, contentType: "text/plain; charset=utf-8", text: "ok\n", headers: [("Cache-Control", "no-store")])
        case "/readyz":
            guard request.method == "GET" || request.method == "HEAD" else {
                return reject(.methodNotAllowed(request.method, path: request.path, allowed: "GET, HEAD"), request)
            }
            if admission.isDraining {
                return HTTPResponse(status: 503, contentType: "text/plain; charset=utf-8", text: "draining\n", headers: [("Cache-Control", "no-store")])
            }
            if !admission.isReady {
                return HTTPResponse(status: 503, contentType: "text/plain; charset=utf-8", text: "saturated\n", headers: [("Cache-Control", "no-store")])
            }
            return HTTPResponse(status: 200, contentType: "text/plain; charset=utf-8", text: "ready\n", headers: [("Cache-Control", "no-store")])
        case "/metrics":
            guard request.method == "GET" || request.method == "HEAD" else {
                return reject(.methodNotAllowed(request.method, path: request.path, allowed: "GET, HEAD"), request)
            }
            if auth.protectMetrics, let problem = auth.check(request) { return reject(problem, request) }
            return HTTPResponse(status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8", text: metrics.exposition())
        case "/v1/openapi.yaml":
            guard request.method == "GET" || request.method == "HEAD" else {
                return reject(.methodNotAllowed(request.method, path: request.path, allowed: "GET, HEAD"), request)
            }
            return HTTPResponse(status: 200, contentType: "application/yaml", text: OpenAPIDocument.yaml)
        default:
            return reject(.notFound(request.path), request)
        }
    }

    func reject(_ problem: Problem, _ request: HTTPRequest) -> HTTPResponse {
        jobs.reject(problem, request, reason: problem.slug)
    }
}
