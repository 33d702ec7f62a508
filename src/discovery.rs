//! Service discovery: sources that build endpoint snapshots, and the slot
//! they are published through.
//!
//! Discovery runs on its own thread and only produces
//! [`Snapshot`](crate::routing::snapshot::Snapshot)s; it never calls into a
//! shard or waits for one. Publishing is latest-wins: a slow shard simply
//! picks up the newest snapshot when it next looks.

pub mod fs;
pub mod k8s;

use crate::routing::snapshot::{NamerView, Snapshot};
use arc_swap::{ArcSwap, ArcSwapOption};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// The newest snapshot and its generation. Shards compare the generation
/// (one relaxed load) between requests and load the snapshot only when it
/// moved.
pub struct Published {
    generation: AtomicU64,
    current: ArcSwap<Snapshot>,
    /// One per namer, in snapshot order. Kept beside the snapshot, not in
    /// it: a poll that finds nothing new must not make a new snapshot.
    pub health: Vec<NamerHealth>,
    /// Serialises writers (one discovery thread per namer family), so each
    /// publishes on top of the other's newest views. Shards never take it.
    #[allow(clippy::disallowed_types)]
    writer: std::sync::Mutex<()>,
    /// One per shard, set once the shards exist: how an idle shard learns
    /// that there is something new to apply.
    wakers: OnceLock<Vec<ShardWaker>>,
    /// The first generation in which every namer had synced (0 until
    /// then): a shard that has applied it serves from complete discovery.
    ready_generation: AtomicU64,
}

/// Wakes one shard's snapshot task. At most one wake-up is queued at a
/// time, so a burst of publishes costs a shard one turn, however many
/// there were, and publishing never waits for a shard.
///
/// A byte on a socket the shard reads like any other, rather than a waker
/// called from this thread: the shards' runtime then needs no cross-thread
/// wake-ups (monoio's `sync` feature), which cost every shard a channel
/// poll each time it parked, about 150 instructions, whether or not
/// anything had been published.
pub struct ShardWaker {
    queued: AtomicBool,
    tx: std::os::unix::net::UnixStream,
}

impl ShardWaker {
    /// The waker and the shard's end of its socket.
    pub fn new() -> std::io::Result<(ShardWaker, std::os::unix::net::UnixStream)> {
        let (tx, rx) = std::os::unix::net::UnixStream::pair()?;
        // Never blocks in practice (at most one byte is ever unread), and
        // must not if the shard has stopped reading.
        tx.set_nonblocking(true)?;
        Ok((
            ShardWaker {
                queued: AtomicBool::new(false),
                tx,
            },
            rx,
        ))
    }

    /// Called by the shard when it takes the wake-up, before it loads the
    /// snapshot: a publish after this point queues another.
    pub fn taken(&self) {
        self.queued.store(false, Ordering::Release);
    }

    fn wake(&self) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            use std::io::Write as _;
            // Fails only when the shard has exited.
            let _ = (&self.tx).write(b"w");
        }
    }
}

/// How one namer's source has been answering, for `/namer_state` and the
/// staleness metric. Written only by the discovery thread.
#[derive(Default)]
pub struct NamerHealth {
    /// When the source was last read in full, in ms of
    /// [`uptime_ms`](crate::telemetry::uptime_ms).
    pub last_sync_ms: AtomicU64,
    /// When what the source says last changed.
    pub last_change_ms: AtomicU64,
    /// Failed reads of the source since start-up.
    pub errors: AtomicU64,
    /// The most recent failure, cleared by the next good read.
    pub last_error: ArcSwapOption<String>,
    /// Per-watch detail, for namers that watch an API.
    pub watches: ArcSwapOption<WatchReport>,
}

/// What a watching namer reports beside its health: each watch's state and
/// how much it holds.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WatchReport {
    pub watches: Vec<k8s::WatchState>,
    pub services: usize,
    pub slices: usize,
}

impl NamerHealth {
    /// A good read; `changed` when it found something new.
    pub fn synced(&self, changed: bool) {
        let now = crate::telemetry::uptime_ms();
        self.last_sync_ms.store(now, Ordering::Relaxed);
        if changed {
            self.last_change_ms.store(now, Ordering::Relaxed);
        }
        self.last_error.store(None);
    }

    pub fn set_watches(&self, r: WatchReport) {
        self.watches.store(Some(Arc::new(r)));
    }

    /// A failed read: the last good view keeps serving.
    pub fn failed(&self, error: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.last_error.store(Some(Arc::new(error)));
    }
}

