//! Delegation and binding (`F/Namer.scala` `Namer.bind`, linkerd's
//! `ConfiguredNamersInterpreter`).
//!
//! A request's logical name is bound through `router dtab ++ local dtab`:
//! each lookup rewrites the path through every matching dentry (later
//! first) or, when no dentry matches, asks the configured namers and then
//! the global `/$/` namers. Alternatives fall back only on Neg; Fail, a
//! pending namer or an error in a preferred branch stops the search; union
//! members bind independently and Neg or Fail members drop out. Every
//! branch may make at most `max_depth` lookups (the final namer lookup
//! counted), so a delegation loop fails fast instead of hanging.

use super::dtab::{Dentry, Dtab};
use super::namer::{Addr, BindError, Bound, GlobalNamer, Lookup, Name, NamerSet};
use super::nametree::{NameTree, ShowLeaf, Weighted};
use super::path::Path;
use super::trie::{CompiledDtab, Matches};

/// A bound leaf of the result: the destination and the weight of its
/// innermost enclosing union member (Finagle's `AddrWeightKey`), if any.
#[derive(Debug, Clone, PartialEq)]
pub struct BoundLeaf {
    pub bound: Bound,
    pub weight: Option<f64>,
}

impl ShowLeaf for BoundLeaf {
    fn show_leaf(&self, out: &mut String) {
        self.bound.id.show_to(out)
    }
}

/// A bound tree contains leaves, unions, Neg, Fail and Empty: never an Alt,
/// since binding picks one alternative.
pub type BoundTree = NameTree<BoundLeaf>;

/// Where a matching dentry came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DentrySource {
    /// The router's configured dtab.
    Base,
    /// The request's local dtab (`l5d-ctx-dtab` ++ `l5d-dtab`).
    Local,
}

/// Everything a bind needs: the router's compiled dtab, the request's local
/// dtab (which takes priority), the configured namers and the limit.
pub struct Interpreter<'a> {
    pub base: &'a CompiledDtab,
    pub local: &'a Dtab,
    pub namers: &'a dyn NamerSet,
    pub global: &'a GlobalNamer,
    /// Lookups allowed along one branch (Finagle's `namerMaxDepth`).
    pub max_depth: usize,
    /// Lookups allowed in one whole bind or explanation, all branches
    /// together ([`crate::limits::BIND_LOOKUPS_MAX`]).
    pub max_lookups: usize,
}

