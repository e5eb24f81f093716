#!/usr/bin/env python3
"""http-kind benchmarks for fanoutd and its peers (all on 127.0.0.1).

  httpbench.py fanout --url http://127.0.0.1:8080 --upstream http://127.0.0.1:9000 [--tasks 1000] [--rounds 5]
      one job of N http GET /fast subtasks, repeated: subtasks per second and wall overhead (median)
  httpbench.py hedge --url ... --upstream ... [--tasks 200] [--rounds 10] [--hedge-ms 15]
      jobs of N GET /tail subtasks (p99 = 20 x median) with and without hedge_after_ms:
      subtask latency p50/p99 and job wall time p50/p99

Prints one JSON object per run. Exit 1 if a job broke the contract (missing lines, no end line, non-ok results).
"""
import argparse, asyncio, json, statistics, sys, time
from urllib.parse import urlsplit


async def run_job(url, job):
    u = urlsplit(url)
    reader, writer = await asyncio.open_connection(u.hostname, u.port, limit=1 << 22)
    body = json.dumps(job).encode()
    writer.write((f"POST /v1/jobs HTTP/1.1\r\nHost: {u.hostname}\r\nContent-Type: application/json\r\n"
                  f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body)
    t0 = time.perf_counter()
    raw = await reader.read()
    wall = time.perf_counter() - t0
    writer.close()
    head, _, rest = raw.partition(b"\r\n\r\n")
    if b"chunked" in head.lower():
        data, buf = b"", rest
        while buf:
            size_line, _, buf = buf.partition(b"\r\n")
            size = int(size_line.split(b";")[0] or b"0", 16)
            if size == 0:
                break
            data, buf = data + buf[:size], buf[size + 2:]
    else:
        data = rest
    lines = [json.loads(l) for l in data.split(b"\n") if l.strip()]
    return wall, lines


def problems(lines, total):
    results = [l for l in lines if l.get("event") == "result"]
    out = []
    if sorted(r["index"] for r in results) != list(range(total)):
        out.append(f"{len(results)} result lines for {total} tasks")
    if not lines or lines[-1].get("event") != "end":
        out.append("no end line")
    bad = [r for r in results if r.get("status") != "ok"]
    if bad:
        out.append(f"{len(bad)} non-ok results, e.g. {bad[0]}")
    return out


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


async def fanout(a):
    job = {"tasks": [{"kind": "http", "url": f"{a.upstream}/fast"} for _ in range(a.tasks)], "concurrency": a.tasks}
    walls, issues = [], []
    await run_job(a.url, job)  # warm-up: connection pools
    for _ in range(a.rounds):
        wall, lines = await run_job(a.url, job)
        walls.append(wall)
        issues += problems(lines, a.tasks)
    med = statistics.median(walls)
    return {"scenario": "http_fanout", "url": a.url, "tasks": a.tasks, "rounds": a.rounds,
            "wall_ms_median": round(med * 1000, 1), "subtasks_per_s": round(a.tasks / med),
            "problems": issues[:3]}


async def hedge(a):
    out = []
    for hedge_ms in (None, a.hedge_ms):
        task = {"kind": "http", "url": f"{a.upstream}/tail"}
        if hedge_ms:
            task["hedge_after_ms"] = hedge_ms
        job = {"tasks": [dict(task) for _ in range(a.tasks)], "concurrency": a.tasks}
        latencies, walls, issues = [], [], []
        for _ in range(a.rounds):
            wall, lines = await run_job(a.url, job)
            walls.append(wall * 1000)
            issues += problems(lines, a.tasks)
            latencies += [l["elapsed_ms"] for l in lines if l.get("event") == "result"]
        out.append({"scenario": "hedge", "hedge_after_ms": hedge_ms, "tasks": a.tasks, "rounds": a.rounds,
                    "subtask_ms_p50": round(pct(latencies, .5), 1), "subtask_ms_p99": round(pct(latencies, .99), 1),
                    "job_ms_p50": round(pct(walls, .5), 1), "job_ms_max": round(max(walls), 1),
                    "problems": issues[:3]})
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scenario", choices=["fanout", "hedge"])
    p.add_argument("--url", required=True)
    p.add_argument("--upstream", required=True)
    p.add_argument("--tasks", type=int)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--hedge-ms", type=int, default=15)
    a = p.parse_args()
    a.tasks = a.tasks or (1000 if a.scenario == "fanout" else 200)
    result = asyncio.run(fanout(a) if a.scenario == "fanout" else hedge(a))
    for r in result if isinstance(result, list) else [result]:
        print(json.dumps(r))
        if r["problems"]:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
