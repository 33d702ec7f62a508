//! The `identify` and `route` phases: a request head to a bound destination
//! and one endpoint, through the router's dtab and the request's overrides.

use super::error::{ErrorKind, ProxyError, Side};
use crate::config::{EdgeOverrides, Router, Server, Transformer, Trust};
use crate::http1::request::{HeaderKind, RequestHead};
use crate::limits::{BIND_LOOKUPS_MAX, DTAB_HEADER_BYTES_MAX, DTAB_LOCAL_DENTRIES_MAX};
use crate::routing::identify::{self, Identified};
use crate::routing::snapshot::Snapshot;
use crate::routing::{
    Addr, BoundTree, Dtab, Endpoint, GlobalNamer, Interpreter, Lookup, NameTree, Path, local_dtab,
};
use rustc_hash::FxHashMap;
use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

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

/// One bound leaf of a cached route, with its headers pre-rendered.
#[derive(Debug)]
pub struct RouteLeaf {
    pub id: Path,
    /// The routing header lines a request on this leaf carries upstream,
    /// rendered once: `l5d-ctx-dtab` (with an override), `l5d-dst-service`,
    /// `l5d-dst-client` and `l5d-dst-residual` (when there is one).
    pub headers: Box<[u8]>,
    /// Endpoints that do not come from a snapshot namer (`/$/inet`).
    pub fixed: Option<Arc<[Endpoint]>>,
}

/// The result of identifying and binding one (name, overrides) pair: what a
/// later request with the same name and override headers reuses. Endpoints
/// are not part of it; they are read from the current snapshot per request.
#[derive(Debug)]
pub struct RouteEntry {
    /// The snapshot names version the bind saw.
    pub names_version: u64,
    /// The bind's outcome: leaves to choose from, or the error to answer.
    pub outcome: Result<(), ProxyError>,
    /// `l5d-dst-service`.
    pub service: Box<[u8]>,
    /// `l5d-ctx-dtab` to send on (the merged local dtab), if any.
    pub ctx_dtab: Option<Box<[u8]>>,
    pub leaves: Vec<RouteLeaf>,
    /// Cumulative selection probability per leaf (weighted unions).
    pub cumulative: Vec<f64>,
    /// This name's metrics series on the listener, found on first use so
    /// that a request does not look it up by name.
    pub name_metrics: std::cell::OnceCell<Arc<crate::telemetry::NameMetrics>>,
}

impl RouteEntry {
    /// Builds an entry from a bind result.
    pub fn new(
        name: &Path,
        local: &Dtab,
        bound: Lookup<BoundTree>,
        names_version: u64,
    ) -> RouteEntry {
        let mut service = Vec::new();
        name.show_to_bytes(&mut service);
        let ctx_dtab = (!local.is_empty()).then(|| local.show().into_bytes().into_boxed_slice());
        let mut e = RouteEntry {
            names_version,
            outcome: Ok(()),
            service: service.into_boxed_slice(),
            ctx_dtab,
            leaves: Vec::new(),
            cumulative: Vec::new(),
            name_metrics: std::cell::OnceCell::new(),
        };
        match bound {
            Lookup::Ok(tree) => {
                let mut probs = Vec::new();
                let lines = LeafLines {
                    ctx_dtab: e.ctx_dtab.as_deref(),
                    service: &e.service,
                };
                collect_leaves(&tree, 1.0, &lines, &mut e.leaves, &mut probs);
                if e.leaves.is_empty() {
                    e.outcome = Err(ProxyError::new(
                        ErrorKind::NoRoute,
                        Side::Internal,
                        true,
                        "No route to destination",
                    ));
                }
                let total: f64 = probs.iter().sum();
                let mut acc = 0.0;
                for p in probs {
                    acc += if total > 0.0 { p / total } else { 0.0 };
                    e.cumulative.push(acc);
                }
            }
            Lookup::Pending => {
                e.outcome = Err(ProxyError::new(
                    ErrorKind::BindPending,
                    Side::Internal,
                    true,
                    "name is not yet resolved",
                ));
            }
            Lookup::Failed(_) => {
                e.outcome = Err(ProxyError::new(
                    ErrorKind::BindFailed,
                    Side::Internal,
                    true,
                    "delegation failed",
                ));
            }
        }
        e
    }

