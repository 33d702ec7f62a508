//! The data plane over real sockets, under each IO driver.

use crate::support::{Client, Proxy, Reply, Response, Upstream, drivers, get};
use std::sync::atomic::Ordering;
use std::time::Duration;

fn mesh_config(upstream: &Upstream, extra: &str) -> String {
    format!(
        "routers:\n- protocol: http\n  label: out\n  dtab: |\n    /svc => /$/inet/127.0.0.1/{};\n  servers:\n  - port: 0\n{extra}",
        upstream.addr.port()
    )
}

#[test]
fn forwards_and_keeps_alive() {
    for driver in drivers() {
        let up = Upstream::start(Reply::Describe("up"));
        let px = Proxy::start(&mesh_config(&up, ""), driver);
        assert_eq!(px.driver, driver);
        let mut c = Client::connect(px.addr("out"));
        for path in ["/one", "/two?x=1"] {
            c.send(
                format!("GET {path} HTTP/1.1\r\nHost: web\r\nX-Custom:  keep me \r\n\r\n")
                    .as_bytes(),
            );
            let r = c.response().expect("response");
            assert_eq!(r.status, 200, "{driver}");
            assert!(
                r.text().starts_with(&format!("up: GET {path}")),
                "{}",
                r.text()
            );
            assert!(
                r.text().contains("l5d-dst-service=/svc/web"),
                "{}",
                r.text()
            );
            assert!(
                r.text().contains("l5d-dst-client=/$/inet/127.0.0.1/"),
                "{}",
                r.text()
            );
        }
        let seen = up.all_text();
        assert_eq!(
            up.connections.load(std::sync::atomic::Ordering::Relaxed),
            1,
            "upstream connection reused"
        );
        // Forwarded byte-exact, separator included; only the trailing
        // whitespace of the value is dropped.
        assert!(seen.contains("X-Custom:  keep me\r\n"), "{seen}");
        assert!(seen.contains("Via: 1.1 switchyard\r\n"), "{seen}");
    }
}

#[test]
fn chunked_both_ways_and_pipelining() {
    for driver in drivers() {
        let up = Upstream::start(Reply::EchoChunked);
        let px = Proxy::start(&mesh_config(&up, ""), driver);
        let mut c = Client::connect(px.addr("out"));
        // Two pipelined requests in one write: a chunked one (with an
        // extension, which is dropped) and one with Content-Length.
        c.send(
            b"POST /a HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n\
              POST /b HTTP/1.1\r\nHost: web\r\nContent-Length: 3\r\n\r\nabc",
        );
        let r1 = c.response().expect("first");
        assert_eq!(r1.text(), "hello world", "{driver}");
        assert_eq!(r1.header("transfer-encoding"), Some("chunked"));
        let r2 = c.response().expect("second");
        assert_eq!(r2.text(), "abc");
        let seen = up.all_text();
        assert!(
            !seen.contains("ext=1"),
            "extensions are not forwarded: {seen}"
        );
        assert!(
            !seen.contains("X-Trailer"),
            "trailers are not forwarded: {seen}"
        );
    }
}

#[test]
fn overrides_on_mesh_listeners() {
    for driver in drivers() {
        let v1 = Upstream::start(Reply::Describe("v1"));
        let v2 = Upstream::start(Reply::Describe("v2"));
        let yaml = format!(
            "routers:\n- protocol: http\n  label: out\n  dtab: |\n    /srv/v1 => /$/inet/127.0.0.1/{};\n    /srv/v2 => /$/inet/127.0.0.1/{};\n    /host/world => /srv/v1;\n    /svc => /host;\n  servers:\n  - port: 0\n",
            v1.addr.port(),
            v2.addr.port()
        );
        let px = Proxy::start(&yaml, driver);
        let a = px.addr("out");
        assert!(
            get(a, "GET / HTTP/1.1\r\nHost: world\r\n\r\n")
                .text()
                .starts_with("v1:")
        );
        let r = get(
            a,
            "GET / HTTP/1.1\r\nHost: world\r\nl5d-dtab: /host/world => /srv/v2;\r\n\r\n",
        );
        assert!(r.text().starts_with("v2:"), "{}", r.text());
        // The override travels on as canonical l5d-ctx-dtab; l5d-dtab does not.
        assert!(
            r.text().contains("l5d-ctx-dtab=/host/world=>/srv/v2"),
            "{}",
            r.text()
        );
        assert!(
            !v2.all_text().to_ascii_lowercase().contains("l5d-dtab:"),
            "{}",
            v2.all_text()
        );
        // Context from an earlier hop is honoured too.
        let r = get(
            a,
            "GET / HTTP/1.1\r\nHost: world\r\nl5d-ctx-dtab: /host/world=>/srv/v2\r\n\r\n",
        );
        assert!(r.text().starts_with("v2:"), "{}", r.text());
        // A malformed override is a 400 with l5d-err, and the connection
        // stays usable.
        let mut c = Client::connect(a);
        c.send(b"GET / HTTP/1.1\r\nHost: world\r\nl5d-dtab: /a=>/b,/c=>/d\r\n\r\n");
        let r = c.response().unwrap();
        assert_eq!(r.status, 400);
        assert!(r.header("l5d-err").is_some());
        c.send(b"GET / HTTP/1.1\r\nHost: world\r\n\r\n");
        assert!(c.response().unwrap().text().starts_with("v1:"));
    }
}

