//! `io.l5d.k8s`: endpoints from the Kubernetes API.
//!
//! A `discovery-k8s` thread runs a current-thread tokio runtime (kube needs
//! tokio; the shards never see it). Per namer it lists and then watches
//! `discovery.k8s.io/v1` EndpointSlices (those with a
//! `kubernetes.io/service-name` label) and core Services, in all namespaces
//! or in a configured list, and turns them into the namer's view:
//! `<ns>/<port>/<svc>` -> the service's endpoints on that port, for the
//! port's name and for its number.
//!
//! Names are `/#/io.l5d.k8s/<namespace>/<port name or number>/<service>`:
//! - a service or port the API does not have is Neg (the dtab falls back);
//! - a known service and port with no ready endpoints is an empty set (502,
//!   no fallback), as in linkerd 1;
//! - before the first full sync every name is pending.
//!
//! The watch loop is ours rather than kube-runtime's watcher: we need to
//! re-list when a watch *starts* with HTTP 410 (the watcher retries that
//! forever), to detect a watch that went silent, and to report each
//! watch's state. Cost follows the change: an event re-renders only the
//! service it touches, into a persistent map shared with the previous
//! snapshot.

use super::{Published, WatchReport};
use crate::routing::Path;
use crate::routing::namer::Endpoint;
use crate::routing::snapshot::{NamerView, Service as SvcEndpoints};
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams, WatchEvent, WatchParams};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// The label every EndpointSlice of a Service carries.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Objects per list page.
const LIST_PAGE: u32 = 500;

/// Longest a list request may take before it is retried.
const LIST_TIMEOUT: Duration = Duration::from_secs(60);

/// Backoff between failed requests: exponential with full jitter, as
/// linkerd 1 retried its watches (`exponentialJittered(10ms, 10s)`), but
/// starting higher so an API server that refuses us is not hammered.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// Where the namer finds the API server.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiSource {
    /// The pod's service account (`KUBERNETES_SERVICE_HOST`/`_PORT`, token
    /// and CA under `/var/run/secrets/kubernetes.io/serviceaccount`).
    InCluster,
    /// A kubeconfig file (its current context), for running outside a
    /// cluster.
    Kubeconfig(PathBuf),
    /// A plain-HTTP URL, e.g. `kubectl proxy` on `http://127.0.0.1:8001`
    /// (linkerd 1's `host` and `port`).
    Url(String),
}

/// One configured Kubernetes namer.
#[derive(Debug, Clone)]
pub struct K8sNamer {
    /// Its position among the configured namers.
    pub index: usize,
    /// Where it is mounted, e.g. `/#/io.l5d.k8s`.
    pub prefix: Path,
    pub api: ApiSource,
    /// Namespaces to watch; empty means all.
    pub namespaces: Vec<String>,
    /// The `timeoutSeconds` asked of each watch. A watch that sends
    /// nothing (not even a bookmark) for this long plus a margin is taken
    /// for dead and restarted from its last resourceVersion.
    pub watch_timeout: Duration,
}

