//! The admin server (linkerd's `:9990`): liveness and readiness, the
//! effective config, discovery state, the delegation API and the dtab
//! playground page, and a drain trigger.
//!
//! It runs on its own thread with blocking sockets, one request at a time:
//! admin traffic is a person or a probe, and nothing here may touch a
//! shard's state. It reads what the shards publish (their applied snapshot
//! generation) and what discovery publishes (the newest snapshot).

#![allow(clippy::disallowed_methods)] // the admin thread is not a shard

use crate::config::Router;
use crate::discovery::Published;
use crate::limits::BIND_LOOKUPS_MAX;
use crate::routing::snapshot::Snapshot;
use crate::routing::{Dtab, GlobalNamer, Interpreter, Path};
use crate::telemetry::HistogramSnapshot;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// A shard whose heartbeat is older than this is not live.
const LIVENESS_STALE_MS: u64 = 2_000;

/// Largest admin request accepted (head and body).
const ADMIN_REQUEST_BYTES_MAX: usize = 64 * 1024;

/// What the admin server reports on.
pub struct AdminState {
    pub routers: Vec<Arc<Router>>,
    pub listener_metrics: Vec<(String, SocketAddr, Arc<crate::telemetry::ListenerMetrics>)>,
    pub published: Option<Arc<Published>>,
    pub shard_generations: Vec<Arc<crate::telemetry::ShardReport>>,
    pub listeners: Vec<(String, SocketAddr)>,
    pub driver: String,
    /// Each access log's file and its count of dropped lines.
    pub access_logs: Vec<(std::path::PathBuf, Arc<std::sync::atomic::AtomicU64>)>,
}

impl AdminState {
    fn snapshot(&self) -> Arc<Snapshot> {
        self.published
            .as_ref()
            .map(|p| p.load())
            .unwrap_or_default()
    }

    /// Live when every shard has shown itself running recently.
    fn live(&self) -> Result<(), String> {
        self.live_at(crate::telemetry::uptime_ms())
    }

    fn live_at(&self, now: u64) -> Result<(), String> {
        for (i, g) in self.shard_generations.iter().enumerate() {
            let last = g.heartbeat_ms.load(Ordering::Relaxed);
            let age = now.saturating_sub(last);
            if age > LIVENESS_STALE_MS {
                return Err(format!("shard {i} has not answered for {age} ms"));
            }
        }
        Ok(())
    }

    /// Ready when every shard has applied discovery's first full sync (the
    /// first snapshot in which every namer had synced).
    fn ready(&self) -> Result<(), String> {
        let want = match &self.published {
            None => 1,
            Some(p) => p
                .ready_generation()
                .ok_or("a namer has not completed its first sync")?,
        };
        for (i, g) in self.shard_generations.iter().enumerate() {
            if g.applied.load(Ordering::Relaxed) < want {
                return Err(format!(
                    "shard {i} has not applied the first complete discovery snapshot"
                ));
            }
        }
        Ok(())
    }
}

/// A running admin server; stops when dropped.
pub struct Admin {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Admin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Binds `addr` and serves until dropped.
pub fn start(addr: SocketAddr, state: AdminState) -> Result<Admin, String> {
    let listener =
        TcpListener::bind(addr).map_err(|e| format!("admin: cannot listen on {addr}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let thread = std::thread::Builder::new()
        .name("admin".into())
        .spawn(move || {
            let global = GlobalNamer::new();
            for conn in listener.incoming() {
                if s.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(mut conn) = conn else { continue };
                let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                let _ = conn.set_write_timeout(Some(Duration::from_secs(5)));
                let peer = conn.peer_addr().ok();
                if let Some((method, target, body)) = read_request(&mut conn) {
                    let (status, ctype, body) =
                        handle(&state, &global, &method, &target, &body, peer);
                    let _ = write_response(&mut conn, status, ctype, &body);
                }
            }
        })
        .map_err(|e| e.to_string())?;
    Ok(Admin {
        addr,
        stop,
        thread: Some(thread),
    })
}

fn read_request(conn: &mut TcpStream) -> Option<(String, String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let mut hs = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut hs);
        if let Ok(httparse::Status::Complete(n)) = req.parse(&buf) {
            let len = req
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| {
                    std::str::from_utf8(h.value)
                        .ok()?
                        .trim()
                        .parse::<usize>()
                        .ok()
                })
                .unwrap_or(0);
            let (method, target) = (req.method?.to_owned(), req.path?.to_owned());
            if n + len > ADMIN_REQUEST_BYTES_MAX {
                return None;
            }
            while buf.len() < n + len {
                let k = conn.read(&mut chunk).ok()?;
                if k == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..k]);
            }
            return Some((method, target, buf[n..n + len].to_vec()));
        }
        if buf.len() > ADMIN_REQUEST_BYTES_MAX {
            return None;
        }
        let k = conn.read(&mut chunk).ok()?;
        if k == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..k]);
    }
}

