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
        var members: [(String, JSONValue)] = [
            ("ts", .string(Self.timestamp())),
            ("level", .string(event.level.rawValue)),
            ("label", .string(label)),
            ("msg", .string(event.message.description)),
        ]
        let merged = metadata.isEmpty ? (event.metadata ?? [:]) : metadata.merging(event.metadata ?? [:]) { _, new in new }
        for (key, value) in merged.sorted(by: { $0.key < $1.key }) {
            members.append((key, .string(value.description)))
        }
        var writer = JSONWriter(capacity: 256)
        writer.write(.object(members))
        writer.bytes.append(UInt8(ascii: "\n"))
        Self.lock.withLock { _ in
            writer.bytes.withUnsafeBytes { raw in
                var offset = 0
                while offset < raw.count {
                    let written = Glibc.write(STDERR_FILENO, raw.baseAddress! + offset, raw.count - offset)
                    if written <= 0 { break }
                    offset += written
                }
            }
        }
    }

    /// UTC, RFC 3339 with milliseconds.
    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return WallClock.rfc3339(whole: now.tv_sec, milliseconds: now.tv_nsec / 1_000_000)
    }
}
