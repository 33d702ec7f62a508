//! Service discovery: sources that build endpoint snapshots, and the slot
//! they are published through.
//!
//! Discovery runs on its own thread and only produces
//! [`Snapshot`](crate::routing::snapshot::Snapshot)s; it never calls into a
//! shard or waits for one. Publishing is latest-wins: a slow shard simply
//! picks up the newest snapshot when it next looks.

pub mod fs;

use crate::routing::snapshot::Snapshot;
use arc_swap::ArcSwap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The newest snapshot and its generation. Shards compare the generation
/// (one relaxed load) between requests and load the snapshot only when it
/// moved.
pub struct Published {
    generation: AtomicU64,
    current: ArcSwap<Snapshot>,
}

impl Published {
    pub fn new(first: Snapshot) -> Published {
        Published {
            generation: AtomicU64::new(first.generation),
            current: ArcSwap::from_pointee(first),
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
