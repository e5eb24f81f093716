#!/usr/bin/env python3
"""N concurrent POST /v1/jobs with SIZE-byte bodies (Content-Length, no Expect) on 127.0.0.1:PORT;
prints status counts, time to each status, and the server PID's VmHWM/VmRSS before and after.
usage: concurrent_bodies.py PORT N SIZE PID"""
import socket, sys, time, threading, collections
port, n, size, pid = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
def vm(key):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(key): return int(line.split()[1])
pad = size - 40
body = (b'{"tasks":[{"kind":"echo","value":"' + b"x" * pad + b'"}]}')
head = (f"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
results = collections.Counter(); times = collections.defaultdict(list); lock = threading.Lock()
start = time.monotonic()
def one():
    s = socket.create_connection(("127.0.0.1", port)); s.settimeout(60)
    status = "none"
    try:
        s.sendall(head)
        try:
            # send in pieces, checking for an early answer
            view = memoryview(body); off = 0
            s.setblocking(False)
            while off < len(view):
                try:
                    data = s.recv(64)
                    if data: status = data.split(b" ")[1].decode(); break
                except BlockingIOError: pass
                try: off += s.send(view[off:off + 262144])
                except BlockingIOError: time.sleep(0.001)
            s.setblocking(True)
            if status == "none":
                data = s.recv(64); status = data.split(b" ")[1].decode() if data else "closed"
        except (BrokenPipeError, ConnectionResetError): status = status if status != "none" else "reset"
    finally:
        s.close()
    with lock:
        results[status] += 1; times[status].append(time.monotonic() - start)
print("before", "VmRSS", vm("VmRSS"), "VmHWM", vm("VmHWM"))
threads = [threading.Thread(target=one) for _ in range(n)]
for t in threads: t.start()
for t in threads: t.join()
print("statuses", dict(results))
for k, v in times.items(): print(k, "first %.3fs max %.3fs" % (min(v), max(v)))
print("after", "VmRSS", vm("VmRSS"), "VmHWM", vm("VmHWM"))
