//! The detection pipeline for one stream of lines: parsers → scenarios → profile. Pure: the
//! caller brings lines and their read time; used by `crowd replay`, the daemon and the tests.
use crate::engine::{
    event::{Event, Line},
    expr::Env,
    parser::{Ctx, Pipeline},
    profile::{Decision, Profile, Skip},
    scenario::{Alert, Buckets, Scenario},
};

/// Counters of what went through.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    /// Lines fed.
    pub lines: u64,
    /// Lines the parsers turned into events.
    pub parsed: u64,
    /// Lines no parser chain accepted.
    pub unparsed: u64,
    /// Events a whitelist marked (they feed no scenario).
    pub whitelisted: u64,
    /// Overflows a postoverflow whitelist dropped (CDNs, search engines' crawlers, ...).
    pub overflows_whitelisted: u64,
    /// Alerts (bucket overflows).
    pub alerts: u64,
    /// Decisions taken.
    pub decisions: u64,
    /// Alerts that got no decision because the source is allowlisted or ours.
    pub allowlisted: u64,
}

/// One alert with what the profiles made of it.
#[derive(Clone, Debug)]
pub struct Raised {
    /// The alert (after the postoverflows).
    pub alert: Alert,
    /// Its own decisions (none when allowlisted or not asking for a remediation).
    pub decisions: Vec<Decision>,
    /// The notifiers it goes to.
    pub notifications: Vec<String>,
}

/// What one line (or the end of input) produced: each alert with its own decisions.
#[derive(Clone, Debug, Default)]
pub struct Output {
    /// Alerts raised, in order.
    pub raised: Vec<Raised>,
}

impl Output {
    /// The alerts.
    pub fn alerts(&self) -> impl Iterator<Item = &Alert> {
        self.raised.iter().map(|r| &r.alert)
    }

    /// Every decision, alert by alert.
    #[must_use]
    pub fn decisions(self) -> Vec<Decision> {
        self.raised.into_iter().flat_map(|r| r.decisions).collect()
    }
}

/// Parsers, scenarios and profile, wired.
pub struct Detector {
    pipeline: Pipeline,
    postoverflows: Pipeline,
    env: Env,
    buckets: Buckets,
    profile: Profile,
    year: i32,
    /// Running counts.
    pub counts: Counts,
}

impl Detector {
    /// A detector. `year` completes year-less timestamps (the current year, or the replayed logs').
    #[must_use]
    pub fn new(pipeline: Pipeline, env: Env, scenarios: Vec<Scenario>, profile: Profile, year: i32) -> Detector {
        Detector {
            pipeline,
            postoverflows: Pipeline::new(Vec::new()),
            env,
            buckets: Buckets::new(scenarios),
            profile,
            year,
            counts: Counts::default(),
        }
    }

    /// Replays old logs (`crowd replay`): see [`Buckets::replaying`].
    #[must_use]
    pub fn replaying(mut self) -> Detector {
        self.buckets = self.buckets.replaying();
        self
    }

    /// Counts IPv6 sources of scenarios grouping by `IpPrefix` under networks of `bits` bits.
    pub fn set_ipv6_prefix(&self, bits: u8) {
        self.env.set_ipv6_prefix(bits);
    }

    /// Runs every overflow through `postoverflows` (whitelists and source rewrites applied to
    /// alerts before the profiles see them).
    #[must_use]
    pub fn with_postoverflows(mut self, postoverflows: Pipeline) -> Detector {
        self.postoverflows = postoverflows;
        self
    }

    /// Feeds one line read at `now` (Unix seconds).
    pub fn feed(&mut self, line: Line, now: f64) -> Output {
        self.counts.lines += 1;
        let ctx = Ctx { env: &self.env, year: self.year };
        let Some(evt) = self.pipeline.process(Event::new(line, now), &ctx, None) else {
            self.counts.unparsed += 1;
            return Output::default();
        };
        self.counts.parsed += 1;
        if evt.whitelisted {
            self.counts.whitelisted += 1;
            return Output::default();
        }
        let alerts = self.buckets.pour(evt, &self.env);
        self.decide(alerts)
    }

    /// Parses one line and reports, for `crowd explain`, the event and the scenarios it feeds.
    #[must_use]
    pub fn explain(&self, line: Line, now: f64) -> (Option<Event>, crate::engine::parser::Dump, Vec<String>) {
        let ctx = Ctx { env: &self.env, year: self.year };
        let mut dump = crate::engine::parser::Dump::default();
        let evt = self.pipeline.process(Event::new(line, now), &ctx, Some(&mut dump));
        let feeds = evt
            .as_ref()
            .map(|e| self.buckets.matching(e, &self.env).into_iter().map(str::to_owned).collect())
            .unwrap_or_default();
        (evt, dump, feeds)
    }

