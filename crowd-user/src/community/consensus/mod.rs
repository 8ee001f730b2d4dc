//! Community consensus engine: decides which reported addresses the hub publishes.
//!
//! Owns the reporters' identities (machine → organisation, egress prefix, ASN), the per-address
//! report sets, per-organisation trust, the canary/never-list, the operator allowlist and the
//! published list with its changes. It sits between the hub's signal intake (which has already
//! checked the scenario hashes) and the CAPI decision stream. It is pure: no I/O, no clock reads,
//! no threads; time comes in as Unix seconds and every result is deterministic.
//!
//! It implements algorithms A, B and C of `reference/community.md` §2.3:
//! - **A, diverse quorum**: an address qualifies when, within `window_secs`, at least
//!   `quorum_orgs` eligible organisations reported it from at least `quorum_prefixes` egress
//!   prefixes (/24, /48) in at least `quorum_asns` ASNs. An organisation is eligible once warmed
//!   up (account age, accepted signals, distinct UTC days), while not suspended and while its
//!   trust is at least `min_trust`.
//! - **B, Beta trust**: every organisation has `(alpha, beta)`; `score = Σ trust · 2^(-age/half_life)`
//!   with one term per egress prefix (the strongest organisation behind it), so many
//!   organisations behind one /24 weigh as one. Listing also needs `score >= list_score`.
//! - **C, canaries**: bogons are refused without penalty; resolvers, every member's egress
//!   address and the operator never-list are canaries: a report costs `canary_penalty`, zeroes the
//!   organisation for `suspend_secs`, and a second hit within 30 days suspends it until
//!   [`Consensus::lift_suspension`].
//!
//! Choices where the reference is silent:
//! - Duplicates: one *counted* report per (organisation, address, `window_secs`); a duplicate only
//!   refreshes the time the organisation last saw the address (used for windows and score).
//! - Trust state starts at the prior with an organisation's first accepted report, not at
//!   registration, so idle accounts do not drift from the pessimistic prior to (1, 1).
//! - Decay is continuous (`lambda^(days)`, floor 1 per component), applied lazily; with a floor
//!   this is exactly the same as applying it once a day.
//! - Resolution after `trust_horizon_secs`: *agreement* (`alpha += 1`) when, at some report of the
//!   address within the horizon, the eligible organisations other than this one met the quorum
//!   counts of A, or a sensor saw it; *contradiction* (`beta += 1`) when no other
//!   non-suspended organisation from another egress prefix reported it; otherwise neutral.
//!   Reports made while the organisation was warming up resolve the same way.
//! - Hits are kept `max(2·W, keep_secs, H)` so pending trust resolutions can still be decided.
//! - Trust and warm-up changes of an organisation take effect at the next evaluation of an
//!   address (a report, a scheduled re-check or a re-announcement); a canary hit re-evaluates at
//!   once every address the organisation reported recently, so what only it supported goes.
//! - Repeating the same canary address within `window_secs` is one hit, not two.
//! - A zeroed or suspended organisation's reports are answered [`Outcome::Suspended`] and not
//!   stored; reports of allowlisted addresses are answered [`Outcome::Allowed`], without penalty.
//! - Sensors (operator honeypots) skip warm-up and have trust 1; with `sensor_alone` one sensor
//!   report lists an address; canaries and the allowlist still apply.
//! - Withdrawal (hysteresis): a listed address stays while it still qualifies, or while at least
//!   `quorum_orgs - 1` eligible organisations (counted at most once per prefix) reported it within
//!   `keep_secs` and the score over that window is at least `keep_score`.
//! - The published list is the top `max_entries` qualifying entries by the score at their last
//!   evaluation; an entry pushed out by a better one is announced as withdrawn.
//! - /24 aggregation (algorithm D) is not implemented: every entry is [`Scope::Ip`].

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Seconds in a day; UTC days for warm-up and the unit of trust decay.
pub const DAY: i64 = 86_400;
/// How far in the future a report's timestamp may be (clock skew of the reporter).
pub const FUTURE_SKEW_SECS: i64 = 300;
/// Two canary hits within this period suspend an organisation.
pub const CANARY_MEMORY_SECS: i64 = 30 * DAY;
/// Trust components never decay below this.
const TRUST_FLOOR: f64 = 1.0;

/// Tunables of the engine; [`Params::default`] gives the values of `community.md` §2.3.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    /// K: distinct organisations needed (3).
    pub quorum_orgs: u32,
    /// Distinct reporter egress prefixes (/24 v4, /48 v6) needed (3).
    pub quorum_prefixes: u32,
    /// A: distinct reporter ASNs needed (2).
    pub quorum_asns: u32,
    /// W: reports older than this stop counting towards listing (24 h).
    pub window_secs: i64,
    /// An organisation counts only once its oldest machine is this old (7 days)...
    pub warmup_secs: i64,
    /// ...and it has this many accepted reports (10)...
    pub warmup_signals: u32,
    /// ...on this many distinct UTC days (3); 0/0/0 disables warm-up.
    pub warmup_days: u32,
    /// Beta prior `(alpha, beta)` of a new organisation ((1, 2): trust 1/3).
    pub trust_prior: (f64, f64),
    /// Daily multiplicative decay of alpha and beta (0.98), floor 1 each.
    pub trust_decay_per_day: f64,
    /// H: a report resolves into agreement or contradiction after this (72 h).
    pub trust_horizon_secs: i64,
    /// Added to beta on a canary report (5).
    pub canary_penalty: f64,
    /// An organisation that reported a canary counts for nothing this long (7 days).
    pub suspend_secs: i64,
    /// Organisations with trust below this do not count (0.2).
    pub min_trust: f64,
    /// Duration an entry is announced with (48 h).
    pub list_secs: i64,
    /// Hysteresis window: a listed entry stays while `quorum_orgs - 1` organisations reported it
    /// within this window (48 h) with a score of at least `keep_score`.
    pub keep_secs: i64,
    /// Cap of the published list, highest score first (15,000).
    pub max_entries: usize,
    /// Operator sensors (honeypots) may list an address alone (true).
    pub sensor_alone: bool,
    /// θ: minimum score to list (1.5).
    pub list_score: f64,
    /// Score below which a listed entry is withdrawn (0.75).
    pub keep_score: f64,
    /// Half-life of a report's weight in the score (24 h).
    pub half_life_secs: i64,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            quorum_orgs: 3,
            quorum_prefixes: 3,
            quorum_asns: 2,
            window_secs: DAY,
            warmup_secs: 7 * DAY,
            warmup_signals: 10,
            warmup_days: 3,
            trust_prior: (1.0, 2.0),
            trust_decay_per_day: 0.98,
            trust_horizon_secs: 3 * DAY,
            canary_penalty: 5.0,
            suspend_secs: 7 * DAY,
            min_trust: 0.2,
            list_secs: 2 * DAY,
            keep_secs: 2 * DAY,
            max_entries: 15_000,
            sensor_alone: true,
            list_score: 1.5,
            keep_score: 0.75,
            half_life_secs: DAY,
        }
    }
}

