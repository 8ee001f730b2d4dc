//! Live bucket state: what every source (group key) holds in every scenario it feeds, kept small
//! and within a memory budget.
//!
//! One hash-map entry per group key (`IpPrefix(evt.Meta.source_ip)`, ...), holding one slot per
//! scenario the key feeds: counters and times inline, a `distinct` set as 64-bit keyed hashes (the
//! first one inline), events only for scenarios that read their queue (or for `crowd hubtest`),
//! and a blackholed key as a slot with its end time. A source that sent one failed login costs
//! one entry of about 200 bytes across the scenarios it feeds.
//!
//! Past the memory budget, the buckets least likely to overflow go first: the emptiest (level
//! relative to capacity, after leaking), then the longest idle; a bucket at least half full is
//! evicted only when nothing else is left. Evictions are counted per scenario.
use std::{
    collections::{HashSet, VecDeque},
    hash::BuildHasher,
    sync::Arc,
};

use hashbrown::HashMap;

use smallvec::SmallVec;

use super::{Alert, BucketKind, MAX_QUEUE, MAX_REPROCESS_DEPTH, Scenario, named_source, queue_context, signal_value};
use crate::engine::{
    event::Event,
    expr::{Env, EvtContext},
    fields::Str,
};

/// Budget when none is set: what a small server can spare for detection state.
pub const DEFAULT_BUDGET: usize = 256 << 20;

/// What one kept event is charged (it is shared by the buckets that keep it; this overcounts).
const EVENT_COST: usize = 1024;

/// `count` of a blackholed slot, whose `last` is then the end of the blackhole.
const BLACKHOLED: u32 = u32::MAX;

/// A scenario's state for one key: a bucket, or a blackhole after an overflow.
pub(super) struct Bucket {
    /// Time of the last event (blackholed: when the blackhole ends).
    pub(super) last: f64,
    tokens: f64,
    /// Kept events and further `distinct` hashes, for the buckets that have them.
    extra: Option<Box<Extra>>,
    count: u32,
    /// Seconds from the first event to the last.
    span: f32,
    /// The first `distinct` value's keyed hash (0: none yet).
    seen: u32,
    /// The scenario (its index).
    scenario: u16,
}

#[derive(Default)]
struct Extra {
    /// Kept events, oldest first (scenarios that read their queue, counters, `crowd hubtest`).
    events: VecDeque<Arc<Event>>,
    seen: HashSet<u32>,
    /// A bayesian bucket's guillotined conditions (bit i: condition i held once).
    fired: u64,
}

impl Bucket {
    fn new(scenario: u16, kind: &BucketKind, now: f64) -> Bucket {
        Bucket {
            tokens: match kind {
                BucketKind::Leaky { capacity, .. } => f64::from(*capacity),
                _ => 0.0,
            },
            last: now,
            count: 0,
            span: 0.0,
            seen: 0,
            scenario,
            extra: None,
        }
    }

    fn blackhole(scenario: u16, until: f64) -> Bucket {
        Bucket { tokens: 0.0, last: until, count: BLACKHOLED, span: 0.0, seen: 0, scenario, extra: None }
    }

    fn is_live(&self) -> bool {
        self.count != BLACKHOLED
    }

    /// Events poured.
    pub(super) fn count(&self) -> usize {
        self.count as usize
    }

    /// Time of the first event.
    pub(super) fn first(&self) -> f64 {
        self.last - f64::from(self.span)
    }

    /// Adds a `distinct` hash; false when it was there.
    fn see(&mut self, h: u64) -> bool {
        // 32 bits of a keyed hash: a client cannot aim at a collision it cannot compute.
        let h = (h as u32).max(1);
        if self.seen == 0 {
            self.seen = h;
            return true;
        }
        if self.seen == h {
            return false;
        }
        self.extra.get_or_insert_with(Box::default).seen.insert(h)
    }

    /// Forgets the poured events (an idle bucket restarting).
    fn reset(&mut self, now: f64) {
        self.count = 0;
        self.span = 0.0;
        self.last = now;
        self.seen = 0;
        if let Some(x) = &mut self.extra {
            x.events.clear();
            x.seen.clear();
        }
    }

