/// One request header as received, bytes exactly as MHD stored them (name up to the colon, value
/// with leading whitespace skipped), so that a space in the name stays visible. Views into MHD's
/// buffer, valid only during the access-handler call that collected them.
struct RawHeader {
    var name: UnsafeRawBufferPointer
    var value: UnsafeRawBufferPointer
    /// Where the line starts and where the value ends in MHD's read buffer (addresses), for
    /// ``RequestFraming/valueCutByNUL(_:headEnd:)``; 0 when unknown.
    var lineStart: UInt = 0
    var valueEnd: UInt = 0

    /// The name is `lowercase` (a lowercase literal), in any case.
    func named(_ lowercase: StaticString) -> Bool {
        let count = lowercase.utf8CodeUnitCount
        guard name.count == count else { return false }
        let expected = lowercase.utf8Start
        for offset in 0..<count where name[offset] | 0x20 != expected[offset] && name[offset] != expected[offset] {
            return false
        }
        return true
    }
}

/// The request-smuggling checks libmicrohttpd 0.9.75 does not make (RFC 9112 §6.3, §3.2, RFC 9110 §5),
/// run on the head before the handler sees it or any body is read. A pure function of the head.
///
/// What MHD checks itself, before this runs, and answers on its own (text/html, `Connection: close`):
/// a Content-Length that is not all digits (`+5`, `-1`, `0x26`, `5, 5`) or over 2^64-1 gets 400/413,
/// but 0.9.75 sends that head twice (connection.c: `transmit_error_response_len` builds the head, the
/// `HEADERS_RECEIVED` case then overwrites the state and `START_REPLY` builds it again; fixed by the
/// state-machine rewrite in 0.9.76). A header line without a colon gets 400, a request line or header
/// block over the memory pool 414/431, an unknown version 505. None of these can be made
/// problem+json in 0.9.75: the texts are compiled in and no callback runs before they are queued.
///
/// `MHD_OPTION_STRICT_FOR_CLIENT` is not used: at 1 it adds only the missing-Host check (answered by
/// that same double-head path) and a refusal of spaces in the target; the whitespace-before-colon
/// check only runs at -1 (connection.c:3423), which turns the Host check off. Both are done here.
enum RequestFraming {
    /// Why the head must be refused, or nil. `targetHasNUL`: the raw request target held a NUL byte
    /// or a `%00`, which would cut the path MHD hands over.
    /// `headEnd`: the address just past the head in MHD's read buffer, 0 when unknown.
    static func refusal(version: String, headers: [RawHeader], headEnd: UInt, targetHasNUL: Bool) -> ServerProblem? {
        if targetHasNUL { return .badRequest("the request target contains a NUL byte") }
        if valueCutByNUL(headers, headEnd: headEnd) { return .badRequest("a header value contains a NUL byte") }
        var hosts = 0
        // The first of each, and how many (no arrays: this runs for every request).
        var transferEncoding: UnsafeRawBufferPointer?
        var transferEncodings = 0
        var contentLength: UnsafeRawBufferPointer?
        var contentLengthsDiffer = false
        for header in headers {
            guard !header.name.isEmpty, header.name.allSatisfy(isTokenByte) else {
                return .badRequest("a header name contains a character that is not allowed (space, tab or control)")
            }
            if header.value.contains(where: { $0 == 0 || $0 == 13 || $0 == 10 }) {
                return .badRequest("a header value contains a NUL, CR or LF byte")
            }
            if header.named("host") {
                hosts += 1
            } else if header.named("transfer-encoding") {
                transferEncodings += 1
                if transferEncoding == nil { transferEncoding = header.value }
            } else if header.named("content-length") {
                if let first = contentLength {
                    if !trimmed(header.value).elementsEqual(trimmed(first)) { contentLengthsDiffer = true }
                } else {
                    contentLength = header.value
                }
            }
        }
        if version == "HTTP/1.1", hosts != 1 {
            return .badRequest(hosts == 0 ? "an HTTP/1.1 request must have a Host header" : "the request has more than one Host header")
        }
        if hosts > 1 { return .badRequest("the request has more than one Host header") }
        if let transferEncoding {
            if contentLength != nil { return .badRequest("the request has both Content-Length and Transfer-Encoding") }
            if version != "HTTP/1.1" { return .badRequest("Transfer-Encoding is not allowed on \(version)") }
            guard transferEncodings == 1, String(decoding: trimmed(transferEncoding), as: UTF8.self).lowercased() == "chunked" else {
                return ServerProblem(
                    status: 501, title: "Not Implemented",
                    detail: "only Transfer-Encoding: chunked is supported", slug: "unsupported-transfer-encoding"
                )
            }
        }
        if let first = contentLength {
            if contentLengthsDiffer {
                return .badRequest("the request has Content-Length headers with different values")
            }
            // MHD has parsed the first one (all digits, fits in 64 bits); a value past Int.max is
            // MHD_SIZE_UNKNOWN to it, which it would read until the client closes.
            if !fitsInInt(trimmed(first)) {
                return ServerProblem(
                    status: 413, title: "Content Too Large",
                    detail: "the announced Content-Length is larger than any body this server reads", slug: "body-too-large"
                )
            }
        }
        return nil
    }

    /// MHD 0.9.75 stores header values as C strings (lengths by `strlen`), so a NUL cuts a value
    /// silently. In its read buffer each line is followed by its own terminator (CR LF or LF, which MHD
    /// overwrote with zeros) and then the next line, the last one by the empty line: more bytes than
    /// that between a value's end and the next line mean the value went on past a NUL. Headers whose
    /// addresses are not in order (a folded line is moved) are not judged.
    static func valueCutByNUL(_ headers: [RawHeader], headEnd: UInt) -> Bool {
        for (index, header) in headers.enumerated() where header.valueEnd != 0 {
            let isLast = index + 1 == headers.count
            let next = isLast ? headEnd : headers[index + 1].lineStart
            guard next > header.valueEnd, header.lineStart < header.valueEnd else { continue }
            if next - header.valueEnd > (isLast ? 4 : 2) { return true }
        }
        return false
    }

    /// RFC 9110 §5.6.2 `tchar`.
    static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"), UInt8(ascii: "'"),
             UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "^"), UInt8(ascii: "_"),
             UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }

    /// The value without surrounding spaces and tabs.
    private static func trimmed(_ value: UnsafeRawBufferPointer) -> Slice<UnsafeRawBufferPointer> {
        var slice = value[...]
        while let first = slice.first, first == 32 || first == 9 { slice.removeFirst() }
        while let last = slice.last, last == 32 || last == 9 { slice.removeLast() }
        return slice
    }

    /// Whether `digits` (decimal, as MHD has checked) is a number an `Int` holds.
    private static func fitsInInt(_ digits: Slice<UnsafeRawBufferPointer>) -> Bool {
        var value = 0
        for byte in digits {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return false }
            let (times10, overflow) = value.multipliedReportingOverflow(by: 10)
            let (sum, carry) = times10.addingReportingOverflow(Int(byte - UInt8(ascii: "0")))
            if overflow || carry { return false }
            value = sum
        }
        return !digits.isEmpty
    }
}
