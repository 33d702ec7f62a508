//! One error type for the data plane, and the one place that turns an error
//! into an HTTP response (linkerd 1's statuses, with `l5d-err`).

use crate::http1::request::{HeadError, HeadErrorKind};

/// Which side caused an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Upstream,
    Internal,
}

/// What went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request head was refused by the parser.
    Head(HeadErrorKind),
    /// A chunked request body was malformed.
    BadBody,
    /// The request head did not arrive within the header deadline.
    HeadTimeout,
    /// The request body stalled past the body idle timeout.
    BodyTimeout,
    /// A request body exceeded its limit.
    BodyTooLarge,
    /// No identifier named the request.
    Unidentified,
    /// An `l5d-dtab` / `l5d-ctx-dtab` header did not parse or was too big.
    BadDtab,
    /// The name bound to nothing (Neg, Fail or Empty) or to no endpoints.
    NoRoute,
    /// A namer failed, or the delegation looped or fanned out too far.
    BindFailed,
    /// A namer has not synced the name yet.
    BindPending,
    /// Connecting to the endpoint failed.
    ConnectFailed,
    ConnectTimeout,
    /// The upstream closed or reset the connection mid-exchange.
    UpstreamReset,
    /// The upstream's response could not be parsed or framed.
    BadResponse,
    ResponseTimeout,
    /// The shard is at its connection limit.
    Overloaded,
    /// An edge's override policy refused the request's `l5d-dtab`.
    OverrideRefused,
}

/// A data-plane error: what, which side, whether a retry is safe, and a
/// static context string (no allocation on the error path).
#[derive(Debug, Clone, Copy)]
pub struct ProxyError {
    pub kind: ErrorKind,
    pub side: Side,
    /// True when the request never reached an upstream.
    pub retryable: bool,
    pub context: &'static str,
}

impl ProxyError {
    pub fn new(kind: ErrorKind, side: Side, retryable: bool, context: &'static str) -> ProxyError {
        ProxyError {
            kind,
            side,
            retryable,
            context,
        }
    }

    pub fn client(kind: ErrorKind, context: &'static str) -> ProxyError {
        ProxyError::new(kind, Side::Client, true, context)
    }
}

impl From<HeadError> for ProxyError {
    fn from(e: HeadError) -> Self {
        ProxyError::client(ErrorKind::Head(e.kind), e.reason)
    }
}

/// The metric label of an error kind, an index into
/// [`crate::telemetry::FAILURE_KINDS`].
pub fn failure_index(kind: ErrorKind) -> usize {
    use ErrorKind::*;
    match kind {
        Head(
            HeadErrorKind::HeadTooLarge | HeadErrorKind::UriTooLong | HeadErrorKind::BodyTooLarge,
        )
        | BodyTooLarge => 2,
        Head(_) | BadBody => 0,
        HeadTimeout | BodyTimeout => 1,
        Unidentified => 3,
        BadDtab => 4,
        OverrideRefused => 5,
        NoRoute => 6,
        BindFailed => 7,
        BindPending => 8,
        ConnectFailed | ConnectTimeout => 9,
        UpstreamReset => 10,
        BadResponse => 11,
        ResponseTimeout => 12,
        Overloaded => 13,
    }
}

/// How an error is answered.
pub struct ErrorResponse {
    pub status: u16,
    pub reason: &'static str,
    /// Whether the client connection must close afterwards.
    pub close: bool,
}

/// The status for an error, as linkerd 1 answered: 400/408/413/414/431/501
/// for client faults, 502 when there is no route or the upstream failed,
/// 503 when overloaded or a name is still pending, 504 on a response timeout.
pub fn response_for(e: &ProxyError) -> ErrorResponse {
    use ErrorKind::*;
    let (status, reason, close) = match e.kind {
        Head(HeadErrorKind::Malformed) | BadBody => (400, "Bad Request", true),
        HeadTimeout | BodyTimeout => (408, "Request Timeout", true),
        Head(HeadErrorKind::HeadTooLarge) => (431, "Request Header Fields Too Large", true),
        Head(HeadErrorKind::UriTooLong) => (414, "URI Too Long", true),
        Head(HeadErrorKind::BodyTooLarge) | BodyTooLarge => (413, "Content Too Large", true),
        Head(HeadErrorKind::Unsupported) => (501, "Not Implemented", true),
        Head(HeadErrorKind::VersionNotSupported) => (505, "HTTP Version Not Supported", true),
        Head(HeadErrorKind::ExpectationFailed) => (417, "Expectation Failed", true),
        // The head was fine: the connection can carry the next request.
        Unidentified | BadDtab => (400, "Bad Request", false),
        OverrideRefused => (403, "Forbidden", false),
        NoRoute | BindFailed | ConnectFailed | UpstreamReset | BadResponse => {
            (502, "Bad Gateway", false)
        }
        ConnectTimeout => (502, "Bad Gateway", false),
        BindPending | Overloaded => (503, "Service Unavailable", false),
        ResponseTimeout => (504, "Gateway Timeout", false),
    };
    ErrorResponse {
        status,
        reason,
        close,
    }
}

/// Writes a complete error response into `out`: status, `l5d-err` with the
/// URL-encoded reason, `l5d-retryable` when the request never reached an
/// upstream, and a short text body.
pub fn write_error_response(e: &ProxyError, close: bool, out: &mut Vec<u8>) {
    let r = response_for(e);
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    push_status(out, r.status);
    out.push(b' ');
    out.extend_from_slice(r.reason.as_bytes());
    out.extend_from_slice(b"\r\nl5d-err: ");
    url_encode(e.context.as_bytes(), out);
    if e.retryable {
        out.extend_from_slice(b"\r\nl5d-retryable: true");
    }
    if close || r.close {
        out.extend_from_slice(b"\r\nConnection: close");
    }
    out.extend_from_slice(b"\r\nContent-Type: text/plain\r\nContent-Length: ");
    push_u64(out, e.context.len() as u64 + 1);
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(e.context.as_bytes());
    out.push(b'\n');
}

/// Percent-encodes everything but unreserved characters (RFC 3986 §2.3),
/// as linkerd did for `l5d-err`.
pub fn url_encode(s: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in s {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
        }
    }
}

/// Appends a decimal number without allocating.
/// A status code's three digits (the parsers accept only 100-999).
pub fn push_status(out: &mut Vec<u8>, s: u16) {
    let s = s.min(999);
    out.extend_from_slice(&[
        b'0' + (s / 100) as u8,
        b'0' + (s / 10 % 10) as u8,
        b'0' + (s % 10) as u8,
    ]);
}

pub fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_response_shape() {
        let mut out = Vec::new();
        let e = ProxyError::new(
            ErrorKind::NoRoute,
            Side::Internal,
            true,
            "no route to /svc/a b",
        );
        write_error_response(&e, false, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 502 Bad Gateway\r\n"), "{text}");
        assert!(
            text.contains("\r\nl5d-err: no%20route%20to%20%2Fsvc%2Fa%20b\r\n"),
            "{text}"
        );
        assert!(text.contains("\r\nl5d-retryable: true\r\n"));
        assert!(!text.contains("Connection: close"));
        assert!(text.ends_with("\r\n\r\nno route to /svc/a b\n"));
        let mut n = Vec::new();
        push_u64(&mut n, 0);
        push_u64(&mut n, 18446744073709551615);
        assert_eq!(n, b"018446744073709551615");
    }
}
