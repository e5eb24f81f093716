internal import CMicroHTTPD
import Glibc
import FanoutSync
import Synchronization

/// Closes sockets lingeringly (RFC 9112 §9.6) after an early final answer (a 400 or 413 queued before
/// the body was read): MHD shuts the write side down after the answer, and closing a socket with unread
/// request bytes would make the kernel send a reset that can destroy the answer before the client reads
/// it. So the server keeps a `dup()` of the socket when the request completes (MHD still holds it open
/// then), and one thread reads and discards from it until the client closes, or for at most
/// ``HTTPServerConfiguration/lingerMilliseconds`` / ``HTTPServerConfiguration/lingerBytes``, then closes it.
/// At most ``HTTPServerConfiguration/maxLingeringSockets`` linger at once; past that a socket closes as before.
final class LingeringClose: Sendable {
    private struct Entry {
        var fd: Int32
        var deadline: ContinuousClock.Instant
        var budget: Int
    }

    private let handedOver = Locked<[Entry]>([])
    private let lingering = Atomic<Int>(0)
    private let running = Atomic<Bool>(false)
    private let stopped = Atomic<Bool>(false)
    private let duration: Duration
    private let bytes: Int
    private let maxSockets: Int

    init(milliseconds: Int, bytes: Int, maxSockets: Int) {
        self.duration = .milliseconds(milliseconds)
        self.bytes = bytes
        self.maxSockets = maxSockets
    }

    /// Sockets currently lingering.
    var count: Int { lingering.load(ordering: .relaxed) }

    /// Takes a duplicate of `fd` to linger on. False (nothing taken) when at the cap, stopped, or `dup` fails.
    @discardableResult
    func adopt(_ fd: Int32) -> Bool {
        guard fd >= 0, maxSockets > 0, !stopped.load(ordering: .relaxed) else { return false }
        guard lingering.wrappingAdd(1, ordering: .relaxed).newValue <= maxSockets else {
            lingering.subtract(1, ordering: .relaxed)
            return false
        }
        let copy = fcntl(fd, F_DUPFD_CLOEXEC, 0)
        guard copy >= 0 else {
            lingering.subtract(1, ordering: .relaxed)
            return false
        }
        handedOver.withLock { $0.append(Entry(fd: copy, deadline: .now + duration, budget: bytes)) }
        if !running.exchange(true, ordering: .acquiringAndReleasing) {
            Thread.run { [self] in loop() }
        }
        return true
    }

    /// Closes every lingering socket and ends the thread.
    func stop() {
        stopped.store(true, ordering: .relaxed)
    }

    /// Runs while sockets linger; a later `adopt` starts it again.
    private func loop() {
        var entries: [Entry] = []
        var scratch = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            entries += handedOver.withLock { taken in defer { taken = [] }; return taken }
            if stopped.load(ordering: .relaxed) {
                for entry in entries { close(entry.fd) }
                lingering.subtract(entries.count, ordering: .relaxed)
                entries = []
            }
            if entries.isEmpty {
                running.store(false, ordering: .sequentiallyConsistent)
                // An adopt between the last take and the store above found `running` still set.
                let late = handedOver.withLock { !$0.isEmpty }
                if late, !running.exchange(true, ordering: .acquiringAndReleasing) { continue }
                return
            }
            var fds = entries.map { pollfd(fd: $0.fd, events: Int16(POLLIN) | pollReadHangUp, revents: 0) }
            _ = poll(&fds, nfds_t(fds.count), 50)
            let now = ContinuousClock.now
            var kept: [Entry] = []
            for (index, var entry) in entries.enumerated() {
                var done = now >= entry.deadline
                if !done, fds[index].revents != 0 {
                    done = drain(&entry, into: &scratch)
                }
                if done {
                    close(entry.fd)
                    lingering.subtract(1, ordering: .relaxed)
                } else {
                    kept.append(entry)
                }
            }
            entries = kept
        }
    }

    /// Reads and discards what is there; true when the socket is finished (peer closed, error, budget spent).
    private func drain(_ entry: inout Entry, into scratch: inout [UInt8]) -> Bool {
        while true {
            let count = scratch.withUnsafeMutableBytes { recv(entry.fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if count > 0 {
                entry.budget -= count
                if entry.budget <= 0 { return true }
                continue
            }
            if count < 0, errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { return false }
            return true
        }
    }
}
