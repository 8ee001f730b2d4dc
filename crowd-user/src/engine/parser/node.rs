//! A compiled parser node and how it processes an event (CrowdSec's node semantics):
//! filter → whitelist → grok (+ its statics) → children → statics → `onsuccess`.
//!
//! A node succeeds when its filter passes and its grok (if any) matched; a node without grok
//! but with children succeeds when a child does. When `onsuccess: next_stage`, children stop at
//! the first success.
use std::{collections::HashMap, net::IpAddr};

use ipnet::IpNet;

use super::spec::{NodeSpec, StaticSpec};
use crate::engine::{
    event::{Event, Str},
    expr::{Env, Expr},
    grok::{Grok, Patterns},
};

/// What processing needs besides the node: the expression environment and the clock used to
/// complete year-less timestamps.
pub struct Ctx<'a> {
    /// Expression environment.
    pub env: &'a Env,
    /// The current year (replay: the year of the logs being replayed, when known).
    pub year: i32,
}

/// Where a static writes.
#[derive(Clone, Debug)]
enum Dest {
    Meta(String),
    Parsed(String),
    Enriched(String),
    Path(String),
    Method(String),
}

/// A compiled static.
#[derive(Clone, Debug)]
struct Static {
    dest: Dest,
    value: Value,
    unmarshal: Vec<Unmarshal>,
}

#[derive(Clone, Debug)]
enum Value {
    Const(Str),
    Expr(Expr),
}

#[derive(Clone, Debug)]
enum GrokSource {
    /// `apply_on` (a path naming no string field never matches, as a missing field).
    Field(Option<crate::engine::event::FieldRef>),
    Expr(Expr),
}

#[derive(Clone, Debug)]
struct GrokStep {
    grok: Grok,
    source: GrokSource,
    statics: Vec<Static>,
}

#[derive(Clone, Debug, Default)]
struct Whitelist {
    reason: String,
    ips: Vec<IpAddr>,
    cidrs: Vec<IpNet>,
    exprs: Vec<Expr>,
}

/// `UnmarshalJSON(<arg>, evt.Unmarshaled, "<key>")` in a filter: decoded into the event before
/// the filter runs, so that the filter and what follows can read `evt.Unmarshaled.<key>`.
#[derive(Clone, Debug)]
struct Unmarshal {
    arg: Expr,
    key: String,
    /// How the text decodes.
    format: Decoding,
}

/// The decoders a filter may call on `evt.Unmarshaled`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Decoding {
    /// `UnmarshalJSON`.
    Json,
    /// `ParseKV`: logfmt `key=value` pairs.
    Kv,
    /// `ParseKVLax`: a value runs to the next `key=` (spaces included).
    KvLax,
}

fn unmarshal_steps(src: &str, env: &Env) -> Result<Vec<Unmarshal>, CompileError> {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| {
        regex::Regex::new(
            r#"(UnmarshalJSON|ParseKVLax|ParseKV)\(\s*([^,]+?)\s*,\s*evt\.Unmarshaled\s*,\s*["']([^"']+)["']\s*\)"#,
        )
        .expect("valid")
    });
    re.captures_iter(src)
        .map(|c| {
            Ok(Unmarshal {
                arg: env.compile(&c[2]).map_err(|e| err("filter", e, src))?,
                key: c[3].to_owned(),
                format: match &c[1] {
                    "ParseKV" => Decoding::Kv,
                    "ParseKVLax" => Decoding::KvLax,
                    _ => Decoding::Json,
                },
            })
        })
        .collect()
}

/// A compiled node.
#[derive(Clone, Debug)]
pub struct Node {
    /// Name (children inherit `child-<parent>`).
    pub name: String,
    unmarshal: Vec<Unmarshal>,
    filter: Option<Expr>,
    grok: Option<GrokStep>,
    children: Vec<Node>,
    statics: Vec<Static>,
    whitelist: Option<Whitelist>,
    stash: Vec<Stash>,
    /// `onsuccess: next_stage`.
    pub next_stage: bool,
}

#[derive(Clone, Debug)]
struct Stash {
    name: String,
    key: Expr,
    value: Expr,
    ttl: f64,
    size: usize,
}

