//! The optional access log (`httpAccessLog`): one escaped line per
//! exchange, malformed requests included, written off the shards.

use crate::support::{Client, Proxy, Reply, TempFile, Upstream, get};
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn one_line_per_exchange() {
    let up = Upstream::start(Reply::Fixed("hello"));
    let log = TempFile::new("log", "");
    let admin_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let yaml = format!(
        "admin:\n  port: {admin_port}\nrouters:\n- protocol: http\n  label: out\n  httpAccessLog: {}\n  dtab: /svc/web => /$/inet/127.0.0.1/{};\n  servers:\n  - port: 0\n",
        log.path(),
        up.addr.port()
    );
    let px = Proxy::start(&yaml, "auto");
    let a = px.addr("out");
    let mut c = Client::connect(a);
    c.send(b"GET /a?b=1 HTTP/1.1\r\nHost: web\r\nUser-Agent: t\"e\\st\r\n\r\n");
    assert_eq!(c.response().unwrap().status, 200);
    assert_eq!(
        get(a, "GET /x HTTP/1.1\r\nHost: nowhere\r\n\r\n").status,
        502
    );
    assert_eq!(
        get(a, "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n").status,
        400
    );

    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let t = std::fs::read_to_string(&log.0).unwrap();
        if t.lines().count() >= 3 {
            break t;
        }
        assert!(Instant::now() < deadline, "access log so far: {t:?}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    // Client, RFC 3339 time, request line, status, bytes, Host, UA, name.
    let ok = lines
        .iter()
        .find(|l| l.contains("\"GET /a?b=1 HTTP/1.1\""))
        .expect(&text);
    assert!(ok.starts_with("127.0.0.1 - - [20"), "{ok}");
    assert!(ok.contains(r#"Z] "GET /a?b=1 HTTP/1.1" 200 "#), "{ok}");
    assert!(ok.contains(r#" "web" "t\"e\\st" dst=/svc/web us="#), "{ok}");
    let failed = lines.iter().find(|l| l.contains("GET /x")).expect(&text);
    assert!(
        failed.contains(r#""GET /x HTTP/1.1" 502 0 "nowhere" "" dst=- us="#),
        "{failed}"
    );
    let bad = lines.iter().find(|l| l.contains(r#"] "-""#)).expect(&text);
    assert!(bad.contains(r#""-" 400 0 "-" "-" dst=- us=0"#), "{bad}");
    // Nothing was dropped, and the admin server says so.
    let admin: std::net::SocketAddr = ([127, 0, 0, 1], admin_port).into();
    let metrics = get(
        admin,
        "GET /admin/metrics/prometheus HTTP/1.1\r\nHost: a\r\n\r\n",
    )
    .text();
    let want = format!(
        "switchyard_access_log_dropped_lines_total{{path=\"{}\"}} 0",
        log.path()
    );
    assert!(metrics.lines().any(|l| l == want), "{metrics}");
}

#[test]
fn an_unwritable_access_log_fails_at_start_up() {
    let cfg = TempFile::new(
        "yaml",
        "routers:\n- protocol: http\n  label: out\n  httpAccessLog: /nonexistent-dir/switchyard/access.log\n  servers:\n  - port: 0\n",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["run", "--config", cfg.path()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("routers[0].httpAccessLog"), "{err}");
}
