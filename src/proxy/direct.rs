//! Writes sent with a plain non-blocking `send` on an io_uring shard that
//! serves one client connection.
//!
//! On io_uring a write is an operation that completes inside the next
//! `io_uring_enter`. A socket write finishes there at once, so the enter
//! returns without waiting for the peer. At low concurrency that is a park
//! of the shard (a kernel entry, reaping a completion, waking and polling
//! the task again) per write, two per request. A direct `send` costs one
//! syscall and no park. With more connections, one enter takes many
//! connections' writes together, and a syscall per write would cost more.
//! So writes go direct only while the shard has at most
//! [`DIRECT_SEND_CONNECTIONS_MAX`] client connections open. On epoll,
//! monoio already sends at once.
//!
//! What a direct send must not overtake: an operation dropped unfinished
//! (a read that timed out, such as the wait for `100 Continue`) is
//! cancelled by an entry monoio queues for the next `io_uring_enter`.
//! Until then the read is still armed in the kernel. A direct send that
//! went out first could draw the peer's answer into that read, whose buffer
//! is then dropped, and the answer would be lost. So each abandoned
//! operation is counted ([`abandoned`]), and writes go through the ring
//! until a ring write queued after the last such cancel has completed
//! ([`RingWrite`]). The submission queue is in order, so that write's
//! completion proves the cancels ahead of it reached the kernel.

use monoio::net::TcpStream;
use std::cell::Cell;
use std::os::fd::AsRawFd as _;

/// The most client connections a shard may have open for its writes to go
/// direct (see the module's documentation).
pub const DIRECT_SEND_CONNECTIONS_MAX: usize = 1;

struct State {
    /// This thread runs an io_uring shard.
    uring: Cell<bool>,
    /// Client connections open on this shard.
    open: Cell<usize>,
    /// Operations dropped unfinished so far.
    abandoned: Cell<u64>,
    /// Of those, how many cancels are known to have reached the kernel.
    proven: Cell<u64>,
}

thread_local! {
    static STATE: State = const {
        State {
            uring: Cell::new(false),
            open: Cell::new(0),
            abandoned: Cell::new(0),
            proven: Cell::new(0),
        }
    };
}

/// Says which driver this thread's shard runs on, at the shard's start.
pub fn start_shard(uring: bool) {
    STATE.with(|s| {
        s.uring.set(uring);
        s.open.set(0);
        s.abandoned.set(0);
        s.proven.set(0);
    });
}

/// The shard's count of open client connections, whenever it changes.
pub fn connections(open: usize) {
    STATE.with(|s| s.open.set(open));
}

/// An operation was dropped unfinished: its cancel waits for the next
/// `io_uring_enter`. Called by whoever drops it: every read and write on a
/// shard's sockets runs under a `Deadline` (`proxy::session`), and each
/// one that stops early ends in `settle_read` or `write_span`.
#[cold]
#[inline(never)]
pub fn abandoned() {
    STATE.with(|s| s.abandoned.set(s.abandoned.get() + 1));
}

/// Whether this thread's shard runs on io_uring: elsewhere writes need
/// none of this module (one load per write on epoll).
#[inline]
pub fn on_uring() -> bool {
    STATE.with(|s| s.uring.get())
}

/// Whether a write now may go direct.
#[inline]
fn allowed() -> bool {
    STATE.with(|s| {
        s.uring.get()
            && s.open.get() <= DIRECT_SEND_CONNECTIONS_MAX
            && s.proven.get() == s.abandoned.get()
    })
}

/// A ring write about to be queued: what its completion will prove.
pub struct RingWrite(u64);

impl RingWrite {
    /// Taken before the write's operation is made, so every cancel counted
    /// so far is ahead of it in the submission queue.
    #[inline]
    pub fn before() -> RingWrite {
        RingWrite(STATE.with(|s| s.abandoned.get()))
    }

    /// The write completed: the cancels it was queued behind were
    /// submitted.
    #[inline]
    pub fn completed(self) {
        STATE.with(|s| {
            if self.0 > s.proven.get() {
                s.proven.set(self.0);
            }
        });
    }
}

/// What a direct send did.
pub enum Sent {
    /// Not tried (the shard writes through its ring now), or the socket
    /// took nothing without blocking: write through the ring.
    Ring,
    /// This many bytes went out, at least one; any rest goes through the
    /// ring.
    Bytes(usize),
    /// The connection failed (reset, closed for writing).
    Failed,
}

/// Sends what the socket takes of `bytes` without blocking, where a direct
/// send is allowed now.
#[allow(unsafe_code)]
#[inline]
pub fn send(stream: &TcpStream, bytes: &[u8]) -> Sent {
    if bytes.is_empty() || !allowed() {
        return Sent::Ring;
    }
    // SAFETY: the fd is owned by `stream` and open for the duration of the
    // call; `bytes` is valid for reads of its length; MSG_DONTWAIT never
    // blocks, and MSG_NOSIGNAL turns a closed peer into EPIPE, not SIGPIPE.
    let n = unsafe {
        libc::send(
            stream.as_raw_fd(),
            bytes.as_ptr().cast(),
            bytes.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    if n > 0 {
        return Sent::Bytes(n as usize);
    }
    match std::io::Error::last_os_error().raw_os_error() {
        // Full, or interrupted before any byte went: the ring waits for room.
        Some(libc::EAGAIN | libc::EINTR) if n < 0 => Sent::Ring,
        // Zero bytes taken for a non-empty send, or an error.
        _ => Sent::Failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_only_on_uring_with_one_connection_and_every_cancel_proven() {
        start_shard(false);
        connections(1);
        assert!(!allowed(), "epoll shards send through their driver");
        start_shard(true);
        connections(1);
        assert!(allowed());
        connections(2);
        assert!(!allowed(), "more connections share the ring's entries");
        connections(0);
        assert!(allowed());

        // A write queued before an abandoned operation proves nothing of it.
        let early = RingWrite::before();
        abandoned();
        assert!(!allowed());
        early.completed();
        assert!(!allowed(), "queued ahead of the cancel: not proof");
        // One queued after it is.
        let late = RingWrite::before();
        abandoned();
        late.completed();
        assert!(!allowed(), "a second cancel came after it");
        let last = RingWrite::before();
        last.completed();
        assert!(allowed());
        // An older write completing later does not undo newer proof.
        let stale = RingWrite(0);
        stale.completed();
        assert!(allowed());
        start_shard(false);
    }
}
