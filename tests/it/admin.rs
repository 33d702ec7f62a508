//! The admin server over real sockets.

use crate::support::{Client, Proxy, Reply, Upstream, get};
use std::net::SocketAddr;
use std::process::Command;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

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
    let admin_port = free_port();
    let dtab = DTAB.replace("PORT", &up.addr.port().to_string());
    let yaml = format!(
        "admin:\n  port: {admin_port}\nrouters:\n- protocol: http\n  label: edge\n  dtab: '{dtab}'\n  servers:\n  - port: 0\n    trust: edge\n    overridePolicy:\n      prefixes: [/host]\n      destinations: [/srv]\n      requireHeader: {{name: x-key, value: hunter2}}\n"
    );
    let mut px = Proxy::start(&yaml, "auto");
    let admin: SocketAddr = ([127, 0, 0, 1], admin_port).into();
    // The admin server starts right after the routers; wait for it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(admin).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "admin did not start: {}",
            px.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
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
