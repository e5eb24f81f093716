#!/usr/bin/env python3
"""`/metrics` of a server that ran jobs of every outcome, checked by promtool (run by metrics-check.sh).

usage: scripts/metrics_check.py BINARY SCRAPE_FILE

Starts BINARY on loopback (attack.Server) with a tiny upstream on loopback (egress.allow
127.0.0.1), runs jobs that end every way (ok, failed by error and by deadline, a client that
hangs up, a retained job cancelled, input order, http subtasks answered 200 and 503 and refused)
and refusals of every common kind, then writes the admin listener's scrape to SCRAPE_FILE and
checks what a scrape alone can show: fanout_subtasks_total counts every subtask of every job
exactly once, the rejection reasons, the process_* families, fanout_build_info.
"""
import json
import socket
import sys
import time

import yaml

from attack import Server, get, job_request
from checklib import LoopbackUpstream

failures = []


def check(condition, message):
    print(f"metrics-check: {'ok  ' if condition else 'FAIL'} {message}")
    if not condition:
        failures.append(message)


def samples(text):
    """{'name{labels}': value} of every sample line."""
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            values[key] = float(value)
    return values


def run_job(port, job):
    """Streams `job` to its end; returns its lines."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(job_request(json.dumps(job)).replace(b"HTTP/1.1\r\n", b"HTTP/1.1\r\nConnection: close\r\n", 1))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = []
    # Chunked body: size line, data, CRLF; the lines are NDJSON inside.
    text = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        text += rest[:size]
        body = rest[size + 2:]
    for raw in text.decode().splitlines():
        lines.append(json.loads(raw))
    return head.split(b"\r\n", 1)[0].decode(), lines


def request(port, method, path, body=None, content_type="application/json"):
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        if body is not None:
            head += f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        sock.sendall(head.encode() + b"\r\n" + (body or b""))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data.partition(b"\r\n\r\n")[2]


def main():
    binary, scrape_path = sys.argv[1], sys.argv[2]
    upstream = LoopbackUpstream(status=lambda path: 503 if path == "/busy" else 200)
    up = f"http://127.0.0.1:{upstream.port}"
    server = Server(binary, "egress.allow=127.0.0.1")
    port = server.port
    tasks_run = 0
    try:
        jobs = [
            {"tasks": [{"kind": "echo", "value": 1}, {"kind": "echo", "delay_ms": 5, "value": 2}]},
            {"tasks": [{"kind": "echo", "delay_ms": 5, "error": "boom"}, {"kind": "echo", "value": 1}], "order": "input"},
            {"tasks": [{"kind": "echo", "value": 1}, {"kind": "echo", "delay_ms": 60000}, {"kind": "echo", "delay_ms": 60000}],
             "timeout_ms": 100, "concurrency": 1},
            {"tasks": [{"kind": "echo", "delay_ms": 5, "error": "x"}, {"kind": "echo", "delay_ms": 60000}], "fail_fast": True},
            {"tasks": [{"kind": "http", "url": up + "/fine"}, {"kind": "http", "url": up + "/busy"},
                       {"kind": "http", "url": "http://169.254.169.254/"}, {"kind": "http", "url": "http://127.0.0.1:1/"}]},
        ]
        for job in jobs:
            status, lines = run_job(port, job)
            check(status.endswith("200 OK") and lines[-1]["event"] == "end", f"job of {len(job['tasks'])} tasks ran: {lines[-1]}")
            tasks_run += len(job["tasks"])
        # A client that hangs up after the first line: 5 subtasks, 4 never reported.
        sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        sock.sendall(job_request(json.dumps({"tasks": [{"kind": "echo", "delay_ms": 5}] + [{"kind": "echo", "delay_ms": 60000}] * 4,
                                              "concurrency": 2, "heartbeat_ms": 0})))
        received = b""
        while b'"event":"result"' not in received:
            received += sock.recv(65536)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()
        tasks_run += 5
        # A retained job, cancelled.
        status, body = request(port, "POST", "/v1/jobs", json.dumps({"detach": True, "tasks": [{"kind": "echo", "delay_ms": 60000}] * 3}).encode())
        check(status == 202, f"detached job: {status}")
        job_id = json.loads(body)["job"]
        status, _ = request(port, "POST", f"/v1/jobs/{job_id}/cancel")
        check(status == 200, f"cancelled: {status}")
        tasks_run += 3
        # Refusals.
        refusals = [
            (("POST", "/v1/jobs", b'{"tasks":['), 400),
            (("POST", "/v1/jobs", b'{"tasks":[{"kind":"nope"}]}'), 400),
            (("POST", "/v1/jobs", b'{"tasks":[{"kind":"http","url":"http://127.0.0.1:9/","retries":11}]}'), 400),
            (("GET", "/nope", None), 404),
            (("GET", f"/v1/jobs/{'0' * 32}", None), 404),
        ]
        for (method, path, body), expected in refusals:
            status, _ = request(port, method, path, body)
            check(status == expected, f"{method} {path}: {status}")
        status, _ = request(port, "POST", "/v1/jobs", b"{}", content_type="text/plain")
        check(status == 415, f"text/plain job: {status}")

        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and (server.metric("fanout_jobs_in_flight") or 0) > 0:
            time.sleep(0.05)
        text = get(server.admin_port, "/metrics")[2].decode()
    finally:
        server.stop()
        upstream.stop()
    open(scrape_path, "w").write(text)

    values = samples(text)
    ended = {key: value for key, value in values.items() if key.startswith("fanout_subtasks_total{")}
    check(sum(ended.values()) == tasks_run, f"fanout_subtasks_total counts all {tasks_run} subtasks once: {sum(ended.values())}")
    for status in ["ok", "error", "timeout", "cancelled"]:
        check(any(f'status="{status}"' in key and value > 0 for key, value in ended.items()), f"some subtask ended {status}")
    for outcome in ["ok", "failed", "client_gone"]:
        check(values.get(f'fanout_jobs_total{{outcome="{outcome}"}}', 0) > 0, f"a job ended {outcome}")
    for reason, count in [("malformed_json", 1), ("invalid_job", 2), ("not_found", 1), ("unknown_job", 1), ("unsupported_media_type", 1)]:
        check(values.get(f'fanout_rejections_total{{reason="{reason}"}}') == count, f'fanout_rejections_total{{reason="{reason}"}} == {count}')
    for statusClass in ["2xx", "5xx", "error"]:
        check(values.get(f'fanout_upstream_requests_total{{class="{statusClass}"}}', 0) > 0, f"an upstream answer of class {statusClass}")
    check(values.get("fanout_subtasks_in_flight") == 0 and values.get("fanout_jobs_in_flight") == 0, "nothing in flight at the end")
    for name in ["process_cpu_seconds_total", "process_resident_memory_bytes", "process_virtual_memory_bytes",
                 "process_open_fds", "process_max_fds", "process_start_time_seconds"]:
        check(values.get(name, 0) > 0, f"{name} = {values.get(name)}")
    check(abs(values.get("process_start_time_seconds", 0) - time.time()) < 600, "process_start_time_seconds is about now")
    version = yaml.safe_load(open("openapi.yaml"))["info"]["version"]
    check(values.get(f'fanout_build_info{{version="{version}"}}') == 1, f"fanout_build_info{{version=\"{version}\"}} == 1 (openapi.yaml's version)")
    if failures:
        sys.exit(f"metrics-check: {len(failures)} checks failed")


if __name__ == "__main__":
    main()
