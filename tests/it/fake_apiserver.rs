//! An in-process fake Kubernetes API server on loopback that speaks the
//! real list/watch wire protocol, for Services and EndpointSlices: lists
//! with `limit`/`continue` pagination, chunked newline-delimited watch
//! streams of ADDED/MODIFIED/DELETED/BOOKMARK/ERROR events replayed from a
//! history by resourceVersion, and the faults a real one shows: compaction
//! (410 Gone as an ERROR event inside a 200, or as the HTTP status of the
//! watch request), an expired continue token (HTTP 410), dropped watches,
//! half-open watches that go silent, and an unreachable server.
//!
//! Objects are real `k8s-openapi` values serialised by serde, so what the
//! proxy decodes is what a real API server would send. Resource versions are
//! integers here; the proxy treats them as opaque strings.
//!
//! Also used by `examples/k8s_scale.rs` for the discovery benchmark.

#![allow(clippy::disallowed_types, clippy::disallowed_methods, dead_code)]

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Res {
    Services,
    Slices,
}

impl Res {
    fn list_kind(self) -> (&'static str, &'static str) {
        match self {
            Res::Services => ("v1", "ServiceList"),
            Res::Slices => ("discovery.k8s.io/v1", "EndpointSliceList"),
        }
    }
}

struct Event {
    rv: u64,
    res: Res,
    ns: String,
    kind: &'static str,
    object: Value,
}

#[derive(Default)]
struct State {
    rv: u64,
    objects: BTreeMap<(Res, String, String), Value>,
    history: Vec<Event>,
    /// Watches from a version below this get 410: history before it is gone.
    compacted: u64,
    /// Answer a too-old watch with HTTP 410 instead of an ERROR event.
    gone_as_http: bool,
    /// Watches numbered below this send nothing and never end: half-open
    /// connections whose peer vanished.
    silence_below: u64,
    /// Watches started so far.
    watches: u64,
    /// Connections are closed as soon as they arrive.
    down: bool,
    /// Bumped to make every open watch drop its connection.
    epoch: u64,
    /// Request targets, in order.
    log: Vec<String>,
    /// The next list page asked for with a continue token gets 410, as
    /// when its snapshot was compacted between pages.
    expire_next_continue: bool,
    /// Seconds between bookmarks on watches that asked for them.
    bookmark_every: Duration,
}

pub struct FakeApi {
    pub addr: SocketAddr,
    shared: Arc<(Mutex<State>, Condvar)>,
    stop: Arc<AtomicBool>,
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.shared.0.lock().unwrap().epoch += 1;
        self.shared.1.notify_all();
        let _ = TcpStream::connect(self.addr);
    }
}

fn meta_of(v: &Value) -> (String, String) {
    let m = &v["metadata"];
    (
        m["namespace"].as_str().unwrap_or_default().to_owned(),
        m["name"].as_str().unwrap_or_default().to_owned(),
    )
}

