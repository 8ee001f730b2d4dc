//! Alerts: searched, shown and deleted by the Local API and `crowd alerts`. Deleting an alert
//! ends its active decisions (as CrowdSec does), so bouncers see them in `deleted`, and marks it
//! deleted (kept, so that its id is never given to another alert).
use super::{Result, Row, Store, Val};

/// A stored alert.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct AlertRow {
    /// Id.
    pub id: i64,
    /// Scenario.
    pub scenario: String,
    /// Scope of the source.
    pub scope: String,
    /// Value of the source.
    pub value: String,
    /// Events in the bucket.
    pub events_count: i64,
    /// Unix seconds.
    pub created_at: i64,
    /// The machine that sent it (empty: this host).
    pub machine_id: String,
    /// The alert as CrowdSec's JSON (may be empty for alerts from before schema 2).
    #[serde(skip)]
    pub body: String,
}

/// Alert search criteria; `None` means "any".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AlertFilter {
    /// Source scope (case-insensitive).
    pub scope: Option<String>,
    /// Source value.
    pub value: Option<String>,
    /// Scenario (exact).
    pub scenario: Option<String>,
    /// Created at or after (Unix seconds).
    pub since: Option<i64>,
    /// Created at or before (Unix seconds).
    pub until: Option<i64>,
    /// Created at or before (Unix seconds; CrowdSec's `created_before`).
    pub created_before: Option<i64>,
    /// Only alerts with (true) or without (false) an active decision at `now`.
    pub has_active_decision: Option<bool>,
    /// Only alerts with a decision of this type (CrowdSec's `decision_type`).
    pub decision_type: Option<String>,
    /// Only alerts with a decision of this origin (CrowdSec's `origin`).
    pub decision_origin: Option<String>,
    /// Only alerts with a decision of this scenario (the Local API's `scenario`).
    pub decision_scenario: Option<String>,
    /// Only alerts with a decision made here (`crowdsec`, `cscli`: `include_capi=false`).
    pub local_decisions_only: bool,
    /// Only alerts with a decision containing (or inside) this address or range.
    pub decision_addr: Option<super::AddrMatch>,
    /// Sent by this machine (`""`: this host).
    pub machine_id: Option<String>,
    /// Only alerts older than this id (the console's pages).
    pub before_id: Option<i64>,
    /// At most this many, newest first.
    pub limit: Option<i64>,
}

const COLS: &str = "a.id, a.scenario, a.scope, a.value, a.events_count, a.created_at, a.machine_id, a.body";

fn alert(r: &Row<'_>) -> Result<AlertRow> {
    Ok(AlertRow {
        id: r.int(0)?,
        scenario: r.text(1)?,
        scope: r.text(2)?,
        value: r.text(3)?,
        events_count: r.int(4)?,
        created_at: r.int(5)?,
        machine_id: r.text(6)?,
        body: r.text(7)?,
    })
}

fn condition(f: &AlertFilter, now: i64) -> (String, Vec<Val>) {
    let mut conds = vec!["a.deleted_at IS NULL".to_owned()];
    let mut ps: Vec<Val> = Vec::new();
    let p = |v: Val, ps: &mut Vec<Val>| {
        ps.push(v);
        format!("?{}", ps.len())
    };
    if let Some(s) = &f.scope {
        conds.push(format!("lower(a.scope) = lower({})", p(s.clone().into(), &mut ps)));
    }
    if let Some(v) = &f.value {
        conds.push(format!("a.value = {}", p(v.clone().into(), &mut ps)));
    }
    if let Some(v) = &f.scenario {
        conds.push(format!("a.scenario = {}", p(v.clone().into(), &mut ps)));
    }
    if let Some(m) = &f.machine_id {
        conds.push(format!("a.machine_id = {}", p(m.clone().into(), &mut ps)));
    }
    if let Some(id) = f.before_id {
        conds.push(format!("a.id < {}", p(id.into(), &mut ps)));
    }
    if let Some(t) = f.since {
        conds.push(format!("a.created_at >= {}", p(t.into(), &mut ps)));
    }
    if let Some(t) = f.until {
        conds.push(format!("a.created_at <= {}", p(t.into(), &mut ps)));
    }
    if let Some(t) = f.created_before {
        conds.push(format!("a.created_at <= {}", p(t.into(), &mut ps)));
    }
    let has_decision = |cond: String| format!("EXISTS (SELECT 1 FROM decisions d WHERE d.alert_id = a.id AND {cond})");
    if let Some(v) = &f.decision_type {
        conds.push(has_decision(format!("d.type = {}", p(v.clone().into(), &mut ps))));
    }
    if let Some(v) = &f.decision_origin {
        conds.push(has_decision(format!("d.origin = {}", p(v.clone().into(), &mut ps))));
    }
    if let Some(v) = &f.decision_scenario {
        conds.push(has_decision(format!("d.scenario = {}", p(v.clone().into(), &mut ps))));
    }
    if f.local_decisions_only {
        conds.push(has_decision("d.origin IN ('crowdsec', 'cscli')".into()));
    }
    if let Some(m) = f.decision_addr {
        let (start, end) = crate::addr::bounds(&m.target);
        let size = i64::try_from(start.len()).unwrap_or(0);
        let (s, e, n) = (p(start.into(), &mut ps), p(end.into(), &mut ps), p(size.into(), &mut ps));
        let inside = if m.contains {
            format!("d.start_ip <= {s} AND d.end_ip >= {e}")
        } else {
            format!("d.start_ip >= {s} AND d.end_ip <= {e}")
        };
        conds.push(has_decision(format!("{inside} AND length(d.start_ip) = {n}")));
    }
    if let Some(has) = f.has_active_decision {
        let n = p(now.into(), &mut ps);
        conds.push(format!(
            "{} EXISTS (SELECT 1 FROM decisions d WHERE d.alert_id = a.id AND d.deleted_at IS NULL AND d.until > {n})",
            if has { "" } else { "NOT" }
        ));
    }
    (conds.join(" AND "), ps)
}

