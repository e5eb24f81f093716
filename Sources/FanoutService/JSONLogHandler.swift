import FanoutCore
import FanoutJobs
import Glibc
public import Logging
import FanoutSync

/// One JSON object per line on stderr: `{"ts":…,"level":…,"label":…,"msg":…, metadata…}`, for containers.
public struct JSONLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    private let label: String
    private static let lock = Locked(())

    public init(label: String) { self.label = label }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let line = line(for: event)
        Self.lock.withLock { _ in
            line.withUnsafeBytes { raw in
                var offset = 0
                while offset < raw.count {
                    let written = Glibc.write(STDERR_FILENO, raw.baseAddress! + offset, raw.count - offset)
                    if written <= 0 { break }
                    offset += written
                }
            }
        }
    }

    /// The event's line, newline included: written straight into the bytes (no JSONValue tree),
    /// as the service logs a line per job.
    func line(for event: LogEvent) -> [UInt8] {
        var writer = JSONWriter(capacity: 512)
        writer.raw("{\"ts\":")
        writer.write(string: Self.timestamp())
        writer.raw(",\"level\":")
        writer.write(string: event.level.rawValue)
        writer.raw(",\"label\":")
        writer.write(string: label)
        writer.raw(",\"msg\":")
        writer.write(string: event.message.description)
        let merged = metadata.isEmpty ? (event.metadata ?? [:]) : metadata.merging(event.metadata ?? [:]) { _, new in new }
        for (key, value) in merged.sorted(by: { $0.key < $1.key }) {
            writer.raw(",")
            writer.write(string: key)
            writer.raw(":")
            if case .string(let text) = value {
                writer.write(string: text)
            } else {
                writer.write(string: value.description)
            }
        }
        writer.raw("}\n")
        return writer.bytes
    }

    /// UTC, RFC 3339 with milliseconds.
    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return WallClock.rfc3339(whole: now.tv_sec, milliseconds: now.tv_nsec / 1_000_000)
    }
}
