#!/usr/bin/env python3
"""Switchyard against a direct connection, nginx and HAProxy, in one run.

    python3 loadtest/compare.py [--quick] [--rounds N] [--out DIR]
    python3 loadtest/compare.py --tier1-only --targets floor,switchyard,nginx --rounds 8

Starts, pinned with taskset, a one-worker nginx upstream on 127.0.0.1:9000,
Switchyard (loadtest/peers/switchyard.yaml, full routing), nginx and HAProxy
(one worker each, keep-alive both sides; installed from apt when missing),
then runs interleaved rounds (every target once per round, direct first) of:

  tier 0  user-space instructions per request under callgrind (the proxy
          alone, fixed request counts, the difference of two runs; proxy,
          client and upstream all on CPU 0; once per round, once with
          --quick), and
          syscalls and context switches per request from perf's software
          events during a c=32 run;
  tier 1  everything on CPU 0: c=1 latency (p50, p99) and the c=32 cost per
          request, 1e6/rps(proxied) - 1e6/rps(direct) us, for 6 B and 16 KiB
          responses (with --bodies also for POSTs of 1 KiB and 16 KiB
          request bodies, answered by the upstream on the head);
  tier 2  the proxy alone on CPU 0, generator and upstream on CPU 1: open
          loop at a fixed rate, CO-corrected percentiles, and the proxy's CPU
          time per request.

Targets: direct, switchyard (Host routing through the Part VI-shaped dtab),
switchyard+override (an l5d-dtab on every request), switchyard-2hop
(outgoing -> incoming), nginx, haproxy, and floor: examples/floor.rs, a
bare monoio + httparse proxy with no routing, checks or rewriting, which
shows in the same run what the runtime, the parser and the kernel cost
before any of Switchyard's own work. Writes report.md (medians of
per-round figures and ratios, with their spread), results.json, latency.svg
and the HdrHistogram logs into the results folder (git ignores
loadtest/results). Every process it starts is stopped by PID on exit, on
error and on Ctrl-C.
"""

import argparse
import datetime
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEERS = os.path.join(ROOT, "loadtest", "peers")
BIN = os.path.join(ROOT, "target", "release", "switchyard")
LOAD = os.path.join(ROOT, "target", "release", "switchyard-load")
CLIENT = os.path.join(ROOT, "target", "release", "examples", "keepalive_client")
FLOOR = os.path.join(ROOT, "target", "release", "examples", "floor")

OVERRIDE = "l5d-dtab: /host/bench => /srv/bench-v2;"
# name -> (port, Host header, extra headers)
TARGETS = {
    "direct": (9000, "bench", []),
    "switchyard": (4140, "bench", []),
    "switchyard+override": (4140, "bench", [OVERRIDE]),
    "switchyard-2hop": (4140, "bench-mesh", []),
    "nginx": (4150, "bench", []),
    "haproxy": (4160, "bench", []),
    "floor": (4170, "bench", []),
}
# The floor forwards no request bodies.
BODY_TARGETS = ("direct", "switchyard", "switchyard+override", "switchyard-2hop", "nginx", "haproxy")
PROXY_OF = {
    "switchyard": "switchyard",
    "switchyard+override": "switchyard",
    "switchyard-2hop": "switchyard",
    "nginx": "nginx",
    "haproxy": "haproxy",
    "floor": "floor",
}

children = []


