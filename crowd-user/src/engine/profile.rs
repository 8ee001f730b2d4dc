//! Profiles: turn alerts into decisions. Without a `profiles.yaml`, CrowdSec's default profiles
//! (`ban` for 4h on `Ip` and `Range` alerts that ask for a remediation); with one, its profiles in
//! order (`filters` over `Alert`, `decisions`, `duration_expr` with `GetDecisionsCount` for
//! escalating repeat offenders, `on_success`/`on_failure: break`). Before any profile:
//! allowlisted and our own addresses are never banned. Simulation mode records decisions
//! without enforcing them.
use std::{collections::HashMap, net::IpAddr, path::Path, sync::Arc, time::Duration};

use expr::Value;
use indexmap::IndexMap;
use ipnet::IpNet;
use serde::Deserialize;

use super::{
    expr::{Env, EvtContext, Expr},
    scenario::Alert,
};
use crate::addr::{Target, canonical_ip};

/// One profile of a `profiles.yaml`, as written (strict).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileSpec {
    /// Name.
    pub name: String,
    /// Accepted and ignored.
    pub debug: Option<bool>,
    /// Expressions over `Alert`; the profile applies when one holds.
    #[serde(default)]
    pub filters: Vec<String>,
    /// Decisions to take.
    #[serde(default)]
    pub decisions: Vec<DecisionSpec>,
    /// An expression giving the duration (`Sprintf('%dh', (GetDecisionsCount(Alert.GetValue()) + 1) * 4)`).
    pub duration_expr: Option<String>,
    /// Notification plugins: accepted (crowd has none yet).
    #[serde(default)]
    pub notifications: Vec<String>,
    /// `break` (stop after this profile) or `continue`.
    pub on_success: Option<String>,
    /// `break` or `continue` when the filters do not hold.
    pub on_failure: Option<String>,
}

/// A decision of a profile, as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionSpec {
    /// `ban` (what the XDP maps enforce); other types are recorded.
    #[serde(rename = "type")]
    pub kind: String,
    /// Go duration (default 4h).
    pub duration: Option<String>,
    /// Scope override: accepted and ignored (the alert's scope is used).
    pub scope: Option<String>,
}

/// A compiled profile.
#[derive(Clone, Debug)]
pub struct Rule {
    name: String,
    filters: Vec<Expr>,
    decisions: Vec<(String, u64)>,
    duration_expr: Option<Expr>,
    on_success_break: bool,
    on_failure_break: bool,
    notifications: Vec<String>,
}

/// Why a profiles file was refused (nothing of it is used).
#[derive(Debug, thiserror::Error)]
#[error("{path}: profile {profile}: {field}: {message}")]
pub struct ProfileError {
    /// The file.
    pub path: String,
    /// The profile (its name, or its position).
    pub profile: String,
    /// The field.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// Reads a `profiles.yaml` (several documents), all or nothing.
///
/// # Errors
/// [`ProfileError`] naming the file, profile and field.
pub fn load_rules(path: &Path, text: &str) -> Result<Vec<Rule>, ProfileError> {
    let env = profile_env();
    let err = |profile: &str, field: &str, message: String| ProfileError {
        path: path.display().to_string(),
        profile: profile.to_owned(),
        field: field.to_owned(),
        message,
    };
    let mut out = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let spec = match Option::<ProfileSpec>::deserialize(doc) {
            Ok(Some(s)) => s,
            Ok(None) => continue,
            Err(e) => {
                let line = e.location().map_or(0, |l| l.line());
                return Err(err(&format!("#{}", i + 1), &format!("line {line}"), e.to_string()));
            }
        };
        let compile = |field: &str, src: &str| {
            env.compile(&rewrite_getters(src)).map_err(|e| err(&spec.name, field, e.to_string()))
        };
        let flow = |field: &str, v: &Option<String>| match v.as_deref() {
            None | Some("continue") => Ok(false),
            Some("break") => Ok(true),
            Some(o) => Err(err(&spec.name, field, format!("`{o}`: expected break or continue"))),
        };
        let decisions = spec
            .decisions
            .iter()
            .enumerate()
            .map(|(k, d)| {
                let secs = match d.duration.as_deref() {
                    None => 4.0 * 3600.0,
                    Some(t) => crate::clock::go_duration_secs(t).ok_or_else(|| {
                        err(&spec.name, &format!("decisions[{k}].duration"), format!("`{t}` is not a duration"))
                    })?,
                };
                Ok((d.kind.clone(), secs as u64))
            })
            .collect::<Result<Vec<_>, ProfileError>>()?;
        out.push(Rule {
            filters: spec
                .filters
                .iter()
                .enumerate()
                .map(|(k, f)| compile(&format!("filters[{k}]"), f))
                .collect::<Result<_, _>>()?,
            duration_expr: spec.duration_expr.as_deref().map(|d| compile("duration_expr", d)).transpose()?,
            on_success_break: flow("on_success", &spec.on_success)?,
            on_failure_break: flow("on_failure", &spec.on_failure)?,
            decisions,
            notifications: spec.notifications.clone(),
            name: spec.name.clone(),
        });
    }
    Ok(out)
}