    fn heap(&self) -> usize {
        self.extra.as_ref().map_or(0, |x| {
            size_of::<Extra>() + x.events.capacity() * 8 + x.events.len() * EVENT_COST + x.seen.capacity() * 9
        })
    }

    /// The events, oldest first (none when the bucket keeps none).
    pub(super) fn queue(&self) -> impl Iterator<Item = &Arc<Event>> {
        self.extra.iter().flat_map(|x| x.events.iter())
    }

    /// How full the bucket is at `now`, after leaking (0 empty, 1 about to overflow).
    fn fill(&self, kind: &BucketKind, now: f64) -> f64 {
        match *kind {
            // A blackholed key keeps its alert from repeating: kept like a full bucket.
            _ if !self.is_live() => 1.0,
            BucketKind::Leaky { capacity, leak } if capacity > 0 && capacity < u32::MAX => {
                let tokens = (self.tokens + (now - self.last).max(0.0) / leak).min(f64::from(capacity));
                1.0 - tokens / f64::from(capacity)
            }
            BucketKind::Leaky { .. } | BucketKind::Trigger => 0.0,
            // Counters report whatever they hold: kept unless nothing else is left.
            BucketKind::Counter { .. } => 1.0,
        }
    }
}

/// Every scenario's state for one group key.
#[derive(Default)]
struct Group {
    slots: SmallVec<[Bucket; 3]>,
}

impl Group {
    fn slot(&mut self, i: u16) -> Option<&mut Bucket> {
        self.slots.iter_mut().find(|b| b.scenario == i)
    }

    fn take(&mut self, i: u16) -> Option<Bucket> {
        let at = self.slots.iter().position(|b| b.scenario == i)?;
        Some(self.slots.remove(at))
    }

    fn live(&self) -> usize {
        self.slots.iter().filter(|b| b.is_live()).count()
    }

    /// Heap bytes beyond the map entry.
    fn heap(&self, key: &Str) -> usize {
        let spill = if self.slots.spilled() { self.slots.capacity() * size_of::<Bucket>() } else { 0 };
        let key = if key.is_heap_allocated() { key.len() } else { 0 };
        spill + key + self.slots.iter().map(Bucket::heap).sum::<usize>()
    }
}

/// Live bucket state for a set of scenarios.
pub struct Buckets {
    scenarios: Vec<Scenario>,
    groups: HashMap<Str, Group>,
    /// Heap bytes of the groups beyond their map entries.
    heap: usize,
    /// The most [`Buckets::bytes`] seen (checked every 256 events and before the table grows).
    peak: usize,
    /// Events since the last sweep of idle buckets.
    since_collect: usize,
    /// Live (not blackholed) buckets.
    live: usize,
    budget: usize,
    /// Buckets evicted, per scenario.
    evicted: Vec<u64>,
    warned: bool,
    /// Keep every bucket's queue (else only those of scenarios that read theirs).
    keep_queues: bool,
    distinct_hasher: std::hash::RandomState,
    /// For each scenario, the first scenario with the same `groupby` text (its key is reused).
    same_groupby: Vec<usize>,
    /// The scenarios an event may pour into, by its `log_type` (see `engine/gate.rs`).
    gate: Option<crate::engine::gate::Gate>,
    pours: u64,
    has_counters: bool,
    next_expiry_check: f64,
    /// Replaying old logs (CrowdSec's time machine): see [`Buckets::replaying`].
    replaying: bool,
}

impl Buckets {
    /// Buckets for `scenarios`, within [`DEFAULT_BUDGET`].
    #[must_use]
    pub fn new(scenarios: Vec<Scenario>) -> Buckets {
        let has_counters = scenarios.iter().any(|s| matches!(s.kind, BucketKind::Counter { .. }));
        let text = |i: usize| scenarios[i].groupby.as_ref().map(crate::engine::expr::Expr::source);
        let same_groupby = (0..scenarios.len()).map(|i| (0..=i).find(|j| text(*j) == text(i)).unwrap_or(i)).collect();
        let log_type = crate::engine::event::FieldRef::Meta("log_type".into());
        let required: Vec<Option<Vec<String>>> = scenarios
            .iter()
            .map(|s| {
                let mut v = s.filter.required_values(&log_type)?;
                if let Some(c) = &s.cancel_on {
                    v.extend(c.required_values(&log_type)?);
                }
                Some(v)
            })
            .collect();
        let gate = crate::engine::gate::Gate::new(log_type, &required);
        Buckets {
            same_groupby,
            gate,
            evicted: vec![0; scenarios.len()],
            scenarios,
            groups: HashMap::new(),
            heap: 0,
            peak: 0,
            since_collect: 0,
            live: 0,
            budget: DEFAULT_BUDGET,
            warned: false,
            keep_queues: false,
            distinct_hasher: std::hash::RandomState::new(),
            pours: 0,
            has_counters,
            next_expiry_check: f64::NEG_INFINITY,
            replaying: false,
        }
    }

