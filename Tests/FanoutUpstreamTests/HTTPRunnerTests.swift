import TestSupport
import FanoutCore
import FanoutSync
import FanoutUpstream
import Testing

extension UpstreamEndToEnd {
    /// The `http` kind end to end against a real upstream on 127.0.0.1.
    @Suite("http runner")
    struct HTTPRunnerTests {
        @Test func aJSONAnswerIsParsed() async throws {
            try await withUpstream { upstream in
                try await withRunner { runner in
                    let outcome = try await runner.run(httpTask(upstream.url("/json")))
                    #expect(outcome.status == .ok)
                    let value = try #require(outcome.value)
                    #expect(value["status"] == .number(200))
                    #expect(value["body"] == .object([("hello", .string("world")), ("n", .number(1))]))
                    #expect(value["headers"]?["content-type"] == .string("application/json; charset=utf-8"))
                    #expect(value["attempts"] == .number(1))
                    #expect(value["body_encoding"] == nil)
                }
            }
        }

        @Test func plainTextStaysAString() async throws {
            try await withUpstream { upstream in
                try await withRunner { runner in
                    let outcome = try await runner.run(httpTask(upstream.url("/text")))
                    #expect(outcome.status == .ok)
                    #expect(outcome.value?["body"] == .string("plain text"))
                }
            }
        }

        @Test func bytesThatAreNotUTF8ComeAsBase64() async throws {
            try await withUpstream { upstream in
                try await withRunner { runner in
                    let outcome = try await runner.run(httpTask(upstream.url("/binary")))
                    #expect(outcome.status == .ok)
                    #expect(outcome.value?["body"] == .string("//4AQcM="))
                    #expect(outcome.value?["body_encoding"] == .string("base64"))
                }
            }
        }

        @Test func theRequestCarriesMethodHeadersBodyAndTheOriginalHost() async throws {
            try await withUpstream { upstream in
                try await withRunner { runner in
                    let json = try await runner.run(httpTask(
                        upstream.url("/echo"),
                        ("method", .string("POST")),
                        ("headers", .object([("X-Trace", .string("abc"))])),
                        ("body", .object([("a", .number(1))]))
                    ))
                    let echo = try #require(json.value?["body"])
                    #expect(echo["method"] == .string("POST"))
                    #expect(echo["headers"]?["x-trace"] == .string("abc"))
                    #expect(echo["headers"]?["content-type"] == .string("application/json"))
                    #expect(echo["headers"]?["host"] == .string("127.0.0.1:\(upstream.port)"))
                    #expect(echo["body"] == .string(#"{"a":1}"#))

                    let text = try await runner.run(httpTask(upstream.url("/echo"), ("method", .string("PUT")), ("body", .string("raw text"))))
                    #expect(text.value?["body"]?["method"] == .string("PUT"))
                    #expect(text.value?["body"]?["body"] == .string("raw text"))
                    #expect(text.value?["body"]?["headers"]?["content-type"] == nil)
                }
            }
        }

        @Test func anErrorStatusIsAnHTTPStatusErrorWithTheResponse() async throws {
            try await withUpstream { upstream in
                try await withRunner { runner in
                    for code in [404, 500] {
                        let outcome = try await runner.run(httpTask(upstream.url("/status/\(code)")))
                        #expect(outcome.status == .error)
                        #expect(outcome.errorCode == "http_status")
                        #expect(outcome.errorMessage?.contains("\(code)") == true)
                        #expect(outcome.response?["status"] == .number(Double(code)))
                        #expect(outcome.response?["body"] == .string("status \(code)"))
                        #expect(outcome.response?["attempts"] == .number(1))
                    }
                }
            }
        }

        @Test func aRedirectIsReturnedNotFollowed() async throws {
            try await withUpstream { upstream in
                try await withRunner { runner in
                    let outcome = try await runner.run(httpTask(upstream.url("/redirect")))
                    #expect(outcome.status == .ok)
                    #expect(outcome.value?["status"] == .number(302))
                    #expect(outcome.value?["headers"]?["location"] == .string("/json"))
                    #expect(upstream.probe.hits("/redirect") == 1)
                    #expect(upstream.probe.hits("/json") == 0)
                }
            }
        }

