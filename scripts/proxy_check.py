#!/usr/bin/env python3
"""The shipped proxy recipes (deploy/nginx/fanoutd.conf, deploy/haproxy/haproxy.cfg) in front of
a real fanoutd, on loopback only. Run by scripts/proxy-check.sh BINARY (CI: .ci/ops-checks.sh).

Per route (direct, nginx, HAProxy):
  - per-line lag: a job of echo subtasks due every 50 ms; each line's lag is its arrival time
    minus the request's send time minus its own elapsed_ms (the server's time from the job's
    start). The median lag through a proxy must be within 5 ms of the direct one.
  - hang-up: a job of long (30 s) echo subtasks; the client reads the response head, waits, then
    closes its socket. The server's "job finished" log line for that job must say client_gone, no
    subtask ok, and a duration under the subtasks' delay; the detection time is that line's ts
    minus the close.
Prints the figures and exits non-zero on any failure. Each wait is bounded.
"""
import datetime
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from checklib import finish, free_ports

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAG_TASKS = 20
LAG_SPACING_MS = 50
LAG_BUDGET_MS = 5.0
HANGUP_TASKS = 4
# Detection must be well within a heartbeat: both recipes pass the hang-up on at once (nginx by
# default, HAProxy with option abortonclose); fanoutd's watchdog polls every 250 ms.
HANGUP_LIMIT_S = {"direct": 2.0, "nginx": 2.0, "haproxy": 2.0}


def job_body(tasks):
    return json.dumps({"tasks": tasks}).encode()


