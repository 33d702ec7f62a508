//! The adversarial HTTP/1.1 corpus (`tests/conformance/http1-adversarial.json`,
//! or the file named by `SWITCHYARD_HTTP1_CORPUS`), every case sent to a live
//! proxy in front of recording upstreams, under each IO driver, on the
//! listeners the case names (`any` runs on both a mesh and an edge listener).
//!
//! The corpus states what an upstream must and must not see in prose. For
//! every rejecting verdict the harness checks the strongest form: the status
//! is one listed, the connection closes when asked, and the upstreams
//! received nothing at all. Cases that forward have a check each, below,
//! keyed by id; a forwarding case with no check fails rather than passes.
//!
//! Slow-client steps run 100 times faster than written, against a proxy
//! configured with millisecond-scale timeouts.

use crate::support::{Client, Proxy, Reply, SeenRequest, Tally, Upstream, corpus_path, drivers};
use serde_json::Value;
use std::io::Write;
use std::time::{Duration, Instant};

/// Step intervals in the corpus are divided by this.
const TIME_SCALE: u64 = 100;

/// Cases not run, with the reason.
const SKIPPED: &[(&str, &str)] = &[];

struct Env {
    proxy: Proxy,
    base: Upstream,
    canary: Upstream,
    early: Upstream,
}

fn proxy_yaml(base: &Upstream, canary: &Upstream, early: &Upstream) -> String {
    let router = |label: &str, trust: &str| {
        format!(
            "- protocol: http\n  label: {label}\n  dtab: |\n    /svc => /$/inet/127.0.0.1/{};\n    /svc/canary => /$/inet/127.0.0.1/{};\n    /svc/early.test => /$/inet/127.0.0.1/{};\n  servers:\n  - port: 0\n    trust: {trust}\n  timeouts:\n    headerReadTimeoutMs: 300\n    idleTimeoutMs: 500\n    bodyIdleTimeoutMs: 300\n    responseHeadTimeoutMs: 2000\n    expectContinueTimeoutMs: 200\n  limits:\n    requestBodyBytesMax: 4194304\n",
            base.addr.port(),
            canary.addr.port(),
            early.addr.port()
        )
    };
    format!(
        "routers:\n{}{}",
        router("mesh", "mesh"),
        router("edge", "edge")
    )
}

impl Env {
    fn start(driver: &str) -> Env {
        let base = Upstream::start(Reply::Describe("base"));
        let canary = Upstream::start(Reply::Describe("canary"));
        let early = Upstream::start(Reply::EarlyReject(Duration::ZERO));
        let proxy = Proxy::start(&proxy_yaml(&base, &canary, &early), driver);
        Env {
            proxy,
            base,
            canary,
            early,
        }
    }

    /// Waits until bytes from the previous case stop arriving (a refused
    /// streamed body may still be in flight), then forgets them.
    fn clear(&self) {
        let mut last = usize::MAX;
        for _ in 0..100 {
            let now = self.upstream_bytes().len();
            if now == last {
                break;
            }
            last = now;
            std::thread::sleep(Duration::from_millis(20));
        }
        self.base.clear();
        self.canary.clear();
        self.early.clear();
    }

    fn upstream_bytes(&self) -> Vec<u8> {
        let mut b = self.base.all_bytes();
        b.extend(self.canary.all_bytes());
        b.extend(self.early.all_bytes());
        b
    }

    fn requests(&self) -> Vec<SeenRequest> {
        let mut r = self.base.requests();
        r.extend(self.canary.requests());
        r
    }
}

/// Latin-1 text to bytes, one code point per byte.
fn bytes_of(s: &str) -> Vec<u8> {
    s.chars().map(|c| c as u32 as u8).collect()
}

