//! One client connection: read a head, route it, forward it, respond,
//! repeat while the connection stays alive.

use super::deadline::{Deadline, IdleSlot, IdleWakers, Stopped};
use super::direct;
use super::error::{
    ErrorKind, ProxyError, Side, failure_index, response_for, write_error_response,
};
use super::pool::{Pool, UpConn, connect, peer_has_answered};
use super::rewrite::{self, ClientFraming};
use super::route::{Outstanding, Rng, RouteCache, RouteCx, RouteEntry, route};
use crate::config::{Router, Server};
use crate::discovery::Published;
use crate::http1::chunked::{ChunkedDecoder, ChunkedEvent};
use crate::http1::request::{BodyFraming, RequestHead, parse_request_into};
use crate::http1::response::{ResponseFraming, ResponseHead, parse_response_into};
use crate::limits::{
    COALESCE_BODY_BYTES_MAX, COALESCE_REQUEST_BODY_BYTES_MAX, DISCARD_BODY_BYTES_MAX,
    READ_BUFFER_BYTES, READ_BUFFER_FIRST_BYTES, SPARE_WRITE_BUFFERS_MAX, WRITE_BUFFER_FIRST_BYTES,
};
use crate::routing::GlobalNamer;
use crate::routing::snapshot::Snapshot;
use crate::telemetry::{ListenerMetrics, NameSeries};
use crate::timer;
use monoio::buf::{IoBuf, IoBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::net::TcpStream;
use monoio::time::Instant;
use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// What a shard owns for all its connections.
pub struct ShardCx {
    pub pool: Pool,
    pub global: GlobalNamer,
    /// Where discovery publishes snapshots (none without namers).
    pub published: Option<Arc<Published>>,
    /// The snapshot this shard binds against, and its generation.
    pub snapshot: RefCell<Arc<Snapshot>>,
    pub applied: Cell<u64>,
    /// The applied generation, as the admin server reads it.
    pub applied_report: Arc<crate::telemetry::ShardReport>,
    pub rng: RefCell<Rng>,
    /// Cancels the accept loops when draining.
    pub idle_cancel: RefCell<monoio::io::Canceller>,
    /// Whether the shard drains (connections close after their current
    /// exchange), and the connections waiting idle for their next request,
    /// which a drain wakes.
    pub idle: IdleWakers,
    /// Open client connections, all listeners.
    pub open: Cell<usize>,
    /// Requests in flight per endpoint, for load balancing.
    pub outstanding: Outstanding,
    /// Requests waiting for a pending name to resolve: woken whenever a new
    /// snapshot is applied.
    pub snapshot_waiters: RefCell<Vec<futures_channel::oneshot::Sender<()>>>,
    /// Client connections' write buffers, between their requests.
    pub spare_writes: SpareBuffers,
}

/// The write buffers of a shard's client connections while they wait for
/// their next request. A connection holds one only while it serves a
/// request: an idle keep-alive connection costs its 512 bytes less (nginx
/// likewise frees a connection's request buffers between requests), and
/// the few requests a shard serves at once reuse the same buffers, so
/// neither a steady keep-alive connection nor a new connection allocates
/// one.
pub struct SpareBuffers(RefCell<Vec<Vec<u8>>>);

impl Default for SpareBuffers {
    fn default() -> Self {
        // Room for every spare from the start: giving one back never
        // allocates.
        SpareBuffers(RefCell::new(Vec::with_capacity(SPARE_WRITE_BUFFERS_MAX)))
    }
}

impl SpareBuffers {
    /// A write buffer, empty.
    fn take(&self) -> Vec<u8> {
        self.0
            .borrow_mut()
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(WRITE_BUFFER_FIRST_BYTES))
    }

    /// Keeps `buf` for the next request, up to [`SPARE_WRITE_BUFFERS_MAX`].
    fn give(&self, mut buf: Vec<u8>) {
        let mut spare = self.0.borrow_mut();
        if buf.capacity() > 0 && spare.len() < SPARE_WRITE_BUFFERS_MAX {
            buf.clear();
            spare.push(buf);
        }
    }
}

impl ShardCx {
    /// Set once the process drains: connections close after their current
    /// exchange.
    pub fn draining(&self) -> bool {
        self.idle.is_draining()
    }

