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
    /// How many path elements after the prefix name a service: 1 for the
    /// fs namer (`/<service>`), 3 for Kubernetes (`/<ns>/<port>/<svc>`).
    /// Keys of `services` are those elements joined with `/`.
    pub id_len: usize,
    pub services: imbl::HashMap<Arc<str>, Arc<Service>>,
}

impl NamerView {
    /// A view whose services are named by one element.
    pub fn new(prefix: Path) -> NamerView {
        NamerView::with_id_len(prefix, 1)
    }

    pub fn with_id_len(prefix: Path, id_len: usize) -> NamerView {
        NamerView {
            prefix,
            synced: false,
            id_len: id_len.max(1),
            services: imbl::HashMap::new(),
        }
    }

    /// The service named by `path`'s elements after the prefix, if the
    /// path is long enough and they are UTF-8. Joins multi-element ids in a
    /// stack buffer: this runs per request for a cached route.
    fn service_at(&self, path: &Path) -> Option<Option<&Arc<Service>>> {
        let start = self.prefix.len();
        if path.len() < start + self.id_len {
            return None;
        }
        if self.id_len == 1 {
            let name = std::str::from_utf8(path.elem(start)?).ok()?;
            return Some(self.services.get(name));
        }
        let mut buf = [0u8; ID_KEY_BYTES_MAX];
        let mut at = 0;
        for i in 0..self.id_len {
            let e = path.elem(start + i)?;
            let sep = usize::from(i > 0);
            if at + sep + e.len() > buf.len() {
                // Longer than any name the namer could hold.
                return Some(None);
            }
            if sep == 1 {
                buf[at] = b'/';
            }
            buf[at + sep..at + sep + e.len()].copy_from_slice(e);
            at += sep + e.len();
        }
        let key = std::str::from_utf8(&buf[..at]).ok()?;
        Some(self.services.get(key))
    }
}

/// Longest multi-element service id looked up (Kubernetes names are at
/// most 63 + 15 + 63 bytes).
const ID_KEY_BYTES_MAX: usize = 256;

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
    /// snapshot: what a cached route uses per request (borrowed: no
    /// reference count moves per request).
    pub fn endpoints(&self, id: &Path) -> Option<&[Endpoint]> {
        for n in &self.namers {
            if id.len() == n.prefix.len() + n.id_len && id.starts_with(&n.prefix) {
                return n.service_at(id)?.map(|s| &s.endpoints[..]);
            }
        }
        None
    }
}

impl NamerSet for Snapshot {
    /// The first namer whose prefix matches: pending before its first sync,
    /// then the service named by the next `id_len` elements, bound with the
    /// rest as residual, or Neg when it has no such service (the dtab falls back).
    fn lookup(&self, path: &Path) -> Lookup<NameTree<Name>> {
        for n in &self.namers {
            if !path.starts_with(&n.prefix) {
                continue;
            }
            if !n.synced {
                return Lookup::Pending;
            }
            let Some(Some(svc)) = n.service_at(path) else {
                continue;
            };
            let id = path.take(n.prefix.len() + n.id_len);
            let residual = path.drop_front(n.prefix.len() + n.id_len);
            return Lookup::Ok(NameTree::Leaf(Name::bound(
                id,
                residual,
                Addr::Bound(svc.endpoints.clone()),
            )));
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
