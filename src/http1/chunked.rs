//! A strict decoder for the chunked transfer coding (RFC 9112 §7.1).
//!
//! httparse's chunk-size parser is lenient (bare LF in extensions, empty size
//! lines); proxies that disagree with their upstream about where a chunk ends
//! are how chunked smuggling works. This decoder accepts exactly the grammar:
//! `1*HEXDIG [ chunk-ext ] CRLF data CRLF ... 0 [ chunk-ext ] CRLF
//! *( field-line CRLF ) CRLF`, with checked arithmetic and bounded extension
//! and trailer sizes. Extensions and trailers are validated and dropped; the
//! proxy re-encodes the data with clean framing.

use super::token::{is_tchar, trim_ows};
use crate::limits::{CHUNK_EXT_BYTES_MAX, CHUNK_SIZE_DIGITS_MAX, TRAILER_BYTES_MAX};

/// What one call to [`ChunkedDecoder::decode`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkedEvent {
    /// `input[start..end]` is body data to forward.
    Data { start: usize, end: usize },
    /// The body is complete; `consumed` bytes of this input belonged to it.
    Done,
}

/// Why a chunked body is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkedError {
    pub reason: &'static str,
    /// The body exceeded its size limit (413) rather than being malformed.
    pub too_large: bool,
}

