#!/usr/bin/env bash
# Prometheus checks (issue 11, item 4), against the release binary:
#
#   scripts/metrics-check.sh BINARY
#
# - scripts/metrics_check.py runs jobs of every outcome and refusals of every common kind on a live
#   server, checks what the scrape must show (every subtask counted once, reasons in snake_case,
#   process_* and fanout_build_info) and saves the scrape;
# - `promtool check metrics` on that scrape: no complaint at all (HELP, TYPE, names, units);
# - `promtool check rules deploy/prometheus/alerts.yaml`;
# - deploy/prometheus/fanoutd-dashboard.json is valid JSON, and every metric name used by the
#   dashboard's queries and the alert rules is a family of the scrape (or Prometheus' own `up`).
# promtool comes from Debian's `prometheus` package (the only one that ships it), installed here
# once when missing. The Python parts use the ops venv ($FANOUT_OPS_VENV, for PyYAML).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(scripts/release-binary.sh metrics-check "${1:?usage: scripts/metrics-check.sh BINARY}")
venv=${FANOUT_OPS_VENV:-$HOME/.cache/fanoutd-ops/venv}
python=$venv/bin/python
[ -x "$python" ] || python=python3
started=$SECONDS

if ! command -v promtool >/dev/null; then
    sudo=""
    if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null; then sudo="sudo"; fi
    echo "metrics-check: apt-get install prometheus (for promtool)"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus >/dev/null
fi
echo "metrics-check: $(promtool --version 2>&1 | head -1)"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0
PYTHONPATH=scripts PYTHONDONTWRITEBYTECODE=1 timeout 90 "$python" scripts/metrics_check.py "$bin" "$work/scrape.txt" || status=1

if [ -s "$work/scrape.txt" ]; then
    # promtool exits 0 on lint warnings too: any output is a failure here.
    if promtool check metrics <"$work/scrape.txt" >"$work/promtool.txt" 2>&1 && [ ! -s "$work/promtool.txt" ]; then
        echo "metrics-check: ok   promtool check metrics: clean ($(grep -c '^# TYPE' "$work/scrape.txt") families)"
    else
        echo "metrics-check: FAIL promtool check metrics:"
        cat "$work/promtool.txt"
        status=1
    fi
else
    echo "metrics-check: FAIL no scrape to check"
    status=1
fi

promtool check rules deploy/prometheus/alerts.yaml || status=1

"$python" - "$work/scrape.txt" <<'PY' || status=1
import json, re, sys
import yaml
scrape = open(sys.argv[1]).read() if len(sys.argv) > 1 else ""
families = set(re.findall(r"^# TYPE (\S+) (\S+)", scrape, re.M))
names = set()
for family, kind in families:
    names.add(family)
    if kind == "histogram":
        names |= {family + "_bucket", family + "_sum", family + "_count"}
dashboard = json.load(open("deploy/prometheus/fanoutd-dashboard.json"))
exprs = [("dashboard: " + panel["title"], target["expr"]) for panel in dashboard["panels"] for target in panel["targets"]]
for variable in dashboard["templating"]["list"]:
    if variable["type"] == "query":
        exprs.append(("dashboard variable " + variable["name"], variable["query"]))
rules = yaml.safe_load(open("deploy/prometheus/alerts.yaml"))
exprs += [("alert " + rule["alert"], rule["expr"]) for group in rules["groups"] for rule in group["rules"]]
missing = []
for where, expr in exprs:
    for name in set(re.findall(r"\b((?:fanout|process)_[a-z0-9_]+)\b", expr)):
        if name not in names:
            missing.append(f"{where}: {name}")
for problem in missing:
    print(f"metrics-check: FAIL {problem} is not in the scrape")
used = {name for _, expr in exprs for name in re.findall(r"\b((?:fanout|process)_[a-z0-9_]+)\b", expr)}
print(f"metrics-check: {'ok  ' if not missing else 'FAIL'} the dashboard ({len(dashboard['panels'])} panels) and "
      f"{sum(len(g['rules']) for g in rules['groups'])} alert rules use {len(used)} metric names, all in the scrape")
sys.exit(1 if missing else 0)
PY

echo "metrics-check: $([ $status -eq 0 ] && echo passed || echo FAILED) in $((SECONDS - started)) s"
exit $status
