//! Shards: one thread per core, pinned, each with its own monoio runtime and
//! its own `SO_REUSEPORT` listeners; the IO driver choice; graceful drain.
//!
//! Listeners are bound by the main thread before any shard starts, so a bad
//! address fails start-up with its name, and every shard of a listener
//! shares the port (an ephemeral port is resolved once, then reused).

use crate::config::{Config, DriverChoice, Router, Server};
use crate::discovery::Published;
use crate::proxy::route::Rng;
use crate::proxy::session::{ListenerCx, ShardCx, serve_connection};
use crate::routing::GlobalNamer;
use crate::telemetry::ListenerMetrics;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// Start-up settings every shard of one proxy shares.
#[derive(Clone, Copy)]
struct ShardSettings {
    /// How long a draining shard waits for in-flight exchanges.
    drain_timeout: Duration,
    /// Whether shards record metrics (`telemetry.metrics`).
    metrics: bool,
}

/// How often a shard says it is alive.
const LIVENESS_HEARTBEAT: Duration = Duration::from_millis(250);

/// The IO driver a shard runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    IoUring,
    Epoll,
}

impl std::fmt::Display for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Driver::IoUring => "io_uring",
            Driver::Epoll => "epoll",
        })
    }
}

/// A listener bound for one router, one socket per shard.
pub struct BoundListener {
    pub router: Arc<Router>,
    pub server: Server,
    pub addr: SocketAddr,
    sockets: Vec<std::net::TcpListener>,
}

/// Binds every server of every router, `shards` sockets each.
pub fn bind_all(config: &Config, shards: usize) -> Result<Vec<BoundListener>, String> {
    let mut out = Vec::new();
    for router in &config.routers {
        for server in &router.servers {
            let mut addr = server.addr;
            let mut sockets = Vec::with_capacity(shards);
            for _ in 0..shards {
                let s = bind_reuseport(addr).map_err(|e| {
                    format!("router {:?}: cannot listen on {addr}: {e}", router.label)
                })?;
                if addr.port() == 0 {
                    addr = s.local_addr().map_err(|e| e.to_string())?;
                }
                sockets.push(s);
            }
            out.push(BoundListener {
                router: router.clone(),
                server: server.clone(),
                addr,
                sockets,
            });
        }
    }
    Ok(out)
}

fn bind_reuseport(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    Ok(s.into())
}

/// The CPUs shards run on: one shard per CPU of the process's affinity
/// mask, pinned, or the first `count` of it.
///
/// Without a configured count, a CPU quota (a container's `limits.cpu`
/// without an exclusive cpuset, which `available_parallelism` reads from
/// the cgroup) lowers the count below the mask; those shards are not
/// pinned, since every pod on the node sees the same mask and pinning them
/// all to its first CPUs would pile them up there.
pub fn shard_cpus(count: Option<usize>) -> Vec<Option<core_affinity::CoreId>> {
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let quota = std::thread::available_parallelism().map_or(usize::MAX, usize::from);
    let (n, pin) = match count {
        Some(n) => (n, true),
        None if quota < cores.len() => (quota, false),
        None => (cores.len().max(1), true),
    };
    (0..n)
        .map(|i| {
            if cores.is_empty() || !pin {
                None
            } else {
                Some(cores[i % cores.len()])
            }
        })
        .collect()
}

/// A running proxy.
pub struct Running {
    pub listeners: Vec<(String, SocketAddr)>,
    pub driver: Driver,
    pub routers: Vec<Arc<Router>>,
    /// The snapshot generation each shard has applied.
    pub shard_generations: Vec<Arc<crate::telemetry::ShardReport>>,
    /// Counters of each listener on each shard: (router, address, stats).
    pub listener_metrics: Vec<(String, SocketAddr, Arc<ListenerMetrics>)>,
    /// The discovery thread (stopped when this is dropped).
    pub discovery: Option<crate::discovery::Discovery>,
    /// Each shard's drain signal: closing it (its peer reads the end of
    /// the stream) starts the shard's drain.
    drains: Vec<std::os::unix::net::UnixStream>,
    threads: Vec<std::thread::JoinHandle<()>>,
    /// Each access log's file and its count of dropped lines.
    pub access_logs: Vec<(std::path::PathBuf, Arc<std::sync::atomic::AtomicU64>)>,
    /// Access log writers: each ends, flushed, once the shards are gone.
    log_writers: Vec<std::thread::JoinHandle<()>>,
}