    /// Replays old logs as CrowdSec's time machine does: an event no parser dated (without
    /// `MarshaledTime`) overflows trigger scenarios only; live, it pours at the time it was read.
    #[must_use]
    pub fn replaying(mut self) -> Buckets {
        self.replaying = true;
        self
    }

    /// Holds detection state within about `bytes` (`--max-memory`).
    #[must_use]
    pub fn with_budget(mut self, bytes: usize) -> Buckets {
        self.budget = bytes;
        self
    }

    /// [`Buckets::with_budget`] on live state.
    pub fn set_budget(&mut self, bytes: usize) {
        self.budget = bytes;
    }

    /// The budget.
    #[must_use]
    pub fn budget(&self) -> usize {
        self.budget
    }

    /// Keeps every bucket's last events for its alert, as CrowdSec does (`crowd hubtest`, whose
    /// results list them). Otherwise a bucket keeps events only when its scenario reads them
    /// (`condition`, `overflow_filter`) or is a counter: a source's events are not held for hours
    /// by a slow scenario, and its alert carries the overflowing event.
    #[must_use]
    pub fn keeping_queues(mut self) -> Buckets {
        self.keep_queues = true;
        self
    }

    /// The scenarios.
    #[must_use]
    pub fn scenarios(&self) -> &[Scenario] {
        &self.scenarios
    }

    /// Live buckets.
    #[must_use]
    pub fn len(&self) -> usize {
        self.live
    }

    /// True without live buckets.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Group keys held (sources, for most scenarios).
    #[must_use]
    pub fn keys(&self) -> usize {
        self.groups.len()
    }

    /// Bytes of bucket state: the map's table and what its entries hold (kept events estimated).
    #[must_use]
    pub fn bytes(&self) -> usize {
        self.groups.allocation_size() + self.heap
    }

    /// The largest table the budget allows, in buckets: a power of two whose table takes at most
    /// two thirds of the budget (the rest for what entries hold, and for the smaller table beside
    /// it while it is built).
    fn max_buckets(&self) -> usize {
        let per = size_of::<(Str, Group)>() + 1;
        let mut b: usize = 16;
        while (b * 2) * per <= self.budget / 3 * 2 {
            b *= 2;
        }
        b
    }

    /// Before a new key goes into a full table: sweep idle buckets; if that is not enough, let it
    /// grow within the budget, counting the old
    /// table beside the new one while it is rebuilt (a small table jumps straight to the largest
    /// size, so that the rebuild of a big one never doubles the memory); at the largest size,
    /// evict to under half of it (so that it is rehashed in place rather than grown).
    fn make_room(&mut self, now: f64) {
        self.peak = self.peak.max(self.bytes());
        let per = size_of::<(Str, Group)>() + 1;
        // Idle buckets go first: a table that is mostly drained is rehashed in place, not grown.
        self.collect(now);
        let buckets = self.groups.allocation_size() / per;
        if self.groups.len() < buckets * 7 / 16 {
            return;
        }
        let max = self.max_buckets();
        if buckets < max {
            let current = self.groups.allocation_size();
            if current + 2 * buckets * per + self.heap <= self.budget / 8 {
                return; // doubling a small table: hashbrown's own growth
            }
            if current + max * per + self.heap <= self.budget {
                self.groups.reserve(max / 8 * 7 - self.groups.len());
                return;
            }
        }
        let keep = (buckets * 7 / 16).saturating_sub(2);
        if self.groups.len() > keep {
            self.evict(now, keep);
        }
    }

    /// The most bytes the state took (sampled every 256 events and before the table grows).
    #[must_use]
    pub fn peak_bytes(&self) -> usize {
        self.peak.max(self.bytes())
    }

