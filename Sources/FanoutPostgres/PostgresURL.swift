import PostgresNIO
import NIOSSL

/// `jobs.store` as a PostgreSQL URL: `postgres://user:password@host:port/database?sslmode=…&schema=…`.
///
/// `sslmode` follows libpq: `disable`; `allow`/`prefer` (the default: TLS if the server offers it);
/// `require` (TLS, certificate not verified, as libpq); `verify-ca`/`verify-full` (TLS, verified
/// against the system roots or `sslrootcert=PATH`). `schema` (fanoutd's own parameter, default
/// `public`) names the schema holding the store's tables, so several deployments can share one
/// database.
public struct PostgresURL: Sendable, Equatable {
    public var host: String
    public var port: Int
    public var username: String
    public var password: String?
    public var database: String?
    public var sslMode: String
    public var rootCertificate: String?
    public var schema: String

    public struct Invalid: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    public static func isPostgres(_ text: String) -> Bool {
        text.hasPrefix("postgres://") || text.hasPrefix("postgresql://")
    }

    public init(_ text: String) throws(Invalid) {
        guard let scheme = text.firstRange(of: "://"), Self.isPostgres(text) else {
            throw Invalid(description: "must start with postgres:// or postgresql://")
        }
        var rest = Substring(text[scheme.upperBound...])
        var query: Substring = ""
        if let mark = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: mark)...]
            rest = rest[..<mark]
        }
        var path: Substring = ""
        if let slash = rest.firstIndex(of: "/") {
            path = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
        }
        var user: Substring = "postgres"
        var password: Substring?
        if let at = rest.lastIndex(of: "@") {
            let credentials = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = credentials.firstIndex(of: ":") {
                user = credentials[..<colon]
                password = credentials[credentials.index(after: colon)...]
            } else {
                user = credentials
            }
        }
        var hostPart = rest
        var port = 5432
        if let colon = rest.lastIndex(of: ":"), !rest.hasSuffix("]") {
            hostPart = rest[..<colon]
            guard let number = Int(rest[rest.index(after: colon)...]), (1...65535).contains(number) else {
                throw Invalid(description: "the port must be a number from 1 to 65535")
            }
            port = number
        }
        if hostPart.hasPrefix("["), hostPart.hasSuffix("]") { hostPart = hostPart.dropFirst().dropLast() }
        guard !hostPart.isEmpty else { throw Invalid(description: "the URL names no host") }
        self.host = try Self.decode(hostPart)
        self.port = port
        self.username = try Self.decode(user)
        self.password = try password.map { (text) throws(Invalid) in try Self.decode(text) }
        self.database = path.isEmpty ? nil : try Self.decode(path)
        self.sslMode = "prefer"
        self.schema = "public"
        for pair in query.split(separator: "&") where !pair.isEmpty {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = String(parts[0])
            let value = parts.count > 1 ? try Self.decode(parts[1]) : ""
            switch name {
            case "sslmode":
                guard ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"].contains(value) else {
                    throw Invalid(description: "sslmode must be disable, allow, prefer, require, verify-ca or verify-full, got \"\(value)\"")
                }
                sslMode = value
            case "sslrootcert":
                rootCertificate = value
            case "schema":
                guard Self.isIdentifier(value) else {
                    throw Invalid(description: "schema must be a lower-case SQL identifier (a-z, 0-9, _; at most 40), got \"\(value)\"")
                }
                schema = value
            case "connect_timeout", "application_name":
                continue
            default:
                throw Invalid(description: "unknown parameter \"\(name)\" (known: sslmode, sslrootcert, schema, connect_timeout, application_name)")
            }
        }
    }

    /// The URL with its password replaced by `***`, for logs.
    public static func redacted(_ text: String) -> String {
        guard let scheme = text.firstRange(of: "://") else { return text }
        let rest = text[scheme.upperBound...]
        let authority = rest.prefix { $0 != "/" && $0 != "?" }
        guard let at = authority.lastIndex(of: "@"), let colon = authority[..<at].firstIndex(of: ":") else { return text }
        return String(text[..<authority.startIndex]) + authority[...colon] + "***" + text[at...]
    }

    static func isIdentifier(_ text: String) -> Bool {
        guard let first = text.utf8.first, (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(first) || first == UInt8(ascii: "_") else { return false }
        return text.utf8.count <= 40 && text.utf8.allSatisfy {
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains($0) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || $0 == UInt8(ascii: "_")
        }
    }

    private static func decode(_ text: Substring) throws(Invalid) -> String {
        var bytes: [UInt8] = []
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "%") else { bytes.append(byte); continue }
            guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else {
                throw Invalid(description: "bad percent-encoding in \"\(text)\"")
            }
            bytes.append(high << 4 | low)
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// The client configuration: TLS per `sslmode`, at most `poolSize` connections.
    func clientConfiguration(poolSize: Int) throws -> PostgresClient.Configuration {
        let tls: PostgresClient.Configuration.TLS
        switch sslMode {
        case "disable":
            tls = .disable
        case "require":
            var config = TLSConfiguration.makeClientConfiguration()
            config.certificateVerification = .none
            tls = .require(config)
        case "verify-ca", "verify-full":
            var config = TLSConfiguration.makeClientConfiguration()
            config.certificateVerification = sslMode == "verify-ca" ? .noHostnameVerification : .fullVerification
            if let rootCertificate { config.trustRoots = .file(rootCertificate) }
            tls = .require(config)
        default:
            var config = TLSConfiguration.makeClientConfiguration()
            config.certificateVerification = .none
            tls = .prefer(config)
        }
        var configuration = PostgresClient.Configuration(host: host, port: port, username: username, password: password, database: database, tls: tls)
        configuration.options.maximumConnections = poolSize
        configuration.options.minimumConnections = 0
        configuration.options.connectTimeout = .seconds(5)
        configuration.options.keepAliveBehavior = .init(frequency: .seconds(10))
        return configuration
    }
}