impl Running {
    /// Starts draining: no new connections; in-flight exchanges finish;
    /// idle keep-alive connections close. Returns when every shard is done
    /// or the drain deadline passed.
    pub fn shutdown(self) {
        drop(self.drains);
        for t in self.threads {
            let _ = t.join();
        }
        for t in self.log_writers {
            let _ = t.join();
        }
        drop(self.discovery);
    }
}

/// Starts the shards. Fails (before any shard runs) if a listener cannot be
/// bound or the chosen driver is unavailable.
pub fn start(config: Config, driver: DriverChoice) -> Result<Running, String> {
    let cpus = shard_cpus(config.shards);
    let chosen = choose_driver(driver)?;
    let bound = bind_all(&config, cpus.len())?;
    // Discovery's first full sync happens before any shard serves.
    let discovery = if config.namers.is_empty() {
        None
    } else {
        Some(crate::discovery::start(&config.namers)?)
    };
    let listeners = bound
        .iter()
        .map(|b| (b.router.label.clone(), b.addr))
        .collect();
    // One writer per file, however many routers share it.
    let mut access_logs: HashMap<std::path::PathBuf, crate::access_log::AccessLog> = HashMap::new();
    let mut log_writers = Vec::new();
    for (i, r) in config.routers.iter().enumerate() {
        if let Some(path) = &r.access_log
            && !access_logs.contains_key(path)
        {
            let (log, writer) = crate::access_log::open(path)
                .map_err(|e| format!("routers[{i}].httpAccessLog: {e}"))?;
            access_logs.insert(path.clone(), log);
            log_writers.push(writer);
        }
    }
    let access_log_drops = access_logs
        .iter()
        .map(|(p, l)| (p.clone(), l.dropped()))
        .collect();
    let mut listener_metrics = Vec::new();
    let mut per_shard: Vec<ShardListeners> = (0..cpus.len()).map(|_| Vec::new()).collect();
    for b in bound {
        for (i, s) in b.sockets.into_iter().enumerate() {
            let stats = Arc::new(ListenerMetrics::default());
            listener_metrics.push((b.router.label.clone(), b.addr, stats.clone()));
            let log = b
                .router
                .access_log
                .as_ref()
                .and_then(|p| access_logs.get(p).cloned());
            per_shard[i].push((s, b.router.clone(), b.server.clone(), stats, log));
        }
    }
    let mut drains = Vec::new();
    let mut threads = Vec::new();
    let mut shard_generations = Vec::new();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    // Wakers exist before any shard, so no publish can miss one.
    let (wakers, wake_rxs): (Vec<_>, Vec<_>) = (0..cpus.len())
        .map(|_| crate::discovery::ShardWaker::new())
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| format!("cannot create the shards' wake-up sockets: {e}"))?
        .into_iter()
        .unzip();
    if let Some(d) = &discovery {
        d.published.set_wakers(wakers);
    }
    let mut wake_rxs = wake_rxs.into_iter();
    for (i, (cpu, lis)) in cpus.into_iter().zip(per_shard).enumerate() {
        let (tx, rx) = std::os::unix::net::UnixStream::pair()
            .map_err(|e| format!("cannot create shard {i}'s drain socket: {e}"))?;
        drains.push(tx);
        let settings = ShardSettings {
            drain_timeout: config.drain_timeout,
            metrics: config.metrics,
        };
        let ready = ready_tx.clone();
        let published = discovery.as_ref().map(|d| d.published.clone());
        let wake_rx = wake_rxs.next();
        let report = Arc::new(crate::telemetry::ShardReport::default());
        shard_generations.push(report.clone());
        let t = std::thread::Builder::new()
            .name(format!("shard-{i}"))
            .spawn(move || {
                if let Some(cpu) = cpu {
                    core_affinity::set_for_current(cpu);
                }
                run_shard(
                    i, published, wake_rx, report, chosen, lis, rx, settings, ready,
                );
            })
            .map_err(|e| format!("cannot start shard {i}: {e}"))?;
        threads.push(t);
    }
    drop(ready_tx);
    for _ in 0..threads.len() {
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err("a shard exited during start-up".into()),
        }
    }
    Ok(Running {
        listeners,
        driver: chosen,
        routers: config.routers.clone(),
        shard_generations,
        listener_metrics,
        discovery,
        drains,
        threads,
        log_writers,
        access_logs: access_log_drops,
    })
}

