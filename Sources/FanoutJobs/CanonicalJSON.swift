public import FanoutCore

/// The idempotency fingerprint of a job: SHA-256 of its canonical JSON (compact, object keys sorted
/// by their UTF-8 bytes, numbers as ``JSONWriter`` prints them), so whitespace and key order do not
/// make two submissions of the same job differ.
public enum JobFingerprint {
    /// Fields that choose how the answer is delivered, not what runs: a retry may follow live a job
    /// it first detached (or the other way round) under the same key.
    public static let deliveryFields: Set<String> = ["detach", "on_disconnect"]

    public static func of(_ job: JSONValue) -> String {
        var writer = JSONWriter(capacity: 1024)
        writeCanonical(job, top: true, into: &writer)
        return SHA256.hex(writer.bytes)
    }

    private static func writeCanonical(_ value: JSONValue, top: Bool, into writer: inout JSONWriter) {
        switch value {
        case .array(let elements):
            writer.raw("[")
            for (position, element) in elements.enumerated() {
                if position > 0 { writer.raw(",") }
                writeCanonical(element, top: false, into: &writer)
            }
            writer.raw("]")
        case .object(let members):
            // A repeated key counts once, with its last value (as lookups see it).
            var latest: [String: JSONValue] = [:]
            for (key, member) in members where !(top && deliveryFields.contains(key)) { latest[key] = member }
            writer.raw("{")
            for (position, key) in latest.keys.sorted(by: { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }).enumerated() {
                if position > 0 { writer.raw(",") }
                writer.write(string: key)
                writer.raw(":")
                writeCanonical(latest[key]!, top: false, into: &writer)
            }
            writer.raw("}")
        default:
            writer.write(value)
        }
    }
}
