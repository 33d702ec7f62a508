//! Request heads: parsed with httparse into offsets into the shard's read
//! buffer, then checked for everything RFC 9112 and request smuggling
//! demand that httparse leaves to its caller.

use super::Span;
use super::token::{
    all_visible_except, contains_byte, eq_lower, is_host_char, is_token, list_elements, trim_ows,
};
use crate::limits::{
    METHOD_BYTES_MAX, REQUEST_BODY_BYTES_MAX, REQUEST_HEAD_BYTES_MAX, REQUEST_HEADERS_MAX,
    REQUEST_TARGET_BYTES_MAX, VIA_OWN_HOPS_MAX,
};
use smallvec::SmallVec;

/// The pseudonym Switchyard writes in `Via` (RFC 9110 §7.6.3) and counts to
/// detect proxy loops.
pub const VIA_PSEUDONYM: &[u8] = b"switchyard";

/// What a header is to the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderKind {
    Host,
    ContentLength,
    TransferEncoding,
    Connection,
    /// Hop-by-hop by definition (RFC 9110 §7.6.1): Keep-Alive,
    /// Proxy-Connection, TE, Trailer, Upgrade.
    HopByHop,
    /// Named in this request's `Connection` header: hop-by-hop too.
    ConnectionNamed,
    Expect,
    Via,
    /// `l5d-dtab`: a per-request routing override.
    L5dDtab,
    /// `l5d-ctx-dtab`: the override carried from an earlier hop.
    L5dCtxDtab,
    /// Any other `l5d-ctx-*` context header.
    L5dCtx,
    /// Any other `l5d-*` header (`l5d-dst-*`, `l5d-reqid`, `l5d-sample`...).
    L5d,
    /// Finagle's `Dtab-Local`, which linkerd neither applies nor strips.
    DtabLocal,
    /// `X-Forwarded-*` and `Forwarded`: client claims an edge must replace.
    Forwarded,
    Other,
}

/// One header line: offsets of its name and (OWS-trimmed) value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub name: Span,
    pub value: Span,
    pub kind: HeaderKind,
}

/// How the request body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BodyFraming {
    #[default]
    None,
    Length(u64),
    Chunked,
}

/// A parsed, validated request head: offsets into the buffer it came from.
#[derive(Debug, Clone, Default)]
pub struct RequestHead {
    /// Bytes of the head, blank line included; the body starts here.
    pub head_len: usize,
    pub method: Span,
    /// The target as sent.
    pub target: Span,
    /// The origin-form path and query to forward: the target itself, or the
    /// part after the authority of an absolute-form target (empty means `/`).
    pub path: Span,
    /// The authority of an absolute-form target (`GET http://world/ ...`).
    pub authority: Option<Span>,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor: u8,
    pub headers: SmallVec<[Header; 16]>,
    pub framing: BodyFraming,
    /// Whether the client connection may serve another request after this.
    pub keep_alive: bool,
    pub expect_continue: bool,
    /// The effective host: the absolute-form authority, else the Host value.
    pub host: Option<Span>,
}

impl RequestHead {
    /// The first header of `kind`.
    pub fn find(&self, kind: HeaderKind) -> Option<&Header> {
        self.headers.iter().find(|h| h.kind == kind)
    }

    /// Whether the method is HEAD (its response has no body).
    pub fn is_head(&self, buf: &[u8]) -> bool {
        self.method.get(buf) == b"HEAD"
    }
}

/// Why a request head is refused. The proxy maps each kind to a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadErrorKind {
    /// 400: malformed or ambiguous.
    Malformed,
    /// 431: the head or a header is too large, or there are too many.
    HeadTooLarge,
    /// 414.
    UriTooLong,
    /// 413: the declared body is over the limit.
    BodyTooLarge,
    /// 501 (Not Implemented): a method or transfer coding the proxy does
    /// not support (CONNECT, codings other than chunked, absurd methods).
    Unsupported,
    /// 505.
    VersionNotSupported,
    /// 417: an expectation other than 100-continue.
    ExpectationFailed,
}

