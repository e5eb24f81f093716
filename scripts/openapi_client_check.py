#!/usr/bin/env python3
"""The generated client's models against a live fanoutd (run by scripts/openapi-client.sh).

usage: PYTHONPATH=<folder holding fanoutd_client>:scripts openapi_client_check.py BINARY openapi.yaml

Starts BINARY on loopback (attack.Server), then through the generated client: streams a job whose
lines are of every kind, a retained job read as NDJSON and as SSE, and refused requests; every
line and problem document is parsed by its model and must round-trip through to_dict() unchanged.
"""
import enum
import importlib
import inspect
import json
import pkgutil
import sys

import httpx
import yaml

from attack import Server
import fanoutd_client.api
import fanoutd_client.models
from fanoutd_client import Client
from fanoutd_client.api.jobs import submit_job
from fanoutd_client.api.retained import get_job, job_events
from fanoutd_client.models import EndLine, HeartbeatLine, Job, Order, Problem, ResultLine, RetainedJob, StreamEvent

failures = []


def check(condition, message):
    if not condition:
        failures.append(message)
        print(f"openapi-client: FAIL {message}")


def parse_line(line, models):
    """A stream line parsed by the model its `event` names; it must round-trip unchanged."""
    model = models[line["event"]]
    parsed = model.from_dict(line)
    check(parsed.to_dict() == line, f"{model.__name__} round trip: {line} -> {parsed.to_dict()}")
    return parsed


def error_models_are_problem(document):
    """Every documented problem+json response of every operation is parsed as Problem by the client."""
    components = document["components"]["responses"]
    expected = {}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "operationId" not in operation:
                continue
            for status, response in operation["responses"].items():
                if "$ref" in response:
                    response = components[response["$ref"].rsplit("/", 1)[1]]
                if "application/problem+json" in response.get("content", {}):
                    expected.setdefault(operation["operationId"], []).append(status)
    sources = {}
    for module in pkgutil.walk_packages(fanoutd_client.api.__path__, "fanoutd_client.api."):
        if not module.ispkg:
            sources[module.name.rsplit(".", 1)[1]] = inspect.getsource(importlib.import_module(module.name))
    checked = 0
    for operation_id, statuses in expected.items():
        snake = "".join("_" + c.lower() if c.isupper() else c for c in operation_id).replace("open_a_p_i", "open_api")
        source = sources.get(snake)
        check(source is not None, f"no module for {operation_id} ({snake})")
        for status in statuses:
            checked += 1
            check(source is not None and f"response_{status} = Problem.from_dict(" in source,
                  f"{operation_id}: the {status} answer is not parsed as Problem")
    print(f"openapi-client: {checked} problem responses of {len(expected)} operations are parsed as Problem")


