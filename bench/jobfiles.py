"""The job files fanclient posts (bench/run-all.sh, bench/issue12.sh), written into DIR:
one job of 100,000 x 100 ms echo, one-task 1 s and 10 s jobs, and 1,000 http GETs to the
raw-libmicrohttpd peer's /healthz on UPSTREAM_PORT.

usage: python3 bench/jobfiles.py DIR UPSTREAM_PORT
"""
import json
import sys

directory, port = sys.argv[1], int(sys.argv[2])


def write(name, job):
    with open(f"{directory}/{name}", "w") as out:
        out.write(json.dumps(job, separators=(",", ":")))


write("burst.json", {"tasks": [{"kind": "echo", "delay_ms": 100, "value": i} for i in range(100000)], "concurrency": 100000})
write("stream1s.json", {"tasks": [{"kind": "echo", "delay_ms": 1000, "value": "x"}]})
write("stream10s.json", {"tasks": [{"kind": "echo", "delay_ms": 10000, "value": "x"}]})
write("http1000.json", {"tasks": [{"kind": "http", "url": f"http://127.0.0.1:{port}/healthz?n={i}"} for i in range(1000)], "concurrency": 1000})