/// A refused head: the kind and a short reason (sent as `l5d-err`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadError {
    pub kind: HeadErrorKind,
    pub reason: &'static str,
}

fn err(kind: HeadErrorKind, reason: &'static str) -> HeadError {
    HeadError { kind, reason }
}

fn bad(reason: &'static str) -> HeadError {
    err(HeadErrorKind::Malformed, reason)
}

/// Limits a listener applies; the defaults are in [`crate::limits`].
#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    pub head_bytes_max: usize,
    pub target_bytes_max: usize,
    pub body_bytes_max: u64,
}

impl Default for RequestLimits {
    fn default() -> Self {
        RequestLimits {
            head_bytes_max: REQUEST_HEAD_BYTES_MAX,
            target_bytes_max: REQUEST_TARGET_BYTES_MAX,
            body_bytes_max: REQUEST_BODY_BYTES_MAX,
        }
    }
}

/// Finds the end of a head (`CRLF CRLF`), refusing a bare LF anywhere before
/// it and a bare CR where the head's end would be (RFC 9112 §2.2 lets a
/// recipient accept them; a proxy that does disagrees with strict upstreams
/// about where lines end). A bare CR inside a line is refused by httparse
/// once the head is complete; until then the head waits like any other.
/// `scanned` carries progress between calls so a head that arrives in many
/// reads is scanned once.
pub fn find_head_end(buf: &[u8], scanned: &mut usize) -> Result<Option<usize>, HeadError> {
    // Jump from LF to LF (SIMD via memchr), one stop per line. Every LF
    // must follow a CR. A CR anywhere else (not before an LF) is refused by
    // httparse, which requires an LF after every CR in the request line and
    // in header lines; a bare CR never ends a head here, so it always
    // reaches httparse.
    let start = *scanned;
    for i in memchr::memchr_iter(b'\n', &buf[start..]).map(|i| i + start) {
        if i == 0 || buf[i - 1] != b'\r' {
            return Err(bad("bare LF in head"));
        }
        if i >= 2 && buf[i - 2] == b'\r' {
            // CR CR LF: where a head's last line would be, a bare CR must
            // not leave the head waiting for an end it can never have.
            return Err(bad("bare CR in head"));
        }
        if i >= 3 && &buf[i - 3..i] == b"\r\n\r" {
            *scanned = i + 1;
            return Ok(Some(i + 1));
        }
    }
    // Re-examine the last bytes next time: a CR may be waiting for its LF.
    *scanned = buf.len().saturating_sub(3);
    Ok(None)
}

/// Parses and validates a request head at the start of `buf`. `Ok(None)`:
/// need more bytes.
pub fn parse_request(
    buf: &[u8],
    scanned: &mut usize,
    limits: &RequestLimits,
) -> Result<Option<RequestHead>, HeadError> {
    let mut head = RequestHead::default();
    Ok(parse_request_into(buf, scanned, limits, &mut head)?.then_some(head))
}

/// [`parse_request`] into a head the caller keeps: a connection parses
/// every request into the same one, so the head (with its inline header
/// array) is not moved through the callers on each request. `Ok(false)`:
/// need more bytes. `out` is only meaningful after `Ok(true)`.
pub fn parse_request_into(
    buf: &[u8],
    scanned: &mut usize,
    limits: &RequestLimits,
    out: &mut RequestHead,
) -> Result<bool, HeadError> {
    // Most heads arrive whole in one read. httparse then finds the end
    // itself, and checking that each line it parsed ends in CR LF costs a
    // few instructions per line where scanning the head for bare LFs first
    // costs a few per byte. Whatever this path does not accept outright
    // (a partial head, an error, a bare LF, leading empty lines) goes the
    // slow way, which decides exactly as if this path did not exist.
    if *scanned == 0 {
        let mut raw = [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() };
            REQUEST_HEADERS_MAX];
        let mut req = httparse::Request::new(&mut []);
        if let Ok(httparse::Status::Complete(end)) = req.parse_with_uninit_headers(buf, &mut raw)
            && end <= limits.head_bytes_max
            && request_line_ends_in_crlf(buf, end, &req)
        {
            // Each header line's end is checked as the line is, in one pass.
            // A refusal stands only if every line ends in CR LF: a head with
            // a bare LF is decided by the slow path, whatever else it holds.
            match check_head(buf, end, &req, limits, out) {
                Ok(true) => return Ok(true),
                Ok(false) => {}
                Err(e) if header_lines_end_in_crlf(buf, &req) => return Err(e),
                Err(_) => {}
            }
        }
    }
    parse_request_slow(buf, scanned, limits, out)
}

