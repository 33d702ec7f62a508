//! The CPU work of one proxied request without the IO: parse the request
//! head, route it (Host identification, the comparison config's dtab, an
//! `l5d-dtab` override on every request, the shard's route cache), rewrite
//! the head for the upstream, parse the upstream's response head and
//! rewrite it for the client. N times, for counting instructions under
//! callgrind:
//!
//! `valgrind --tool=callgrind target/release/examples/request_cost 20000`,
//! minus the same with 10000, divided by 10,000.
//!
//! Unlike a networked proxy under callgrind, whose event loop turns a
//! different number of times per run (a read that finds no data yet costs
//! a retry), this count repeats exactly, so `loadtest/tier0-gate.sh` can
//! hold each commit to its parent within 2%. `OVERRIDE=0` leaves the
//! `l5d-dtab` header out.

use switchyard::config::{Config, Trust};
use switchyard::http1::request::{RequestHead, parse_request_into};
use switchyard::http1::response::{ResponseHead, parse_response_into};
use switchyard::proxy::rewrite::{self, ClientFraming};
use switchyard::proxy::route::{Outstanding, Rng, RouteCache, RouteCx, route};
use switchyard::routing::GlobalNamer;
use switchyard::routing::snapshot::Snapshot;
use switchyard::telemetry::ListenerMetrics;

const CONFIG: &str = include_str!("../loadtest/peers/switchyard.yaml");

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let with_override = std::env::var("OVERRIDE").map_or(true, |v| v != "0");
    let config = Config::from_yaml(CONFIG).expect("the comparison config");
    let router = config.routers[0].clone();
    let server = router.servers[0].clone();
    let request: &[u8] = if with_override {
        b"GET / HTTP/1.1\r\nHost: bench\r\nUser-Agent: switchyard-load\r\nAccept: */*\r\nl5d-dtab: /host/bench => /srv/bench-v2;\r\n\r\n"
    } else {
        b"GET / HTTP/1.1\r\nHost: bench\r\nUser-Agent: switchyard-load\r\nAccept: */*\r\n\r\n"
    };
    let response: &[u8] = b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Fri, 27 Nov 2026 19:00:00 GMT\r\nContent-Type: text/plain\r\nContent-Length: 6\r\nConnection: keep-alive\r\n\r\nhello\n";
    let snapshot = Snapshot::default();
    let global = GlobalNamer::new();
    let cache = RouteCache::default();
    let outstanding = Outstanding::default();
    let metrics = ListenerMetrics::default();
    let cx = RouteCx {
        router: &router,
        server: &server,
        snapshot: &snapshot,
        global: &global,
        cache: &cache,
        outstanding: &outstanding,
        metrics: Some(&metrics),
    };
    let mut rng = Rng::new(7);
    let peer = "127.0.0.1".parse().expect("ip");
    let mut out = Vec::with_capacity(2048);
    let mut total = 0usize;
    // As a connection does: each head parsed into the same one.
    let mut head = RequestHead::default();
    let mut resp = ResponseHead::default();
    for _ in 0..n {
        let mut scanned = 0;
        let complete = parse_request_into(
            std::hint::black_box(request),
            &mut scanned,
            &router.limits,
            &mut head,
        )
        .expect("valid");
        assert!(complete);
        let routed = route(&cx, peer, &head, request, &mut rng).expect("routed");
        rewrite::request_head(&head, request, &routed, Trust::Mesh, peer, &mut out);
        total += out.len();
        let complete =
            parse_response_into(std::hint::black_box(response), false, &mut resp).expect("valid");
        assert!(complete);
        rewrite::response_head(
            &resp,
            response,
            ClientFraming::Length(6),
            Trust::Mesh,
            false,
            1,
            &mut out,
        );
        total += out.len();
    }
    println!("{n} requests, {total} bytes written");
}
