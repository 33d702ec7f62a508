//! The staging demo of linkerd's "A Service Mesh for Kubernetes, Part VI",
//! on loopback: a `hello` app that calls `world` through the outgoing
//! router, `world-v1` ("world") and `world-v2` ("earth"), and the three
//! routers with the Part VI dtabs, using the file namer.
//!
//! On a node of the real deployment, traffic between routers goes app ->
//! local outgoing -> the destination node's incoming -> pod. Here the two
//! namer directories play the nodes' parts: `mesh/` resolves every service
//! to the incoming router (what the daemonset transformer did), `local/` to
//! the apps themselves (what the incoming router's localnode transformer
//! kept).
//!
//! The apps are plain blocking HTTP/1.1 servers: they are the demo's
//! scenery, not its subject. They are also `switchyard demo-app`
//! subcommands, so one container image serves the Kubernetes demo.

#![allow(clippy::disallowed_methods)] // demo apps are not shards

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

/// Serves `handle` on `listener`, a thread per connection, keep-alive.
pub fn serve(
    listener: TcpListener,
    handle: impl Fn(&[(String, String)]) -> String + Send + Sync + 'static,
) {
    let handle = std::sync::Arc::new(handle);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut s) = conn else { continue };
            let handle = handle.clone();
            std::thread::spawn(move || {
                let _ = s.set_read_timeout(Some(Duration::from_secs(60)));
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                loop {
                    let mut hs = [httparse::EMPTY_HEADER; 64];
                    let mut req = httparse::Request::new(&mut hs);
                    match req.parse(&buf) {
                        Ok(httparse::Status::Complete(n)) => {
                            let headers: Vec<(String, String)> = req
                                .headers
                                .iter()
                                .map(|h| {
                                    (
                                        h.name.to_owned(),
                                        String::from_utf8_lossy(h.value).into_owned(),
                                    )
                                })
                                .collect();
                            buf.drain(..n);
                            let body = handle(&headers);
                            let resp = format!(
                                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
                                body.len()
                            );
                            if s.write_all(resp.as_bytes()).is_err() {
                                return;
                            }
                        }
                        Ok(httparse::Status::Partial) => match s.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(k) => buf.extend_from_slice(&chunk[..k]),
                        },
                        Err(_) => {
                            let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                            return;
                        }
                    }
                }
            });
        }
    });
}

/// The `world` app: answers `<text> (<its address>)`.
pub fn world(listener: TcpListener, text: String) {
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    serve(listener, move |_| format!("{text} ({addr})"));
}

/// The `hello` app: asks `world` through the proxy (as an `http_proxy`
/// client would), forwarding every `l5d-ctx-*` header it received, and
/// answers `Hello (<its address>) <world's answer>!!`.
pub fn hello(listener: TcpListener, proxy: SocketAddr) {
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    serve(listener, move |headers| {
        let ctx: String = headers
            .iter()
            .filter(|(n, _)| n.to_ascii_lowercase().starts_with("l5d-ctx-"))
            .map(|(n, v)| format!("{n}: {v}\r\n"))
            .collect();
        let world = call_world(proxy, &ctx).unwrap_or_else(|e| format!("(world unreachable: {e})"));
        format!("Hello ({addr}) {world}!!")
    });
}

