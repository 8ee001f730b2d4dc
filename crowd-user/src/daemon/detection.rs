//! The detection path of the daemon: the acquisition threads feed one bounded channel; the
//! *detection* thread parses, pours and decides, writes each alert's bans into the XDP maps at
//! once (only bans on addresses and ranges: `profile::enforced_in_kernel`) and hands the alert with
//! all its decisions to the *recorder* thread, which stores them in one transaction and then
//! writes the decision ids back into the bans (a slow commit never delays the next ban).
use std::sync::{Arc, atomic::AtomicBool};

use anyhow::{Context, Result};

use crate::{
    clock::unix_now,
    enforce::{Settings, maps::BanMaps},
};

/// Starts acquisition and detection threads: decisions go into the pinned maps as soon as made.
pub fn start(
    settings: &Settings,
    args: &super::Options,
    stop: Arc<AtomicBool>,
    metrics: Arc<crate::metrics::Metrics>,
    notify: crate::notify::Dispatcher,
) -> Result<()> {
    let sources = super::sources(args)?;
    if sources.is_empty() {
        tracing::warn!("no log to follow (give --acquis or --watch): enforcing only");
        return Ok(());
    }
    let mut profile = crate::rules::enforcing_profile(
        args.config.as_ref(),
        args.profiles.as_ref(),
        &args.state_dir,
        args.simulation,
    )?;
    // Repeat offenders are counted across restarts (profiles' GetDecisionsCount).
    let allowed: Allowed = Arc::default();
    if let Ok(mut store) = crate::store::Store::open_at(&args.store()) {
        profile.history = store.decision_counts().unwrap_or_default();
        if let (Ok(nets), Ok(mut held)) = (store.allowlist_nets(), allowed.write()) {
            *held = nets;
        }
    }
    let mut detector = crate::rules::detector_with(args.config.as_ref(), profile, args.skip_invalid)?;
    args.tuning.apply(&mut detector);
    for s in &sources {
        tracing::info!(source = %s.describe(), kind = s.kind(), "reading");
    }
    let (tx, rx) = std::sync::mpsc::sync_channel::<crate::acquisition::Read>(4096);
    crate::acquisition::start(sources, Some(&args.state_dir), &tx, &stop).context("starting acquisition")?;
    drop(tx);
    let mut maps = BanMaps::open(settings)?;
    let (record_tx, record_rx) = std::sync::mpsc::channel::<Record>();
    spawn_recorder(settings, &args.store(), record_rx, allowed.clone())?;
    std::thread::Builder::new().name("detection".into()).spawn(move || {
        let (mut lines, mut evictions_seen) = (0u64, std::collections::HashMap::new());
        while let Ok((line, now)) = rx.recv() {
            let (src, labels) = (line.src.clone(), line.labels.clone());
            let parsed_before = detector.counts.parsed;
            let out = detector.feed(line, now);
            let kind = labels.get("type").map_or("", String::as_str);
            metrics.line(&src, kind, detector.counts.parsed > parsed_before);
            lines += 1;
            if lines.is_multiple_of(1024) {
                metrics.detection_state(detector.state(), &mut evictions_seen);
            }
            for r in out.raised {
                metrics.overflows.get_or_create(&crate::metrics::ScenarioLabels { name: r.alert.scenario.clone() }).inc();
                if !r.notifications.is_empty() {
                    notify.notify(&r.notifications, &crate::lapi::model::local_alert(&r.alert, &r.decisions));
                }
                if r.decisions.is_empty() {
                    continue;
                }
                // Enforce first (milliseconds matter): every ban of the alert into the maps (other
                // types only in the store); the recorder thread writes the store and then the
                // records' ids into the bans, so a slow disk never delays the next ban.
                let clock = crate::clock::BootClock::now();
                for d in &r.decisions {
                    // The store's allowlist wins (the recorder refuses these too, and keeps this
                    // copy of the allowlist current).
                    if let Ok(nets) = allowed.read()
                        && let Some(net) = crate::store::allowlist::holding(&nets, &d.scope, &d.value)
                    {
                        tracing::info!(scenario = %d.scenario, source = %d.value, allowlisted = %net, "allowlisted: no decision");
                        continue;
                    }
                    tracing::info!(scenario = %d.scenario, source = %d.value, kind = %d.kind, duration = d.duration_secs, simulated = d.simulated, "decision");
                    if let (true, Some(target)) = (d.enforced_in_kernel(), d.target())
                        && let Err(e) = maps.insert_ban(target, crowd_common::Ban::new(clock.expiry_after(Some(d.duration())), 0, crowd_common::Origin::Local))
                    {
                        tracing::error!(source = %d.value, error = %e, "could not enforce a decision");
                    }
                }
                let _ = record_tx.send(Record { alert: r.alert, decisions: r.decisions, clock });
            }
        }
    })?;
    Ok(())
}

/// The store's allowlist as the detection thread checks it (the recorder refreshes it).
type Allowed = Arc<std::sync::RwLock<Vec<ipnet::IpNet>>>;

/// An alert and its decisions for the store.
struct Record {
    alert: crate::engine::scenario::Alert,
    decisions: Vec<crate::engine::profile::Decision>,
    clock: crate::clock::BootClock,
}

/// The thread that records decisions in the store, off the detection path.
fn spawn_recorder(
    settings: &Settings,
    loc: &crate::store::Location,
    rx: std::sync::mpsc::Receiver<Record>,
    allowed: Allowed,
) -> Result<()> {
    let mut maps = BanMaps::open(settings)?;
    let mut store = crate::store::Store::open_at(loc)?;
    std::thread::Builder::new().name("recorder".into()).spawn(move || {
        while let Ok(Record { alert, mut decisions, clock }) = rx.recv() {
            let unix = unix_now();
            // The allowlist now: decisions it holds are not recorded (the store would refuse them)
            // and lose the ban the detection thread may have set from an older copy.
            if let Ok(nets) = store.allowlist_nets() {
                decisions.retain(|d| {
                    let held = crate::store::allowlist::holding(&nets, &d.scope, &d.value).is_some();
                    if held && let (true, Some(target)) = (d.enforced_in_kernel(), d.target()) {
                        let _ = maps.remove_ban(target);
                    }
                    !held
                });
                if let Ok(mut copy) = allowed.write() {
                    *copy = nets;
                }
            }
            let recs: Vec<crate::store::NewDecision> = decisions
                .iter()
                .map(|d| crate::store::NewDecision {
                    origin: d.origin.clone(),
                    scenario: d.scenario.clone(),
                    scope: d.scope.clone(),
                    value: d.value.clone(),
                    kind: d.kind.clone(),
                    duration_secs: d.duration_secs,
                    simulated: d.simulated,
                    reason: String::new(),
                    uuid: String::new(),
                })
                .collect();
            let a = crate::store::NewAlert {
                scenario: alert.scenario.clone(),
                scope: alert.scope.clone(),
                value: alert.value.clone(),
                events_count: alert.events_count as u64,
                body: crate::lapi::model::local_alert(&alert, &decisions).to_string(),
                ..crate::store::NewAlert::default()
            };
            match store.record(Some(&a), &recs, unix) {
                Ok(ids) => {
                    for (d, id) in decisions.iter().zip(ids) {
                        if let (true, Some(target)) = (d.enforced_in_kernel(), d.target())
                            && let Ok(Some(row)) = store.get(id)
                        {
                            let _ = maps.insert_ban(target, crate::reconcile::ban_for(&row, unix, &clock));
                        }
                    }
                }
                Err(e) => tracing::error!(source = %alert.value, error = %e, "could not record decisions"),
            }
        }
    })?;
    Ok(())
}
