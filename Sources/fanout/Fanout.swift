internal import ArgumentParser
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `fanout`: the command-line client of fanoutd.
struct Fanout: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fanout",
        abstract: "Fan out work through fanoutd: submit a job, follow its lines, never lose one.",
        discussion: """
            A dropped stream is resumed from the last line seen
            (GET /v1/jobs/{id}/events?after=N); a retried submission reuses its
            Idempotency-Key, so nothing runs twice. Ctrl-C once cancels the job on
            the server and prints the summary; twice quits at once.

            Environment: FANOUT_URL (--server), FANOUT_TOKEN (--token),
            NO_COLOR (no live progress line).

            Exit status:
              0    every subtask ended ok
              1    the job finished with an error, timeout or cancelled line
              2    usage or validation error (the server's problem is printed),
                   transport failure, or a stream not resumed in --resume-timeout
              130  interrupted by Ctrl-C
            """,
        subcommands: [Run.self, Get.self, Status.self, Follow.self, Cancel.self, Jobs.self]
    )
}

@main
enum FanoutMain {
    static func main() async {
        do {
            var command = try Fanout.parseAsRoot()
            if var command = command as? any AsyncParsableCommand {
                try await command.run()
            } else {
                try command.run()
            }
            exit(ExitStatus.ok)
        } catch let failure as CLIFailure {
            Terminal.err("fanout: \(failure.message)\n")
            exit(failure.exitCode)
        } catch let failure as TransportFailure {
            Terminal.err("fanout: \(failure.description)\n")
            exit(ExitStatus.failure)
        } catch let code as ExitCode {
            exit(code.rawValue)
        } catch {
            // Help and version go to stdout with 0; every usage error is 2 (not ArgumentParser's 64).
            let message = Fanout.fullMessage(for: error)
            if Fanout.exitCode(for: error).rawValue == 0 {
                Terminal.out(message + "\n")
                exit(ExitStatus.ok)
            }
            Terminal.err(message + "\n")
            exit(ExitStatus.failure)
        }
    }
}