/// The discovery thread; stopped and joined when dropped.
pub struct K8sDiscovery {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for K8sDiscovery {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts the `discovery-k8s` thread. Its namers' views are pending until
/// their first full sync.
pub fn spawn(namers: Vec<K8sNamer>, published: Arc<Published>) -> Result<K8sDiscovery, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot build the discovery runtime: {e}"))?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("discovery-k8s".into())
        .spawn(move || {
            rt.block_on(async move {
                let mut tasks = tokio::task::JoinSet::new();
                for n in namers {
                    tasks.spawn(run_namer(n, published.clone()));
                }
                let _ = stop_rx.await;
                tasks.abort_all();
            });
        })
        .map_err(|e| format!("cannot start the discovery thread: {e}"))?;
    Ok(K8sDiscovery {
        stop: Some(stop_tx),
        thread: Some(thread),
    })
}

// ---------------------------------------------------------------------------
// The store: what the API said, and the view rendered from it.

/// `(namespace, name)`.
type Key = (String, String);

/// A Service's TCP ports: `(name, port)`, the name empty when unnamed.
type SvcPorts = Vec<(String, i32)>;

#[derive(Debug, Clone, PartialEq)]
struct SliceEndpoint {
    ip: IpAddr,
    ready: bool,
    serving: bool,
    terminating: bool,
    node: Option<Arc<str>>,
}

#[derive(Debug, Clone, PartialEq)]
struct Slice {
    service: String,
    /// `(name, port)`: the Service port's name and the resolved target
    /// port.
    ports: Vec<(String, i32)>,
    endpoints: Vec<SliceEndpoint>,
}

/// Everything one namer knows, and the keys it has put in its view.
#[derive(Default)]
pub struct Store {
    services: HashMap<Key, SvcPorts>,
    slices: HashMap<Key, Slice>,
    /// Service -> the names of its slices.
    by_service: HashMap<Key, BTreeSet<String>>,
    /// Service -> the view keys rendered for it.
    rendered: HashMap<Key, Vec<Arc<str>>>,
    /// Node names, shared by every endpoint on the node.
    nodes: HashSet<Arc<str>>,
}

fn key_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Option<Key> {
    Some((meta.namespace.clone()?, meta.name.clone()?))
}

/// A Service as the store keeps it.
fn compact_service(s: &Service) -> Option<(Key, SvcPorts)> {
    Some((key_of(&s.metadata)?, service_ports(s)))
}

/// A slice as the store keeps it; `None` beside the key for a slice we skip.
fn compact_slice(s: &EndpointSlice) -> Option<(Key, Option<Slice>)> {
    Some((key_of(&s.metadata)?, slice_of(s)))
}

fn service_ports(s: &Service) -> SvcPorts {
    let spec = s.spec.as_ref();
    // An ExternalName service is a DNS alias with no endpoints: not ours.
    if spec.and_then(|s| s.type_.as_deref()) == Some("ExternalName") {
        return Vec::new();
    }
    spec.and_then(|s| s.ports.as_ref())
        .map(|ps| {
            ps.iter()
                .filter(|p| p.protocol.as_deref().is_none_or(|x| x == "TCP"))
                .map(|p| (p.name.clone().unwrap_or_default(), p.port))
                .collect()
        })
        .unwrap_or_default()
}

/// The slice as routing needs it, or `None` for a slice we skip (FQDN
/// addresses, or no service label).
fn slice_of(s: &EndpointSlice) -> Option<Slice> {
    if s.address_type != "IPv4" && s.address_type != "IPv6" {
        return None;
    }
    let service = s.metadata.labels.as_ref()?.get(SERVICE_NAME_LABEL)?.clone();
    let ports = s
        .ports
        .iter()
        .flatten()
        .filter(|p| p.protocol.as_deref().is_none_or(|x| x == "TCP"))
        .filter_map(|p| Some((p.name.clone().unwrap_or_default(), p.port?)))
        .collect();
    let endpoints = s
        .endpoints
        .iter()
        .filter_map(|e| {
            // The controller writes one address per endpoint; consumers use
            // the first (as kube-proxy does).
            let ip: IpAddr = e.addresses.first()?.parse().ok()?;
            let c = e.conditions.as_ref();
            // Absent conditions mean "unknown", to be read as ready
            // (discovery/v1 EndpointConditions).
            let ready = c.and_then(|c| c.ready).unwrap_or(true);
            let terminating = c.and_then(|c| c.terminating).unwrap_or(false);
            let serving = c.and_then(|c| c.serving).unwrap_or(ready);
            Some(SliceEndpoint {
                ip,
                ready,
                serving,
                terminating,
                node: e.node_name.as_deref().map(Arc::from),
            })
        })
        .collect();
    Some(Slice {
        service,
        ports,
        endpoints,
    })
}

impl Store {
    /// The shared copy of a node name: every endpoint on a node points to
    /// one allocation.
    fn intern(&mut self, node: &Arc<str>) -> Arc<str> {
        if let Some(n) = self.nodes.get(node) {
            return n.clone();
        }
        self.nodes.insert(node.clone());
        node.clone()
    }

    /// Records (or with `None` removes) a Service's ports.
    fn set_service(&mut self, k: Key, ports: Option<SvcPorts>) -> Key {
        match ports {
            Some(p) => {
                self.services.insert(k.clone(), p);
            }
            None => {
                self.services.remove(&k);
            }
        }
        k
    }