    /// Buckets evicted to stay within the budget, per scenario name (scenarios with none left out).
    pub fn evictions(&self) -> impl Iterator<Item = (&str, u64)> {
        self.scenarios.iter().zip(&self.evicted).filter(|(_, n)| **n > 0).map(|(s, n)| (s.name.as_str(), *n))
    }

    /// All buckets evicted so far.
    #[must_use]
    pub fn evicted(&self) -> u64 {
        self.evicted.iter().sum()
    }

    /// Names of the scenarios an event would pour into (`crowd explain`).
    #[must_use]
    pub fn matching(&self, evt: &Event, env: &Env) -> Vec<&str> {
        self.scenarios.iter().filter(|s| env.test(&s.filter, evt)).map(|s| s.name.as_str()).collect()
    }

    /// Pours an event (at its own time) into every scenario whose filter it passes; returns the
    /// alerts raised, counters that ran out first. Overflows of `reprocess` scenarios are poured
    /// back as events, and what they raise follows.
    pub fn pour(&mut self, evt: impl Into<Arc<Event>>, env: &Env) -> Vec<Alert> {
        // Shared, not copied: the buckets that keep the event hold this one allocation.
        let evt: Arc<Event> = evt.into();
        let now = evt.time;
        // Counters are checked at most once a second of event time.
        let mut out = if self.has_counters && now >= self.next_expiry_check {
            self.next_expiry_check = now + 1.0;
            self.expire(now, env)
        } else {
            Vec::new()
        };
        out.extend(self.pour_one(&evt, env));
        self.reprocess(out, env, 0)
    }

    /// Pours back the overflows of `reprocess` scenarios among `alerts` (returned with theirs).
    fn reprocess(&mut self, alerts: Vec<Alert>, env: &Env, depth: u32) -> Vec<Alert> {
        if depth >= MAX_REPROCESS_DEPTH || !alerts.iter().any(|a| self.reprocessed(a)) {
            return alerts;
        }
        let mut out = Vec::with_capacity(alerts.len() + 1);
        for a in alerts {
            if self.reprocessed(&a) {
                // As CrowdSec's: an overflow event carries its alert and nothing of the log lines
                // (no `Meta`), so it reaches only scenarios that look for overflows.
                let ovf =
                    Arc::new(Event { time: a.at, overflow: Some(Box::new(a.overflow_alert())), ..Event::default() });
                out.push(a);
                let more = self.pour_one(&ovf, env);
                out.extend(self.reprocess(more, env, depth + 1));
            } else {
                out.push(a);
            }
        }
        out
    }

    fn reprocessed(&self, a: &Alert) -> bool {
        self.scenarios.iter().any(|s| s.reprocess && s.name == a.scenario)
    }

    /// Removes scenario `slot`'s state under `key`, keeping the counts right.
    fn remove_slot(&mut self, key: &Str, slot: u16) -> Option<Bucket> {
        let g = self.groups.get_mut(key)?;
        let before = g.heap(key);
        let b = g.take(slot)?;
        self.heap = self.heap + g.heap(key) - before;
        if b.is_live() {
            self.live -= 1;
        }
        if g.slots.is_empty() {
            self.groups.remove(key);
        }
        Some(b)
    }

