//! `crowd attach`, `crowd detach` and `crowd run` (the daemon).
//!
//! The daemon today owns the data plane only: it loads the program against the pinned maps,
//! attaches (taking over pinned links without a gap), sweeps expired bans and refreshes the
//! program's config. On exit it leaves the links pinned, so enforcement never lapses.
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::json;

use super::{Format, output};
use crate::{
    clock::boot_now_ns,
    enforce::{
        Settings,
        attach::{self, Mode},
        maps::BanMaps,
        object, pins,
    },
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

/// `crowd run`: the daemon, in the foreground until SIGINT or SIGTERM.
///
/// # Errors
/// Start-up failures (nothing attached is left half-done: attach errors name the interface).
pub fn daemon(
    settings: &Settings,
    ifaces: &[String],
    mode: Mode,
    sweep_every: Duration,
    rebuild_every: Duration,
) -> Result<()> {
    let ifaces: Vec<String> = if ifaces.is_empty() {
        vec![attach::default_route_iface().context("no default route: name the interface(s) with --iface")?]
    } else {
        ifaces.to_vec()
    };
    let mut loaded = object::load(settings)?;
    for iface in &ifaces {
        let a = attach::attach(&mut loaded, &settings.pin_dir, iface, mode)
            .with_context(|| format!("attaching to `{iface}`"))?;
        tracing::info!(iface = %a.iface, mode = a.mode, replaced = a.replaced, "enforcing");
    }
    let mut maps = BanMaps::open(settings)?;
    maps.refresh_config()?;
    println!(
        "crowd: enforcing on {} (pins under {}); Ctrl-C leaves enforcement on",
        ifaces.join(", "),
        settings.pin_dir.display()
    );
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut tick = tokio::time::interval(sweep_every);
        let mut rebuild = tokio::time::interval(rebuild_every);
        rebuild.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    match maps.sweep_expired(boot_now_ns()) {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(removed = n, "swept expired bans"),
                        Err(e) => tracing::error!(error = %e, "sweeping expired bans"),
                    }
                    // The boot-time offset only moves across a suspend; keep the program's copy fresh.
                    if let Err(e) = maps.refresh_config() {
                        tracing::error!(error = %e, "refreshing the program's config");
                    }
                }
                _ = rebuild.tick() => {
                    if let Err(e) = maps.rebuild_filters() {
                        tracing::error!(error = %e, "rebuilding the prefilters");
                    }
                }
                _ = tokio::signal::ctrl_c() => break,
                _ = term.recv() => break,
            }
        }
        tracing::info!("exiting; the XDP program stays attached through its pinned links");
        drop(loaded);
        Ok::<(), anyhow::Error>(())
    })
}
