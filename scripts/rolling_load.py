#!/usr/bin/env python3
"""Bounded job load for scripts/rolling-restart.sh (standard library only).

    rolling_load.py run --url http://127.0.0.1:PORT --records OUT.json --done-file F \
        [--workers 12] [--min-seconds 20] [--max-seconds 60]
    rolling_load.py report --records OUT.json --events EVENTS.txt --logs DIR
    rolling_load.py haproxy-state --socket SOCK --backend BE --server NAME

`run` keeps `--workers` clients busy. Each one submits a job of 3 to 5 echo subtasks that take
1 to 2 s (one of them may fail on purpose) and reads the whole NDJSON stream over raw HTTP/1.1.
It then checks the stream line by line against the job it sent:
  - exactly one result per subtask, with the expected status and value or error;
  - `done` counting up (or `index + 1` in input order);
  - heartbeats well-formed;
  - the end line last, with matching counts and the `X-Job-Id`;
  - a clean chunked end.
A 503 (the server is draining or saturated; the job never started) is counted on its own and
the same job is submitted again after a short pause, up to 50 times. The load stops once
`--min-seconds` have passed and `--done-file` exists, or after `--max-seconds` whatever happens.
Jobs already running then finish.

`report` prints the counts and exits 1 on any of the following:
  - a cut or invalid stream;
  - an unexpected status;
  - a transport error;
  - a replica that did not exit 0 after SIGTERM;
  - a restart that had no job in flight on the stopped replica;
  - no job served while a replica was down;
  - a mismatch between the jobs the client saw and those the replicas logged.
"""

import argparse
import asyncio
import json
import os
import random
import re
import socket
import sys
import time

READ_TIMEOUT = 10.0  # seconds without a byte before a stream counts as cut (jobs take <= 2 s)


# ----------------------------------------------------------------------------------------- run

def make_job(serial):
    count = random.randint(3, 5)
    failing = random.randrange(count) if random.random() < 0.5 else None
    tasks, expected = [], []
    for index in range(count):
        task = {"id": f"j{serial}-t{index}", "kind": "echo", "delay_ms": random.randint(1000, 2000)}
        if index == failing:
            task["error"] = f"planned failure {serial}/{index}"
            expected.append(("error", task["error"]))
        else:
            task["value"] = {"serial": serial, "index": index}
            expected.append(("ok", task["value"]))
        tasks.append(task)
    job = {"tasks": tasks, "order": random.choice(["completion", "input"]), "heartbeat_ms": 500}
    return job, expected


class StreamCut(Exception):
    pass


class StreamInvalid(Exception):
    pass


async def read_line(reader):
    line = await asyncio.wait_for(reader.readline(), READ_TIMEOUT)
    if not line.endswith(b"\n"):
        raise StreamCut("connection closed before the response was complete")
    return line.rstrip(b"\r\n").decode("latin-1")


async def read_head(reader):
    status_line = await read_line(reader)
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise StreamInvalid(f"bad status line {status_line!r}")
    headers = {}
    while True:
        line = await read_line(reader)
        if not line:
            break
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


async def read_chunked(reader, on_data):
    """Feeds each chunk to on_data; raises StreamCut unless the terminating chunk arrives."""
    while True:
        size_line = await read_line(reader)
        try:
            size = int(size_line.split(";", 1)[0], 16)
        except ValueError:
            raise StreamInvalid(f"bad chunk size line {size_line!r}")
        if size == 0:
            while await read_line(reader):  # trailers, up to the empty line
                pass
            return
        try:
            data = await asyncio.wait_for(reader.readexactly(size + 2), READ_TIMEOUT)
        except asyncio.IncompleteReadError:
            raise StreamCut("connection closed inside a chunk")
        if data[-2:] != b"\r\n":
            raise StreamInvalid("chunk not followed by CRLF")
        on_data(data[:-2])


