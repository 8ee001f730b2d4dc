//! The server's engine task: the one owner of the [`Consensus`]. Routes hand it checked signals
//! and members' logins through a bounded channel (they answer at once; the engine does the
//! work); it stores the signals in batches, feeds them to the consensus, publishes each
//! organisation's own reports to its private list at once (quorum 1 inside an organisation),
//! and every [`TICK`] applies the consensus' changes to the community list in the store, then
//! bumps a `watch` so waiting pulls answer. Every minute it saves each organisation's trust,
//! warm-up and canary record; every hour it forgets signals past the retention. On start it
//! restores those records, replays the signals still in the window, and publishes only what
//! differs from the stored list.
use std::{
    collections::{HashMap, HashSet},
    net::IpAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::sync::{mpsc, watch};

use super::{
    config::HubConfig,
    consensus::{Canaries, Consensus, OrgState, Outcome, Report, Reporter},
};
use crate::{
    clock::unix_now,
    lapi::StorePool,
    store::{MemberRow, NewSignal, Publish, StoreError},
};

/// How often the consensus' changes are published.
pub const TICK: Duration = Duration::from_millis(200);
/// The stored allowlist is read every this many ticks (an operator's change is in the next
/// delta within about a second).
const ALLOW_EVERY: u64 = 5;
/// Organisations' trust is saved every this many ticks (a minute).
const SAVE_EVERY: u64 = 300;
/// Signals past the retention are forgotten every this many ticks (an hour).
const PRUNE_EVERY: u64 = 18_000;
/// Signals stored in one transaction at most (queued batches are drained together).
const DRAIN: usize = 10_000;
/// Signal batches waiting for the engine before new ones are shed (and counted).
pub const QUEUE: usize = 4096;

/// What the routes tell the engine.
#[derive(Debug)]
pub enum Msg {
    /// A member logged in from `egress` (or was loaded at start).
    Member(Reporter),
    /// A member was deleted.
    Forget(String),
    /// Checked signals, reported by their `machine_id`.
    Signals(Vec<NewSignal>),
    /// The operator's allowlist gained (true) or lost (false) a prefix.
    Allow((IpAddr, u8), bool),
}

/// Counters the server exports.
#[derive(Debug, Default)]
pub struct Counters {
    /// Signals accepted into the queue.
    pub accepted: AtomicU64,
    /// Items skipped as invalid.
    pub skipped: AtomicU64,
    /// Batches shed because the engine was behind.
    pub shed: AtomicU64,
    /// Reports by consensus outcome: counted, duplicate, refused (bogon, canary, allowed,
    /// stale, suspended, unknown).
    pub counted: AtomicU64,
    /// Reports refused by the consensus.
    pub refused: AtomicU64,
    /// Canary reports.
    pub canaries: AtomicU64,
    /// Entries published (listed or re-announced).
    pub published: AtomicU64,
    /// Entries withdrawn.
    pub withdrawn: AtomicU64,
}

/// The handle routes use.
#[derive(Clone)]
pub struct EngineHandle {
    /// To the engine.
    pub tx: mpsc::Sender<Msg>,
    /// The last published change number.
    pub published: watch::Receiver<i64>,
    /// Counters.
    pub counters: Arc<Counters>,
}

/// A reporter as the consensus knows it, from a stored member (its egress is only a prefix).
#[must_use]
pub fn reporter_of(m: &MemberRow) -> Option<Reporter> {
    let egress = m.egress_prefix.split('/').next()?.parse::<IpAddr>().ok()?;
    Some(Reporter {
        machine: m.machine_id.clone(),
        org: m.org.clone(),
        egress,
        asn: u32::try_from(m.asn).unwrap_or(0),
        registered_at: m.created_at,
        sensor: m.sensor,
    })
}

/// A consensus with the operator's settings, its members and allowlist.
#[must_use]
fn consensus(cfg: &HubConfig, members: &[MemberRow], allow: &[(IpAddr, u8)]) -> Consensus {
    let mut c = Consensus::new(cfg.params, Canaries::new(cfg.never.clone()));
    for m in members {
        if let Some(r) = reporter_of(m) {
            c.add_reporter(r);
        }
    }
    for a in allow {
        c.allow(*a);
    }
    c
}

/// An organisation's state as stored (JSON).
fn state_json(s: &OrgState) -> String {
    serde_json::json!({
        "registered_at": s.registered_at,
        "trust": s.trust.map(|(a, b, at)| [a, b, at as f64]),
        "signals": s.signals,
        "days": s.days,
        "zeroed_until": s.zeroed_until,
        "suspended": s.suspended,
        "canary_hits": s.canary_hits.iter().map(|(t, ip)| serde_json::json!([t, ip.to_string()])).collect::<Vec<_>>(),
    })
    .to_string()
}

/// A stored organisation state; `None` (and a warning) for one that does not read.
fn state_of(org: &str, json: &str) -> Option<OrgState> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    let trust = v["trust"]
        .as_array()
        .and_then(|t| Some((t.first()?.as_f64()?, t.get(1)?.as_f64()?, t.get(2)?.as_f64()? as i64)));
    Some(OrgState {
        org: org.to_owned(),
        registered_at: v["registered_at"].as_i64()?,
        trust,
        signals: u32::try_from(v["signals"].as_u64()?).ok()?,
        days: v["days"].as_array()?.iter().filter_map(serde_json::Value::as_i64).collect(),
        zeroed_until: v["zeroed_until"].as_i64()?,
        suspended: v["suspended"].as_bool()?,
        canary_hits: v["canary_hits"]
            .as_array()?
            .iter()
            .filter_map(|h| Some((h.get(0)?.as_i64()?, h.get(1)?.as_str()?.parse().ok()?)))
            .collect(),
    })
}

