import Dispatch
import FanoutSync
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Ctrl-C: the first SIGINT runs `first`; the second runs `last` and exits at once with 130.
final class InterruptWatch: @unchecked Sendable {
    // Set once in init; the signal source lives as long as the watch.
    private let source: any DispatchSourceSignal
    private let count = Locked(0)

    init(first: @escaping @Sendable () -> Void, last: @escaping @Sendable () -> Void) {
        signal(SIGINT, SIG_IGN)
        source = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
        source.setEventHandler { [self] in
            let number = count.withLock { count in
                count += 1
                return count
            }
            if number == 1 {
                first()
            } else {
                last()
                exit(ExitStatus.interrupted)
            }
        }
        source.resume()
    }
}
