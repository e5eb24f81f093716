/// What the server keeps for one client socket, as MHD's socket context: created when MHD accepts
/// the socket, released when it closes it (``ConnectionHooks``). Touched only on the MHD thread that
/// owns the connection.
final class ConnectionState {
    let fd: Int32
    /// This socket in the dead-connection sweep.
    let sweep: DeadConnectionSweeper.Entry
    /// Accepted beyond ``HTTPServerConfiguration/connectionLimit`` (within the headroom): its request
    /// is answered `503` and the connection closed.
    let overLimit: Bool
    /// The current request's target as the request-line parser left it, before `?` is cut and the path
    /// unescaped: where it starts and its C-string length, which stops at an embedded NUL.
    var rawTarget: (start: UnsafePointer<CChar>, length: Int)?
    /// The raw target contains `%00`, which unescaping would turn into a NUL that cuts the path.
    var targetHasEncodedNUL = false
    /// The access handler saw the current request's head (false: MHD refused it on its own).
    var screened = false
    /// The access handler is in its first call for the current request (head only, no body read).
    var inHeadPhase = false
    /// A final answer was queued before the body was read: the connection closes lingeringly.
    var answeredEarly = false
    /// The current request's body is chunked.
    var chunkedBody = false
    /// Body bytes the access handler was given for the current request, and those past the limit.
    var bodyBytes = 0
    var bodyBytesOverLimit = 0
    /// The server wrote its own final answer to the socket (mid-upload, where MHD cannot queue one).
    var wroteOwnAnswer = false
    /// The peer's address as text (``ConnectionHooks/peer(of:)``), made at the first request: every
    /// request of a kept-alive connection has the same one.
    var peer: String??

    init(fd: Int32, overLimit: Bool, sweep: DeadConnectionSweeper.Entry) {
        self.fd = fd
        self.sweep = sweep
        self.overLimit = overLimit
    }
}
