//! Dentries and dtabs (`F/DtabBase.scala`): ordered rewrite rules.
//!
//! `prefix => dst`: a path starting with `prefix` is rewritten to every leaf
//! of `dst` with the rest of the path (the residual) appended. Later dentries
//! have priority; earlier ones are fallbacks.

use super::nametree::NameTree;
use super::parse::{self, ParseError};
use super::path::{Path, show_elem};
use std::fmt;

/// One element of a dentry prefix: a literal label or `*` (any one element).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PrefixElem {
    Label(Box<[u8]>),
    Any,
}

/// A dentry prefix: a path that may contain `*` elements.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Prefix {
    elems: Vec<PrefixElem>,
}

impl Prefix {
    pub fn new(elems: Vec<PrefixElem>) -> Prefix {
        Prefix { elems }
    }

    /// Parses prefix syntax (`/a/*/b`).
    pub fn read(s: &str) -> Result<Prefix, ParseError> {
        parse::parse_prefix(s)
    }

    pub fn elems(&self) -> &[PrefixElem] {
        &self.elems
    }

    pub fn len(&self) -> usize {
        self.elems.len()
    }

    pub fn is_empty(&self) -> bool {
        self.elems.is_empty()
    }

    /// True when the prefix has no more elements than `path` and each one
    /// equals the path's element byte for byte, `*` matching any element.
    pub fn matches(&self, path: &Path) -> bool {
        self.elems.len() <= path.len()
            && self.elems.iter().zip(path.elems()).all(|(p, e)| match p {
                PrefixElem::Any => true,
                PrefixElem::Label(l) => **l == *e,
            })
    }

    pub fn show_to(&self, out: &mut String) {
        if self.elems.is_empty() {
            out.push('/');
        }
        for e in &self.elems {
            out.push('/');
            match e {
                PrefixElem::Any => out.push('*'),
                PrefixElem::Label(l) => show_elem(l, out),
            }
        }
    }

    pub fn show(&self) -> String {
        let mut s = String::new();
        self.show_to(&mut s);
        s
    }
}

/// `prefix => dst`.
#[derive(Debug, Clone, PartialEq)]
pub struct Dentry {
    pub prefix: Prefix,
    pub dst: NameTree<Path>,
}

impl Dentry {
    /// Parses one dentry.
    pub fn read(s: &str) -> Result<Dentry, ParseError> {
        parse::parse_dentry(s)
    }

    /// `prefix.show + "=>" + dst.show`, no spaces.
    pub fn show_to(&self, out: &mut String) {
        self.prefix.show_to(out);
        out.push_str("=>");
        self.dst.show_to(out);
    }

    pub fn show(&self) -> String {
        let mut s = String::new();
        self.show_to(&mut s);
        s
    }

    /// The destination with `residual` appended to every leaf.
    pub fn rewrite(&self, residual: &Path) -> NameTree<Path> {
        if residual.is_empty() {
            return self.dst.clone();
        }
        self.dst.map(&mut |p: &Path| p.concat(residual))
    }
}

/// An ordered list of dentries.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Dtab {
    dentries: Vec<Dentry>,
}

impl Dtab {
    pub fn new(dentries: Vec<Dentry>) -> Dtab {
        Dtab { dentries }
    }

    pub const fn empty() -> Dtab {
        Dtab {
            dentries: Vec::new(),
        }
    }

    /// Parses dtab syntax: dentries separated by `;`, one trailing `;`
    /// allowed, `#` comments. Never splits on commas.
    pub fn read(s: &str) -> Result<Dtab, ParseError> {
        parse::parse_dtab(s)
    }

    pub fn dentries(&self) -> &[Dentry] {
        &self.dentries
    }

    pub fn len(&self) -> usize {
        self.dentries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.dentries.is_empty()
    }

    /// `self ++ other`: `other`'s dentries come last and so win.
    pub fn concat(&self, other: &Dtab) -> Dtab {
        let mut d = self.dentries.clone();
        d.extend(other.dentries.iter().cloned());
        Dtab { dentries: d }
    }

    /// Appends `other`'s dentries in place.
    pub fn extend(&mut self, other: Dtab) {
        self.dentries.extend(other.dentries);
    }

    /// `Dtab.stripPrefix`: `self` without `prefix` when `self` begins with
    /// exactly those dentries, else `self` unchanged.
    pub fn strip_prefix(&self, prefix: &Dtab) -> Dtab {
        if prefix.len() <= self.len() && self.dentries[..prefix.len()] == prefix.dentries[..] {
            Dtab {
                dentries: self.dentries[prefix.len()..].to_vec(),
            }
        } else {
            self.clone()
        }
    }

    /// Indices of the dentries matching `path`, highest priority (last)
    /// first: the plain reverse scan that [`super::trie::DtabTrie`] must
    /// agree with.
    pub fn matching<'a>(&'a self, path: &'a Path) -> impl Iterator<Item = usize> + 'a {
        (0..self.dentries.len())
            .rev()
            .filter(move |&i| self.dentries[i].prefix.matches(path))
    }

    /// One lookup step (`Dtab.lookup`): every matching dentry, last to
    /// first, rewritten with the residual; Neg when none matches, the tree
    /// itself for one match, an Alt for several.
    pub fn lookup(&self, path: &Path) -> NameTree<Path> {
        let mut trees: Vec<NameTree<Path>> = self
            .matching(path)
            .map(|i| {
                let d = &self.dentries[i];
                d.rewrite(&path.drop_front(d.prefix.len()))
            })
            .collect();
        match trees.len() {
            0 => NameTree::Neg,
            1 => trees.pop().unwrap_or(NameTree::Neg),
            _ => NameTree::Alt(trees),
        }
    }

    /// `Dtab.show`: dentries joined by `;`, no spaces, no trailing `;`.
    pub fn show_to(&self, out: &mut String) {
        for (i, d) in self.dentries.iter().enumerate() {
            if i > 0 {
                out.push(';');
            }
            d.show_to(out);
        }
    }

    pub fn show(&self) -> String {
        let mut s = String::new();
        self.show_to(&mut s);
        s
    }
}

/// Builds a request's local dtab from its override headers, linkerd's
/// `Headers.Ctx.Dtab.ServerFilter`: every `l5d-ctx-dtab` line, then every
/// `l5d-dtab` line, each parsed on its own (never split on commas) and
/// concatenated in order, so `l5d-dtab` entries take priority. Header bytes
/// are read as ISO-8859-1, as the JVM's HTTP stack did, so a non-ASCII byte
/// is reported as the character it would have been there.
pub fn local_dtab<'h>(
    ctx: impl IntoIterator<Item = &'h [u8]>,
    user: impl IntoIterator<Item = &'h [u8]>,
) -> Result<Dtab, ParseError> {
    let mut out = Dtab::empty();
    for value in ctx.into_iter().chain(user) {
        let text: std::borrow::Cow<'_, str> = match std::str::from_utf8(value) {
            Ok(s) if s.is_ascii() => s.into(),
            _ => value.iter().map(|&b| b as char).collect::<String>().into(),
        };
        out.extend(Dtab::read(&text)?);
    }
    Ok(out)
}

impl fmt::Display for Dtab {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.show())
    }
}

impl FromIterator<Dentry> for Dtab {
    fn from_iter<I: IntoIterator<Item = Dentry>>(iter: I) -> Dtab {
        Dtab {
            dentries: iter.into_iter().collect(),
        }
    }
}
