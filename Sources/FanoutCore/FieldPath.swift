/// Where a field sits in a submitted job, for the error that names it (`tasks[3]`, then
/// `tasks[3].delay_ms`). Its text is made only when an error needs it: a subtask's path was
/// interpolated for every task decoded, ~650 instructions each, for errors that rarely come.
public struct FieldPath: Sendable, CustomStringConvertible, ExpressibleByStringLiteral {
    private enum Place: Sendable {
        case text(String)
        case task(Int)
    }

    private let place: Place

    /// The job document itself: its fields are named bare (`concurrency`).
    public static let document = FieldPath(text: "")

    /// The subtask at `index` of the job's `tasks`.
    public static func task(_ index: Int) -> FieldPath { FieldPath(place: .task(index)) }

    public init(text: String) { place = .text(text) }

    public init(stringLiteral text: String) { place = .text(text) }

    private init(place: Place) { self.place = place }

    public var description: String {
        switch place {
        case .text(let text): text
        case .task(let index): "tasks[\(index)]"
        }
    }

    /// `key` within this path: `tasks[3].key`, or `key` in the document.
    public func field(_ key: String) -> String {
        if case .text(let text) = place, text.isEmpty { return key }
        return "\(self).\(key)"
    }
}
