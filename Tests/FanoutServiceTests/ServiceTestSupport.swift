import FanoutCore
import MicroHTTPServer
import Logging
import ServiceTestSupport
import TestSupport
import Testing

@testable import FanoutService

/// A job's response read line by line, each with its arrival time.
struct JobStream {
    var head: RawConnection.Head
    var lines: [(at: Duration, json: JSONValue)] = []

    var results: [JSONValue] { lines.map(\.json).filter { $0["event"] == .string("result") } }
    var end: JSONValue? { lines.last?.json }

    /// Sends `job` on `connection` (a new one if nil) and reads the whole stream.
    static func run(_ job: String, port: Int, on connection: RawConnection? = nil, version: String = "HTTP/1.1") async throws -> JobStream {
        let connection = if let connection { connection } else { try await RawConnection.connect(port: port) }
        let start = ContinuousClock.now
        try await connection.send(RawRequest.job(job, version: version))
        var stream = JobStream(head: try await connection.readHead())
        while let line = try await connection.readLine(stream.head) {
            stream.lines.append((ContinuousClock.now - start, try JSONParser.parse(Array(line.utf8))))
        }
        return stream
    }

    /// Exactly one result per subtask, the end line last, its counts matching the lines.
    func checkInvariants(total: Int, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(results.compactMap { $0["index"]?.numberValue.map(Int.init) }.sorted() == Array(0..<total), sourceLocation: sourceLocation)
        #expect(end?["event"] == .string("end"), sourceLocation: sourceLocation)
        #expect(end?["total"] == .number(Double(total)), sourceLocation: sourceLocation)
        var counts: [String: Int] = [:]
        for result in results { counts[result["status"]?.stringValue ?? "?", default: 0] += 1 }
        for status in ["ok", "error", "timeout", "cancelled"] {
            #expect(end?[status] == .number(Double(counts[status, default: 0])), "\(status)", sourceLocation: sourceLocation)
        }
    }
}

/// A JSON problem document's member.
func problem(_ exchange: HTTPExchange) throws -> JSONValue {
    #expect(exchange.head.header("Content-Type") == "application/problem+json")
    let document = try JSONParser.parse(exchange.body)
    #expect(document["status"] == .number(Double(exchange.head.status)))
    #expect(document["type"]?.stringValue?.hasPrefix("https://") == true)
    #expect(document["title"]?.stringValue?.isEmpty == false)
    #expect(document["detail"]?.stringValue?.isEmpty == false)
    return document
}


/// The value of a Prometheus sample line `name{labels} value` in an exposition, if present.
func metric(_ exposition: String, _ sample: String) -> Double? {
    for line in exposition.split(separator: "\n") where line.hasPrefix(sample + " ") {
        return Double(line.dropFirst(sample.count + 1))
    }
    return nil
}
