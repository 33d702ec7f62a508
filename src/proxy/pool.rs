//! Per-shard upstream connections: connect with a timeout, and a bounded
//! pool of idle keep-alive connections per endpoint.
//!
//! A connection goes back into the pool only after a complete, clean
//! exchange (the caller decides). Taking one that has been idle a while
//! checks that the peer has not closed it meanwhile, so a request is not
//! written to a connection that is already dead.

use super::error::{ErrorKind, ProxyError, Side};
use crate::limits::{POOL_IDLE_PER_ENDPOINT_MAX, POOL_PEEK_AFTER, UPSTREAM_READ_BUFFER_BYTES};
use monoio::net::TcpStream;
use monoio::time::Instant;
use rustc_hash::FxHashMap;
use std::cell::RefCell;
use std::future::Future;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::time::Duration;

/// An upstream connection and its read buffer.
pub struct UpConn {
    pub stream: TcpStream,
    pub buf: Vec<u8>,
    pub addr: SocketAddr,
    /// Whether it came from the pool (a failure before any response byte
    /// may then be a stale connection rather than a dead endpoint).
    pub reused: bool,
    /// When it last went back into the pool (or a little before).
    idle_since: Instant,
    /// Set by the caller when the exchange it finished sent a request body:
    /// an upstream may have answered without reading it (and then reads it
    /// as a request), so the connection is peeked before any reuse, however
    /// recent.
    pub sent_body: bool,
}

/// Idle connections by endpoint. Owned by one shard; borrows never cross
/// an `.await`.
#[derive(Default)]
pub struct Pool {
    /// Boxed: a connection moves in and out of the pool on every request,
    /// and a pointer moves for less than the connection's hundred-odd bytes.
    #[expect(clippy::vec_box, reason = "the box is what moves, not the Vec")]
    idle: RefCell<FxHashMap<SocketAddr, Vec<Box<UpConn>>>>,
}

impl Pool {
    /// An idle connection to `addr` that is still open, if any.
    /// `now`: a recent clock reading.
    pub fn take(&self, addr: SocketAddr, now: Instant) -> Option<Box<UpConn>> {
        let mut idle = self.idle.borrow_mut();
        let conns = idle.get_mut(&addr)?;
        while let Some(mut c) = conns.pop() {
            let fresh =
                !c.sent_body && now.saturating_duration_since(c.idle_since) < POOL_PEEK_AFTER;
            if fresh || peer_still_open(&c.stream) {
                c.reused = true;
                return Some(c);
            }
        }
        None
    }

    /// Returns a connection after a complete, clean exchange.
    /// `now`: a clock reading from no later than the exchange's end.
    pub fn put(&self, mut conn: Box<UpConn>, now: Instant) {
        if !conn.buf.is_empty() {
            // Bytes after a complete response: the upstream is confused.
            return;
        }
        conn.reused = false;
        conn.idle_since = now;
        let mut idle = self.idle.borrow_mut();
        let conns = idle.entry(conn.addr).or_default();
        if conns.len() < POOL_IDLE_PER_ENDPOINT_MAX {
            conns.push(conn);
        }
    }

    /// Idle connections held, all endpoints.
    pub fn idle_count(&self) -> usize {
        self.idle.borrow().values().map(Vec::len).sum()
    }

    /// Drops every idle connection (shutdown).
    pub fn clear(&self) {
        self.idle.borrow_mut().clear();
    }
}

/// Connects to `addr` within `timeout`. Boxed: inline, the connect
/// operation and its timer would size the future of every client
/// connection, idle ones included, though few requests connect (the pool
/// serves the rest). A connect pays one allocation instead.
pub fn connect(
    addr: SocketAddr,
    timeout: Duration,
) -> Pin<Box<impl Future<Output = Result<Box<UpConn>, ProxyError>>>> {
    Box::pin(connect_inline(addr, timeout))
}

async fn connect_inline(addr: SocketAddr, timeout: Duration) -> Result<Box<UpConn>, ProxyError> {
    match crate::timer::timeout(timeout, TcpStream::connect_addr(addr)).await {
        Ok(Ok(stream)) => {
            // Requests and responses are written whole: Nagle would only
            // delay the last segment of each (the 40 ms stalls of
            // Nagle + delayed ACK).
            let _ = stream.set_nodelay(true);
            Ok(Box::new(UpConn {
                stream,
                buf: Vec::with_capacity(UPSTREAM_READ_BUFFER_BYTES),
                addr,
                reused: false,
                idle_since: Instant::now(),
                sent_body: false,
            }))
        }
        Ok(Err(_)) => Err(ProxyError::new(
            ErrorKind::ConnectFailed,
            Side::Upstream,
            true,
            "connection to upstream failed",
        )),
        Err(_) => Err(ProxyError::new(
            ErrorKind::ConnectTimeout,
            Side::Upstream,
            true,
            "connection to upstream timed out",
        )),
    }
}