    /// Picks up a newer snapshot, if discovery published one: one atomic
    /// load when nothing changed. Requests already routed keep theirs.
    pub fn refresh(&self) {
        if let Some(p) = &self.published {
            let g = p.generation();
            if g != self.applied.get() {
                *self.snapshot.borrow_mut() = p.load();
                self.applied.set(g);
                self.applied_report
                    .applied
                    .store(g, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    /// Wakes every request waiting for a new snapshot.
    pub fn snapshot_moved(&self) {
        for w in self.snapshot_waiters.borrow_mut().drain(..) {
            let _ = w.send(());
        }
    }

    /// Waits for the next applied snapshot, at most `dur`. Returns false on
    /// timeout. The timeout is boxed, as `connect`'s is: a rare wait that
    /// would otherwise size every connection's future.
    async fn next_snapshot(&self, dur: Duration) -> bool {
        let (tx, rx) = futures_channel::oneshot::channel();
        self.snapshot_waiters.borrow_mut().push(tx);
        matches!(Box::pin(crate::timer::timeout(dur, rx)).await, Ok(Ok(())))
    }
}

/// What a listener's connections share.
pub struct ListenerCx {
    pub router: Arc<Router>,
    pub server: Server,
    /// This listener's metrics on this shard (read by the admin server).
    pub metrics: Arc<ListenerMetrics>,
    pub metrics_enabled: bool,
    /// This router's access log, when it has one.
    pub access_log: Option<crate::access_log::AccessLog>,
    /// This shard's index of per-name series.
    pub names: NameSeries,
    /// This shard's index of per-endpoint series.
    pub endpoints: crate::telemetry::EndpointSeries,
    /// Routes bound on this listener, this shard.
    pub cache: RouteCache,
    /// Open client connections on this listener, this shard.
    pub open: Cell<usize>,
}

/// Why a read did not produce bytes.
enum ReadFail {
    Eof,
    TimedOut,
    Io,
}

/// Reads more bytes onto the end of `buf`, until `at`. On a timeout the
/// buffer stays with the cancelled operation (the kernel may still write
/// into it), so `buf` is left empty and the caller must close.
///
/// A macro, expanded inside the async function that reads, for the reads
/// every request makes (its head, its response's head): awaited as an
/// async fn of its own, its future was built and then moved into the
/// caller's (a few hundred bytes copied, and a state machine more to enter,
/// per read). [`read_more`] is the same for the other reads.
macro_rules! read_more {
    ($stream:expr, $buf:expr, $dl:expr, $at:expr) => {{
        let buf: &mut Vec<u8> = $buf;
        // More than a small head is coming (a body, or a head that did not
        // fit): a client connection's first-request buffer grows, once.
        if buf.capacity() < READ_BUFFER_BYTES {
            buf.reserve(READ_BUFFER_BYTES - buf.len());
        }
        let (owned, len, cap) = spare(buf);
        let op = std::pin::pin!($stream.read(owned.slice_mut(len..cap)));
        let r = $dl.run($at, op).await;
        settle_read(r, buf)
    }};
}

/// [`read_more!`] as a function.
async fn read_more(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    dl: &mut Deadline,
    at: Instant,
) -> Result<usize, ReadFail> {
    read_more!(stream, buf, dl, at)
}

/// Takes `buf` (with room to read into) for an owned-buffer read.
fn spare(buf: &mut Vec<u8>) -> (Vec<u8>, usize, usize) {
    if buf.capacity() - buf.len() < 1024 {
        buf.reserve(READ_BUFFER_BYTES);
    }
    let owned = std::mem::take(buf);
    let (len, cap) = (owned.len(), owned.capacity());
    (owned, len, cap)
}

/// Puts the buffer back after a read and says what the read did.
fn settle_read(
    r: Result<(std::io::Result<usize>, monoio::buf::SliceMut<Vec<u8>>), Stopped>,
    buf: &mut Vec<u8>,
) -> Result<usize, ReadFail> {
    match r {
        Ok((res, slice)) => {
            *buf = slice.into_inner();
            match res {
                Ok(0) => Err(ReadFail::Eof),
                Ok(n) => Ok(n),
                Err(_) => Err(ReadFail::Io),
            }
        }
        // The read is dropped unfinished: its cancel is queued.
        Err(Stopped::TimedOut) => {
            direct::abandoned();
            Err(ReadFail::TimedOut)
        }
        Err(Stopped::Drained) => {
            direct::abandoned();
            Err(ReadFail::Eof)
        }
    }
}

/// After a read that filled a client's small first buffer, more of the
/// request is likely in the socket already (a long head, or a body sent
/// with its head): the buffer grows by [`READ_BUFFER_BYTES`] and takes what
/// is there without waiting, so the request is judged as a whole, as if the
/// buffer had been large from the start (a malformed chunked body in hand
/// is refused before its head goes upstream, a small body goes in the
/// head's write), in one more syscall, once per connection. Nothing there,
/// or an error, is left to the next read.
#[allow(unsafe_code)]
fn take_waiting(stream: &TcpStream, buf: &mut Vec<u8>) {
    // Room for a whole body of up to `COALESCE_REQUEST_BODY_BYTES_MAX`
    // behind the head that filled the first buffer.
    buf.reserve(READ_BUFFER_BYTES);
    let len = buf.len();
    let room = buf.spare_capacity_mut();
    // SAFETY: the fd is owned by `stream` and open for the duration of the
    // call; `room` is valid and writable for its length; MSG_DONTWAIT never
    // blocks.
    let n = unsafe {
        libc::recv(
            stream.as_raw_fd(),
            room.as_mut_ptr().cast(),
            room.len(),
            libc::MSG_DONTWAIT,
        )
    };
    if n > 0 {
        // SAFETY: the kernel wrote the first `n` bytes of the spare
        // capacity, and `n` is at most its length.
        unsafe { buf.set_len(len + n as usize) };
    }
}

/// Writes all of `out` before `at`; `out` keeps what it held.
fn write_vec<'a>(
    stream: &'a mut TcpStream,
    out: &'a mut Vec<u8>,
    dl: &'a mut Deadline,
    at: Instant,
) -> impl std::future::Future<Output = Result<(), ()>> + 'a {
    let to = out.len();
    write_span(stream, out, (0, to), false, dl, at)
}

/// Writes `buf[from..to]` before `at` and removes `buf[..to]`: the bytes
/// that were read are the bytes that are written.
fn write_front<'a>(
    stream: &'a mut TcpStream,
    buf: &'a mut Vec<u8>,
    span: (usize, usize),
    dl: &'a mut Deadline,
    at: Instant,
) -> impl std::future::Future<Output = Result<(), ()>> + 'a {
    write_span(stream, buf, span, true, dl, at)
}

/// Writes `buf[from..to]` before `at`, in as many writes as the socket
/// takes, and then removes `buf[..to]` if told to. One loop over the
/// socket's `write` rather than monoio's `write_all`: an async layer less
/// per write (in instructions, and in the size of every connection's
/// task). On an error the buffer comes back as it was; past the deadline
/// it went with the cancelled write, and `buf` is left empty.
async fn write_span(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    (from, to): (usize, usize),
    consume: bool,
    dl: &mut Deadline,
    at: Instant,
) -> Result<(), ()> {
    let mut at_byte = from;
    // At low concurrency on io_uring, a plain send first (see
    // `proxy::direct`); what the socket does not take goes through the ring.
    let uring = direct::on_uring();
    if uring {
        match direct::send(stream, &buf[from..to]) {
            direct::Sent::Ring => {}
            direct::Sent::Bytes(n) => at_byte += n,
            direct::Sent::Failed => return Err(()),
        }
    }
    let mut owned = std::mem::take(buf);
    while at_byte < to {
        let ring = uring.then(direct::RingWrite::before);
        let op = std::pin::pin!(stream.write(owned.slice(at_byte..to)));
        let Ok((res, slice)) = dl.run(at, op).await else {
            // Dropped unfinished, as a timed-out read is.
            direct::abandoned();
            return Err(());
        };
        owned = slice.into_inner();
        match res {
            Ok(n) if n > 0 => {
                if let Some(ring) = ring {
                    ring.completed();
                }
                at_byte += n;
            }
            // Zero bytes taken for a non-empty write, or an error.
            _ => {
                *buf = owned;
                return Err(());
            }
        }
    }
    if consume {
        owned.drain(..to);
    }
    *buf = owned;
    Ok(())
}

struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
    out: Vec<u8>,
    peer: SocketAddr,
    /// The one timer of this connection's task, for both of its sides.
    deadline: Deadline,
    idle_slot: IdleSlot,
    /// The current response head, parsed in place.
    resp: ResponseHead,
}