impl<'a> Interpreter<'a> {
    /// An interpreter with Finagle's default depth limit and the default
    /// lookup budget.
    pub fn with_defaults(
        base: &'a CompiledDtab,
        local: &'a Dtab,
        namers: &'a dyn NamerSet,
        global: &'a GlobalNamer,
    ) -> Interpreter<'a> {
        Interpreter {
            base,
            local,
            namers,
            global,
            max_depth: crate::limits::NAMER_MAX_DEPTH_DEFAULT,
            max_lookups: crate::limits::BIND_LOOKUPS_MAX,
        }
    }

    /// The dentries of `base ++ local` matching `path`, highest priority
    /// first: local ones (last to first), then the router's.
    pub fn matching(&self, path: &Path, scratch: &mut Matches) -> Vec<(DentrySource, &'a Dentry)> {
        let local = self.local;
        let mut out: Vec<(DentrySource, &'a Dentry)> = local
            .matching(path)
            .map(|i| (DentrySource::Local, &local.dentries()[i]))
            .collect();
        self.base.matches(path, scratch);
        let base = self.base.dtab().dentries();
        out.extend(
            scratch
                .iter()
                .map(|&i| (DentrySource::Base, &base[i as usize])),
        );
        out
    }

    /// One dtab step with the residual appended to every leaf: Neg when no
    /// dentry matches, the single tree for one match, else an Alt.
    pub fn dtab_lookup(&self, path: &Path, scratch: &mut Matches) -> NameTree<Name> {
        // The common case (one match) builds no intermediate vector.
        let local = self.local;
        let local_idx: smallvec::SmallVec<[usize; 4]> = local.matching(path).collect();
        self.base.matches(path, scratch);
        let base = self.base.dtab().dentries();
        let rewrite = |d: &Dentry| -> NameTree<Name> {
            let residual_from = d.prefix.len();
            d.dst.map(&mut |p: &Path| {
                let mut out = p.clone();
                path.append_suffix_to(residual_from, &mut out);
                Name::Path(out)
            })
        };
        match (local_idx.as_slice(), scratch.as_slice()) {
            ([], []) => NameTree::Neg,
            ([i], []) => rewrite(&local.dentries()[*i]),
            ([], [i]) => rewrite(&base[*i as usize]),
            (ls, bs) => NameTree::Alt(
                ls.iter()
                    .map(|&i| rewrite(&local.dentries()[i]))
                    .chain(bs.iter().map(|&i| rewrite(&base[i as usize])))
                    .collect(),
            ),
        }
    }

    /// A full lookup: the dtab first; when it gives exactly Neg (no match,
    /// or one match to `~`), the configured namers, then the global ones.
    /// Two matches to `~` give `Alt(~, ~)`, which is not Neg, so the namers
    /// are not asked: Finagle's quirk, kept for exact compatibility.
    pub fn lookup(&self, path: &Path, scratch: &mut Matches) -> Lookup<NameTree<Name>> {
        match self.dtab_lookup(path, scratch) {
            NameTree::Neg => match self.namers.lookup(path) {
                Lookup::Ok(NameTree::Neg) => self.global.lookup(path),
                other => other,
            },
            t => Lookup::Ok(t),
        }
    }

    /// Binds `path` completely.
    pub fn bind(&self, path: &Path) -> Lookup<BoundTree> {
        let mut cx = BindCx {
            scratch: Matches::new(),
            trace: None,
            lookups: 0,
        };
        self.bind_root(path, &mut cx)
    }

    /// [`Interpreter::bind`], recording every path handed to lookup, in order.
    pub fn bind_traced(&self, path: &Path, trace: &mut Vec<Path>) -> Lookup<BoundTree> {
        let mut cx = BindCx {
            scratch: Matches::new(),
            trace: Some(trace),
            lookups: 0,
        };
        self.bind_root(path, &mut cx)
    }

    fn bind_root(&self, path: &Path, cx: &mut BindCx<'_>) -> Lookup<BoundTree> {
        let result = self.bind_path(path, 0, None, cx);
        // An exhausted budget fails the whole bind, even where a union
        // would otherwise ignore the member that ran out.
        if cx.lookups > self.max_lookups {
            return Lookup::Failed(BindError::TooManyLookups {
                max: self.max_lookups,
            });
        }
        result
    }

    fn bind_path(
        &self,
        path: &Path,
        depth: usize,
        weight: Option<f64>,
        cx: &mut BindCx<'_>,
    ) -> Lookup<BoundTree> {
        if depth > self.max_depth {
            return Lookup::Failed(BindError::MaxDepth {
                max: self.max_depth,
            });
        }
        cx.lookups += 1;
        if cx.lookups > self.max_lookups {
            return Lookup::Failed(BindError::TooManyLookups {
                max: self.max_lookups,
            });
        }
        if let Some(t) = cx.trace.as_deref_mut() {
            t.push(path.clone());
        }
        match self.lookup(path, &mut cx.scratch) {
            Lookup::Ok(t) => self.bind_tree(t, depth + 1, weight, cx),
            Lookup::Pending => Lookup::Pending,
            Lookup::Failed(e) => Lookup::Failed(e),
        }
    }

    fn bind_tree(
        &self,
        tree: NameTree<Name>,
        depth: usize,
        weight: Option<f64>,
        cx: &mut BindCx<'_>,
    ) -> Lookup<BoundTree> {
        // Recursion is bounded (depth x tree nesting) but its stack use is
        // not known in advance; grow the stack rather than overflow it.
        stacker::maybe_grow(STACK_RED_ZONE, STACK_GROWTH, || {
            self.bind_tree_inner(tree, depth, weight, cx)
        })
    }

    fn bind_tree_inner(
        &self,
        tree: NameTree<Name>,
        depth: usize,
        weight: Option<f64>,
        cx: &mut BindCx<'_>,
    ) -> Lookup<BoundTree> {
        if depth > self.max_depth {
            return Lookup::Failed(BindError::MaxDepth {
                max: self.max_depth,
            });
        }
        match tree {
            NameTree::Leaf(Name::Path(p)) => self.bind_path(&p, depth, weight, cx),
            NameTree::Leaf(Name::Bound(bound)) => {
                let bound = *bound;
                Lookup::Ok(NameTree::Leaf(BoundLeaf { bound, weight }))
            }
            NameTree::Neg => Lookup::Ok(NameTree::Neg),
            NameTree::Fail => Lookup::Ok(NameTree::Fail),
            NameTree::Empty => Lookup::Ok(NameTree::Empty),
            NameTree::Union(mut ws) => match ws.len() {
                0 => Lookup::Ok(NameTree::Neg),
                // A one-member union is transparent, but its weight is still
                // recorded on what it binds to.
                1 => match ws.pop() {
                    Some(w) => self.bind_tree(w.tree, depth, Some(w.weight), cx),
                    None => Lookup::Ok(NameTree::Neg),
                },
                _ => {
                    let mut ok: Vec<Weighted<BoundLeaf>> = Vec::with_capacity(ws.len());
                    let mut failure = None;
                    for w in ws {
                        if cx.lookups > self.max_lookups {
                            break;
                        }
                        match self.bind_tree(w.tree, depth, Some(w.weight), cx) {
                            Lookup::Ok(tree) => ok.push(Weighted {
                                weight: w.weight,
                                tree,
                            }),
                            Lookup::Failed(e) => {
                                failure.get_or_insert(e);
                            }
                            Lookup::Pending => {}
                        }
                    }
                    if !ok.is_empty() {
                        Lookup::Ok(NameTree::Union(ok).simplify())
                    } else if let Some(e) = failure {
                        Lookup::Failed(e)
                    } else {
                        Lookup::Pending
                    }
                }
            },
            NameTree::Alt(ts) => {
                for t in ts {
                    match self.bind_tree(t, depth, weight, cx) {
                        Lookup::Ok(NameTree::Neg) => continue,
                        Lookup::Ok(NameTree::Fail) => return Lookup::Ok(NameTree::Fail),
                        other => return other,
                    }
                }
                Lookup::Ok(NameTree::Neg)
            }
        }
    }
}

