//! Small RFC 9110 grammar helpers: tokens, comma lists, OWS.

/// Byte classes, one table lookup a byte instead of a chain of range tests
/// (these run over every method, Host value and `Connection` token).
const fn byte_table(extra: &[u8]) -> [bool; 256] {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = (b as u8).is_ascii_alphanumeric();
        b += 1;
    }
    let mut i = 0;
    while i < extra.len() {
        t[extra[i] as usize] = true;
        i += 1;
    }
    t
}

static TCHAR: [bool; 256] = byte_table(b"!#$%&'*+-.^_`|~");
static HOST_CHAR: [bool; 256] = byte_table(b".-:[]_%~");

/// `tchar` (RFC 9110 §5.6.2).
#[inline]
pub fn is_tchar(b: u8) -> bool {
    TCHAR[b as usize]
}

/// Host characters: a reg-name, an IPv4 address or a bracketed IPv6
/// literal, with an optional port.
#[inline]
pub fn is_host_char(b: u8) -> bool {
    HOST_CHAR[b as usize]
}

/// `token = 1*tchar`.
pub fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

/// Trims optional whitespace (SP / HTAB) from both ends.
pub fn trim_ows(s: &[u8]) -> &[u8] {
    // Most values have no surrounding whitespace (httparse has already
    // skipped the leading OWS): two byte tests instead of two scans.
    let ows = |b: &u8| *b == b' ' || *b == b'\t';
    if !s.first().is_some_and(ows) && !s.last().is_some_and(ows) {
        return s;
    }
    let start = s
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |i| i + 1);
    &s[start..end]
}

/// The elements of a `#element` list (RFC 9110 §5.6.1), OWS trimmed. Empty
/// elements are yielded as empty slices so callers can refuse them where a
/// sender "MUST NOT" generate them.
pub fn list_elements(s: &[u8]) -> impl Iterator<Item = &[u8]> {
    s.split(|&b| b == b',').map(trim_ows)
}

/// 0x01 and 0x80 in every byte of a word, for the byte-wise tests below.
const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// Eight bytes of `s` from `i`, as one little-endian word.
#[inline(always)]
fn word8(s: &[u8], i: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&s[i..i + 8]);
    u64::from_le_bytes(b)
}

/// Four bytes of `s` from `i`, as one little-endian word.
#[inline(always)]
fn word4(s: &[u8], i: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&s[i..i + 4]);
    u32::from_le_bytes(b)
}

/// `n` equals `lower` (lowercase letters, digits and `-`), ASCII case
/// aside, for `n` without CR: `| 0x20` lowercases `A-Z` and maps nothing
/// else onto those bytes except CR onto `-` (header names are tokens, and
/// values never hold a CR). By words: the first and last eight bytes (overlapping when shorter than
/// sixteen) and any full words between; four-byte words below eight bytes.
#[inline(always)]
pub fn eq_lower(n: &[u8], lower: &[u8]) -> bool {
    let len = lower.len();
    if n.len() != len {
        return false;
    }
    let (w8, w4) = (word8, word4);
    const FOLD8: u64 = 0x2020_2020_2020_2020;
    const FOLD4: u32 = 0x2020_2020;
    if len >= 8 {
        let mut i = 0;
        while i + 8 < len {
            if w8(n, i) | FOLD8 != w8(lower, i) {
                return false;
            }
            i += 8;
        }
        w8(n, len - 8) | FOLD8 == w8(lower, len - 8)
    } else if len >= 4 {
        w4(n, 0) | FOLD4 == w4(lower, 0) && w4(n, len - 4) | FOLD4 == w4(lower, len - 4)
    } else {
        n.iter().zip(lower).all(|(&x, &y)| x | 0x20 == y)
    }
}

/// Whether `s` holds the byte `b`, a word at a time (for short slices such as
/// header names, where a general search costs more to set up than to run).
#[inline]
pub fn contains_byte(s: &[u8], b: u8) -> bool {
    // A word has a zero byte exactly when `(w - 0x01..) & !w & 0x80..` is
    // non-zero; XOR with `b` in every byte turns `b` into zero.
    let pat = LO * u64::from(b);
    let has = |w: u64| {
        let x = w ^ pat;
        x.wrapping_sub(LO) & !x & HI != 0
    };
    let len = s.len();
    if len >= 8 {
        let mut i = 0;
        while i + 8 < len {
            if has(word8(s, i)) {
                return true;
            }
            i += 8;
        }
        has(word8(s, len - 8))
    } else if len >= 4 {
        // The first and last four bytes (overlapping below eight), widened.
        has(u64::from(word4(s, 0)) | u64::from(word4(s, len - 4)) << 32)
    } else {
        s.contains(&b)
    }
}