        @Test func aRefusedConnectionIsAConnectError() async throws {
            let port = try closedPort()
            try await withRunner { runner in
                let outcome = try await runner.run(httpTask("http://127.0.0.1:\(port)/"))
                #expect(outcome.status == .error)
                #expect(outcome.errorCode == "connect")
                #expect(outcome.errorMessage?.contains("127.0.0.1:\(port)") == true)
            }
        }

        @Test func aResetConnectionIsAConnectError() async throws {
            let listener = try RawListener(.reset)
            defer { listener.stop() }
            try await withRunner { runner in
                let outcome = try await runner.run(httpTask("http://127.0.0.1:\(listener.port)/reset"))
                #expect(outcome.status == .error)
                #expect(outcome.errorCode == "connect")
                #expect(listener.accepted == 1)
                #expect(listener.firstBytes.first.map { String(decoding: $0, as: UTF8.self).hasPrefix("GET /reset HTTP/1.1") } == true)
            }
        }

        @Test func aNameThatDoesNotResolveIsAConnectError() async throws {
            try await withRunner { runner in
                let outcome = try await runner.run(httpTask("http://nowhere.test/"))
                #expect(outcome.errorCode == "connect")
                #expect(outcome.errorMessage?.contains("nowhere.test") == true)
            }
        }

        @Test func anEndlessBodyIsTooLargeAndItsConnectionIsClosed() async throws {
            try await withUpstream { upstream in
                var configuration = try testConfiguration()
                configuration.maxResponseBytes = 100_000
                try await withRunner(configuration) { runner in
                    let token = Token.next()
                    let start = ContinuousClock.now
                    let outcome = try await runner.run(httpTask(upstream.url("/endless/\(token)")))
                    #expect(outcome.status == .error)
                    #expect(outcome.errorCode == "too_large")
                    #expect(outcome.errorMessage?.contains("100000") == true)
                    #expect(ContinuousClock.now - start < .seconds(2))
                    #expect(await eventually(within: .seconds(2)) { upstream.probe.closed(token) == 1 })

                    let declared = try await runner.run(httpTask(upstream.url("/big")))
                    #expect(declared.errorCode == "too_large")
                    let small = try await runner.run(httpTask(upstream.url("/json")))
                    #expect(small.status == .ok)
                }
            }
        }

        @Test func anUpstreamThatNeverAnswersTimesOutAtTheDeadlineAndIsClosed() async throws {
            let listener = try RawListener(.silent)
            defer { listener.stop() }
            try await withRunner { runner in
                let start = ContinuousClock.now
                let outcome = try await runner.run(httpTask("http://127.0.0.1:\(listener.port)/hang"), timeout: .milliseconds(300))
                let elapsed = ContinuousClock.now - start
                #expect(outcome.status == .timeout)
                #expect(outcome.errorMessage?.hasPrefix("the task's timeout passed while waiting for the response from 127.0.0.1:\(listener.port)") == true, "\(outcome.errorMessage ?? "")")
                #expect(elapsed >= .milliseconds(290) && elapsed < .milliseconds(800), "\(elapsed)")
                #expect(await eventually(within: .seconds(2)) { listener.closedByClient == 1 })

                let job = try await runner.run(httpTask("http://127.0.0.1:\(listener.port)/hang"), timeout: .milliseconds(100), isJobDeadline: true)
                #expect(job.status == .timeout)
                #expect(job.errorMessage?.hasPrefix("the job's deadline passed") == true)
                #expect(await eventually(within: .seconds(2)) { listener.closedByClient == 2 })
            }
        }

