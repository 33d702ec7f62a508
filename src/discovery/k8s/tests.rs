//! The store alone: slices and services in, rendered view out.

use super::*;
use k8s_openapi::api::core::v1::{ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint as SliceEp, EndpointConditions, EndpointPort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

fn svc(ns: &str, name: &str, ports: &[(&str, i32)]) -> Service {
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
                        name: (!n.is_empty()).then(|| n.to_string()),
                        port: *p,
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// `(ip, ready, serving, terminating, node)`.
type Ep<'a> = (&'a str, Option<bool>, Option<bool>, Option<bool>, &'a str);

fn slice(
    ns: &str,
    name: &str,
    svc: &str,
    family: &str,
    ports: &[(&str, i32)],
    eps: &[Ep],
) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            namespace: Some(ns.into()),
            name: Some(name.into()),
            labels: Some([(SERVICE_NAME_LABEL.to_owned(), svc.to_owned())].into()),
            ..Default::default()
        },
        address_type: family.into(),
        ports: Some(
            ports
                .iter()
                .map(|(n, p)| EndpointPort {
                    name: Some(n.to_string()),
                    port: Some(*p),
                    ..Default::default()
                })
                .collect(),
        ),
        endpoints: eps
            .iter()
            .map(|(ip, ready, serving, terminating, node)| SliceEp {
                addresses: vec![ip.to_string()],
                conditions: (ready.is_some() || serving.is_some() || terminating.is_some())
                    .then_some(EndpointConditions {
                        ready: *ready,
                        serving: *serving,
                        terminating: *terminating,
                    }),
                node_name: (!node.is_empty()).then(|| node.to_string()),
                ..Default::default()
            })
            .collect(),
    }
}

/// A slice of one condition-less IPv4 endpoint: `(port name, port)`,
/// `(ip, node)`.
fn one(ns: &str, name: &str, svc: &str, port: (&str, i32), ep: (&str, &str)) -> EndpointSlice {
    slice(
        ns,
        name,
        svc,
        "IPv4",
        &[port],
        &[(ep.0, None, None, None, ep.1)],
    )
}

fn compact_services(items: &[Service]) -> Vec<(Key, SvcPorts)> {
    items.iter().filter_map(compact_service).collect()
}

fn compact_slices(items: &[EndpointSlice]) -> Vec<(Key, Option<Slice>)> {
    items.iter().filter_map(compact_slice).collect()
}

fn render_all(
    store: &mut Store,
    touched: HashSet<Key>,
    view: &mut imbl::HashMap<Arc<str>, Arc<SvcEndpoints>>,
) {
    for k in touched {
        store.render(&k, view);
    }
}

fn addrs(view: &imbl::HashMap<Arc<str>, Arc<SvcEndpoints>>, key: &str) -> Option<Vec<String>> {
    view.get(key).map(|s| {
        s.endpoints
            .iter()
            .map(|e| format!("{e} {}", e.node.as_deref().unwrap_or("-")))
            .collect()
    })
}

#[test]
fn merges_slices_dedupes_and_keeps_both_families() {
    let mut st = Store::default();
    let mut t = HashSet::new();
    st.apply_service(&svc("default", "world", &[("http", 80)]));
    t.insert(("default".into(), "world".into()));
    let none = (None, None, None);
    st.apply_slice(
        &slice(
            "default",
            "world-a",
            "world",
            "IPv4",
            &[("http", 7778)],
            &[
                ("10.0.0.1", none.0, none.1, none.2, "n1"),
                ("10.0.0.2", Some(true), Some(true), Some(false), "n2"),
            ],
        ),
        &mut t,
    );
    // 10.0.0.2 transiently in a second slice too; and an IPv6 slice.
    st.apply_slice(
        &slice(
            "default",
            "world-b",
            "world",
            "IPv4",
            &[("http", 7778)],
            &[("10.0.0.2", Some(true), None, None, "n2")],
        ),
        &mut t,
    );
    st.apply_slice(
        &slice(
            "default",
            "world-v6",
            "world",
            "IPv6",
            &[("http", 7778)],
            &[("fd00::5", Some(true), None, None, "n3")],
        ),
        &mut t,
    );
    // FQDN slices are skipped.
    st.apply_slice(
        &slice(
            "default",
            "world-fqdn",
            "world",
            "FQDN",
            &[("http", 7778)],
            &[("example.com", None, None, None, "")],
        ),
        &mut t,
    );
    let mut v = imbl::HashMap::new();
    render_all(&mut st, t, &mut v);
    let want = vec!["10.0.0.1:7778 n1", "10.0.0.2:7778 n2", "[fd00::5]:7778 n3"];
    assert_eq!(addrs(&v, "default/http/world").unwrap(), want);
    // The Service's port number resolves through its name.
    assert_eq!(addrs(&v, "default/80/world").unwrap(), want);
    assert!(
        addrs(&v, "default/7778/world").is_none(),
        "target port is not a service port"
    );
    assert!(addrs(&v, "default/grpc/world").is_none());
}

