"""What the scripted checks (proxy, browser, memory limits) share: free loopback ports and the
failure report with the last lines of each log."""

import os
import shutil
import socket
import sys


def free_ports(count):
    """`count` distinct ports free on 127.0.0.1 right now (bound together, then released)."""
    socks = [socket.socket() for _ in range(count)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def finish(name, failures, work, logs, tail=10):
    """Exits 1 after printing each failure and the last `tail` lines of each log in `work`; or
    removes `work` and prints that the check passed."""
    if failures:
        for failure in failures:
            print(f"{name}: FAILED: {failure}", file=sys.stderr)
        for log in logs:
            path = os.path.join(work, log)
            if os.path.exists(path):
                print(f"--- last lines of {path}", file=sys.stderr)
                print("".join(open(path).readlines()[-tail:]), file=sys.stderr)
        sys.exit(1)
    shutil.rmtree(work, ignore_errors=True)
    print(f"{name}: passed")
