//! `switchyard demo`, driven as a user would with curl: the staging story
//! of linkerd's Part VI through every hop.

use crate::support::{Client, get};
use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_ports() -> [u16; 4] {
    let ls: Vec<std::net::TcpListener> = (0..4)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let p: Vec<u16> = ls.iter().map(|l| l.local_addr().unwrap().port()).collect();
    [p[0], p[1], p[2], p[3]]
}

struct Demo(std::process::Child);

impl Drop for Demo {
    fn drop(&mut self) {
        crate::support::signal(&self.0, libc::SIGINT);
        let _ = self.0.wait();
    }
}

/// Starts `switchyard demo` on four ports that were free a moment ago. The
/// demo takes fixed ports, as a user gives them, so another process may take
/// one in between: a demo that exits without its instructions (it could not
/// bind) is retried on fresh ports, a few times.
fn start_demo() -> (
    Demo,
    u16,
    std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
) {
    let mut last_err = String::new();
    for _ in 0..3 {
        let [ingress, outgoing, incoming, admin] = free_ports();
        let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .args([
                "demo",
                "--ingress-port",
                &ingress.to_string(),
                "--outgoing-port",
                &outgoing.to_string(),
                "--incoming-port",
                &incoming.to_string(),
                "--admin-port",
                &admin.to_string(),
            ])
            .env("SWITCHYARD_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the demo");
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        // Drained aside so a chatty demo never blocks on a full pipe.
        let errs = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
            s
        });
        let demo = Demo(child);
        // The instructions come once everything is up.
        let mut lines = std::io::BufReader::new(stdout).lines();
        match lines.next() {
            Some(Ok(first)) => {
                assert!(first.starts_with("Switchyard demo"), "{first}");
                return (demo, ingress, lines);
            }
            _ => {
                drop(demo);
                last_err = errs.join().unwrap_or_default();
            }
        }
    }
    panic!("the demo did not start three times; last stderr:\n{last_err}");
}

#[test]
fn demo_stages_world_v2_for_one_request_at_a_time() {
    let (demo, ingress, _lines) = start_demo();
    let a: std::net::SocketAddr = ([127, 0, 0, 1], ingress).into();
    let plain = "GET / HTTP/1.1\r\nHost: www.hello.world\r\n\r\n";
    let staged = "GET / HTTP/1.1\r\nHost: www.hello.world\r\nl5d-dtab: /host/world => /srv/world-v2;\r\n\r\n";
    let r = get(a, plain);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.text().starts_with("Hello (")
            && r.text().contains(") world (")
            && r.text().ends_with(")!!"),
        "{}",
        r.text()
    );
    let r = get(a, staged);
    assert!(r.text().contains(") earth ("), "{}", r.text());
    // An override to an address is refused at the ingress.
    let r = get(
        a,
        "GET / HTTP/1.1\r\nHost: www.hello.world\r\nl5d-dtab: /host/world => /$/inet/127.0.0.1/22;\r\n\r\n",
    );
    assert_eq!(r.status, 403);
    // Concurrent requests with and without the override never mix.
    let workers: Vec<_> = (0..6)
        .map(|w| {
            std::thread::spawn(move || {
                let mut c = Client::connect(a);
                for i in 0..25 {
                    let stage = (w + i) % 2 == 0;
                    c.send(if stage { staged } else { plain }.as_bytes());
                    let r = c.response().expect("response");
                    let want = if stage { ") earth (" } else { ") world (" };
                    assert!(
                        r.text().contains(want),
                        "request {i} of worker {w}: {}",
                        r.text()
                    );
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("no request saw the other's world");
    }
    // Ctrl-C: a clean exit.
    let mut demo = demo;
    crate::support::signal(&demo.0, libc::SIGINT);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = demo.0.try_wait().unwrap() {
            assert!(status.success(), "{status:?}");
            break;
        }
        assert!(Instant::now() < deadline, "the demo did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
}
