import Logging
import MicroHTTPServer
import TestSupport
import Testing

@Suite("HTTP server on libmicrohttpd")
struct HTTPServerTests {
    @Test func servesSeveralRequestsOnOneKeptAliveConnection() async throws {
        try await withTestServer { _, port, _ in
            let connection = try await RawConnection.connect(port: port)
            defer { connection.close() }
            for index in 0..<3 {
                try await connection.send(RawRequest.text(method: "GET", path: "/headers", headers: [("X-Probe", "n\(index)")]))
                let head = try await connection.readHead()
                #expect(head.status == 200)
                #expect(head.header("Connection")?.lowercased() != "close")
                #expect(String(decoding: try await connection.readBody(head), as: UTF8.self) == "n\(index)")
            }
        }
    }

    @Test func streamsEachWriteWhenItIsMade() async throws {
        try await withTestServer { _, port, _ in
            let connection = try await RawConnection.connect(port: port)
            defer { connection.close() }
            let start = ContinuousClock.now
            try await connection.send(RawRequest.text(method: "GET", path: "/stream"))
            let head = try await connection.readHead()
            #expect(head.header("Transfer-Encoding") == "chunked")
            #expect(try await connection.readLine(head) == "line1")
            #expect(ContinuousClock.now - start < TestTime.scaled(.milliseconds(400)), "the first line arrives before the second is written")
            #expect(try await connection.readLine(head) == "line2")
            #expect(ContinuousClock.now - start >= TestTime.scaled(.milliseconds(400)))
            #expect(try await connection.readLine(head) == nil)
            // Still usable afterwards.
            try await connection.send(RawRequest.text(method: "GET", path: "/hello"))
            let next = try await connection.readHead()
            #expect(String(decoding: try await connection.readBody(next), as: UTF8.self) == "hello")
        }
    }

    @Test func streamsToHTTP10ClientsUntilClose() async throws {
        try await withTestServer { _, port, _ in
            let exchange = try await HTTPExchange.send(port: port, method: "GET", path: "/stream", version: "HTTP/1.0")
            #expect(exchange.head.status == 200)
            #expect(exchange.head.header("Transfer-Encoding") == nil)
            #expect(exchange.text == "line1\nline2\n")
        }
    }

    /// An HTTP/1.0 body goes through MHD's read block (``RequestFlow/streamReadBlockBytes``), smaller
    /// than each 8 KiB write: every byte still arrives, in order, until the close.
    @Test func streamsWritesLargerThanTheReadBlockToHTTP10Clients() async throws {
        try await withTestServer { _, port, _ in
            let exchange = try await HTTPExchange.send(port: port, method: "GET", path: "/sixteen", version: "HTTP/1.0")
            #expect(exchange.head.status == 200)
            #expect(exchange.head.header("Transfer-Encoding") == nil)
            #expect(exchange.body == (0..<16).flatMap { [UInt8](repeating: UInt8(ascii: "a") + UInt8($0), count: 8192) })
        }
    }

    /// An HTTP/1.1 stream gets a 64-byte read block, which its chunked body never goes through:
    /// 8 KiB writes still arrive whole, in order, in chunks larger than that block.
    @Test func streamsWritesLargerThanTheReadBlockToHTTP11Clients() async throws {
        try await withTestServer { _, port, _ in
            let exchange = try await HTTPExchange.send(port: port, method: "GET", path: "/sixteen", version: "HTTP/1.1")
            #expect(exchange.head.status == 200)
            #expect(exchange.head.header("Transfer-Encoding") == "chunked")
            #expect(exchange.body == (0..<16).flatMap { [UInt8](repeating: UInt8(ascii: "a") + UInt8($0), count: 8192) })
        }
    }

    @Test func answers100ContinueBeforeTheBody() async throws {
        try await withTestServer { _, port, _ in
            let connection = try await RawConnection.connect(port: port)
            defer { connection.close() }
            try await connection.send(
                "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
            )
            let interim = try await connection.readHead()
            #expect(interim.status == 100)
            try await connection.send("12345")
            let head = try await connection.readHead()
            #expect(head.status == 200)
            #expect(String(decoding: try await connection.readBody(head), as: UTF8.self) == "12345")
        }
    }

    @Test func refusesAnAnnouncedOversizedBodyWithoutReadingIt() async throws {
        try await withTestServer(maxBodyBytes: 1024) { _, port, _ in
            let connection = try await RawConnection.connect(port: port)
            defer { connection.close() }
            try await connection.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n")
            let head = try await connection.readHead()
            #expect(head.status == 413, "no 100 Continue: the client never has to send the body")
        }
    }

