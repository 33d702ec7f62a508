//! The `io.l5d.fs` namer through the running proxy: endpoints from files,
//! changes picked up without a restart, missing and empty services.

use crate::support::{Proxy, Reply, Upstream, drivers, get};
use std::time::{Duration, Instant};

/// A directory that removes itself.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "switchyard-fs-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    fn write(&self, name: &str, text: &str) {
        // Write then rename, so the namer never reads half a file.
        let tmp = self.0.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, self.0.join(name)).unwrap();
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn fs_namer_routes_and_follows_changes() {
    for driver in drivers() {
        let v1 = Upstream::start(Reply::Describe("v1"));
        let v2 = Upstream::start(Reply::Describe("v2"));
        let dir = TempDir::new();
        dir.write("world", &format!("127.0.0.1 {}\n", v1.addr.port()));
        dir.write("empty", "");
        let yaml = format!(
            "namers:\n- kind: io.l5d.fs\n  rootDir: {}\n  pollIntervalMs: 20\nrouters:\n- protocol: http\n  label: out\n  dtab: |\n    /srv => /#/io.l5d.fs;\n    /svc => /srv;\n    /svc/fallback => /srv/world;\n  servers:\n  - port: 0\n",
            dir.0.display()
        );
        let px = Proxy::start(&yaml, driver);
        let a = px.addr("out");
        assert!(
            get(a, "GET / HTTP/1.1\r\nHost: world\r\n\r\n")
                .text()
                .starts_with("v1:"),
            "{driver}"
        );
        // A known service with no endpoints: 502, no fallback.
        assert_eq!(get(a, "GET / HTTP/1.1\r\nHost: empty\r\n\r\n").status, 502);
        // An unknown service is Neg: 502 here (no rule falls back for it)...
        assert_eq!(
            get(a, "GET / HTTP/1.1\r\nHost: nowhere\r\n\r\n").status,
            502
        );
        // ...while a rule with a fallback uses it.
        assert!(
            get(a, "GET / HTTP/1.1\r\nHost: fallback\r\n\r\n")
                .text()
                .starts_with("v1:")
        );
        // Changing the file moves traffic without a restart.
        dir.write("world", &format!("127.0.0.1 {}\n", v2.addr.port()));
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let r = get(a, "GET / HTTP/1.1\r\nHost: world\r\n\r\n");
            if r.text().starts_with("v2:") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the change was not picked up: {}",
                r.text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // A new service appears.
        dir.write("late", &format!("127.0.0.1 {}\n", v1.addr.port()));
        let deadline = Instant::now() + Duration::from_secs(5);
        while get(a, "GET / HTTP/1.1\r\nHost: late\r\n\r\n").status != 200 {
            assert!(
                Instant::now() < deadline,
                "the new service was not picked up"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn a_missing_root_dir_fails_at_start_up() {
    let yaml = "namers:\n- kind: io.l5d.fs\n  rootDir: /nonexistent/switchyard\nrouters:\n- protocol: http\n  label: out\n  servers:\n  - port: 0\n";
    let cfg = crate::support::TempFile::new("yaml", yaml);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["run", "--config", cfg.path()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("namers[0].rootDir"), "{err}");
}

/// A namer whose directory disappears keeps serving its last view and says
/// so on `/namer_state` and in the staleness metrics; it recovers when the
/// directory returns.
#[test]
fn unreadable_source_is_reported_and_last_view_kept() {
    let up = Upstream::start(Reply::Describe("v1"));
    let dir = TempDir::new();
    dir.write("world", &format!("127.0.0.1 {}\n", up.addr.port()));
    let admin_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let yaml = format!(
        "admin:\n  port: {admin_port}\nnamers:\n- kind: io.l5d.fs\n  rootDir: {}\n  pollIntervalMs: 20\nrouters:\n- protocol: http\n  label: out\n  dtab: /svc => /#/io.l5d.fs;\n  servers:\n  - port: 0\n",
        dir.0.display()
    );
    let px = Proxy::start(&yaml, "auto");
    let admin: std::net::SocketAddr = ([127, 0, 0, 1], admin_port).into();
    let state = || -> serde_json::Value {
        let r = loop {
            if std::net::TcpStream::connect(admin).is_ok() {
                break get(admin, "GET /namer_state HTTP/1.1\r\nHost: a\r\n\r\n");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        serde_json::from_str(&r.text()).unwrap()
    };
    let until = |what: &str, ok: &dyn Fn(&serde_json::Value) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let s = state();
            if ok(&s["namers"][0]) {
                return;
            }
            assert!(Instant::now() < deadline, "{what}: {s}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    until("healthy", &|n| n["errors"] == 0 && n["lastError"].is_null());

    std::fs::remove_dir_all(&dir.0).unwrap();
    until("error reported", &|n| {
        n["errors"].as_u64() > Some(0)
            && n["lastError"]
                .as_str()
                .is_some_and(|e| e.contains(&*dir.0.to_string_lossy()))
    });
    // The last good view still routes.
    let a = px.addr("out");
    assert!(
        get(a, "GET / HTTP/1.1\r\nHost: world\r\n\r\n")
            .text()
            .starts_with("v1:")
    );
    let metrics = get(
        admin,
        "GET /admin/metrics/prometheus HTTP/1.1\r\nHost: a\r\n\r\n",
    )
    .text();
    let errors_line = metrics
        .lines()
        .find(|l| l.starts_with("switchyard_discovery_errors_total{"))
        .expect(&metrics);
    assert!(!errors_line.ends_with(" 0"), "{errors_line}");
    // Staleness grows while the source is unreadable.
    std::thread::sleep(Duration::from_millis(300));
    let stale = state()["namers"][0]["lastSyncAgoMs"].as_u64().unwrap();
    assert!(stale >= 250, "{stale}");

    std::fs::create_dir_all(&dir.0).unwrap();
    dir.write("world", &format!("127.0.0.1 {}\n", up.addr.port()));
    until("recovered", &|n| {
        n["lastError"].is_null() && n["lastSyncAgoMs"].as_u64() < Some(250)
    });
}
