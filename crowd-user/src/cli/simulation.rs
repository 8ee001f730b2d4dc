//! `crowd simulation enable|disable|status [SCENARIO]`: edits the simulation settings of the state
//! directory (CrowdSec's `simulation.yaml`, `crate::rules::Simulation`), which the daemon and
//! `crowd api` read at start.
use std::path::Path;

use anyhow::{Context, Result};
use clap::Subcommand;

use super::{Format, output};
pub use crate::rules::{Simulation, load_simulation, simulation_path};

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
    let mut sim = load_simulation(state_dir)?;
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
        crate::rules::state_dir(state_dir)?;
        let p = simulation_path(state_dir);
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
