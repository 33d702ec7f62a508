//! `switchyard-load`: drives HTTP/1.1 keep-alive load at a proxy (or directly
//! at an upstream) and reports latency percentiles.
//!
//! Closed loop: each of `--connections` keep-alive connections sends a
//! request, reads the whole response, and sends the next, for `--duration`
//! seconds after `--warmup`. One thread per connection keeps the generator
//! simple and its own cost visible in `--json` output (requests/s per
//! thread). Latency is measured per request with the monotonic clock and
//! recorded in an HdrHistogram (1 ns to 60 s, 3 significant figures).

use clap::Parser;
use hdrhistogram::Histogram;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(
    name = "switchyard-load",
    about = "Closed-loop HTTP/1.1 keep-alive load with latency percentiles"
)]
struct Args {
    /// Target address, e.g. 127.0.0.1:4140.
    target: SocketAddr,
    /// Concurrent keep-alive connections (one thread each).
    #[arg(short, long, default_value_t = 1)]
    connections: usize,
    /// Seconds of measurement.
    #[arg(short, long, default_value_t = 5.0)]
    duration: f64,
    /// Seconds of warm-up before measuring.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Request path.
    #[arg(long, default_value = "/")]
    path: String,
    /// Host header.
    #[arg(long, default_value = "bench")]
    host: String,
    /// Extra header lines, `Name: value` (repeatable), e.g. an l5d-dtab.
    #[arg(short = 'H', long = "header")]
    headers: Vec<String>,
    /// Request body bytes (sent with Content-Length; POST when non-zero).
    #[arg(long, default_value_t = 0)]
    body_bytes: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

fn request_bytes(a: &Args) -> Vec<u8> {
    let method = if a.body_bytes > 0 { "POST" } else { "GET" };
    let mut r = format!("{method} {} HTTP/1.1\r\nHost: {}\r\n", a.path, a.host);
    for h in &a.headers {
        r.push_str(h);
        r.push_str("\r\n");
    }
    if a.body_bytes > 0 {
        r.push_str(&format!("Content-Length: {}\r\n", a.body_bytes));
    }
    r.push_str("\r\n");
    let mut bytes = r.into_bytes();
    bytes.extend(std::iter::repeat_n(b'x', a.body_bytes));
    bytes
}

/// Reads one whole response from `s` into `buf` (which may hold the start of
/// the next one); returns the status. Handles Content-Length, chunked and
/// bodiless responses.
fn read_response(s: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<u16> {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(buf) {
            Ok(httparse::Status::Complete(head)) => {
                let status = resp.code.unwrap_or(0);
                let mut cl = None;
                let mut chunked = false;
                for h in resp.headers.iter() {
                    if h.name.eq_ignore_ascii_case("content-length") {
                        cl = std::str::from_utf8(h.value)
                            .ok()
                            .and_then(|v| v.trim().parse::<usize>().ok());
                    } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                        chunked = h.value.eq_ignore_ascii_case(b"chunked");
                    }
                }
                buf.drain(..head);
                if chunked {
                    read_chunked(s, buf, &mut chunk)?;
                } else {
                    let n = cl.unwrap_or(0);
                    while buf.len() < n {
                        let r = s.read(&mut chunk)?;
                        if r == 0 {
                            return Err(std::io::ErrorKind::UnexpectedEof.into());
                        }
                        buf.extend_from_slice(&chunk[..r]);
                    }
                    buf.drain(..n);
                }
                return Ok(status);
            }
            Ok(httparse::Status::Partial) => {
                let r = s.read(&mut chunk)?;
                if r == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                buf.extend_from_slice(&chunk[..r]);
            }
            Err(e) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    e.to_string(),
                ));
            }
        }
    }
}