def check_stream(lines, job, expected, job_id):
    """Raises StreamCut/StreamInvalid unless `lines` is exactly what the job must produce."""
    total = len(expected)
    seen = {}
    results = 0
    ended = None
    for number, raw in enumerate(lines):
        try:
            line = json.loads(raw)
        except ValueError:
            raise StreamInvalid(f"line {number} is not JSON: {raw[:120]!r}")
        if ended is not None:
            raise StreamInvalid(f"line after the end line: {raw[:120]!r}")
        event = line.get("event")
        if event == "heartbeat":
            # In input order `done` also counts finished subtasks whose lines wait for earlier ones.
            if set(line) != {"event", "done", "total", "elapsed_ms"} or line["total"] != total or not results <= line["done"] <= total:
                raise StreamInvalid(f"bad heartbeat {line}")
        elif event == "result":
            results += 1
            index = line.get("index")
            if not isinstance(index, int) or not 0 <= index < total:
                raise StreamInvalid(f"bad index in {line}")
            if index in seen:
                raise StreamInvalid(f"second result for subtask {index}")
            seen[index] = line
            want_status, want = expected[index]
            if line.get("id") != job["tasks"][index]["id"] or line.get("total") != total:
                raise StreamInvalid(f"wrong id/total in {line}")
            want_done = index + 1 if job["order"] == "input" else results
            if line.get("done") != want_done:
                raise StreamInvalid(f"done is {line.get('done')}, expected {want_done}: {line}")
            if line.get("status") != want_status:
                raise StreamInvalid(f"subtask {index} ended {line.get('status')}, expected {want_status}: {line}")
            if want_status == "ok" and line.get("value") != want:
                raise StreamInvalid(f"subtask {index} value {line.get('value')!r}, expected {want!r}")
            if want_status == "error" and line.get("error") != {"code": "task_error", "message": want}:
                raise StreamInvalid(f"subtask {index} error {line.get('error')!r}")
        elif event == "end":
            ended = line
        else:
            raise StreamInvalid(f"unknown line {raw[:120]!r}")
    if ended is None:
        raise StreamCut(f"no end line ({results} of {total} results)")
    if results != total:
        raise StreamCut(f"{results} of {total} result lines")
    oks = sum(1 for status, _ in expected if status == "ok")
    want_end = {"event": "end", "job": job_id, "total": total, "ok": oks, "error": total - oks, "timeout": 0, "cancelled": 0}
    if {k: ended.get(k) for k in want_end} != want_end:
        raise StreamInvalid(f"end line {ended}, expected {want_end}")


