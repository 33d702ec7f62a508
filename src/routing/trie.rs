//! A router dtab compiled into a trie over path elements.
//!
//! Finagle scans every dentry for every lookup; a cluster-sized dtab (one
//! rule per service) makes that linear in the number of rules. The trie
//! walks the path once, following the literal child and the `*` child at
//! each element, so a lookup costs in proportion to the path length and the
//! number of matches. Priority is still dentry order (later first), not
//! prefix length: matches are collected and sorted by dentry index.

use super::dtab::{Dtab, PrefixElem};
use super::path::Path;
use rustc_hash::FxHashMap;
use smallvec::SmallVec;

/// Dentry indices matching one path, highest priority first. Inline for the
/// common case of a handful of matches.
pub type Matches = SmallVec<[u32; 8]>;

/// Up to this many literal children are scanned linearly; comparing a few
/// short byte strings beats hashing the element.
const LINEAR_CHILDREN_MAX: usize = 8;

#[derive(Debug)]
enum Children {
    Few(Vec<(Box<[u8]>, u32)>),
    /// Keys come from the router's own config, never from requests, so a
    /// fast non-keyed hash is safe: a client can only look keys up, not
    /// choose which ones collide.
    Many(FxHashMap<Box<[u8]>, u32>),
}

impl Default for Children {
    fn default() -> Self {
        Children::Few(Vec::new())
    }
}

impl Children {
    #[inline]
    fn get(&self, elem: &[u8]) -> Option<u32> {
        match self {
            Children::Few(v) => v.iter().find(|(k, _)| **k == *elem).map(|&(_, c)| c),
            Children::Many(m) => m.get(elem).copied(),
        }
    }

    /// The child for `elem`, inserting `fresh` if there is none.
    fn get_or_insert(&mut self, elem: &[u8], fresh: u32) -> u32 {
        if let Some(c) = self.get(elem) {
            return c;
        }
        match self {
            Children::Few(v) if v.len() < LINEAR_CHILDREN_MAX => v.push((elem.into(), fresh)),
            Children::Few(v) => {
                let mut m: FxHashMap<Box<[u8]>, u32> = std::mem::take(v).into_iter().collect();
                m.insert(elem.into(), fresh);
                *self = Children::Many(m);
            }
            Children::Many(m) => {
                m.insert(elem.into(), fresh);
            }
        }
        fresh
    }
}

#[derive(Default, Debug)]
struct Node {
    /// Literal children.
    children: Children,
    /// The `*` child.
    any: Option<u32>,
    /// Dentries whose prefix ends exactly here.
    terminals: SmallVec<[u32; 2]>,
}

/// The trie of one dtab's prefixes.
#[derive(Debug, Default)]
pub struct DtabTrie {
    nodes: Vec<Node>,
}

impl DtabTrie {
    pub fn new(dtab: &Dtab) -> DtabTrie {
        let mut nodes = vec![Node::default()];
        for (i, d) in dtab.dentries().iter().enumerate() {
            let mut at = 0usize;
            for e in d.prefix.elems() {
                let next_id = nodes.len() as u32;
                let child = match e {
                    PrefixElem::Any => *nodes[at].any.get_or_insert(next_id),
                    PrefixElem::Label(l) => nodes[at].children.get_or_insert(l, next_id),
                };
                if child == next_id {
                    nodes.push(Node::default());
                }
                at = child as usize;
            }
            nodes[at].terminals.push(i as u32);
        }
        DtabTrie { nodes }
    }

    /// Indices of the dentries whose prefix matches `path`, highest
    /// priority (largest index) first.
    pub fn matches(&self, path: &Path, out: &mut Matches) {
        out.clear();
        if self.nodes.is_empty() {
            return;
        }
        self.walk(0, path, 0, out);
        out.sort_unstable_by(|a, b| b.cmp(a));
    }

    fn walk(&self, node: usize, path: &Path, depth: usize, out: &mut Matches) {
        let n = &self.nodes[node];
        out.extend_from_slice(&n.terminals);
        let Some(elem) = path.elem(depth) else {
            return;
        };
        if let Some(c) = n.children.get(elem) {
            self.walk(c as usize, path, depth + 1, out);
        }
        if let Some(c) = n.any {
            self.walk(c as usize, path, depth + 1, out);
        }
    }
}

/// A router's dtab with its trie: built once at start-up (or config load),
/// shared read-only by every shard.
#[derive(Debug, Default)]
pub struct CompiledDtab {
    dtab: Dtab,
    trie: DtabTrie,
}

impl CompiledDtab {
    pub fn new(dtab: Dtab) -> CompiledDtab {
        let trie = DtabTrie::new(&dtab);
        CompiledDtab { dtab, trie }
    }

    pub fn dtab(&self) -> &Dtab {
        &self.dtab
    }

    pub fn matches(&self, path: &Path, out: &mut Matches) {
        self.trie.matches(path, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn trie_matches(d: &Dtab, p: &Path) -> Vec<u32> {
        let mut m = Matches::new();
        DtabTrie::new(d).matches(p, &mut m);
        m.into_vec()
    }

    #[test]
    fn order_not_length_decides() {
        let d = Dtab::read("/a=>/b;/a/b=>/c;/x=>/y;/*/b=>/z;/=>/r").unwrap();
        let p = Path::read("/a/b/z").unwrap();
        assert_eq!(trie_matches(&d, &p), vec![4, 3, 1, 0]);
        assert_eq!(
            trie_matches(&d, &p),
            d.matching(&p).map(|i| i as u32).collect::<Vec<_>>()
        );
        assert_eq!(trie_matches(&d, &Path::read("/q").unwrap()), vec![4]);
    }

    #[test]
    fn duplicate_prefixes_keep_every_dentry() {
        let d = Dtab::read("/a=>/b;/a=>/c;/a=>/d").unwrap();
        assert_eq!(trie_matches(&d, &Path::read("/a").unwrap()), vec![2, 1, 0]);
    }

    /// Elements drawn from a small alphabet so that random prefixes and
    /// paths actually overlap.
    fn elem() -> impl Strategy<Value = String> {
        prop::sample::select(vec!["a", "b", "c", "svc", "#", "$"]).prop_map(str::to_owned)
    }

    fn prefix() -> impl Strategy<Value = String> {
        prop::collection::vec(prop_oneof![4 => elem(), 1 => Just("*".to_owned())], 0..4)
            .prop_map(|es| format!("/{}", es.join("/")))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn trie_agrees_with_reverse_scan(
            prefixes in prop::collection::vec(prefix(), 0..24),
            path in prop::collection::vec(elem(), 0..6),
        ) {
            let text: Vec<String> = prefixes.iter().map(|p| format!("{p}=>/d")).collect();
            let dtab = Dtab::read(&text.join(";")).unwrap();
            let path = Path::from_elems(&path).unwrap();
            let naive: Vec<u32> = dtab.matching(&path).map(|i| i as u32).collect();
            prop_assert_eq!(trie_matches(&dtab, &path), naive);
        }
    }
}
