import FanoutCore
import Logging
public import MicroHTTPServer

/// Routes requests (SPEC "Endpoints"). Runs on libmicrohttpd's threads: everything here is quick;
/// a job's work happens in its stream's task.
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

    public func respond(to request: HTTPRequest) -> HTTPResponse {
        if let answer = operational.respond(to: request, reject: { reject($0, request) }) { return answer }
        switch request.path {
        case "/v1/jobs":
            guard request.method == "POST" || request.method == "GET" || request.method == "HEAD" else {
                return reject(.methodNotAllowed(request.method, path: request.path, allowed: "GET, HEAD, POST"), request)
            }
            if let problem = auth.check(request) { return reject(problem, request) }
            if request.method != "POST", let retained = jobs.retained { return awaitOnServerThread { await retained.handle(request) } }
            return jobs.submit(request)
        case "/v1/openapi.yaml":
            guard request.method == "GET" || request.method == "HEAD" else {
                return reject(.methodNotAllowed(request.method, path: request.path, allowed: "GET, HEAD"), request)
            }
            return HTTPResponse(status: 200, headers: [("Content-Type", "application/yaml")], body: .bytes(PackageResources.openapi_yaml))
        case let path where path.hasPrefix("/v1/jobs/"):
            // Retained jobs (SPEC v1.1).
            if let problem = auth.check(request) { return reject(problem, request) }
            guard let retained = jobs.retained else { return reject(.notFound(request.path), request) }
            return awaitOnServerThread { await retained.handle(request) }
        default:
            return reject(.notFound(request.path), request)
        }
    }

    func reject(_ problem: Problem, _ request: HTTPRequest) -> HTTPResponse {
        jobs.reject(problem, request, reason: problem.slug)
    }
}
