import FanoutCore

/// An `http` subtask's URL, parsed strictly enough that what the egress policy checks is exactly
/// what the request goes to: `http` or `https`, a host that is a DNS name, an IPv4 address in any
/// spelling browsers accept (normalised, see ``URLHostNumber``) or a bracketed IPv6 address, an
/// optional port, and a path and query in RFC 3986 characters. No credentials (`user@host`), no
/// backslashes, no zone ids, no raw spaces or non-ASCII (percent-encode them); the fragment is dropped.
public struct UpstreamURL: Sendable, Equatable, CustomStringConvertible {
    public enum Scheme: String, Sendable {
        case http, https

        public var defaultPort: Int { self == .http ? 80 : 443 }
    }

    public enum Host: Sendable, Equatable {
        /// A DNS name, lower case, without a trailing dot.
        case name(String)
        /// An address literal (IPv4 in any accepted spelling, or IPv6).
        case address(IPAddress)
    }

    /// Why a URL was refused (for the validation error on `tasks[i].url`).
    public struct Invalid: Error, Sendable, Equatable, CustomStringConvertible {
        public var reason: String
        public var description: String { reason }
    }

    public var scheme: Scheme
    public var host: Host
    public var port: Int
    /// Path and query, always starting with `/`.
    public var target: String

    /// Longest URL accepted.
    public static let maxLength = 8192