impl Published {
    pub fn new(first: Snapshot) -> Published {
        let health = first
            .namers
            .iter()
            .map(|v| {
                let h = NamerHealth::default();
                if v.synced {
                    h.synced(true);
                }
                h
            })
            .collect();
        let p = Published {
            generation: AtomicU64::new(first.generation),
            current: ArcSwap::from_pointee(first),
            health,
            writer: Default::default(),
            wakers: OnceLock::new(),
            ready_generation: AtomicU64::new(0),
        };
        p.note_ready(&p.load());
        p
    }

    /// Records `s` as the first complete snapshot, if it is.
    fn note_ready(&self, s: &Snapshot) {
        if self.ready_generation.load(Ordering::Relaxed) == 0 && s.namers.iter().all(|n| n.synced) {
            self.ready_generation.store(s.generation, Ordering::Release);
        }
    }

    /// The first generation with every namer synced, once there is one.
    pub fn ready_generation(&self) -> Option<u64> {
        Some(self.ready_generation.load(Ordering::Acquire)).filter(|g| *g > 0)
    }

    /// Registers the shards' wakers; later calls are ignored.
    pub fn set_wakers(&self, wakers: Vec<ShardWaker>) {
        let _ = self.wakers.set(wakers);
    }

    /// The shards' wakers, in shard order.
    pub fn wakers(&self) -> &[ShardWaker] {
        self.wakers.get().map_or(&[], Vec::as_slice)
    }

    /// The generation of the newest snapshot.
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The newest snapshot.
    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Replaces some namers' views (by index) on top of the newest
    /// snapshot and publishes the result; `names_changed` when a name
    /// appeared or vanished, or a namer's sync state moved. Never blocks on
    /// readers; wakes every shard.
    pub fn update(&self, views: Vec<(usize, NamerView)>, names_changed: bool) -> u64 {
        #[allow(clippy::disallowed_types)]
        let _w = self
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let current = self.current.load_full();
        let mut namers = current.namers.clone();
        for (i, v) in views {
            if let Some(slot) = namers.get_mut(i) {
                *slot = v;
            }
        }
        let g = current.generation + 1;
        let next = Arc::new(Snapshot {
            generation: g,
            names_version: current.names_version + u64::from(names_changed),
            namers,
        });
        self.note_ready(&next);
        self.current.store(next);
        self.generation.store(g, Ordering::Release);
        for w in self.wakers() {
            w.wake();
        }
        g
    }
}

/// A configured namer.
#[derive(Debug, Clone)]
pub enum NamerConfig {
    Fs(fs::FsNamer),
    K8s(k8s::K8sNamer),
}

/// The running discovery threads; stopped and joined when dropped.
pub struct Discovery {
    pub published: Arc<Published>,
    stop: Arc<AtomicBool>,
    fs: Option<std::thread::JoinHandle<()>>,
    k8s: Option<k8s::K8sDiscovery>,
}

impl Drop for Discovery {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.fs.take() {
            let _ = t.join();
        }
        drop(self.k8s.take());
    }
}

/// Builds the first snapshot (fs namers read in full, Kubernetes namers
/// pending until their first sync) and starts the threads that keep it
/// current.
pub fn start(namers: &[NamerConfig]) -> Result<Discovery, String> {
    let fs_namers: Vec<fs::FsNamer> = namers
        .iter()
        .filter_map(|n| match n {
            NamerConfig::Fs(f) => Some(f.clone()),
            NamerConfig::K8s(_) => None,
        })
        .collect();
    let k8s_namers: Vec<k8s::K8sNamer> = namers
        .iter()
        .filter_map(|n| match n {
            NamerConfig::K8s(k) => Some(k.clone()),
            NamerConfig::Fs(_) => None,
        })
        .collect();
    let (fs_views, stamps) = fs::first_views(&fs_namers)?;
    let mut fs_views = fs_views.into_iter();
    let views = namers
        .iter()
        .map(|n| match n {
            NamerConfig::Fs(_) => fs_views.next(),
            NamerConfig::K8s(k) => Some(NamerView::with_id_len(k.prefix.clone(), 3)),
        })
        .collect::<Option<Vec<_>>>()
        .ok_or("the fs namers' views do not match the config")?;
    let published = Arc::new(Published::new(Snapshot {
        generation: 1,
        names_version: 1,
        namers: views,
    }));
    let stop = Arc::new(AtomicBool::new(false));
    let fs = if fs_namers.is_empty() {
        None
    } else {
        Some(fs::spawn(
            fs_namers,
            stamps,
            published.clone(),
            stop.clone(),
        )?)
    };
    let k8s = if k8s_namers.is_empty() {
        None
    } else {
        Some(k8s::spawn(k8s_namers, published.clone())?)
    };
    Ok(Discovery {
        published,
        stop,
        fs,
        k8s,
    })
}