/// Stack kept free before recursing further, and the size of each new
/// segment when it is not.
pub(crate) const STACK_RED_ZONE: usize = 64 * 1024;
pub(crate) const STACK_GROWTH: usize = 1024 * 1024;

struct BindCx<'t> {
    scratch: Matches,
    trace: Option<&'t mut Vec<Path>>,
    /// Lookups made so far, for the budget.
    lookups: usize,
}

impl Addr {
    /// True when the set is known and empty.
    pub fn is_empty_set(&self) -> bool {
        matches!(self, Addr::Bound(eps) if eps.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::BIND_LOOKUPS_MAX;
    use crate::routing::namer::NoNamers;

    fn bind(dtab: &str, path: &str) -> Lookup<BoundTree> {
        let base = CompiledDtab::new(Dtab::read(dtab).unwrap());
        let local = Dtab::empty();
        let global = GlobalNamer::new();
        Interpreter::with_defaults(&base, &local, &NoNamers, &global)
            .bind(&Path::read(path).unwrap())
    }

    /// Every level doubles the branches; each branch ends Neg, so without a
    /// budget the bind would make 2^40 lookups.
    #[test]
    fn exponential_fan_out_fails_fast() {
        let mut dtab = String::new();
        for i in 0..40 {
            dtab.push_str(&format!("/p{i}=>/p{} | /p{};", i + 1, i + 1));
        }
        assert_eq!(
            bind(&dtab, "/p0"),
            Lookup::Failed(BindError::TooManyLookups {
                max: BIND_LOOKUPS_MAX
            })
        );
        let mut dtab = String::new();
        for i in 0..40 {
            dtab.push_str(&format!("/p{i}=>/p{} & /p{};", i + 1, i + 1));
        }
        assert!(matches!(
            bind(&dtab, "/p0"),
            Lookup::Failed(BindError::TooManyLookups { .. })
        ));
    }

    #[test]
    fn small_fan_out_still_binds() {
        let mut dtab = String::from("/p6=>/$/inet/127.0.0.1/80;");
        for i in 0..6 {
            dtab.push_str(&format!("/p{i}=>/p{} | /p{};", i + 1, i + 1));
        }
        assert!(matches!(bind(&dtab, "/p0"), Lookup::Ok(NameTree::Leaf(_))));
    }
}

#[cfg(test)]
mod explain_tests {
    use super::*;
    use crate::limits::EXPLAIN_LOOKUPS_MAX;
    use crate::routing::namer::NoNamers;

    #[test]
    fn explain_fan_out_fails_fast() {
        let mut text = String::new();
        for i in 0..40 {
            text.push_str(&format!("/p{i}=>/p{} | /p{};", i + 1, i + 1));
        }
        let base = CompiledDtab::new(Dtab::read(&text).unwrap());
        let local = Dtab::empty();
        let global = GlobalNamer::new();
        let interp = Interpreter::with_defaults(&base, &local, &NoNamers, &global);
        assert_eq!(
            interp.explain(&Path::read("/p0").unwrap()),
            Err(BindError::TooManyLookups {
                max: EXPLAIN_LOOKUPS_MAX
            })
        );
    }
}

#[cfg(test)]
mod deep_tests {
    use super::*;
    use crate::routing::namer::NoNamers;

    /// The longest chain the default depth allows binds and explains on a
    /// test thread's small stack, in debug builds too.
    #[test]
    fn longest_chain_fits_the_stack() {
        let mut t = String::new();
        // 99 rewrites and the /$/inet lookup: exactly the default depth.
        for i in 0..98 {
            t.push_str(&format!("/p{i}=>(/p{} | ~);", i + 1));
        }
        t.push_str("/p98=>/$/inet/1");
        let base = CompiledDtab::new(Dtab::read(&t).unwrap());
        let local = Dtab::empty();
        let global = GlobalNamer::new();
        let i = Interpreter::with_defaults(&base, &local, &NoNamers, &global);
        let p = Path::read("/p0").unwrap();
        assert!(matches!(i.bind(&p), Lookup::Ok(NameTree::Leaf(_))));
        let explained = i.explain(&p).unwrap();
        assert!(explained.to_json().to_string().contains("/$/inet/1"));
    }
}