/// Serves one client connection until it closes, fails, times out, or the
/// shard drains. The connection counts as open from this call (made when
/// it is accepted) until the returned future ends.
///
/// A plain function around an `async move` block rather than an `async fn`:
/// an async fn keeps its arguments beside the locals they are moved into,
/// and every idle keep-alive connection would carry both copies (the
/// stream, the peer address and the two contexts, about 250 bytes).
pub fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    shard: Rc<ShardCx>,
    lis: Rc<ListenerCx>,
) -> impl std::future::Future<Output = ()> {
    let _ = stream.set_nodelay(true);
    lis.metrics.connections_total.inc();
    lis.metrics.connections_open.inc();
    lis.open.set(lis.open.get() + 1);
    shard.open.set(shard.open.get() + 1);
    direct::connections(shard.open.get());
    let mut c = Client {
        stream,
        buf: Vec::with_capacity(READ_BUFFER_FIRST_BYTES),
        // Taken from the shard's spares when a request comes.
        out: Vec::new(),
        peer,
        deadline: Deadline::new(),
        idle_slot: shard.idle.register(),
        resp: ResponseHead::default(),
    };
    async move {
        serve(&mut c, &shard, &lis).await;
        shard.spare_writes.give(std::mem::take(&mut c.out));
        shard.idle.release(c.idle_slot);
        lis.metrics.connections_open.dec();
        lis.open.set(lis.open.get() - 1);
        shard.open.set(shard.open.get() - 1);
        direct::connections(shard.open.get());
    }
}

async fn serve(c: &mut Client, shard: &ShardCx, lis: &ListenerCx) {
    // Every request of the connection is parsed into this one head.
    let mut head = RequestHead::default();
    // When the connection last finished something: its idle time runs from
    // here. One clock reading ends an exchange for its metrics, its access
    // log line and the idle wait that follows.
    let mut ended = std::time::Instant::now();
    loop {
        // Between requests the write buffer waits with the shard's spares.
        shard.spare_writes.give(std::mem::take(&mut c.out));
        let got = read_head(c, lis, shard, &mut head, ended).await;
        c.out = shard.spare_writes.take();
        match got {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                if let Some(log) = &lis.access_log {
                    let mut line = access_line_start(c.peer, None, &c.buf);
                    access_line_end(&mut line, response_for(&e).status, 0, None, 0);
                    log.log(line.0);
                }
                respond_error(c, &e, true, lis).await;
                return;
            }
        };
        let started = std::time::Instant::now();
        let mut rec = ExchangeRecord {
            request_bytes: head.head_len as u64,
            access: lis
                .access_log
                .as_ref()
                .map(|_| access_line_start(c.peer, Some(&head), &c.buf)),
            ..ExchangeRecord::default()
        };
        let now = Instant::from_std(started);
        let outcome = exchange(c, &head, shard, lis, &mut rec, now).await;
        let failure = match &outcome {
            Err(Abort::Respond(e, _) | Abort::RespondDiscarding(e, _)) => {
                rec.status = response_for(e).status;
                Some(e.kind)
            }
            Err(Abort::Close) if rec.status == 0 => Some(ErrorKind::UpstreamReset),
            _ => None,
        };
        ended = std::time::Instant::now();
        let us = || micros(ended.duration_since(started));
        if lis.metrics_enabled {
            record(lis, &rec, us(), failure);
        }
        if let (Some(log), Some(mut line)) = (&lis.access_log, rec.access.take()) {
            let us = us();
            access_line_end(
                &mut line,
                rec.status,
                rec.response_bytes,
                rec.entry.as_deref().map(|e| &e.service[..]),
                us,
            );
            log.log(line.0);
        }
        let (e, close, left) = match outcome {
            Ok(true) if !shard.draining() => continue,
            Ok(_) | Err(Abort::Close) => return,
            Err(Abort::Respond(e, close)) => (e, close, 0),
            Err(Abort::RespondDiscarding(e, left)) => (e, false, left),
        };
        let close = close || shard.draining();
        respond_error(c, &e, close, lis).await;
        if close || response_for(&e).close {
            return;
        }
        // The next request starts after the body the client is still
        // sending, if any; one that stops short of it is closed on.
        let idle = (&mut c.deadline, lis.router.timeouts.body_idle);
        if left > 0
            && discard_body(&mut c.stream, &mut c.buf, left, idle)
                .await
                .is_err()
        {
            return;
        }
        // Idle from when the error response went out, not from before it
        // was written.
        ended = std::time::Instant::now();
    }
}

fn micros(d: Duration) -> u64 {
    d.as_micros().min(u128::from(u64::MAX)) as u64
}

/// What one exchange did, for its metrics and access log.
#[derive(Default)]
struct ExchangeRecord {
    entry: Option<Rc<RouteEntry>>,
    /// The endpoint the request was sent to, once chosen.
    endpoint: Option<SocketAddr>,
    status: u16,
    request_bytes: u64,
    response_bytes: u64,
    /// The access log line's first half, taken while the head is in hand.
    access: Option<(String, usize)>,
}

/// Client, time, request line, Host and User-Agent of an access log line
/// (see [`crate::access_log`]), and where status and bytes go (after the
/// request line, as in the Combined Log Format); a head that did not parse
/// logs `"-"`.
fn access_line_start(peer: SocketAddr, head: Option<&RequestHead>, buf: &[u8]) -> (String, usize) {
    use crate::access_log::{push_escaped, push_time};
    let mut line = String::with_capacity(256);
    let _ = std::fmt::Write::write_fmt(&mut line, format_args!("{}", peer.ip()));
    line.push_str(" - - [");
    push_time(&mut line, std::time::SystemTime::now());
    line.push_str("] \"");
    match head {
        Some(h) => {
            push_escaped(&mut line, h.method.get(buf));
            line.push(' ');
            push_escaped(&mut line, h.target.get(buf));
            line.push_str(if h.minor == 0 {
                " HTTP/1.0"
            } else {
                " HTTP/1.1"
            });
            line.push('"');
            let at = line.len();
            line.push_str(" \"");
            if let Some(host) = h.host {
                push_escaped(&mut line, host.get(buf));
            }
            line.push_str("\" \"");
            if let Some(ua) = h
                .headers
                .iter()
                .find(|x| x.name.get(buf).eq_ignore_ascii_case(b"user-agent"))
            {
                push_escaped(&mut line, ua.value.get(buf));
            }
            line.push('"');
            (line, at)
        }
        None => {
            line.push_str("-\"");
            let at = line.len();
            line.push_str(" \"-\" \"-\"");
            (line, at)
        }
    }
}