#[test]
fn edge_listeners_strip_routing_headers() {
    let up = Upstream::start(Reply::Describe("up"));
    let yaml = format!(
        "routers:\n- protocol: http\n  label: edge\n  dtab: /svc => /$/inet/127.0.0.1/{};\n  servers:\n  - port: 0\n    trust: edge\n",
        up.addr.port()
    );
    for driver in drivers() {
        let px = Proxy::start(&yaml, driver);
        let r = get(
            px.addr("edge"),
            "GET / HTTP/1.1\r\nHost: web\r\nl5d-dtab: /svc=>/$/inet/127.0.0.1/1\r\nL5D-CTX-DTAB: /a=>/b\r\n\
             l5d-ctx-trace: x\r\nDtab-Local: /c=>/d\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n",
        );
        assert_eq!(r.status, 200, "the override was not applied");
        let seen = up.all_text().to_ascii_lowercase();
        assert!(
            !seen.contains("l5d-dtab") && !seen.contains("l5d-ctx") && !seen.contains("dtab-local"),
            "{seen}"
        );
        assert!(!seen.contains("6.6.6.6"), "{seen}");
        assert!(seen.contains("x-forwarded-for: 127.0.0.1"), "{seen}");
    }
}

#[test]
fn an_h2c_upgrade_offer_is_dropped_and_a_websocket_one_refused() {
    for driver in drivers() {
        let up = Upstream::start(Reply::Describe("up"));
        let px = Proxy::start(&mesh_config(&up, ""), driver);
        let mut c = Client::connect(px.addr("out"));
        // What `curl --http2 http://...` sends: the client carries on in
        // HTTP/1.1 when the answer is not a 101, so the offer is dropped and
        // the request forwarded, on a connection that stays open.
        for _ in 0..2 {
            c.send(
                b"GET /h2c HTTP/1.1\r\nHost: web\r\nUpgrade: h2c\r\n\
                  HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\
                  Connection: Upgrade, HTTP2-Settings\r\nX-Kept: 1\r\n\r\n",
            );
            let r = c.response().expect("response");
            assert_eq!(r.status, 200, "{driver}: {}", r.text());
        }
        let seen = up.all_text().to_ascii_lowercase();
        assert!(
            !seen.contains("upgrade") && !seen.contains("http2-settings"),
            "{driver}: {seen}"
        );
        assert_eq!(seen.matches("x-kept: 1\r\n").count(), 2, "{driver}: {seen}");
        // A WebSocket handshake needs a tunnel, which is not opened.
        let r = get(
            px.addr("out"),
            "GET /ws HTTP/1.1\r\nHost: web\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        );
        assert_eq!(r.status, 400, "{driver}");
        assert!(
            r.header("l5d-err").is_some_and(|e| e.contains("upgrade")),
            "{driver}: {:?}",
            r.header("l5d-err")
        );
        assert!(!up.all_text().contains("/ws"), "{driver}");
    }
}

#[test]
fn errors_map_to_linkerd_statuses() {
    for driver in drivers() {
        let up = Upstream::start(Reply::Fixed("ok"));
        let yaml = format!(
            "routers:\n- protocol: http\n  label: out\n  dtab: |\n    /svc/web => /$/inet/127.0.0.1/{};\n    /svc/dead => /$/inet/127.0.0.1/1;\n    /svc/loop => /svc/loop/x;\n  servers:\n  - port: 0\n",
            up.addr.port()
        );
        let px = Proxy::start(&yaml, driver);
        let a = px.addr("out");
        let r = get(a, "GET / HTTP/1.1\r\nHost: nowhere\r\n\r\n");
        assert_eq!(r.status, 502, "{driver}");
        assert_eq!(r.header("l5d-retryable"), Some("true"));
        assert_eq!(get(a, "GET / HTTP/1.1\r\nHost: dead\r\n\r\n").status, 502);
        assert_eq!(get(a, "GET / HTTP/1.1\r\nHost: loop\r\n\r\n").status, 502);
        assert_eq!(get(a, "GET / HTTP/1.1\r\nHost:\r\n\r\n").status, 400);
        let mut c = Client::connect(a);
        c.send(b"GET / HTTP/1.1\r\nHost: web\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
        let r = c.response().unwrap();
        assert_eq!(r.status, 400);
        assert_eq!(r.header("connection"), Some("close"));
        assert!(c.closed_within(Duration::from_secs(5)));
        let long = format!("GET /{} HTTP/1.1\r\nHost: web\r\n\r\n", "a".repeat(9000));
        assert_eq!(get(a, &long).status, 414);
        assert!(
            up.all_text().is_empty(),
            "nothing reached the upstream: {}",
            up.all_text()
        );
    }
}

#[test]
fn slow_heads_time_out() {
    let up = Upstream::start(Reply::Fixed("ok"));
    let extra = "  timeouts:\n    headerReadTimeoutMs: 200\n    idleTimeoutMs: 300\n";
    for driver in drivers() {
        let px = Proxy::start(&mesh_config(&up, extra), driver);
        // Trickling does not extend the header deadline.
        let mut c = Client::connect(px.addr("out"));
        for b in b"GET / HTTP/1.1\r\nHost: w" {
            if c.stream.write_all_check(&[*b]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(30));
        }
        // Closed by the header deadline, not the (longer) trickle.
        assert!(c.closed_within(Duration::from_secs(3)), "{driver}");
        // An idle keep-alive connection is closed.
        let mut c = Client::connect(px.addr("out"));
        c.send(b"GET / HTTP/1.1\r\nHost: web\r\n\r\n");
        assert_eq!(c.response().unwrap().status, 200);
        assert!(c.closed_within(Duration::from_secs(3)));
    }
}

trait WriteCheck {
    fn write_all_check(&mut self, b: &[u8]) -> std::io::Result<()>;
}

impl WriteCheck for std::net::TcpStream {
    fn write_all_check(&mut self, b: &[u8]) -> std::io::Result<()> {
        std::io::Write::write_all(self, b)
    }
}

#[test]
fn drains_on_sigterm() {
    for driver in drivers() {
        let up = Upstream::start(Reply::Slow(Duration::from_millis(400), "slow ok"));
        let mut px = Proxy::start(&mesh_config(&up, ""), driver);
        let a = px.addr("out");
        let mut idle = Client::connect(a);
        idle.send(b"GET / HTTP/1.1\r\nHost: web\r\n\r\n");
        let first = idle.response();
        assert_eq!(first.map(|r| r.status), Some(200), "{driver}: {}", px.log());
        let mut busy = Client::connect(a);
        busy.send(b"GET / HTTP/1.1\r\nHost: web\r\n\r\n");
        std::thread::sleep(Duration::from_millis(100));
        let stopper = std::thread::spawn(move || px.stop());
        // The request in flight completes; the connection then closes.
        let r = busy.response().expect("in-flight request completes");
        assert_eq!(r.text(), "slow ok");
        assert!(
            idle.closed_within(Duration::from_secs(5)),
            "idle keep-alive connection closed"
        );
        assert_eq!(stopper.join().unwrap(), Some(0), "exit 0 after draining");
    }
}

#[test]
fn upstream_framing_is_checked() {
    for driver in drivers() {
        // Content-Length with Transfer-Encoding: chunked wins, the length is
        // dropped, and the connection is not reused.
        let up = Upstream::start(Reply::Raw(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 30\r\n\r\n0\r\n\r\nResponse splitting attach",
        ));
        let px = Proxy::start(&mesh_config(&up, ""), driver);
        let mut c = Client::connect(px.addr("out"));
        c.send(b"GET / HTTP/1.1\r\nHost: web\r\n\r\n");
        let r = c.response().unwrap();
        assert_eq!(r.status, 200, "{driver}");
        assert!(r.body.is_empty());
        assert_eq!(r.header("content-length"), None);
        c.send(b"GET / HTTP/1.1\r\nHost: web\r\n\r\n");
        let _ = c.response();
        assert_eq!(
            up.connections.load(std::sync::atomic::Ordering::Relaxed),
            2,
            "not reused"
        );

        // Conflicting lengths: 502.
        let up = Upstream::start(Reply::Raw(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 10\r\n\r\nhello",
        ));
        let px = Proxy::start(&mesh_config(&up, ""), driver);
        let r = get(px.addr("out"), "GET / HTTP/1.1\r\nHost: web\r\n\r\n");
        assert_eq!(r.status, 502);
        assert!(r.header("l5d-err").is_some());
    }
}

#[test]
fn stale_pooled_connections_are_not_used() {
    for driver in drivers() {
        let up = Upstream::start(Reply::CloseAfter("ok"));
        let px = Proxy::start(&mesh_config(&up, ""), driver);
        for _ in 0..3 {
            let r = get(px.addr("out"), "GET / HTTP/1.1\r\nHost: web\r\n\r\n");
            assert_eq!(
                r.status, 200,
                "{driver}: a pooled connection the upstream closed was detected"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(up.connections.load(std::sync::atomic::Ordering::Relaxed), 3);
    }
}

#[test]
fn response_head_timeout_is_504() {
    let up = Upstream::start(Reply::Slow(Duration::from_millis(1500), "late"));
    let extra = "  timeouts:\n    responseHeadTimeoutMs: 200\n";
    for driver in drivers() {
        let px = Proxy::start(&mesh_config(&up, extra), driver);
        let r = get(px.addr("out"), "GET / HTTP/1.1\r\nHost: web\r\n\r\n");
        assert_eq!(r.status, 504, "{driver}");
        assert!(r.header("l5d-err").is_some());
    }
}

#[test]
fn connect_timeout_is_502() {
    // A listener that never accepts, with its one-slot queue already full:
    // further SYNs go unanswered and a connect hangs.
    let blackhole =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    blackhole
        .bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
    blackhole.listen(0).unwrap();
    let addr = blackhole.local_addr().unwrap().as_socket().unwrap();
    let _fillers: Vec<_> = (0..3)
        .filter_map(|_| {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)).ok()
        })
        .collect();
    let yaml = format!(
        "routers:\n- protocol: http\n  label: out\n  dtab: /svc => /$/inet/127.0.0.1/{};\n  servers:\n  - port: 0\n  timeouts:\n    connectTimeoutMs: 200\n",
        addr.port()
    );
    for driver in drivers() {
        let px = Proxy::start(&yaml, driver);
        let r = get(px.addr("out"), "GET / HTTP/1.1\r\nHost: web\r\n\r\n");
        assert_eq!(r.status, 502, "{driver}");
        assert_eq!(r.header("l5d-retryable"), Some("true"));
        assert_eq!(
            r.header("l5d-err"),
            Some("connection%20to%20upstream%20timed%20out")
        );
    }
}

#[test]
fn connections_per_shard_are_bounded() {
    let up = Upstream::start(Reply::Fixed("ok"));
    let yaml = format!(
        "runtime:\n  shards: 1\nrouters:\n- protocol: http\n  label: out\n  dtab: /svc => /$/inet/127.0.0.1/{};\n  servers:\n  - port: 0\n    connectionsMax: 2\n",
        up.addr.port()
    );
    for driver in drivers() {
        let px = Proxy::start(&yaml, driver);
        let a = px.addr("out");
        // N connections are served...
        let mut held: Vec<Client> = (0..2).map(|_| Client::connect(a)).collect();
        for c in &mut held {
            c.send(b"GET / HTTP/1.1\r\nHost: web\r\n\r\n");
            assert_eq!(c.response().unwrap().status, 200, "{driver}");
        }
        // ...and N+1 is refused cleanly.
        let mut extra = Client::connect(a);
        let r = extra.response().expect("a refusal");
        assert_eq!(r.status, 503);
        assert!(extra.closed_within(Duration::from_secs(2)));
        // Closing one frees its slot.
        drop(held.pop());
        std::thread::sleep(Duration::from_millis(100));
        let r = get(a, "GET / HTTP/1.1\r\nHost: web\r\n\r\n");
        assert_eq!(r.status, 200);
    }
}

#[test]
fn edge_override_policy_admits_only_what_it_allows() {
    let v1 = Upstream::start(Reply::Describe("v1"));
    let v2 = Upstream::start(Reply::Describe("v2"));
    let yaml = format!(
        "routers:\n- protocol: http\n  label: edge\n  dtab: |\n    /srv/world-v1 => /$/inet/127.0.0.1/{};\n    /srv/world-v2 => /$/inet/127.0.0.1/{};\n    /host/world => /srv/world-v1;\n    /svc => /host;\n  servers:\n  - port: 0\n    trust: edge\n    overridePolicy:\n      prefixes: [/host]\n      destinations: [/srv]\n      requireHeader: {{name: x-staging-key, value: s3cret}}\n",
        v1.addr.port(),
        v2.addr.port()
    );
    for driver in drivers() {
        let px = Proxy::start(&yaml, driver);
        let a = px.addr("edge");
        let req = |extra: &str| get(a, &format!("GET / HTTP/1.1\r\nHost: world\r\n{extra}\r\n"));
        // No override: the base dtab.
        assert!(req("").text().starts_with("v1:"), "{driver}");
        // The staging override with its credential: admitted, travels on as
        // l5d-ctx-dtab, and the credential is not forwarded.
        let r = req("x-staging-key: s3cret\r\nL5D-DTAB: /host/world => /srv/world-v2;\r\n");
        assert!(r.text().starts_with("v2:"), "{}", r.text());
        assert!(
            r.text().contains("l5d-ctx-dtab=/host/world=>/srv/world-v2"),
            "{}",
            r.text()
        );
        assert!(!v2.all_text().to_ascii_lowercase().contains("x-staging-key"));
        // Without the credential, or with a wrong one: 403.
        for extra in [
            "l5d-dtab: /host/world => /srv/world-v2\r\n",
            "x-staging-key: wrong\r\nl5d-dtab: /host/world => /srv/world-v2\r\n",
        ] {
            let r = req(extra);
            assert_eq!(r.status, 403, "{extra}");
            assert!(r.header("l5d-err").is_some());
        }
        // Bypass attempts, each with the credential: all refused.
        for extra in [
            "l5d-dtab: /host/world => /$/inet/127.0.0.1/1\r\n",
            "l5d-dtab: /host/world => /srv/world-v2; /svc => /$/inet/127.0.0.1/1\r\n",
            "l5d-dtab: /host/world => /srv/a & /$/inet/127.0.0.1/1\r\n",
            "l5d-dtab: /host/world => /srv/world-v2\r\nl5d-dtab: /svc/world => /$/inet/127.0.0.1/1\r\n",
            "l5d-dtab: /host/world => /\\x24/inet/127.0.0.1/1\r\n",
            "L5d-Dtab: /host/world => /#/io.l5d.fs/admin\r\n",
        ] {
            let r = req(&format!("x-staging-key: s3cret\r\n{extra}"));
            assert_eq!(r.status, 403, "{extra}: {}", r.text());
        }
        // A context header from outside is never read, even with the key.
        let r = req("x-staging-key: s3cret\r\nl5d-ctx-dtab: /host/world=>/srv/world-v2\r\n");
        assert!(r.text().starts_with("v1:"), "{}", r.text());
    }
}

#[test]
fn edge_strips_every_routing_header_variant() {
    let up = Upstream::start(Reply::Describe("up"));
    let yaml = format!(
        "routers:\n- protocol: http\n  label: edge\n  dtab: /svc => /$/inet/127.0.0.1/{};\n  servers:\n  - port: 0\n    trust: edge\n",
        up.addr.port()
    );
    let variants = [
        "l5d-dtab: /svc=>/$/inet/127.0.0.1/1",
        "L5D-DTAB: /svc=>/$/inet/127.0.0.1/1",
        "L5d-Dtab: /svc=>/$/inet/127.0.0.1/1",
        "l5d-ctx-dtab: /svc=>/$/inet/127.0.0.1/1",
        "L5D-CTX-DTAB: /svc=>/$/inet/127.0.0.1/1",
        "l5d-ctx-deadline: 0 0",
        "l5d-ctx-trace: AAAA",
        "L5D-CTX-SOMETHING-NEW: x",
        "l5d-dst-service: /svc/admin",
        "l5d-dst-client: /$/inet/127.0.0.1/1",
        "l5d-sample: 1.0",
        "l5d-reqid: 1234",
        "L5D-ERR: spoofed",
        "dtab-local: /svc=>/$/inet/127.0.0.1/1",
    ];
    for driver in drivers() {
        let px = Proxy::start(&yaml, driver);
        // Each alone, then all at once, each twice.
        let mut all = String::new();
        for v in variants {
            let r = get(
                px.addr("edge"),
                &format!("GET / HTTP/1.1\r\nHost: web\r\n{v}\r\n\r\n"),
            );
            assert_eq!(r.status, 200, "{driver} {v}");
            all.push_str(&format!("{v}\r\n{v}\r\n"));
        }
        let r = get(
            px.addr("edge"),
            &format!("GET / HTTP/1.1\r\nHost: web\r\n{all}\r\n"),
        );
        assert_eq!(r.status, 200);
        for req in up.requests() {
            for (name, value) in &req.headers {
                let n = name.to_ascii_lowercase();
                let ours = matches!(
                    n.as_str(),
                    "l5d-dst-service" | "l5d-dst-client" | "l5d-dst-residual" | "l5d-reqid"
                );
                assert!(
                    !n.starts_with("l5d-") || ours,
                    "{name}: {value} reached the upstream"
                );
                assert!(n != "dtab-local", "{name}: {value} reached the upstream");
            }
            assert_eq!(
                req.header("l5d-dst-service"),
                Some("/svc/web"),
                "our own value, not the client's"
            );
            assert_eq!(req.count("l5d-dst-service"), 1);
        }
    }
}

#[test]
fn http10_keep_alive_is_announced() {
    let up = Upstream::start(Reply::Fixed("ok"));
    for driver in drivers() {
        let px = Proxy::start(&mesh_config(&up, ""), driver);
        let mut c = Client::connect(px.addr("out"));
        for _ in 0..2 {
            c.send(b"GET / HTTP/1.0\r\nHost: web\r\nConnection: keep-alive\r\n\r\n");
            let r = c.response().expect("response");
            assert_eq!(r.status, 200, "{driver}");
            assert_eq!(r.header("connection"), Some("keep-alive"));
        }
        // Without the token, HTTP/1.0 closes after the response.
        c.send(b"GET / HTTP/1.0\r\nHost: web\r\n\r\n");
        let r = c.response().expect("response");
        assert_eq!(r.header("connection"), Some("close"));
        assert!(c.closed_within(Duration::from_secs(2)));
    }
}

/// A body of `n` numbered 16-byte lines, where a byte lost, doubled or out
/// of order shows; leaked, for an upstream's fixed reply.
fn numbered_lines(n: usize) -> &'static str {
    Box::leak(
        (0..n)
            .map(|i| format!("{:015x}\n", i))
            .collect::<String>()
            .into_boxed_str(),
    )
}

#[test]
fn bodies_larger_than_a_read_cross_intact_both_ways() {
    // 200 KiB: part of each body rides in the head's write, the rest is
    // relayed read by read; nothing may be lost, doubled or reordered.
    let big = numbered_lines(12_800);
    for driver in drivers() {
        let fixed = Upstream::start(Reply::Fixed(big));
        let echo = Upstream::start(Reply::EchoChunked);
        let yaml = format!(
            "routers:\n- protocol: http\n  label: out\n  dtab: |\n    /svc/big => /$/inet/127.0.0.1/{};\n    /svc/echo => /$/inet/127.0.0.1/{};\n  servers:\n  - port: 0\n",
            fixed.addr.port(),
            echo.addr.port()
        );
        let px = Proxy::start(&yaml, driver);
        let mut c = Client::connect(px.addr("out"));
        for _ in 0..2 {
            c.send(b"GET / HTTP/1.1\r\nHost: big\r\n\r\n");
            let r = c.response().expect("response");
            assert_eq!(r.status, 200);
            assert!(r.body == big.as_bytes(), "{driver}: response body differs");
        }
        // The request body in pieces: some with the head, the rest later.
        let head = format!(
            "POST /up HTTP/1.1\r\nHost: echo\r\nContent-Length: {}\r\n\r\n",
            big.len()
        );
        let mut first = head.into_bytes();
        first.extend_from_slice(&big.as_bytes()[..1000]);
        c.send(&first);
        std::thread::sleep(Duration::from_millis(30));
        c.send(&big.as_bytes()[1000..]);
        let r = c.response().expect("echo");
        assert_eq!(r.status, 200);
        assert!(r.body == big.as_bytes(), "{driver}: request body differs");
    }
}

/// A client that stops reading fills the socket buffers between it and
/// the proxy, so the proxy's writes are taken in part and wait: when the
/// client reads again, every byte arrives once and in order. 16 MiB is more
/// than loopback's send and receive buffers hold together (at most 4 and
/// 6 MiB with Linux's defaults).
#[test]
fn a_client_that_pauses_reading_gets_a_large_response_whole() {
    let big = numbered_lines(1_048_576);
    for driver in drivers() {
        let up = Upstream::start(Reply::Fixed(big));
        let px = Proxy::start(&mesh_config(&up, ""), driver);
        let mut c = Client::connect(px.addr("out"));
        c.send(b"GET / HTTP/1.1\r\nHost: web\r\n\r\n");
        std::thread::sleep(Duration::from_millis(300));
        let r = c.response().expect("response");
        assert_eq!(r.status, 200, "{driver}");
        assert!(r.body == big.as_bytes(), "{driver}: response body differs");
        // And the connection carries the next request.
        c.send(b"GET / HTTP/1.1\r\nHost: web\r\n\r\n");
        let r = c.response().expect("second response");
        assert!(r.body == big.as_bytes(), "{driver}: second body differs");
    }
}

#[test]
fn a_stale_connection_reused_at_once_is_retried_for_idempotent_requests() {
    // The upstream closes after every response without saying so. Reused
    // within the pool's no-peek window, the connection is dead: each GET is
    // retried once on a fresh connection.
    for driver in drivers() {
        let up = Upstream::start(Reply::CloseAfter("ok"));
        let px = Proxy::start(&mesh_config(&up, ""), driver);
        let mut c = Client::connect(px.addr("out"));
        for i in 0..5 {
            c.send(b"GET / HTTP/1.1\r\nHost: web\r\n\r\n");
            let r = c.response().expect("response");
            assert_eq!(r.status, 200, "{driver}: request {i}");
        }
        assert!(up.connections.load(std::sync::atomic::Ordering::Relaxed) >= 5);
    }
}

/// An upstream that never says `100 Continue` gets the body when the
/// proxy's wait for it ends, and its answer, sent as soon as the body is
/// in, reaches the client, round after round on one connection. The wait's
/// read is cancelled when it ends, and on io_uring the cancel reaches the
/// kernel only with the next submission: a body sent directly before it
/// could draw the answer into the cancelled read, which drops it (a 504
/// after the response timeout; see `proxy::direct`, which this checks).
#[test]
fn the_answer_to_a_body_sent_after_an_unanswered_expect_continue_arrives() {
    const ROUNDS: usize = 200;
    for driver in drivers() {
        let up = Upstream::start(Reply::EchoChunked);
        let timeouts =
            "  timeouts:\n    expectContinueTimeoutMs: 2\n    responseHeadTimeoutMs: 1000\n";
        let px = Proxy::start(&mesh_config(&up, timeouts), driver);
        let mut c = Client::connect(px.addr("out"));
        for round in 0..ROUNDS {
            c.send(
                b"POST / HTTP/1.1\r\nHost: web\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi",
            );
            let r = c.response().expect("the answer");
            assert_eq!(
                (r.status, r.text().as_str()),
                (200, "hi"),
                "{driver}, round {round}"
            );
        }
        assert_eq!(up.requests().len(), ROUNDS, "{driver}");
    }
}

/// An upstream that answers while the proxy is still waiting for the
/// client's body has not read that body: the body must not be written to
/// it afterwards, nor its connection reused, or the body (here a request
/// of its own) would reach it as the next request, ahead of another
/// client's. The proxy reads the body from the client and drops it, so
/// the client keeps its connection. The answer comes 50 ms after the head
/// and the body 200 ms after it, so the answer is in before the body,
/// every time.
#[test]
fn an_upstream_that_answers_before_the_body_never_gets_it() {
    for driver in drivers() {
        let up = Upstream::start(Reply::EarlyReject(Duration::from_millis(50)));
        let px = Proxy::start(&mesh_config(&up, ""), driver);
        let mut a = Client::connect(px.addr("out"));
        a.send(b"POST /upload HTTP/1.1\r\nHost: web\r\nContent-Length: 37\r\n\r\n");
        std::thread::sleep(Duration::from_millis(200));
        a.send(b"GET /admin HTTP/1.1\r\nHost: a.test\r\n\r\n");
        let ra = a.response().expect("A's response");
        assert_eq!(ra.status, 400, "{driver}");
        let mut b = Client::connect(px.addr("out"));
        b.send(b"GET /b HTTP/1.1\r\nHost: web\r\n\r\n");
        assert_eq!(b.response().expect("B's response").status, 400, "{driver}");
        // A's body (37 bytes, whatever they look like) was read and dropped,
        // so A's connection carries its next request.
        assert_kept(&mut a, &ra, driver);
        let seen = up.all_text();
        assert!(!seen.contains("GET /admin"), "{driver}: {seen:?}");
        assert!(seen.contains("GET /again"), "{driver}: {seen:?}");
        // The connection that took A's POST was never used again (B's
        // request and A's next went on another).
        let conns = up.received.lock().unwrap().clone();
        assert!(conns.len() >= 2, "{driver}: B on a fresh connection");
        let first = String::from_utf8_lossy(&conns[0]);
        assert!(
            first.starts_with("POST /upload ") && !first.contains("GET "),
            "{driver}: {first:?}"
        );
    }
}

fn has_close(r: &Response) -> bool {
    r.headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("connection") && v.eq_ignore_ascii_case("close"))
}

