import Testing

@testable import FanoutCore

/// W3C Trace Context parsing: what is continued, and what starts a new trace instead.
@Suite("Trace context")
struct TraceContextTests {
    static let traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
    static let spanID = "00f067aa0ba902b7"
    static let valid = "00-\(traceID)-\(spanID)-01"

    @Test func aValidTraceparentIsReadAndWrittenBack() throws {
        let context = try #require(TraceContext(traceparent: Self.valid, tracestate: "congo=t61rcWkgMzE"))
        #expect(context.traceIDHex == Self.traceID)
        #expect(context.spanIDHex == Self.spanID)
        #expect(context.sampled)
        #expect(context.state == "congo=t61rcWkgMzE")
        #expect(context.traceparent == Self.valid)
        #expect(TraceContext(traceparent: "  \(Self.valid) ", tracestate: nil)?.traceparent == Self.valid)
    }

    @Test func aChildKeepsTheTraceWithANewSpan() throws {
        let context = try #require(TraceContext(traceparent: Self.valid, tracestate: "a=1"))
        let child = context.child()
        #expect(child.traceIDHex == Self.traceID)
        #expect(child.spanID != context.spanID && child.spanID != 0)
        #expect(child.flags == context.flags && child.state == "a=1")
        let root = TraceContext.newTrace(sampled: false)
        #expect(root.traceparent.hasSuffix("-00") && root.traceparent.utf8.count == 55)
        #expect(TraceContext(traceparent: root.traceparent, tracestate: nil) == root)
    }

    @Test(arguments: [
        "",
        "00-\(traceID)-\(spanID)-0",                      // short
        "00-\(traceID)-\(spanID)-01-extra",               // version 00 with more
        "ff-\(traceID)-\(spanID)-01",                     // forbidden version
        "00-\(traceID.uppercased())-\(spanID)-01",         // upper case
        "00-00000000000000000000000000000000-\(spanID)-01", // zero trace ID
        "00-\(traceID)-0000000000000000-01",              // zero parent ID
        "00_\(traceID)-\(spanID)-01",                     // delimiter
        "00-\(traceID)-\(spanID)-0g",                     // non-hex flags
        "0x-\(traceID)-\(spanID)-01",                     // non-hex version
    ])
    func anInvalidTraceparentIsRefused(_ header: String) {
        #expect(TraceContext(traceparent: header, tracestate: "a=b") == nil)
    }

    @Test func aLaterVersionIsReadByItsFirstFields() throws {
        let context = try #require(TraceContext(traceparent: "cc-\(Self.traceID)-\(Self.spanID)-03-whatever", tracestate: nil))
        #expect(context.traceIDHex == Self.traceID)
        // Only the sampled flag is defined; the rest is sent as zero, in version 00.
        #expect(context.traceparent == Self.valid)
        #expect(TraceContext(traceparent: "cc-\(Self.traceID)-\(Self.spanID)-01x", tracestate: nil) == nil)
    }

    @Test func anInvalidTracestateIsDroppedButTheTraceKept() throws {
        let many = (0..<33).map { "k\($0)=v" }.joined(separator: ",")
        for state in ["UPPER=1", "a=1,a=2", "a", "a=b=c", "a=", many, "1a=b"] {
            let context = try #require(TraceContext(traceparent: Self.valid, tracestate: state))
            #expect(context.state.isEmpty, "\(state)")
        }
        for state in ["a=1, b=2", "t@sys=x,a=1", "a=1,,b=2", (0..<32).map { "k\($0)=v" }.joined(separator: ",")] {
            #expect(TraceContext(traceparent: Self.valid, tracestate: state)?.state == state, "\(state)")
        }
    }
}
