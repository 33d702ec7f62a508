//! Head rewriting: the request head an upstream receives and the response
//! head a client receives. Names and values are copied byte-exact, in
//! order, except the headers the proxy owns: hop-by-hop headers and those
//! named in `Connection` are removed (RFC 9110 §7.6.1), framing is written
//! from what the proxy will actually send, `Via` gets our entry, and the
//! `l5d-*` headers follow the listener's trust mode.

use super::error::{push_status, push_u64};
use super::route::Routed;
use crate::config::Trust;
use crate::http1::request::{BodyFraming, HeaderKind, RequestHead, VIA_PSEUDONYM};
use crate::http1::response::{ResponseFraming, ResponseHead};
use std::net::IpAddr;

/// Our `Via` line for an HTTP/1.1 request that came without one.
const VIA_1_1: &[u8] = b"Via: 1.1 switchyard\r\n";

/// Writes the upstream request head into `out` (cleared first).
pub fn request_head(
    head: &RequestHead,
    buf: &[u8],
    routed: &Routed,
    trust: Trust,
    peer: IpAddr,
    out: &mut Vec<u8>,
) {
    out.clear();
    out.extend_from_slice(head.method.get(buf));
    out.push(b' ');
    let path = head.path.get(buf);
    match routed.consume_from {
        Some(at) => {
            out.push(b'/');
            out.extend_from_slice(head.target.get(buf).get(at..).unwrap_or(&[]));
        }
        None if path.is_empty() => out.push(b'/'),
        None => out.extend_from_slice(path),
    }
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut via_lines = 0usize;
    let mut wrote_host = false;
    let mut lines = LineCopier::new(buf);
    for (i, h) in head.headers.iter().enumerate() {
        if routed.drop_header == Some(i) {
            continue;
        }
        let keep = match h.kind {
            HeaderKind::Other | HeaderKind::Expect => true,
            HeaderKind::Host => {
                if head.authority.is_some() {
                    false
                } else {
                    wrote_host = true;
                    true
                }
            }
            HeaderKind::Via => {
                // Via lines are joined into one, with ours last.
                via_lines += 1;
                false
            }
            // Context from earlier hops travels on through mesh listeners.
            HeaderKind::L5dCtx => trust == Trust::Mesh,
            // linkerd neither applied nor stripped Dtab-Local inside the mesh;
            // an edge drops it with every other routing header.
            HeaderKind::DtabLocal => trust == Trust::Mesh,
            HeaderKind::Forwarded => trust == Trust::Mesh,
            HeaderKind::Connection
            | HeaderKind::HopByHop
            | HeaderKind::ConnectionNamed
            | HeaderKind::ContentLength
            | HeaderKind::TransferEncoding
            | HeaderKind::L5dDtab
            | HeaderKind::L5dCtxDtab
            | HeaderKind::L5d => false,
        };
        if keep {
            lines.keep(
                out,
                h.name.start as usize,
                h.value.end.max(h.name.end) as usize,
            );
        }
    }
    lines.flush(out);
    if !wrote_host && let Some(host) = head.host {
        out.extend_from_slice(b"Host: ");
        out.extend_from_slice(host.get(buf));
        out.extend_from_slice(b"\r\n");
    }
    match head.framing {
        BodyFraming::None => {}
        BodyFraming::Length(n) => {
            out.extend_from_slice(b"Content-Length: ");
            push_u64(out, n);
            out.extend_from_slice(b"\r\n");
        }
        BodyFraming::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
    }
    // Via: what came in, then us (RFC 9110 §7.6.3), with the protocol the
    // request arrived in.
    if via_lines == 0 && head.minor == 1 {
        out.extend_from_slice(VIA_1_1);
    } else {
        out.extend_from_slice(b"Via: ");
        for h in head.headers.iter().filter(|h| h.kind == HeaderKind::Via) {
            out.extend_from_slice(h.value.get(buf));
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(if head.minor == 0 { b"1.0 " } else { b"1.1 " });
        out.extend_from_slice(VIA_PSEUDONYM);
        out.extend_from_slice(b"\r\n");
    }
    // l5d-ctx-dtab and l5d-dst-*, rendered when the route was bound.
    out.extend_from_slice(&routed.leaf().headers);
    // A fresh id per request, as linkerd's l5d-reqid (a trace span id).
    out.extend_from_slice(b"l5d-reqid: ");
    push_hex16(out, routed.request_id);
    out.extend_from_slice(b"\r\n");
    if trust == Trust::Edge {
        // The client's own X-Forwarded-* claims were dropped; ours are what
        // the proxy saw.
        use std::io::Write as _;
        // Formatting into a Vec cannot fail.
        let _ = write!(
            out,
            "X-Forwarded-For: {peer}\r\nX-Forwarded-Proto: http\r\n"
        );
    }
    out.extend_from_slice(b"\r\n");
}

/// How the proxy frames the response body it sends a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientFraming {
    None,
    Length(u64),
    Chunked,
    /// Until we close the connection (HTTP/1.0 clients of chunked or
    /// close-delimited responses, and close-delimited responses generally).
    Close,
}

