// libFuzzer target for the JSON parser and the job decoder, built from the FanoutCore sources
// alone (one module, no package): see scripts/fuzz.sh.
//
// Per input: parse it; a parsed document must survive a write/parse round trip unchanged. Then
// decode it as a job (echo and a stand-in `http` kind): the decoder (which parses in a pass of its
// own) must call it malformed exactly when the parser refused it, and a job whose lines are all
// known at once must produce lines that each parse as JSON; allowed half the memory the job takes,
// decoding must stop with `.overMemory`. A decoder that cuts the tasks array into runs of a few
// bytes (parsed on several threads) must make the same job, or the same refusal, as one pass.
// Any crash, trap or sanitizer report is a finding.

/// Stands in for FanoutUpstream's `http` kind (which needs AsyncHTTPClient): the same fields,
/// a required string `url`, and an outcome known at once.
struct FuzzHTTPRunner: SubtaskRunner {
    let kind = "http"
    let fields: Set<String> = ["method", "url", "headers", "body", "retries", "hedge_after_ms"]

    func decode(_ task: JSONValue, path: FieldPath) throws(JobValidationError) -> String {
        guard let url = try task.string("url", path: path) else {
            throw JobValidationError(field: path.field("url"), detail: "is required")
        }
        return url
    }

    func plannedOutcome(_ payload: String) -> PlannedOutcome? {
        PlannedOutcome(.error(code: "connect", message: "not in the fuzzer: \(payload)"), after: .zero)
    }

    func run(_ payload: String, context: SubtaskContext) async -> SubtaskOutcome {
        .error(code: "connect", message: "not in the fuzzer")
    }
}

func makeFuzzDecoder(threads: Int) -> JobDecoder {
    var runners = RunnerRegistry()
    runners.register(EchoRunner())
    runners.register(FuzzHTTPRunner())
    var decoder = JobDecoder(policy: JobPolicy(maxTasks: 1_000, maxConcurrency: 1_000), runners: runners)
    decoder.parallelism = threads
    decoder.minimumRunBytes = 8
    return decoder
}

let fuzzDecoder = makeFuzzDecoder(threads: 1)
let fuzzRunsDecoder = makeFuzzDecoder(threads: 3)

/// What a decoded job holds, to compare two decodings.
func shape(_ job: Job) -> [String] {
    job.tasks.map { "\($0.index) \($0.id) \($0.kind) \(String(describing: $0.timeoutMilliseconds)) \($0.work)" }
        + ["\(job.concurrency) \(job.timeoutMilliseconds) \(job.order) \(job.failFast) \(String(describing: job.first))"]
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = size > 0 && data != nil ? Array(UnsafeBufferPointer(start: data, count: size)) : []

    let parsed = try? JSONParser.parse(bytes)
    if let value = parsed {
        let text = Array(value.jsonText.utf8)
        guard let again = try? JSONParser.parse(text) else {
            fatalError("the writer's output does not parse: \(value.jsonText)")
        }
        guard again == value else { fatalError("round trip changed the value: \(value.jsonText)") }
    }

    let inRuns = Result { () throws(JobValidationError) in try fuzzRunsDecoder.decode(bytes) }
    do {
        let job = try fuzzDecoder.decode(bytes)
        guard case .success(let same) = inRuns, shape(same) == shape(job) else {
            fatalError("decoded in runs, the job differs: \(inRuns)")
        }
        precondition(!job.tasks.isEmpty && job.tasks.count <= 1_000)
        if let (lines, summary) = Dispatcher.runImmediately(job, id: "fuzz", maxBytes: 1 << 20) {
            for line in lines.split(separator: 10) {
                guard (try? JSONParser.parse(Array(line))) != nil else {
                    fatalError("a line is not JSON: \(String(decoding: line, as: UTF8.self))")
                }
            }
            precondition(summary.done == summary.total, "every subtask has its line")
        }
        precondition(parsed != nil, "a job was decoded from a body that is not JSON")
        // Allowed half of what it takes, the decoder stops and says so (its arrays were never
        // smaller while it decoded than they are now).
        do {
            _ = try fuzzDecoder.decode(bytes, maxBytes: job.estimatedBytes / 2)
            fatalError("decoded within half of its estimate")
        } catch {
            precondition(error.kind == .overMemory, "past its allowance: \(error)")
        }
    } catch {
        precondition(!error.detail.isEmpty, "a refusal names its problem")
        guard case .failure(let same) = inRuns, same == error else { fatalError("decoded in runs: \(inRuns), in one pass: \(error)") }
        // The decoder parses in one pass of its own: it must agree with the parser on what is JSON.
        precondition((error.kind == .malformedJSON) == (parsed == nil), "decoder and parser disagree: \(error)")
    }
    return 0
}
