//! The dtab language parser: paths, prefixes, dentries, dtabs and name trees.
//!
//! A recursive-descent parser that follows Finagle's `NameTreeParsers`
//! grammar exactly, including where whitespace and `#` comments may appear,
//! and reports errors in Finagle's words:
//! `<expected> expected but <found> found at '<input with the char in [ ]>'`.
//! See `reference/dtab-semantics.md` §2 for the grammar.

use super::dtab::{Dentry, Dtab, Prefix, PrefixElem};
use super::nametree::{DEFAULT_WEIGHT, NameTree, Weighted};
use super::path::{Path, is_showable};
use crate::limits::DTAB_TREE_NESTING_MAX;
use std::fmt;

/// A syntax error, with the character offset where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Finagle's message, including the input with the offending character
    /// bracketed.
    pub message: String,
    /// Offset of the offending character, in characters from the start.
    pub position: usize,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ParseError {}

/// Parses a whole path.
pub fn parse_path(s: &str) -> Result<Path, ParseError> {
    let mut p = Parser::new(s);
    let path = p.path()?;
    p.finish()?;
    Ok(path)
}

/// Parses a whole name tree.
pub fn parse_tree(s: &str) -> Result<NameTree<Path>, ParseError> {
    let mut p = Parser::new(s);
    let t = p.tree()?;
    p.finish()?;
    Ok(t)
}

/// Parses one dentry.
pub fn parse_dentry(s: &str) -> Result<Dentry, ParseError> {
    let mut p = Parser::new(s);
    let d = p.dentry()?;
    p.finish()?;
    Ok(d)
}

/// Parses a dentry prefix (which may contain `*`).
pub fn parse_prefix(s: &str) -> Result<Prefix, ParseError> {
    let mut p = Parser::new(s);
    let d = p.prefix()?;
    p.finish()?;
    Ok(d)
}

/// Parses a whole dtab.
pub fn parse_dtab(s: &str) -> Result<Dtab, ParseError> {
    let mut p = Parser::new(s);
    let mut dentries = Vec::new();
    loop {
        p.skip_ws();
        if !p.at_end() {
            dentries.push(p.dentry()?);
            p.skip_ws();
        }
        if !p.eat_if(';') {
            break;
        }
    }
    p.finish()?;
    Ok(Dtab::new(dentries))
}

/// What the parser says it found: a character or the end of input.
#[derive(Clone, Copy)]
enum Found {
    Char(char),
    End,
}

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Found::Char(c) => write!(f, "'{c}'"),
            Found::End => f.write_str("end of input"),
        }
    }
}

struct Parser<'a> {
    src: &'a str,
    /// Byte offset of the next character.
    idx: usize,
    /// Parenthesis depth, bounded so hostile input cannot exhaust the stack.
    nesting: usize,
}

impl<'a> Parser<'a> {
    fn new(src: &'a str) -> Self {
        Parser {
            src,
            idx: 0,
            nesting: 0,
        }
    }

    fn at_end(&self) -> bool {
        self.idx >= self.src.len()
    }

    #[inline]
    fn peek(&self) -> Option<char> {
        let b = *self.src.as_bytes().get(self.idx)?;
        if b < 0x80 {
            Some(b as char)
        } else {
            self.src[self.idx..].chars().next()
        }
    }

    fn found(&self) -> Found {
        self.peek().map_or(Found::End, Found::Char)
    }

    fn bump(&mut self) {
        if let Some(c) = self.peek() {
            self.idx += c.len_utf8();
        }
    }

