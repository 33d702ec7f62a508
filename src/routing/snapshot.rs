//! Endpoint snapshots: the immutable view of service discovery that namers
//! bind against.
//!
//! A snapshot holds, per configured namer, a persistent map from service
//! name to its endpoint set. Maps share structure between generations
//! (`imbl`), so one service changing creates a new snapshot in time and
//! memory proportional to the change, not to the cluster, and each
//! service's endpoints are an `Arc` shared by every generation that has not
//! changed them. Discovery builds snapshots; shards only read them.

use super::namer::{Addr, Endpoint, Lookup, Name, NamerSet};
use super::nametree::NameTree;
use super::path::Path;
use std::sync::Arc;

/// One service's endpoints.
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    pub endpoints: Arc<[Endpoint]>,
}

/// What one configured namer knows.
#[derive(Debug, Clone)]
pub struct NamerView {
    /// Where the namer is mounted, e.g. `/#/io.l5d.fs`.
    pub prefix: Path,
    /// False until the namer's first full sync: its names are then pending,
    /// not Neg.
    pub synced: bool,
    pub services: imbl::HashMap<Arc<str>, Arc<Service>>,
}

impl NamerView {
    pub fn new(prefix: Path) -> NamerView {
        NamerView {
            prefix,
            synced: false,
            services: imbl::HashMap::new(),
        }
    }
}

/// An immutable, versioned view of every namer.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Increases with every published snapshot.
    pub generation: u64,
    /// Increases only when the set of known names (or a namer's sync state)
    /// changes: a route cache stays valid while this does not move, since
    /// endpoint churn inside known services cannot change a bind's shape.
    pub names_version: u64,
    pub namers: Vec<NamerView>,
}

impl Snapshot {
    /// The endpoints of a bound id (`/#/io.l5d.fs/world`), read from this
    /// snapshot: what a cached route uses per request.
    pub fn endpoints(&self, id: &Path) -> Option<Arc<[Endpoint]>> {
        for n in &self.namers {
            if id.len() == n.prefix.len() + 1 && id.starts_with(&n.prefix) {
                let name = std::str::from_utf8(id.elem(n.prefix.len())?).ok()?;
                return n.services.get(name).map(|s| s.endpoints.clone());
            }
        }
        None
    }
}

impl NamerSet for Snapshot {
    /// The first namer whose prefix matches: pending before its first sync,
    /// then the service named by the next element, bound with the rest as
    /// residual, or Neg when it has no such service (the dtab falls back).
    fn lookup(&self, path: &Path) -> Lookup<NameTree<Name>> {
        for n in &self.namers {
            if !path.starts_with(&n.prefix) {
                continue;
            }
            if !n.synced {
                return Lookup::Pending;
            }
            let Some(elem) = path.elem(n.prefix.len()) else {
                continue;
            };
            let Ok(name) = std::str::from_utf8(elem) else {
                continue;
            };
            if let Some(svc) = n.services.get(name) {
                let id = path.take(n.prefix.len() + 1);
                let residual = path.drop_front(n.prefix.len() + 1);
                return Lookup::Ok(NameTree::Leaf(Name::bound(
                    id,
                    residual,
                    Addr::Bound(svc.endpoints.clone()),
                )));
            }
        }
        Lookup::Ok(NameTree::Neg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap() -> Snapshot {
        let mut v = NamerView::new(Path::read("/#/io.l5d.fs").unwrap());
        v.synced = true;
        v.services.insert(
            "world".into(),
            Arc::new(Service {
                endpoints: Arc::from(vec![Endpoint::new("127.0.0.1", 7001)]),
            }),
        );
        v.services.insert(
            "empty".into(),
            Arc::new(Service {
                endpoints: Arc::from(vec![]),
            }),
        );
        Snapshot {
            generation: 1,
            names_version: 1,
            namers: vec![v],
        }
    }

    #[test]
    fn binds_known_services_and_negs_others() {
        let s = snap();
        let Lookup::Ok(NameTree::Leaf(Name::Bound(b))) =
            s.lookup(&Path::read("/#/io.l5d.fs/world/x").unwrap())
        else {
            panic!()
        };
        assert_eq!(b.id.show(), "/#/io.l5d.fs/world");
        assert_eq!(b.residual.show(), "/x");
        assert!(matches!(
            s.lookup(&Path::read("/#/io.l5d.fs/nope").unwrap()),
            Lookup::Ok(NameTree::Neg)
        ));
        assert!(matches!(
            s.lookup(&Path::read("/#/other/world").unwrap()),
            Lookup::Ok(NameTree::Neg)
        ));
        let Lookup::Ok(NameTree::Leaf(Name::Bound(b))) =
            s.lookup(&Path::read("/#/io.l5d.fs/empty").unwrap())
        else {
            panic!()
        };
        assert!(
            b.addr.is_empty_set(),
            "a known service with no endpoints is an empty set, not Neg"
        );
        assert_eq!(
            s.endpoints(&Path::read("/#/io.l5d.fs/world").unwrap())
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn unsynced_namers_are_pending() {
        let mut s = snap();
        s.namers[0].synced = false;
        assert!(matches!(
            s.lookup(&Path::read("/#/io.l5d.fs/world").unwrap()),
            Lookup::Pending
        ));
    }
}
