//! The scenario YAML format (CrowdSec's bucket factory), read strictly.
use serde::Deserialize;

use crate::engine::parser::spec::DataSpec;

/// One scenario (a YAML document).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioSpec {
    /// `leaky`, `trigger`, `counter`, `conditional` or `bayesian`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Name (`author/scenario`).
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// Which events pour into the scenario.
    pub filter: String,
    /// The bucket key (`evt.Meta.source_ip`).
    pub groupby: Option<String>,
    /// Only events with a value not yet seen in the bucket pour.
    pub distinct: Option<String>,
    /// Leaky: events the bucket holds; it overflows on the next one.
    pub capacity: Option<i64>,
    /// Leaky: one event leaks out every this long (`10s`).
    pub leakspeed: Option<String>,
    /// Counter: how long it counts before reporting.
    pub duration: Option<String>,
    /// After an overflow, events with the same key are ignored this long.
    pub blackhole: Option<String>,
    /// Labels copied to alerts (`remediation: true` asks for a decision).
    pub labels: Option<serde_yaml::Value>,
    /// What the alert's source is (`Ip` by default, or `Range` with an expression).
    pub scope: Option<ScopeSpec>,
    /// Data files.
    pub data: Option<Vec<DataSpec>>,
    /// Feed the overflow back as an event (accepted; not used yet).
    pub reprocess: Option<bool>,
    /// Events kept per bucket for the alert.
    pub cache_size: Option<usize>,
    /// An event matching this destroys its bucket.
    pub cancel_on: Option<String>,
    /// Conditional buckets: overflow when this holds.
    pub condition: Option<String>,
    /// Bayesian buckets: the probability a source is malicious before any condition.
    pub bayesian_prior: Option<f32>,
    /// Bayesian buckets: overflow once the posterior exceeds this.
    pub bayesian_threshold: Option<f32>,
    /// Bayesian buckets: the evidence, each condition over `queue.Queue` with its likelihoods.
    pub bayesian_conditions: Option<Vec<BayesianConditionSpec>>,
    /// Filter over the overflow (accepted; not used yet).
    pub overflow_filter: Option<String>,
    /// Accepted and ignored.
    pub format: Option<serde_yaml::Value>,
    /// Accepted and ignored.
    pub debug: Option<bool>,
    /// Accepted and ignored.
    pub references: Option<Vec<String>>,
    /// Accepted and ignored.
    pub version: Option<serde_yaml::Value>,
}

/// One piece of evidence of a bayesian bucket.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BayesianConditionSpec {
    /// An expression over `queue.Queue` (and `evt`).
    pub condition: String,
    /// P(condition | malicious).
    pub prob_given_evil: f32,
    /// P(condition | benign).
    pub prob_given_benign: f32,
    /// Once true, the condition counts as true for the bucket's life without running again.
    pub guillotine: Option<bool>,
}

/// The scope of a scenario's alerts.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeSpec {
    /// `Ip` or `Range` (or another scope name).
    #[serde(rename = "type")]
    pub kind: String,
    /// The expression giving the value.
    pub expression: Option<String>,
}
