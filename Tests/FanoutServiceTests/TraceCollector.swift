import FanoutSync
import Logging
import MicroHTTPServer
import TestSupport

/// A loopback server that is both an OTLP/HTTP receiver (`POST /v1/traces`, protobuf, decoded
/// here) and an upstream for `http` subtasks that records the trace headers each request carried.
///
/// | path | answer |
/// | --- | --- |
/// | `/v1/traces` | 200, the spans kept |
/// | `/ok` | 200 JSON |
/// | `/flaky/<token>` | 503 the first time, then 200 |
/// | `/tail/<token>` | 200 after 1 s (scaled: TestTime) the first time, then at once (a hedge's target) |
final class TraceCollector: Sendable {
    struct Call: Sendable {
        var path: String
        var traceparent: String?
        var tracestate: String?
    }

    struct State {
        var spans: [ExportedSpan] = []
        var serviceNames: [String] = []
        var calls: [Call] = []
        var seen: Set<String> = []
    }

    /// Shared with the handler (a `Locked` is a reference to its state).
    let state: Locked<State>
    let server: HTTPServer
    var port: Int { server.port ?? 0 }

    private init() {
        let state = Locked(State())
        self.state = state
        server = HTTPServer(
            configuration: HTTPServerConfiguration(host: "127.0.0.1", port: 0, threads: 1),
            handler: Handler(state: state),
            logger: Logger(label: "test-collector")
        )
    }

    var spans: [ExportedSpan] { state.withLock { $0.spans } }
    var serviceNames: [String] { state.withLock { $0.serviceNames } }
    var calls: [Call] { state.withLock { $0.calls } }

    /// Runs `body` with the collector listening, then stops it.
    static func with<T>(_ body: (TraceCollector) async throws -> T) async throws -> T {
        let collector = TraceCollector()
        try collector.server.start()
        async let serving: Void = collector.server.run()
        do {
            let result = try await body(collector)
            await collector.server.shutdown(gracePeriod: .zero)
            await serving
            return result
        } catch {
            await collector.server.shutdown(gracePeriod: .zero)
            await serving
            throw error
        }
    }

    private struct Handler: HTTPHandler {
        let state: Locked<State>

        func head(_ request: HTTPRequest) -> HeadDecision {
            request.path == "/v1/traces" || request.path.hasPrefix("/tail/") ? .readBody : .respond(answer(request))
        }

        func respond(to request: HTTPRequest) async -> HTTPResponse {
            if request.path.hasPrefix("/tail/") {
                let firstTime = record(request)
                if firstTime { try? await Task.sleep(for: TestTime.scaled(.seconds(1))) }
                return HTTPResponse(status: 200, contentType: "application/json", text: #"{"ok":true}"#)
            }
            guard request.path == "/v1/traces", request.method == "POST" else { return answer(request) }
            guard request.headers["Content-Type"] == "application/x-protobuf",
                  let (names, spans) = try? ExportedSpan.decode(request: request.body)
            else {
                return HTTPResponse(status: 400, contentType: "text/plain", text: "not an OTLP protobuf export")
            }
            state.withLock { state in
                state.spans += spans
                state.serviceNames += names
            }
            // An empty ExportTraceServiceResponse: full success.
            return HTTPResponse(status: 200, headers: [("Content-Type", "application/x-protobuf")], body: .bytes([]))
        }

        /// Records the call; whether it is the first to its path.
        func record(_ request: HTTPRequest) -> Bool {
            state.withLock { state in
                state.calls.append(Call(path: request.path, traceparent: request.headers["traceparent"], tracestate: request.headers["tracestate"]))
                return state.seen.insert(request.path).inserted
            }
        }

        func answer(_ request: HTTPRequest) -> HTTPResponse {
            let firstTime = record(request)
            if request.path.hasPrefix("/flaky/"), firstTime {
                return HTTPResponse(status: 503, contentType: "text/plain", text: "try again")
            }
            return HTTPResponse(status: 200, contentType: "application/json", text: #"{"ok":true}"#)
        }
    }
}

/// The fields of an exported OTLP span that the tests look at.
struct ExportedSpan: Sendable {
    var traceID = ""
    var spanID = ""
    var parentSpanID = ""
    var traceState = ""
    var name = ""
    /// 1 internal, 2 server, 3 client.
    var kind = 0
    var attributes: [String: String] = [:]
    /// 0 unset, 1 ok, 2 error.
    var statusCode = 0

