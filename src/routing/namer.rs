//! Namers: what turns a path the dtab cannot rewrite into bound endpoints.
//!
//! Two families, as in linkerd 1:
//! - configured namers mounted under `/#/<prefix>` (the file directory and
//!   Kubernetes namers of later issues), tried in config order, behind the
//!   [`Namer`] trait;
//! - the global `/$/<class>` namers (`F/Namer.scala` `Namer.global`):
//!   `inet`, `fixedinet`, `nil`, `fail`, and the rewriting namers linkerd
//!   configs use. An unknown class fails like linkerd's `UnknownNamer`.

use super::nametree::NameTree;
use super::path::Path;
use rustc_hash::FxHashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

/// A name in a tree: a path still to delegate, or a bound destination.
#[derive(Debug, Clone, PartialEq)]
pub enum Name {
    Path(Path),
    /// Boxed: a bound name is two paths and an address set, and names are
    /// moved through every delegation step.
    Bound(Box<Bound>),
}

impl Name {
    /// A bound name.
    pub fn bound(id: Path, residual: Path, addr: Addr) -> Name {
        Name::Bound(Box::new(Bound { id, residual, addr }))
    }
}

/// A concrete destination: the namer's `id`, the rest of the path (the
/// residual, reported as `l5d-dst-residual`) and the endpoints.
#[derive(Debug, Clone, PartialEq)]
pub struct Bound {
    pub id: Path,
    pub residual: Path,
    pub addr: Addr,
}

/// The state of a bound name's endpoint set (Finagle's `Addr`).
#[derive(Debug, Clone, PartialEq)]
pub enum Addr {
    /// A known set, possibly empty.
    Bound(Arc<[Endpoint]>),
    /// The namer knows the id but not its endpoints yet.
    Pending,
    /// Resolution failed.
    Failed(Arc<str>),
}

/// One endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    /// The host as written (`10.0.0.1`, `127.1`, `localhost`, or empty for
    /// the local host), kept for display.
    pub host: Arc<str>,
    pub port: u16,
    /// The address to connect to, when `host` is an IP literal (or empty).
    /// Names that need DNS are left for the data plane to resolve.
    pub ip: Option<IpAddr>,
    /// Relative load-balancing weight within its set.
    pub weight: f64,
    /// The Kubernetes node (or fs namer node label) the endpoint runs on.
    pub node: Option<Arc<str>>,
}

impl Endpoint {
    /// An endpoint at `host:port`, parsing `host` as an IP literal when it
    /// is one (including the short IPv4 forms Java accepts, like `127.1`).
    pub fn new(host: &str, port: u16) -> Endpoint {
        let ip = if host.is_empty() {
            Some(IpAddr::V4(Ipv4Addr::LOCALHOST))
        } else {
            parse_ip(host)
        };
        Endpoint {
            host: host.into(),
            port,
            ip,
            weight: 1.0,
            node: None,
        }
    }

    /// The socket address, when the host is an IP literal.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        self.ip.map(|ip| SocketAddr::new(ip, self.port))
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Parses an IP literal, accepting the classic inet_aton IPv4 forms that
/// Java's `InetAddress` accepts (`127.1` is 127.0.0.1, `10.1.2` is 10.1.0.2).
pub fn parse_ip(host: &str) -> Option<IpAddr> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Some(ip);
    }
    let parts: Vec<&str> = host.split('.').collect();
    if parts.len() > 4
        || parts
            .iter()
            .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let nums: Vec<u32> = parts
        .iter()
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let (last, head) = nums.split_last()?;
    if head.iter().any(|&n| n > 255) {
        return None;
    }
    let spare_bytes = 4 - head.len();
    if spare_bytes < 4 && *last >= 1u32 << (8 * spare_bytes) {
        return None;
    }
    let mut v: u32 = 0;
    for (i, &n) in head.iter().enumerate() {
        v |= n << (24 - 8 * i);
    }
    v |= last;
    Some(IpAddr::V4(Ipv4Addr::from(v)))
}

