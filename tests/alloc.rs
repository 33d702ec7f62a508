//! Heap allocations per request on the shards, in steady state on a
//! keep-alive connection, counted by a global allocator that attributes
//! each allocation to the thread making it.
//!
//! Prints `shard allocations per request: N` and fails if N exceeds the
//! budget below. The budget is today's count, not zero: every request binds
//! its name afresh, and the bind allocates four times (the boxed bound name,
//! and for a `/$/inet` leaf its endpoint list, the list's shared handle and
//! the host string). The per-shard route cache of the router issue serves
//! repeated names without binding, which removes them.

#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};

/// Allocations the shards may make per proxied request.
const SHARD_ALLOCATIONS_PER_REQUEST_MAX: f64 = 0.0;

static SHARD_ALLOCS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// 0: not known yet, 1: a shard thread, 2: another thread, 3: finding out.
    static KIND: Cell<u8> = const { Cell::new(0) };
}

struct Counting;

fn on_shard() -> bool {
    KIND.with(|k| match k.get() {
        1 => true,
        0 => {
            k.set(3);
            let shard = std::thread::current()
                .name()
                .is_some_and(|n| n.starts_with("shard-"));
            k.set(if shard { 1 } else { 2 });
            shard
        }
        _ => false,
    })
}

// SAFETY: delegates every call to the system allocator unchanged; the
// counting touches only an atomic and a thread-local cell.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if on_shard() {
            SHARD_ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if on_shard() {
            SHARD_ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// A keep-alive upstream answering every request with the same response.
fn upstream() -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let mut pending = Vec::new();
                loop {
                    let n = match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    pending.extend_from_slice(&buf[..n]);
                    while let Some(i) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                        pending.drain(..i + 4);
                        if s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nworld")
                            .is_err()
                        {
                            return;
                        }
                    }
                }
            });
        }
    });
    addr
}

fn request(c: &mut TcpStream, buf: &mut [u8]) {
    c.write_all(b"GET / HTTP/1.1\r\nHost: web\r\nUser-Agent: alloc-test\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    while !got.ends_with(b"world") {
        let n = c.read(buf).unwrap();
        assert!(n > 0, "proxy closed");
        got.extend_from_slice(&buf[..n]);
    }
}

#[test]
fn steady_state_allocations_per_request() {
    let up = upstream();
    let yaml = format!(
        "runtime:\n  shards: 1\nrouters:\n- protocol: http\n  label: out\n  dtab: /svc => /$/inet/127.0.0.1/{};\n  servers:\n  - port: 0\n",
        up.port()
    );
    let config = switchyard::config::Config::from_yaml(&yaml).unwrap();
    let running =
        switchyard::runtime::start(config, switchyard::config::DriverChoice::Auto).unwrap();
    let addr = running.listeners[0].1;
    let mut c = TcpStream::connect(addr).unwrap();
    let mut buf = vec![0u8; 4096];
    for _ in 0..500 {
        request(&mut c, &mut buf);
    }
    let before = SHARD_ALLOCS.load(Ordering::Relaxed);
    let n = 2000;
    for _ in 0..n {
        request(&mut c, &mut buf);
    }
    let per_request = (SHARD_ALLOCS.load(Ordering::Relaxed) - before) as f64 / n as f64;
    println!(
        "shard allocations per request: {per_request:.2} (driver {})",
        running.driver
    );
    drop(c);
    running.shutdown();
    assert!(
        per_request <= SHARD_ALLOCATIONS_PER_REQUEST_MAX,
        "{per_request:.2} allocations per request on the shard, budget {SHARD_ALLOCATIONS_PER_REQUEST_MAX}"
    );
}
