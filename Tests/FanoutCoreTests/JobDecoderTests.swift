import Testing

@testable import FanoutCore

@Suite("Job validation")
struct JobDecoderTests {
    static let decoder: JobDecoder = {
        var runners = RunnerRegistry()
        runners.register(EchoRunner())
        return JobDecoder(policy: JobPolicy(maxTasks: 5, maxConcurrency: 50, maxTimeoutMilliseconds: 60_000), runners: runners)
    }()

    func decode(_ text: String) throws(JobValidationError) -> Job {
        try Self.decoder.decode(Array(text.utf8))
    }

    func failure(_ text: String) -> JobValidationError? {
        do {
            _ = try decode(text)
            return nil
        } catch {
            return error
        }
    }

    @Test func appliesDefaults() throws {
        let job = try decode(#"{"tasks":[{"kind":"echo"},{"id":"x","kind":"echo","delay_ms":5,"timeout_ms":100}]}"#)
        #expect(job.tasks.map(\.id) == ["0", "x"])
        #expect(job.tasks.map(\.index) == [0, 1])
        #expect(job.tasks[0].timeoutMilliseconds == nil)
        #expect(job.tasks[1].timeoutMilliseconds == 100)
        #expect(job.concurrency == 50)  // the default (1000) is above this policy's cap
        #expect(job.order == .completion)
        #expect(job.failFast == false)
        #expect(job.first == nil)
        #expect(job.heartbeatMilliseconds == 15_000)
    }

    @Test func readsEveryOption() throws {
        let job = try decode(
            #"{"tasks":[{"kind":"echo"},{"kind":"echo"}],"concurrency":2,"timeout_ms":500,"task_timeout_ms":100,"order":"input","fail_fast":true,"first":1,"heartbeat_ms":0}"#
        )
        #expect(job.concurrency == 2)
        #expect(job.timeoutMilliseconds == 500)
        #expect(job.tasks.allSatisfy { $0.timeoutMilliseconds == 100 })
        #expect(job.order == .input)
        #expect(job.failFast)
        #expect(job.first == 1)
        #expect(job.heartbeatMilliseconds == 0)
    }

    @Test(arguments: [
        (#"{"tasks": [1,}"#, nil as String?, JobValidationError.Kind.malformedJSON),
        (#"[]"#, nil, .invalidField),
        (#"{}"#, "tasks", .invalidField),
        (#"{"tasks": {}}"#, "tasks", .invalidField),
        (#"{"tasks": []}"#, "tasks", .invalidField),
        (#"{"tasks": [{"kind":"echo"},{"kind":"echo"},{"kind":"echo"},{"kind":"echo"},{"kind":"echo"},{"kind":"echo"}]}"#, "tasks", .tooManyTasks),
        (#"{"tasks": [3]}"#, "tasks[0]", .invalidField),
        (#"{"tasks": [{"delay_ms": 1}]}"#, "tasks[0].kind", .invalidField),
        (#"{"tasks": [{"kind": "teleport"}]}"#, "tasks[0].kind", .invalidField),
        (#"{"tasks": [{"kind": 7}]}"#, "tasks[0].kind", .invalidField),
        (#"{"tasks": [{"id":"a","kind":"echo"},{"id":"a","kind":"echo"}]}"#, "tasks[1].id", .invalidField),
        (#"{"tasks": [{"id":5,"kind":"echo"}]}"#, "tasks[0].id", .invalidField),
        (#"{"tasks": [{"id":"","kind":"echo"}]}"#, "tasks[0].id", .invalidField),
        (#"{"tasks": [{"kind":"echo","delay_ms":-1}]}"#, "tasks[0].delay_ms", .invalidField),
        (#"{"tasks": [{"kind":"echo","delay_ms":"10"}]}"#, "tasks[0].delay_ms", .invalidField),
        (#"{"tasks": [{"kind":"echo","error":42}]}"#, "tasks[0].error", .invalidField),
        (#"{"tasks": [{"kind":"echo","timeout_ms":0}]}"#, "tasks[0].timeout_ms", .invalidField),
        (#"{"tasks": [{"kind":"echo","colour":"red"}]}"#, "tasks[0].colour", .invalidField),
        (#"{"tasks": [{"kind":"echo"}], "concurrency": 0}"#, "concurrency", .invalidField),
        (#"{"tasks": [{"kind":"echo"}], "concurrency": 51}"#, "concurrency", .invalidField),
        (#"{"tasks": [{"kind":"echo"}], "concurrency": 1.5}"#, "concurrency", .invalidField),
        (#"{"tasks": [{"kind":"echo"}], "timeout_ms": 60001}"#, "timeout_ms", .invalidField),
        (#"{"tasks": [{"kind":"echo"}], "task_timeout_ms": "1s"}"#, "task_timeout_ms", .invalidField),
        (#"{"tasks": [{"kind":"echo"}], "order": "random"}"#, "order", .invalidField),
        (#"{"tasks": [{"kind":"echo"}], "fail_fast": "yes"}"#, "fail_fast", .invalidField),
        (#"{"tasks": [{"kind":"echo"}], "first": 2}"#, "first", .invalidField),
        (#"{"tasks": [{"kind":"echo"}], "first": 0}"#, "first", .invalidField),
        (#"{"tasks": [{"kind":"echo"}], "heartbeat_ms": 5}"#, "heartbeat_ms", .invalidField),
        (#"{"tasks": [{"kind":"echo"}], "timeout": 5}"#, "timeout", .invalidField),
    ])
    func refusesBadJobsNamingTheField(body: String, field: String?, kind: JobValidationError.Kind) {
        let error = failure(body)
        #expect(error != nil, "accepted \(body)")
        #expect(error?.field == field, "\(body): \(String(describing: error))")
        #expect(error?.kind == kind, "\(body): \(String(describing: error))")
        #expect(error?.detail.isEmpty == false)
    }

    @Test func echoKeepsAnyJSONValue() async throws {
        let job = try decode(#"{"tasks":[{"kind":"echo","value":{"deep":[1,{"x":null}]}},{"kind":"echo","delay_ms":1,"value":2}]}"#)
        guard case .immediate(let outcome) = job.tasks[0].work else {
            Issue.record("an echo without delay is known at once")
            return
        }
        #expect(outcome == .ok(.object([("deep", .array([.number(1), .object([("x", .null)])]))])))
        guard case .delayed(let planned, let delay) = job.tasks[1].work else {
            Issue.record("an echo with a delay is a timer")
            return
        }
        #expect(planned == .ok(.number(2)))
        #expect(delay == .milliseconds(1))
    }

    static let ambiguousBodies: [([UInt8], String)] = [
        (Array(#"{"tasks":[{"kind":"echo"}],"tasks":[]}"#.utf8), "duplicate member name \"tasks\""),
        (Array(#"{"tasks":[{"kind":"echo","value":1,"value":2}]}"#.utf8), "duplicate member name \"value\""),
        // A known name spelt with an escape is that name: a repeat all the same.
        (Array(#"{"tasks":[{"kind":"echo","\u006bind":"echo"}]}"#.utf8), "duplicate member name \"kind\""),
        (Array(#"{"tasks":[{"kind":"echo","colour":1,"colour":2}]}"#.utf8), "duplicate member name \"colour\""),
        (Array(#"{"tasks":[{"kind":"echo","value":"\udc00"}]}"#.utf8), "lone surrogate \\udc00"),
        (Array(#"{"tasks":[{"kind":"echo","id":""#.utf8) + [0xFE] + Array(#""}]}"#.utf8), "invalid UTF-8"),
    ]

    /// Duplicate names, lone surrogates and invalid UTF-8 are malformed JSON, named in the detail.
    @Test(arguments: ambiguousBodies)
    func refusesAmbiguousJSON(body: [UInt8], problem: String) {
        do {
            _ = try Self.decoder.decode(body)
            Issue.record("accepted \(String(decoding: body, as: UTF8.self))")
        } catch {
            #expect(error.kind == .malformedJSON)
            #expect(error.field == nil)
            #expect(error.detail.contains(problem), "\(error.detail)")
        }
    }

    /// Subtasks of more, fewer and other members one after another (each parsed over the last's):
    /// nothing of one is seen in the next.
    @Test func eachSubtaskHasOnlyItsOwnMembers() throws {
        let job = try decode(
            #"{"tasks":[{"kind":"echo","value":1,"delay_ms":0},{"kind":"echo"},{"id":"x","kind":"echo","value":[1],"error":"e"},"#
                + #"{"value":"v","kind":"echo"},{"kind":"echo","\u0076alue":3}]}"#
        )
        let outcomes = job.tasks.map { $0.work.immediateOutcome }
        #expect(outcomes == [.ok(.number(1)), .ok(.null), .error(code: "task_error", message: "e"), .ok(.string("v")), .ok(.number(3))])
        #expect(job.tasks.map(\.id) == ["0", "1", "x", "3", "4"])
        // An unknown field after a known one is still refused, as is one of another kind's.
        #expect(failure(#"{"tasks":[{"kind":"echo","value":1},{"kind":"echo","value":1,"colour":2}]}"#)?.field == "tasks[1].colour")
        #expect(failure(#"{"tasks":[{"kind":"echo","order":"input"}]}"#)?.field == "tasks[0].order", "a job's field is no subtask's")
        #expect(failure(#"{"tasks":[{"kind":"echo","\u0063olour":2}]}"#)?.field == "tasks[0].colour")
    }

    @Test func keepsEachTasksFieldsInItsCompactForm() throws {
        let job = try decode(
            #"{"tasks":[{"kind":"echo"},{"id":"x","kind":"echo","timeout_ms":7},{"id":"2","kind":"echo","delay_ms":1.5}],"task_timeout_ms":50}"#
        )
        #expect(job.tasks.count == 3)
        #expect(job.tasks.map(\.id) == ["0", "x", "2"])
        #expect(job.tasks.map(\.index) == [0, 1, 2])
        #expect(job.tasks.map(\.kind) == ["echo", "echo", "echo"])
        #expect(job.tasks.map(\.timeoutMilliseconds) == [50, 7, 50], "the job's task_timeout_ms, which came after the tasks")
        guard case .delayed(_, let delay) = job.tasks[2].work else {
            Issue.record("a delayed echo stays a timer")
            return
        }
        #expect(delay == .microseconds(1_500))
    }

    @Test func estimatesWhatAJobHolds() throws {
        let bare = try decode(#"{"tasks":[{"kind":"echo"}]}"#).estimatedBytes
        let carrying = try decode(#"{"tasks":[{"kind":"echo","value":"\#(String(repeating: "v", count: 10_000))"}]}"#).estimatedBytes
        #expect(bare > 0)
        #expect(carrying - bare >= 10_000, "the value it echoes is counted")
    }

    @Test func stopsKeepingSubtasksPastItsMemoryAllowance() throws {
        let value = String(repeating: "v", count: 1_000)
        let body = Array(#"{"tasks":[{"kind":"echo","value":"\#(value)"},{"kind":"echo","value":"\#(value)"}]}"#.utf8)
        let job = try Self.decoder.decode(body)
        #expect(try Self.decoder.decode(body, maxBytes: job.estimatedBytes).tasks.count == 2)
        do {
            _ = try Self.decoder.decode(body, maxBytes: job.estimatedBytes - 500)
            Issue.record("decoded past its allowance")
        } catch {
            #expect(error.kind == .overMemory)
            #expect(error.detail.contains("\(job.estimatedBytes - 500) bytes"))
        }
        // A bad field is still named first: that answer does not change when memory frees up.
        #expect(throws: JobValidationError(field: "concurrency", detail: "must be between 1 and 50, got 0")) {
            try Self.decoder.decode(Array(#"{"tasks":[{"kind":"echo","value":"\#(value)"}],"concurrency":0}"#.utf8), maxBytes: 10)
        }
    }

    /// The body is decoded in one pass, yet problems are reported as if it had been parsed first:
    /// malformed JSON anywhere, then the job's own fields, then the first bad subtask.
    @Test func reportsProblemsInTheSameOrderAsAWholeDocumentPass() {
        #expect(failure(#"{"tasks":[{"kind":"teleport"}],"x":}"#)?.kind == .malformedJSON)
        #expect(failure(#"{"tasks":[{"kind":"teleport"}],"concurrency":0}"#)?.field == "concurrency")
        #expect(failure(#"{"tasks":[{"kind":"teleport"}],"colour":1}"#)?.field == "colour")
        #expect(failure(#"{"tasks":[{"kind":"echo"},{"kind":"teleport"},{"kind":7}]}"#)?.field == "tasks[1].kind")
        let seven = "{\"tasks\":[" + Array(repeating: #"{"kind":"echo"}"#, count: 7).joined(separator: ",") + "]}"
        #expect(failure(seven)?.detail == "holds 7 tasks; the limit is 5")
        #expect(failure(#"{"tasks":[{"kind":"echo"}],"tasks":[]}"#)?.kind == .malformedJSON)
        #expect(failure(#"{"tasks":[{"kind":"echo"}]} {}"#)?.kind == .malformedJSON)
        #expect(failure(#"  "tasks"  "#)?.detail == "the job must be a JSON object, got a string")
    }

    @Test func defaultIdsCollideWithNamedOnes() {
        #expect(failure(#"{"tasks":[{"kind":"echo"},{"id":"0","kind":"echo"}]}"#)?.field == "tasks[1].id")
        #expect(failure(#"{"tasks":[{"id":"1","kind":"echo"},{"kind":"echo"}]}"#)?.field == "tasks[1].id")
        #expect(failure(#"{"tasks":[{"id":"x","kind":"echo"},{"kind":"echo"},{"id":"y","kind":"echo"}]}"#) == nil)
    }
}

extension SubtaskWork {
    /// The outcome of work known at once, else nil.
    var immediateOutcome: SubtaskOutcome? {
        if case .immediate(let outcome) = self { outcome } else { nil }
    }
}
