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
    /// Inspect dtabs and delegation without running a proxy.
    #[command(subcommand)]
    Dtab(DtabCommand),
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
        Command::Dtab(DtabCommand::Parse { dtab }) => cli::parse(dtab),
        Command::Dtab(DtabCommand::Lookup { dtab, path }) => cli::lookup(dtab, path),
        Command::Dtab(DtabCommand::Bind(o)) => cli::bind(&o.args()),
        Command::Dtab(DtabCommand::Explain(o)) => cli::explain(&o.args()),
    };
    print!("{}", out.stdout);
    eprint!("{}", out.stderr);
    ExitCode::from(u8::try_from(out.code).unwrap_or(1))
}
