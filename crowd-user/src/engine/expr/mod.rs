//! Expressions: expr-lang (the `expr-lang` crate) with the CrowdSec helper functions the hub's
//! parsers and scenarios call (`Upper`, `Lower`, `IpInRange`, `File`, `RegexpInFile`, ...).
//!
//! An expression is compiled once when its YAML loads (a syntax error names the file and field
//! there) and run against an event: `evt` is the event (see `event.rs`). Data files named by a
//! parser's or scenario's `data:` section are handed in as [`DataFiles`] by the config loader.
use std::{collections::HashMap, net::IpAddr, sync::Arc};

use expr::{Context, ContextProvider, Environment, Program, Value};

use super::event::Event;

mod data;
pub mod fast;
mod helpers;
pub mod queue;
pub mod queue_condition;
mod rewrite;
mod stash;
mod xml;

pub use data::DataFiles;
pub use helpers::median_interval;
use helpers::{arg_str, glob_match, ip_prefix, json_extract, prefix_bits};
pub(crate) use helpers::{ip_in_range, percent_decode};
pub(crate) use rewrite::inline_lets;
use rewrite::{closure_member_shorthand, field_calls, go_time_methods, rewrite_negated_ops, zero_value_fields};
pub use stash::Stash;

/// A compiled expression.
#[derive(Clone, Debug)]
pub struct Expr {
    program: Arc<Program>,
    source: String,
    fast: Option<fast::Fast>,
    /// When `fast` is `None`: a necessary condition the fast path runs first (see
    /// [`fast::guard`]).
    guard: Option<fast::Fast>,
    /// The program with every `evt` field read as a `CrowdField(...)` call, when that leaves no
    /// other use of `evt`: it runs without converting the event, and closures (which copy the
    /// variables for every element) copy nothing.
    light: Option<Arc<Program>>,
}

/// Why an expression failed to compile or run.
#[derive(Debug, thiserror::Error)]
#[error("expression `{source_text}`: {message}")]
pub struct ExprError {
    /// The expression.
    pub source_text: String,
    /// What went wrong.
    pub message: String,
}

/// The environment every expression runs in: expr-lang plus the CrowdSec helpers.
pub struct Env {
    env: Environment<'static>,
    data: Arc<DataFiles>,
    stash: Arc<Stash>,
}

