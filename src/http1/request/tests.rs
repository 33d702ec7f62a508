use super::*;

fn parse_all(raw: &[u8]) -> Result<Option<RequestHead>, HeadError> {
    let mut scanned = 0;
    parse_request(raw, &mut scanned, &RequestLimits::default())
}

/// Parses `raw` as it would arrive split at every offset: every prefix must
/// ask for more or fail the same way the whole input does, and the whole
/// input must give the same answer whatever the split.
fn shotgun(raw: &[u8]) -> Result<Option<RequestHead>, HeadError> {
    let whole = parse_all(raw);
    for split in 1..raw.len() {
        let mut scanned = 0;
        let first = parse_request(&raw[..split], &mut scanned, &RequestLimits::default());
        match (&first, &whole) {
            (Ok(None), _) => {
                let second = parse_request(raw, &mut scanned, &RequestLimits::default());
                assert_eq!(
                    format!("{second:?}"),
                    format!("{whole:?}"),
                    "split at {split} of {:?}",
                    String::from_utf8_lossy(raw)
                );
            }
            (Err(e), Err(w)) => assert_eq!(e.kind, w.kind, "split at {split}"),
            (Ok(Some(_)), Ok(Some(_))) => {}
            _ => panic!(
                "split at {split} of {:?}: prefix gave {first:?}, whole gave {whole:?}",
                String::from_utf8_lossy(raw)
            ),
        }
    }
    whole
}

fn ok(raw: &str) -> RequestHead {
    shotgun(raw.as_bytes()).unwrap().unwrap()
}

fn refused(raw: &[u8]) -> HeadErrorKind {
    match shotgun(raw) {
        Err(e) => e.kind,
        other => panic!("{:?} was accepted: {other:?}", String::from_utf8_lossy(raw)),
    }
}

#[test]
fn simple_get() {
    let raw = "GET /a?b=c HTTP/1.1\r\nHost: web:80\r\nX-A:  1 \r\n\r\nrest";
    let h = ok(raw);
    let b = raw.as_bytes();
    assert_eq!(h.head_len, raw.len() - 4);
    assert_eq!(h.method.get(b), b"GET");
    assert_eq!(h.path.get(b), b"/a?b=c");
    assert_eq!(h.host.unwrap().get(b), b"web:80");
    assert_eq!(h.headers[1].value.get(b), b"1");
    assert_eq!(h.framing, BodyFraming::None);
    assert!(h.keep_alive);
}

