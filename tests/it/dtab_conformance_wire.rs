//! The `headers` and `identify` categories of the dtab conformance vectors,
//! run against the real request path: a live proxy in front of a recording
//! upstream, checking what the upstream received.

use crate::support::{Proxy, Reply, Tally, Upstream, corpus_path, drivers, get};
use serde_json::Value;

/// Cases not run on the wire, with the reason.
const SKIPPED: &[(&str, &str)] = &[
    (
        "hdr-008",
        "Finagle's Dtab-Local and X-Dtab headers: linkerd's HTTP router neither applies nor strips them",
    ),
    (
        "id-103",
        "a Host value with a space: linkerd identified it; Switchyard refuses the request at parsing (400), \
         since RFC 9110 §7.2 allows only a uri-host and port there",
    ),
];

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or_default()
}

fn yaml(dtab: &str, identifier: &str, dst_prefix: &str) -> String {
    format!(
        "routers:\n- protocol: http\n  label: r\n  dstPrefix: {dst_prefix}\n  dtab: '{dtab}'\n{identifier}  servers:\n  - port: 0\n"
    )
}

fn run_header_case(c: &Value, driver: &str) -> Result<(), String> {
    let up = Upstream::start(Reply::Describe("up"));
    let dtab = c["base_dtab"]
        .as_str()
        .unwrap_or("/svc => /$/inet/127.1/<dog>");
    let dtab = dtab.replace("<dog>", &up.addr.port().to_string());
    let px = Proxy::start(&yaml(&dtab, "", "/svc"), driver);
    let host = c["request_host"].as_str().unwrap_or("dog");
    let mut req = format!("GET / HTTP/1.1\r\nHost: {host}\r\n");
    for h in c["headers"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
    {
        req.push_str(&format!(
            "{}: {}\r\n",
            h[0].as_str().unwrap_or_default(),
            h[1].as_str().unwrap_or_default()
        ));
    }
    req.push_str("\r\n");
    let r = get(px.addr("r"), &req);
    if let Some(status) = c["expected_status"].as_u64() {
        if u64::from(r.status) != status || !up.all_bytes().is_empty() {
            return Err(format!(
                "status {} (want {status}); upstream saw {}",
                r.status,
                up.all_text()
            ));
        }
        return Ok(());
    }
    if r.status != 200 {
        return Err(format!("status {}: {}", r.status, r.text()));
    }
    let seen = up.requests();
    let req = seen.first().ok_or("the upstream saw no request")?;
    let want_ctx = c["expected_downstream_headers"]["l5d-ctx-dtab"]
        .as_str()
        .or_else(|| c["expected_local_dtab"].as_str())
        .filter(|v| !v.is_empty());
    if req.header("l5d-ctx-dtab") != want_ctx {
        return Err(format!(
            "l5d-ctx-dtab {:?}, want {want_ctx:?}",
            req.header("l5d-ctx-dtab")
        ));
    }
    for absent in c["expected_absent_downstream"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
    {
        if let Some(name) = absent.as_str()
            && req.header(name).is_some()
        {
            return Err(format!("{name} was forwarded"));
        }
    }
    if req.header("l5d-dtab").is_some() {
        return Err("l5d-dtab was forwarded".into());
    }
    Ok(())
}

fn run_identify_case(c: &Value, driver: &str) -> Result<(), String> {
    let up = Upstream::start(Reply::Describe("up"));
    let idc = &c["identifier"];
    let mut ident = format!("  identifier:\n    kind: {}\n", s(idc, "kind"));
    for (k, v) in idc.as_object().into_iter().flatten() {
        if k != "kind" && k != "dstPrefix" {
            ident.push_str(&format!("    {k}: {v}\n"));
        }
    }
    let prefix = idc["dstPrefix"].as_str().unwrap_or("/svc");
    // The expected name routes to the upstream, which reports the name it
    // was sent as l5d-dst-service; any other name has no route.
    let e = &c["expected"];
    let dtab = match e["dst"].as_str() {
        Some(dst) => format!("{dst} => /$/inet/127.0.0.1/{}", up.addr.port()),
        None => String::new(),
    };
    let px = Proxy::start(&yaml(&dtab, &ident, prefix), driver);
    let r = &c["request"];
    let version = r["version"].as_str().unwrap_or("HTTP/1.1");
    let mut req = format!(
        "{} {} {version}\r\n",
        r["method"].as_str().unwrap_or("GET"),
        r["uri"].as_str().unwrap_or("/")
    );
    if let Some(h) = r["host"].as_str() {
        req.push_str(&format!("Host: {h}\r\n"));
    }
    let mut has_host = r["host"].is_string();
    for h in r["headers"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
    {
        let name = h[0].as_str().unwrap_or_default();
        has_host |= name.eq_ignore_ascii_case("host");
        req.push_str(&format!(
            "{name}: {}\r\n",
            h[1].as_str().unwrap_or_default()
        ));
    }
    // HTTP/1.1 requires a Host; identifiers that do not read it get one.
    if !has_host && version == "HTTP/1.1" && s(idc, "kind") != "io.l5d.methodAndHost" {
        req.push_str("Host: any\r\n");
    }
    req.push_str("\r\n");
    let resp = get(px.addr("r"), &req);
    if e["unidentified"].as_bool() == Some(true) {
        return if resp.status == 400 && up.all_bytes().is_empty() {
            Ok(())
        } else {
            Err(format!(
                "status {}, want 400 and nothing upstream",
                resp.status
            ))
        };
    }
    let seen = up.requests();
    let got = seen
        .first()
        .ok_or_else(|| format!("status {}: {}", resp.status, resp.text()))?;
    if got.header("l5d-dst-service") != Some(s(e, "dst")) {
        return Err(format!(
            "l5d-dst-service {:?}, want {:?}",
            got.header("l5d-dst-service"),
            s(e, "dst")
        ));
    }
    if let Some(fwd) = e["forwarded_uri"].as_str() {
        let path = got.line.split_once(' ').map(|(_, p)| p).unwrap_or_default();
        if path != fwd {
            return Err(format!("forwarded {path:?}, want {fwd:?}"));
        }
    }
    Ok(())
}

#[test]
fn dtab_conformance_on_the_wire() {
    let path = corpus_path("SWITCHYARD_DTAB_CORPUS", "dtab.json");
    let corpus: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mut tally = Tally::default();
    for (category, run) in [
        (
            "headers",
            run_header_case as fn(&Value, &str) -> Result<(), String>,
        ),
        ("identify", run_identify_case),
    ] {
        for c in corpus[category]
            .as_array()
            .map(|a| a.as_slice())
            .unwrap_or_default()
        {
            let id = s(c, "id");
            if let Some((_, why)) = SKIPPED.iter().find(|(k, _)| *k == id) {
                tally.skipped.push(format!("{id}: {why}"));
                continue;
            }
            let result = drivers()
                .into_iter()
                .try_for_each(|d| run(c, d).map_err(|e| format!("{d}: {e}")));
            tally.record(id, result);
        }
    }
    tally.finish("dtab conformance on the wire");
}