/// A compile error: the field and what is wrong with it (the loader adds file and line).
#[derive(Debug, thiserror::Error)]
#[error("{field}: {message}")]
pub struct CompileError {
    /// The YAML field (`filter`, `grok.pattern`, `statics[2].expression`, ...).
    pub field: String,
    /// What is wrong.
    pub message: String,
    /// The offending text, so the loader can find its line.
    pub text: String,
}

fn err(field: impl Into<String>, message: impl ToString, text: &str) -> CompileError {
    CompileError { field: field.into(), message: message.to_string(), text: text.to_owned() }
}

fn compile_statics(specs: &[StaticSpec], env: &Env, at: &str) -> Result<Vec<Static>, CompileError> {
    specs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let field = format!("{at}[{i}]");
            let dest = match (&s.meta, &s.parsed, &s.enriched, &s.target, &s.method) {
                (Some(m), None, None, None, None) => Dest::Meta(m.clone()),
                (None, Some(p), None, None, None) => Dest::Parsed(p.clone()),
                (None, None, Some(e), None, None) => Dest::Enriched(e.clone()),
                (None, None, None, Some(t), None) => Dest::Path(t.clone()),
                (None, None, None, None, Some(m)) => Dest::Method(m.clone()),
                _ => return Err(err(field, "exactly one of meta, parsed, enriched, target or method is required", "")),
            };
            let value = match (&s.value, &s.expression) {
                (Some(v), None) => Value::Const(v.as_str().into()),
                (None, Some(e)) => Value::Expr(env.compile(e).map_err(|x| err(format!("{field}.expression"), x, e))?),
                _ => return Err(err(field, "exactly one of value or expression is required", "")),
            };
            let unmarshal = s.expression.as_deref().map(|e| unmarshal_steps(e, env)).transpose()?.unwrap_or_default();
            Ok(Static { dest, value, unmarshal })
        })
        .collect()
}