/// Why a lookup or a bind failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BindError {
    /// A branch made more lookups than the depth limit allows: a loop.
    #[error("Max recursion level: {max} reached in Namer lookup")]
    MaxDepth { max: usize },
    /// `/$/<class>` names no namer we have (linkerd's `UnknownNamer`).
    #[error("Unknown namer: {class} for path: {path}")]
    UnknownNamer { class: String, path: String },
    /// The whole bind made more lookups than its budget allows: a dtab that
    /// fans out exponentially.
    #[error("Delegation exceeded {max} lookups")]
    TooManyLookups { max: usize },
    /// A namer reported an error.
    #[error("{0}")]
    Namer(Arc<str>),
}

/// The result of one lookup or of a bind (Finagle's `Activity` states).
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup<T> {
    Ok(T),
    /// Not known yet (a namer not yet synced): not Neg, so no fallback.
    Pending,
    Failed(BindError),
}

/// A configured namer, mounted under a prefix such as `/#/io.l5d.fs`. It is
/// handed the path with the prefix removed and returns a tree: typically
/// `Leaf(Bound)` for a known service, `Neg` for an unknown one, `Pending`
/// while it has not synced.
pub trait Namer {
    fn lookup(&self, path: &Path) -> Lookup<NameTree<Name>>;
}

/// The configured namers of a router, tried in order after the dtab gives
/// Neg. Implemented by a list of [`Mount`]s; an endpoint snapshot or a test
/// double can implement it directly.
pub trait NamerSet {
    /// The first non-Neg answer of a namer whose prefix `path` starts with,
    /// or Neg.
    fn lookup(&self, path: &Path) -> Lookup<NameTree<Name>>;
}

/// A namer and the prefix it is mounted at.
pub struct Mount {
    pub prefix: Path,
    pub namer: Box<dyn Namer + Send + Sync>,
}

impl NamerSet for [Mount] {
    fn lookup(&self, path: &Path) -> Lookup<NameTree<Name>> {
        for m in self {
            if path.starts_with(&m.prefix) {
                match m.namer.lookup(&path.drop_front(m.prefix.len())) {
                    Lookup::Ok(NameTree::Neg) => continue,
                    other => return other,
                }
            }
        }
        Lookup::Ok(NameTree::Neg)
    }
}

impl NamerSet for Vec<Mount> {
    fn lookup(&self, path: &Path) -> Lookup<NameTree<Name>> {
        self.as_slice().lookup(path)
    }
}

/// No configured namers.
pub struct NoNamers;

impl NamerSet for NoNamers {
    fn lookup(&self, _: &Path) -> Lookup<NameTree<Name>> {
        Lookup::Ok(NameTree::Neg)
    }
}

/// Namers from a fixed table of bound ids to endpoint sets (`switchyard dtab
/// bind --endpoints`, tests): a path binds to the longest id that is a
/// prefix of it, the rest being the residual; a path under no id is Neg.
#[derive(Debug, Clone, Default)]
pub struct StaticNamers {
    ids: FxHashMap<Path, Addr>,
    /// Element counts of the ids, longest first, so lookup tries each
    /// length once.
    lengths: Vec<usize>,
}

impl StaticNamers {
    pub fn new() -> StaticNamers {
        StaticNamers::default()
    }

    /// Adds (or replaces) `id` with its address state.
    pub fn insert(&mut self, id: Path, addr: Addr) {
        if !self.lengths.contains(&id.len()) {
            self.lengths.push(id.len());
            self.lengths.sort_unstable_by(|a, b| b.cmp(a));
        }
        self.ids.insert(id, addr);
    }
}

impl NamerSet for StaticNamers {
    fn lookup(&self, path: &Path) -> Lookup<NameTree<Name>> {
        for &n in &self.lengths {
            if n > path.len() {
                continue;
            }
            let id = path.take(n);
            if let Some(addr) = self.ids.get(&id) {
                let residual = path.drop_front(n);
                return Lookup::Ok(NameTree::Leaf(Name::bound(id, residual, addr.clone())));
            }
        }
        Lookup::Ok(NameTree::Neg)
    }
}

