//! What detection is built from, for every process that detects or decides (`crowd run`,
//! `crowd api`, `crowd replay`, `crowd explain`, `crowd scenarios list`): the rules of `--config`
//! (a hub-layout folder or an installed CrowdSec's configuration directory) or the embedded
//! ones, the profiles, the simulation settings (CrowdSec's `simulation.yaml`), the notifiers, and
//! the store opened for them. Every error names the file it comes from.
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chrono::Datelike;
use serde::{Deserialize, Serialize};

use crate::{
    config::{self, crowdsec::ConfigDir},
    detect::Detector,
    engine::profile::Profile,
    store::{Location, Store},
};

/// The profile: CrowdSec's defaults, or the profiles of `profiles` (a `profiles.yaml`), else of
/// `<config>/profiles.yaml` when that exists.
///
/// # Errors
/// An unreadable or invalid profiles file (nothing of it is used).
pub fn profile(config_dir: Option<&PathBuf>, profiles: Option<&PathBuf>) -> Result<Profile> {
    let from_config = match config_dir {
        Some(d) => ConfigDir::open(d)?.profiles(),
        None => None,
    };
    let path = profiles.cloned().or(from_config);
    let mut p = Profile::default();
    if let Some(path) = path {
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading `{}`", path.display()))?;
        p.rules = crate::engine::profile::load_rules(&path, &text)?;
    }
    Ok(p)
}

/// How detection is sized: `crowd run`'s and `crowd replay`'s flags alike.
#[derive(Clone, Copy, Debug, clap::Args)]
pub struct Tuning {
    /// Memory for detection state (buckets): past it, the buckets least likely to overflow are
    /// evicted (counted per scenario in `crowd_bucket_evictions_total`), never the ones close to
    /// overflowing. E.g. `256MiB`, `1GiB`.
    #[arg(long, default_value = "256MiB", value_parser = crate::config::byte_size)]
    pub max_memory: usize,
    /// IPv6 sources are counted per network of this many bits by the scenarios that group by
    /// `IpPrefix` (crowd's own do) and banned as that range; IPv4 sources stay per address.
    /// 128 counts each IPv6 address alone.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u8).range(1..=128))]
    pub ipv6_prefix: u8,
}

impl Tuning {
    /// Sizes `d` so.
    pub fn apply(&self, d: &mut Detector) {
        d.set_ipv6_prefix(self.ipv6_prefix);
        d.set_memory_budget(self.max_memory);
    }
}

/// Builds a detector from `--config DIR` (a hub-layout folder) or the embedded defaults.
///
/// # Errors
/// Configuration that does not load, with file, line and field.
pub fn detector(config_dir: Option<&PathBuf>, profile: Profile) -> Result<Detector> {
    detector_with(config_dir, profile, false)
}

/// [`detector`]; with `skip_invalid`, files that do not load are left out (each named in a
/// warning) instead of refusing to start.
///
/// # Errors
/// Configuration that does not load (without `skip_invalid`), with file, line and field.
pub fn detector_with(config_dir: Option<&PathBuf>, profile: Profile, skip_invalid: bool) -> Result<Detector> {
    let (pipeline, env, scenarios) = load(config_dir, skip_invalid)?;
    let post = match config_dir {
        Some(dir) => {
            let (post, skipped) = ConfigDir::open(dir)?.hub.postoverflows(&env, skip_invalid)?;
            for err in &skipped {
                tracing::warn!(error = %err, "skipped: this postoverflow did not load");
            }
            post
        }
        None => crate::engine::parser::Pipeline::new(Vec::new()),
    };
    Ok(Detector::new(pipeline, env, scenarios, profile, chrono::Utc::now().year()).with_postoverflows(post))
}

