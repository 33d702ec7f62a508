//! Response heads from upstreams: parsed into offsets, framing decided in one
//! place (RFC 9112 §6.3), hop-by-hop headers marked for removal.

use super::Span;
use super::request::{HeaderKind, classify_exact, parse_content_length};
use super::token::{ConnectionTokens, list_contains, list_elements, trim_ows};
use crate::limits::{RESPONSE_HEAD_BYTES_MAX, RESPONSE_HEADERS_MAX};
use smallvec::SmallVec;

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResponseFraming {
    /// No body: HEAD, 1xx, 204, 304, or `Content-Length: 0`.
    #[default]
    None,
    Length(u64),
    Chunked,
    /// Until the upstream closes (no length, no chunked).
    CloseDelimited,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseHeader {
    pub name: Span,
    pub value: Span,
    pub kind: HeaderKind,
}

/// A parsed response head.
#[derive(Debug, Clone, Default)]
pub struct ResponseHead {
    pub head_len: usize,
    pub status: u16,
    pub reason: Span,
    pub minor: u8,
    pub headers: SmallVec<[ResponseHeader; 16]>,
    pub framing: ResponseFraming,
    /// Whether the upstream connection can carry another request after this
    /// response (its own keep-alive say, and framing we trust).
    pub reusable: bool,
}

impl ResponseHead {
    /// 1xx responses are interim: a final response follows.
    pub fn is_interim(&self) -> bool {
        (100..200).contains(&self.status)
    }
}

/// Why an upstream's response is refused (the client gets 502).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseError(pub &'static str);

/// Parses a response head to a request whose method was HEAD or not.
/// `Ok(None)`: need more bytes.
pub fn parse_response(
    buf: &[u8],
    request_was_head: bool,
) -> Result<Option<ResponseHead>, ResponseError> {
    let mut head = ResponseHead::default();
    Ok(parse_response_into(buf, request_was_head, &mut head)?.then_some(head))
}

/// [`parse_response`] into a head the caller keeps (see
/// [`crate::http1::request::parse_request_into`]). `Ok(false)`: need more
/// bytes. `out` is only meaningful after `Ok(true)`.
pub fn parse_response_into(
    buf: &[u8],
    request_was_head: bool,
    out: &mut ResponseHead,
) -> Result<bool, ResponseError> {
    // Uninitialised slots: zeroing 128 headers (4 KiB) per parse cost more
    // than parsing a typical response head.
    let mut raw =
        [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; RESPONSE_HEADERS_MAX];
    let mut resp = httparse::Response::new(&mut []);
    let head_len = match httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, buf, &mut raw)
    {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() > RESPONSE_HEAD_BYTES_MAX {
                return Err(ResponseError("upstream response head too large"));
            }
            return Ok(false);
        }
        Err(_) => return Err(ResponseError("malformed upstream response head")),
    };
    if head_len > RESPONSE_HEAD_BYTES_MAX {
        return Err(ResponseError("upstream response head too large"));
    }
    let (Some(status), Some(minor)) = (resp.code, resp.version) else {
        return Err(ResponseError("malformed upstream status line"));
    };
    // The reason phrase as sent (httparse hides one that is not UTF-8):
    // whatever follows "HTTP/1.x NNN " on the status line.
    // The line ends at its LF, with or without a CR before it: searching
    // for the CR instead would run into the next line after a bare LF.
    let nl = memchr::memchr(b'\n', &buf[..head_len]).unwrap_or(0);
    let line_end = if nl > 0 && buf[nl - 1] == b'\r' {
        nl - 1
    } else {
        nl
    };
    let reason = if line_end > 13 {
        Span {
            start: 13,
            end: line_end as u32,
        }
    } else {
        Span::default()
    };
    let headers = &mut out.headers;
    headers.clear();
    let mut content_length: Option<u64> = None;
    let mut te: Option<Span> = None;
    let mut close = false;
    let mut conn = ConnectionTokens::default();
    let mut connection: SmallVec<[Span; 1]> = SmallVec::new();
    for h in resp.headers.iter() {
        let name = h.name.as_bytes();
        let value = trim_ows(h.value);
        let kind = classify_exact(name);
        match kind {
            HeaderKind::ContentLength => {
                let n = parse_content_length(value)
                    .map_err(|_| ResponseError("invalid upstream Content-Length"))?;
                if content_length.is_some_and(|m| m != n) {
                    return Err(ResponseError("conflicting upstream Content-Length"));
                }
                content_length = Some(n);
            }
            HeaderKind::TransferEncoding => {
                if te.is_some() {
                    // Two lines: treat the codings as one list; only a final
                    // chunked frames the body.
                    close = true;
                }
                te = Some(Span::of(buf, value));
            }
            HeaderKind::Connection => {
                conn = conn.merge(ConnectionTokens::read(value));
                connection.push(Span::of(buf, value));
            }
            _ => {}
        }
        headers.push(ResponseHeader {
            name: Span::of(buf, name),
            value: Span::of(buf, value),
            kind,
        });
    }
    // Headers named by Connection are hop-by-hop too; the usual values
    // (`keep-alive`, `close`) name none worth a scan of every header.
    close |= conn.close;
    let keep_alive_token = conn.keep_alive;
    if conn.names_headers {
        for h in headers.iter_mut() {
            if h.kind == HeaderKind::Other {
                let name = h.name.get(buf);
                if connection.iter().any(|v| list_contains(v.get(buf), name)) {
                    h.kind = HeaderKind::ConnectionNamed;
                }
            }
        }
    }
    let mut reusable = if minor == 0 {
        keep_alive_token && !close
    } else {
        !close
    };
    let bodiless =
        request_was_head || (100..200).contains(&status) || status == 204 || status == 304;
    let framing = if bodiless {
        ResponseFraming::None
    } else if let Some(te) = te {
        let last = list_elements(te.get(buf)).filter(|c| !c.is_empty()).last();
        if content_length.is_some() {
            // RFC 9112 §6.3 rule 3: Transfer-Encoding wins, and the
            // connection is not to be trusted again.
            reusable = false;
        }
        if minor == 1 && last.is_some_and(|c| c.eq_ignore_ascii_case(b"chunked")) {
            ResponseFraming::Chunked
        } else {
            reusable = false;
            ResponseFraming::CloseDelimited
        }
    } else {
        match content_length {
            Some(0) => ResponseFraming::None,
            Some(n) => ResponseFraming::Length(n),
            None => {
                reusable = false;
                ResponseFraming::CloseDelimited
            }
        }
    };
    out.head_len = head_len;
    out.status = status;
    out.reason = reason;
    out.minor = minor;
    out.framing = framing;
    out.reusable = reusable;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `raw`, checking first that every prefix of it asks for more
    /// (the head is only complete at its end).
    fn parse(raw: &str, head: bool) -> ResponseHead {
        let b = raw.as_bytes();
        let whole = parse_response(b, head).unwrap().unwrap();
        for split in 0..whole.head_len {
            assert!(
                matches!(parse_response(&b[..split], head), Ok(None)),
                "prefix of {split} bytes of {raw:?}"
            );
        }
        whole
    }

    #[test]
    fn framing() {
        assert_eq!(
            parse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", false).framing,
            ResponseFraming::Length(5)
        );
        assert_eq!(
            parse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true).framing,
            ResponseFraming::None
        );
        assert_eq!(
            parse("HTTP/1.1 204 No Content\r\n\r\n", false).framing,
            ResponseFraming::None
        );
        assert_eq!(
            parse(
                "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
                false
            )
            .framing,
            ResponseFraming::None
        );
        let r = parse("HTTP/1.1 200 OK\r\n\r\n", false);
        assert_eq!(r.framing, ResponseFraming::CloseDelimited);
        assert!(!r.reusable);
        let r = parse(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 30\r\n\r\n",
            false,
        );
        assert_eq!(r.framing, ResponseFraming::Chunked);
        assert!(!r.reusable, "CL with TE: never reuse");
        let r = parse("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", false);
        assert!(!r.reusable);
        let r = parse(
            "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n",
            false,
        );
        assert!(!r.reusable);
        assert!(
            parse_response(
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 10\r\n\r\n",
                false
            )
            .is_err()
        );
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", false).is_err());
        assert!(
            parse_response(b"HTTP/1.1 200 OK\r\nContent-Len", false)
                .unwrap()
                .is_none()
        );
    }
}