/// io_uring unless told otherwise or unavailable: the probe can pass while
/// building a ring still fails (seccomp, `kernel.io_uring_disabled`,
/// memlock limits), so the choice is confirmed by building one.
pub fn choose_driver(choice: DriverChoice) -> Result<Driver, String> {
    match choice {
        DriverChoice::Epoll => Ok(Driver::Epoll),
        DriverChoice::IoUring | DriverChoice::Auto => {
            let works = monoio::utils::detect_uring()
                && monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
                    .build()
                    .is_ok();
            match (works, choice) {
                (true, _) => Ok(Driver::IoUring),
                (false, DriverChoice::IoUring) => Err(
                    "runtime.driver is io_uring, but io_uring is unavailable or denied here".into(),
                ),
                (false, _) => {
                    tracing::warn!("io_uring is unavailable or denied; falling back to epoll");
                    Ok(Driver::Epoll)
                }
            }
        }
    }
}

type ShardListeners = Vec<(
    std::net::TcpListener,
    Arc<Router>,
    Server,
    Arc<ListenerMetrics>,
    Option<crate::access_log::AccessLog>,
)>;

#[allow(clippy::too_many_arguments)] // one shard's whole start-up state
fn run_shard(
    id: usize,
    published: Option<Arc<Published>>,
    wake: Option<WakeRx>,
    report: Arc<crate::telemetry::ShardReport>,
    driver: Driver,
    listeners: ShardListeners,
    drain: std::os::unix::net::UnixStream,
    settings: ShardSettings,
    ready: std::sync::mpsc::Sender<Result<(), String>>,
) {
    let fut = shard_main(
        id,
        (published, wake),
        report,
        listeners,
        drain,
        settings,
        ready.clone(),
    );
    // Built without monoio's timer driver, which would wrap every park of
    // the shard; the shard's timers are `crate::timer`'s.
    let fut = crate::timer::with_timers(fut);
    crate::proxy::direct::start_shard(driver == Driver::IoUring);
    let built = match driver {
        Driver::IoUring => monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
            .build()
            .map(|mut rt| rt.block_on(fut)),
        Driver::Epoll => monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .build()
            .map(|mut rt| rt.block_on(fut)),
    };
    if let Err(e) = built {
        let _ = ready.send(Err(format!(
            "shard {id}: cannot build the {driver} runtime: {e}"
        )));
    }
}

/// Wake-ups from discovery, a byte per publish burst.
type WakeRx = std::os::unix::net::UnixStream;

