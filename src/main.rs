//! The `switchyard` command line.

use clap::{Parser, Subcommand};
use std::process::ExitCode;
use switchyard::cli;

#[derive(Parser)]
#[command(
    name = "switchyard",
    version,
    about = "A shard-per-core HTTP/1.1 proxy with linkerd-1 dtab routing"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy with a config file until SIGTERM or SIGINT.
    Run {
        /// YAML config (linkerd-1 shape: routers with servers and dtabs).
        #[arg(long)]
        config: std::path::PathBuf,
        /// IO driver: auto (io_uring, else epoll), io_uring, or epoll.
        /// Overrides runtime.driver.
        #[arg(long)]
        driver: Option<switchyard::config::DriverChoice>,
    },
    /// Validate a config file and print the effective routers.
    CheckConfig { file: std::path::PathBuf },
    /// Run linkerd's Part VI staging example on loopback (apps, routers,
    /// file namers) until Ctrl-C.
    Demo {
        #[arg(long, default_value_t = 4142)]
        ingress_port: u16,
        #[arg(long, default_value_t = 4140)]
        outgoing_port: u16,
        #[arg(long, default_value_t = 4141)]
        incoming_port: u16,
        /// The admin server (dtab playground at /delegator).
        #[arg(long, default_value_t = 9990)]
        admin_port: u16,
        #[arg(long)]
        driver: Option<switchyard::config::DriverChoice>,
    },
    /// One of the demo's apps, for the Kubernetes demo's containers.
    #[command(subcommand)]
    DemoApp(DemoApp),
    /// Inspect dtabs and delegation without running a proxy.
    #[command(subcommand)]
    Dtab(DtabCommand),
}

#[derive(Subcommand)]
enum DemoApp {
    /// Answers `<text> (<address>)`.
    World {
        #[arg(long, default_value = "0.0.0.0:7778")]
        listen: String,
        #[arg(long, default_value = "world")]
        text: String,
    },
    /// Calls `world` through the proxy and answers `Hello (<address>) <world>!!`.
    Hello {
        #[arg(long, default_value = "0.0.0.0:7777")]
        listen: String,
        /// The outgoing router (the node's proxy), host:port.
        #[arg(long, default_value = "127.0.0.1:4140")]
        proxy: String,
    },
}

#[derive(Subcommand)]
enum DtabCommand {
    /// Print the canonical form of a dtab, or the parse error (exit 2).
    Parse { dtab: String },
    /// Print the tree of one lookup step of PATH through DTAB.
    Lookup {
        #[arg(long)]
        dtab: String,
        path: String,
    },
    /// Bind PATH through DTAB ++ LOCAL and the namers; print JSON.
    Bind(BindOpts),
    /// Print the delegation tree of PATH (the admin `/delegator.json` shape).
    Explain(BindOpts),
}

#[derive(clap::Args)]
struct BindOpts {
    /// The router's dtab.
    #[arg(long)]
    dtab: String,
    /// A local dtab (what `l5d-ctx-dtab` and `l5d-dtab` would carry).
    #[arg(long)]
    local: Option<String>,
    /// JSON file mapping bound ids to addresses, e.g.
    /// {"/#/io.l5d.fs/world-v1": ["127.0.0.1:7001"]}; absent ids are Neg.
    #[arg(long)]
    endpoints: Option<String>,
    /// Lookups allowed along one branch (default 100, as Finagle).
    #[arg(long)]
    max_depth: Option<usize>,
    path: String,
}

impl BindOpts {
    fn args(&self) -> cli::BindArgs<'_> {
        cli::BindArgs {
            dtab: &self.dtab,
            local: self.local.as_deref(),
            endpoints: self.endpoints.as_deref(),
            max_depth: self.max_depth,
            path: &self.path,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let out = match &cli.command {
        Command::Run { config, driver } => return run(config, *driver),
        Command::CheckConfig { file } => return check_config(file),
        Command::Demo {
            ingress_port,
            outgoing_port,
            incoming_port,
            admin_port,
            driver,
        } => {
            let ports = switchyard::demo::DemoPorts {
                ingress: *ingress_port,
                outgoing: *outgoing_port,
                incoming: *incoming_port,
                admin: *admin_port,
            };
            return demo(ports, *driver);
        }
        Command::DemoApp(app) => return demo_app(app),
        Command::Dtab(DtabCommand::Parse { dtab }) => cli::parse(dtab),
        Command::Dtab(DtabCommand::Lookup { dtab, path }) => cli::lookup(dtab, path),
        Command::Dtab(DtabCommand::Bind(o)) => cli::bind(&o.args()),
        Command::Dtab(DtabCommand::Explain(o)) => cli::explain(&o.args()),
    };
    emit(&out.stdout, &out.stderr);
    ExitCode::from(u8::try_from(out.code).unwrap_or(1))
}

fn init_logs() {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("SWITCHYARD_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

fn run(config: &std::path::Path, driver: Option<switchyard::config::DriverChoice>) -> ExitCode {
    init_logs();
    let cfg = match switchyard::config::Config::load(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("switchyard: invalid config {}: {e}", config.display());
            return ExitCode::from(2);
        }
    };
    // Signals are taken before any shard starts, so a SIGTERM during
    // start-up still drains.
    let mut signals = match signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("switchyard: cannot install signal handlers: {e}");
            return ExitCode::from(1);
        }
    };
    let choice = driver.unwrap_or(cfg.driver);
    let admin_addr = cfg.admin;
    let running = match switchyard::runtime::start(cfg, choice) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("switchyard: {e}");
            return ExitCode::from(1);
        }
    };
    let _admin = match admin_addr.map(|a| start_admin(a, &running)).transpose() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("switchyard: {e}");
            running.shutdown();
            return ExitCode::from(1);
        }
    };
    tracing::info!(driver = %running.driver, "shards started");
    for (label, addr) in &running.listeners {
        // A stable line that scripts and tests read the bound port from.
        eprintln!(
            "switchyard: router {label} listening on {addr} (driver {})",
            running.driver
        );
    }
    if let Some(sig) = signals.forever().next() {
        tracing::info!(signal = sig, "draining");
    }
    running.shutdown();
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

