//! `io.l5d.fs`: a directory with one file per service, one endpoint a line,
//! re-read when it changes. The namer that needs no cluster: the local
//! demo, tests, bare hosts.
//!
//! A line is `host port`, optionally followed by linkerd's `* weight` and by
//! `node=NAME` (the node the endpoint runs on, for node-local routing).
//! Blank lines and `#` comments are ignored; a malformed line is logged and
//! skipped. A missing file is an unknown service (Neg: the dtab falls back);
//! an empty file is a known service with no endpoints (502, no fallback).

use super::Published;
use crate::routing::Path;
use crate::routing::namer::Endpoint;
use crate::routing::snapshot::{NamerView, Service};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use std::time::{Duration, SystemTime};

/// One configured fs namer.
#[derive(Debug, Clone)]
pub struct FsNamer {
    /// Its position among the configured namers: its view's index in a
    /// snapshot.
    pub index: usize,
    /// Where it is mounted, e.g. `/#/io.l5d.fs`.
    pub prefix: Path,
    pub root_dir: PathBuf,
    /// How often the directory is checked for changes.
    pub poll_interval: Duration,
}

/// Parses one service file.
pub fn parse_service(text: &str) -> (Vec<Endpoint>, Vec<String>) {
    let mut eps = Vec::new();
    let mut errors = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut words = line.split_whitespace();
        let (Some(host), Some(port)) = (words.next(), words.next()) else {
            errors.push(format!("line {}: expected \"host port\"", i + 1));
            continue;
        };
        let Ok(port) = port.parse::<u16>() else {
            errors.push(format!("line {}: invalid port {port:?}", i + 1));
            continue;
        };
        let mut ep = Endpoint::new(host, port);
        let mut ok = true;
        while let Some(w) = words.next() {
            if w == "*" {
                match words.next().and_then(|v| v.parse::<f64>().ok()) {
                    Some(weight) if weight.is_finite() && weight >= 0.0 => ep.weight = weight,
                    _ => {
                        errors.push(format!("line {}: invalid weight", i + 1));
                        ok = false;
                    }
                }
            } else if let Some(node) = w.strip_prefix("node=") {
                ep.node = Some(node.into());
            } else {
                errors.push(format!("line {}: unexpected {w:?}", i + 1));
                ok = false;
            }
        }
        if ok {
            eps.push(ep);
        }
    }
    (eps, errors)
}

/// What the last scan saw of each file of one namer.
pub type Stamps = HashMap<String, Stamp>;

/// What a scan saw of one file, to skip re-reading unchanged ones.
#[derive(Clone, PartialEq)]
pub struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
}

/// Reads a namer's directory into its view, reusing the `Arc` of every
/// service whose file did not change.
fn scan(
    n: &FsNamer,
    prev: &NamerView,
    stamps: &mut HashMap<String, Stamp>,
) -> Result<NamerView, String> {
    let entries =
        std::fs::read_dir(&n.root_dir).map_err(|e| format!("{}: {e}", n.root_dir.display()))?;
    let mut view = NamerView::new(n.prefix.clone());
    view.synced = true;
    let mut seen = HashMap::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        let stamp = Stamp {
            modified: meta.modified().ok(),
            len: meta.len(),
        };
        let key: Arc<str> = name.as_str().into();
        let unchanged = stamps.get(&name) == Some(&stamp);
        let svc = match (unchanged, prev.services.get(&key)) {
            (true, Some(s)) => s.clone(),
            _ => {
                let Ok(text) = std::fs::read_to_string(entry.path()) else {
                    continue;
                };
                let (eps, errors) = parse_service(&text);
                for e in errors {
                    tracing::warn!(namer = %n.prefix, service = %name, "{e}");
                }
                let svc = Service {
                    endpoints: Arc::from(eps),
                };
                match prev.services.get(&key) {
                    Some(old) if **old == svc => old.clone(),
                    _ => Arc::new(svc),
                }
            }
        };
        seen.insert(name, stamp);
        view.services.insert(key, svc);
    }
    *stamps = seen;
    Ok(view)
}

/// Reads each namer's directory once, so the first snapshot is complete
/// before any shard serves. Errors name the config key.
pub fn first_views(namers: &[FsNamer]) -> Result<(Vec<NamerView>, Vec<Stamps>), String> {
    let mut stamps: Vec<HashMap<String, Stamp>> = vec![HashMap::new(); namers.len()];
    let mut views = Vec::with_capacity(namers.len());
    for (i, n) in namers.iter().enumerate() {
        views.push(
            scan(n, &NamerView::new(n.prefix.clone()), &mut stamps[i])
                .map_err(|e| format!("namers[{}].rootDir: {e}", n.index))?,
        );
    }
    Ok((views, stamps))
}

/// Watches the directories from a `discovery-fs` thread until `stop`.
pub fn spawn(
    namers: Vec<FsNamer>,
    stamps: Vec<HashMap<String, Stamp>>,
    published: Arc<Published>,
    stop: Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<()>, String> {
    let interval = namers
        .iter()
        .map(|n| n.poll_interval)
        .min()
        .unwrap_or(Duration::from_millis(500));
    std::thread::Builder::new()
        .name("discovery-fs".into())
        .spawn(move || watch(namers, stamps, published, stop, interval))
        .map_err(|e| format!("cannot start the discovery thread: {e}"))
}

#[allow(clippy::disallowed_methods)] // the discovery thread is not a shard: it may sleep.
fn watch(
    namers: Vec<FsNamer>,
    mut stamps: Vec<HashMap<String, Stamp>>,
    published: Arc<Published>,
    stop: Arc<AtomicBool>,
    interval: Duration,
) {
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(interval);
        let current = published.load();
        let mut names_changed = false;
        let mut changed = Vec::new();
        for (i, n) in namers.iter().enumerate() {
            let Some(prev) = current.namers.get(n.index) else {
                continue;
            };
            match scan(n, prev, &mut stamps[i]) {
                Ok(v) => {
                    let same_names = v.services.len() == prev.services.len()
                        && v.services.keys().all(|k| prev.services.contains_key(k));
                    let same = same_names
                        && v.services
                            .iter()
                            .all(|(k, s)| prev.services.get(k).is_some_and(|p| Arc::ptr_eq(p, s)));
                    if let Some(h) = published.health.get(n.index) {
                        h.synced(!same);
                    }
                    if !same {
                        names_changed |= !same_names;
                        changed.push((n.index, v));
                    }
                }
                Err(e) => {
                    // Keep serving the last good view; say why.
                    tracing::warn!(namer = %n.prefix, error = %e, "cannot read the namer's directory; keeping the last view");
                    if let Some(h) = published.health.get(n.index) {
                        h.failed(e);
                    }
                }
            }
        }
        if !changed.is_empty() {
            published.update(changed, names_changed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_file_format() {
        let (eps, errs) = parse_service(
            "# world-v1\n127.0.0.1 7001\n10.0.0.2 80 * 2.5 node=n1\n\nbad\n1.2.3.4 x\n",
        );
        assert_eq!(eps.len(), 2);
        assert_eq!(eps[1].weight, 2.5);
        assert_eq!(eps[1].node.as_deref(), Some("n1"));
        assert_eq!(errs.len(), 2);
    }
}