fn generate(g: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    for part in g["parts"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
    {
        if let Some(lit) = part["lit"].as_str() {
            out.extend(bytes_of(lit));
        } else if let Some(unit) = part["repeat"].as_str() {
            let count = part["count"].as_u64().unwrap_or(0) as usize;
            // "<1 MiB of 'A'>" stands for exactly that.
            let unit = unit.replace("<1 MiB of 'A'>", &"A".repeat(1 << 20));
            let unit = bytes_of(&unit);
            for _ in 0..count {
                out.extend_from_slice(&unit);
            }
        } else if let Some(unit) = part["repeat_indexed"].as_str() {
            for i in 0..part["count"].as_u64().unwrap_or(0) {
                out.extend(bytes_of(&unit.replace("{i}", &i.to_string())));
            }
        }
    }
    out
}

/// What came back on one connection.
struct Outcome {
    statuses: Vec<u16>,
    bodies: Vec<String>,
    closed: bool,
}

/// Sends `raw` (ignoring write errors: the proxy may close early) and reads
/// every response until the connection closes or goes quiet.
fn exchange(addr: std::net::SocketAddr, raw: &[u8]) -> Outcome {
    let mut c = Client::connect(addr);
    let _ = c.stream.set_write_timeout(Some(Duration::from_secs(5)));
    let writer = {
        let mut s = c.stream.try_clone().expect("clone");
        let raw = raw.to_vec();
        std::thread::spawn(move || {
            let _ = s.write_all(&raw);
        })
    };
    let mut out = Outcome {
        statuses: Vec::new(),
        bodies: Vec::new(),
        closed: false,
    };
    let _ = c.stream.set_read_timeout(Some(Duration::from_secs(4)));
    while let Some(r) = c.response() {
        if r.status >= 200 {
            out.statuses.push(r.status);
            out.bodies.push(r.text());
        }
        let _ = c.stream.set_read_timeout(Some(Duration::from_millis(100)));
    }
    out.closed = c.closed || c.closed_within(Duration::from_millis(50));
    let _ = c.stream.shutdown(std::net::Shutdown::Both);
    let _ = writer.join();
    out
}

fn statuses(e: &Value) -> Vec<u16> {
    e["status"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_u64().map(|s| s as u16))
                .collect()
        })
        .unwrap_or_default()
}

fn check_rejected(e: &Value, o: &Outcome, env: &Env) -> Result<(), String> {
    let allowed = statuses(e);
    match o.statuses.first() {
        Some(s) if !allowed.is_empty() && !allowed.contains(s) => {
            return Err(format!("status {s}, want one of {allowed:?}"));
        }
        None if !allowed.is_empty() => return Err(format!("no response, want one of {allowed:?}")),
        _ => {}
    }
    if e["close"].as_bool() == Some(true) && !o.closed {
        return Err("connection left open".into());
    }
    std::thread::sleep(Duration::from_millis(30));
    let streamed = e["upstream_must_not_see"].as_array().is_some_and(|a| {
        a.iter().any(|m| {
            m.as_str()
                .is_some_and(|m| m.contains("a completed request"))
        })
    });
    if streamed {
        // A body refused part-way may have been streamed in part; what
        // matters is that no complete request reached the upstream.
        let done = env.requests();
        if !done.is_empty() {
            return Err(format!(
                "upstream received a complete request: {}",
                short(&format!("{done:?}"))
            ));
        }
        return Ok(());
    }
    let seen = env.upstream_bytes();
    if !seen.is_empty() {
        return Err(format!(
            "upstream received {}",
            short(&String::from_utf8_lossy(&seen))
        ));
    }
    Ok(())
}

/// The start of a long text, for failure messages.
fn short(s: &str) -> String {
    if s.len() <= 300 {
        s.to_owned()
    } else {
        format!("{}... ({} bytes)", &s[..300], s.len())
    }
}

fn lower(s: &[u8]) -> String {
    String::from_utf8_lossy(s).to_ascii_lowercase()
}

/// The checks for cases that forward.
/// A "reject-or-normalize" case the proxy forwarded: only those it is
/// meant to normalize, and then exactly as the case's `normalized` says.
fn check_normalized(id: &str, o: &Outcome, env: &Env) -> Result<(), String> {
    std::thread::sleep(Duration::from_millis(30));
    let reqs = env.requests();
    let raw = lower(&env.upstream_bytes());
    match id {
        "SMUG-052-h2c-upgrade-at-edge" => {
            // The offer, its settings and the Connection tokens naming them
            // are gone; the request went on as plain HTTP/1.1 and the client
            // keeps its connection.
            if o.statuses != [200] || o.closed {
                return Err(format!("statuses {:?}, closed {}", o.statuses, o.closed));
            }
            if reqs.len() != 1
                || raw.contains("upgrade")
                || raw.contains("http2-settings")
                || !raw.starts_with("get / http/1.1\r\n")
            {
                return Err(format!("upstream saw {}", short(&raw)));
            }
            Ok(())
        }
        _ => Err(format!(
            "forwarded with status {:?}; this proxy is meant to reject it",
            o.statuses
        )),
    }
}

