internal import AsyncHTTPClient
internal import FanoutCore
internal import NIOHTTP1
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One followed job, wired together: the follower, the progress line, stdout, the summary, Ctrl-C.
struct JobSession {
    let client: FanoutClient
    let options: StreamOptions
    /// Whether the first Ctrl-C cancels the job (run, get) or only stops reading (follow).
    let cancelOnInterrupt: Bool
    /// A display name per subtask index (the URL for `get`); the line's `id` otherwise.
    var labels: [String] = []

    /// Follows the job to its end line and returns the exit status.
    func run(_ start: FollowStart) async throws -> Int32 {
        // The live line needs escape codes: a terminal, and neither NO_COLOR nor --no-progress.
        // The summary is plain text: on a terminal, or anywhere with --summary.
        let progress = Terminal.isTTY(STDERR_FILENO) && Terminal.environment("NO_COLOR") == nil && !options.noProgress
        let showSummary = Terminal.isTTY(STDERR_FILENO) || options.summary
        let display = ProgressDisplay(enabled: progress)
        let cursor = JobCursor()
        let output = OutputWriter(mode: options.output ?? .standard, display: display)
        let client = self.client
        let cancel: @Sendable (String) -> Void = { id in
            Task {
                if let response = try? await client.send(.POST, "/v1/jobs/\(id)/cancel") {
                    _ = try? await FanoutClient.collect(response)
                }
            }
        }
        let cancelOnInterrupt = self.cancelOnInterrupt
        let watch = InterruptWatch(
            first: {
                guard cancelOnInterrupt else {
                    display.finish()
                    exit(ExitStatus.interrupted)
                }
                display.note("cancelling (Ctrl-C again to quit at once)")
                if let id = cursor.interrupt() { cancel(id) }
            },
            last: { display.finish() }
        )
        let ticker = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(250))
                display.tick()
            }
        }
        defer {
            ticker.cancel()
            withExtendedLifetime(watch) {}
        }
        var summary = RunSummary()
        let follower = JobFollower(
            client: client, cursor: cursor, display: display,
            resumeTimeout: .seconds(options.resumeTimeout), cancel: cancel
        )
        let end: JSONValue
        do {
            end = try await follower.follow(start) { text, json in
                var label = json["id"]?.stringValue ?? "?"
                if let index = json["index"]?.numberValue.map(Int.init), labels.indices.contains(index) { label = labels[index] }
                if json["event"]?.stringValue == "result" { summary.add(json, label: label) }
                output.line(text, json, label: label)
            }
        } catch {
            display.finish()
            throw error
        }
        display.finish()
        output.finish(end: end, jobID: cursor.id)
        if showSummary {
            Terminal.err(summary.render(end: end, jobID: cursor.id, interrupted: cursor.interrupted))
        }
        if cursor.interrupted { return ExitStatus.interrupted }
        let allOK = end["ok"]?.numberValue == end["total"]?.numberValue
        return allOK ? ExitStatus.ok : ExitStatus.notAllOK
    }
}