/// Status, response bytes, logical name and duration; ends the line.
fn access_line_end(
    (line, at): &mut (String, usize),
    status: u16,
    bytes: u64,
    dst: Option<&[u8]>,
    us: u64,
) {
    use std::fmt::Write as _;
    // Formatted on the stack: " 65535 18446744073709551615" fits in 32.
    let mut num = [0u8; 32];
    let room = {
        let mut w = &mut num[..];
        let _ = std::io::Write::write_fmt(&mut w, format_args!(" {status} {bytes}"));
        w.len()
    };
    line.insert_str(
        *at,
        std::str::from_utf8(&num[..32 - room]).unwrap_or_default(),
    );
    line.push_str(" dst=");
    match dst {
        Some(d) => crate::access_log::push_escaped(line, d),
        None => line.push('-'),
    }
    let _ = writeln!(line, " us={us}");
}

/// Counts one exchange in the listener's and the name's series.
fn record(lis: &ListenerCx, rec: &ExchangeRecord, us: u64, failure: Option<ErrorKind>) {
    let m = &lis.metrics;
    m.requests.inc();
    if rec.status != 0 {
        m.response(rec.status);
    }
    let lat = crate::telemetry::Latency::of(us);
    m.latency.record(lat);
    m.request_bytes.add(rec.request_bytes);
    m.response_bytes.add(rec.response_bytes);
    if let Some(k) = failure {
        m.failures.0[failure_index(k)].inc();
    }
    if let Some(e) = &rec.entry {
        let n = e.name_metrics.get_or_init(|| {
            let name = String::from_utf8_lossy(&e.service);
            lis.names.series(m, &name)
        });
        n.requests.inc();
        n.latency.record(lat);
    }
    if let Some(addr) = rec.endpoint {
        lis.endpoints.endpoint(m, addr, |n| {
            n.requests.inc();
            n.latency.record(lat);
        });
    }
}

async fn respond_error(c: &mut Client, e: &ProxyError, close: bool, lis: &ListenerCx) {
    write_error_response(e, close, &mut c.out);
    let at = timer::after(lis.router.timeouts.body_idle);
    let _ = write_vec(&mut c.stream, &mut c.out, &mut c.deadline, at).await;
}

/// The `read_head` phase, into `head`. `Ok(false)`: the client closed or
/// went idle.
async fn read_head(
    c: &mut Client,
    lis: &ListenerCx,
    shard: &ShardCx,
    head: &mut RequestHead,
    idle_from: std::time::Instant,
) -> Result<bool, ProxyError> {
    let t = &lis.router.timeouts;
    let mut scanned = 0;
    // The header deadline runs from the first byte of the request and is
    // never extended by further bytes, so trickling cannot hold a
    // connection open (slowloris).
    let mut deadline: Option<Instant> = None;
    loop {
        if !c.buf.is_empty() {
            if parse_request_into(&c.buf, &mut scanned, &lis.router.limits, head)? {
                return Ok(true);
            }
            deadline.get_or_insert_with(|| timer::after(t.header_read));
        }
        let read = match deadline {
            // Idle between requests, a wait that a drain ends. The read goes
            // into the buffer as it is, so a connection of small heads keeps
            // its small first buffer while it waits (see
            // [`READ_BUFFER_FIRST_BYTES`]).
            None => {
                let at = timer::after_from(Instant::from_std(idle_from), t.idle);
                let r = {
                    let (owned, len, cap) = spare(&mut c.buf);
                    let read = std::pin::pin!(c.stream.read(owned.slice_mut(len..cap)));
                    let idle = &shard.idle;
                    c.deadline.run_idle(at, idle, &c.idle_slot, read).await
                };
                let r = settle_read(r, &mut c.buf);
                if r.is_ok()
                    && c.buf.len() == c.buf.capacity()
                    && c.buf.capacity() < READ_BUFFER_BYTES
                {
                    take_waiting(&c.stream, &mut c.buf);
                }
                r
            }
            Some(at) => read_more!(c.stream, &mut c.buf, c.deadline, at),
        };
        match read {
            Ok(_) => {}
            Err(ReadFail::TimedOut) if deadline.is_some() => {
                return Err(ProxyError::client(
                    ErrorKind::HeadTimeout,
                    "request head timed out",
                ));
            }
            // Idle keep-alive connections and clients that leave are not
            // errors.
            Err(_) => return Ok(false),
        }
    }
}

/// How an exchange ends early.
enum Abort {
    /// Nothing was sent to the client yet: answer with this error, and
    /// close the connection after it if told so.
    Respond(ProxyError, bool),
    /// As `Respond`, keeping the connection: this many bytes of the
    /// request's body are still to come, to be read and dropped.
    RespondDiscarding(ProxyError, u64),
    /// A response is under way or the client is gone: close.
    Close,
}