/// `r` kept the connection, and the next request on it is answered (by the
/// early-answering upstream: 400).
fn assert_kept(c: &mut Client, r: &Response, driver: &str) {
    assert!(!has_close(r), "{driver}: {:?}", r.headers);
    c.send(b"GET /again HTTP/1.1\r\nHost: web\r\n\r\n");
    let next = c.response().expect("the next response on the connection");
    assert_eq!(next.status, 400, "{driver}");
}

/// `r` said the connection closes, and it does.
fn assert_closed(c: &mut Client, r: &Response, driver: &str) {
    assert!(has_close(r), "{driver}: {:?}", r.headers);
    assert!(c.closed_within(Duration::from_secs(3)), "{driver}");
}

/// A chunked body answered early keeps its client's connection when all of
/// it is in hand (here it arrives whole, after the answer); a chunked body
/// whose end has not arrived closes it.
#[test]
fn an_early_response_to_a_chunked_body_keeps_the_client_when_the_body_is_whole() {
    for driver in drivers() {
        let up = Upstream::start(Reply::EarlyReject(Duration::from_millis(50)));
        let px = Proxy::start(&mesh_config(&up, ""), driver);
        let head = b"POST /upload HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\n\r\n";
        let mut a = Client::connect(px.addr("out"));
        a.send(head);
        std::thread::sleep(Duration::from_millis(200));
        a.send(b"5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n");
        let ra = a.response().expect("A's response");
        assert_eq!(ra.status, 400, "{driver}");
        assert_kept(&mut a, &ra, driver);

        let mut b = Client::connect(px.addr("out"));
        b.send(head);
        std::thread::sleep(Duration::from_millis(200));
        b.send(b"5\r\nhel");
        let rb = b.response().expect("B's response");
        assert_eq!(rb.status, 400, "{driver}");
        assert_closed(&mut b, &rb, driver);
        let seen = up.all_text();
        assert!(
            !seen.contains("hello") && !seen.contains("hel\r"),
            "{driver}: {seen:?}"
        );
        assert!(seen.contains("GET /again"), "{driver}: {seen:?}");
    }
}

