//! HTTP/1.1 (RFC 9110, RFC 9112), sans IO.
//!
//! Owns request and response head parsing (httparse, then our own checks of
//! what httparse accepts leniently), message framing, the strict chunked
//! decoder, and head rewriting. It takes bytes and returns "need more", a
//! parsed head of offsets into the caller's buffer, or a typed error; it
//! never touches a socket or a runtime, and never imports `proxy`,
//! `runtime`, `discovery` or `admin`.

pub mod chunked;
pub mod fuzzing;
pub mod request;
pub mod response;
pub mod token;

pub use chunked::{ChunkedDecoder, ChunkedError, ChunkedEvent};
pub use request::{BodyFraming, HeadError, HeaderKind, RequestHead, parse_request};
pub use response::{ResponseFraming, ResponseHead, parse_response};

/// A byte range in the buffer a head was parsed from. `u32` keeps heads
/// compact; heads are bounded far below 4 GiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    /// The offsets of `part` within `buf`. httparse returns sub-slices of
    /// its input, except a few static strings (an empty reason phrase when
    /// the real one is not UTF-8): anything outside `buf` becomes an empty
    /// span rather than arithmetic on unrelated pointers.
    pub(crate) fn of(buf: &[u8], part: &[u8]) -> Span {
        let base = buf.as_ptr() as usize;
        let at = part.as_ptr() as usize;
        match at.checked_sub(base) {
            Some(start) if start + part.len() <= buf.len() => Span {
                start: start as u32,
                end: (start + part.len()) as u32,
            },
            _ => Span::default(),
        }
    }

    #[inline]
    pub fn get<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.start as usize..self.end as usize]
    }

    pub fn len(&self) -> usize {
        (self.end - self.start) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }
}
