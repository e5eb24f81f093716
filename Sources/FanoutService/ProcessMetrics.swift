import FanoutSync
import Glibc
import Prometheus

/// The standard `process_*` families (as Prometheus client libraries name them), read from `/proc`
/// at scrape time: CPU time, resident and virtual memory, open and maximum descriptors, start time.
final class ProcessMetrics: Sendable {
    private let cpuSeconds: Counter
    private let gauges: ScrapedGauges<Reading>
    private let startTime: Gauge
    /// The CPU seconds already added to the counter (it only goes up: each scrape adds the difference).
    private let countedCPU = Locked(0.0)
    private let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))

    /// One scrape's look at the process (nil: that part could not be read).
    private struct Reading {
        var stat: Stat?
        var openFDs: Int?
        var maxFDs: Double?
    }

    init(registry: PrometheusCollectorRegistry) {
        cpuSeconds = registry.makeCounter(descriptor: .named("process_cpu_seconds_total", "Total user and system CPU time spent in seconds."))
        let pageSize = Double(sysconf(Int32(_SC_PAGESIZE)))
        gauges = ScrapedGauges(registry, [
            ("process_resident_memory_bytes", "Resident memory size in bytes.", { reading in reading.stat.map { $0.residentPages * pageSize } }),
            ("process_virtual_memory_bytes", "Virtual memory size in bytes.", { reading in reading.stat?.virtualBytes }),
            ("process_open_fds", "Number of open file descriptors.", { reading in reading.openFDs.map(Double.init) }),
            ("process_max_fds", "Maximum number of open file descriptors.", { reading in reading.maxFDs }),
        ])
        startTime = registry.makeGauge(
            descriptor: .named("process_start_time_seconds", "Start time of the process since unix epoch in seconds.")
        )
        if let stat = Self.stat(), let bootTime = Self.bootTime() {
            startTime.set(to: bootTime + stat.startTicks / ticksPerSecond)
        }
    }

    /// Reads `/proc/self/stat`, `/proc/self/fd` and the descriptor limit into the families.
    func record() {
        let stat = Self.stat()
        if let stat {
            let seconds = (stat.userTicks + stat.systemTicks) / ticksPerSecond
            countedCPU.withLock { counted in
                if seconds > counted {
                    cpuSeconds.increment(by: seconds - counted)
                    counted = seconds
                }
            }
        }
        var limit = rlimit()
        let maxFDs = getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 ? Double(limit.rlim_cur) : nil
        gauges.record(Reading(stat: stat, openFDs: Self.openDescriptors(), maxFDs: maxFDs))
    }

    struct Stat {
        var userTicks: Double, systemTicks: Double, startTicks: Double, virtualBytes: Double, residentPages: Double
    }

    /// The fields of `/proc/self/stat` (proc(5)) after the command name, which may hold spaces and
    /// parentheses, so fields are counted from its last `)`: field 3 (state) is the first.
    static func stat() -> Stat? {
        guard let bytes = read("/proc/self/stat"), let close = bytes.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        let fields = bytes[(close + 1)...].split(separator: UInt8(ascii: " "))
        func field(_ number: Int) -> Double? {
            let index = number - 3
            guard index < fields.count else { return nil }
            return Double(String(decoding: fields[index], as: UTF8.self))
        }
        guard let user = field(14), let system = field(15), let start = field(22), let virtual = field(23),
              let resident = field(24) else { return nil }
        return Stat(userTicks: user, systemTicks: system, startTicks: start, virtualBytes: virtual, residentPages: resident)
    }

    /// The boot time (`btime` of `/proc/stat`), in seconds since the epoch.
    static func bootTime() -> Double? {
        guard let bytes = read("/proc/stat") else { return nil }
        for line in bytes.split(separator: UInt8(ascii: "\n")) where line.starts(with: "btime ".utf8) {
            return Double(String(decoding: line.dropFirst(6), as: UTF8.self))
        }
        return nil
    }

    /// Entries of `/proc/self/fd`, less the one the listing itself holds open.
    static func openDescriptors() -> Int? {
        guard let directory = opendir("/proc/self/fd") else { return nil }
        defer { closedir(directory) }
        var count = 0
        while let entry = readdir(directory) {
            let isDot = withUnsafeBytes(of: entry.pointee.d_name) { name in name[0] == UInt8(ascii: ".") }
            if !isDot { count += 1 }
        }
        return max(0, count - 1)
    }

    /// A small `/proc` file, whole (at most 64 KiB).
    static func read(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while bytes.count < 65536 {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            guard count > 0 else { break }
            bytes.append(contentsOf: chunk[..<count])
        }
        return bytes
    }
}
