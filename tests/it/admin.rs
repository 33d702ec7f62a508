//! The admin server over real sockets.

use crate::support::{Client, Proxy, Reply, Upstream, get};
use std::net::SocketAddr;
use std::process::Command;

fn request(addr: SocketAddr, method: &str, path: &str, body: &str) -> crate::support::Response {
    let mut c = Client::connect(addr);
    c.send(
        format!(
            "{method} {path} HTTP/1.1\r\nHost: admin\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    c.response().expect("admin response")
}

const DTAB: &str = "/srv=>/$/inet/127.0.0.1/PORT;/host=>/srv;/svc=>/host";

#[test]
fn admin_endpoints() {
    let up = Upstream::start(Reply::Fixed("ok"));
    let dtab = DTAB.replace("PORT", &up.addr.port().to_string());
    let yaml = format!(
        "admin:\n  port: 0\nrouters:\n- protocol: http\n  label: edge\n  dtab: '{dtab}'\n  servers:\n  - port: 0\n    trust: edge\n    overridePolicy:\n      prefixes: [/host]\n      destinations: [/srv]\n      requireHeader: {{name: x-key, value: hunter2}}\n"
    );
    let mut px = Proxy::start(&yaml, "auto");
    let admin = px.admin.expect("admin address");
    assert_eq!(request(admin, "GET", "/admin/ping", "").text(), "pong");
    assert_eq!(request(admin, "GET", "/ready", "").status, 200);
    // The effective config, with the credential elided.
    let cfg = request(admin, "GET", "/config.json", "").text();
    assert!(cfg.contains("\"label\":\"edge\""), "{cfg}");
    assert!(cfg.contains("x-key") && !cfg.contains("hunter2"), "{cfg}");
    // /delegator.json agrees with `switchyard dtab explain` on the same input.
    let body = format!(r#"{{"namespace":"edge","dtab":"{dtab}","path":"/svc/web"}}"#);
    let r = request(admin, "POST", "/delegator.json", &body);
    assert_eq!(r.status, 200, "{}", r.text());
    let from_admin: serde_json::Value = serde_json::from_str(&r.text()).unwrap();
    let cli = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["dtab", "explain", "--dtab", &dtab, "/svc/web"])
        .output()
        .unwrap();
    let from_cli: serde_json::Value = serde_json::from_slice(&cli.stdout).unwrap();
    assert_eq!(from_admin, from_cli);
    // Errors as linkerd gave them.
    let r = request(
        admin,
        "POST",
        "/delegator.json",
        r#"{"dtab":"/a=>","path":"/a"}"#,
    );
    assert_eq!(r.status, 400);
    assert!(r.text().starts_with("Invalid dtab: "), "{}", r.text());
    assert_eq!(
        request(admin, "POST", "/delegator.json", "not json").status,
        400
    );
    // The playground page carries the routers' dtabs.
    let page = request(admin, "GET", "/delegator", "").text();
    assert!(
        page.contains("Dtab playground") && page.contains("/host=>/srv"),
        "{page}"
    );
    // The proxy still serves, and a drain can be asked for from loopback.
    assert_eq!(
        get(px.addr("edge"), "GET / HTTP/1.1\r\nHost: web\r\n\r\n").status,
        200
    );
    assert_eq!(request(admin, "POST", "/admin/shutdown", "").status, 200);
    assert_eq!(px.stop(), Some(0));
}

/// A proxy routing `web` to an upstream answering "ok", with its admin
/// server up; `extra` is prepended to the config.
fn web_with_admin(extra: &str) -> (Upstream, Proxy, SocketAddr) {
    let up = Upstream::start(Reply::Fixed("ok"));
    let yaml = format!(
        "{extra}admin:\n  port: 0\nrouters:\n- protocol: http\n  label: out\n  dtab: '/svc/web=>/$/inet/127.0.0.1/{}'\n  servers:\n  - port: 0\n",
        up.addr.port()
    );
    let px = Proxy::start(&yaml, "auto");
    let admin = px.admin.expect("admin address");
    (up, px, admin)
}

#[test]
fn prometheus_metrics_count_known_traffic() {
    let (up, px, admin) = web_with_admin("");
    let a = px.addr("out");
    let mut c = Client::connect(a);
    for _ in 0..7 {
        c.send(b"GET / HTTP/1.1\r\nHost: web\r\n\r\n");
        assert_eq!(c.response().unwrap().status, 200);
    }
    for _ in 0..3 {
        assert_eq!(
            get(a, "GET / HTTP/1.1\r\nHost: nowhere\r\n\r\n").status,
            502
        );
    }
    let text = request(admin, "GET", "/admin/metrics/prometheus", "").text();
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("valid exposition format");
    let value = |name: &str, labels: &[(&str, &str)]| -> f64 {
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => 0.0,
            })
            .sum()
    };
    assert_eq!(
        value("switchyard_requests_total", &[("router", "out")]),
        10.0,
        "{text}"
    );
    assert_eq!(
        value("switchyard_responses_total", &[("class", "2xx")]),
        7.0
    );
    assert_eq!(
        value("switchyard_responses_total", &[("class", "5xx")]),
        3.0
    );
    assert_eq!(
        value("switchyard_failures_total", &[("kind", "no_route")]),
        3.0
    );
    assert_eq!(
        value(
            "switchyard_service_requests_total",
            &[("service", "/svc/web")]
        ),
        7.0
    );
    let endpoint = up.addr.to_string();
    assert_eq!(
        value(
            "switchyard_endpoint_requests_total",
            &[("router", "out"), ("endpoint", &endpoint)]
        ),
        7.0
    );
    assert_eq!(value("switchyard_connections_total", &[]), 4.0);
    assert!(value("switchyard_route_cache_hits_total", &[]) >= 6.0);
    // Histogram buckets are cumulative and end at the count.
    let hist = scrape
        .samples
        .iter()
        .find(|s| s.metric == "switchyard_request_duration_seconds")
        .expect("latency histogram");
    let prometheus_parse::Value::Histogram(buckets) = &hist.value else {
        panic!("not a histogram")
    };
    assert!(
        buckets.windows(2).all(|w| w[0].count <= w[1].count),
        "{buckets:?}"
    );
    assert_eq!(buckets.last().map(|b| b.count), Some(10.0));
    // Conventions: snake_case, counters end in _total, durations in seconds.
    for s in &scrape.samples {
        assert!(
            s.metric.starts_with("switchyard_")
                && s.metric.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        );
        if matches!(s.value, prometheus_parse::Value::Counter(_)) {
            assert!(s.metric.ends_with("_total"), "{}", s.metric);
        }
    }
    // The flat JSON of linkerd 1 users.
    let j: serde_json::Value =
        serde_json::from_str(&request(admin, "GET", "/admin/metrics.json", "").text()).unwrap();
    assert_eq!(
        j[format!("rt/out/server/{}/{}/requests", a.ip(), a.port())],
        10
    );
    assert_eq!(j[format!("rt/out/endpoint/{endpoint}/requests")], 7);
    assert_eq!(j["rt/out/service/svc/web/requests"], 7);
}

#[test]
fn metrics_can_be_switched_off() {
    let (_up, px, admin) = web_with_admin("telemetry:\n  metrics: false\n");
    let a = px.addr("out");
    let mut c = Client::connect(a);
    for _ in 0..5 {
        c.send(b"GET / HTTP/1.1\r\nHost: web\r\n\r\n");
        assert_eq!(c.response().unwrap().status, 200);
    }
    // Traffic still flows; nothing is counted.
    let j: serde_json::Value =
        serde_json::from_str(&request(admin, "GET", "/admin/metrics.json", "").text()).unwrap();
    assert_eq!(
        j[format!("rt/out/server/{}/{}/requests", a.ip(), a.port())],
        0
    );
}