    /// Records (or with `None` removes) a slice; notes the services it
    /// touches (two when its service label changed).
    fn set_slice(&mut self, (ns, name): Key, slice: Option<Slice>, touched: &mut HashSet<Key>) {
        self.remove_slice(&ns, &name, touched);
        if let Some(mut slice) = slice {
            for e in &mut slice.endpoints {
                if let Some(n) = &e.node {
                    e.node = Some(self.intern(n));
                }
            }
            let svc = (ns.clone(), slice.service.clone());
            self.by_service
                .entry(svc.clone())
                .or_default()
                .insert(name.clone());
            touched.insert(svc);
            self.slices.insert((ns, name), slice);
        }
    }

    /// Records a Service object.
    pub fn apply_service(&mut self, s: &Service) -> Option<Key> {
        let (k, ports) = compact_service(s)?;
        Some(self.set_service(k, Some(ports)))
    }

    pub fn delete_service(&mut self, s: &Service) -> Option<Key> {
        Some(self.set_service(key_of(&s.metadata)?, None))
    }

    /// Records an EndpointSlice object.
    pub fn apply_slice(&mut self, s: &EndpointSlice, touched: &mut HashSet<Key>) {
        if let Some((k, slice)) = compact_slice(s) {
            self.set_slice(k, slice, touched);
        }
    }

    pub fn delete_slice(&mut self, s: &EndpointSlice, touched: &mut HashSet<Key>) {
        if let Some(k) = key_of(&s.metadata) {
            self.set_slice(k, None, touched);
        }
    }

    fn remove_slice(&mut self, ns: &str, name: &str, touched: &mut HashSet<Key>) {
        let k = (ns.to_owned(), name.to_owned());
        if let Some(old) = self.slices.remove(&k) {
            let svc = (ns.to_owned(), old.service);
            if let Some(set) = self.by_service.get_mut(&svc) {
                set.remove(name);
                if set.is_empty() {
                    self.by_service.remove(&svc);
                }
            }
            touched.insert(svc);
        }
    }

    /// Replaces every Service in `scope` (a namespace, or all) with a full
    /// list.
    fn replace_services(
        &mut self,
        scope: Option<&str>,
        items: Vec<(Key, SvcPorts)>,
        touched: &mut HashSet<Key>,
    ) {
        let old: Vec<Key> = self
            .services
            .keys()
            .filter(|(ns, _)| scope.is_none_or(|s| s == ns))
            .cloned()
            .collect();
        for k in old {
            self.services.remove(&k);
            touched.insert(k);
        }
        for (k, ports) in items {
            touched.insert(self.set_service(k, Some(ports)));
        }
    }

    /// Replaces every slice in `scope` with a full list.
    fn replace_slices(
        &mut self,
        scope: Option<&str>,
        items: Vec<(Key, Option<Slice>)>,
        touched: &mut HashSet<Key>,
    ) {
        let old: Vec<Key> = self
            .slices
            .keys()
            .filter(|(ns, _)| scope.is_none_or(|s| s == ns))
            .cloned()
            .collect();
        for (ns, name) in old {
            self.remove_slice(&ns, &name, touched);
        }
        for (k, slice) in items {
            self.set_slice(k, slice, touched);
        }
    }

    /// The endpoints of one service port: ready ones, or when none is
    /// ready, serving ones that are terminating (KEP-1672). An endpoint in
    /// two slices (a transient state while the controller moves it) counts
    /// once, with its best condition.
    fn endpoints(&self, svc: &Key, port_name: &str) -> Vec<Endpoint> {
        // (ip, port) -> (rank, node): 2 ready, 1 serving while terminating.
        let mut best: BTreeMap<SocketAddr, (u8, Option<Arc<str>>)> = BTreeMap::new();
        for slice_name in self.by_service.get(svc).into_iter().flatten() {
            let Some(slice) = self.slices.get(&(svc.0.clone(), slice_name.clone())) else {
                continue;
            };
            let Some(&(_, port)) = slice.ports.iter().find(|(n, _)| n == port_name) else {
                continue;
            };
            let Ok(port) = u16::try_from(port) else {
                continue;
            };
            for e in &slice.endpoints {
                let rank = if e.ready && !e.terminating {
                    2
                } else if e.serving && e.terminating {
                    1
                } else {
                    0
                };
                let at = SocketAddr::new(e.ip, port);
                let slot = best.entry(at).or_insert((rank, e.node.clone()));
                if rank > slot.0 {
                    *slot = (rank, e.node.clone());
                }
            }
        }
        let want = if best.values().any(|(r, _)| *r == 2) {
            2
        } else {
            1
        };
        best.into_iter()
            .filter(|(_, (r, _))| *r == want)
            .map(|(at, (_, node))| {
                let mut ep = Endpoint::new(&at.ip().to_string(), at.port());
                ep.node = node;
                ep
            })
            .collect()
    }

