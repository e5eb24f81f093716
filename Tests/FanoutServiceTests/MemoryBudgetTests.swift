import FanoutCore
import ServiceTestSupport
import TestSupport
import Testing

@testable import FanoutService

/// Jobs are admitted against `limits.max_job_memory_bytes` by their estimated cost.
@Suite("Memory budget")
struct MemoryBudgetTests {
    static let json = [("Content-Type", "application/json")]
    /// 1,000 subtasks that wait a minute and echo 200 bytes each: ~233 KB of body; its estimate is
    /// ~300 KB (the values, the subtasks), charged with two 64 KiB stream buffers: ~430 KB.
    static let job = "{\"tasks\":[" + Array(
        repeating: #"{"kind":"echo","delay_ms":60000,"value":"\#(String(repeating: "y", count: 200))"}"#, count: 1_000
    ).joined(separator: ",") + "],\"heartbeat_ms\":0}"

    /// 512 KiB: the second job does not even get a grant; 700 KiB: it gets what is left, and its
    /// decoding stops once it needs more.
    @Test(arguments: [512 * 1024, 700 * 1024])
    func aJobThatDoesNotFitWaitsForTheRunningOnes(budget: Int) async throws {
        try await withService({ $0.limits.maxJobMemoryBytes = budget }) { service, port in
            let running = try await RawConnection.connect(port: port)
            try await running.send(RawRequest.job(Self.job))
            #expect(try await running.readHead().status == 200)
            let charged = service.admission.chargedBytes
            #expect(charged >= 1_000 * 200 + 2 * 64 * 1024, "the estimate counts the values and the buffers: \(charged)")
            #expect(charged < 600 * 1024, "the grant gave way to the estimate: \(charged)")

            let refused = try await HTTPExchange.send(port: port, method: "POST", path: "/v1/jobs", headers: Self.json, body: Self.job)
            #expect(refused.head.status == 503)
            #expect(refused.head.header("Retry-After") == "1")
            let document = try problem(refused)
            #expect(document["type"]?.stringValue?.hasSuffix("memory-budget") == true)
            #expect(document["detail"]?.stringValue?.contains("limits.max_job_memory_bytes") == true)
            #expect(service.admission.chargedBytes == charged, "a refusal keeps nothing")
            #expect(try await HTTPExchange.send(port: port, method: "GET", path: "/livez").head.status == 200)

            // Once the running job is gone, its memory is given back and the job fits.
            running.abort()
            #expect(await eventually(within: .seconds(5)) { service.admission.running == 0 })
            #expect(service.admission.chargedBytes == 0)
            let admitted = try await RawConnection.connect(port: port)
            try await admitted.send(RawRequest.job(Self.job))
            #expect(try await admitted.readHead().status == 200)
            admitted.abort()
        }
    }

    /// A job of echo subtasks is charged no more stream buffer than all its lines can take: twenty
    /// one-task streams fit in 1 MiB (at 2 × 64 KiB each, seven would).
    @Test func smallEchoJobsAreChargedTheirLinesNotWholeBuffers() async throws {
        try await withService({ $0.limits.maxJobMemoryBytes = 1024 * 1024 }) { service, port in
            var streams: [RawConnection] = []
            defer { for stream in streams { stream.abort() } }
            for _ in 0..<20 {
                let stream = try await RawConnection.connect(port: port)
                streams.append(stream)
                try await stream.send(RawRequest.job(#"{"tasks":[{"kind":"echo","delay_ms":60000,"value":"x"}]}"#))
                #expect(try await stream.readHead().status == 200)
            }
            #expect(service.admission.running == 20)
            let charged = service.admission.chargedBytes
            #expect(charged < 20 * 16 * 1024, "each one-task job holds a few KiB, not 128: \(charged)")
        }
    }

    @Test func aJobBiggerThanTheWholeBudgetIsRefusedOutright() async throws {
        try await withService({ $0.limits.maxJobMemoryBytes = 256 * 1024 }) { service, port in
            let refused = try await HTTPExchange.send(port: port, method: "POST", path: "/v1/jobs", headers: Self.json, body: Self.job)
            #expect(refused.head.status == 413)
            #expect(refused.head.header("Retry-After") == nil, "waiting would not help")
            let document = try problem(refused)
            #expect(document["type"]?.stringValue?.hasSuffix("job-too-large") == true)
            #expect(document["detail"]?.stringValue?.contains("limits.max_job_memory_bytes is 262144") == true)
            #expect(service.admission.running == 0 && service.admission.chargedBytes == 0)
            let small = try await JobStream.run(#"{"tasks":[{"kind":"echo","value":1}]}"#, port: port)
            #expect(small.head.status == 200)
            small.checkInvariants(total: 1)
        }
    }
}