/// Whether a head httparse accepted whole starts with its request line and
/// that line and the head end in CR LF. httparse takes a bare LF as a line
/// end and skips empty lines before the request line; those heads are left
/// to [`parse_request_slow`]. Every LF in an accepted head ends a line
/// (values, names and targets hold none), so checking each line's end covers
/// them all: the header lines' ends are checked by [`check_head`] as it
/// reads them (see [`line_ends_in_crlf`]).
fn request_line_ends_in_crlf(buf: &[u8], end: usize, req: &httparse::Request<'_, '_>) -> bool {
    let (Some(method), Some(target)) = (req.method, req.path) else {
        return false;
    };
    if !std::ptr::eq(method.as_ptr(), buf.as_ptr()) {
        return false;
    }
    // " HTTP/1.x" CR LF after the target.
    let t = Span::of(buf, target.as_bytes()).end as usize;
    match buf.get(t..t + 11) {
        Some(
            [
                b' ',
                b'H',
                b'T',
                b'T',
                b'P',
                b'/',
                b'1',
                b'.',
                _,
                b'\r',
                b'\n',
            ],
        ) => {}
        _ => return false,
    }
    end >= 2 && buf[end - 2..end] == *b"\r\n"
}

/// Whether the header line whose value ends at `value_end` ends in CR LF.
/// httparse trims trailing SP/HTAB off the value; the line ends after them.
#[inline]
fn line_ends_in_crlf(buf: &[u8], value_end: usize) -> bool {
    let mut p = value_end;
    while matches!(buf.get(p), Some(b' ' | b'\t')) {
        p += 1;
    }
    buf.get(p..p + 2) == Some(b"\r\n")
}

/// Every header line's end, for a head [`check_head`] refused: whether the
/// refusal stands or the slow path decides.
#[cold]
fn header_lines_end_in_crlf(buf: &[u8], req: &httparse::Request<'_, '_>) -> bool {
    req.headers
        .iter()
        .all(|h| line_ends_in_crlf(buf, Span::of(buf, h.value).end as usize))
}

/// [`parse_request_into`] for heads that arrive in pieces or need a closer
/// look: the head's end is found first, refusing bare LFs, then parsed.
#[cold]
#[inline(never)]
fn parse_request_slow(
    buf: &[u8],
    scanned: &mut usize,
    limits: &RequestLimits,
    out: &mut RequestHead,
) -> Result<bool, HeadError> {
    let end = match find_head_end(buf, scanned)? {
        Some(end) if end > limits.head_bytes_max => {
            return Err(err(HeadErrorKind::HeadTooLarge, "request head too large"));
        }
        Some(end) => end,
        None if buf.len() > limits.head_bytes_max => {
            return Err(err(HeadErrorKind::HeadTooLarge, "request head too large"));
        }
        None => {
            // A request line longer than the target limit fails early, as a
            // 414 rather than a 431.
            if !buf.contains(&b'\n') && buf.len() > limits.target_bytes_max + METHOD_BYTES_MAX + 16
            {
                return Err(err(HeadErrorKind::UriTooLong, "request target too long"));
            }
            return Ok(false);
        }
    };
    let head = &buf[..end];
    // Left uninitialised: httparse writes each header before reading it, so
    // no per-request memset of the whole array.
    let mut raw =
        [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; REQUEST_HEADERS_MAX];
    let mut req = httparse::Request::new(&mut []);
    match req.parse_with_uninit_headers(head, &mut raw) {
        Ok(httparse::Status::Complete(n)) if n == end => {}
        Ok(_) => return Err(bad("malformed request head")),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(err(HeadErrorKind::HeadTooLarge, "too many headers"));
        }
        Err(httparse::Error::Version) => {
            return Err(err(
                HeadErrorKind::VersionNotSupported,
                "HTTP version not supported",
            ));
        }
        Err(httparse::Error::Token) => {
            // A method longer than any real one gets 501, as an unknown method.
            let first = head.iter().position(|&b| b == b' ').unwrap_or(head.len());
            if first > METHOD_BYTES_MAX {
                return Err(err(HeadErrorKind::Unsupported, "method not supported"));
            }
            return Err(bad("malformed request line"));
        }
        Err(_) => return Err(bad("malformed request head")),
    }
    // Every line here ends in CR LF (`find_head_end` refused bare LFs).
    if check_head(buf, end, &req, limits, out)? {
        Ok(true)
    } else {
        Err(bad("malformed request head"))
    }
}

