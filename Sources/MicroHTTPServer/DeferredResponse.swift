internal import CMicroHTTPD
import FanoutSync

/// A response that ``HTTPHandler/respond(to:)`` computes in a task while its connection waits,
/// suspended. The MHD thread suspends under the lock when there is no response yet; the task stores
/// its response and resumes the connection only if it saw it suspended (LIBMICROHTTPD.md §2), so a
/// resume never precedes its suspend. MHD then calls the access handler again, which queues it.
///
/// `@unchecked Sendable`: its state is behind `state`'s lock; `connection` is suspended only on its
/// MHD thread, and MHD cannot free a suspended connection.
final class DeferredResponse: @unchecked Sendable {
    private struct State {
        var response: HTTPResponse?
        var suspended = false
        /// The first answer wins: the handler's, or the server's own when it stops first.
        var completed = false
    }

    private let connection: OpaquePointer
    private let state = Locked(State())

    init(connection: OpaquePointer) { self.connection = connection }

    /// MHD thread: the response if it is ready, else nil after suspending the connection.
    func takeOrSuspend() -> HTTPResponse? {
        state.withLock { state in
            if let response = state.response {
                state.response = nil
                return response
            }
            if !state.suspended {
                state.suspended = true
                MHD_suspend_connection(connection)
            }
            return nil
        }
    }

    /// Any thread: the answer; resumes the connection if it was waiting. Only the first call
    /// counts: a handler that returns after the stopping server answered (``StreamRegistry/cancelAll()``)
    /// changes nothing, and never touches a connection MHD may have freed since.
    func complete(_ response: HTTPResponse) {
        let resume = state.withLock { state -> Bool in
            guard !state.completed else { return false }
            state.completed = true
            state.response = response
            defer { state.suspended = false }
            return state.suspended
        }
        if resume { MHD_resume_connection(connection) }
    }
}
