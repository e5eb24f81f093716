/// Why a job was refused before its stream started; the service turns it into problem+json.
public struct JobValidationError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The body is not JSON (400).
        case malformedJSON
        /// A field is missing, of the wrong type, or out of range (400).
        case invalidField
        /// More tasks than `limits.max_tasks` (413).
        case tooManyTasks
        /// The job would take more memory than the decoder was allowed (``JobDecoder/decode(_:maxBytes:)``).
        case overMemory
    }

    public var kind: Kind
    /// The offending field, e.g. `tasks[3].delay_ms`; nil for the document as a whole.
    public var field: String?
    public var detail: String

    public init(_ kind: Kind = .invalidField, field: String?, detail: String) {
        self.kind = kind
        self.field = field
        self.detail = detail
    }

    public var description: String { field.map { "\($0): \(detail)" } ?? detail }
}

extension JSONValue {
    /// An integer field within `range`, or nil when absent or null.
    public func integer(_ key: String, path: FieldPath, in range: ClosedRange<Int>) throws(JobValidationError) -> Int? {
        guard let value = self[key], !value.isNull else { return nil }
        guard case .number(let number) = value, number.rounded() == number, number.magnitude < 1e15 else {
            throw JobValidationError(field: path.field(key), detail: "must be an integer, got \(value.typeName == "a number" ? "a fraction" : value.typeName)")
        }
        let integer = Int(number)
        guard range.contains(integer) else {
            throw JobValidationError(field: path.field(key), detail: "must be between \(range.lowerBound) and \(range.upperBound), got \(integer)")
        }
        return integer
    }

    public func boolean(_ key: String, path: FieldPath) throws(JobValidationError) -> Bool? {
        guard let value = self[key], !value.isNull else { return nil }
        guard case .bool(let flag) = value else {
            throw JobValidationError(field: path.field(key), detail: "must be a boolean, got \(value.typeName)")
        }
        return flag
    }

    public func string(_ key: String, path: FieldPath) throws(JobValidationError) -> String? {
        guard let value = self[key], !value.isNull else { return nil }
        guard case .string(let string) = value else {
            throw JobValidationError(field: path.field(key), detail: "must be a string, got \(value.typeName)")
        }
        return string
    }

    /// Rejects members not in `allowed`: a misspelt option must not be silently ignored.
    /// `allowed` is a short list: comparing a few small strings beats hashing each member.
    func requireOnly(_ allowed: [String], path: FieldPath) throws(JobValidationError) {
        guard case .object(let members) = self else { return }
        for (key, _) in members where !allowed.contains(where: { $0.isName(key) }) {
            throw JobValidationError(field: path.field(key), detail: "is not a known field")
        }
    }
}
