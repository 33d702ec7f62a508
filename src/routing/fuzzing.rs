//! Properties the fuzz targets check on arbitrary input, shared with the
//! `cargo test` replay of the committed seed corpus (`fuzz/corpus/`).
//!
//! For any input: parsing never panics; whatever parses prints to a form
//! that parses back to the same value (weights compared as printed, since
//! `%.2f` is lossy exactly as in Finagle); binding and explaining anything
//! that parses terminates within the lookup budgets.

use super::bind::Interpreter;
use super::dtab::{Dentry, Dtab};
use super::namer::{GlobalNamer, NoNamers};
use super::nametree::{NameTree, Weighted, write_weight};
use super::path::Path;
use super::trie::CompiledDtab;

/// Header bytes as the proxy sees them: ISO-8859-1, one char per byte.
fn latin1(data: &[u8]) -> String {
    data.iter().map(|&b| b as char).collect()
}

/// A weight as it reads back after printing.
fn printed(w: f64) -> f64 {
    let mut s = String::new();
    write_weight(w, &mut s);
    s.parse().unwrap_or(f64::NAN)
}

fn normalise(t: &NameTree<Path>) -> NameTree<Path> {
    match t {
        NameTree::Alt(ts) => NameTree::Alt(ts.iter().map(normalise).collect()),
        NameTree::Union(ws) => NameTree::Union(
            ws.iter()
                .map(|w| Weighted {
                    weight: printed(w.weight),
                    tree: normalise(&w.tree),
                })
                .collect(),
        ),
        t => t.clone(),
    }
}

fn normalise_dtab(d: &Dtab) -> Dtab {
    d.dentries()
        .iter()
        .map(|e| Dentry {
            prefix: e.prefix.clone(),
            dst: normalise(&e.dst),
        })
        .collect()
}

/// The dtab and name-tree parsers on `data`; panics (so the fuzzer
/// reports) when a property fails.
pub fn check_dtab_input(data: &[u8]) {
    let text = latin1(data);
    if let Ok(d) = Dtab::read(&text) {
        let shown = d.show();
        let again = Dtab::read(&shown)
            .unwrap_or_else(|e| panic!("show() of a dtab does not parse: {shown:?}: {e}"));
        assert_eq!(
            again,
            normalise_dtab(&d),
            "parse(show(x)) != x for {shown:?}"
        );
        check_binds(&d);
    }
    if let Ok(t) = super::parse::parse_tree(&text) {
        let shown = t.show();
        let again = super::parse::parse_tree(&shown)
            .unwrap_or_else(|e| panic!("show() of a tree does not parse: {shown:?}: {e}"));
        assert_eq!(again, normalise(&t), "parse(show(x)) != x for {shown:?}");
    }
    if let Ok(p) = Path::read(&text) {
        assert_eq!(Path::read(&p.show()).ok(), Some(p));
    }
}

/// Binding and explaining through an arbitrary dtab terminates: the
/// budgets bound the work whatever the dtab.
fn check_binds(d: &Dtab) {
    let base = CompiledDtab::new(d.clone());
    let local = Dtab::empty();
    let global = GlobalNamer::new();
    let interp = Interpreter::with_defaults(&base, &local, &NoNamers, &global);
    // The first dentry's prefix (wildcards as a literal element) is a path
    // the dtab certainly matches.
    let mut probe = Path::empty();
    if let Some(first) = d.dentries().first() {
        for e in first.prefix.elems() {
            match e {
                super::dtab::PrefixElem::Any => probe.push_nonempty(b"x"),
                super::dtab::PrefixElem::Label(l) => probe.push_nonempty(l),
            }
        }
    }
    let _ = interp.bind(&probe);
    let _ = interp.explain(&probe);
}
