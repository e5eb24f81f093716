import TestSupport
import FanoutCore
import FanoutUpstream
import Testing

extension UpstreamEndToEnd {
    /// Retries (backoff, Retry-After, idempotency, deadline) and hedging against the real upstream.
    @Suite("Retries and hedging")
    struct RetryAndHedgeTests {
        @Test func a503ThenA200IsRetried() async throws {
            try await withUpstream { upstream in
                try await withRunner { runner in
                    let token = Token.next()
                    let outcome = try await runner.run(httpTask(upstream.url("/flaky/\(token)/1/503"), ("retries", .number(2))))
                    #expect(outcome.status == .ok)
                    #expect(outcome.value?["status"] == .number(200))
                    #expect(outcome.attempts == 2)
                    #expect(upstream.probe.calls(token) == 2)
                }
            }
        }

        @Test func withoutRetriesTheFirstFailureIsTheResult() async throws {
            try await withUpstream { upstream in
                try await withRunner { runner in
                    let token = Token.next()
                    let outcome = try await runner.run(httpTask(upstream.url("/flaky/\(token)/1/503")))
                    #expect(outcome.errorCode == "http_status")
                    #expect(outcome.upstreamStatus == 503)
                    #expect(outcome.attempts == 1)
                    #expect(upstream.probe.calls(token) == 1)
                }
            }
        }

        @Test func retriesStopWhenSpentAndSayHowManyWereMade() async throws {
            try await withUpstream { upstream in
                try await withRunner { runner in
                    let token = Token.next()
                    let outcome = try await runner.run(httpTask(upstream.url("/flaky/\(token)/9/502"), ("retries", .number(2))))
                    #expect(outcome.errorCode == "http_status")
                    #expect(outcome.upstreamStatus == 502)
                    #expect(outcome.attempts == 3)
                    #expect(outcome.errorMessage?.contains("after 3 attempts") == true)
                    #expect(upstream.probe.calls(token) == 3)
                }
            }
        }

        @Test(arguments: [500, 501, 404, 409])
        func otherStatusesAreNotRetried(code: Int) async throws {
            try await withUpstream { upstream in
                try await withRunner { runner in
                    let token = Token.next()
                    let outcome = try await runner.run(httpTask(upstream.url("/flaky/\(token)/1/\(code)"), ("retries", .number(3))))
                    #expect(outcome.upstreamStatus == code)
                    #expect(outcome.attempts == 1)
                    #expect(upstream.probe.calls(token) == 1)
                }
            }
        }

        @Test func nonIdempotentMethodsAreNotRetried() async throws {
            try await withUpstream { upstream in
                try await withRunner { runner in
                    for method in ["POST", "PATCH"] {
                        let token = Token.next()
                        let outcome = try await runner.run(httpTask(upstream.url("/flaky/\(token)/1/503"), ("method", .string(method)), ("retries", .number(3))))
                        #expect(outcome.upstreamStatus == 503, "\(method)")
                        #expect(outcome.attempts == 1)
                        #expect(upstream.probe.calls(token) == 1)
                    }
                    let token = Token.next()
                    let put = try await runner.run(httpTask(upstream.url("/flaky/\(token)/1/503"), ("method", .string("PUT")), ("retries", .number(1))))
                    #expect(put.status == .ok)
                    #expect(put.attempts == 2)
                }
            }
        }

        @Test func retryAfterIsHonoured() async throws {
            try await withUpstream { upstream in
                try await withRunner { runner in
                    let token = Token.next()
                    let start = ContinuousClock.now
                    let outcome = try await runner.run(httpTask(upstream.url("/retry-after/\(token)/1"), ("retries", .number(1))))
                    #expect(outcome.status == .ok)
                    #expect(outcome.attempts == 2)
                    #expect(ContinuousClock.now - start >= .milliseconds(950), "waited Retry-After: 1, not the 10 ms backoff")
                }
            }
        }

        @Test func aRetryThatWouldPassTheDeadlineIsNotMade() async throws {
            try await withUpstream { upstream in
                try await withRunner { runner in
                    let token = Token.next()
                    let start = ContinuousClock.now
                    let outcome = try await runner.run(httpTask(upstream.url("/retry-after/\(token)/5"), ("retries", .number(3))), timeout: .seconds(1))
                    #expect(outcome.errorCode == "http_status")
                    #expect(outcome.upstreamStatus == 429)
                    #expect(outcome.answer?["headers"]?["retry-after"] == .string("5"))
                    #expect(outcome.attempts == 1)
                    #expect(ContinuousClock.now - start < .milliseconds(500), "gave up at once instead of sleeping into the deadline")
                    #expect(upstream.probe.calls(token) == 1)
                }
            }
        }

        @Test func connectFailuresAreRetriedAndCounted() async throws {
            let listener = try RawListener(.reset)
            defer { listener.stop() }
            let refused = try closedPort()
            try await withRunner { runner in
                let reset = try await runner.run(httpTask("http://127.0.0.1:\(listener.port)/", ("retries", .number(2))))
                #expect(reset.errorCode == "connect")
                #expect(reset.errorMessage?.contains("after 3 attempts") == true)
                #expect(listener.accepted == 3)

                let closed = try await runner.run(httpTask("http://127.0.0.1:\(refused)/", ("retries", .number(1))))
                #expect(closed.errorCode == "connect")
                #expect(closed.errorMessage?.contains("after 2 attempts") == true)
            }
        }