impl Params {
    /// How long a hit is kept: long enough for the keep window and for trust resolution.
    fn retain_secs(&self) -> i64 {
        (2 * self.window_secs).max(self.keep_secs).max(self.trust_horizon_secs)
    }
}

/// Scope of a published entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// One address.
    Ip,
    /// A /24 (v4) or /48 (v6); reserved for aggregation, not produced yet.
    Range,
}

/// A registered machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reporter {
    /// Machine id (login).
    pub machine: String,
    /// Organisation (enrollment) the machine belongs to.
    pub org: String,
    /// Address it connects from; the engine keeps its /24 (/48) and makes the address a canary.
    pub egress: IpAddr,
    /// ASN of the egress address.
    pub asn: u32,
    /// Registration time (Unix seconds).
    pub registered_at: i64,
    /// An operator sensor (honeypot).
    pub sensor: bool,
}

/// One signal: `machine` saw `ip` trigger `scenario` at `at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Reporting machine id.
    pub machine: String,
    /// Reported (attacking) address.
    pub ip: IpAddr,
    /// Certified scenario name.
    pub scenario: String,
    /// Time of the event (Unix seconds).
    pub at: i64,
}

/// What [`Consensus::report`] did with a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Stored and counted.
    Counted,
    /// The organisation already has a counted report of this address in the window.
    Duplicate,
    /// The machine is not registered.
    Unknown,
    /// A bogon (private, shared, loopback, link-local, multicast, reserved): refused, no penalty.
    NotPublic,
    /// A canary (resolver, member egress, operator never-list): refused, the organisation is
    /// penalised and zeroed.
    Canary,
    /// The address is on the operator allowlist: refused, no penalty.
    Allowed,
    /// Older than the window or more than [`FUTURE_SKEW_SECS`] in the future.
    Stale,
    /// The organisation is zeroed after a canary hit or suspended.
    Suspended,
}

/// Built-in bogons plus canaries (resolvers, member egress addresses, operator never-list).
#[derive(Debug, Clone)]
pub struct Canaries {
    bogons: PrefixSet,
    canaries: PrefixSet,
}

/// How the never-list classifies an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Bogon,
    Canary,
}

const BOGONS_V4: [(Ipv4Addr, u8); 9] = [
    (Ipv4Addr::new(0, 0, 0, 0), 8),
    (Ipv4Addr::new(10, 0, 0, 0), 8),
    (Ipv4Addr::new(100, 64, 0, 0), 10),
    (Ipv4Addr::new(127, 0, 0, 0), 8),
    (Ipv4Addr::new(169, 254, 0, 0), 16),
    (Ipv4Addr::new(172, 16, 0, 0), 12),
    (Ipv4Addr::new(192, 168, 0, 0), 16),
    (Ipv4Addr::new(224, 0, 0, 0), 4),
    (Ipv4Addr::new(240, 0, 0, 0), 4), // includes 255.255.255.255
];

const BOGONS_V6: [(Ipv6Addr, u8); 5] = [
    (Ipv6Addr::UNSPECIFIED, 128),
    (Ipv6Addr::LOCALHOST, 128),
    (Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7),
    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10),
    (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8),
];

const RESOLVERS: [IpAddr; 7] = [
    IpAddr::V4(Ipv4Addr::new(1, 1, 1, 1)),
    IpAddr::V4(Ipv4Addr::new(1, 0, 0, 1)),
    IpAddr::V4(Ipv4Addr::new(8, 8, 8, 8)),
    IpAddr::V4(Ipv4Addr::new(8, 8, 4, 4)),
    IpAddr::V4(Ipv4Addr::new(9, 9, 9, 9)),
    IpAddr::V6(Ipv6Addr::new(0x2606, 0x4700, 0x4700, 0, 0, 0, 0, 0x1111)),
    IpAddr::V6(Ipv6Addr::new(0x2001, 0x4860, 0x4860, 0, 0, 0, 0, 0x8888)),
];

impl Canaries {
    /// The built-in bogons and resolvers plus the operator's never-list prefixes.
    /// Documentation ranges are not built in; add them here if wanted.
    pub fn new(never: Vec<(IpAddr, u8)>) -> Self {
        let mut bogons = PrefixSet::default();
        for (ip, len) in BOGONS_V4 {
            bogons.insert((IpAddr::V4(ip), len));
        }
        for (ip, len) in BOGONS_V6 {
            bogons.insert((IpAddr::V6(ip), len));
        }
        let mut canaries = PrefixSet::default();
        for ip in RESOLVERS {
            canaries.insert((ip, 128));
        }
        for prefix in never {
            canaries.insert(prefix);
        }
        Self { bogons, canaries }
    }

    /// Adds a canary prefix `(address, length)`; a length past the family's width means one address.
    pub fn add(&mut self, prefix: (IpAddr, u8)) {
        self.canaries.insert(prefix);
    }

    /// Whether `ip` must never be listed (bogon or canary).
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.class(ip).is_some()
    }

    /// Whether `ip` is in a built-in bogon class.
    pub fn is_bogon(&self, ip: IpAddr) -> bool {
        self.bogons.contains(normalise(ip))
    }

    fn class(&self, ip: IpAddr) -> Option<Class> {
        let ip = normalise(ip);
        if self.bogons.contains(ip) {
            Some(Class::Bogon)
        } else if self.canaries.contains(ip) {
            Some(Class::Canary)
        } else {
            None
        }
    }
}

impl Default for Canaries {
    fn default() -> Self {
        Self::new(Vec::new())
    }
}