    /// End of input: counters report what they counted.
    pub fn finish(&mut self) -> Output {
        let alerts = self.buckets.flush(&self.env);
        self.decide(alerts)
    }

    fn decide(&mut self, alerts: Vec<Alert>) -> Output {
        let ctx = Ctx { env: &self.env, year: self.year };
        let alerts = postoverflow(&self.postoverflows, alerts, &ctx, &mut self.counts.overflows_whitelisted);
        let mut raised = Vec::with_capacity(alerts.len());
        for alert in alerts {
            self.counts.alerts += 1;
            let verdict = self.profile.evaluate(&alert);
            let decisions = match verdict.decisions {
                Ok(ds) => {
                    self.counts.decisions += ds.len() as u64;
                    ds
                }
                Err(Skip::Allowlisted(by)) => {
                    self.counts.allowlisted += 1;
                    tracing::info!(scenario = %alert.scenario, source = %alert.value, allowlisted_by = %by, "not banning an allowlisted source");
                    Vec::new()
                }
                Err(_) => Vec::new(),
            };
            raised.push(Raised { alert, decisions, notifications: verdict.notifications });
        }
        Output { raised }
    }

    /// Live buckets.
    #[must_use]
    pub fn buckets(&self) -> usize {
        self.buckets.len()
    }

    /// The bucket state (size, evictions).
    #[must_use]
    pub fn state(&self) -> &crate::engine::scenario::Buckets {
        &self.buckets
    }

    /// Holds the bucket state within about `bytes` (`--max-memory`).
    pub fn set_memory_budget(&mut self, bytes: usize) {
        self.buckets.set_budget(bytes);
    }
}

