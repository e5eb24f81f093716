import Testing

@testable import FanoutCore

/// A large `tasks` array is parsed in runs on several threads (``JobDecoder/parallelism``): the
/// job, and every refusal, must be what one pass over the body makes.
@Suite("Decoding in runs")
struct ParallelDecodeTests {
    /// A second kind, so kind tables are joined across runs.
    struct MarkRunner: SubtaskRunner {
        let kind = "mark"
        let fields: Set<String> = ["label"]
        func decode(_ task: JSONValue, path: FieldPath) throws(JobValidationError) -> String {
            try task.string("label", path: path) ?? ""
        }
        func plannedOutcome(_ label: String) -> PlannedOutcome? { PlannedOutcome(.ok(.string(label)), after: .zero) }
        func run(_ label: String, context: SubtaskContext) async -> SubtaskOutcome { .ok(.string(label)) }
    }

    /// Subtasks in the bodies decoded: about 11 KB, runs of a few KB (enough to cut into four runs
    /// of `minimumRunBytes`, few enough not to load the cores the timing tests beside it need).
    static let tasks = 210

    static func decoder(threads: Int, maxTasks: Int = 10_000) -> JobDecoder {
        var runners = RunnerRegistry()
        runners.register(EchoRunner())
        runners.register(MarkRunner())
        var decoder = JobDecoder(policy: JobPolicy(maxTasks: maxTasks), runners: runners)
        decoder.parallelism = threads
        decoder.minimumRunBytes = 256
        return decoder
    }

    /// Subtasks of every shape the list stores apart: default and own ids, own timeouts, two
    /// kinds, delays and immediate outcomes, strings with the bytes a cut must not fall among.
    static func task(_ index: Int) -> String {
        switch index % 7 {
        case 0: #"{"kind":"echo","delay_ms":\#(index % 50),"value":\#(index)}"#
        case 1: #"{"kind":"mark","label":"a, [b] {c} \"d\" \\"}"#
        case 2: #"{"id":"own-\#(index)","kind":"echo","value":{"list":[1,2,{"x":"]"}]}}"#
        case 3: #"{"kind":"echo","timeout_ms":\#(index + 1),"error":"boom, \u00e9"}"#
        case 4: #"{"kind":"echo","value":"\#(String(repeating: ",", count: index % 13))"}"#
        default: #"{"kind":"echo","delay_ms":1}"#
        }
    }