/// One published (or withdrawn) entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Address or range.
    pub scope: Scope,
    /// `"203.0.113.7"` or `"203.0.113.0/24"`.
    pub value: String,
    /// Most reported scenario.
    pub scenario: String,
    /// Announced end of the decision (Unix seconds).
    pub until: i64,
    /// Score at the last evaluation.
    pub score: f64,
}

/// What a [`Consensus::tick`] changed in the published list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes {
    /// Newly listed or re-announced entries (with their new `until`).
    pub listed: Vec<Entry>,
    /// Entries to delete.
    pub withdrawn: Vec<Entry>,
}

impl Changes {
    /// Nothing changed.
    pub fn is_empty(&self) -> bool {
        self.listed.is_empty() && self.withdrawn.is_empty()
    }
}

/// Why an address is or is not listed; never names reporters.
#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    /// In the published list.
    pub listed: bool,
    /// Eligible organisations within the window.
    pub orgs: u32,
    /// Their distinct egress prefixes.
    pub prefixes: u32,
    /// Their distinct ASNs.
    pub asns: u32,
    /// Trust-weighted score within the window.
    pub score: f64,
    /// A bogon or canary.
    pub canary: bool,
    /// Human-readable reason, e.g. `"2 of 3 organisations"`.
    pub reason: String,
}

/// Trust of an organisation as exported by [`Consensus::org_trust`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OrgTrust {
    /// Agreements (decayed, with the prior).
    pub alpha: f64,
    /// Contradictions (decayed, with the prior).
    pub beta: f64,
    /// Zeroed after a canary hit until this time.
    pub zeroed_until: i64,
    /// Suspended until the operator lifts it.
    pub suspended: bool,
}

/// What of an organisation outlives a restart of the server ([`Consensus::org_states`],
/// [`Consensus::restore_org`]): its trust, warm-up progress and canary record.
#[derive(Debug, Clone, PartialEq)]
pub struct OrgState {
    /// The organisation.
    pub org: String,
    /// When its oldest machine registered.
    pub registered_at: i64,
    /// `(alpha, beta, as of)`, once it has an accepted report.
    pub trust: Option<(f64, f64, i64)>,
    /// Accepted reports (warm-up).
    pub signals: u32,
    /// Distinct UTC days with accepted reports (warm-up).
    pub days: Vec<i64>,
    /// Zeroed after a canary hit until then.
    pub zeroed_until: i64,
    /// Suspended until the operator lifts it.
    pub suspended: bool,
    /// Canary hits: when, and which address.
    pub canary_hits: Vec<(i64, IpAddr)>,
}

/// The consensus engine; see the module documentation.
#[derive(Debug)]
pub struct Consensus {
    params: Params,
    canaries: Canaries,
    allow: PrefixSet,
    pending_allow: Vec<(IpAddr, u8)>,
    machines: HashMap<String, Machine>,
    orgs: Vec<Org>,
    org_ids: HashMap<String, u32>,
    scenarios: Vec<String>,
    scenario_ids: HashMap<String, u32>,
    ips: HashMap<IpAddr, IpState>,
    queue: BinaryHeap<Reverse<(i64, IpAddr)>>,
    dirty: BTreeSet<IpAddr>,
    entries: BTreeMap<IpAddr, Entry>,
    published: BTreeSet<(u64, IpAddr)>,
    waiting: BTreeSet<(u64, IpAddr)>,
    clock: i64,
    examined: usize,
}

#[derive(Debug, Clone)]
struct Machine {
    org: u32,
    prefix: IpAddr,
    asn: u32,
    sensor: bool,
}

#[derive(Debug, Clone, Copy)]
struct Trust {
    alpha: f64,
    beta: f64,
    at: i64,
}

impl Trust {
    fn decayed(&self, now: i64, lambda: f64) -> (f64, f64) {
        let days = now.saturating_sub(self.at).max(0) as f64 / DAY as f64;
        let f = lambda.powf(days);
        ((self.alpha * f).max(TRUST_FLOOR), (self.beta * f).max(TRUST_FLOOR))
    }

    fn add(&mut self, now: i64, lambda: f64, da: f64, db: f64) {
        let (a, b) = self.decayed(now, lambda);
        self.alpha = a + da;
        self.beta = b + db;
        self.at = self.at.max(now);
    }
}

#[derive(Debug, Clone)]
struct Org {
    registered_at: i64,
    trust: Option<Trust>,
    signals: u32,
    days: Vec<i64>,
    zeroed_until: i64,
    suspended: bool,
    canary_hits: Vec<(i64, IpAddr)>,
    recent: VecDeque<(i64, IpAddr)>,
}

/// One counted report per (organisation, sensor flag, address, window).
#[derive(Debug, Clone)]
struct Hit {
    org: u32,
    prefix: IpAddr,
    asn: u32,
    sensor: bool,
    scenario: u32,
    first: i64,
    last: i64,
    resolved: bool,
    agreed: bool,
    corroborated: bool,
}

#[derive(Debug, Default)]
struct IpState {
    hits: Vec<Hit>,
    wake: Option<i64>,
}

/// One organisation's latest contribution to an address within a window.
#[derive(Debug, Clone, Copy)]
struct Support {
    org: u32,
    prefix: IpAddr,
    asn: u32,
    sensor: bool,
    last: i64,
    trust: f64,
    eligible: bool,
}

/// Quorum counts of a support set.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    orgs: u32,
    prefixes: u32,
    asns: u32,
    sensor: bool,
}

/// Bookkeeping of one tick, turned into [`Changes`] at its end.
#[derive(Debug, Default)]
struct TickLog {
    was_published: BTreeMap<IpAddr, bool>,
    announced: HashSet<IpAddr>,
    gone: HashMap<IpAddr, Entry>,
}

impl Consensus {
    /// An empty engine.
    pub fn new(params: Params, canaries: Canaries) -> Self {
        Self {
            params,
            canaries,
            allow: PrefixSet::default(),
            pending_allow: Vec::new(),
            machines: HashMap::new(),
            orgs: Vec::new(),
            org_ids: HashMap::new(),
            scenarios: Vec::new(),
            scenario_ids: HashMap::new(),
            ips: HashMap::new(),
            queue: BinaryHeap::new(),
            dirty: BTreeSet::new(),
            entries: BTreeMap::new(),
            published: BTreeSet::new(),
            waiting: BTreeSet::new(),
            clock: i64::MIN,
            examined: 0,
        }
    }