/// Restores the saved organisation states into `c`.
///
/// # Errors
/// Store errors.
fn restore(c: &mut Consensus, store: &mut crate::store::Store) -> Result<(), StoreError> {
    for (org, json) in store.org_states()? {
        match state_of(&org, &json) {
            Some(s) => c.restore_org(&s),
            None => tracing::warn!(org, "saved trust state does not read: the organisation starts from the prior"),
        }
    }
    Ok(())
}

/// Feeds the stored signals received since `since` into `c`, in order, ticking as time passes;
/// returns the last batch number read.
///
/// # Errors
/// Store errors.
fn replay(c: &mut Consensus, store: &mut crate::store::Store, since: i64) -> Result<i64, StoreError> {
    let (mut last_tick, mut cursor) = (since, 0);
    store.each_signal(since, |s, received, seq| {
        cursor = seq;
        if s.scope == "Ip"
            && let Some(ip) = super::wire::ip_value(&s.value)
        {
            c.report(&Report { machine: s.machine_id, ip, scenario: s.scenario, at: s.at }, received);
        }
        if received - last_tick >= 60 {
            c.tick(received);
            last_tick = received;
        }
        Ok(())
    })?;
    Ok(cursor)
}

fn publish_of(e: &super::consensus::Entry) -> Publish {
    let scope = match e.scope {
        super::consensus::Scope::Ip => "Ip",
        super::consensus::Scope::Range => "Range",
    };
    Publish { scope: scope.into(), value: e.value.clone(), scenario: e.scenario.clone(), until: e.until }
}

struct Engine {
    db: Arc<StorePool>,
    cfg: Arc<HubConfig>,
    consensus: Consensus,
    org_of: HashMap<String, String>,
    counters: Arc<Counters>,
    published: watch::Sender<i64>,
    /// The operator's allowlist as last read from the store (`crowd community allow` writes
    /// it from another process).
    allowed: HashSet<(IpAddr, u8)>,
    /// The last signal batch fed to the consensus.
    cursor: i64,
    /// Whether this process publishes (see [`lead`]).
    leader: Arc<AtomicBool>,
    /// Whether it did at the last tick.
    was_leader: bool,
}