impl Env {
    /// The environment with the helpers, reading data files from `data`.
    #[must_use]
    pub fn new(data: Arc<DataFiles>) -> Env {
        let data_keep = data.clone();
        let stash = Arc::new(Stash::default());
        let st = stash.clone();
        let prefix = data.ipv6_prefix.clone();
        let mut env = Environment::new();
        env.add_function("Upper", |c| Ok(arg_str(c.args.first()).to_uppercase().into()));
        env.add_function("Lower", |c| Ok(arg_str(c.args.first()).to_lowercase().into()));
        env.add_function("TrimSpace", |c| Ok(arg_str(c.args.first()).trim().to_owned().into()));
        env.add_function("TrimPrefix", |c| {
            let (s, p) = (arg_str(c.args.first()), arg_str(c.args.get(1)));
            Ok(s.strip_prefix(p.as_str()).unwrap_or(&s).to_owned().into())
        });
        env.add_function("TrimSuffix", |c| {
            let (s, p) = (arg_str(c.args.first()), arg_str(c.args.get(1)));
            Ok(s.strip_suffix(p.as_str()).unwrap_or(&s).to_owned().into())
        });
        env.add_function("Split", |c| {
            let (s, sep) = (arg_str(c.args.first()), arg_str(c.args.get(1)));
            Ok(Value::Array(s.split(sep.as_str()).map(|p| Value::String(p.to_owned())).collect()))
        });
        env.add_function("Atof", |c| Ok(Value::Float(arg_str(c.args.first()).trim().parse().unwrap_or(0.0))));
        env.add_function("Atoi", |c| Ok(Value::Integer(arg_str(c.args.first()).trim().parse().unwrap_or(0))));
        env.add_function("XMLGetNodeValue", |c| {
            Ok(xml::node_value(&arg_str(c.args.first()), &arg_str(c.args.get(1))).into())
        });
        env.add_function("XMLGetAttributeValue", |c| {
            Ok(xml::attribute_value(&arg_str(c.args.first()), &arg_str(c.args.get(1)), &arg_str(c.args.get(2))).into())
        });
        env.add_function("GoTime", |c| {
            let secs = match c.args.get(1) {
                Some(Value::Float(f)) => *f,
                Some(Value::Integer(n)) => *n as f64,
                _ => 0.0,
            };
            Ok(helpers::go_time(&arg_str(c.args.first()), secs, &arg_str(c.args.get(2))))
        });
        env.add_function("IpInRange", |c| Ok(ip_in_range(&arg_str(c.args.first()), &arg_str(c.args.get(1))).into()));
        env.add_function("IsIPV4", |c| Ok(arg_str(c.args.first()).parse::<std::net::Ipv4Addr>().is_ok().into()));
        env.add_function("IsIPV6", |c| Ok(arg_str(c.args.first()).parse::<std::net::Ipv6Addr>().is_ok().into()));
        env.add_function("IsIP", |c| Ok(arg_str(c.args.first()).parse::<IpAddr>().is_ok().into()));
        env.add_function("PathUnescape", |c| Ok(percent_decode(&arg_str(c.args.first()), false).into()));
        env.add_function("QueryUnescape", |c| Ok(percent_decode(&arg_str(c.args.first()), true).into()));
        env.add_function("Match", |c| {
            // CrowdSec's Match: a glob with `*` and `?`.
            Ok(glob_match(&arg_str(c.args.first()), &arg_str(c.args.get(1))).into())
        });
        let d = data.clone();
        env.add_function("File", move |c| {
            let name = arg_str(c.args.first());
            Ok(Value::Array(
                d.lines.get(&name).map(|l| l.iter().map(|s| Value::String(s.clone())).collect()).unwrap_or_default(),
            ))
        });
        let d = data.clone();
        env.add_function("RegexpInFile", move |c| {
            let (s, name) = (arg_str(c.args.first()), arg_str(c.args.get(1)));
            Ok(d.regexes(&name).is_some_and(|rs| rs.iter().any(|r| r.is_match(&s))).into())
        });
        // crowd's own: does the text contain any line of a data file (case-insensitive)? What
        // `any(File(f), {Lower(x) contains #})` says, without the interpreter's per-element
        // copies of the event.
        let d = data.clone();
        env.add_function("ContainsAnyLine", move |c| {
            let (s, name) = (arg_str(c.args.first()).to_lowercase(), arg_str(c.args.get(1)));
            Ok(d.lines.get(&name).is_some_and(|l| l.iter().any(|x| s.contains(&x.to_lowercase()))).into())
        });
        let d = data;
        env.add_function("ExprInFile", move |c| {
            let (s, name) = (arg_str(c.args.first()), arg_str(c.args.get(1)));
            Ok(d.lines.get(&name).is_some_and(|l| l.contains(&s)).into())
        });
        env.add_function("Distance", |_| Ok(Value::Float(0.0)));
        // `queue.Queue` of bucket expressions, rewritten to this call (see scenario/queue.rs):
        // the queue stays out of the variables every closure element copies.
        env.add_function("CrowdField", |c| {
            Ok(Value::String(CurrentEvent::field(&arg_str(c.args.first()), &arg_str(c.args.get(1)))))
        });
        // Profiles' `duration_expr`: decisions already taken for a value (see profile.rs).
        env.add_function("GetDecisionsCount", |c| {
            let v = arg_str(c.args.first());
            Ok(Value::Integer(DECISION_COUNTS.with(|h| h.borrow().get(&v).copied().unwrap_or(0)) as i64))
        });
        env.add_function("GetDecisionsSinceCount", |c| {
            let v = arg_str(c.args.first());
            Ok(Value::Integer(DECISION_COUNTS.with(|h| h.borrow().get(&v).copied().unwrap_or(0)) as i64))
        });
        env.add_function("CrowdQueue", |_| Ok(BUCKET_QUEUE.with(|q| q.borrow().clone())));
        // Times are Unix seconds (`evt.Time`), durations seconds.
        env.add_function("duration", |c| {
            Ok(crate::clock::go_duration_secs(&arg_str(c.args.first())).map_or(Value::Nil, Value::Float))
        });
        env.add_function("MedianInterval", |c| {
            let times: Vec<f64> = match c.args.first() {
                Some(Value::Array(a)) => a
                    .iter()
                    .filter_map(|v| match v {
                        Value::Float(f) => Some(*f),
                        Value::Integer(i) => Some(*i as f64),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            Ok(Value::Float(median_interval(&times)))
        });
        env.add_function("GetFromStash", move |c| {
            Ok(st.get(&arg_str(c.args.first()), &arg_str(c.args.get(1))).map_or(Value::Nil, Value::String))
        });
        env.add_function("IpToRange", |c| {
            // `IpToRange("192.0.2.7", "/16")` is "192.0.2.0/16"... truncated: "192.0.0.0/16".
            let (ip, mask) = (arg_str(c.args.first()), arg_str(c.args.get(1)));
            let bits: u8 = mask.trim_start_matches('/').parse().unwrap_or(32);
            Ok(match ip.parse::<IpAddr>() {
                Ok(IpAddr::V4(a)) => ipnet::Ipv4Net::new(a, bits).map(|n| n.trunc().to_string()).unwrap_or_default(),
                Ok(IpAddr::V6(a)) => ipnet::Ipv6Net::new(a, bits).map(|n| n.trunc().to_string()).unwrap_or_default(),
                Err(_) => String::new(),
            }
            .into())
        });
        // crowd's own: the source a scenario counts under. An IPv4 address is itself; an IPv6
        // address is its network of `--ipv6-prefix` bits (64 unless configured, or the second
        // argument), because any IPv6 host holds at least a /64 to rotate through.
        env.add_function("IpPrefix", move |c| {
            let bits = c.args.get(1).map_or_else(|| prefix.get(), |b| prefix_bits(&arg_str(Some(b))));
            Ok(ip_prefix(&arg_str(c.args.first()), bits).into())
        });
        env.add_function("JsonExtract", |c| {
            Ok(json_extract(&arg_str(c.args.first()), &arg_str(c.args.get(1)), false).into())
        });
        env.add_function("JsonExtractUnescape", |c| {
            Ok(json_extract(&arg_str(c.args.first()), &arg_str(c.args.get(1)), true).into())
        });
        // The side effect (filling evt.Unmarshaled) is done by the parser node before the
        // expression runs (see node.rs); here it only reports success like CrowdSec's ("").
        env.add_function("UnmarshalJSON", |c| {
            Ok(match serde_json::from_str::<serde_json::Value>(&arg_str(c.args.first())) {
                Ok(_) => "".into(),
                Err(e) => e.to_string().into(),
            })
        });
        // As UnmarshalJSON, the node decodes (`parse_kv`); the helper returns nothing, as CrowdSec.
        env.add_function("ParseKV", |_| Ok(Value::Nil));
        env.add_function("ParseKVLax", |_| Ok(Value::Nil));
        env.add_function("Sprintf", |c| {
            let mut fmt = arg_str(c.args.first());
            for a in c.args.iter().skip(1) {
                if let Some(p) = fmt.find('%') {
                    let end = fmt[p + 1..].find(|ch: char| ch.is_ascii_alphabetic()).map_or(fmt.len(), |e| p + 2 + e);
                    fmt.replace_range(p..end.min(fmt.len()), &arg_str(Some(a)));
                }
            }
            Ok(fmt.into())
        });
        Env { env, data: data_keep, stash }
    }

    /// Sets the IPv6 prefix length `IpPrefix` groups sources by.
    pub fn set_ipv6_prefix(&self, bits: u8) {
        self.data.ipv6_prefix.set(bits);
    }

    /// The parsers' stash.
    #[must_use]
    pub fn stash(&self) -> &Stash {
        &self.stash
    }

    /// The data files and databases expressions and enrichers read.
    #[must_use]
    pub fn data(&self) -> &DataFiles {
        &self.data
    }

    /// Compiles an expression.
    ///
    /// # Errors
    /// [`ExprError`] with the parser's message.
    pub fn compile(&self, source: &str) -> Result<Expr, ExprError> {
        // `evt.GetType()`: CrowdSec's event type name (an overflow poured back, or a log line).
        let inlined =
            go_time_methods(&inline_lets(source).replace("evt.GetType()", "(evt.Type == 1 ? \"overflow\" : \"log\")"));
        let pre = closure_member_shorthand(&rewrite_negated_ops(&inlined));
        let light = field_calls(&pre).and_then(|l| expr::compile(&l).ok()).map(Arc::new);
        expr::compile(&zero_value_fields(&pre))
            .map(|p| {
                let fast = fast::compile(&inlined);
                // A guard only serves expressions the fast path does not run whole.
                let guard = if fast.is_none() { fast::guard(&inlined) } else { None };
                Expr { program: Arc::new(p), source: source.to_owned(), fast, guard, light }
            })
            .map_err(|e| ExprError { source_text: source.to_owned(), message: e.to_string() })
    }

    /// Runs the light program of `e` (see [`Expr`]) on `event`.
    fn run_light(&self, e: &Expr, p: &Program, event: &Event) -> Result<Value, ExprError> {
        let _current = CurrentEvent::set(event);
        self.env
            .run(p, &EvtContext { vars: Context::default() })
            .map_err(|err| ExprError { source_text: e.source.clone(), message: err.to_string() })
    }

    fn to_string_value(v: Value) -> String {
        match v {
            Value::String(s) => s,
            Value::Nil => String::new(),
            Value::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{f:.0}"),
            other => other.to_string(),
        }
    }

    /// Runs an expression with `evt` bound to `event`.
    ///
    /// # Errors
    /// [`ExprError`] when evaluation fails (a type error, a missing function).
    pub fn run(&self, e: &Expr, event: &Event) -> Result<Value, ExprError> {
        match &e.light {
            Some(p) => self.run_light(e, p, event),
            None => self.run_in(e, &EvtContext::new(event)),
        }
    }

    /// Runs an expression in a prepared context (several expressions over one unchanged event
    /// share the conversion of the event).
    ///
    /// # Errors
    /// As [`Env::run`].
    pub fn run_in(&self, e: &Expr, ctx: &EvtContext) -> Result<Value, ExprError> {
        self.env
            .run(&e.program, ctx)
            .map_err(|err| ExprError { source_text: e.source.clone(), message: err.to_string() })
    }

    /// [`Env::test`] with a lazily built context shared by several expressions over one event:
    /// the fast path needs none; the interpreter builds it once.
    #[must_use]
    pub fn test_with<'c>(&self, e: &Expr, event: &Event, ctx: impl FnOnce() -> &'c EvtContext) -> bool {
        match (&e.fast, &e.light) {
            (Some(f), _) => f.test(event, &self.data),
            _ if e.guard.as_ref().is_some_and(|g| !g.test(event, &self.data)) => false,
            (None, Some(p)) => matches!(self.run_light(e, p, event), Ok(Value::Bool(true))),
            (None, None) => self.test_in(e, ctx()),
        }
    }

    /// [`Env::string`] with a lazily built shared context.
    ///
    /// # Errors
    /// As [`Env::run`].
    pub fn string_with<'c>(
        &self,
        e: &Expr,
        event: &Event,
        ctx: impl FnOnce() -> &'c EvtContext,
    ) -> Result<String, ExprError> {
        match (&e.fast, &e.light) {
            (Some(f), _) => Ok(f.string(event, &self.data)),
            (None, Some(p)) => self.run_light(e, p, event).map(Self::to_string_value),
            (None, None) => self.string_in(e, ctx()),
        }
    }

    /// Runs a filter: true only for a boolean true (errors and non-booleans are false).
    #[must_use]
    pub fn test(&self, e: &Expr, event: &Event) -> bool {
        match (&e.fast, &e.light) {
            (Some(f), _) => f.test(event, &self.data),
            _ if e.guard.as_ref().is_some_and(|g| !g.test(event, &self.data)) => false,
            (None, Some(p)) => matches!(self.run_light(e, p, event), Ok(Value::Bool(true))),
            (None, None) => self.test_in(e, &EvtContext::new(event)),
        }
    }

    /// [`Env::test`] in a prepared context.
    #[must_use]
    pub fn test_in(&self, e: &Expr, ctx: &EvtContext) -> bool {
        matches!(self.run_in(e, ctx), Ok(Value::Bool(true)))
    }

    /// Runs an expression for a string result (statics): nil is the empty string.
    ///
    /// # Errors
    /// As [`Env::run`].
    pub fn string(&self, e: &Expr, event: &Event) -> Result<String, ExprError> {
        match (&e.fast, &e.light) {
            (Some(f), _) => Ok(f.string(event, &self.data)),
            (None, Some(p)) => self.run_light(e, p, event).map(Self::to_string_value),
            (None, None) => self.string_in(e, &EvtContext::new(event)),
        }
    }

    /// A static's value (a short result is kept inline: no allocation), converted as CrowdSec's
    /// parsers convert an expression's result: a string as it is, an integer in decimal, a
    /// float with Go's `%f` (six decimals: a JSON `401` decodes to `401.000000`); `nil`, maps,
    /// arrays and booleans set nothing (empty).
    ///
    /// # Errors
    /// As [`Env::run`].
    pub fn field_value(&self, e: &Expr, event: &Event) -> Result<crate::engine::event::Str, ExprError> {
        if let Some(f) = &e.fast {
            return Ok(f.value(event, &self.data).as_ref().into());
        }
        let v = match &e.light {
            Some(p) => self.run_light(e, p, event)?,
            None => self.run_in(e, &EvtContext::new(event))?,
        };
        Ok(match v {
            Value::String(s) => s.into(),
            Value::Integer(i) => i.to_string().into(),
            Value::Float(f) => format!("{f:.6}").into(),
            _ => "".into(),
        })
    }

    /// [`Env::string`] in a prepared context.
    ///
    /// # Errors
    /// As [`Env::run`].
    pub fn string_in(&self, e: &Expr, ctx: &EvtContext) -> Result<String, ExprError> {
        Ok(Self::to_string_value(self.run_in(e, ctx)?))
    }
}

impl Expr {
    /// The values `field` must hold for this expression to be true, when a few known ones
    /// (see [`fast::Fast::required_values`]); from its fast form, or the guard the interpreter
    /// runs behind.
    #[must_use]
    pub fn required_values(&self, field: &crate::engine::event::FieldRef) -> Option<Vec<String>> {
        self.fast.as_ref().or(self.guard.as_ref())?.required_values(field)
    }