/// `Alert.GetScope()` and the like, as fields of the map profiles see.
fn rewrite_getters(src: &str) -> String {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| regex::Regex::new(r"\.Get([A-Z][A-Za-z]*)\(\s*\)").expect("valid"))
        .replace_all(src, ".$1")
        .into_owned()
}

fn profile_env() -> Env {
    Env::new(Arc::default())
}

fn alert_value(a: &Alert) -> Value {
    let s = |v: &str| Value::String(v.to_owned());
    let (ip, range) = if a.scope.eq_ignore_ascii_case("ip") { (a.value.as_str(), "") } else { ("", a.value.as_str()) };
    Value::Map(IndexMap::from([
        ("Remediation".to_owned(), Value::Bool(a.remediation)),
        ("Scenario".to_owned(), s(&a.scenario)),
        ("Scope".to_owned(), s(&a.scope)),
        ("Value".to_owned(), s(&a.value)),
        ("EventsCount".to_owned(), Value::Integer(i64::try_from(a.events_count).unwrap_or(i64::MAX))),
        (
            "Source".to_owned(),
            Value::Map(IndexMap::from([
                ("Scope".to_owned(), s(&a.scope)),
                ("Value".to_owned(), s(&a.value)),
                ("IP".to_owned(), s(ip)),
                ("Range".to_owned(), s(range)),
            ])),
        ),
    ]))
}

/// A decision taken on an alert.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Decision {
    /// The scenario that raised the alert.
    pub scenario: String,
    /// `Ip` or `Range`.
    pub scope: String,
    /// The address or range.
    pub value: String,
    /// `ban`.
    #[serde(rename = "type")]
    pub kind: String,
    /// How long, in seconds.
    pub duration_secs: u64,
    /// `crowd` (decided by this host's scenarios).
    pub origin: String,
    /// Recorded only (simulation mode): not enforced.
    pub simulated: bool,
}

impl Decision {
    /// The ban target, if the value parses.
    #[must_use]
    pub fn target(&self) -> Option<Target> {
        self.value.parse().ok()
    }

    /// The duration.
    #[must_use]
    pub fn duration(&self) -> Duration {
        Duration::from_secs(self.duration_secs)
    }

    /// Whether the kernel drops this decision's traffic: only bans (`ban`) on an address or a
    /// range (`Ip`, `Range`: the store's canonical scopes), not simulated. Other types (`captcha`, `throttle`, ...) are
    /// stored and served to bouncers that know them.
    #[must_use]
    pub fn enforced_in_kernel(&self) -> bool {
        enforced_in_kernel(&self.kind, &self.scope, self.simulated)
    }
}

/// The one rule for what reaches the XDP maps, whoever made the decision (this host's
/// scenarios, the Local API, the CLI, an import, the change feed): bans on `Ip` or `Range`
/// scopes that are not simulated.
#[must_use]
pub fn enforced_in_kernel(kind: &str, scope: &str, simulated: bool) -> bool {
    kind == "ban" && (scope == "Ip" || scope == "Range") && !simulated
}