fn check_forwarded(id: &str, listener: &str, o: &Outcome, env: &Env) -> Result<(), String> {
    std::thread::sleep(Duration::from_millis(30));
    let reqs = env.requests();
    let raw = lower(&env.upstream_bytes());
    let ok_all = |n: usize| -> Result<(), String> {
        if o.statuses.len() != n || o.statuses.iter().any(|&s| s != 200) {
            return Err(format!(
                "want {n} responses of 200, got {:?} {:?}",
                o.statuses, o.bodies
            ));
        }
        Ok(())
    };
    let no_routing_headers = |names: &[&str]| -> Result<(), String> {
        for n in names {
            if raw.contains(&format!("\r\n{n}:")) {
                return Err(format!("upstream saw {n}: {raw}"));
            }
        }
        Ok(())
    };
    match id {
        "SMUG-047-expect-100-continue-early-response" => {
            ok_all(1)?;
            if reqs.len() != 1 || reqs[0].body != b"GET /admin HTTP/1.1\r\nHost: a.test\r\n\r\n" {
                return Err(format!("upstream requests {reqs:?}"));
            }
        }
        "CHUNK-023-valid-extension" => {
            ok_all(1)?;
            if reqs.len() != 1 || reqs[0].body != b"hello" || raw.contains("name=value") {
                return Err(format!("upstream saw {}", short(&raw)));
            }
        }
        "CHUNK-025-trailer-looks-like-request" => {
            ok_all(1)?;
            if reqs.len() != 1 || !reqs[0].body.is_empty() || raw.contains("x:post") {
                return Err(format!("upstream saw {}", short(&raw)));
            }
        }
        "HDR-021-host-trailing-ows" => {
            ok_all(1)?;
            if reqs.len() != 1
                || reqs[0].header("host") != Some("a.test")
                || !raw.contains("\r\nhost: a.test\r\n")
            {
                return Err(format!("upstream saw {}", short(&raw)));
            }
        }
        "TGT-023-encoded-crlf-in-path" => {
            ok_all(1)?;
            if reqs.len() != 1
                || reqs[0].line != "GET /a%0d%0aX-Injected:%20yes"
                || raw.contains("\r\nx-injected")
            {
                return Err(format!("upstream saw {}", short(&raw)));
            }
        }
        "DTAB-002-l5d-ctx-dtab-at-edge"
        | "DTAB-003-dtab-local-legacy-at-edge"
        | "DTAB-010-malformed-at-edge" => {
            ok_all(1)?;
            if reqs.len() != 1 || !o.bodies[0].starts_with("base:") {
                return Err(format!("not routed by the base dtab: {:?}", o.bodies));
            }
            no_routing_headers(&[
                "l5d-dtab",
                "l5d-ctx-dtab",
                "l5d-ctx-deadline",
                "l5d-ctx-trace",
                "dtab-local",
            ])?;
        }
        "DTAB-008-dtab-in-trailer" => {
            ok_all(1)?;
            if reqs.len() != 1 || reqs[0].body != b"hello" || raw.contains("l5d-dtab") {
                return Err(format!("upstream saw {}", short(&raw)));
            }
        }
        "DTAB-024-empty-value" => {
            ok_all(1)?;
            no_routing_headers(&["l5d-dtab", "l5d-ctx-dtab"])?;
        }
        "DTAB-025-no-leak-between-keepalive-requests" => {
            ok_all(2)?;
            if !(o.bodies[0].starts_with("canary: GET /one")
                && o.bodies[1].starts_with("base: GET /two"))
            {
                return Err(format!("routing leaked between requests: {:?}", o.bodies));
            }
        }
        "DTAB-026-pipelined-second-request-at-edge" => {
            ok_all(2)?;
            if !(o.bodies[0].starts_with("base: GET /one")
                && o.bodies[1].starts_with("base: GET /two"))
            {
                return Err(format!("{:?}", o.bodies));
            }
            no_routing_headers(&["l5d-dtab"])?;
        }
        "PIPE-001-two-valid" | "PIPE-007-order-with-slow-first" => {
            ok_all(2)?;
            let want = if id.starts_with("PIPE-001") {
                ["GET /1", "GET /2"]
            } else {
                ["GET /slow", "GET /fast"]
            };
            if !(o.bodies[0].contains(want[0]) && o.bodies[1].contains(want[1])) {
                return Err(format!("out of order: {:?}", o.bodies));
            }
        }
        "PIPE-003-cl0-then-pipelined" => {
            ok_all(2)?;
            if reqs.len() != 2
                || reqs[0].header("id") != Some("0")
                || reqs[1].header("id") != Some("1")
                || reqs[1].body.len() != 34
            {
                return Err(format!("upstream requests {reqs:?}"));
            }
        }
        "PIPE-004-after-connection-close" | "PIPE-005-http10-default-close" => {
            ok_all(1)?;
            if !o.closed || reqs.len() != 1 || reqs[0].line != "GET /1" {
                return Err(format!("closed {} requests {reqs:?}", o.closed));
            }
        }
        "TRUST-001-xff-spoof-at-edge" => {
            ok_all(1)?;
            let r = &reqs[0];
            if r.count("x-forwarded-for") != 1
                || r.header("x-forwarded-for") != Some("127.0.0.1")
                || r.header("x-forwarded-proto") != Some("http")
                || r.count("forwarded") != 0
            {
                return Err(format!("forwarding headers {:?}", r.headers));
            }
        }
        "TRUST-002-via-prefill" => {
            ok_all(1)?;
            let via = reqs[0].header("via").unwrap_or_default();
            if !(via.starts_with("1.1 hop0, ") && via.ends_with("1.1 last, 1.1 switchyard")) {
                return Err(format!("Via {via:?}"));
            }
        }
        "PIPE-002-valid-then-invalid" => {
            if o.statuses != [200, 400] || !o.closed || reqs.len() != 1 || reqs[0].line != "GET /1"
            {
                return Err(format!(
                    "statuses {:?} closed {} requests {reqs:?}",
                    o.statuses, o.closed
                ));
            }
        }
        "CHUNK-026-no-last-chunk-then-eof" => {
            // The client gave up mid-body: the upstream exchange is aborted,
            // never completed with a terminating chunk the client did not
            // send.
            if o.statuses.contains(&200) || raw.contains("\r\n0\r\n\r\n") || !reqs.is_empty() {
                return Err(format!(
                    "statuses {:?}; upstream saw {}",
                    o.statuses,
                    short(&raw)
                ));
            }
        }
        "DTAB-017-fanout-bomb" => {
            if !matches!(o.statuses.first(), Some(400 | 502)) || !reqs.is_empty() {
                return Err(format!("statuses {:?} requests {reqs:?}", o.statuses));
            }
        }
        _ => {
            return Err(format!(
                "no check is written for forwarding case {id} on {listener}"
            ));
        }
    }
    Ok(())
}

