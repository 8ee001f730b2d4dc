//! The parser YAML format (CrowdSec's node format), read strictly: an unknown field is an error
//! naming the file, line and field (serde_yaml reports the location).
use indexmap::IndexMap;
use serde::Deserialize;

/// One parser node (a YAML document, or an entry of a node's `nodes`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    /// Name (top-level nodes: `author/parser`).
    pub name: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// Debug logging for this node.
    pub debug: Option<bool>,
    /// Expression deciding whether the event enters the node.
    pub filter: Option<String>,
    /// `next_stage` moves a successful event to the next stage.
    pub onsuccess: Option<String>,
    /// Grok patterns local to this node (and visible to its children).
    pub pattern_syntax: Option<IndexMap<String, String>>,
    /// The grok step.
    pub grok: Option<GrokSpec>,
    /// Child nodes.
    pub nodes: Option<Vec<NodeSpec>>,
    /// Assignments applied when the node succeeds.
    pub statics: Option<Vec<StaticSpec>>,
    /// Data files the node's expressions read.
    pub data: Option<Vec<DataSpec>>,
    /// Whitelist: IPs, CIDRs and expressions that mark the event whitelisted.
    pub whitelist: Option<WhitelistSpec>,
    /// Values kept by key when the node succeeds, read back with `GetFromStash(name, key)`.
    pub stash: Option<Vec<StashSpec>>,
    /// Format version: accepted and ignored.
    pub format: Option<serde_yaml::Value>,
}

/// A grok step.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrokSpec {
    /// An inline pattern.
    pub pattern: Option<String>,
    /// Or the name of a library pattern.
    pub name: Option<String>,
    /// The field the pattern runs on (`Line.Raw`, or a parsed field such as `message`).
    pub apply_on: Option<String>,
    /// Or an expression whose value the pattern runs on.
    pub expression: Option<String>,
    /// Assignments applied when the pattern matched.
    pub statics: Option<Vec<StaticSpec>>,
}

/// One assignment: a destination and a value.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticSpec {
    /// Destination `evt.Meta[...]`.
    pub meta: Option<String>,
    /// Destination `evt.Parsed[...]`.
    pub parsed: Option<String>,
    /// Destination `evt.Enriched[...]`.
    pub enriched: Option<String>,
    /// Destination by path (`evt.StrTime`).
    pub target: Option<String>,
    /// An enrichment method run on the value (`ParseDate`, `GeoIpCity`, ...).
    pub method: Option<String>,
    /// A constant value.
    pub value: Option<String>,
    /// Or an expression.
    pub expression: Option<String>,
}

/// A stash: on success, `value` is kept under `key` in the cache `name`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StashSpec {
    /// Cache name.
    pub name: String,
    /// Key expression.
    pub key: String,
    /// Value expression.
    pub value: String,
    /// How long an entry lives (Go duration; default 1h).
    pub ttl: Option<String>,
    /// Most entries kept (oldest dropped first).
    pub size: Option<usize>,
    /// Eviction strategy (LRU, LFU, ARC): all behave as oldest-first here.
    pub strategy: Option<String>,
}

/// A data file a parser or scenario needs.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSpec {
    /// Where the hub downloads it from (not fetched: crowd reads `dest_file` locally).
    pub source_url: Option<String>,
    /// The file name, looked up in the data directory.
    pub dest_file: String,
    /// `string` (lines) or `regexp`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Cache settings: accepted and ignored.
    pub strategy: Option<String>,
    /// Cache settings: accepted and ignored.
    pub size: Option<serde_yaml::Value>,
    /// Cache settings: accepted and ignored.
    pub ttl: Option<String>,
}

/// A whitelist.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhitelistSpec {
    /// Why (recorded on whitelisted events).
    pub reason: Option<String>,
    /// Addresses compared with `evt.Meta.source_ip`.
    #[serde(default)]
    pub ip: Vec<String>,
    /// Ranges containing `evt.Meta.source_ip`.
    #[serde(default)]
    pub cidr: Vec<String>,
    /// Expressions over `evt`.
    #[serde(default)]
    pub expression: Vec<String>,
}
