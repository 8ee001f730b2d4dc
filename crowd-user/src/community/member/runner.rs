//! The member's two threads, started by `crowd run` and `crowd api` when the state directory
//! holds credentials: the *sharer* sends the alerts after its cursor as signals within a quarter
//! of a second of their recording (back-off while the server is away; nothing is lost, see `share.rs`), the
//! *puller* logs in, pulls the full list, then deltas: a long poll against crowd's server (a
//! listed entry is in the store, and from there in XDP, within a second), a plain poll on
//! `poll` against a server that does not mark its answers as held (`x-crowd-long-poll`). Both keep going whatever the
//! server answers; what they did is in the store's `community-status` secret.
use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::json;

use super::{client::Client, credentials::Credentials, pull, share};
use crate::{
    clock::unix_now,
    store::{Location, Store},
};

/// What a member shares and how often it polls a server without long polls.
#[derive(Clone, Debug)]
pub struct Options {
    /// Send no signals (receive only).
    pub no_share: bool,
    /// Share alerts of manual decisions too.
    pub share_manual: bool,
    /// Poll interval against a server that answers at once.
    pub poll: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options { no_share: false, share_manual: false, poll: Duration::from_secs(60) }
    }
}

/// The member's flags on `crowd run` and `crowd api` (used when the state directory holds
/// credentials).
#[derive(Clone, Debug, clap::Args)]
pub struct MemberArgs {
    /// As a community member, receive the lists but send no signals.
    #[arg(long)]
    pub no_share: bool,
    /// As a community member, share the alerts of manual decisions too.
    #[arg(long)]
    pub share_manual: bool,
    /// As a community member, how often to poll a central API without crowd's long poll.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub community_poll: Duration,
}

impl MemberArgs {
    /// The runner's options.
    #[must_use]
    pub fn options(&self) -> Options {
        Options { no_share: self.no_share, share_manual: self.share_manual, poll: self.community_poll }
    }
}

/// The store secret holding the member's status (JSON).
pub const STATUS: &str = "community-status";

fn open(loc: &Location) -> Option<Store> {
    match Store::open_at(loc) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "community member: opening the store");
            None
        }
    }
}

fn note(s: &mut Store, key: &str, value: serde_json::Value) {
    let mut status: serde_json::Value =
        s.get_secret(STATUS).ok().flatten().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_else(|| json!({}));
    status[key] = value;
    let _ = s.replace_secret(STATUS, &status.to_string());
}

fn backoff(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.min(6))
}