impl Store {
    /// Alerts matching `f`, newest first.
    ///
    /// # Errors
    /// Database errors.
    pub fn alerts(&mut self, f: &AlertFilter, now: i64) -> Result<Vec<AlertRow>> {
        let (cond, mut ps) = condition(f, now);
        let limit = match f.limit {
            Some(l) => {
                ps.push(l.into());
                format!(" LIMIT ?{}", ps.len())
            }
            None => String::new(),
        };
        let sql = format!("SELECT {COLS} FROM alerts a WHERE {cond} ORDER BY a.id DESC{limit}");
        self.conn.all(&sql, &ps, alert)
    }

    /// Up to `limit` alerts after the alert number `seq` (not deleted), in number order, with
    /// their numbers. Numbers are commit-ordered: an alert committing later never gets a number
    /// below one already seen.
    ///
    /// # Errors
    /// Database errors.
    pub fn alerts_after(&mut self, seq: i64, limit: i64) -> Result<Vec<(i64, AlertRow)>> {
        self.conn.all(
            &format!(
                "SELECT {COLS}, a.seq FROM alerts a WHERE a.seq > ?1 AND a.deleted_at IS NULL
                 ORDER BY a.seq LIMIT ?2"
            ),
            &[seq.into(), limit.into()],
            |r| Ok((r.int(8)?, alert(r)?)),
        )
    }

    /// One alert.
    ///
    /// # Errors
    /// Database errors.
    pub fn alert(&mut self, id: i64) -> Result<Option<AlertRow>> {
        self.conn.one(
            &format!("SELECT {COLS} FROM alerts a WHERE a.id = ?1 AND a.deleted_at IS NULL"),
            &[id.into()],
            alert,
        )
    }

    /// The decisions an alert made.
    ///
    /// # Errors
    /// Database errors.
    pub fn alert_decisions(&mut self, id: i64) -> Result<Vec<super::DecisionRow>> {
        self.conn.all(
            &format!("SELECT {} FROM decisions WHERE alert_id = ?1 ORDER BY id", super::COLS),
            &[id.into()],
            super::row,
        )
    }

    /// Deletes the alerts matching `f` (or the one `id`), ending their active decisions;
    /// returns how many alerts went.
    ///
    /// # Errors
    /// Database errors (nothing is deleted).
    pub fn delete_alerts(&mut self, f: &AlertFilter, id: Option<i64>, now: i64) -> Result<usize> {
        let ids: Vec<i64> = match id {
            Some(id) => self.alert(id)?.map(|a| a.id).into_iter().collect(),
            None => self.alerts(f, now)?.iter().map(|a| a.id).collect(),
        };
        self.conn.tx(|c| {
            let seq = if ids.is_empty() { 0 } else { super::next_change(c)? };
            for id in &ids {
                c.exec(
                    "UPDATE decisions SET deleted_at = ?1, seq = ?3 WHERE alert_id = ?2 AND deleted_at IS NULL \
                     AND until > ?1",
                    &[now.into(), (*id).into(), seq.into()],
                )?;
                // Marked, not removed: ids are never handed out twice.
                c.exec("UPDATE alerts SET deleted_at = ?1 WHERE id = ?2", &[now.into(), (*id).into()])?;
            }
            Ok(())
        })?;
        if !ids.is_empty() {
            self.announce();
        }
        Ok(ids.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{DecisionFilter, NewAlert, NewDecision};

    #[test]
    fn search_and_delete_ends_decisions() {
        let mut s = Store::memory().unwrap();
        let a = |v: &str| NewAlert {
            scenario: "crowdsecurity/ssh-bf".into(),
            scope: "Ip".into(),
            value: v.into(),
            events_count: 6,
            ..NewAlert::default()
        };
        let d = |v: &str| NewDecision {
            origin: "crowdsec".into(),
            scenario: "crowdsecurity/ssh-bf".into(),
            scope: "Ip".into(),
            value: v.into(),
            kind: "ban".into(),
            duration_secs: 100,
            ..NewDecision::default()
        };
        s.record(Some(&a("192.0.2.1")), &[d("192.0.2.1")], 10).unwrap();
        s.record(Some(&a("192.0.2.2")), &[], 20).unwrap();
        assert_eq!(s.alerts(&AlertFilter::default(), 30).unwrap().len(), 2);
        let with = AlertFilter { has_active_decision: Some(true), ..Default::default() };
        assert_eq!(s.alerts(&with, 30).unwrap()[0].value, "192.0.2.1");
        let since = AlertFilter { since: Some(15), ..Default::default() };
        assert_eq!(s.alerts(&since, 30).unwrap()[0].value, "192.0.2.2");
        let f = AlertFilter { value: Some("192.0.2.1".into()), ..Default::default() };
        assert_eq!(s.delete_alerts(&f, None, 40).unwrap(), 1);
        assert!(s.query(&DecisionFilter::default(), 41).unwrap().is_empty(), "its decision ended");
        assert_eq!(s.alerts(&AlertFilter::default(), 41).unwrap().len(), 1);
    }
}