impl FakeApi {
    pub fn start() -> FakeApi {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new((
            Mutex::new(State {
                rv: 1,
                bookmark_every: Duration::from_millis(500),
                ..Default::default()
            }),
            Condvar::new(),
        ));
        let stop = Arc::new(AtomicBool::new(false));
        let (sh, st) = (shared.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let (sh, st) = (sh.clone(), st.clone());
                std::thread::spawn(move || serve(conn, sh, st));
            }
        });
        FakeApi { addr, shared, stop }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn change(&self, res: Res, kind: &'static str, mut object: Value) {
        let mut s = self.shared.0.lock().unwrap();
        s.rv += 1;
        let rv = s.rv;
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        let (ns, name) = meta_of(&object);
        if kind == "DELETED" {
            s.objects.remove(&(res, ns.clone(), name));
        } else {
            s.objects.insert((res, ns.clone(), name), object.clone());
        }
        s.history.push(Event {
            rv,
            res,
            ns,
            kind,
            object,
        });
        drop(s);
        self.shared.1.notify_all();
    }

    fn exists(&self, res: Res, v: &Value) -> bool {
        let (ns, name) = meta_of(v);
        self.shared
            .0
            .lock()
            .unwrap()
            .objects
            .contains_key(&(res, ns, name))
    }

    /// Creates or replaces a Service.
    pub fn apply_service(&self, s: &k8s_openapi::api::core::v1::Service) {
        let v = serde_json::to_value(s).unwrap();
        let kind = if self.exists(Res::Services, &v) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        self.change(Res::Services, kind, v);
    }

    pub fn delete_service(&self, s: &k8s_openapi::api::core::v1::Service) {
        self.change(Res::Services, "DELETED", serde_json::to_value(s).unwrap());
    }

    /// Creates or replaces an EndpointSlice.
    pub fn apply_slice(&self, s: &k8s_openapi::api::discovery::v1::EndpointSlice) {
        let v = serde_json::to_value(s).unwrap();
        let kind = if self.exists(Res::Slices, &v) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        self.change(Res::Slices, kind, v);
    }

    /// Creates or replaces an EndpointSlice given as JSON.
    pub fn apply_slice_value(&self, v: Value) {
        let kind = if self.exists(Res::Slices, &v) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        self.change(Res::Slices, kind, v);
    }

    pub fn delete_slice(&self, s: &k8s_openapi::api::discovery::v1::EndpointSlice) {
        self.change(Res::Slices, "DELETED", serde_json::to_value(s).unwrap());
    }

    /// Loads many objects at once, without history (as if created before
    /// any watch): for the scale benchmark.
    pub fn preload(&self, services: Vec<Value>, slices: Vec<Value>) {
        let mut s = self.shared.0.lock().unwrap();
        for (res, items) in [(Res::Services, services), (Res::Slices, slices)] {
            for mut v in items {
                s.rv += 1;
                v["metadata"]["resourceVersion"] = json!(s.rv.to_string());
                let (ns, name) = meta_of(&v);
                s.objects.insert((res, ns, name), v);
            }
        }
        s.compacted = s.rv;
    }

    /// An etcd compaction followed by an API server restart: history up to
    /// now is gone and every open watch is cut.
    pub fn compact_and_drop_watches(&self) {
        let mut s = self.shared.0.lock().unwrap();
        s.compacted = s.rv + 1;
        s.history.clear();
        s.epoch += 1;
        drop(s);
        self.shared.1.notify_all();
    }

    pub fn drop_watches(&self) {
        self.shared.0.lock().unwrap().epoch += 1;
        self.shared.1.notify_all();
    }

    pub fn expire_next_continue(&self) {
        self.shared.0.lock().unwrap().expire_next_continue = true;
    }

    pub fn set_gone_as_http(&self, on: bool) {
        self.shared.0.lock().unwrap().gone_as_http = on;
    }

    /// Every watch open now goes silent for good, as when the network
    /// between us drops packets; later watches work.
    pub fn half_open_watches(&self) {
        let mut s = self.shared.0.lock().unwrap();
        s.silence_below = s.watches;
        drop(s);
        self.shared.1.notify_all();
    }

    /// Watch requests seen so far.
    pub fn watch_count(&self) -> u64 {
        self.shared.0.lock().unwrap().watches
    }

    /// While down, every connection (and every open watch) is closed.
    pub fn set_down(&self, on: bool) {
        let mut s = self.shared.0.lock().unwrap();
        s.down = on;
        if on {
            s.epoch += 1;
        }
        drop(s);
        self.shared.1.notify_all();
    }

    /// The request targets seen so far.
    pub fn log(&self) -> Vec<String> {
        self.shared.0.lock().unwrap().log.clone()
    }

    pub fn resource_version(&self) -> u64 {
        self.shared.0.lock().unwrap().rv
    }
}

struct Request {
    res: Res,
    ns: Option<String>,
    query: BTreeMap<String, String>,
}

