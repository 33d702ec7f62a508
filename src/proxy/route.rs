//! The `identify` and `route` phases: a request head to a bound destination
//! and one endpoint, through the router's dtab and the request's overrides.

use super::error::{ErrorKind, ProxyError, Side};
use crate::config::{EdgeOverrides, Router, Server, Trust};
use crate::http1::request::{HeaderKind, RequestHead};
use crate::limits::{BIND_LOOKUPS_MAX, DTAB_HEADER_BYTES_MAX, DTAB_LOCAL_DENTRIES_MAX};
use crate::routing::identify::{self, Identified};
use crate::routing::{
    Addr, BoundTree, Dtab, GlobalNamer, Interpreter, Lookup, NameTree, NamerSet, Path, local_dtab,
};
use std::net::SocketAddr;

/// A request head seen through the identifier's eyes.
pub struct HeadView<'a> {
    pub head: &'a RequestHead,
    pub buf: &'a [u8],
}

impl identify::RequestHead for HeadView<'_> {
    fn method(&self) -> &[u8] {
        self.head.method.get(self.buf)
    }

    fn target(&self) -> &[u8] {
        let p = self.head.path.get(self.buf);
        if p.is_empty() { b"/" } else { p }
    }

    fn minor_version(&self) -> u8 {
        self.head.minor
    }

    fn header(&self, name: &str) -> Option<&[u8]> {
        if name.eq_ignore_ascii_case("host") {
            // The effective host: an absolute-form authority wins.
            return self.head.host.map(|h| h.get(self.buf));
        }
        self.head
            .headers
            .iter()
            .find(|h| h.name.get(self.buf).eq_ignore_ascii_case(name.as_bytes()))
            .map(|h| h.value.get(self.buf))
    }
}

/// Where a request goes.
#[derive(Debug)]
pub struct Routed {
    pub addr: SocketAddr,
    /// The logical name (`l5d-dst-service`).
    pub name: Path,
    /// The bound id (`l5d-dst-client`).
    pub bound_id: Path,
    pub residual: Path,
    /// The request's local dtab, to travel on as `l5d-ctx-dtab`.
    pub local: Dtab,
    /// With `io.l5d.path` + `consume`, where the forwarded target resumes.
    pub consume_from: Option<usize>,
    /// A header not to forward (an edge override policy's credential).
    pub drop_header: Option<usize>,
}

/// The local dtab a mesh listener reads from a request: `l5d-ctx-dtab` lines
/// then `l5d-dtab` lines, bounded in bytes and dentries.
pub fn request_local_dtab(head: &RequestHead, buf: &[u8]) -> Result<Dtab, ProxyError> {
    let bad = |context| ProxyError::client(ErrorKind::BadDtab, context);
    let mut bytes = 0usize;
    for h in &head.headers {
        if matches!(h.kind, HeaderKind::L5dDtab | HeaderKind::L5dCtxDtab) {
            bytes += h.value.len();
        }
    }
    if bytes == 0 {
        return Ok(Dtab::empty());
    }
    if bytes > DTAB_HEADER_BYTES_MAX {
        return Err(bad("dtab override headers too large"));
    }
    let values = |kind| {
        head.headers
            .iter()
            .filter(move |h| h.kind == kind)
            .map(|h| h.value.get(buf))
    };
    let local = local_dtab(values(HeaderKind::L5dCtxDtab), values(HeaderKind::L5dDtab))
        .map_err(|_| bad("invalid dtab in l5d-dtab or l5d-ctx-dtab"))?;
    if local.len() > DTAB_LOCAL_DENTRIES_MAX {
        return Err(bad("too many dentries in dtab override headers"));
    }
    Ok(local)
}

