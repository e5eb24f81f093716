#!/usr/bin/env python3
"""The cost of a retained job: one detached job of N instant echo tasks into the memory store.

usage: bench/retained.py URL PID [TASKS]   (127.0.0.1 only)
Prints JSON: lines (N results + the end line), the seconds from the POST to `finished`,
lines_per_s, fanout_retained_bytes / fanout_retained_lines from /metrics (bytes per retained
line, as the store counts them), and the server's RSS growth per line.
"""
import json, sys, time, urllib.request

url, pid = sys.argv[1].rstrip('/'), int(sys.argv[2])
tasks = int(sys.argv[3]) if len(sys.argv) > 3 else 50000


def rss_kib():
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])


def metric(name):
    with urllib.request.urlopen(url + '/metrics') as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + ' '):
                return float(line.split()[1])
    return 0.0


job = {"tasks": [{"kind": "echo", "delay_ms": 0, "value": i} for i in range(tasks)],
       "concurrency": tasks, "detach": True}
body = json.dumps(job).encode()
before_rss, before_bytes, before_lines = rss_kib(), metric('fanout_retained_bytes'), metric('fanout_retained_lines')
t0 = time.perf_counter()
req = urllib.request.Request(url + '/v1/jobs', body, {'Content-Type': 'application/json'})
with urllib.request.urlopen(req) as r:
    assert r.status == 202, r.status
    location = r.headers['Location']
while True:
    with urllib.request.urlopen(url + location) as r:
        status = json.loads(r.read())
    if status['state'] == 'finished':
        break
    time.sleep(0.005)
elapsed = time.perf_counter() - t0
lines = metric('fanout_retained_lines') - before_lines
stored = metric('fanout_retained_bytes') - before_bytes
growth = (rss_kib() - before_rss) * 1024
print(json.dumps({"tasks": tasks, "lines": int(lines), "seconds": round(elapsed, 3),
                  "lines_per_s": round(lines / elapsed), "stored_bytes_per_line": round(stored / lines, 1),
                  "rss_bytes_per_line": round(growth / lines, 1), "body_bytes_per_task": round(len(body) / tasks, 1)}))
