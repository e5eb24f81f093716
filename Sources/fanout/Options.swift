internal import ArgumentParser

/// Where fanoutd is and how to authenticate.
struct ServerOptions: ParsableArguments {
    @Option(help: ArgumentHelp("fanoutd's base URL (default $FANOUT_URL, else http://127.0.0.1:8080).", valueName: "url"))
    var server: String?

    @Option(help: ArgumentHelp("Bearer token (default $FANOUT_TOKEN).", valueName: "token"))
    var token: String?

    func client() -> FanoutClient {
        FanoutClient(
            base: server ?? Terminal.environment("FANOUT_URL") ?? "http://127.0.0.1:8080",
            token: token ?? Terminal.environment("FANOUT_TOKEN")
        )
    }
}

/// How a followed job is shown and how long a lost stream is retried.
struct StreamOptions: ParsableArguments {
    @Option(help: "Result lines on stdout: ndjson (the default when stdout is not a terminal), json, table (the default on a terminal), none.")
    var output: OutputMode?

    @Flag(help: "No live progress line on stderr (also off when stderr is not a terminal or NO_COLOR is set).")
    var noProgress = false

    @Flag(help: "Print the summary on stderr even when stderr is not a terminal.")
    var summary = false

    @Option(help: ArgumentHelp("Give up on a lost stream (or a refused submission) after this many seconds without a line.", valueName: "seconds"))
    var resumeTimeout: Int = 60

    func validate() throws {
        guard resumeTimeout > 0 else { throw ValidationError("--resume-timeout must be at least 1 second") }
    }
}
