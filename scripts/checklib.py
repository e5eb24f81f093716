"""What the scripted checks (proxy, browser, memory limits, attack, metrics) share: free loopback
ports, a loopback upstream, and the failure report with the last lines of each log."""

import http.server
import os
import shutil
import socket
import sys
import threading


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


class LoopbackUpstream:
    """An upstream on 127.0.0.1 (a free port, served by threads of its own) that answers every GET
    with the JSON `body` and the status `status(path)`, counting the requests in `hits`.
    `keep_alive`: answers are HTTP/1.1 and connections stay open (else HTTP/1.0, closed after each)."""

    def __init__(self, body=b'{"ok":true}', status=lambda path: 200, keep_alive=False):
        upstream = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"

            def do_GET(self):
                upstream.hits += 1
                self.send_response(status(self.path))
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.hits = 0
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