impl Node {
    /// Compiles a node. `pattern_syntax` entries join the shared library (first definition wins,
    /// as in CrowdSec), so later parsers may use them.
    ///
    /// # Errors
    /// [`CompileError`] naming the field.
    pub fn compile(spec: &NodeSpec, patterns: &mut Patterns, env: &Env, parent: &str) -> Result<Node, CompileError> {
        let name = spec.name.clone().unwrap_or_else(|| format!("child-{parent}"));
        if let Some(ps) = &spec.pattern_syntax {
            for (k, v) in ps {
                if !patterns.contains(k) {
                    patterns.add(k, v);
                }
            }
        }
        let filter = spec.filter.as_deref().map(|f| env.compile(f).map_err(|e| err("filter", e, f))).transpose()?;
        let unmarshal = spec.filter.as_deref().map(|f| unmarshal_steps(f, env)).transpose()?.unwrap_or_default();
        let grok = match &spec.grok {
            None => None,
            Some(g) => {
                let none = HashMap::new();
                let compiled = match (&g.pattern, &g.name) {
                    (Some(p), None) => patterns.compile(p, &none).map_err(|e| err("grok.pattern", e, p))?,
                    (None, Some(n)) => {
                        patterns.compile(&format!("%{{{n}}}"), &none).map_err(|e| err("grok.name", e, n))?
                    }
                    _ => return Err(err("grok", "exactly one of pattern or name is required", "")),
                };
                let source = match (&g.apply_on, &g.expression) {
                    (Some(f), None) => GrokSource::Field(crate::engine::event::FieldRef::parse(f)),
                    (None, Some(e)) => GrokSource::Expr(env.compile(e).map_err(|x| err("grok.expression", x, e))?),
                    _ => return Err(err("grok", "exactly one of apply_on or expression is required", "")),
                };
                let statics = compile_statics(g.statics.as_deref().unwrap_or_default(), env, "grok.statics")?;
                Some(GrokStep { grok: compiled, source, statics })
            }
        };
        let children = spec
            .nodes
            .as_deref()
            .unwrap_or_default()
            .iter()
            .enumerate()
            .map(|(i, c)| {
                Node::compile(c, patterns, env, &name)
                    .map_err(|e| CompileError { field: format!("nodes[{i}].{}", e.field), ..e })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let statics = compile_statics(spec.statics.as_deref().unwrap_or_default(), env, "statics")?;
        let whitelist = match &spec.whitelist {
            None => None,
            Some(w) => Some(Whitelist {
                reason: w.reason.clone().unwrap_or_default(),
                ips: w
                    .ip
                    .iter()
                    .map(|i| i.parse().map_err(|_| err("whitelist.ip", format!("`{i}` is not an IP address"), i)))
                    .collect::<Result<_, _>>()?,
                cidrs: w
                    .cidr
                    .iter()
                    .map(|c| c.parse().map_err(|_| err("whitelist.cidr", format!("`{c}` is not a CIDR range"), c)))
                    .collect::<Result<_, _>>()?,
                exprs: w
                    .expression
                    .iter()
                    .map(|e| env.compile(e).map_err(|x| err("whitelist.expression", x, e)))
                    .collect::<Result<_, _>>()?,
            }),
        };
        if grok.is_none() && children.is_empty() && statics.is_empty() && whitelist.is_none() {
            return Err(err(
                if spec.name.is_some() { "node" } else { "nodes" },
                "node is empty: it needs grok, nodes, statics or whitelist",
                "",
            ));
        }
        let next_stage = match spec.onsuccess.as_deref() {
            None | Some("") => false,
            Some("next_stage") => true,
            Some(other) => {
                return Err(err("onsuccess", format!("`{other}`: the only strategy is `next_stage`"), other));
            }
        };
        let stash = spec
            .stash
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, st)| {
                let at = |f: &str| format!("stash[{i}].{f}");
                Ok(Stash {
                    name: st.name.clone(),
                    key: env.compile(&st.key).map_err(|e| err(at("key"), e, &st.key))?,
                    value: env.compile(&st.value).map_err(|e| err(at("value"), e, &st.value))?,
                    ttl: match st.ttl.as_deref() {
                        None => 3600.0,
                        Some(t) => crate::clock::go_duration_secs(t)
                            .ok_or_else(|| err(at("ttl"), format!("`{t}` is not a duration"), t))?,
                    },
                    size: st.size.unwrap_or(1000).max(1),
                })
            })
            .collect::<Result<Vec<_>, CompileError>>()?;
        Ok(Node { name, unmarshal, filter, grok, children, statics, whitelist, stash, next_stage })
    }

    /// The values `field` must hold for this node to pass its filter, when a few known ones
    /// (`None`: any value may; a node that decodes JSON in its filter is always tried).
    #[must_use]
    pub fn gate_values(&self, field: &crate::engine::event::FieldRef) -> Option<Vec<String>> {
        if !self.unmarshal.is_empty() {
            return None;
        }
        self.filter.as_ref()?.required_values(field)
    }

    /// Processes the event; returns whether the node succeeded.
    pub fn process(&self, evt: &mut Event, ctx: &Ctx<'_>) -> bool {
        if let Some(f) = &self.filter {
            // A filter that calls UnmarshalJSON decodes into the event: first as the event is
            // (`evt.Unmarshaled.k == nil && UnmarshalJSON(...)`), then with the documents
            // decoded (`UnmarshalJSON(...) in ["", nil] && evt.Unmarshaled.k.x == ...`).
            let before = (!self.unmarshal.is_empty()).then(|| evt.unmarshaled.clone());
            let pass = ctx.env.test(f, evt) || {
                before.is_some() && {
                    decode(&self.unmarshal, evt, ctx);
                    ctx.env.test(f, evt)
                }
            };
            if !pass {
                if let Some(b) = before {
                    evt.unmarshaled = b;
                }
                return false;
            }
            decode(&self.unmarshal, evt, ctx);
        }
        let whitelisted = self.whitelist.as_ref().is_some_and(|w| self.check_whitelist(w, evt, ctx));
        let (mut state, grok_ok) = match &self.grok {
            None => (true, false),
            Some(g) => {
                // The captures own their text: the field is read in place, not copied.
                let caps = match &g.source {
                    GrokSource::Field(f) => match f.as_ref().and_then(|f| evt.field(f)) {
                        Some(t) => g.grok.captures(t),
                        None => return false,
                    },
                    GrokSource::Expr(e) => g.grok.captures(&ctx.env.string(e, evt).unwrap_or_default()),
                };
                match caps {
                    None => (false, false),
                    Some(caps) => {
                        for (k, v) in caps {
                            set_field(&mut evt.parsed, k, v);
                        }
                        apply(&g.statics, evt, ctx);
                        (true, true)
                    }
                }
            }
        };
        for child in &self.children {
            if child.process(evt, ctx) {
                state = true;
                if self.next_stage {
                    break;
                }
            } else if !grok_ok {
                state = false;
            }
        }
        if !state {
            return false;
        }
        if !self.statics.is_empty() && (whitelisted || self.whitelist.is_none()) {
            apply(&self.statics, evt, ctx);
        }
        for st in &self.stash {
            if let (Ok(k), Ok(v)) = (ctx.env.string(&st.key, evt), ctx.env.string(&st.value, evt)) {
                ctx.env.stash().set(&st.name, k, v, st.ttl, st.size);
            }
        }
        true
    }