    /// The parameters in use.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Registers (or re-registers) a machine; its egress address becomes a canary at once and is
    /// withdrawn at the next tick if it was listed.
    pub fn add_reporter(&mut self, r: Reporter) {
        let egress = normalise(r.egress);
        let org = self.org_id(&r.org, r.registered_at);
        if let Some(o) = self.orgs.get_mut(org as usize) {
            o.registered_at = o.registered_at.min(r.registered_at);
        }
        self.canaries.add((egress, 128));
        self.dirty.insert(egress);
        self.machines.insert(r.machine, Machine { org, prefix: egress_prefix(egress), asn: r.asn, sensor: r.sensor });
    }

    /// Forgets a machine; its past reports keep counting and its egress stays a canary.
    pub fn remove_reporter(&mut self, machine: &str) {
        self.machines.remove(machine);
    }

    /// Ingests one report received at `now`. Work is proportional to the reports of that address.
    pub fn report(&mut self, r: &Report, now: i64) -> Outcome {
        self.clock = self.clock.max(now);
        let Some(m) = self.machines.get(&r.machine) else {
            return Outcome::Unknown;
        };
        let (org, prefix, asn, sensor) = (m.org, m.prefix, m.asn, m.sensor);
        if self.org(org).is_none_or(|o| o.suspended) {
            return Outcome::Suspended;
        }
        if r.at <= now - self.params.window_secs || r.at > now + FUTURE_SKEW_SECS {
            return Outcome::Stale;
        }
        let ip = normalise(r.ip);
        match self.canaries.class(ip) {
            Some(Class::Bogon) => return Outcome::NotPublic,
            Some(Class::Canary) => {
                self.canary_hit(org, ip, now);
                return Outcome::Canary;
            }
            None => {}
        }
        if self.org(org).is_some_and(|o| o.zeroed_until > now) {
            return Outcome::Suspended;
        }
        if self.allow.contains(ip) {
            return Outcome::Allowed;
        }
        let window = self.params.window_secs;
        let scenario = self.scenario_id(&r.scenario);
        let state = self.ips.entry(ip).or_default();
        if let Some(h) =
            state.hits.iter_mut().find(|h| h.org == org && h.sensor == sensor && (r.at - h.first).abs() < window)
        {
            h.last = h.last.max(r.at);
            self.dirty.insert(ip);
            return Outcome::Duplicate;
        }
        state.hits.push(Hit {
            org,
            prefix,
            asn,
            sensor,
            scenario,
            first: r.at,
            last: r.at,
            resolved: sensor,
            agreed: false,
            corroborated: false,
        });
        self.note_signal(org, ip, r.at, now);
        self.update_agreement(ip, now);
        self.dirty.insert(ip);
        Outcome::Counted
    }

    /// Advances to `now`: resolves trust of reports past their horizon, drops old reports,
    /// evaluates the addresses touched since the last tick or due for a re-check, and returns
    /// what changed in the published list. Work is proportional to those addresses only.
    pub fn tick(&mut self, now: i64) -> Changes {
        self.clock = self.clock.max(now);
        self.examined = 0;
        for prefix in std::mem::take(&mut self.pending_allow) {
            let (lo, hi) = prefix_range(prefix);
            self.dirty.extend(self.entries.range(lo..=hi).map(|(ip, _)| *ip));
        }
        while let Some(&Reverse((t, ip))) = self.queue.peek()
            && t <= now
        {
            self.queue.pop();
            if self.ips.get(&ip).is_some_and(|s| s.wake == Some(t)) {
                self.dirty.insert(ip);
            }
        }
        let mut log = TickLog::default();
        for ip in std::mem::take(&mut self.dirty) {
            self.process(ip, now, &mut log);
        }
        self.rebalance(&mut log);
        self.changes(log)
    }

    /// Why `ip` is or is not listed at `now`, without naming reporters.
    pub fn explain(&self, ip: IpAddr, now: i64) -> Explanation {
        let ip = normalise(ip);
        let p = &self.params;
        let listed = self.is_published(ip);
        let canary = self.canaries.contains(ip);
        let allowed = self.allow.contains(ip);
        let support = self.ips.get(&ip).map(|s| self.support(&s.hits, now, p.window_secs)).unwrap_or_default();
        let c = counts(&support, None);
        let score = self.score(&support, now);
        let mut missing = Vec::new();
        if c.orgs < p.quorum_orgs {
            missing.push(format!("{} of {} organisations", c.orgs, p.quorum_orgs));
        }
        if c.prefixes < p.quorum_prefixes {
            missing.push(format!("{} of {} egress prefixes", c.prefixes, p.quorum_prefixes));
        }
        if c.asns < p.quorum_asns {
            missing.push(format!("{} of {} ASNs", c.asns, p.quorum_asns));
        }
        if score < p.list_score {
            missing.push(format!("score {score:.2} of {:.2}", p.list_score));
        }
        let reason = if canary {
            "never listed: bogon or canary".to_owned()
        } else if allowed {
            "never listed: operator allowlist".to_owned()
        } else if c.sensor && p.sensor_alone {
            "seen by an operator sensor".to_owned()
        } else if missing.is_empty() {
            format!("{} organisations, {} prefixes, {} ASNs, score {score:.2}", c.orgs, c.prefixes, c.asns)
        } else if listed {
            format!("kept by hysteresis; for a new listing: {}", missing.join(", "))
        } else {
            missing.join(", ")
        };
        Explanation { listed, orgs: c.orgs, prefixes: c.prefixes, asns: c.asns, score, canary, reason }
    }

