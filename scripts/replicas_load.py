#!/usr/bin/env python3
"""Clients and a counting upstream for scripts/replicas.sh (standard library only).

    replicas_load.py upstream --port P --counts FILE
        A loopback HTTP upstream: GET /t/<job>/<i>?ms=N answers {"ok":true} after N ms and counts
        each path's hits; GET /counts answers the counts as JSON (also written to FILE on SIGTERM).
    replicas_load.py run --replica NAME=URL ... --proxy URL --upstream URL --out FILE \
            --started-file F [--timeout 150]
        Submits detached jobs with an Idempotency-Key straight to the replicas (long jobs to the
        first, which the script SIGKILLs; short ones to the others), touches --started-file, then
        follows every job through HAProxy, resuming from the last seq after any cut, while it
        retries each submission with the same key through HAProxy. Checks, and exits 1 on any
        failure:
          - every job ends (its end line is read) within --timeout;
          - every reader sees seq 1, 2, 3 ... exactly once, in order, and every subtask exactly once;
          - jobs of the killed replica end `interrupted`, their missing subtasks as `cancelled`
            lines with "code":"interrupted"; the others end `finished` with every subtask `ok`;
          - every idempotent retry answers the same job, and no upstream path is hit twice (no
            subtask ran twice).
"""

import argparse
import http.client
import http.server
import json
import random
import signal
import sys
import threading
import time
import urllib.parse


def upstream(args):
    counts = {}
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_):
            pass

        def do_GET(self):
            url = urllib.parse.urlsplit(self.path)
            if url.path == "/counts":
                with lock:
                    body = json.dumps(counts).encode()
            else:
                with lock:
                    counts[url.path] = counts.get(url.path, 0) + 1
                ms = int(urllib.parse.parse_qs(url.query).get("ms", ["0"])[0])
                time.sleep(ms / 1000)
                body = b'{"ok":true}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True

    def stop(*_):
        with lock:
            open(args.counts, "w").write(json.dumps(counts))
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    server.serve_forever()


def split(url):
    parts = urllib.parse.urlsplit(url)
    return parts.hostname, parts.port


