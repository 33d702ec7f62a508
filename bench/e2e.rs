//! End-to-end over loopback, in one process: a keep-alive request through
//! a one-shard Switchyard to a trivial upstream, against the same request
//! sent to the upstream directly. The difference is what the proxy adds
//! per request (on this machine, client, proxy and upstream share 2 cores,
//! so the absolute figures include cross-core wake-ups; compare the two).
//!
//! Run with `cargo bench --bench e2e`.

use criterion::{Criterion, criterion_group, criterion_main};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};

const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nhello\n";

fn upstream() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let _ = s.set_nodelay(true);
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                let mut pending = Vec::new();
                loop {
                    let n = match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    pending.extend_from_slice(&buf[..n]);
                    while let Some(i) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                        pending.drain(..i + 4);
                        if s.write_all(RESPONSE).is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    addr
}

fn round_trip(c: &mut TcpStream, req: &[u8], buf: &mut [u8]) {
    c.write_all(req).expect("write");
    let mut got = 0;
    let mut seen = Vec::new();
    while !seen.ends_with(b"hello\n") {
        let n = c.read(buf).expect("read");
        assert!(n > 0, "closed");
        got += n;
        seen.extend_from_slice(&buf[..n]);
    }
    std::hint::black_box(got);
}

fn bench_e2e(c: &mut Criterion) {
    let up = upstream();
    let yaml = format!(
        "runtime:\n  shards: 1\nrouters:\n- protocol: http\n  label: bench\n  dtab: |\n    /srv => /$/inet/127.0.0.1/{};\n    /svc => /srv;\n  servers:\n  - port: 0\n",
        up.port()
    );
    let config = switchyard::config::Config::from_yaml(&yaml).expect("config");
    let running =
        switchyard::runtime::start(config, switchyard::config::DriverChoice::Auto).expect("start");
    let proxy = running.listeners[0].1;
    let mut buf = vec![0u8; 8192];
    let plain: &[u8] = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n";
    let with_override: &[u8] =
        b"GET / HTTP/1.1\r\nHost: bench\r\nl5d-dtab: /svc/bench => /srv;\r\n\r\n";
    let mut group = c.benchmark_group("loopback round trip");
    let mut direct = TcpStream::connect(up).expect("connect");
    direct.set_nodelay(true).expect("nodelay");
    group.bench_function("direct", |b| {
        b.iter(|| round_trip(&mut direct, plain, &mut buf))
    });
    let mut via = TcpStream::connect(proxy).expect("connect");
    via.set_nodelay(true).expect("nodelay");
    group.bench_function(format!("switchyard ({})", running.driver), |b| {
        b.iter(|| round_trip(&mut via, plain, &mut buf))
    });
    group.bench_function(
        format!("switchyard with l5d-dtab ({})", running.driver),
        |b| b.iter(|| round_trip(&mut via, with_override, &mut buf)),
    );
    group.finish();
    drop(via);
    running.shutdown();
}

criterion_group!(benches, bench_e2e);
criterion_main!(benches);