    fn pour_one(&mut self, shared: &Arc<Event>, env: &Env) -> Vec<Alert> {
        let evt: &Event = shared;
        let now = evt.time;
        let mut out = Vec::new();
        let ctx = std::cell::OnceCell::new();
        let ctx = || ctx.get_or_init(|| EvtContext::new(evt));
        // Scenarios usually share their `groupby`: each distinct expression runs once per event.
        let mut keys: SmallVec<[(usize, Str); 2]> = SmallVec::new();
        let candidates: SmallVec<[usize; 64]> = match &self.gate {
            Some(g) => g.candidates(evt).iter().copied().collect(),
            None => (0..self.scenarios.len()).collect(),
        };
        let undated = self.replaying && !evt.enriched.contains_key("MarshaledTime");
        for i in candidates {
            let sc = &self.scenarios[i];
            if undated && !matches!(sc.kind, BucketKind::Trigger) {
                continue;
            }
            let cancel = sc.cancel_on.as_ref().is_some_and(|c| env.test_with(c, evt, ctx));
            if !cancel && !env.test_with(&sc.filter, evt, ctx) {
                continue;
            }
            let key = match &sc.groupby {
                None => Str::default(),
                Some(g) => {
                    let id = self.same_groupby[i];
                    match keys.iter().find(|(x, _)| *x == id) {
                        Some((_, k)) => k.clone(),
                        None => {
                            let k = Str::from(env.string_with(g, evt, ctx).unwrap_or_default());
                            keys.push((id, k.clone()));
                            k
                        }
                    }
                }
            };
            let slot = u16::try_from(i).unwrap_or(u16::MAX);
            if cancel {
                // `cancel_on` destroys the bucket; a blackhole stays.
                if self.groups.get_mut(&key).and_then(|g| g.slot(slot)).is_some_and(|b| b.is_live()) {
                    self.remove_slot(&key, slot);
                }
                continue;
            }
            if self.groups.len() == self.groups.capacity() && !self.groups.contains_key(&key) {
                self.make_room(now);
            }
            let sc = &self.scenarios[i];
            let distinct = sc
                .distinct
                .as_ref()
                .map(|d| self.distinct_hasher.hash_one(env.string_with(d, evt, ctx).unwrap_or_default()));
            let keep = self.keep_queues
                || sc.condition.is_some()
                || sc.bayes.is_some()
                || sc.overflow_filter.is_some()
                || matches!(sc.kind, BucketKind::Counter { .. });
            let (kind, cache) = (&sc.kind, sc.cache_size);
            let g = self.groups.entry(key.clone()).or_default();
            let before = g.heap(&key);
            let b = match g.slot(slot) {
                Some(b) if !b.is_live() && now < b.last => continue,
                Some(b) => {
                    if !b.is_live() {
                        *b = Bucket::new(slot, kind, now);
                        self.live += 1;
                    }
                    b
                }
                None => {
                    g.slots.push(Bucket::new(slot, kind, now));
                    self.live += 1;
                    g.slots.last_mut().expect("pushed")
                }
            };
            if let Some(d) = distinct
                && !b.see(d)
            {
                self.heap = self.heap + g.heap(&key) - before;
                continue;
            }
            let overflow = match *kind {
                BucketKind::Trigger => true,
                BucketKind::Counter { .. } => false,
                BucketKind::Leaky { capacity, leak } => {
                    // An idle bucket has fully leaked: it starts afresh.
                    if now - b.last >= super::drain_secs(capacity, leak, b.count()) && b.count > 0 {
                        let tokens = b.tokens;
                        let last = b.last;
                        b.reset(now);
                        (b.tokens, b.last) = (tokens, last);
                        b.span = 0.0;
                    }
                    b.tokens = (b.tokens + (now - b.last).max(0.0) / leak).min(f64::from(capacity));
                    // Tokens accumulate in steps: allow for rounding (1.0 exactly refilled reads 0.999...).
                    if b.tokens >= 1.0 - 1e-9 {
                        b.tokens -= 1.0;
                        false
                    } else {
                        true
                    }
                }
            };
            if now > b.last {
                // The span grows with the last event (a fresh bucket starts with none).
                b.span = if b.count == 0 { 0.0 } else { b.span + (now - b.last) as f32 };
                b.last = now;
            }
            b.count = b.count.saturating_add(1).min(BLACKHOLED - 1);
            if keep {
                // As CrowdSec's queues, which hold one event more than their size: the size is the
                // capacity, or `cache_size` when it is smaller (or the capacity is unbounded).
                let max = match *kind {
                    BucketKind::Leaky { capacity, .. } if capacity < u32::MAX => {
                        let cap = capacity as usize;
                        if cache > 0 && cache <= cap { cache + 1 } else { cap + 1 }
                    }
                    _ if cache > 0 => cache + 1,
                    _ => MAX_QUEUE,
                };
                let q = &mut b.extra.get_or_insert_with(Box::default).events;
                q.push_back(Arc::clone(shared));
                if q.len() > max {
                    q.pop_front();
                }
            }
            let overflow = overflow
                || match (&sc.native_condition, &sc.condition) {
                    (Some(q), _) => match &b.extra {
                        Some(x) => q.test(&x.events, env.data()),
                        None => q.test(&VecDeque::new(), env.data()),
                    },
                    (None, Some(c)) => env.test_in(c, &queue_context(&sc.queue_fields, evt, b)),
                    (None, None) => false,
                }
                || sc.bayes.as_ref().is_some_and(|bayes| {
                    let fired = b.extra.as_ref().map_or(0, |x| x.fired);
                    let ctx = queue_context(&sc.queue_fields, evt, b);
                    let truths: Vec<bool> = bayes
                        .conditions
                        .iter()
                        .enumerate()
                        .map(|(i, c)| (c.guillotine && fired & (1 << i) != 0) || env.test_in(&c.expr, &ctx))
                        .collect();
                    let fired = truths
                        .iter()
                        .enumerate()
                        .filter(|(i, t)| **t && bayes.conditions[*i].guillotine)
                        .fold(fired, |f, (i, _)| f | (1 << i));
                    b.extra.get_or_insert_with(Box::default).fired = fired;
                    bayes.posterior(truths.into_iter()) > bayes.threshold
                });
            self.heap = self.heap + g.heap(&key) - before;
            if overflow {
                let bh = sc.blackhole;
                let b = self.remove_slot(&key, slot).expect("the bucket poured into");
                if bh > 0.0 {
                    self.groups.entry(key).or_default().slots.push(Bucket::blackhole(slot, now + bh));
                }
                out.extend(self.overflow(i, b, now, shared, env));
            }
        }
        self.pours += 1;
        // A full sweep costs a visit per key: sweep no more often than once per key's worth of
        // events (and every 4096), so a table of a million keys costs one visit per event.
        self.since_collect += 1;
        if self.since_collect >= self.groups.len().max(4096) {
            self.collect(now);
        }
        if self.pours.is_multiple_of(256) {
            self.peak = self.peak.max(self.bytes());
        }
        if self.pours.is_multiple_of(256) && self.bytes() > self.budget {
            // What the entries hold grew past the budget: evict about the excess and a tenth.
            let per_group = (self.bytes() / self.groups.len().max(1)).max(1);
            let excess = (self.bytes() - self.budget / 10 * 9).div_ceil(per_group);
            self.evict(now, self.groups.len().saturating_sub(excess));
        }
        out
    }

