//! Paths: sequences of non-empty byte-string elements, Finagle's `Path`.
//!
//! A path is stored as one contiguous byte buffer plus the end offset of each
//! element, both inline for short paths, so building the paths of a typical
//! delegation (`/svc/www.hello.world`, `/#/io.l5d.k8s/default/http/hello`)
//! allocates nothing on the heap.

use smallvec::SmallVec;
use std::fmt;

/// Bytes kept inline before a path spills to the heap. Typical service names
/// and namer ids fit.
const INLINE_BYTES: usize = 56;
/// Elements kept inline before the offset table spills to the heap.
const INLINE_ELEMS: usize = 8;

/// A sequence of non-empty byte strings. `Path::empty()` shows as `/`.
///
/// Equality and hashing are by element bytes; case is significant.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Path {
    bytes: SmallVec<[u8; INLINE_BYTES]>,
    /// `ends[i]` is the offset one past element `i` in `bytes`.
    ends: SmallVec<[u32; INLINE_ELEMS]>,
}

/// An element was empty: Finagle's `Path` requires every element to be non-empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("path elements must not be empty")]
pub struct EmptyElement;

impl Path {
    /// The empty path, `/`.
    pub const fn empty() -> Path {
        Path {
            bytes: SmallVec::new_const(),
            ends: SmallVec::new_const(),
        }
    }

    /// Builds a path from elements; fails if any element is empty.
    pub fn from_elems<I, E>(elems: I) -> Result<Path, EmptyElement>
    where
        I: IntoIterator<Item = E>,
        E: AsRef<[u8]>,
    {
        let mut p = Path::empty();
        for e in elems {
            p.try_push(e.as_ref())?;
        }
        Ok(p)
    }

    /// Parses Finagle path syntax (`/a/b\x20c`), see [`crate::routing::parse`].
    pub fn read(s: &str) -> Result<Path, super::ParseError> {
        super::parse::parse_path(s)
    }

    /// Appends one element; fails (leaving the path unchanged) if it is empty.
    pub fn try_push(&mut self, elem: &[u8]) -> Result<(), EmptyElement> {
        if elem.is_empty() {
            return Err(EmptyElement);
        }
        self.push_nonempty(elem);
        Ok(())
    }

    /// Appends an element the caller has already checked to be non-empty.
    pub(crate) fn push_nonempty(&mut self, elem: &[u8]) {
        debug_assert!(!elem.is_empty());
        self.bytes.extend_from_slice(elem);
        self.ends.push(offset(self.bytes.len()));
    }

    /// Number of elements.
    #[inline]
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True for `/`.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Element `i`, or `None` past the end.
    #[inline]
    pub fn elem(&self, i: usize) -> Option<&[u8]> {
        let end = *self.ends.get(i)? as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        Some(&self.bytes[start..end])
    }

    /// The elements in order.
    pub fn elems(&self) -> Elems<'_> {
        Elems { path: self, i: 0 }
    }

    /// True when `prefix`'s elements are the first elements of `self`.
    pub fn starts_with(&self, prefix: &Path) -> bool {
        prefix.len() <= self.len()
            && (prefix.is_empty()
                || (self.ends[prefix.len() - 1] == *prefix.ends.last().unwrap_or(&0)
                    && self.bytes.starts_with(&prefix.bytes)))
    }

    /// The path without its first `n` elements (empty if `n >= len`).
    pub fn drop_front(&self, n: usize) -> Path {
        let mut out = Path::empty();
        self.append_suffix_to(n, &mut out);
        out
    }

    /// The first `n` elements.
    pub fn take(&self, n: usize) -> Path {
        let n = n.min(self.len());
        if n == 0 {
            return Path::empty();
        }
        let cut = self.ends[n - 1] as usize;
        Path {
            bytes: SmallVec::from_slice(&self.bytes[..cut]),
            ends: SmallVec::from_slice(&self.ends[..n]),
        }
    }

    /// `self ++ other`.
    pub fn concat(&self, other: &Path) -> Path {
        let mut out = self.clone();
        out.append(other);
        out
    }

    /// Appends every element of `other`.
    pub fn append(&mut self, other: &Path) {
        other.append_suffix_to(0, self);
    }

    /// Appends the elements of `self` from index `from` onwards to `out`.
    pub(crate) fn append_suffix_to(&self, from: usize, out: &mut Path) {
        if from >= self.len() {
            return;
        }
        let start = if from == 0 {
            0
        } else {
            self.ends[from - 1] as usize
        };
        let base = out.bytes.len() as i64 - start as i64;
        out.bytes.extend_from_slice(&self.bytes[start..]);
        out.ends.extend(
            self.ends[from..]
                .iter()
                .map(|&e| offset((e as i64 + base) as usize)),
        );
    }

    /// Total bytes of all elements (a cheap size measure for limits).
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    /// Writes Finagle's `Path.show` form into `out`.
    pub fn show_to(&self, out: &mut String) {
        if self.is_empty() {
            out.push('/');
            return;
        }
        for e in self.elems() {
            out.push('/');
            show_elem(e, out);
        }
    }

    /// [`Path::show_to`] into a byte buffer (for header values), without
    /// allocating.
    pub fn show_to_bytes(&self, out: &mut Vec<u8>) {
        if self.is_empty() {
            out.push(b'/');
            return;
        }
        for e in self.elems() {
            out.push(b'/');
            if e.iter().all(|&b| is_showable(b)) {
                out.extend_from_slice(e);
            } else {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                for &b in e {
                    out.extend_from_slice(&[
                        b'\\',
                        b'x',
                        HEX[(b >> 4) as usize],
                        HEX[(b & 0xf) as usize],
                    ]);
                }
            }
        }
    }

    /// A self-delimiting byte encoding of the path for map keys (not for
    /// people): the element count and ends, then the bytes. Two paths
    /// encode alike only when they are equal, and bytes appended after the
    /// encoding never run into it. Cheaper than [`Path::show_to_bytes`],
    /// which looks at every byte.
    pub fn key_to_bytes(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.ends.len() as u32).to_le_bytes());
        for e in &self.ends {
            out.extend_from_slice(&e.to_le_bytes());
        }
        out.extend_from_slice(&self.bytes);
    }

    /// Finagle's `Path.show`.
    pub fn show(&self) -> String {
        let mut s = String::with_capacity(self.bytes.len() + self.len() + 1);
        self.show_to(&mut s);
        s
    }
}