/// Parsers, expression environment and scenarios of `--config DIR` (a hub-layout folder or an
/// installed CrowdSec's configuration directory), or the embedded defaults. A directory that
/// yields no parser or no scenario is an error that says what was found and where crowd looked.
///
/// # Errors
/// Configuration that does not load (without `skip_invalid`), with file, line and field; an
/// empty configuration.
pub fn load(
    config_dir: Option<&PathBuf>,
    skip_invalid: bool,
) -> Result<(crate::engine::parser::Pipeline, crate::engine::expr::Env, Vec<crate::engine::scenario::Scenario>)> {
    let Some(dir) = config_dir else { return Ok(config::defaults::load()?) };
    let c = ConfigDir::open(dir)?;
    let (p, e, s, skipped) = c
        .hub
        .load_all_with(skip_invalid)
        .with_context(|| format!("loading `{}` (--skip-invalid leaves bad files out)", dir.display()))?;
    for err in &skipped {
        tracing::warn!(error = %err, "skipped: this file did not load");
    }
    if p.is_empty() || s.is_empty() {
        anyhow::bail!(
            "`{}`: {} parsers and {} scenarios loaded ({} files skipped): nothing to detect with. crowd looked in the {}",
            dir.display(),
            p.len(),
            s.len(),
            skipped.len(),
            c.describe()
        );
    }
    tracing::info!(config = %dir.display(), parsers = p.len(), scenarios = s.len(), "configuration loaded");
    Ok((p, e, s))
}

/// The profile a deciding process (the daemon's detection, its Local API, `crowd api`) runs:
/// the profiles of `--config`/`--profiles`, the simulation settings of `--config` or the state
/// directory (everything simulated with `simulate_all`, `--simulation`), and this host's own
/// addresses protected.
///
/// # Errors
/// Unreadable or invalid profiles or simulation settings.
pub fn enforcing_profile(
    config_dir: Option<&PathBuf>,
    profiles: Option<&PathBuf>,
    state_dir: &Path,
    simulate_all: bool,
) -> Result<Profile> {
    let mut p = profile(config_dir, profiles)?;
    simulation(config_dir, state_dir)?.apply_to(&mut p, simulate_all);
    p.protect(crate::addr::local_addresses());
    Ok(p)
}

/// The simulation settings of `--config DIR` when it is a CrowdSec configuration with a
/// `simulation.yaml`, else those of the state directory.
///
/// # Errors
/// A simulation file that is not CrowdSec's shape.
pub fn simulation(config_dir: Option<&PathBuf>, state_dir: &std::path::Path) -> Result<Simulation> {
    match config_dir.map(|d| ConfigDir::open(d)).transpose()?.and_then(|c| c.simulation()) {
        Some(p) => load_simulation_file(&p),
        None => load_simulation(state_dir),
    }
}

/// The file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Simulation {
    /// Everything simulated (`on`/`off` too: CrowdSec's files are YAML 1.1).
    #[serde(default, deserialize_with = "yaml11_bool")]
    pub simulation: bool,
    /// Scenarios that do the opposite.
    #[serde(default)]
    pub exclusions: Vec<String>,
}

impl Simulation {
    /// Makes `p` follow these settings, or simulate everything with `all` (`--simulation`).
    pub fn apply_to(self, p: &mut Profile, all: bool) {
        p.simulation = all || self.simulation;
        p.simulation_exclusions = if all { Vec::new() } else { self.exclusions };
    }

    /// Whether `scenario` is simulated.
    #[must_use]
    pub fn simulated(&self, scenario: &str) -> bool {
        self.simulation != self.exclusions.iter().any(|s| s == scenario)
    }

    /// Makes `scenario` (or everything, with `None`) simulated or not.
    pub fn set(&mut self, scenario: Option<&str>, on: bool) {
        match scenario {
            None => {
                self.simulation = on;
                self.exclusions.clear();
            }
            Some(s) => {
                self.exclusions.retain(|x| x != s);
                if on != self.simulation {
                    self.exclusions.push(s.to_owned());
                }
            }
        }
    }
}

/// A YAML 1.1 boolean (`true`, `on`, `yes`, ...), as CrowdSec's Go YAML reads `simulation: off`.
fn yaml11_bool<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum B {
        Bool(bool),
        Word(String),
    }
    match B::deserialize(d)? {
        B::Bool(b) => Ok(b),
        B::Word(w) => match w.to_ascii_lowercase().as_str() {
            "y" | "yes" | "on" | "true" => Ok(true),
            "n" | "no" | "off" | "false" => Ok(false),
            _ => Err(serde::de::Error::custom(format!("`{w}` is not a boolean (true/false, on/off, yes/no)"))),
        },
    }
}

