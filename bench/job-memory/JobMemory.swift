// Measures what a decoded job costs in memory (issue 7 item 4), built from the FanoutCore sources
// alone: scripts/job-memory.sh [tasks]. For each body shape it reports the body's size, the heap
// the decoded Job keeps (glibc mallinfo2, bytes in use after decoding minus before), how much RSS
// grew at its peak while decoding (VmHWM after /proc/self/clear_refs), the heap of the document's
// whole parse tree (what a decoder that parses the whole body first holds besides the job), and
// the decoder's own estimate (Job.estimatedBytes, what admission charges).
import Glibc

/// Bytes allocated: from the arenas plus those mmapped on their own (large arrays).
func heapInUse() -> Int {
    let info = mallinfo2()
    return Int(info.uordblks) + Int(info.hblkhd)
}

/// Resets the process's peak RSS (VmHWM) to its current RSS and returns that, in bytes.
func resetPeakRSS() -> Int {
    let fd = open("/proc/self/clear_refs", O_WRONLY)
    if fd >= 0 {
        _ = write(fd, "5", 1)
        close(fd)
    }
    return statusField("VmRSS:")
}

/// The process's peak RSS (VmHWM) in bytes.
func peakRSS() -> Int { statusField("VmHWM:") }

func statusField(_ name: String) -> Int {
    guard let file = fopen("/proc/self/status", "r") else { return 0 }
    defer { fclose(file) }
    var line = [CChar](repeating: 0, count: 256)
    while fgets(&line, 256, file) != nil {
        let text = String(cString: line)
        if text.hasPrefix(name) {
            let fields = text.dropFirst(name.count).split(whereSeparator: { $0 == " " || $0 == "\t" })
            return (fields.first.flatMap { Int($0) } ?? 0) * 1024
        }
    }
    return 0
}

/// Decodes a job of `tasks` tasks shaped by `task`; the parse tree is measured on its own (decoding
/// holds it and the job at its peak).
func measure(_ name: String, tasks: Int, task: (Int) -> String) {
    var runners = RunnerRegistry()
    runners.register(EchoRunner())
    let decoder = JobDecoder(policy: JobPolicy(maxTasks: tasks), runners: runners)
    let body = Array(("{\"tasks\":[" + (0..<tasks).map(task).joined(separator: ",") + "]}").utf8)
    malloc_trim(0)
    let before = heapInUse()
    let tree = try! JSONParser.parse(body)
    let treeBytes = withExtendedLifetime(tree) { heapInUse() - before }
    malloc_trim(0)
    let base = heapInUse()
    let rssBefore = resetPeakRSS()
    let job = try! decoder.decode(body)
    let kept = heapInUse() - base
    let decodePeak = peakRSS() - rssBefore
    let perTask = Double(kept) / Double(tasks)
    // The dispatcher's bookkeeping for the job while it runs (with an observer, as the service has).
    let beforeRun = heapInUse()
    let run = JobRun(job: job, id: "job", start: .now, observer: NullObserver())
    let runBytes = heapInUse() - beforeRun
    let ratio = Double((kept * 10 / body.count)) / 10
    var line = "\(name): body \(body.count) B (\(body.count / tasks) B/task); "
    line += "job keeps \(kept) B (\(Int(perTask)) B/task, \(ratio)x body); "
    line += "running +\(runBytes / tasks) B/task; "
    line += "RSS peak while decoding +\(decodePeak) B; whole parse tree \(treeBytes) B; estimate \(job.estimatedBytes) B"
    print(line)
    withExtendedLifetime((job, run)) {}
}

final class NullObserver: DispatchObserver {
    func subtaskStarted(kind: String) {}
    func subtaskEnded(kind: String, duration: Duration) {}
}

@main
struct JobMemory {
    static func main() {
        let tasks = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1])! : 100_000
        measure("echo", tasks: tasks) { _ in #"{"kind":"echo"}"# }
        measure("echo+delay", tasks: tasks) { _ in #"{"kind":"echo","delay_ms":1000}"# }
        measure("echo+value", tasks: tasks) { i in #"{"kind":"echo","delay_ms":5,"value":{"n":\#(i),"s":"some text here"}}"# }
        measure("echo+id", tasks: tasks) { i in #"{"id":"task-\#(i)","kind":"echo","delay_ms":5,"value":\#(i)}"# }
        // The worst case per body byte: an echo value of one-digit numbers (2 bytes of JSON each).
        measure("digits", tasks: tasks / 100) { _ in #"{"kind":"echo","value":["# + Array(repeating: "0", count: 500).joined(separator: ",") + "]}" }
    }
}