/// Adds a matching profile's notifiers to `out`, each once, in order.
fn add_notifications(out: &mut Vec<String>, r: &Rule) {
    for n in &r.notifications {
        if !out.contains(n) {
            out.push(n.clone());
        }
    }
}

/// What the profiles make of one alert.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Its decisions, or why it has none.
    pub decisions: Result<Vec<Decision>, Skip>,
    /// The notifiers it goes to.
    pub notifications: Vec<String>,
}

/// Why an alert got no decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Skip {
    /// The scenario does not ask for a remediation.
    NoRemediation,
    /// The scope is neither `Ip` nor `Range`, or the value is not an address or range.
    Scope,
    /// The address is allowlisted or one of ours.
    Allowlisted(String),
}

/// The profile.
#[derive(Clone, Debug)]
pub struct Profile {
    /// Ban duration of the default profiles.
    pub ban: Duration,
    /// Addresses and ranges never banned (our own addresses, the configured allowlist).
    pub never: Vec<IpNet>,
    /// Simulation mode.
    pub simulation: bool,
    /// Scenarios that do the opposite of `simulation` (CrowdSec's `exclusions`).
    pub simulation_exclusions: Vec<String>,
    /// The profiles of a `profiles.yaml`, in order (empty: CrowdSec's defaults).
    pub rules: Vec<Rule>,
    /// Decisions taken per value (`GetDecisionsCount`), seeded from the store by the daemon.
    pub history: HashMap<String, u64>,
}

impl Default for Profile {
    fn default() -> Self {
        Profile {
            ban: Duration::from_secs(4 * 3600),
            never: Vec::new(),
            simulation: false,
            simulation_exclusions: Vec::new(),
            rules: Vec::new(),
            history: HashMap::new(),
        }
    }
}

impl Profile {
    /// Adds addresses that must never be banned.
    pub fn protect(&mut self, ips: impl IntoIterator<Item = IpAddr>) {
        self.never.extend(ips.into_iter().map(|ip| IpNet::from(canonical_ip(ip))));
    }

    /// The allowlisted or own range that forbids banning `target`, if any (a range that holds a
    /// protected address is refused whole).
    #[must_use]
    pub fn protecting(&self, target: &Target) -> Option<&IpNet> {
        self.never.iter().find(|n| match *target {
            Target::Ip(ip) => n.contains(&ip),
            Target::Net(net) => n.contains(&net.network()) || net.contains(&n.network()),
        })
    }

    /// The decisions for an alert (one per decision of every profile that applies), or why
    /// there are none.
    ///
    /// # Errors
    /// [`Skip`] saying why no decision was taken.
    pub fn decide_all(&mut self, a: &Alert) -> Result<Vec<Decision>, Skip> {
        self.evaluate(a).decisions
    }

    /// The profiles' verdict on an alert, from one walk of the profiles (so the notifications
    /// and the decisions see the same `GetDecisionsCount`, for this host's alerts and pushed ones
    /// alike): the decisions (one per decision of every profile that applies), or why there are
    /// none, and the notifications (`notifications:` of every profile that applies). The
    /// decisions then count in the history.
    pub fn evaluate(&mut self, a: &Alert) -> Verdict {
        if self.rules.is_empty() {
            let decisions = self.decide(a).map(|d| vec![d]);
            return self.counted(Verdict { decisions, notifications: Vec::new() });
        }
        // The allowlist and the scope check come first, whatever the profiles say.
        let base = self.decide(&Alert { remediation: true, ..a.clone() });
        let (mut out, mut notifications) = (Vec::new(), Vec::<String>::new());
        self.walk(a, |r, env, ctx| {
            add_notifications(&mut notifications, r);
            let Ok(base) = &base else { return };
            let from_expr = r
                .duration_expr
                .as_ref()
                .and_then(|e| env.string_in(e, ctx).ok())
                .and_then(|d| crate::clock::go_duration_secs(&d))
                .map(|s| s as u64);
            for (kind, secs) in &r.decisions {
                out.push(Decision {
                    kind: kind.clone(),
                    duration_secs: from_expr.unwrap_or(*secs),
                    origin: "crowdsec".into(),
                    ..base.clone()
                });
            }
            tracing::debug!(profile = %r.name, decisions = r.decisions.len(), "profile applied");
        });
        let decisions = match base {
            Err(skip) => Err(skip),
            Ok(_) if out.is_empty() => Err(Skip::NoRemediation),
            Ok(_) => Ok(out),
        };
        self.counted(Verdict { decisions, notifications })
    }