    fn eat_if(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.idx += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn eat(&mut self, c: char) -> Result<(), ParseError> {
        if self.eat_if(c) {
            Ok(())
        } else {
            Err(self.error(&format!("'{c}'")))
        }
    }

    fn error(&self, expected: &str) -> ParseError {
        self.error_found(expected, self.found())
    }

    fn error_found(&self, expected: &str, found: Found) -> ParseError {
        let shown = match self.peek() {
            None => format!("{}[]", self.src),
            Some(c) => format!(
                "{}[{}]{}",
                &self.src[..self.idx],
                c,
                &self.src[self.idx + c.len_utf8()..]
            ),
        };
        ParseError {
            message: format!("{expected} expected but {found} found at '{shown}'"),
            position: self.src[..self.idx].chars().count(),
        }
    }

    /// Skips whitespace and `#` comments (to the end of the line).
    fn skip_ws(&mut self) {
        while let Some(c) = self.peek() {
            if c == '#' {
                match self.src[self.idx..].find('\n') {
                    Some(n) => self.idx += n + 1,
                    None => self.idx = self.src.len(),
                }
            } else if is_java_whitespace(c) {
                self.bump();
            } else {
                break;
            }
        }
    }

    fn finish(&mut self) -> Result<(), ParseError> {
        self.skip_ws();
        if self.at_end() {
            Ok(())
        } else {
            Err(self.error("end of input"))
        }
    }

    fn is_label_start(&self) -> bool {
        matches!(self.peek(), Some(c) if c == '\\' || (c.is_ascii() && is_showable(c as u8)))
    }

    /// One label: showable characters and `\xNN` escapes, at least one.
    fn label(&mut self, out: &mut Vec<u8>) -> Result<(), ParseError> {
        out.clear();
        loop {
            match self.peek() {
                Some(c) if c.is_ascii() && is_showable(c as u8) => {
                    out.push(c as u8);
                    self.idx += 1;
                }
                Some('\\') => {
                    self.idx += 1;
                    self.eat('x')?;
                    let hi = self.hex()?;
                    let lo = self.hex()?;
                    out.push(hi << 4 | lo);
                }
                _ => return Err(self.error("label char")),
            }
            if !self.is_label_start() {
                return Ok(());
            }
        }
    }

    fn hex(&mut self) -> Result<u8, ParseError> {
        match self.peek().and_then(|c| c.to_digit(16)) {
            Some(d) => {
                self.idx += 1;
                Ok(d as u8)
            }
            None => Err(self.error("hex char")),
        }
    }

    fn path(&mut self) -> Result<Path, ParseError> {
        self.skip_ws();
        self.eat('/')?;
        let mut path = Path::empty();
        if !self.is_label_start() {
            return Ok(path);
        }
        let mut buf = Vec::new();
        loop {
            self.label(&mut buf)?;
            path.push_nonempty(&buf);
            if !self.eat_if('/') {
                return Ok(path);
            }
        }
    }

    fn prefix(&mut self) -> Result<Prefix, ParseError> {
        self.skip_ws();
        self.eat('/')?;
        let mut elems = Vec::new();
        if !(self.is_label_start() || self.peek() == Some('*')) {
            return Ok(Prefix::new(elems));
        }
        let mut buf = Vec::new();
        loop {
            if self.eat_if('*') {
                elems.push(PrefixElem::Any);
            } else {
                self.label(&mut buf)?;
                elems.push(PrefixElem::Label(buf.as_slice().into()));
            }
            if !self.eat_if('/') {
                return Ok(Prefix::new(elems));
            }
        }
    }

    fn dentry(&mut self) -> Result<Dentry, ParseError> {
        let prefix = self.prefix()?;
        self.skip_ws();
        self.eat('=')?;
        self.eat('>')?;
        let dst = self.tree()?;
        Ok(Dentry { prefix, dst })
    }

    /// `tree ::= tree1 ( '|' tree1 )*`
    fn tree(&mut self) -> Result<NameTree<Path>, ParseError> {
        let mut alts = Vec::new();
        loop {
            alts.push(self.tree1()?);
            self.skip_ws();
            if !self.eat_if('|') {
                break;
            }
        }
        Ok(if alts.len() == 1 {
            alts.pop().unwrap_or(NameTree::Neg)
        } else {
            NameTree::Alt(alts)
        })
    }

    /// `tree1 ::= weighted ( '&' weighted )*`; a lone member's weight is
    /// dropped, as Finagle builds no one-member union.
    fn tree1(&mut self) -> Result<NameTree<Path>, ParseError> {
        let mut members = Vec::new();
        loop {
            members.push(self.weighted()?);
            self.skip_ws();
            if !self.eat_if('&') {
                break;
            }
        }
        Ok(if members.len() == 1 {
            members.pop().map(|w| w.tree).unwrap_or(NameTree::Neg)
        } else {
            NameTree::Union(members)
        })
    }

    fn weighted(&mut self) -> Result<Weighted<Path>, ParseError> {
        self.skip_ws();
        let weight = if matches!(self.peek(), Some(c) if c.is_ascii_digit() || c == '.') {
            let w = self.number()?;
            self.skip_ws();
            self.eat('*')?;
            self.skip_ws();
            w
        } else {
            DEFAULT_WEIGHT
        };
        Ok(Weighted {
            weight,
            tree: self.simple()?,
        })
    }

    /// A weight: digits with at most one `.`, not `.` alone. Only ASCII
    /// digits: Java lexes other Unicode digits too but `parseDouble` then
    /// rejects them, so both fail (with different messages).
    fn number(&mut self) -> Result<f64, ParseError> {
        let start = self.idx;
        let mut seen_dot = false;
        while let Some(c) = self.peek() {
            if c == '.' {
                if seen_dot {
                    return Err(self.error("number char"));
                }
                seen_dot = true;
            } else if !c.is_ascii_digit() {
                break;
            }
            self.idx += 1;
        }
        let text = &self.src[start..self.idx];
        if text == "." {
            // Finagle reports the '.' it consumed while pointing at the
            // character after it; keep its message exactly.
            return Err(self.error_found("weight", Found::Char('.')));
        }
        match text.parse::<f64>() {
            Ok(w) if w.is_finite() => Ok(w),
            // Java would accept a weight so long it overflows to Infinity,
            // which then prints unparseably; refuse it here instead.
            _ => {
                self.idx = start;
                Err(self.error("finite weight"))
            }
        }
    }

    fn simple(&mut self) -> Result<NameTree<Path>, ParseError> {
        self.skip_ws();
        match self.peek() {
            Some('(') => {
                if self.nesting >= DTAB_TREE_NESTING_MAX {
                    return Err(self.error("shallower nesting"));
                }
                self.idx += 1;
                self.nesting += 1;
                let t = self.tree()?;
                self.nesting -= 1;
                self.skip_ws();
                self.eat(')')?;
                Ok(t)
            }
            Some('/') => Ok(NameTree::Leaf(self.path()?)),
            Some('!') => {
                self.idx += 1;
                Ok(NameTree::Fail)
            }
            Some('~') => {
                self.idx += 1;
                Ok(NameTree::Neg)
            }
            Some('$') => {
                self.idx += 1;
                Ok(NameTree::Empty)
            }
            _ => Err(self.error("simple")),
        }
    }
}

/// `java.lang.Character.isWhitespace`: ASCII controls 9-13 and 28-31, and
/// the Unicode space, line and paragraph separators except the no-break
/// spaces U+00A0, U+2007 and U+202F.
pub fn is_java_whitespace(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n'
            | '\u{0B}'
            | '\u{0C}'
            | '\r'
            | '\u{1C}'..='\u{1F}'
            | ' '
            | '\u{1680}'
            | '\u{2000}'..='\u{2006}'
            | '\u{2008}'..='\u{200A}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{205F}'
            | '\u{3000}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_follow_finagle() {
        let e = parse_path("/foo^bar").unwrap_err();
        assert_eq!(
            e.message,
            "end of input expected but '^' found at '/foo[^]bar'"
        );
        assert_eq!(e.position, 4);
        let e = parse_dtab("/a=>").unwrap_err();
        assert_eq!(
            e.message,
            "simple expected but end of input found at '/a=>[]'"
        );
        let e = parse_path("/h\u{e9}llo").unwrap_err();
        assert_eq!(e.position, 2);
    }

    #[test]
    fn nesting_is_bounded() {
        let ok = format!(
            "{}/a{}",
            "(".repeat(DTAB_TREE_NESTING_MAX),
            ")".repeat(DTAB_TREE_NESTING_MAX)
        );
        assert!(parse_tree(&ok).is_ok());
        let deep = format!(
            "{}/a{}",
            "(".repeat(DTAB_TREE_NESTING_MAX + 1),
            ")".repeat(DTAB_TREE_NESTING_MAX + 1)
        );
        let e = parse_tree(&deep).unwrap_err();
        assert!(e.message.starts_with("shallower nesting expected"), "{e}");
        // Far deeper input fails the same way, without recursing further.
        assert!(parse_tree(&"(".repeat(1_000_000)).is_err());
    }

    #[test]
    fn whitespace_is_javas() {
        assert!(parse_path("\u{2003}/a\u{3000}").is_ok());
        assert!(parse_path("\u{a0}/a").is_err());
        assert!(parse_path("/a\u{202f}").is_err());
    }

    #[test]
    fn infinite_weights_are_refused() {
        let huge = format!("{}*/a & /b", "9".repeat(400));
        assert!(parse_tree(&huge).is_err());
    }
}
