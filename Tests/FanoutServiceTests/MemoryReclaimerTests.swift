import Glibc
import TestSupport
import Testing

@testable import FanoutService

@Suite("Memory reclaimer")
struct MemoryReclaimerTests {
    /// Resident set size of this process, from /proc/self/statm.
    static func residentBytes() -> Int {
        guard let file = fopen("/proc/self/statm", "r") else { return 0 }
        defer { fclose(file) }
        var line = [CChar](repeating: 0, count: 128)
        guard fgets(&line, Int32(line.count), file) != nil else { return 0 }
        let fields = line.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    @Test func smallReleasesDoNotTrim() async throws {
        let reclaimer = MemoryReclaimer(threshold: 1024 * 1024, minimumInterval: .milliseconds(10))
        for _ in 0..<100 { reclaimer.noteRelease(bytes: 1024) }
        try await Task.sleep(for: .milliseconds(100))
        #expect(reclaimer.trims == 0)
    }

    @Test func trimsAtMostOncePerInterval() async throws {
        let reclaimer = MemoryReclaimer(threshold: 64 * 1024, minimumInterval: .milliseconds(500))
        reclaimer.noteRelease(bytes: 1024 * 1024)
        #expect(await eventually(within: .seconds(5)) { reclaimer.trims == 1 })
        reclaimer.noteRelease(bytes: 1024 * 1024)
        reclaimer.noteRelease(bytes: 1024 * 1024)
        try await Task.sleep(for: .milliseconds(100))
        #expect(reclaimer.trims == 1, "a second trim waits for the interval")
        #expect(await eventually(within: .seconds(5)) { reclaimer.trims == 2 })
    }

    /// 96 MiB of heap blocks (below glibc's mmap threshold, so they live in an arena) freed but for
    /// the last, which pins the top of the heap: without a trim RSS stays; with one it falls back.
    @Test func returnsFreedHeapToTheSystem() async throws {
        let blockSize = 64 * 1024 - 64
        let count = 96 * 16
        var blocks: [UnsafeMutableRawPointer] = []
        for _ in 0..<count {
            let block = try #require(malloc(blockSize))
            memset(block, 0x5a, blockSize)
            blocks.append(block)
        }
        let pin = blocks.removeLast()
        defer { free(pin) }
        let peak = Self.residentBytes()
        for block in blocks { free(block) }
        let freed = Self.residentBytes()
        let reclaimer = MemoryReclaimer(threshold: 1024 * 1024, minimumInterval: .milliseconds(10))
        reclaimer.noteRelease(bytes: blockSize * blocks.count)
        #expect(await eventually(within: .seconds(5)) { reclaimer.trims == 1 })
        let trimmed = Self.residentBytes()
        #expect(freed > peak - 32 * 1024 * 1024, "glibc keeps freed arena memory resident (peak \(peak), after free \(freed))")
        #expect(trimmed < freed - 64 * 1024 * 1024, "the trim gave most of 96 MiB back (after free \(freed), after trim \(trimmed))")
    }
}