fn offset(n: usize) -> u32 {
    // Paths come from bounded inputs (header limits, config files); a path of
    // 4 GiB cannot be built from them. Saturate rather than wrap if it were.
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// `Path.showableChars`: the bytes printed raw in a path element.
#[inline]
pub fn is_showable(b: u8) -> bool {
    SHOWABLE[b as usize]
}

/// [`is_showable`] as a table: it is asked of every byte of every name a
/// request header carries.
static SHOWABLE: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric()
            || matches!(c, b'_' | b':' | b'.' | b'#' | b'$' | b'%' | b'-');
        b += 1;
    }
    t
};

/// An element is printed raw if every byte is showable, else every byte as
/// `\xNN` with lower-case hex (`F/Path.scala` showElem).
pub(crate) fn show_elem(e: &[u8], out: &mut String) {
    if e.iter().all(|&b| is_showable(b)) {
        // All showable bytes are ASCII.
        for &b in e {
            out.push(b as char);
        }
    } else {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for &b in e {
            out.push('\\');
            out.push('x');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 0xf) as usize] as char);
        }
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::new();
        self.show_to(&mut s);
        f.write_str(&s)
    }
}

impl fmt::Debug for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Path({self})")
    }
}

/// Iterator over a path's elements.
pub struct Elems<'a> {
    path: &'a Path,
    i: usize,
}

impl<'a> Iterator for Elems<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let e = self.path.elem(self.i)?;
        self.i += 1;
        Some(e)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.path.len() - self.i;
        (n, Some(n))
    }
}

impl ExactSizeIterator for Elems<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Path {
        Path::read(s).unwrap()
    }

    #[test]
    fn keys_tell_paths_apart() {
        let key = |s: &str| {
            let mut k = Vec::new();
            p(s).key_to_bytes(&mut k);
            k
        };
        // Same bytes, different elements; and a prefix with a suffix after.
        let all = ["/ab/c", "/a/bc", "/abc", "/a/b/c", "/", "/a"];
        for (i, a) in all.iter().enumerate() {
            for (j, b) in all.iter().enumerate() {
                assert_eq!(key(a) == key(b), i == j, "{a} vs {b}");
            }
        }
        let mut with_suffix = key("/a");
        with_suffix.extend_from_slice(b"bc");
        assert_ne!(with_suffix, key("/abc"));
    }

    #[test]
    fn build_and_slice() {
        let a = p("/a/bc/def");
        assert_eq!(a.len(), 3);
        assert_eq!(a.elem(1), Some(&b"bc"[..]));
        assert_eq!(a.elem(3), None);
        assert_eq!(a.drop_front(1), p("/bc/def"));
        assert_eq!(a.drop_front(3), Path::empty());
        assert_eq!(a.drop_front(9), Path::empty());
        assert_eq!(a.take(2), p("/a/bc"));
        assert_eq!(a.take(0), Path::empty());
        assert_eq!(p("/x").concat(&a.drop_front(1)), p("/x/bc/def"));
        assert!(a.starts_with(&p("/a/bc")));
        assert!(a.starts_with(&Path::empty()));
        assert!(!a.starts_with(&p("/a/b")));
        assert!(!a.starts_with(&p("/ab")));
        assert!(!p("/a").starts_with(&a));
    }

    #[test]
    fn empty_elements_are_refused() {
        assert_eq!(Path::from_elems(["a", ""]), Err(EmptyElement));
        let mut q = p("/a");
        assert!(q.try_push(b"").is_err());
        assert_eq!(q, p("/a"));
    }

    #[test]
    fn show_escapes_whole_elements() {
        let q = Path::from_elems([&b"svc"[..], b"foo bar", b"h\xc3\xa9"]).unwrap();
        assert_eq!(
            q.show(),
            "/svc/\\x66\\x6f\\x6f\\x20\\x62\\x61\\x72/\\x68\\xc3\\xa9"
        );
        assert_eq!(Path::empty().show(), "/");
    }

    #[test]
    fn byte_show_matches_string_show() {
        let q = Path::from_elems([&b"svc"[..], b"foo bar", b"web:80"]).unwrap();
        let mut b = Vec::new();
        q.show_to_bytes(&mut b);
        assert_eq!(b, q.show().as_bytes());
        let mut b = Vec::new();
        Path::empty().show_to_bytes(&mut b);
        assert_eq!(b, b"/");
    }

    #[test]
    fn long_paths_spill_and_stay_correct() {
        let elems: Vec<String> = (0..40).map(|i| format!("element-{i}")).collect();
        let q = Path::from_elems(&elems).unwrap();
        assert_eq!(q.len(), 40);
        assert_eq!(q.elem(39), Some(&b"element-39"[..]));
        assert_eq!(q.drop_front(38).show(), "/element-38/element-39");
    }
}
