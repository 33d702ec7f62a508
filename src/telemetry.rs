//! Metrics: counters and latency histograms written by exactly one shard
//! each, merged by the admin server when scraped.
//!
//! Every cell is a relaxed atomic with a single writer (its shard), updated
//! with a plain load and store rather than a locked read-modify-write: no
//! cache line is shared between shards on the hot path and nothing is
//! aggregated there. Per-name series are bounded: past
//! [`NAME_SERIES_MAX`] names a shard folds the rest into one `other` series,
//! since names come from clients' Host headers.

use rustc_hash::FxHashMap;
use std::cell::RefCell;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// What each shard publishes about itself for the admin server.
#[derive(Debug, Default)]
pub struct ShardReport {
    /// The discovery snapshot generation the shard has applied.
    pub applied: AtomicU64,
    /// When the shard last showed it was running, in ms of [`uptime_ms`].
    pub heartbeat_ms: AtomicU64,
}

/// Milliseconds since the process's telemetry clock started.
pub fn uptime_ms() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis() as u64
}

/// Per-name series one shard keeps per listener before folding into `other`.
pub const NAME_SERIES_MAX: usize = 256;

/// Per-endpoint series likewise. Endpoints come from discovery, not from
/// clients, but a large cluster must not become a large scrape either.
pub const ENDPOINT_SERIES_MAX: usize = 512;

/// Upper bounds of the latency buckets, in microseconds.
pub const LATENCY_BUCKETS_US: [u64; 18] = [
    25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// A counter with one writer.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`. Only the owning shard calls this, so load-then-store
    /// cannot lose an update.
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    #[inline]
    pub fn inc(&self) {
        self.add(1)
    }

    /// A gauge's decrement (open connections).
    #[inline]
    pub fn dec(&self) {
        self.0.store(
            self.0.load(Ordering::Relaxed).saturating_sub(1),
            Ordering::Relaxed,
        );
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A latency in µs with its histogram bucket.
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    us: u64,
    bucket: usize,
}

impl Latency {
    pub fn of(us: u64) -> Latency {
        Latency {
            us,
            bucket: LATENCY_BUCKETS_US.partition_point(|&b| b < us),
        }
    }
}

/// A latency histogram with one writer: fixed buckets, sum and count.
#[derive(Debug, Default)]
pub struct Histogram {
    /// `buckets[i]` counts observations `<= LATENCY_BUCKETS_US[i]`
    /// (non-cumulative); the last counts those above every bound.
    buckets: [Counter; LATENCY_BUCKETS_US.len() + 1],
    sum_us: Counter,
    count: Counter,
}

impl Histogram {
    /// Records a latency whose bucket is already found (one request counts
    /// in several histograms: its listener's, its name's, its endpoint's).
    #[inline]
    pub fn record(&self, l: Latency) {
        self.buckets[l.bucket].inc();
        self.sum_us.add(l.us);
        self.count.inc();
    }

    /// Adds this histogram's cells into `into` (merging shards).
    pub fn merge_into(&self, into: &mut HistogramSnapshot) {
        for (i, b) in self.buckets.iter().enumerate() {
            into.buckets[i] += b.get();
        }
        into.sum_us += self.sum_us.get();
        into.count += self.count.get();
    }
}

/// A merged histogram, read at scrape time.
#[derive(Debug, Clone, Default)]
pub struct HistogramSnapshot {
    pub buckets: [u64; LATENCY_BUCKETS_US.len() + 1],
    pub sum_us: u64,
    pub count: u64,
}

impl HistogramSnapshot {
    /// The bucket bound at or above quantile `q` (in microseconds).
    pub fn quantile_us(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = (q * self.count as f64).ceil() as u64;
        let mut seen = 0;
        for (i, &n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return LATENCY_BUCKETS_US.get(i).copied().unwrap_or(u64::MAX);
            }
        }
        u64::MAX
    }
}

/// Response classes counted: 1xx to 5xx.
pub const STATUS_CLASSES: usize = 5;

