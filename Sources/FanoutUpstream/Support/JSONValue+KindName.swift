import FanoutCore

extension JSONValue {
    /// The JSON type's name for error messages.
    var kindName: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .number(let number): number.rounded() == number ? "a number" : "a fraction"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }
}