fn parse_target(target: &str) -> Option<Request> {
    let (path, q) = target.split_once('?').unwrap_or((target, ""));
    let query = q
        .split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Some((k.to_owned(), percent_decode(v)?))
        })
        .collect();
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (res, ns) = match parts.as_slice() {
        ["api", "v1", "services"] => (Res::Services, None),
        ["api", "v1", "namespaces", ns, "services"] => (Res::Services, Some(ns.to_string())),
        ["apis", "discovery.k8s.io", "v1", "endpointslices"] => (Res::Slices, None),
        [
            "apis",
            "discovery.k8s.io",
            "v1",
            "namespaces",
            ns,
            "endpointslices",
        ] => (Res::Slices, Some(ns.to_string())),
        _ => return None,
    };
    Some(Request { res, ns, query })
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let h = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            out.push(if b[i] == b'+' { b' ' } else { b[i] });
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Whether an object passes the request's scope and label selector (only
/// the "label exists" form the proxy uses).
fn selected(req: &Request, ns: &str, v: &Value) -> bool {
    if req.ns.as_deref().is_some_and(|n| n != ns) {
        return false;
    }
    match req.query.get("labelSelector") {
        Some(sel) if !sel.is_empty() => v["metadata"]["labels"].get(sel.as_str()).is_some(),
        _ => true,
    }
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

fn write_json(conn: &mut TcpStream, code: u16, body: &Value) -> std::io::Result<()> {
    let body = serde_json::to_vec(body).unwrap();
    let reason = match code {
        200 => "OK",
        404 => "Not Found",
        410 => "Gone",
        _ => "Error",
    };
    write!(
        conn,
        "HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )?;
    conn.write_all(&body)
}

fn serve(conn: TcpStream, shared: Arc<(Mutex<State>, Condvar)>, stop: Arc<AtomicBool>) {
    let Ok(read_half) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut conn = conn;
    loop {
        // One request head; the client sends no bodies on GET.
        let mut head = String::new();
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if line == "\r\n" || line == "\n" {
                break;
            }
            head.push_str(&line);
        }
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let target = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
        let down = {
            let mut s = shared.0.lock().unwrap();
            s.log.push(target.clone());
            s.down
        };
        if down {
            let _ = conn.shutdown(Shutdown::Both);
            return;
        }
        let Some(req) = parse_target(&target) else {
            if write_json(&mut conn, 404, &status(404, "NotFound", "no such resource")).is_err() {
                return;
            }
            continue;
        };
        let ok = if req
            .query
            .get("watch")
            .is_some_and(|w| w == "true" || w == "1")
        {
            watch(&mut conn, &req, &shared, &stop)
        } else {
            list(&mut conn, &req, &shared)
        };
        if !ok {
            let _ = conn.shutdown(Shutdown::Both);
            return;
        }
    }
}

fn list(conn: &mut TcpStream, req: &Request, shared: &(Mutex<State>, Condvar)) -> bool {
    let mut s = shared.0.lock().unwrap();
    let limit: usize = req
        .query
        .get("limit")
        .and_then(|l| l.parse().ok())
        .filter(|l| *l > 0)
        .unwrap_or(usize::MAX);
    // A continue token names the list's version and the offset reached.
    let (list_rv, offset) = match req.query.get("continue").filter(|t| !t.is_empty()) {
        Some(t) => {
            let Some((rv, off)) = t
                .split_once(':')
                .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<usize>().ok()?)))
            else {
                drop(s);
                return write_json(
                    conn,
                    400,
                    &status(400, "BadRequest", "invalid continue token"),
                )
                .is_ok();
            };
            if rv < s.compacted || std::mem::take(&mut s.expire_next_continue) {
                drop(s);
                return write_json(
                    conn,
                    410,
                    &status(
                        410,
                        "Expired",
                        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
                    ),
                )
                .is_ok();
            }
            (rv, off)
        }
        None => (s.rv, 0),
    };
    let items: Vec<&Value> = s
        .objects
        .iter()
        .filter(|((res, ns, _), v)| *res == req.res && selected(req, ns, v))
        .map(|(_, v)| v)
        .skip(offset)
        .take(limit.saturating_add(1))
        .collect();
    let more = items.len() > limit;
    let page: Vec<Value> = items.into_iter().take(limit).cloned().collect();
    let (api_version, kind) = req.res.list_kind();
    let mut metadata = json!({"resourceVersion": list_rv.to_string()});
    if more {
        metadata["continue"] = json!(format!("{list_rv}:{}", offset + page.len()));
    }
    let body =
        json!({"apiVersion": api_version, "kind": kind, "metadata": metadata, "items": page});
    drop(s);
    write_json(conn, 200, &body).is_ok()
}

