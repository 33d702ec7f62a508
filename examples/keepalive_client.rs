//! Sends exactly N requests on one keep-alive connection and exits: the
//! fixed workload for counting a proxy's instructions per request under
//! callgrind (`loadtest/callgrind-metrics.sh`).
//!
//! `keepalive_client ADDR N [HOST [HEADER...]]`, each HEADER a whole
//! `Name: value` line (e.g. an `l5d-dtab`).

use std::io::{Read, Write};

fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().expect("address");
    let n: usize = args.next().and_then(|a| a.parse().ok()).expect("count");
    let host = args.next().unwrap_or_else(|| "bench".into());
    let extra: String = args.map(|h| format!("{h}\r\n")).collect();
    let mut s = std::net::TcpStream::connect(&addr).expect("connect");
    s.set_nodelay(true).expect("nodelay");
    let req = format!("GET / HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n");
    let mut buf = vec![0u8; 16 * 1024];
    for _ in 0..n {
        s.write_all(req.as_bytes()).expect("write");
        // The upstream answers with a fixed 6-byte body ending in "\n".
        let mut got = Vec::new();
        while !(got.windows(4).any(|w| w == b"\r\n\r\n") && got.ends_with(b"\n") && got.len() > 4) {
            let k = s.read(&mut buf).expect("read");
            assert!(k > 0, "closed");
            got.extend_from_slice(&buf[..k]);
        }
    }
}
