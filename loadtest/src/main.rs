//! `switchyard-load`: drives HTTP/1.1 keep-alive load at a proxy (or directly
//! at an upstream) and reports latency percentiles.
//!
//! Two modes, one thread per keep-alive connection:
//! - closed loop (default): each connection sends a request, reads the
//!   whole response, and sends the next;
//! - open loop (`--rate R`): requests are due at fixed times (R per second
//!   over all connections, each connection's schedule offset from the
//!   others'), and latency is measured from the time a request was *due*,
//!   not from when it could be sent: a stall delays every request behind it
//!   and each of them counts the delay (coordinated-omission correction).
//!   The service time (from the actual send) is reported beside it.
//!
//! Timers are the monotonic clock in nanoseconds; a connection sleeps until a
//! request is due with an absolute `clock_nanosleep` and a 1 ns timer slack,
//! so sends are on time to within the kernel's wake-up latency (a few
//! microseconds) without spinning.
//! Latencies go into HdrHistograms (1 ns to 60 s, 3 significant figures).
//! The generator reports its own CPU time per request, so a run shows
//! whether it, and not the target, was the bottleneck.

use clap::Parser;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

#[derive(Parser, Debug)]
#[command(
    name = "switchyard-load",
    about = "HTTP/1.1 keep-alive load, closed or open loop, with latency percentiles"
)]
struct Args {
    /// Target address, e.g. 127.0.0.1:4140.
    target: SocketAddr,
    /// Concurrent keep-alive connections (one thread each).
    #[arg(short, long, default_value_t = 1)]
    connections: usize,
    /// Open loop: requests per second over all connections. 0 means
    /// closed loop.
    #[arg(short, long, default_value_t = 0.0)]
    rate: f64,
    /// Seconds of measurement.
    #[arg(short, long, default_value_t = 5.0)]
    duration: f64,
    /// Seconds of warm-up before measuring.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Request paths; with several (comma-separated), requests cycle through
    /// them (e.g. `/,/1k,/16k` for a mix of response sizes).
    #[arg(long, default_value = "/", value_delimiter = ',')]
    path: Vec<String>,
    /// Host header.
    #[arg(long, default_value = "bench")]
    host: String,
    /// Extra header lines, `Name: value` (repeatable), e.g. an l5d-dtab.
    #[arg(short = 'H', long = "header")]
    headers: Vec<String>,
    /// Request body sizes in bytes (comma-separated: requests cycle
    /// through them, e.g. `0,1024,16384`). A request with a body is a POST
    /// with Content-Length.
    #[arg(long, default_value = "0", value_delimiter = ',')]
    body_bytes: Vec<usize>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Write an HdrHistogram interval log (one interval per second, tagged
    /// `latency` and, in open loop, `service`) to this file.
    #[arg(long)]
    hdr_log: Option<std::path::PathBuf>,
}

/// The requests a connection cycles through.
fn requests(a: &Args) -> Vec<Vec<u8>> {
    let n = a.path.len().max(1) * a.body_bytes.len().max(1);
    (0..n)
        .map(|i| {
            let path = &a.path[i % a.path.len().max(1)];
            let body = a
                .body_bytes
                .get(i % a.body_bytes.len().max(1))
                .copied()
                .unwrap_or(0);
            let method = if body > 0 { "POST" } else { "GET" };
            let mut r = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", a.host);
            for h in &a.headers {
                r.push_str(h);
                r.push_str("\r\n");
            }
            if body > 0 {
                r.push_str(&format!("Content-Length: {body}\r\n"));
            }
            r.push_str("\r\n");
            let mut bytes = r.into_bytes();
            bytes.extend(std::iter::repeat_n(b'x', body));
            bytes
        })
        .collect()
}

/// Reads one whole response from `s` into `buf` (which may hold the start of
/// the next one); returns the status and whether the server closes the
/// connection after it (`Connection: close`, or HTTP/1.0 without
/// keep-alive). Handles Content-Length, chunked and bodiless responses.
fn read_response(s: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<(u16, bool)> {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(buf) {
            Ok(httparse::Status::Complete(head)) => {
                let status = resp.code.unwrap_or(0);
                let mut cl = None;
                let mut chunked = false;
                let mut close = None;
                for h in resp.headers.iter() {
                    if h.name.eq_ignore_ascii_case("connection") {
                        // Read in place: every response carries this header,
                        // and the generator's own cost per request is what
                        // lets one core drive 100k requests a second.
                        let has = |token: &[u8]| {
                            h.value
                                .split(|&b| b == b',')
                                .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
                        };
                        if has(b"close") {
                            close = Some(true);
                        } else if has(b"keep-alive") {
                            close = close.or(Some(false));
                        }
                    } else if h.name.eq_ignore_ascii_case("content-length") {
                        cl = std::str::from_utf8(h.value)
                            .ok()
                            .and_then(|v| v.trim().parse::<usize>().ok());
                    } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                        chunked = h.value.eq_ignore_ascii_case(b"chunked");
                    }
                }
                let close = close.unwrap_or(resp.version == Some(0));
                buf.drain(..head);
                if status == 204 || status == 304 || (100..200).contains(&status) {
                    return Ok((status, close));
                }
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
                return Ok((status, close));
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

fn histogram() -> Histogram<u64> {
    Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("histogram bounds")
}

/// One connection's recordings.
struct Recorded {
    /// From due time (open loop) or send time (closed loop) to the end of
    /// the response.
    latency: Histogram<u64>,
    /// From the actual send to the end of the response.
    service: Histogram<u64>,
    /// Per measured second, when an interval log is wanted.
    seconds: Vec<(Histogram<u64>, Histogram<u64>)>,
    errors: u64,
    non_2xx: u64,
    /// Requests sent later than due by more than 1 ms: the generator (or
    /// the target) could not keep the schedule.
    late: u64,
    /// Connections opened after the first: the target closed one (saying
    /// so, or with an error).
    reconnects: u64,
}

struct Shared {
    args: Args,
    requests: Vec<Vec<u8>>,
    /// Set when measuring starts; requests due before it are warm-up.
    measure_from: std::sync::OnceLock<Instant>,
    stop: AtomicBool,
}

/// The monotonic clock as both `Instant` and `clock_nanosleep` see it.
struct Clock {
    at: Instant,
    mono: Duration,
}

impl Clock {
    fn now() -> Clock {
        let ts =
            nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).expect("CLOCK_MONOTONIC");
        Clock {
            at: Instant::now(),
            mono: Duration::new(ts.tv_sec() as u64, ts.tv_nsec() as u32),
        }
    }

    /// Sleeps until `t` with an absolute-time `clock_nanosleep`: no drift
    /// from computing a relative delay, and (with the thread's timer slack
    /// at 1 ns) woken within microseconds rather than the default 50 µs
    /// slack, without spinning a CPU the target may need.
    fn wait_until(&self, t: Instant) {
        if t <= Instant::now() {
            return;
        }
        let abs = nix::sys::time::TimeSpec::from_duration(
            self.mono + t.saturating_duration_since(self.at),
        );
        while let Err(nix::errno::Errno::EINTR) = nix::time::clock_nanosleep(
            nix::time::ClockId::CLOCK_MONOTONIC,
            nix::time::ClockNanosleepFlags::TIMER_ABSTIME,
            &abs,
        ) {}
    }
}

fn nanos(d: Duration) -> u64 {
    d.as_nanos().min(u128::from(u64::MAX)) as u64
}

fn worker(sh: Arc<Shared>, index: usize, start: Instant) -> Recorded {
    let a = &sh.args;
    // Timers on this thread fire when asked, not up to 50 µs later.
    let _ = nix::sys::prctl::set_timerslack(1);
    let clock = Clock::now();
    let mut rec = Recorded {
        latency: histogram(),
        service: histogram(),
        seconds: Vec::new(),
        errors: 0,
        reconnects: 0,
        non_2xx: 0,
        late: 0,
    };
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut conn: Option<TcpStream> = None;
    let mut connected = false;
    // Open loop: this connection's requests are due every `interval`,
    // offset so the connections' schedules interleave.
    let interval =
        (a.rate > 0.0).then(|| Duration::from_secs_f64(a.connections.max(1) as f64 / a.rate));
    let mut due = start
        + interval.map_or(Duration::ZERO, |i| {
            i.mul_f64(index as f64 / a.connections.max(1) as f64)
        });
    let mut n = index;
    while !sh.stop.load(Ordering::Relaxed) {
        if interval.is_some() {
            clock.wait_until(due);
        }
        let s = match conn.as_mut() {
            Some(s) => s,
            None => match TcpStream::connect(a.target) {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    buf.clear();
                    rec.reconnects += u64::from(connected);
                    connected = true;
                    conn.insert(s)
                }
                Err(_) => {
                    rec.errors += 1;
                    std::thread::sleep(Duration::from_millis(1));
                    if let Some(i) = interval {
                        due += i;
                    }
                    continue;
                }
            },
        };
        let req = &sh.requests[n % sh.requests.len()];
        n += 1;
        let sent = Instant::now();
        let ok = s.write_all(req).and_then(|()| read_response(s, &mut buf));
        let done = Instant::now();
        let from = if interval.is_some() { due } else { sent };
        if let Some(&m) = sh.measure_from.get()
            && from >= m
        {
            match ok {
                Ok((status, _)) => {
                    let lat = nanos(done - from);
                    let svc = nanos(done - sent);
                    let _ = rec.latency.record(lat.max(1));
                    let _ = rec.service.record(svc.max(1));
                    if a.hdr_log.is_some() {
                        let sec = (from - m).as_secs() as usize;
                        while rec.seconds.len() <= sec {
                            rec.seconds.push((histogram(), histogram()));
                        }
                        let _ = rec.seconds[sec].0.record(lat.max(1));
                        let _ = rec.seconds[sec].1.record(svc.max(1));
                    }
                    if !(200..300).contains(&status) {
                        rec.non_2xx += 1;
                    }
                    if sent.saturating_duration_since(from) > Duration::from_millis(1) {
                        rec.late += 1;
                    }
                }
                Err(_) => rec.errors += 1,
            }
        }
        // A server that said it closes gets a new connection for the next
        // request: reusing the old one would count its EOF as an error.
        if !matches!(ok, Ok((_, false))) {
            conn = None;
        }
        if let Some(i) = interval {
            due += i;
        }
    }
    rec
}

/// This process's CPU time (user + system), from /proc/self/stat.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the
    // 12th and 13th of them, in clock ticks (100 per second on Linux).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

fn main() {
    let args = Args::parse();
    let requests = requests(&args);
    let connections = args.connections.max(1);
    let sh = Arc::new(Shared {
        args,
        requests,
        measure_from: std::sync::OnceLock::new(),
        stop: AtomicBool::new(false),
    });
    let start = Instant::now() + Duration::from_millis(20);
    let handles: Vec<_> = (0..connections)
        .map(|i| {
            let sh = sh.clone();
            std::thread::spawn(move || worker(sh, i, start))
        })
        .collect();
    let a = &sh.args;
    let measure_from = start + Duration::from_secs_f64(a.warmup.max(0.0));
    let _ = nix::sys::prctl::set_timerslack(1);
    Clock::now().wait_until(measure_from);
    let _ = sh.measure_from.set(measure_from);
    let wall = SystemTime::now();
    let cpu0 = cpu_time();
    let measure_for = Duration::from_secs_f64(a.duration.max(0.1));
    std::thread::sleep(measure_for);
    let cpu = cpu_time().saturating_sub(cpu0);
    sh.stop.store(true, Ordering::Relaxed);
    let elapsed = measure_for.as_secs_f64();
    let (mut latency, mut service) = (histogram(), histogram());
    let mut seconds: Vec<(Histogram<u64>, Histogram<u64>)> = Vec::new();
    let (mut errors, mut non_2xx, mut late, mut reconnects) = (0, 0, 0, 0);
    for h in handles {
        let r = h.join().expect("worker thread");
        latency.add(&r.latency).expect("same bounds");
        service.add(&r.service).expect("same bounds");
        for (i, (l, s)) in r.seconds.into_iter().enumerate() {
            while seconds.len() <= i {
                seconds.push((histogram(), histogram()));
            }
            seconds[i].0.add(&l).expect("same bounds");
            seconds[i].1.add(&s).expect("same bounds");
        }
        errors += r.errors;
        non_2xx += r.non_2xx;
        late += r.late;
        reconnects += r.reconnects;
    }
    // Requests due in the measured window but answered after it are not
    // in the histograms; the rate counts what completed.
    let requests = latency.len();
    let rps = requests as f64 / elapsed;
    let cpu_us_per_request = if requests > 0 {
        cpu.as_secs_f64() * 1e6 / requests as f64
    } else {
        0.0
    };
    let open = a.rate > 0.0;
    if let Some(path) = &a.hdr_log
        && let Err(e) = write_log(path, wall, &seconds, open)
    {
        eprintln!("switchyard-load: {}: {e}", path.display());
    }
    let pct = |h: &Histogram<u64>| {
        let us = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        serde_json::json!({"p50": us(0.5), "p90": us(0.9), "p99": us(0.99), "p99.9": us(0.999),
                           "p99.99": us(0.9999), "max": h.max() as f64 / 1000.0})
    };
    if a.json {
        let v = serde_json::json!({
            "target": a.target.to_string(), "mode": if open { "open" } else { "closed" },
            "connections": connections, "rate": a.rate, "seconds": elapsed,
            "requests": requests, "rps": rps, "errors": errors, "non_2xx": non_2xx, "late": late,
            "reconnects": reconnects,
            "latency_us": pct(&latency), "service_us": pct(&service),
            "generator_cpu_us_per_request": cpu_us_per_request,
        });
        println!("{v}");
    } else {
        println!(
            "target {}  {} loop{}  connections {}  {:.1} s",
            a.target,
            if open { "open" } else { "closed" },
            if open {
                format!(" at {:.0}/s", a.rate)
            } else {
                String::new()
            },
            connections,
            elapsed
        );
        println!(
            "requests {requests}  rps {rps:.0}  errors {errors}  non-2xx {non_2xx}  reconnects {reconnects}{}  generator cpu {cpu_us_per_request:.2} us/request",
            if open {
                format!("  late {late}")
            } else {
                String::new()
            }
        );
        let row = |name: &str, h: &Histogram<u64>| {
            let us = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
            println!(
                "{name:<8} us  p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  p99.99 {:.1}  max {:.1}",
                us(0.5),
                us(0.9),
                us(0.99),
                us(0.999),
                us(0.9999),
                h.max() as f64 / 1000.0
            );
        };
        row("latency", &latency);
        if open {
            row("service", &service);
        }
    }
}

fn write_log(
    path: &std::path::Path,
    wall: SystemTime,
    seconds: &[(Histogram<u64>, Histogram<u64>)],
    open: bool,
) -> std::io::Result<()> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut ser = V2DeflateSerializer::new();
    let mut log = IntervalLogWriterBuilder::new()
        .add_comment("switchyard-load: latency in nanoseconds")
        .with_start_time(wall)
        .with_base_time(wall)
        .begin_log_with(&mut file, &mut ser)?;
    let err = |e| std::io::Error::other(format!("{e:?}"));
    for (i, (l, s)) in seconds.iter().enumerate() {
        let at = Duration::from_secs(i as u64);
        log.write_histogram(l, at, Duration::from_secs(1), Tag::new("latency"))
            .map_err(err)?;
        if open {
            log.write_histogram(s, at, Duration::from_secs(1), Tag::new("service"))
                .map_err(err)?;
        }
    }
    drop(log);
    file.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::TcpListener;

    /// Responses back to back on one connection: each is read whole, and
    /// whether the server closes after it is what its headers and version say.
    #[test]
    fn read_response_reads_framing_and_close() {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        let server = std::thread::spawn(move || {
            let (mut s, _) = l.accept().expect("accept");
            s.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok\
HTTP/1.1 503 Busy\r\nConnection: close\r\nContent-Length: 0\r\n\r\n\
HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx\
HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n\
HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive, Close\r\n\r\n3\r\nabc\r\n0\r\n\r\n\
HTTP/1.1 204 No Content\r\n\r\n",
            )
            .expect("write");
        });
        let mut s = TcpStream::connect(addr).expect("connect");
        let mut buf = Vec::new();
        let got: Vec<(u16, bool)> = (0..6)
            .map(|_| read_response(&mut s, &mut buf).expect("response"))
            .collect();
        assert_eq!(
            got,
            [
                (200, false),
                (503, true),
                (200, true),
                (200, false),
                (200, true),
                (204, false)
            ]
        );
        assert!(buf.is_empty());
        server.join().expect("server");
    }
}