/// The `route`, `forward` and `respond` phases for one request. Returns
/// whether the client connection may carry another request.
async fn exchange(
    c: &mut Client,
    head: &RequestHead,
    shard: &ShardCx,
    lis: &ListenerCx,
    rec: &mut ExchangeRecord,
    // The clock when the head was in hand: deadlines of the steps that
    // follow without waiting start from it rather than from a clock read
    // of their own.
    mut now: Instant,
) -> Result<bool, Abort> {
    let t = &lis.router.timeouts;
    let has_body = head.framing != BodyFraming::None;
    shard.refresh();
    let mut binding_deadline = None;
    let mut binding_waited = false;
    let routed = loop {
        let result = {
            let mut rng = shard.rng.borrow_mut();
            let snapshot = shard.snapshot.borrow();
            let cx = RouteCx {
                router: &lis.router,
                server: &lis.server,
                snapshot: &snapshot,
                global: &shard.global,
                cache: &lis.cache,
                outstanding: &shard.outstanding,
                metrics: lis.metrics_enabled.then_some(&*lis.metrics),
            };
            route(&cx, c.peer.ip(), head, &c.buf, &mut rng)
        };
        let e = match result {
            Ok(r) => break r,
            Err(e) => e,
        };
        // A pending name (a namer still syncing) waits for the next
        // snapshot, up to the router's binding timeout; then 503.
        if e.kind == ErrorKind::BindPending && !shard.draining() {
            let now = monoio::time::Instant::now();
            let deadline = *binding_deadline.get_or_insert(now + lis.router.binding_timeout);
            if now < deadline && shard.next_snapshot(deadline - now).await {
                shard.refresh();
                binding_waited = true;
                continue;
            }
        }
        if lis.metrics_enabled && e.kind == ErrorKind::OverrideRefused {
            lis.metrics.overrides_refused.inc();
        }
        c.buf.drain(..head.head_len);
        return Err(refuse_unread_body(e, head.framing, &mut c.buf, lis));
    };
    if lis.metrics_enabled
        && lis.server.trust == crate::config::Trust::Edge
        && routed.entry.ctx_dtab.is_some()
    {
        lis.metrics.overrides_admitted.inc();
    }
    rec.entry = Some(routed.entry.clone());
    rewrite::request_head(
        head,
        &c.buf,
        &routed,
        lis.server.trust,
        c.peer.ip(),
        &mut c.out,
    );
    // A chunked body in hand is decoded once: refused now if malformed,
    // before any of the request reaches an upstream, and re-encoded behind
    // the head when it is whole and small (see below).
    let chunked_whole = match head.framing {
        BodyFraming::Chunked => probe_chunked(
            &c.buf[head.head_len..],
            &mut c.out,
            lis.router.limits.body_bytes_max,
            !head.expect_continue,
        )
        .map_err(|e| Abort::Respond(chunked_error(e), true))?,
        _ => None,
    };
    // Counted until this exchange ends, however it ends.
    let _in_flight = InFlight::new(&shard.outstanding, routed.addr);
    rec.endpoint = Some(routed.addr);
    let keep_alive = head.keep_alive;
    let is_head = head.is_head(&c.buf);
    // RFC 9110 §9.2.2: safe to send again if the first try met a stale
    // connection.
    let idempotent = matches!(
        head.method.get(&c.buf),
        b"GET" | b"HEAD" | b"OPTIONS" | b"TRACE" | b"PUT" | b"DELETE"
    );
    let minor = head.minor;
    c.buf.drain(..head.head_len);
    // A small body already in hand goes in the head's write, as nginx and
    // HAProxy send one: the upstream gets the request whole, in one
    // segment, and wakes once. Sent separately, an upstream that answers on
    // the head (nginx's `return`, an auth check) would answer between the
    // two writes, costing the upstream connection (see below) and, with it,
    // a connect per request. Copying the body behind the head costs less
    // than that second write. `unread` is the body still to send after the
    // head's write.
    let mut unread = head.framing;
    if let BodyFraming::Length(n) = head.framing
        && !head.expect_continue
        && n <= COALESCE_REQUEST_BODY_BYTES_MAX as u64
        && c.buf.len() as u64 >= n
    {
        c.out.extend_from_slice(&c.buf[..n as usize]);
        c.buf.drain(..n as usize);
        rec.request_bytes += n;
        unread = BodyFraming::None;
    } else if let Some((used, bytes)) = chunked_whole {
        // The same for a chunked body whole in hand, already re-encoded.
        c.buf.drain(..used);
        rec.request_bytes += bytes;
        unread = BodyFraming::None;
    }
    // A body that is not sent in the head's write (a large one, or one still
    // arriving) is sent after it: an upstream that answers before reading
    // it is caught between the two (an early response), and its connection
    // is not reused for the next request, which it would read after the
    // unread body.

    if binding_waited {
        now = Instant::now();
    }
    let mut pooled = shard.pool.take(routed.addr, now);
    // A pooled connection the peer closed between our check and our write
    // fails the write: the request was never written, so one retry on a
    // fresh connection is safe. A fresh connection that fails is not
    // retried.
    let mut up = loop {
        let mut up = match pooled.take() {
            Some(u) => u,
            None => {
                let u = match connect(routed.addr, t.connect).await {
                    Ok(u) => u,
                    Err(e) => return Err(refuse_unread_body(e, unread, &mut c.buf, lis)),
                };
                now = Instant::now();
                u
            }
        };
        let at = timer::after_from(now, t.body_idle);
        if write_vec(&mut up.stream, &mut c.out, &mut c.deadline, at)
            .await
            .is_ok()
        {
            break up;
        }
        // A write that timed out dropped the head with its operation:
        // there is nothing to send again.
        if !up.reused || c.out.is_empty() {
            let e = upstream_reset(true);
            return Err(refuse_unread_body(e, unread, &mut c.buf, lis));
        }
    };

    let mut body_sent = unread == BodyFraming::None;
    let mut client_body_consumed = body_sent;
    // Body bytes of this request still on their way from the client after
    // an early response: read and dropped once the response is out.
    let mut discard = 0u64;
    // The response head is parsed into the connection's own, in place.
    let mut early = false;
    if has_body && head.expect_continue {
        // Relay the upstream's 100 Continue, or its final answer without
        // sending the body (RFC 9110 §10.1.1); an upstream that says neither
        // within the expect-continue timeout gets the body anyway. Other
        // interim answers (103) are relayed as they come, and the wait goes on.
        let at = timer::after(t.expect_continue);
        loop {
            match read_response_head(&mut up, is_head, &mut c.deadline, at, &mut c.resp).await {
                Ok(()) if c.resp.status == 101 => {
                    return Err(Abort::Respond(unasked_upgrade(), true));
                }
                Ok(()) if c.resp.is_interim() => {
                    relay_interim(c, &mut up, minor, lis.server.trust, t.body_idle).await?;
                    if c.resp.status != 100 {
                        continue;
                    }
                }
                Ok(()) => early = true,
                Err(e) if e.kind == ErrorKind::ResponseTimeout && up.buf.is_empty() => {}
                Err(e) => return Err(Abort::Respond(e, true)),
            }
            break;
        }
    }
    if !early && unread != BodyFraming::None {
        let sent = match unread {
            BodyFraming::Length(n) => forward_length(
                &mut c.stream,
                &mut c.buf,
                &mut up.stream,
                n,
                (&mut c.deadline, t.body_idle),
                true,
            )
            .await
            .map(|()| n),
            BodyFraming::Chunked => {
                let how = ChunkedRelay {
                    rechunk: true,
                    max: lis.router.limits.body_bytes_max,
                    dur: t.body_idle,
                    watch_early_response: true,
                };
                forward_chunked(
                    &mut c.stream,
                    &mut c.buf,
                    &mut up.stream,
                    &mut c.out,
                    &mut c.deadline,
                    how,
                )
                .await
            }
            BodyFraming::None => Ok(0),
        };
        match sent {
            Ok(bytes) => {
                rec.request_bytes += bytes;
                body_sent = true;
                client_body_consumed = true;
            }
            // The upstream answered before taking the whole body: relay its
            // answer and never reuse that connection (it may still hold part
            // of the body, which would parse as the next request). The
            // client's connection stays open if the rest of its body can be
            // dropped, as nginx discards a body it does not read: a length
            // we know, at most DISCARD_BODY_BYTES_MAX of it, or a chunked
            // body whose end is in the buffer already. Otherwise it closes
            // after the response.
            Err(BodyFail::EarlyResponse { unread }) => {
                if let Some(left) = drop_unread(unread, &mut c.buf) {
                    discard = left;
                    client_body_consumed = true;
                }
            }
            Err(f) => return Err(body_abort(f)),
        }
    }

    let mut retried = false;
    // (An early response is already in hand.)
    if !early {
        loop {
            // From the end of the request: the head's write (just done) or
            // its body's.
            let at = if has_body || retried {
                timer::after(t.response_head)
            } else {
                timer::after_from(now, t.response_head)
            };
            match read_response_head(&mut up, is_head, &mut c.deadline, at, &mut c.resp).await {
                Ok(()) => {}
                // A reused connection that closed before answering was
                // stale (the upstream closed it while idle and our write
                // raced its FIN): a bodiless idempotent request goes once
                // more, on a fresh connection. `c.out` still holds it.
                Err(e)
                    if e.kind == ErrorKind::UpstreamReset
                        && up.reused
                        && up.buf.is_empty()
                        && !has_body
                        && idempotent
                        && !retried =>
                {
                    retried = true;
                    up = connect(routed.addr, t.connect)
                        .await
                        .map_err(|e| Abort::Respond(e, false))?;
                    let at = timer::after(t.body_idle);
                    if write_vec(&mut up.stream, &mut c.out, &mut c.deadline, at)
                        .await
                        .is_err()
                    {
                        return Err(Abort::Respond(upstream_reset(true), false));
                    }
                    continue;
                }
                Err(e) => {
                    let close = !client_body_consumed;
                    return Err(Abort::Respond(e, close));
                }
            }
            if c.resp.status == 101 {
                return Err(Abort::Respond(unasked_upgrade(), !client_body_consumed));
            }
            if c.resp.is_interim() {
                relay_interim(c, &mut up, minor, lis.server.trust, t.body_idle).await?;
                // The upstream has begun to answer (and `c.out` no longer
                // holds the request): no retry from here.
                retried = true;
                continue;
            }
            break;
        }
    }
    let resp = &c.resp;
    let framing = rewrite::client_framing(resp, minor);
    let close_after =
        !keep_alive || framing == ClientFraming::Close || !client_body_consumed || shard.draining();
    rewrite::response_head(
        resp,
        &up.buf,
        framing,
        lis.server.trust,
        close_after,
        minor,
        &mut c.out,
    );
    let upstream_reusable = resp.reusable && body_sent;
    rec.status = resp.status;
    rec.response_bytes = c.out.len() as u64;
    // The body bytes read with the head go out with it, in one write.
    let mut body_with_head = 0u64;
    let now = Instant::now();
    let at = timer::after_from(now, t.body_idle);
    let head_len = resp.head_len;
    let wrote = match resp.framing {
        // Our head fits where the upstream's was (it usually does: we drop
        // its hop-by-hop lines and add little): written there, right before
        // the body bytes, the head and those bytes go out from the read
        // buffer as they are, with no copy or move of the body.
        ResponseFraming::Length(n) if c.out.len() <= head_len => {
            let k = ((up.buf.len() - head_len) as u64).min(n) as usize;
            let from = head_len - c.out.len();
            up.buf[from..head_len].copy_from_slice(&c.out);
            body_with_head = k as u64;
            let span = (from, head_len + k);
            write_front(&mut c.stream, &mut up.buf, span, &mut c.deadline, at).await
        }
        framing => {
            up.buf.drain(..head_len);
            if let ResponseFraming::Length(n) = framing {
                let k = coalesce_len(up.buf.len(), n);
                c.out.extend_from_slice(&up.buf[..k]);
                up.buf.drain(..k);
                body_with_head = k as u64;
            }
            write_vec(&mut c.stream, &mut c.out, &mut c.deadline, at).await
        }
    };
    wrote.map_err(|()| Abort::Close)?;
    let complete = match resp.framing {
        ResponseFraming::None => true,
        ResponseFraming::Length(n) => {
            let done = forward_length(
                &mut up.stream,
                &mut up.buf,
                &mut c.stream,
                n - body_with_head,
                (&mut c.deadline, t.body_idle),
                false,
            )
            .await
            .is_ok();
            if done {
                rec.response_bytes += n;
            }
            done
        }
        ResponseFraming::Chunked => {
            let how = ChunkedRelay {
                rechunk: framing == ClientFraming::Chunked,
                max: u64::MAX,
                dur: t.body_idle,
                watch_early_response: false,
            };
            let relayed = forward_chunked(
                &mut up.stream,
                &mut up.buf,
                &mut c.stream,
                &mut c.out,
                &mut c.deadline,
                how,
            )
            .await;
            match relayed {
                Ok(bytes) => {
                    rec.response_bytes += bytes;
                    true
                }
                Err(_) => false,
            }
        }
        ResponseFraming::CloseDelimited => {
            forward_until_eof(
                &mut up.stream,
                &mut up.buf,
                &mut c.stream,
                (&mut c.deadline, t.body_idle),
            )
            .await;
            return Ok(false);
        }
    };
    if !complete {
        return Err(Abort::Close);
    }
    if upstream_reusable && !shard.draining() {
        up.sent_body = has_body;
        // `now` is from before the response went out: the connection looks
        // idle longer than it is, which errs towards checking it.
        shard.pool.put(up, now);
    }
    if discard > 0 && !close_after {
        // The response promised the connection to the client: its next
        // request starts after the body it is still sending. A client that
        // stops short of it is closed on.
        discard_body(
            &mut c.stream,
            &mut c.buf,
            discard,
            (&mut c.deadline, t.body_idle),
        )
        .await
        .map_err(|_| Abort::Close)?;
    }
    Ok(!close_after)
}

