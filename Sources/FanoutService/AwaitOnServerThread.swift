import Dispatch
import MicroHTTPServer
import Synchronization

/// Runs an async route from a libmicrohttpd thread and waits for its answer. The retained-job routes
/// are async (a shared store does I/O); with the memory store they take microseconds. Goes away
/// once the handler API itself is async.
func awaitOnServerThread(_ operation: @escaping @Sendable () async -> HTTPResponse) -> HTTPResponse {
    final class Box: Sendable {
        let response = Mutex<HTTPResponse?>(nil)
        let done = DispatchSemaphore(value: 0)
    }
    let box = Box()
    Task {
        let response = await operation()
        box.response.withLock { $0 = response }
        box.done.signal()
    }
    box.done.wait()
    return box.response.withLock { $0! }
}
