#!/usr/bin/env bash
# Property-based API tests: schemathesis (PyPI) against a live fanoutd, driven by openapi.yaml.
#
#   scripts/schemathesis.sh [path/to/fanoutd]
#
# - Installs schemathesis into a venv, $FANOUT_OPS_VENV (default ~/.cache/fanoutd-ops/venv),
#   once.
# - Starts fanoutd on a free loopback port. Auth is on with a random token, which schemathesis
#   sends. Otherwise the configuration is the default one (defaults.timeout_ms lowered to
#   2 s). The hooks lower schema-valid timeouts above 2 s and echo delays above 1.5 s, so a
#   generated 1-day delay cannot hold a request for long. Valid stays valid, and invalid
#   values are left alone.
# - Runs schemathesis with a bounded number of examples per operation (SCHEMATHESIS_MAX_EXAMPLES,
#   default 30) and a fixed seed (SCHEMATHESIS_SEED, default 4242), over every operation in
#   openapi.yaml. Phases: examples, coverage and fuzzing. Mode: positive and negative data.
#   Checks: all of schemathesis' checks but one, plus ours:
#     - not_a_server_error: no 5xx.
#     - status_code_conformance, content_type_conformance, response_headers_conformance,
#       response_schema_conformance: every response as documented. Schemathesis validates
#       problem+json and YAML bodies itself, and text/plain through the deserializer the hooks
#       register (it has none of its own). It cannot deserialize application/x-ndjson and
#       skips that body silently, so:
#     - ndjson_stream_conformance (scripts/schemathesis_hooks.py) validates every line of each
#       200 stream against #/components/schemas/StreamLine, plus the stream's invariants.
#     - negative_data_rejection: schema-invalid jobs are refused with 4xx.
#     - unsupported_method, allow_header_conformance: 405 with a correct Allow header.
#     - missing_required_header, ignored_auth, use_after_free, ensure_resource_availability,
#       object_level_authorization: run; the last three find nothing to do (no resources).
#   Excluded: positive_data_acceptance. It expects 2xx for every schema-valid job, but some
#   limits cannot be written in the schema:
#     - configured limits (limits.max_tasks, limits.max_concurrency,
#       limits.max_job_timeout_ms);
#     - unique subtask ids;
#     - `first` no greater than the number of tasks.
#   Such jobs are answered 400/413 by design, as the document says.
# - Probes auth by hand, because ignored_auth passes trivially on optional auth: POST /v1/jobs
#   without a token, and with a wrong one, must get a conforming 401.
# - Stops the server with SIGTERM: it must still be running, and must exit 0.
#
# Generated `http` subtasks never leave loopback: their URLs are rewritten to a loopback address,
# which the egress policy refuses (see the hooks file). When `unshare -n` is permitted (root),
# the server and schemathesis also run in a network namespace of their own that has nothing but
# loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

if [ "${1:-}" = --inside ]; then
    # Second half, possibly inside the network namespace: $2 = binary, $3 = work folder.
    bin=$2
    work=$3
    if [ "${FANOUT_NETNS:-0}" = 1 ]; then ip link set lo up; fi
    venv=${FANOUT_OPS_VENV:-$HOME/.cache/fanoutd-ops/venv}
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    token=$(python3 -c 'import secrets; print(secrets.token_hex(16))')

    unset_fanout=()
    while IFS= read -r name; do unset_fanout+=(-u "$name"); done < <(env | sed -n 's/^\(FANOUT_[A-Za-z0-9_]*\)=.*/\1/p')
    env "${unset_fanout[@]}" FANOUT_AUTH_TOKENS="$token" "$bin" serve --config "$repo/config/fanoutd.json" \
        --host 127.0.0.1 --port "$port" --admin-port 0 --log-format json \
        --set defaults.timeout_ms=2000 --set shutdown.grace_s=2 \
        >"$work/server.log" 2>&1 &
    server=$!
    trap 'kill "$server" 2>/dev/null || true' EXIT
    for _ in $(seq 1 100); do
        if python3 - "$port" <<'EOF' 2>/dev/null; then break; fi
import sys, urllib.request
urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/readyz", timeout=1)
EOF
        kill -0 "$server" 2>/dev/null || { echo "schemathesis: fanoutd did not start" >&2; cat "$work/server.log" >&2; exit 1; }
        sleep 0.1
    done

    status=0
    echo "schemathesis: fanoutd on 127.0.0.1:$port (netns: ${FANOUT_NETNS:-0}), schemathesis $("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("schemathesis"))')"
    # From the work folder: schemathesis keeps a cache (.schemathesis/) in the current directory.
    cd "$work"
    SCHEMATHESIS_HOOKS=schemathesis_hooks PYTHONPATH="$repo/scripts" PYTHONDONTWRITEBYTECODE=1 FANOUT_OPENAPI="$repo/openapi.yaml" \
        "$venv/bin/schemathesis" run "$repo/openapi.yaml" \
        --url "http://127.0.0.1:$port" \
        --header "Authorization: Bearer $token" \
        --checks all --exclude-checks positive_data_acceptance \
        --phases examples,coverage,fuzzing \
        --mode all \
        --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-30}" \
        --seed "${SCHEMATHESIS_SEED:-4242}" \
        --workers 2 \
        --request-timeout 10 \
        --report junit --report-dir "$work/report" \
        || status=$?
    cd "$repo"

    # Auth probes: the server has a token; without it, or with another one, jobs are refused
    # with a 401 that conforms to the document.
    "$venv/bin/python" - "$port" "$repo/openapi.yaml" <<'EOF' || status=1