/// Reads and drops `n` body bytes from `src` (none are in `buf` yet);
/// bytes beyond them stay in `buf` (the next pipelined request).
async fn discard_body(
    src: &mut TcpStream,
    buf: &mut Vec<u8>,
    mut n: u64,
    (dl, dur): (&mut Deadline, Duration),
) -> Result<(), ReadFail> {
    while n > 0 {
        read_more(src, buf, dl, timer::after(dur)).await?;
        let take = (buf.len() as u64).min(n);
        buf.drain(..take as usize);
        n -= take;
    }
    Ok(())
}

/// Decodes the chunked body in hand (`buf` starts at it, `max` bounds it):
/// a malformed one is an error here, before any of the request reaches an
/// upstream. When `coalesce` and the body is whole (to its last chunk) with
/// at most `COALESCE_REQUEST_BODY_BYTES_MAX` of data, it is also written
/// behind the head in `out`, with the clean framing [`forward_chunked`]
/// writes: `Some((bytes of buf it took, body bytes))`. Otherwise `out` is
/// left as it was.
fn probe_chunked(
    buf: &[u8],
    out: &mut Vec<u8>,
    max: u64,
    coalesce: bool,
) -> Result<Option<(usize, u64)>, crate::http1::ChunkedError> {
    let head_end = out.len();
    let mut dec = ChunkedDecoder::new(max);
    let (mut at, mut total, mut copy) = (0, 0u64, coalesce);
    while at < buf.len() {
        let (n, ev) = dec.decode(&buf[at..])?;
        match ev {
            Some(ChunkedEvent::Data { start, end }) => {
                total += (end - start) as u64;
                copy &= total <= COALESCE_REQUEST_BODY_BYTES_MAX as u64;
                if copy {
                    push_hex(out, (end - start) as u64);
                    out.extend_from_slice(b"\r\n");
                    out.extend_from_slice(&buf[at + start..at + end]);
                    out.extend_from_slice(b"\r\n");
                }
            }
            Some(ChunkedEvent::Done) if copy => {
                out.extend_from_slice(b"0\r\n\r\n");
                return Ok(Some((at + n, total)));
            }
            Some(ChunkedEvent::Done) => break,
            None => {}
        }
        if n == 0 {
            break;
        }
        at += n;
    }
    out.truncate(head_end);
    Ok(None)
}