def send_job(port, body):
    """Connects and sends a POST /v1/jobs; returns (socket, send time)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    head = (
        f"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    sent = time.perf_counter()
    sock.sendall(head + body)
    return sock, sent


class ChunkedLines:
    """Reads a chunked (or close-delimited) response; yields (arrival time, line) per complete line."""

    def __init__(self, sock):
        self.sock = sock
        self.raw = b""
        self.head = None
        self.body = b""

    def read_head(self, limit=10):
        deadline = time.monotonic() + limit
        while b"\r\n\r\n" not in self.raw:
            self.sock.settimeout(max(deadline - time.monotonic(), 0.01))
            data = self.sock.recv(65536)
            if not data:
                raise RuntimeError("connection closed before the response head")
            self.raw += data
        head, self.raw = self.raw.split(b"\r\n\r\n", 1)
        self.head = head.decode("latin-1")
        self.chunked = "transfer-encoding: chunked" in self.head.lower()
        return self.head

    def header(self, name):
        for line in self.head.split("\r\n")[1:]:
            key, _, value = line.partition(":")
            if key.strip().lower() == name.lower():
                return value.strip()
        return None

    def _decode(self):
        """Moves whole chunks from raw to body; returns False at the last chunk."""
        if not self.chunked:
            self.body += self.raw
            self.raw = b""
            return True
        while b"\r\n" in self.raw:
            size_line, rest = self.raw.split(b"\r\n", 1)
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                return False
            if len(rest) < size + 2:
                return True
            self.body += rest[:size]
            self.raw = rest[size + 2:]
        return True

    def lines(self, limit=30):
        deadline = time.monotonic() + limit
        more = self._decode()
        while True:
            now = time.perf_counter()
            while b"\n" in self.body:
                line, self.body = self.body.split(b"\n", 1)
                yield now, json.loads(line)
            if not more:
                return
            self.sock.settimeout(max(deadline - time.monotonic(), 0.01))
            data = self.sock.recv(65536)
            if not data:
                return
            self.raw += data
            more = self._decode()


def lag_run(port):
    """Lags in ms of every result line of one job through `port`."""
    tasks = [{"id": f"t{i}", "kind": "echo", "delay_ms": LAG_SPACING_MS * (i + 1)} for i in range(LAG_TASKS)]
    sock, sent = send_job(port, job_body(tasks))
    reader = ChunkedLines(sock)
    status = reader.read_head()
    if " 200 " not in status.split("\r\n")[0]:
        raise RuntimeError(f"job answered {status.splitlines()[0]}")
    lags = []
    end = None
    for arrival, line in reader.lines():
        if line.get("event") == "result":
            lags.append((arrival - sent) * 1000 - line["elapsed_ms"])
        elif line.get("event") == "end":
            end = line
            break
    sock.close()
    if end is None or len(lags) != LAG_TASKS:
        raise RuntimeError(f"incomplete stream: {len(lags)} result lines, end line {'seen' if end else 'missing'}")
    return lags


def wait_log_line(log_path, job_id, limit):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        with open(log_path) as f:
            for text in f:
                if job_id not in text or '"job finished"' not in text:
                    continue
                entry = json.loads(text)
                if entry.get("job.id") == job_id:
                    return entry
        time.sleep(0.02)
    return None


def hangup_run(port, log_path, limit):
    """Seconds from the client's close to the server's end of the job (from its log line)."""
    tasks = [{"id": f"long{i}", "kind": "echo", "delay_ms": 30_000} for i in range(HANGUP_TASKS)]
    sock, _ = send_job(port, job_body(tasks))
    reader = ChunkedLines(sock)
    reader.read_head()
    job_id = reader.header("X-Job-Id")
    if not job_id:
        raise RuntimeError("no X-Job-Id on the response")
    time.sleep(0.5)
    closed = time.time()
    sock.close()
    entry = wait_log_line(log_path, job_id, limit + 30)
    if entry is None:
        raise RuntimeError(f"job {job_id}: no 'job finished' log line within {limit + 30} s of the hang-up")
    finished = datetime.datetime.fromisoformat(entry["ts"].replace("Z", "+00:00")).timestamp()
    # Ended by the hang-up, before any of its subtasks was due (their lines have nowhere to go, so
    # the log counts them in none of ok/error/timeout/cancelled).
    if entry.get("job.client_gone") != "true" or entry.get("job.ok") != "0" or int(entry["job.duration_ms"]) >= 30_000:
        raise RuntimeError(f"job {job_id} did not end by the hang-up: {entry}")
    return finished - closed


def wait_http(port, path="/livez", limit=20):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


def instantiate(text, replacements):
    for old, new in replacements:
        if old not in text:
            raise RuntimeError(f"the recipe no longer contains {old!r}")
        text = text.replace(old, new)
    return text


def seconds(text):
    """An nginx or HAProxy duration (`3610s`, `60m`, `500ms`, `2`) in seconds."""
    match = re.fullmatch(r"(\d+)(ms|s|m|h)?", text)
    if not match:
        raise RuntimeError(f"cannot read the duration {text!r}")
    return int(match.group(1)) * {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600}[match.group(2)]


def check_timeouts(nginx, haproxy):
    """The idle timeouts of both recipes outlast the longest silence a stream may have: the
    largest job deadline of the shipped configurations (heartbeat_ms 0 sends nothing before it)."""
    longest = 0
    for path in ("config/fanoutd.json", "deploy/kubernetes/configmap.yaml"):
        text = open(os.path.join(REPO, path)).read()
        if path.endswith(".yaml"):
            body = text.split("fanoutd.json: |", 1)[1]
            text = "\n".join(line[4:] for line in body.splitlines())
        longest = max(longest, json.loads(text)["limits"]["max_job_timeout_ms"] / 1000)
    found = {
        "nginx proxy_read_timeout": re.search(r"^\s*proxy_read_timeout\s+(\S+);", nginx, re.M),
        "haproxy timeout server": re.search(r"^\s*timeout server\s+(\S+)", haproxy, re.M),
        "haproxy timeout client": re.search(r"^\s*timeout client\s+(\S+)", haproxy, re.M),
    }
    problems = []
    for name, match in found.items():
        if not match:
            problems.append(f"{name} is not set")
        elif seconds(match.group(1)) <= longest:
            problems.append(f"{name} {match.group(1)} does not outlast limits.max_job_timeout_ms ({longest:.0f} s)")
        else:
            print(f"proxy-check: {name} {match.group(1)} > the longest job deadline ({longest:.0f} s)")
    if not re.search(r"^\s*option http-no-delay", haproxy, re.M):
        problems.append("the HAProxy recipe lacks option http-no-delay")
    if not re.search(r"^\s*proxy_buffering off;", nginx, re.M):
        problems.append("the nginx recipe lacks proxy_buffering off")
    return problems


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: proxy_check.py BINARY")
    binary = sys.argv[1]
    for tool in ("nginx", "haproxy"):
        if not shutil.which(tool):
            sys.exit(f"proxy-check: {tool} is not installed")
    work = tempfile.mkdtemp(prefix="fanoutd-proxy.")
    port, admin, nginx_port, haproxy_port = free_ports(4)
    log_path = os.path.join(work, "fanoutd.log")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FANOUT_")}
    procs = []
    failures = []
    nginx_recipe = open(os.path.join(REPO, "deploy/nginx/fanoutd.conf")).read()
    haproxy_recipe = open(os.path.join(REPO, "deploy/haproxy/haproxy.cfg")).read()
    failures += check_timeouts(nginx_recipe, haproxy_recipe)
    try:
        with open(log_path, "w") as log:
            procs.append(subprocess.Popen(
                [binary, "serve", "--config", os.path.join(REPO, "config/fanoutd.json"), "--host", "127.0.0.1",
                 "--port", str(port), "--admin-port", str(admin), "--log-format", "json", "--set", "shutdown.grace_s=2"],
                stdout=log, stderr=log, env=env))
        nginx_conf = instantiate(nginx_recipe, [
            ("server 127.0.0.1:8080;", f"server 127.0.0.1:{port};"),
            ("listen 80;", f"listen 127.0.0.1:{nginx_port};"),
        ])
        open(os.path.join(work, "fanoutd.conf"), "w").write(nginx_conf)
        temp = os.path.join(work, "nginx-temp")
        os.makedirs(temp)
        open(os.path.join(work, "nginx.conf"), "w").write(f"""