    /// A leaf, chosen by union weights.
    fn pick(&self, rng: &mut Rng) -> &RouteLeaf {
        if self.leaves.len() == 1 {
            return &self.leaves[0];
        }
        let x = rng.unit();
        let i = self
            .cumulative
            .iter()
            .position(|&c| x < c)
            .unwrap_or(self.leaves.len() - 1);
        &self.leaves[i]
    }
}

/// What every leaf's header lines share.
struct LeafLines<'a> {
    ctx_dtab: Option<&'a [u8]>,
    service: &'a [u8],
}

/// Flattens a bound tree into leaves and their selection probabilities: a
/// union picks a member by weight, recursively, as Finagle's `Drv` did.
fn collect_leaves(
    t: &BoundTree,
    p: f64,
    lines: &LeafLines<'_>,
    leaves: &mut Vec<RouteLeaf>,
    probs: &mut Vec<f64>,
) {
    match t {
        NameTree::Leaf(l) => {
            let mut h = Vec::new();
            if let Some(ctx) = lines.ctx_dtab {
                // The merged override travels on, printed canonically, so
                // every later hop binds with it (linkerd's Dtab
                // ClientFilter).
                h.extend_from_slice(b"l5d-ctx-dtab: ");
                h.extend_from_slice(ctx);
                h.extend_from_slice(b"\r\n");
            }
            h.extend_from_slice(b"l5d-dst-service: ");
            h.extend_from_slice(lines.service);
            h.extend_from_slice(b"\r\nl5d-dst-client: ");
            l.bound.id.show_to_bytes(&mut h);
            h.extend_from_slice(b"\r\n");
            if !l.bound.residual.is_empty() {
                h.extend_from_slice(b"l5d-dst-residual: ");
                l.bound.residual.show_to_bytes(&mut h);
                h.extend_from_slice(b"\r\n");
            }
            let fixed = match &l.bound.addr {
                Addr::Bound(eps) if l.bound.id.elem(0) == Some(b"$") => Some(eps.clone()),
                _ => None,
            };
            leaves.push(RouteLeaf {
                id: l.bound.id.clone(),
                headers: h.into_boxed_slice(),
                fixed,
            });
            probs.push(p);
        }
        NameTree::Union(ws) => {
            let total: f64 = ws.iter().map(|w| w.weight.max(0.0)).sum();
            for w in ws {
                let share = if total > 0.0 {
                    w.weight.max(0.0) / total
                } else {
                    1.0 / ws.len() as f64
                };
                collect_leaves(&w.tree, p * share, lines, leaves, probs);
            }
        }
        // A bound tree has no Alt; Neg, Fail and Empty have no endpoint.
        _ => {}
    }
}

/// A per-shard, per-listener cache of routes, keyed by the logical name and
/// the raw override header lines: a repeated name with a repeated staging
/// header costs a hash lookup, not a parse and a delegation. Entries stay
/// valid while the snapshot's names version does not move; endpoint churn
/// inside known services does not flush them. Bounded: when full, it starts
/// over (hot entries come straight back).
#[derive(Default)]
pub struct RouteCache {
    map: RefCell<FxHashMap<Box<[u8]>, Rc<RouteEntry>>>,
    /// The key being looked up, built without allocating.
    key: RefCell<Vec<u8>>,
}

/// Entries a route cache holds before it starts over.
pub const ROUTE_CACHE_ENTRIES_MAX: usize = 4096;

impl RouteCache {
    pub fn len(&self) -> usize {
        self.map.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.borrow().is_empty()
    }
}

/// Where a request goes.
#[derive(Debug)]
pub struct Routed {
    pub addr: SocketAddr,
    pub entry: Rc<RouteEntry>,
    /// Which of the entry's leaves was chosen.
    pub leaf: usize,
    /// With `io.l5d.path` + `consume`, where the forwarded target resumes.
    pub consume_from: Option<usize>,
    /// A header not to forward (an edge override policy's credential).
    pub drop_header: Option<usize>,
    /// This request's id (`l5d-reqid`).
    pub request_id: u64,
}

