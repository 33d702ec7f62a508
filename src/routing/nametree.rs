//! Name trees (`F/NameTree.scala`): the destinations of dentries and the
//! results of delegation.
//!
//! `|` (Alt) is fail-over, `&` (Union) a weighted split, `~` Neg ("no such
//! name here"), `!` Fail ("stop, error"), `$` Empty ("exists, no endpoints").

use super::path::Path;
use std::collections::BTreeSet;

/// The weight a union member has when none is written.
pub const DEFAULT_WEIGHT: f64 = 1.0;

/// A tree of names of type `T`.
#[derive(Debug, Clone, PartialEq)]
pub enum NameTree<T> {
    Leaf(T),
    /// Fail-over: the first branch that is not Neg wins.
    Alt(Vec<NameTree<T>>),
    /// Weighted split over every member that binds.
    Union(Vec<Weighted<T>>),
    /// `~`: no such name here; fall back.
    Neg,
    /// `!`: stop, with an error.
    Fail,
    /// `$`: the name exists and has no endpoints.
    Empty,
}

/// One member of a union.
#[derive(Debug, Clone, PartialEq)]
pub struct Weighted<T> {
    pub weight: f64,
    pub tree: NameTree<T>,
}

/// Something a leaf can be printed as, in show syntax.
pub trait ShowLeaf {
    fn show_leaf(&self, out: &mut String);
}

impl ShowLeaf for Path {
    fn show_leaf(&self, out: &mut String) {
        self.show_to(out)
    }
}

impl<T> NameTree<T> {
    /// Applies `f` to every leaf, keeping the shape.
    pub fn map<U>(&self, f: &mut impl FnMut(&T) -> U) -> NameTree<U> {
        match self {
            NameTree::Leaf(t) => NameTree::Leaf(f(t)),
            NameTree::Alt(ts) => NameTree::Alt(ts.iter().map(|t| t.map(f)).collect()),
            NameTree::Union(ws) => NameTree::Union(
                ws.iter()
                    .map(|w| Weighted {
                        weight: w.weight,
                        tree: w.tree.map(f),
                    })
                    .collect(),
            ),
            NameTree::Neg => NameTree::Neg,
            NameTree::Fail => NameTree::Fail,
            NameTree::Empty => NameTree::Empty,
        }
    }

    /// Visits every leaf in order.
    pub fn for_each_leaf<'a>(&'a self, f: &mut impl FnMut(&'a T)) {
        match self {
            NameTree::Leaf(t) => f(t),
            NameTree::Alt(ts) => ts.iter().for_each(|t| t.for_each_leaf(f)),
            NameTree::Union(ws) => ws.iter().for_each(|w| w.tree.for_each_leaf(f)),
            NameTree::Neg | NameTree::Fail | NameTree::Empty => {}
        }
    }

    /// `NameTree.simplify`: drops Neg branches of Alts, cuts an Alt after
    /// its first Fail (keeping it), drops Neg and Fail members of Unions,
    /// and collapses empty nodes to Neg and one-child nodes to the child.
    /// It never flattens nesting and never drops Empty.
    pub fn simplify(self) -> NameTree<T> {
        match self {
            NameTree::Alt(ts) => {
                let mut kept = Vec::with_capacity(ts.len());
                for t in ts {
                    match t.simplify() {
                        NameTree::Neg => {}
                        NameTree::Fail => {
                            kept.push(NameTree::Fail);
                            break;
                        }
                        t => kept.push(t),
                    }
                }
                match kept.len() {
                    0 => NameTree::Neg,
                    1 => kept.pop().unwrap_or(NameTree::Neg),
                    _ => NameTree::Alt(kept),
                }
            }
            NameTree::Union(ws) => {
                let mut kept: Vec<Weighted<T>> = ws
                    .into_iter()
                    .filter_map(|w| match w.tree.simplify() {
                        NameTree::Neg | NameTree::Fail => None,
                        tree => Some(Weighted {
                            weight: w.weight,
                            tree,
                        }),
                    })
                    .collect();
                match kept.len() {
                    0 => NameTree::Neg,
                    1 => kept.pop().map(|w| w.tree).unwrap_or(NameTree::Neg),
                    _ => NameTree::Union(kept),
                }
            }
            t => t,
        }
    }
}

impl<T: Clone + Ord> NameTree<T> {
    /// `NameTree.eval`: the set of leaves a request could reach. `None` for
    /// Neg and Fail (no destination), `Some(empty)` for Empty; an Alt is its
    /// first non-Neg branch (a Fail stops the search); a Union is the union
    /// of its members' sets, ignoring Neg and Fail members. Weights are
    /// discarded.
    pub fn eval(&self) -> Option<BTreeSet<T>> {
        match self.eval_inner() {
            Eval::Set(s) => Some(s),
            Eval::Neg | Eval::Fail => None,
        }
    }

    fn eval_inner(&self) -> Eval<T> {
        match self {
            NameTree::Neg => Eval::Neg,
            NameTree::Fail => Eval::Fail,
            NameTree::Empty => Eval::Set(BTreeSet::new()),
            NameTree::Leaf(t) => Eval::Set(BTreeSet::from([t.clone()])),
            NameTree::Alt(ts) => ts
                .iter()
                .map(|t| t.eval_inner())
                .find(|e| !matches!(e, Eval::Neg))
                .unwrap_or(Eval::Neg),
            NameTree::Union(ws) => {
                let mut acc: Option<BTreeSet<T>> = None;
                for w in ws {
                    if let Eval::Set(s) = w.tree.eval_inner() {
                        acc.get_or_insert_with(BTreeSet::new).extend(s);
                    }
                }
                acc.map_or(Eval::Neg, Eval::Set)
            }
        }
    }
}

