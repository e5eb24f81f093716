/// A request as the server read it: the head (in ``HTTPHandler/head(_:)``, where `body` is empty),
/// or the head and the whole body (in ``HTTPHandler/respond(to:)``).
public struct HTTPRequest: Sendable {
    /// The method as sent, e.g. `GET`.
    public var method: String
    /// The path without the query string, e.g. `/v1/jobs`.
    public var path: String
    /// `HTTP/1.1` or `HTTP/1.0`.
    public var version: String
    public var headers: HTTPHeaders
    /// Query arguments (`?after=3&state=running`), percent-decoded; looked up like headers but
    /// names compare ignoring ASCII case.
    public var query: HTTPHeaders
    /// The body, complete unless ``bodyTooLarge`` is set (then it is empty).
    public var body: [UInt8]
    /// The body is over ``HTTPServerConfiguration/maxBodyBytes``: announced so by its
    /// `Content-Length` (seen in ``HTTPHandler/head(_:)``), or found so while reading a chunked
    /// body (seen in ``HTTPHandler/respond(to:)``). It was discarded, not kept.
    public var bodyTooLarge: Bool
    /// The peer's address, e.g. `127.0.0.1:53012`, when known.
    public var peer: String?

    public init(
        method: String,
        path: String,
        version: String = "HTTP/1.1",
        headers: HTTPHeaders = HTTPHeaders(),
        query: HTTPHeaders = HTTPHeaders(),
        body: [UInt8] = [],
        bodyTooLarge: Bool = false,
        peer: String? = nil
    ) {
        self.method = method
        self.path = path
        self.version = version
        self.headers = headers
        self.query = query
        self.body = body
        self.bodyTooLarge = bodyTooLarge
        self.peer = peer
    }
}

/// Header fields in arrival order; lookups ignore case.
public struct HTTPHeaders: Sendable, Sequence {
    private var fields: [(name: String, value: String)] = []

    public init() {}

    public init(_ fields: [(String, String)]) {
        self.fields = fields.map { (name: $0.0, value: $0.1) }
    }

    public mutating func add(name: String, value: String) {
        fields.append((name: name, value: value))
    }

    /// The first value of the field `name`, compared case-insensitively.
    public subscript(_ name: String) -> String? {
        for field in fields where Self.equalIgnoringASCIICase(field.name, name) {
            return field.value
        }
        return nil
    }

    /// Compares without allocating (header names are ASCII); ASCII letters match either case.
    /// Inlinable, so that callers in other modules get it specialized (unspecialized, its iterators
    /// go through witness tables: 11,600 instructions per job10 request).
    @inlinable
    public static func equalIgnoringASCIICase(_ a: some StringProtocol, _ b: some StringProtocol) -> Bool {
        // Most names looked up differ in length from most names present.
        guard a.utf8.count == b.utf8.count else { return false }
        var a = a.utf8.makeIterator()
        var b = b.utf8.makeIterator()
        while true {
            switch (a.next(), b.next()) {
            case (nil, nil): return true
            case (let x?, let y?):
                if x == y { continue }
                if x | 0x20 == y | 0x20, (x | 0x20) >= UInt8(ascii: "a"), (x | 0x20) <= UInt8(ascii: "z") { continue }
                return false
            default: return false
            }
        }
    }

    public func makeIterator() -> IndexingIterator<[(name: String, value: String)]> {
        fields.makeIterator()
    }
}
