//! Identifiers: from an HTTP request to the logical name to bind
//! (linkerd's `io.l5d.*` identifier kinds, `reference/dtab-semantics.md` §3).
//!
//! Every identifier prepends the router's `dstPrefix` (default `/svc`). The
//! module sees the request only through [`RequestHead`], so it stays pure.

use super::path::Path;

/// What an identifier needs to see of a request head.
pub trait RequestHead {
    /// The method token, as sent.
    fn method(&self) -> &[u8];
    /// The origin-form request target (path and query).
    fn target(&self) -> &[u8];
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    fn minor_version(&self) -> u8;
    /// The value of the first header named `name` (ASCII case-insensitive).
    fn header(&self, name: &str) -> Option<&[u8]>;
}

/// One identifier kind with its settings.
#[derive(Debug, Clone, PartialEq)]
pub enum IdentifierKind {
    /// `io.l5d.header.token`: the raw header value as one element.
    HeaderToken { header: String },
    /// `io.l5d.header`: the header value parsed as a path.
    Header { header: String },
    /// `io.l5d.methodAndHost`: `/1.1/<METHOD>/<host>` (`/1.0/<METHOD>`),
    /// optionally followed by the URI path.
    MethodAndHost { http_uri_in_dst: bool },
    /// `io.l5d.path`: the first `segments` path segments; with `consume`,
    /// the forwarded target drops them.
    Path { segments: usize, consume: bool },
    /// `io.l5d.static`: always the same path.
    Static { path: Path },
}

/// A configured identifier: a kind and the prefix its names go under.
#[derive(Debug, Clone, PartialEq)]
pub struct Identifier {
    pub kind: IdentifierKind,
    pub dst_prefix: Path,
}

/// The result of identification.
#[derive(Debug, Clone, PartialEq)]
pub enum Identified {
    Dst {
        /// The logical name, e.g. `/svc/www.hello.world`.
        name: Path,
        /// With `io.l5d.path` + `consume`: the forwarded target is `/`
        /// followed by the original target from this byte offset on.
        consume_from: Option<usize>,
    },
    /// No name: linkerd answers 400 with `l5d-err: Unknown destination`.
    Unidentified(String),
}

impl Identifier {
    /// Writes bytes that determine what [`Identifier::identify`] would
    /// answer for `req`, when that is cheaper than identifying (no path is
    /// built): a route cache can then find a request's route before, or
    /// instead of, identifying it. Returns false (leaving `out` as it was)
    /// when this kind or this request has no such key; then identify.
    /// Keys start with a byte for their kind, never 0 (a cache may use 0
    /// for keys of another shape).
    pub fn key_to_bytes(&self, req: &dyn RequestHead, out: &mut Vec<u8>) -> bool {
        match &self.kind {
            IdentifierKind::HeaderToken { header } => match req.header(header) {
                // The name is the prefix and this value, as one element.
                Some(v) if !v.is_empty() => {
                    out.push(1);
                    out.extend_from_slice(&(v.len() as u32).to_le_bytes());
                    out.extend_from_slice(v);
                    true
                }
                _ => false,
            },
            IdentifierKind::Static { .. } => {
                out.push(2);
                true
            }
            _ => false,
        }
    }

    /// The default router identifier: `io.l5d.header.token` on `Host`,
    /// under `/svc`.
    pub fn default_host() -> Identifier {
        let mut dst_prefix = Path::empty();
        dst_prefix.push_nonempty(b"svc");
        Identifier {
            kind: IdentifierKind::HeaderToken {
                header: "Host".into(),
            },
            dst_prefix,
        }
    }

