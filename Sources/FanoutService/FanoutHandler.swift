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
    let operational: OperationalEndpoints
    let logger: Logger

    init(jobs: JobEndpoint, admission: JobAdmission, auth: BearerAuth, metrics: ServiceMetrics, logger: Logger) {
        self.jobs = jobs
        self.admission = admission
        self.auth = auth
        self.metrics = metrics
        self.operational = OperationalEndpoints(admission: admission, auth: auth, metrics: metrics)
        self.logger = logger
    }

    /// Route, method, auth, media type and admission of a job, before its body is read: a refusal
    /// never gets `100 Continue` nor has its body buffered. Retained-job routes are async (they wait
    /// on the job store), so they take the body path too (their body is empty) and run in a task.
    public func head(_ request: HTTPRequest) -> HeadDecision {
        if request.path == "/v1/jobs" {
            guard request.method == "POST" || request.method == "GET" || request.method == "HEAD" else {
                return .respond(reject(.methodNotAllowed(request.method, path: request.path, allowed: "GET, HEAD, POST"), request))
            }
            if let problem = auth.check(request) { return .respond(reject(problem, request)) }
            if request.method != "POST" { return jobs.retained == nil ? .respond(reject(.notFound(request.path), request)) : .readBody }
            if let refusal = jobs.checkHead(request) { return .respond(refusal) }
            return .readBody
        }
        if request.path.hasPrefix("/v1/jobs/") {
            if let problem = auth.check(request) { return .respond(reject(problem, request)) }
            return jobs.retained == nil ? .respond(reject(.notFound(request.path), request)) : .readBody
        }
        return .respond(answer(request))
    }

    /// A job whose body has been read, decoded here off libmicrohttpd's threads; or a retained-job route.
    public func respond(to request: HTTPRequest) async -> HTTPResponse {
        if request.path == "/v1/jobs", request.method == "POST" { return await jobs.submit(request) }
        if let retained = jobs.retained, request.path.hasPrefix("/v1/jobs") { return await retained.handle(request) }
        return answer(request)
    }

    /// A small job (`server.inline_body_bytes`) is decoded on the server thread: cheaper than the
    /// hop to a task and back, and its decode is short.
    public func respondInline(to request: HTTPRequest) -> HTTPResponse? {
        request.path == "/v1/jobs" && request.method == "POST" ? jobs.submitInline(request) : nil
    }

    public func bodyBudgetExceeded(_ request: HTTPRequest) -> HTTPResponse {
        jobs.reject(.bodyBudgetExceeded(retryAfter: 1), request)
    }

    /// Every route but the job routes, answered on the head.
    func answer(_ request: HTTPRequest) -> HTTPResponse {
        if let answer = operational.respond(to: request, reject: { reject($0, request) }) { return answer }
        switch request.path {
        case "/v1/openapi.yaml":
            guard request.method == "GET" || request.method == "HEAD" else {
                return reject(.methodNotAllowed(request.method, path: request.path, allowed: "GET, HEAD"), request)
            }
            return HTTPResponse(status: 200, headers: [("Content-Type", "application/yaml")], body: .bytes(PackageResources.openapi_yaml))
        default:
            return reject(.notFound(request.path), request)
        }
    }

    func reject(_ problem: Problem, _ request: HTTPRequest) -> HTTPResponse {
        jobs.reject(problem, request)
    }
}
