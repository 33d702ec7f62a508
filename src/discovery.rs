//! Service discovery: sources that build endpoint snapshots, and the slot
//! they are published through.
//!
//! Discovery runs on its own thread and only produces
//! [`Snapshot`](crate::routing::snapshot::Snapshot)s; it never calls into a
//! shard or waits for one. Publishing is latest-wins: a slow shard simply
//! picks up the newest snapshot when it next looks.

pub mod fs;

use crate::routing::snapshot::Snapshot;
use arc_swap::{ArcSwap, ArcSwapOption};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The newest snapshot and its generation. Shards compare the generation
/// (one relaxed load) between requests and load the snapshot only when it
/// moved.
pub struct Published {
    generation: AtomicU64,
    current: ArcSwap<Snapshot>,
    /// One per namer, in snapshot order. Kept beside the snapshot, not in
    /// it: a poll that finds nothing new must not make a new snapshot.
    pub health: Vec<NamerHealth>,
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
            .map(|_| {
                let h = NamerHealth::default();
                h.synced(true);
                h
            })
            .collect();
        Published {
            generation: AtomicU64::new(first.generation),
            current: ArcSwap::from_pointee(first),
            health,
        }
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

    /// Replaces the snapshot; never blocks on readers.
    pub fn publish(&self, s: Snapshot) {
        let g = s.generation;
        self.current.store(Arc::new(s));
        self.generation.store(g, Ordering::Release);
    }
}
