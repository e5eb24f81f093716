internal import ArgumentParser
internal import FanoutCore
import Foundation

extension Fanout {
    /// `fanout get URL…` (or URLs on stdin, one per line)
    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "GET many URLs through fanoutd: one http subtask per URL (arguments, or one per line on stdin)."
        )

        enum Order: String, ExpressibleByArgument, CaseIterable {
            case completion, input
        }

        @Argument(help: "URLs; none (or -) reads them from stdin, one per line (# comments and blank lines skipped).")
        var urls: [String] = []

        @Option(name: [.customShort("H"), .customLong("header")], help: ArgumentHelp("A request header for every URL.", valueName: "name: value"))
        var headers: [String] = []

        @Option(help: "At most this many requests in flight (the job's concurrency).")
        var concurrency: Int?

        @Option(name: .customLong("timeout-ms"), help: "Deadline for the whole job, in ms.")
        var timeoutMilliseconds: Int?

        @Option(name: .customLong("task-timeout-ms"), help: "Deadline for each request, in ms.")
        var taskTimeoutMilliseconds: Int?

        @Option(help: "Retries per request (idempotent GET).")
        var retries: Int?

        @Option(name: .customLong("hedge-ms"), help: "Send a second identical request when the first has not answered in this many ms.")
        var hedgeMilliseconds: Int?

        @Option(help: "Result order: completion (as they finish) or input.")
        var order: Order?

        @Flag(help: "After the first non-ok result, cancel the rest.")
        var failFast = false

        @Option(help: "After this many ok results, cancel the rest.")
        var first: Int?

        @OptionGroup var server: ServerOptions
        @OptionGroup var stream: StreamOptions

        func run() async throws {
            var urls = self.urls
            if urls.isEmpty || urls == ["-"] {
                urls = GetJob.urls(fromLines: String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self))
            }
            guard !urls.isEmpty else { throw ValidationError("no URLs: give them as arguments or one per line on stdin") }
            let job = GetJob(
                urls: urls, headers: try headers.map(GetJob.header), concurrency: concurrency,
                timeoutMilliseconds: timeoutMilliseconds, taskTimeoutMilliseconds: taskTimeoutMilliseconds,
                retries: retries, hedgeMilliseconds: hedgeMilliseconds, order: order?.rawValue, failFast: failFast, first: first
            )
            let client = server.client()
            let session = JobSession(client: client, options: stream, cancelOnInterrupt: true, labels: urls)
            let status = try await client.finishing { _ in try await session.run(.submit(body: try JobDocument.continuing(job.json), idempotencyKey: JobDocument.freshKey())) }
            throw ExitCode(status)
        }
    }
}
