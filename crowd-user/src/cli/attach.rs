//! `crowd attach` and `crowd detach`: the XDP program on interfaces by hand (the daemon,
//! `crate::daemon`, attaches the same way).
use anyhow::{Context, Result, bail};
use serde_json::json;

use super::{Format, output};
use crate::enforce::{
    Settings,
    attach::{self, Mode},
    object, pins,
};

/// `crowd attach`.
///
/// # Errors
/// Load or attach failures, with the interface named.
pub fn attach(settings: &Settings, ifaces: &[String], mode: Mode, fmt: Format) -> Result<()> {
    let mut loaded = object::load(settings)?;
    let mut done = Vec::new();
    for iface in ifaces {
        let a = attach::attach(&mut loaded, &settings.pin_dir, iface, mode)
            .with_context(|| format!("attaching to `{iface}`"))?;
        done.push(a);
    }
    match fmt {
        Format::Json => output::json(&done),
        Format::Table => {
            for a in &done {
                if a.replaced {
                    println!("{}: program replaced in the pinned link (no gap)", a.iface);
                } else {
                    println!("{}: attached in {} mode", a.iface, a.mode);
                }
            }
        }
    }
    Ok(())
}

/// `crowd detach`.
///
/// # Errors
/// Interfaces crowd is not attached to, or pin removal failures.
pub fn detach(settings: &Settings, ifaces: &[String], all: bool, purge: bool, fmt: Format) -> Result<()> {
    crate::enforce::preflight::require_privileges("detach")?;
    let list: Vec<String> =
        if all { attach::attached(&settings.pin_dir).into_iter().map(|(i, _)| i).collect() } else { ifaces.to_vec() };
    for iface in &list {
        attach::detach(&settings.pin_dir, iface)?;
    }
    let remaining = attach::attached(&settings.pin_dir);
    let purged = if purge {
        if !remaining.is_empty() {
            bail!(
                "not purging: still attached to {}",
                remaining.iter().map(|(i, _)| i.as_str()).collect::<Vec<_>>().join(", ")
            );
        }
        pins::purge(&settings.pin_dir)?;
        true
    } else {
        false
    };
    match fmt {
        Format::Json => output::json(&json!({"detached": list, "purged": purged})),
        Format::Table => {
            for i in &list {
                println!("{i}: detached");
            }
            if purged {
                println!("removed every pinned map under {}", settings.pin_dir.display());
            }
        }
    }
    Ok(())
}
