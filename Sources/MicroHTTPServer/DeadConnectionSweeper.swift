import Dispatch
import Glibc
import FanoutSync
import Synchronization

/// Frees the slots of clients that went away while their request was being read, which MHD 0.9.75
/// misses: a `recv` shorter than its buffer clears the connection's read-ready flag (connection.c,
/// `recv_param_adapter`), so when the request bytes and the FIN were both queued before MHD read (a
/// client that closed while waiting in the backlog, or sent part of a request and closed at once),
/// edge-triggered epoll never reports the FIN again and the socket sits in CLOSE-WAIT until the
/// timeout. Every tick this polls the sockets that are not answering a request for
/// `POLLRDHUP`/`POLLHUP`/`POLLERR`; one seen on two ticks in a row (so a request that just arrived
/// with its FIN is not cut) is shut down, which wakes MHD with a hang-up and it closes the connection.
/// It also enforces the head's read deadline (``HTTPServerConfiguration/requestTimeoutSeconds``, from
/// the accept or the request line to the end of the head), shutting down a socket past it.
/// Sockets are added when MHD accepts them and removed when it closes them, under the same lock the
/// sweep holds, so a polled descriptor cannot have been reused.
final class DeadConnectionSweeper: Sendable {
    /// One socket's shared flags; the MHD thread sets `responding`, the sweep the rest.
    final class Entry: Sendable {
        let fd: Int32
        /// A response is queued and not yet complete (streams, suspended or not, included).
        let responding = Atomic<Bool>(false)
        /// When the request head being read must be complete (`CLOCK_MONOTONIC` nanoseconds), 0 when
        /// no head is being read. MHD's own timeout restarts with every byte, so a client that drips
        /// its head byte by byte would never reach it.
        let headDeadline = Atomic<UInt64>(0)
        fileprivate let suspect = Atomic<Bool>(false)
        fileprivate let shutDown = Atomic<Bool>(false)
        init(fd: Int32) { self.fd = fd }
    }

    private let entries = Locked<[Int32: Entry]>([:])
    /// Dispatch sources are thread-safe but not marked `Sendable`; this one is only made, resumed and
    /// cancelled under `timer`'s lock.
    private struct TimerBox: @unchecked Sendable { var source: (any DispatchSourceTimer)? }
    /// Made in `start`, so that a server that never started frees no suspended Dispatch source (a trap).
    private let timer = Locked(TimerBox(source: nil))
    private let queue = DispatchQueue(label: "fanoutd.dead-connections")
    private let intervalMilliseconds: Int
    private let freed = Atomic<Int>(0)

    init(intervalMilliseconds: Int) {
        self.intervalMilliseconds = max(intervalMilliseconds, 10)
    }

    func start() {
        timer.withLock { timer in
            guard timer.source == nil else { return }
            let source = DispatchSource.makeTimerSource(queue: queue)
            let interval = DispatchTimeInterval.milliseconds(intervalMilliseconds)
            source.schedule(deadline: .now() + interval, repeating: interval, leeway: .milliseconds(20))
            source.setEventHandler { [weak self] in self?.sweep() }
            source.resume()
            timer.source = source
        }
    }

    func stop() {
        timer.withLock { $0.source?.cancel() }
    }

    /// Dead connections shut down so far.
    var shutDownCount: Int { freed.load(ordering: .relaxed) }

    func add(fd: Int32) -> Entry {
        let entry = Entry(fd: fd)
        entries.withLock { $0[fd] = entry }
        return entry
    }

    /// Before MHD closes the descriptor (NOTIFY_CONNECTION CLOSED precedes `close` in daemon.c).
    func remove(_ entry: Entry) {
        entries.withLock { entries in
            if entries[entry.fd] === entry { entries[entry.fd] = nil }
        }
    }

    /// `CLOCK_MONOTONIC` in nanoseconds.
    static func now() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
    }

    private func sweep() {
        let now = Self.now()
        entries.withLock { entries in
            var polled: [Entry] = []
            var fds: [pollfd] = []
            for entry in entries.values where !entry.responding.load(ordering: .relaxed) && !entry.shutDown.load(ordering: .relaxed) {
                polled.append(entry)
                fds.append(pollfd(fd: entry.fd, events: pollReadHangUp, revents: 0))
            }
            guard !fds.isEmpty, poll(&fds, nfds_t(fds.count), 0) >= 0 else { return }
            let gone = pollReadHangUp | Int16(POLLHUP) | Int16(POLLERR)
            for (index, fd) in fds.enumerated() {
                let entry = polled[index]
                let deadline = entry.headDeadline.load(ordering: .relaxed)
                if deadline != 0, now > deadline {
                    entry.shutDown.store(true, ordering: .relaxed)
                    Glibc.shutdown(entry.fd, Int32(SHUT_RDWR))
                    continue
                }
                guard fd.revents & gone != 0 else {
                    entry.suspect.store(false, ordering: .relaxed)
                    continue
                }
                if entry.suspect.exchange(true, ordering: .relaxed), !entry.responding.load(ordering: .relaxed) {
                    entry.shutDown.store(true, ordering: .relaxed)
                    Glibc.shutdown(entry.fd, Int32(SHUT_RDWR))
                    freed.add(1, ordering: .relaxed)
                }
            }
        }
    }
}
