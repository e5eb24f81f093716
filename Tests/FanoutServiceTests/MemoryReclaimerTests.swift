import Glibc
import TestSupport
import Testing

@testable import FanoutService

@Suite("Memory reclaimer")
struct MemoryReclaimerTests {
    @Test func smallReleasesDoNotTrim() async throws {
        let reclaimer = MemoryReclaimer(threshold: 1024 * 1024, minimumInterval: .milliseconds(10))
        for _ in 0..<100 { reclaimer.noteRelease(bytes: 1024) }
        try await Task.sleep(for: .milliseconds(100))
        #expect(reclaimer.trims == 0)
    }

    @Test func trimsAtMostOncePerInterval() async throws {
        let reclaimer = MemoryReclaimer(threshold: 64 * 1024, minimumInterval: .seconds(2))
        reclaimer.noteRelease(bytes: 1024 * 1024)
        #expect(await eventually(within: .seconds(5)) { reclaimer.trims == 1 })
        reclaimer.noteRelease(bytes: 1024 * 1024)
        reclaimer.noteRelease(bytes: 1024 * 1024)
        try await Task.sleep(for: .milliseconds(100))
        #expect(reclaimer.trims == 1, "a second trim waits for the interval")
        #expect(await eventually(within: .seconds(10)) { reclaimer.trims == 2 })
    }

    /// 96 MiB of heap blocks (below glibc's mmap threshold, so they live in an arena) freed but for
    /// the last, which pins the top of the heap: their pages stay resident until a trim gives them
    /// back. Residency is read per page with mincore(2), so other tests' allocations do not count.
    /// Under ThreadSanitizer or AddressSanitizer, malloc is the sanitizer's own allocator, which
    /// glibc's malloc_trim does not reach.
    static let glibcMalloc = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "__tsan_init") == nil
        && dlsym(UnsafeMutableRawPointer(bitPattern: 0), "__asan_init") == nil

    @Test(.enabled(if: glibcMalloc, "malloc is a sanitizer's allocator here"))
    func returnsFreedHeapToTheSystem() async throws {
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
        for block in blocks { free(block) }
        let freed = Self.residentPages(in: blocks, size: blockSize)
        let reclaimer = MemoryReclaimer(threshold: 1024 * 1024, minimumInterval: .milliseconds(10))
        reclaimer.noteRelease(bytes: blockSize * blocks.count)
        #expect(await eventually(within: .seconds(5)) { reclaimer.trims == 1 })
        let trimmed = Self.residentPages(in: blocks, size: blockSize)
        #expect(freed.resident > freed.total * 3 / 4, "glibc keeps freed arena pages resident (\(freed))")
        #expect(trimmed.resident < trimmed.total / 4, "the trim gave them back (\(trimmed))")
    }

    /// Whole pages inside the given (freed) blocks, and how many of them are resident.
    static func residentPages(in blocks: [UnsafeMutableRawPointer], size: Int) -> (total: Int, resident: Int) {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        var total = 0
        var resident = 0
        var vector = [UInt8](repeating: 0, count: size / page + 1)
        for block in blocks {
            let first = (Int(bitPattern: block) + page - 1) / page * page
            let end = (Int(bitPattern: block) + size) / page * page
            guard end > first else { continue }
            let pages = (end - first) / page
            guard mincore(UnsafeMutableRawPointer(bitPattern: first), end - first, &vector) == 0 else { continue }
            total += pages
            resident += vector[0..<pages].filter { $0 & 1 == 1 }.count
        }
        return (total, resident)
    }
}
