#!/usr/bin/env bash
# A generated Python client has usable models (issue 11, item 3).
#
#   scripts/openapi-client.sh BINARY
#
# - Installs openapi-python-client (and PyYAML) into a venv of its own, once:
#   $FANOUT_CLIENT_VENV (default ~/.cache/fanoutd-ops/openapi-client-venv); its pins (ruff, typer,
#   pydantic) are not schemathesis', so it does not share the ops venv.
# - Generates a client from the 3.1 view of openapi.yaml (scripts/openapi-3.1-view.py: the tool
#   reads 3.1 only), with content_type_overrides mapping application/x-ndjson to text/plain, so
#   the streamed responses are raw text that the line models parse. Fails on any warning, but
#   one: GET /v1/openapi.yaml (application/yaml, a content type the tool has no parser for).
# - Checks the models exist: Problem (every error response of every operation parses as one),
#   ResultLine / HeartbeatLine / EndLine / StreamEvent, Job, Order, RetainedJob; and no two
#   generated enums are alike (the old document gave three `order` enums and two job states).
# - Starts BINARY on loopback and, through the generated client, submits jobs and parses what the
#   server sent: an NDJSON stream with every kind of line (ok, error, timeout results,
#   heartbeats, the end line), a retained job's lines with `seq` read as NDJSON and as SSE, and
#   problem documents. Each line is parsed by the model its `event` names (StreamLine's
#   discriminator) and must come back from to_dict() unchanged: no member lost or unknown.
# Bounded: the server's jobs take under a second; the generation ~15 s on a loaded machine.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(scripts/release-binary.sh openapi-client "${1:?usage: scripts/openapi-client.sh BINARY}")
venv=${FANOUT_CLIENT_VENV:-$HOME/.cache/fanoutd-ops/openapi-client-venv}
started=$SECONDS

if [ ! -x "$venv/bin/openapi-python-client" ] || ! "$venv/bin/python" -c 'import yaml' 2>/dev/null; then
    echo "openapi-client: pip install openapi-python-client pyyaml into $venv"
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check 'openapi-python-client>=0.29.1,<0.30' pyyaml
fi
echo "openapi-client: openapi-python-client $("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("openapi-python-client"))')"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$venv/bin/python" scripts/openapi-3.1-view.py openapi.yaml >"$work/openapi-3.1.yaml"
echo '{"content_type_overrides": {"application/x-ndjson": "text/plain"}}' >"$work/config.json"
# ruff (a dependency) formats the generated code; it must be on PATH.
(cd "$work" && PATH="$venv/bin:$PATH" timeout 120 openapi-python-client generate --path openapi-3.1.yaml \
    --config config.json --meta none --output-path fanoutd_client) >"$work/generate.log" 2>&1 || {
    cat "$work/generate.log"
    echo "openapi-client: generation failed" >&2
    exit 1
}
"$venv/bin/python" - "$work/generate.log" <<'PY'
import re, sys
log = open(sys.argv[1]).read()
# Each warning is "WARNING parsing METHOD PATH within TAG." followed by its detail.
warnings = re.findall(r"WARNING parsing (\S+ \S+) within \S+\.\s*\n\s*\n(.+)", log)
allowed = [(op, detail) for op, detail in warnings
           if op == "GET /v1/openapi.yaml" and "Unsupported content_type application/yaml" in detail]
other = [w for w in warnings if w not in allowed]
unparsed = [line for line in log.splitlines() if line.startswith(("WARNING", "Error"))]
for op, detail in other:
    print(f"openapi-client: warning for {op}: {detail}")
if other or len(unparsed) != len(warnings):
    print(log)
    sys.exit("openapi-client: the generator warned about our operations")
print(f"openapi-client: generated without warnings ({len(allowed)} allowed: GET /v1/openapi.yaml is YAML)")
PY

PYTHONPATH="$work:scripts" PYTHONDONTWRITEBYTECODE=1 timeout 60 "$venv/bin/python" scripts/openapi_client_check.py "$bin" openapi.yaml
echo "openapi-client: passed in $((SECONDS - started)) s"