/// Starts the sharer and the puller; they stop when `stop` is set.
pub fn start(loc: &Location, creds: &Credentials, scenarios: Vec<String>, opts: Options, stop: Arc<AtomicBool>) {
    if !opts.no_share {
        let (loc, creds, scenarios, stop, manual) =
            (loc.clone(), creds.clone(), scenarios.clone(), stop.clone(), opts.share_manual);
        let _ = std::thread::Builder::new().name("community-share".into()).spawn(move || {
            let mut client = Client::new(creds, scenarios);
            let mut store = None;
            let (mut failures, mut sent, mut refused) = (0u32, 0u64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                if store.is_none() {
                    store = open(&loc);
                }
                let Some(s) = store.as_mut() else {
                    std::thread::sleep(backoff(failures));
                    failures += 1;
                    continue;
                };
                let (batch, cursor, last) = match share::next_batch(s, manual) {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::warn!(error = %e, "community member: reading alerts");
                        store = None;
                        continue;
                    }
                };
                if last == cursor {
                    std::thread::sleep(Duration::from_millis(250));
                    continue;
                }
                let ok = batch.is_empty() || {
                    match client.push(&batch) {
                        Ok(()) => true,
                        Err(e) => {
                            refused += batch.len() as u64;
                            tracing::warn!(error = %e, signals = batch.len(), "community member: signals not taken; retrying");
                            false
                        }
                    }
                };
                if ok {
                    failures = 0;
                    sent += batch.len() as u64;
                    if let Err(e) = share::commit(s, last) {
                        tracing::warn!(error = %e, "community member: saving the share cursor");
                    }
                    note(s, "signals", json!({"sent": sent, "refused": refused, "last": unix_now(), "cursor": last}));
                } else {
                    note(s, "signals", json!({"sent": sent, "refused": refused, "cursor": cursor}));
                    std::thread::sleep(backoff(failures));
                    failures += 1;
                }
            }
        });
    }
    let (loc, creds) = (loc.clone(), creds.clone());
    let _ = std::thread::Builder::new().name("community-pull".into()).spawn(move || {
        let mut client = Client::new(creds, scenarios);
        let mut store = None;
        let (mut startup, mut failures) = (true, 0u32);
        let mut lists: std::collections::HashMap<String, String> = std::collections::HashMap::new();
        let wait = Duration::from_secs(30);
        // Since this process started: values skipped, pulls that failed.
        let (mut skipped_total, mut errors_total) = (0u64, 0u64);
        while !stop.load(Ordering::Relaxed) {
            if store.is_none() {
                store = open(&loc);
            }
            let Some(s) = store.as_mut() else {
                std::thread::sleep(backoff(failures));
                failures += 1;
                continue;
            };
            let long_poll = !startup;
            let (answer, held) = match client.pull(startup, long_poll.then_some(wait)) {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "community member: pull");
                    errors_total += 1;
                    note(
                        s,
                        "pull",
                        json!({"error": e.to_string(), "at": unix_now(), "skipped_total": skipped_total,
                               "errors_total": errors_total}),
                    );
                    std::thread::sleep(backoff(failures));
                    failures += 1;
                    continue;
                }
            };
            failures = 0;
            let now = unix_now();
            let mut applied = match pull::apply_stream(s, &answer, now) {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "community member: storing the community list");
                    store = None;
                    continue;
                }
            };
            startup = false;
            for link in answer["links"]["blocklists"].as_array().into_iter().flatten() {
                let (Some(name), Some(url)) = (link["name"].as_str(), link["url"].as_str()) else { continue };
                let duration =
                    link["duration"].as_str().and_then(crate::clock::go_duration_secs).unwrap_or(86400.0) as u64;
                match client.fetch_list(url, lists.get(name).map(String::as_str)) {
                    Ok(Some((body, modified))) => match pull::apply_list(s, name, &body, duration, now) {
                        Ok(a) => {
                            applied.added += a.added;
                            applied.deleted += a.deleted;
                            applied.skipped += a.skipped;
                            if let Some(m) = modified {
                                lists.insert(name.to_owned(), m);
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, list = name, "community member: storing a list"),
                    },
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = %e, list = name, "community member: fetching a list"),
                }
            }
            if applied.skipped > 0 {
                tracing::warn!(skipped = applied.skipped, "community member: values from the server skipped");
            }
            skipped_total += applied.skipped as u64;
            note(
                s,
                "pull",
                json!({"at": now, "added": applied.added, "deleted": applied.deleted, "skipped": applied.skipped,
                       "skipped_total": skipped_total, "errors_total": errors_total}),
            );
            // A server that does not hold deltas (CrowdSec's) is polled on an interval; crowd's,
            // which says it holds them, is asked again at once, whatever the answer changed.
            if long_poll && !held {
                let until = Instant::now() + opts.poll;
                while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    });
}

/// Starts the member's threads when `state_dir` holds credentials; whether it did.
///
/// # Errors
/// Credentials that do not read (named), store errors.
pub fn start_if_member(
    state_dir: &std::path::Path,
    loc: &Location,
    opts: Options,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<bool> {
    let Some(creds) = Credentials::load(state_dir).map_err(anyhow::Error::msg)? else { return Ok(false) };
    // The scenarios the server tailors the list to: those the agents of this API run.
    let mut scenarios: Vec<String> = Store::open_at(loc)?
        .machines()?
        .iter()
        .flat_map(|m| {
            m.scenarios.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect::<Vec<_>>()
        })
        .collect();
    scenarios.sort();
    scenarios.dedup();
    tracing::info!(url = %creds.url, login = %creds.login, "community member: sharing and pulling");
    start(loc, &creds, scenarios, opts, stop);
    Ok(true)
}
