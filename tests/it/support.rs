//! Helpers shared by the integration tests.

use std::path::PathBuf;

/// A file under `tests/conformance/`, or the file an environment variable
/// names instead.
pub fn corpus_path(env: &str, default_name: &str) -> PathBuf {
    match std::env::var_os(env) {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/conformance")
            .join(default_name),
    }
}

/// Pass/fail/skip tallies with the failures' details.
#[derive(Default)]
pub struct Tally {
    pub passed: usize,
    pub failed: Vec<String>,
    pub skipped: Vec<String>,
}

impl Tally {
    pub fn record(&mut self, id: &str, result: Result<(), String>) {
        match result {
            Ok(()) => self.passed += 1,
            Err(e) => self.failed.push(format!("{id}: {e}")),
        }
    }

    /// Prints `<what>: N passed, M failed, K skipped` and fails the test
    /// when anything failed.
    pub fn finish(self, what: &str) {
        for f in &self.failed {
            eprintln!("FAILED {f}");
        }
        for s in &self.skipped {
            eprintln!("skipped {s}");
        }
        println!(
            "{what}: {} passed, {} failed, {} skipped",
            self.passed,
            self.failed.len(),
            self.skipped.len()
        );
        assert!(
            self.failed.is_empty(),
            "{} {what} cases failed",
            self.failed.len()
        );
    }
}

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The IO drivers the suite runs under: io_uring where it works (said
/// loudly where it does not), and always the epoll fallback.
pub fn drivers() -> Vec<&'static str> {
    static CHECKED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let uring = *CHECKED.get_or_init(|| {
        let ok = switchyard::runtime::choose_driver(switchyard::config::DriverChoice::IoUring).is_ok();
        if !ok {
            eprintln!("WARNING: io_uring is unavailable here: these tests run under the epoll fallback only");
        }
        ok
    });
    if uring {
        vec!["io_uring", "epoll"]
    } else {
        vec!["epoll"]
    }
}

/// A file that removes itself.
pub struct TempFile(pub std::path::PathBuf);

impl TempFile {
    pub fn new(ext: &str, contents: &str) -> TempFile {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "switchyard-test-{}-{}.{ext}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&p, contents).expect("write temp file");
        TempFile(p)
    }

