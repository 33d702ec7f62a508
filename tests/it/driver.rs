//! The io_uring -> epoll fallback, tested for real: the binary runs under a
//! seccomp filter that denies the io_uring system calls, as Docker's and
//! containerd's default profiles do.

#![cfg(all(target_os = "linux", target_arch = "x86_64"))]

use crate::support::{Proxy, Reply, Upstream, get};
use std::os::unix::process::CommandExt;
use std::process::Command;

const IO_URING_SETUP: u32 = 425;
const IO_URING_ENTER: u32 = 426;
const IO_URING_REGISTER: u32 = 427;

/// Installs a filter that fails the io_uring system calls with EPERM and
/// allows everything else.
#[allow(unsafe_code)]
fn deny_io_uring(cmd: &mut Command) {
    const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
    const RET_ALLOW: u32 = 0x7fff_0000;
    const RET_ERRNO: u32 = 0x0005_0000;
    let stmt = |code: u16, k: u32| libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    };
    let jeq = |k: u32, jt: u8, jf: u8| libc::sock_filter {
        code: 0x15,
        jt,
        jf,
        k,
    };
    let prog = vec![
        stmt(0x20, 4), // load seccomp_data.arch
        jeq(AUDIT_ARCH_X86_64, 0, 5),
        stmt(0x20, 0), // load seccomp_data.nr
        jeq(IO_URING_SETUP, 4, 0),
        jeq(IO_URING_ENTER, 3, 0),
        jeq(IO_URING_REGISTER, 2, 0),
        stmt(0x06, RET_ALLOW),
        stmt(0x06, RET_ALLOW),
        stmt(0x06, RET_ERRNO | libc::EPERM as u32),
    ];
    // SAFETY: the closure runs in the forked child before exec and only
    // makes two prctl calls on memory it owns (`prog` is moved in and
    // outlives the calls); it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            let fprog = libc::sock_fprog {
                len: prog.len() as u16,
                filter: prog.as_ptr() as *mut libc::sock_filter,
            };
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                &fprog as *const libc::sock_fprog,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

fn yaml(up: &Upstream) -> String {
    format!(
        "routers:\n- protocol: http\n  label: out\n  dtab: /svc => /$/inet/127.0.0.1/{};\n  servers:\n  - port: 0\n",
        up.addr.port()
    )
}

#[test]
fn falls_back_to_epoll_when_io_uring_is_denied() {
    let up = Upstream::start(Reply::Fixed("ok"));
    let px = Proxy::start_with(&yaml(&up), "auto", deny_io_uring);
    assert_eq!(px.driver, "epoll", "log: {}", px.log());
    assert!(
        px.log().contains("falling back to epoll"),
        "the fallback is logged: {}",
        px.log()
    );
    let r = get(px.addr("out"), "GET / HTTP/1.1\r\nHost: web\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "ok");
}

#[test]
fn insisting_on_io_uring_fails_clearly_when_denied() {
    let cfg = crate::support::TempFile::new("yaml", &yaml(&Upstream::start(Reply::Fixed("ok"))));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchyard"));
    cmd.args(["run", "--config", cfg.path(), "--driver", "io_uring"]);
    deny_io_uring(&mut cmd);
    let out = cmd.output().expect("run switchyard");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("io_uring is unavailable or denied"), "{err}");
}