    /// The published list, highest score first, at most `max_entries` entries.
    pub fn listed(&self) -> impl Iterator<Item = &Entry> + '_ {
        self.published.iter().rev().filter_map(|(_, ip)| self.entries.get(ip))
    }

    /// Trust `alpha / (alpha + beta)` of `org` at the latest time seen; the prior's mean if the
    /// organisation has no accepted report yet, 0 while it is zeroed or suspended.
    pub fn trust(&self, org: &str) -> f64 {
        self.org_ids.get(org).map_or_else(|| self.prior_mean(), |&id| self.effective_trust(id, self.clock))
    }

    /// Raw trust state of `org` at the latest time seen, for persistence and operators.
    pub fn org_trust(&self, org: &str) -> Option<OrgTrust> {
        let o = self.org(*self.org_ids.get(org)?)?;
        let (alpha, beta) =
            o.trust.map_or(self.params.trust_prior, |t| t.decayed(self.clock, self.params.trust_decay_per_day));
        Some(OrgTrust { alpha, beta, zeroed_until: o.zeroed_until, suspended: o.suspended })
    }

    /// Restores persisted or operator-assigned trust `(alpha, beta)` of `org` as of `at`.
    /// Unknown organisations are created (registered at `at`).
    pub fn set_trust(&mut self, org: &str, alpha: f64, beta: f64, at: i64) {
        let id = self.org_id(org, at);
        if let Some(o) = self.orgs.get_mut(id as usize) {
            o.trust = Some(Trust { alpha: alpha.max(TRUST_FLOOR), beta: beta.max(TRUST_FLOOR), at });
        }
    }

    /// Every organisation's persistent state (see [`OrgState`]).
    pub fn org_states(&self) -> Vec<OrgState> {
        let mut out: Vec<OrgState> = self
            .org_ids
            .iter()
            .filter_map(|(name, &id)| {
                let o = self.org(id)?;
                Some(OrgState {
                    org: name.clone(),
                    registered_at: o.registered_at,
                    trust: o.trust.map(|t| (t.alpha, t.beta, t.at)),
                    signals: o.signals,
                    days: o.days.clone(),
                    zeroed_until: o.zeroed_until,
                    suspended: o.suspended,
                    canary_hits: o.canary_hits.clone(),
                })
            })
            .collect();
        out.sort_by(|a, b| a.org.cmp(&b.org));
        out
    }

    /// Restores an organisation's persistent state (before replaying recent reports).
    pub fn restore_org(&mut self, s: &OrgState) {
        let id = self.org_id(&s.org, s.registered_at);
        if let Some(o) = self.orgs.get_mut(id as usize) {
            o.registered_at = o.registered_at.min(s.registered_at);
            o.trust = s.trust.map(|(alpha, beta, at)| Trust {
                alpha: alpha.max(TRUST_FLOOR),
                beta: beta.max(TRUST_FLOOR),
                at,
            });
            o.signals = s.signals;
            o.days.clone_from(&s.days);
            o.zeroed_until = s.zeroed_until;
            o.suspended = s.suspended;
            o.canary_hits.clone_from(&s.canary_hits);
        }
    }

    /// Lifts a zeroing or suspension of `org`; returns whether it was zeroed or suspended.
    pub fn lift_suspension(&mut self, org: &str) -> bool {
        let Some(o) = self.org_ids.get(org).and_then(|&id| self.orgs.get_mut(id as usize)) else {
            return false;
        };
        let was = o.suspended || o.zeroed_until > self.clock;
        o.suspended = false;
        o.zeroed_until = i64::MIN;
        o.canary_hits.clear();
        was
    }

    /// Operator allowlist: matching entries are withdrawn at the next tick and never listed
    /// again; reports of them are refused without penalty.
    pub fn allow(&mut self, prefix: (IpAddr, u8)) {
        self.allow.insert(prefix);
        self.pending_allow.push(prefix);
    }

    /// Removes a prefix added with [`Consensus::allow`]; returns whether it was there.
    pub fn disallow(&mut self, prefix: (IpAddr, u8)) -> bool {
        self.allow.remove(prefix)
    }

    /// Scenarios reported for `ip` among the kept reports, most reported first.
    pub fn scenarios_of(&self, ip: IpAddr) -> Vec<(&str, u32)> {
        let Some(state) = self.ips.get(&normalise(ip)) else {
            return Vec::new();
        };
        let mut n: BTreeMap<u32, u32> = BTreeMap::new();
        for h in &state.hits {
            *n.entry(h.scenario).or_default() += 1;
        }
        let mut v: Vec<(&str, u32)> =
            n.into_iter().filter_map(|(s, c)| Some((self.scenarios.get(s as usize)?.as_str(), c))).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        v
    }

    /// Addresses evaluated by the last tick (a measure of its work).
    pub fn last_tick_work(&self) -> usize {
        self.examined
    }

    /// Addresses with kept reports (a measure of memory).
    pub fn tracked_addresses(&self) -> usize {
        self.ips.len()
    }

    // ---- organisations and trust ----

    fn org(&self, id: u32) -> Option<&Org> {
        self.orgs.get(id as usize)
    }

    fn org_id(&mut self, name: &str, registered_at: i64) -> u32 {
        if let Some(&id) = self.org_ids.get(name) {
            return id;
        }
        let id = u32::try_from(self.orgs.len()).unwrap_or(u32::MAX);
        self.orgs.push(Org {
            registered_at,
            trust: None,
            signals: 0,
            days: Vec::new(),
            zeroed_until: i64::MIN,
            suspended: false,
            canary_hits: Vec::new(),
            recent: VecDeque::new(),
        });
        self.org_ids.insert(name.to_owned(), id);
        id
    }

    fn scenario_id(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.scenario_ids.get(name) {
            return id;
        }
        let id = u32::try_from(self.scenarios.len()).unwrap_or(u32::MAX);
        self.scenarios.push(name.to_owned());
        self.scenario_ids.insert(name.to_owned(), id);
        id
    }

    fn prior_mean(&self) -> f64 {
        let (a, b) = self.params.trust_prior;
        a / (a + b)
    }

    /// Trust as a weight at `now`: 0 while zeroed or suspended.
    fn effective_trust(&self, id: u32, now: i64) -> f64 {
        let Some(o) = self.org(id) else { return 0.0 };
        if o.suspended || o.zeroed_until > now {
            return 0.0;
        }
        o.trust.map_or_else(
            || self.prior_mean(),
            |t| {
                let (a, b) = t.decayed(now, self.params.trust_decay_per_day);
                a / (a + b)
            },
        )
    }

    fn warmed_up(&self, o: &Org, now: i64) -> bool {
        let p = &self.params;
        now - o.registered_at >= p.warmup_secs
            && o.signals >= p.warmup_signals
            && o.days.len() >= p.warmup_days as usize
    }

    fn adjust_trust(&mut self, id: u32, now: i64, da: f64, db: f64) {
        let (prior, lambda) = (self.params.trust_prior, self.params.trust_decay_per_day);
        if let Some(o) = self.orgs.get_mut(id as usize) {
            o.trust.get_or_insert(Trust { alpha: prior.0, beta: prior.1, at: now }).add(now, lambda, da, db);
        }
    }

    /// Accepted report bookkeeping: warm-up counters, trust start, recent addresses.
    fn note_signal(&mut self, id: u32, ip: IpAddr, at: i64, now: i64) {
        let (prior, warmup_days, retain) =
            (self.params.trust_prior, self.params.warmup_days as usize, self.params.retain_secs());
        let Some(o) = self.orgs.get_mut(id as usize) else { return };
        o.signals = o.signals.saturating_add(1);
        let day = at.div_euclid(DAY);
        if o.days.len() < warmup_days && !o.days.contains(&day) {
            o.days.push(day);
        }
        o.trust.get_or_insert(Trust { alpha: prior.0, beta: prior.1, at: now });
        while o.recent.front().is_some_and(|&(t, _)| t + retain <= now) {
            o.recent.pop_front();
        }
        o.recent.push_back((now, ip));
    }

    fn canary_hit(&mut self, id: u32, ip: IpAddr, now: i64) {
        let (window, penalty, suspend) =
            (self.params.window_secs, self.params.canary_penalty, self.params.suspend_secs);
        let Some(o) = self.orgs.get_mut(id as usize) else { return };
        o.canary_hits.retain(|&(t, _)| t + CANARY_MEMORY_SECS > now);
        if o.canary_hits.iter().any(|&(t, c)| c == ip && now - t < window) {
            return;
        }
        o.canary_hits.push((now, ip));
        o.zeroed_until = o.zeroed_until.max(now + suspend);
        if o.canary_hits.len() >= 2 {
            o.suspended = true;
        }
        let recent: Vec<IpAddr> = o.recent.iter().map(|&(_, ip)| ip).collect();
        self.dirty.extend(recent);
        self.adjust_trust(id, now, 0.0, penalty);
    }

    // ---- evaluation ----

    /// Latest contribution per (organisation, sensor flag) within `(now - window, now]`, from
    /// organisations that are neither zeroed nor suspended.
    fn support(&self, hits: &[Hit], now: i64, window: i64) -> Vec<Support> {
        let mut latest: Vec<&Hit> =
            hits.iter().filter(|h| h.last > now - window && h.last <= now + FUTURE_SKEW_SECS).collect();
        // Latest hit first within each (organisation, sensor) group, then keep the first of each.
        latest.sort_unstable_by_key(|h| (h.org, h.sensor, Reverse(h.last)));
        latest.dedup_by_key(|h| (h.org, h.sensor));
        let mut out: Vec<Support> = Vec::with_capacity(latest.len());
        for h in latest {
            let Some(o) = self.org(h.org) else { continue };
            if o.suspended || o.zeroed_until > now {
                continue;
            }
            let (trust, eligible) = if h.sensor {
                (1.0, true)
            } else {
                let t = self.effective_trust(h.org, now);
                (t, t >= self.params.min_trust && self.warmed_up(o, now))
            };
            out.push(Support {
                org: h.org,
                prefix: h.prefix,
                asn: h.asn,
                sensor: h.sensor,
                last: h.last,
                trust,
                eligible,
            });
        }
        out
    }

    /// Trust-weighted score: per egress prefix the strongest eligible term, summed.
    fn score(&self, support: &[Support], now: i64) -> f64 {
        let half_life = self.params.half_life_secs.max(1) as f64;
        let mut best: BTreeMap<IpAddr, f64> = BTreeMap::new();
        for s in support.iter().filter(|s| s.eligible) {
            let age = (now - s.last).max(0) as f64;
            let term = s.trust.min(1.0) * (-age / half_life).exp2();
            let b = best.entry(s.prefix).or_default();
            *b = b.max(term);
        }
        // Not `sum()`: an empty f64 sum is -0.0.
        best.values().fold(0.0, |acc, v| acc + v)
    }

    fn meets_quorum(&self, c: Counts) -> bool {
        let p = &self.params;
        c.orgs >= p.quorum_orgs && c.prefixes >= p.quorum_prefixes && c.asns >= p.quorum_asns
    }

    /// After a counted report of `ip`: mark pending reports of other organisations agreed
    /// (quorum without them, or a sensor) or corroborated (another org from another prefix).
    fn update_agreement(&mut self, ip: IpAddr, now: i64) {
        let horizon = self.params.trust_horizon_secs;
        let Some(state) = self.ips.get(&ip) else { return };
        let support = self.support(&state.hits, now, self.params.window_secs);
        let tally = Tally::new(&support);
        // Without a quorum of all, there is none without one organisation: skip the recount.
        let possible = self.meets_quorum(tally.counts_without(u32::MAX));
        let mut marks = Vec::new();
        for (i, h) in state.hits.iter().enumerate() {
            if h.resolved || (h.agreed && h.corroborated) || now > h.first + horizon {
                continue;
            }
            let without = tally.counts_without(h.org);
            let agreed = without.sensor || (possible && self.meets_quorum(without));
            marks.push((i, agreed, tally.corroborated(h.org, h.prefix)));
        }
        if let Some(state) = self.ips.get_mut(&ip) {
            for (i, agreed, corroborated) in marks {
                if let Some(h) = state.hits.get_mut(i) {
                    h.agreed |= agreed;
                    h.corroborated |= corroborated;
                }
            }
        }
    }

    /// Resolves, prunes, (re)lists or withdraws one address and schedules its next wake-up.
    fn process(&mut self, ip: IpAddr, now: i64, log: &mut TickLog) {
        self.examined += 1;
        let Some(mut state) = self.ips.remove(&ip) else {
            self.withdraw(ip, log);
            return;
        };
        let p = self.params;
        let retain = p.retain_secs();
        // Trust resolution of reports past their horizon.
        let mut resolutions = Vec::new();
        for h in state.hits.iter_mut().filter(|h| !h.resolved && h.first + p.trust_horizon_secs <= now) {
            h.resolved = true;
            if h.agreed {
                resolutions.push((h.org, 1.0, 0.0));
            } else if !h.corroborated {
                resolutions.push((h.org, 0.0, 1.0));
            }
        }
        for (org, da, db) in resolutions {
            if self.org(org).is_some_and(|o| !o.suspended) {
                self.adjust_trust(org, now, da, db);
            }
        }
        state.hits.retain(|h| !h.resolved || h.last + retain > now);

        let blocked = self.canaries.contains(ip) || self.allow.contains(ip);
        let window = self.support(&state.hits, now, p.window_secs);
        let wc = counts(&window, None);
        let qualifies = !blocked
            && ((self.meets_quorum(wc) && self.score(&window, now) >= p.list_score) || (p.sensor_alone && wc.sensor));
        let keep_support = self.support(&state.hits, now, p.keep_secs);
        let kc = counts(&keep_support, None);
        let keep_score = self.score(&keep_support, now);
        let mut until = None;
        if let Some(e) = self.entries.get(&ip) {
            let keep = !blocked
                && (qualifies
                    || (kc.orgs.min(kc.prefixes) >= p.quorum_orgs.saturating_sub(1).max(1)
                        && keep_score >= p.keep_score)
                    || (p.sensor_alone && kc.sensor));
            if keep {
                let reannounce = e.until - now <= p.list_secs / 2;
                let new_until = if reannounce { now + p.list_secs } else { e.until };
                self.upsert(ip, new_until, keep_score, &state, reannounce, log);
                until = Some(new_until);
            } else {
                self.withdraw(ip, log);
            }
        } else if qualifies {
            self.upsert(ip, now + p.list_secs, keep_score, &state, true, log);
            until = Some(now + p.list_secs);
        }

        // Next wake-up: pending resolution, pruning, and for listed entries re-announcement and
        // the next change of their support.
        let mut wake = i64::MAX;
        for h in &state.hits {
            wake = wake.min(if h.resolved { h.last + retain } else { h.first + p.trust_horizon_secs });
        }
        if let Some(until) = until {
            wake = wake.min(until - p.list_secs / 2);
            for s in &keep_support {
                wake = wake.min(s.last + p.keep_secs);
            }
            if keep_score > p.keep_score {
                let secs = (keep_score / p.keep_score).log2() * p.half_life_secs as f64;
                wake = wake.min(now.saturating_add(secs.ceil() as i64));
            }
        }
        if state.hits.is_empty() && until.is_none() {
            return;
        }
        let wake = wake.max(now + 1);
        if state.wake != Some(wake) {
            state.wake = Some(wake);
            self.queue.push(Reverse((wake, ip)));
        }
        self.ips.insert(ip, state);
    }

    fn top_scenario(&self, state: &IpState) -> String {
        let mut n: BTreeMap<&str, u32> = BTreeMap::new();
        for h in &state.hits {
            if let Some(s) = self.scenarios.get(h.scenario as usize) {
                *n.entry(s.as_str()).or_default() += 1;
            }
        }
        // max_by_key keeps the last maximum; iterate in reverse so ties go to the smallest name.
        n.into_iter().rev().max_by_key(|&(_, c)| c).map(|(s, _)| s.to_owned()).unwrap_or_default()
    }

    // ---- the published list ----

    fn is_published(&self, ip: IpAddr) -> bool {
        self.entries.get(&ip).is_some_and(|e| self.published.contains(&(score_key(e.score), ip)))
    }

    /// Takes `ip` out of the ranking, remembering whether it was published before this tick.
    fn unrank(&mut self, ip: IpAddr, log: &mut TickLog) {
        if let Some(e) = self.entries.get(&ip) {
            let key = (score_key(e.score), ip);
            let was = self.published.remove(&key);
            self.waiting.remove(&key);
            log.was_published.entry(ip).or_insert(was);
        } else {
            log.was_published.entry(ip).or_insert(false);
        }
    }

    fn upsert(&mut self, ip: IpAddr, until: i64, score: f64, state: &IpState, announced: bool, log: &mut TickLog) {
        self.unrank(ip, log);
        let entry = Entry { scope: Scope::Ip, value: ip.to_string(), scenario: self.top_scenario(state), until, score };
        self.waiting.insert((score_key(score), ip));
        self.entries.insert(ip, entry);
        if announced {
            log.announced.insert(ip);
        }
    }

    fn withdraw(&mut self, ip: IpAddr, log: &mut TickLog) {
        if self.entries.contains_key(&ip) {
            self.unrank(ip, log);
            if let Some(e) = self.entries.remove(&ip) {
                log.gone.insert(ip, e);
            }
        }
    }

    /// Restores "published = the `max_entries` best entries" after this tick's updates.
    fn rebalance(&mut self, log: &mut TickLog) {
        let cap = self.params.max_entries;
        while self.published.len() > cap {
            let Some(k) = self.published.pop_first() else { break };
            log.was_published.entry(k.1).or_insert(true);
            self.waiting.insert(k);
        }
        while let Some(&best) = self.waiting.last() {
            if self.published.len() < cap {
                self.waiting.remove(&best);
                log.was_published.entry(best.1).or_insert(false);
                self.published.insert(best);
                continue;
            }
            match self.published.first() {
                Some(&worst) if worst < best => {
                    self.published.remove(&worst);
                    log.was_published.entry(worst.1).or_insert(true);
                    self.waiting.insert(worst);
                    self.waiting.remove(&best);
                    log.was_published.entry(best.1).or_insert(false);
                    self.published.insert(best);
                }
                _ => break,
            }
        }
    }

    fn changes(&self, mut log: TickLog) -> Changes {
        let mut changes = Changes::default();
        for (ip, was) in log.was_published {
            let now = self.is_published(ip);
            match (was, now) {
                (false, true) => changes.listed.extend(self.entries.get(&ip).cloned()),
                (true, true) if log.announced.contains(&ip) => changes.listed.extend(self.entries.get(&ip).cloned()),
                (true, false) => {
                    changes.withdrawn.extend(self.entries.get(&ip).cloned().or_else(|| log.gone.remove(&ip)))
                }
                _ => {}
            }
        }
        changes
    }
}