fn chunk(conn: &mut TcpStream, v: &Value) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(v).unwrap();
    line.push(b'\n');
    write!(conn, "{:x}\r\n", line.len())?;
    conn.write_all(&line)?;
    conn.write_all(b"\r\n")
}

/// Serves one watch. Returns false when the connection must close.
fn watch(
    conn: &mut TcpStream,
    req: &Request,
    shared: &(Mutex<State>, Condvar),
    stop: &AtomicBool,
) -> bool {
    let from: u64 = req
        .query
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let timeout = Duration::from_secs(
        req.query
            .get("timeoutSeconds")
            .and_then(|t| t.parse().ok())
            .unwrap_or(1800),
    );
    let bookmarks = req
        .query
        .get("allowWatchBookmarks")
        .is_some_and(|b| b == "true");
    let (compacted, gone_as_http, epoch, current, id) = {
        let mut s = shared.0.lock().unwrap();
        s.watches += 1;
        (s.compacted, s.gone_as_http, s.epoch, s.rv, s.watches - 1)
    };
    let too_old = from < compacted;
    let message = format!("too old resource version: {from} ({current})");
    if too_old && gone_as_http {
        return write_json(conn, 410, &status(410, "Expired", &message)).is_ok();
    }
    if conn
        .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        .is_err()
    {
        return false;
    }
    if too_old {
        let ev = json!({"type": "ERROR", "object": status(410, "Expired", &message)});
        return chunk(conn, &ev).is_ok() && conn.write_all(b"0\r\n\r\n").is_ok();
    }
    let started = Instant::now();
    let mut sent = from;
    let mut last_bookmark = Instant::now();
    let mut guard = shared.0.lock().unwrap();
    loop {
        if stop.load(Ordering::Relaxed) || guard.epoch != epoch {
            // Cut, not ended: the client sees the connection drop.
            return false;
        }
        let silent = id < guard.silence_below;
        if started.elapsed() >= timeout && !silent {
            drop(guard);
            return conn.write_all(b"0\r\n\r\n").is_ok();
        }
        if !silent {
            let events: Vec<Value> = guard
                .history
                .iter()
                .filter(|e| e.rv > sent && e.res == req.res && selected(req, &e.ns, &e.object))
                .map(|e| json!({"type": e.kind, "object": e.object}))
                .collect();
            let newest = guard.rv;
            let bookmark_due = bookmarks && last_bookmark.elapsed() >= guard.bookmark_every;
            drop(guard);
            for ev in &events {
                if chunk(conn, ev).is_err() {
                    return false;
                }
            }
            sent = newest;
            if bookmark_due {
                let (api_version, kind) = match req.res {
                    Res::Services => ("v1", "Service"),
                    Res::Slices => ("discovery.k8s.io/v1", "EndpointSlice"),
                };
                let bm = json!({"type": "BOOKMARK", "object": {"apiVersion": api_version, "kind": kind,
                    "metadata": {"resourceVersion": newest.to_string()}}});
                if chunk(conn, &bm).is_err() {
                    return false;
                }
                last_bookmark = Instant::now();
            }
            guard = shared.0.lock().unwrap();
            if guard.rv != newest {
                continue;
            }
        }
        guard = shared
            .1
            .wait_timeout(guard, Duration::from_millis(100))
            .unwrap()
            .0;
    }
}