    /// Re-renders one service into `view`: removes its old keys, and for a
    /// known Service adds `ns/<port name>/svc` and `ns/<port number>/svc`
    /// for each port. Returns whether the set of names changed.
    fn render(&mut self, svc: &Key, view: &mut imbl::HashMap<Arc<str>, Arc<SvcEndpoints>>) -> bool {
        let old = self.rendered.remove(svc).unwrap_or_default();
        let mut new_keys: Vec<Arc<str>> = Vec::new();
        let mut entries = Vec::new();
        if let Some(ports) = self.services.get(svc) {
            for (name, number) in ports {
                let eps = SvcEndpoints {
                    endpoints: Arc::from(self.endpoints(svc, name)),
                };
                let mut keys = vec![Arc::<str>::from(format!("{}/{number}/{}", svc.0, svc.1))];
                if !name.is_empty() {
                    keys.push(Arc::from(format!("{}/{name}/{}", svc.0, svc.1)));
                }
                for k in keys {
                    entries.push((k.clone(), eps.clone()));
                    new_keys.push(k);
                }
            }
        }
        let names_changed =
            old.len() != new_keys.len() || old.iter().any(|k| !new_keys.contains(k));
        for k in &old {
            if !new_keys.contains(k) {
                view.remove(k);
            }
        }
        for (k, eps) in entries {
            // Keep the old Arc when nothing changed, so a no-op event does
            // not look like a change to anyone comparing pointers.
            if view.get(&k).is_none_or(|old| **old != eps) {
                view.insert(k, Arc::new(eps));
            }
        }
        if !new_keys.is_empty() {
            self.rendered.insert(svc.clone(), new_keys);
        }
        names_changed
    }

    /// Counts, for `/namer_state`.
    pub fn counts(&self) -> (usize, usize) {
        (self.services.len(), self.slices.len())
    }
}

// ---------------------------------------------------------------------------
// Watches.

/// Which watch a message comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Services,
    Slices,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Services => "services",
            Kind::Slices => "endpointslices",
        }
    }
}

/// What a watch saw, already in the store's compact form (so a list of a
/// large cluster never holds more than one page of full objects).
enum Change {
    /// A full list of the watch's scope.
    Services(Vec<(Key, SvcPorts)>),
    Slices(Vec<(Key, Option<Slice>)>),
    /// One object changed (`None`: deleted).
    Service(Key, Option<SvcPorts>),
    Slice(Key, Option<Slice>),
}

enum Msg {
    /// A full list (replacing the watch's scope) or one event (`true`:
    /// applied, `false`: deleted).
    Change(usize, Change),
    /// A watch's state moved.
    State(usize, WatchState),
    /// The API server answered (a bookmark): the view is current as of now.
    Alive,
}

/// One watch's state, for `/namer_state` and the logs.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WatchState {
    pub resource: &'static str,
    pub namespace: Option<String>,
    /// `listing`, `watching` or `backoff`.
    pub state: &'static str,
    /// As of the last state change or bookmark (not updated per event).
    pub resource_version: String,
    /// When the watch last heard from the API server (ms of uptime), as of
    /// the last state change or bookmark.
    pub last_event_ms: u64,
    pub errors: u64,
    pub last_error: Option<String>,
}

struct Backoff {
    next: Duration,
    seed: u64,
}

impl Backoff {
    fn new(seed: u64) -> Backoff {
        Backoff {
            next: BACKOFF_MIN,
            seed: seed | 1,
        }
    }

    fn reset(&mut self) {
        self.next = BACKOFF_MIN;
    }

    /// A jittered delay in [next/2, next], then doubles `next`.
    fn delay(&mut self) -> Duration {
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let half = self.next / 2;
        let jitter = half.mul_f64((self.seed % 1000) as f64 / 1000.0);
        let d = half + jitter;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        d
    }
}

/// What the watch loop needs to know of a resource type.
trait Watched:
    kube::Resource<DynamicType = ()>
    + Clone
    + serde::de::DeserializeOwned
    + std::fmt::Debug
    + Send
    + 'static
{
    const KIND: Kind;
    /// What the store keeps of one object.
    type Compact: Send;
    fn compact(&self) -> Option<(Key, Self::Compact)>;
    fn listed(items: Vec<(Key, Self::Compact)>) -> Change;
    /// A change to one object; `None` when it was deleted.
    fn event(key: Key, value: Option<Self::Compact>) -> Change;
}