    fn check_whitelist(&self, w: &Whitelist, evt: &mut Event, ctx: &Ctx<'_>) -> bool {
        // An overflow is whitelisted by its source's address (CrowdSec: the overflow's sources).
        let ip = match &evt.overflow {
            Some(a) => a.source.ip.parse::<IpAddr>().ok(),
            None => evt.meta.get("source_ip").and_then(|s| s.parse::<IpAddr>().ok()),
        }
        .map(crate::addr::canonical_ip);
        let hit = ip.is_some_and(|ip| {
            w.ips.iter().any(|a| crate::addr::canonical_ip(*a) == ip) || w.cidrs.iter().any(|n| n.contains(&ip))
        }) || w.exprs.iter().any(|e| ctx.env.test(e, evt));
        if hit && !evt.whitelisted {
            evt.whitelisted = true;
            evt.whitelist_reason = w.reason.clone();
        }
        hit
    }
}

fn decode(steps: &[Unmarshal], evt: &mut Event, ctx: &Ctx<'_>) {
    for u in steps {
        if evt.unmarshaled.contains_key(&u.key) {
            continue;
        }
        let Ok(text) = ctx.env.string(&u.arg, evt) else { continue };
        match u.format {
            Decoding::Kv => {
                evt.unmarshaled.insert(u.key.clone(), parse_kv(&text));
            }
            Decoding::KvLax => {
                if let Some(v) = parse_kv_lax(&text) {
                    evt.unmarshaled.insert(u.key.clone(), v);
                }
            }
            Decoding::Json => {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
                    evt.unmarshaled.insert(u.key.clone(), v);
                }
            }
        }
    }
}

/// CrowdSec's `ParseKVLax`: every `key=` (a key is `[A-Za-z_][A-Za-z0-9_.-]*`, not inside a
/// quoted value) starts a pair whose value runs to the next one, trimmed (`msg=Admin accessed
/// the UI src=192.0.2.1`); a value in quotes loses them and its `\"`, `\\` escapes. `None`
/// when there is no `key=` at all.
#[must_use]
pub fn parse_kv_lax(text: &str) -> Option<serde_json::Value> {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| regex::Regex::new(r"([a-zA-Z_][a-zA-Z0-9_.-]*)=").expect("valid"));
    // Whether byte `pos` lies inside a quoted value (unescaped quotes up to it, as CrowdSec counts).
    let quoted = |pos: usize| {
        let b = text.as_bytes();
        let mut inside = false;
        for i in (0..=pos.min(b.len().saturating_sub(1))).filter(|i| b[*i] == b'"') {
            if b[..i].iter().rev().take_while(|c| **c == b'\\').count() % 2 == 0 {
                inside = !inside;
            }
        }
        inside
    };
    let keys: Vec<regex::Captures<'_>> =
        re.captures_iter(text).filter(|c| !quoted(c.get(0).map_or(0, |m| m.start()))).collect();
    if keys.is_empty() {
        return None;
    }
    let mut out = serde_json::Map::new();
    for (i, c) in keys.iter().enumerate() {
        let whole = c.get(0).expect("match");
        let end = keys.get(i + 1).map_or(text.len(), |n| n.get(0).map_or(text.len(), |m| m.start()));
        let raw = text[whole.end()..end].trim();
        let value = match raw.strip_prefix('"') {
            Some(body) if body.ends_with('"') && !body.is_empty() => {
                body[..body.len() - 1].replace("\\\\", "\\").replace("\\\"", "\"")
            }
            Some(body) => body.to_owned(),
            None => raw.to_owned(),
        };
        out.insert(c[1].to_owned(), serde_json::Value::String(value));
    }
    Some(serde_json::Value::Object(out))
}