/// After an early response, the proxy drops up to DISCARD_BODY_BYTES_MAX
/// of body still to come and keeps the client's connection; a client with
/// one byte more to send is told the connection closes, and it does.
#[test]
fn an_early_response_drops_up_to_the_discard_limit_and_closes_past_it() {
    let max = switchyard::limits::DISCARD_BODY_BYTES_MAX as usize;
    for driver in drivers() {
        let up = Upstream::start(Reply::EarlyReject(Duration::from_millis(50)));
        let px = Proxy::start(&mesh_config(&up, ""), driver);
        for n in [max, max + 1] {
            let mut a = Client::connect(px.addr("out"));
            a.send(
                format!("POST /upload HTTP/1.1\r\nHost: web\r\nContent-Length: {n}\r\n\r\n")
                    .as_bytes(),
            );
            std::thread::sleep(Duration::from_millis(200));
            a.send(&[b'x'; 1024]);
            let ra = a.response().expect("A's response");
            assert_eq!(ra.status, 400, "{driver}, {n}");
            if n == max {
                // The rest of the body, then the next request.
                a.send(&vec![b'x'; n - 1024]);
                assert_kept(&mut a, &ra, driver);
            } else {
                assert_closed(&mut a, &ra, driver);
            }
        }
        assert!(
            !up.all_text().contains("xxxx"),
            "{driver}: the upstream got body bytes"
        );
    }
}