import json, sys, urllib.request, urllib.error
import jsonschema, yaml
port, document = sys.argv[1], sys.argv[2]
spec = yaml.safe_load(open(document))
schema = spec["components"]["responses"]["Unauthorized"]["content"]["application/problem+json"]["schema"]
validator = jsonschema.Draft202012Validator({**schema, "components": spec["components"]})
job = json.dumps({"tasks": [{"kind": "echo"}]}).encode()
for label, headers in (("no token", {}), ("wrong token", {"Authorization": "Bearer not-the-token"}),
                       ("other scheme", {"Authorization": "Basic Zm9vOmJhcg=="})):
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/jobs", data=job, method="POST",
                                     headers={"Content-Type": "application/json", **headers})
    try:
        urllib.request.urlopen(request, timeout=5)
        raise SystemExit(f"auth probe ({label}): the job was accepted")
    except urllib.error.HTTPError as error:
        body = json.loads(error.read())
        assert error.code == 401, (label, error.code, body)
        assert error.headers["Content-Type"] == "application/problem+json", (label, error.headers["Content-Type"])
        assert error.headers["WWW-Authenticate"] == 'Bearer realm="fanoutd"', (label, error.headers["WWW-Authenticate"])
        validator.validate(body)
print("schemathesis: auth probes: 401 without a token, with a wrong token and with another scheme (conforming)")
EOF

    # What the run exercised, from the server's own metrics.
    "$venv/bin/python" - "$port" <<'EOF' || status=1
import sys, urllib.request
text = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=5).read().decode()
for line in text.splitlines():
    if line.startswith(("fanout_subtasks_total", "fanout_upstream_requests_total", "fanout_jobs_total", "fanout_jobs_in_flight ", "fanout_subtasks_in_flight ")):
        print("schemathesis: metric", line)
EOF

    if ! kill -0 "$server" 2>/dev/null; then
        echo "schemathesis: fanoutd died during the run" >&2
        tail -n 30 "$work/server.log" >&2
        exit 1
    fi
    kill -TERM "$server"
    code=0
    wait "$server" || code=$?
    trap - EXIT
    if [ $code -ne 0 ]; then
        echo "schemathesis: fanoutd exited $code after SIGTERM" >&2
        tail -n 30 "$work/server.log" >&2
        status=1
    fi
    if grep -q '"level":"\(error\|critical\)"' "$work/server.log"; then
        echo "schemathesis: fanoutd logged errors:" >&2
        grep '"level":"\(error\|critical\)"' "$work/server.log" | head -n 10 >&2
        status=1
    fi
    echo "schemathesis: server log: $(grep -c '"msg":"job finished"' "$work/server.log") jobs finished, $(grep -c '"msg":"request rejected"' "$work/server.log") requests rejected"
    exit $status
fi

bin=$(scripts/release-binary.sh schemathesis "$@")

venv=${FANOUT_OPS_VENV:-$HOME/.cache/fanoutd-ops/venv}
if [ ! -x "$venv/bin/python" ]; then python3 -m venv "$venv"; fi
if ! "$venv/bin/python" -c 'import schemathesis, jsonschema, yaml' 2>/dev/null; then
    "$venv/bin/pip" install --quiet 'schemathesis>=4.1,<5'
fi
export FANOUT_OPS_VENV=$venv

work=$(mktemp -d "${TMPDIR:-/tmp}/fanoutd-schemathesis.XXXXXX")
status=0
if unshare -n true 2>/dev/null && command -v ip >/dev/null; then
    FANOUT_NETNS=1 unshare -n "$0" --inside "$bin" "$work" || status=$?
else
    echo "schemathesis: no network namespace here (unshare -n not permitted); http subtasks are still kept on loopback by the hooks" >&2
    FANOUT_NETNS=0 "$0" --inside "$bin" "$work" || status=$?
fi
if [ $status -ne 0 ]; then
    echo "schemathesis: FAILED (server log and JUnit report in $work)" >&2
    exit $status
fi
[ -n "${KEEP_WORK:-}" ] && echo "schemathesis: kept $work" || rm -rf "$work"
echo "schemathesis: OK"
