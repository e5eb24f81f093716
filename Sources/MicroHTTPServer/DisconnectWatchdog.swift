import Dispatch
import Glibc

/// `POLLRDHUP` (Linux, needs `_GNU_SOURCE`, so Glibc does not export it).
let pollReadHangUp: Int16 = 0x2000

/// Notices clients that hang up while their stream is suspended, when MHD itself cannot (it removes
/// suspended sockets from its epoll set). Every tick it polls the sockets of suspended streams for
/// `POLLRDHUP`/`POLLHUP`/`POLLERR` in one `poll(2)` call and cancels the streams whose peer is gone,
/// which resumes them so MHD closes the connection and the producer task is cancelled.
///
/// A socket is only polled if its stream was suspended when sampled, and a hit acts only if the
/// stream is still suspended afterwards: a suspended connection cannot close, so the descriptor
/// cannot have been reused in between.
///
/// Made only once the daemon runs, and its timer is resumed in `init`: Dispatch traps when a
/// source that was never resumed is released, so none may exist on a failed start.
/// `@unchecked Sendable`: its only state is a Dispatch timer, which is thread-safe.
final class DisconnectWatchdog: @unchecked Sendable {
    private let timer: any DispatchSourceTimer

    init(registry: StreamRegistry, intervalMilliseconds: Int) {
        timer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "fanoutd.watchdog"))
        let interval = DispatchTimeInterval.milliseconds(max(intervalMilliseconds, 10))
        timer.schedule(deadline: .now() + interval, repeating: interval, leeway: .milliseconds(10))
        timer.setEventHandler { DisconnectWatchdog.sweep(registry) }
        timer.resume()
    }

    func stop() { timer.cancel() }

    static func sweep(_ registry: StreamRegistry) {
        var streams: [ResponseStream] = []
        var fds: [pollfd] = []
        for stream in registry.snapshot() {
            guard let socket = stream.suspendedSocket() else { continue }
            streams.append(stream)
            fds.append(pollfd(fd: socket, events: pollReadHangUp, revents: 0))
        }
        guard !fds.isEmpty else { return }
        let ready = poll(&fds, nfds_t(fds.count), 0)
        guard ready > 0 else { return }
        let gone = pollReadHangUp | Int16(POLLHUP) | Int16(POLLERR)
        for (index, fd) in fds.enumerated() where fd.revents & gone != 0 {
            streams[index].cancel(onlyIfSuspended: true)
        }
    }
}
