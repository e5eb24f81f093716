import TestSupport
import FanoutCore
import Testing

@testable import FanoutUpstream

extension UpstreamEndToEnd {
    /// Pooled connections the upstream closed while they were idle (issue 7 item 10).
    @Suite("Stale pooled connections")
    struct StaleConnectionTests {
        @Test func aGetLostOnAReusedConnectionIsSentAgainWithoutSpendingARetry() async throws {
            let listener = try RawListener(.answerOnce)
            defer { listener.stop() }
            try await withRunner { runner in
                for index in 0..<20 {
                    let outcome = try await runner.run(httpTask("http://127.0.0.1:\(listener.port)/n\(index)", ("retries", .number(0))))
                    #expect(outcome.status == .ok, "GET \(index): \(outcome.errorMessage ?? "")")
                    #expect(outcome.attempts == 1)
                    // Lets the connection go back to the pool as idle.
                    try await Task.sleep(for: .milliseconds(50))
                }
            }
            // Most GETs found their pooled connection closed under them and went on a new one.
            #expect(listener.closedOnReuse >= 5)
            // Each connection answers one request, and each GET was answered once.
            #expect(listener.accepted == 20)
        }

        @Test func aPostLostOnAReusedConnectionIsNotSentAgain() async throws {
            let listener = try RawListener(.answerOnce)
            defer { listener.stop() }
            var succeeded = 0
            var failed = 0
            try await withRunner { runner in
                let url = "http://127.0.0.1:\(listener.port)/post"
                for index in 0..<10 {
                    let outcome = try await runner.run(httpTask(url, ("method", .string("POST")), ("body", .string("\(index)")), ("retries", .number(2))))
                    if outcome.status == .ok {
                        succeeded += 1
                    } else {
                        failed += 1
                        #expect(outcome.errorCode == "connect")
                    }
                    try await Task.sleep(for: .milliseconds(50))
                }
            }
            // A POST on a fresh connection is answered; one on a reused connection fails, and
            // sending it again would have made a new connection that answered it.
            #expect(failed >= 1, "no POST went on a reused connection")
            #expect(await eventually(within: .seconds(5)) { listener.closedOnReuse == failed }, "a failed POST was sent again")
            #expect(listener.accepted == succeeded)
        }

        /// 400 GETs in rounds of 40, each round after a pause of 1.3 to 1.5 s, above the upstream's
        /// 1 s keep-alive: the pooled connections were closed by the upstream while idle.
        @Test func fourHundredGetsAcrossKeepAliveExpiriesAllSucceed() async throws {
            try await withUpstream(keepAliveSeconds: 1) { upstream in
                var configuration = try testConfiguration()
                // The pool alone would close them first; this test is about the upstream closing.
                configuration.idleConnectionTimeout = .seconds(60)
                try await withRunner(configuration) { runner in
                    var failures: [String] = []
                    for round in 0..<10 {
                        try await Task.sleep(for: .milliseconds(1_300 + 50 * (round % 5)))
                        let outcomes = try await withThrowingTaskGroup(of: SubtaskOutcome.self) { group in
                            for _ in 0..<40 {
                                group.addTask { try await runner.run(httpTask(upstream.url("/json")), timeout: .seconds(30)) }
                            }
                            return try await group.reduce(into: [SubtaskOutcome]()) { $0.append($1) }
                        }
                        failures += outcomes.filter { $0.status != .ok }.map { "round \(round): \($0.errorMessage ?? "\($0.status)")" }
                    }
                    #expect(failures.isEmpty, "\(failures.count) of 400 failed: \(failures.prefix(5))")
                    #expect(upstream.probe.hits("/json") == 400)
                }
            }
        }

        @Test func thePoolClosesConnectionsIdleForItsTimeout() async throws {
            try await withUpstream { upstream in
                var configuration = try testConfiguration()
                configuration.idleConnectionTimeout = .milliseconds(100)
                try await withRunner(configuration) { runner in
                    let token = Token.next()
                    for _ in 0..<2 {
                        let outcome = try await runner.run(httpTask(upstream.url("/concurrency/\(token)/0")))
                        #expect(outcome.status == .ok)
                        try await Task.sleep(for: .milliseconds(800))
                    }
                    #expect(upstream.probe.peers(token).count == 2, "the idle connection was reused")
                }
                var keeping = try testConfiguration()
                keeping.idleConnectionTimeout = .seconds(20)
                try await withRunner(keeping) { runner in
                    let token = Token.next()
                    for _ in 0..<2 {
                        let outcome = try await runner.run(httpTask(upstream.url("/concurrency/\(token)/0")))
                        #expect(outcome.status == .ok)
                        try await Task.sleep(for: .milliseconds(300))
                    }
                    #expect(upstream.probe.peers(token).count == 1, "the idle connection was not reused")
                }
            }
        }
    }
}

extension UpstreamEndToEnd.StaleConnectionTests {
    /// The upstream keeps idle connections 3 s but announces 1 s: the runner closes its pooled
    /// connection at 0.5 s, though its own idle timeout is a minute.
    @Test func anAnnouncedKeepAliveTimeoutClosesThePooledConnectionEarly() async throws {
        try await withUpstream(keepAliveSeconds: 3) { upstream in
            var configuration = try testConfiguration()
            configuration.idleConnectionTimeout = .seconds(60)
            let announcing = Token.next()
            let silent = Token.next()
            // One runner each: a request on the other path would reuse (and so keep) the connection.
            for path in ["/keep-alive/\(announcing)/1", "/concurrency/\(silent)/0"] {
                try await withRunner(configuration) { runner in
                    for _ in 0..<2 {
                        let outcome = try await runner.run(httpTask(upstream.url(path)))
                        #expect(outcome.status == .ok)
                        try await Task.sleep(for: .milliseconds(1_500))
                    }
                }
            }
            #expect(upstream.probe.peers(announcing).count == 2, "the connection outlived the announced timeout")
            #expect(upstream.probe.peers(silent).count == 1, "a connection without the header was not kept")
        }
    }
}

@Suite("Keep-Alive header")
struct KeepAliveHeaderTests {
    @Test func theTimeoutParameterIsRead() {
        func timeout(_ value: String) -> Int64? { KeepAliveTimeoutHandler.timeoutSeconds(in: [value]) }
        #expect(timeout("timeout=5") == 5)
        #expect(timeout("timeout=5, max=1000") == 5)
        #expect(timeout("max=10,  Timeout = 7 ") == 7)
        #expect(timeout("timeout=0") == nil)
        #expect(timeout("timeout=-1") == nil)
        #expect(timeout("timeout=5s") == nil)
        #expect(timeout("timeout=") == nil)
        #expect(timeout("max=5") == nil)
        #expect(timeout("timeout=99999999999") == nil)
        #expect(KeepAliveTimeoutHandler.timeoutSeconds(in: []) == nil)
        #expect(KeepAliveTimeoutHandler.timeoutSeconds(in: ["max=3", "timeout=4"]) == 4)
    }
}
