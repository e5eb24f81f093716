import TestSupport
import FanoutCore
import FanoutSync
import Testing

@testable import FanoutUpstream

extension UpstreamEndToEnd {
    /// The per-host limit: FIFO queueing, cancellation while queued, and what the upstream sees.
    @Suite("Per-host limit")
    struct HostLimitTests {
        @Test func waitersGetSlotsInArrivalOrder() async throws {
            let limiter = HostLimiter(limit: 2)
            try await limiter.acquire("h:80")
            try await limiter.acquire("h:80")
            #expect(limiter.load("h:80") == (inUse: 2, waiting: 0))
            let order = Locked<[Int]>([])
            var waiters: [Task<Void, any Error>] = []
            for index in 0..<5 {
                waiters.append(Task {
                    try await limiter.acquire("h:80")
                    order.withLock { $0.append(index) }
                })
                // Queue them one at a time, so arrival order is known.
                #expect(await eventually(within: .seconds(1)) { limiter.load("h:80").waiting == index + 1 })
            }
            #expect(limiter.load("other:80") == (inUse: 0, waiting: 0), "hosts are limited separately")
            for released in 1...5 {
                limiter.release("h:80")
                #expect(await eventually(within: .seconds(1)) { order.withLock { $0.count } == released })
            }
            for waiter in waiters { try await waiter.value }
            #expect(order.withLock { $0 } == [0, 1, 2, 3, 4])
            #expect(limiter.load("h:80") == (inUse: 2, waiting: 0))
            limiter.release("h:80")
            limiter.release("h:80")
            #expect(limiter.load("h:80") == (inUse: 0, waiting: 0))
        }

        @Test func aCancelledWaiterLeavesTheQueue() async throws {
            let limiter = HostLimiter(limit: 1)
            try await limiter.acquire("h:80")
            let first = Task { try await limiter.acquire("h:80") }
            #expect(await eventually(within: .seconds(1)) { limiter.load("h:80").waiting == 1 })
            let second = Task { try await limiter.acquire("h:80") }
            #expect(await eventually(within: .seconds(1)) { limiter.load("h:80").waiting == 2 })
            first.cancel()
            await #expect(throws: CancellationError.self) { try await first.value }
            #expect(limiter.load("h:80").waiting == 1)
            limiter.release("h:80")
            try await second.value
            #expect(limiter.load("h:80") == (inUse: 1, waiting: 0))
            limiter.release("h:80")

            let early = Task {
                withUnsafeCurrentTask { $0?.cancel() }
                try await limiter.acquire("h:80")
            }
            await #expect(throws: CancellationError.self) { try await early.value }
            #expect(limiter.load("h:80") == (inUse: 0, waiting: 0))
        }

        @Test func concurrentSubtasksToOneHostShareItsSlotsAndConnections() async throws {
            try await withUpstream { upstream in
                var configuration = try testConfiguration()
                configuration.maxConnectionsPerHost = 2
                try await withRunner(configuration) { runner in
                    let token = Token.next()
                    let start = ContinuousClock.now
                    let outcomes = await withTaskGroup(of: SubtaskOutcome?.self) { group in
                        for _ in 0..<8 {
                            group.addTask { try? await runner.run(httpTask(upstream.url("/concurrency/\(token)/100"))) }
                        }
                        var outcomes: [SubtaskOutcome?] = []
                        for await outcome in group { outcomes.append(outcome) }
                        return outcomes
                    }
                    #expect(outcomes.allSatisfy { $0?.status == .ok })
                    #expect(upstream.probe.calls(token) == 8)
                    #expect(upstream.probe.maxInFlight(token) <= 2)
                    #expect(upstream.probe.peers(token).count <= 2, "connections are pooled: \(upstream.probe.peers(token))")
                    #expect(ContinuousClock.now - start >= .milliseconds(390), "8 requests of 100 ms through 2 slots")
                }
            }
        }

        @Test func timeQueuedForAHostCountsAgainstTheDeadline() async throws {
            try await withUpstream { upstream in
                var configuration = try testConfiguration()
                configuration.maxConnectionsPerHost = 1
                try await withRunner(configuration) { runner in
                    let token = Token.next()
                    let payload = try runner.decode(httpTask(upstream.url("/hang/\(token)")), path: "tasks[0]")
                    let holder = Task { await runner.run(payload, context: SubtaskContext(deadline: .now + .seconds(30))) }
                    #expect(await eventually(within: .seconds(2)) { upstream.probe.calls(token) == 1 })

                    let start = ContinuousClock.now
                    let queued = try await runner.run(httpTask(upstream.url("/json")), timeout: .milliseconds(200))
                    #expect(queued.status == .timeout)
                    #expect(queued.errorMessage?.contains("waiting for a connection slot to 127.0.0.1:\(upstream.port)") == true, "\(queued.errorMessage ?? "")")
                    #expect(ContinuousClock.now - start < .milliseconds(600))
                    #expect(upstream.probe.hits("/json") == 0)

                    holder.cancel()
                    #expect(await holder.value.status == .cancelled)
                    #expect(try await runner.run(httpTask(upstream.url("/json"))).status == .ok, "the slot was given back")
                }
            }
        }
    }
}