fn read_chunked(s: &mut TcpStream, buf: &mut Vec<u8>, chunk: &mut [u8]) -> std::io::Result<()> {
    let more = |s: &mut TcpStream, buf: &mut Vec<u8>, chunk: &mut [u8]| -> std::io::Result<()> {
        let r = s.read(chunk)?;
        if r == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..r]);
        Ok(())
    };
    loop {
        let line_end = loop {
            if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
                break i;
            }
            more(s, buf, chunk)?;
        };
        let size_text = std::str::from_utf8(&buf[..line_end]).unwrap_or("");
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "bad chunk size"))?;
        buf.drain(..line_end + 2);
        if size == 0 {
            // Trailers end with an empty line.
            loop {
                if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
                    buf.drain(..i + 2);
                    if i == 0 {
                        return Ok(());
                    }
                } else {
                    more(s, buf, chunk)?;
                }
            }
        }
        while buf.len() < size + 2 {
            more(s, buf, chunk)?;
        }
        buf.drain(..size + 2);
    }
}

struct WorkerResult {
    hist: Histogram<u64>,
    errors: u64,
    non_2xx: u64,
}

fn worker(
    args: Arc<Args>,
    req: Arc<Vec<u8>>,
    measuring: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) -> WorkerResult {
    let mut hist =
        Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("histogram bounds");
    let mut errors = 0;
    let mut non_2xx = 0;
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut conn: Option<TcpStream> = None;
    while !stop.load(Ordering::Relaxed) {
        let s = match conn.as_mut() {
            Some(s) => s,
            None => match TcpStream::connect(args.target) {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    buf.clear();
                    conn.insert(s)
                }
                Err(_) => {
                    errors += 1;
                    continue;
                }
            },
        };
        let start = Instant::now();
        let ok = s.write_all(&req).and_then(|()| read_response(s, &mut buf));
        let took = start.elapsed();
        match ok {
            Ok(status) => {
                if measuring.load(Ordering::Relaxed) {
                    let _ = hist.record(took.as_nanos().min(u64::MAX as u128) as u64);
                    if !(200..300).contains(&status) {
                        non_2xx += 1;
                    }
                }
            }
            Err(_) => {
                errors += 1;
                conn = None;
            }
        }
    }
    WorkerResult {
        hist,
        errors,
        non_2xx,
    }
}

fn main() {
    let args = Arc::new(Args::parse());
    let req = Arc::new(request_bytes(&args));
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..args.connections.max(1))
        .map(|_| {
            let (a, r, m, s) = (args.clone(), req.clone(), measuring.clone(), stop.clone());
            std::thread::spawn(move || worker(a, r, m, s))
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(args.warmup.max(0.0)));
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(args.duration.max(0.1)));
    measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let mut hist =
        Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("histogram bounds");
    let (mut errors, mut non_2xx) = (0, 0);
    for h in handles {
        let r = h.join().expect("worker thread");
        hist.add(&r.hist).expect("same bounds");
        errors += r.errors;
        non_2xx += r.non_2xx;
    }
    let us = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    let rps = hist.len() as f64 / elapsed;
    if args.json {
        let v = serde_json::json!({
            "target": args.target.to_string(), "connections": args.connections, "seconds": elapsed,
            "requests": hist.len(), "rps": rps, "errors": errors, "non_2xx": non_2xx,
            "latency_us": {"p50": us(0.5), "p90": us(0.9), "p99": us(0.99), "p99.9": us(0.999),
                           "p99.99": us(0.9999), "max": hist.max() as f64 / 1000.0},
        });
        println!("{v}");
    } else {
        println!(
            "target {}  connections {}  {:.1} s",
            args.target, args.connections, elapsed
        );
        println!(
            "requests {}  rps {:.0}  errors {}  non-2xx {}",
            hist.len(),
            rps,
            errors,
            non_2xx
        );
        println!(
            "latency us  p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  p99.99 {:.1}  max {:.1}",
            us(0.5),
            us(0.9),
            us(0.99),
            us(0.999),
            us(0.9999),
            hist.max() as f64 / 1000.0
        );
    }
}
