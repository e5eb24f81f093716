import Logging
import MicroHTTPServer
import TestSupport
import Testing

@Suite("Head decisions, the body budget and handlers off the server threads")
struct HeadDecisionTests {
    @Test func aRefusalOnTheHeadGetsNo100ContinueAndItsBodyIsNeverRead() async throws {
        try await withTestServer { _, port, probe in
            let connection = try await RawConnection.connect(port: port)
            defer { connection.close() }
            try await connection.send("POST /refuse HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\nExpect: 100-continue\r\n\r\n")
            let head = try await connection.readHead()
            #expect(head.status == 403, "the final answer comes first: no 100 Continue")
            #expect(String(decoding: try await connection.readBody(head), as: UTF8.self) == "refused on the head")
            #expect(head.header("Connection")?.lowercased() == "close", "a body was announced and is not read")
            #expect(probe.snapshot.bodiesRead == 0)
        }
    }

    @Test func aGetAnsweredOnTheHeadKeepsItsConnection() async throws {
        try await withTestServer { _, port, _ in
            let connection = try await RawConnection.connect(port: port)
            defer { connection.close() }
            for _ in 0..<3 {
                try await connection.send(RawRequest.text(method: "GET", path: "/refuse"))
                let head = try await connection.readHead()
                #expect(head.status == 403)
                #expect(head.header("Connection")?.lowercased() != "close")
                _ = try await connection.readBody(head)
            }
        }
    }

    @Test func respondRunsInATaskWhileTheServerThreadsGoOn() async throws {
        try await withTestServer { server, port, probe in
            // More requests waiting in respond(to:) than the server has threads.
            var waiting: [RawConnection] = []
            for index in 0..<6 {
                let connection = try await RawConnection.connect(port: port)
                try await connection.send(RawRequest.text(method: "POST", path: "/gate", body: String(repeating: "g", count: index + 1)))
                waiting.append(connection)
            }
            #expect(await eventually(within: .seconds(5)) { probe.snapshot.gated == 6 })
            let hello = try await HTTPExchange.send(port: port, method: "GET", path: "/hello")
            #expect(hello.text == "hello", "the server threads are free while six handlers wait")
            probe.openGate()
            for (index, connection) in waiting.enumerated() {
                let head = try await connection.readHead()
                #expect(head.status == 200)
                #expect(head.header("Connection")?.lowercased() != "close")
                #expect(String(decoding: try await connection.readBody(head), as: UTF8.self) == "\(index + 1)")
                // The connection goes on after a deferred answer.
                try await connection.send(RawRequest.text(method: "GET", path: "/hello"))
                let next = try await connection.readHead()
                #expect(String(decoding: try await connection.readBody(next), as: UTF8.self) == "hello")
                connection.close()
            }
            #expect(await eventually(within: .seconds(2)) { server.pendingBodyBytes == 0 })
        }
    }

    @Test func bodiesOverTheBudgetGet503AtOnceAndTheBudgetComesBack() async throws {
        let body = 256 * 1024
        try await withTestServer(maxBodyBytes: body, maxPendingBodyBytes: 3 * body) { server, port, probe in
            let head = "POST /gate HTTP/1.1\r\nHost: x\r\nContent-Length: \(body)\r\nExpect: 100-continue\r\n\r\n"
            var admitted: [RawConnection] = []
            var refused = 0
            for _ in 0..<10 {
                let connection = try await RawConnection.connect(port: port)
                try await connection.send(head)
                let answer = try await connection.readHead()
                if answer.status == 100 {
                    admitted.append(connection)
                    continue
                }
                #expect(answer.status == 503)
                #expect(answer.header("Retry-After") == "1")
                #expect(answer.header("Content-Type") == "application/problem+json")
                _ = try await connection.readBody(answer)
                refused += 1
                connection.close()
            }
            #expect(admitted.count == 3, "three bodies fit in the budget")
            #expect(refused == 7, "the others are refused on their head, before any byte of body")
            #expect(server.pendingBodyBytes == 3 * body)
            for connection in admitted { try await connection.send([UInt8](repeating: 0x61, count: body)) }
            #expect(await eventually(within: .seconds(5)) { probe.snapshot.gated == 3 })
            #expect(server.pendingBodyBytes <= 3 * body, "never more than the budget")
            probe.openGate()
            for connection in admitted {
                let answer = try await connection.readHead()
                #expect(answer.status == 200)
                #expect(String(decoding: try await connection.readBody(answer), as: UTF8.self) == "\(body)")
                connection.close()
            }
            #expect(await eventually(within: .seconds(2)) { server.pendingBodyBytes == 0 }, "released once the handler returned")
            let connection = try await RawConnection.connect(port: port)
            defer { connection.close() }
            try await connection.send(head)
            #expect(try await connection.readHead().status == 100, "the budget is free again")
        }
    }