    /// The source text.
    #[must_use]
    pub fn source(&self) -> &str {
        &self.source
    }
}

/// Swaps the decision counts `GetDecisionsCount` reads on this thread with `counts`.
pub fn swap_decision_counts(counts: &mut HashMap<String, u64>) {
    DECISION_COUNTS.with(|h| std::mem::swap(&mut *h.borrow_mut(), counts));
}

thread_local! {
    /// Decisions taken per value, for profiles' `GetDecisionsCount`.
    static DECISION_COUNTS: std::cell::RefCell<HashMap<String, u64>> = std::cell::RefCell::new(HashMap::new());
    /// The event a light program runs on (see [`CurrentEvent`]); null outside of one.
    static CURRENT_EVENT: std::cell::Cell<*const Event> = const { std::cell::Cell::new(std::ptr::null()) };
    /// The queue of the bucket whose expression is being evaluated on this thread.
    static BUCKET_QUEUE: std::cell::RefCell<Value> = const { std::cell::RefCell::new(Value::Nil) };
}

/// While alive, the event `CrowdField(...)` reads on this thread. Light programs run
/// synchronously inside [`Env::run_light`], which holds the guard and the `&Event` it points to.
struct CurrentEvent(*const Event);

impl CurrentEvent {
    fn set(event: &Event) -> CurrentEvent {
        CurrentEvent(CURRENT_EVENT.with(|c| c.replace(std::ptr::from_ref(event))))
    }