/// An upstream may send 100 Continue (or 103 Early Hints) without being
/// asked and then read the body (RFC 9110 §15.2): that is not an early
/// answer. The body goes through whole, the interim heads are relayed
/// before the final one, and both connections are kept. The interim heads
/// come right after the request head, the body 200 ms later, so they are in
/// before the body, every time.
#[test]
fn an_unasked_interim_response_does_not_stop_the_body() {
    const INTERIM: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n";
    for driver in drivers() {
        let up = Upstream::start(Reply::InterimThenEcho(INTERIM));
        let px = Proxy::start(&mesh_config(&up, ""), driver);
        let mut c = Client::connect(px.addr("out"));
        for (head, body) in [
            (
                "POST /a HTTP/1.1\r\nHost: web\r\nContent-Length: 11\r\n\r\n",
                "hello world",
            ),
            (
                "POST /b HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\n\r\n",
                "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
            ),
        ] {
            c.send(head.as_bytes());
            std::thread::sleep(Duration::from_millis(200));
            c.send(body.as_bytes());
            let statuses: Vec<u16> = (0..2).map(|_| c.response().unwrap().status).collect();
            assert_eq!(statuses, [100, 103], "{driver}: {head}");
            let r = c.response().expect("a response");
            assert_eq!(r.status, 200, "{driver}: {head}");
            assert_eq!(r.text(), "hello world", "{driver}: {head}");
            assert!(!has_close(&r), "{driver}: {:?}", r.headers);
        }
        let seen = up.requests();
        assert_eq!(seen.len(), 2, "{driver}");
        assert!(seen.iter().all(|s| s.body == b"hello world"), "{driver}");
        // One upstream connection carried both: the exchange was clean.
        assert_eq!(up.connections.load(Ordering::Relaxed), 1, "{driver}");
    }
}