enum Eval<T> {
    Neg,
    Fail,
    Set(BTreeSet<T>),
}

impl<T: ShowLeaf> NameTree<T> {
    /// Finagle's `NameTree.show`: `" | "` between alternatives, `" & "`
    /// between union members, weights other than exactly 1.0 as `%.2f*`,
    /// parentheses only where the grammar needs them.
    pub fn show(&self) -> String {
        let mut s = String::new();
        self.show_to(&mut s);
        s
    }

    /// [`NameTree::show`] into a buffer.
    pub fn show_to(&self, out: &mut String) {
        match self.transparent() {
            NameTree::Alt(ts) if !ts.is_empty() => {
                for (i, t) in ts.iter().enumerate() {
                    if i > 0 {
                        out.push_str(" | ");
                    }
                    t.show1(out);
                }
            }
            t => t.show1(out),
        }
    }

    /// One-child Alts and Unions print as their child.
    fn transparent(&self) -> &NameTree<T> {
        let mut t = self;
        loop {
            match t {
                NameTree::Alt(ts) if ts.len() == 1 => t = &ts[0],
                NameTree::Union(ws) if ws.len() == 1 => t = &ws[0].tree,
                _ => return t,
            }
        }
    }

    fn show1(&self, out: &mut String) {
        match self.transparent() {
            NameTree::Union(ws) => {
                for (i, w) in ws.iter().enumerate() {
                    if i > 0 {
                        out.push_str(" & ");
                    }
                    if w.weight != DEFAULT_WEIGHT {
                        write_weight(w.weight, out);
                        out.push('*');
                    }
                    w.tree.show_simple(out);
                }
            }
            t @ NameTree::Alt(_) => t.show_parens(out),
            t => t.show_simple(out),
        }
    }

    fn show_simple(&self, out: &mut String) {
        match self.transparent() {
            t @ (NameTree::Union(_) | NameTree::Alt(_)) => t.show_parens(out),
            NameTree::Leaf(l) => l.show_leaf(out),
            NameTree::Fail => out.push('!'),
            NameTree::Neg => out.push('~'),
            NameTree::Empty => out.push('$'),
        }
    }

    fn show_parens(&self, out: &mut String) {
        out.push('(');
        self.show_to(out);
        out.push(')');
    }
}

/// Java's `f"$w%.2f"`: two decimals, rounded HALF_UP from the shortest decimal
/// representation of the double (so 0.125 prints 0.13 and 1.005 prints 1.01,
/// where rounding the binary value would give 0.12 and 1.00). Always a `.`,
/// whatever the locale.
pub fn write_weight(w: f64, out: &mut String) {
    if !w.is_finite() {
        // Weights come from the parser (finite, non-negative); anything else
        // is printed so that it fails to parse rather than silently changing.
        out.push_str(&format!("{w}"));
        return;
    }
    // Rust's Display for f64 prints the shortest digits that round-trip,
    // without an exponent, like Java's Double.toString digits.
    let s = format!("{}", w.abs());
    let (int_part, frac_part) = match s.split_once('.') {
        Some((i, f)) => (i, f),
        None => (s.as_str(), ""),
    };
    let mut digits: Vec<u8> = int_part.bytes().map(|b| b - b'0').collect();
    let int_len = digits.len();
    let frac: Vec<u8> = frac_part.bytes().map(|b| b - b'0').collect();
    digits.extend(frac.iter().take(2));
    while digits.len() < int_len + 2 {
        digits.push(0);
    }
    if frac.get(2).is_some_and(|&d| d >= 5) {
        // Carry the half-up increment leftwards.
        let mut i = digits.len();
        loop {
            if i == 0 {
                digits.insert(0, 1);
                break;
            }
            i -= 1;
            if digits[i] == 9 {
                digits[i] = 0;
            } else {
                digits[i] += 1;
                break;
            }
        }
    }
    if w.is_sign_negative() && digits.iter().any(|&d| d != 0) {
        out.push('-');
    }
    let split = digits.len() - 2;
    for d in &digits[..split] {
        out.push((b'0' + d) as char);
    }
    out.push('.');
    for d in &digits[split..] {
        out.push((b'0' + d) as char);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weight(w: f64) -> String {
        let mut s = String::new();
        write_weight(w, &mut s);
        s
    }

    #[test]
    fn weights_round_half_up_from_shortest_decimal() {
        assert_eq!(weight(0.125), "0.13");
        assert_eq!(weight(1.005), "1.01");
        assert_eq!(weight(0.3), "0.30");
        assert_eq!(weight(3.0), "3.00");
        assert_eq!(weight(0.0), "0.00");
        assert_eq!(weight(9.995), "10.00");
        assert_eq!(weight(99.999), "100.00");
        assert_eq!(weight(0.004), "0.00");
        assert_eq!(weight(0.005), "0.01");
        assert_eq!(weight(123456.5), "123456.50");
        assert_eq!(weight(1e-7), "0.00");
    }
}
