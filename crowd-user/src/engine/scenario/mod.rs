//! Scenarios: events pour into buckets keyed by `groupby`; an overflowing bucket is an alert.
//!
//! Pure: time is each event's own time (`Event::time`, the log's timestamp once parsed), so a
//! replay of old logs and a live run decide the same way. Same overflow rules as CrowdSec: a
//! leaky bucket of capacity N, leaking one event every `leakspeed`, overflows on event N+1 that
//! arrives before it leaked; a trigger overflows on every event; a counter reports how many
//! events came within `duration`. After an overflow the key is blackholed. Bucket state is
//! bounded: idle buckets are collected, and past `max_buckets` the oldest are dropped (counted).
pub mod spec;

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::Arc,
};

use self::spec::ScenarioSpec;
use super::{
    event::Event,
    expr::{Env, EvtContext, Expr},
};

/// What kind of bucket a scenario uses, with its parameters.
#[derive(Clone, Debug, PartialEq)]
pub enum BucketKind {
    /// Overflows on the first event.
    Trigger,
    /// Holds `capacity` events, leaking one every `leak` seconds.
    Leaky {
        /// Events held before the next one overflows.
        capacity: u32,
        /// Seconds per leaked event.
        leak: f64,
    },
    /// Counts events for `duration` seconds, then reports.
    Counter {
        /// Seconds.
        duration: f64,
    },
}

/// How an alert names its source.
#[derive(Clone, Debug)]
pub enum Scope {
    /// `evt.Meta.source_ip`.
    Ip,
    /// A named scope whose value an expression gives (`Range`, `username`, ...).
    Expr {
        /// Scope name.
        name: String,
        /// Value expression.
        expr: Expr,
    },
}

/// A compiled scenario.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Name.
    pub name: String,
    /// Bucket kind.
    pub kind: BucketKind,
    filter: Expr,
    groupby: Option<Expr>,
    distinct: Option<Expr>,
    cancel_on: Option<Expr>,
    /// Seconds a key is ignored after an overflow.
    pub blackhole: f64,
    /// Alert scope.
    pub scope: Scope,
    /// `labels.remediation`.
    pub remediation: bool,
    cache_size: usize,
    /// `conditional` buckets: overflow as soon as this holds over `queue.Queue`.
    condition: Option<Expr>,
    /// The condition compiled natively, when it is in `queue_condition`'s subset.
    native_condition: Option<crate::engine::expr::queue_condition::QueueCondition>,
    /// An overflow is kept only if this holds (over `queue`, `signal`).
    overflow_filter: Option<Expr>,
    /// The overflow is poured back into the scenarios as an event (`evt.Overflow`).
    pub reprocess: bool,
    /// The event fields `condition` and `overflow_filter` read.
    queue_fields: crate::engine::expr::queue::QueueFields,
}

/// Events an unbounded bucket (a counter, a conditional bucket of capacity -1) keeps for its
/// alert and its expressions when `cache_size` does not say. Bounded so that neither memory nor
/// the cost of a `queue.Queue` expression (the queue is converted at every pour) grows with a
/// flood; conditions over the queue look at recent events (`queue.Queue[-4:]`), and the
/// interpreter copies values per closure element, so the queue is kept short.
const MAX_QUEUE: usize = 16;
/// How many times an overflow may be poured back (`reprocess`) in a chain.
const MAX_REPROCESS_DEPTH: u32 = 4;

/// A compile error: field and message (the loader adds file and line).
#[derive(Debug, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ScenarioError {
    /// The field.
    pub field: String,
    /// What is wrong.
    pub message: String,
    /// The offending text, to find its line.
    pub text: String,
}

fn serr(field: &str, message: impl ToString, text: &str) -> ScenarioError {
    ScenarioError { field: field.to_owned(), message: message.to_string(), text: text.to_owned() }
}