/// Interim responses go on to an HTTP/1.1 client ahead of the final one,
/// hop-by-hop headers removed (RFC 9110 §15.2), and never to an HTTP/1.0
/// client; a 101 nobody asked for is a bad response (502).
#[test]
fn interim_responses_are_relayed_to_http11_clients_only() {
    const RAW: &[u8] = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\nConnection: x-hint\r\nX-Hint: 1\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    for driver in drivers() {
        let up = Upstream::start(Reply::Raw(RAW));
        let px = Proxy::start(&mesh_config(&up, ""), driver);
        let mut c = Client::connect(px.addr("out"));
        for _ in 0..2 {
            c.send(b"GET / HTTP/1.1\r\nHost: web\r\n\r\n");
            let hint = c.response().expect("the 103");
            assert_eq!(hint.status, 103, "{driver}");
            assert_eq!(
                hint.header("link"),
                Some("</a.css>; rel=preload"),
                "{driver}"
            );
            assert_eq!(hint.header("connection"), None, "{driver}");
            assert_eq!(hint.header("x-hint"), None, "{driver}");
            let r = c.response().expect("the 200");
            assert_eq!((r.status, r.text().as_str()), (200, "ok"), "{driver}");
        }
        let mut c = Client::connect(px.addr("out"));
        c.send(b"GET / HTTP/1.0\r\nHost: web\r\n\r\n");
        let r = c.response().expect("the 200");
        assert_eq!((r.status, r.text().as_str()), (200, "ok"), "{driver}");

        // Waiting for 100 Continue, a 103 first is relayed, not taken for
        // the final answer.
        let up = Upstream::start(Reply::InterimThenEcho(
            b"HTTP/1.1 103 Early Hints\r\nLink: </b.js>\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n",
        ));
        let px = Proxy::start(&mesh_config(&up, ""), driver);
        let mut c = Client::connect(px.addr("out"));
        c.send(
            b"POST / HTTP/1.1\r\nHost: web\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n",
        );
        assert_eq!(c.response().expect("the 103").status, 103, "{driver}");
        assert_eq!(c.response().expect("the 100").status, 100, "{driver}");
        c.send(b"hi");
        let r = c.response().expect("the 200");
        assert_eq!((r.status, r.text().as_str()), (200, "hi"), "{driver}");

        let up = Upstream::start(Reply::Raw(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\nanything",
        ));
        let px = Proxy::start(&mesh_config(&up, ""), driver);
        let r = get(px.addr("out"), "GET / HTTP/1.1\r\nHost: web\r\n\r\n");
        assert_eq!(r.status, 502, "{driver}: {}", r.text());
    }
}

