// How long decoding a job body takes, built from the FanoutCore sources alone (the burst's first
// line waits for it): scripts/job-decode.sh BODY.json [ROUNDS [THREADS]]. Decodes the body ROUNDS
// times, its tasks array on up to THREADS threads (JobDecoder's default: the CPUs, at most 4), and
// prints the fastest and the median round, in milliseconds and MB/s.
import Glibc

@main
struct JobDecode {
    static func main() {
        let arguments = CommandLine.arguments
        guard arguments.count >= 2, let file = fopen(arguments[1], "rb") else {
            print("usage: job-decode BODY.json [ROUNDS [THREADS]]")
            exit(2)
        }
        var body: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = fread(&chunk, 1, chunk.count, file)
            if count <= 0 { break }
            body.append(contentsOf: chunk[0..<count])
        }
        fclose(file)
        let rounds = arguments.count > 2 ? Int(arguments[2]) ?? 20 : 20
        var runners = RunnerRegistry()
        runners.register(EchoRunner())
        var decoder = JobDecoder(policy: JobPolicy(), runners: runners)
        if arguments.count > 3, let threads = Int(arguments[3]) { decoder.parallelism = threads }
        var times: [Double] = []
        var tasks = 0
        for _ in 0..<rounds {
            let start = MonotonicTime.now
            let job: Job
            do { job = try decoder.decode(body) } catch {
                print("refused: \(error)")
                exit(1)
            }
            times.append(Double(MonotonicTime.now.microseconds(since: start)) / 1000)
            tasks = job.tasks.count
        }
        times.sort()
        let megabytes = Double(body.count) / 1_000_000
        func describe(_ ms: Double) -> String {
            "\((ms * 100).rounded() / 100) ms (\(Int(megabytes / ms * 1000)) MB/s, \(Int(ms * 1_000_000 / Double(tasks))) ns/task)"
        }
        print("\(body.count) B, \(tasks) tasks, \(decoder.parallelism) threads at most, \(rounds) rounds: fastest \(describe(times[0])), median \(describe(times[rounds / 2]))")
    }
}
