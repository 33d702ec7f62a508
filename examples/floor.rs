//! The floor under Switchyard's request path: a bare monoio + httparse
//! proxy with no routing, no checks and no header rewriting, one upstream
//! connection per client connection. `../shared/BENCHMARKS.md` measured
//! such a proxy as where the runtime and the parser leave us; this one lets
//! `loadtest/compare.py --floor` measure it in the same run as everything
//! else, since figures from another day on this VM do not compare.
//!
//! Not a proxy to run: it trusts every head, forwards bodiless requests
//! only, and relays `Content-Length` responses only.
//!
//! `floor [--epoll] LISTEN UPSTREAM`, e.g.
//! `target/release/examples/floor 127.0.0.1:4170 127.0.0.1:9000`.

use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::{TcpListener, TcpStream};
use std::mem::MaybeUninit;
use std::net::SocketAddr;

const BUF: usize = 32 * 1024;

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let epoll = args.first().is_some_and(|a| a == "--epoll");
    if epoll {
        args.remove(0);
    }
    let (Some(listen), Some(upstream)) = (args.first(), args.get(1)) else {
        eprintln!("usage: floor [--epoll] LISTEN UPSTREAM");
        std::process::exit(2);
    };
    let listen: SocketAddr = listen.parse().expect("LISTEN is an address");
    let upstream: SocketAddr = upstream.parse().expect("UPSTREAM is an address");
    if epoll {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .build()
            .expect("runtime")
            .block_on(serve(listen, upstream));
    } else {
        monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
            .build()
            .expect("runtime")
            .block_on(serve(listen, upstream));
    }
}

async fn serve(listen: SocketAddr, upstream: SocketAddr) {
    let listener = TcpListener::bind(listen).expect("bind");
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        monoio::spawn(async move {
            let _ = relay(client, upstream).await;
        });
    }
}

/// Serves one client until either side closes or sends what it cannot read.
async fn relay(mut client: TcpStream, upstream: SocketAddr) -> Option<()> {
    client.set_nodelay(true).ok()?;
    let mut up = TcpStream::connect(upstream).await.ok()?;
    up.set_nodelay(true).ok()?;
    let mut cbuf = Vec::with_capacity(BUF);
    let mut ubuf = Vec::with_capacity(BUF);
    loop {
        // The request head, forwarded as it came.
        let head_len = loop {
            // Uninitialised slots, as Switchyard parses: zeroing 64 headers
            // per parse would put 2 KiB of stores into the floor.
            let mut raw = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; 64];
            let mut req = httparse::Request::new(&mut []);
            if let httparse::Status::Complete(n) =
                req.parse_with_uninit_headers(&cbuf, &mut raw).ok()?
            {
                break n;
            }
            cbuf = read(&mut client, cbuf).await?;
        };
        let (r, b) = up.write_all(cbuf).await;
        cbuf = b;
        r.ok()?;
        cbuf.drain(..head_len);
        // The response head and what came with it of the body, in one write.
        let (head_len, body_len) = loop {
            let mut raw = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; 64];
            let mut resp = httparse::Response::new(&mut []);
            if let httparse::Status::Complete(n) = httparse::ParserConfig::default()
                .parse_response_with_uninit_headers(&mut resp, &ubuf, &mut raw)
                .ok()?
            {
                let cl = resp
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))?;
                break (
                    n,
                    std::str::from_utf8(cl.value).ok()?.parse::<usize>().ok()?,
                );
            }
            ubuf = read(&mut up, ubuf).await?;
        };
        let mut left = (head_len + body_len).checked_sub(ubuf.len())?;
        loop {
            let (r, b) = client.write_all(ubuf).await;
            ubuf = b;
            r.ok()?;
            ubuf.clear();
            if left == 0 {
                break;
            }
            ubuf = read(&mut up, ubuf).await?;
            left = left.checked_sub(ubuf.len())?;
        }
    }
}

/// Reads more onto the end of `buf`; `None` at EOF or on an error.
async fn read(s: &mut TcpStream, mut buf: Vec<u8>) -> Option<Vec<u8>> {
    if buf.capacity() - buf.len() < 1024 {
        buf.reserve(BUF);
    }
    let (len, cap) = (buf.len(), buf.capacity());
    let (r, slice) = s
        .read(monoio::buf::IoBufMut::slice_mut(buf, len..cap))
        .await;
    match r {
        Ok(n) if n > 0 => Some(slice.into_inner()),
        _ => None,
    }
}