    pub fn path(&self) -> &str {
        self.0.to_str().expect("utf-8 temp path")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A running `switchyard run`, stopped (SIGTERM) on drop.
pub struct Proxy {
    child: Option<Child>,
    pub listeners: Vec<(String, SocketAddr)>,
    /// The admin server's address, when the config has one (port 0 works).
    pub admin: Option<SocketAddr>,
    pub driver: String,
    _config: TempFile,
    log: Arc<Mutex<String>>,
}

impl Proxy {
    /// Starts the binary on `yaml` (ports 0 are fine) and waits until every
    /// router reports its listener.
    pub fn start(yaml: &str, driver: &str) -> Proxy {
        Proxy::start_with(yaml, driver, |_| {})
    }

    pub fn start_with(yaml: &str, driver: &str, customise: impl FnOnce(&mut Command)) -> Proxy {
        let config = TempFile::new("yaml", yaml);
        let routers = yaml.matches("label:").count();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchyard"));
        cmd.args(["run", "--config", config.path(), "--driver", driver])
            .env(
                "SWITCHYARD_LOG",
                std::env::var("SWITCHYARD_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        customise(&mut cmd);
        let mut child = cmd.spawn().expect("start switchyard");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let log2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                log2.lock().unwrap().push_str(&line);
                log2.lock().unwrap().push('\n');
                let _ = tx.send(line);
            }
        });
        let mut listeners = Vec::new();
        let mut used_driver = String::new();
        let mut admin = None;
        let deadline = Instant::now() + Duration::from_secs(20);
        while listeners.len() < routers {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match rx.recv_timeout(left) {
                Ok(l) => l,
                Err(_) => panic!("switchyard did not start; log:\n{}", log.lock().unwrap()),
            };
            if let Some(a) = line.strip_prefix("switchyard: admin listening on ") {
                // Printed before the routers' lines, so it is in by the end.
                admin = a.trim().parse().ok();
                continue;
            }
            // "switchyard: router <label> listening on <addr> (driver <d>)";
            // any other line (a start-up error names its router too) is
            // only log, and a process that exits ends the wait above.
            let Some(rest) = line.strip_prefix("switchyard: router ") else {
                continue;
            };
            let parts: Vec<&str> = rest.split_whitespace().collect();
            let [label, "listening", "on", addr, ..] = parts[..] else {
                continue;
            };
            let addr: SocketAddr = addr.parse().expect("listening address");
            used_driver = rest
                .rsplit("driver ")
                .next()
                .unwrap_or_default()
                .trim_end_matches(')')
                .to_owned();
            listeners.push((label.to_owned(), addr));
        }
        Proxy {
            child: Some(child),
            listeners,
            admin,
            driver: used_driver,
            _config: config,
            log,
        }
    }

    pub fn addr(&self, label: &str) -> SocketAddr {
        self.listeners
            .iter()
            .find(|(l, _)| l == label)
            .map(|(_, a)| *a)
            .expect("router label")
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// SIGTERM and wait; returns the exit code.
    pub fn stop(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        signal(&child, libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop();
    }
}

#[allow(unsafe_code)]
pub fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) on our own child's pid with a valid signal number.
    unsafe {
        libc::kill(child.id() as i32, sig);
    }
}

/// What a test upstream answers.
#[derive(Clone)]
pub enum Reply {
    /// 200 with this body (Content-Length framed).
    Fixed(&'static str),
    /// 200 with a body naming this upstream, the request line and the
    /// routing headers it saw.
    Describe(&'static str),
    /// These raw bytes, verbatim, after reading the request head only.
    Raw(&'static [u8]),
    /// 200 after a delay.
    Slow(Duration, &'static str),
    /// 200 with a chunked body echoing the request body.
    EchoChunked,
    /// As nginx's `return`: 200 as soon as the head is in, before reading
    /// the body, saying whether the whole body came with the head
    /// (`whole`) or not (`partial`); then the declared body is read and
    /// dropped, and the connection kept.
    AnswerOnHead,
    /// These interim responses right after the head, before the body is
    /// read (as a server may send 100 Continue unasked), then as
    /// `EchoChunked`.
    InterimThenEcho(&'static [u8]),
    /// `400` with `Content-Length: 0` this long after a head is read,
    /// without reading the body, keeping the connection open.
    EarlyReject(Duration),
    /// 200 with this body, announcing keep-alive, then closing the
    /// connection anyway (as an upstream's idle timeout would).
    CloseAfter(&'static str),
}

/// A recording upstream double: keeps every byte it received, on every
/// connection, and answers each request.
pub struct Upstream {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Vec<Vec<u8>>>>,
    pub connections: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Upstream {
    pub fn start(reply: Reply) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind upstream");
        let addr = listener.local_addr().expect("addr");
        listener.set_nonblocking(true).expect("nonblocking");
        let received = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, c, s) = (received.clone(), connections.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let idx = {
                            let mut all = r.lock().unwrap();
                            all.push(Vec::new());
                            all.len() - 1
                        };
                        c.fetch_add(1, Ordering::Relaxed);
                        let (r2, reply2, s2) = (r.clone(), reply.clone(), s.clone());
                        std::thread::spawn(move || upstream_conn(stream, idx, r2, reply2, s2));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Upstream {
            addr,
            received,
            connections,
            stop,
        }
    }

    /// Everything received, all connections, concatenated.
    pub fn all_bytes(&self) -> Vec<u8> {
        self.received.lock().unwrap().concat()
    }

    pub fn all_text(&self) -> String {
        String::from_utf8_lossy(&self.all_bytes()).into_owned()
    }
}

impl Upstream {
    /// Forgets what was received so far (connections stay open).
    pub fn clear(&self) {
        for r in self.received.lock().unwrap().iter_mut() {
            r.clear();
        }
    }

    /// The requests received, parsed in order across connections: request
    /// line, headers, and body (Content-Length or chunked).
    pub fn requests(&self) -> Vec<SeenRequest> {
        let mut out = Vec::new();
        for conn in self.received.lock().unwrap().iter() {
            out.extend(parse_requests(conn));
        }
        out
    }
}

/// A request as an upstream received it.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    pub line: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl SeenRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn count(&self, name: &str) -> usize {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .count()
    }
}

/// Splits a recorded byte stream into requests (stops at anything it cannot
/// parse: what follows is not a request).
pub fn parse_requests(mut b: &[u8]) -> Vec<SeenRequest> {
    let mut out = Vec::new();
    loop {
        let mut hs = [httparse::EMPTY_HEADER; 256];
        let mut req = httparse::Request::new(&mut hs);
        let Ok(httparse::Status::Complete(n)) = req.parse(b) else {
            return out;
        };
        let line = format!("{} {}", req.method.unwrap_or(""), req.path.unwrap_or(""));
        let headers: Vec<(String, String)> = req
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_owned(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect();
        let cl = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse::<usize>().ok());
        let chunked = headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("transfer-encoding"));
        let mut rest = &b[n..];
        let mut body = Vec::new();
        if chunked {
            loop {
                let Some(le) = rest.windows(2).position(|w| w == b"\r\n") else {
                    return out;
                };
                let Some(size) = std::str::from_utf8(&rest[..le])
                    .ok()
                    .and_then(|t| usize::from_str_radix(t, 16).ok())
                else {
                    return out;
                };
                if size == 0 {
                    rest = rest.get(le + 4..).unwrap_or(&[]);
                    break;
                }
                let Some(data) = rest.get(le + 2..le + 2 + size) else {
                    return out;
                };
                body.extend_from_slice(data);
                rest = rest.get(le + 2 + size + 2..).unwrap_or(&[]);
            }
        } else if let Some(cl) = cl {
            let Some(data) = rest.get(..cl) else {
                out.push(SeenRequest {
                    line,
                    headers,
                    body: rest.to_vec(),
                });
                return out;
            };
            body = data.to_vec();
            rest = &rest[cl..];
        }
        out.push(SeenRequest {
            line,
            headers,
            body,
        });
        b = rest;
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn upstream_conn(
    mut s: TcpStream,
    idx: usize,
    rec: Arc<Mutex<Vec<Vec<u8>>>>,
    reply: Reply,
    stop: Arc<AtomicBool>,
) {
    let _ = s.set_read_timeout(Some(Duration::from_millis(50)));
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    loop {
        // Parse one request from buf, reading more as needed.
        let (head_len, body_len, chunked, request_line, headers) = loop {
            let mut hs = [httparse::EMPTY_HEADER; 128];
            let mut req = httparse::Request::new(&mut hs);
            if let Ok(httparse::Status::Complete(n)) = req.parse(&buf) {
                let mut cl = 0usize;
                let mut chunked = false;
                let mut seen = String::new();
                for h in req.headers.iter() {
                    if h.name.eq_ignore_ascii_case("content-length") {
                        cl = std::str::from_utf8(h.value)
                            .ok()
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(0);
                    }
                    if h.name.eq_ignore_ascii_case("transfer-encoding") {
                        chunked = true;
                    }
                    if h.name.to_ascii_lowercase().starts_with("l5d-") {
                        seen.push_str(&format!(" {}={}", h.name, String::from_utf8_lossy(h.value)));
                    }
                }
                let line = format!("{} {}", req.method.unwrap_or(""), req.path.unwrap_or(""));
                break (n, cl, chunked, line, seen);
            }
            if !read_recorded(&mut s, &mut chunk, &rec, idx, &mut buf, &stop) {
                return;
            }
        };
        if let Reply::Raw(bytes) = &reply {
            let _ = s.write_all(bytes);
            buf.drain(..head_len);
            continue;
        }
        if let Reply::EarlyReject(after) = &reply {
            std::thread::sleep(*after);
            let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
            buf.drain(..head_len);
            continue;
        }
        if let Reply::AnswerOnHead = &reply {
            // Where the body ends, once it is all in (the proxy's chunked
            // framing is clean, and the test bodies hold no "0\r\n\r\n").
            let body_end = |buf: &[u8]| {
                if chunked {
                    buf[head_len..]
                        .windows(5)
                        .position(|w| w == b"0\r\n\r\n")
                        .map(|p| head_len + p + 5)
                } else {
                    (buf.len() >= head_len + body_len).then_some(head_len + body_len)
                }
            };
            let whole = if body_end(&buf).is_some() {
                "whole"
            } else {
                "partial"
            };
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{whole}",
                whole.len()
            );
            if s.write_all(answer.as_bytes()).is_err() {
                return;
            }
            let end = loop {
                if let Some(end) = body_end(&buf) {
                    break end;
                }
                if !read_recorded(&mut s, &mut chunk, &rec, idx, &mut buf, &stop) {
                    return;
                }
            };
            buf.drain(..end);
            continue;
        }
        if let Reply::InterimThenEcho(interim) = &reply
            && s.write_all(interim).is_err()
        {
            return;
        }
        // Read the body.
        let mut body = Vec::new();
        let mut at = head_len;
        let need_more = |buf: &Vec<u8>, at: usize, body: &mut Vec<u8>| -> Option<usize> {
            if chunked {
                // Minimal decoder: trusts the proxy's re-encoded framing.
                let mut i = at;
                let mut out = Vec::new();
                loop {
                    let line_end = buf[i..].windows(2).position(|w| w == b"\r\n")? + i;
                    let size =
                        usize::from_str_radix(std::str::from_utf8(&buf[i..line_end]).ok()?, 16)
                            .ok()?;
                    if size == 0 {
                        if buf.len() < line_end + 4 {
                            return None;
                        }
                        *body = out;
                        return Some(line_end + 4);
                    }
                    if buf.len() < line_end + 2 + size + 2 {
                        return None;
                    }
                    out.extend_from_slice(&buf[line_end + 2..line_end + 2 + size]);
                    i = line_end + 2 + size + 2;
                }
            } else if buf.len() >= at + body_len {
                *body = buf[at..at + body_len].to_vec();
                Some(at + body_len)
            } else {
                None
            }
        };
        let end = loop {
            if let Some(end) = need_more(&buf, at, &mut body) {
                break end;
            }
            if !read_recorded(&mut s, &mut chunk, &rec, idx, &mut buf, &stop) {
                return;
            }
            at = head_len;
        };
        buf.drain(..end);
        let response = match &reply {
            Reply::Fixed(b) | Reply::CloseAfter(b) => {
                format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{b}", b.len()).into_bytes()
            }
            Reply::Describe(name) => {
                let b = format!("{name}: {request_line}{headers}");
                format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{b}", b.len()).into_bytes()
            }
            Reply::Slow(d, b) => {
                std::thread::sleep(*d);
                format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{b}", b.len()).into_bytes()
            }
            Reply::EchoChunked | Reply::InterimThenEcho(_) => {
                let mut r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
                for piece in body.chunks(7) {
                    r.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
                    r.extend_from_slice(piece);
                    r.extend_from_slice(b"\r\n");
                }
                r.extend_from_slice(b"0\r\n\r\n");
                r
            }
            Reply::Raw(_) | Reply::EarlyReject(_) | Reply::AnswerOnHead => {
                unreachable!("handled above")
            }
        };
        if s.write_all(&response).is_err() || matches!(reply, Reply::CloseAfter(_)) {
            return;
        }
    }
}

/// A client response: status, headers (lower-cased names), body, and
/// whether the proxy closed the connection after it.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A raw client connection.
pub struct Client {
    pub stream: TcpStream,
    buf: Vec<u8>,
    /// Set once a read saw EOF or a reset.
    pub closed: bool,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect to proxy");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        Client {
            stream,
            buf: Vec::new(),
            closed: false,
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// Reads one whole response (None on EOF before one).
    pub fn response(&mut self) -> Option<Response> {
        let mut chunk = [0u8; 64 * 1024];
        loop {
            let mut hs = [httparse::EMPTY_HEADER; 64];
            let mut r = httparse::Response::new(&mut hs);
            if let Ok(httparse::Status::Complete(n)) = r.parse(&self.buf) {
                let status = r.code.unwrap_or(0);
                let headers: Vec<(String, String)> = r
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_ascii_lowercase(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect();
                let cl = headers
                    .iter()
                    .find(|(n, _)| n == "content-length")
                    .and_then(|(_, v)| v.parse::<usize>().ok());
                let chunked = headers
                    .iter()
                    .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
                let close = headers
                    .iter()
                    .any(|(n, v)| n == "connection" && v.eq_ignore_ascii_case("close"));
                self.buf.drain(..n);
                let body = if (100..200).contains(&status) || status == 204 || status == 304 {
                    Vec::new()
                } else if chunked {
                    self.read_chunked()?
                } else if let Some(cl) = cl {
                    while self.buf.len() < cl {
                        let k = read_retrying(&mut self.stream, &mut chunk, &mut self.closed)?;
                        if k == 0 {
                            return None;
                        }
                        self.buf.extend_from_slice(&chunk[..k]);
                    }
                    self.buf.drain(..cl).collect()
                } else if close {
                    let mut rest = std::mem::take(&mut self.buf);
                    let _ = self.stream.read_to_end(&mut rest);
                    self.closed = true;
                    rest
                } else {
                    Vec::new()
                };
                return Some(Response {
                    status,
                    headers,
                    body,
                });
            }
            let k = read_retrying(&mut self.stream, &mut chunk, &mut self.closed)?;
            if k == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..k]);
        }
    }

    fn read_chunked(&mut self) -> Option<Vec<u8>> {
        let mut chunk = [0u8; 64 * 1024];
        let mut body = Vec::new();
        loop {
            if let Some(line_end) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let size =
                    usize::from_str_radix(std::str::from_utf8(&self.buf[..line_end]).ok()?, 16)
                        .ok()?;
                if self.buf.len() >= line_end + 2 + size + 2 {
                    if size == 0 {
                        self.buf.drain(..line_end + 4);
                        return Some(body);
                    }
                    body.extend_from_slice(&self.buf[line_end + 2..line_end + 2 + size]);
                    self.buf.drain(..line_end + 2 + size + 2);
                    continue;
                }
            }
            let k = read_retrying(&mut self.stream, &mut chunk, &mut self.closed)?;
            if k == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..k]);
        }
    }