/// Identifies, binds and picks an endpoint.
#[allow(clippy::too_many_arguments)] // the phases' inputs, each used once
pub fn route(
    router: &Router,
    server: &Server,
    peer: std::net::IpAddr,
    head: &RequestHead,
    buf: &[u8],
    namers: &dyn NamerSet,
    global: &GlobalNamer,
    rng: &mut Rng,
) -> Result<Routed, ProxyError> {
    let trust = server.trust;
    let view = HeadView { head, buf };
    let (name, consume_from) = match router.identifier.identify(&view) {
        Identified::Dst { name, consume_from } => (name, consume_from),
        Identified::Unidentified(_) => {
            return Err(ProxyError::client(
                ErrorKind::Unidentified,
                "Unknown destination",
            ));
        }
    };
    let mut drop_header = None;
    let local = match (trust, &server.override_policy) {
        (Trust::Mesh, _) => request_local_dtab(head, buf)?,
        (Trust::Edge, None) => Dtab::empty(),
        (Trust::Edge, Some(p)) => edge_overrides(p, head, buf, peer, &mut drop_header)?,
    };
    let interp = Interpreter {
        base: &router.dtab,
        local: &local,
        namers,
        global,
        max_depth: router.namer_max_depth,
        max_lookups: BIND_LOOKUPS_MAX,
    };
    let tree = match interp.bind(&name) {
        Lookup::Ok(t) => t,
        Lookup::Pending => {
            return Err(ProxyError::new(
                ErrorKind::BindPending,
                Side::Internal,
                true,
                "name is not yet resolved",
            ));
        }
        Lookup::Failed(_) => {
            return Err(ProxyError::new(
                ErrorKind::BindFailed,
                Side::Internal,
                true,
                "delegation failed",
            ));
        }
    };
    let leaf = pick_leaf(&tree, rng).ok_or_else(|| {
        ProxyError::new(
            ErrorKind::NoRoute,
            Side::Internal,
            true,
            "No route to destination",
        )
    })?;
    let Addr::Bound(eps) = &leaf.bound.addr else {
        return Err(ProxyError::new(
            ErrorKind::BindPending,
            Side::Internal,
            true,
            "endpoints are not yet resolved",
        ));
    };
    // Endpoints named by host rather than IP await the DNS resolver; pick
    // among the ones with an address, without collecting them.
    let no_hosts = || {
        ProxyError::new(
            ErrorKind::NoRoute,
            Side::Internal,
            true,
            "No hosts are available",
        )
    };
    let usable = eps.iter().filter(|e| e.ip.is_some()).count();
    if usable == 0 {
        return Err(no_hosts());
    }
    let addr = eps
        .iter()
        .filter_map(|e| e.socket_addr())
        .nth(rng.below(usable))
        .ok_or_else(no_hosts)?;
    Ok(Routed {
        addr,
        name,
        bound_id: leaf.bound.id.clone(),
        residual: leaf.bound.residual.clone(),
        local,
        consume_from,
        drop_header,
    })
}

/// An edge with an override policy: `l5d-dtab` is admitted only with the
/// credential, from an allowed network, and when every dentry passes the
/// policy. `l5d-ctx-dtab` from outside is never read.
fn edge_overrides(
    p: &EdgeOverrides,
    head: &RequestHead,
    buf: &[u8],
    peer: std::net::IpAddr,
    drop_header: &mut Option<usize>,
) -> Result<Dtab, ProxyError> {
    let refused = |why| ProxyError::client(ErrorKind::OverrideRefused, why);
    if let Some((name, _)) = &p.require_header {
        *drop_header = head
            .headers
            .iter()
            .position(|h| h.name.get(buf).eq_ignore_ascii_case(name.as_bytes()));
    }
    let lines = || {
        head.headers
            .iter()
            .filter(|h| h.kind == HeaderKind::L5dDtab)
    };
    if lines().next().is_none() {
        return Ok(Dtab::empty());
    }
    if let Some((_, want)) = &p.require_header {
        let given = drop_header
            .map(|i| head.headers[i].value.get(buf))
            .unwrap_or_default();
        if !constant_time_eq(given, want) {
            tracing::info!(%peer, "override refused: missing or wrong credential");
            return Err(refused("overrides require a credential"));
        }
    }
    if !p.source_allowed(peer) {
        tracing::info!(%peer, "override refused: source not allowed");
        return Err(refused("overrides are not allowed from this address"));
    }
    let bytes: usize = lines().map(|h| h.value.len()).sum();
    if bytes > DTAB_HEADER_BYTES_MAX {
        return Err(ProxyError::client(
            ErrorKind::BadDtab,
            "dtab override headers too large",
        ));
    }
    let local = local_dtab(std::iter::empty(), lines().map(|h| h.value.get(buf)))
        .map_err(|_| ProxyError::client(ErrorKind::BadDtab, "invalid dtab in l5d-dtab"))?;
    if let Err(r) = p.policy.check(&local) {
        tracing::info!(%peer, reason = r.0, "override refused by policy");
        return Err(refused(r.0));
    }
    Ok(local)
}

/// Compares secrets without an early exit on the first differing byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A weighted choice through unions, down to one bound leaf.
fn pick_leaf<'t>(tree: &'t BoundTree, rng: &mut Rng) -> Option<&'t crate::routing::BoundLeaf> {
    match tree {
        NameTree::Leaf(l) => Some(l),
        NameTree::Union(ws) => {
            let total: f64 = ws.iter().map(|w| w.weight.max(0.0)).sum();
            if total <= 0.0 {
                return ws.first().and_then(|w| pick_leaf(&w.tree, rng));
            }
            let mut x = rng.unit() * total;
            for w in ws {
                x -= w.weight.max(0.0);
                if x < 0.0 {
                    return pick_leaf(&w.tree, rng);
                }
            }
            ws.last().and_then(|w| pick_leaf(&w.tree, rng))
        }
        // A bound tree has no Alt; Neg, Fail and Empty have no endpoint.
        _ => None,
    }
}

/// A small per-shard PRNG (xorshift64*): load balancing needs speed and
/// spread, not unpredictability.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}