async fn shard_main(
    id: usize,
    (published, wake): (Option<Arc<Published>>, Option<WakeRx>),
    report: Arc<crate::telemetry::ShardReport>,
    listeners: ShardListeners,
    drain: std::os::unix::net::UnixStream,
    settings: ShardSettings,
    ready: std::sync::mpsc::Sender<Result<(), String>>,
) {
    use monoio::io::AsyncReadRent as _;
    // Inside the runtime: registering a socket needs its driver. Non-blocking
    // first (monoio leaves that to the caller): under epoll a blocking read
    // would stall the whole shard.
    let socket = |s: std::os::unix::net::UnixStream, what: &str| {
        s.set_nonblocking(true)
            .and_then(|()| monoio::net::UnixStream::from_std(s))
            .map_err(|e| format!("shard {id}: {what} socket: {e}"))
    };
    let (mut drain, wake) = match (
        socket(drain, "drain"),
        wake.map(|w| socket(w, "wake-up")).transpose(),
    ) {
        (Ok(d), Ok(w)) => (d, w),
        (Err(e), _) | (_, Err(e)) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let metrics_enabled = settings.metrics;
    let first = published.as_ref().map(|p| p.load()).unwrap_or_default();
    report.applied.store(
        first.generation.max(1),
        std::sync::atomic::Ordering::Relaxed,
    );
    report.heartbeat_ms.store(
        crate::telemetry::uptime_ms(),
        std::sync::atomic::Ordering::Relaxed,
    );
    let shard = Rc::new(ShardCx {
        pool: Default::default(),
        global: GlobalNamer::new(),
        applied: Cell::new(first.generation),
        applied_report: report,
        snapshot: RefCell::new(first),
        published,
        rng: RefCell::new(Rng::new(0x9e37_79b9_7f4a_7c15 ^ (id as u64 + 1))),
        idle_cancel: RefCell::new(monoio::io::Canceller::new()),
        idle: Default::default(),
        open: Cell::new(0),
        outstanding: Default::default(),
        snapshot_waiters: Default::default(),
        spare_writes: Default::default(),
    });
    let mut accept_tasks = Vec::new();
    for (std_listener, router, server, stats, access_log) in listeners {
        let listener = match monoio::net::TcpListener::from_std(std_listener) {
            Ok(l) => l,
            Err(e) => {
                let _ = ready.send(Err(format!("shard {id}: listener: {e}")));
                return;
            }
        };
        let lis = Rc::new(ListenerCx {
            router,
            server,
            metrics: stats,
            metrics_enabled,
            access_log,
            names: Default::default(),
            endpoints: Default::default(),
            cache: Default::default(),
            open: Cell::new(0),
        });
        accept_tasks.push(monoio::spawn(accept_loop(listener, lis, shard.clone())));
    }
    // Applies each new snapshot as it is published, so an idle shard is
    // current too (and says so), and wakes requests waiting on a pending
    // name.
    if let Some(mut wake) = wake {
        let shard = shard.clone();
        monoio::spawn(async move {
            let mut buf = vec![0u8; 64];
            loop {
                let (read, b) = wake.read(buf).await;
                buf = b;
                // An error (the stream cannot end while this shard holds
                // `published`, which holds the other end): stop listening.
                if !matches!(read, Ok(n) if n > 0) {
                    break;
                }
                if let Some(w) = shard.published.as_ref().and_then(|p| p.wakers().get(id)) {
                    w.taken();
                }
                shard.refresh();
                shard.snapshot_moved();
            }
        });
    }
    // A heartbeat, so /live can tell a stuck shard from a quiet one.
    {
        let (shard, report) = (shard.clone(), shard.applied_report.clone());
        monoio::spawn(async move {
            while !shard.draining() {
                report.heartbeat_ms.store(
                    crate::telemetry::uptime_ms(),
                    std::sync::atomic::Ordering::Relaxed,
                );
                crate::timer::sleep(LIVENESS_HEARTBEAT).await;
            }
        });
    }
    let _ = ready.send(Ok(()));
    // Runs until the process asks this shard to drain: it closes the other
    // end (nothing is ever written to it).
    let _ = drain.read(vec![0u8; 1]).await;
    // Ends every wait for a next request, then stops the accept loops;
    // exchanges in flight continue.
    shard.idle.drain();
    let old = shard.idle_cancel.replace(monoio::io::Canceller::new());
    drop(old.cancel());
    for t in accept_tasks {
        t.await;
    }
    let deadline = monoio::time::Instant::now() + settings.drain_timeout;
    while shard.open.get() > 0 && monoio::time::Instant::now() < deadline {
        crate::timer::sleep(Duration::from_millis(10)).await;
    }
    shard.pool.clear();
    if shard.open.get() > 0 {
        tracing::warn!(
            shard = id,
            open = shard.open.get(),
            "drain deadline passed; closing connections"
        );
    }
}

async fn accept_loop(listener: monoio::net::TcpListener, lis: Rc<ListenerCx>, shard: Rc<ShardCx>) {
    loop {
        let handle = shard.idle_cancel.borrow().handle();
        let accepted = listener.cancelable_accept(handle).await;
        if shard.draining() {
            return;
        }
        match accepted {
            Ok((stream, peer)) => {
                if lis.open.get() >= lis.server.connections_max {
                    // Full: refuse cleanly rather than queue without bound.
                    lis.metrics.connections_refused.inc();
                    monoio::spawn(refuse(stream));
                    continue;
                }
                monoio::spawn(serve_connection(stream, peer, shard.clone(), lis.clone()));
            }
            Err(e) => {
                // Out of file descriptors and similar: back off briefly
                // instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                crate::timer::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

async fn refuse(mut stream: monoio::net::TcpStream) {
    use monoio::io::AsyncWriteRentExt;
    let msg: &'static [u8] =
        b"HTTP/1.1 503 Service Unavailable\r\nl5d-err: connection%20limit%20reached\r\n\
l5d-retryable: true\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
    let _ = crate::timer::timeout(Duration::from_secs(1), stream.write_all(msg)).await;
}