daemon off;
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log info;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    include {work}/fanoutd.conf;
}}
""")
        haproxy_conf = instantiate(haproxy_recipe, [
            ("bind :80", f"bind 127.0.0.1:{haproxy_port}"),
            ("127.0.0.1:8080 check port 8081", f"127.0.0.1:{port} check port {admin}"),
        ])
        open(os.path.join(work, "haproxy.cfg"), "w").write(haproxy_conf)
        subprocess.run(["nginx", "-t", "-q", "-p", work, "-c", f"{work}/nginx.conf"], check=True)
        subprocess.run(["haproxy", "-c", "-q", "-f", f"{work}/haproxy.cfg"], check=True)
        procs.append(subprocess.Popen(["nginx", "-p", work, "-c", f"{work}/nginx.conf"],
                                      stderr=open(os.path.join(work, "nginx.out"), "w")))
        procs.append(subprocess.Popen(["haproxy", "-db", "-f", f"{work}/haproxy.cfg"],
                                      stdout=open(os.path.join(work, "haproxy.out"), "w"), stderr=subprocess.STDOUT))
        routes = {"direct": port, "nginx": nginx_port, "haproxy": haproxy_port}
        for name, p in routes.items():
            if not wait_http(p):
                raise RuntimeError(f"{name} (:{p}) does not answer GET /livez")
        # HAProxy's health check must have passed (rise 2 at 2 s) before a job goes through it.
        if not wait_http(haproxy_port, "/readyz", 20):
            raise RuntimeError("HAProxy does not route to fanoutd")

        lags = {name: [] for name in routes}
        for _ in range(2):  # interleaved, so a burst of load on the machine hits every route alike
            for name, p in routes.items():
                lags[name] += lag_run(p)
        direct = statistics.median(lags["direct"])
        print(f"proxy-check: per-line lag over {2 * LAG_TASKS} lines ({LAG_SPACING_MS} ms apart), ms:")
        for name, values in lags.items():
            median = statistics.median(values)
            over = median - direct
            print(f"  {name:8} median {median:6.2f}  max {max(values):6.2f}  median over direct {over:+6.2f}")
            if name != "direct" and over > LAG_BUDGET_MS:
                failures.append(f"{name}: median lag {over:.2f} ms over direct (budget {LAG_BUDGET_MS} ms)")

        print("proxy-check: hang-up to the job's end (its subtasks cancelled), from the server's log:")
        for name, p in routes.items():
            detected = hangup_run(p, log_path, HANGUP_LIMIT_S[name])
            print(f"  {name:8} {detected * 1000:7.0f} ms")
            if detected > HANGUP_LIMIT_S[name]:
                failures.append(f"{name}: hang-up noticed after {detected:.2f} s (limit {HANGUP_LIMIT_S[name]} s)")
    except Exception as error:  # noqa: BLE001 - any failure is reported with the logs
        failures.append(f"{type(error).__name__}: {error}")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
    finish("proxy-check", failures, work, ("fanoutd.log", "nginx-error.log", "haproxy.out"), tail=10)


if __name__ == "__main__":
    main()