fn check_config(file: &std::path::Path) -> ExitCode {
    use std::fmt::Write as _;
    match switchyard::config::Config::load(file) {
        Ok(c) => {
            let mut out = String::new();
            let _ = writeln!(
                out,
                "runtime: driver {:?}, shards {:?}, drain {:?}",
                c.driver, c.shards, c.drain_timeout
            );
            for r in &c.routers {
                let _ = writeln!(out, "router {}:", r.label);
                let _ = writeln!(out, "  dtab: {}", r.dtab.dtab().show());
                let _ = writeln!(
                    out,
                    "  identifier: {:?} under {}",
                    r.identifier.kind,
                    r.identifier.dst_prefix.show()
                );
                for s in &r.servers {
                    let _ = writeln!(
                        out,
                        "  server {} trust {:?} connectionsMax {}",
                        s.addr, s.trust, s.connections_max
                    );
                }
                let _ = writeln!(out, "  timeouts: {:?}", r.timeouts);
                let _ = writeln!(out, "  limits: {:?}", r.limits);
            }
            emit(&out, "");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("switchyard: invalid config {}: {e}", file.display());
            ExitCode::from(2)
        }
    }
}

/// Writes command output; a closed pipe (`| head`) is not an error.
fn emit(stdout: &str, stderr: &str) {
    use std::io::Write;
    let _ = std::io::stdout().write_all(stdout.as_bytes());
    let _ = std::io::stderr().write_all(stderr.as_bytes());
}

fn demo(
    ports: switchyard::demo::DemoPorts,
    driver: Option<switchyard::config::DriverChoice>,
) -> ExitCode {
    init_logs();
    let dir = std::env::temp_dir().join(format!("switchyard-demo-{}", std::process::id()));
    let outcome = (|| -> Result<(), String> {
        switchyard::demo::start_apps(&dir, ports)
            .map_err(|e| format!("cannot start the demo apps: {e}"))?;
        let cfg =
            switchyard::config::Config::from_yaml(&switchyard::demo::demo_config(&dir, ports))
                .map_err(|e| format!("demo config: {e}"))?;
        let mut signals = signal_hook::iterator::Signals::new([
            signal_hook::consts::SIGTERM,
            signal_hook::consts::SIGINT,
        ])
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
        let choice = driver.unwrap_or(cfg.driver);
        let running = switchyard::runtime::start(cfg, choice).map_err(|e| {
            format!("{e}\n(ports in use? choose others with --ingress-port, --outgoing-port, --incoming-port)")
        })?;
        for (label, addr) in &running.listeners {
            eprintln!(
                "switchyard: router {label} listening on {addr} (driver {})",
                running.driver
            );
        }
        let admin = match start_admin(([127, 0, 0, 1], ports.admin).into(), &running) {
            Ok(a) => a,
            Err(e) => {
                running.shutdown();
                return Err(format!(
                    "{e}\n(port in use? choose another with --admin-port)"
                ));
            }
        };
        emit(&switchyard::demo::instructions(ports), "");
        if let Some(sig) = signals.forever().next() {
            tracing::info!(signal = sig, "draining");
        }
        drop(admin);
        running.shutdown();
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&dir);
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switchyard: {e}");
            ExitCode::from(1)
        }
    }
}

fn demo_app(app: &DemoApp) -> ExitCode {
    let (listen, start): (&str, Box<dyn FnOnce(std::net::TcpListener)>) = match app {
        DemoApp::World { listen, text } => {
            let text = text.clone();
            (listen, Box::new(move |l| switchyard::demo::world(l, text)))
        }
        DemoApp::Hello { listen, proxy } => {
            let proxy: std::net::SocketAddr =
                match std::net::ToSocketAddrs::to_socket_addrs(proxy.as_str())
                    .ok()
                    .and_then(|mut a| a.next())
                {
                    Some(a) => a,
                    None => {
                        eprintln!("switchyard: --proxy {proxy}: not an address");
                        return ExitCode::from(2);
                    }
                };
            (listen, Box::new(move |l| switchyard::demo::hello(l, proxy)))
        }
    };
    let listener = match std::net::TcpListener::bind(listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("switchyard: cannot listen on {listen}: {e}");
            return ExitCode::from(1);
        }
    };
    start(listener);
    // The app serves from its own threads until the process is stopped.
    let mut signals = match signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ]) {
        Ok(s) => s,
        Err(_) => return ExitCode::from(1),
    };
    let _ = signals.forever().next();
    ExitCode::SUCCESS
}

fn start_admin(
    addr: std::net::SocketAddr,
    running: &switchyard::runtime::Running,
) -> Result<switchyard::admin::Admin, String> {
    let state = switchyard::admin::AdminState {
        routers: running.routers.clone(),
        listener_metrics: running.listener_metrics.clone(),
        published: running.discovery.as_ref().map(|d| d.published.clone()),
        shard_generations: running.shard_generations.clone(),
        listeners: running.listeners.clone(),
        driver: running.driver.to_string(),
        access_logs: running.access_logs.clone(),
    };
    let admin = switchyard::admin::start(addr, state)?;
    eprintln!("switchyard: admin listening on {}", admin.addr);
    Ok(admin)
}