/// The `/$/<class>` namers: built in, plus any registered (tests register
/// Finagle's test namer classes this way).
pub struct GlobalNamer {
    extra: FxHashMap<Box<[u8]>, Box<dyn Namer + Send + Sync>>,
}

impl Default for GlobalNamer {
    fn default() -> Self {
        Self::new()
    }
}

impl GlobalNamer {
    pub fn new() -> GlobalNamer {
        GlobalNamer {
            extra: FxHashMap::default(),
        }
    }

    /// Registers a namer for `/$/<class>/...`, handed the path after the
    /// class element. Built-in classes cannot be replaced.
    pub fn with_class(mut self, class: &str, namer: Box<dyn Namer + Send + Sync>) -> Self {
        self.extra.insert(class.as_bytes().into(), namer);
        self
    }

    /// `Namer.global.lookup`: only paths whose first element is `$`; any
    /// other path is Neg.
    pub fn lookup(&self, path: &Path) -> Lookup<NameTree<Name>> {
        if path.elem(0) != Some(b"$") {
            return Lookup::Ok(NameTree::Neg);
        }
        let Some(class) = path.elem(1) else {
            return Lookup::Ok(NameTree::Neg);
        };
        match class {
            b"inet" | b"fixedinet" => {
                if let Some(t) = inet(path) {
                    return Lookup::Ok(t);
                }
            }
            b"fail" => return Lookup::Ok(NameTree::Fail),
            b"nil" => return Lookup::Ok(NameTree::Empty),
            _ => {
                let rest = path.drop_front(2);
                if let Some(r) = rewriting(class, &rest) {
                    return r;
                }
                if let Some(n) = self.extra.get(class) {
                    return n.lookup(&rest);
                }
            }
        }
        Lookup::Failed(BindError::UnknownNamer {
            class: String::from_utf8_lossy(class).into_owned(),
            path: path.show(),
        })
    }
}

