internal import ArgumentParser
internal import FanoutCore
import Foundation

extension Fanout {
    /// `fanout run JOB.json|-`
    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Submit a job document (a file, or - for stdin) and follow it to its end line."
        )

        @Argument(help: "The job as JSON (SPEC.md: {\"tasks\": [...], ...}), or - to read it from stdin.")
        var job: String

        @OptionGroup var server: ServerOptions
        @OptionGroup var stream: StreamOptions

        func run() async throws {
            let bytes: [UInt8]
            if job == "-" {
                bytes = Array(FileHandle.standardInput.readDataToEndOfFile())
            } else {
                guard let data = FileManager.default.contents(atPath: job) else {
                    throw CLIFailure(message: "cannot read \(job)")
                }
                bytes = Array(data)
            }
            let document: JSONValue
            do { document = try JSONParser.parse(bytes) } catch {
                throw CLIFailure(message: "\(job == "-" ? "stdin" : job) is not JSON: \(error)")
            }
            let body = try JobDocument.continuing(document)
            let client = server.client()
            let session = JobSession(client: client, options: stream, cancelOnInterrupt: true)
            let status = try await client.finishing { _ in try await session.run(.submit(body: body, idempotencyKey: JobDocument.freshKey())) }
            throw ExitCode(status)
        }
    }
}