impl Scenario {
    /// Compiles a scenario.
    ///
    /// # Errors
    /// [`ScenarioError`] naming the field.
    pub fn compile(spec: &ScenarioSpec, env: &Env) -> Result<Scenario, ScenarioError> {
        let compile = |field: &str, src: &str| env.compile(src).map_err(|e| serr(field, e, src));
        let dur = |field: &str, v: &Option<String>| -> Result<Option<f64>, ScenarioError> {
            v.as_deref()
                .map(|s| {
                    crate::clock::go_duration_secs(s)
                        .ok_or_else(|| serr(field, format!("`{s}` is not a duration (10s, 1m, 2h)"), s))
                })
                .transpose()
        };
        let kind = match spec.kind.as_str() {
            "trigger" => BucketKind::Trigger,
            "conditional" => {
                let leak = dur("leakspeed", &spec.leakspeed)?
                    .ok_or_else(|| serr("leakspeed", "a conditional bucket needs a leakspeed", &spec.name))?;
                // capacity -1 (the usual): only the condition overflows it.
                let capacity = match spec.capacity {
                    Some(c) if c >= 0 => u32::try_from(c).unwrap_or(u32::MAX),
                    _ => u32::MAX,
                };
                BucketKind::Leaky { capacity, leak }
            }
            "leaky" => {
                let capacity =
                    spec.capacity.ok_or_else(|| serr("capacity", "a leaky bucket needs a capacity", &spec.name))?;
                let leak = dur("leakspeed", &spec.leakspeed)?
                    .ok_or_else(|| serr("leakspeed", "a leaky bucket needs a leakspeed", &spec.name))?;
                if capacity < 0 {
                    // capacity -1: never overflows by count (CrowdSec's counters are written so).
                    BucketKind::Counter { duration: dur("duration", &spec.duration)?.unwrap_or(leak) }
                } else {
                    BucketKind::Leaky { capacity: u32::try_from(capacity).unwrap_or(u32::MAX), leak }
                }
            }
            "counter" => BucketKind::Counter {
                duration: dur("duration", &spec.duration)?
                    .ok_or_else(|| serr("duration", "a counter needs a duration", &spec.name))?,
            },
            other => {
                return Err(serr("type", format!("`{other}`: expected leaky, trigger, counter or conditional"), other));
            }
        };
        let scope = match &spec.scope {
            None => Scope::Ip,
            Some(s) if s.kind.eq_ignore_ascii_case("ip") && s.expression.is_none() => Scope::Ip,
            Some(s) => Scope::Expr {
                name: s.kind.clone(),
                expr: compile("scope.expression", s.expression.as_deref().unwrap_or("evt.Meta.source_ip"))?,
            },
        };
        let remediation = spec
            .labels
            .as_ref()
            .and_then(|l| l.get("remediation"))
            .is_some_and(|r| r.as_bool() == Some(true) || r.as_str() == Some("true"));
        Ok(Scenario {
            name: spec.name.clone(),
            kind,
            filter: compile("filter", &spec.filter)?,
            groupby: spec
                .groupby
                .as_deref()
                .filter(|g| !g.trim().is_empty())
                .map(|g| compile("groupby", g))
                .transpose()?,
            distinct: spec
                .distinct
                .as_deref()
                .filter(|g| !g.trim().is_empty())
                .map(|g| compile("distinct", g))
                .transpose()?,
            cancel_on: spec.cancel_on.as_deref().map(|g| compile("cancel_on", g)).transpose()?,
            blackhole: dur("blackhole", &spec.blackhole)?.unwrap_or(0.0),
            scope,
            remediation,
            cache_size: spec.cache_size.unwrap_or(0),
            condition: match (spec.kind.as_str(), spec.condition.as_deref()) {
                ("conditional", Some(c)) => Some(compile("condition", &crate::engine::expr::queue::rewrite(c))?),
                ("conditional", None) => {
                    return Err(serr("condition", "a conditional bucket needs a condition", &spec.name));
                }
                (_, Some(c)) => return Err(serr("condition", "only `type: conditional` takes a condition", c)),
                (_, None) => None,
            },
            native_condition: spec
                .condition
                .as_deref()
                .and_then(|c| crate::engine::expr::queue_condition::compile(&super::expr::inline_lets(c))),
            overflow_filter: spec
                .overflow_filter
                .as_deref()
                .map(|f| compile("overflow_filter", &crate::engine::expr::queue::rewrite(f)))
                .transpose()?,
            reprocess: spec.reprocess.unwrap_or(false),
            queue_fields: crate::engine::expr::queue::QueueFields::of(&[
                spec.condition.as_deref().unwrap_or_default(),
                spec.overflow_filter.as_deref().unwrap_or_default(),
            ]),
        })
    }
}

/// The source of an alert as decisions name it: an `Ip` scope whose value is a network is a
/// `Range`, a `Range` whose value is one address an `Ip` (a scenario grouping by `IpPrefix`
/// names IPv4 sources by address and IPv6 ones by prefix). Returns (scope, value, address): an
/// alert on a range keeps the address of its last event when it lies inside.
fn named_source(scope: String, value: String, evt: &Event) -> (String, String, String) {
    let (ip, range) = (scope.eq_ignore_ascii_case("ip"), scope.eq_ignore_ascii_case("range"));
    if range && value.parse::<std::net::IpAddr>().is_ok() {
        return ("Ip".into(), value.clone(), value);
    }
    if (ip || range) && value.parse::<ipnet::IpNet>().is_ok() {
        let inside = evt
            .meta
            .get("source_ip")
            .filter(|a| crate::engine::expr::ip_in_range(a, &value))
            .map(ToString::to_string)
            .unwrap_or_default();
        return ("Range".into(), value, inside);
    }
    let ip = if scope == "Ip" { value.clone() } else { String::new() };
    (scope, value, ip)
}

