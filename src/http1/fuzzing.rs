//! Properties the HTTP/1.1 fuzz targets check on arbitrary input, shared
//! with the `cargo test` replay of their committed corpora.
//!
//! For any bytes: no parser panics; every span a parser returns lies inside
//! its input; and the answer does not depend on how the input was split
//! across reads.

use super::chunked::{ChunkedDecoder, ChunkedEvent};
use super::request::{RequestLimits, parse_request};
use super::response::parse_response;

/// Request heads: whole, and fed in two pieces at a split taken from the
/// input itself.
pub fn check_request_input(data: &[u8]) {
    let limits = RequestLimits::default();
    let mut scanned = 0;
    let whole = parse_request(data, &mut scanned, &limits);
    if let Ok(Some(h)) = &whole {
        assert!(h.head_len <= data.len());
        for s in [h.method, h.target, h.path]
            .into_iter()
            .chain(h.authority)
            .chain(h.host)
            .chain(h.headers.iter().flat_map(|x| [x.name, x.value]))
        {
            assert!(
                s.start <= s.end && (s.end as usize) <= h.head_len,
                "span outside the head"
            );
        }
    }
    if data.len() > 1 {
        let split = 1 + data[0] as usize % (data.len() - 1);
        let mut scanned = 0;
        match parse_request(&data[..split], &mut scanned, &limits) {
            Ok(None) => {
                let again = parse_request(data, &mut scanned, &limits);
                assert_eq!(
                    format!("{again:?}"),
                    format!("{whole:?}"),
                    "split at {split}"
                );
            }
            Ok(Some(_)) => assert!(matches!(whole, Ok(Some(_)))),
            Err(e) => {
                // An early error may only be one the whole input also has.
                if let Err(w) = &whole {
                    assert_eq!(e.kind, w.kind, "split at {split}");
                } else {
                    panic!("prefix of {split} bytes failed ({e:?}) where the whole input did not");
                }
            }
        }
    }
}

/// Response heads.
pub fn check_response_input(data: &[u8]) {
    for head in [false, true] {
        if let Ok(Some(r)) = parse_response(data, head) {
            assert!(r.head_len <= data.len());
            for h in &r.headers {
                assert!(
                    (h.name.end as usize) <= r.head_len && (h.value.end as usize) <= r.head_len
                );
            }
        }
    }
}

/// Decodes `data` fed `step` bytes at a time; returns the body, whether it
/// completed, and whether it failed.
fn decode_in_steps(data: &[u8], step: usize) -> (Vec<u8>, bool, bool) {
    let mut d = ChunkedDecoder::new(1 << 20);
    let mut body = Vec::new();
    let mut pending: Vec<u8> = Vec::new();
    let mut fed = 0;
    loop {
        match d.decode(&pending) {
            Err(_) => return (body, false, true),
            Ok((n, Some(ChunkedEvent::Data { start, end }))) => {
                assert!(start <= end && end <= pending.len() && n <= pending.len());
                body.extend_from_slice(&pending[start..end]);
                pending.drain(..n);
            }
            Ok((_, Some(ChunkedEvent::Done))) => return (body, true, false),
            Ok((n, None)) => {
                assert_eq!(
                    n,
                    pending.len(),
                    "need-more must consume everything offered"
                );
                pending.clear();
                if fed >= data.len() {
                    return (body, false, false);
                }
                let next = (fed + step).min(data.len());
                pending.extend_from_slice(&data[fed..next]);
                fed = next;
            }
        }
    }
}

/// The chunked decoder: the same body and verdict however the input is
/// split, and never more body than input.
pub fn check_chunked_input(data: &[u8]) {
    let whole = decode_in_steps(data, data.len().max(1));
    assert!(whole.0.len() <= data.len());
    let step = 1 + data.first().copied().unwrap_or(0) as usize % 7;
    assert_eq!(decode_in_steps(data, step), whole, "step {step}");
}