/// logfmt: `key=value key2="quoted \"value\"" flag` into a JSON object of strings.
#[must_use]
pub fn parse_kv(text: &str) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let key: String = std::iter::from_fn(|| chars.next_if(|c| !c.is_whitespace() && *c != '=')).collect();
        if key.is_empty() {
            if chars.next().is_none() {
                break;
            }
            continue;
        }
        let mut value = String::new();
        if chars.next_if_eq(&'=').is_some() {
            if chars.next_if_eq(&'"').is_some() {
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => value.extend(chars.next()),
                        '"' => break,
                        c => value.push(c),
                    }
                }
            } else {
                value = std::iter::from_fn(|| chars.next_if(|c| !c.is_whitespace())).collect();
            }
        }
        out.insert(key, serde_json::Value::String(value));
    }
    serde_json::Value::Object(out)
}

/// Sets `k` (a field name is short: kept inline in the key, no allocation).
fn set_field(fields: &mut crate::engine::event::Fields, k: &str, v: Str) {
    fields.insert(k.into(), v);
}

fn apply(statics: &[Static], evt: &mut Event, ctx: &Ctx<'_>) {
    for s in statics {
        if !s.unmarshal.is_empty() {
            decode(&s.unmarshal, evt, ctx);
        }
        let v = match &s.value {
            Value::Const(c) => c.clone(),
            Value::Expr(e) => match ctx.env.field_value(e, evt) {
                Ok(v) => v,
                Err(_) => continue,
            },
        };
        match &s.dest {
            // CrowdSec skips empty results for meta and parsed destinations.
            Dest::Meta(k) if !v.is_empty() => set_field(&mut evt.meta, k, v),
            Dest::Parsed(k) if !v.is_empty() => set_field(&mut evt.parsed, k, v),
            Dest::Enriched(k) if !v.is_empty() => set_field(&mut evt.enriched, k, v),
            Dest::Path(p) if !v.is_empty() => {
                if p == "MarshaledTime" || p == "evt.MarshaledTime" {
                    // The time the scenarios see (CrowdSec pours replayed events at it).
                    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(&v) {
                        evt.time = t.timestamp() as f64 + f64::from(t.timestamp_subsec_nanos()) / 1e9;
                    }
                    evt.enriched.insert("MarshaledTime".into(), v);
                } else {
                    let _ = evt.set(p, v);
                }
            }
            Dest::Method(m) => super::enrich::run(m, &v, evt, ctx),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn lax_pairs_run_to_the_next_key() {
        let v = super::parse_kv_lax(
            r#"UNIFIhost=Unifi Dream Machine src=10.72.1.222 msg=Admin a=b accessed q="say \"x=1\"" z="#,
        )
        .unwrap();
        assert_eq!(v["UNIFIhost"], "Unifi Dream Machine");
        assert_eq!(v["src"], "10.72.1.222");
        assert_eq!(v["msg"], "Admin");
        assert_eq!(v["a"], "b accessed");
        assert_eq!(v["q"], "say \"x=1\"", "a key inside quotes is part of the value");
        assert_eq!(v["z"], "");
        assert!(super::parse_kv_lax("no pairs here").is_none());
    }

    #[test]
    fn logfmt_pairs() {
        let v = super::parse_kv(r#"logger=context uname= t=2023 msg="Invalid \"x\" password" flag"#);
        assert_eq!(v["logger"], "context");
        assert_eq!(v["uname"], "");
        assert_eq!(v["msg"], "Invalid \"x\" password");
        assert_eq!(v["flag"], "");
    }
}
