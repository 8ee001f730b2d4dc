//! The `crowd` command line: argument definitions and dispatch to one module per command group.
//!
//! Every command prints a human table by default and JSON with `-o json`. Commands under `map`
//! work straight on the pinned kernel maps and need no running daemon.
pub mod alerts;
pub mod allowlist;
pub mod attach;
pub mod community;
pub mod console;
pub mod decisions;
pub mod enforce;
pub mod hubtest;
pub mod import;
pub mod lapi;
pub mod map;
pub mod output;
pub mod replay;
pub mod simulation;

use std::{path::PathBuf, time::Duration};

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::enforce::{Settings, attach::Mode};

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    Table,
    /// JSON for programs.
    Json,
}

/// crowd: collaborative intrusion prevention with XDP enforcement.
#[derive(Debug, Parser)]
#[command(name = "crowd", version, about)]
pub struct Cli {
    /// bpffs directory holding crowd's pinned maps and links.
    #[arg(long, global = true, env = "CROWD_PIN_DIR", default_value = crate::enforce::DEFAULT_PIN_DIR)]
    pub pin_dir: PathBuf,
    /// Output format.
    #[arg(short, long, global = true, value_enum, default_value_t = Format::Table)]
    pub output: Format,
    /// The store: a `postgres://` URL (a store shared by many agents) or a SQLite file
    /// (default: `crowd.db` in the state directory).
    #[arg(long, global = true, env = "CROWD_DB", hide_env_values = true)]
    pub db: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Map capacities, used when maps are created (existing pins of another size are migrated).
#[derive(Clone, Copy, Debug, clap::Args)]
pub struct Capacities {
    /// Exact bans per address family.
    #[arg(long, default_value_t = crowd_common::capacity::EXACT)]
    pub max_bans: u32,
    /// Range (CIDR) bans per address family.
    #[arg(long, default_value_t = crowd_common::capacity::RANGES)]
    pub max_ranges: u32,
    /// Allowlist entries per address family.
    #[arg(long, default_value_t = crowd_common::capacity::ALLOW)]
    pub max_allow: u32,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
// Parsed once per process: the size of its largest variant (the daemon's options) is no cost.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Attach the XDP enforcer to interfaces (pinned: it stays after crowd exits).
    Attach {
        /// Interface(s) to protect.
        #[arg(long, required = true)]
        iface: Vec<String>,
        /// XDP mode.
        #[arg(long, value_enum, default_value_t = Mode::Auto)]
        mode: Mode,
        #[command(flatten)]
        caps: Capacities,
    },
    /// Detach the enforcer from interfaces.
    Detach {
        /// Interface(s) to release.
        #[arg(long, required_unless_present = "all")]
        iface: Vec<String>,
        /// Every interface crowd is attached to.
        #[arg(long)]
        all: bool,
        /// Also remove the pinned maps (all bans) once nothing is attached.
        #[arg(long)]
        purge: bool,
    },
    /// Run the daemon in the foreground: attach, keep the maps swept, exit leaving enforcement on.
    Run {
        /// Interface(s) to protect (default: the interface of the default route).
        #[arg(long)]
        iface: Vec<String>,
        /// XDP mode.
        #[arg(long, value_enum, default_value_t = Mode::Auto)]
        mode: Mode,
        /// How often expired bans are swept from the maps.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
        sweep_every: Duration,
        /// How often the prefilter bitmaps are rebuilt (clears the bits of removed bans).
        #[arg(long, value_parser = humantime::parse_duration, default_value = "5m")]
        rebuild_every: Duration,
        #[command(flatten)]
        caps: Capacities,
        #[command(flatten)]
        detect: crate::daemon::Options,
    },
    /// Run only the XDP enforcer, fed by a remote Local API (an edge host of a fleet).
    Enforce {
        /// Interface(s) to protect.
        #[arg(long, required = true)]
        iface: Vec<String>,
        /// XDP mode.
        #[arg(long, value_enum, default_value_t = Mode::Auto)]
        mode: Mode,
        #[command(flatten)]
        caps: Capacities,
        #[command(flatten)]
        args: crate::daemon::puller::Options,
    },
    /// Inspect and edit the kernel ban maps directly (no daemon needed).
    Map {
        #[command(subcommand)]
        command: map::MapCommand,
    },
    /// Run log files through the whole detection pipeline (their own timestamps are the clock)
    /// and print the alerts and decisions.
    Replay {
        /// The log type (`syslog`, `nginx`, ...): selects the parsers.
        #[arg(long = "type")]
        kind: String,
        /// A hub-layout folder of parsers and scenarios, or an installed CrowdSec's configuration
        /// directory such as `/etc/crowdsec` (default: crowd's embedded rules).
        #[arg(long)]
        config: Option<PathBuf>,
        /// A CrowdSec `profiles.yaml` (default: `<config>/profiles.yaml` if present, else
        /// CrowdSec's default profiles).
        #[arg(long)]
        profiles: Option<PathBuf>,
        #[command(flatten)]
        tuning: crate::rules::Tuning,
        /// Log files (`-` reads standard input).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Show what each parser stage makes of one line and which scenarios it feeds.
    Explain {
        /// The log type.
        #[arg(long = "type")]
        kind: String,
        /// A hub-layout folder of parsers and scenarios, or an installed CrowdSec's configuration
        /// directory such as `/etc/crowdsec` (default: crowd's embedded rules).
        #[arg(long)]
        config: Option<PathBuf>,
        /// The line.
        line: String,
    },
    /// Decisions in the store (applied to the kernel maps at once).
    Decisions {
        /// Where the store lives.
        #[arg(long, global = true, default_value = "/var/lib/crowd")]
        state_dir: PathBuf,
        #[command(subcommand)]
        command: decisions::DecisionsCommand,
    },
    /// Serve the Local API alone (CrowdSec's bouncer and agent API; no enforcement here).
    Api {
        /// Address to listen on.
        #[arg(long, default_value = lapi::DEFAULT_LISTEN)]
        listen: std::net::SocketAddr,
        /// Where the store lives.
        #[arg(long, default_value = "/var/lib/crowd")]
        state_dir: PathBuf,
        /// A CrowdSec `profiles.yaml` for alerts pushed without decisions.
        #[arg(long)]
        profiles: Option<PathBuf>,
        /// CrowdSec `http` notification files (`*.yaml`) named by the profiles.
        #[arg(long)]
        notifications: Option<PathBuf>,
        /// Where Prometheus metrics are served.
        #[arg(long, default_value = lapi::DEFAULT_METRICS)]
        metrics_listen: std::net::SocketAddr,
        /// Do not serve metrics.
        #[arg(long)]
        no_metrics: bool,
        #[command(flatten)]
        tls: crate::lapi::tls::TlsArgs,
        #[command(flatten)]
        member: crate::community::member::runner::MemberArgs,
        #[command(flatten)]
        console: crate::console::ConsoleArgs,
    },
    /// Bouncers allowed to pull decisions (API keys).
    Bouncers {
        /// Where the store lives.
        #[arg(long, global = true, default_value = "/var/lib/crowd")]
        state_dir: PathBuf,
        #[command(subcommand)]
        command: lapi::BouncersCommand,
    },
    /// A community: joining one as a member, or running the server and its operator's commands.
    Community {
        /// State directory: the daemon's for `register`, `status`, `unregister`
        /// (default /var/lib/crowd), the server's for the others (default /var/lib/crowd-community,
        /// its store; `community.yaml` beside it by default).
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// The server's configuration.
        #[arg(long)]
        config: Option<PathBuf>,
        /// What to do.
        #[command(subcommand)]
        command: community::CommunityCommand,
    },
    /// Machines (agents) allowed to push alerts.
    Machines {
        /// Where the store lives.
        #[arg(long, global = true, default_value = "/var/lib/crowd")]
        state_dir: PathBuf,
        #[command(subcommand)]
        command: lapi::MachinesCommand,
    },
    /// The allowlist every decision is checked against (never banned, whoever decides).
    Allowlist {
        /// Where the store lives.
        #[arg(long, global = true, default_value = "/var/lib/crowd")]
        state_dir: PathBuf,
        #[command(subcommand)]
        command: allowlist::AllowlistCommand,
    },
    /// The web console (served by `crowd run` and `crowd api` under /console/): its users.
    Console {
        /// Where the store lives.
        #[arg(long, global = true, default_value = "/var/lib/crowd")]
        state_dir: PathBuf,
        #[command(subcommand)]
        command: console::ConsoleCommand,
    },
    /// Alerts in the store, with their decisions.
    Alerts {
        /// Where the store lives.
        #[arg(long, global = true, default_value = "/var/lib/crowd")]
        state_dir: PathBuf,
        #[command(subcommand)]
        command: alerts::AlertsCommand,
    },
    /// Show the Prometheus metrics of a running daemon or `crowd api`.
    Metrics {
        /// The metrics endpoint.
        #[arg(long, default_value = "http://127.0.0.1:6060/metrics")]
        url: String,
    },
    /// Scenarios crowd runs.
    Scenarios {
        #[command(subcommand)]
        command: ScenariosCommand,
    },
    /// Simulation: scenarios whose decisions are recorded, not enforced (CrowdSec's
    /// `simulation.yaml`, in the state directory).
    Simulation {
        /// Where the settings live.
        #[arg(long, global = true, default_value = "/var/lib/crowd")]
        state_dir: PathBuf,
        #[command(subcommand)]
        command: simulation::SimulationCommand,
    },
    /// Run CrowdSec hub tests through crowd's engine.
    Hubtest {
        #[command(subcommand)]
        command: HubtestCommand,
    },
}

/// `crowd scenarios` subcommands.
#[derive(Debug, Subcommand)]
pub enum ScenariosCommand {
    /// List them, with their kind and simulation state.
    List {
        /// A hub-layout folder or an installed CrowdSec's configuration directory (default:
        /// crowd's embedded scenarios).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Where the simulation settings live.
        #[arg(long, default_value = "/var/lib/crowd")]
        state_dir: PathBuf,
    },
}

/// `crowd hubtest` subcommands.
#[derive(Debug, Subcommand)]
pub enum HubtestCommand {
    /// Run one test folder and write `parser-dump.json` and `bucket-dump.json`.
    Run {
        /// The hub folder the test's parsers and scenarios come from (or an installed CrowdSec's
        /// configuration directory, whose `config.yaml` names its hub).
        #[arg(long)]
        hub: PathBuf,
        /// Where to write the dumps.
        #[arg(long)]
        out: PathBuf,
        /// The test folder (with `config.yaml` and the log file).
        test: PathBuf,
    },
}

impl Cli {
    /// The store of `state_dir` (or `--db`), with the state directory made (or tightened) to be
    /// crowd's alone.
    fn store(&self, state_dir: &std::path::Path) -> Result<crate::store::Location> {
        crate::rules::state_dir(state_dir)?;
        Ok(crate::store::Location::new(state_dir, self.db.as_deref()))
    }