/// Alerts after the postoverflow parsers: those a whitelist marks are dropped (counted), the
/// others carry the source the parsers left (`ipv6_to_range` makes an `Ip` alert a `Range` one).
pub fn postoverflow(post: &Pipeline, alerts: Vec<Alert>, ctx: &Ctx<'_>, dropped: &mut u64) -> Vec<Alert> {
    if post.is_empty() {
        return alerts;
    }
    let mut out = Vec::with_capacity(alerts.len());
    for mut a in alerts {
        let evt = Event { time: a.at, overflow: Some(Box::new(a.overflow_alert())), ..Event::default() };
        let evt = post.process_overflow(evt, ctx);
        if evt.whitelisted {
            *dropped += 1;
            tracing::info!(scenario = %a.scenario, source = %a.value, reason = %evt.whitelist_reason, "overflow whitelisted");
            continue;
        }
        if let Some(o) = evt.overflow {
            a.scope = o.source.scope;
            a.value = o.source.value;
        }
        out.push(a);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::{collections::BTreeMap, path::Path, sync::Arc};

    use super::*;
    use crate::{
        config::load::{parsers_from_text, scenarios_from_text},
        engine::{expr::DataFiles, grok::Patterns},
    };

    /// A trigger on `evt.Meta.source_ip` (statics copy it from the line), with `post` as the
    /// postoverflow parsers in stage `s01-whitelist` (or `s00-enrich`).
    fn detector(post: &[(&str, &str)]) -> Detector {
        let mut data = DataFiles::default();
        data.lines.insert("cdn.txt".into(), vec!["198.51.100.0/24".into(), "2001:db8:cd::/48".into()]);
        let env = Env::new(Arc::new(data));
        let mut patterns = Patterns::with_base();
        let p = Path::new("t.yaml");
        let parsers = parsers_from_text(
            p,
            "name: t/ip\nfilter: \"1 == 1\"\nstatics:\n  - meta: source_ip\n    expression: evt.Line.Raw\n",
            "s01-parse",
            &mut patterns,
            &env,
        )
        .unwrap();
        let scenarios = scenarios_from_text(
            p,
            "type: trigger\nname: t/hit\nfilter: \"true\"\ngroupby: evt.Meta.source_ip\nlabels:\n  remediation: true\n",
            &env,
        )
        .unwrap();
        let mut post_parsers = Vec::new();
        for (stage, text) in post {
            post_parsers.extend(parsers_from_text(p, text, stage, &mut patterns, &env).unwrap());
        }
        Detector::new(Pipeline::new(parsers), env, scenarios, Profile::default(), 2026)
            .with_postoverflows(Pipeline::new(post_parsers))
    }

    fn feed(d: &mut Detector, ip: &str) -> Output {
        let labels = Arc::new(BTreeMap::from([("type".to_owned(), "t".to_owned())]));
        d.feed(Line { raw: ip.into(), src: "t".into(), module: "file", labels }, 0.0)
    }

    const CDN: &str = "name: t/cdn\ndescription: cdn\nwhitelist:\n  reason: CDN\n  expression:\n    - \"any(File('cdn.txt'), { IpInRange(evt.Overflow.Alert.Source.IP, #)})\"\n";
    const TO_RANGE: &str = "onsuccess: next_stage\nfilter: \"evt.Overflow.Alert.Remediation == true && IsIPV6(evt.Overflow.Alert.Source.IP)\"\nname: t/ipv6_to_range\nstatics:\n  - target: evt.Overflow.Alert.Source.Value\n    expression: IpToRange(evt.Overflow.Alert.Source.IP, \"/64\")\n  - target: evt.Overflow.Alert.Source.Scope\n    value: Range\n";

    #[test]
    fn statics_write_numbers_as_crowdsec_does() {
        let env = Env::new(Arc::new(DataFiles::default()));
        let node = "name: t/n\nfilter: \"UnmarshalJSON(evt.Line.Raw, evt.Unmarshaled, 'j') in ['', nil] || true\"\n\
                    statics:\n  - meta: json_number\n    expression: evt.Unmarshaled.j.status\n  \
                    - meta: float\n    expression: 1.5 * 2\n  - meta: integer\n    expression: len('abc')\n  \
                    - meta: boolean\n    expression: 1 == 1\n  - meta: text\n    expression: evt.Unmarshaled.j.user\n";
        let parsers =
            parsers_from_text(Path::new("t.yaml"), node, "s01-parse", &mut Patterns::with_base(), &env).unwrap();
        let labels = Arc::new(BTreeMap::from([("type".to_owned(), "t".to_owned())]));
        let line = Line { raw: r#"{"status": 401, "user": "bob"}"#.into(), src: "t".into(), module: "file", labels };
        let ctx = Ctx { env: &env, year: 2026 };
        let e = Pipeline::new(parsers).process(Event::new(line, 0.0), &ctx, None).expect("parsed");
        // Go decodes JSON numbers as float64 and writes floats with `%f`.
        assert_eq!(e.meta.get("json_number").map(|s| s.as_str()), Some("401.000000"));
        assert_eq!(e.meta.get("float").map(|s| s.as_str()), Some("3.000000"));
        assert_eq!(e.meta.get("integer").map(|s| s.as_str()), Some("3"));
        assert_eq!(e.meta.get("boolean"), None, "a boolean sets nothing");
        assert_eq!(e.meta.get("text").map(|s| s.as_str()), Some("bob"));
    }

    #[test]
    fn a_postoverflow_whitelist_drops_the_overflow_before_any_decision() {
        let mut d = detector(&[("s01-whitelist", CDN)]);
        let out = feed(&mut d, "198.51.100.7");
        assert!(out.raised.is_empty(), "{:?}", out.raised);
        assert_eq!(d.counts.overflows_whitelisted, 1);
        let out = feed(&mut d, "203.0.113.7").decisions();
        assert_eq!(out.len(), 1, "another source is not whitelisted");
        assert_eq!(out[0].value, "203.0.113.7");
    }

    #[test]
    fn a_postoverflow_turns_an_ipv6_source_into_its_range() {
        let mut d = detector(&[("s00-enrich", TO_RANGE), ("s01-whitelist", CDN)]);
        let out = feed(&mut d, "2001:db8:1:2::1e");
        let a = &out.raised[0];
        assert_eq!(a.alert.ip, "2001:db8:1:2::1e", "the address stays known");
        assert_eq!((a.alert.scope.as_str(), a.alert.value.as_str()), ("Range", "2001:db8:1:2::/64"));
        assert_eq!(a.decisions[0].scope, "Range");
        assert_eq!(a.decisions[0].value, "2001:db8:1:2::/64");
        // The whitelist of the next stage still sees the address.
        assert!(feed(&mut d, "2001:db8:cd::5").raised.is_empty());
        // IPv4 sources are left alone (the filter fails: later stages do not run, the alert goes on).
        let out = feed(&mut d, "192.0.2.9");
        let a = &out.raised[0].alert;
        assert_eq!((a.scope.as_str(), a.value.as_str()), ("Ip", "192.0.2.9"));
    }
}