    static func body(_ tasks: [String], extra: String = #","concurrency":7"#) -> [UInt8] {
        Array(#"{"tasks":[\#(tasks.joined(separator: " ,\n"))]\#(extra)}"#.utf8)
    }

    struct Seen: Equatable {
        var id: String, index: Int, kind: String, timeout: Int?, work: String
    }

    static func seen(_ job: Job) -> [Seen] {
        job.tasks.map { task in
            let work = switch task.work {
            case .run: "run"
            case .immediate(let outcome): "now \(outcome)"
            case .delayed(let outcome, let delay): "after \(delay) \(outcome)"
            }
            return Seen(id: task.id, index: task.index, kind: task.kind, timeout: task.timeoutMilliseconds, work: work)
        }
    }

    /// The job's subtasks or the refusal; `runs`, if given, is how many runs the subtasks must
    /// have been bound in.
    func outcome(_ decoder: JobDecoder, _ body: [UInt8], maxBytes: Int = .max, runs: Int? = nil) -> Result<[Seen], JobValidationError> {
        do throws(JobValidationError) {
            let (job, bound) = try decoder.decodeCountingRuns(body, maxBytes: maxBytes)
            #expect(job.concurrency == 7)
            if let runs { #expect(bound == runs) }
            return .success(Self.seen(job))
        } catch {
            return .failure(error)
        }
    }

    @Test func cutsFallOnTheArraysOwnCommas() throws {
        let array = Array("  [\((0..<200).map(Self.task).joined(separator: " ,\n"))]".utf8)
        var parser = JSONParser(bytes: array)
        #expect(parser.peek() == UInt8(ascii: "["))
        let cuts = try #require(parser.cuts(parts: 4))
        #expect(cuts.count == 3)
        #expect(cuts.map(\.comma) == cuts.map(\.comma).sorted())
        // Each cut is the comma after element `elementsBefore - 1`, as a full parse finds it.
        var element = 0
        var commas: [Int: Int] = [:]
        try parser.forEachElement { (parser) throws(JSONParser.Error) in
            _ = try parser.parseValue()
            element += 1
            if parser.peek() == UInt8(ascii: ",") { commas[parser.index] = element }
        }
        #expect(element == 200)
        for cut in cuts { #expect(commas[cut.comma] == cut.elementsBefore, "cut at \(cut.comma)") }
    }

    @Test func aShortArrayIsNotCut() throws {
        // Shorter than two runs of `minimumRunBytes` (256 here): one piece, though runs are allowed.
        let short = Self.body((0..<5).map(Self.task))
        #expect(short.count < 512)
        #expect(try outcome(Self.decoder(threads: 4), short, runs: 1).get().count == 5)
        var parser = JSONParser(bytes: Array(#"[1,2,3]"#.utf8))
        #expect(parser.peek() == UInt8(ascii: "["))
        #expect(parser.cuts(parts: 1) == nil)
        // An array that ends before the place of its cut (the rest of the document is not its).
        var padded = JSONParser(bytes: Array(("[1,2]" + String(repeating: " ", count: 100)).utf8))
        #expect(padded.peek() == UInt8(ascii: "["))
        #expect(padded.cuts(parts: 2) == nil)
    }

    @Test(arguments: [2, 3, 4])
    func runsMakeTheJobOnePassMakes(threads: Int) throws {
        let body = Self.body((0..<Self.tasks).map(Self.task))
        let once = try outcome(Self.decoder(threads: 1), body, runs: 1).get()
        #expect(once.count == Self.tasks)
        #expect(once[2].id == "own-2" && once[3].timeout == 4 && once[1].kind == "mark")
        let inRuns = try outcome(Self.decoder(threads: threads), body, runs: threads).get()
        #expect(inRuns == once)
    }

    /// Whatever goes wrong in a run, the refusal is the one-pass refusal (the body is decoded
    /// again in one piece).
    @Test(arguments: [
        ("malformed in a late run", 195, #"{"kind":"echo",}"#),
        ("a bad field in a late run", 180, #"{"kind":"echo","delay_ms":-1}"#),
        ("an unknown kind in the second run", 120, #"{"kind":"nope"}"#),
        ("an own id equal to an earlier run's default id", 195, #"{"id":"5","kind":"echo"}"#),
        ("an own id equal to an earlier run's own id", 198, #"{"id":"own-2","kind":"echo"}"#),
        ("a string run on by an escaped quote", 105, #"{"kind":"echo","value":"\"#),
    ])
    func aFailedRunIsRefusedAsOnePassRefusesIt(_ what: String, at index: Int, task: String) {
        var tasks = (0..<Self.tasks).map(Self.task)
        tasks[index] = task
        let body = Self.body(tasks)
        guard case .failure(let once) = outcome(Self.decoder(threads: 1), body) else {
            Issue.record("\(what): one pass accepted it")
            return
        }
        for threads in [2, 4] {
            guard case .failure(let inRuns) = outcome(Self.decoder(threads: threads), body) else {
                Issue.record("\(what): \(threads) runs accepted it")
                continue
            }
            #expect(inRuns == once, "\(what)")
        }
    }

    @Test func tooManyTasksAndTooMuchMemoryAreRefusedAsOnePassRefusesThem() {
        let body = Self.body((0..<Self.tasks).map(Self.task))
        let limited = (Self.decoder(threads: 1, maxTasks: 150), Self.decoder(threads: 3, maxTasks: 150))
        guard case .failure(let once) = outcome(limited.0, body), case .failure(let inRuns) = outcome(limited.1, body) else {
            Issue.record("\(Self.tasks) tasks over a limit of 150 were accepted")
            return
        }
        #expect(once.kind == .tooManyTasks && inRuns == once)
        let whole = (try? Self.decoder(threads: 1).decode(body).estimatedBytes) ?? 0
        for maxBytes in [whole / 2, whole - 1] {
            guard case .failure(let once) = outcome(Self.decoder(threads: 1), body, maxBytes: maxBytes),
                  case .failure(let inRuns) = outcome(Self.decoder(threads: 3), body, maxBytes: maxBytes) else {
                Issue.record("a job over \(maxBytes) bytes was accepted")
                continue
            }
            #expect(once.kind == .overMemory && inRuns == once)
        }
        // What one pass accepts (its arrays grow to twice the job at most), runs accept too.
        let accepted = try? outcome(Self.decoder(threads: 1), body, maxBytes: 2 * whole).get()
        #expect(accepted?.count == Self.tasks)
        #expect(accepted == (try? outcome(Self.decoder(threads: 3), body, maxBytes: 2 * whole, runs: 3).get()))
    }

    @Test func joinedListsKeepEachSubtasksKindIdAndTimeout() {
        func list(from first: Int, _ specs: [(String?, String, Int?)]) -> SubtaskList {
            var list = SubtaskList(from: first)
            for (id, kind, timeout) in specs { list.append(id: id, kind: kind, timeoutMilliseconds: timeout, work: .immediate(.ok(.null))) }
            return list
        }
        var joined = list(from: 0, [(nil, "echo", nil), (nil, "http", 5)])
        joined.append(contentsOf: list(from: 2, [(nil, "probe", nil), ("x", "http", nil), (nil, "echo", nil)]))
        joined.append(contentsOf: list(from: 5, [(nil, "echo", nil)]))
        #expect(joined.indices.map { joined.kind(at: $0) } == ["echo", "http", "probe", "http", "echo", "echo"])
        #expect(joined.indices.map { joined.id(at: $0) } == ["0", "1", "2", "x", "4", "5"])
        #expect(joined.indices.map { joined.timeoutMilliseconds(at: $0) } == [nil, 5, nil, nil, nil, nil])
        var plain = list(from: 0, [(nil, "echo", nil)])
        plain.append(contentsOf: list(from: 1, [(nil, "echo", nil), (nil, "echo", nil)]))
        #expect(plain.indices.map { plain.id(at: $0) } == ["0", "1", "2"] && !plain.namesOwnIDs)
        #expect(plain.estimatedBytes < joined.estimatedBytes)
    }
}