fn write_response(
    conn: &mut TcpStream,
    status: u16,
    ctype: &str,
    body: &[u8],
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        415 => "Unsupported Media Type",
        _ => "Service Unavailable",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes())?;
    conn.write_all(body)
}

type Reply = (u16, &'static str, Vec<u8>);

fn text(status: u16, s: &str) -> Reply {
    (status, "text/plain", s.as_bytes().to_vec())
}

fn json_reply(v: &Value) -> Reply {
    (200, "application/json", v.to_string().into_bytes())
}

fn handle(
    state: &AdminState,
    global: &GlobalNamer,
    method: &str,
    target: &str,
    body: &[u8],
    peer: Option<SocketAddr>,
) -> Reply {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    match (method, path) {
        ("GET", "/admin/ping") => text(200, "pong"),
        ("GET", "/live") => match state.live() {
            Ok(()) => text(200, "ok"),
            Err(why) => text(503, &why),
        },
        ("GET", "/ready") => match state.ready() {
            Ok(()) => text(200, "ready"),
            Err(why) => text(503, &why),
        },
        ("GET", "/config.json") => json_reply(&config_json(state)),
        ("GET", "/admin/metrics.json") => json_reply(&metrics_json(state)),
        ("GET", "/admin/metrics/prometheus") => (
            200,
            "text/plain; version=0.0.4",
            prometheus(state).into_bytes(),
        ),
        ("GET", "/namer_state") | ("GET", "/namer_state.json") => json_reply(&namer_state(state)),
        ("GET", "/client_state.json") => json_reply(&client_state(state)),
        ("GET", "/delegator") => (
            200,
            "text/html; charset=utf-8",
            playground(state).into_bytes(),
        ),
        ("POST", "/delegator.json") => {
            let Ok(v) = serde_json::from_slice::<Value>(body) else {
                return text(
                    400,
                    &format!(
                        "Malformed delegation request: {}",
                        String::from_utf8_lossy(body)
                    ),
                );
            };
            match (v["dtab"].as_str(), v["path"].as_str()) {
                (Some(dtab), Some(path)) => {
                    delegate(state, global, v["namespace"].as_str(), dtab, path)
                }
                _ => text(
                    400,
                    &format!(
                        "Malformed delegation request: {}",
                        String::from_utf8_lossy(body)
                    ),
                ),
            }
        }
        ("GET", "/delegator.json") => {
            let param = |k: &str| {
                query
                    .split('&')
                    .filter_map(|kv| kv.split_once('='))
                    .find(|(key, _)| *key == k)
                    .map(|(_, v)| percent_decode(v))
            };
            let (Some(path), dtab) = (param("path"), param("dtab")) else {
                return text(400, "Malformed delegation request: path is required");
            };
            delegate(
                state,
                global,
                param("namespace").as_deref(),
                dtab.as_deref().unwrap_or(""),
                &path,
            )
        }
        ("POST", "/admin/shutdown") => {
            // Only from this machine: in Kubernetes the drain comes from
            // SIGTERM.
            if !peer.is_some_and(|p| p.ip().is_loopback()) {
                return text(403, "shutdown is only accepted from loopback");
            }
            let _ = signal_hook::low_level::raise(signal_hook::consts::SIGTERM);
            text(200, "draining")
        }
        (_, "/delegator.json" | "/admin/shutdown" | "/admin/ping" | "/ready" | "/live") => {
            text(405, "method not allowed")
        }
        _ => text(404, "not found"),
    }
}

/// `/delegator.json`: the delegation tree of `path` through `dtab` (the
/// whole dtab the client sends, as linkerd's UI did) against the router's
/// namers and live discovery state.
fn delegate(
    state: &AdminState,
    global: &GlobalNamer,
    namespace: Option<&str>,
    dtab: &str,
    path: &str,
) -> Reply {
    let dtab = match Dtab::read(dtab) {
        Ok(d) => d,
        Err(e) => return text(400, &format!("Invalid dtab: {}", e.message)),
    };
    let path = match Path::read(path) {
        Ok(p) => p,
        Err(e) => return text(400, &format!("Invalid path: {}", e.message)),
    };
    let router = namespace.and_then(|ns| state.routers.iter().find(|r| r.label == ns));
    if namespace.is_some() && router.is_none() {
        return text(404, "no such router");
    }
    let base = crate::routing::CompiledDtab::new(dtab);
    let local = Dtab::empty();
    let snapshot = state.snapshot();
    let interp = Interpreter {
        base: &base,
        local: &local,
        namers: &*snapshot,
        global,
        max_depth: router.map_or(crate::limits::NAMER_MAX_DEPTH_DEFAULT, |r| {
            r.namer_max_depth
        }),
        max_lookups: BIND_LOOKUPS_MAX,
    };
    match interp.explain(&path) {
        Ok(t) => json_reply(&t.to_json()),
        Err(e) => text(503, &e.to_string()),
    }
}

fn config_json(state: &AdminState) -> Value {
    let routers: Vec<Value> = state
        .routers
        .iter()
        .map(|r| {
            json!({
                "label": r.label,
                "dtab": r.dtab.dtab().show(),
                "dstPrefix": r.identifier.dst_prefix.show(),
                "identifier": format!("{:?}", r.identifier.kind),
                "servers": r.servers.iter().map(|s| json!({
                    "address": s.addr.to_string(),
                    "trust": format!("{:?}", s.trust).to_lowercase(),
                    "connectionsMax": s.connections_max,
                    // Prefixes and destinations only: a credential's value
                    // is a secret and is never shown.
                    "overridePolicy": s.override_policy.as_ref().map(|p| json!({
                        "prefixes": p.policy.prefixes.iter().map(Path::show).collect::<Vec<_>>(),
                        "destinations": p.policy.destinations.iter().map(Path::show).collect::<Vec<_>>(),
                        "requireHeader": p.require_header.as_ref().map(|(n, _)| json!({"name": n, "value": "<elided>"})),
                    })),
                })).collect::<Vec<_>>(),
                "timeouts": format!("{:?}", r.timeouts),
                "transformers": format!("{:?}", r.transformers),
            })
        })
        .collect();
    json!({
        "driver": state.driver,
        "listeners": state.listeners.iter().map(|(l, a)| json!({"router": l, "address": a.to_string()})).collect::<Vec<_>>(),
        "routers": routers,
    })
}

/// One listener's metrics summed over shards.
#[derive(Default)]
struct Merged {
    requests: u64,
    responses: [u64; crate::telemetry::STATUS_CLASSES],
    failures: [u64; crate::telemetry::FAILURE_KINDS.len()],
    connections_open: u64,
    connections_total: u64,
    connections_refused: u64,
    request_bytes: u64,
    response_bytes: u64,
    overrides_admitted: u64,
    overrides_refused: u64,
    route_cache_hits: u64,
    route_cache_misses: u64,
    latency: HistogramSnapshot,
}

/// Request count and latency of one logical name or endpoint.
type SeriesSum = (u64, HistogramSnapshot);

/// A router's per-name and per-endpoint series, summed over its listeners
/// and shards.
#[derive(Default)]
struct RouterSeries {
    names: std::collections::BTreeMap<String, SeriesSum>,
    /// By `ip:port`; `other` past the bound.
    endpoints: std::collections::BTreeMap<String, SeriesSum>,
}

fn router_series(state: &AdminState) -> std::collections::BTreeMap<String, RouterSeries> {
    let mut out: std::collections::BTreeMap<String, RouterSeries> = Default::default();
    for (router, _, m) in &state.listener_metrics {
        let r = out.entry(router.clone()).or_default();
        for (name, n) in m.names().iter() {
            let slot = r.names.entry(name.to_string()).or_default();
            slot.0 += n.requests.get();
            n.latency.merge_into(&mut slot.1);
        }
        for (addr, n) in m.endpoints().iter() {
            let key = addr
                .0
                .map_or_else(|| "other".to_string(), |a| a.to_string());
            let slot = r.endpoints.entry(key).or_default();
            slot.0 += n.requests.get();
            n.latency.merge_into(&mut slot.1);
        }
    }
    out
}

/// Sums every shard's cells per (router, listener address).
fn merged(state: &AdminState) -> std::collections::BTreeMap<(String, SocketAddr), Merged> {
    let mut out: std::collections::BTreeMap<(String, SocketAddr), Merged> = Default::default();
    for (router, addr, m) in &state.listener_metrics {
        let e = out.entry((router.clone(), *addr)).or_default();
        e.requests += m.requests.get();
        for (i, c) in m.responses.iter().enumerate() {
            e.responses[i] += c.get();
        }
        for (i, c) in m.failures.0.iter().enumerate() {
            e.failures[i] += c.get();
        }
        e.connections_open += m.connections_open.get();
        e.connections_total += m.connections_total.get();
        e.connections_refused += m.connections_refused.get();
        e.request_bytes += m.request_bytes.get();
        e.response_bytes += m.response_bytes.get();
        e.overrides_admitted += m.overrides_admitted.get();
        e.overrides_refused += m.overrides_refused.get();
        e.route_cache_hits += m.route_cache_hits.get();
        e.route_cache_misses += m.route_cache_misses.get();
        m.latency.merge_into(&mut e.latency);
    }
    out
}

/// `/admin/metrics.json`: flat keys in linkerd 1's style
/// (`rt/<router>/server/<ip>/<port>/...`, `.p50` / `.p99` suffixes).
fn metrics_json(state: &AdminState) -> Value {
    let mut m = serde_json::Map::new();
    let mut put = |k: String, v: u64| {
        m.insert(k, json!(v));
    };
    for ((router, addr), e) in merged(state) {
        let base = format!("rt/{router}/server/{}/{}", addr.ip(), addr.port());
        put(format!("{base}/requests"), e.requests);
        for (i, n) in e.responses.iter().enumerate() {
            put(format!("{base}/status/{}XX", i + 1), *n);
        }
        for (i, n) in e.failures.iter().enumerate() {
            put(
                format!("{base}/failures/{}", crate::telemetry::FAILURE_KINDS[i]),
                *n,
            );
        }
        put(format!("{base}/connections"), e.connections_open);
        put(format!("{base}/connects"), e.connections_total);
        put(format!("{base}/connections_refused"), e.connections_refused);
        put(format!("{base}/request_bytes"), e.request_bytes);
        put(format!("{base}/response_bytes"), e.response_bytes);
        put(format!("{base}/override/admitted"), e.overrides_admitted);
        put(format!("{base}/override/refused"), e.overrides_refused);
        put(format!("rt/{router}/routecache/hits"), e.route_cache_hits);
        put(
            format!("rt/{router}/routecache/misses"),
            e.route_cache_misses,
        );
        for (q, k) in [(0.5, "p50"), (0.9, "p90"), (0.99, "p99"), (0.999, "p9990")] {
            put(
                format!("{base}/request_latency_us.{k}"),
                e.latency.quantile_us(q),
            );
        }
        put(format!("{base}/request_latency_us.count"), e.latency.count);
    }
    for (router, r) in router_series(state) {
        for (kind, series) in [("service", &r.names), ("endpoint", &r.endpoints)] {
            for (key, (n, h)) in series {
                let key = key.trim_start_matches('/');
                let base = format!("rt/{router}/{kind}/{key}");
                put(format!("{base}/requests"), *n);
                put(format!("{base}/request_latency_us.p50"), h.quantile_us(0.5));
                put(
                    format!("{base}/request_latency_us.p99"),
                    h.quantile_us(0.99),
                );
            }
        }
    }
    Value::Object(m)
}

/// Prometheus label values escape `\`, `"` and newlines.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn histogram(out: &mut String, name: &str, labels: &str, h: &HistogramSnapshot) {
    use std::fmt::Write as _;
    let mut cumulative = 0;
    for (i, bound) in crate::telemetry::LATENCY_BUCKETS_US.iter().enumerate() {
        cumulative += h.buckets[i];
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels},le=\"{}\"}} {cumulative}",
            *bound as f64 / 1e6
        );
    }
    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", h.count);
    let _ = writeln!(out, "{name}_sum{{{labels}}} {}", h.sum_us as f64 / 1e6);
    let _ = writeln!(out, "{name}_count{{{labels}}} {}", h.count);
}