/// What one listener counts on one shard.
#[derive(Debug, Default)]
pub struct ListenerMetrics {
    pub requests: Counter,
    pub responses: [Counter; STATUS_CLASSES],
    /// Failures by kind (the proxy's error kinds, by name).
    pub failures: FailureCounters,
    pub connections_open: Counter,
    pub connections_total: Counter,
    pub connections_refused: Counter,
    pub request_bytes: Counter,
    pub response_bytes: Counter,
    pub latency: Histogram,
    pub overrides_admitted: Counter,
    pub overrides_refused: Counter,
    pub route_cache_hits: Counter,
    pub route_cache_misses: Counter,
    /// The per-name series, republished (rarely: when a name is first seen)
    /// for the admin server to read.
    published_names: arc_swap::ArcSwap<Vec<(Box<str>, Arc<NameMetrics>)>>,
    /// The per-endpoint series likewise; `None` is the fold of endpoints
    /// past the bound.
    published_endpoints: arc_swap::ArcSwap<Vec<(EndpointKey, Arc<NameMetrics>)>>,
}

/// Failures by kind, each a counter.
#[derive(Debug, Default)]
pub struct FailureCounters(pub [Counter; FAILURE_KINDS.len()]);

/// The failure kinds counted, by metric label (`proxy::error` maps each
/// error to one).
pub const FAILURE_KINDS: [&str; 14] = [
    "bad_request",
    "client_timeout",
    "too_large",
    "unidentified",
    "bad_dtab",
    "override_refused",
    "no_route",
    "bind_failed",
    "bind_pending",
    "connect_failed",
    "upstream_reset",
    "bad_response",
    "upstream_timeout",
    "overloaded",
];

/// One logical name's (or endpoint's) series on one shard.
#[derive(Debug, Default)]
pub struct NameMetrics {
    pub requests: Counter,
    pub latency: Histogram,
}

impl ListenerMetrics {
    /// The per-name series, as the admin server reads them.
    pub fn names(&self) -> Arc<Vec<(Box<str>, Arc<NameMetrics>)>> {
        self.published_names.load_full()
    }

    /// The per-endpoint series (`None`: the endpoints folded together past
    /// [`ENDPOINT_SERIES_MAX`]).
    pub fn endpoints(&self) -> Arc<Vec<(EndpointKey, Arc<NameMetrics>)>> {
        self.published_endpoints.load_full()
    }

    pub fn response(&self, status: u16) {
        if let Some(c) = self
            .responses
            .get((status / 100).saturating_sub(1) as usize)
        {
            c.inc();
        }
    }
}

/// A shard's own index of per-key series for one listener: lookups are a
/// hash probe on the shard; a new key (rare) republishes the list for the
/// admin server. Past `max` keys the rest share the `other` series.
#[derive(Debug)]
pub struct Series<K> {
    map: RefCell<FxHashMap<K, Arc<NameMetrics>>>,
}

impl<K> Default for Series<K> {
    fn default() -> Self {
        Series {
            map: RefCell::new(FxHashMap::default()),
        }
    }
}

impl<K: std::hash::Hash + Eq + Clone> Series<K> {
    /// Runs `f` on the series for `key`; `own` (or `other`, past `max`)
    /// makes the stored key the first time it is seen: the only allocation,
    /// so both are closures, never values built on every call.
    fn with<Q: std::hash::Hash + Eq + ?Sized>(
        &self,
        slot: &arc_swap::ArcSwap<Vec<(K, Arc<NameMetrics>)>>,
        max: usize,
        key: &Q,
        own: impl FnOnce(&Q) -> K,
        other: impl FnOnce() -> K,
        f: impl FnOnce(&NameMetrics),
    ) where
        K: std::borrow::Borrow<Q>,
    {
        if let Some(m) = self.map.borrow().get(key) {
            return f(m);
        }
        f(&self.get(slot, max, key, own, other))
    }