    /// The alert of an overflowing bucket, unless its `overflow_filter` discards it.
    fn overflow(&self, i: usize, mut b: Bucket, at: f64, shared: &Arc<Event>, env: &Env) -> Option<Alert> {
        let evt: &Event = shared;
        let sc = &self.scenarios[i];
        let x = b.extra.get_or_insert_with(Box::default);
        if x.events.is_empty() {
            x.events.push_back(Arc::clone(shared));
        }
        if let Some(f) = &sc.overflow_filter {
            let ctx = queue_context(&sc.queue_fields, evt, &b).with("signal", signal_value(&sc.name, b.count()));
            if !env.test_in(f, &ctx) {
                return None;
            }
        }
        let (scope, value) = match &sc.scope {
            // An overflow poured back has no `Meta`: its alert's source is the overflow's (CrowdSec).
            super::Scope::Ip => (
                "Ip".to_owned(),
                match (&evt.overflow, evt.meta.get("source_ip")) {
                    (_, Some(ip)) => ip.to_string(),
                    (Some(o), None) => o.source.ip.clone(),
                    (None, None) => String::new(),
                },
            ),
            super::Scope::Expr { name, expr } => (name.clone(), env.string(expr, evt).unwrap_or_default()),
        };
        let (scope, value, ip) = named_source(scope, value, evt);
        let first = b.first();
        Some(Alert {
            scenario: sc.name.clone(),
            events_count: b.count(),
            events: b.extra.map(|x| x.events.into_iter().collect()).unwrap_or_default(),
            scope,
            value,
            remediation: sc.remediation,
            at,
            first,
            ip,
        })
    }

    /// Reports counters whose duration ended before `now`.
    pub fn expire(&mut self, now: f64, env: &Env) -> Vec<Alert> {
        let scenarios = &self.scenarios;
        let mut due: Vec<(Str, u16)> = Vec::new();
        for (k, g) in &self.groups {
            for b in &g.slots {
                if b.is_live()
                    && matches!(scenarios[usize::from(b.scenario)].kind, BucketKind::Counter { duration } if now - b.first() >= duration)
                {
                    due.push((k.clone(), b.scenario));
                }
            }
        }
        let mut out = Vec::new();
        for (k, i) in due {
            let Some(b) = self.remove_slot(&k, i) else { continue };
            let last = b.queue().last().cloned().unwrap_or_default();
            out.extend(self.overflow(usize::from(i), b, last.time, &last, env));
        }
        out
    }