#[test]
fn keep_alive_rules() {
    assert!(!ok("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").keep_alive);
    assert!(!ok("GET / HTTP/1.0\r\n\r\n").keep_alive);
    assert!(ok("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
}

#[test]
fn absolute_form() {
    let raw = "GET http://world:7777/x?y HTTP/1.1\r\nHost: other\r\n\r\n";
    let h = ok(raw);
    assert_eq!(h.authority.unwrap().get(raw.as_bytes()), b"world:7777");
    assert_eq!(h.host.unwrap().get(raw.as_bytes()), b"world:7777");
    assert_eq!(h.path.get(raw.as_bytes()), b"/x?y");
    let h = ok("GET http://world HTTP/1.1\r\n\r\n");
    assert!(h.path.is_empty());
    assert_eq!(
        refused(b"GET http://u@world/ HTTP/1.1\r\n\r\n"),
        HeadErrorKind::Malformed
    );
    assert_eq!(
        refused(b"GET https://world/ HTTP/1.1\r\n\r\n"),
        HeadErrorKind::Malformed
    );
}

#[test]
fn framing() {
    assert_eq!(
        ok("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n").framing,
        BodyFraming::Length(5)
    );
    assert_eq!(
        ok("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n").framing,
        BodyFraming::None
    );
    assert_eq!(
        ok("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n").framing,
        BodyFraming::Chunked
    );
    for bad_req in [
        &b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 05\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \"chunked\"\r\n\r\n",
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent_Length: 5\r\n\r\n",
    ] {
        assert_eq!(refused(bad_req), HeadErrorKind::Malformed, "{:?}", String::from_utf8_lossy(bad_req));
    }
    assert_eq!(
        refused(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
        HeadErrorKind::Unsupported
    );
    assert_eq!(
        refused(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775807\r\n\r\n"),
        HeadErrorKind::BodyTooLarge
    );
}

#[test]
fn line_endings_and_syntax() {
    for bad_req in [
        &b"GET / HTTP/1.1\nHost: a\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: a\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n",
        b"GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET a HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET world:80 HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c, websocket\r\nConnection: Upgrade\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: ,\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX\x85: b\r\n\r\n",
    ] {
        assert_eq!(
            refused(bad_req),
            HeadErrorKind::Malformed,
            "{:?}",
            String::from_utf8_lossy(bad_req)
        );
    }
    assert_eq!(
        refused(b"GET / HTTP/2.0\r\nHost: a\r\n\r\n"),
        HeadErrorKind::VersionNotSupported
    );
    assert_eq!(
        refused(b"CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n"),
        HeadErrorKind::Unsupported
    );
    let long_method = format!(
        "{} / HTTP/1.1\r\nHost: a\r\n\r\n",
        "A".repeat(METHOD_BYTES_MAX + 1)
    );
    assert_eq!(refused(long_method.as_bytes()), HeadErrorKind::Unsupported);
    assert_eq!(
        refused(b"GET / HTTP/1.1\r\nHost: a\r\nExpect: something\r\n\r\n"),
        HeadErrorKind::ExpectationFailed
    );
}

#[test]
fn limits_at_n_and_n_plus_one() {
    // Header count.
    let mut at = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
    for i in 0..REQUEST_HEADERS_MAX - 1 {
        at.push_str(&format!("X-{i}: v\r\n"));
    }
    let over = format!("{at}X-last: v\r\n\r\n");
    at.push_str("\r\n");
    assert!(parse_all(at.as_bytes()).unwrap().is_some());
    assert_eq!(
        parse_all(over.as_bytes()).unwrap_err().kind,
        HeadErrorKind::HeadTooLarge
    );

    // Head bytes.
    let prefix = "GET / HTTP/1.1\r\nHost: a\r\nX: ";
    let fill = REQUEST_HEAD_BYTES_MAX - prefix.len() - 4;
    let at = format!("{prefix}{}\r\n\r\n", "v".repeat(fill));
    assert_eq!(at.len(), REQUEST_HEAD_BYTES_MAX);
    assert!(parse_all(at.as_bytes()).unwrap().is_some());
    let over = format!("{prefix}{}\r\n\r\n", "v".repeat(fill + 1));
    assert_eq!(
        parse_all(over.as_bytes()).unwrap_err().kind,
        HeadErrorKind::HeadTooLarge
    );
    // An endless head fails once it passes the limit, without its end.
    let endless = format!("{prefix}{}", "v".repeat(REQUEST_HEAD_BYTES_MAX));
    assert_eq!(
        parse_all(endless.as_bytes()).unwrap_err().kind,
        HeadErrorKind::HeadTooLarge
    );

    // Target bytes.
    let t = |n: usize| format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(n - 1));
    assert!(
        parse_all(t(REQUEST_TARGET_BYTES_MAX).as_bytes())
            .unwrap()
            .is_some()
    );
    assert_eq!(
        parse_all(t(REQUEST_TARGET_BYTES_MAX + 1).as_bytes())
            .unwrap_err()
            .kind,
        HeadErrorKind::UriTooLong
    );

    // Body bytes.
    let cl = |n: u64| format!("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {n}\r\n\r\n");
    assert_eq!(
        parse_all(cl(REQUEST_BODY_BYTES_MAX).as_bytes())
            .unwrap()
            .unwrap()
            .framing,
        BodyFraming::Length(REQUEST_BODY_BYTES_MAX)
    );
    assert_eq!(
        parse_all(cl(REQUEST_BODY_BYTES_MAX + 1).as_bytes())
            .unwrap_err()
            .kind,
        HeadErrorKind::BodyTooLarge
    );

    // Our own Via hops.
    let via = |n: usize| {
        let hops: Vec<String> = (0..n).map(|_| "1.1 switchyard".to_owned()).collect();
        format!(
            "GET / HTTP/1.1\r\nHost: a\r\nVia: 1.1 other, {}\r\n\r\n",
            hops.join(", ")
        )
    };
    assert!(
        parse_all(via(VIA_OWN_HOPS_MAX).as_bytes())
            .unwrap()
            .is_some()
    );
    assert_eq!(
        parse_all(via(VIA_OWN_HOPS_MAX + 1).as_bytes())
            .unwrap_err()
            .kind,
        HeadErrorKind::Malformed
    );
}

#[test]
fn classification() {
    let raw = "GET / HTTP/1.1\r\nHost: a\r\nL5d-Dtab: /a=>/b\r\nl5d-ctx-dtab: /c=>/d\r\nl5d-ctx-trace: x\r\n\
               l5d-dst-service: /svc/a\r\nX-Forwarded-For: 1.2.3.4\r\nConnection: x-secret\r\nX-Secret: s\r\n\
               Keep-Alive: 5\r\nDtab-Local: /e=>/f\r\n\r\n";
    let h = ok(raw);
    let kinds: Vec<HeaderKind> = h.headers.iter().map(|h| h.kind).collect();
    assert_eq!(
        kinds,
        vec![
            HeaderKind::Host,
            HeaderKind::L5dDtab,
            HeaderKind::L5dCtxDtab,
            HeaderKind::L5dCtx,
            HeaderKind::L5d,
            HeaderKind::Forwarded,
            HeaderKind::Connection,
            HeaderKind::ConnectionNamed,
            HeaderKind::HopByHop,
            HeaderKind::DtabLocal,
        ]
    );
    assert_eq!(
        refused(b"GET / HTTP/1.1\r\nHost: a\r\nl5d_dtab: /a=>/b\r\n\r\n"),
        HeadErrorKind::Malformed
    );
}

#[test]
fn an_h2c_upgrade_offer_is_dropped_and_the_request_goes_on() {
    // What `curl --http2 http://...` sends: the offer and its settings are
    // hop-by-hop, the request stays an HTTP/1.1 keep-alive one.
    for raw in [
        "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\
         Connection: Upgrade, HTTP2-Settings\r\nX: y\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nupgrade: H2C\r\nhttp2-settings: AAMAAABk\r\nX: y\r\n\r\n",
    ] {
        let h = ok(raw);
        let kinds: Vec<HeaderKind> = h.headers.iter().map(|h| h.kind).collect();
        assert_eq!(kinds[1], HeaderKind::HopByHop, "{raw:?}");
        assert_eq!(kinds[2], HeaderKind::HopByHop, "{raw:?}");
        assert_eq!(*kinds.last().unwrap(), HeaderKind::Other, "{raw:?}");
        assert!(h.keep_alive);
    }
    // A Connection token naming Upgrade with no Upgrade header is harmless.
    assert!(ok("GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n\r\n").keep_alive);
}

#[test]
fn a_bare_cr_anywhere_in_a_head_is_refused() {
    for raw in [
        &b"GET / HTTP/1.1\r\nA: b\rc\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nA\r: b\r\n\r\n",
        b"GET /\r HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\rX\r\n\r\n",
        b"GET / HTTP/1.1\r\nA: b\r\r\n\r\n",
        b"GET / HTTP/1.1\r\nA: b\r\n\r\r\n",
    ] {
        assert_eq!(
            refused(raw),
            HeadErrorKind::Malformed,
            "{:?}",
            String::from_utf8_lossy(raw)
        );
    }
}

#[test]
fn header_names_classify_in_any_case() {
    // Every name we own, in several spellings, against the byte-wise
    // ASCII-case-insensitive answer; and near misses of every length.
    let names: &[(&str, HeaderKind)] = &[
        ("te", HeaderKind::HopByHop),
        ("via", HeaderKind::Via),
        ("host", HeaderKind::Host),
        ("expect", HeaderKind::Expect),
        ("trailer", HeaderKind::HopByHop),
        ("upgrade", HeaderKind::HopByHop),
        ("http2-settings", HeaderKind::HopByHop),
        ("l5d-dtab", HeaderKind::L5dDtab),
        ("forwarded", HeaderKind::Forwarded),
        ("connection", HeaderKind::Connection),
        ("keep-alive", HeaderKind::HopByHop),
        ("dtab-local", HeaderKind::DtabLocal),
        ("l5d-ctx-dtab", HeaderKind::L5dCtxDtab),
        ("content-length", HeaderKind::ContentLength),
        ("proxy-connection", HeaderKind::HopByHop),
        ("transfer-encoding", HeaderKind::TransferEncoding),
        ("l5d-ctx-trace", HeaderKind::L5dCtx),
        ("l5d-reqid", HeaderKind::L5d),
        ("x-forwarded-for", HeaderKind::Forwarded),
    ];
    for (name, kind) in names {
        let upper = name.to_ascii_uppercase();
        let mixed: String = name
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if i % 2 == 0 {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect();
        for spelled in [name.to_string(), upper, mixed] {
            assert_eq!(classify_exact(spelled.as_bytes()), *kind, "{spelled}");
        }
        // One byte changed anywhere (a letter's neighbour, or `-` to `.`):
        // not ours, unless it is still one of our prefixes.
        for i in 0..name.len() {
            let mut b = name.as_bytes().to_vec();
            b[i] = if b[i] == b'-' { b'.' } else { b[i] + 1 };
            let got = classify_exact(&b);
            let prefixed = b.starts_with(b"l5d-") || b.starts_with(b"x-forwarded-");
            assert!(
                got != *kind || prefixed,
                "{:?} -> {got:?}",
                String::from_utf8_lossy(&b)
            );
        }
    }
    assert_eq!(
        classify_folded(b"Content_Length"),
        HeaderKind::ContentLength
    );
    assert_eq!(classify_exact(b"Content_Length"), HeaderKind::Other);
}

/// `classify` decides by first letter and length before it compares; it must
/// give what its definition says: the exact reading, or a refusal when that
/// is `Other` but the name with `_` read as `-` is one of ours.
#[test]
fn classify_agrees_with_its_definition() {
    let defined = |n: &[u8]| {
        let kind = classify_exact(n);
        let folded: Vec<u8> = n
            .iter()
            .map(|&b| if b == b'_' { b'-' } else { b })
            .collect();
        if kind == HeaderKind::Other && classify_exact(&folded) != HeaderKind::Other {
            None
        } else {
            Some(kind)
        }
    };
    let mut names: Vec<Vec<u8>> = [
        "te",
        "via",
        "host",
        "expect",
        "trailer",
        "upgrade",
        "http2-settings",
        "l5d-dtab",
        "forwarded",
        "connection",
        "keep-alive",
        "dtab-local",
        "l5d-ctx-dtab",
        "content-length",
        "proxy-connection",
        "transfer-encoding",
        "l5d-ctx-trace",
        "l5d-reqid",
        "x-forwarded-for",
        "x-request-id",
        "accept",
        "cookie",
        "user-agent",
        "a",
        "t",
        "x",
        "l",
        "l5d",
        "l5d_",
        "hosts",
        "vias",
        "x-forwarded-",
        "cache-control",
    ]
    .iter()
    .map(|n| n.as_bytes().to_vec())
    .collect();
    // Longer than the 32 bytes `classify_folded` reads.
    for long in [
        "x-forwarded-for-the-client-behind-the-edge-proxy",
        "l5d-ctx-a-context-header-with-a-very-long-name",
        "x-request-id-of-the-upstream-tracing-system-here",
    ] {
        names.push(long.as_bytes().to_vec());
    }
    // Each name in capitals, with each `-` turned into `_` one at a time
    // and all at once, and with each byte nudged to a neighbour.
    for n in names.clone() {
        names.push(n.to_ascii_uppercase());
        names.push(
            n.iter()
                .map(|&b| if b == b'-' { b'_' } else { b })
                .collect(),
        );
        for i in 0..n.len() {
            let mut m = n.clone();
            if m[i] == b'-' {
                m[i] = b'_';
                names.push(m.clone());
            }
            m[i] = n[i] ^ 1;
            names.push(m);
        }
    }
    for n in &names {
        assert_eq!(
            classify(n).ok(),
            defined(n),
            "{:?}",
            String::from_utf8_lossy(n)
        );
    }
}

/// The fast path (httparse finds the end; each line's end is checked as the
/// line is read, and again for every line when a head is refused)
/// must decide every input exactly as the slow path (the end found first,
/// bare LFs refused by a scan) does. Heads with every line end turned into a
/// bare LF or a bare CR, one at a time, with whitespace around values, empty
/// values, leading empty lines, and bytes after the head.
#[test]
fn whole_heads_decide_as_the_slow_path_does() {
    let limits = RequestLimits::default();
    let decide_fast = |raw: &[u8]| {
        let mut head = RequestHead::default();
        let mut scanned = 0;
        let r = parse_request_into(raw, &mut scanned, &limits, &mut head);
        format!("{:?}", r.map(|done| done.then_some(head)))
    };
    let decide_slow = |raw: &[u8]| {
        let mut head = RequestHead::default();
        let mut scanned = 0;
        let r = parse_request_slow(raw, &mut scanned, &limits, &mut head);
        format!("{:?}", r.map(|done| done.then_some(head)))
    };
    let bases: &[&[u8]] = &[
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /x?y HTTP/1.1\r\nHost: a \r\nX-Empty:\r\nX-Ws: \t v \t\r\nAccept: */*\r\n\r\n",
        b"POST http://b/c HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\n",
        b"GET / HTTP/1.0\r\n\r\n",
        b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX:\t\r\n\r\n",
        // Refused heads: a line end spoilt after the refused line, or
        // before it, still decides as the slow path does.
        b"GET / HTTP/1.1\r\nHost: a b\r\nX: 1\r\nY: 2\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: 1\r\nContent-Length: x\r\nHost: a\r\n\r\n",
        b"GET /#f HTTP/1.1\r\nHost: a\r\nX: 1\r\n\r\n",
    ];
    let mut cases = 0;
    for base in bases {
        let mut variants = vec![base.to_vec()];
        for (i, _) in base.windows(2).enumerate().filter(|(_, w)| w == b"\r\n") {
            let mut lf = base.to_vec();
            lf.remove(i);
            variants.push(lf);
            let mut cr = base.to_vec();
            cr.remove(i + 1);
            variants.push(cr);
            let mut crcr = base.to_vec();
            crcr.insert(i, b'\r');
            variants.push(crcr);
            let mut ws = base.to_vec();
            ws.insert(i, b' ');
            variants.push(ws);
        }
        for v in variants {
            assert_eq!(
                decide_fast(&v),
                decide_slow(&v),
                "{:?}",
                String::from_utf8_lossy(&v)
            );
            cases += 1;
        }
    }
    assert!(cases > 100, "only {cases} cases");
}
