#!/usr/bin/env python3
"""A bounded soak of one Switchyard: mixed load, churn, errors and abrupt
clients at once, on 127.0.0.1, for a fixed time; then checks that nothing
leaked and nothing was lost.

    python3 loadtest/soak.py [--seconds 180] [--no-build] [--bin PATH]

Runs the comparison's upstream (a one-worker nginx on 127.0.0.1:9000) and
Switchyard with loadtest/peers/switchyard.yaml, proxy on CPU 0 and everything
else on CPU 1, and meanwhile:

  - switchyard-load, 16 keep-alive connections: GETs of 6 B, 1 KiB and 16 KiB
    responses, each with an l5d-dtab override;
  - switchyard-load, 4 connections: POSTs with 0 B, 1 KiB, 16 KiB and 100 KB
    bodies (the upstream answers them before reading the body: early
    responses);
  - three churn threads, a new connection per request: plain, close-delimited
    and two-hop requests, an override to a closed port (502), a malformed
    override (400), Content-Length with Transfer-Encoding (400), a 70 KB
    header (431), a chunked POST, HTTP/1.0; and clients that leave mid-head,
    reset mid-body, or reset before reading their response.

Fails (exit 1), saying why, when: the proxy exits or logs a panic; a load run
reports errors, non-2xx answers or reconnects (a connection the proxy closed); a churn request gets another status than
its case expects; RSS grows by more than 25% between the end of warm-up (30 s
or a sixth of the run) and the end; or, once the clients are gone, the proxy
holds more than 32 file descriptors above its count at start (pooled upstream
connections stay open). Every process it starts is stopped by PID.
"""

import argparse
import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare as c  # noqa: E402  (the comparison's process helpers)

