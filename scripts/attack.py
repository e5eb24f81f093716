#!/usr/bin/env python3
"""Hostile-client checks against a live fanoutd (issue "Hardening"), loopback only, bounded in time.

usage: scripts/attack.py BINARY [CHECK ...]

Starts BINARY on 127.0.0.1 (free ports, the repository's config/fanoutd.json plus the overrides
below), runs each check, prints one figure per check and a closing "N passed, N failed" line, and
exits non-zero if any check failed. Checks (all by default):

  framing      smuggling-prone framings get one 400/413/501 and a closed connection; none runs
  bodies       64 concurrent 16 MiB bodies: peak RSS stays under the pending-body budget + baseline
  slowloris    connection_limit + 500 slow header senders: /livez on the admin port p99 < 50 ms
  dead         clients that hang up mid-request free their slots within ~1 s
  input-order  order "input", a slow task 0, big upstream answers, a reader that never reads: bounded
  deadline     a reader that never reads: the job deadline still cancels in-flight subtasks on time
"""
import json
import os
import re
import resource
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from checklib import LoopbackUpstream

HOST = "127.0.0.1"
MIB = 1024 * 1024
# Budgets the server is started with (and the checks hold it to).
PENDING_BODY_BUDGET = 256 * MIB
CONNECTION_LIMIT = 10_000
REQUEST_TIMEOUT_S = 10


class Server:
    """fanoutd on free loopback ports; knows its pid, ports and log."""

    def __init__(self, binary, *overrides):
        self.log_path = tempfile.mktemp(prefix="fanoutd-attack-", suffix=".log")
        env = {k: v for k, v in os.environ.items() if not k.startswith("FANOUT_")}
        args = [binary, "serve", "--config", "config/fanoutd.json", "--host", HOST, "--port", "0",
                "--admin-port", "0", "--log-format", "json", "--log-level", "info"]
        for override in overrides:
            args += ["--set", override]
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            for line in open(self.log_path):
                if '"fanoutd listening"' in line:
                    record = json.loads(line)
                    self.port = int(record["http.port"])
                    self.admin_port = int(record["http.admin_port"])
                    return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise SystemExit("attack: fanoutd did not start:\n" + open(self.log_path).read())

    def rss(self):
        """Resident set size in bytes, and its peak so far (VmHWM)."""
        status = open(f"/proc/{self.process.pid}/status").read()
        rss = int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) * 1024
        peak = int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) * 1024
        return rss, peak

    def metric(self, name):
        body = get(self.admin_port, "/metrics")[2].decode()
        for line in body.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        return None

    def alive(self):
        return self.process.poll() is None

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.log.close()