    @Test func aChunkedBodyThatOutgrowsTheBudgetGets503AndKeepsItsConnection() async throws {
        try await withTestServer(maxBodyBytes: 64 * 1024, maxPendingBodyBytes: 1024) { server, port, probe in
            let connection = try await RawConnection.connect(port: port)
            defer { connection.close() }
            let chunk = String(repeating: "c", count: 800)
            try await connection.send(
                "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n320\r\n\(chunk)\r\n320\r\n\(chunk)\r\n0\r\n\r\n"
            )
            let head = try await connection.readHead()
            #expect(head.status == 503)
            #expect(head.header("Retry-After") == "1")
            _ = try await connection.readBody(head)
            #expect(probe.snapshot.bodiesRead == 0)
            #expect(server.pendingBodyBytes == 0)
            try await connection.send(RawRequest.text(method: "GET", path: "/hello"))
            #expect(try await connection.readHead().status == 200)
        }
    }
}

@Suite("Server lifecycle")
struct ServerLifecycleTests {
    @Test func startsOnlyOnce() async throws {
        try await withTestServer { server, port, _ in
            #expect(throws: HTTPServerError.self) { try server.start() }
            #expect(server.port == port, "the first daemon still serves")
            let hello = try await HTTPExchange.send(port: port, method: "GET", path: "/hello")
            #expect(hello.text == "hello")
        }
    }

    @Test func shutdownWithoutRunStillAnswersWhatWaitsAndStops() async throws {
        let server = HTTPServer(
            configuration: HTTPServerConfiguration(host: "127.0.0.1", port: 0, threads: 2),
            handler: TestHandler(probe: StreamProbe()),
            logger: Logger(label: "test")
        )
        try server.start()
        let port = try #require(server.port)
        let connection = try await RawConnection.connect(port: port)
        defer { connection.close() }
        try await connection.send(RawRequest.text(method: "POST", path: "/echo", body: "waiting"))
        // Its connection is suspended, its work queued with nobody to run it: MHD_stop_daemon
        // would abort the process if shutdown did not run it.
        try await Task.sleep(for: .milliseconds(100))
        await server.shutdown(gracePeriod: .seconds(2))
        let head = try await connection.readHead()
        #expect(head.status == 200)
        #expect(String(decoding: try await connection.readBody(head), as: UTF8.self) == "waiting")
    }

    @Test func aStartThatFailsLeavesNothingToCrashOn() async throws {
        try await withTestServer { _, port, _ in
            for host in ["not-an-address", "127.0.0.1"] {
                // An invalid host, then a port in use: both throw, and the server is freed at once.
                let server = HTTPServer(
                    configuration: HTTPServerConfiguration(host: host, port: port),
                    handler: TestHandler(probe: StreamProbe()),
                    logger: Logger(label: "test")
                )
                #expect(throws: HTTPServerError.self) { try server.start() }
                #expect(server.port == nil)
                await server.shutdown()
                await server.run()
            }
        }
    }
}