/// An overflow: the alert a scenario raises.
#[derive(Clone, Debug)]
pub struct Alert {
    /// Scenario name.
    pub scenario: String,
    /// Events poured into the bucket, the overflowing one included.
    pub events_count: usize,
    /// The events kept (the last capacity + 1, or `cache_size` + 1 when smaller), oldest first.
    pub events: Vec<Arc<Event>>,
    /// Scope (`Ip`, `Range`, ...).
    pub scope: String,
    /// The source value (an address, a range, ...).
    pub value: String,
    /// Whether the scenario asks for a remediation.
    pub remediation: bool,
    /// Time of the overflow (event time, Unix seconds).
    pub at: f64,
    /// The address the alert is about, as the events wrote it (kept when a postoverflow turns
    /// the source into its range); empty for scopes other than `Ip`.
    pub ip: String,
}

impl Alert {
    /// The alert as `evt.Overflow.Alert` shows it to postoverflows and reprocessing scenarios.
    #[must_use]
    pub fn overflow_alert(&self) -> crate::engine::event::OverflowAlert {
        let last = self.events.last();
        let enriched = |k: &str| last.and_then(|e| e.enriched.get(k)).map(ToString::to_string).unwrap_or_default();
        crate::engine::event::OverflowAlert {
            scenario: self.scenario.clone(),
            remediation: self.remediation,
            events_count: self.events_count,
            source: crate::engine::event::AlertSource {
                scope: self.scope.clone(),
                value: self.value.clone(),
                ip: self.ip.clone(),
                // CrowdSec: the range the enrichment declared (`Meta.SourceRange`).
                range: if self.scope == "Range" {
                    self.value.clone()
                } else {
                    last.and_then(|e| e.meta.get("SourceRange").or_else(|| e.enriched.get("SourceRange")))
                        .map(ToString::to_string)
                        .unwrap_or_default()
                },
                as_number: enriched("ASNNumber"),
                as_name: enriched("ASNOrg"),
                cn: enriched("IsoCode"),
            },
        }
    }
}

struct Bucket {
    tokens: f64,
    last: f64,
    first: f64,
    count: usize,
    events: VecDeque<Arc<Event>>,
    seen: HashSet<String>,
}

/// Live bucket state for a set of scenarios.
pub struct Buckets {
    scenarios: Vec<Scenario>,
    live: HashMap<(usize, String), Bucket>,
    blackholed: HashMap<(usize, String), f64>,
    /// Buckets dropped because `max_buckets` was reached.
    pub evicted: u64,
    max_buckets: usize,
    pours: u64,
    has_counters: bool,
    next_expiry_check: f64,
}

impl Buckets {
    /// Buckets for `scenarios`, holding at most `max_buckets` live buckets.
    #[must_use]
    pub fn new(scenarios: Vec<Scenario>, max_buckets: usize) -> Buckets {
        let has_counters = scenarios.iter().any(|s| matches!(s.kind, BucketKind::Counter { .. }));
        Buckets {
            scenarios,
            live: HashMap::new(),
            blackholed: HashMap::new(),
            evicted: 0,
            max_buckets,
            pours: 0,
            has_counters,
            next_expiry_check: f64::NEG_INFINITY,
        }
    }

    /// The scenarios.
    #[must_use]
    pub fn scenarios(&self) -> &[Scenario] {
        &self.scenarios
    }

    /// Live buckets.
    #[must_use]
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// True without live buckets.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// Names of the scenarios an event would pour into (`crowd explain`).
    #[must_use]
    pub fn matching(&self, evt: &Event, env: &Env) -> Vec<&str> {
        self.scenarios.iter().filter(|s| env.test(&s.filter, evt)).map(|s| s.name.as_str()).collect()
    }

