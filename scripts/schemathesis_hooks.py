"""Schemathesis hooks for scripts/schemathesis.sh (loaded via SCHEMATHESIS_HOOKS).

1. `ndjson_stream_conformance`: a check for the 200 `application/x-ndjson` stream of
   POST /v1/jobs. Schemathesis cannot deserialize NDJSON, so its own response_schema_conformance
   silently skips that body (it still checks every problem+json, text and YAML response).
   This check does it instead:
     - every line is one JSON object that conforms to `#/components/schemas/StreamLine` of
       openapi.yaml (jsonschema, draft 2020-12);
     - the invariants the document promises hold: exactly one result line per subtask (ids as
       sent, or the index); `total` as sent; the end line last, with counts that add up and the
       job id of `X-Job-Id`; and the body ends in a newline.
   It also checks every problem+json body against the status it came with.
   A `text/plain` deserializer is registered as well: schemathesis has none, and would otherwise
   skip the health and metrics bodies silently.
2. `before_call` bounds the run time: it lowers schema-valid job/subtask timeouts above 2 s to
   2 s, and echo delays above 1.5 s to 1.5 s. A 1-day delay would otherwise hold a request for
   the job's whole deadline. Valid values stay valid and invalid ones are not touched, so the
   server's own limits (default configuration) are what is tested.
   It also keeps generated `http` subtasks on loopback. Any `url` that is a schema-valid
   http(s) URL is replaced by http://127.0.0.1:9/, which the egress policy refuses (`forbidden`)
   before any connection is made. Schema-valid stays schema-valid, and a schema-invalid URL is
   left alone, so negative cases stay negative. The script also runs the server and schemathesis
   in a network namespace of their own when it can, so nothing can leave loopback either way.
"""

import json
import os
import re

import jsonschema
import schemathesis
import yaml

_DOCUMENT = os.environ.get("FANOUT_OPENAPI", os.path.join(os.path.dirname(__file__), "..", "openapi.yaml"))
with open(_DOCUMENT) as _file:
    _SPEC = yaml.safe_load(_file)


def _validator(pointer):
    schema = {"$ref": pointer, "components": _SPEC["components"]}
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


_LINE = _validator("#/components/schemas/StreamLine")
_PROBLEM = _validator("#/components/schemas/Problem")
_SCHEMA_VALID_URL = re.compile(r"^[hH][tT][tT][pP][sS]?://")
LOOPBACK_URL = "http://127.0.0.1:9/"


def _tasks(body):
    if isinstance(body, dict) and isinstance(body.get("tasks"), list):
        return body["tasks"]
    return []


# Longest time a generated job may take, so a run stays short: job and subtask timeouts are
# capped at 2 s and echo delays at 1.5 s.
MAX_TIMEOUT_MS = 2000
MAX_DELAY_MS = 1500


def _clamp(holder, key, limit):
    """Lowers an in-range (schema-valid) number above `limit` to `limit`; leaves anything else."""
    value = holder.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if 0 <= value <= 86_400_000 and value > limit:
        holder[key] = limit


@schemathesis.hook
def before_call(context, case, kwargs):
    if isinstance(case.body, dict):
        _clamp(case.body, "timeout_ms", MAX_TIMEOUT_MS)
        _clamp(case.body, "task_timeout_ms", MAX_TIMEOUT_MS)
    for task in _tasks(case.body):
        if not isinstance(task, dict):
            continue
        _clamp(task, "timeout_ms", MAX_TIMEOUT_MS)
        _clamp(task, "delay_ms", MAX_DELAY_MS)
        if isinstance(task.get("url"), str):
            url = task["url"]
            if _SCHEMA_VALID_URL.match(url) and len(url) <= 8192:
                task["url"] = LOOPBACK_URL


@schemathesis.deserializer("text/plain")
def deserialize_text(ctx, response):
    """Schemathesis 4 has no text/plain deserializer: without this, the bodies of /livez,
    /healthz, /readyz and /metrics would be skipped by response_schema_conformance."""
    return response.content.decode(response.encoding or "utf-8")


def _media_type(response):
    value = response.headers.get("content-type") or response.headers.get("Content-Type") or ""
    if isinstance(value, list):
        value = value[0] if value else ""
    return value.split(";")[0].strip().lower()


def _header(response, name):
    for key, value in response.headers.items():
        if key.lower() == name:
            return value[0] if isinstance(value, list) else value
    return None


@schemathesis.check
def ndjson_stream_conformance(ctx, response, case):
    if case.method.upper() == "HEAD":
        return None  # no body to check: the same head as the GET
    media_type = _media_type(response)
    if media_type == "application/problem+json":
        problem = json.loads(response.content)
        errors = sorted(_PROBLEM.iter_errors(problem), key=str)
        if errors:
            raise AssertionError(f"problem+json does not conform: {errors[0].message}")
        if problem.get("status") != response.status_code:
            raise AssertionError(f"problem status {problem.get('status')} differs from the HTTP status {response.status_code}")
        return None
    if media_type != "application/x-ndjson":
        return None
    if response.status_code != 200:
        raise AssertionError(f"NDJSON body with status {response.status_code}")
    text = response.content.decode("utf-8")
    if not text.endswith("\n"):
        raise AssertionError("the stream does not end with a newline: cut?")
    lines = text[:-1].split("\n")
    tasks = _tasks(case.body)
    total = len(tasks)
    ids = [t.get("id") if isinstance(t, dict) and t.get("id") is not None else str(i) for i, t in enumerate(tasks)]
    seen = set()
    end = None
    for number, raw in enumerate(lines):
        try:
            line = json.loads(raw)
        except ValueError as error:
            raise AssertionError(f"line {number} is not JSON ({error}): {raw[:200]!r}")
        errors = sorted(_LINE.iter_errors(line), key=str)
        if errors:
            raise AssertionError(f"line {number} does not conform to StreamLine: {errors[0].message}: {raw[:300]}")
        if end is not None:
            raise AssertionError(f"line {number} comes after the end line: {raw[:200]}")
        if line["event"] == "end":
            end = line
            continue
        if line["total"] != total:
            raise AssertionError(f"line {number}: total {line['total']}, but the job has {total} tasks")
        if line["event"] == "result":
            index = line["index"]
            if index >= total or index in seen:
                raise AssertionError(f"line {number}: index {index} is out of range or repeated")
            seen.add(index)
            if line["id"] != ids[index]:
                raise AssertionError(f"line {number}: id {line['id']!r}, expected {ids[index]!r}")
    if end is None:
        raise AssertionError("no end line: the stream was cut")
    if len(seen) != total:
        raise AssertionError(f"{len(seen)} result lines for {total} tasks")
    if end["total"] != total or end["ok"] + end["error"] + end["timeout"] + end["cancelled"] != total:
        raise AssertionError(f"end line counts do not add up: {end}")
    if end["job"] != _header(response, "x-job-id"):
        raise AssertionError(f"end line job {end['job']} differs from X-Job-Id {_header(response, 'x-job-id')}")
    return None