/// Where the file is.
#[must_use]
pub fn simulation_path(state_dir: &Path) -> PathBuf {
    state_dir.join("simulation.yaml")
}

/// Reads the file (absent: nothing simulated).
///
/// # Errors
/// A file that is not CrowdSec's shape (named).
pub fn load_simulation(state_dir: &Path) -> Result<Simulation> {
    load_simulation_file(&simulation_path(state_dir))
}

/// Reads a `simulation.yaml` (absent: nothing simulated).
///
/// # Errors
/// A file that is not CrowdSec's shape (named).
pub fn load_simulation_file(p: &Path) -> Result<Simulation> {
    match std::fs::read_to_string(p) {
        Ok(t) => serde_yaml::from_str(&t).with_context(|| format!("`{}`", p.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Simulation::default()),
        Err(e) => Err(e).with_context(|| format!("reading `{}`", p.display())),
    }
}

/// Makes the state directory (`0700`), or tightens an existing one.
///
/// # Errors
/// It cannot be made (named).
pub fn state_dir(dir: &Path) -> Result<()> {
    crate::private::dir(dir).with_context(|| format!("state directory `{}`", dir.display()))
}

/// Opens the store (creating a SQLite store's folder, `0700`, if it is missing).
///
/// # Errors
/// The folder cannot be made, or the store does not open (named).
pub fn open_store(loc: &Location) -> Result<Store> {
    if let Location::Sqlite(p) = loc
        && let Some(dir) = p.parent()
    {
        crate::private::parent_dir(dir).with_context(|| format!("creating `{}`", dir.display()))?;
    }
    Store::open_at(loc).with_context(|| format!("opening the store `{loc}`"))
}

/// The notifiers of `--notifications DIR`, or of `<config>/notifications` when it exists.
///
/// # Errors
/// A notification file that does not load (named).
pub fn notifiers(
    dir: Option<&std::path::PathBuf>,
    config: Option<&std::path::PathBuf>,
) -> Result<crate::notify::Dispatcher> {
    let list = match (dir, config) {
        // Named on the command line: all or nothing.
        (Some(d), _) => crate::notify::load_dir(d)?,
        // A configuration's folder (an installed CrowdSec's holds plugins crowd does not run):
        // what loads, and a warning for each file that does not.
        (None, Some(c)) => match crate::config::crowdsec::ConfigDir::open(c)?.notifications() {
            Some(d) => {
                let (ok, bad) = crate::notify::load_dir_each(&d)?;
                for e in bad {
                    tracing::warn!(error = %e, "notification file not loaded (profiles naming it notify nothing)");
                }
                ok
            }
            None => Vec::new(),
        },
        (None, None) => Vec::new(),
    };
    for n in &list {
        tracing::info!(notifier = %n.name, "notifications");
    }
    Ok(crate::notify::Dispatcher::start(list))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusions_flip_the_global_setting() {
        let mut s = Simulation::default();
        s.set(Some("crowdsecurity/ssh-bf"), true);
        assert!(s.simulated("crowdsecurity/ssh-bf") && !s.simulated("other"));
        s.set(None, true);
        assert!(s.simulated("other") && s.exclusions.is_empty());
        s.set(Some("crowdsecurity/ssh-bf"), false);
        assert!(!s.simulated("crowdsecurity/ssh-bf") && s.simulated("other"));
        let y: Simulation = serde_yaml::from_str("simulation: false\nexclusions:\n  - a/b\n").unwrap();
        assert!(y.simulated("a/b"));
        assert!(serde_yaml::from_str::<Simulation>("simulated: true\n").is_err(), "unknown keys are refused");
        // Debian's CrowdSec ships `simulation: off` (YAML 1.1).
        let y: Simulation = serde_yaml::from_str("simulation: off\nexclusions: []\n").unwrap();
        assert!(!y.simulation);
        assert!(serde_yaml::from_str::<Simulation>("simulation: on\n").unwrap().simulation);
        assert!(serde_yaml::from_str::<Simulation>("simulation: maybe\n").is_err());
    }
}
