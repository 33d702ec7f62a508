//! Runs the request-head path (parse, check, rewrite) N times, for counting
//! instructions under callgrind, which is deterministic where wall-clock
//! timings on a shared VM are not:
//!
//! `valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out \
//!    target/release/examples/head_cost 100000`
//! then divide the total instructions (`callgrind_annotate`) by N.

use switchyard::config::Trust;
use switchyard::http1::request::{RequestHead, RequestLimits, parse_request_into};
use switchyard::proxy::rewrite;
use switchyard::proxy::route::{RouteEntry, Routed};
use switchyard::routing::{Addr, Bound, BoundLeaf, Dtab, Endpoint, Lookup, NameTree, Path};

const REQUEST: &[u8] = b"GET /api/v1/users?id=42 HTTP/1.1\r\n\
Host: www.hello.world\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0\r\n\
Accept: text/html,application/xhtml+xml\r\n\
Accept-Encoding: gzip, deflate, br\r\n\
Accept-Language: en-US,en;q=0.5\r\n\
Connection: keep-alive\r\n\
Cookie: session=8f14e45fceea167a5a36dedd4bea2543\r\n\
Referer: http://www.hello.world/\r\n\
X-Request-Id: 9b2c4e1a-77f0-4a5e-9d8c-1f2e3d4c5b6a\r\n\
Cache-Control: no-cache\r\n\r\n";

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let limits = RequestLimits::default();
    let routed = Routed {
        addr: "10.0.0.7:7777".parse().expect("addr"),
        entry: std::rc::Rc::new(RouteEntry::new(
            &Path::read("/svc/www.hello.world").expect("path"),
            &Dtab::empty(),
            Lookup::Ok(NameTree::Leaf(BoundLeaf {
                bound: Bound {
                    id: Path::read("/#/io.l5d.k8s/default/http/hello").expect("path"),
                    residual: Path::empty(),
                    addr: Addr::Bound(std::sync::Arc::from(vec![Endpoint::new("10.0.0.7", 7777)])),
                },
                weight: None,
            })),
            1,
        )),
        leaf: 0,
        consume_from: None,
        drop_header: None,
        request_id: 7,
    };
    let peer = "192.0.2.1".parse().expect("ip");
    let mut out = Vec::with_capacity(2048);
    let mut total = 0usize;
    // As a connection does: every head parsed into the same one.
    let mut head = RequestHead::default();
    for _ in 0..n {
        let mut scanned = 0;
        let complete = parse_request_into(
            std::hint::black_box(REQUEST),
            &mut scanned,
            &limits,
            &mut head,
        )
        .expect("valid");
        assert!(complete);
        rewrite::request_head(&head, REQUEST, &routed, Trust::Mesh, peer, &mut out);
        total += out.len();
    }
    println!("{n} iterations, {total} bytes written");
}