    /// The series for `key`, made (and published) the first time.
    fn get<Q: std::hash::Hash + Eq + ?Sized>(
        &self,
        slot: &arc_swap::ArcSwap<Vec<(K, Arc<NameMetrics>)>>,
        max: usize,
        key: &Q,
        own: impl FnOnce(&Q) -> K,
        other: impl FnOnce() -> K,
    ) -> Arc<NameMetrics>
    where
        K: std::borrow::Borrow<Q>,
    {
        if let Some(m) = self.map.borrow().get(key) {
            return m.clone();
        }
        let mut map = self.map.borrow_mut();
        let k = if map.len() >= max { other() } else { own(key) };
        match map.get::<K>(&k) {
            Some(m) => m.clone(),
            None => {
                let m = Arc::new(NameMetrics::default());
                map.insert(k, m.clone());
                slot.store(Arc::new(
                    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                ));
                m
            }
        }
    }
}

/// Per logical name (from the client's Host: bounded).
pub type NameSeries = Series<Box<str>>;

/// An endpoint's series key: `None` is the fold of endpoints past the bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointKey(pub Option<SocketAddr>);

impl std::hash::Hash for EndpointKey {
    /// An IPv4 endpoint hashes as one word (address and port), where the
    /// derived hash made a call per field and per octet; each request looks
    /// its endpoint's series up.
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        match self.0 {
            Some(SocketAddr::V4(a)) => {
                h.write_u64(u64::from(a.ip().to_bits()) << 16 | u64::from(a.port()))
            }
            Some(SocketAddr::V6(a)) => {
                h.write_u128(a.ip().to_bits());
                h.write_u16(a.port());
            }
            None => h.write_u8(0),
        }
    }
}

/// Per endpoint (from discovery; bounded all the same).
pub type EndpointSeries = Series<EndpointKey>;

impl NameSeries {
    /// The series for `name` itself, for a caller to keep (a route keeps
    /// its name's, so a request does not look it up).
    pub fn series(&self, shared: &ListenerMetrics, name: &str) -> Arc<NameMetrics> {
        self.get(
            &shared.published_names,
            NAME_SERIES_MAX,
            name,
            |n: &str| Box::from(n),
            || "other".into(),
        )
    }
}

impl EndpointSeries {
    /// Runs `f` on the series for `addr`, folding past
    /// [`ENDPOINT_SERIES_MAX`].
    pub fn endpoint(
        &self,
        shared: &ListenerMetrics,
        addr: SocketAddr,
        f: impl FnOnce(&NameMetrics),
    ) {
        self.with(
            &shared.published_endpoints,
            ENDPOINT_SERIES_MAX,
            &EndpointKey(Some(addr)),
            |a| *a,
            || EndpointKey(None),
            f,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_and_quantiles() {
        let h = Histogram::default();
        for us in [10, 30, 30, 700, 20_000_000] {
            h.record(Latency::of(us));
        }
        let mut s = HistogramSnapshot::default();
        h.merge_into(&mut s);
        assert_eq!(s.count, 5);
        assert_eq!(s.buckets[0], 1);
        assert_eq!(s.buckets[1], 2);
        assert_eq!(s.buckets[LATENCY_BUCKETS_US.len()], 1);
        assert_eq!(s.quantile_us(0.5), 50);
        assert_eq!(s.quantile_us(0.8), 1_000);
    }

    #[test]
    fn name_series_are_bounded() {
        let m = ListenerMetrics::default();
        let series = NameSeries::default();
        for i in 0..NAME_SERIES_MAX + 50 {
            series.series(&m, &format!("/svc/n{i}")).requests.inc();
        }
        let names = m.names();
        assert_eq!(names.len(), NAME_SERIES_MAX + 1);
        let other = names.iter().find(|(k, _)| &**k == "other").expect("other");
        assert_eq!(other.1.requests.get(), 50);
    }

    #[test]
    fn endpoint_series_are_bounded() {
        let m = ListenerMetrics::default();
        let series = EndpointSeries::default();
        for i in 0..ENDPOINT_SERIES_MAX + 10 {
            let addr = SocketAddr::from(([10, 0, (i / 256) as u8, (i % 256) as u8], 80));
            series.endpoint(&m, addr, |n| n.requests.inc());
        }
        let eps = m.endpoints();
        assert_eq!(eps.len(), ENDPOINT_SERIES_MAX + 1);
        let other = eps.iter().find(|(k, _)| k.0.is_none()).expect("other");
        assert_eq!(other.1.requests.get(), 10);
    }
}