        @Test func theHostIsResolvedOnceAndRetriesGoToTheCheckedAddress() async throws {
            try await withUpstream { upstream in
                let resolver = StubResolver(["localhost": ["127.0.0.1"]])
                try await withRunner(try testConfiguration(resolver: resolver)) { runner in
                    let token = Token.next()
                    let outcome = try await runner.run(httpTask("http://localhost:\(upstream.port)/flaky/\(token)/2/503", ("retries", .number(2))))
                    #expect(outcome.status == .ok)
                    #expect(outcome.attempts == 3)
                    #expect(resolver.calls == ["localhost"])
                }
            }
        }

        @Test func aHedgeAnswersWhenTheFirstAttemptIsSlowAndTheLoserIsCancelled() async throws {
            try await withUpstream { upstream in
                try await withRunner { runner in
                    let token = Token.next()
                    let start = ContinuousClock.now
                    let outcome = try await runner.run(httpTask(upstream.url("/tail/\(token)/3000"), ("hedge_after_ms", .number(100))))
                    let elapsed = ContinuousClock.now - start
                    #expect(outcome.status == .ok)
                    #expect(outcome.value?["body"] == .object([("ok", .bool(true))]), "the hedge's answer, not the slow one")
                    #expect(outcome.attempts == 2)
                    #expect(elapsed >= .milliseconds(95) && elapsed < .seconds(1), "\(elapsed)")
                    #expect(upstream.probe.calls(token) == 2)
                    #expect(await eventually(within: .seconds(2)) { upstream.probe.closed(token) == 1 }, "the slow first request was cancelled")
                }
            }
        }

        @Test func noHedgeIsSentWhenTheFirstAttemptAnswersInTime() async throws {
            try await withUpstream { upstream in
                try await withRunner { runner in
                    let token = Token.next()
                    let outcome = try await runner.run(httpTask(upstream.url("/tail/\(token)/50"), ("hedge_after_ms", .number(1000))))
                    #expect(outcome.status == .ok)
                    #expect(outcome.value?["body"] == .object([("ok", .string("late"))]))
                    #expect(outcome.attempts == 1)
                    #expect(upstream.probe.calls(token) == 1)
                }
            }
        }

        @Test func nonIdempotentMethodsAreNotHedged() async throws {
            try await withUpstream { upstream in
                try await withRunner { runner in
                    let token = Token.next()
                    let outcome = try await runner.run(httpTask(upstream.url("/tail/\(token)/300"), ("method", .string("POST")), ("hedge_after_ms", .number(50))))
                    #expect(outcome.status == .ok)
                    #expect(outcome.attempts == 1)
                    #expect(upstream.probe.calls(token) == 1)
                }
            }
        }

        @Test func aHedgedRoundStillEndsAtTheDeadline() async throws {
            try await withUpstream { upstream in
                try await withRunner { runner in
                    let token = Token.next()
                    let start = ContinuousClock.now
                    let outcome = try await runner.run(httpTask(upstream.url("/hang/\(token)"), ("hedge_after_ms", .number(50))), timeout: .milliseconds(300))
                    #expect(outcome.status == .timeout)
                    #expect(ContinuousClock.now - start < .milliseconds(800))
                    #expect(upstream.probe.calls(token) == 2)
                    #expect(await eventually(within: .seconds(2)) { upstream.probe.closed(token) == 2 }, "both requests were closed")
                }
            }
        }
    }
}

@Suite("Retry timing rules")
struct RetryRuleTests {
    @Test func backoffIsFullJitterUnderTheCappedExponential() {
        let policy = RetryPolicy(baseDelay: .milliseconds(100), maxDelay: .seconds(1))
        for _ in 0..<200 {
            #expect(policy.backoff(beforeRetry: 1) < .milliseconds(100))
            #expect(policy.backoff(beforeRetry: 3) < .milliseconds(400))
            #expect(policy.backoff(beforeRetry: 10) < .seconds(1))
            #expect(policy.backoff(beforeRetry: 1) >= .zero)
        }
        let samples = (0..<200).map { _ in policy.backoff(beforeRetry: 4) }
        #expect(Set(samples).count > 100, "jittered, not fixed")
        #expect(samples.contains { $0 < .milliseconds(400) } && samples.contains { $0 > .milliseconds(400) })
    }

    @Test func retryAfterReadsSecondsAndDates() {
        #expect(RetryAfter.delay("3") == .seconds(3))
        #expect(RetryAfter.delay(" 0 ") == .zero)
        // 2015-10-21 07:28:00 UTC is 1445412480.
        #expect(RetryAfter.delay("Wed, 21 Oct 2015 07:28:00 GMT", now: 1_445_412_470) == .seconds(10))
        #expect(RetryAfter.delay("Wed, 21 Oct 2015 07:28:00 GMT", now: 1_445_412_490) == .zero)
        #expect(RetryAfter.delay("Sun, 06 Nov 1994 08:49:37 GMT", now: 784_111_777 - 2) == .seconds(2))
        #expect(RetryAfter.delay("soon") == nil)
        #expect(RetryAfter.delay("-1") == nil)
        #expect(RetryAfter.delay("1.5") == nil)
        #expect(RetryAfter.delay("Wed, 32 Oct 2015 07:28:00 GMT") == nil)
    }
}