/// Keeps trying to lead the servers sharing the store, once a second, on a connection of its
/// own (PostgreSQL's advisory lock lives as long as that connection); ends with the flag's
/// last other holder.
fn lead(loc: crate::store::Location, leader: Arc<AtomicBool>) {
    let mut conn: Option<crate::store::Store> = None;
    while Arc::strong_count(&leader) > 1 {
        if conn.is_none() {
            conn = crate::store::Store::open_at(&loc).ok();
        }
        let ok = match conn.as_mut().map(crate::store::Store::try_lead) {
            Some(Ok(ok)) => ok,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "community leader lock");
                conn = None;
                false
            }
            None => false,
        };
        if ok != leader.swap(ok, Ordering::Relaxed) {
            tracing::info!(leader = ok, "community server leadership");
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// A set of prefixes (the operator's allowlist).
pub type Prefixes = HashSet<(IpAddr, u8)>;

/// The operator's allowlist in the store, as prefixes.
fn allowlist(st: &mut crate::store::Store) -> Result<Prefixes, StoreError> {
    Ok(st.cm_allowlist()?.iter().filter_map(|(v, _)| super::wire::prefix_value(v)).collect())
}

/// A consensus as the store holds it at `now`: the members, the operator's allowlist, the saved
/// organisation records, and the signals still in the window replayed; with the allowlist read
/// and the last signal batch accounted for. The server starts from it and `crowd community
/// explain` answers from it, so both see the same state.
///
/// # Errors
/// Store errors.
pub fn rebuild(
    cfg: &HubConfig,
    st: &mut crate::store::Store,
    members: &[MemberRow],
    now: i64,
) -> Result<(Consensus, Prefixes, i64), StoreError> {
    let allowed = allowlist(st)?;
    let allow: Vec<(IpAddr, u8)> = allowed.iter().copied().collect();
    let mut c = consensus(cfg, members, &allow);
    restore(&mut c, st)?;
    let p = &cfg.params;
    let since = now - 2 * p.window_secs.max(p.keep_secs).max(p.trust_horizon_secs);
    // Everything up to `top` is replayed (in the window) or too old to count.
    let top = st.signal_seq()?;
    let cursor = replay(&mut c, st, since)?.max(top);
    c.tick(now);
    Ok((c, allowed, cursor))
}

impl Engine {
    /// Saves every organisation's trust, warm-up and canary record, and forgets signals past
    /// the retention.
    async fn save(&mut self, prune: bool) {
        let states: Vec<(String, String)> =
            self.consensus.org_states().iter().map(|s| (s.org.clone(), state_json(s))).collect();
        let before = unix_now() - i64::try_from(self.cfg.retention.as_secs()).unwrap_or(i64::MAX);
        let res = self
            .db
            .run(move |st| {
                st.save_org_states(&states, unix_now())?;
                if prune { st.prune_signals(before) } else { Ok(0) }
            })
            .await;
        match res {
            Ok(n) if n > 0 => tracing::info!(signals = n, "signals past the retention forgotten"),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "saving organisations' trust"),
        }
    }

    /// Applies what changed in the stored allowlist.
    async fn reload_allowlist(&mut self) {
        let Ok(now) = self.db.run(allowlist).await else { return };
        for p in now.difference(&self.allowed) {
            self.consensus.allow(*p);
        }
        for p in self.allowed.difference(&now) {
            self.consensus.disallow(*p);
        }
        self.allowed = now;
    }

    /// Stores a batch of signals from this process's routes, then reads what is new.
    async fn store(&mut self, batch: Vec<NewSignal>) {
        let now = unix_now();
        if let Err(e) = self.db.run(move |st| st.add_signals(&batch, now)).await {
            tracing::error!(error = %e, "storing signals");
        }
        self.tail().await;
    }

    /// Feeds the consensus the stored signals it has not seen (any server's), in batch order;
    /// the leader publishes each to its reporter's organisation list at once.
    async fn tail(&mut self) {
        let after = self.cursor;
        let rows = match self.db.run(move |st| st.signals_after(after, 20_000)).await {
            Ok(r) => r,
            Err(e) => return tracing::error!(error = %e, "reading signals"),
        };
        if rows.is_empty() {
            return;
        }
        // Members another server logged in: known from the store.
        let unknown: HashSet<String> =
            rows.iter().map(|(_, s, _)| s.machine_id.clone()).filter(|m| !self.org_of.contains_key(m)).collect();
        if !unknown.is_empty() {
            let ids: Vec<String> = unknown.into_iter().collect();
            if let Ok(members) =
                self.db.run(move |st| ids.iter().map(|id| st.member(id)).collect::<Result<Vec<_>, _>>()).await
            {
                for m in members.into_iter().flatten() {
                    self.org_of.insert(m.machine_id.clone(), m.org.clone());
                    if let Some(r) = reporter_of(&m) {
                        self.consensus.add_reporter(r);
                    }
                }
            }
        }
        let now = unix_now();
        let leader = self.leader.load(Ordering::Relaxed);
        let until = now + i64::try_from(self.cfg.org_list_duration.as_secs()).unwrap_or(86400);
        let mut org_lists: HashMap<String, Vec<Publish>> = HashMap::new();
        for (seq, s, _) in &rows {
            self.cursor = self.cursor.max(*seq);
            let c = &self.counters;
            // The consensus lists addresses: a range report is kept, not counted.
            let Some(ip) = (s.scope == "Ip").then(|| super::wire::ip_value(&s.value)).flatten() else {
                c.refused.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let r = Report { machine: s.machine_id.clone(), ip, scenario: s.scenario.clone(), at: s.at };
            match self.consensus.report(&r, now) {
                Outcome::Counted | Outcome::Duplicate => {
                    c.counted.fetch_add(1, Ordering::Relaxed);
                    // Inside an organisation one report is enough.
                    if leader && let Some(org) = self.org_of.get(&s.machine_id) {
                        org_lists.entry(org.clone()).or_default().push(Publish {
                            scope: "Ip".into(),
                            value: ip.to_string(),
                            scenario: s.scenario.clone(),
                            until,
                        });
                    }
                }
                Outcome::Canary => {
                    c.canaries.fetch_add(1, Ordering::Relaxed);
                    c.refused.fetch_add(1, Ordering::Relaxed);
                }
                _ => {
                    c.refused.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        if org_lists.is_empty() {
            return;
        }
        let res = self
            .db
            .run(move |st| {
                let mut seq = 0;
                for (org, entries) in org_lists {
                    seq = seq.max(st.apply_list(&org, &entries, &[], now)?);
                }
                Ok(seq)
            })
            .await;
        match res {
            Ok(seq) => self.announce(seq),
            Err(e) => tracing::error!(error = %e, "publishing organisation lists"),
        }
    }

    /// A message other than signals.
    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Signals(_) => {}
            Msg::Member(r) => {
                self.org_of.insert(r.machine.clone(), r.org.clone());
                self.consensus.add_reporter(r);
            }
            Msg::Forget(m) => {
                self.org_of.remove(&m);
                self.consensus.remove_reporter(&m);
            }
            Msg::Allow(p, true) => {
                self.allowed.insert(p);
                self.consensus.allow(p);
            }
            Msg::Allow(p, false) => {
                self.allowed.remove(&p);
                self.consensus.disallow(p);
            }
        }
    }

    /// Wakes the pulls waiting for a change past `seq`.
    fn announce(&self, seq: i64) {
        self.published.send_if_modified(|p| {
            let moved = seq > *p;
            *p = (*p).max(seq);
            moved
        });
    }

    /// Makes the stored community list what the consensus lists (at start, and when this
    /// process becomes the leader).
    async fn reconcile(&mut self) {
        let current: Vec<Publish> = self.consensus.listed().map(publish_of).collect();
        let res = self
            .db
            .run(move |st| {
                let now = unix_now();
                let stored: HashSet<String> = st.list_entries("", now)?.into_iter().map(|e| e.value).collect();
                let keep: HashSet<&str> = current.iter().map(|p| p.value.as_str()).collect();
                let withdrawn: Vec<String> = stored.iter().filter(|v| !keep.contains(v.as_str())).cloned().collect();
                let fresh: Vec<Publish> = current.iter().filter(|p| !stored.contains(&p.value)).cloned().collect();
                st.apply_list("", &fresh, &withdrawn, now)
            })
            .await;
        match res {
            Ok(seq) => self.announce(seq),
            Err(e) => tracing::error!(error = %e, "reconciling the community list"),
        }
    }

    async fn tick(&mut self) {
        self.tail().await;
        let leader = self.leader.load(Ordering::Relaxed);
        if leader && !self.was_leader {
            self.reconcile().await;
        }
        self.was_leader = leader;
        let now = unix_now();
        let changes = self.consensus.tick(now);
        if changes.is_empty() || !leader {
            return;
        }
        let listed: Vec<Publish> = changes.listed.iter().map(publish_of).collect();
        let withdrawn: Vec<String> = changes.withdrawn.iter().map(|e| e.value.clone()).collect();
        self.counters.published.fetch_add(listed.len() as u64, Ordering::Relaxed);
        self.counters.withdrawn.fetch_add(withdrawn.len() as u64, Ordering::Relaxed);
        match self.db.run(move |st| st.apply_list("", &listed, &withdrawn, now)).await {
            Ok(seq) => self.announce(seq),
            Err(e) => tracing::error!(error = %e, "publishing the community list"),
        }
    }
}

/// Starts the engine over `db` (at `loc`): rebuilds the consensus from the saved trust and the
/// stored signals, starts contending for leadership (the leader reconciles the stored list with
/// its consensus, then publishes), and runs until every handle is gone.
///
/// # Errors
/// Store errors while rebuilding.
pub async fn start(
    db: Arc<StorePool>,
    loc: crate::store::Location,
    cfg: Arc<HubConfig>,
) -> Result<EngineHandle, crate::lapi::ApiError> {
    let now = unix_now();
    let c2 = cfg.clone();
    let (consensus, org_of, seq, allowed, cursor) = db
        .run(move |st| {
            let members = st.members()?;
            let (c, allowed, cursor) = rebuild(&c2, st, &members, now)?;
            let org_of = members.into_iter().map(|m| (m.machine_id, m.org)).collect();
            Ok((c, org_of, st.list_seq()?, allowed, cursor))
        })
        .await?;
    let leader = Arc::new(AtomicBool::new(false));
    let l2 = leader.clone();
    std::thread::Builder::new()
        .name("community-leader".into())
        .spawn(move || lead(loc, l2))
        .map_err(|e| crate::lapi::ApiError::Internal(e.to_string()))?;
    let (tx, mut rx) = mpsc::channel(QUEUE);
    let (published, published_rx) = watch::channel(seq);
    let counters = Arc::new(Counters::default());
    let mut engine = Engine {
        db,
        cfg,
        consensus,
        org_of,
        counters: counters.clone(),
        published,
        allowed,
        cursor,
        leader,
        was_leader: false,
    };
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ticks = 0u64;
        loop {
            tokio::select! {
                msg = rx.recv() => {
                    let Some(msg) = msg else { break };
                    // What queued meanwhile goes with it: one transaction for many batches.
                    let mut signals = Vec::new();
                    let mut next = Some(msg);
                    while let Some(m) = next.take() {
                        match m {
                            Msg::Signals(batch) => signals.extend(batch),
                            other => engine.handle(other),
                        }
                        if signals.len() < DRAIN {
                            next = rx.try_recv().ok();
                        }
                    }
                    if !signals.is_empty() {
                        engine.store(signals).await;
                    }
                }
                _ = tick.tick() => {
                    ticks += 1;
                    if ticks.is_multiple_of(ALLOW_EVERY) {
                        engine.reload_allowlist().await;
                    }
                    if ticks.is_multiple_of(SAVE_EVERY) && engine.was_leader {
                        engine.save(ticks.is_multiple_of(PRUNE_EVERY)).await;
                    }
                    engine.tick().await;
                }
            }
        }
    });
    Ok(EngineHandle { tx, published: published_rx, counters })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn organisation_states_round_trip_through_their_json() {
        let s = OrgState {
            org: "acme".into(),
            registered_at: 1_700_000_000,
            trust: Some((3.5, 1.25, 1_700_100_000)),
            signals: 12,
            days: vec![19_700, 19_701],
            zeroed_until: i64::MIN,
            suspended: true,
            canary_hits: vec![(1_700_050_000, "8.8.8.8".parse().unwrap())],
        };
        assert_eq!(state_of("acme", &state_json(&s)), Some(s));
        assert_eq!(state_of("acme", "{\"trust\": 3}"), None, "a state that does not read is refused whole");
    }
}
