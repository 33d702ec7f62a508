//! The `io.l5d.k8s` namer through the running proxy, fed by the fake API
//! server over the real list/watch protocol: first sync, scaling while
//! requests flow, compaction and outages, silent watches, the daemonset
//! transformers, and the staging walkthrough.

use crate::fake_apiserver::FakeApi;
use crate::support::{Client, Proxy, Reply, Upstream, get, wait_for};
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub fn service(ns: &str, name: &str, ports: &[(&str, i32)]) -> Service {
    Service {
        metadata: ObjectMeta {
            namespace: Some(ns.into()),
            name: Some(name.into()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            ports: Some(
                ports
                    .iter()
                    .map(|(n, p)| ServicePort {
                        name: Some(n.to_string()),
                        port: *p,
                        protocol: Some("TCP".into()),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// One endpoint: address, node, and (ready, serving, terminating).
pub struct Ep<'a>(pub &'a str, pub &'a str, pub Option<(bool, bool, bool)>);

pub fn slice(
    ns: &str,
    name: &str,
    svc: &str,
    family: &str,
    port: (&str, u16),
    eps: &[Ep],
) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            namespace: Some(ns.into()),
            name: Some(name.into()),
            labels: Some([("kubernetes.io/service-name".to_owned(), svc.to_owned())].into()),
            ..Default::default()
        },
        address_type: family.into(),
        ports: Some(vec![EndpointPort {
            name: Some(port.0.into()),
            port: Some(i32::from(port.1)),
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
        endpoints: eps
            .iter()
            .map(|Ep(ip, node, c)| Endpoint {
                addresses: vec![ip.to_string()],
                conditions: c.map(|(ready, serving, terminating)| EndpointConditions {
                    ready: Some(ready),
                    serving: Some(serving),
                    terminating: Some(terminating),
                }),
                node_name: (!node.is_empty()).then(|| node.to_string()),
                ..Default::default()
            })
            .collect(),
    }
}

/// A slice of one loopback upstream, on `node`.
fn local_slice(
    ns: &str,
    name: &str,
    svc: &str,
    port_name: &str,
    up: SocketAddr,
    node: &str,
) -> EndpointSlice {
    slice(
        ns,
        name,
        svc,
        "IPv4",
        (port_name, up.port()),
        &[Ep("127.0.0.1", node, None)],
    )
}

fn namer_yaml(api: &FakeApi) -> String {
    format!(
        "namers:\n- kind: io.l5d.k8s\n  host: 127.0.0.1\n  port: {}\n  watchTimeoutMs: 1000\n",
        api.addr.port()
    )
}

fn admin_json(admin: SocketAddr, path: &str) -> Value {
    let r = get(
        admin,
        &format!("GET {path} HTTP/1.1\r\nHost: admin\r\n\r\n"),
    );
    serde_json::from_str(&r.text()).unwrap_or(Value::Null)
}

/// Every shard has applied the newest snapshot.
fn all_applied(admin: SocketAddr) -> bool {
    let s = admin_json(admin, "/namer_state");
    let g = s["generation"].as_u64().unwrap_or(0);
    s["shardsApplied"]
        .as_array()
        .is_some_and(|a| !a.is_empty() && a.iter().all(|x| x.as_u64() == Some(g)))
}

fn text(a: SocketAddr, host: &str) -> (u16, String) {
    let r = get(a, &format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n"));
    (r.status, r.text())
}

fn start(api: &FakeApi, dtab: &str, extra_router: &str) -> (Proxy, SocketAddr) {
    start_with_namer(&namer_yaml(api), dtab, extra_router)
}

fn start_with_namer(namer: &str, dtab: &str, extra_router: &str) -> (Proxy, SocketAddr) {
    let yaml = format!(
        "{}admin:\n  port: 0\nruntime:\n  shards: 2\nrouters:\n- protocol: http\n  label: out\n  bindingTimeoutMs: 3000\n  dtab: |\n{}\n{extra_router}  servers:\n  - port: 0\n",
        namer,
        dtab.lines()
            .map(|l| format!("    {l}"))
            .collect::<Vec<_>>()
            .join("\n"),
    );
    let px = Proxy::start(&yaml, "auto");
    let admin = px.admin.expect("admin address");
    (px, admin)
}

#[test]
fn k8s_namer_binds_services_ports_and_follows_scaling_under_load() {
    let v1 = Upstream::start(Reply::Describe("v1"));
    let v2 = Upstream::start(Reply::Describe("v2"));
    let api = FakeApi::start();
    api.apply_service(&service("default", "world", &[("http", 80)]));
    api.apply_slice(&local_slice(
        "default", "world-1", "world", "http", v1.addr, "n1",
    ));
    api.apply_service(&service("default", "empty", &[("http", 80)]));
    let dtab = format!(
        "/srv => /#/io.l5d.k8s/default/http;\n/svc => /srv;\n/svc/bynumber => /#/io.l5d.k8s/default/80/world;\n/svc/badport => /#/io.l5d.k8s/default/grpc/world | /$/inet/127.0.0.1/{p};\n/svc/empty => /#/io.l5d.k8s/default/http/empty | /$/inet/127.0.0.1/{p};\n/svc/missing => /#/io.l5d.k8s/default/http/missing | /$/inet/127.0.0.1/{p};",
        p = v2.addr.port()
    );
    let (px, admin) = start(&api, &dtab, "");
    let a = px.addr("out");
    // The first request may find the namer still syncing: it waits (up to
    // bindingTimeoutMs) instead of failing.
    let (s, t) = text(a, "world");
    assert_eq!(s, 200, "{t}\n{}", px.log());
    assert!(t.starts_with("v1:"), "{t}");
    assert!(
        text(a, "bynumber").1.starts_with("v1:"),
        "a port number resolves through the Service"
    );
    // Unknown port or service: Neg, so the dtab falls back.
    assert!(text(a, "badport").1.starts_with("v2:"));
    assert!(text(a, "missing").1.starts_with("v2:"));
    // A known service with no endpoints is an empty set: 502, no fallback.
    assert_eq!(text(a, "empty").0, 502);
    let ready = get(admin, "GET /ready HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(ready.status, 200, "{}", ready.text());
    let ns = admin_json(admin, "/namer_state");
    let watches = ns["namers"][0]["watches"]["watches"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(watches.len(), 2, "{ns}");
    assert!(watches.iter().all(|w| w["state"] == "watching"), "{ns}");

    // Scale up and down while a client keeps requesting.
    let stop = Arc::new(AtomicBool::new(false));
    let (failed, served) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load = {
        let (stop, failed, served) = (stop.clone(), failed.clone(), served.clone());
        std::thread::spawn(move || {
            let mut c = Client::connect(a);
            while !stop.load(Ordering::Relaxed) {
                c.send(b"GET / HTTP/1.1\r\nHost: world\r\n\r\n");
                match c.response() {
                    Some(r) if r.status == 200 => served.fetch_add(1, Ordering::Relaxed),
                    _ => {
                        c = Client::connect(a);
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        })
    };
    api.apply_slice(&local_slice(
        "default", "world-2", "world", "http", v2.addr, "n2",
    ));
    wait_for("v2 to take traffic", Duration::from_secs(10), || {
        (0..4).any(|_| text(a, "world").1.starts_with("v2:"))
    });
    api.delete_slice(&local_slice(
        "default", "world-1", "world", "http", v1.addr, "n1",
    ));
    wait_for(
        "every shard to apply the removal",
        Duration::from_secs(10),
        || {
            let ns = admin_json(admin, "/client_state.json");
            ns["/#/io.l5d.k8s/default/http/world"]
                .as_array()
                .is_some_and(|e| e.len() == 1)
                && all_applied(admin)
        },
    );
    v1.clear();
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();
    for _ in 0..20 {
        assert!(text(a, "world").1.starts_with("v2:"));
    }
    assert!(
        v1.requests().is_empty(),
        "a removed endpoint got requests after the snapshot was applied"
    );
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "requests failed during scaling"
    );
    assert!(served.load(Ordering::Relaxed) > 10);
}

#[test]
fn k8s_namer_survives_outage_and_compaction() {
    let v1 = Upstream::start(Reply::Describe("v1"));
    let v2 = Upstream::start(Reply::Describe("v2"));
    let v3 = Upstream::start(Reply::Describe("v3"));
    let api = FakeApi::start();
    api.apply_service(&service("default", "world", &[("http", 80)]));
    api.apply_service(&service("default", "gone", &[("http", 80)]));
    api.apply_slice(&local_slice(
        "default", "world-1", "world", "http", v1.addr, "",
    ));
    api.apply_slice(&local_slice(
        "default", "gone-1", "gone", "http", v1.addr, "",
    ));
    let (px, admin) = start(&api, "/svc => /#/io.l5d.k8s/default/http;", "");
    let a = px.addr("out");
    assert!(text(a, "world").1.starts_with("v1:"));
    let lists_before = api
        .log()
        .iter()
        .filter(|t| !t.contains("watch=true"))
        .count();

    // The API server goes away: the last snapshot keeps serving, and the
    // namer says it is failing.
    api.set_down(true);
    wait_for("the outage to be reported", Duration::from_secs(10), || {
        admin_json(admin, "/namer_state")["namers"][0]["errors"]
            .as_u64()
            .unwrap_or(0)
            > 0
    });
    for _ in 0..5 {
        assert!(text(a, "world").1.starts_with("v1:"));
    }
    let ns = admin_json(admin, "/namer_state");
    assert!(ns["namers"][0]["lastError"].is_string(), "{ns}");
    let prom = get(
        admin,
        "GET /admin/metrics/prometheus HTTP/1.1\r\nHost: a\r\n\r\n",
    )
    .text();
    assert!(
        prom.contains("switchyard_discovery_errors_total{namer=\"/#/io.l5d.k8s\"}"),
        "{prom}"
    );
    assert_eq!(
        get(admin, "GET /live HTTP/1.1\r\nHost: a\r\n\r\n").status,
        200,
        "liveness must not depend on the API server"
    );

    // Changes during the outage, then a compaction: the watch cannot resume
    // from its version (410 inside a 200) and must re-list.
    api.apply_slice(&local_slice(
        "default", "world-1", "world", "http", v2.addr, "",
    ));
    api.delete_service(&service("default", "gone", &[("http", 80)]));
    api.compact_and_drop_watches();
    api.set_down(false);
    // A service deleted during the outage must be gone (Neg) after it.
    wait_for("the re-list after 410", Duration::from_secs(20), || {
        text(a, "world").1.starts_with("v2:") && text(a, "gone").0 == 502
    });
    let lists_after = api
        .log()
        .iter()
        .filter(|t| !t.contains("watch=true"))
        .count();
    assert!(lists_after > lists_before, "no re-list: {:?}", api.log());
    wait_for("the error to clear", Duration::from_secs(10), || {
        admin_json(admin, "/namer_state")["namers"][0]["lastError"].is_null()
    });

    // The same, with the 410 as the watch request's HTTP status.
    api.set_gone_as_http(true);
    api.apply_slice(&local_slice(
        "default", "world-1", "world", "http", v3.addr, "",
    ));
    api.compact_and_drop_watches();
    wait_for(
        "the re-list after HTTP 410",
        Duration::from_secs(20),
        || text(a, "world").1.starts_with("v3:"),
    );
}

#[test]
fn k8s_namer_detects_a_silent_watch() {
    let v1 = Upstream::start(Reply::Describe("v1"));
    let v2 = Upstream::start(Reply::Describe("v2"));
    let api = FakeApi::start();
    api.apply_service(&service("default", "world", &[("http", 80)]));
    api.apply_slice(&local_slice(
        "default", "world-1", "world", "http", v1.addr, "",
    ));
    let (px, _admin) = start(&api, "/svc => /#/io.l5d.k8s/default/http;", "");
    let a = px.addr("out");
    assert!(text(a, "world").1.starts_with("v1:"));
    // The watch connection stays open but nothing arrives on it: only the
    // idle timeout (watchTimeoutMs plus a margin) can notice.
    let watches = api.watch_count();
    api.half_open_watches();
    api.apply_slice(&local_slice(
        "default", "world-1", "world", "http", v2.addr, "",
    ));
    wait_for(
        "a fresh watch after the silence",
        Duration::from_secs(15),
        || text(a, "world").1.starts_with("v2:"),
    );
    assert!(api.watch_count() > watches);
}

#[test]
fn k8s_daemonset_and_localnode_transformers() {
    let here = Upstream::start(Reply::Describe("pod-on-n1"));
    let there = Upstream::start(Reply::Describe("pod-on-n2"));
    let lonely = Upstream::start(Reply::Describe("pod-on-n3"));
    let peer = Upstream::start(Reply::Describe("peer-on-n2"));
    let api = FakeApi::start();
    for s in ["a", "b", "c"] {
        api.apply_service(&service("default", s, &[("http", 80)]));
    }
    api.apply_service(&service("linkerd", "l5d", &[("incoming", 4141)]));
    api.apply_slice(&local_slice("default", "a-1", "a", "http", here.addr, "n1"));
    api.apply_slice(&local_slice(
        "default", "b-1", "b", "http", there.addr, "n2",
    ));
    api.apply_slice(&local_slice(
        "default",
        "c-1",
        "c",
        "http",
        lonely.addr,
        "n3",
    ));
    api.apply_slice(&local_slice(
        "linkerd", "l5d-1", "l5d", "incoming", peer.addr, "n2",
    ));
    let (px, _admin) = start(
        &api,
        "/svc => /#/io.l5d.k8s/default/http;",
        "  interpreter:\n    transformers:\n    - kind: io.l5d.k8s.daemonset\n      namespace: linkerd\n      port: incoming\n      service: l5d\n      node: n1\n",
    );
    let a = px.addr("out");
    // On this node: direct. On n2: through the peer there. On n3, where no
    // peer runs: direct.
    assert!(text(a, "a").1.starts_with("pod-on-n1:"));
    let (s, t) = text(a, "b");
    assert!(t.starts_with("peer-on-n2:"), "{s} {t}");
    assert!(text(a, "c").1.starts_with("pod-on-n3:"));

    // The incoming side keeps only endpoints on its own node.
    api.apply_slice(&local_slice(
        "default", "a-2", "a", "http", there.addr, "n2",
    ));
    let (px2, _admin2) = start(
        &api,
        "/svc => /#/io.l5d.k8s/default/http;",
        "  interpreter:\n    transformers:\n    - kind: io.l5d.k8s.localnode\n      node: n1\n",
    );
    let b = px2.addr("out");
    for _ in 0..20 {
        assert!(text(b, "a").1.starts_with("pod-on-n1:"));
    }
    // Nothing on this node: no hosts.
    assert_eq!(text(b, "b").0, 502);
}

#[test]
fn pending_names_wait_for_the_first_sync_then_503() {
    // An API server that never answers: names stay pending.
    let api = FakeApi::start();
    api.set_down(true);
    let (px, admin) = start(&api, "/svc => /#/io.l5d.k8s/default/http;", "");
    let a = px.addr("out");
    let t0 = Instant::now();
    let (s, _) = text(a, "world");
    assert_eq!(s, 503);
    assert!(
        t0.elapsed() >= Duration::from_millis(2500),
        "did not wait for the binding timeout"
    );
    assert_eq!(
        get(admin, "GET /ready HTTP/1.1\r\nHost: a\r\n\r\n").status,
        503
    );
    // When the API comes back, a waiting request completes.
    let up = Upstream::start(Reply::Describe("late"));
    api.apply_service(&service("default", "world", &[("http", 80)]));
    api.apply_slice(&local_slice(
        "default", "world-1", "world", "http", up.addr, "",
    ));
    let waiter = std::thread::spawn(move || text(a, "world"));
    std::thread::sleep(Duration::from_millis(300));
    api.set_down(false);
    let (s, t) = waiter.join().unwrap();
    assert_eq!(s, 200, "{t}");
    assert!(t.starts_with("late:"));
}

/// Part VI's staging walkthrough with every endpoint from the API server:
/// ingress -> (daemonset) incoming -> hello -> outgoing -> (daemonset)
/// incoming -> world-v1, or world-v2 with the override.
#[test]
fn k8s_staging_walkthrough() {
    let api = FakeApi::start();
    // The ingress and outgoing routers play node-a's proxy, the incoming
    // router node-b's, where the apps run.
    let daemonset = "  interpreter:\n    transformers:\n    - kind: io.l5d.k8s.daemonset\n      namespace: linkerd\n      port: incoming\n      service: l5d\n      node: node-a\n";
    let yaml = format!(
        r#"{namer}routers:
- protocol: http
  label: ingress
  dtab: |
    /srv                    => /#/io.l5d.k8s/default/http ;
    /domain/world/hello/www => /srv/hello ;
    /host                   => /$/io.buoyant.http.domainToPathPfx/domain ;
    /svc                    => /host ;
{daemonset}  servers:
  - port: 0
    trust: edge
    overridePolicy:
      prefixes: [/host]
      destinations: [/srv]
- protocol: http
  label: outgoing
  dtab: |
    /srv        => /#/io.l5d.k8s/default/http ;
    /host       => /srv ;
    /host/world => /srv/world-v1 ;
    /svc        => /host ;
{daemonset}  servers:
  - port: 0
- protocol: http
  label: incoming
  dtab: |
    /srv                    => /#/io.l5d.k8s/default/http ;
    /domain/world/hello/www => /srv/hello ;
    /host                   => /$/io.buoyant.http.domainToPathPfx/domain ;
    /host                   => /srv ;
    /host/world             => /srv/world-v1 ;
    /svc                    => /host ;
  interpreter:
    transformers:
    - kind: io.l5d.k8s.localnode
      node: node-b
  servers:
  - port: 0
"#,
        namer = namer_yaml(&api),
    );
    // Every listener on port 0: the apps and the endpoints learn the
    // proxy's ports once it is up, and the namer picks them up by watch.
    let px = Proxy::start(&yaml, "auto");
    let a = px.addr("ingress");
    let mut apps = Vec::new();
    for (name, text) in [("hello", ""), ("world-v1", "world"), ("world-v2", "earth")] {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        if name == "hello" {
            switchyard::demo::hello(l, px.addr("outgoing"));
        } else {
            switchyard::demo::world(l, text.into());
        }
        api.apply_service(&service("default", name, &[("http", 80)]));
        api.apply_slice(&local_slice(
            "default",
            &format!("{name}-x"),
            name,
            "http",
            addr,
            "node-b",
        ));
        apps.push(addr);
    }
    api.apply_service(&service("linkerd", "l5d", &[("incoming", 4141)]));
    api.apply_slice(&local_slice(
        "linkerd",
        "l5d-x",
        "l5d",
        "incoming",
        px.addr("incoming"),
        "node-b",
    ));
    let plain = || get(a, "GET / HTTP/1.1\r\nHost: www.hello.world\r\n\r\n");
    wait_for(
        "the endpoints to reach the proxy",
        Duration::from_secs(10),
        || plain().status == 200,
    );
    let plain = plain();
    assert_eq!(plain.status, 200, "{}\n{}", plain.text(), px.log());
    assert!(
        plain.text().starts_with("Hello (") && plain.text().contains(") world ("),
        "{}",
        plain.text()
    );
    let staged = get(
        a,
        "GET / HTTP/1.1\r\nHost: www.hello.world\r\nl5d-dtab: /host/world => /srv/world-v2;\r\n\r\n",
    );
    assert_eq!(staged.status, 200, "{}", staged.text());
    assert!(staged.text().contains(") earth ("), "{}", staged.text());
    // Every other request still sees world.
    assert!(
        get(a, "GET / HTTP/1.1\r\nHost: www.hello.world\r\n\r\n")
            .text()
            .contains(") world (")
    );
    drop(apps);
}

#[test]
fn k8s_namer_pages_lists_and_restarts_an_expired_one() {
    let up = Upstream::start(Reply::Describe("paged"));
    let api = FakeApi::start();
    // More than two pages of each kind (the namer asks for 500 at a time).
    let services: Vec<Value> = (0..1200)
        .map(|i| {
            serde_json::to_value(service("default", &format!("s{i}"), &[("http", 80)])).unwrap()
        })
        .collect();
    let slices: Vec<Value> = (0..1200)
        .map(|i| {
            serde_json::to_value(local_slice(
                "default",
                &format!("s{i}-1"),
                &format!("s{i}"),
                "http",
                up.addr,
                "",
            ))
            .unwrap()
        })
        .collect();
    api.preload(services, slices);
    // The second page of the first list finds its snapshot compacted.
    api.expire_next_continue();
    let (px, _admin) = start_with_namer(
        &format!(
            "namers:\n- kind: io.l5d.k8s\n  host: 127.0.0.1\n  port: {}\n  namespaces: [default]\n",
            api.addr.port()
        ),
        "/svc => /#/io.l5d.k8s/default/http;",
        "",
    );
    let a = px.addr("out");
    for name in ["s0", "s600", "s1199"] {
        assert!(text(a, name).1.starts_with("paged:"), "{name}");
    }
    let log = api.log();
    let continued = log.iter().filter(|t| t.contains("continue=")).count();
    // 1200 objects: pages 2 and 3 of each kind, plus the restarted list's.
    assert!(continued >= 5, "{log:?}");
    // Watched in the one namespace configured, not cluster-wide.
    assert!(
        log.iter().all(|t| t.contains("/namespaces/default/")),
        "{log:?}"
    );
}

#[test]
fn k8s_merges_dual_stack_multi_slice_and_terminating_endpoints() {
    let api = FakeApi::start();
    api.apply_service(&service("default", "web", &[("http", 80)]));
    let ready = Some((true, true, false));
    let terminating = Some((false, true, true));
    api.apply_slice(&slice(
        "default",
        "web-v4a",
        "web",
        "IPv4",
        ("http", 8080),
        &[
            Ep("10.0.0.1", "n1", ready),
            Ep("10.0.0.2", "n2", terminating),
        ],
    ));
    // The same endpoint seen in a second slice (mid-move), another one, and
    // the IPv6 family in its own slice.
    api.apply_slice(&slice(
        "default",
        "web-v4b",
        "web",
        "IPv4",
        ("http", 8080),
        &[Ep("10.0.0.1", "n1", ready), Ep("10.0.0.3", "n3", None)],
    ));
    api.apply_slice(&slice(
        "default",
        "web-v6",
        "web",
        "IPv6",
        ("http", 8080),
        &[Ep("fd00::1", "n1", ready)],
    ));
    api.apply_slice(&slice(
        "default",
        "web-fqdn",
        "web",
        "FQDN",
        ("http", 8080),
        &[Ep("web.example.com", "", ready)],
    ));
    let (_px, admin) = start(&api, "/svc => /#/io.l5d.k8s/default/http;", "");
    let endpoints = |admin| -> Vec<String> {
        let cs = admin_json(admin, "/client_state.json");
        let mut v: Vec<String> = cs["/#/io.l5d.k8s/default/http/web"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| {
                        format!(
                            "{} {}",
                            e["address"].as_str().unwrap_or(""),
                            e["node"].as_str().unwrap_or("-")
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    wait_for("the first sync", Duration::from_secs(10), || {
        !endpoints(admin).is_empty()
    });
    assert_eq!(
        endpoints(admin),
        ["10.0.0.1:8080 n1", "10.0.0.3:8080 n3", "[fd00::1]:8080 n1"]
    );
    // Once nothing is ready, the serving-but-terminating endpoint is used.
    api.delete_slice(&slice(
        "default",
        "web-v4b",
        "web",
        "IPv4",
        ("http", 8080),
        &[],
    ));
    api.delete_slice(&slice(
        "default",
        "web-v6",
        "web",
        "IPv6",
        ("http", 8080),
        &[],
    ));
    api.apply_slice(&slice(
        "default",
        "web-v4a",
        "web",
        "IPv4",
        ("http", 8080),
        &[
            Ep("10.0.0.1", "n1", Some((false, false, true))),
            Ep("10.0.0.2", "n2", terminating),
        ],
    ));
    wait_for(
        "the fallback to terminating endpoints",
        Duration::from_secs(10),
        || endpoints(admin) == ["10.0.0.2:8080 n2"],
    );
}