/// Everything RFC 9112 and smuggling defences ask of a head httparse
/// parsed (`end` bytes long), written into `out`. `Ok(false)`: a header line
/// does not end in CR LF (the head is for the slow path to decide).
fn check_head(
    buf: &[u8],
    end: usize,
    req: &httparse::Request<'_, '_>,
    limits: &RequestLimits,
    out: &mut RequestHead,
) -> Result<bool, HeadError> {
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(bad("malformed request line"));
    };
    let method_b = method.as_bytes();
    if method_b.len() > METHOD_BYTES_MAX {
        return Err(err(HeadErrorKind::Unsupported, "method not supported"));
    }
    if !is_token(method_b) {
        return Err(bad("invalid method"));
    }
    if method_b == b"CONNECT" {
        return Err(err(HeadErrorKind::Unsupported, "CONNECT is not supported"));
    }
    let target_b = target.as_bytes();
    if target_b.len() > limits.target_bytes_max {
        return Err(err(HeadErrorKind::UriTooLong, "request target too long"));
    }
    // RFC 9112 §3.2: targets are visible ASCII; a fragment is never sent.
    if !all_visible_except(target_b, b'#') {
        return Err(bad("invalid request target"));
    }
    let target_span = Span::of(buf, target_b);
    let (path, authority) = if target_b.first() == Some(&b'/') {
        (target_span, None)
    } else if target_b == b"*" {
        if method_b != b"OPTIONS" {
            return Err(bad("asterisk-form is only for OPTIONS"));
        }
        (target_span, None)
    } else if target_b.len() > 7 && target_b[..7].eq_ignore_ascii_case(b"http://") {
        // Absolute form (RFC 9112 §3.2.2), what http_proxy clients send.
        let rest = &target_b[7..];
        let auth_len = rest
            .iter()
            .position(|&b| b == b'/' || b == b'?')
            .unwrap_or(rest.len());
        let auth = &rest[..auth_len];
        if auth.is_empty() || !is_host(auth) {
            return Err(bad("invalid authority in request target"));
        }
        let path = &rest[auth_len..];
        if path.first() == Some(&b'?') {
            return Err(bad("invalid request target"));
        }
        (Span::of(buf, path), Some(Span::of(buf, auth)))
    } else {
        return Err(bad("invalid request target"));
    };

    let headers = &mut out.headers;
    headers.clear();
    let mut host: Option<Span> = None;
    let mut host_count = 0usize;
    let mut content_length: Option<u64> = None;
    let mut chunked = false;
    let mut te_seen = false;
    let mut close = false;
    let mut keep_alive_token = false;
    let mut expect_continue = false;
    let mut own_via = 0usize;
    let mut connection_values: SmallVec<[Span; 2]> = SmallVec::new();
    // Whether Connection names any header (beyond close and keep-alive).
    let mut connection_names_headers = false;
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        let value = trim_ows(h.value);
        let value_span = Span::of(buf, value);
        // Past the trimmed value only SP/HTAB and the line end follow.
        if !line_ends_in_crlf(buf, value_span.end as usize) {
            return Ok(false);
        }
        let kind = classify(name)?;
        match kind {
            HeaderKind::Host => {
                if host_count > 0 {
                    return Err(bad("multiple Host headers"));
                }
                host_count += 1;
                if !value.is_empty() && !is_host(value) {
                    return Err(bad("invalid Host header"));
                }
                host = Some(value_span);
            }
            HeaderKind::ContentLength => {
                if content_length.is_some() {
                    return Err(bad("multiple Content-Length headers"));
                }
                content_length = Some(parse_content_length(value)?);
            }
            HeaderKind::TransferEncoding => {
                if minor == 0 {
                    return Err(bad("Transfer-Encoding in an HTTP/1.0 request"));
                }
                for coding in list_elements(value) {
                    if coding.is_empty() {
                        return Err(bad("empty transfer coding"));
                    }
                    if chunked {
                        // Anything after chunked (even chunked again) is
                        // not a valid request body framing (§6.3 rule 4).
                        return Err(bad("chunked is not the final transfer coding"));
                    }
                    if coding.eq_ignore_ascii_case(b"chunked") {
                        chunked = true;
                    } else if is_token(coding) {
                        return Err(err(
                            HeadErrorKind::Unsupported,
                            "transfer coding not supported",
                        ));
                    } else {
                        return Err(bad("invalid transfer coding"));
                    }
                }
                te_seen = true;
            }
            // Nearly every Connection value is a lone `keep-alive`.
            HeaderKind::Connection if eq_lower(value, b"keep-alive") => keep_alive_token = true,
            HeaderKind::Connection => {
                for t in list_elements(value) {
                    if t.is_empty() {
                        continue;
                    }
                    if !is_token(t) {
                        return Err(bad("invalid Connection header"));
                    }
                    if t.eq_ignore_ascii_case(b"close") {
                        close = true;
                    } else if t.eq_ignore_ascii_case(b"keep-alive") {
                        keep_alive_token = true;
                    } else if t.eq_ignore_ascii_case(b"upgrade") {
                        // Names `Upgrade`, which is hop-by-hop anyway: the
                        // Upgrade header itself decides (below).
                    } else {
                        connection_names_headers = true;
                    }
                }
                connection_values.push(value_span);
            }
            // An offer of h2c alone (what `curl --http2` sends to an http://
            // URL) is one a server may ignore (RFC 9110 §7.8): it is dropped,
            // with HTTP2-Settings, and the request goes on as HTTP/1.1, as
            // the client then expects. Forwarded, a backend that took it up
            // would hand the client a raw HTTP/2 connection behind every
            // proxy rule ("h2c smuggling"). Any other protocol (a WebSocket
            // handshake) needs a tunnel, which this proxy does not open: 400.
            HeaderKind::HopByHop
                if name.eq_ignore_ascii_case(b"upgrade") && !offers_h2c_only(value) =>
            {
                return Err(bad("protocol upgrade is not supported"));
            }
            HeaderKind::Expect => {
                if value.eq_ignore_ascii_case(b"100-continue") {
                    expect_continue = true;
                } else {
                    return Err(err(
                        HeadErrorKind::ExpectationFailed,
                        "unsupported expectation",
                    ));
                }
            }
            HeaderKind::Via => {
                for entry in list_elements(value) {
                    let mut parts = entry
                        .split(|&b| b == b' ' || b == b'\t')
                        .filter(|p| !p.is_empty());
                    let _protocol = parts.next();
                    if parts
                        .next()
                        .is_some_and(|by| by.eq_ignore_ascii_case(VIA_PSEUDONYM))
                    {
                        own_via += 1;
                    }
                }
                if own_via > VIA_OWN_HOPS_MAX {
                    return Err(bad("proxy loop detected (Via)"));
                }
            }
            _ => {}
        }
        headers.push(Header {
            name: Span::of(buf, name),
            value: value_span,
            kind,
        });
    }
    if te_seen && !chunked {
        return Err(bad("invalid Transfer-Encoding"));
    }
    if te_seen && content_length.is_some() {
        // RFC 9112 §6.1: a server MAY reject; a proxy that forwards both
        // is how CL.TE and TE.CL desyncs start.
        return Err(bad("both Content-Length and Transfer-Encoding"));
    }
    if minor == 1 && host.is_none() && authority.is_none() {
        return Err(bad("missing Host header"));
    }
    // Headers named in Connection are hop-by-hop (RFC 9110 §7.6.1). Framing
    // and Host are ours to write and never stripped by a client's say-so.
    if connection_names_headers {
        for h in headers.iter_mut() {
            if matches!(
                h.kind,
                HeaderKind::Other | HeaderKind::Forwarded | HeaderKind::Via
            ) {
                let name = h.name.get(buf);
                if connection_values
                    .iter()
                    .any(|v| list_elements(v.get(buf)).any(|t| t.eq_ignore_ascii_case(name)))
                {
                    h.kind = HeaderKind::ConnectionNamed;
                }
            }
        }
    }
    let framing = if chunked {
        BodyFraming::Chunked
    } else {
        match content_length {
            Some(n) if n > limits.body_bytes_max => {
                return Err(err(HeadErrorKind::BodyTooLarge, "request body too large"));
            }
            Some(0) | None => BodyFraming::None,
            Some(n) => BodyFraming::Length(n),
        }
    };
    let keep_alive = if minor == 0 {
        keep_alive_token && !close
    } else {
        !close
    };
    out.head_len = end;
    out.method = Span::of(buf, method_b);
    out.target = target_span;
    out.path = path;
    out.authority = authority;
    out.minor = minor;
    out.framing = framing;
    out.keep_alive = keep_alive;
    out.expect_continue = expect_continue;
    out.host = authority.or(host);
    Ok(true)
}