    /// `evt.<part>.<key>` of the current event; "" when absent (Go's zero value).
    fn field(part: &str, key: &str) -> String {
        let ptr = CURRENT_EVENT.with(std::cell::Cell::get);
        if ptr.is_null() {
            return String::new();
        }
        // SAFETY: non-null only while a `CurrentEvent` guard lives in `run_light`, whose
        // `&Event` outlives the guard; this thread alone reads it.
        let e = unsafe { &*ptr };
        let v = match part {
            "Parsed" => e.parsed.get(key).map(crate::engine::event::Str::as_str),
            "Meta" => e.meta.get(key).map(crate::engine::event::Str::as_str),
            "Enriched" => e.enriched.get(key).map(crate::engine::event::Str::as_str),
            "Labels" => e.line.labels.get(key).map(String::as_str),
            "Line" => {
                return match key {
                    "Raw" => e.line.raw.clone(),
                    "Src" => e.line.src.to_string(),
                    "Module" => e.line.module.to_owned(),
                    _ => String::new(),
                };
            }
            "StrTime" => return e.str_time.to_string(),
            _ => None,
        };
        v.map(str::to_owned).unwrap_or_default()
    }
}

impl Drop for CurrentEvent {
    fn drop(&mut self) {
        CURRENT_EVENT.with(|c| c.set(self.0));
    }
}

/// Sets what `CrowdQueue()` returns on this thread (a bucket's `queue.Queue`).
pub fn set_bucket_queue(queue: Value) {
    BUCKET_QUEUE.with(|q| *q.borrow_mut() = queue);
}

/// The variables an expression sees: `evt`, converted once.
pub struct EvtContext {
    vars: Context,
}

impl EvtContext {
    /// Converts the event for expressions.
    #[must_use]
    pub fn new(event: &Event) -> EvtContext {
        let mut vars = Context::default();
        vars.insert("evt".to_owned(), event.to_value());
        EvtContext { vars }
    }