    /// Reports every counter still counting (end of a replay).
    pub fn flush(&mut self, env: &Env) -> Vec<Alert> {
        let out = self.expire(f64::INFINITY, env);
        self.reprocess(out, env, 0)
    }

    /// Drops idle buckets and ended blackholes, and gives back the table's room once most of
    /// it is empty (after a flood).
    fn collect(&mut self, now: f64) {
        self.since_collect = 0;
        let scenarios = &self.scenarios;
        let (mut live, mut heap) = (0, 0);
        self.groups.retain(|k, g| {
            g.slots.retain(|b| {
                if !b.is_live() {
                    return b.last > now;
                }
                match scenarios[usize::from(b.scenario)].kind {
                    BucketKind::Leaky { capacity, leak } => now - b.last < super::drain_secs(capacity, leak, b.count()),
                    BucketKind::Trigger => false,
                    BucketKind::Counter { .. } => true,
                }
            });
            live += g.live();
            heap += g.heap(k);
            !g.slots.is_empty()
        });
        (self.live, self.heap) = (live, heap);
        if self.groups.capacity() > 1024 && self.groups.len() < self.groups.capacity() / 8 {
            self.groups.shrink_to(self.groups.len() * 2);
        }
    }

    /// Evicts the buckets least likely to overflow until at most `keep` keys are left: by
    /// fill level (eighths of capacity, after leaking), then by idle time. Keys with a bucket at
    /// least half full (or blackholed) go only when nothing else is left.
    fn evict(&mut self, now: f64, keep: usize) {
        self.collect(now);
        for spare_full in [true, false] {
            if self.groups.len() <= keep {
                break;
            }
            let wanted = self.groups.len() - keep;
            let scenarios = &self.scenarios;
            let rank = |g: &Group| -> usize {
                let (mut fill, mut last) = (0.0_f64, f64::NEG_INFINITY);
                for b in &g.slots {
                    fill = fill.max(b.fill(&scenarios[usize::from(b.scenario)].kind, now));
                    last = last.max(b.last);
                }
                if spare_full && fill >= 0.5 {
                    return usize::MAX;
                }
                let level = ((fill * 8.0) as usize).min(7);
                let idle = now - last;
                let recent = [14_400.0, 3_600.0, 600.0, 60.0, 10.0, 1.0, 0.1].iter().filter(|t| idle < **t).count();
                level * 8 + recent
            };
            let mut bins = [0usize; 64];
            for g in self.groups.values() {
                if let Some(n) = bins.get_mut(rank(g)) {
                    *n += 1;
                }
            }
            let (mut cut, mut below) = (0, 0);
            while cut < 64 && below + bins[cut] < wanted {
                below += bins[cut];
                cut += 1;
            }
            let mut at_cut = wanted.saturating_sub(below);
            let evicted = &mut self.evicted;
            self.groups.retain(|_, g| {
                let r = rank(g);
                let go = r < cut
                    || (r == cut && at_cut > 0 && {
                        at_cut -= 1;
                        true
                    });
                if go {
                    for b in g.slots.iter().filter(|b| b.is_live()) {
                        evicted[usize::from(b.scenario)] += 1;
                    }
                }
                !go
            });
            self.collect(now);
        }
        if self.evicted() > 0 && !self.warned {
            self.warned = true;
            tracing::warn!(
                budget_mib = self.budget >> 20,
                "detection state reached its memory budget (--max-memory): evicting the buckets least likely to overflow (counted per scenario in crowd_bucket_evictions_total)"
            );
        }
    }
}

#[cfg(test)]
mod size {
    #[test]
    fn a_key_with_three_scenarios_fits_in_about_150_bytes() {
        // What a source that fed three scenarios once costs in the table (no heap).
        let entry = size_of::<(super::Str, super::Group)>();
        assert!(entry <= 160, "{entry} bytes per key");
        assert_eq!(size_of::<super::Bucket>(), 40);
    }
}