    @Test func drainsAnOversizedChunkedBodyAndKeepsTheConnection() async throws {
        try await withTestServer(maxBodyBytes: 1024) { _, port, _ in
            let connection = try await RawConnection.connect(port: port)
            defer { connection.close() }
            let chunk = String(repeating: "a", count: 800)
            try await connection.send(
                "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n320\r\n\(chunk)\r\n320\r\n\(chunk)\r\n0\r\n\r\n"
            )
            let head = try await connection.readHead()
            #expect(head.status == 413)
            _ = try await connection.readBody(head)
            try await connection.send(RawRequest.text(method: "GET", path: "/hello"))
            #expect(try await connection.readHead().status == 200)
        }
    }

    @Test func noticesAClientThatLeavesWhileItsStreamIsSuspended() async throws {
        try await withTestServer { server, port, probe in
            let connection = try await RawConnection.connect(port: port)
            try await connection.send(RawRequest.text(method: "GET", path: "/forever"))
            let head = try await connection.readHead()
            #expect(try await connection.readLine(head) == "started")
            #expect(server.openStreams == 1)
            connection.close()
            #expect(await eventually(within: .seconds(2)) { probe.snapshot.cancelled == 1 }, "the producer task is cancelled")
            #expect(await eventually(within: .seconds(1)) { server.openStreams == 0 })
        }
    }

    /// The peer's address is formatted once per connection: each request of a kept-alive
    /// connection has that connection's, another connection its own.
    @Test func eachRequestKnowsItsConnectionsPeer() async throws {
        try await withTestServer { _, port, _ in
            func peers(_ connection: RawConnection, _ count: Int) async throws -> [String] {
                var peers: [String] = []
                for _ in 0..<count {
                    try await connection.send(RawRequest.text(method: "GET", path: "/peer"))
                    let head = try await connection.readHead()
                    peers.append(String(decoding: try await connection.readBody(head), as: UTF8.self))
                }
                return peers
            }
            let first = try await RawConnection.connect(port: port)
            defer { first.close() }
            let second = try await RawConnection.connect(port: port)
            defer { second.close() }
            let one = try await peers(first, 3)
            let two = try await peers(second, 2)
            #expect(one.allSatisfy { $0 == one[0] } && two.allSatisfy { $0 == two[0] })
            #expect(one[0].hasPrefix("127.0.0.1:") && two[0].hasPrefix("127.0.0.1:"))
            #expect(one[0] != two[0], "each connection has its own port")
        }
    }

    /// A `closeObservingStream` runs in the server's task with no supervisor: it learns of the
    /// hang-up from `onClose`, and the stream is gone once it returns.
    @Test func tellsACloseObservingProducerThatItsClientLeft() async throws {
        try await withTestServer { server, port, probe in
            let connection = try await RawConnection.connect(port: port)
            try await connection.send(RawRequest.text(method: "GET", path: "/observed"))
            let head = try await connection.readHead()
            #expect(try await connection.readLine(head) == "started")
            #expect(server.openStreams == 1)
            connection.close()
            #expect(await eventually(within: .seconds(2)) { probe.snapshot.closesObserved == 1 }, "the producer is told")
            #expect(await eventually(within: .seconds(1)) { server.openStreams == 0 })
        }
    }

    /// Its task is the server's: cancelling `run()` reaches it as a close (the server ends every
    /// stream), since a producer that waits to be told does not watch its task's cancellation.
    @Test func tellsACloseObservingProducerWhenTheServersTaskIsCancelled() async throws {
        let probe = StreamProbe()
        let server = HTTPServer(
            configuration: HTTPServerConfiguration(host: "127.0.0.1", port: 0, threads: 2, connectionLimit: 16),
            handler: TestHandler(probe: probe),
            logger: Logger(label: "test")
        )
        try server.start()
        let port = try #require(server.port)
        let serving = Task { await server.run() }
        let connection = try await RawConnection.connect(port: port)
        defer { connection.close() }
        try await connection.send(RawRequest.text(method: "GET", path: "/observed"))
        let head = try await connection.readHead()
        #expect(try await connection.readLine(head) == "started")
        serving.cancel()
        #expect(await eventually(within: .seconds(2)) { probe.snapshot.closesObserved == 1 }, "the producer is told")
        #expect(try await connection.peerClosed(within: .seconds(2)))
        #expect(await eventually(within: .seconds(1)) { server.openStreams == 0 })
        await server.shutdown(gracePeriod: .seconds(1))
        await serving.value
    }

