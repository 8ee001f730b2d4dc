//! crowd's developer tasks. `cargo xtask setup | build | build-and-attach | test | bench`.
//!
//! Every task that needs the toolchain runs `setup` first, and `setup` installs only what is
//! missing, so the README's two commands work on a fresh Debian machine.
mod setup;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask", about = "crowd developer tasks")]
struct Args {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what is missing: Debian packages, rust-src, bpf-linker; mount bpffs.
    Setup,
    /// Build everything (release).
    Build,
    /// Set up, build, attach to the default-route interface (or --iface) and run the daemon.
    BuildAndAttach {
        /// Interface(s) to protect.
        #[arg(long)]
        iface: Vec<String>,
        /// Extra arguments for `crowd run`.
        #[arg(last = true)]
        rest: Vec<String>,
    },
    /// Set up and run every test, privileged ones included (needs root).
    Test {
        /// Extra arguments for `cargo test`.
        #[arg(last = true)]
        rest: Vec<String>,
    },
    /// Fuzz a target with libFuzzer (`log_line`, `expression`); installs cargo-fuzz and a
    /// nightly toolchain when missing.
    Fuzz {
        /// Which target.
        #[arg(default_value = "log_line")]
        target: String,
        /// How long to run, in seconds.
        #[arg(long, default_value_t = 60)]
        secs: u64,
    },
    /// Benchmarks that print figures: `dataplane`, `engine`, `lapi`, `community`, `console`.
    Bench {
        /// Which benchmark.
        #[arg(default_value = "dataplane")]
        which: String,
        /// Smaller sizes and fewer repeats (a quick look).
        #[arg(long)]
        quick: bool,
    },
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("+ {cmd:?}");
    let st = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !st.success() {
        bail!("{cmd:?} failed: {st}");
    }
    Ok(())
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(root());
    c
}

fn build() -> Result<()> {
    run(cargo().args(["build", "--release", "--bins"]))
}

fn main() -> Result<()> {
    let args = Args::parse();
    match args.task {
        Task::Setup => setup::all(),
        Task::Build => {
            setup::all()?;
            build()
        }
        Task::BuildAndAttach { iface, rest } => {
            setup::all()?;
            build()?;
            let mut c = Command::new(root().join("target/release/crowd"));
            c.arg("run");
            for i in iface {
                c.args(["--iface", &i]);
            }
            c.args(rest);
            run(&mut c)
        }
        Task::Test { rest } => {
            setup::all()?;
            setup::test_services()?;
            // Formatting and lints first: cheap, and CI must keep them clean.
            run(cargo().args(["fmt", "--all", "--", "--check"]))?;
            // The default members: everything but the BPF crate, which build.rs builds for its target.
            run(cargo().args(["clippy", "--all-targets", "--", "-D", "warnings"]))?;
            run(cargo().args(["build", "--bins"]))?;
            run(cargo().args(["test"]).args(rest))
        }
        Task::Fuzz { target, secs } => {
            let has =
                |what: &str, args: &[&str]| Command::new(what).args(args).output().is_ok_and(|o| o.status.success());
            if !has("rustup", &["run", "nightly", "rustc", "--version"]) {
                run(Command::new("rustup").args(["toolchain", "install", "nightly", "--profile", "minimal"]))?;
            }
            if !has("cargo", &["fuzz", "--version"]) {
                run(cargo().args(["install", "cargo-fuzz", "--locked"]))?;
            }
            let mut c = Command::new("cargo");
            c.current_dir(root().join("fuzz"))
                // The fuzzed code is the engine: the BPF object is not needed.
                .env("CROWD_SKIP_EBPF", "1")
                .args(["+nightly", "fuzz", "run", &target, "--", &format!("-max_total_time={secs}")]);
            run(&mut c)
        }
        Task::Bench { which, quick } => {
            setup::all()?;
            match which.as_str() {
                "dataplane" | "engine" | "lapi" | "community" | "console" => {
                    if which == "lapi" {
                        // wrk loads the API; CrowdSec 1.4.6 is measured beside it.
                        setup::install(&["wrk"])?;
                        setup::test_services()?;
                    }
                    if which == "engine" {
                        // Debian's crowdsec 1.4.6 rule set is one of the measured configurations.
                        setup::crowdsec()?;
                    }
                    build()?;
                    let mut c = cargo();
                    c.args(["bench", "-p", "crowd-tests", "--bench", &which]);
                    if quick {
                        c.env("CROWD_BENCH_QUICK", "1");
                    }
                    run(&mut c)
                }
                other => bail!("unknown benchmark `{other}` (known: dataplane, engine, lapi, community, console)"),
            }
        }
    }
}