/// The proxy's own answers before a body goes upstream (no route, an
/// endpoint that refuses connections) keep the client's connection as an
/// early upstream answer does: a body with a length is read and dropped, up
/// to the discard limit still to come, and a chunked body whole in hand is
/// dropped; past the limit, or a chunked body still arriving, the
/// connection closes. Nothing of the dropped bodies reaches an upstream.
#[test]
fn the_proxys_own_errors_drop_the_body_and_keep_the_connection() {
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    for driver in drivers() {
        let up = Upstream::start(Reply::Describe("web"));
        let yaml = format!(
            "routers:\n- protocol: http\n  label: out\n  dtab: |\n    /svc/web => /$/inet/127.0.0.1/{};\n    /svc/dead => /$/inet/127.0.0.1/{dead};\n  servers:\n  - port: 0\n",
            up.addr.port()
        );
        let px = Proxy::start(&yaml, driver);
        let next_is_served = |c: &mut Client, r: &Response, what: &str| {
            assert!(!has_close(r), "{driver} {what}: {:?}", r.headers);
            c.send(b"GET /next HTTP/1.1\r\nHost: web\r\n\r\n");
            let n = c.response().expect("the next response");
            assert_eq!(n.status, 200, "{driver} {what}: {}", n.text());
        };
        for host in ["nowhere", "dead"] {
            // The body with the head, and the body after the answer.
            let mut c = Client::connect(px.addr("out"));
            c.send(
                format!("POST /x HTTP/1.1\r\nHost: {host}\r\nContent-Length: 9\r\n\r\nGET /evil")
                    .as_bytes(),
            );
            let r = c.response().expect("a response");
            assert_eq!(r.status, 502, "{driver} {host}");
            next_is_served(&mut c, &r, host);
            c.send(
                format!("POST /x HTTP/1.1\r\nHost: {host}\r\nContent-Length: 9\r\n\r\n").as_bytes(),
            );
            let r = c.response().expect("a response");
            assert_eq!(r.status, 502, "{driver} {host}");
            c.send(b"GET /evil");
            next_is_served(&mut c, &r, host);
            // Chunked, whole in hand: dropped.
            c.send(format!("POST /x HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nGET /evil\r\n0\r\n\r\n").as_bytes());
            let r = c.response().expect("a response");
            next_is_served(&mut c, &r, host);
            // Exactly the limit still to come is dropped; one byte more closes.
            let limit = 1024 * 1024;
            let mut c = Client::connect(px.addr("out"));
            c.send(
                format!("POST /x HTTP/1.1\r\nHost: {host}\r\nContent-Length: {limit}\r\n\r\n")
                    .as_bytes(),
            );
            let r = c.response().expect("a response");
            c.send(&vec![b'x'; limit]);
            next_is_served(&mut c, &r, host);
            let mut c = Client::connect(px.addr("out"));
            c.send(
                format!(
                    "POST /x HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\n\r\n",
                    limit + 1
                )
                .as_bytes(),
            );
            let r = c.response().expect("a response");
            assert_closed(&mut c, &r, driver);
            // Chunked, still arriving: closes.
            let mut c = Client::connect(px.addr("out"));
            c.send(
                format!(
                    "POST /x HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nGET"
                )
                .as_bytes(),
            );
            let r = c.response().expect("a response");
            assert_closed(&mut c, &r, driver);
        }
        let seen = up.all_text();
        assert!(
            !seen.contains("evil") && !seen.contains("xx"),
            "{driver}: {seen:?}"
        );
        assert!(seen.contains("GET /next"), "{driver}: {seen:?}");
    }
}