    fn counted(&mut self, v: Verdict) -> Verdict {
        for d in v.decisions.iter().flatten() {
            *self.history.entry(d.value.clone()).or_default() += 1;
        }
        v
    }

    /// The notifications an alert goes to (see [`Profile::evaluate`]), without deciding.
    pub fn notifications_for(&mut self, a: &Alert) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        self.walk(a, |r, _, _| add_notifications(&mut out, r));
        out
    }

    /// Calls `f` on each profile whose filters hold for `a`, in order, following `on_success`
    /// and `on_failure`; `GetDecisionsCount` sees the history meanwhile.
    fn walk(&mut self, a: &Alert, mut f: impl FnMut(&Rule, &Env, &EvtContext)) {
        let value = alert_value(a);
        super::expr::swap_decision_counts(&mut self.history);
        let env = profile_env();
        for r in &self.rules {
            let ctx = EvtContext::from_value(Value::Nil).with("Alert", value.clone());
            let hit = r.filters.is_empty() || r.filters.iter().any(|f| env.test_in(f, &ctx));
            if !hit {
                if r.on_failure_break {
                    break;
                }
                continue;
            }
            f(r, &env, &ctx);
            if r.on_success_break {
                break;
            }
        }
        super::expr::swap_decision_counts(&mut self.history);
    }

    /// The decision of CrowdSec's default profiles for an alert, or why there is none.
    ///
    /// # Errors
    /// [`Skip`] saying why no decision was taken.
    pub fn decide(&self, a: &Alert) -> Result<Decision, Skip> {
        if !a.remediation {
            return Err(Skip::NoRemediation);
        }
        if !a.scope.eq_ignore_ascii_case("ip") && !a.scope.eq_ignore_ascii_case("range") {
            return Err(Skip::Scope);
        }
        let mut target: Target = a.value.parse().map_err(|_| Skip::Scope)?;
        if let Some(n) = self.protecting(&target) {
            // A range that holds a protected address is never banned whole; when the alert knows
            // the attacking address (a scenario counting an IPv6 /64), that address alone is.
            match a.ip.parse::<Target>() {
                Ok(t @ Target::Ip(_)) if matches!(target, Target::Net(_)) && self.protecting(&t).is_none() => {
                    target = t
                }
                _ => return Err(Skip::Allowlisted(n.to_string())),
            }
        }
        Ok(Decision {
            scenario: a.scenario.clone(),
            scope: if matches!(target, Target::Ip(_)) { "Ip".into() } else { "Range".into() },
            value: target.to_string(),
            kind: "ban".into(),
            duration_secs: self.ban.as_secs(),
            origin: "crowdsec".into(),
            simulated: self.simulation != self.simulation_exclusions.contains(&a.scenario),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(value: &str, scope: &str, remediation: bool) -> Alert {
        Alert {
            scenario: "s".into(),
            events_count: 6,
            events: vec![],
            scope: scope.into(),
            value: value.into(),
            remediation,
            at: 0.0,
            first: 0.0,
            ip: String::new(),
        }
    }

    #[test]
    fn default_profile_bans_four_hours() {
        let d = Profile::default().decide(&alert("192.0.2.9", "Ip", true)).unwrap();
        assert_eq!((d.kind.as_str(), d.duration_secs, d.scope.as_str()), ("ban", 4 * 3600, "Ip"));
        assert_eq!(Profile::default().decide(&alert("192.0.2.0/24", "Range", true)).unwrap().scope, "Range");
    }

    #[test]
    fn a_prefix_holding_a_protected_address_bans_the_attacking_address_alone() {
        let mut p = Profile::default();
        p.protect(["2001:db8:1:2::1".parse().unwrap()]);
        let a = Alert { ip: "2001:db8:1:2::1e".into(), ..alert("2001:db8:1:2::/64", "Range", true) };
        let d = p.decide(&a).unwrap();
        assert_eq!((d.scope.as_str(), d.value.as_str()), ("Ip", "2001:db8:1:2::1e"));
        // The same prefix without a protected address inside is banned whole.
        let other = Alert { ip: "2001:db8:9::1e".into(), ..alert("2001:db8:9::/64", "Range", true) };
        assert_eq!(p.decide(&other).unwrap().value, "2001:db8:9::/64");
        // A protected attacking address, or a range without a known address, is not banned at all.
        let own = Alert { ip: "2001:db8:1:2::1".into(), ..a.clone() };
        assert!(matches!(p.decide(&own), Err(Skip::Allowlisted(_))));
        assert!(matches!(p.decide(&alert("2001:db8:1:2::/64", "Range", true)), Err(Skip::Allowlisted(_))));
    }

    #[test]
    fn simulation_exclusions_flip_per_scenario() {
        let mut p = Profile { simulation_exclusions: vec!["s".into()], ..Profile::default() };
        assert!(p.decide(&alert("192.0.2.9", "Ip", true)).unwrap().simulated, "s is simulated");
        p.simulation = true;
        assert!(!p.decide(&alert("192.0.2.9", "Ip", true)).unwrap().simulated, "s is the exception");
        let other = Alert { scenario: "t".into(), ..alert("192.0.2.9", "Ip", true) };
        assert!(p.decide(&other).unwrap().simulated);
    }

    #[test]
    fn notifications_follow_the_profiles_that_match() {
        let y = "name: a\nfilters: [Alert.GetScope() == 'Ip']\ndecisions: [{type: ban, duration: 1h}]\n\
                 notifications: [slack, hook]\non_success: continue\n---\nname: b\nfilters: [Alert.GetScope() == 'Range']\n\
                 notifications: [pager]\n";
        let mut p = Profile { rules: load_rules(Path::new("p.yaml"), y).unwrap(), ..Profile::default() };
        assert_eq!(p.notifications_for(&alert("192.0.2.9", "Ip", true)), ["slack", "hook"]);
        assert_eq!(p.notifications_for(&alert("192.0.2.0/24", "Range", true)), ["pager"]);
    }

    #[test]
    fn one_walk_gives_every_decision_and_the_notifications_seen_with_the_same_history() {
        // A repeat offender (GetDecisionsCount) gets a captcha and a ban, and is notified; the
        // notifications come from the same walk as the decisions, before they count.
        let y = "name: repeat\nfilters: [GetDecisionsCount(Alert.GetValue()) > 0]\n\
                 decisions: [{type: ban, duration: 1h}, {type: captcha, duration: 2h}]\nnotifications: [pager]\n\
                 on_success: break\n---\nname: first\nfilters: ['true']\ndecisions: [{type: captcha, duration: 1h}]\n\
                 notifications: [log]\n";
        let mut p = Profile { rules: load_rules(Path::new("p.yaml"), y).unwrap(), ..Profile::default() };
        let a = alert("192.0.2.9", "Ip", true);
        let v = p.evaluate(&a);
        assert_eq!(v.notifications, ["log"]);
        let kinds: Vec<(String, bool)> =
            v.decisions.unwrap().iter().map(|d| (d.kind.clone(), d.enforced_in_kernel())).collect();
        assert_eq!(kinds, [("captcha".to_owned(), false)], "a captcha never reaches the kernel");
        let v = p.evaluate(&a);
        assert_eq!(v.notifications, ["pager"], "now a repeat offender");
        let kinds: Vec<(String, bool)> =
            v.decisions.unwrap().iter().map(|d| (d.kind.clone(), d.enforced_in_kernel())).collect();
        assert_eq!(kinds, [("ban".to_owned(), true), ("captcha".to_owned(), false)], "both decisions");
        // An allowlisted source: no decision, the notifications still chosen.
        p.protect(["192.0.2.10".parse().unwrap()]);
        let v = p.evaluate(&alert("192.0.2.10", "Ip", true));
        assert!(matches!(v.decisions, Err(Skip::Allowlisted(_))));
        assert_eq!(v.notifications, ["log"]);
        assert!(!enforced_in_kernel("ban", "Country", false) && !enforced_in_kernel("ban", "Ip", true));
    }

    #[test]
    fn no_remediation_no_decision() {
        assert_eq!(Profile::default().decide(&alert("192.0.2.9", "Ip", false)), Err(Skip::NoRemediation));
        assert_eq!(Profile::default().decide(&alert("alice", "username", true)), Err(Skip::Scope));
    }

    #[test]
    fn profiles_yaml_filters_escalates_and_breaks() {
        let yaml = "name: escalate\nfilters:\n  - Alert.Remediation == true && Alert.GetScope() == 'Ip'\ndecisions:\n  - type: ban\n    duration: 4h\nduration_expr: Sprintf('%dh', (GetDecisionsCount(Alert.GetValue()) + 1) * 4)\non_success: break\n---\nname: never-reached\nfilters: ['true']\ndecisions: [{type: ban, duration: 1m}]\n";
        let mut p = Profile { rules: load_rules(Path::new("profiles.yaml"), yaml).unwrap(), ..Profile::default() };
        let hours = |p: &mut Profile| p.decide_all(&alert("192.0.2.9", "Ip", true)).unwrap()[0].duration_secs / 3600;
        assert_eq!(hours(&mut p), 4);
        assert_eq!(hours(&mut p), 8, "a repeat offender gets longer");
        assert_eq!(hours(&mut p), 12);
        assert_eq!(p.decide_all(&alert("192.0.2.9", "Ip", true)).unwrap().len(), 1, "on_success: break");
        // The first profile does not apply to a range (on_failure: continue): the second does.
        assert_eq!(p.decide_all(&alert("192.0.2.0/24", "Range", true)).unwrap()[0].duration_secs, 60);
        // No profile applies: no decision. The allowlist wins over profiles.
        let mut none = Profile {
            rules: load_rules(
                Path::new("p.yaml"),
                "name: x\nfilters: ['Alert.Scenario == \"other\"']\ndecisions: [{type: ban}]\n",
            )
            .unwrap(),
            ..Profile::default()
        };
        assert!(none.decide_all(&alert("192.0.2.9", "Ip", true)).is_err());
        p.protect(["192.0.2.10".parse().unwrap()]);
        assert!(matches!(p.decide_all(&alert("192.0.2.10", "Ip", true)), Err(Skip::Allowlisted(_))));
    }

    #[test]
    fn bad_profiles_are_refused_with_profile_and_field() {
        let e = load_rules(Path::new("p.yaml"), "name: a\nfilters: ['Alert.Scope ==']\n").unwrap_err().to_string();
        assert!(e.contains("p.yaml") && e.contains("profile a") && e.contains("filters[0]"), "{e}");
        let e = load_rules(Path::new("p.yaml"), "name: a\nfilterz: []\n").unwrap_err().to_string();
        assert!(e.contains("filterz"), "{e}");
        let e = load_rules(Path::new("p.yaml"), "name: a\ndecisions: [{type: ban, duration: soon}]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("decisions[0].duration"), "{e}");
    }

    #[test]
    fn our_addresses_are_never_banned() {
        let mut p = Profile::default();
        p.protect(["192.0.2.1".parse().unwrap(), "2001:db8::1".parse().unwrap()]);
        assert!(matches!(p.decide(&alert("192.0.2.1", "Ip", true)), Err(Skip::Allowlisted(_))));
        assert!(matches!(p.decide(&alert("::ffff:192.0.2.1", "Ip", true)), Err(Skip::Allowlisted(_))));
        assert!(matches!(p.decide(&alert("192.0.2.0/24", "Range", true)), Err(Skip::Allowlisted(_))));
        assert!(p.decide(&alert("192.0.2.2", "Ip", true)).is_ok());
    }
}