impl Watched for Service {
    const KIND: Kind = Kind::Services;
    type Compact = SvcPorts;
    fn compact(&self) -> Option<(Key, SvcPorts)> {
        compact_service(self)
    }
    fn listed(items: Vec<(Key, SvcPorts)>) -> Change {
        Change::Services(items)
    }
    fn event(key: Key, value: Option<SvcPorts>) -> Change {
        Change::Service(key, value)
    }
}

impl Watched for EndpointSlice {
    const KIND: Kind = Kind::Slices;
    type Compact = Option<Slice>;
    fn compact(&self) -> Option<(Key, Option<Slice>)> {
        compact_slice(self)
    }
    fn listed(items: Vec<(Key, Option<Slice>)>) -> Change {
        Change::Slices(items)
    }
    fn event(key: Key, value: Option<Option<Slice>>) -> Change {
        Change::Slice(key, value.flatten())
    }
}

/// Lists every page; a 410 on a `continue` token (the snapshot it pointed
/// at was compacted) is an error the caller answers by listing again from
/// the first page.
#[allow(clippy::type_complexity)]
async fn list_all<K: Watched>(
    api: &Api<K>,
    labels: Option<&str>,
) -> Result<(Vec<(Key, K::Compact)>, String), kube::Error> {
    let mut items = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut lp = ListParams::default().limit(LIST_PAGE);
        if let Some(l) = labels {
            lp = lp.labels(l);
        }
        if let Some(t) = &token {
            lp = lp.continue_token(t);
        }
        let page = match tokio::time::timeout(LIST_TIMEOUT, api.list(&lp)).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(kube::Error::Service(
                    format!("list timed out after {} s", LIST_TIMEOUT.as_secs()).into(),
                ));
            }
        };
        // Each page is compacted and dropped before the next is read.
        items.extend(page.items.iter().filter_map(K::compact));
        match page.metadata.continue_.filter(|t| !t.is_empty()) {
            Some(t) => token = Some(t),
            None => {
                return Ok((items, page.metadata.resource_version.unwrap_or_default()));
            }
        }
    }
}

fn is_gone(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 410)
}

