//! The `switchyard dtab` commands, run as a user would.

use crate::support::TempFile;
use std::process::Command;

fn switchyard(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(args)
        .output()
        .expect("run switchyard");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn dtab_parse_prints_canonical_form() {
    let (code, out, _) = switchyard(&[
        "dtab",
        "parse",
        "/srv => /#/io.l5d.fs ;\n/host => /srv # comment\n;",
    ]);
    assert_eq!(code, 0);
    assert_eq!(out, "/srv=>/#/io.l5d.fs;/host=>/srv\n");
}

#[test]
fn dtab_parse_error_has_position_and_exit_2() {
    let (code, out, err) = switchyard(&["dtab", "parse", "/a=>/b;;/c=>/d"]);
    assert_eq!(code, 2);
    assert!(out.is_empty());
    assert!(err.contains("character 7"), "{err}");
    assert!(
        err.contains("'/' expected but ';' found at '/a=>/b;[;]/c=>/d'"),
        "{err}"
    );
}

#[test]
fn dtab_lookup_prints_one_step() {
    let (code, out, _) = switchyard(&["dtab", "lookup", "--dtab", "/a=>/b;/a/b=>/c", "/a/b/z"]);
    assert_eq!(code, 0);
    assert_eq!(out, "/c/z | /b/b/z\n");
}

const PART_VI_INCOMING: &str = "/srv=>/#/io.l5d.fs;/domain/world/hello/www=>/srv/hello;\
/host=>/$/io.buoyant.http.domainToPathPfx/domain;/host=>/srv;/host/world=>/srv/world-v1;/svc=>/host";

fn endpoints_file() -> TempFile {
    TempFile::new(
        "json",
        r#"{"/#/io.l5d.fs/world-v1": ["127.0.0.1:7001"], "/#/io.l5d.fs/world-v2": ["127.0.0.1:7002"],
            "/#/io.l5d.fs/hello": ["127.0.0.1:7000"]}"#,
    )
}

#[test]
fn dtab_bind_follows_the_staging_override() {
    let eps = endpoints_file();
    let (code, out, _) = switchyard(&[
        "dtab",
        "bind",
        "--dtab",
        PART_VI_INCOMING,
        "--endpoints",
        eps.path(),
        "/svc/world",
    ]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["state"], "ok");
    assert_eq!(v["tree"], "/#/io.l5d.fs/world-v1");
    assert_eq!(v["addresses"][0]["address"], "127.0.0.1:7001");

    let (code, out, _) = switchyard(&[
        "dtab",
        "bind",
        "--dtab",
        PART_VI_INCOMING,
        "--local",
        "/host/world => /srv/world-v2;",
        "--endpoints",
        eps.path(),
        "/svc/world",
    ]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["tree"], "/#/io.l5d.fs/world-v2");
    assert_eq!(v["addresses"][0]["id"], "/#/io.l5d.fs/world-v2");
    assert_eq!(v["addresses"][0]["residual"], "/");
    assert_eq!(v["addresses"][0]["address"], "127.0.0.1:7002");
}

#[test]
fn dtab_bind_reports_loops_and_neg() {
    let (code, out, _) = switchyard(&["dtab", "bind", "--dtab", "/s=>/s/srv", "/s/x"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["state"], "failed");
    assert_eq!(
        v["error"],
        "Max recursion level: 100 reached in Namer lookup"
    );

    let (_, out, _) = switchyard(&["dtab", "bind", "--dtab", PART_VI_INCOMING, "/svc/nowhere"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["state"], "ok");
    assert_eq!(v["tree"], "~");
    assert_eq!(v["addresses"], serde_json::json!([]));

    let eps = TempFile::new("json", r#"{"/#/io.l5d.fs/world-v1": "pending"}"#);
    let (_, out, _) = switchyard(&[
        "dtab",
        "bind",
        "--dtab",
        PART_VI_INCOMING,
        "--endpoints",
        eps.path(),
        "/svc/world",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["state"], "ok",
        "a bound id whose addresses are pending still binds"
    );
    assert_eq!(v["addresses"][0]["addr"]["type"], "pending");
}

#[test]
fn dtab_explain_shows_every_branch() {
    let eps = endpoints_file();
    let (code, out, _) = switchyard(&[
        "dtab",
        "explain",
        "--dtab",
        PART_VI_INCOMING,
        "--endpoints",
        eps.path(),
        "/svc/www.hello.world",
    ]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["type"], "delegate");
    assert_eq!(v["path"], "/svc/www.hello.world");
    assert!(v.get("dentry").is_none(), "the root has no dentry");
    let text = v.to_string();
    // The /srv fallback (Neg) and the domainToPathPfx branch are both shown.
    assert!(
        text.contains(r#""path":"/#/io.l5d.fs/www.hello.world","type":"neg""#)
            || text.contains(r#""type":"neg","path":"/#/io.l5d.fs/www.hello.world""#),
        "{text}"
    );
    assert!(text.contains(r#""id":"/#/io.l5d.fs/hello""#), "{text}");
}

#[test]
fn bad_endpoints_file_is_a_clear_error() {
    let eps = TempFile::new("json", r#"{"/#/io.l5d.fs/x": ["nope"]}"#);
    let (code, _, err) = switchyard(&[
        "dtab",
        "bind",
        "--dtab",
        "/a=>/b",
        "--endpoints",
        eps.path(),
        "/a",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("is not \"host:port\""), "{err}");
}