/// `/admin/metrics/prometheus`: the text exposition format.
fn prometheus(state: &AdminState) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let all = merged(state);
    let family = |out: &mut String,
                  name: &str,
                  kind: &str,
                  help: &str,
                  rows: &mut dyn Iterator<Item = (String, u64)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, v) in rows {
            let _ = writeln!(out, "{name}{{{labels}}} {v}");
        }
    };
    let server = |router: &str, addr: &SocketAddr| {
        format!("router=\"{}\",server=\"{}\"", label(router), addr)
    };
    family(
        &mut out,
        "switchyard_requests_total",
        "counter",
        "Requests received.",
        &mut all.iter().map(|((r, a), e)| (server(r, a), e.requests)),
    );
    family(
        &mut out,
        "switchyard_responses_total",
        "counter",
        "Responses sent, by status class.",
        &mut all.iter().flat_map(|((r, a), e)| {
            e.responses
                .iter()
                .enumerate()
                .map(move |(i, n)| (format!("{},class=\"{}xx\"", server(r, a), i + 1), *n))
                .collect::<Vec<_>>()
        }),
    );
    family(
        &mut out,
        "switchyard_failures_total",
        "counter",
        "Requests that failed, by kind.",
        &mut all.iter().flat_map(|((r, a), e)| {
            e.failures
                .iter()
                .enumerate()
                .map(move |(i, n)| {
                    (
                        format!(
                            "{},kind=\"{}\"",
                            server(r, a),
                            crate::telemetry::FAILURE_KINDS[i]
                        ),
                        *n,
                    )
                })
                .collect::<Vec<_>>()
        }),
    );
    family(
        &mut out,
        "switchyard_connections_open",
        "gauge",
        "Client connections open.",
        &mut all
            .iter()
            .map(|((r, a), e)| (server(r, a), e.connections_open)),
    );
    family(
        &mut out,
        "switchyard_connections_total",
        "counter",
        "Client connections accepted.",
        &mut all
            .iter()
            .map(|((r, a), e)| (server(r, a), e.connections_total)),
    );
    family(
        &mut out,
        "switchyard_connections_refused_total",
        "counter",
        "Client connections refused at the connection limit.",
        &mut all
            .iter()
            .map(|((r, a), e)| (server(r, a), e.connections_refused)),
    );
    family(
        &mut out,
        "switchyard_request_bytes_total",
        "counter",
        "Request bytes received (heads and bodies).",
        &mut all
            .iter()
            .map(|((r, a), e)| (server(r, a), e.request_bytes)),
    );
    family(
        &mut out,
        "switchyard_response_bytes_total",
        "counter",
        "Response bytes sent (heads and bodies).",
        &mut all
            .iter()
            .map(|((r, a), e)| (server(r, a), e.response_bytes)),
    );
    family(
        &mut out,
        "switchyard_overrides_admitted_total",
        "counter",
        "Edge l5d-dtab overrides admitted by the override policy.",
        &mut all
            .iter()
            .map(|((r, a), e)| (server(r, a), e.overrides_admitted)),
    );
    family(
        &mut out,
        "switchyard_overrides_refused_total",
        "counter",
        "Edge l5d-dtab overrides refused (403).",
        &mut all
            .iter()
            .map(|((r, a), e)| (server(r, a), e.overrides_refused)),
    );
    family(
        &mut out,
        "switchyard_route_cache_hits_total",
        "counter",
        "Routes served from the route cache.",
        &mut all
            .iter()
            .map(|((r, a), e)| (server(r, a), e.route_cache_hits)),
    );
    family(
        &mut out,
        "switchyard_route_cache_misses_total",
        "counter",
        "Routes bound afresh.",
        &mut all
            .iter()
            .map(|((r, a), e)| (server(r, a), e.route_cache_misses)),
    );
    let _ = writeln!(
        out,
        "# HELP switchyard_request_duration_seconds Request latency, head read to response sent.\n# TYPE switchyard_request_duration_seconds histogram"
    );
    for ((r, a), e) in &all {
        histogram(
            &mut out,
            "switchyard_request_duration_seconds",
            &server(r, a),
            &e.latency,
        );
    }
    let series = router_series(state);
    type Pick = fn(&RouterSeries) -> &std::collections::BTreeMap<String, SeriesSum>;
    for (kind, what, pick) in [
        ("service", "logical name", (|r| &r.names) as Pick),
        ("endpoint", "endpoint (ip:port)", (|r| &r.endpoints) as Pick),
    ] {
        let _ = writeln!(
            out,
            "# HELP switchyard_{kind}_requests_total Requests by {what} (bounded; the rest fold into \"other\").\n# TYPE switchyard_{kind}_requests_total counter"
        );
        for (r, rs) in &series {
            for (key, (n, _)) in pick(rs) {
                let _ = writeln!(
                    out,
                    "switchyard_{kind}_requests_total{{router=\"{}\",{kind}=\"{}\"}} {n}",
                    label(r),
                    label(key)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP switchyard_{kind}_request_duration_seconds Request latency by {what}.\n# TYPE switchyard_{kind}_request_duration_seconds histogram"
        );
        for (r, rs) in &series {
            for (key, (_, h)) in pick(rs) {
                histogram(
                    &mut out,
                    &format!("switchyard_{kind}_request_duration_seconds"),
                    &format!("router=\"{}\",{kind}=\"{}\"", label(r), label(key)),
                    h,
                );
            }
        }
    }
    let snap = state.snapshot();
    let _ = writeln!(
        out,
        "# HELP switchyard_snapshot_generation The discovery snapshot generation each shard has applied.\n# TYPE switchyard_snapshot_generation gauge"
    );
    for (i, g) in state.shard_generations.iter().enumerate() {
        let _ = writeln!(
            out,
            "switchyard_snapshot_generation{{shard=\"{i}\"}} {}",
            g.applied.load(Ordering::Relaxed)
        );
    }
    let _ = writeln!(
        out,
        "# HELP switchyard_discovery_generation The newest snapshot discovery has published.\n# TYPE switchyard_discovery_generation gauge\nswitchyard_discovery_generation {}",
        snap.generation
    );
    let _ = writeln!(
        out,
        "# HELP switchyard_namer_synced Whether a namer has completed its first sync.\n# TYPE switchyard_namer_synced gauge"
    );
    for n in &snap.namers {
        let _ = writeln!(
            out,
            "switchyard_namer_synced{{namer=\"{}\"}} {}",
            label(&n.prefix.show()),
            u8::from(n.synced)
        );
    }
    if let Some(p) = &state.published {
        let now = crate::telemetry::uptime_ms();
        let _ = writeln!(
            out,
            "# HELP switchyard_discovery_staleness_seconds Time since a namer's source was last read in full.\n# TYPE switchyard_discovery_staleness_seconds gauge"
        );
        for (n, h) in snap.namers.iter().zip(&p.health) {
            let age = now.saturating_sub(h.last_sync_ms.load(Ordering::Relaxed));
            let _ = writeln!(
                out,
                "switchyard_discovery_staleness_seconds{{namer=\"{}\"}} {}",
                label(&n.prefix.show()),
                age as f64 / 1000.0
            );
        }
        let _ = writeln!(
            out,
            "# HELP switchyard_discovery_errors_total Failed reads of a namer's source.\n# TYPE switchyard_discovery_errors_total counter"
        );
        for (n, h) in snap.namers.iter().zip(&p.health) {
            let _ = writeln!(
                out,
                "switchyard_discovery_errors_total{{namer=\"{}\"}} {}",
                label(&n.prefix.show()),
                h.errors.load(Ordering::Relaxed)
            );
        }
    }
    if !state.access_logs.is_empty() {
        let _ = writeln!(
            out,
            "# HELP switchyard_access_log_dropped_lines_total Access log lines dropped because the writer fell behind.\n# TYPE switchyard_access_log_dropped_lines_total counter"
        );
        for (path, n) in &state.access_logs {
            let _ = writeln!(
                out,
                "switchyard_access_log_dropped_lines_total{{path=\"{}\"}} {}",
                label(&path.display().to_string()),
                n.load(Ordering::Relaxed)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP switchyard_io_driver The IO driver the shards use.\n# TYPE switchyard_io_driver gauge\nswitchyard_io_driver{{driver=\"{}\"}} 1",
        label(&state.driver)
    );
    out
}

fn namer_state(state: &AdminState) -> Value {
    let s = state.snapshot();
    json!({
        "generation": s.generation,
        "namesVersion": s.names_version,
        "shardsApplied": state.shard_generations.iter().map(|g| g.applied.load(Ordering::Relaxed)).collect::<Vec<_>>(),
        "namers": s.namers.iter().enumerate().map(|(i, n)| {
            let mut v = json!({
                "prefix": n.prefix.show(),
                "synced": n.synced,
                "services": n.services.len(),
            });
            if let Some(h) = state.published.as_ref().and_then(|p| p.health.get(i)) {
                let now = crate::telemetry::uptime_ms();
                let ago = |t: &std::sync::atomic::AtomicU64| now.saturating_sub(t.load(Ordering::Relaxed));
                v["lastSyncAgoMs"] = json!(ago(&h.last_sync_ms));
                v["lastChangeAgoMs"] = json!(ago(&h.last_change_ms));
                v["errors"] = json!(h.errors.load(Ordering::Relaxed));
                v["lastError"] = json!(h.last_error.load().as_deref());
                if let Some(w) = h.watches.load().as_deref() {
                    v["watches"] = json!(w);
                }
            }
            v
        }).collect::<Vec<_>>(),
    })
}

fn client_state(state: &AdminState) -> Value {
    let s = state.snapshot();
    let mut out = serde_json::Map::new();
    for n in &s.namers {
        for (name, svc) in n.services.iter() {
            let id = format!("{}/{}", n.prefix.show(), name);
            let eps: Vec<Value> = svc
                .endpoints
                .iter()
                .map(|e| json!({"address": e.to_string(), "weight": e.weight, "node": e.node.as_deref()}))
                .collect();
            out.insert(id, Value::Array(eps));
        }
    }
    Value::Object(out)
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let decoded = (b[i] == b'%')
            .then(|| b.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match (b[i], decoded) {
            (_, Some(v)) => {
                out.push(v);
                i += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                i += 1;
            }
            (c, None) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The dtab playground: pick a router, start from its dtab, add an
/// override, type a path, see every branch of the delegation with the
/// dentry behind each step and the endpoints it reaches.
fn playground(state: &AdminState) -> String {
    let routers: Vec<Value> = state
        .routers
        .iter()
        .map(|r| json!({"label": r.label, "dtab": r.dtab.dtab().dentries().iter().map(|d| d.show()).collect::<Vec<_>>().join(";\n")}))
        .collect();
    // `</` cannot appear inside the script element's JSON.
    let data = Value::Array(routers).to_string().replace("</", "<\\/");
    PLAYGROUND.replace("{{ROUTERS}}", &data)
}

const PLAYGROUND: &str = include_str!("admin/playground.html");

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::ShardReport;

    fn state(applied: u64, heartbeat: u64) -> AdminState {
        let r = ShardReport::default();
        r.applied.store(applied, Ordering::Relaxed);
        r.heartbeat_ms.store(heartbeat, Ordering::Relaxed);
        AdminState {
            routers: vec![],
            listener_metrics: vec![],
            published: None,
            shard_generations: vec![Arc::new(r)],
            listeners: vec![],
            driver: "epoll".into(),
            access_logs: vec![],
        }
    }

    #[test]
    fn ready_waits_for_every_shard() {
        let g = GlobalNamer::new();
        let (status, _, body) = handle(
            &state(0, crate::telemetry::uptime_ms()),
            &g,
            "GET",
            "/ready",
            b"",
            None,
        );
        assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
        assert_eq!(
            handle(
                &state(1, crate::telemetry::uptime_ms()),
                &g,
                "GET",
                "/ready",
                b"",
                None
            )
            .0,
            200
        );
    }

    #[test]
    fn live_needs_recent_heartbeats() {
        let g = GlobalNamer::new();
        assert_eq!(
            handle(
                &state(1, crate::telemetry::uptime_ms()),
                &g,
                "GET",
                "/live",
                b"",
                None
            )
            .0,
            200
        );
        let s = state(1, 1_000);
        assert!(s.live_at(1_000 + LIVENESS_STALE_MS).is_ok());
        let err = s.live_at(1_001 + LIVENESS_STALE_MS).unwrap_err();
        assert!(err.contains("shard 0 has not answered"), "{err}");
    }
}
