#!/usr/bin/env python3
"""Retained-job store figures for BENCHMARKS.md (standard library only).

    bench/retained_store.py URL [--lines 20000] [--resumes 50]

Against a running fanoutd at URL (its jobs.store is what is measured):
  - lines/s: a detached job of --lines echo subtasks without delay (every outcome known at once,
    so the store's appends are the bottleneck), timed from the POST to the status `finished`;
  - resume latency: --resumes times, a reader connects to GET /v1/jobs/{id}/events?after=N of
    that finished job (N random) and the time to its first replayed line is taken; median and
    p95 are printed.
"""

import argparse
import http.client
import json
import random
import statistics
import sys
import time
import urllib.parse


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--lines", type=int, default=20000)
    parser.add_argument("--resumes", type=int, default=50)
    args = parser.parse_args()
    parts = urllib.parse.urlsplit(args.url)

    def connect():
        return http.client.HTTPConnection(parts.hostname, parts.port, timeout=300)

    job = {"detach": True, "heartbeat_ms": 0, "tasks": [{"kind": "echo", "value": i} for i in range(args.lines)]}
    body = json.dumps(job).encode()
    conn = connect()
    began = time.perf_counter()
    conn.request("POST", "/v1/jobs", body=body, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    answer = json.loads(resp.read())
    assert resp.status == 202, answer
    job_id = answer["job"]
    while True:
        conn.request("GET", f"/v1/jobs/{job_id}")
        resp = conn.getresponse()
        status = json.loads(resp.read())
        if status["state"] != "running":
            break
        time.sleep(0.01)
    elapsed = time.perf_counter() - began
    stored = status["last_seq"]
    print(f"stored {stored} lines in {elapsed:.2f} s: {stored / elapsed:.0f} lines/s (upload and validation included)")

    latencies = []
    for _ in range(args.resumes):
        after = random.randint(0, stored - 2)
        reader = connect()
        start = time.perf_counter()
        reader.request("GET", f"/v1/jobs/{job_id}/events?after={after}")
        resp = reader.getresponse()
        first = json.loads(resp.readline())
        latencies.append((time.perf_counter() - start) * 1000)
        assert first["seq"] == after + 1, first
        reader.close()
    latencies.sort()
    p95 = latencies[max(0, int(len(latencies) * 0.95) - 1)]
    print(f"resume (connect → first replayed line) over {len(latencies)} reads: median {statistics.median(latencies):.2f} ms, p95 {p95:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
