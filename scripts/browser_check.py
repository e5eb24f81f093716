#!/usr/bin/env python3
"""A browser page on another origin streams a job from fanoutd: real headless Chromium (Debian's
`chromium`), driven over the DevTools protocol on a pipe (--remote-debugging-pipe: no WebSocket
library needed), everything on loopback. Run by scripts/browser-check.sh BINARY.

  - fanoutd runs with cors.allow_origins = the allowed page's origin (http://127.0.0.1:A);
  - two pages are served by this script, on ports A (allowed) and D (not allowed); both call
    POST /v1/jobs with fetch() and read the NDJSON stream with response.body.getReader(),
    stamping each line with performance.now() as it is read;
  - the allowed page must get every line, spread out as the subtasks' delays say (not all at the
    end), and read X-Job-Id (an exposed header); the other page's fetch must be refused by the
    browser (its preflight got no CORS headers) and no job must have run for it.
Chromium is kept off the network: every host name resolves to nothing but 127.0.0.1, any other
connection goes to a dead proxy on loopback, and background services are off.
"""
import http.server
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from checklib import finish, free_ports

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DELAYS_MS = [300, 600, 900, 1200, 1500]

PAGE = """<!doctype html>
<meta charset="utf-8">
<title>fanoutd browser check</title>
<script>
// Streams one job and stamps every NDJSON line with the time it was read (ms since the fetch).
async function streamJob(api, job) {
  const started = performance.now();
  let response;
  try {
    response = await fetch(api + "/v1/jobs", {
      method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(job),
    });
  } catch (error) {
    return {refused: String(error)};
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  const lines = [];
  let buffer = "";
  for (;;) {
    const {value, done} = await reader.read();
    if (done) break;
    const at = performance.now() - started;
    buffer += decoder.decode(value, {stream: true});
    let newline;
    while ((newline = buffer.indexOf("\\n")) >= 0) {
      lines.push({at: at, line: JSON.parse(buffer.slice(0, newline))});
      buffer = buffer.slice(newline + 1);
    }
  }
  return {status: response.status, jobId: response.headers.get("X-Job-Id"), lines: lines};
}
</script>
"""


class PageHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - the stdlib's name
        body = PAGE.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class DevTools:
    """The DevTools protocol over Chromium's pipe: NUL-terminated JSON, it reads fd 3, writes fd 4."""

    def __init__(self, command, profile):
        to_chrome_r, self.to_chrome = os.pipe()
        self.from_chrome, from_chrome_w = os.pipe()

        def fds():
            # dup2 clears close-on-exec on 3 and 4; every other descriptor of this process is
            # non-inheritable (Python's default), so close_fds=False leaks nothing else.
            os.dup2(to_chrome_r, 3)
            os.dup2(from_chrome_w, 4)

        self.log = open(os.path.join(profile, "chromium.log"), "w")
        self.process = subprocess.Popen(command, preexec_fn=fds, stdout=self.log, stderr=self.log, close_fds=False)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self.next_id = 0
        self.buffer = b""
        self.events = []

    def send(self, method, params=None, session=None, timeout=30):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.to_chrome, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            for reply in self._read(deadline):
                if reply.get("id") == self.next_id:
                    if "error" in reply:
                        raise RuntimeError(f"{method}: {reply['error']}")
                    return reply["result"]
                self.events.append(reply)

    def _read(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("Chromium did not answer in time")
        ready, _, _ = select.select([self.from_chrome], [], [], left)
        if not ready:
            raise TimeoutError("Chromium did not answer in time")
        data = os.read(self.from_chrome, 1 << 20)
        if not data:
            raise RuntimeError("Chromium closed its DevTools pipe")
        self.buffer += data
        *messages, self.buffer = self.buffer.split(b"\0")
        return [json.loads(m) for m in messages if m]

    def close(self):
        try:
            self.send("Browser.close", timeout=5)
        except Exception:  # noqa: BLE001 - it may already be gone
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def open_page(tools, url):
    target = tools.send("Target.createTarget", {"url": url})["targetId"]
    session = tools.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        state = tools.send("Runtime.evaluate", {"expression": "document.readyState + ' ' + typeof streamJob",
                                                "returnByValue": True}, session)
        if state["result"].get("value") == "complete function":
            return session
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not load")


def stream_from(tools, session, api, job):
    expression = f"streamJob({json.dumps(api)}, {json.dumps(job)})"
    reply = tools.send("Runtime.evaluate", {"expression": expression, "awaitPromise": True, "returnByValue": True},
                       session, timeout=30)
    if "exceptionDetails" in reply:
        raise RuntimeError(f"the page threw: {reply['exceptionDetails']}")
    return reply["result"]["value"]


def jobs_finished(log_path):
    with open(log_path) as f:
        return sum('"job finished"' in line for line in f)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: browser_check.py BINARY")
    binary = sys.argv[1]
    chromium = shutil.which("chromium") or sys.exit("browser-check: chromium is not installed")
    work = tempfile.mkdtemp(prefix="fanoutd-browser.")
    api_port, allowed_port, other_port = free_ports(3)
    allowed_origin = f"http://127.0.0.1:{allowed_port}"
    api = f"http://127.0.0.1:{api_port}"
    log_path = os.path.join(work, "fanoutd.log")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FANOUT_")}
    failures = []
    server = tools = None
    page_servers = []
    try:
        with open(log_path, "w") as log:
            server = subprocess.Popen(
                [binary, "serve", "--config", os.path.join(REPO, "config/fanoutd.json"), "--host", "127.0.0.1",
                 "--port", str(api_port), "--admin-port", "0", "--log-format", "json",
                 "--set", "shutdown.grace_s=2", "--set", f"cors.allow_origins={allowed_origin}"],
                stdout=log, stderr=log, env=env)
        for port in (allowed_port, other_port):
            httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), PageHandler)
            threading.Thread(target=httpd.serve_forever, daemon=True).start()
            page_servers.append(httpd)
        deadline = time.monotonic() + 20
        while '"fanoutd listening"' not in open(log_path).read():
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("fanoutd did not start")
            time.sleep(0.05)

        profile = os.path.join(work, "profile")
        os.makedirs(profile)
        tools = DevTools([
            chromium, "--headless=new", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu",
            "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--no-first-run", "--no-default-browser-check",
            # Nothing leaves loopback: names resolve to nothing (but loopback literals), every other
            # connection goes to a closed port on loopback, background services are off.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--proxy-server=http://127.0.0.1:9", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--disable-default-apps", "--disable-domain-reliability", "--disable-breakpad",
            "--disable-client-side-phishing-detection", "--no-pings", "--metrics-recording-only",
            "--disable-features=DnsOverHttps,OptimizationHints,MediaRouter,Translate",
            "about:blank",
        ], work)
        version = tools.send("Browser.getVersion")
        print(f"browser-check: {version['product']}, page origin {allowed_origin}, API {api}")

        job = {"tasks": [{"id": f"t{d}", "kind": "echo", "delay_ms": d, "value": d} for d in DELAYS_MS]}
        session = open_page(tools, f"{allowed_origin}/")
        result = stream_from(tools, session, api, job)
        if "refused" in result:
            raise RuntimeError(f"the allowed origin's fetch was refused: {result['refused']}")
        lines = result["lines"]
        results = [entry for entry in lines if entry["line"].get("event") == "result"]
        print(f"browser-check: allowed origin: status {result['status']}, X-Job-Id {result['jobId']}, "
              f"lines read at (ms since fetch; the subtask's elapsed_ms):")
        for entry in lines:
            line = entry["line"]
            print(f"  {entry['at']:7.1f}  {line.get('event'):9} {line.get('id', '')} {line.get('elapsed_ms', '')}")
        if result["status"] != 200 or len(results) != len(DELAYS_MS) or lines[-1]["line"].get("event") != "end":
            failures.append(f"incomplete stream: status {result['status']}, {len(results)} result lines")
        if not result["jobId"]:
            failures.append("X-Job-Id was not readable by the page (Access-Control-Expose-Headers)")
        if len(results) == len(DELAYS_MS):
            # Each line arrives when its subtask ends: its arrival minus its elapsed_ms is about
            # the same for every line (generous 250 ms spread), and consecutive lines, due 300 ms
            # apart, arrive more than 150 ms apart: none waited for the end.
            offsets = [entry["at"] - entry["line"]["elapsed_ms"] for entry in results]
            spread = max(offsets) - min(offsets)
            gaps = [b["at"] - a["at"] for a, b in zip(results, results[1:])]
            print(f"browser-check: arrival minus elapsed_ms spread {spread:.1f} ms; gaps between lines "
                  f"{', '.join(f'{g:.0f}' for g in gaps)} ms")
            if spread > 250 or min(gaps) < 150:
                failures.append("the lines did not arrive one by one as their subtasks ended")

        before = jobs_finished(log_path)
        other = open_page(tools, f"http://127.0.0.1:{other_port}/")
        refused = stream_from(tools, other, api, job)
        time.sleep(0.3)
        after = jobs_finished(log_path)
        print(f"browser-check: origin http://127.0.0.1:{other_port} (not allowed): {refused}")
        if "refused" not in refused:
            failures.append(f"the page on a disallowed origin was not refused: {refused}")
        if after != before:
            failures.append("a job ran for the disallowed origin (the preflight should have stopped it)")
        if '"request rejected"' not in open(log_path).read():
            failures.append("the server logged no rejected preflight")
    except Exception as error:  # noqa: BLE001 - any failure is reported with the logs
        failures.append(f"{type(error).__name__}: {error}")
    finally:
        if tools:
            tools.close()
        for httpd in page_servers:
            httpd.shutdown()
        if server:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
    finish("browser-check", failures, work, ("fanoutd.log", "chromium.log"), tail=12)


if __name__ == "__main__":
    main()
