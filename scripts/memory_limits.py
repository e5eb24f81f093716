#!/usr/bin/env python3
"""fanoutd started with the Kubernetes ConfigMap's values, loaded to each of its memory limits at
once, must stay under the pod's memory limit (deploy/kubernetes/deployment.yaml). Loopback only,
bounded in time. Run by scripts/memory-limits.sh BINARY.

The load, held together (config/README.md "Memory: the arithmetic" names each term):
  1. retained lines: detached jobs of big echo values until jobs.max_retained_bytes is nearly full;
  2. running jobs: streams that do not read (their stream buffers full) and jobs of
     limits.max_tasks long echo subtasks, until the server answers 503 memory-budget
     (limits.max_job_memory_bytes is spent);
  3. request bodies being read: server.max_pending_body_bytes / server.max_body_bytes uploads of
     the largest body, all but the last byte sent;
  4. connections: idle ones up to server.connection_limit (each gets its memory pool).
The peak is the kernel's high-water mark of the server's RSS (VmHWM), checked against the limit.
"""
import json
import os
import re
import resource
import socket
import subprocess
import sys
import tempfile
import time

from checklib import finish, free_ports

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MIB = 1024 * 1024


def configmap():
    text = open(os.path.join(REPO, "deploy/kubernetes/configmap.yaml")).read()
    body = text.split("fanoutd.json: |", 1)[1]
    return json.loads("\n".join(line[4:] for line in body.splitlines()))