/// A body of up to 16 KiB that arrives with its head goes upstream in the
/// head's write, so an upstream that answers on the head (nginx's
/// `return`) has it whole and its connection stays in the pool: sent
/// after the head, the answer came between the two writes, as an early
/// answer, and cost a connection per request. Bodies of 1 KiB and 16 KiB
/// with a length, and chunked ones of 1 KiB and 8 KiB (re-encoded), each
/// request head and body in one client write, on one connection.
#[test]
fn a_small_body_that_came_with_its_head_goes_in_the_heads_write() {
    for driver in drivers() {
        let up = Upstream::start(Reply::AnswerOnHead);
        let px = Proxy::start(&mesh_config(&up, ""), driver);
        let mut c = Client::connect(px.addr("out"));
        for size in [1024, 16 * 1024, 1024, 16 * 1024] {
            let mut req =
                format!("POST /up HTTP/1.1\r\nHost: web\r\nContent-Length: {size}\r\n\r\n")
                    .into_bytes();
            req.resize(req.len() + size, b'x');
            c.send(&req);
            let r = c.response().expect("a response");
            assert_eq!(
                (r.status, r.text().as_str()),
                (200, "whole"),
                "{driver} {size}"
            );
            assert!(!has_close(&r), "{driver} {size}");
        }
        // Chunked, in chunks of 1 KiB, with an extension to drop.
        for size in [1024, 8 * 1024] {
            let mut req =
                b"POST /up HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            for _ in 0..size / 1024 {
                req.extend_from_slice(b"400;a=b\r\n");
                req.resize(req.len() + 1024, b'x');
                req.extend_from_slice(b"\r\n");
            }
            req.extend_from_slice(b"0\r\n\r\n");
            c.send(&req);
            let r = c.response().expect("a response");
            let got = (r.status, r.text());
            assert_eq!(got, (200, "whole".into()), "{driver} chunked {size}");
        }
        assert_eq!(up.connections.load(Ordering::Relaxed), 1, "{driver}");
        let seen = up.requests();
        assert_eq!(seen.len(), 6, "{driver}");
        assert!(
            seen.iter().all(|r| r.body.iter().all(|&b| b == b'x')),
            "{driver}"
        );
    }
}