    /// A context whose `evt` is an already converted value.
    #[must_use]
    pub fn from_value(evt: Value) -> EvtContext {
        let mut vars = Context::default();
        vars.insert("evt".to_owned(), evt);
        EvtContext { vars }
    }

    /// Adds a variable (`queue`, `signal`, `leaky` for bucket expressions).
    #[must_use]
    pub fn with(mut self, name: &str, value: Value) -> EvtContext {
        self.vars.insert(name.to_owned(), value);
        self
    }
}

impl ContextProvider for EvtContext {
    fn get(&self, key: &str) -> Option<&Value> {
        self.vars.get(key)
    }
    fn to_context(&self) -> Context {
        self.vars.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Env {
        let mut d = DataFiles::default();
        d.lines.insert("bad_ua.txt".into(), vec!["sqlmap".into(), "nikto".into()]);
        d.lines.insert("paths.txt".into(), vec![r"^/\.env".into()]);
        Env::new(Arc::new(d))
    }

    fn evt() -> Event {
        let mut e = Event::default();
        e.parsed.insert("program".into(), "sshd".into());
        e.parsed.insert("ua".into(), "sqlmap".into());
        e.parsed.insert("path".into(), "/.env.bak".into());
        e.meta.insert("source_ip".into(), "192.0.2.7".into());
        std::sync::Arc::make_mut(&mut e.line.labels).insert("type".into(), "syslog".into());
        e
    }

    /// Go's `time.Time` methods on `evt.Time`, in the zone of the log's own stamp.
    #[test]
    fn go_time_methods_read_the_events_time() {
        let env = env();
        let mut e = evt();
        // Friday 2023-04-07 03:02:06 UTC, logged as 05:02:06+02:00.
        e.time = 1_680_836_526.0;
        let run = |e: &Event, src: &str| env.string(&env.compile(src).unwrap(), e).unwrap_or_default();
        assert_eq!(run(&e, "evt.Time.Hour()"), "3");
        assert_eq!(run(&e, "evt.Time.Weekday().String()"), "Friday");
        assert_eq!(run(&e, "evt.Time.Weekday()"), "5");
        assert_eq!(run(&e, "evt.Time.Month().String() + ' ' + string(evt.Time.Day())"), "April 7");
        assert!(env.test(&env.compile("evt.Time.Hour() >= 18 || evt.Time.Hour() < 6").unwrap(), &e));
        e.enriched.insert("MarshaledTime".into(), "2023-04-07T05:02:06+02:00".into());
        assert_eq!(run(&e, "evt.Time.Hour()"), "5");
        assert_eq!(run(&e, "evt.Time.Unix()"), "1680836526");
        assert_eq!(run(&e, "'evt.Time.Hour()'"), "evt.Time.Hour()", "string literals are left alone");
    }

    /// Every shape the fast path takes gives the interpreter's answer, on events with and
    /// without the fields read.
    #[test]
    fn fast_path_agrees_with_the_interpreter() {
        let mut d = DataFiles::default();
        let lines = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        d.lines.insert("ua.txt".into(), lines(&["sqlmap", "Nikto"]));
        d.lines.insert("paths.txt".into(), lines(&["/.env", "/WP-login", "/etc/passwd"]));
        d.lines.insert("ext.txt".into(), lines(&[".bak", ".sql"]));
        d.lines.insert("files.txt".into(), lines(&["shell.php", "c99.php"]));
        d.lines.insert("re.txt".into(), lines(&["^/\\.git", "admin[0-9]+"]));
        let env = Env::new(Arc::new(d));
        let mut events = vec![Event::default()];
        for (path, ua, status, file) in [
            ("/.env.bak", "sqlmap/1.5", "404", "shell.php"),
            ("/wp-login.php?x=1", "Mozilla nikto", "200", "index.html"),
            ("/.git/config", "curl", "403", ""),
            ("/admin12/etc/passwd", "", "302", "c99.php"),
        ] {
            let mut e = Event::default();
            e.meta.insert("http_path".into(), path.into());
            e.meta.insert("log_type".into(), "http_access-log".into());
            e.meta.insert("http_status".into(), status.into());
            e.meta.insert("source_ip".into(), "192.0.2.7".into());
            e.parsed.insert("http_user_agent".into(), ua.into());
            e.parsed.insert("file_name".into(), file.into());
            e.parsed.insert("request".into(), path.into());
            events.push(e);
        }
        let bools = [
            "evt.Meta.log_type in ['http_access-log', 'http_error-log'] && evt.Meta.http_status in ['404', '403']",
            r"Upper(evt.Meta.http_path) matches Upper('/wp-[a-z]+\\.php')",
            r"evt.Meta.http_path matches '^/\\.(git|env)' || evt.Parsed.request matches '^http[s]?://'",
            "any(File('paths.txt'), {Upper(evt.Meta.http_path) contains Upper(#)})",
            "any(File('paths.txt'), {evt.Meta.http_path contains #})",
            "any(File('ext.txt'), {evt.Parsed.request endsWith #})",
            "any(File('paths.txt'), {evt.Parsed.request startsWith #})",
            "any(File('files.txt'), {evt.Parsed.file_name == #})",
            "any(File('files.txt'), {# == evt.Parsed.file_name})",
            "any(File('ua.txt'), {Lower(evt.Parsed.http_user_agent) contains Lower(#)})",
            "any(File('re.txt'), {evt.Meta.http_path matches #})",
            "any(File('re.txt'), {Upper(evt.Meta.http_path) matches Upper(#)})",
            "any(File('re.txt'), {Lower(evt.Meta.http_path) matches Lower(#)})",
            "any(File('paths.txt'), {Upper(evt.Meta.http_path) matches Upper(#)})",
            "none(File('paths.txt'), {evt.Meta.http_path contains #})",
            "any(File('missing.txt'), {evt.Meta.http_path contains #})",
            "RegexpInFile(evt.Meta.http_path, 're.txt')",
            "ContainsAnyLine(evt.Parsed.http_user_agent, 'ua.txt')",
            "let p = Lower(evt.Meta.http_path); p contains '/wp-' || p endsWith '.bak'",
            "evt.Parsed.file_name != nil && evt.Parsed.missing != nil",
            "evt.Parsed.missing == nil",
            "evt.Meta.http_path not contains 'git' and evt.Meta.http_path not startsWith '/admin'",
            "evt.Meta.http_status == '404' ? evt.Parsed.file_name != '' : false",
            "IpInRange(evt.Meta.source_ip, '192.0.2.0/24') && IsIPV4(evt.Meta.source_ip)",
            r#"evt.Meta.http_path contains "\\" || TrimSpace(' a ') == 'a'"#,
        ];
        let strings = [
            "evt.Meta.source_ip + '/' + evt.Parsed.file_name",
            "len(evt.Meta.http_path)",
            "evt.Meta.http_status in ['404', '403'] ? 'false' : 'true'",
            "Upper(evt.Parsed.missing)",
            "QueryUnescape(evt.Meta.http_path)",
        ];
        // Not on the fast path, but guarded by it: the guard never changes the answer.
        for src in [
            "evt.Meta.http_status in ['404', '403'] and any(File('paths.txt'), { evt.Meta.http_path contains # ? true : false })",
            "if (evt.Meta.http_status == '404') { let x = Lower(evt.Meta.http_path); len(x) > 3 } else { false }",
        ] {
            let x = env.compile(src).unwrap_or_else(|e| panic!("{e}"));
            assert!(x.fast.is_none() && x.guard.is_some(), "{src}");
            for e in &events {
                assert_eq!(env.test(&x, e), env.test_in(&x, &EvtContext::new(e)), "{src} on {:?}", e.meta);
            }
        }
        for src in bools.iter().chain(&strings) {
            let x = env.compile(src).unwrap_or_else(|e| panic!("{e}"));
            assert!(x.fast.is_some(), "not on the fast path: {src}");
            for e in &events {
                let ctx = EvtContext::new(e);
                assert_eq!(env.test(&x, e), env.test_in(&x, &ctx), "{src} on {:?}", e.meta);
                assert_eq!(env.string(&x, e).unwrap(), env.string_in(&x, &ctx).unwrap(), "{src} on {:?}", e.meta);
            }
        }
    }

    #[test]
    fn hub_style_filters() {
        let env = env();
        let e = evt();
        for (src, want) in [
            ("evt.Parsed.program == 'sshd'", true),
            ("evt.Parsed.program in ['sshd', 'sshd-session']", true),
            ("evt.Line.Labels.type not in ['syslog', 'unifi']", false),
            ("Upper(evt.Parsed.program) == 'SSHD'", true),
            ("IpInRange(evt.Meta.source_ip, '192.0.2.0/24')", true),
            ("IpInRange(evt.Meta.source_ip, '198.51.100.0/24')", false),
            ("evt.Parsed.ua in File('bad_ua.txt')", true),
            ("RegexpInFile(evt.Parsed.path, 'paths.txt')", true),
            ("evt.Parsed.program startsWith 'ssh' && evt.Meta.source_ip != ''", true),
        ] {
            let x = env.compile(src).unwrap();
            assert_eq!(env.test(&x, &e), want, "{src}");
        }
    }

    #[test]
    fn strings_for_statics() {
        let env = env();
        let x = env.compile("evt.Parsed.program").unwrap();
        assert_eq!(env.string(&x, &evt()).unwrap(), "sshd");
        let x = env.compile("Lower('ABC')").unwrap();
        assert_eq!(env.string(&x, &evt()).unwrap(), "abc");
    }

    #[test]
    fn syntax_errors_are_reported() {
        let e = env().compile("evt.Parsed.program == ").unwrap_err();
        assert!(e.to_string().contains("evt.Parsed.program =="), "{e}");
    }

    #[test]
    fn go_only_syntax_and_json_helpers() {
        let env = env();
        let mut e = evt();
        e.parsed.insert("message".into(), r#"{"a":{"b":[{"c":"x"}]},"n":3}"#.into());
        for (src, want) in [
            ("TrimSpace(evt.Parsed.message) not startsWith \"{\"", false),
            ("evt.Parsed.program not startsWith 'http'", true),
            ("JsonExtract(evt.Parsed.message, 'a.b[0].c') == 'x'", true),
            ("JsonExtract(evt.Parsed.message, 'n') == '3'", true),
            ("UnmarshalJSON(evt.Parsed.message, evt.Unmarshaled, 'k') in ['', nil]", true),
        ] {
            let x = env.compile(src).unwrap_or_else(|e| panic!("{src}: {e}"));
            assert_eq!(env.test(&x, &e), want, "{src}");
        }
    }

    #[test]
    fn missing_fields_read_as_empty_strings_like_go_maps() {
        let env = env();
        let e = evt();
        let x = env.compile("evt.Parsed.nope != '' ? evt.Parsed.nope : evt.Parsed.program").unwrap();
        assert_eq!(env.string(&x, &e).unwrap(), "sshd");
        let x = env.compile("evt.Meta['nope'] == '' && len(evt.Parsed.program) == 4").unwrap();
        assert!(env.test(&x, &e));
        assert_eq!(zero_value_fields("'evt.Parsed.x' == evt.Parsed.x"), "'evt.Parsed.x' == (evt.Parsed.x ?? \"\")");
    }

    #[test]
    fn light_programs_read_fields_without_the_event() {
        let e = env();
        let x = e.compile("any(['a', 'b', 'sqlmap'], {Lower(evt.Meta.http_user_agent) contains #}) && evt.Line.Labels.type == 'nginx'").unwrap();
        assert!(x.light.is_some());
        let mut ev = evt();
        ev.meta.insert("http_user_agent".into(), "SQLMap/1.7".into());
        std::sync::Arc::make_mut(&mut ev.line.labels).insert("type".into(), "nginx".into());
        assert!(e.test(&x, &ev));
        ev.meta.insert("http_user_agent".into(), "curl".into());
        assert!(!e.test(&x, &ev));
        // Missing fields are "" as in Go maps; other uses of evt keep the full program.
        assert_eq!(e.string(&e.compile("evt.Parsed.nope + 'x'").unwrap(), &ev).unwrap(), "x");
        assert!(e.compile("evt.Unmarshaled.a.b == 1").unwrap().light.is_none());
        assert!(e.compile("'evt.Meta.x' == evt.Meta['y']").unwrap().light.is_some());
    }

    #[test]
    fn nested_lets_are_inlined() {
        let e = env();
        let x = e.compile("evt.Meta.source_ip != '' and (\n  let uri = Lower(evt.Meta.http_path);\n  uri contains '/sap/' or uri == '/nwa'\n)").unwrap();
        let mut ev = evt();
        ev.meta.insert("http_path".into(), "/SAP/bc".into());
        assert!(e.test(&x, &ev));
        ev.meta.insert("http_path".into(), "/other".into());
        assert!(!e.test(&x, &ev));
        assert_eq!(inline_lets("let a = 1; a + 'a' + b.a"), " (1) + 'a' + b.a");
    }

    #[test]
    fn helpers() {
        assert!(glob_match("*.php", "/x/index.php"));
        assert!(!glob_match("*.php", "/x/index.html"));
        assert_eq!(percent_decode("%2e%2E/a+b", true), "../a b");
    }
}