def request(base, method, path, body=None, headers=None, timeout=10):
    host, port = split(base)
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {name.lower(): value for name, value in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def make_job(name, upstream_url, long):
    tasks = []
    for i in range(6):
        ms = random.randint(500, 6000) if (not long or i < 2) else 45000
        tasks.append({"id": f"s{i}", "kind": "http", "url": f"{upstream_url}/t/{name}/{i}?ms={ms}"})
    return {"detach": True, "timeout_ms": 120000, "tasks": tasks}


def submit(base, job, key, attempts=1):
    body = json.dumps(job).encode()
    headers = {"Content-Type": "application/json", "Idempotency-Key": key}
    last = None
    for _ in range(attempts):
        try:
            status, hdrs, data = request(base, "POST", "/v1/jobs", body, headers)
            if status == 202:
                return json.loads(data)["job"], hdrs.get("idempotent-replayed") == "true"
            last = f"status {status}: {data[:200]!r}"
        except OSError as error:
            last = str(error)
        time.sleep(0.5)
    raise RuntimeError(f"submission with key {key} failed: {last}")


def follow(proxy, job, deadline, record):
    """Reads the job's lines through the proxy to the end line, resuming after every cut."""
    after = 0
    seen = []
    resumes = 0
    while time.time() < deadline:
        host, port = split(proxy)
        conn = http.client.HTTPConnection(host, port, timeout=15)
        try:
            conn.request("GET", f"/v1/jobs/{job}/events?after={after}")
            resp = conn.getresponse()
            if resp.status != 200:
                resp.read()
                time.sleep(0.3)
                continue
            while True:
                line = resp.readline()
                if not line:
                    break
                value = json.loads(line)
                seen.append(value)
                after = value["seq"]
                if value["event"] == "end":
                    record.update(lines=seen, resumes=resumes, ended=True)
                    return
        except (OSError, http.client.HTTPException, ValueError):
            pass
        finally:
            conn.close()
        resumes += 1
        time.sleep(0.2)
    record.update(lines=seen, resumes=resumes, ended=False)


def run(args):
    replicas = [r.split("=", 1) for r in args.replica]
    killed_name = replicas[0][0]
    jobs = []
    for index, (name, url) in enumerate(replicas):
        for n in range(4):
            label = f"{name}{n}"
            job = make_job(label, args.upstream, long=(index == 0))
            key = f"replicas-{label}-{random.getrandbits(48):x}"
            job_id, _ = submit(url, job, key, attempts=20)
            jobs.append({"name": label, "replica": name, "key": key, "job": job, "id": job_id})
    open(args.started_file, "w").write("started\n")
    deadline = time.time() + args.timeout
    records = {j["id"]: {} for j in jobs}
    threads = [threading.Thread(target=follow, args=(args.proxy, j["id"], deadline, records[j["id"]])) for j in jobs]
    for t in threads:
        t.start()
    retries = []

    def retry_all():
        for j in jobs:
            try:
                job_id, replayed = submit(args.proxy, j["job"], j["key"], attempts=40)
                retries.append((j["id"], job_id, replayed))
            except RuntimeError as error:
                retries.append((j["id"], str(error), False))

    retry_all()
    for t in threads:
        t.join()
    retry_all()
    failures = []
    for j in jobs:
        record = records[j["id"]]
        lines = record.get("lines", [])
        if not record.get("ended"):
            failures.append(f"{j['name']}: no end line within {args.timeout} s ({len(lines)} lines)")
            continue
        seqs = [line["seq"] for line in lines]
        if seqs != list(range(1, len(seqs) + 1)):
            failures.append(f"{j['name']}: seqs not 1..n exactly once in order: {seqs}")
        results = [line for line in lines if line["event"] == "result"]
        ids = sorted(line["id"] for line in results)
        if ids != sorted(t["id"] for t in j["job"]["tasks"]):
            failures.append(f"{j['name']}: subtasks seen {ids}")
        status = json.loads(request(args.proxy, "GET", f"/v1/jobs/{j['id']}")[2])
        if j["replica"] == killed_name:
            interrupted = [line for line in results if line.get("error", {}).get("code") == "interrupted"]
            if status["state"] != "interrupted" or not interrupted:
                failures.append(f"{j['name']}: on the killed replica, state {status['state']}, {len(interrupted)} interrupted lines")
        elif status["state"] != "finished" or status["ok"] != len(j["job"]["tasks"]):
            failures.append(f"{j['name']}: state {status['state']}, ok {status['ok']}")
    for original, answered, replayed in retries:
        if original != answered or not replayed:
            failures.append(f"idempotent retry of {original} answered {answered} (replayed: {replayed})")
    counts = json.loads(request(args.upstream, "GET", "/counts")[2])
    twice = {path: n for path, n in counts.items() if n > 1}
    if twice:
        failures.append(f"subtasks run more than once: {twice}")
    summary = {
        "jobs": len(jobs),
        "lines": sum(len(r.get("lines", [])) for r in records.values()),
        "resumes": sum(r.get("resumes", 0) for r in records.values()),
        "interrupted_jobs": sum(1 for j in jobs if j["replica"] == killed_name),
        "idempotent_retries": len(retries),
        "upstream_hits": sum(counts.values()),
        "failures": failures,
    }
    open(args.out, "w").write(json.dumps(summary, indent=1))
    print(f"replicas: {summary['jobs']} jobs, {summary['lines']} lines read, {summary['resumes']} resumes, "
          f"{summary['interrupted_jobs']} interrupted, {summary['idempotent_retries']} idempotent retries, "
          f"{summary['upstream_hits']} upstream hits", file=sys.stderr)
    for failure in failures:
        print(f"replicas: FAIL {failure}", file=sys.stderr)
    return 1 if failures else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("upstream")
    up.add_argument("--port", type=int, required=True)
    up.add_argument("--counts", required=True)
    r = sub.add_parser("run")
    r.add_argument("--replica", action="append", required=True)
    r.add_argument("--proxy", required=True)
    r.add_argument("--upstream", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--started-file", required=True)
    r.add_argument("--timeout", type=float, default=150)
    args = parser.parse_args()
    return upstream(args) if args.command == "upstream" else run(args)


if __name__ == "__main__":
    sys.exit(main())
