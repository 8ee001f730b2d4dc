//! Scenarios: events pour into buckets keyed by `groupby`; an overflowing bucket is an alert.
//!
//! Pure: time is each event's own time (`Event::time`, the log's timestamp once parsed), so a
//! replay of old logs and a live run decide the same way. Same overflow rules as CrowdSec: a
//! leaky bucket of capacity N, leaking one event every `leakspeed`, overflows on event N+1 that
//! arrives before it leaked; a trigger overflows on every event; a counter reports how many
//! events came within `duration`. After an overflow the key is blackholed. Bucket state is
//! bounded (`buckets.rs`): idle buckets are collected, and past the memory budget the buckets
//! least likely to overflow are evicted (counted).
mod buckets;
pub mod spec;

use std::sync::Arc;

pub use self::buckets::{Buckets, DEFAULT_BUDGET};
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
    /// The event fields `condition`, `overflow_filter` and bayesian conditions read.
    queue_fields: crate::engine::expr::queue::QueueFields,
    /// `bayesian` buckets: overflow once the posterior exceeds the threshold.
    bayes: Option<Bayes>,
}

/// A bayesian bucket's evidence (CrowdSec's `bayesian_*`): after each event, the prior is
/// updated by Bayes' rule with every condition over the queue, true or false, in float32 as
/// CrowdSec computes it; the bucket overflows when the posterior exceeds the threshold.
#[derive(Clone, Debug)]
struct Bayes {
    prior: f32,
    threshold: f32,
    conditions: Vec<BayesCondition>,
}

#[derive(Clone, Debug)]
struct BayesCondition {
    expr: Expr,
    evil: f32,
    benign: f32,
    /// Once true, true for the bucket's life (not run again).
    guillotine: bool,
}

impl Bayes {
    /// The posterior, given each condition's truth.
    fn posterior(&self, truths: impl Iterator<Item = bool>) -> f32 {
        let update = |prior: f32, evil: f32, benign: f32| {
            let num = evil * prior;
            num / (num + benign * (1.0 - prior))
        };
        self.conditions.iter().zip(truths).fold(self.prior, |p, (c, t)| {
            if t { update(p, c.evil, c.benign) } else { update(p, 1.0 - c.evil, 1.0 - c.benign) }
        })
    }
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
            "bayesian" => {
                let leak = dur("leakspeed", &spec.leakspeed)?
                    .ok_or_else(|| serr("leakspeed", "a bayesian bucket needs a leakspeed", &spec.name))?;
                if spec.capacity != Some(-1) {
                    return Err(serr("capacity", "a bayesian bucket's capacity must be -1", &spec.name));
                }
                BucketKind::Leaky { capacity: u32::MAX, leak }
            }
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
                return Err(serr(
                    "type",
                    format!("`{other}`: expected leaky, trigger, counter, conditional or bayesian"),
                    other,
                ));
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
            queue_fields: crate::engine::expr::queue::QueueFields::of(
                &[spec.condition.as_deref().unwrap_or_default(), spec.overflow_filter.as_deref().unwrap_or_default()]
                    .into_iter()
                    .chain(spec.bayesian_conditions.iter().flatten().map(|c| c.condition.as_str()))
                    .collect::<Vec<_>>(),
            ),
            bayes: Self::bayes(spec, env)?,
        })
    }

    /// A bayesian bucket's evidence, checked as CrowdSec checks it.
    fn bayes(spec: &ScenarioSpec, env: &Env) -> Result<Option<Bayes>, ScenarioError> {
        let given =
            spec.bayesian_prior.is_some() || spec.bayesian_threshold.is_some() || spec.bayesian_conditions.is_some();
        if spec.kind != "bayesian" {
            return if given {
                Err(serr("bayesian_conditions", "only `type: bayesian` takes bayesian fields", &spec.name))
            } else {
                Ok(None)
            };
        }
        let conditions = spec.bayesian_conditions.as_deref().unwrap_or_default();
        if conditions.is_empty() || conditions.len() > 64 {
            return Err(serr("bayesian_conditions", "a bayesian bucket needs 1 to 64 conditions", &spec.name));
        }
        let prior = spec.bayesian_prior.unwrap_or(0.0);
        if !(prior > 0.0 && prior <= 1.0) {
            return Err(serr("bayesian_prior", format!("{prior}: must be > 0 and <= 1"), &spec.name));
        }
        let threshold = spec.bayesian_threshold.unwrap_or(0.0);
        if !(threshold > 0.0 && threshold <= 1.0) {
            return Err(serr("bayesian_threshold", format!("{threshold}: must be > 0 and <= 1"), &spec.name));
        }
        let conditions = conditions
            .iter()
            .map(|c| {
                let expr = env
                    .compile(&crate::engine::expr::queue::rewrite(&c.condition))
                    .map_err(|e| serr("bayesian_conditions", e, &c.condition))?;
                Ok(BayesCondition {
                    expr,
                    evil: c.prob_given_evil,
                    benign: c.prob_given_benign,
                    guillotine: c.guillotine.unwrap_or(false),
                })
            })
            .collect::<Result<Vec<_>, ScenarioError>>()?;
        Ok(Some(Bayes { prior, threshold, conditions }))
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
    /// The events kept (the last capacity + 1, or `cache_size` + 1 when smaller), oldest first,
    /// when the scenario reads its queue or the buckets keep every queue (`crowd hubtest`);
    /// else the overflowing event alone.
    pub events: Vec<Arc<Event>>,
    /// Scope (`Ip`, `Range`, ...).
    pub scope: String,
    /// The source value (an address, a range, ...).
    pub value: String,
    /// Whether the scenario asks for a remediation.
    pub remediation: bool,
    /// Time of the overflow (event time, Unix seconds).
    pub at: f64,
    /// Time of the bucket's first event.
    pub first: f64,
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

/// Seconds after its last event when a leaky bucket has surely leaked empty.
fn drain_secs(capacity: u32, leak: f64, poured: usize) -> f64 {
    f64::from(capacity.min(u32::try_from(poured).unwrap_or(u32::MAX)).max(1)) * leak
}

/// `queue.Queue` (the bucket's events, oldest first) and `leaky` for bucket expressions.
fn queue_context(
    queue_fields: &crate::engine::expr::queue::QueueFields,
    evt: &Event,
    b: &buckets::Bucket,
) -> EvtContext {
    use expr::Value;
    let leaky = Value::Map(indexmap::IndexMap::from([
        ("Total_count".to_owned(), Value::Integer(i64::try_from(b.count()).unwrap_or(i64::MAX))),
        ("First_ts".to_owned(), Value::Float(b.first())),
        ("Last_ts".to_owned(), Value::Float(b.last)),
    ]));
    crate::engine::expr::queue::context(queue_fields, evt, b.queue(), leaky)
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