    /// Parsed on the UTF-8 bytes (the first check makes every byte printable ASCII): a job of many
    /// `http` subtasks parses each URL on the request's way in.
    public init(parsing text: String) throws(Invalid) {
        let bytes = Array(text.utf8)
        guard bytes.count <= Self.maxLength else { throw Invalid(reason: "is longer than \(Self.maxLength) bytes") }
        guard bytes.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw Invalid(reason: "must be ASCII without spaces or control characters (percent-encode them)")
        }
        guard !bytes.contains(UInt8(ascii: "\\")) else { throw Invalid(reason: "must not contain backslashes") }
        guard let separator = Self.firstSchemeSeparator(in: bytes) else {
            throw Invalid(reason: "must be an absolute http:// or https:// URL")
        }
        let schemeText = Self.text(bytes[..<separator])
        guard let scheme = Scheme(rawValue: schemeText.lowercased()) else {
            throw Invalid(reason: "must use http or https, not \"\(schemeText)\"")
        }
        let rest = bytes[(separator + 3)...]
        let end = rest.firstIndex(of: UInt8(ascii: "#")) ?? rest.endIndex
        let authorityEnd = rest[..<end].firstIndex { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "?") } ?? end
        let authority = rest[..<authorityEnd]
        var target = Self.text(rest[authorityEnd..<end])
        if target.isEmpty { target = "/" } else if rest[authorityEnd] == UInt8(ascii: "?") { target = "/" + target }
        guard !authority.contains(UInt8(ascii: "@")) else {
            throw Invalid(reason: "must not carry credentials (user@host); send an authorization header instead")
        }
        guard !authority.isEmpty else { throw Invalid(reason: "has no host") }

        var portBytes: ArraySlice<UInt8>?
        if authority.first == UInt8(ascii: "[") {
            guard let close = authority.firstIndex(of: UInt8(ascii: "]")) else { throw Invalid(reason: "has an unterminated IPv6 address") }
            let hostText = Self.text(authority[(authority.startIndex + 1)..<close])
            let after = authority[(close + 1)...]
            if !after.isEmpty {
                guard after.first == UInt8(ascii: ":") else { throw Invalid(reason: "has text after the IPv6 address") }
                portBytes = after.dropFirst()
            }
            guard !hostText.utf8.contains(UInt8(ascii: "%")) else { throw Invalid(reason: "must not carry an IPv6 zone id") }
            guard let address = IPAddress(hostText), address.isIPv6 else {
                throw Invalid(reason: "has an invalid IPv6 address \"[\(hostText)]\"")
            }
            self.host = .address(address)
        } else {
            var hostBytes = authority
            if let colon = authority.firstIndex(of: UInt8(ascii: ":")) {
                hostBytes = authority[..<colon]
                portBytes = authority[(colon + 1)...]
            }
            guard !hostBytes.isEmpty else { throw Invalid(reason: "has no host") }
            let hostText = Self.text(hostBytes)
            let name = EgressPolicy.normalize(hostText)
            switch URLHostNumber(host: name) {
            case .address(let address):
                self.host = .address(address)
            case .invalid:
                throw Invalid(reason: "has a host \"\(hostText)\" that ends in a number but is no valid IPv4 address")
            case .notANumber:
                guard Self.isValidHostName(name) else {
                    throw Invalid(reason: "has an invalid host \"\(hostText)\" (letters, digits, '-', '_' and dots; non-ASCII names in punycode)")
                }
                self.host = .name(name)
            }
        }

        var port = scheme.defaultPort
        if let portBytes, !portBytes.isEmpty {
            guard portBytes.count <= 5, portBytes.allSatisfy({ ASCII.isDigit($0) }),
                  case let number = portBytes.reduce(0, { $0 * 10 + Int($1 - 0x30) }), (1...65535).contains(number)
            else {
                throw Invalid(reason: "has an invalid port \"\(Self.text(portBytes))\" (1 to 65535)")
            }
            port = number
        }
        guard Self.isValidTarget(target) else {
            throw Invalid(reason: "has characters in its path or query that must be percent-encoded")
        }
        self.scheme = scheme
        self.port = port
        self.target = target
    }

    /// Where the first `://` starts.
    private static func firstSchemeSeparator(in bytes: [UInt8]) -> Int? {
        guard bytes.count >= 3 else { return nil }
        for index in 0...(bytes.count - 3)
        where bytes[index] == UInt8(ascii: ":") && bytes[index + 1] == UInt8(ascii: "/") && bytes[index + 2] == UInt8(ascii: "/") {
            return index
        }
        return nil
    }

    private static func text(_ bytes: ArraySlice<UInt8>) -> String {
        String(decoding: bytes, as: UTF8.self)
    }

    /// The host as written in a URL or `Host` header: the name, or the canonical address (IPv6 in brackets).
    public var hostText: String {
        switch host {
        case .name(let name): name
        case .address(let address): address.urlHost
        }
    }

    /// `host[:port]`, the port only when not the scheme's default: the `Host` header's value.
    public var authority: String {
        port == scheme.defaultPort ? hostText : "\(hostText):\(port)"
    }

    /// The per-host limit's key.
    public var hostAndPort: String { "\(hostText):\(port)" }

    /// The URL in canonical form.
    public var description: String { "\(scheme.rawValue)://\(authority)\(target)" }

    /// The URL with its host replaced by a checked address, for a connection that must go there.
    func replacingHost(with address: IPAddress) -> String {
        let host = address.urlHost
        return port == scheme.defaultPort ? "\(scheme.rawValue)://\(host)\(target)" : "\(scheme.rawValue)://\(host):\(port)\(target)"
    }

    /// A DNS name as this service accepts it: ASCII letters, digits, `-` and `_`, dot-separated
    /// labels of 1 to 63 characters, 253 in all, not starting or ending a label with `-`.
    public static func isValidHostName(_ name: String) -> Bool {
        let bytes = name.utf8
        guard !bytes.isEmpty, bytes.count <= 253 else { return false }
        return bytes.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false).allSatisfy { label in
            !label.isEmpty && label.count <= 63 && label.first != UInt8(ascii: "-") && label.last != UInt8(ascii: "-")
                && label.allSatisfy { hostNameBytes[Int($0)] }
        }
    }

    /// ASCII letters, digits, `-` and `_`, by byte.
    private static let hostNameBytes: [Bool] = (0..<256).map { byte in
        let scalar = Unicode.Scalar(UInt8(byte))
        return byte < 0x80 && (scalar.properties.isAlphabetic || (0x30...0x39).contains(byte) || byte == 0x2D || byte == 0x5F)
    }

    /// RFC 3986 unreserved, sub-delims, `:`, `@`, `/` and `?`, by byte.
    private static let targetBytes: [Bool] = {
        var table = [Bool](repeating: false, count: 256)
        for byte in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@/?".utf8 {
            table[Int(byte)] = true
        }
        return table
    }()

    private static func isHexDigit(_ byte: UInt8) -> Bool { ASCII.hexDigitValue(byte) != nil }

    /// RFC 3986 path and query characters, with `%` only as the start of a `%XX` escape.
    private static func isValidTarget(_ target: String) -> Bool {
        var bytes = target.utf8.makeIterator()
        while let byte = bytes.next() {
            if byte == UInt8(ascii: "%") {
                guard let high = bytes.next(), let low = bytes.next(), isHexDigit(high), isHexDigit(low) else { return false }
            } else if !targetBytes[Int(byte)] {
                return false
            }
        }
        return true
    }
}