    @Test func stopsCleanlyWithCloseObservingStreamsOpen() async throws {
        let probe = try await withTestServer { server, port, probe in
            let connections = try await openStartedStreams(10, path: "/observed", port: port)
            await server.shutdown(gracePeriod: .milliseconds(100))
            try await expectClosedByServer(connections)
            #expect(server.openStreams == 0)
            return probe
        }
        #expect(probe.snapshot.closesObserved == 10, "every producer was told before the server stopped")
    }

    /// A `drivenStream` has no task: its lines come from a queue, and the body ends when it says.
    @Test func streamsADrivenProducerWithNoTaskOfItsOwn() async throws {
        try await withTestServer { server, port, probe in
            let connection = try await RawConnection.connect(port: port)
            defer { connection.close() }
            try await connection.send(RawRequest.text(method: "GET", path: "/driven"))
            let head = try await connection.readHead()
            #expect(head.status == 200)
            #expect(try await connection.readLine(head) == "started")
            #expect(try await connection.readLine(head) == "later")
            #expect(try await connection.readLine(head) == nil, "the body ends at its ending")
            #expect(probe.snapshot.drivenEnded == 1)
            #expect(await eventually(within: .seconds(1)) { server.openStreams == 0 })
        }
    }

    /// No task of `run()` waits for a driven producer, so shutdown does: it is told of the close
    /// and the server stops only after every one has called its ending.
    @Test func shutdownWaitsForDrivenProducersToEnd() async throws {
        let probe = try await withTestServer { server, port, probe in
            let connections = try await openStartedStreams(5, path: "/driven-held", port: port)
            await server.shutdown(gracePeriod: .milliseconds(100))
            #expect(probe.snapshot.drivenEnded == 5, "shutdown returned only after every ending")
            try await expectClosedByServer(connections)
            return probe
        }
        #expect(probe.snapshot.closesObserved == 5)
    }

    @Test func aSlowReaderHoldsTheWriterBack() async throws {
        try await withTestServer(streamBufferBytes: 16 * 1024) { _, port, probe in
            let connection = try await RawConnection.connect(port: port, receiveBuffer: 4096)
            defer { connection.close() }
            try await connection.send(RawRequest.text(method: "GET", path: "/flood"))
            try await Task.sleep(for: TestTime.scaled(.milliseconds(400)))
            let stalled = probe.snapshot.bytesWritten
            try await Task.sleep(for: TestTime.scaled(.milliseconds(200)))
            #expect(probe.snapshot.bytesWritten == stalled, "the writer waits while the client does not read")
            #expect(stalled < 12 * 1024 * 1024, "only the stream buffer and the socket queues fill, not the 32 MiB body")
            let head = try await connection.readHead()
            let body = try await connection.readBody(head)
            #expect(body.count == floodChunks * 8192, "nothing is dropped")
            #expect(probe.snapshot.writesFailed == 0)
        }
    }

    /// A handler still working when the grace period ends: its client gets the server's 503, the
    /// server stops (`MHD_stop_daemon` would abort the process on the suspended connection), and
    /// the handler's late answer is dropped.
    @Test func aHandlerStillWorkingWhenTheServerStopsGets503() async throws {
        try await withTestServer { server, port, probe in
            let connection = try await RawConnection.connect(port: port)
            defer { connection.close() }
            try await connection.send(RawRequest.text(method: "POST", path: "/gate", body: "waits"))
            #expect(await eventually(within: .seconds(5)) { probe.snapshot.gated == 1 })
            await server.shutdown(gracePeriod: .milliseconds(100))
            let head = try await connection.readHead()
            #expect(head.status == 503)
            #expect(head.header("Retry-After") == "5")
            #expect(String(decoding: try await connection.readBody(head), as: UTF8.self).contains("the server is stopping"))
            #expect(server.port == nil)
        }
    }

    @Test func stopsCleanlyWithSuspendedStreamsOpen() async throws {
        let probe = try await withTestServer { server, port, probe in
            let connections = try await openStartedStreams(20, path: "/forever", port: port)
            #expect(server.openStreams == 20)
            await server.shutdown(gracePeriod: .milliseconds(100))
            try await expectClosedByServer(connections)
            #expect(server.openStreams == 0)
            #expect(server.port == nil)
            return probe
        }
        #expect(await eventually(within: .seconds(2)) { probe.snapshot.cancelled == 20 })
    }
}