/// How many of `have` buffered body bytes (of `n` declared) to send with
/// the head.
fn coalesce_len(have: usize, n: u64) -> usize {
    (have as u64).min(n).min(COALESCE_BODY_BYTES_MAX as u64) as usize
}

/// A request in flight to an endpoint, for load balancing.
struct InFlight<'a> {
    outstanding: &'a Outstanding,
    addr: SocketAddr,
}

impl<'a> InFlight<'a> {
    fn new(outstanding: &'a Outstanding, addr: SocketAddr) -> InFlight<'a> {
        outstanding.start(addr);
        InFlight { outstanding, addr }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.outstanding.finish(self.addr);
    }
}

fn upstream_reset(retryable: bool) -> ProxyError {
    ProxyError::new(
        ErrorKind::UpstreamReset,
        Side::Upstream,
        retryable,
        "upstream connection closed",
    )
}

fn chunked_error(e: crate::http1::ChunkedError) -> ProxyError {
    if e.too_large {
        ProxyError::client(ErrorKind::BodyTooLarge, e.reason)
    } else {
        ProxyError::client(ErrorKind::BadBody, e.reason)
    }
}

/// Why body forwarding stopped.
enum BodyFail {
    /// The reading side closed or failed.
    SourceGone,
    SourceTimedOut,
    /// The writing side failed.
    SinkGone,
    Malformed(crate::http1::ChunkedError),
    /// The upstream sent a response while we were still sending the body;
    /// what is left of the client's body.
    EarlyResponse {
        unread: Unread,
    },
}

/// The rest of a request body after an early response.
enum Unread {
    /// Bytes still to come from the client or to take from the buffer.
    Length(u64),
    /// A chunked body, with its decoder where relaying stopped (its next
    /// input is the start of the buffer).
    Chunked(ChunkedDecoder),
}

/// Drops what is left of a request body that the upstream is not to get
/// (after an early answer, or an error before the body went upstream), so
/// that the client's connection can carry its next request, as nginx
/// discards a body it does not read: a length with at most
/// `DISCARD_BODY_BYTES_MAX` left, in `buf` (dropped now) or still to come,
/// or a chunked body whose end is in `buf` already (a chunked body still
/// arriving has no bound we could hold it to). `Some(bytes still to come,
/// to read and drop once the answer is out)`; `None`, with `buf` left
/// alone: the connection must close after the answer, so that an unread
/// body is never parsed as the next request.
fn drop_unread(unread: Unread, buf: &mut Vec<u8>) -> Option<u64> {
    match unread {
        Unread::Length(n) => {
            if n > DISCARD_BODY_BYTES_MAX {
                return None;
            }
            let here = (buf.len() as u64).min(n);
            buf.drain(..here as usize);
            Some(n - here)
        }
        Unread::Chunked(mut dec) => {
            let mut at = 0;
            loop {
                match dec.decode(&buf[at..]) {
                    Ok((n, Some(ChunkedEvent::Done))) => {
                        buf.drain(..at + n);
                        return Some(0);
                    }
                    Ok((n, Some(ChunkedEvent::Data { .. }))) if n > 0 => at += n,
                    Ok(_) | Err(_) => return None,
                }
            }
        }
    }
}

/// Passes an interim response (1xx but 101) on to an HTTP/1.1 client, as a
/// proxy must (RFC 9110 §15.2), with its hop-by-hop headers removed as a
/// final response's are; an HTTP/1.0 client never gets one. Either way it
/// leaves the upstream's buffer. The response head is `c.resp`.
async fn relay_interim(
    c: &mut Client,
    up: &mut UpConn,
    minor: u8,
    trust: crate::config::Trust,
    body_idle: Duration,
) -> Result<(), Abort> {
    if minor == 1 {
        let none = ClientFraming::None;
        rewrite::response_head(&c.resp, &up.buf, none, trust, false, 1, &mut c.out);
        let at = timer::after(body_idle);
        write_vec(&mut c.stream, &mut c.out, &mut c.deadline, at)
            .await
            .map_err(|()| Abort::Close)?;
    }
    up.buf.drain(..c.resp.head_len);
    Ok(())
}

/// A 101 that no request of ours asked for (upgrades are refused).
fn unasked_upgrade() -> ProxyError {
    ProxyError::new(
        ErrorKind::BadResponse,
        Side::Upstream,
        false,
        "upstream switched protocols unasked",
    )
}

/// An error before any of the request's body went upstream (no route, no
/// connection): the answer keeps the client's connection when the body can
/// be dropped ([`drop_unread`]), else closes it. `buf` starts at the body.
fn refuse_unread_body(
    e: ProxyError,
    framing: BodyFraming,
    buf: &mut Vec<u8>,
    lis: &ListenerCx,
) -> Abort {
    let unread = match framing {
        BodyFraming::None => return Abort::Respond(e, false),
        BodyFraming::Length(n) => Unread::Length(n),
        BodyFraming::Chunked => {
            Unread::Chunked(ChunkedDecoder::new(lis.router.limits.body_bytes_max))
        }
    };
    match drop_unread(unread, buf) {
        Some(left) => Abort::RespondDiscarding(e, left),
        None => Abort::Respond(e, true),
    }
}

/// A request body that did not arrive whole: answer if we can, and never
/// reuse the upstream connection (it has a partial request).
fn body_abort(f: BodyFail) -> Abort {
    match f {
        BodyFail::SourceTimedOut => Abort::Respond(
            ProxyError::client(ErrorKind::BodyTimeout, "request body timed out"),
            true,
        ),
        BodyFail::Malformed(e) => Abort::Respond(chunked_error(e), true),
        BodyFail::SinkGone => Abort::Respond(upstream_reset(false), true),
        BodyFail::SourceGone | BodyFail::EarlyResponse { .. } => Abort::Close,
    }
}

/// Reads a response head from the upstream.
async fn read_response_head(
    up: &mut UpConn,
    is_head: bool,
    dl: &mut Deadline,
    at: Instant,
    out: &mut ResponseHead,
) -> Result<(), ProxyError> {
    loop {
        if !up.buf.is_empty() {
            match parse_response_into(&up.buf, is_head, out) {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) => {
                    return Err(ProxyError::new(
                        ErrorKind::BadResponse,
                        Side::Upstream,
                        false,
                        e.0,
                    ));
                }
            }
        }
        match read_more!(up.stream, &mut up.buf, dl, at) {
            Ok(_) => {}
            Err(ReadFail::TimedOut) => {
                return Err(ProxyError::new(
                    ErrorKind::ResponseTimeout,
                    Side::Upstream,
                    false,
                    "upstream response timed out",
                ));
            }
            Err(_) => return Err(upstream_reset(false)),
        }
    }
}