    pub fn identify(&self, req: &dyn RequestHead) -> Identified {
        let mut name = self.dst_prefix.clone();
        let mut consume_from = None;
        match &self.kind {
            IdentifierKind::HeaderToken { header } => match req.header(header) {
                Some(v) if !v.is_empty() => name.push_nonempty(v),
                _ => return unidentified(format!("{header} header is absent or empty")),
            },
            IdentifierKind::Header { header } => {
                let Some(v) = req.header(header) else {
                    return unidentified(format!("{header} header is absent"));
                };
                let parsed = std::str::from_utf8(v)
                    .map_err(|_| "not UTF-8".to_owned())
                    .and_then(|s| Path::read(s).map_err(|e| e.message));
                match parsed {
                    Ok(p) => name.append(&p),
                    Err(e) => return unidentified(format!("{header} header is not a path: {e}")),
                }
            }
            IdentifierKind::MethodAndHost { http_uri_in_dst } => {
                if req.minor_version() == 0 {
                    name.push_nonempty(b"1.0");
                    push_method(&mut name, req.method());
                } else {
                    let host = match req.header("host") {
                        Some(h) if !h.is_empty() => h.to_ascii_lowercase(),
                        _ => return unidentified("HTTP/1.1 request without a Host header".into()),
                    };
                    name.push_nonempty(b"1.1");
                    push_method(&mut name, req.method());
                    name.push_nonempty(&host);
                }
                if *http_uri_in_dst {
                    let target = req.target();
                    let path = &target[..target
                        .iter()
                        .position(|&b| b == b'?')
                        .unwrap_or(target.len())];
                    let parsed = std::str::from_utf8(path)
                        .map_err(|_| "not UTF-8".to_owned())
                        .and_then(|s| Path::read(s).map_err(|e| e.message));
                    match parsed {
                        Ok(p) => name.append(&p),
                        Err(e) => {
                            return unidentified(format!("request path is not a dtab path: {e}"));
                        }
                    }
                }
            }
            IdentifierKind::Path { segments, consume } => {
                let target = req.target();
                let path_end = target
                    .iter()
                    .position(|&b| b == b'?')
                    .unwrap_or(target.len());
                let path = &target[..path_end];
                let Some(rest) = path.strip_prefix(b"/") else {
                    return unidentified("request target is not a path".into());
                };
                let mut at = 1usize;
                let mut pieces = rest.split(|&b| b == b'/');
                for _ in 0..*segments {
                    match pieces.next() {
                        Some(seg) if !seg.is_empty() => {
                            name.push_nonempty(seg);
                            at += seg.len();
                            if target.get(at) == Some(&b'/') {
                                at += 1;
                            }
                        }
                        Some(_) if at < path_end => {
                            return unidentified("empty segment in path".into());
                        }
                        _ => return unidentified("not enough segments in path".into()),
                    }
                }
                if *consume {
                    consume_from = Some(at.min(target.len()));
                }
            }
            IdentifierKind::Static { path } => name.append(path),
        }
        Identified::Dst { name, consume_from }
    }
}

fn push_method(name: &mut Path, method: &[u8]) {
    // The data plane rejects empty methods before identification.
    if !method.is_empty() {
        name.push_nonempty(method);
    }
}

fn unidentified(reason: String) -> Identified {
    Identified::Unidentified(reason)
}

/// The forwarded target after `io.l5d.path` consumed segments.
pub fn consumed_target(target: &[u8], consume_from: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(target.len() + 1 - consume_from.min(target.len()));
    out.push(b'/');
    out.extend_from_slice(target.get(consume_from..).unwrap_or(&[]));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Req {
        method: &'static str,
        target: &'static str,
        minor: u8,
        headers: Vec<(&'static str, &'static str)>,
    }

    impl RequestHead for Req {
        fn method(&self) -> &[u8] {
            self.method.as_bytes()
        }
        fn target(&self) -> &[u8] {
            self.target.as_bytes()
        }
        fn minor_version(&self) -> u8 {
            self.minor
        }
        fn header(&self, name: &str) -> Option<&[u8]> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_bytes())
        }
    }

    fn path_id(segments: usize, consume: bool, target: &'static str) -> Identified {
        Identifier {
            kind: IdentifierKind::Path { segments, consume },
            dst_prefix: Path::read("/http").unwrap(),
        }
        .identify(&Req {
            method: "GET",
            target,
            minor: 1,
            headers: vec![],
        })
    }

    #[test]
    fn keys_stand_for_what_identify_answers() {
        let id = Identifier::default_host();
        let req = |host: Option<&'static str>| Req {
            method: "GET",
            target: "/",
            minor: 1,
            headers: host.map(|h| vec![("Host", h)]).unwrap_or_default(),
        };
        let key = |r: &Req| {
            let mut k = vec![9];
            id.key_to_bytes(r, &mut k).then_some(k)
        };
        let hosts = ["web", "Web", "web2", "a", "ab"];
        for a in hosts {
            for b in hosts {
                let (ra, rb) = (req(Some(a)), req(Some(b)));
                // Equal keys exactly when identification answers alike.
                assert_eq!(
                    key(&ra) == key(&rb),
                    id.identify(&ra) == id.identify(&rb),
                    "{a} vs {b}"
                );
            }
        }
        // No key where identification fails: the caller identifies, and
        // the key is left as it was.
        let mut k = vec![9];
        assert!(!id.key_to_bytes(&req(None), &mut k));
        assert!(!id.key_to_bytes(&req(Some("")), &mut k));
        assert_eq!(k, vec![9]);
        // Kinds without a key say so.
        let path = Identifier {
            kind: IdentifierKind::Path {
                segments: 1,
                consume: false,
            },
            dst_prefix: Path::read("/http").unwrap(),
        };
        assert!(!path.key_to_bytes(&req(Some("web")), &mut k));
    }

    #[test]
    fn path_identifier_edges() {
        assert!(matches!(
            path_id(2, false, "/a"),
            Identified::Unidentified(_)
        ));
        assert!(matches!(
            path_id(1, false, "//a"),
            Identified::Unidentified(_)
        ));
        assert!(matches!(
            path_id(1, false, "/"),
            Identified::Unidentified(_)
        ));
        let Identified::Dst { name, consume_from } = path_id(1, true, "/a") else {
            panic!()
        };
        assert_eq!(name.show(), "/http/a");
        assert_eq!(consumed_target(b"/a", consume_from.unwrap()), b"/");
    }
}