/// Runs `steps` (slow clients), scaled down in time.
fn run_steps(
    id: &str,
    steps: &[Value],
    e: &Value,
    env: &Env,
    addr: std::net::SocketAddr,
) -> Result<(), String> {
    let mut c = Client::connect(addr);
    let scaled = |ms: u64| Duration::from_millis(ms / TIME_SCALE);
    let mut got: Vec<u16> = Vec::new();
    for step in steps {
        if let Some(s) = step["send"].as_str() {
            let _ = c.stream.write_all(&bytes_of(s));
        } else if let Some(ms) = step["sleep_ms"].as_u64() {
            std::thread::sleep(scaled(ms));
        } else if let Some(s) = step["trickle"].as_str() {
            let every = scaled(step["interval_ms"].as_u64().unwrap_or(1000));
            for b in bytes_of(s) {
                if c.stream.write_all(&[b]).is_err() {
                    break;
                }
                std::thread::sleep(every);
            }
        } else if let Some(s) = step["repeat_send"].as_str() {
            let every = scaled(step["interval_ms"].as_u64().unwrap_or(1000));
            let count = step["count"].as_u64().unwrap_or(u64::MAX);
            let give_up = Instant::now() + Duration::from_secs(5);
            let mut sent = 0;
            while sent < count && Instant::now() < give_up {
                if c.stream.write_all(&bytes_of(s)).is_err() {
                    break;
                }
                sent += 1;
                std::thread::sleep(every);
            }
        } else if step.get("expect_response").is_some() {
            match c.response() {
                Some(r) => got.push(r.status),
                None => return Err("no response".into()),
            }
        } else if let Some(ms) = step["expect_close_within_ms"].as_u64() {
            // The scaled deadline, but never less than 2 s of slack for a
            // busy machine.
            let within = scaled(ms).max(Duration::from_secs(2));
            let _ = c.stream.set_read_timeout(Some(within));
            while let Some(r) = c.response() {
                got.push(r.status);
            }
            if !c.closed && !c.closed_within(within) {
                return Err(format!("not closed within {within:?}"));
            }
        }
    }
    let allowed = statuses(e);
    if let Some(s) = got.iter().find(|s| **s != 200 && !allowed.contains(s)) {
        return Err(format!("status {s}, want one of {allowed:?}"));
    }
    std::thread::sleep(Duration::from_millis(30));
    let raw = lower(&env.upstream_bytes());
    if raw.contains("get /admin") {
        return Err(format!("{id}: upstream saw GET /admin: {raw:?}"));
    }
    Ok(())
}