/// Distinct organisations, prefixes and ASNs among eligible support, optionally without one org.
fn counts(support: &[Support], without: Option<u32>) -> Counts {
    let mut orgs = BTreeSet::new();
    let mut prefixes = BTreeSet::new();
    let mut asns = BTreeSet::new();
    let mut sensor = false;
    for s in support.iter().filter(|s| s.eligible && Some(s.org) != without) {
        orgs.insert(s.org);
        prefixes.insert(s.prefix);
        asns.insert(s.asn);
        sensor |= s.sensor;
    }
    let n = |x: usize| u32::try_from(x).unwrap_or(u32::MAX);
    Counts { orgs: n(orgs.len()), prefixes: n(prefixes.len()), asns: n(asns.len()), sensor }
}

/// Who supports an address, indexed so that "the quorum without organisation o" costs O(log n).
#[derive(Debug, Default)]
struct Tally {
    /// Eligible organisations per prefix and per ASN, and eligible sensor organisations.
    orgs: BTreeMap<u32, Vec<(IpAddr, u32)>>,
    prefix_orgs: BTreeMap<IpAddr, BTreeSet<u32>>,
    asn_orgs: BTreeMap<u32, BTreeSet<u32>>,
    sensors: BTreeSet<u32>,
    /// All (also ineligible) organisations per prefix, for corroboration.
    any_prefix_orgs: BTreeMap<IpAddr, BTreeSet<u32>>,
}

