import FanoutCore
import NIOCore
import NIOHTTP1

/// Closes an idle pooled HTTP/1.1 connection shortly before the upstream said it would
/// (`Keep-Alive: timeout=N` on its last response), when that is sooner than the pool's own idle
/// timeout. AsyncHTTPClient ignores the header; this handler sits in each connection's pipeline
/// (after the response decoder) through the client's connection initializer.
///
/// It closes at N − 1 s, or at N / 2 below 2 s. The close and a new request are both handled on
/// the connection's event loop: a request written first cancels the close, and one that comes
/// after finds the connection closed before anything was sent, which the runner sends again on
/// a fresh connection.
final class KeepAliveTimeoutHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias InboundOut = HTTPClientResponsePart
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = HTTPClientRequestPart

    private let poolIdleTimeout: TimeAmount
    /// From the response being read.
    private var announced: TimeAmount?
    private var close: Scheduled<Void>?

    init(poolIdleTimeout: TimeAmount) {
        self.poolIdleTimeout = poolIdleTimeout
    }

    /// Adds a handler to a new connection's pipeline (the client's `http1_1ConnectionDebugInitializer`).
    static func install(on channel: any Channel, poolIdleTimeout: TimeAmount) -> EventLoopFuture<Void> {
        channel.eventLoop.submit {
            let pipeline = channel.pipeline.syncOperations
            let decoder = try pipeline.handler(type: ByteToMessageHandler<HTTPResponseDecoder>.self)
            try pipeline.addHandler(KeepAliveTimeoutHandler(poolIdleTimeout: poolIdleTimeout), position: .after(decoder))
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            announced = Self.timeoutSeconds(in: head.headers["keep-alive"]).map { .seconds($0) }
        case .end:
            scheduleClose(context)
        case .body:
            break
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .head = unwrapOutboundIn(data) {
            close?.cancel()
            close = nil
        }
        context.write(data, promise: promise)
    }

    func channelInactive(context: ChannelHandlerContext) {
        close?.cancel()
        close = nil
        context.fireChannelInactive()
    }

    private func scheduleClose(_ context: ChannelHandlerContext) {
        guard let announced else { return }
        let nanoseconds = announced.nanoseconds
        let wait = TimeAmount.nanoseconds(nanoseconds >= 2_000_000_000 ? nanoseconds - 1_000_000_000 : nanoseconds / 2)
        guard wait < poolIdleTimeout else { return }
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        close = context.eventLoop.scheduleTask(in: wait) { bound.value.close(promise: nil) }
    }

    /// `timeout=N` (whole seconds, at least 1) of `Keep-Alive` header values, e.g. `timeout=5, max=1000`.
    static func timeoutSeconds(in values: [String]) -> Int64? {
        for value in values {
            for parameter in value.split(separator: ",") {
                let parts = parameter.split(separator: "=", maxSplits: 1).map { $0.trimmingASCIIWhitespace() }
                guard parts.count == 2, parts[0].lowercased() == "timeout",
                      !parts[1].isEmpty, parts[1].allSatisfy(\.isASCIIDigit), parts[1].count <= 6,
                      let seconds = Int64(parts[1]), seconds >= 1
                else { continue }
                return seconds
            }
        }
        return nil
    }
}