def main():
    binary, document_path = sys.argv[1], sys.argv[2]
    document = yaml.safe_load(open(document_path))
    mapping = document["components"]["schemas"]["StreamLine"]["discriminator"]["mapping"]
    classes = {"ResultLine": ResultLine, "HeartbeatLine": HeartbeatLine, "EndLine": EndLine}
    models = {event: classes[ref.rsplit("/", 1)[1]] for event, ref in mapping.items()}
    check(set(models) == {"result", "heartbeat", "end"}, f"StreamLine's discriminator: {mapping}")
    check([o.value for o in Order] == ["completion", "input"], "one Order enum: completion, input")
    enums = {}
    for name in dir(fanoutd_client.models):
        value = getattr(fanoutd_client.models, name)
        if isinstance(value, type) and issubclass(value, enum.Enum):
            enums.setdefault(tuple(sorted(str(member.value) for member in value)), []).append(name)
    duplicates = [names for names in enums.values() if len(names) > 1]
    check(not duplicates, f"no two generated enums alike ({len(enums)} enums): {duplicates}")
    error_models_are_problem(document)

    server = Server(binary)
    try:
        client = Client(base_url=f"http://127.0.0.1:{server.port}", timeout=httpx.Timeout(20.0))

        # A streamed job with every kind of line.
        job = Job.from_dict({
            "tasks": [
                {"id": "quick", "kind": "echo", "delay_ms": 5, "value": {"x": [1, 2.5, None, "y"]}},
                {"id": "boom", "kind": "echo", "delay_ms": 10, "error": "boom"},
                {"id": "late", "kind": "echo", "delay_ms": 5000, "timeout_ms": 150},
                {"id": "slow", "kind": "echo", "delay_ms": 300},
            ],
            "heartbeat_ms": 100, "order": "completion",
        })
        check(job.order == Order.COMPLETION, f"Job.order is the Order enum: {job.order!r}")
        response = submit_job.sync_detailed(client=client, body=job)
        check(response.status_code == 200, f"submitJob: {response.status_code}")
        lines = [json.loads(raw) for raw in response.content.decode().splitlines()]
        parsed = [parse_line(line, models) for line in lines]
        kinds = {(type(p).__name__, getattr(getattr(p, "status", None), "value", None)) for p in parsed}
        for kind in [("ResultLine", "ok"), ("ResultLine", "error"), ("ResultLine", "timeout"), ("HeartbeatLine", None), ("EndLine", None)]:
            check(kind in kinds, f"the stream has a {kind} line: {sorted(kinds, key=str)}")
        check(isinstance(parsed[-1], EndLine) and parsed[-1].total == 4, "the last line is the end line")
        print(f"openapi-client: NDJSON stream: {len(lines)} lines parsed: {sorted({k for k, _ in kinds})}")

        # A retained job: 202 parsed as RetainedJob, then its lines as NDJSON and as SSE.
        detached = submit_job.sync_detailed(client=client, body=Job.from_dict({
            "tasks": [{"kind": "echo", "delay_ms": 20, "value": 1}, {"kind": "echo", "delay_ms": 200, "error": "x"}],
            "detach": True, "heartbeat_ms": 50,
        }))
        check(detached.status_code == 202 and isinstance(detached.parsed, RetainedJob), f"detached: {detached.status_code}")
        job_id = detached.parsed.job
        events = job_events.sync_detailed(job_id, client=client)
        check(events.status_code == 200, f"jobEvents: {events.status_code}")
        retained_lines = [json.loads(raw) for raw in events.content.decode().splitlines()]
        for line in retained_lines:
            check(parse_line(line, models).seq is not None, f"a retained line has seq: {line}")
        check([line["seq"] for line in retained_lines] == list(range(1, len(retained_lines) + 1)), "seq 1, 2, 3 …")
        sse = client.get_httpx_client().get(f"/v1/jobs/{job_id}/events", headers={"Accept": "text/event-stream"})
        check(sse.headers.get("content-type", "").startswith("text/event-stream"), f"SSE content type: {sse.headers.get('content-type')}")
        sse_events = []
        for block in sse.text.split("\n\n"):
            fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
            if "data" in fields:
                sse_events.append(fields)
        for fields in sse_events:
            event = StreamEvent.from_dict(fields)
            check(event.to_dict() == fields, f"StreamEvent round trip: {fields}")
            line = parse_line(json.loads(event.data), models)
            check(event.event.value == json.loads(event.data)["event"] and event.id == str(line.seq), f"SSE event/id match its line: {fields}")
        check(len(sse_events) == len(retained_lines), f"SSE: {len(sse_events)} events, NDJSON: {len(retained_lines)} lines")
        status = get_job.sync(job_id, client=client)
        check(isinstance(status, RetainedJob) and status.state.value == "finished", f"getJob: {status}")
        print(f"openapi-client: retained job: {len(retained_lines)} NDJSON lines and {len(sse_events)} SSE events parsed")

        # Refusals: parsed as Problem, the status as the HTTP status.
        refusals = [
            ("invalid-job", submit_job.sync_detailed(client=client, body=Job.from_dict({"tasks": [{"kind": "echo", "delay_ms": -1}]}))),
            # retries above the schema's maximum (10) are the server's limit too.
            ("invalid-job", submit_job.sync_detailed(client=client, body=Job.from_dict(
                {"tasks": [{"kind": "http", "url": "http://127.0.0.1:9/", "retries": 11}]}))),
            ("unknown-job", get_job.sync_detailed("0" * 32, client=client)),
        ]
        raw = client.get_httpx_client().post("/v1/jobs", content=b'{"tasks":[', headers={"Content-Type": "application/json"})
        refusals.append(("malformed-json", submit_job._build_response(client=client, response=raw)))
        for slug, answer in refusals:
            problem = answer.parsed
            check(isinstance(problem, Problem), f"{slug}: parsed as {type(problem).__name__}")
            if isinstance(problem, Problem):
                check(problem.type_.endswith("/" + slug) and problem.status == answer.status_code,
                      f"{slug}: {problem.type_} {problem.status} (HTTP {answer.status_code})")
                check(problem.to_dict() == json.loads(answer.content), f"Problem round trip: {answer.content!r}")
        print(f"openapi-client: {len(refusals)} refusals parsed as Problem")
    finally:
        server.stop()
    if failures:
        sys.exit(f"openapi-client: {len(failures)} checks failed")
    print("openapi-client: the generated models parse what the server sends")


if __name__ == "__main__":
    main()