    /// True when the proxy closes the connection (EOF) within `within`.
    pub fn closed_within(&mut self, within: Duration) -> bool {
        let _ = self.stream.set_read_timeout(Some(within));
        let mut b = [0u8; 1024];
        let deadline = Instant::now() + within;
        loop {
            match self.stream.read(&mut b) {
                Ok(0) => {
                    self.closed = true;
                    return true;
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
            if Instant::now() > deadline {
                return false;
            }
        }
    }
}

/// One request on a fresh connection.
pub fn get(addr: SocketAddr, raw: &str) -> Response {
    let mut c = Client::connect(addr);
    c.send(raw.as_bytes());
    c.response().expect("a response")
}

/// `read`, retrying when a signal interrupts it (the test process receives
/// signals: SIGCHLD from the proxies it runs, among others).
fn read_retrying(s: &mut TcpStream, buf: &mut [u8], closed: &mut bool) -> Option<usize> {
    loop {
        match s.read(buf) {
            Ok(0) => {
                *closed = true;
                return Some(0);
            }
            Ok(k) => return Some(k),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
                ) {
                    *closed = true;
                }
                return None;
            }
        }
    }
}

/// Polls `f` every 20 ms until it holds; fails the test after `within`.
pub fn wait_for(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One read of a test upstream's connection, recorded and appended to
/// `buf`. False when the connection is done (EOF, error, or stopping);
/// a read timeout is not an end.
fn read_recorded(
    s: &mut TcpStream,
    chunk: &mut [u8],
    rec: &Mutex<Vec<Vec<u8>>>,
    idx: usize,
    buf: &mut Vec<u8>,
    stop: &AtomicBool,
) -> bool {
    match s.read(chunk) {
        Ok(0) => false,
        Ok(n) => {
            rec.lock().unwrap()[idx].extend_from_slice(&chunk[..n]);
            buf.extend_from_slice(&chunk[..n]);
            true
        }
        Err(_) if stop.load(Ordering::Relaxed) => false,
        Err(e) => matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock
                | std::io::ErrorKind::TimedOut
                | std::io::ErrorKind::Interrupted
        ),
    }
}