/// Whether an `Upgrade` value lists `h2c` and nothing else.
fn offers_h2c_only(value: &[u8]) -> bool {
    let mut any = false;
    for p in list_elements(value) {
        if p.is_empty() {
            continue;
        }
        if !p.eq_ignore_ascii_case(b"h2c") {
            return false;
        }
        any = true;
    }
    any
}

/// `Content-Length = 1*DIGIT` (RFC 9110 §8.6), refusing lists, signs, and
/// leading zeros (which some parsers read as octal).
pub fn parse_content_length(v: &[u8]) -> Result<u64, HeadError> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return Err(bad("invalid Content-Length"));
    }
    if v.len() > 1 && v[0] == b'0' {
        return Err(bad("Content-Length with leading zeros"));
    }
    v.iter()
        .try_fold(0u64, |acc, &d| {
            acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })
        .ok_or(bad("invalid Content-Length"))
}

/// Host characters: a reg-name, an IPv4 address or a bracketed IPv6 literal,
/// with an optional port.
fn is_host(v: &[u8]) -> bool {
    v.iter().all(|&b| is_host_char(b))
}

/// Classifies a header name. A name that differs from a sensitive one only by
/// `_` for `-` (`Content_Length`, `l5d_dtab`) is refused: some servers fold
/// underscores into dashes, so forwarding it would let a client smuggle the
/// header past our checks.
fn classify(name: &[u8]) -> Result<HeaderKind, HeadError> {
    let kind = classify_exact(name);
    // Folding `_` into `-` keeps a name's first letter and length, so only
    // a name that shares both with one of ours that has a `-` (or starts
    // like one of our prefixes) can fold into ours: most names skip the
    // search for `_`.
    if kind == HeaderKind::Other
        && matches!(
            (first_lower(name), name.len()),
            (Some(b'c' | b'h'), 14)
                | (Some(b't'), 17)
                | (Some(b'k' | b'd'), 10)
                | (Some(b'p'), 16)
                | (Some(b'l' | b'x'), _)
        )
        && contains_byte(name, b'_')
        && classify_folded(name) != HeaderKind::Other
    {
        return Err(bad(
            "underscore in a header name that controls framing or routing",
        ));
    }
    Ok(kind)
}

