public import FanoutCore
public import Logging
import OTel
import ServiceLifecycle
import Tracing

/// Span export over OTLP/HTTP (swift-otel): the ``SpanRecorder`` that jobs, subtasks and
/// upstream requests record their spans with, and the background work that batches them to the
/// collector. Made only when `tracing.otlp_endpoint` is set.
///
/// Spans are batched (OpenTelemetry's batch span processor: every 5 s, or at 512 spans; at most
/// 2048 queued, the rest dropped) and the batch still queued is exported by ``shutdown()``, which
/// the service calls at the end of its drain, so a SIGTERM loses no span of a job that ended.
/// The standard `OTEL_*` variables (e.g. `OTEL_BSP_SCHEDULE_DELAY`) override these settings.
public final class OTLPTracing: Sendable {
    public struct Settings: Sendable, Equatable {
        /// The collector: its base URL (`http://collector:4318`, spans go to `/v1/traces`), or a
        /// URL with a path, used as it is.
        public var endpoint: String
        /// `http/protobuf` or `http/json`.
        public var protocolName: String
        /// The `service.name` resource attribute.
        public var serviceName: String
        /// Share of new traces recorded (0…1); a trace continued from a request follows its
        /// `sampled` flag.
        public var sampleRatio: Double

        public init(endpoint: String, protocolName: String = "http/protobuf", serviceName: String = "fanoutd", sampleRatio: Double = 1) {
            self.endpoint = endpoint
            self.protocolName = protocolName
            self.serviceName = serviceName
            self.sampleRatio = sampleRatio
        }

        /// `endpoint` with `/v1/traces` appended when it names no path.
        var tracesURL: String {
            guard let schemeEnd = endpoint.firstRange(of: "://") else { return endpoint }
            let rest = endpoint[schemeEnd.upperBound...]
            guard let slash = rest.firstIndex(of: "/") else { return endpoint + "/v1/traces" }
            return rest[slash...] == "/" ? endpoint + "v1/traces" : endpoint
        }
    }

    public let recorder: any SpanRecorder
    private let group: ServiceGroup

    /// - Throws: ``SettingsError`` for an endpoint that is not an http(s) URL or an unknown protocol.
    public init(settings: Settings, logger: Logger) throws {
        guard settings.endpoint.hasPrefix("http://") || settings.endpoint.hasPrefix("https://") else {
            throw SettingsError(description: "tracing.otlp_endpoint: \"\(settings.endpoint)\" is not an http:// or https:// URL")
        }
        var configuration = OTel.Configuration.default
        configuration.serviceName = settings.serviceName
        configuration.diagnosticLogger = .custom(logger)
        configuration.logs.enabled = false
        configuration.metrics.enabled = false
        configuration.traces.enabled = true
        configuration.traces.exporter = .otlp
        configuration.traces.otlpExporter.endpoint = settings.tracesURL
        switch settings.protocolName {
        case "http/protobuf": configuration.traces.otlpExporter.protocol = .httpProtobuf
        case "http/json": configuration.traces.otlpExporter.protocol = .httpJSON
        default:
            throw SettingsError(description: "tracing.otlp_protocol: \"\(settings.protocolName)\" is not one of http/protobuf, http/json")
        }
        guard let sampler = OTel.Configuration.TracesConfiguration.SamplerConfiguration.parentBasedTraceIDRatio(ratio: settings.sampleRatio) else {
            throw SettingsError(description: "tracing.sample_ratio: \(settings.sampleRatio) is not in 0...1")
        }
        configuration.traces.sampler = sampler
        configuration.propagators = [.traceContext]
        let backend = try OTel.makeTracingBackend(configuration: configuration)
        recorder = OTelSpanRecorder(tracer: backend.factory)
        group = ServiceGroup(configuration: .init(services: [.init(service: backend.service)], logger: logger))
    }

    public struct SettingsError: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    /// Runs the exporter until ``shutdown()`` has exported what was queued. Detached: the
    /// exporter's service group must not see the caller's graceful shutdown, which would stop
    /// it before the jobs that drain after it have ended their spans.
    public func run() async {
        let group = self.group
        await Task.detached { try? await group.run() }.value
    }

    /// Exports the spans still queued, then stops ``run()``. Call it once no more spans will end.
    public func shutdown() async {
        await group.triggerGracefulShutdown()
    }
}

/// Spans through a swift-distributed-tracing `Tracer` (swift-otel's). IDs come back through the
/// tracer's W3C propagator, so fanoutd's ``TraceContext`` and the exported spans always agree.
struct OTelSpanRecorder<T: Tracer>: SpanRecorder {
    let tracer: T

    func jobSpan(_ name: String, parent: TraceContext?) -> any RecordingSpan {
        var context = ServiceContext.topLevel
        if let parent {
            var carrier = ["traceparent": parent.traceparent]
            if !parent.state.isEmpty { carrier["tracestate"] = parent.state }
            tracer.extract(carrier, into: &context, using: HeaderDictionary())
        }
        return start(name, kind: .server, context: context, fallback: parent?.child() ?? .newTrace(sampled: false))
    }

    /// Starts a span; `fallback` is its context if the tracer gives it none (a sampler that
    /// drops everything).
    func start(_ name: String, kind: SpanKind, context: ServiceContext, fallback: TraceContext) -> any RecordingSpan {
        let span = tracer.startSpan(name, context: context, ofKind: kind)
        var carrier: [String: String] = [:]
        tracer.inject(span.context, into: &carrier, using: HeaderDictionary())
        let ids = TraceContext(traceparent: carrier["traceparent"], tracestate: carrier["tracestate"]) ?? fallback
        return OTelRecordingSpan(recorder: self, span: span, traceContext: ids)
    }
}

struct OTelRecordingSpan<T: Tracer>: RecordingSpan {
    let recorder: OTelSpanRecorder<T>
    let span: T.Span
    let traceContext: TraceContext

    func child(_ name: String, kind: SpanRole) -> any RecordingSpan {
        let otelKind: SpanKind = switch kind {
        case .server: .server
        case .client: .client
        case .internal: .internal
        }
        return recorder.start(name, kind: otelKind, context: span.context, fallback: traceContext.child())
    }

    func set(_ key: String, _ value: String) {
        span.attributes[key] = SpanAttribute.string(value)
    }

    func set(_ key: String, _ value: Int) {
        span.attributes[key] = SpanAttribute.int64(Int64(value))
    }

    func end(failure: String?) {
        if let failure { span.setStatus(SpanStatus(code: .error, message: failure)) }
        span.end()
    }
}

/// Headers as a dictionary, for the tracer's propagator.
struct HeaderDictionary: Extractor, Injector {
    func extract(key: String, from carrier: [String: String]) -> String? { carrier[key] }
    func inject(_ value: String, forKey key: String, into carrier: inout [String: String]) { carrier[key] = value }
}