impl Routed {
    pub fn leaf(&self) -> &RouteLeaf {
        &self.entry.leaves[self.leaf]
    }
}

/// The local dtab a mesh listener reads from a request: `l5d-ctx-dtab` lines
/// then `l5d-dtab` lines, bounded in bytes and dentries.
pub fn request_local_dtab(head: &RequestHead, buf: &[u8]) -> Result<Dtab, ProxyError> {
    let bad = |context| ProxyError::client(ErrorKind::BadDtab, context);
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

/// Everything `route` needs from the shard.
pub struct RouteCx<'a> {
    pub router: &'a Router,
    pub server: &'a Server,
    pub snapshot: &'a Snapshot,
    pub global: &'a GlobalNamer,
    pub cache: &'a RouteCache,
    pub outstanding: &'a Outstanding,
    /// None when metrics are off.
    pub metrics: Option<&'a crate::telemetry::ListenerMetrics>,
}

/// Identifies, binds (or finds the cached bind) and picks an endpoint.
pub fn route(
    cx: &RouteCx<'_>,
    peer: std::net::IpAddr,
    head: &RequestHead,
    buf: &[u8],
    rng: &mut Rng,
) -> Result<Routed, ProxyError> {
    let trust = cx.server.trust;
    let view = HeadView { head, buf };
    let identify = || match cx.router.identifier.identify(&view) {
        Identified::Dst { name, consume_from } => Ok((name, consume_from)),
        Identified::Unidentified(_) => Err(ProxyError::client(
            ErrorKind::Unidentified,
            "Unknown destination",
        )),
    };
    // Which override lines count, after the edge's credential and source
    // checks (which depend on the request, so are never cached).
    let mut drop_header = None;
    let overrides: &[HeaderKind] = match (trust, &cx.server.override_policy) {
        (Trust::Mesh, _) => &[HeaderKind::L5dCtxDtab, HeaderKind::L5dDtab],
        (Trust::Edge, None) => &[],
        (Trust::Edge, Some(p)) => {
            edge_admission(p, head, buf, peer, &mut drop_header)?;
            &[HeaderKind::L5dDtab]
        }
    };
    let mut override_bytes = 0usize;
    let mut key = cx.cache.key.borrow_mut();
    key.clear();
    // The cache is keyed by what identification reads (the Host value, for
    // the default identifier) where the identifier offers that, so a hit
    // builds no name; otherwise by the identified name (tagged 0).
    let mut identified = None;
    if !cx.router.identifier.key_to_bytes(&view, &mut key) {
        let (name, consume_from) = identify()?;
        key.push(0);
        name.key_to_bytes(&mut key);
        identified = Some((name, consume_from));
    }
    let consume_from = identified.as_ref().and_then(|(_, c)| *c);
    for kind in overrides {
        key.push(0);
        for h in head.headers.iter().filter(|h| h.kind == *kind) {
            override_bytes += h.value.len();
            key.extend_from_slice(h.value.get(buf));
            key.push(b'\n');
        }
    }
    if override_bytes > DTAB_HEADER_BYTES_MAX {
        return Err(ProxyError::client(
            ErrorKind::BadDtab,
            "dtab override headers too large",
        ));
    }
    let cached = cx.cache.map.borrow().get(key.as_slice()).cloned();
    let entry = match cached {
        Some(e) if e.names_version == cx.snapshot.names_version => {
            if let Some(m) = cx.metrics {
                m.route_cache_hits.inc();
            }
            e
        }
        _ => {
            if let Some(m) = cx.metrics {
                m.route_cache_misses.inc();
            }
            let local = match (trust, &cx.server.override_policy) {
                (Trust::Mesh, _) => request_local_dtab(head, buf)?,
                (Trust::Edge, None) => Dtab::empty(),
                (Trust::Edge, Some(p)) => edge_dtab(p, head, buf, peer)?,
            };
            let interp = Interpreter {
                base: &cx.router.dtab,
                local: &local,
                namers: cx.snapshot,
                global: cx.global,
                max_depth: cx.router.namer_max_depth,
                max_lookups: BIND_LOOKUPS_MAX,
            };
            let name = match identified {
                Some((name, _)) => name,
                None => identify()?.0,
            };
            let bound = interp.bind(&name);
            let pending = matches!(bound, Lookup::Pending);
            let e = Rc::new(RouteEntry::new(
                &name,
                &local,
                bound,
                cx.snapshot.names_version,
            ));
            if !pending {
                let mut map = cx.cache.map.borrow_mut();
                if map.len() >= ROUTE_CACHE_ENTRIES_MAX {
                    map.clear();
                }
                map.insert(key.as_slice().into(), e.clone());
            }
            e
        }
    };
    drop(key);
    entry.outcome?;
    let leaf_idx = {
        let l = entry.pick(rng);
        entry
            .leaves
            .iter()
            .position(|x| std::ptr::eq(x, l))
            .unwrap_or(0)
    };
    let leaf = &entry.leaves[leaf_idx];
    let eps: &[Endpoint] = match &leaf.fixed {
        Some(eps) => eps,
        None => cx.snapshot.endpoints(&leaf.id).ok_or_else(|| {
            ProxyError::new(
                ErrorKind::BindPending,
                Side::Internal,
                true,
                "endpoints are not yet resolved",
            )
        })?,
    };
    let no_hosts = || {
        ProxyError::new(
            ErrorKind::NoRoute,
            Side::Internal,
            true,
            "No hosts are available",
        )
    };
    let local_only = cx.router.transformers.iter().find_map(|t| match t {
        Transformer::LocalNode { node } => Some(node.as_str()),
        Transformer::DaemonSet { .. } => None,
    });
    let chosen = pick_endpoint(eps, local_only, cx.outstanding, rng).ok_or_else(no_hosts)?;
    let mut addr = chosen.socket_addr().ok_or_else(no_hosts)?;
    for t in &cx.router.transformers {
        if let Transformer::DaemonSet { peers, node } = t {
            addr = via_peer(chosen, addr, peers, node.as_deref(), cx.snapshot);
        }
    }
    Ok(Routed {
        addr,
        entry,
        leaf: leaf_idx,
        consume_from,
        drop_header,
        request_id: rng.next_u64(),
    })
}

