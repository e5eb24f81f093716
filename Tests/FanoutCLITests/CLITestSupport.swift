import FanoutCore
import Foundation
import Testing


/// What a `fanout` run left behind.
struct CLIResult: CustomStringConvertible {
    var status: Int32
    var stdout: String
    var stderr: String

    var lines: [JSONValue] { stdout.split(separator: "\n").compactMap { try? JSONParser.parse(Array($0.utf8)) } }
    var results: [JSONValue] { lines.filter { $0["event"] == .string("result") } }
    var end: JSONValue? { lines.last { $0["event"] == .string("end") } }
    var description: String { "exit \(status)\nstdout:\n\(stdout)\nstderr:\n\(stderr)" }
}

/// The built `fanout` binary: next to the test bundle in .build/debug.
func fanoutBinary() throws -> URL {
    let bundleDirectory = Bundle.main.bundleURL.deletingLastPathComponent()
    let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let candidates = [
        bundleDirectory.appendingPathComponent("fanout"),
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("fanout"),
        packageRoot.appendingPathComponent(".build/debug/fanout"),
    ]
    guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0.path) }) else {
        throw CLITestFailure("no fanout binary in \(candidates.map(\.path)); run swift build --build-tests")
    }
    return found
}

struct CLITestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A started `fanout` process; its output goes to files so nothing blocks on a full pipe.
final class CLIProcess: @unchecked Sendable {
    let process = Process()
    private let directory: URL
    private let exited: Task<Int32, Never>

    init(_ arguments: [String], stdin: String? = nil, environment: [String: String] = [:]) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("fanout-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let out = directory.appendingPathComponent("stdout")
        let err = directory.appendingPathComponent("stderr")
        let input = directory.appendingPathComponent("stdin")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        _ = FileManager.default.createFile(atPath: err.path, contents: nil)
        _ = FileManager.default.createFile(atPath: input.path, contents: Data((stdin ?? "").utf8))
        process.executableURL = try fanoutBinary()
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "FANOUT_URL")
        env.removeValue(forKey: "FANOUT_TOKEN")
        for (key, value) in environment { env[key] = value }
        process.environment = env
        process.standardOutput = try FileHandle(forWritingTo: out)
        process.standardError = try FileHandle(forWritingTo: err)
        process.standardInput = try FileHandle(forReadingFrom: input)
        let (stream, continuation) = AsyncStream<Int32>.makeStream()
        process.terminationHandler = { process in
            continuation.yield(process.terminationStatus)
            continuation.finish()
        }
        exited = Task {
            for await status in stream { return status }
            return -1
        }
        try process.run()
    }

    var stdout: String { (try? String(contentsOf: directory.appendingPathComponent("stdout"), encoding: .utf8)) ?? "" }
    var stderr: String { (try? String(contentsOf: directory.appendingPathComponent("stderr"), encoding: .utf8)) ?? "" }

    func interrupt() { process.interrupt() }

    /// Waits for the exit (killing the process after `limit`, a generous bound against a hang).
    func finish(within limit: Duration = .seconds(120)) async -> CLIResult {
        let watchdog = Task { [process] in
            try await Task.sleep(for: limit)
            if process.isRunning { process.terminate() }
        }
        let status = await exited.value
        watchdog.cancel()
        let result = CLIResult(status: status, stdout: stdout, stderr: stderr)
        try? FileManager.default.removeItem(at: directory)
        return result
    }
}

/// Runs `fanout arguments…` to its exit.
func fanout(_ arguments: [String], stdin: String? = nil, environment: [String: String] = [:]) async throws -> CLIResult {
    try await CLIProcess(arguments, stdin: stdin, environment: environment).finish()
}

/// A job of echo subtasks: `values[i]` after `delays[i]` ms; a nil value is an error "boom".
func echoJob(_ tasks: [(delay: Int, value: String?)], extra: String = "") -> String {
    let list = tasks.enumerated().map { index, task in
        if let value = task.value {
            return #"{"id":"t\#(index)","kind":"echo","delay_ms":\#(task.delay),"value":"\#(value)"}"#
        }
        return #"{"id":"t\#(index)","kind":"echo","delay_ms":\#(task.delay),"error":"boom"}"#
    }
    return #"{"tasks":[\#(list.joined(separator: ","))]\#(extra)}"#
}

/// Writes `text` to a temporary file and returns its path.
func temporaryFile(_ text: String) throws -> String {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("fanout-job-\(UUID().uuidString).json")
    try Data(text.utf8).write(to: url)
    return url.path
}