/// The proxy still answers promptly on a fresh connection.
fn still_serving(addr: std::net::SocketAddr) -> Result<(), String> {
    let o = exchange(
        addr,
        b"GET /alive HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
    );
    if o.statuses == [200] {
        Ok(())
    } else {
        Err(format!("proxy stopped serving: {:?}", o.statuses))
    }
}

fn run_special(
    id: &str,
    case: &Value,
    env: &Env,
    addr: std::net::SocketAddr,
) -> Result<(), String> {
    match id {
        "LIM-013-pipeline-flood" => {
            // The client writes and never reads: the proxy must stop
            // reading (backpressure), not buffer without bound.
            let c = Client::connect(addr);
            let _ = c.stream.set_write_timeout(Some(Duration::from_secs(2)));
            let mut s = c.stream.try_clone().expect("clone");
            let bytes = generate(&case["generator"]);
            let _ = s.write_all(&bytes);
            still_serving(addr)
        }
        "LIM-014-connection-flood" => {
            // Scaled to 500 idle connections: the proxy keeps serving, and
            // its idle timeout reclaims them.
            let mut idle: Vec<Client> = (0..500).map(|_| Client::connect(addr)).collect();
            still_serving(addr)?;
            let closed = idle
                .iter_mut()
                .take(20)
                .all(|c| c.closed_within(Duration::from_secs(3)));
            if closed {
                Ok(())
            } else {
                Err("idle connections were not reclaimed".into())
            }
        }
        "PIPE-006-upstream-early-response-no-reuse" => {
            // Client A's POST goes to an upstream that answers 400 before
            // reading the body; A's "body" is a request. Client B then uses
            // the same endpoint.
            let mut a = Client::connect(addr);
            a.send(b"POST /upload HTTP/1.1\r\nHost: early.test\r\nContent-Length: 37\r\n\r\n");
            std::thread::sleep(Duration::from_millis(200));
            let _ = a
                .stream
                .write_all(b"GET /admin HTTP/1.1\r\nHost: a.test\r\n\r\n");
            let ra = a.response().ok_or("no response for A")?;
            let mut b = Client::connect(addr);
            b.send(b"GET /b HTTP/1.1\r\nHost: early.test\r\n\r\n");
            let rb = b.response().ok_or("no response for B")?;
            if ra.status != 400 || rb.status != 400 {
                return Err(format!("statuses {} {}", ra.status, rb.status));
            }
            std::thread::sleep(Duration::from_millis(30));
            // Every upstream connection must begin with a request head, and
            // no connection may carry A's body before B's request.
            for conn in env.early.received.lock().unwrap().iter() {
                let text = String::from_utf8_lossy(conn);
                if let Some(i) = text.find("GET /b")
                    && text[..i].contains("GET /admin")
                {
                    return Err(format!("B's request followed A's unread body: {text:?}"));
                }
            }
            Ok(())
        }
        "SLOW-007-slow-reader" => {
            let mut c = Client::connect(addr);
            c.send(b"GET /large HTTP/1.1\r\nHost: a.test\r\n\r\n");
            std::thread::sleep(Duration::from_millis(1200));
            still_serving(addr)
        }
        _ => Err(format!("no runner for {id}")),
    }
}