CASES = [
    (b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n", 200),
    (b"GET /16k HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n", 200),
    (b"GET / HTTP/1.1\r\nHost: bench-mesh\r\n\r\n", 200),
    (b"GET / HTTP/1.1\r\nHost: bench\r\nl5d-dtab: /srv/bench => /$/inet/127.0.0.1/9 ;\r\n\r\n", 502),
    (b"GET / HTTP/1.1\r\nHost: bench\r\nl5d-dtab: /srv/bench => \r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: bench\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: bench\r\nX: " + b"a" * 70000 + b"\r\n\r\n", 431),
    (b"POST / HTTP/1.1\r\nHost: bench\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 200),
    (b"GET / HTTP/1.0\r\nHost: bench\r\n\r\n", 200),
]


def status_of(resp):
    try:
        return int(resp.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return -1


def one(req, read=True, reset=False):
    """Sends `req` on a new connection; reads one response unless told not
    to; `reset` closes with an RST instead of a FIN."""
    s = socket.create_connection(("127.0.0.1", 4140), timeout=5)
    if reset:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    got = b""
    try:
        s.sendall(req)
        while read:
            d = s.recv(65536)
            if not d:
                break
            got += d
            head, sep, body = got.partition(b"\r\n\r\n")
            if sep:
                cl = [l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
                if cl and len(body) >= int(cl[0].split(b":")[1]):
                    break
    except OSError:
        pass
    s.close()
    return got


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=int, default=180)
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--bin", default=c.BIN, help="the switchyard binary to soak (default: this "
                    "tree's release build)")
    a = ap.parse_args()
    if a.seconds < 20:
        raise SystemExit("--seconds: at least 20")
    if not a.no_build:
        subprocess.run(["cargo", "build", "-q", "--release", "--bin", "switchyard", "-p",
                        "switchyard", "-p", "switchyard-load"], cwd=c.ROOT, check=True)
    c.ensure_peers()
    signal.signal(signal.SIGINT, c.on_signal)
    signal.signal(signal.SIGTERM, c.on_signal)
    run_dir = os.path.join(c.ROOT, "loadtest", "results",
                           time.strftime("soak-%Y%m%dT%H%M%SZ", time.gmtime()))
    os.makedirs(os.path.join(run_dir, "www"), exist_ok=True)
    for name, size in (("1k", 1024), ("16k", 16384)):
        with open(os.path.join(run_dir, "www", name), "w") as f:
            f.write("x" * size)
    problems = []
    counts = {}
    lock = threading.Lock()

    def bump(k):
        with lock:
            counts[k] = counts.get(k, 0) + 1

    try:
        up = c.spawn([c.which("nginx"), "-c", c.render("upstream-nginx.conf", run_dir)],
                     os.path.join(run_dir, "upstream.log"), "1")
        c.wait_port(9000, up, "upstream nginx")
        log = os.path.join(run_dir, "switchyard.log")
        p = c.spawn([a.bin, "run", "--config", os.path.join(c.PEERS, "switchyard.yaml")], log, "0")
        c.wait_port(4140, p, "switchyard")
        fds = lambda: len(os.listdir(f"/proc/{p.pid}/fd"))  # noqa: E731
        fds_start = fds()
        start = time.time()
        stop = start + a.seconds

        def churn():
            rng = random.Random()
            while time.time() < stop:
                r = rng.random()
                if r < 0.08:
                    one(b"GET / HTTP/1.1\r\nHost: ben", read=False)
                    bump("left mid-head")
                elif r < 0.14:
                    one(b"POST / HTTP/1.1\r\nHost: bench\r\nContent-Length: 100000\r\n\r\n"
                        + b"x" * 5000, read=False, reset=True)
                    bump("reset mid-body")
                elif r < 0.18:
                    one(b"GET /16k HTTP/1.1\r\nHost: bench\r\n\r\n", read=False, reset=True)
                    bump("reset before reading")
                else:
                    req, want = rng.choice(CASES)
                    got = status_of(one(req))
                    bump(f"{want}" if got == want else f"wanted {want}, got {got}")

        samples = []

        def sample():
            while time.time() < stop and p.poll() is None:
                samples.append((time.time() - start, c.rss_kib(p.pid), fds()))
                time.sleep(2)

        load = lambda *args: subprocess.Popen(  # noqa: E731
            ["taskset", "-c", "1", c.LOAD, "127.0.0.1:4140", "-d", str(a.seconds - 5),
             "--warmup", "1", "--json"] + list(args), stdout=subprocess.PIPE, text=True)
        loads = [load("-c", "16", "--path", "/,/1k,/16k", "-H", c.OVERRIDE),
                 load("-c", "4", "--body-bytes", "0,1024,16384,100000")]
        threads = [threading.Thread(target=churn) for _ in range(3)]
        threads.append(threading.Thread(target=sample))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for name, l in zip(("GET mix with override", "POST bodies"), loads):
            o = json.loads(l.communicate()[0])
            print(f"load, {name}: {o['requests']} requests, {o['errors']} errors, "
                  f"{o['non_2xx']} non-2xx, {o['reconnects']} reconnects")
            # Nothing in these loads is a reason to close a connection: an
            # early response's body is read and dropped, not closed on.
            if o["errors"] or o["non_2xx"] or o["reconnects"]:
                problems.append(f"load ({name}) had {o['errors']} errors, {o['non_2xx']} "
                                f"non-2xx and {o['reconnects']} reconnects")
        time.sleep(2)
        if p.poll() is not None:
            problems.append(f"switchyard exited with {p.returncode}")
        else:
            fds_end = fds()
            print(f"open fds: {fds_start} at start, {fds_end} after the clients left")
            if fds_end > fds_start + 32:
                problems.append(f"fds: {fds_start} at start, {fds_end} after the clients left")
        warm = min(30, a.seconds / 6)
        after = [s for s in samples if s[0] >= warm]
        if after:
            first, last = after[0][1], after[-1][1]
            print(f"RSS: {first} KiB at {after[0][0]:.0f} s, {last} KiB at {after[-1][0]:.0f} s, "
                  f"peak {max(s[1] for s in after)} KiB")
            if last > first * 1.25:
                problems.append(f"RSS grew from {first} KiB to {last} KiB")
        print("churn:", ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
        problems += [f"churn: {k} ({v} times)" for k, v in counts.items() if k.startswith("wanted")]
    finally:
        c.stop_all()
    with open(log) as f:
        if "panicked" in f.read():
            problems.append(f"a panic in {log}")
    if problems:
        print("FAILED:\n  " + "\n  ".join(problems))
        sys.exit(1)
    print(f"passed ({a.seconds} s; logs in {run_dir})")


if __name__ == "__main__":
    main()