    /// Pours an event (at its own time) into every scenario whose filter it passes; returns the
    /// alerts raised, counters that ran out first. Overflows of `reprocess` scenarios are poured
    /// back as events, and what they raise follows.
    pub fn pour(&mut self, evt: &Event, env: &Env) -> Vec<Alert> {
        let now = evt.time;
        // Counters are checked at most once a second of event time.
        let mut out = if self.has_counters && now >= self.next_expiry_check {
            self.next_expiry_check = now + 1.0;
            self.expire(now, env)
        } else {
            Vec::new()
        };
        out.extend(self.pour_one(evt, env));
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
                let ovf = Event { time: a.at, overflow: Some(Box::new(a.overflow_alert())), ..Event::default() };
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

    fn pour_one(&mut self, evt: &Event, env: &Env) -> Vec<Alert> {
        let now = evt.time;
        let mut out = Vec::new();
        let ctx = std::cell::OnceCell::new();
        let ctx = || ctx.get_or_init(|| EvtContext::new(evt));
        let shared = std::cell::OnceCell::new();
        for i in 0..self.scenarios.len() {
            let sc = &self.scenarios[i];
            if let Some(c) = &sc.cancel_on
                && env.test_with(c, evt, ctx)
            {
                let key =
                    sc.groupby.as_ref().map(|g| env.string_with(g, evt, ctx).unwrap_or_default()).unwrap_or_default();
                self.live.remove(&(i, key));
                continue;
            }
            if !env.test_with(&sc.filter, evt, ctx) {
                continue;
            }
            let key = sc.groupby.as_ref().map(|g| env.string_with(g, evt, ctx).unwrap_or_default()).unwrap_or_default();
            let k = (i, key);
            if let Some(until) = self.blackholed.get(&k) {
                if now < *until {
                    continue;
                }
                self.blackholed.remove(&k);
            }
            let distinct = sc.distinct.as_ref().map(|d| env.string_with(d, evt, ctx).unwrap_or_default());
            let kind = sc.kind.clone();
            let cache = sc.cache_size;
            let b = self.live.entry(k.clone()).or_insert_with(|| Bucket {
                tokens: match kind {
                    BucketKind::Leaky { capacity, .. } => f64::from(capacity),
                    _ => 0.0,
                },
                last: now,
                first: now,
                count: 0,
                events: VecDeque::new(),
                seen: HashSet::new(),
            });
            if let Some(d) = distinct
                && !b.seen.insert(d)
            {
                continue;
            }
            let overflow = match kind {
                BucketKind::Trigger => true,
                BucketKind::Counter { .. } => false,
                BucketKind::Leaky { capacity, leak } => {
                    // An idle bucket has fully leaked: it starts afresh.
                    if now - b.last >= drain_secs(capacity, leak, b.count) && b.count > 0 {
                        b.events.clear();
                        b.count = 0;
                        b.first = now;
                        b.seen.clear();
                    }
                    b.tokens = (b.tokens + (now - b.last).max(0.0) / leak).min(f64::from(capacity));
                    b.last = b.last.max(now);
                    // Tokens accumulate in steps: allow for rounding (1.0 exactly refilled reads 0.999...).
                    if b.tokens >= 1.0 - 1e-9 {
                        b.tokens -= 1.0;
                        false
                    } else {
                        true
                    }
                }
            };
            b.count += 1;
            b.events.push_back(shared.get_or_init(|| Arc::new(evt.clone())).clone());
            // As CrowdSec's queues, which hold one event more than their size: the size is the
            // capacity, or `cache_size` when it is smaller (or the capacity is unbounded).
            let keep = match kind {
                BucketKind::Leaky { capacity, .. } if capacity < u32::MAX => {
                    let cap = capacity as usize;
                    if cache > 0 && cache <= cap { cache + 1 } else { cap + 1 }
                }
                _ if cache > 0 => cache + 1,
                _ => MAX_QUEUE,
            };
            if b.events.len() > keep {
                b.events.pop_front();
            }
            let sc = &self.scenarios[i];
            let overflow = overflow
                || match (&sc.native_condition, &sc.condition) {
                    (Some(q), _) => q.test(&self.live[&k].events, env.data()),
                    (None, Some(c)) => env.test_in(c, &queue_context(&sc.queue_fields, evt, &self.live[&k])),
                    (None, None) => false,
                };
            if overflow {
                let b = self.live.remove(&k).expect("present");
                if self.scenarios[i].blackhole > 0.0 {
                    self.blackholed.insert(k, now + self.scenarios[i].blackhole);
                }
                out.extend(self.overflow(i, b, now, evt, env));
            }
        }
        self.pours += 1;
        if self.pours.is_multiple_of(4096) || self.live.len() > self.max_buckets {
            self.collect(now);
        }
        out
    }

    /// The alert of an overflowing bucket, unless its `overflow_filter` discards it.
    fn overflow(&self, i: usize, b: Bucket, at: f64, evt: &Event, env: &Env) -> Option<Alert> {
        let sc = &self.scenarios[i];
        if let Some(f) = &sc.overflow_filter {
            let ctx = queue_context(&sc.queue_fields, evt, &b).with("signal", signal_value(&sc.name, b.count));
            if !env.test_in(f, &ctx) {
                return None;
            }
        }
        let (scope, value) = match &sc.scope {
            // An overflow poured back has no `Meta`: its alert's source is the overflow's (CrowdSec).
            Scope::Ip => (
                "Ip".to_owned(),
                match (&evt.overflow, evt.meta.get("source_ip")) {
                    (_, Some(ip)) => ip.to_string(),
                    (Some(o), None) => o.source.ip.clone(),
                    (None, None) => String::new(),
                },
            ),
            Scope::Expr { name, expr } => (name.clone(), env.string(expr, evt).unwrap_or_default()),
        };
        let (scope, value, ip) = named_source(scope, value, evt);
        Some(Alert {
            scenario: sc.name.clone(),
            events_count: b.count,
            events: b.events.into_iter().collect(),
            scope,
            value,
            remediation: sc.remediation,
            at,
            ip,
        })
    }

    /// Reports counters whose duration ended before `now`.
    pub fn expire(&mut self, now: f64, env: &Env) -> Vec<Alert> {
        let due: Vec<(usize, String)> = self
            .live
            .iter()
            .filter(|((i, _), b)| matches!(self.scenarios[*i].kind, BucketKind::Counter { duration } if now - b.first >= duration))
            .map(|(k, _)| k.clone())
            .collect();
        let mut out = Vec::new();
        for k in due {
            let b = self.live.remove(&k).expect("present");
            let last = b.events.back().cloned().unwrap_or_default();
            out.extend(self.overflow(k.0, b, last.time, &last, env));
        }
        out
    }

    /// Reports every counter still counting (end of a replay).
    pub fn flush(&mut self, env: &Env) -> Vec<Alert> {
        let out = self.expire(f64::INFINITY, env);
        self.reprocess(out, env, 0)
    }

    /// Drops idle buckets and stale blackholes; past `max_buckets`, the oldest buckets.
    fn collect(&mut self, now: f64) {
        let scenarios = &self.scenarios;
        self.live.retain(|(i, _), b| match scenarios[*i].kind {
            BucketKind::Leaky { capacity, leak } => now - b.last < drain_secs(capacity, leak, b.count),
            BucketKind::Trigger => false,
            BucketKind::Counter { .. } => true,
        });
        self.blackholed.retain(|_, until| *until > now);
        if self.live.len() > self.max_buckets {
            // Evict down to 90% so that a sustained flood pays for this once per many pours.
            let mut ages: Vec<((usize, String), f64)> = self.live.iter().map(|(k, b)| (k.clone(), b.last)).collect();
            ages.sort_by(|a, b| a.1.total_cmp(&b.1));
            let excess = self.live.len() - self.max_buckets * 9 / 10;
            for (k, _) in ages.into_iter().take(excess) {
                self.live.remove(&k);
                self.evicted += 1;
            }
        }
    }
}

/// Seconds after its last event when a leaky bucket has surely leaked empty.
fn drain_secs(capacity: u32, leak: f64, poured: usize) -> f64 {
    f64::from(capacity.min(u32::try_from(poured).unwrap_or(u32::MAX)).max(1)) * leak
}

/// `queue.Queue` (the bucket's events, oldest first) and `leaky` for bucket expressions.
fn queue_context(queue_fields: &crate::engine::expr::queue::QueueFields, evt: &Event, b: &Bucket) -> EvtContext {
    use expr::Value;
    let leaky = Value::Map(indexmap::IndexMap::from([
        ("Total_count".to_owned(), Value::Integer(i64::try_from(b.count).unwrap_or(i64::MAX))),
        ("First_ts".to_owned(), Value::Float(b.first)),
        ("Last_ts".to_owned(), Value::Float(b.last)),
    ]));
    crate::engine::expr::queue::context(queue_fields, evt, b.events.iter(), leaky)
}

fn signal_value(scenario: &str, count: usize) -> expr::Value {
    use expr::Value;
    Value::Map(indexmap::IndexMap::from([
        ("Scenario".to_owned(), Value::String(scenario.to_owned())),
        ("EventsCount".to_owned(), Value::Integer(i64::try_from(count).unwrap_or(i64::MAX))),
    ]))
}

#[cfg(test)]
mod tests;