#[inline(always)]
fn first_lower(name: &[u8]) -> Option<u8> {
    name.first().map(|&b| b | 0x20)
}

/// The one whole name of ours with `name`'s first letter (ASCII case
/// aside) and length, if any: no two of ours share both, and folding `_`
/// into `-` keeps both.
#[inline(always)]
fn own_name(name: &[u8]) -> Option<(&'static [u8], HeaderKind)> {
    use HeaderKind as K;
    Some(match (first_lower(name)?, name.len()) {
        (b'h', 4) => (b"host", K::Host),
        // Only ever meaningful beside an h2c upgrade offer, which is dropped.
        (b'h', 14) => (b"http2-settings", K::HopByHop),
        (b'v', 3) => (b"via", K::Via),
        (b'e', 6) => (b"expect", K::Expect),
        (b'c', 10) => (b"connection", K::Connection),
        (b'c', 14) => (b"content-length", K::ContentLength),
        (b't', 17) => (b"transfer-encoding", K::TransferEncoding),
        (b't', 2) => (b"te", K::HopByHop),
        (b't', 7) => (b"trailer", K::HopByHop),
        (b'k', 10) => (b"keep-alive", K::HopByHop),
        (b'p', 16) => (b"proxy-connection", K::HopByHop),
        (b'u', 7) => (b"upgrade", K::HopByHop),
        (b'l', 8) => (b"l5d-dtab", K::L5dDtab),
        (b'l', 12) => (b"l5d-ctx-dtab", K::L5dCtxDtab),
        (b'd', 10) => (b"dtab-local", K::DtabLocal),
        (b'f', 9) => (b"forwarded", K::Forwarded),
        _ => return None,
    })
}