        @Test func aBodyThatStallsTimesOutAtTheDeadlineAndIsClosed() async throws {
            try await withUpstream { upstream in
                try await withRunner { runner in
                    let token = Token.next()
                    let start = ContinuousClock.now
                    let outcome = try await runner.run(httpTask(upstream.url("/hang/\(token)")), timeout: .milliseconds(300))
                    let elapsed = ContinuousClock.now - start
                    #expect(outcome.status == .timeout)
                    #expect(outcome.errorMessage?.contains("while reading the response body") == true, "\(outcome.errorMessage ?? "")")
                    #expect(elapsed >= .milliseconds(290) && elapsed < .milliseconds(800), "\(elapsed)")
                    #expect(await eventually(within: .seconds(2)) { upstream.probe.closed(token) == 1 })
                }
            }
        }

        @Test func aSlowAnswerWithinTheDeadlineArrives() async throws {
            try await withUpstream { upstream in
                try await withRunner { runner in
                    let start = ContinuousClock.now
                    let outcome = try await runner.run(httpTask(upstream.url("/slow/200")), timeout: .seconds(2))
                    #expect(outcome.status == .ok)
                    #expect(outcome.value?["body"] == .string("slow"))
                    #expect(ContinuousClock.now - start >= .milliseconds(190))
                }
            }
        }

        @Test func cancellationClosesTheOutboundRequestPromptly() async throws {
            try await withUpstream { upstream in
                try await withRunner { runner in
                    let token = Token.next()
                    let payload = try runner.decode(httpTask(upstream.url("/hang/\(token)")), path: "tasks[0]")
                    let task = Task { await runner.run(payload, context: SubtaskContext(deadline: .now + .seconds(30))) }
                    #expect(await eventually(within: .seconds(2)) { upstream.probe.calls(token) == 1 })
                    let cancelledAt = ContinuousClock.now
                    task.cancel()
                    let outcome = await task.value
                    #expect(outcome.status == .cancelled)
                    #expect(ContinuousClock.now - cancelledAt < .milliseconds(500))
                    #expect(await eventually(within: .seconds(2)) { upstream.probe.closed(token) == 1 }, "the upstream saw its stream closed")
                }
            }
        }

        @Test func cancellationBeforeTheResponseHeadClosesTheConnection() async throws {
            let listener = try RawListener(.silent)
            defer { listener.stop() }
            try await withRunner { runner in
                let payload = try runner.decode(httpTask("http://127.0.0.1:\(listener.port)/hang"), path: "tasks[0]")
                let task = Task { await runner.run(payload, context: SubtaskContext(deadline: .now + .seconds(30))) }
                #expect(await eventually(within: .seconds(2)) { listener.accepted == 1 })
                let cancelledAt = ContinuousClock.now
                task.cancel()
                #expect(await task.value.status == .cancelled)
                #expect(ContinuousClock.now - cancelledAt < .milliseconds(500))
                #expect(await eventually(within: .seconds(2)) { listener.closedByClient == 1 })
            }
        }

        @Test func everyAttemptIsReportedByStatusClass() async throws {
            try await withUpstream { upstream in
                let classes = Locked<[String]>([])
                var configuration = try testConfiguration()
                configuration.onAttempt = { statusClass in classes.withLock { $0.append(statusClass) } }
                let port = try closedPort()
                try await withRunner(configuration) { runner in
                    _ = try await runner.run(httpTask(upstream.url("/json")))
                    _ = try await runner.run(httpTask(upstream.url("/redirect")))
                    _ = try await runner.run(httpTask(upstream.url("/status/404")))
                    _ = try await runner.run(httpTask(upstream.url("/status/503")))
                    _ = try await runner.run(httpTask("http://127.0.0.1:\(port)/"))
                }
                #expect(classes.withLock { $0 } == ["2xx", "3xx", "4xx", "5xx", "error"])
            }
        }

        @Test func afterShutdownSubtasksEndCancelled() async throws {
            try await withUpstream { upstream in
                let runner = HTTPRunner(configuration: try testConfiguration())
                #expect(try await runner.run(httpTask(upstream.url("/json"))).status == .ok)
                try await runner.shutdown()
                try await runner.shutdown()
                let late = try await runner.run(httpTask(upstream.url("/json")))
                #expect(late.status == .cancelled)
            }
        }
    }
}
