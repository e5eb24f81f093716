import FanoutCore
import Logging
import Testing

@testable import FanoutService

@Suite("JSON log lines")
struct JSONLogHandlerTests {
    /// One JSON object per line: the fixed fields first, then the metadata by key, the event's
    /// own metadata winning over the handler's, every value a string, text escaped.
    @Test func aLineIsOneJSONObjectWithSortedMetadata() throws {
        var handler = JSONLogHandler(label: "fanoutd")
        handler[metadataKey: "service"] = "fanoutd"
        handler[metadataKey: "job.id"] = "from the handler"
        let event = LogEvent(
            level: .info, message: "job \"finished\"\n", metadata: ["job.id": "j1", "job.tasks": "10"],
            source: nil, file: #fileID, function: #function, line: #line
        )
        let line = handler.line(for: event)
        #expect(line.last == UInt8(ascii: "\n"))
        #expect(line.dropLast().contains(UInt8(ascii: "\n")) == false, "one line")
        let object = try JSONParser.parse(Array(line.dropLast()))
        guard case .object(let members) = object else {
            Issue.record("not an object: \(object)")
            return
        }
        #expect(members.map(\.0) == ["ts", "level", "label", "msg", "job.id", "job.tasks", "service"])
        #expect(object["level"] == .string("info"))
        #expect(object["msg"] == .string("job \"finished\"\n"))
        #expect(object["job.id"] == .string("j1"))
        #expect(object["job.tasks"] == .string("10"))
        let ts = try #require(object["ts"]?.stringValue)
        #expect(ts.utf8.count == 24 && ts.hasSuffix("Z"), "\(ts)")
    }
}