fn bad(reason: &'static str) -> ChunkedError {
    ChunkedError {
        reason,
        too_large: false,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading chunk-size hex digits.
    Size {
        digits: usize,
    },
    /// After the size: an extension or CR.
    Ext,
    /// Expecting the LF of the size line.
    SizeLf,
    /// Reading chunk data.
    Data,
    /// Expecting the CR after chunk data.
    DataCr,
    /// Expecting the LF after chunk data.
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart,
    /// Inside a trailer line.
    Trailer,
    /// Expecting the LF ending a trailer line.
    TrailerLf,
    /// Expecting the LF of the final empty line.
    EndLf,
    Done,
}

/// Decoder state for one chunked body.
#[derive(Debug)]
pub struct ChunkedDecoder {
    state: State,
    /// Size of the current chunk, then the bytes of it still to come.
    remaining: u64,
    /// Total data bytes so far, for the body limit.
    total: u64,
    max_total: u64,
    /// The current extension or trailer line, kept to validate it whole.
    line: Vec<u8>,
    trailer_bytes: usize,
}

impl ChunkedDecoder {
    pub fn new(max_total: u64) -> ChunkedDecoder {
        ChunkedDecoder {
            state: State::Size { digits: 0 },
            remaining: 0,
            total: 0,
            max_total,
            line: Vec::new(),
            trailer_bytes: 0,
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes from the start of `input`. Returns how many bytes were
    /// consumed and what was found; `(n, None)` with `n == input.len()`
    /// means "feed more".
    pub fn decode(&mut self, input: &[u8]) -> Result<(usize, Option<ChunkedEvent>), ChunkedError> {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self.state {
                State::Size { digits } => {
                    if let Some(d) = (b as char).to_digit(16) {
                        if digits >= CHUNK_SIZE_DIGITS_MAX {
                            return Err(bad("chunk size too long"));
                        }
                        self.remaining = self
                            .remaining
                            .checked_mul(16)
                            .and_then(|v| v.checked_add(u64::from(d)))
                            .ok_or(bad("chunk size overflow"))?;
                        self.state = State::Size { digits: digits + 1 };
                    } else if digits == 0 {
                        return Err(bad("missing chunk size"));
                    } else if b == b'\r' {
                        self.state = State::SizeLf;
                    } else if b == b';' || b == b' ' || b == b'\t' {
                        self.line.clear();
                        self.line.push(b);
                        self.state = State::Ext;
                    } else {
                        return Err(bad("invalid chunk size"));
                    }
                }
                State::Ext => {
                    if b == b'\r' {
                        validate_extensions(&self.line)?;
                        self.state = State::SizeLf;
                    } else if b == b'\n' || b == 0 || (b < 0x20 && b != b'\t') || b == 0x7f {
                        return Err(bad("control character in chunk extension"));
                    } else {
                        if self.line.len() >= CHUNK_EXT_BYTES_MAX {
                            return Err(bad("chunk extension too long"));
                        }
                        self.line.push(b);
                    }
                }
                State::SizeLf => {
                    if b != b'\n' {
                        return Err(bad("chunk size line not ended by CRLF"));
                    }
                    if self.remaining == 0 {
                        self.state = State::TrailerStart;
                    } else {
                        self.total = self
                            .total
                            .checked_add(self.remaining)
                            .ok_or(bad("chunked body size overflow"))?;
                        if self.total > self.max_total {
                            return Err(ChunkedError {
                                reason: "request body too large",
                                too_large: true,
                            });
                        }
                        self.state = State::Data;
                    }
                }
                State::Data => {
                    let avail = (input.len() - i) as u64;
                    let take = avail.min(self.remaining) as usize;
                    self.remaining -= take as u64;
                    if self.remaining == 0 {
                        self.state = State::DataCr;
                    }
                    return Ok((
                        i + take,
                        Some(ChunkedEvent::Data {
                            start: i,
                            end: i + take,
                        }),
                    ));
                }
                State::DataCr => {
                    if b != b'\r' {
                        return Err(bad("chunk data not followed by CRLF"));
                    }
                    self.state = State::DataLf;
                }
                State::DataLf => {
                    if b != b'\n' {
                        return Err(bad("chunk data not followed by CRLF"));
                    }
                    self.state = State::Size { digits: 0 };
                }
                State::TrailerStart => {
                    if b == b'\r' {
                        self.state = State::EndLf;
                    } else {
                        self.line.clear();
                        self.line.push(b);
                        self.bump_trailer()?;
                        self.state = State::Trailer;
                    }
                }
                State::Trailer => {
                    if b == b'\r' {
                        validate_trailer(&self.line)?;
                        self.state = State::TrailerLf;
                    } else if b == b'\n' {
                        return Err(bad("bare LF in trailer"));
                    } else {
                        self.line.push(b);
                        self.bump_trailer()?;
                    }
                }
                State::TrailerLf => {
                    if b != b'\n' {
                        return Err(bad("bare CR in trailer"));
                    }
                    self.state = State::TrailerStart;
                }
                State::EndLf => {
                    if b != b'\n' {
                        return Err(bad("chunked body not ended by CRLF"));
                    }
                    self.state = State::Done;
                    return Ok((i + 1, Some(ChunkedEvent::Done)));
                }
                State::Done => return Ok((i, Some(ChunkedEvent::Done))),
            }
            i += 1;
        }
        Ok((i, None))
    }

    fn bump_trailer(&mut self) -> Result<(), ChunkedError> {
        self.trailer_bytes += 1;
        if self.trailer_bytes > TRAILER_BYTES_MAX {
            return Err(bad("trailer section too large"));
        }
        Ok(())
    }
}

/// `*( BWS ";" BWS ext-name [ BWS "=" BWS ext-value ] )` where ext-value is
/// a token or a quoted-string.
fn validate_extensions(s: &[u8]) -> Result<(), ChunkedError> {
    let bws = |s: &[u8], mut i: usize| {
        while i < s.len() && (s[i] == b' ' || s[i] == b'\t') {
            i += 1;
        }
        i
    };
    let token = |s: &[u8], mut i: usize| {
        let start = i;
        while i < s.len() && is_tchar(s[i]) {
            i += 1;
        }
        (i > start).then_some(i)
    };
    let mut i = 0;
    while {
        i = bws(s, i);
        i < s.len()
    } {
        if s[i] != b';' {
            return Err(bad("invalid chunk extension"));
        }
        i = bws(s, i + 1);
        i = token(s, i).ok_or(bad("chunk extension without a name"))?;
        let j = bws(s, i);
        if j < s.len() && s[j] == b'=' {
            i = bws(s, j + 1);
            if i < s.len() && s[i] == b'"' {
                i += 1;
                loop {
                    match s.get(i) {
                        None => return Err(bad("unterminated quoted chunk extension")),
                        Some(b'"') => {
                            i += 1;
                            break;
                        }
                        Some(b'\\') => i += 2,
                        Some(_) => i += 1,
                    }
                }
            } else {
                i = token(s, i).ok_or(bad("chunk extension without a value"))?;
            }
        } else {
            i = j;
        }
    }
    Ok(())
}

/// `field-name ":" OWS field-value OWS`, no control characters.
fn validate_trailer(line: &[u8]) -> Result<(), ChunkedError> {
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or(bad("malformed trailer"))?;
    let name = &line[..colon];
    if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
        return Err(bad("malformed trailer name"));
    }
    let value = trim_ows(&line[colon + 1..]);
    if value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err(bad("control character in trailer"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in pieces of `step` bytes; returns the body and
    /// how many input bytes belonged to it.
    fn decode_steps(input: &[u8], step: usize) -> Result<(Vec<u8>, usize), ChunkedError> {
        let mut d = ChunkedDecoder::new(1 << 20);
        let mut body = Vec::new();
        let mut buf: Vec<u8> = Vec::new();
        let mut fed = 0;
        let mut used = 0;
        loop {
            // Offer what has arrived and not been consumed yet.
            let (n, ev) = d.decode(&buf)?;
            match ev {
                Some(ChunkedEvent::Data { start, end }) => body.extend_from_slice(&buf[start..end]),
                Some(ChunkedEvent::Done) => return Ok((body, used + n)),
                None => {}
            }
            used += n;
            buf.drain(..n);
            if ev.is_none() {
                if fed >= input.len() {
                    return Err(bad("incomplete"));
                }
                let next = (fed + step).min(input.len());
                buf.extend_from_slice(&input[fed..next]);
                fed = next;
            }
        }
    }

    fn decode_all_splits(input: &[u8]) -> Result<(Vec<u8>, usize), ChunkedError> {
        let whole = decode_steps(input, input.len().max(1));
        for step in 1..input.len() {
            assert_eq!(
                decode_steps(input, step).map_err(|e| e.too_large),
                whole.clone().map_err(|e| e.too_large),
                "step {step}"
            );
        }
        whole
    }

    #[test]
    fn valid_bodies() {
        let (body, used) =
            decode_all_splits(b"5\r\nhello\r\n6;a=b;c=\"d;e\"\r\n world\r\n0\r\n\r\nNEXT").unwrap();
        assert_eq!(body, b"hello world");
        assert_eq!(used, 38);
        let (body, _) =
            decode_all_splits(b"A\r\n0123456789\r\n0\r\nX-T: 1\r\nY: 2\r\n\r\n").unwrap();
        assert_eq!(body, b"0123456789");
        let (body, _) = decode_all_splits(b"0\r\n\r\n").unwrap();
        assert!(body.is_empty());
        decode_all_splits(b"5 ;ext\r\nhello\r\n0\r\n\r\n").unwrap();
    }

    #[test]
    fn malformed_bodies() {
        for bad_body in [
            &b"5\nhello\r\n0\r\n\r\n"[..],
            b"5\r\nhello\n0\r\n\r\n",
            b"5\r\nhelloX\r\n0\r\n\r\n",
            b"\r\nhello\r\n0\r\n\r\n",
            b"5;\r\nhello\r\n0\r\n\r\n",
            b"5;a\rb\r\nhello\r\n0\r\n\r\n",
            b"5;a\0\r\nhello\r\n0\r\n\r\n",
            b"5;a=\"b\r\nhello\r\n0\r\n\r\n",
            b"1_0\r\nhello\r\n0\r\n\r\n",
            b"0x5\r\nhello\r\n0\r\n\r\n",
            b"-5\r\nhello\r\n0\r\n\r\n",
            b"+5\r\nhello\r\n0\r\n\r\n",
            b"00000000000000005\r\nhello\r\n0\r\n\r\n",
            b"ffffffffffffffff\r\n",
            b"5\r\nhello\r\n0\r\nX-T 1\r\n\r\n",
            b"5\r\nhello\r\n0\r\nX-T: 1\n\r\n",
            b"5\r\nhello\r\n0\r\n\rX",
        ] {
            let r = decode_steps(bad_body, bad_body.len());
            assert!(
                r.is_err(),
                "{:?} accepted",
                String::from_utf8_lossy(bad_body)
            );
        }
    }

    #[test]
    fn limits() {
        let mut d = ChunkedDecoder::new(10);
        assert!(d.decode(b"a\r\n").is_ok());
        let mut d = ChunkedDecoder::new(10);
        assert!(d.decode(b"b\r\n").unwrap_err().too_large);
        let ext_at = format!(
            "1;{}\r\nx\r\n0\r\n\r\n",
            "a".repeat(CHUNK_EXT_BYTES_MAX - 1)
        );
        assert!(decode_steps(ext_at.as_bytes(), 4096).is_ok());
        let ext_over = format!("1;{}\r\nx\r\n0\r\n\r\n", "a".repeat(CHUNK_EXT_BYTES_MAX));
        assert!(decode_steps(ext_over.as_bytes(), 4096).is_err());
        let trailer_at = format!("0\r\nX: {}\r\n\r\n", "v".repeat(TRAILER_BYTES_MAX - 3));
        assert!(decode_steps(trailer_at.as_bytes(), 4096).is_ok());
        let trailer_over = format!("0\r\nX: {}\r\n\r\n", "v".repeat(TRAILER_BYTES_MAX - 2));
        assert!(decode_steps(trailer_over.as_bytes(), 4096).is_err());
        let digits_at = format!(
            "{}1\r\nx\r\n0\r\n\r\n",
            "0".repeat(CHUNK_SIZE_DIGITS_MAX - 1)
        );
        assert!(decode_steps(digits_at.as_bytes(), 4096).is_ok());
        let digits_over = format!("{}1\r\nx\r\n0\r\n\r\n", "0".repeat(CHUNK_SIZE_DIGITS_MAX));
        assert!(decode_steps(digits_over.as_bytes(), 4096).is_err());
    }
}