/// Endpoints whose in-flight count a shard keeps before it drops the idle
/// ones.
pub const OUTSTANDING_ENDPOINTS_MAX: usize = 4096;

/// Requests in flight per endpoint on this shard, for power-of-two-choices.
#[derive(Default)]
pub struct Outstanding {
    counts: RefCell<FxHashMap<SocketAddr, u32>>,
}

impl Outstanding {
    pub fn get(&self, a: SocketAddr) -> u32 {
        self.counts.borrow().get(&a).copied().unwrap_or(0)
    }

    pub fn start(&self, a: SocketAddr) {
        let mut c = self.counts.borrow_mut();
        if let Some(n) = c.get_mut(&a) {
            *n += 1;
            return;
        }
        // Idle endpoints keep their zero (no removal and re-insertion per
        // request); the zeros go when the table grows past its bound.
        if c.len() >= OUTSTANDING_ENDPOINTS_MAX {
            c.retain(|_, n| *n > 0);
        }
        c.insert(a, 1);
    }

    pub fn finish(&self, a: SocketAddr) {
        if let Some(n) = self.counts.borrow_mut().get_mut(&a) {
            *n = n.saturating_sub(1);
        }
    }

    /// Endpoints in the table (some may have nothing in flight).
    pub fn tracked(&self) -> usize {
        self.counts.borrow().len()
    }
}

/// Power of two choices: two endpoints at random (weighted), the one with
/// fewer requests in flight on this shard. Endpoints named by host rather
/// than IP await the DNS resolver and are skipped; with `local_only`, so are
/// endpoints on other nodes.
fn pick_endpoint<'e>(
    eps: &'e [Endpoint],
    local_only: Option<&str>,
    outstanding: &Outstanding,
    rng: &mut Rng,
) -> Option<&'e Endpoint> {
    let ok =
        |e: &&Endpoint| e.ip.is_some() && local_only.is_none_or(|n| e.node.as_deref() == Some(n));
    let usable = eps.iter().filter(ok).count();
    match usable {
        0 => None,
        1 => eps.iter().find(ok),
        _ => {
            let total: f64 = eps.iter().filter(ok).map(|e| e.weight.max(0.0)).sum();
            let mut draw = || -> Option<&'e Endpoint> {
                if total <= 0.0 {
                    return eps.iter().filter(ok).nth(rng.below(usable));
                }
                let mut x = rng.unit() * total;
                for e in eps.iter().filter(ok) {
                    x -= e.weight.max(0.0);
                    if x < 0.0 {
                        return Some(e);
                    }
                }
                eps.iter().rev().find(ok)
            };
            let a = draw()?;
            let b = draw()?;
            let load = |e: &Endpoint| e.socket_addr().map_or(u32::MAX, |s| outstanding.get(s));
            Some(if load(b) < load(a) { b } else { a })
        }
    }
}

