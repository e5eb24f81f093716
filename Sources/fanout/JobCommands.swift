internal import ArgumentParser
internal import FanoutCore
internal import NIOHTTP1
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension Fanout {
    /// `fanout status ID`
    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a retained job's status document.")

        @Argument(help: "The job's id.") var id: String
        @OptionGroup var server: ServerOptions

        func run() async throws {
            let document = try await server.client().finishing { try await $0.json(.GET, "/v1/jobs/\(id)") }
            printStatus([document])
        }
    }

    /// `fanout follow ID [--after N]`
    struct Follow: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Follow a retained job's lines (after seq N) to its end line; Ctrl-C stops reading, the job goes on."
        )

        @Argument(help: "The job's id.") var id: String
        @Option(help: "Start after this seq (the last line already seen).") var after: Int = 0
        @OptionGroup var server: ServerOptions
        @OptionGroup var stream: StreamOptions

        func run() async throws {
            let client = server.client()
            let status = try await client.finishing { client in
                try await JobSession(client: client, options: stream, cancelOnInterrupt: false).run(.events(id: id, after: after))
            }
            throw ExitCode(status)
        }
    }

    /// `fanout cancel ID`
    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Cancel a retained job: what has not finished ends as cancelled.")

        @Argument(help: "The job's id.") var id: String
        @OptionGroup var server: ServerOptions

        func run() async throws {
            let document = try await server.client().finishing { try await $0.json(.POST, "/v1/jobs/\(id)/cancel") }
            printStatus([document])
        }
    }

    /// `fanout jobs`
    struct Jobs: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the retained jobs visible to the token, newest first.")

        @Flag(help: "Only the running ones.") var running = false
        @OptionGroup var server: ServerOptions

        func run() async throws {
            let path = "/v1/jobs" + (running ? "?state=running" : "")
            let document = try await server.client().finishing { try await $0.json(.GET, path) }
            guard case .array(let jobs) = document["jobs"] ?? .null else {
                throw CLIFailure(message: "the server's job list has no \"jobs\" array")
            }
            printStatus(jobs)
        }
    }
}

/// Status documents: one JSON line each when stdout is not a terminal, else a table.
func printStatus(_ documents: [JSONValue]) {
    guard Terminal.isTTY(STDOUT_FILENO) else {
        for document in documents { Terminal.out(document.jsonText + "\n") }
        return
    }
    func text(_ value: JSONValue?) -> String {
        switch value {
        case .string(let s): s
        case .number(let n): "\(Int(n))"
        case .none, .null: "-"
        case .some(let other): other.jsonText
        }
    }
    var rows = [["job", "state", "done", "ok", "error", "timeout", "cancelled", "last_seq", "created_at"]]
    for document in documents {
        rows.append(
            [text(document["job"]), text(document["state"]), text(document["done"]) + "/" + text(document["total"])]
                + ["ok", "error", "timeout", "cancelled", "last_seq", "created_at"].map { text(document[$0]) }
        )
    }
    Terminal.out(RunSummary.table(rows, rightAligned: [2, 3, 4, 5, 6, 7]))
}

extension FanoutClient {
    /// Runs `body` with this client, then shuts the client down (also when `body` throws).
    func finishing<T>(_ body: (FanoutClient) async throws -> T) async throws -> T {
        do {
            let result = try await body(self)
            await shutdown()
            return result
        } catch {
            await shutdown()
            throw error
        }
    }
}
