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
    /// Alerts (bucket overflows).
    pub alerts: u64,
    /// Decisions taken.
    pub decisions: u64,
    /// Alerts that got no decision because the source is allowlisted or ours.
    pub allowlisted: u64,
}

/// What one line (or the end of input) produced.
#[derive(Clone, Debug, Default)]
pub struct Output {
    /// Alerts raised.
    pub alerts: Vec<Alert>,
    /// Decisions taken on them.
    pub decisions: Vec<Decision>,
}

/// Parsers, scenarios and profile, wired.
pub struct Detector {
    pipeline: Pipeline,
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
            env,
            buckets: Buckets::new(scenarios, 1_000_000),
            profile,
            year,
            counts: Counts::default(),
        }
    }

    /// The notifications an alert goes to (its profiles' `notifications:`).
    pub fn notifications_for(&mut self, a: &Alert) -> Vec<String> {
        self.profile.notifications_for(a)
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
        let alerts = self.buckets.pour(&evt, &self.env);
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
        let mut decisions = Vec::new();
        for a in &alerts {
            self.counts.alerts += 1;
            match self.profile.decide_all(a) {
                Ok(ds) => {
                    self.counts.decisions += ds.len() as u64;
                    decisions.extend(ds);
                }
                Err(Skip::Allowlisted(by)) => {
                    self.counts.allowlisted += 1;
                    tracing::info!(scenario = %a.scenario, source = %a.value, allowlisted_by = %by, "not banning an allowlisted source");
                }
                Err(_) => {}
            }
        }
        Output { alerts, decisions }
    }

    /// Live buckets.
    #[must_use]
    pub fn buckets(&self) -> usize {
        self.buckets.len()
    }
}