/// Whether every byte of `s` is visible ASCII (`0x21..=0x7E`) other than
/// `except`, eight bytes a word: the checks a request target needs (RFC
/// 9112 §3.2), at a fraction of a byte loop's cost on a long path.
#[inline]
pub fn all_visible_except(s: &[u8], except: u8) -> bool {
    let pat = LO * u64::from(except);
    // A byte is bad when it is below 0x21, above 0x7E (0x7F and every byte
    // with its top bit set) or equal to `except`. Each test sets that
    // byte's top bit; borrows and carries only ever run out of a byte that
    // is itself bad, so a clean word is never flagged (and a flagged word
    // has a bad byte, wherever the flag lands).
    let bad = |w: u64| {
        let below = w.wrapping_sub(LO * 0x21) & !w;
        let above = (w & !HI).wrapping_add(LO) | w;
        let x = w ^ pat;
        let equal = x.wrapping_sub(LO) & !x;
        (below | above | equal) & HI != 0
    };
    let len = s.len();
    let mut i = 0;
    while i + 8 <= len {
        if bad(word8(s, i)) {
            return false;
        }
        i += 8;
    }
    s[i..]
        .iter()
        .all(|&b| (0x21..=0x7e).contains(&b) && b != except)
}

/// What a `Connection` value says, read in one pass.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionTokens {
    pub close: bool,
    pub keep_alive: bool,
    /// Some token names a header (anything but `close` and `keep-alive`).
    pub names_headers: bool,
}

impl ConnectionTokens {
    pub fn read(value: &[u8]) -> ConnectionTokens {
        let mut t = ConnectionTokens::default();
        // Nearly every value is a single `keep-alive` or `close`.
        if eq_lower(value, b"keep-alive") {
            t.keep_alive = true;
            return t;
        }
        if eq_lower(value, b"close") {
            t.close = true;
            return t;
        }
        for e in list_elements(value) {
            if e.eq_ignore_ascii_case(b"keep-alive") {
                t.keep_alive = true;
            } else if e.eq_ignore_ascii_case(b"close") {
                t.close = true;
            } else if !e.is_empty() {
                t.names_headers = true;
            }
        }
        t
    }

    pub fn merge(self, o: ConnectionTokens) -> ConnectionTokens {
        ConnectionTokens {
            close: self.close | o.close,
            keep_alive: self.keep_alive | o.keep_alive,
            names_headers: self.names_headers | o.names_headers,
        }
    }
}

/// True when `name` (ASCII case-insensitive) is among the tokens of a
/// `Connection`-style list value.
pub fn list_contains(value: &[u8], name: &[u8]) -> bool {
    list_elements(value).any(|e| e.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists() {
        let v: Vec<&[u8]> = list_elements(b" a ,b,, c\t").collect();
        assert_eq!(v, vec![&b"a"[..], b"b", b"", b"c"]);
        assert!(list_contains(b"keep-alive, Close", b"close"));
        assert!(!list_contains(b"closed", b"close"));
        let t = ConnectionTokens::read(b"Keep-Alive , x-trace");
        assert!(t.keep_alive && !t.close && t.names_headers);
        for v in [&b"KEEP-ALIVE"[..], b"Keep-Alive", b"keep-alive"] {
            assert!(ConnectionTokens::read(v).keep_alive);
        }
        assert!(ConnectionTokens::read(b"Close").close);
        assert!(ConnectionTokens::read(b"keep-alivf").names_headers);
        let t = ConnectionTokens::read(b"close,");
        assert!(t.close && !t.keep_alive && !t.names_headers);
        assert_eq!(trim_ows(b"  "), b"");
    }

    #[test]
    fn all_visible_except_agrees_with_a_byte_loop() {
        let slow = |s: &[u8]| s.iter().all(|&b| (0x21..=0x7e).contains(&b) && b != b'#');
        // Every byte value at every position of every length to 24, among
        // clean neighbours at both ends of the visible range.
        for len in 1..24 {
            for fill in [b'!', b'~', b'a', b'/'] {
                let mut s = vec![fill; len];
                assert!(all_visible_except(&s, b'#'));
                for at in 0..len {
                    for b in 0..=255u8 {
                        s[at] = b;
                        assert_eq!(
                            all_visible_except(&s, b'#'),
                            slow(&s),
                            "{b:#x} at {at} of {len}"
                        );
                    }
                    s[at] = fill;
                }
            }
        }
        // Two bad bytes in one word, where one's borrow meets the other.
        for a in 0..=255u8 {
            for b in [0u8, 0x20, 0x22, 0x23, 0x7f, 0x80, 0xff] {
                let s = [b'x', a, b, b'x', b'x', b'x', b'x', b'x'];
                assert_eq!(all_visible_except(&s, b'#'), slow(&s), "{a:#x} {b:#x}");
            }
        }
        assert!(all_visible_except(b"", b'#'));
    }

    #[test]
    fn contains_byte_agrees_with_a_byte_search() {
        // Every length to 40, the byte at every position or absent, among
        // neighbours that differ from it by one bit (0x5E, 0x7F, 0xDF for
        // `_`) or sit above it in a word (where a borrow could mislead).
        for b in [b'_', 0u8, 0x80, 0xFF] {
            for len in 0..40 {
                for fill in [b ^ 1, b ^ 0x20, b ^ 0x80, b.wrapping_add(1), 0, 0xFF] {
                    if fill == b {
                        continue;
                    }
                    let mut s = vec![fill; len];
                    assert!(!contains_byte(&s, b), "{b:#x} in {s:?}");
                    for at in 0..len {
                        s[at] = b;
                        assert!(contains_byte(&s, b), "{b:#x} at {at} of {len}");
                        s[at] = fill;
                    }
                }
            }
        }
    }
}