async def submit(host, port, job, expected):
    """One POST. Returns a record: status, outcome, replica, times."""
    record = {"start": time.time(), "status": None, "outcome": None, "replica": None, "detail": ""}
    writer = None
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 5)
        body = json.dumps(job).encode()
        writer.write(
            (f"POST /v1/jobs HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
             f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body
        )
        await writer.drain()
        status, headers = await read_head(reader)
        record["status"] = status
        record["replica"] = headers.get("x-served-by")
        if status == 200:
            job_id = headers.get("x-job-id", "")
            record["job_id"] = job_id
            if not re.fullmatch(r"[0-9a-f]{16}", job_id):
                raise StreamInvalid(f"bad X-Job-Id {job_id!r}")
            if headers.get("content-type") != "application/x-ndjson" or headers.get("transfer-encoding", "").lower() != "chunked":
                raise StreamInvalid(f"unexpected headers {headers}")
            buffer = bytearray()
            lines = []

            def on_data(data):
                buffer.extend(data)
                while b"\n" in buffer:
                    line, _, rest = bytes(buffer).partition(b"\n")
                    lines.append(line.decode("utf-8"))
                    buffer[:] = rest

            await read_chunked(reader, on_data)
            if buffer:
                raise StreamCut(f"unterminated last line {bytes(buffer)[:80]!r}")
            check_stream(lines, job, expected, job_id)
            record["outcome"] = "complete"
            record["lines"] = len(lines)
        else:
            length = int(headers.get("content-length", "0"))
            payload = await asyncio.wait_for(reader.readexactly(length), READ_TIMEOUT) if length else b""
            if status == 503:
                problem = json.loads(payload)
                record["outcome"] = "refused"
                record["detail"] = problem.get("type", "").rsplit("/", 1)[-1]
                record["retry_after"] = headers.get("retry-after")
            else:
                record["outcome"] = "unexpected_status"
                record["detail"] = payload[:200].decode("utf-8", "replace")
    except StreamCut as error:
        record["outcome"] = "cut"
        record["detail"] = str(error)
    except StreamInvalid as error:
        record["outcome"] = "invalid"
        record["detail"] = str(error)
    except (asyncio.TimeoutError, asyncio.IncompleteReadError) as error:
        record["outcome"] = "cut" if record["status"] == 200 else "transport_error"
        record["detail"] = f"timeout or early close: {error!r}"
    except OSError as error:
        record["outcome"] = "cut" if record["status"] == 200 else "transport_error"
        record["detail"] = repr(error)
    finally:
        if writer is not None:
            writer.close()
    record["end"] = time.time()
    return record


async def run_load(args):
    url = args.url.removeprefix("http://").rstrip("/")
    host, _, port = url.partition(":")
    port = int(port)
    began = time.monotonic()
    records = []
    serial = 0

    def should_stop():
        elapsed = time.monotonic() - began
        return elapsed >= args.max_seconds or (elapsed >= args.min_seconds and os.path.exists(args.done_file))

    async def worker(number):
        nonlocal serial
        while not should_stop():
            serial += 1
            job, expected = make_job(serial)
            for attempt in range(50):
                record = await submit(host, port, job, expected)
                record["serial"] = serial
                record["attempt"] = attempt
                records.append(record)
                if record["outcome"] != "refused":
                    break
                await asyncio.sleep(random.uniform(0.05, 0.2))

    await asyncio.gather(*(worker(n) for n in range(args.workers)))
    with open(args.records, "w") as out:
        json.dump({"began": time.time() - (time.monotonic() - began), "records": records}, out)
    print(f"load: {len(records)} requests in {time.monotonic() - began:.1f} s", file=sys.stderr)


# -------------------------------------------------------------------------------------- report

def report(args):
    with open(args.records) as f:
        data = json.load(f)
    records = data["records"]
    events = []
    with open(args.events) as f:
        for line in f:
            stamp, name, replica, *rest = line.split()
            events.append((float(stamp), name, replica, rest))

    def at(name, replica):
        return next((stamp for stamp, n, r, _ in events if n == name and r == replica), None)

    accepted = [r for r in records if r["status"] == 200]
    by_outcome = {}
    for r in records:
        by_outcome[r["outcome"]] = by_outcome.get(r["outcome"], 0) + 1
    refused = [r for r in records if r["outcome"] == "refused"]
    refused_by = {}
    for r in refused:
        refused_by[r["detail"]] = refused_by.get(r["detail"], 0) + 1
    failures = []

    print("rolling restart under load")
    print(f"  requests sent                  {len(records)}")
    print(f"  jobs accepted (200)            {len(accepted)}")
    print(f"    complete (all lines + end)   {by_outcome.get('complete', 0)}")
    print(f"    cut                          {by_outcome.get('cut', 0)}")
    print(f"    invalid                      {by_outcome.get('invalid', 0)}")
    print(f"  503 seen by the client         {len(refused)} {refused_by or ''} (retried)")
    print(f"  other statuses                 {by_outcome.get('unexpected_status', 0)}")
    print(f"  transport errors               {by_outcome.get('transport_error', 0)}")
    per_replica = {}
    for r in accepted:
        per_replica[r["replica"]] = per_replica.get(r["replica"], 0) + 1
    print(f"  accepted jobs per replica      {dict(sorted(per_replica.items(), key=lambda kv: str(kv[0])))}")
    for r in records:
        if r["outcome"] in ("cut", "invalid", "unexpected_status", "transport_error"):
            failures.append(f"{r['outcome']}: job {r.get('serial')} status {r['status']} via {r['replica']}: {r['detail']}")
    if not accepted:
        failures.append("no job was accepted")

    for replica, other in (("a", "b"), ("b", "a")):
        term, exited, ready = at("sigterm", replica), at("exited", replica), at("ready", replica)
        if term is None or exited is None or ready is None:
            failures.append(f"replica {replica}: the restart did not complete (events: sigterm={term} exited={exited} ready={ready})")
            continue
        code = next(rest[0] for _, n, r, rest in events if n == "exited" and r == replica)
        in_flight = [r for r in accepted if r["replica"] == replica and r["start"] < term < r["end"]]
        in_flight_ok = [r for r in in_flight if r["outcome"] == "complete"]
        served_meanwhile = [r for r in accepted if term <= r["start"] <= ready]
        by_other = [r for r in served_meanwhile if r["replica"] == other]
        refused_meanwhile = [r for r in refused if term <= r["start"] <= ready]
        print(f"  replica {replica}: SIGTERM -> exit {code} in {exited - term:.1f} s, ready again {ready - exited:.1f} s later")
        print(f"    jobs in flight on {replica} at SIGTERM  {len(in_flight)} ({len(in_flight_ok)} complete)")
        print(f"    jobs accepted meanwhile       {len(served_meanwhile)} ({len(by_other)} by {other}), 503s meanwhile {len(refused_meanwhile)}")
        if code != "0":
            failures.append(f"replica {replica} exited {code} after SIGTERM, not 0")
        if not in_flight:
            failures.append(f"replica {replica} had no job in flight at SIGTERM: the drain was not exercised")
        if len(in_flight_ok) != len(in_flight):
            failures.append(f"replica {replica}: {len(in_flight) - len(in_flight_ok)} in-flight jobs did not complete")
        if not by_other:
            failures.append(f"no new job was served by {other} while {replica} restarted")

    # The replicas' own account: one `job finished` line per accepted job, none with client_gone.
    finished, client_gone, rejected_503, logged_ids = 0, 0, 0, set()
    for name in sorted(os.listdir(args.logs)):
        if not (name.startswith("replica-") and name.endswith(".log")):
            continue
        with open(os.path.join(args.logs, name)) as f:
            for line in f:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if entry.get("msg") == "job finished":
                    finished += 1
                    logged_ids.add(entry.get("job.id"))
                    if entry.get("job.client_gone") == "true":
                        client_gone += 1
                elif entry.get("msg") == "request rejected" and entry.get("http.status") == "503":
                    rejected_503 += 1
    print(f"  replicas' logs: {finished} jobs finished ({client_gone} with client gone), {rejected_503} jobs refused with 503 (draining)")
    if args.haproxy_stats:
        with open(args.haproxy_stats) as f:
            stats = json.load(f)
        backend = stats.get("BACKEND", {})
        print(f"  HAProxy: {backend.get('wretr', 0)} retries, {backend.get('wredis', 0)} redispatches, "
              f"{backend.get('econ', 0)} connection errors; 5xx passed on to clients {backend.get('hrsp_5xx', 0)}")
        for name in sorted(k for k in stats if k != "BACKEND"):
            s = stats[name]
            print(f"    server {name}: 2xx {s['hrsp_2xx']}, 5xx {s['hrsp_5xx']}, retries {s['wretr']}, redispatches {s['wredis']}")
    accepted_ids = {r.get("job_id") for r in accepted}
    if finished != len(accepted) or logged_ids != accepted_ids:
        failures.append(
            f"the replicas logged {finished} finished jobs but the client saw {len(accepted)} accepted "
            f"({len(accepted_ids - logged_ids)} not logged, {len(logged_ids - accepted_ids)} not seen)"
        )
    if client_gone:
        failures.append(f"{client_gone} jobs ended with the client gone")

    if failures:
        print("FAILED:")
        for failure in failures[:50]:
            print(f"  - {failure}")
        return 1
    print("OK: every accepted job got all its result lines and its end line; no stream was cut")
    return 0


# ----------------------------------------------------------------------------------- haproxy

def show_stat(path):
    """HAProxy's `show stat` as a list of dicts."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        sock.connect(path)
        sock.sendall(b"show stat\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    lines = data.decode().splitlines()
    header = lines[0].lstrip("# ").split(",")
    return [dict(zip(header, line.split(","))) for line in lines[1:] if line]


def haproxy_state(args):
    """Prints the server's status from HAProxy's stats socket (UP, DOWN, MAINT, ...)."""
    for row in show_stat(args.socket):
        if row.get("pxname") == args.backend and row.get("svname") == args.server:
            print(row.get("status", "?").split(" ")[0])
            return 0
    print("UNKNOWN")
    return 1


def haproxy_stats(args):
    """Prints, as JSON, each server's responses by class, retries and redispatches."""
    fields = ["hrsp_2xx", "hrsp_5xx", "wretr", "wredis", "econ", "eresp", "cli_abrt", "srv_abrt"]
    out = {}
    for row in show_stat(args.socket):
        if row.get("pxname") == args.backend:
            out[row["svname"]] = {field: int(row.get(field) or 0) for field in fields}
    print(json.dumps(out))
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run")
    run.add_argument("--url", required=True)
    run.add_argument("--records", required=True)
    run.add_argument("--done-file", required=True)
    run.add_argument("--workers", type=int, default=12)
    run.add_argument("--min-seconds", type=float, default=20)
    run.add_argument("--max-seconds", type=float, default=60)
    rep = sub.add_parser("report")
    rep.add_argument("--records", required=True)
    rep.add_argument("--events", required=True)
    rep.add_argument("--logs", required=True)
    rep.add_argument("--haproxy-stats")
    state = sub.add_parser("haproxy-state")
    state.add_argument("--socket", required=True)
    state.add_argument("--backend", required=True)
    state.add_argument("--server", required=True)
    stats = sub.add_parser("haproxy-stats")
    stats.add_argument("--socket", required=True)
    stats.add_argument("--backend", required=True)
    args = parser.parse_args()
    if args.command == "run":
        asyncio.run(run_load(args))
        return 0
    if args.command == "report":
        return report(args)
    if args.command == "haproxy-stats":
        return haproxy_stats(args)
    return haproxy_state(args)


if __name__ == "__main__":
    sys.exit(main())