/// `String.toInt`: an optionally signed 32-bit decimal integer.
fn java_int(e: &[u8]) -> Option<i32> {
    let s = std::str::from_utf8(e).ok()?;
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `/$/inet/<host>/<port>/<residual...>` or `/$/inet/<port>/<residual...>`;
/// the four-element form is tried first, so `/$/inet/8080/9090` is host
/// `8080`. None when neither form fits (the caller reports UnknownNamer).
fn inet(path: &Path) -> Option<NameTree<Name>> {
    let (host, port, used) = match (path.elem(2), path.elem(3)) {
        (Some(h), Some(p)) if java_int(p).is_some() => (h, java_int(p)?, 4),
        (Some(p), _) if java_int(p).is_some() => (&b""[..], java_int(p)?, 3),
        _ => return None,
    };
    let id = path.take(used);
    let residual = path.drop_front(used);
    let addr = match (std::str::from_utf8(host), u16::try_from(port)) {
        (Ok(h), Ok(p)) => Addr::Bound(Arc::from(vec![Endpoint::new(h, p)])),
        (Err(_), _) => Addr::Failed("inet host is not UTF-8".into()),
        (_, Err(_)) => Addr::Failed(format!("port out of range: {port}").into()),
    };
    Some(NameTree::Leaf(Name::bound(id, residual, addr)))
}

/// linkerd's rewriting namers (`io.buoyant.http.*`, `io.buoyant.*Pfx`):
/// a path in, a path out that goes back through the dtab, Neg when the
/// input does not have the expected form.
fn rewriting(class: &[u8], rest: &Path) -> Option<Lookup<NameTree<Name>>> {
    let rewritten: Option<Result<Path, &'static str>> = match class {
        b"io.buoyant.http.domainToPathPfx" => two(rest).and_then(|(pfx, host)| {
            let host = is_host(host).then_some(host)?;
            let mut out = Path::empty();
            out.push_nonempty(pfx);
            Some(push_all(&mut out, java_split(host, b'.').rev()).map(|()| out))
        }),
        b"io.buoyant.http.domainToPath" => one(rest).and_then(|host| {
            let host = is_host(host).then_some(host)?;
            let mut out = Path::empty();
            Some(push_all(&mut out, java_split(host, b'.').rev()).map(|()| out))
        }),
        b"io.buoyant.hostportPfx" | b"io.buoyant.porthostPfx" => two(rest).and_then(|(pfx, hp)| {
            let (host, port) = host_colon_port(hp)?;
            let mut out = Path::empty();
            out.push_nonempty(pfx);
            let pair = if class == b"io.buoyant.hostportPfx" {
                [host, port]
            } else {
                [port, host]
            };
            Some(push_all(&mut out, pair.into_iter()).map(|()| out))
        }),
        b"io.buoyant.http.anyHostPfx" => two(rest).and_then(|(pfx, host)| {
            is_host(host).then(|| {
                let mut out = Path::empty();
                out.push_nonempty(pfx);
                Ok(out)
            })
        }),
        b"io.buoyant.rinet" => {
            // `/$/io.buoyant.rinet/<port>/<host>/...` is `/$/inet/<host>/<port>/...`.
            return Some(match (rest.elem(0), rest.elem(1)) {
                (Some(port), Some(host)) => {
                    let mut p = Path::empty();
                    for e in [&b"$"[..], b"inet", host, port] {
                        p.push_nonempty(e);
                    }
                    rest.append_suffix_to(2, &mut p);
                    Lookup::Ok(NameTree::Leaf(Name::Path(p)))
                }
                _ => Lookup::Ok(NameTree::Neg),
            });
        }
        _ => return None,
    };
    Some(match rewritten {
        None => Lookup::Ok(NameTree::Neg),
        Some(Ok(mut p)) => {
            let skip = match class {
                b"io.buoyant.http.domainToPath" => 1,
                _ => 2,
            };
            rest.append_suffix_to(skip, &mut p);
            Lookup::Ok(NameTree::Leaf(Name::Path(p)))
        }
        // Java's Path.Utf8 throws on an empty element, failing the lookup.
        Some(Err(msg)) => Lookup::Failed(BindError::Namer(msg.into())),
    })
}

fn one(p: &Path) -> Option<&[u8]> {
    p.elem(0)
}

fn two(p: &Path) -> Option<(&[u8], &[u8])> {
    Some((p.elem(0)?, p.elem(1)?))
}

/// linkerd's coarse host match, `^[A-Za-z0-9.:_-]+$`.
fn is_host(h: &[u8]) -> bool {
    !h.is_empty()
        && h.iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b':' | b'_' | b'-'))
}

/// Java's `String.split` on one byte: trailing empty pieces are removed
/// (so `"a.b."` gives `a`, `b` and `"..."` gives nothing).
fn java_split(s: &[u8], sep: u8) -> impl DoubleEndedIterator<Item = &[u8]> {
    let end = s.iter().rposition(|&b| b != sep).map_or(0, |i| i + 1);
    let trimmed = &s[..end];
    (!trimmed.is_empty())
        .then(|| trimmed.split(move |&b| b == sep))
        .into_iter()
        .flatten()
}

fn push_all<'a>(out: &mut Path, elems: impl Iterator<Item = &'a [u8]>) -> Result<(), &'static str> {
    for e in elems {
        out.try_push(e)
            .map_err(|_| "rewriting namer produced an empty path element")?;
    }
    Ok(())
}

