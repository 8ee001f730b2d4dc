//! Simulation settings in CrowdSec's `simulation.yaml` shape (`simulation: bool` and
//! `exclusions: [scenario, ...]`, the scenarios that do the opposite), kept in the state
//! directory: `crowd simulation enable|disable|status [SCENARIO]`, read by the daemon at start.
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Subcommand;
use serde::{Deserialize, Serialize};

use super::{Format, output};

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
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("simulation.yaml")
}

/// Reads the file (absent: nothing simulated).
///
/// # Errors
/// A file that is not CrowdSec's shape (named).
pub fn load(state_dir: &Path) -> Result<Simulation> {
    load_file(&path(state_dir))
}

/// Reads a `simulation.yaml` (absent: nothing simulated).
///
/// # Errors
/// A file that is not CrowdSec's shape (named).
pub fn load_file(p: &Path) -> Result<Simulation> {
    match std::fs::read_to_string(p) {
        Ok(t) => serde_yaml::from_str(&t).with_context(|| format!("`{}`", p.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Simulation::default()),
        Err(e) => Err(e).with_context(|| format!("reading `{}`", p.display())),
    }
}

/// `crowd simulation` subcommands.
#[derive(Debug, Subcommand)]
pub enum SimulationCommand {
    /// Simulate a scenario (or every scenario): its decisions are recorded, not enforced.
    Enable {
        /// The scenario (default: all).
        scenario: Option<String>,
    },
    /// Stop simulating a scenario (or every scenario).
    Disable {
        /// The scenario (default: all).
        scenario: Option<String>,
    },
    /// Show the settings.
    Status,
}

/// Runs a `crowd simulation` subcommand.
///
/// # Errors
/// Unreadable or unwritable settings.
pub fn dispatch(state_dir: &Path, cmd: &SimulationCommand, fmt: Format) -> Result<()> {
    let mut sim = load(state_dir)?;
    let changed = match cmd {
        SimulationCommand::Enable { scenario } => {
            sim.set(scenario.as_deref(), true);
            true
        }
        SimulationCommand::Disable { scenario } => {
            sim.set(scenario.as_deref(), false);
            true
        }
        SimulationCommand::Status => false,
    };
    if changed {
        super::state(state_dir)?;
        let p = path(state_dir);
        crate::private::write(&p, serde_yaml::to_string(&sim)?.as_bytes())
            .with_context(|| format!("writing `{}`", p.display()))?;
    }
    match fmt {
        Format::Json => output::json(&sim),
        Format::Table => {
            let global = if sim.simulation { "on" } else { "off" };
            println!("global simulation: {global}");
            if !sim.exclusions.is_empty() {
                let what = if sim.simulation { "enforced anyway" } else { "simulated" };
                println!("{what}: {}", sim.exclusions.join(", "));
            }
            if changed {
                println!("(the daemon reads this at start: restart it to apply)");
            }
        }
    }
    Ok(())
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
