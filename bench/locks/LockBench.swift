// Uncontended lock cost: Synchronization.Mutex (futex) against FanoutSync.Locked (pthread_mutex_t).
//
//   swiftc -O -parse-as-library -module-name LockBench bench/locks/LockBench.swift \
//       Sources/FanoutSync/Locked.swift -o /tmp/lock-bench && /tmp/lock-bench
//
// Each lock guards an Int in a Sendable class, as the project's state machines do; one thread
// takes it `iterations` times per round, adding 1. Prints ns per lock/unlock pair per round.
// With an argument (`mutex` or `locked`) it runs that lock only, 100 million times, for
// `perf stat -e instructions,cycles /tmp/lock-bench locked`, which a loaded machine does not skew.
import Glibc
import Synchronization

final class WithMutex: Sendable { let state = Mutex(0) }
final class WithLocked: Sendable { let state = Locked(0) }

func nanoseconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Double(now.tv_sec) * 1e9 + Double(now.tv_nsec)
}

func rounded(_ value: Double) -> Double { (value * 10).rounded() / 10 }

@main
struct LockBench {
    static func main() {
        let iterations = 20_000_000
        let mutex = WithMutex()
        let locked = WithLocked()
        if CommandLine.arguments.count > 1 {
            if CommandLine.arguments[1] == "mutex" {
                for _ in 0..<100_000_000 { mutex.state.withLock { $0 &+= 1 } }
            } else {
                for _ in 0..<100_000_000 { locked.state.withLock { $0 &+= 1 } }
            }
            print(mutex.state.withLock { $0 } + locked.state.withLock { $0 })
            return
        }
        for round in 1...5 {
            var start = nanoseconds()
            for _ in 0..<iterations { mutex.state.withLock { $0 &+= 1 } }
            let mutexCost = (nanoseconds() - start) / Double(iterations)
            start = nanoseconds()
            for _ in 0..<iterations { locked.state.withLock { $0 &+= 1 } }
            let lockedCost = (nanoseconds() - start) / Double(iterations)
            print("round \(round): Mutex \(rounded(mutexCost)) ns, Locked \(rounded(lockedCost)) ns")
        }
        // Keeps the loops from being optimised away.
        precondition(mutex.state.withLock { $0 } == locked.state.withLock { $0 })
    }
}