/// One case on one listener.
fn run_case(case: &Value, env: &Env, listener: &str) -> Result<(), String> {
    let id = case["id"].as_str().unwrap_or("?");
    let e = &case["expected"];
    let verdict = e["verdict"].as_str().unwrap_or("");
    let addr = env.proxy.addr(listener);
    if matches!(
        id,
        "LIM-013-pipeline-flood"
            | "LIM-014-connection-flood"
            | "PIPE-006-upstream-early-response-no-reuse"
            | "SLOW-007-slow-reader"
    ) {
        return run_special(id, case, env, addr);
    }
    if let Some(steps) = case["steps"].as_array() {
        return run_steps(id, steps, e, env, addr);
    }
    let raw = match case["raw_kind"].as_str() {
        Some("generator") => generate(&case["generator"]),
        _ => bytes_of(case["raw"].as_str().unwrap_or("")),
    };
    let o = exchange(addr, &raw);
    match verdict {
        "reject-or-normalize" if o.statuses.first().is_some_and(|s| (200..300).contains(s)) => {
            check_normalized(id, &o, env)
        }
        "reject" | "reject-or-normalize" => check_rejected(e, &o, env),
        _ => check_forwarded(id, listener, &o, env),
    }
}

/// Response-direction cases: the raw bytes are what an upstream answers.
fn run_response_case(case: &Value, driver: &str) -> Result<(), String> {
    let id = case["id"].as_str().unwrap_or("?");
    let raw: &'static [u8] =
        Box::leak(bytes_of(case["raw"].as_str().unwrap_or("")).into_boxed_slice());
    let up = Upstream::start(Reply::Raw(raw));
    let yaml = format!(
        "routers:\n- protocol: http\n  label: mesh\n  dtab: /svc => /$/inet/127.0.0.1/{};\n  servers:\n  - port: 0\n",
        up.addr.port()
    );
    let px = Proxy::start(&yaml, driver);
    let allowed = statuses(&case["expected"]);
    for _ in 0..2 {
        let o = exchange(px.addr("mesh"), b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n");
        match o.statuses.first() {
            Some(s) if allowed.contains(s) => {}
            other => return Err(format!("{id}: status {other:?}, want one of {allowed:?}")),
        }
    }
    // Each request needed a fresh upstream connection: the one that sent
    // bad framing was discarded.
    let conns = up.connections.load(std::sync::atomic::Ordering::Relaxed);
    if conns != 2 {
        return Err(format!(
            "{id}: {conns} upstream connections for 2 requests: a connection was reused"
        ));
    }
    Ok(())
}

#[test]
fn http1_adversarial() {
    let path = corpus_path("SWITCHYARD_HTTP1_CORPUS", "http1-adversarial.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let corpus: Value = serde_json::from_str(&text).expect("corpus is JSON");
    let cases = corpus["cases"].as_array().expect("cases");
    let mut tally = Tally::default();
    // Each driver gets its own proxy and upstreams, in its own thread.
    let per_driver: Vec<Vec<Result<(), String>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = drivers()
            .into_iter()
            .map(|driver| {
                scope.spawn(move || {
                    let env = Env::start(driver);
                    cases
                        .iter()
                        .map(|case| {
                            let id = case["id"].as_str().unwrap_or("?");
                            if SKIPPED.iter().any(|(s, _)| *s == id) {
                                return Ok(());
                            }
                            if case["direction"].as_str() == Some("upstream->proxy")
                                || id.starts_with("RESP-")
                            {
                                return run_response_case(case, driver)
                                    .map_err(|e| format!("{driver}: {e}"));
                            }
                            let listeners: &[&str] = match case["listener"].as_str() {
                                Some("edge") => &["edge"],
                                Some("internal") => &["mesh"],
                                _ => &["mesh", "edge"],
                            };
                            listeners.iter().try_for_each(|l| {
                                env.clear();
                                run_case(case, &env, l).map_err(|e| format!("{driver}/{l}: {e}"))
                            })
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("driver thread"))
            .collect()
    });
    for (i, case) in cases.iter().enumerate() {
        let id = case["id"].as_str().unwrap_or("?");
        if let Some((_, why)) = SKIPPED.iter().find(|(s, _)| *s == id) {
            tally.skipped.push(format!("{id}: {why}"));
            continue;
        }
        let result = per_driver
            .iter()
            .map(|results| results[i].clone())
            .find(|r| r.is_err())
            .unwrap_or(Ok(()));
        tally.record(id, result);
    }
    tally.finish("http1 adversarial");
}