/// Lists, then watches from the list's resourceVersion, for ever: resumes
/// from the last version seen when a watch ends or goes silent, re-lists
/// when the version is too old (410, whether as the watch's HTTP status or
/// as an ERROR event inside a 200), and backs off after failures. Sends
/// every change and state move to the namer's task.
async fn watch_loop<K: Watched>(
    slot: usize,
    api: Api<K>,
    namespace: Option<String>,
    timeout: Duration,
    tx: mpsc::UnboundedSender<Msg>,
) {
    let labels = (K::KIND == Kind::Slices).then_some(SERVICE_NAME_LABEL);
    let mut state = WatchState {
        resource: K::KIND.name(),
        namespace: namespace.clone(),
        state: "listing",
        resource_version: String::new(),
        last_event_ms: 0,
        errors: 0,
        last_error: None,
    };
    let mut backoff = Backoff::new(crate::telemetry::uptime_ms() ^ ((slot as u64) << 32));
    let secs = u32::try_from(timeout.as_secs().max(1)).unwrap_or(u32::MAX);
    let idle = timeout + timeout.min(Duration::from_secs(5));
    let where_ = namespace.as_deref().unwrap_or("all namespaces").to_owned();
    let send_state = |s: &WatchState| tx.send(Msg::State(slot, s.clone())).is_ok();
    let mut rv: Option<String> = None;
    loop {
        if rv.is_none() {
            state.state = "listing";
            if !send_state(&state) {
                return;
            }
            match list_all(&api, labels).await {
                Ok((items, version)) => {
                    state.last_event_ms = crate::telemetry::uptime_ms();
                    state.resource_version.clone_from(&version);
                    rv = Some(version);
                    if tx.send(Msg::Change(slot, K::listed(items))).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    fail(&mut state, K::KIND, &where_, "list", &e);
                    if !pause(&mut state, &send_state, &mut backoff).await {
                        return;
                    }
                    continue;
                }
            }
        }
        let version = rv.clone().unwrap_or_default();
        let mut wp = WatchParams::default().timeout(secs);
        if let Some(l) = labels {
            wp = wp.labels(l);
        }
        state.state = "watching";
        if !send_state(&state) {
            return;
        }
        let stream = match api.watch(&wp, &version).await {
            Ok(s) => s,
            Err(e) if is_gone(&e) => {
                // The API server refused the version outright: kube-runtime's
                // watcher would retry this for ever; re-list instead.
                fail(&mut state, K::KIND, &where_, "watch", &e);
                rv = None;
                continue;
            }
            Err(e) => {
                fail(&mut state, K::KIND, &where_, "watch", &e);
                if !pause(&mut state, &send_state, &mut backoff).await {
                    return;
                }
                continue;
            }
        };
        let mut stream = std::pin::pin!(stream);
        let mut healthy = true;
        loop {
            let next = match tokio::time::timeout(idle, stream.next()).await {
                Ok(n) => n,
                Err(_) => {
                    tracing::warn!(resource = K::KIND.name(), namespace = %where_, idle_ms = idle.as_millis() as u64, "watch went silent; reconnecting");
                    state.errors += 1;
                    state.last_error = Some(format!("watch silent for {} ms", idle.as_millis()));
                    break;
                }
            };
            let ev = match next {
                None => break,
                Some(Ok(ev)) => ev,
                Some(Err(e)) => {
                    fail(&mut state, K::KIND, &where_, "watch", &e);
                    healthy = false;
                    break;
                }
            };
            state.last_event_ms = crate::telemetry::uptime_ms();
            let change = match ev {
                WatchEvent::Added(o) | WatchEvent::Modified(o) => {
                    rv = o.meta().resource_version.clone().or(rv);
                    o.compact().map(|(k, v)| K::event(k, Some(v)))
                }
                WatchEvent::Deleted(o) => {
                    rv = o.meta().resource_version.clone().or(rv);
                    key_of(o.meta()).map(|k| K::event(k, None))
                }
                WatchEvent::Bookmark(b) => {
                    rv = Some(b.metadata.resource_version);
                    // The watch's reported state (its version, when it last
                    // heard) is refreshed here and on every transition, not
                    // per event: an event storm costs no extra messages.
                    state.resource_version = rv.clone().unwrap_or_default();
                    if tx.send(Msg::Alive).is_err() || !send_state(&state) {
                        return;
                    }
                    None
                }
                WatchEvent::Error(s) => {
                    let gone = s.code == 410;
                    let e = kube::Error::Api(s);
                    fail(&mut state, K::KIND, &where_, "watch", &e);
                    if gone {
                        // Compacted past our version (sent inside a 200, as
                        // the watch cache does): start over with a list.
                        rv = None;
                    } else {
                        healthy = false;
                    }
                    break;
                }
            };
            backoff.reset();
            if let Some(c) = change
                && tx.send(Msg::Change(slot, c)).is_err()
            {
                return;
            }
        }
        state.resource_version = rv.clone().unwrap_or_default();
        if !healthy && !pause(&mut state, &send_state, &mut backoff).await {
            return;
        }
    }
}

/// Reports the watch as backing off, then waits out the next delay.
/// False when the namer's task is gone.
async fn pause(
    state: &mut WatchState,
    send_state: &impl Fn(&WatchState) -> bool,
    backoff: &mut Backoff,
) -> bool {
    state.state = "backoff";
    if !send_state(state) {
        return false;
    }
    tokio::time::sleep(backoff.delay()).await;
    true
}

fn report(states: &[Option<WatchState>], store: &Store) -> WatchReport {
    let (services, slices) = store.counts();
    WatchReport {
        watches: states.iter().flatten().cloned().collect(),
        services,
        slices,
    }
}

fn fail(state: &mut WatchState, kind: Kind, where_: &str, what: &str, e: &kube::Error) {
    tracing::warn!(resource = kind.name(), namespace = %where_, error = %e, "{what} failed");
    state.errors += 1;
    state.last_error = Some(format!("{what}: {e}"));
}

async fn client_for(api: &ApiSource) -> Result<kube::Client, String> {
    let config = match api {
        ApiSource::InCluster => {
            kube::Config::incluster().map_err(|e| format!("in-cluster config: {e}"))?
        }
        ApiSource::Kubeconfig(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| format!("{}: {e}", path.display()))?
        }
        ApiSource::Url(u) => kube::Config::new(u.parse().map_err(|e| format!("{u}: {e}"))?),
    };
    kube::Client::try_from(config).map_err(|e| e.to_string())
}

