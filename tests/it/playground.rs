//! The dtab playground in a real headless browser (Debian's `chromium`,
//! which `.ci/run` installs): the page loads, the staging question is asked
//! through the form's own code, and the tree shows world-v2 first. A
//! screenshot is left at `target/playground.png` for a person to look at.
//!
//! Without chromium the test fails, saying how to install it; set
//! `SWITCHYARD_SKIP_BROWSER_TEST=1` to skip it knowingly.

use std::process::Command;

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
}

#[test]
fn playground_in_a_headless_browser() {
    let Some(browser) = chromium() else {
        if std::env::var_os("SWITCHYARD_SKIP_BROWSER_TEST").is_some() {
            eprintln!("SKIPPED: no chromium; the playground was not tested in a browser");
            return;
        }
        panic!(
            "chromium is needed for this test (apt-get install chromium), or set SWITCHYARD_SKIP_BROWSER_TEST=1"
        );
    };
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    // Ports picked here can be taken by another test before the demo binds
    // them; the demo then exits at start. Try again with new ones.
    let mut started = None;
    for _attempt in 0..3 {
        let [i, o, n, a] = [(); 4].map(|()| free());
        let mut demo = Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .args([
                "demo",
                "--ingress-port",
                &i.to_string(),
                "--outgoing-port",
                &o.to_string(),
            ])
            .args([
                "--incoming-port",
                &n.to_string(),
                "--admin-port",
                &a.to_string(),
            ])
            .env("SWITCHYARD_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start the demo");
        let admin: std::net::SocketAddr = ([127, 0, 0, 1], a).into();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            if std::net::TcpStream::connect(admin).is_ok() {
                started = Some((demo, admin));
                break;
            }
            if demo.try_wait().ok().flatten().is_some() {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the demo's admin server did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        if started.is_some() {
            break;
        }
    }
    let (mut demo, admin) = started.expect("the demo started within three tries");
    let url = format!(
        "http://{admin}/delegator?router=outgoing&override=/host/world%20%3D%3E%20/srv/world-v2%3B&path=/svc/world"
    );
    let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    let profile = std::env::temp_dir().join(format!("switchyard-chromium-{}", std::process::id()));
    let flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1100,1000",
        "--virtual-time-budget=5000",
    ];
    let dom = Command::new(browser)
        .args(flags)
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .expect("run chromium");
    let _ = Command::new(browser)
        .args(flags)
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!(
            "--screenshot={}",
            target.join("playground.png").display()
        ))
        .arg(&url)
        .output();
    crate::support::signal(&demo, libc::SIGINT);
    let _ = demo.wait();
    let _ = std::fs::remove_dir_all(&profile);
    let html = String::from_utf8_lossy(&dom.stdout);
    let v2 = html
        .find("/#/io.l5d.fs/world-v2")
        .unwrap_or_else(|| panic!("no world-v2 in the rendered tree:\n{html}"));
    let v1 = html
        .find("/#/io.l5d.fs/world-v1")
        .expect("the fallback is shown too");
    assert!(v2 < v1, "the override's branch comes first");
    assert!(
        html.contains("class=\"leaf\""),
        "bound leaves are rendered: {html}"
    );
}