#[test]
fn terminating_endpoints_only_when_none_is_ready() {
    let mut st = Store::default();
    let mut t = HashSet::new();
    st.apply_service(&svc("ns", "s", &[("", 8080)]));
    t.insert(("ns".into(), "s".into()));
    st.apply_slice(
        &slice(
            "ns",
            "s-1",
            "s",
            "IPv4",
            &[("", 9000)],
            &[
                ("10.1.0.1", Some(true), Some(true), Some(false), ""),
                ("10.1.0.2", Some(false), Some(true), Some(true), ""),
                ("10.1.0.3", Some(false), Some(false), Some(false), ""),
            ],
        ),
        &mut t,
    );
    let mut v = imbl::HashMap::new();
    render_all(&mut st, t, &mut v);
    assert_eq!(addrs(&v, "ns/8080/s").unwrap(), vec!["10.1.0.1:9000 -"]);
    // The ready one goes; the serving-but-terminating one is all that is left.
    let mut t = HashSet::new();
    st.apply_slice(
        &slice(
            "ns",
            "s-1",
            "s",
            "IPv4",
            &[("", 9000)],
            &[
                ("10.1.0.2", Some(false), Some(true), Some(true), ""),
                ("10.1.0.3", Some(false), Some(false), Some(false), ""),
            ],
        ),
        &mut t,
    );
    render_all(&mut st, t, &mut v);
    assert_eq!(addrs(&v, "ns/8080/s").unwrap(), vec!["10.1.0.2:9000 -"]);
    // Nothing serving: a known service with an empty set, not a missing one.
    let mut t = HashSet::new();
    st.apply_slice(
        &slice(
            "ns",
            "s-1",
            "s",
            "IPv4",
            &[("", 9000)],
            &[("10.1.0.3", Some(false), Some(false), None, "")],
        ),
        &mut t,
    );
    render_all(&mut st, t, &mut v);
    assert_eq!(addrs(&v, "ns/8080/s").unwrap(), Vec::<String>::new());
}

#[test]
fn deleting_the_service_removes_its_names_and_relisting_drops_what_vanished() {
    let mut st = Store::default();
    let mut t = HashSet::new();
    st.replace_services(
        None,
        compact_services(&[
            svc("a", "x", &[("http", 80)]),
            svc("b", "y", &[("http", 80)]),
        ]),
        &mut t,
    );
    st.replace_slices(
        None,
        compact_slices(&[
            one("a", "x-1", "x", ("http", 1), ("10.0.0.1", "")),
            one("b", "y-1", "y", ("http", 2), ("10.0.0.2", "")),
        ]),
        &mut t,
    );
    let mut v = imbl::HashMap::new();
    let mut names = false;
    for k in t.drain() {
        names |= st.render(&k, &mut v);
    }
    assert!(names);
    assert_eq!(v.len(), 4);
    // A re-list after an outage in which y was deleted.
    st.replace_services(
        None,
        compact_services(&[svc("a", "x", &[("http", 80)])]),
        &mut t,
    );
    st.replace_slices(
        None,
        compact_slices(&[one("a", "x-1", "x", ("http", 1), ("10.0.0.9", ""))]),
        &mut t,
    );
    for k in t.drain() {
        st.render(&k, &mut v);
    }
    assert!(addrs(&v, "b/http/y").is_none());
    assert_eq!(addrs(&v, "a/http/x").unwrap(), vec!["10.0.0.9:1 -"]);
    assert_eq!(st.counts(), (1, 1));
    // A slice moving to another service touches both.
    let mut t = HashSet::new();
    st.apply_slice(&one("a", "x-1", "z", ("http", 1), ("10.0.0.9", "")), &mut t);
    assert_eq!(t.len(), 2);
}

#[test]
fn an_unchanged_service_keeps_its_arc() {
    let mut st = Store::default();
    let mut t = HashSet::new();
    st.apply_service(&svc("a", "x", &[("http", 80)]));
    st.apply_slice(&one("a", "x-1", "x", ("http", 1), ("10.0.0.1", "")), &mut t);
    let mut v = imbl::HashMap::new();
    render_all(&mut st, t, &mut v);
    let before = v.clone();
    let mut t = HashSet::new();
    st.apply_slice(&one("a", "x-1", "x", ("http", 1), ("10.0.0.1", "")), &mut t);
    assert!(!st.render(&("a".into(), "x".into()), &mut v));
    assert!(Arc::ptr_eq(
        before.get("a/http/x").unwrap(),
        v.get("a/http/x").unwrap()
    ));
}

#[test]
fn a_change_touches_only_its_service() {
    let mut st = Store::default();
    let mut t = HashSet::new();
    for i in 0..100 {
        let name = format!("s{i}");
        st.apply_service(&svc("a", &name, &[("http", 80)]));
        st.apply_slice(
            &one(
                "a",
                &format!("{name}-1"),
                &name,
                ("http", 1),
                ("10.0.0.1", "n1"),
            ),
            &mut t,
        );
    }
    let mut v = imbl::HashMap::new();
    render_all(&mut st, t, &mut v);
    let before = v.clone();
    let mut t = HashSet::new();
    st.apply_slice(
        &one("a", "s7-1", "s7", ("http", 1), ("10.0.0.2", "n1")),
        &mut t,
    );
    assert_eq!(t.len(), 1, "one service touched");
    render_all(&mut st, t, &mut v);
    let mut same = 0;
    for (k, s) in before.iter() {
        if Arc::ptr_eq(s, v.get(k).unwrap()) {
            same += 1;
        }
    }
    // Only s7's two names (by port name and number) were replaced.
    assert_eq!(same, before.len() - 2);
    // Node names are shared, not copied per endpoint.
    let n1: Vec<_> = v
        .values()
        .map(|s| s.endpoints[0].node.clone().unwrap())
        .collect();
    assert!(n1.windows(2).all(|w| Arc::ptr_eq(&w[0], &w[1])));
}