/// One namer: its watches feed a store; each batch of changes re-renders
/// the services it touched and publishes the view, once every watch has
/// listed.
async fn run_namer(n: K8sNamer, published: Arc<Published>) {
    let mut backoff = Backoff::new(n.index as u64 + 7);
    let client = loop {
        match client_for(&n.api).await {
            Ok(c) => break c,
            Err(e) => {
                tracing::warn!(namer = %n.prefix, error = %e, "cannot build the Kubernetes client");
                if let Some(h) = published.health.get(n.index) {
                    h.failed(e);
                }
                tokio::time::sleep(backoff.delay()).await;
            }
        }
    };
    let scopes: Vec<Option<String>> = if n.namespaces.is_empty() {
        vec![None]
    } else {
        n.namespaces.iter().cloned().map(Some).collect()
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    // Slots: for each scope, services then slices.
    let mut slots: Vec<(Kind, Option<String>)> = Vec::new();
    let mut watches = tokio::task::JoinSet::new();
    for scope in &scopes {
        let (svc_api, slice_api): (Api<Service>, Api<EndpointSlice>) = match scope {
            None => (Api::all(client.clone()), Api::all(client.clone())),
            Some(ns) => (
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client.clone(), ns),
            ),
        };
        slots.push((Kind::Services, scope.clone()));
        watches.spawn(watch_loop(
            slots.len() - 1,
            svc_api,
            scope.clone(),
            n.watch_timeout,
            tx.clone(),
        ));
        slots.push((Kind::Slices, scope.clone()));
        watches.spawn(watch_loop(
            slots.len() - 1,
            slice_api,
            scope.clone(),
            n.watch_timeout,
            tx.clone(),
        ));
    }
    drop(tx);
    let mut store = Store::default();
    let mut view = NamerView::with_id_len(n.prefix.clone(), 3);
    let mut listed = vec![false; slots.len()];
    let mut states: Vec<Option<WatchState>> = vec![None; slots.len()];
    let mut pending: HashSet<Key> = HashSet::new();
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        // Coalesce what has already arrived into one snapshot.
        while let Ok(m) = rx.try_recv() {
            batch.push(m);
        }
        let mut states_moved = false;
        let mut had_change = false;
        let mut alive = false;
        for m in batch {
            match m {
                Msg::State(slot, s) => {
                    if let Some(e) = &s.last_error
                        && states[slot].as_ref().is_none_or(|o| o.errors != s.errors)
                        && let Some(h) = published.health.get(n.index)
                    {
                        h.failed(e.clone());
                    }
                    states[slot] = Some(s);
                    states_moved = true;
                }
                Msg::Alive => alive = true,
                Msg::Change(slot, c) => {
                    had_change = true;
                    let scope = slots[slot].1.as_deref();
                    match c {
                        Change::Services(items) => {
                            store.replace_services(scope, items, &mut pending);
                            listed[slot] = true;
                        }
                        Change::Slices(items) => {
                            store.replace_slices(scope, items, &mut pending);
                            listed[slot] = true;
                        }
                        Change::Service(k, ports) => {
                            pending.insert(store.set_service(k, ports));
                        }
                        Change::Slice(k, slice) => store.set_slice(k, slice, &mut pending),
                    }
                }
            }
        }
        let h = published.health.get(n.index);
        if states_moved && let Some(h) = h {
            h.set_watches(report(&states, &store));
        }
        if !listed.iter().all(|l| *l) {
            continue;
        }
        let first_sync = !view.synced;
        if !had_change && !first_sync {
            if alive && let Some(h) = h {
                h.synced(false);
            }
            continue;
        }
        let mut names_changed = first_sync;
        let before = view.services.clone();
        for svc in pending.drain() {
            names_changed |= store.render(&svc, &mut view.services);
        }
        view.synced = true;
        let changed = first_sync || !view.services.ptr_eq(&before);
        if let Some(h) = h {
            h.synced(changed);
            h.set_watches(report(&states, &store));
        }
        if changed {
            let g = published.update(vec![(n.index, view.clone())], names_changed);
            if first_sync {
                let (svcs, slices) = store.counts();
                tracing::info!(namer = %n.prefix, services = svcs, slices, generation = g, "first Kubernetes sync published");
            }
        }
    }
}

#[cfg(test)]
mod tests;