    fn settings(&self, caps: Option<Capacities>) -> Settings {
        let mut s = Settings::new(&self.pin_dir);
        if let Some(c) = caps {
            s.exact_capacity = c.max_bans;
            s.range_capacity = c.max_ranges;
            s.allow_capacity = c.max_allow;
        }
        s
    }
}

/// Runs the parsed command line.
///
/// # Errors
/// Whatever the command reports; `main` prints it with its causes.
pub fn dispatch(cli: Cli) -> Result<()> {
    match &cli.command {
        Command::Attach { iface, mode, caps } => attach::attach(&cli.settings(Some(*caps)), iface, *mode, cli.output),
        Command::Detach { iface, all, purge } => attach::detach(&cli.settings(None), iface, *all, *purge, cli.output),
        Command::Run { iface, mode, sweep_every, rebuild_every, caps, detect } => {
            let detect = crate::daemon::Options { db: cli.db.clone(), ..detect.clone() };
            crate::daemon::run(&cli.settings(Some(*caps)), iface, *mode, *sweep_every, *rebuild_every, &detect)
        }
        Command::Enforce { iface, mode, caps, args } => enforce::run(&cli.settings(Some(*caps)), iface, *mode, args),
        Command::Map { command } => map::dispatch(&cli.settings(None), command, cli.output),
        Command::Hubtest { command: HubtestCommand::Run { hub, out, test } } => hubtest::run(hub, out, test),
        Command::Decisions { state_dir, command } => {
            decisions::dispatch(&cli.settings(None), &cli.store(state_dir)?, command, cli.output)
        }
        Command::Replay { kind, config, profiles, tuning, files } => {
            replay::replay(kind, files, config.as_ref(), profiles.as_ref(), *tuning, cli.output)
        }
        Command::Explain { kind, config, line } => replay::explain(kind, line, config.as_ref(), cli.output),
        Command::Api {
            listen,
            state_dir,
            profiles,
            notifications,
            metrics_listen,
            no_metrics,
            tls,
            member,
            console,
        } => {
            // `crowd simulation` settings hold for alerts pushed to the API too.
            let p = crate::rules::enforcing_profile(None, profiles.as_ref(), state_dir, false)?;
            let m = if *no_metrics { None } else { Some(*metrics_listen) };
            let notify = crate::rules::notifiers(notifications.as_ref(), None)?;
            let member = Some((state_dir.as_path(), member.options()));
            let console = crate::console::Options { remote: console.console_remote, ..Default::default() };
            lapi::serve(*listen, m, member, &cli.store(state_dir)?, p, notify, tls, console)
        }
        Command::Metrics { url } => lapi::show_metrics(url, cli.output),
        Command::Alerts { state_dir, command } => alerts::dispatch(&cli.store(state_dir)?, command, cli.output),
        Command::Console { state_dir, command } => console::dispatch(&cli.store(state_dir)?, command, cli.output),
        Command::Allowlist { state_dir, command } => allowlist::dispatch(&cli.store(state_dir)?, command, cli.output),
        Command::Scenarios { command: ScenariosCommand::List { config, state_dir } } => {
            replay::list_scenarios(config.as_ref(), state_dir, cli.output)
        }
        Command::Simulation { state_dir, command } => simulation::dispatch(state_dir, command, cli.output),
        Command::Bouncers { state_dir, command } => lapi::bouncers(&cli.store(state_dir)?, command, cli.output),
        Command::Community { state_dir, config, command } => {
            let dir = state_dir.clone().unwrap_or_else(|| community::default_state_dir(command));
            let cfg = config.clone().unwrap_or_else(|| community::default_config(&dir));
            community::dispatch(&dir, &cli.store(&dir)?, &cfg, command, cli.output)
        }
        Command::Machines { state_dir, command } => lapi::machines(&cli.store(state_dir)?, command, cli.output),
    }
}