/// Forwards exactly `n` body bytes, starting with those already in `buf`;
/// bytes beyond them stay in `buf` (the next pipelined request).
async fn forward_length(
    src: &mut TcpStream,
    buf: &mut Vec<u8>,
    dst: &mut TcpStream,
    mut n: u64,
    (dl, dur): (&mut Deadline, Duration),
    watch_early_response: bool,
) -> Result<(), BodyFail> {
    while n > 0 {
        if buf.is_empty() {
            let at = timer::after(dur);
            read_more(src, buf, dl, at).await.map_err(|f| match f {
                ReadFail::TimedOut => BodyFail::SourceTimedOut,
                _ => BodyFail::SourceGone,
            })?;
        }
        // Checked right before each write, after any wait for the client:
        // an upstream that answered while we waited for the body has not
        // read it, and must not get it (it would parse as a request).
        if watch_early_response && peer_has_answered(dst) {
            return Err(BodyFail::EarlyResponse {
                unread: Unread::Length(n),
            });
        }
        let take = (buf.len() as u64).min(n) as usize;
        let at = timer::after(dur);
        write_front(dst, buf, (0, take), dl, at)
            .await
            .map_err(|()| BodyFail::SinkGone)?;
        n -= take as u64;
    }
    Ok(())
}

/// Decodes a chunked body from `src` and writes it to `dst`, re-chunked
/// (with clean framing: no extensions, no trailers) or raw.
/// How a chunked body is relayed.
struct ChunkedRelay {
    /// Re-encode as chunked (else write the decoded bytes raw).
    rechunk: bool,
    /// Body bytes allowed before 413.
    max: u64,
    dur: Duration,
    /// Stop if the destination speaks first (an early response).
    watch_early_response: bool,
}

async fn forward_chunked(
    src: &mut TcpStream,
    buf: &mut Vec<u8>,
    dst: &mut TcpStream,
    out: &mut Vec<u8>,
    dl: &mut Deadline,
    how: ChunkedRelay,
) -> Result<u64, BodyFail> {
    let ChunkedRelay {
        rechunk,
        max,
        dur,
        watch_early_response,
    } = how;
    let mut dec = ChunkedDecoder::new(max);
    let mut total = 0u64;
    loop {
        if watch_early_response && peer_has_answered(dst) {
            return Err(BodyFail::EarlyResponse {
                unread: Unread::Chunked(dec),
            });
        }
        let (n, ev) = dec.decode(buf).map_err(BodyFail::Malformed)?;
        match ev {
            Some(ChunkedEvent::Data { start, end }) => {
                total += (end - start) as u64;
                out.clear();
                if rechunk {
                    push_hex(out, (end - start) as u64);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(&buf[start..end]);
                if rechunk {
                    out.extend_from_slice(b"\r\n");
                }
                buf.drain(..n);
                write_vec(dst, out, dl, timer::after(dur))
                    .await
                    .map_err(|()| BodyFail::SinkGone)?;
            }
            Some(ChunkedEvent::Done) => {
                buf.drain(..n);
                if rechunk {
                    out.clear();
                    out.extend_from_slice(b"0\r\n\r\n");
                    write_vec(dst, out, dl, timer::after(dur))
                        .await
                        .map_err(|()| BodyFail::SinkGone)?;
                }
                return Ok(total);
            }
            None => {
                buf.drain(..n);
                let at = timer::after(dur);
                read_more(src, buf, dl, at).await.map_err(|f| match f {
                    ReadFail::TimedOut => BodyFail::SourceTimedOut,
                    _ => BodyFail::SourceGone,
                })?;
            }
        }
    }
}

/// Forwards everything until the source closes.
async fn forward_until_eof(
    src: &mut TcpStream,
    buf: &mut Vec<u8>,
    dst: &mut TcpStream,
    (dl, dur): (&mut Deadline, Duration),
) {
    loop {
        if !buf.is_empty() {
            let n = buf.len();
            if write_front(dst, buf, (0, n), dl, timer::after(dur))
                .await
                .is_err()
            {
                return;
            }
        }
        if read_more(src, buf, dl, timer::after(dur)).await.is_err() {
            return;
        }
    }
}

fn push_hex(out: &mut Vec<u8>, mut n: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; 16];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = HEX[(n & 15) as usize];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spare_write_buffers_are_reused_cleared_and_bounded() {
        let spare = SpareBuffers::default();
        let mut a = spare.take();
        assert_eq!(a.capacity(), WRITE_BUFFER_FIRST_BYTES);
        // A buffer that grew comes back as it grew, emptied.
        a.extend_from_slice(&[b'x'; 2000]);
        let (ptr, cap) = (a.as_ptr(), a.capacity());
        spare.give(a);
        let b = spare.take();
        assert_eq!((b.as_ptr(), b.capacity(), b.len()), (ptr, cap, 0));
        // An idle connection's empty Vec is not kept.
        spare.give(Vec::new());
        assert_eq!(spare.0.borrow().len(), 0);
        // No more than the bound is kept, and keeping never allocates.
        let room = spare.0.borrow().capacity();
        for _ in 0..SPARE_WRITE_BUFFERS_MAX + 10 {
            spare.give(Vec::with_capacity(8));
        }
        assert_eq!(spare.0.borrow().len(), SPARE_WRITE_BUFFERS_MAX);
        assert_eq!(spare.0.borrow().capacity(), room);
    }
}
