#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The process's standard streams: unbuffered writes, whether each is a terminal, its width.
enum Terminal {
    static func put(_ text: String, to fd: Int32) {
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if written < 0 {
                if errno == EINTR { continue }
                return
            }
            offset += written
        }
    }

    static func out(_ text: String) { put(text, to: STDOUT_FILENO) }
    static func err(_ text: String) { put(text, to: STDERR_FILENO) }

    static func isTTY(_ fd: Int32) -> Bool { isatty(fd) == 1 }

    /// The terminal's width in columns (80 when unknown).
    static func columns(_ fd: Int32) -> Int {
        var size = winsize()
        let result = withUnsafeMutablePointer(to: &size) { ioctl(fd, UInt(TIOCGWINSZ), $0) }
        guard result == 0, size.ws_col > 0 else { return 80 }
        return Int(size.ws_col)
    }

    static func environment(_ name: String) -> String? {
        guard let value = getenv(name) else { return nil }
        return String(cString: value)
    }
}