fn call_world(proxy: SocketAddr, ctx: &str) -> Result<String, String> {
    let mut s =
        TcpStream::connect_timeout(&proxy, Duration::from_secs(2)).map_err(|e| e.to_string())?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let req =
        format!("GET http://world/ HTTP/1.1\r\nHost: world\r\n{ctx}Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).map_err(|e| e.to_string())?;
    let mut hs = [httparse::EMPTY_HEADER; 64];
    let mut r = httparse::Response::new(&mut hs);
    match r.parse(&resp) {
        Ok(httparse::Status::Complete(n)) if r.code == Some(200) => {
            Ok(String::from_utf8_lossy(&resp[n..]).into_owned())
        }
        Ok(httparse::Status::Complete(n)) => Err(format!(
            "{} {}",
            r.code.unwrap_or(0),
            String::from_utf8_lossy(&resp[n..]).trim()
        )),
        _ => Err("malformed response".into()),
    }
}

/// Ports the demo's routers listen on.
#[derive(Debug, Clone, Copy)]
pub struct DemoPorts {
    pub ingress: u16,
    pub outgoing: u16,
    pub incoming: u16,
    pub admin: u16,
}

/// The demo's config: the Part VI routers over two file namers.
pub fn demo_config(dir: &std::path::Path, ports: DemoPorts) -> String {
    format!(
        r#"namers:
- kind: io.l5d.fs
  prefix: /io.l5d.fs
  rootDir: {mesh}
  pollIntervalMs: 200
- kind: io.l5d.fs
  prefix: /io.l5d.fs.local
  rootDir: {local}
  pollIntervalMs: 200
routers:
- protocol: http
  label: ingress
  dtab: |
    /srv                    => /#/io.l5d.fs ;
    /domain/world/hello/www => /srv/hello ;
    /domain/world/hello/api => /srv/api ;
    /host                   => /$/io.buoyant.http.domainToPathPfx/domain ;
    /svc                    => /host ;
  servers:
  - ip: 127.0.0.1
    port: {ingress}
    trust: edge
    overridePolicy:
      prefixes: [/host]
      destinations: [/srv]
- protocol: http
  label: outgoing
  dtab: |
    /srv        => /#/io.l5d.fs ;
    /host       => /srv ;
    /host/world => /srv/world-v1 ;
    /svc        => /host ;
  servers:
  - ip: 127.0.0.1
    port: {outgoing}
- protocol: http
  label: incoming
  dtab: |
    /srv                    => /#/io.l5d.fs.local ;
    /domain/world/hello/www => /srv/hello ;
    /domain/world/hello/api => /srv/api ;
    /host                   => /$/io.buoyant.http.domainToPathPfx/domain ;
    /host                   => /srv ;
    /host/world             => /srv/world-v1 ;
    /svc                    => /host ;
  servers:
  - ip: 127.0.0.1
    port: {incoming}
"#,
        mesh = dir.join("mesh").display(),
        local = dir.join("local").display(),
        ingress = ports.ingress,
        outgoing = ports.outgoing,
        incoming = ports.incoming,
    )
}

/// Starts the apps and writes the namer directories under `dir`.
pub fn start_apps(dir: &std::path::Path, ports: DemoPorts) -> std::io::Result<()> {
    let mesh = dir.join("mesh");
    let local = dir.join("local");
    std::fs::create_dir_all(&mesh)?;
    std::fs::create_dir_all(&local)?;
    let outgoing: SocketAddr = ([127, 0, 0, 1], ports.outgoing).into();
    for (name, text) in [("hello", ""), ("world-v1", "world"), ("world-v2", "earth")] {
        let l = TcpListener::bind("127.0.0.1:0")?;
        let addr = l.local_addr()?;
        if name == "hello" {
            hello(l, outgoing);
        } else {
            world(l, text.into());
        }
        std::fs::write(local.join(name), format!("{} {}\n", addr.ip(), addr.port()))?;
        std::fs::write(mesh.join(name), format!("127.0.0.1 {}\n", ports.incoming))?;
    }
    Ok(())
}

/// What `switchyard demo` prints once it is up.
pub fn instructions(ports: DemoPorts) -> String {
    format!(
        "Switchyard demo: linkerd's Part VI staging example on loopback.\n\
         \n\
         Every request sees world-v1:\n  \
           curl -H 'Host: www.hello.world' http://127.0.0.1:{i}/\n\
         \n\
         Stage world-v2 for this request only (the override travels with it\n\
         through ingress -> incoming -> hello -> outgoing -> incoming -> world-v2):\n  \
           curl -H 'Host: www.hello.world' -H 'l5d-dtab: /host/world => /srv/world-v2;' http://127.0.0.1:{i}/\n\
         \n\
         The ingress refuses overrides outside /host -> /srv (403):\n  \
           curl -i -H 'Host: www.hello.world' -H 'l5d-dtab: /host/world => /$/inet/127.0.0.1/22;' http://127.0.0.1:{i}/\n\
         \n\
         Inside the mesh (outgoing router, as hello uses it):\n  \
           curl -H 'Host: world' http://127.0.0.1:{o}/\n\
         \n\
         The dtab playground: http://127.0.0.1:{a}/delegator\n\
         \n\
         Ctrl-C stops it.\n",
        i = ports.ingress,
        o = ports.outgoing,
        a = ports.admin,
    )
}