/// The daemonset hop: the peer proxy on the chosen endpoint's node, unless
/// the endpoint is on this node or its node has no peer (then directly).
fn via_peer(
    chosen: &Endpoint,
    direct: SocketAddr,
    peers: &Path,
    node: Option<&str>,
    snapshot: &Snapshot,
) -> SocketAddr {
    let Some(target) = chosen.node.as_deref() else {
        return direct;
    };
    if node == Some(target) {
        return direct;
    }
    snapshot
        .endpoints(peers)
        .and_then(|ps| {
            ps.iter()
                .find(|p| p.node.as_deref() == Some(target))
                .and_then(Endpoint::socket_addr)
        })
        .unwrap_or(direct)
}

/// An edge with an override policy: before any override is considered, the
/// credential and the client's network. Never cached: they depend on the
/// request, not on its name.
fn edge_admission(
    p: &EdgeOverrides,
    head: &RequestHead,
    buf: &[u8],
    peer: std::net::IpAddr,
    drop_header: &mut Option<usize>,
) -> Result<(), ProxyError> {
    let refused = |why| ProxyError::client(ErrorKind::OverrideRefused, why);
    if let Some((name, _)) = &p.require_header {
        *drop_header = head
            .headers
            .iter()
            .position(|h| h.name.get(buf).eq_ignore_ascii_case(name.as_bytes()));
    }
    if !head.headers.iter().any(|h| h.kind == HeaderKind::L5dDtab) {
        return Ok(());
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
    Ok(())
}

/// The admitted override of an edge with a policy (`l5d-ctx-dtab` from
/// outside is never read).
fn edge_dtab(
    p: &EdgeOverrides,
    head: &RequestHead,
    buf: &[u8],
    peer: std::net::IpAddr,
) -> Result<Dtab, ProxyError> {
    let lines = head
        .headers
        .iter()
        .filter(|h| h.kind == HeaderKind::L5dDtab)
        .map(|h| h.value.get(buf));
    let local = local_dtab(std::iter::empty(), lines)
        .map_err(|_| ProxyError::client(ErrorKind::BadDtab, "invalid dtab in l5d-dtab"))?;
    if let Err(r) = p.policy.check(&local) {
        tracing::info!(%peer, reason = r.0, "override refused by policy");
        return Err(ProxyError::client(ErrorKind::OverrideRefused, r.0));
    }
    Ok(local)
}

/// Compares secrets without an early exit on the first differing byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_counts_stay_bounded() {
        let o = Outstanding::default();
        let a: SocketAddr = "10.0.0.1:80".parse().unwrap();
        o.start(a);
        o.start(a);
        assert_eq!(o.get(a), 2);
        o.finish(a);
        o.finish(a);
        o.finish(a);
        assert_eq!(o.get(a), 0, "never below zero");
        // Idle endpoints stay until the table is full, then only the busy
        // ones survive.
        let busy = SocketAddr::from((7u32.to_be_bytes(), 8080));
        for i in 0..2 * OUTSTANDING_ENDPOINTS_MAX as u32 {
            let e = SocketAddr::from((i.to_be_bytes(), 8080));
            o.start(e);
            if e != busy {
                o.finish(e);
            }
            assert!(o.tracked() <= OUTSTANDING_ENDPOINTS_MAX);
        }
        assert!(o.tracked() < OUTSTANDING_ENDPOINTS_MAX, "idle ones pruned");
        assert_eq!(o.get(busy), 1, "the busy endpoint kept its count");
    }
}
