//! Two proxy "nodes" (two processes) on loopback, as the Part VI
//! DaemonSet runs them: apps tagged with their node in the file namer, the
//! outgoing and ingress routers hopping to the peer proxy on the
//! destination's node, the incoming routers keeping only their node's
//! endpoints. The staging override set at node A's ingress reaches world-v2
//! through ingress(A) -> incoming(B) -> hello -> outgoing(B) -> incoming(A)
//! -> world-v2.

use crate::support::free_port;
use crate::support::{Client, Proxy, get};
use std::net::TcpListener;

fn node_config(
    node: &str,
    dir: &std::path::Path,
    ingress: u16,
    outgoing: u16,
    incoming: u16,
) -> String {
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
  - {{port: {ingress}, trust: edge, overridePolicy: {{prefixes: [/host], destinations: [/srv]}}}}
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
  - {{port: {outgoing}}}
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
  - {{port: {incoming}}}
"#,
        dir = dir.display()
    )
}

#[test]
fn staging_override_crosses_two_nodes() {
    let dir = std::env::temp_dir().join(format!("switchyard-two-nodes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let [a_in, a_out, a_inc, b_in, b_out, b_inc] = [(); 6].map(|()| free_port());
    // Apps: hello and world-v1 on node b, world-v2 on node a. hello calls
    // world through its own node's outgoing router.
    let app = |f: &dyn Fn(TcpListener)| {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        f(l);
        port
    };
    let hello = app(&|l| switchyard::demo::hello(l, ([127, 0, 0, 1], b_out).into()));
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
    std::fs::write(dir.join("hello"), format!("127.0.0.1 {hello} node=b\n")).unwrap();
    std::fs::write(dir.join("world-v1"), format!("127.0.0.1 {v1} node=b\n")).unwrap();
    std::fs::write(dir.join("world-v2"), format!("127.0.0.1 {v2} node=a\n")).unwrap();
    std::fs::write(
        dir.join("l5d"),
        format!("127.0.0.1 {a_inc} node=a\n127.0.0.1 {b_inc} node=b\n"),
    )
    .unwrap();
    for driver in crate::support::drivers() {
        let node_a = Proxy::start(&node_config("a", &dir, a_in, a_out, a_inc), driver);
        let node_b = Proxy::start(&node_config("b", &dir, b_in, b_out, b_inc), driver);
        let ingress = node_a.addr("ingress");
        let r = get(ingress, "GET / HTTP/1.1\r\nHost: www.hello.world\r\n\r\n");
        assert!(r.text().contains(") world ("), "{driver}: {}", r.text());
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