def pod_limit():
    text = open(os.path.join(REPO, "deploy/kubernetes/deployment.yaml")).read()
    match = re.search(r"limits:\s*\n(?:\s+cpu: \S+\n)?\s+memory: (\d+)(Mi|Gi)", text)
    if not match:
        sys.exit("memory-limits: no memory limit found in deploy/kubernetes/deployment.yaml")
    return int(match.group(1)) * (MIB if match.group(2) == "Mi" else 1024 * MIB)


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def post(port, body, extra="", rcvbuf=None):
    """Sends a job; returns the connected socket (nothing read yet)."""
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(30)
    sock.connect(("127.0.0.1", port))
    try:
        sock.sendall(f"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{extra}"
                     f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    except (BrokenPipeError, ConnectionResetError):
        pass  # answered (refused) on the head and closed: the answer is still there to read
    return sock


def read_head(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    text = data.decode("latin-1")  # the head and whatever of the body came with it
    return int(text.split(" ", 2)[1]) if text.startswith("HTTP/") else 0, text


def read_rest(sock):
    """What else a refused request's answer holds (its problem document), within a second."""
    data = b""
    sock.settimeout(1)
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except OSError:
        pass
    return data.decode("latin-1")


def get(port, path):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data.decode()


def metric(port, name):
    for line in get(port, "/metrics").splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: memory_limits.py BINARY")
    binary = sys.argv[1]
    started = time.monotonic()
    config = configmap()
    limit = pod_limit()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    server_cfg, limits, jobs_cfg = config["server"], config["limits"], config["jobs"]
    work = tempfile.mkdtemp(prefix="fanoutd-memory.")
    port, admin = free_ports(2)
    config["server"].update(host="127.0.0.1", port=port, admin_port=admin)
    config["shutdown"]["grace_s"] = 0
    config["log"]["level"] = "info"
    open(os.path.join(work, "fanoutd.json"), "w").write(json.dumps(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FANOUT_")}
    log = open(os.path.join(work, "fanoutd.log"), "w")
    server = subprocess.Popen([binary, "serve", "--config", os.path.join(work, "fanoutd.json")],
                              stdout=log, stderr=log, env=env)
    held = []
    failures = []
    rss = {}

    def note(stage):
        rss[stage] = status_kib(server.pid, "VmRSS") / 1024
        print(f"memory-limits: {time.monotonic() - started:5.1f} s  {stage:44} RSS {rss[stage]:6.1f} MiB", flush=True)

    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if get(admin, "/livez").startswith("HTTP/1.1 200"):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("fanoutd did not start")
            time.sleep(0.1)
        note("started (baseline)")

        # 1. Retained lines: detached jobs of 100 echo values of 16000 bytes (~1.6 MB of lines
        #    each) until the next one would not fit.
        value = "r" * 16000
        retained_body = json.dumps({"detach": True, "tasks": [{"kind": "echo", "value": value}] * 100}).encode()
        max_retained = jobs_cfg["max_retained_bytes"]
        per_job = None
        while True:
            before = metric(admin, "fanout_retained_bytes")
            if per_job and before + per_job > max_retained:
                break
            sock = post(port, retained_body)
            status, _ = read_head(sock)
            sock.close()
            if status != 202:
                raise RuntimeError(f"a detached job was answered {status}")
            deadline = time.monotonic() + 20
            while metric(admin, "fanout_retained_jobs_running") > 0:
                if time.monotonic() > deadline:
                    raise RuntimeError("a detached job did not finish")
                time.sleep(0.02)
            per_job = metric(admin, "fanout_retained_bytes") - before
        retained = metric(admin, "fanout_retained_bytes")
        note(f"retained {retained / MIB:.0f} of {max_retained / MIB:.0f} MiB")

        # 2. Running jobs. First jobs whose stream buffers are full: in input order, 1000 quick
        #    lines (~110 KB) wait behind a first subtask due in 45 s, in fanoutd's memory (not in
        #    socket buffers), up to the stream buffer; a quarter of the jobs the replica may run.
        #    Then jobs of limits.max_tasks subtasks due in 45 s, until 503 memory-budget.
        #    One at a time, each until its head is read: jobs sent all at once would be refused
        #    while the others' decoding grants (13× the body) hold the budget.
        stalled_body = json.dumps({"order": "input", "tasks": [{"kind": "echo", "delay_ms": 45_000}]
                                   + [{"kind": "echo"}] * 1000}).encode()
        stalled = 0
        for _ in range(limits["max_concurrent_jobs"] // 4):
            sock = post(port, stalled_body, rcvbuf=4096)
            status, _ = read_head(sock)
            if status != 200:
                sock.close()
                raise RuntimeError(f"a stream was answered {status} before the budget could be spent")
            held.append(sock)
            stalled += 1
        time.sleep(1)
        note(f"{stalled} streams not read")
        big_body = json.dumps({"tasks": [{"kind": "echo", "delay_ms": 45_000}] * limits["max_tasks"]}).encode()
        big = 0
        phase_end = time.monotonic() + 30
        while True:
            if time.monotonic() > phase_end:
                raise RuntimeError(f"the job budget was not spent within 30 s ({big} jobs of {limits['max_tasks']} running)")
            sock = post(port, big_body)
            status, head = read_head(sock)
            if status != 200:
                body = head + read_rest(sock)
                sock.close()
                if status == 503 and "memory-budget" in body:
                    break
                raise RuntimeError(f"a {limits['max_tasks']}-task job was answered {head.splitlines()[:1]}")
            held.append(sock)
            big += 1
        note(f"+ {big} jobs of {limits['max_tasks']} subtasks (503 memory-budget)")
        in_flight = metric(admin, "fanout_jobs_in_flight")

        # 3. Request bodies being read: as many largest bodies as the pending budget holds.
        uploads = server_cfg["max_pending_body_bytes"] // server_cfg["max_body_bytes"]
        chunk = b" " * (server_cfg["max_body_bytes"] - 1)
        for _ in range(uploads):
            sock = socket.create_connection(("127.0.0.1", port), timeout=30)
            try:
                sock.sendall(f"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                             f"Content-Length: {server_cfg['max_body_bytes']}\r\n\r\n".encode() + chunk)
            except (BrokenPipeError, ConnectionResetError):
                status, head = read_head(sock)
                raise RuntimeError(f"a {server_cfg['max_body_bytes']}-byte upload was refused: {head.splitlines()[:1]}")
            held.append(sock)
        time.sleep(1)
        note(f"+ {uploads} bodies of {server_cfg['max_body_bytes'] / MIB:.0f} MiB being read")

        # 4. Idle connections up to the connection limit (they last request_timeout_s).
        idle = server_cfg["connection_limit"] - len(held) - 16
        for _ in range(max(idle, 0)):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.send(b"GET /livez HTTP/1.1\r\n")
            held.append(sock)
        time.sleep(2)
        note(f"+ {max(idle, 0)} idle connections")
        if server.poll() is not None:
            failures.append(f"fanoutd exited under the load (status {server.returncode})")
        peak = status_kib(server.pid, "VmHWM") * 1024
        print(f"memory-limits: {in_flight:.0f} jobs running; peak RSS {peak / MIB:.1f} MiB against the pod's "
              f"limit of {limit / MIB:.0f} MiB ({100 * peak / limit:.0f} %)")
        if peak >= limit:
            failures.append(f"peak RSS {peak / MIB:.1f} MiB is over the pod's memory limit {limit / MIB:.0f} MiB")
        if not get(admin, "/livez").startswith("HTTP/1.1 200"):
            failures.append("/livez stopped answering under the load")
    except Exception as error:  # noqa: BLE001 - reported with the log
        failures.append(f"{type(error).__name__}: {error}")
    finally:
        for sock in held:
            sock.close()
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
    print(f"memory-limits: {time.monotonic() - started:.1f} s in all")
    finish("memory-limits", failures, work, ("fanoutd.log",))


if __name__ == "__main__":
    main()