def stop_all():
    for p in children:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.time() + 5
    for p in children:
        try:
            p.wait(timeout=max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()
    children.clear()


def stop(p, timeout=30, wake_port=None):
    """Stops one started process (and its group) and forgets it.

    `wake_port`: for a proxy under valgrind, which can hold a signal that
    lands just before a blocking epoll_wait until that call returns.
    nginx's waits for its 60 s upstream keep-alive timer, which made half
    of nginx's tier-0 runs take a minute to stop (120 s of a 320 s --quick
    run). A connection to its port every half second ends the wait, so the
    held signal is delivered."""
    try:
        os.killpg(p.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.time() + timeout
    while True:
        try:
            p.wait(timeout=0.5 if wake_port else timeout)
            break
        except subprocess.TimeoutExpired:
            pass
        if time.time() >= deadline:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            break
        if wake_port:
            try:
                socket.create_connection(("127.0.0.1", wake_port), timeout=0.2).close()
            except OSError:
                pass
    children.remove(p)


def on_signal(signum, _frame):
    stop_all()
    sys.exit(128 + signum)


def spawn(cmd, log, cpus=None):
    if cpus is not None:
        cmd = ["taskset", "-c", cpus] + cmd
    out = open(log, "w")
    # Own process group, so stopping it stops everything it started.
    p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    children.append(p)
    return p


def wait_port(port, proc, what, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{what} did not listen on {port}")


def pin(proc, cpus):
    """Moves every thread of a running process to `cpus`."""
    subprocess.run(["taskset", "-a", "-p", "-c", cpus, str(proc.pid)], check=True,
                   stdout=subprocess.DEVNULL)


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")


def load(target, cpus, connections, seconds, warmup, rate=0, path="/", hdr_log=None, body=0):
    port, host, headers = TARGETS[target]
    cmd = ["taskset", "-c", cpus, LOAD, f"127.0.0.1:{port}", "-c", str(connections),
           "-d", str(seconds), "--warmup", str(warmup), "--host", host, "--path", path, "--json"]
    if body:
        cmd += ["--body-bytes", str(body)]
    if rate:
        cmd += ["--rate", str(rate)]
    for h in headers:
        cmd += ["-H", h]
    if hdr_log:
        cmd += ["--hdr-log", hdr_log]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def ensure_peers():
    missing = [b for b in ("nginx", "haproxy") if shutil.which(b) is None
               and not os.path.exists(f"/usr/sbin/{b}")]
    if missing:
        print(f"installing {', '.join(missing)} from apt", file=sys.stderr)
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(sudo + ["apt-get", "install", "-y", "-q", "nginx-light", "haproxy"],
                       check=True, env=env, stdout=subprocess.DEVNULL)
        # Packages may start their services; this run needs the ports.
        for svc in ("nginx", "haproxy"):
            subprocess.run(sudo + ["service", svc, "stop"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)


def which(b):
    return shutil.which(b) or f"/usr/sbin/{b}"


def render(template, run_dir):
    with open(os.path.join(PEERS, template)) as f:
        text = f.read().replace("__DIR__", run_dir)
    path = os.path.join(run_dir, template)
    with open(path, "w") as f:
        f.write(text)
    return path


def start_proxies(run_dir, cpus):
    procs = {}
    procs["switchyard"] = spawn([BIN, "run", "--config", os.path.join(PEERS, "switchyard.yaml")],
                                os.path.join(run_dir, "switchyard.log"), cpus)
    procs["nginx"] = spawn([which("nginx"), "-c", render("nginx.conf", run_dir)],
                           os.path.join(run_dir, "nginx.log"), cpus)
    procs["haproxy"] = spawn([which("haproxy"), "-db", "-f", render("haproxy.cfg", run_dir)],
                             os.path.join(run_dir, "haproxy.log"), cpus)
    procs["floor"] = spawn([FLOOR, "127.0.0.1:4170", "127.0.0.1:9000"],
                           os.path.join(run_dir, "floor.log"), cpus)
    for name, port in (("switchyard", 4140), ("nginx", 4150), ("haproxy", 4160), ("floor", 4170)):
        wait_port(port, procs[name], name)
    return procs


def callgrind_per_request(cmd, port, run_dir, name, n1, n2, host, headers):
    """(I(n2) - I(n1)) / (n2 - n1): user-space instructions per request of
    the process `cmd`, start-up and shutdown cancelled out. None when a run
    gives no total twice (a process that would not stop under valgrind)."""
    counts = []
    for n in (n1, n2):
        total = None
        for _attempt in range(2):
            out = os.path.join(run_dir, f"cg-{name}.out")
            log = os.path.join(run_dir, f"cg-{name}.log")
            p = spawn(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"] + cmd, log, "0")
            wait_port(port, p, f"{name} under callgrind", timeout=60)
            args = [CLIENT, f"127.0.0.1:{port}", str(n), host] + headers
            # The client on the proxy's CPU, as the upstream is, and both
            # SCHED_BATCH (see tier0): a proxy that reads as soon as it has
            # written (monoio's epoll driver does) found the answer there or
            # parked for it depending on a race, with the other CPU (5-10%
            # between runs) or, on one CPU, with the scheduler (1-2%).
            subprocess.run(["taskset", "-c", "0", "chrt", "--batch", "0"] + args, check=True,
                           stdout=subprocess.DEVNULL)
            stop(p, timeout=90, wake_port=port)
            with open(log) as f:
                for line in f:
                    if "Collected :" in line:
                        total = int(line.split("Collected :")[1].split()[0])
            if total is not None:
                break
        if total is None:
            print(f"callgrind gave no total for {name}; see {log}", file=sys.stderr)
            return None
        counts.append(total)
    return (counts[1] - counts[0]) / (n2 - n1)


def tier0(run_dir, quick, rounds, targets, upstream):
    """Instructions per request of each proxy (Switchyard with and without
    the override), each proxy alone under callgrind, `rounds` times
    (interleaved): {target: [per round]}.

    The upstream and the client run SCHED_BATCH for it: a batch task does
    not preempt the running one when it is woken, so the proxy under
    callgrind always runs on until it waits, and a read it makes right after
    writing a request always finds nothing yet, as it does when the
    upstream is on another CPU. With ordinary priorities on one CPU the
    woken upstream sometimes answered first, and the count moved 1-2%
    between runs (more than the override's cost moved); this way
    Switchyard's and the floor's repeat to about 0.01%, HAProxy's to 0.2%."""
    n1, n2 = (1000, 3000) if quick else (2000, 6000)
    subprocess.run(["chrt", "--batch", "-p", "0", str(upstream.pid)], check=True)
    try:
        return tier0_rounds(run_dir, rounds, targets, n1, n2)
    finally:
        subprocess.run(["chrt", "--other", "-p", "0", str(upstream.pid)], check=False)


def tier0_rounds(run_dir, rounds, targets, n1, n2):
    cfgs = {
        "switchyard": ([BIN, "run", "--config", os.path.join(PEERS, "switchyard.yaml"),
                        "--driver", "epoll"], 4140),
        "nginx": ([which("nginx"), "-c", os.path.join(run_dir, "nginx.conf")], 4150),
        "haproxy": ([which("haproxy"), "-db", "-f", os.path.join(run_dir, "haproxy.cfg")], 4160),
        # On epoll, as Switchyard is counted.
        "floor": ([FLOOR, "--epoll", "127.0.0.1:4170", "127.0.0.1:9000"], 4170),
    }
    out = {}
    for r in range(rounds):
        for target in ("switchyard", "switchyard+override", "nginx", "haproxy", "floor"):
            if target not in targets:
                continue
            cmd, port = cfgs[PROXY_OF[target]]
            _, host, headers = TARGETS[target]
            v = callgrind_per_request(cmd, port, run_dir, target.replace("+", "-"), n1, n2,
                                      host, headers)
            if v is not None:
                out.setdefault(target, []).append(v)
            print(f"tier 0 round {r + 1}/{rounds} {target}: {v}", file=sys.stderr)
    return out


def perf_per_request(proc, target, seconds):
    """Syscalls and context switches per request of `proc` during a c=32
    closed-loop run (all on CPU 0)."""
    perf = subprocess.Popen(
        ["perf", "stat", "-x,", "-e", "raw_syscalls:sys_enter,context-switches", "-p",
         str(proc.pid), "--", "sleep", str(seconds + 0.5)],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    r = load(target, "0", 32, seconds, 0.5)
    _, err = perf.communicate()
    vals = {}
    for line in err.splitlines():
        parts = line.split(",")
        if len(parts) > 2 and parts[0].replace(".", "").isdigit():
            vals[parts[2]] = float(parts[0])
    # perf counted the warm-up too; scale by its share of the window.
    window = seconds + 0.5
    n = r["rps"] * window
    return {"syscalls": vals.get("raw_syscalls:sys_enter", 0) / n,
            "context_switches": vals.get("context-switches", 0) / n}


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def rss_with_idle_connections(procs, count):
    """Each proxy's RSS at idle, then holding `count` idle keep-alive client
    connections (each has carried one request)."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < count + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, count + 1000), hard))
    out = {}
    for name, port in (("switchyard", 4140), ("nginx", 4150)):
        proc = procs[name]
        idle = rss_kib(proc.pid)
        conns = []
        try:
            for _ in range(count):
                c = socket.create_connection(("127.0.0.1", port), timeout=5)
                c.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
                got = b""
                while not (b"\r\n\r\n" in got and got.endswith(b"\n") and len(got) > 4):
                    d = c.recv(4096)
                    if not d:
                        raise SystemExit(f"{name} closed connection {len(conns)}")
                    got += d
                conns.append(c)
            time.sleep(0.5)
            out[name] = {"idle_kib": idle, "with_connections_kib": rss_kib(proc.pid),
                         "connections": len(conns)}
        finally:
            for c in conns:
                c.close()
    return out


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def spread(xs):
    return (min(xs), max(xs)) if xs else (float("nan"), float("nan"))


def svg_plot(curves, path, title):
    """Latency by percentile (log-scaled 'nines' axis), one line per target."""
    import math
    qs = [0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9999]
    keys = ["p50", None, "p90", None, "p99", None, "p99.9", "p99.99"]
    pts = {name: [(q, c[k]) for q, k in zip(qs, keys) if k and k in c] for name, c in curves.items()}
    vals = [v for p in pts.values() for _, v in p if v > 0]
    # Log-scaled latency: the median and the far tail differ by 100x.
    lo = 10 ** math.floor(math.log10(min(vals, default=1)))
    hi = 10 ** math.ceil(math.log10(max(vals, default=10)))
    W, H, L, B, T, R = 760, 420, 70, 50, 40, 170
    x = lambda q: L + (math.log10(1 / (1 - q)) - math.log10(2)) / (4 - math.log10(2)) * (W - L - R)
    y = lambda v: H - B - (math.log10(max(v, lo)) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)) * (H - B - T)
    colors = ["#222", "#d62728", "#ff7f0e", "#9467bd", "#1f77b4", "#2ca02c", "#8c564b"]
    s = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
         f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<text x="{L}" y="22" font-size="14">{title}</text>',
         f'<line x1="{L}" y1="{H-B}" x2="{W-R}" y2="{H-B}" stroke="#000"/>',
         f'<line x1="{L}" y1="{T}" x2="{L}" y2="{H-B}" stroke="#000"/>']
    for q, lab in ((0.5, "p50"), (0.9, "p90"), (0.99, "p99"), (0.999, "p99.9"), (0.9999, "p99.99")):
        s.append(f'<line x1="{x(q):.1f}" y1="{T}" x2="{x(q):.1f}" y2="{H-B}" stroke="#eee"/>')
        s.append(f'<text x="{x(q):.1f}" y="{H-B+16}" text-anchor="middle">{lab}</text>')
    decade = lo
    while decade <= hi:
        for m in (1, 2, 5):
            v = decade * m
            if lo <= v <= hi:
                s.append(f'<line x1="{L}" y1="{y(v):.1f}" x2="{W-R}" y2="{y(v):.1f}" stroke="#f2f2f2"/>')
                s.append(f'<text x="{L-6}" y="{y(v)+4:.1f}" text-anchor="end">{v:g}</text>')
        decade *= 10
    s.append(f'<text x="16" y="{(H-B+T)/2:.0f}" transform="rotate(-90 16 {(H-B+T)/2:.0f})" text-anchor="middle">latency (us, log scale)</text>')
    for i, (name, p) in enumerate(pts.items()):
        c = colors[i % len(colors)]
        d = " ".join(f"{x(q):.1f},{y(v):.1f}" for q, v in p)
        s.append(f'<polyline points="{d}" fill="none" stroke="{c}" stroke-width="2"/>')
        s.append(f'<text x="{W-R+10}" y="{T+16+i*18}" fill="{c}">{name}</text>')
    s.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(s) + "\n")


def tier2(m, a, up, proxy, target, run_dir, r, secs, warm):
    """Syscalls and context switches at c=32, then the open-loop run with the
    proxy alone on CPU 0; adds their figures to `m`."""
    if proxy:
        m.update(perf_per_request(proxy, target, secs))
    pin(up, "1")
    if proxy:
        pin(proxy, "0")
    before = cpu_seconds(proxy.pid) if proxy else 0
    hdr = os.path.join(run_dir, f"open-{target.replace('+', '-')}-r{r}.hlog")
    o = load(target, "1", 8, secs, warm, rate=a.rate, hdr_log=hdr)
    m["open"] = o["latency_us"]
    m["open_service"] = o["service_us"]
    m["open_rps"] = o["rps"]
    m["open_late"] = o["late"]
    m["generator_cpu_us_per_request"] = o["generator_cpu_us_per_request"]
    if proxy:
        # CPU over warm-up and measurement, per request of both.
        m["proxy_cpu_us_per_request"] = (cpu_seconds(proxy.pid) - before) * 1e6 / (
            a.rate * (secs + warm))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="shorter runs: under 5 minutes")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rate", type=int, default=10000, help="tier 2 open-loop rate (req/s)")
    ap.add_argument("--out", help="results folder (default loadtest/results/<time>)")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--skip-tier0", action="store_true")
    ap.add_argument("--targets", help="comma-separated targets to measure (direct always runs "
                    "first); default: all of " + ", ".join(TARGETS))
    ap.add_argument("--bodies", action="store_true",
                    help="also POSTs with 1 KiB and 16 KiB request bodies at c=32 in tier 1 "
                         "(not the floor, which forwards no bodies)")
    ap.add_argument("--tier1-only", action="store_true",
                    help="tier 1 alone (c=1 latency, c=32 cost and proxy CPU): no perf, tier 2, "
                    "RSS or tier 0, so more rounds fit in the same time")
    ap.add_argument("--report-only", metavar="DIR",
                    help="rewrite report.md and latency.svg from DIR/results.json")
    a = ap.parse_args()
    if a.report_only:
        with open(os.path.join(a.report_only, "results.json")) as f:
            write_report(json.load(f), a.report_only)
        return
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    if os.cpu_count() < 2:
        raise SystemExit("needs at least 2 CPUs")
    targets = list(TARGETS)
    if a.targets:
        wanted = [t.strip() for t in a.targets.split(",") if t.strip()]
        unknown = [t for t in wanted if t not in TARGETS]
        if unknown:
            raise SystemExit(f"unknown target(s) {', '.join(unknown)}; known: {', '.join(TARGETS)}")
        targets = ["direct"] + [t for t in TARGETS if t in wanted and t != "direct"]
    secs, warm = (1.5, 0.5) if a.quick else (4, 1.5)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    run_dir = os.path.abspath(a.out or os.path.join(ROOT, "loadtest", "results", stamp))
    os.makedirs(os.path.join(run_dir, "www"), exist_ok=True)
    with open(os.path.join(run_dir, "www", "1k"), "w") as f:
        f.write("x" * 1024)
    with open(os.path.join(run_dir, "www", "16k"), "w") as f:
        f.write("x" * 16384)
    if not a.no_build:
        subprocess.run(["cargo", "build", "-q", "--release", "--bin", "switchyard",
                        "--example", "keepalive_client", "--example", "floor"], cwd=ROOT,
                       check=True)
        subprocess.run(["cargo", "build", "-q", "--release", "-p", "switchyard-load"], cwd=ROOT,
                       check=True)
    ensure_peers()
    t_start = time.time()
    results = {"rounds": [], "tier0": {}, "meta": {}}
    try:
        up = spawn([which("nginx"), "-c", render("upstream-nginx.conf", run_dir)],
                   os.path.join(run_dir, "upstream.log"), "0")
        wait_port(9000, up, "upstream nginx")
        procs = start_proxies(run_dir, "0")
        for r in range(a.rounds):
            rnd = {}
            for target in targets:
                proxy = procs.get(PROXY_OF.get(target, ""))
                m = {}
                # Tier 1: everything on CPU 0.
                pin(up, "0")
                if proxy:
                    pin(proxy, "0")
                c1 = load(target, "0", 1, secs, warm)
                m["c1_p50_us"], m["c1_p99_us"] = c1["latency_us"]["p50"], c1["latency_us"]["p99"]
                for size, path in (("6B", "/"), ("16KiB", "/16k")):
                    before = cpu_seconds(proxy.pid) if proxy else 0
                    c32 = load(target, "0", 32, secs, warm, path=path)
                    m[f"c32_rps_{size}"] = c32["rps"]
                    m[f"errors_{size}"] = c32["errors"] + c32["non_2xx"]
                    if proxy:
                        # The proxy's own CPU (user + system) over warm-up
                        # and measurement, per request: unlike the cost
                        # above, it does not move with how the client and
                        # upstream fare on the shared CPU.
                        m[f"c32_proxy_cpu_us_{size}"] = (cpu_seconds(proxy.pid) - before) * 1e6 / (
                            c32["rps"] * (secs + warm))
                if a.bodies and target in BODY_TARGETS:
                    # POSTs with bodies (6 B answers): the upstream answers
                    # on the head and drops the body after, as nginx's
                    # `return` does, so a proxy that sends the body after
                    # the head meets an early answer.
                    for size, n in (("1KiB", 1024), ("16KiB", 16384)):
                        post = load(target, "0", 32, secs, warm, body=n)
                        m[f"post_rps_{size}"] = post["rps"]
                        m[f"post_errors_{size}"] = post["errors"] + post["non_2xx"]
                if not a.tier1_only:
                    tier2(m, a, up, proxy, target, run_dir, r, secs, warm)
                rnd[target] = m
                opened = f", open p99 {m['open']['p99']:.0f} us" if "open" in m else ""
                print(f"round {r + 1}/{a.rounds} {target}: c1 p50 {m['c1_p50_us']:.1f} us, "
                      f"c32 {m['c32_rps_6B']:.0f} rps{opened}", file=sys.stderr)
            results["rounds"].append(rnd)
            # A checkpoint: a later failure does not lose the rounds.
            with open(os.path.join(run_dir, "results.json"), "w") as f:
                json.dump(results, f, indent=1)
        pin(up, "1")
        for p in procs.values():
            pin(p, "0")
        if not a.tier1_only:
            results["rss"] = rss_with_idle_connections(procs, 10_000)
        # Tier 0 runs each proxy alone under callgrind, against the same
        # upstream, all on CPU 0.
        for p in procs.values():
            stop(p)
        pin(up, "0")
        if not (a.skip_tier0 or a.tier1_only):
            # --quick counts once: three rounds of it would take the run past
            # five minutes.
            results["tier0"] = tier0(run_dir, a.quick, 1 if a.quick else a.rounds, targets, up)
    finally:
        stop_all()
    results["meta"] = {
        "date": stamp,
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                 capture_output=True, text=True).stdout.strip(),
        "machine": f"{os.cpu_count()} CPUs, {os.uname().release}",
        "command": "python3 loadtest/compare.py " + " ".join(sys.argv[1:]),
        "seconds": round(time.time() - t_start),
    }
    with open(os.path.join(run_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    write_report(results, run_dir)
    print(f"results in {run_dir} ({results['meta']['seconds']} s)", file=sys.stderr)


def write_report(res, run_dir):
    rounds = res["rounds"]
    # (Results from before the floor was measured have no row for it.)
    names = [n for n in TARGETS if n in rounds[0]]

    def per_round(f):
        return {n: [f(rd, n) for rd in rounds] for n in names}

    cost = {}
    for size in ("6B", "16KiB"):
        cost[size] = per_round(lambda rd, n: 1e6 / rd[n][f"c32_rps_{size}"] - 1e6 / rd["direct"][f"c32_rps_{size}"])
    add50 = per_round(lambda rd, n: rd[n]["c1_p50_us"] - rd["direct"]["c1_p50_us"])
    add99 = per_round(lambda rd, n: rd[n]["c1_p99_us"] - rd["direct"]["c1_p99_us"])
    def vs_nginx_of(table, among):
        return {n: median([a / b for a, b in zip(table[n], table.get("nginx", [])) if b]) for n in among}

    def vs_nginx(table):
        return vs_nginx_of(table, names)

    def times(r):
        # No ratio without nginx in the run.
        return "" if r != r else f"{r:.2f}x"

    def cell(xs, fmt="{:.1f}"):
        lo, hi = spread(xs)
        return f"{fmt.format(median(xs))} ({fmt.format(lo)}–{fmt.format(hi)})"

    m = res["meta"]
    lines = [f"# Proxy comparison, {m['date']}", "",
             f"Commit {m['commit']}, {m['machine']}, `{m['command']}`, {len(rounds)} interleaved rounds "
             f"(direct first). Figures are medians over rounds, with the range in brackets; "
             f"ratios are medians of per-round ratios."
             + (" `floor` is examples/floor.rs, a bare monoio + httparse proxy (no routing, checks "
                "or rewriting): what the runtime, the parser and the kernel cost on this machine "
                "before any of Switchyard's own work." if "floor" in names else ""), "",
             "## Tier 1: everything on CPU 0, closed loop", "",
             "| target | cost µs/req 6 B | vs nginx | cost µs/req 16 KiB | vs nginx | c=1 added p50 µs | vs nginx | c=1 added p99 µs | errors |",
             "|---|---|---|---|---|---|---|---|---|"]
    r6, r16, r50 = vs_nginx(cost["6B"]), vs_nginx(cost["16KiB"]), vs_nginx(add50)
    for n in names:
        errs = sum(rd[n]["errors_6B"] + rd[n]["errors_16KiB"] for rd in rounds)
        if n == "direct":
            lines.append(f"| direct | {cell([1e6 / rd['direct']['c32_rps_6B'] for rd in rounds])} (total) | | "
                         f"{cell([1e6 / rd['direct']['c32_rps_16KiB'] for rd in rounds])} (total) | | "
                         f"p50 {cell([rd['direct']['c1_p50_us'] for rd in rounds])} | | p99 {cell([rd['direct']['c1_p99_us'] for rd in rounds])} | {errs} |")
            continue
        lines.append(f"| {n} | {cell(cost['6B'][n])} | {times(r6[n])} | {cell(cost['16KiB'][n])} | {times(r16[n])} | "
                     f"{cell(add50[n])} | {times(r50[n])} | {cell(add99[n])} | {errs} |")
    cpu = {size: {n: [rd[n].get(f"c32_proxy_cpu_us_{size}") for rd in rounds] for n in names[1:]}
           for size in ("6B", "16KiB")}
    if all(x is not None for size in cpu for xs in cpu[size].values() for x in xs):
        lines += ["", "Proxy CPU per request at c=32 (user + system time from /proc, over the same runs; "
                  "for 2 hops, the one process serves both):", "",
                  "| target | CPU µs/req 6 B | vs nginx | CPU µs/req 16 KiB | vs nginx |", "|---|---|---|---|---|"]
        c6, c16 = vs_nginx({**cpu["6B"], "direct": []}), vs_nginx({**cpu["16KiB"], "direct": []})
        for n in names[1:]:
            lines.append(f"| {n} | {cell(cpu['6B'][n])} | {times(c6[n])} | {cell(cpu['16KiB'][n])} | {times(c16[n])} |")
    if "post_rps_1KiB" in rounds[0]["direct"]:
        bnames = [n for n in names if "post_rps_1KiB" in rounds[0][n]]
        post = {size: {n: [1e6 / rd[n][f"post_rps_{size}"] - 1e6 / rd["direct"][f"post_rps_{size}"]
                           for rd in rounds] for n in bnames} for size in ("1KiB", "16KiB")}
        p1, p16 = vs_nginx_of(post["1KiB"], bnames), vs_nginx_of(post["16KiB"], bnames)
        lines += ["", "Request bodies: POSTs at c=32, 6 B answers, the upstream answering on the head "
                  "(nginx's `return`); cost as above:", "",
                  "| target | cost µs/req 1 KiB body | vs nginx | cost µs/req 16 KiB body | vs nginx | errors |",
                  "|---|---|---|---|---|---|"]
        for n in bnames:
            errs = sum(rd[n]["post_errors_1KiB"] + rd[n]["post_errors_16KiB"] for rd in rounds)
            if n == "direct":
                lines.append(f"| direct | {cell([1e6 / rd['direct']['post_rps_1KiB'] for rd in rounds])} (total) | | "
                             f"{cell([1e6 / rd['direct']['post_rps_16KiB'] for rd in rounds])} (total) | | {errs} |")
                continue
            lines.append(f"| {n} | {cell(post['1KiB'][n])} | {times(p1[n])} | {cell(post['16KiB'][n])} | "
                         f"{times(p16[n])} | {errs} |")
    # A --tier1-only run has none of what follows.
    if "open" not in rounds[0]["direct"]:
        lines += ["", "(Tier 1 only: no tier 0, perf, tier 2 or RSS in this run.)", ""]
        emit(lines, run_dir)
        return
    lines += ["", "## Tier 0 and kernel work", "",
              "| target | user instructions/req (callgrind) | syscalls/req c=32 | context switches/req c=32 |",
              "|---|---|---|---|"]
    # One figure per round (older results hold a single number).
    t0s = {n: (v if isinstance(v, list) else [v]) for n, v in res["tier0"].items() if v}
    for n in names[1:]:
        t0 = t0s.get(n)
        sc = [rd[n].get("syscalls", 0) for rd in rounds]
        cs = [rd[n].get("context_switches", 0) for rd in rounds]
        lines.append(f"| {n} | {cell(t0, '{:,.0f}')} |" if t0 else f"| {n} | (not measured) |")
        lines[-1] += f" {cell(sc, '{:.2f}')} | {cell(cs, '{:.2f}')} |"
    plain, over = t0s.get("switchyard"), t0s.get("switchyard+override")
    if plain and over and len(plain) == len(over):
        extra = [(o / p_ - 1) * 100 for o, p_ in zip(over, plain)]
        lines += ["", f"The l5d-dtab override costs {median(extra):+.1f}% instructions per request "
                  f"(per-round range {min(extra):+.1f}% to {max(extra):+.1f}%)."]
    lines += ["", f"## Tier 2: proxy alone on CPU 0, open loop at {rounds[0]['direct'].get('open_rps', 0):.0f}/s achieved (CO-corrected)", "",
              "| target | p50 µs | p99 µs | p99.9 µs | max µs | proxy CPU µs/req | late sends |",
              "|---|---|---|---|---|---|---|"]
    for n in names:
        o = [rd[n]["open"] for rd in rounds]
        cpu = [rd[n]["proxy_cpu_us_per_request"] for rd in rounds if "proxy_cpu_us_per_request" in rd[n]]
        late = sum(rd[n]["open_late"] for rd in rounds)
        lines.append(f"| {n} | {cell([x['p50'] for x in o], '{:.0f}')} | {cell([x['p99'] for x in o], '{:.0f}')} | "
                     f"{cell([x['p99.9'] for x in o], '{:.0f}')} | {cell([x['max'] for x in o], '{:.0f}')} | "
                     f"{cell(cpu) if cpu else ''} | {late} |")
    if res.get("rss"):
        lines += ["", "## Memory", "", "| proxy | RSS idle | RSS with 10,000 idle keep-alive connections |", "|---|---|---|"]
        for n, r in res["rss"].items():
            lines.append(f"| {n} | {r['idle_kib'] / 1024:.1f} MiB | {r['with_connections_kib'] / 1024:.1f} MiB ({r['connections']} connections) |")
    gen = [rd[n]["generator_cpu_us_per_request"] for rd in rounds for n in names]
    lines += ["", f"Generator CPU per request (open loop): median {median(gen):.1f} µs.",
              "", "![latency by percentile, tier 2](latency.svg)", ""]
    emit(lines, run_dir)
    # The plot: each target's median-round open-loop curve.
    curves = {}
    for n in names:
        o = [rd[n]["open"] for rd in rounds]
        curves[n] = {k: median([x[k] for x in o]) for k in o[0]}
    svg_plot(curves, os.path.join(run_dir, "latency.svg"),
             f"Open loop, proxy alone on a core: latency by percentile ({m['date']}, {m['commit']})")


def emit(lines, run_dir):
    """Writes report.md and prints it."""
    with open(os.path.join(run_dir, "report.md"), "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