impl Tally {
    fn new(support: &[Support]) -> Self {
        let mut t = Self::default();
        for s in support {
            t.any_prefix_orgs.entry(s.prefix).or_default().insert(s.org);
            if !s.eligible {
                continue;
            }
            t.orgs.entry(s.org).or_default().push((s.prefix, s.asn));
            t.prefix_orgs.entry(s.prefix).or_default().insert(s.org);
            t.asn_orgs.entry(s.asn).or_default().insert(s.org);
            if s.sensor {
                t.sensors.insert(s.org);
            }
        }
        t
    }

    /// Quorum counts of the eligible support without `org` (`u32::MAX`: all of it).
    fn counts_without(&self, org: u32) -> Counts {
        let n = |x: usize| u32::try_from(x).unwrap_or(u32::MAX);
        let only = |set: Option<&BTreeSet<u32>>| set.is_some_and(|s| s.len() == 1 && s.contains(&org));
        let mine = self.orgs.get(&org).map_or(&[][..], Vec::as_slice);
        // An organisation has at most two entries (member and sensor): count each prefix/ASN once.
        let lost_prefixes = mine
            .iter()
            .enumerate()
            .filter(|&(i, &(p, _))| !mine[..i].iter().any(|&(q, _)| q == p) && only(self.prefix_orgs.get(&p)))
            .count();
        let lost_asns = mine
            .iter()
            .enumerate()
            .filter(|&(i, &(_, a))| !mine[..i].iter().any(|&(_, b)| b == a) && only(self.asn_orgs.get(&a)))
            .count();
        Counts {
            orgs: n(self.orgs.len() - usize::from(!mine.is_empty())),
            prefixes: n(self.prefix_orgs.len() - lost_prefixes),
            asns: n(self.asn_orgs.len() - lost_asns),
            sensor: self.sensors.iter().any(|&o| o != org),
        }
    }