def connect(port, timeout=5.0):
    sock = socket.create_connection((HOST, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_response(sock, timeout=5.0):
    """Reads one response head (+ Content-Length body); returns (status, headers, body, closed)."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    if b"\r\n\r\n" not in data:
        return None, {}, data, True
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0") or 0)
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, headers, rest[:length], False


def closed_soon(sock, within=2.0):
    """True when the peer closes (EOF or reset) within `within` seconds, reading what is left."""
    sock.settimeout(within)
    end = time.monotonic() + within
    try:
        while time.monotonic() < end:
            if not sock.recv(65536):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False
    return False


def get(port, path, timeout=5.0):
    sock = connect(port, timeout)
    try:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        return read_response(sock, timeout)
    finally:
        sock.close()


def job_request(body, extra=""):
    return (f"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{extra}"
            f"Content-Length: {len(body)}\r\n\r\n{body}").encode()


# ------------------------------------------------------------------------------------ checks

ECHO = '{"tasks":[{"kind":"echo","value":1}]}'
SMUGGLED = "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(ECHO), ECHO)
FRAMINGS = [
    ("CL and TE", f"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", {400}),
    ("two CLs", f"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(ECHO)}\r\nContent-Length: 5\r\n\r\n{ECHO}", {400}),
    ("TE with space before colon", f"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding : chunked\r\n\r\n{len(SMUGGLED):x}\r\n{SMUGGLED}\r\n0\r\n\r\n", {400}),
    ("TE on HTTP/1.0", f"POST /v1/jobs HTTP/1.0\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{len(ECHO):x}\r\n{ECHO}\r\n0\r\n\r\n", {400}),
    ("space in header name", f"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent Type: application/json\r\nContent-Length: {len(ECHO)}\r\n\r\n{ECHO}", {400}),
    ("no Host", f"POST /v1/jobs HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: {len(ECHO)}\r\n\r\n{ECHO}", {400}),
    ("two Hosts", f"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nHost: y\r\nContent-Type: application/json\r\nContent-Length: {len(ECHO)}\r\n\r\n{ECHO}", {400}),
    ("NUL in header value", f"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\nContent-Type: application/json\r\nContent-Length: {len(ECHO)}\r\n\r\n{ECHO}", {400}),
    ("NUL in URL", f"POST /v1/jobs\x00x HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(ECHO)}\r\n\r\n{ECHO}", {400}),
    ("CL +5", "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: +5\r\n\r\n{\"a\":", {400}),
    ("CL -1", "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: -1\r\n\r\n", {400}),
    ("CL 0x26", "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 0x26\r\n\r\n", {400}),
    ("CL '5, 5'", "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5, 5\r\n\r\n{\"a\":", {400}),
    ("CL 2^64-1", "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 18446744073709551615\r\n\r\n{", {413}),
    ("chunk size 2^64-1", "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n{", {413}),
    ("TE gzip, chunked", "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: gzip, chunked\r\n\r\n1\r\n{\r\n", {501}),
    ("TE identity", "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: identity\r\n\r\n{", {501}),
]


def check_framing(server):
    bad = []
    for name, raw, statuses in FRAMINGS:
        sock = connect(server.port)
        try:
            sock.sendall(raw.encode("latin-1"))
            status, headers, body, _ = read_response(sock, timeout=5)
            closed = closed_soon(sock, 3)
            ctype = headers.get("content-type", "")
            if status not in statuses or not closed:
                bad.append(f"{name}: {status} closed={closed}")
            elif "problem+json" not in ctype:
                print(f"attack:   note: {name} answered {status} as {ctype or 'no content type'} (libmicrohttpd's own page)")
        except OSError as error:
            bad.append(f"{name}: {error}")
        finally:
            sock.close()
    jobs_run = server.metric("fanout_jobs_total")
    print(f"attack: framing: {len(FRAMINGS) - len(bad)}/{len(FRAMINGS)} refused cleanly; jobs run: {jobs_run}")
    for line in bad:
        print(f"attack:   FAILED {line}")
    return not bad and not jobs_run and server.alive()


def check_bodies(server):
    """64 connections each announce and send 16 MiB of body at once."""
    baseline, _ = server.rss()
    size = 16 * MIB
    chunk = b"[" + b"1," * (MIB // 2 - 1) + b"1]"
    statuses = {}
    lock = threading.Lock()
    peak = [0]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], server.rss()[0])
            time.sleep(0.02)

    def send_one():
        status = None
        try:
            sock = connect(server.port, timeout=30)
            sock.sendall((f"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                          f"Content-Length: {size}\r\n\r\n").encode())
            sent = 0
            try:
                while sent < size:
                    sock.sendall(chunk[: min(len(chunk), size - sent)])
                    sent += len(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass
            status = read_response(sock, timeout=30)[0]
            sock.close()
        except OSError as error:
            status = f"error {error.__class__.__name__}"
        with lock:
            statuses[status] = statuses.get(status, 0) + 1

    sampler = threading.Thread(target=sample)
    sampler.start()
    threads = [threading.Thread(target=send_one) for _ in range(64)]
    start = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    stop.set()
    sampler.join()
    growth = peak[0] - baseline
    print(f"attack: bodies: 64 x 16 MiB in {time.monotonic() - start:.1f} s; answers {statuses}; "
          f"RSS baseline {baseline / MIB:.0f} MiB, peak {peak[0] / MIB:.0f} MiB "
          f"(+{growth / MIB:.0f} MiB, budget {PENDING_BODY_BUDGET / MIB:.0f} MiB)")
    answered = sum(n for s, n in statuses.items() if isinstance(s, int))
    return growth < PENDING_BODY_BUDGET + 64 * MIB and answered == 64 and server.alive()


def check_slowloris(server):
    """connection_limit + 500 connections that send a header byte now and then; probe the admin port."""
    count = CONNECTION_LIMIT + 500
    socks = []
    refused = 0
    for _ in range(count):
        try:
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex((HOST, server.port))
            socks.append(sock)
        except OSError:
            refused += 1
    time.sleep(0.5)
    for sock in socks:
        try:
            sock.send(b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\n")
        except OSError:
            pass
    latencies = []
    end = time.monotonic() + 8
    next_drip = time.monotonic() + 1
    while time.monotonic() < end:
        start = time.monotonic()
        status = get(server.admin_port, "/livez", timeout=5)[0]
        latencies.append((time.monotonic() - start) * 1000 if status == 200 else 10_000)
        if time.monotonic() > next_drip:
            for sock in socks:
                try:
                    sock.send(b"X")
                except OSError:
                    pass
            next_drip = time.monotonic() + 1
        time.sleep(0.02)
    # The main listener answers over-limit connections quickly instead of leaving them waiting.
    start = time.monotonic()
    try:
        status = get(server.port, "/livez", timeout=5)[0]
    except OSError as error:
        status = error.__class__.__name__
    main_ms = (time.monotonic() - start) * 1000
    for sock in socks:
        sock.close()
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1] if latencies else 10_000
    print(f"attack: slowloris: {len(socks)} connections; admin /livez p50 {latencies[len(latencies) // 2]:.1f} ms, "
          f"p99 {p99:.1f} ms over {len(latencies)} probes; main-port /livez meanwhile: {status} in {main_ms:.0f} ms")
    return p99 < 50 and server.alive()


def open_connections(server):
    """Server-side TCP connections on the main port that are not yet closed (ss)."""
    out = subprocess.run(["ss", "-Htn", "state", "all", f"sport = :{server.port}"],
                         capture_output=True, text=True).stdout
    return sum(1 for line in out.splitlines() if line and not line.startswith("LISTEN") and "TIME-WAIT" not in line)


def check_dead(server):
    """1,000 clients send part of a request (head only, head + part of a body) and hang up."""
    socks = []
    for i in range(1000):
        sock = connect(server.port)
        if i % 2:
            sock.sendall(b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"tasks\":")
        else:
            sock.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n")
        socks.append(sock)
    time.sleep(0.5)
    held = open_connections(server)
    start = time.monotonic()
    for sock in socks:
        sock.close()
    remaining = held
    while time.monotonic() - start < 10:
        remaining = open_connections(server)
        if remaining == 0:
            break
        time.sleep(0.05)
    freed_in = time.monotonic() - start
    print(f"attack: dead: {held} connections held; after the clients hung up, {remaining} left after {freed_in:.2f} s")
    return held >= 900 and remaining == 0 and freed_in < 2.0 and server.alive()


def check_input_order(server):
    """order "input": task 0 waits 6 s, then 2,000 GETs of a 64 KiB upstream answer; the client
    reads nothing. Lines waiting for task 0 count against the stream buffer, so subtasks stop
    starting: the upstream sees a handful of requests, not 2,000 (125 MiB of lines)."""
    upstream = LoopbackUpstream(json.dumps("z" * 65536).encode(), keep_alive=True)
    url = f"http://{HOST}:{upstream.port}/big"
    tasks = [{"kind": "echo", "delay_ms": 6000, "value": 0}] + [{"kind": "http", "url": url} for _ in range(2000)]
    body = json.dumps({"tasks": tasks, "order": "input", "concurrency": 64, "timeout_ms": 30_000})
    baseline, _ = server.rss()
    sock = connect(server.port)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(job_request(body))
    peak = baseline
    for _ in range(80):
        peak = max(peak, server.rss()[0])
        time.sleep(0.05)
    hits = upstream.hits
    sock.close()
    upstream.stop()
    growth = peak - baseline
    print(f"attack: input-order: 2,000 GETs of 64 KiB behind a 6 s task 0, unread: {hits} upstream requests "
          f"in 4 s, RSS +{growth / MIB:.1f} MiB (unbounded, the lines would be {2000 * 64 / 1024:.0f} MiB)")
    return hits < 200 and growth < 48 * MIB and server.alive()


def check_deadline(server):
    """A job with a 1 s deadline whose reader never reads (its output fills every buffer first):
    its 200 long subtasks must be cancelled at the deadline, not when the connection times out."""
    big = "y" * 8192
    # The long ones first, so they are in flight before the output fills the buffers.
    tasks = [{"kind": "echo", "delay_ms": 60_000} for _ in range(200)] + \
            [{"kind": "echo", "value": big} for _ in range(2000)]
    body = json.dumps({"tasks": tasks, "timeout_ms": 1000, "concurrency": 5000})
    sock = connect(server.port)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    start = time.monotonic()
    sock.sendall(job_request(body))
    started = cleared = None
    peak = 0
    while time.monotonic() - start < 10:
        in_flight = server.metric("fanout_subtasks_in_flight") or 0
        peak = max(peak, in_flight)
        if started is None and in_flight > 0:
            started = time.monotonic() - start
        if started is not None and in_flight == 0:
            cleared = time.monotonic() - start
            break
        time.sleep(0.02)
    sock.close()
    print(f"attack: deadline: unread job with a 1 s deadline; {peak:.0f} subtasks in flight from "
          f"{'%.2f s' % started if started is not None else 'never'}, 0 at "
          f"{'%.2f s' % cleared if cleared else 'more than 10 s'} after the request was sent")
    return started is not None and cleared is not None and cleared - started < 2.5 and cleared > 0.9 and server.alive()


CHECKS = {
    "framing": check_framing,
    "bodies": check_bodies,
    "slowloris": check_slowloris,
    "dead": check_dead,
    "input-order": check_input_order,
    "deadline": check_deadline,
}


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    binary = sys.argv[1]
    names = sys.argv[2:] or list(CHECKS)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    passed = failed = 0
    for name in names:
        server = Server(binary, f"server.max_pending_body_bytes={PENDING_BODY_BUDGET}", "egress.allow=127.0.0.1",
                        f"server.connection_limit={CONNECTION_LIMIT}",
                        f"server.request_timeout_s={REQUEST_TIMEOUT_S}")
        try:
            ok = CHECKS[name](server)
        except Exception as error:  # a check that crashes is a failed check, with its reason
            print(f"attack: {name}: crashed: {error!r}")
            ok = False
        finally:
            alive = server.alive()
            server.stop()
        if not alive:
            print(f"attack: {name}: the server died; log {server.log_path}")
        print(f"attack: {name}: {'PASS' if ok else 'FAIL'}")
        passed += ok
        failed += not ok
    print(f"attack: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    main()