/// linkerd's `HostColonPort`: `host:port` split on `:` into exactly two
/// pieces, the port a DNS label (`[a-z0-9][-a-z0-9]*`, at most 63 bytes).
fn host_colon_port(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let parts: Vec<&[u8]> = java_split(s, b':').collect();
    let [host, port] = parts.as_slice() else {
        return None;
    };
    let label_ok = !port.is_empty()
        && port.len() <= 63
        && (port[0].is_ascii_lowercase() || port[0].is_ascii_digit())
        && port
            .iter()
            .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    label_ok.then_some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(s: &str) -> Lookup<NameTree<Name>> {
        GlobalNamer::new().lookup(&Path::read(s).unwrap())
    }

    fn rewritten(s: &str) -> String {
        match lookup(s) {
            Lookup::Ok(NameTree::Leaf(Name::Path(p))) => p.show(),
            Lookup::Ok(NameTree::Neg) => "~".into(),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn inet_forms() {
        let Lookup::Ok(NameTree::Leaf(Name::Bound(b))) = lookup("/$/inet/1234/foobar") else {
            panic!()
        };
        assert_eq!(b.id.show(), "/$/inet/1234");
        assert_eq!(b.residual.show(), "/foobar");
        let Lookup::Ok(NameTree::Leaf(Name::Bound(b))) = lookup("/$/inet/127.1/80/x/y") else {
            panic!()
        };
        assert_eq!(b.id.show(), "/$/inet/127.1/80");
        let Addr::Bound(eps) = &b.addr else { panic!() };
        assert_eq!(eps[0].socket_addr(), Some("127.0.0.1:80".parse().unwrap()));
        assert!(matches!(
            lookup("/$/inet/localhost/http"),
            Lookup::Failed(BindError::UnknownNamer { .. })
        ));
        let Lookup::Ok(NameTree::Leaf(Name::Bound(b))) = lookup("/$/inet/h/99999") else {
            panic!()
        };
        assert!(matches!(b.addr, Addr::Failed(_)));
    }

    #[test]
    fn rewriting_namers() {
        assert_eq!(
            rewritten("/$/io.buoyant.http.domainToPathPfx/domain/www.hello.world/x"),
            "/domain/world/hello/www/x"
        );
        assert_eq!(
            rewritten("/$/io.buoyant.http.domainToPathPfx/domain/www.hello.world:80"),
            "/domain/world:80/hello/www"
        );
        assert_eq!(
            rewritten("/$/io.buoyant.http.domainToPathPfx/domain/a.b."),
            "/domain/b/a"
        );
        assert!(matches!(
            lookup("/$/io.buoyant.http.domainToPathPfx/domain/a..b"),
            Lookup::Failed(BindError::Namer(_))
        ));
        assert_eq!(
            rewritten("/$/io.buoyant.http.domainToPathPfx/domain/a\\x20b"),
            "~"
        );
        assert_eq!(rewritten("/$/io.buoyant.http.domainToPathPfx/domain"), "~");
        assert_eq!(
            rewritten("/$/io.buoyant.hostportPfx/p/web:8080/z"),
            "/p/web/8080/z"
        );
        assert_eq!(
            rewritten("/$/io.buoyant.porthostPfx/p/web:http"),
            "/p/http/web"
        );
        assert_eq!(rewritten("/$/io.buoyant.porthostPfx/p/web:HTTP"), "~");
        assert_eq!(rewritten("/$/io.buoyant.hostportPfx/p/web"), "~");
        assert_eq!(
            rewritten("/$/io.buoyant.rinet/80/web/z"),
            "/$/inet/web/80/z"
        );
    }

    #[test]
    fn short_ipv4_forms() {
        assert_eq!(parse_ip("127.1"), Some("127.0.0.1".parse().unwrap()));
        assert_eq!(parse_ip("10.1.2"), Some("10.1.0.2".parse().unwrap()));
        assert_eq!(parse_ip("2130706433"), Some("127.0.0.1".parse().unwrap()));
        assert_eq!(parse_ip("127.256"), Some("127.0.1.0".parse().unwrap()));
        assert_eq!(parse_ip("256.1"), None);
        assert_eq!(parse_ip("1.2.3.4.5"), None);
        assert_eq!(parse_ip("web"), None);
        assert_eq!(parse_ip("::1"), Some("::1".parse().unwrap()));
    }
}
