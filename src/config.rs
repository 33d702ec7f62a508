//! Configuration: YAML in the shape linkerd 1 users know (`routers` with
//! `servers`, `dtab`, `identifier`), camelCase keys with the unit last.
//!
//! Parsing is strict: every struct denies unknown fields, so a typo fails at
//! start-up with the key path. [`Config::load`] returns only a validated
//! [`Config`]; the raw serde structs never leave this module.

use crate::limits::{
    NAMER_MAX_DEPTH_DEFAULT, REQUEST_BODY_BYTES_MAX, REQUEST_HEAD_BYTES_MAX,
    REQUEST_TARGET_BYTES_MAX,
};
use crate::routing::identify::{Identifier, IdentifierKind};
use crate::routing::{CompiledDtab, Dtab, Path};
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// A configuration error, naming the key.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

fn cfg_err(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.into(),
        message: message.into(),
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawConfig {
    #[serde(default)]
    runtime: RawRuntime,
    #[serde(default)]
    telemetry: RawTelemetry,
    admin: Option<RawAdmin>,
    #[serde(default)]
    namers: Vec<RawNamer>,
    routers: Vec<RawRouter>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawTelemetry {
    metrics: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawAdmin {
    #[serde(default = "default_ip")]
    ip: IpAddr,
    #[serde(default = "default_admin_port")]
    port: u16,
}

fn default_admin_port() -> u16 {
    9990
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawNamer {
    kind: String,
    prefix: Option<String>,
    /// `io.l5d.fs`.
    root_dir: Option<String>,
    poll_interval_ms: Option<u64>,
    /// `io.l5d.k8s`: a plain-HTTP API endpoint such as `kubectl proxy`
    /// (linkerd 1's keys); without them, a kubeconfig or the in-cluster
    /// service account.
    host: Option<String>,
    port: Option<u16>,
    kubeconfig: Option<std::path::PathBuf>,
    namespaces: Option<Vec<String>>,
    watch_timeout_ms: Option<u64>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawRuntime {
    driver: Option<String>,
    shards: Option<usize>,
    drain_timeout_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawRouter {
    protocol: String,
    label: String,
    #[serde(default)]
    dtab: String,
    dst_prefix: Option<String>,
    identifier: Option<RawIdentifier>,
    servers: Vec<RawServer>,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    timeouts: RawTimeouts,
    namer_max_depth: Option<usize>,
    /// linkerd 1's `bindingTimeoutMs`: how long a request waits for a
    /// pending name before it fails with 503.
    binding_timeout_ms: Option<u64>,
    #[serde(default)]
    interpreter: RawInterpreter,
    http_access_log: Option<std::path::PathBuf>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawInterpreter {
    kind: Option<String>,
    #[serde(default)]
    transformers: Vec<RawTransformer>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawTransformer {
    kind: String,
    /// `io.l5d.daemonset`: the bound id whose endpoints are the peer
    /// proxies' incoming listeners, each tagged with its node.
    peers: Option<String>,
    /// This proxy's node; defaults to the `NODE_NAME` environment variable.
    node: Option<String>,
    /// `io.l5d.k8s.daemonset` (linkerd 1's form): the peers are the
    /// endpoints of `/#/io.l5d.k8s/<namespace>/<port>/<service>`.
    namespace: Option<String>,
    port: Option<String>,
    service: Option<String>,
    /// `io.l5d.k8s.daemonset`: the k8s namer's prefix (default
    /// `/io.l5d.k8s`).
    k8s_prefix: Option<String>,
}

/// How endpoints are rewritten before one is picked (linkerd's
/// `io.l5d.k8s.daemonset` and `io.l5d.k8s.localnode`, keyed on node names
/// rather than a /24 guess).
#[derive(Debug, Clone, PartialEq)]
pub enum Transformer {
    /// Send to the peer proxy on the destination endpoint's node (its
    /// incoming router); a destination on this node, or on a node with no
    /// peer, is reached directly.
    DaemonSet { peers: Path, node: Option<String> },
    /// Keep only endpoints on this node.
    LocalNode { node: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawIdentifier {
    kind: String,
    header: Option<String>,
    http_uri_in_dst: Option<bool>,
    segments: Option<usize>,
    consume: Option<bool>,
    path: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawServer {
    #[serde(default = "default_ip")]
    ip: IpAddr,
    port: u16,
    trust: Option<String>,
    connections_max: Option<usize>,
    override_policy: Option<RawOverridePolicy>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawOverridePolicy {
    prefixes: Vec<String>,
    destinations: Vec<String>,
    max_dentries: Option<usize>,
    require_header: Option<RawRequireHeader>,
    #[serde(default)]
    sources: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawRequireHeader {
    name: String,
    value: String,
}

fn default_ip() -> IpAddr {
    IpAddr::from([127, 0, 0, 1])
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawLimits {
    request_head_bytes_max: Option<usize>,
    request_target_bytes_max: Option<usize>,
    request_body_bytes_max: Option<u64>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawTimeouts {
    header_read_timeout_ms: Option<u64>,
    idle_timeout_ms: Option<u64>,
    connect_timeout_ms: Option<u64>,
    response_head_timeout_ms: Option<u64>,
    body_idle_timeout_ms: Option<u64>,
    expect_continue_timeout_ms: Option<u64>,
}

/// Which IO driver shards use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriverChoice {
    /// io_uring, falling back to epoll where it is unavailable or denied.
    Auto,
    IoUring,
    Epoll,
}

impl std::str::FromStr for DriverChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(DriverChoice::Auto),
            "io_uring" | "iouring" => Ok(DriverChoice::IoUring),
            "epoll" | "legacy" => Ok(DriverChoice::Epoll),
            other => Err(format!(
                "unknown driver {other:?} (expected auto, io_uring or epoll)"
            )),
        }
    }
}

/// Whether a listener believes routing headers from its clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// Mesh traffic (outgoing, incoming): `l5d-ctx-dtab` and `l5d-dtab` are
    /// read and applied.
    Mesh,
    /// Traffic from outside (linkerd's `clearContext`): every `l5d-*`
    /// header is stripped unread.
    Edge,
}

/// Timeouts of one router's listeners and upstream exchanges.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// From a request's first byte to its complete head; never reset by
    /// trickling bytes (slowloris).
    pub header_read: Duration,
    /// A kept-alive client connection with no request in progress.
    pub idle: Duration,
    pub connect: Duration,
    /// From the request written to the response head read.
    pub response_head: Duration,
    /// Longest wait for any one body read or write, either side.
    pub body_idle: Duration,
    /// How long a request with `Expect: 100-continue` waits for the
    /// upstream's 100 before its body is sent anyway (RFC 9110 §10.1.1).
    pub expect_continue: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            header_read: Duration::from_secs(10),
            idle: Duration::from_secs(60),
            connect: Duration::from_secs(2),
            response_head: Duration::from_secs(30),
            body_idle: Duration::from_secs(30),
            expect_continue: Duration::from_secs(1),
        }
    }
}

/// One listener of a router.
#[derive(Debug, Clone)]
pub struct Server {
    pub addr: SocketAddr,
    pub trust: Trust,
    /// Client connections one shard holds at once on this listener.
    pub connections_max: usize,
    /// On an edge listener: which `l5d-dtab` overrides it admits.
    pub override_policy: Option<Arc<EdgeOverrides>>,
}

/// An edge listener's override policy and who may use it.
#[derive(Debug, Clone)]
pub struct EdgeOverrides {
    pub policy: crate::routing::policy::OverridePolicy,
    /// A header (name, value) a request must carry before any override is
    /// considered; it is never forwarded.
    pub require_header: Option<(String, Vec<u8>)>,
    /// Client networks (address, prefix length) allowed to override; empty
    /// means any.
    pub sources: Vec<(IpAddr, u8)>,
}

impl EdgeOverrides {
    /// Whether `ip` is in one of the allowed networks.
    pub fn source_allowed(&self, ip: IpAddr) -> bool {
        self.sources.is_empty()
            || self
                .sources
                .iter()
                .any(|&(net, len)| in_network(ip, net, len))
    }
}

fn in_network(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len.min(32)))
            };
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(len.min(128)))
            };
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

/// Default cap on dentries an admitted override may carry.
pub const OVERRIDE_DENTRIES_MAX: usize = 8;

/// Default cap on client connections per shard per listener.
pub const CONNECTIONS_PER_SHARD_MAX: usize = 10_000;

/// A validated router.
#[derive(Debug)]
pub struct Router {
    pub label: String,
    pub dtab: CompiledDtab,
    pub identifier: Identifier,
    pub servers: Vec<Server>,
    pub limits: crate::http1::request::RequestLimits,
    pub timeouts: Timeouts,
    pub namer_max_depth: usize,
    /// How long a request waits for a pending name (a namer that has not
    /// synced) before it fails with 503.
    pub binding_timeout: Duration,
    pub transformers: Vec<Transformer>,
    /// Where this router's access log is appended (`httpAccessLog`).
    pub access_log: Option<std::path::PathBuf>,
}

/// A validated configuration.
#[derive(Debug)]
pub struct Config {
    pub driver: DriverChoice,
    /// Whether shards record metrics (on unless `telemetry.metrics: false`;
    /// off only to measure what metrics cost).
    pub metrics: bool,
    /// Where the admin server listens, when configured.
    pub admin: Option<SocketAddr>,
    /// Configured namers, in config order (tried in that order).
    pub namers: Vec<crate::discovery::NamerConfig>,
    /// Shard count; `None` means one per CPU in the affinity mask.
    pub shards: Option<usize>,
    pub drain_timeout: Duration,
    pub routers: Vec<Arc<Router>>,
}

impl Config {
    /// Parses and validates YAML.
    pub fn from_yaml(text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = serde_yaml_ng::from_str(text).map_err(|e| {
            let key = e.location().map_or_else(
                || "config".to_owned(),
                |l| format!("line {} column {}", l.line(), l.column()),
            );
            cfg_err(key, e.to_string())
        })?;
        raw.validate()
    }

    /// Reads, parses and validates a file.
    pub fn load(file: &std::path::Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(file)
            .map_err(|e| cfg_err(file.display().to_string(), e.to_string()))?;
        Config::from_yaml(&text)
    }
}

impl RawConfig {
    fn validate(self) -> Result<Config, ConfigError> {
        let driver = match &self.runtime.driver {
            Some(d) => d.parse().map_err(|e| cfg_err("runtime.driver", e))?,
            None => DriverChoice::Auto,
        };
        if self.runtime.shards == Some(0) {
            return Err(cfg_err(
                "runtime.shards",
                "must be at least 1 (omit it for one per CPU)",
            ));
        }
        if self.routers.is_empty() {
            return Err(cfg_err("routers", "at least one router is required"));
        }
        let mut routers = Vec::with_capacity(self.routers.len());
        let mut labels = std::collections::HashSet::new();
        let mut addrs = std::collections::HashSet::new();
        for (i, r) in self.routers.into_iter().enumerate() {
            let key = format!("routers[{i}]");
            if !labels.insert(r.label.clone()) {
                return Err(cfg_err(
                    format!("{key}.label"),
                    format!("duplicate router label {:?}", r.label),
                ));
            }
            let router = r.validate(&key)?;
            for (j, s) in router.servers.iter().enumerate() {
                if s.addr.port() != 0 && !addrs.insert(s.addr) {
                    return Err(cfg_err(
                        format!("{key}.servers[{j}]"),
                        format!("{} is already used", s.addr),
                    ));
                }
            }
            routers.push(Arc::new(router));
        }
        let mut namers = Vec::with_capacity(self.namers.len());
        for (i, n) in self.namers.iter().enumerate() {
            namers.push(n.validate(i)?);
        }
        Ok(Config {
            driver,
            metrics: self.telemetry.metrics.unwrap_or(true),
            admin: self.admin.as_ref().map(|a| SocketAddr::new(a.ip, a.port)),
            namers,
            shards: self.runtime.shards,
            drain_timeout: Duration::from_millis(self.runtime.drain_timeout_ms.unwrap_or(10_000)),
            routers,
        })
    }
}

impl RawNamer {
    fn validate(&self, i: usize) -> Result<crate::discovery::NamerConfig, ConfigError> {
        use crate::discovery::{NamerConfig, fs::FsNamer, k8s};
        let key = format!("namers[{i}]");
        let fs = self.kind == "io.l5d.fs";
        let kube = self.kind == "io.l5d.k8s";
        if !fs && !kube {
            return Err(cfg_err(
                format!("{key}.kind"),
                format!(
                    "unknown namer kind {:?} (expected io.l5d.fs or io.l5d.k8s)",
                    self.kind
                ),
            ));
        }
        // Keys of the other kind are mistakes, not silently ignored.
        let foreign: &[(&str, bool)] = if fs {
            &[
                ("host", self.host.is_some()),
                ("port", self.port.is_some()),
                ("kubeconfig", self.kubeconfig.is_some()),
                ("namespaces", self.namespaces.is_some()),
                ("watchTimeoutMs", self.watch_timeout_ms.is_some()),
            ]
        } else {
            &[
                ("rootDir", self.root_dir.is_some()),
                ("pollIntervalMs", self.poll_interval_ms.is_some()),
            ]
        };
        if let Some((k, _)) = foreign.iter().find(|(_, set)| *set) {
            return Err(cfg_err(
                format!("{key}.{k}"),
                format!("not a key of {}", self.kind),
            ));
        }
        // linkerd mounts a namer at `/#` ++ its prefix (default: its kind).
        let default_prefix = format!("/{}", self.kind);
        let prefix = Path::read(self.prefix.as_deref().unwrap_or(&default_prefix))
            .map_err(|e| cfg_err(format!("{key}.prefix"), e.message))?;
        let mut mount =
            Path::read("/#").map_err(|e| cfg_err(format!("{key}.prefix"), e.message))?;
        mount.append(&prefix);
        if fs {
            let root = self
                .root_dir
                .as_deref()
                .ok_or_else(|| cfg_err(format!("{key}.rootDir"), "required"))?;
            let poll = self.poll_interval_ms.unwrap_or(500);
            if poll == 0 {
                return Err(cfg_err(
                    format!("{key}.pollIntervalMs"),
                    "must be at least 1",
                ));
            }
            return Ok(NamerConfig::Fs(FsNamer {
                index: i,
                prefix: mount,
                root_dir: root.into(),
                poll_interval: Duration::from_millis(poll),
            }));
        }
        let api = match (&self.host, self.port, &self.kubeconfig) {
            (Some(_), _, Some(_)) | (None, Some(_), Some(_)) => {
                return Err(cfg_err(
                    format!("{key}.kubeconfig"),
                    "give either host/port or kubeconfig, not both",
                ));
            }
            (None, None, None) => k8s::ApiSource::InCluster,
            (None, None, Some(path)) => k8s::ApiSource::Kubeconfig(path.clone()),
            (host, port, None) => {
                let host = host.as_deref().unwrap_or("localhost");
                if host.is_empty() || host.contains(['/', ' ']) {
                    return Err(cfg_err(
                        format!("{key}.host"),
                        format!("invalid host {host:?}"),
                    ));
                }
                let host = if host.contains(':') {
                    format!("[{host}]")
                } else {
                    host.to_owned()
                };
                k8s::ApiSource::Url(format!("http://{host}:{}", port.unwrap_or(8001)))
            }
        };
        let namespaces = self.namespaces.clone().unwrap_or_default();
        if let Some(bad) = namespaces.iter().find(|n| !is_dns_label(n)) {
            return Err(cfg_err(
                format!("{key}.namespaces"),
                format!("{bad:?} is not a namespace name"),
            ));
        }
        let watch_ms = self.watch_timeout_ms.unwrap_or(290_000);
        if watch_ms < 1000 {
            return Err(cfg_err(
                format!("{key}.watchTimeoutMs"),
                "must be at least 1000",
            ));
        }
        Ok(NamerConfig::K8s(k8s::K8sNamer {
            index: i,
            prefix: mount,
            api,
            namespaces,
            watch_timeout: Duration::from_millis(watch_ms),
        }))
    }
}

/// An RFC 1123 label, as Kubernetes namespace names are.
fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

impl RawRouter {
    fn validate(self, key: &str) -> Result<Router, ConfigError> {
        if self.protocol != "http" {
            return Err(cfg_err(
                format!("{key}.protocol"),
                format!("unsupported protocol {:?} (only http)", self.protocol),
            ));
        }
        let dtab = Dtab::read(&self.dtab).map_err(|e| cfg_err(format!("{key}.dtab"), e.message))?;
        let dst_prefix = match &self.dst_prefix {
            Some(p) => Path::read(p).map_err(|e| cfg_err(format!("{key}.dstPrefix"), e.message))?,
            None => {
                Path::read("/svc").map_err(|e| cfg_err(format!("{key}.dstPrefix"), e.message))?
            }
        };
        let kind = match &self.identifier {
            None => IdentifierKind::HeaderToken {
                header: "Host".into(),
            },
            Some(id) => {
                let k = format!("{key}.identifier");
                match id.kind.as_str() {
                    "io.l5d.header.token" => IdentifierKind::HeaderToken {
                        header: id.header.clone().unwrap_or_else(|| "Host".into()),
                    },
                    "io.l5d.header" => IdentifierKind::Header {
                        header: id.header.clone().unwrap_or_else(|| "l5d-name".into()),
                    },
                    "io.l5d.methodAndHost" => IdentifierKind::MethodAndHost {
                        http_uri_in_dst: id.http_uri_in_dst.unwrap_or(false),
                    },
                    "io.l5d.path" => {
                        let segments = id.segments.unwrap_or(1);
                        if segments == 0 {
                            return Err(cfg_err(format!("{k}.segments"), "must be at least 1"));
                        }
                        IdentifierKind::Path {
                            segments,
                            consume: id.consume.unwrap_or(false),
                        }
                    }
                    "io.l5d.static" => {
                        let p = id
                            .path
                            .as_deref()
                            .ok_or_else(|| cfg_err(format!("{k}.path"), "required"))?;
                        IdentifierKind::Static {
                            path: Path::read(p)
                                .map_err(|e| cfg_err(format!("{k}.path"), e.message))?,
                        }
                    }
                    other => {
                        return Err(cfg_err(
                            format!("{k}.kind"),
                            format!("unknown identifier {other:?}"),
                        ));
                    }
                }
            }
        };
        if self.servers.is_empty() {
            return Err(cfg_err(
                format!("{key}.servers"),
                "at least one server is required",
            ));
        }
        let mut servers = Vec::with_capacity(self.servers.len());
        for (j, s) in self.servers.iter().enumerate() {
            let trust = match s.trust.as_deref() {
                None | Some("mesh") => Trust::Mesh,
                Some("edge") => Trust::Edge,
                Some(other) => {
                    return Err(cfg_err(
                        format!("{key}.servers[{j}].trust"),
                        format!("unknown trust {other:?} (expected mesh or edge)"),
                    ));
                }
            };
            let override_policy = match &s.override_policy {
                None => None,
                Some(_) if trust != Trust::Edge => {
                    return Err(cfg_err(
                        format!("{key}.servers[{j}].overridePolicy"),
                        "only edge listeners take an override policy (mesh listeners admit every override)",
                    ));
                }
                Some(p) => Some(Arc::new(
                    p.validate(&format!("{key}.servers[{j}].overridePolicy"))?,
                )),
            };
            let connections_max = s.connections_max.unwrap_or(CONNECTIONS_PER_SHARD_MAX);
            if connections_max == 0 {
                return Err(cfg_err(
                    format!("{key}.servers[{j}].connectionsMax"),
                    "must be at least 1",
                ));
            }
            servers.push(Server {
                addr: SocketAddr::new(s.ip, s.port),
                trust,
                connections_max,
                override_policy,
            });
        }
        let d = Timeouts::default();
        let ms = |v: Option<u64>, def: Duration, name: &str| -> Result<Duration, ConfigError> {
            match v {
                Some(0) => Err(cfg_err(
                    format!("{key}.timeouts.{name}"),
                    "must be at least 1 ms",
                )),
                Some(v) => Ok(Duration::from_millis(v)),
                None => Ok(def),
            }
        };
        let t = &self.timeouts;
        let timeouts = Timeouts {
            header_read: ms(
                t.header_read_timeout_ms,
                d.header_read,
                "headerReadTimeoutMs",
            )?,
            idle: ms(t.idle_timeout_ms, d.idle, "idleTimeoutMs")?,
            connect: ms(t.connect_timeout_ms, d.connect, "connectTimeoutMs")?,
            response_head: ms(
                t.response_head_timeout_ms,
                d.response_head,
                "responseHeadTimeoutMs",
            )?,
            body_idle: ms(t.body_idle_timeout_ms, d.body_idle, "bodyIdleTimeoutMs")?,
            expect_continue: ms(
                t.expect_continue_timeout_ms,
                d.expect_continue,
                "expectContinueTimeoutMs",
            )?,
        };
        let l = &self.limits;
        let limits = crate::http1::request::RequestLimits {
            head_bytes_max: l.request_head_bytes_max.unwrap_or(REQUEST_HEAD_BYTES_MAX),
            target_bytes_max: l
                .request_target_bytes_max
                .unwrap_or(REQUEST_TARGET_BYTES_MAX),
            body_bytes_max: l.request_body_bytes_max.unwrap_or(REQUEST_BODY_BYTES_MAX),
        };
        if limits.head_bytes_max < 1024 {
            return Err(cfg_err(
                format!("{key}.limits.requestHeadBytesMax"),
                "must be at least 1024",
            ));
        }
        if let Some(k) = &self.interpreter.kind
            && k != "default"
        {
            return Err(cfg_err(
                format!("{key}.interpreter.kind"),
                format!("unknown interpreter {k:?} (expected default)"),
            ));
        }
        let mut transformers = Vec::new();
        for (j, t) in self.interpreter.transformers.iter().enumerate() {
            let k = format!("{key}.interpreter.transformers[{j}]");
            let node = t
                .node
                .clone()
                .or_else(|| std::env::var("NODE_NAME").ok())
                .filter(|n| !n.is_empty());
            transformers.push(match t.kind.as_str() {
                "io.l5d.daemonset" => {
                    let peers = t.peers.as_deref().ok_or_else(|| cfg_err(format!("{k}.peers"), "required"))?;
                    Transformer::DaemonSet {
                        peers: Path::read(peers).map_err(|e| cfg_err(format!("{k}.peers"), e.message))?,
                        node,
                    }
                }
                "io.l5d.k8s.daemonset" => {
                    let part = |v: &Option<String>, name: &str| {
                        v.as_deref()
                            .filter(|v| !v.is_empty() && !v.contains('/'))
                            .map(str::to_owned)
                            .ok_or_else(|| cfg_err(format!("{k}.{name}"), "required: one path element"))
                    };
                    let (ns, port, svc) = (part(&t.namespace, "namespace")?, part(&t.port, "port")?, part(&t.service, "service")?);
                    let prefix = t.k8s_prefix.as_deref().unwrap_or("/io.l5d.k8s");
                    let peers = format!("/#{prefix}/{ns}/{port}/{svc}");
                    Transformer::DaemonSet {
                        peers: Path::read(&peers).map_err(|e| cfg_err(format!("{k}.k8sPrefix"), e.message))?,
                        node,
                    }
                }
                "io.l5d.localnode" | "io.l5d.k8s.localnode" => Transformer::LocalNode {
                    node: node.ok_or_else(|| cfg_err(format!("{k}.node"), "required (or set NODE_NAME)"))?,
                },
                other => {
                    return Err(cfg_err(
                        format!("{k}.kind"),
                        format!("unknown transformer {other:?} (expected io.l5d.daemonset, io.l5d.k8s.daemonset, io.l5d.localnode or io.l5d.k8s.localnode)"),
                    ));
                }
            });
        }
        if self
            .http_access_log
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            return Err(cfg_err(
                format!("{key}.httpAccessLog"),
                "must be a file path",
            ));
        }
        Ok(Router {
            transformers,
            access_log: self.http_access_log,
            label: self.label,
            dtab: CompiledDtab::new(dtab),
            identifier: Identifier { kind, dst_prefix },
            servers,
            limits,
            timeouts,
            namer_max_depth: self.namer_max_depth.unwrap_or(NAMER_MAX_DEPTH_DEFAULT),
            binding_timeout: Duration::from_millis(self.binding_timeout_ms.unwrap_or(10_000)),
        })
    }
}

impl RawOverridePolicy {
    fn validate(&self, key: &str) -> Result<EdgeOverrides, ConfigError> {
        let paths = |v: &[String], k: &str| -> Result<Vec<Path>, ConfigError> {
            if v.is_empty() {
                return Err(cfg_err(format!("{key}.{k}"), "at least one is required"));
            }
            v.iter()
                .map(|p| Path::read(p).map_err(|e| cfg_err(format!("{key}.{k}"), e.message)))
                .collect()
        };
        let prefixes = paths(&self.prefixes, "prefixes")?;
        if prefixes.iter().any(Path::is_empty) {
            return Err(cfg_err(
                format!("{key}.prefixes"),
                "\"/\" would admit every override",
            ));
        }
        let destinations = paths(&self.destinations, "destinations")?;
        let mut sources = Vec::new();
        for s in &self.sources {
            let (ip, len) = s
                .split_once('/')
                .unwrap_or((s, if s.contains(':') { "128" } else { "32" }));
            let ip: IpAddr = ip
                .parse()
                .map_err(|_| cfg_err(format!("{key}.sources"), format!("invalid network {s:?}")))?;
            let len: u8 = len
                .parse()
                .map_err(|_| cfg_err(format!("{key}.sources"), format!("invalid network {s:?}")))?;
            sources.push((ip, len));
        }
        Ok(EdgeOverrides {
            policy: crate::routing::policy::OverridePolicy {
                prefixes,
                destinations,
                max_dentries: self.max_dentries.unwrap_or(OVERRIDE_DENTRIES_MAX),
            },
            require_header: self
                .require_header
                .as_ref()
                .map(|h| (h.name.clone(), h.value.as_bytes().to_vec())),
            sources,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_router() {
        let c = Config::from_yaml(
            "routers:\n- protocol: http\n  label: out\n  dtab: /svc => /$/inet/127.0.0.1/9000\n  servers:\n  - port: 4140\n",
        )
        .unwrap();
        assert_eq!(
            c.routers[0].servers[0].addr,
            "127.0.0.1:4140".parse().unwrap()
        );
        assert_eq!(c.routers[0].servers[0].trust, Trust::Mesh);
        assert_eq!(c.driver, DriverChoice::Auto);
    }

    #[test]
    fn errors_name_the_key() {
        let e = Config::from_yaml(
            "routers:\n- protocol: http\n  label: a\n  servers: [{port: 1, prot: 2}]\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("prot"), "{e}");
        let e = Config::from_yaml(
            "routers:\n- protocol: http\n  label: a\n  dtab: /a=>\n  servers: [{port: 1}]\n",
        )
        .unwrap_err();
        assert_eq!(e.key, "routers[0].dtab");
        let e = Config::from_yaml(
            "routers:\n- protocol: http\n  label: a\n  servers: [{port: 1, trust: sometimes}]\n",
        )
        .unwrap_err();
        assert_eq!(e.key, "routers[0].servers[0].trust");
        let e = Config::from_yaml("runtime: {driver: fast}\nrouters: []\n").unwrap_err();
        assert_eq!(e.key, "runtime.driver");
    }

    #[test]
    fn k8s_namer_and_transformer_keys() {
        use crate::discovery::{NamerConfig, k8s::ApiSource};
        let routers = "routers:\n- protocol: http\n  label: a\n  servers: [{port: 0}]\n";
        let c = Config::from_yaml(&format!(
            "namers:\n- kind: io.l5d.k8s\n  namespaces: [default, web]\n{routers}"
        ))
        .unwrap();
        let NamerConfig::K8s(k) = &c.namers[0] else {
            panic!("{:?}", c.namers)
        };
        assert_eq!(k.api, ApiSource::InCluster);
        assert_eq!(k.prefix.show(), "/#/io.l5d.k8s");
        assert_eq!(k.namespaces, ["default", "web"]);
        assert_eq!(k.watch_timeout, Duration::from_secs(290));
        let c = Config::from_yaml(&format!(
            "namers:\n- kind: io.l5d.k8s\n  host: 127.0.0.1\n{routers}"
        ))
        .unwrap();
        let NamerConfig::K8s(k) = &c.namers[0] else {
            panic!()
        };
        assert_eq!(k.api, ApiSource::Url("http://127.0.0.1:8001".into()));
        for (yaml, key) in [
            (
                "- kind: io.l5d.k8s\n  host: a\n  kubeconfig: /k\n",
                "namers[0].kubeconfig",
            ),
            (
                "- kind: io.l5d.k8s\n  namespaces: [Bad_NS]\n",
                "namers[0].namespaces",
            ),
            ("- kind: io.l5d.k8s\n  rootDir: /x\n", "namers[0].rootDir"),
            (
                "- kind: io.l5d.fs\n  rootDir: /x\n  host: a\n",
                "namers[0].host",
            ),
            (
                "- kind: io.l5d.k8s\n  watchTimeoutMs: 10\n",
                "namers[0].watchTimeoutMs",
            ),
            ("- kind: io.l5d.consul\n", "namers[0].kind"),
        ] {
            let e = Config::from_yaml(&format!("namers:\n{yaml}{routers}")).unwrap_err();
            assert_eq!(e.key, key, "{yaml}: {e}");
        }
        let c = Config::from_yaml(
            "routers:\n- protocol: http\n  label: a\n  bindingTimeoutMs: 250\n  interpreter:\n    transformers:\n    - {kind: io.l5d.k8s.daemonset, namespace: linkerd, port: incoming, service: l5d, node: n1}\n  servers: [{port: 0}]\n",
        )
        .unwrap();
        assert_eq!(c.routers[0].binding_timeout, Duration::from_millis(250));
        assert_eq!(
            c.routers[0].transformers,
            [Transformer::DaemonSet {
                peers: Path::read("/#/io.l5d.k8s/linkerd/incoming/l5d").unwrap(),
                node: Some("n1".into()),
            }]
        );
        let e = Config::from_yaml(
            "routers:\n- protocol: http\n  label: a\n  interpreter:\n    transformers:\n    - {kind: io.l5d.k8s.daemonset, namespace: linkerd, service: l5d}\n  servers: [{port: 0}]\n",
        )
        .unwrap_err();
        assert_eq!(e.key, "routers[0].interpreter.transformers[0].port");
    }
}
