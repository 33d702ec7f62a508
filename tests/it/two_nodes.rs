//! Two proxy "nodes" (two processes) on loopback, as the Part VI
//! DaemonSet runs them: apps tagged with their node in the file namer, the
//! outgoing and ingress routers hopping to the peer proxy on the
//! destination's node, the incoming routers keeping only their node's
//! endpoints. The staging override set at node A's ingress reaches world-v2
//! through ingress(A) -> incoming(B) -> hello -> outgoing(B) -> incoming(A)
//! -> world-v2.

use crate::support::{Client, Proxy, get, wait_for};
use std::net::TcpListener;
use std::time::Duration;

fn node_config(node: &str, dir: &std::path::Path) -> String {
    format!(
        r#"namers:
- kind: io.l5d.fs
  rootDir: {dir}
  pollIntervalMs: 50
routers:
- protocol: http
  label: ingress
  dtab: |
    /srv => /#/io.l5d.fs ;
    /domain/world/hello/www => /srv/hello ;
    /host => /$/io.buoyant.http.domainToPathPfx/domain ;
    /svc => /host ;
  interpreter:
    transformers:
    - {{kind: io.l5d.daemonset, peers: /#/io.l5d.fs/l5d, node: {node}}}
  servers:
  - {{port: 0, trust: edge, overridePolicy: {{prefixes: [/host], destinations: [/srv]}}}}
- protocol: http
  label: outgoing
  dtab: |
    /srv => /#/io.l5d.fs ;
    /host => /srv ;
    /host/world => /srv/world-v1 ;
    /svc => /host ;
  interpreter:
    transformers:
    - {{kind: io.l5d.daemonset, peers: /#/io.l5d.fs/l5d, node: {node}}}
  servers:
  - {{port: 0}}
- protocol: http
  label: incoming
  dtab: |
    /srv => /#/io.l5d.fs ;
    /domain/world/hello/www => /srv/hello ;
    /host => /$/io.buoyant.http.domainToPathPfx/domain ;
    /host => /srv ;
    /host/world => /srv/world-v1 ;
    /svc => /host ;
  interpreter:
    transformers:
    - {{kind: io.l5d.localnode, node: {node}}}
  servers:
  - {{port: 0}}
"#,
        dir = dir.display()
    )
}

#[test]
fn staging_override_crosses_two_nodes() {
    let dir = std::env::temp_dir().join(format!("switchyard-two-nodes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let app = |f: &dyn Fn(TcpListener)| {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        f(l);
        port
    };
    let v1 = app(&|l| switchyard::demo::world(l, "world".into()));
    // world-v2 also says how many proxies its request passed (its Via).
    let v2 = app(&|l| {
        switchyard::demo::serve(l, |headers| {
            let via = headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("via"))
                .map(|(_, v)| v.clone());
            let hops = via
                .as_deref()
                .map_or(0, |v| v.matches("switchyard").count());
            format!("earth (hops {hops})")
        })
    });
    for driver in crate::support::drivers() {
        // The nodes listen on port 0 and the namer files, polled every
        // 50 ms, name their ports once they are up (no port is guessed).
        for f in ["hello", "world-v1", "world-v2", "l5d"] {
            let _ = std::fs::remove_file(dir.join(f));
        }
        let node_a = Proxy::start(&node_config("a", &dir), driver);
        let node_b = Proxy::start(&node_config("b", &dir), driver);
        // Apps: hello and world-v1 on node b, world-v2 on node a. hello
        // calls world through its own node's outgoing router.
        let hello = app(&|l| switchyard::demo::hello(l, node_b.addr("outgoing")));
        let port = |p: &Proxy, label| p.addr(label).port();
        std::fs::write(dir.join("hello"), format!("127.0.0.1 {hello} node=b\n")).unwrap();
        std::fs::write(dir.join("world-v1"), format!("127.0.0.1 {v1} node=b\n")).unwrap();
        std::fs::write(dir.join("world-v2"), format!("127.0.0.1 {v2} node=a\n")).unwrap();
        std::fs::write(
            dir.join("l5d"),
            format!(
                "127.0.0.1 {} node=a\n127.0.0.1 {} node=b\n",
                port(&node_a, "incoming"),
                port(&node_b, "incoming")
            ),
        )
        .unwrap();
        let ingress = node_a.addr("ingress");
        let plain = || get(ingress, "GET / HTTP/1.1\r\nHost: www.hello.world\r\n\r\n");
        wait_for(
            "both nodes to read the namer files",
            Duration::from_secs(10),
            || plain().text().contains(") world ("),
        );
        let staged = "GET / HTTP/1.1\r\nHost: www.hello.world\r\nl5d-dtab: /host/world => /srv/world-v2;\r\n\r\n";
        let r = get(ingress, staged);
        // hello -> outgoing(B) -> incoming(A) -> world-v2: two proxies.
        assert_eq!(
            r.text(),
            format!("Hello (127.0.0.1:{hello}) earth (hops 2)!!"),
            "{}",
            r.text()
        );
        // Interleaved on one connection, the two never mix.
        let mut c = Client::connect(ingress);
        for i in 0..20 {
            let stage = i % 2 == 0;
            c.send(if stage {
                staged.as_bytes()
            } else {
                b"GET / HTTP/1.1\r\nHost: www.hello.world\r\n\r\n"
            });
            let text = c.response().unwrap().text();
            assert!(
                text.contains(if stage { ") earth (" } else { ") world (" }),
                "{i}: {text}"
            );
        }
        drop((node_a, node_b));
    }
    let _ = std::fs::remove_dir_all(&dir);
}