    /// `opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest`: the resources'
    /// `service.name`s and every span.
    static func decode(request: [UInt8]) throws -> (serviceNames: [String], spans: [ExportedSpan]) {
        var names: [String] = []
        var spans: [ExportedSpan] = []
        for resourceSpans in try Protobuf.fields(request[...]) where resourceSpans.number == 1 {
            for field in try Protobuf.fields(resourceSpans.bytes) {
                switch field.number {
                case 1:  // Resource
                    for attribute in try Protobuf.fields(field.bytes) where attribute.number == 1 {
                        let (key, value) = try keyValue(attribute.bytes)
                        if key == "service.name" { names.append(value) }
                    }
                case 2:  // ScopeSpans
                    for span in try Protobuf.fields(field.bytes) where span.number == 2 {
                        spans.append(try decodeSpan(span.bytes))
                    }
                default: break
                }
            }
        }
        return (names, spans)
    }

    private static func decodeSpan(_ bytes: ArraySlice<UInt8>) throws -> ExportedSpan {
        var span = ExportedSpan()
        for field in try Protobuf.fields(bytes) {
            switch field.number {
            case 1: span.traceID = hex(field.bytes)
            case 2: span.spanID = hex(field.bytes)
            case 3: span.traceState = String(decoding: field.bytes, as: UTF8.self)
            case 4: span.parentSpanID = hex(field.bytes)
            case 5: span.name = String(decoding: field.bytes, as: UTF8.self)
            case 6: span.kind = Int(field.varint)
            case 9:
                let (key, value) = try keyValue(field.bytes)
                span.attributes[key] = value
            case 15:
                for status in try Protobuf.fields(field.bytes) where status.number == 3 { span.statusCode = Int(status.varint) }
            default: break
            }
        }
        return span
    }

    /// A `KeyValue` whose value is a string, bool or int (as text).
    private static func keyValue(_ bytes: ArraySlice<UInt8>) throws -> (String, String) {
        var key = ""
        var value = ""
        for field in try Protobuf.fields(bytes) {
            if field.number == 1 { key = String(decoding: field.bytes, as: UTF8.self) }
            if field.number == 2 {
                for any in try Protobuf.fields(field.bytes) {
                    switch any.number {
                    case 1: value = String(decoding: any.bytes, as: UTF8.self)
                    case 2: value = any.varint != 0 ? "true" : "false"
                    case 3: value = String(Int64(bitPattern: any.varint))
                    default: break
                    }
                }
            }
        }
        return (key, value)
    }

    private static func hex(_ bytes: ArraySlice<UInt8>) -> String {
        bytes.map { byte in
            let digits = String(byte, radix: 16)
            return digits.count == 1 ? "0" + digits : digits
        }.joined()
    }
}

/// Just enough of the protobuf wire format to walk a message's fields.
enum Protobuf {
    struct Field {
        var number: Int
        /// Varint fields (wire type 0).
        var varint: UInt64 = 0
        /// Length-delimited fields (wire type 2).
        var bytes: ArraySlice<UInt8> = []
    }

    struct Malformed: Error {}

    static func fields(_ message: ArraySlice<UInt8>) throws -> [Field] {
        var fields: [Field] = []
        var index = message.startIndex
        func varint() throws -> UInt64 {
            var value: UInt64 = 0
            var shift: UInt64 = 0
            while true {
                guard index < message.endIndex, shift < 64 else { throw Malformed() }
                let byte = message[index]
                index += 1
                value |= UInt64(byte & 0x7F) << shift
                if byte & 0x80 == 0 { return value }
                shift += 7
            }
        }
        while index < message.endIndex {
            let tag = try varint()
            var field = Field(number: Int(tag >> 3))
            switch tag & 7 {
            case 0: field.varint = try varint()
            case 1: index += 8
            case 2:
                let length = Int(try varint())
                guard length <= message.endIndex - index else { throw Malformed() }
                field.bytes = message[index..<index + length]
                index += length
            case 5: index += 4
            default: throw Malformed()
            }
            guard index <= message.endIndex else { throw Malformed() }
            fields.append(field)
        }
        return fields
    }
}
