//! The Kubernetes discovery benchmark: a cluster of SERVICES services with
//! ENDPOINTS_PER_SERVICE endpoints each (defaults 10,000 and 10, so 100,000
//! endpoints) in the fake API server, and a `switchyard run` child process
//! with two shards discovering it. Reports:
//!
//! - initial sync: from the child's start to `/ready` (every shard has
//!   applied the first complete snapshot), and the child's RSS then, beside
//!   the RSS of the same proxy discovering an empty cluster;
//! - change latency: EVENTS times, one endpoint of one service changes; the
//!   time from the API server emitting the watch event to every shard
//!   reporting the new generation (polled on the admin server, so it
//!   includes up to one poll's delay).
//!
//! Build the release binary first, then:
//!   cargo build --release && cargo run --release --example k8s_scale
//! This is a benchmark, not a test: nothing here asserts a time.

#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

#[path = "../tests/it/fake_apiserver.rs"]
mod fake_apiserver;

use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn service(i: usize) -> Value {
    json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": format!("svc-{i}"), "namespace": format!("ns-{}", i % 100), "uid": format!("uid-s-{i}")},
        "spec": {"type": "ClusterIP", "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]}})
}

fn slice(i: usize, per: usize, salt: usize) -> Value {
    let endpoints: Vec<Value> = (0..per)
        .map(|j| {
            let n = i * per + j + salt;
            json!({"addresses": [format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255)],
                   "conditions": {"ready": true, "serving": true, "terminating": false},
                   "nodeName": format!("node-{}", n % 50),
                   "targetRef": {"kind": "Pod", "name": format!("svc-{i}-{j}"), "namespace": format!("ns-{}", i % 100)}})
        })
        .collect();
    json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("svc-{i}-abcde"), "namespace": format!("ns-{}", i % 100),
                     "labels": {"kubernetes.io/service-name": format!("svc-{i}")}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": endpoints})
}

fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").as_bytes())
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.split_whitespace().nth(1)?.parse().ok()?;
    let body = out.split_once("\r\n\r\n")?.1.to_owned();
    Some((status, body))
}

fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

struct Proxy {
    child: Child,
    admin: SocketAddr,
    _config: std::path::PathBuf,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self._config);
    }
}

fn start_proxy(api: &fake_apiserver::FakeApi, tag: &str) -> (Proxy, Duration) {
    let bin = std::env::current_exe()
        .ok()
        .and_then(|p| Some(p.parent()?.parent()?.join("switchyard")))
        .expect("target dir");
    let admin_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = std::env::temp_dir().join(format!(
        "switchyard-k8s-scale-{}-{tag}.yaml",
        std::process::id()
    ));
    std::fs::write(
        &config,
        format!(
            "admin:\n  port: {admin_port}\nruntime:\n  shards: 2\nnamers:\n- kind: io.l5d.k8s\n  host: 127.0.0.1\n  port: {}\nrouters:\n- protocol: http\n  label: out\n  dtab: /svc => /#/io.l5d.k8s/ns-0/http;\n  servers:\n  - port: 0\n",
            api.addr.port()
        ),
    )
    .unwrap();
    let t0 = Instant::now();
    let child = Command::new(&bin)
        .args(["run", "--config"])
        .arg(&config)
        .env("SWITCHYARD_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e} (cargo build --release first)", bin.display()));
    let admin: SocketAddr = ([127, 0, 0, 1], admin_port).into();
    loop {
        if let Some((200, _)) = http_get(admin, "/ready") {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(300), "never ready");
        std::thread::sleep(Duration::from_millis(1));
    }
    let took = t0.elapsed();
    (
        Proxy {
            child,
            admin,
            _config: config,
        },
        took,
    )
}

/// (generation, every shard's applied generation).
fn generations(admin: SocketAddr) -> (u64, Vec<u64>) {
    let Some((_, body)) = http_get(admin, "/namer_state") else {
        return (0, Vec::new());
    };
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    (
        v["generation"].as_u64().unwrap_or(0),
        v["shardsApplied"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default(),
    )
}

fn main() {
    let services = env_or("SERVICES", 10_000);
    let per = env_or("ENDPOINTS_PER_SERVICE", 10);
    let events = env_or("EVENTS", 200);

    // Baseline: the same proxy discovering an empty cluster.
    let empty = fake_apiserver::FakeApi::start();
    let (base, base_sync) = start_proxy(&empty, "empty");
    let base_rss = rss_kib(base.child.id(), "VmRSS:");
    drop(base);

    let api = fake_apiserver::FakeApi::start();
    let t = Instant::now();
    api.preload(
        (0..services).map(service).collect(),
        (0..services).map(|i| slice(i, per, 0)).collect(),
    );
    eprintln!(
        "loaded {services} services, {} endpoints into the fake API server in {:?}",
        services * per,
        t.elapsed()
    );
    let (px, sync) = start_proxy(&api, "full");
    let pid = px.child.id();
    let rss = rss_kib(pid, "VmRSS:");
    let hwm = rss_kib(pid, "VmHWM:");
    println!(
        "initial sync of {services} services / {} endpoints: {:.0} ms to ready (empty cluster: {:.0} ms)",
        services * per,
        sync.as_secs_f64() * 1e3,
        base_sync.as_secs_f64() * 1e3
    );
    println!(
        "RSS after sync: {:.1} MiB (peak {:.1} MiB); empty cluster: {:.1} MiB; difference {:.1} MiB",
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0,
        base_rss as f64 / 1024.0,
        (rss.saturating_sub(base_rss)) as f64 / 1024.0
    );

    let mut lat = Vec::with_capacity(events);
    for e in 0..events {
        let (g0, _) = generations(px.admin);
        let i = (e * 7919) % services;
        let v = slice(i, per, 1_000_000 + e);
        let t0 = Instant::now();
        api.apply_slice_value(v);
        loop {
            let (g, applied) = generations(px.admin);
            if g > g0 && !applied.is_empty() && applied.iter().all(|a| *a >= g) {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "event {e} never applied"
            );
        }
        lat.push(t0.elapsed());
        std::thread::sleep(Duration::from_millis(5));
    }
    lat.sort();
    let pct =
        |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)].as_secs_f64() * 1e3;
    println!(
        "watch event -> every shard applied, {events} events: median {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        pct(0.5),
        pct(0.99),
        lat.last().map_or(0.0, |d| d.as_secs_f64() * 1e3)
    );
    println!(
        "RSS after the events: {:.1} MiB",
        rss_kib(pid, "VmRSS:") as f64 / 1024.0
    );
}