/// What a header name is to us, ASCII case aside. Names are tokens
/// (httparse checked), and on token bytes `| 0x20` lowercases exactly: it
/// maps only `A-Z` onto the `a-z0-9-` our names use (the other bytes it
/// would fold, such as CR, are not token bytes). So a name is compared
/// eight bytes at a time with one OR and one compare each (see
/// `eq_lower`), and most headers (Accept, Cookie, User-Agent...) are
/// decided by their first letter and length without a comparison.
#[inline(always)]
pub(crate) fn classify_exact(name: &[u8]) -> HeaderKind {
    if let Some((own, kind)) = own_name(name)
        && eq_lower(name, own)
    {
        return kind;
    }
    let starts = |p: &[u8]| name.len() >= p.len() && eq_lower(&name[..p.len()], p);
    match first_lower(name) {
        Some(b'l') if starts(b"l5d-ctx-") => HeaderKind::L5dCtx,
        Some(b'l') if starts(b"l5d-") => HeaderKind::L5d,
        Some(b'x') if starts(b"x-forwarded-") => HeaderKind::Forwarded,
        _ => HeaderKind::Other,
    }
}

/// [`classify_exact`] of `name` with each `_` read as `-` (how servers that
/// fold CGI-style names would read it). Without allocating: only the first
/// 32 bytes are folded and read, which decide as the whole name would. Our
/// whole names are at most 17 bytes long, so a name longer than that can
/// only be ours by a prefix (at most 12 bytes), and a cut at 32 keeps it
/// longer than 17.
#[cold]
pub(crate) fn classify_folded(name: &[u8]) -> HeaderKind {
    let mut folded = [0u8; 32];
    let n = name.len().min(folded.len());
    for (f, &b) in folded.iter_mut().zip(&name[..n]) {
        *f = if b == b'_' { b'-' } else { b };
    }
    classify_exact(&folded[..n])
}

#[cfg(test)]
mod tests;