/// True when the upstream has answered (or closed, or failed) while we are
/// still sending it a request body: an early response, after which it must
/// get no more of the body. Interim responses do not count (RFC 9110
/// §15.2: a server may send 100 Continue or 103 Early Hints unasked and go
/// on to read the body); they stay in the socket for the response reader,
/// which drops them.
#[allow(unsafe_code)]
pub fn peer_has_answered(stream: &TcpStream) -> bool {
    // Left uninitialised: this runs before every write of a streamed body,
    // and nearly always finds nothing to read; zeroing 4 KiB each time
    // would cost more than the peek.
    let mut peek = [std::mem::MaybeUninit::<u8>::uninit(); EARLY_PEEK_BYTES];
    // SAFETY: the fd is owned by `stream` and open for the duration of the
    // call; the buffer is valid and writable for its length;
    // MSG_PEEK|MSG_DONTWAIT neither consumes data nor blocks.
    let n = unsafe {
        libc::recv(
            stream.as_raw_fd(),
            peek.as_mut_ptr().cast(),
            peek.len(),
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        return std::io::Error::last_os_error().kind() != std::io::ErrorKind::WouldBlock;
    }
    let n = n as usize;
    // SAFETY: the kernel wrote the first `n` bytes, and `n` is at most the
    // buffer's length.
    let seen = unsafe { std::slice::from_raw_parts(peek.as_ptr().cast::<u8>(), n) };
    n == 0 || !only_interim(seen, n == peek.len())
}

/// How much of what an upstream sent early is looked at: interim heads are
/// small (103's `Link` lines the largest of them).
const EARLY_PEEK_BYTES: usize = 4096;

/// Whether `bytes` (not empty) are interim response heads and nothing else:
/// 1xx other than 101 (no request of ours asks to switch protocols). The
/// last head may be incomplete once its status shows it is a 1xx; fewer
/// bytes than that prove nothing, so count as an answer, as does a peek
/// that filled its buffer (`full`) without ending on a complete head.
fn only_interim(mut bytes: &[u8], full: bool) -> bool {
    loop {
        match crate::http1::response::parse_response(bytes, false) {
            Ok(Some(h)) if h.is_interim() && h.status != 101 => {
                bytes = &bytes[h.head_len..];
                if bytes.is_empty() {
                    return true;
                }
            }
            Ok(Some(_)) | Err(_) => return false,
            // "HTTP/1.x 1": the status is an interim one.
            Ok(None) => return !full && bytes.get(9) == Some(&b'1'),
        }
    }
}

/// A non-blocking peek: an idle connection whose peer closed reads EOF (or
/// has unexpected bytes waiting); a live one would block.
#[allow(unsafe_code)]
fn peer_still_open(stream: &TcpStream) -> bool {
    let mut byte = 0u8;
    // SAFETY: the fd is owned by `stream` and open for the duration of the
    // call; the buffer is one valid, writable byte; MSG_PEEK|MSG_DONTWAIT
    // neither consumes data nor blocks.
    let n = unsafe {
        libc::recv(
            stream.as_raw_fd(),
            (&mut byte as *mut u8).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock
}

#[cfg(test)]
mod tests {
    use super::only_interim;

    #[test]
    fn interim_heads_are_not_an_answer() {
        let cont = b"HTTP/1.1 100 Continue\r\n\r\n";
        let hints = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n";
        assert!(only_interim(cont, false));
        assert!(only_interim(&[&cont[..], &hints[..]].concat(), false));
        // An interim head still arriving, once its status shows.
        assert!(only_interim(b"HTTP/1.1 1", false));
        assert!(only_interim(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 1",
            false
        ));
        // A final status, or not yet telling, is an answer.
        assert!(!only_interim(
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            false
        ));
        assert!(!only_interim(
            &[&cont[..], b"HTTP/1.1 413 Payload Too Large\r\n\r\n"].concat(),
            false
        ));
        assert!(!only_interim(&[&cont[..], b"HTTP/1.1 4"].concat(), false));
        assert!(!only_interim(b"HTTP/1.1 ", false));
        assert!(!only_interim(b"H", false));
        assert!(!only_interim(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n",
            false
        ));
        assert!(!only_interim(b"garbage\r\n\r\n", false));
        // A peek that filled up mid-head proves nothing.
        assert!(!only_interim(b"HTTP/1.1 103 Early Hints\r\nLink: <", true));
    }
}