/// Decides the client framing for a response.
pub fn client_framing(resp: &ResponseHead, client_minor: u8) -> ClientFraming {
    match resp.framing {
        ResponseFraming::None => ClientFraming::None,
        ResponseFraming::Length(n) => ClientFraming::Length(n),
        ResponseFraming::Chunked if client_minor == 1 => ClientFraming::Chunked,
        ResponseFraming::Chunked | ResponseFraming::CloseDelimited => ClientFraming::Close,
    }
}

/// Writes the client response head into `out` (cleared first).
pub fn response_head(
    resp: &ResponseHead,
    ubuf: &[u8],
    framing: ClientFraming,
    trust: Trust,
    close: bool,
    client_minor: u8,
    out: &mut Vec<u8>,
) {
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    push_status(out, resp.status);
    out.push(b' ');
    out.extend_from_slice(resp.reason.get(ubuf));
    out.extend_from_slice(b"\r\n");
    let bodiless_passthrough =
        framing == ClientFraming::None && !(100..200).contains(&resp.status) && resp.status != 204;
    let mut lines = LineCopier::new(ubuf);
    for h in &resp.headers {
        let keep = match h.kind {
            HeaderKind::Connection | HeaderKind::HopByHop | HeaderKind::ConnectionNamed => false,
            // A HEAD or 304 response's length describes the body it did
            // not send: pass it on as it came.
            HeaderKind::ContentLength | HeaderKind::TransferEncoding => bodiless_passthrough,
            HeaderKind::L5dDtab
            | HeaderKind::L5dCtxDtab
            | HeaderKind::L5dCtx
            | HeaderKind::L5d
            | HeaderKind::DtabLocal => trust == Trust::Mesh,
            _ => true,
        };
        if keep {
            lines.keep(
                out,
                h.name.start as usize,
                h.value.end.max(h.name.end) as usize,
            );
        }
    }
    lines.flush(out);
    match framing {
        ClientFraming::Length(n) => {
            out.extend_from_slice(b"Content-Length: ");
            push_u64(out, n);
            out.extend_from_slice(b"\r\n");
        }
        ClientFraming::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        ClientFraming::None | ClientFraming::Close => {}
    }
    if close || framing == ClientFraming::Close {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if client_minor == 0 {
        // An HTTP/1.0 client closes unless told the connection persists.
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Copies kept header lines as they were sent, name to value with the
/// separator byte-exact. Lines that follow each other in the buffer and end
/// in CRLF right after their value are copied as one run: a typical head
/// forwards most of its lines, and one copy of a run costs what one small
/// copy costs.
struct LineCopier<'a> {
    buf: &'a [u8],
    /// The pending run, `[start, end)` including its last CRLF.
    run: Option<(usize, usize)>,
}

impl<'a> LineCopier<'a> {
    fn new(buf: &'a [u8]) -> LineCopier<'a> {
        LineCopier { buf, run: None }
    }

    /// Keeps the line whose name starts at `start` and whose (trimmed)
    /// value ends at `end`.
    #[inline(always)]
    fn keep(&mut self, out: &mut Vec<u8>, start: usize, end: usize) {
        if self.buf.get(end..end + 2) == Some(b"\r\n") {
            match &mut self.run {
                Some((_, e)) if *e == start => *e = end + 2,
                _ => {
                    self.flush(out);
                    self.run = Some((start, end + 2));
                }
            }
        } else {
            // Trailing whitespace or a bare LF: the line as trimmed, ended
            // with CRLF.
            self.flush(out);
            out.extend_from_slice(&self.buf[start..end]);
            out.extend_from_slice(b"\r\n");
        }
    }

    fn flush(&mut self, out: &mut Vec<u8>) {
        if let Some((s, e)) = self.run.take() {
            out.extend_from_slice(&self.buf[s..e]);
        }
    }
}

/// Sixteen lower-case hex digits.
fn push_hex16(out: &mut Vec<u8>, n: u64) {
    let mut digits = [0u8; 16];
    digits[..8].copy_from_slice(&hex8((n >> 32) as u32));
    digits[8..].copy_from_slice(&hex8(n as u32));
    out.extend_from_slice(&digits);
}

/// Eight lower-case hex digits of `x`, computed on all eight at once (a
/// table lookup per digit cost about 4 instructions each, per request).
#[inline(always)]
fn hex8(x: u32) -> [u8; 8] {
    const LO_NIBBLES: u64 = 0x0f0f_0f0f_0f0f_0f0f;
    // Each nibble into a byte of its own: byte i holds nibble i, counted
    // from the least significant.
    let x = u64::from(x);
    let x = (x | (x << 16)) & 0x0000_ffff_0000_ffff;
    let x = (x | (x << 8)) & 0x00ff_00ff_00ff_00ff;
    let x = (x | (x << 4)) & LO_NIBBLES;
    // 0x01 in the bytes above 9 (adding 6 carries into bit 4 exactly there).
    let above_9 = ((x + 0x0606_0606_0606_0606) >> 4) & 0x0101_0101_0101_0101;
    // '0' + d, and 'a' - '0' - 10 = 39 more for the letters; no byte
    // carries into the next ('f' = 0x66).
    let ascii = x + 0x3030_3030_3030_3030 + above_9 * 39;
    // The most significant digit first.
    ascii.to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http1::response::parse_response;

    #[test]
    fn hex16_is_lower_case_hex() {
        let mut x: u64 = 0x0123_4567_89ab_cdef;
        let mut samples = vec![0, u64::MAX, 0xa5a5_5a5a_0f0f_f0f0, 0x9999_aaaa_0000_ffff];
        for _ in 0..1000 {
            // xorshift: spread over every nibble value in every position.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            samples.push(x);
        }
        for n in samples {
            let mut out = Vec::new();
            push_hex16(&mut out, n);
            assert_eq!(out, format!("{n:016x}").into_bytes());
        }
    }

    #[test]
    fn via_line_names_us() {
        let mut want = b"Via: 1.1 ".to_vec();
        want.extend_from_slice(VIA_PSEUDONYM);
        want.extend_from_slice(b"\r\n");
        assert_eq!(VIA_1_1, &want[..]);
    }

    fn rewritten(raw: &[u8]) -> String {
        let resp = parse_response(raw, false).unwrap().unwrap();
        let mut out = Vec::new();
        response_head(
            &resp,
            raw,
            ClientFraming::Length(2),
            Trust::Mesh,
            false,
            1,
            &mut out,
        );
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn kept_lines_are_copied_as_sent_around_dropped_ones() {
        let out = rewritten(
            b"HTTP/1.1 200 OK\r\nA: 1\r\nB:2\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nC: 3\r\nContent-Length: 2\r\n\r\nok",
        );
        assert_eq!(
            out,
            "HTTP/1.1 200 OK\r\nA: 1\r\nB:2\r\nC: 3\r\nContent-Length: 2\r\n\r\n"
        );
    }

    #[test]
    fn trailing_whitespace_and_bare_lf_lines_are_normalised() {
        let out = rewritten(b"HTTP/1.1 200 OK\nA: 1  \r\nB: 2\nC: 3\r\nContent-Length: 2\n\nok");
        assert_eq!(
            out,
            "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\nContent-Length: 2\r\n\r\n"
        );
    }
}