    /// Whether an organisation other than `org`, from a prefix other than `prefix`, supports it.
    fn corroborated(&self, org: u32, prefix: IpAddr) -> bool {
        self.any_prefix_orgs.iter().any(|(p, orgs)| *p != prefix && orgs.iter().any(|&o| o != org))
    }
}

/// Order-preserving key of a non-negative score.
fn score_key(score: f64) -> u64 {
    score.max(0.0).to_bits()
}

/// IPv4-mapped IPv6 addresses become IPv4.
pub fn normalise(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// The reporter-identity prefix of an egress address: /24 (v4) or /48 (v6).
pub fn egress_prefix(ip: IpAddr) -> IpAddr {
    match normalise(ip) {
        IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask4(24))),
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask6(48))),
    }
}

fn mask4(len: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(len.min(32))).unwrap_or(0)
}

fn mask6(len: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(len.min(128))).unwrap_or(0)
}

/// A normalised prefix: the family's bits, masked, and the clamped length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Net {
    V4(u32, u8),
    V6(u128, u8),
}

fn net(ip: IpAddr, len: u8) -> Net {
    match ip {
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() && len >= 96 => net(normalise(ip), len - 96),
        IpAddr::V6(v6) => {
            let len = len.min(128);
            Net::V6(u128::from(v6) & mask6(len), len)
        }
        IpAddr::V4(v4) => {
            let len = len.min(32);
            Net::V4(u32::from(v4) & mask4(len), len)
        }
    }
}

/// First and last address of a prefix (after normalisation).
fn prefix_range((ip, len): (IpAddr, u8)) -> (IpAddr, IpAddr) {
    match net(ip, len) {
        Net::V4(bits, len) => (IpAddr::V4(Ipv4Addr::from(bits)), IpAddr::V4(Ipv4Addr::from(bits | !mask4(len)))),
        Net::V6(bits, len) => (IpAddr::V6(Ipv6Addr::from(bits)), IpAddr::V6(Ipv6Addr::from(bits | !mask6(len)))),
    }
}

/// A set of prefixes with lookups in O(number of distinct lengths).
#[derive(Debug, Clone, Default)]
struct PrefixSet {
    v4: BTreeMap<u8, HashSet<u32>>,
    v6: BTreeMap<u8, HashSet<u128>>,
}

impl PrefixSet {
    fn insert(&mut self, (ip, len): (IpAddr, u8)) {
        match net(ip, len) {
            Net::V4(bits, len) => self.v4.entry(len).or_default().insert(bits),
            Net::V6(bits, len) => self.v6.entry(len).or_default().insert(bits),
        };
    }

    fn remove(&mut self, (ip, len): (IpAddr, u8)) -> bool {
        match net(ip, len) {
            Net::V4(bits, len) => self.v4.get_mut(&len).is_some_and(|s| s.remove(&bits)),
            Net::V6(bits, len) => self.v6.get_mut(&len).is_some_and(|s| s.remove(&bits)),
        }
    }

    /// Whether a normalised address is inside one of the prefixes.
    fn contains(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(v4) => {
                let bits = u32::from(v4);
                self.v4.iter().any(|(&len, set)| set.contains(&(bits & mask4(len))))
            }
            IpAddr::V6(v6) => {
                let bits = u128::from(v6);
                self.v6.iter().any(|(&len, set)| set.contains(&(bits & mask6(len))))
            }
        }
    }
}

#[cfg(test)]
mod tests;
