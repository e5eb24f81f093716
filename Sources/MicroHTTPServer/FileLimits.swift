import Glibc
import Logging

/// The process's open-file limit: each connection is a descriptor, and the default soft limit
/// (often 1024) would cap the server far below its connection limit.
enum FileLimits {
    /// Raises the soft `RLIMIT_NOFILE` to at least `needed`, as far as the hard limit allows.
    static func raise(toFit needed: Int, logger: Logger) {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return }
        guard limit.rlim_cur < rlim_t(needed) else { return }
        let wanted = min(rlim_t(needed), limit.rlim_max)
        var raised = limit
        raised.rlim_cur = wanted
        if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) != 0 || wanted < rlim_t(needed) {
            logger.warning(
                "open-file limit is below the connection limit",
                metadata: ["limit.nofile": "\(wanted)", "limit.needed": "\(needed)"]
            )
        }
    }
}
