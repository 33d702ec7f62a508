//! Override policies: which per-request dtab overrides an edge listener
//! admits (beyond linkerd 1, where an edge could only strip them all).
//!
//! `/svc/x => /$/inet/10.0.0.5/22` in an `l5d-dtab` header sends a request
//! anywhere, so an edge admits an override only when every dentry of every
//! header line rewrites under an allowed prefix (for example `/host`) to
//! destinations whose every leaf, in every union and alternative, lies under
//! an allowed destination (for example `/srv`). The check works on the parsed
//! dtab, so spelling (`\x` escapes, spacing, header case) cannot slip past
//! it.

use super::dtab::{Dtab, PrefixElem};
use super::nametree::NameTree;
use super::path::Path;

/// What an edge admits.
#[derive(Debug, Clone, PartialEq)]
pub struct OverridePolicy {
    /// A dentry's prefix must begin with one of these (literally: a `*`
    /// within them is refused, as it would match beyond them).
    pub prefixes: Vec<Path>,
    /// Every leaf of a dentry's destination must lie under one of these.
    pub destinations: Vec<Path>,
    /// Most dentries one request may carry.
    pub max_dentries: usize,
}

/// Why an override was refused (sent as `l5d-err`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal(pub &'static str);

impl OverridePolicy {
    pub fn check(&self, dtab: &Dtab) -> Result<(), Refusal> {
        if dtab.len() > self.max_dentries {
            return Err(Refusal("too many dentries in the override"));
        }
        for d in dtab.dentries() {
            let elems = d.prefix.elems();
            let prefix_ok = self.prefixes.iter().any(|allowed| {
                allowed.len() <= elems.len()
                    && allowed
                        .elems()
                        .zip(elems)
                        .all(|(a, e)| matches!(e, PrefixElem::Label(l) if **l == *a))
            });
            if !prefix_ok {
                return Err(Refusal("override prefix not allowed"));
            }
            if !self.leaves_allowed(&d.dst) {
                return Err(Refusal("override destination not allowed"));
            }
        }
        Ok(())
    }

    fn leaves_allowed(&self, t: &NameTree<Path>) -> bool {
        match t {
            NameTree::Leaf(p) => self.destinations.iter().any(|d| p.starts_with(d)),
            NameTree::Alt(ts) => ts.iter().all(|t| self.leaves_allowed(t)),
            NameTree::Union(ws) => ws.iter().all(|w| self.leaves_allowed(&w.tree)),
            // Only paths under an allowed destination: no Fail, Neg or Empty
            // from outside either.
            NameTree::Neg | NameTree::Fail | NameTree::Empty => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> OverridePolicy {
        OverridePolicy {
            prefixes: vec![Path::read("/host").unwrap()],
            destinations: vec![Path::read("/srv").unwrap()],
            max_dentries: 4,
        }
    }

    fn check(d: &str) -> Result<(), Refusal> {
        policy().check(&Dtab::read(d).unwrap())
    }

    #[test]
    fn admits_staging_overrides() {
        assert!(check("/host/world => /srv/world-v2;").is_ok());
        assert!(check("/host/world => /srv/a | /srv/b & 2*/srv/c").is_ok());
        assert!(
            check("/h\\x6fst/world => /\\x73rv/world-v2").is_ok(),
            "escapes spell the same paths"
        );
    }

    #[test]
    fn refuses_bypasses() {
        for d in [
            "/host/world => /$/inet/127.0.0.1/22",
            "/host/world => /srv/world-v2; /svc => /$/inet/127.0.0.1/22",
            "/host/world => /srv/a & /$/inet/127.0.0.1/22",
            "/host/world => /srv/a | /#/io.l5d.fs/admin",
            "/svc/world => /srv/world-v2",
            "/ => /srv/x",
            "/* => /srv/x",
            "/host/world => !",
            "/host/world => ~",
            "/hostile => /srv/x",
            "/host/a=>/srv/a;/host/b=>/srv/b;/host/c=>/srv/c;/host/d=>/srv/d;/host/e=>/srv/e",
        ] {
            assert!(check(d).is_err(), "{d} was admitted");
        }
    }
}
