//! Decision queries of the Local API: the filters bouncers send (scopes, value, type, address
//! containment, origins, scenarios), query mode, and stream mode's full and delta pulls.
//!
//! Stream deltas are cut by change number (`seq`, handed out in commit order: see
//! `next_change`) for added and deleted decisions, so a cursor never passes a decision that
//! commits late (PostgreSQL's ids are not in commit order), and by end time for expired ones
//! (with CrowdSec's two-second overlap). Both deduplicate like CrowdSec: per (value, type, scope)
//! only the longest active decision is sent, and an ended decision is not sent as deleted while
//! another one still holds the value.
use super::{COLS, DecisionRow, Result, Store, Val, row};
use crate::addr::{Target, bounds};

/// An address match: `ip=`/`range=` with `contains`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddrMatch {
    /// The address or range asked about.
    pub target: Target,
    /// `true`: decisions that contain it (an address matches its own decisions and the ranges
    /// around it); `false`: decisions inside it.
    pub contains: bool,
}

/// What a bouncer or the CLI asks for. Empty lists mean "any".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DecisionFilter {
    /// Scopes, in canonical case (`Ip`, `Range`, `Country`, `AS`, or a custom string).
    pub scopes: Vec<String>,
    /// Exact value.
    pub value: Option<String>,
    /// Decision type.
    pub kind: Option<String>,
    /// Address containment.
    pub addr: Option<AddrMatch>,
    /// Origins (exact, case-insensitive).
    pub origins: Vec<String>,
    /// Scenario substrings (case-insensitive), any of which must match.
    pub scenarios_containing: Vec<String>,
    /// Scenario substrings none of which may match.
    pub scenarios_not_containing: Vec<String>,
    /// Include simulated decisions.
    pub simulated: bool,
    /// One decision.
    pub id: Option<i64>,
    /// At most this many (query mode).
    pub limit: Option<i64>,
    /// Newest first (query mode; the console's pages).
    pub newest_first: bool,
    /// Only decisions older than this id (the console's pages).
    pub before_id: Option<i64>,
}

/// A bouncer's position in the decision stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cursor {
    /// Changes (decisions added or deleted) up to this number were sent.
    pub last_seq: i64,
    /// When (Unix seconds) the last pull was served.
    pub last_pull: i64,
}

/// Which half of a stream answer to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamPart {
    /// The `new` list.
    New,
    /// The `deleted` list.
    Deleted,
}

/// A SQL condition under construction, with its parameters (numbered `?N`).
struct Sql {
    text: String,
    params: Vec<Val>,
    pg: bool,
}

impl Sql {
    fn new(pg: bool) -> Sql {
        Sql { text: String::new(), params: Vec::new(), pg }
    }
    /// `haystack` holds `needle` (both lower-cased already).
    fn has(&self, haystack: &str, needle: &str) -> String {
        if self.pg { format!("strpos({haystack}, {needle}) > 0") } else { format!("instr({haystack}, {needle}) > 0") }
    }
    /// The same-value probe's table: through the value index (SQLite's planner would otherwise
    /// take `decisions_active` and make the probe a scan).
    fn by_value(&self) -> &'static str {
        if self.pg { "decisions o" } else { "decisions o INDEXED BY decisions_value" }
    }
    fn p(&mut self, v: impl Into<Val>) -> String {
        self.params.push(v.into());
        format!("?{}", self.params.len())
    }
    fn and(&mut self, cond: &str) {
        self.text.push_str(" AND ");
        self.text.push_str(cond);
    }
    /// The filter's conditions on the decisions aliased `t`.
    fn filter(&mut self, t: &str, f: &DecisionFilter) {
        if let Some(id) = f.before_id {
            let p = self.p(id);
            self.and(&format!("{t}.id < {p}"));
        }
        if !f.scopes.is_empty() {
            let ps: Vec<String> = f.scopes.iter().map(|s| self.p(s.clone())).collect();
            // Not through `decisions_bounds` (scope, start_ip): a scope matches most rows.
            let plus = if self.pg { "" } else { "+" };
            self.and(&format!("{plus}{t}.scope IN ({})", ps.join(", ")));
        }
        if let Some(v) = &f.value {
            let p = self.p(v.clone());
            self.and(&format!("{t}.value = {p}"));
        }
        if let Some(k) = &f.kind {
            let p = self.p(k.clone());
            self.and(&format!("{t}.type = {p}"));
        }
        if !f.origins.is_empty() {
            let ps: Vec<String> = f.origins.iter().map(|s| self.p(s.to_lowercase())).collect();
            self.and(&format!("lower({t}.origin) IN ({})", ps.join(", ")));
        }
        if !f.scenarios_containing.is_empty() {
            let cs: Vec<String> = f
                .scenarios_containing
                .iter()
                .map(|s| {
                    let p = self.p(s.to_lowercase());
                    self.has(&format!("lower({t}.scenario)"), &p)
                })
                .collect();
            self.and(&format!("({})", cs.join(" OR ")));
        }
        for s in &f.scenarios_not_containing {
            let p = self.p(s.to_lowercase());
            let has = self.has(&format!("lower({t}.scenario)"), &p);
            self.and(&format!("NOT ({has})"));
        }
        if !f.simulated {
            self.and(&format!("{t}.simulated = 0"));
        }
        if let Some(id) = f.id {
            let p = self.p(id);
            self.and(&format!("{t}.id = {p}"));
        }
        if let Some(m) = f.addr {
            let (start, end) = bounds(&m.target);
            let size = i64::try_from(start.len()).unwrap_or(0);
            let (s, e, n) = (self.p(start), self.p(end), self.p(size));
            let cond = match (m.contains, m.target) {
                // The address's own decisions by value (indexed), and the ranges around it.
                // `decisions_bounds` is (scope, start_ip): ranges are few, addresses many.
                (true, Target::Ip(_)) => {
                    let v = self.p(m.target.to_string());
                    format!(
                        "({t}.value = {v} OR ({t}.scope = 'Range' AND {t}.start_ip <= {s} AND {t}.end_ip >= {e} \
                         AND length({t}.start_ip) = {n}))"
                    )
                }
                (true, Target::Net(_)) => format!(
                    "({t}.scope = 'Range' AND {t}.start_ip <= {s} AND {t}.end_ip >= {e} AND length({t}.start_ip) = {n})"
                ),
                (false, _) => format!(
                    "({t}.scope IN ('Ip', 'Range') AND {t}.start_ip >= {s} AND {t}.start_ip <= {e} AND {t}.end_ip <= {e} \
                     AND length({t}.start_ip) = {n})"
                ),
            };
            self.and(&cond);
        }
    }
}

fn active(t: &str, now: &str) -> String {
    format!("{t}.deleted_at IS NULL AND {t}.until > {now}")
}

/// [`active`] with its columns behind unary `+`, so the planner does not scan every active
/// decision through `decisions_active` when an id range or a value narrows the search better.
fn active_unindexed(t: &str, now: &str) -> String {
    format!("+{t}.deleted_at IS NULL AND +{t}.until > {now}")
}

impl Store {
    fn each(&mut self, sql: &Sql, mut f: impl FnMut(&DecisionRow)) -> Result<()> {
        self.conn.each(&sql.text, &sql.params, |r| {
            f(&row(r)?);
            Ok(())
        })
    }

    /// Query mode: the active decisions matching `f`, by id.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn query(&mut self, f: &DecisionFilter, now: i64) -> Result<Vec<DecisionRow>> {
        let mut sql = Sql::new(self.is_pg());
        let n = sql.p(now);
        // Newest first with a limit: walk the ids backwards and stop (through `decisions_active`
        // the planner would sort every active decision first).
        let narrow = f.addr.is_some() || f.value.is_some() || f.id.is_some() || (f.newest_first && f.limit.is_some());
        let act = if narrow { active_unindexed("d", &n) } else { active("d", &n) };
        sql.text = format!("SELECT {} FROM decisions d WHERE {act}", cols("d"));
        sql.filter("d", f);
        sql.text.push_str(if f.newest_first { " ORDER BY d.id DESC" } else { " ORDER BY d.id" });
        if let Some(l) = f.limit {
            let p = sql.p(l);
            sql.text.push_str(&format!(" LIMIT {p}"));
        }
        let mut out = Vec::new();
        self.each(&sql, |r| out.push(r.clone()))?;
        Ok(out)
    }

    /// Stream mode, one half at a time. Without `since` (`startup=true`): every active
    /// decision as new, and every decision ended in the last `keep_deleted` seconds as deleted.
    /// With it: the decisions added and deleted since the cursor's change number, and those
    /// expired since its pull (less two seconds). Returns the cursor for the next pull (`up_to`:
    /// the change number the pull stops at, so both halves of one answer see the same changes;
    /// `None` reads the newest).
    ///
    /// # Errors
    /// SQLite errors.
    #[allow(clippy::too_many_arguments)]
    pub fn stream(
        &mut self,
        f: &DecisionFilter,
        since: Option<Cursor>,
        up_to: Option<i64>,
        now: i64,
        keep_deleted: i64,
        part: StreamPart,
        mut emit: impl FnMut(&DecisionRow),
    ) -> Result<Cursor> {
        let top_seq = match up_to {
            Some(n) => n,
            None => self.last_change()?,
        };
        let cursor = Cursor { last_seq: top_seq, last_pull: now };
        if part == StreamPart::Deleted {
            return self.stream_deleted(f, since, top_seq, now, keep_deleted, &mut emit).map(|()| cursor);
        }
        // New: active, within the change window, and the longest of its (value, type, scope).
        let mut sql = Sql::new(self.is_pg());
        let n = sql.p(now);
        let top = sql.p(top_seq);
        // A delta walks the change range through `decisions_seq`; a full pull reads every row.
        let seq = if since.is_some() { "d.seq" } else { "+d.seq" };
        sql.text =
            format!("SELECT {} FROM decisions d WHERE {} AND {seq} <= {top}", cols("d"), active_unindexed("d", &n));
        if let Some(c) = since {
            let p = sql.p(c.last_seq);
            sql.and(&format!("d.seq > {p}"));
        }
        sql.filter("d", f);
        let mut longer = Sql { text: String::new(), params: std::mem::take(&mut sql.params), pg: sql.pg };
        longer.text = format!(
            "NOT EXISTS (SELECT 1 FROM {} WHERE o.value = d.value AND o.type = d.type AND o.scope = d.scope \
             AND {} AND (o.until > d.until OR (o.until = d.until AND o.id > d.id))",
            sql.by_value(),
            active("o", &n)
        );
        longer.filter("o", &DecisionFilter { addr: None, id: None, limit: None, ..f.clone() });
        sql.params = longer.params;
        sql.and(&format!("{})", longer.text));
        sql.text.push_str(" ORDER BY d.id");
        self.each(&sql, &mut emit)?;
        Ok(cursor)
    }

    /// Deleted: ended in the window (deleted by a change after the cursor, or expired since its
    /// pull), and nothing active holds the value any more.
    fn stream_deleted(
        &mut self,
        f: &DecisionFilter,
        since: Option<Cursor>,
        top_seq: i64,
        now: i64,
        keep_deleted: i64,
        emit: &mut impl FnMut(&DecisionRow),
    ) -> Result<()> {
        let mut sql = Sql::new(self.is_pg());
        let n = sql.p(now);
        let from = sql.p(match since {
            Some(c) => c.last_pull - 2,
            None => now - keep_deleted,
        });
        let expired = format!("(d.deleted_at IS NULL AND d.until > {from} AND d.until <= {n})");
        let deleted = match since {
            // Deleted by a change the cursor has not passed (through `decisions_seq`): commit
            // order, whatever the clocks of the writers said.
            Some(c) => {
                let (lo, hi) = (sql.p(c.last_seq), sql.p(top_seq));
                format!("(d.seq > {lo} AND d.seq <= {hi} AND +d.deleted_at IS NOT NULL)")
            }
            None => format!("(d.deleted_at > {from} AND d.deleted_at <= {n})"),
        };
        // Expired in (from, now] (through `decisions_active`), or deleted as above.
        sql.text = format!("SELECT {} FROM decisions d WHERE ({deleted} OR {expired})", cols("d"));
        sql.filter("d", f);
        let mut held = Sql { text: String::new(), params: std::mem::take(&mut sql.params), pg: sql.pg };
        held.text = format!(
            "NOT EXISTS (SELECT 1 FROM {} WHERE o.value = d.value AND o.type = d.type AND o.scope = d.scope AND {}",
            sql.by_value(),
            active("o", &n)
        );
        held.filter("o", &DecisionFilter { addr: None, id: None, limit: None, ..f.clone() });
        sql.params = held.params;
        sql.and(&format!("{})", held.text));
        sql.text.push_str(" ORDER BY d.id");
        self.each(&sql, emit)
    }

    /// Deletes (ends now) the active decisions matching `f`; returns them.
    ///
    /// # Errors
    /// SQLite errors (nothing is deleted).
    pub fn delete_matching(&mut self, f: &DecisionFilter, now: i64) -> Result<Vec<DecisionRow>> {
        let rows = self.query(&DecisionFilter { simulated: true, ..f.clone() }, now)?;
        if rows.is_empty() {
            return Ok(rows);
        }
        self.conn.tx(|c| {
            let seq = super::next_change(c)?;
            for r in &rows {
                c.exec(
                    "UPDATE decisions SET deleted_at = ?1, seq = ?2 WHERE id = ?3 AND deleted_at IS NULL",
                    &[now.into(), seq.into(), r.id.into()],
                )?;
            }
            Ok(())
        })?;
        if !rows.is_empty() {
            self.announce();
        }
        Ok(rows)
    }
}

fn cols(t: &str) -> String {
    COLS.split(", ").map(|c| format!("{t}.{c}")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NewDecision;

    fn dec(value: &str, secs: u64, origin: &str) -> NewDecision {
        NewDecision {
            origin: origin.into(),
            scenario: "crowdsecurity/ssh-bf".into(),
            scope: if value.contains('/') { "Range".into() } else { "Ip".into() },
            value: value.into(),
            kind: "ban".into(),
            duration_secs: secs,
            ..NewDecision::default()
        }
    }

    /// Both halves of a pull.
    fn pull(
        s: &mut Store,
        f: &DecisionFilter,
        since: Option<Cursor>,
        now: i64,
    ) -> (Vec<DecisionRow>, Vec<DecisionRow>, Cursor) {
        let (mut new, mut del) = (Vec::new(), Vec::new());
        let c = s.stream(f, since, None, now, 3600, StreamPart::New, |r| new.push(r.clone())).unwrap();
        s.stream(f, since, Some(c.last_seq), now, 3600, StreamPart::Deleted, |r| del.push(r.clone())).unwrap();
        (new, del, c)
    }

    fn values(rows: &[DecisionRow]) -> Vec<&str> {
        rows.iter().map(|r| r.value.as_str()).collect()
    }

    fn ip(s: &str, contains: bool) -> DecisionFilter {
        DecisionFilter { addr: Some(AddrMatch { target: s.parse().unwrap(), contains }), ..Default::default() }
    }

    #[test]
    fn an_address_matches_its_own_decisions_and_the_ranges_around_it() {
        let mut s = Store::memory().unwrap();
        s.record(
            None,
            &[
                dec("192.0.2.7", 100, "cscli"),
                dec("192.0.2.0/24", 100, "cscli"),
                dec("198.51.100.0/24", 100, "cscli"),
                dec("2001:db8::/32", 100, "cscli"),
                dec("192.0.2.8", 100, "cscli"),
            ],
            0,
        )
        .unwrap();
        assert_eq!(values(&s.query(&ip("192.0.2.7", true), 1).unwrap()), ["192.0.2.7", "192.0.2.0/24"]);
        assert_eq!(values(&s.query(&ip("2001:db8:1::5", true), 1).unwrap()), ["2001:db8::/32"]);
        assert!(s.query(&ip("203.0.113.1", true), 1).unwrap().is_empty());
        // An IPv4 address never matches an IPv6 range whose bytes happen to compare around it.
        assert!(s.query(&ip("::c000:207", true), 1).unwrap().is_empty());
        assert_eq!(
            values(&s.query(&ip("192.0.2.0/24", false), 1).unwrap()),
            ["192.0.2.7", "192.0.2.0/24", "192.0.2.8"]
        );
        let f = DecisionFilter {
            origins: vec!["CSCLI".into()],
            scenarios_containing: vec!["SSH".into()],
            ..ip("192.0.2.7", true)
        };
        assert_eq!(s.query(&f, 1).unwrap().len(), 2);
        let f = DecisionFilter { scenarios_not_containing: vec!["ssh".into()], ..ip("192.0.2.7", true) };
        assert!(s.query(&f, 1).unwrap().is_empty());
        assert!(s.query(&ip("192.0.2.7", true), 100).unwrap().is_empty(), "expired");
    }

    #[test]
    fn stream_deltas_and_dedup() {
        let mut s = Store::memory().unwrap();
        let f = DecisionFilter { scopes: vec!["Ip".into(), "Range".into()], ..Default::default() };
        s.record(None, &[dec("192.0.2.1", 100, "crowdsec"), dec("192.0.2.1", 50, "cscli")], 0).unwrap();
        let (new, del, c) = pull(&mut s, &f, None, 10);
        assert_eq!(new.len(), 1, "only the longest per value: {new:?}");
        assert_eq!(new[0].until, 100);
        assert!(del.is_empty());
        // A shorter decision for a held value is not sent; a new value is.
        s.record(None, &[dec("192.0.2.1", 10, "cscli"), dec("192.0.2.2", 100, "cscli")], 20).unwrap();
        let (new, del, c) = pull(&mut s, &f, Some(c), 21);
        assert_eq!(values(&new), ["192.0.2.2"]);
        assert!(del.is_empty());
        // Deleting one of two decisions on a value sends nothing; deleting the last sends it.
        s.delete_matching(&DecisionFilter { value: Some("192.0.2.2".into()), ..Default::default() }, 30).unwrap();
        let (new, del, c) = pull(&mut s, &f, Some(c), 31);
        assert!(new.is_empty());
        assert_eq!(values(&del), ["192.0.2.2"]);
        // Expiry counts as deletion, once every decision on the value has ended.
        let (new, del, c) = pull(&mut s, &f, Some(c), 60);
        assert!(new.is_empty());
        // (192.0.2.2 may come again: the window overlaps the last pull by two seconds.)
        assert!(!values(&del).contains(&"192.0.2.1"), "192.0.2.1 is still held by the 100 s decision: {del:?}");
        let (new, del, _) = pull(&mut s, &f, Some(c), 101);
        assert!(new.is_empty());
        assert!(values(&del).iter().all(|v| *v == "192.0.2.1") && !del.is_empty(), "{del:?}");
        // Startup: nothing active, the ended ones as deleted.
        let (new, del, _) = pull(&mut s, &f, None, 102);
        assert!(new.is_empty());
        assert!(!del.is_empty());
    }

    #[test]
    fn a_deletion_reaches_the_next_delta_whatever_its_writer_clock_said() {
        // A writer whose clock is behind (another host on a shared PostgreSQL), or whose
        // transaction commits long after it read the time: its `deleted_at` is before the last
        // pull, and a window on end times would never send it.
        let mut s = Store::memory().unwrap();
        let f = DecisionFilter::default();
        s.record(None, &[dec("192.0.2.1", 1000, "cscli"), dec("192.0.2.2", 1000, "cscli")], 0).unwrap();
        let (new, _, c) = pull(&mut s, &f, None, 100);
        assert_eq!(new.len(), 2);
        s.delete_matching(&DecisionFilter { value: Some("192.0.2.1".into()), ..Default::default() }, 10).unwrap();
        let (new, del, c) = pull(&mut s, &f, Some(c), 200);
        assert!(new.is_empty());
        assert_eq!(values(&del), ["192.0.2.1"]);
        // Sent once: the cursor has passed that change.
        let (_, del, _) = pull(&mut s, &f, Some(c), 300);
        assert!(del.is_empty(), "{del:?}");
    }

    #[test]
    fn change_numbers_are_gapless_and_one_per_transaction() {
        let mut s = Store::memory().unwrap();
        assert_eq!(s.last_change().unwrap(), 0);
        s.record(None, &[dec("192.0.2.1", 100, "cscli"), dec("192.0.2.2", 100, "cscli")], 0).unwrap();
        assert_eq!(s.last_change().unwrap(), 1, "one number for the whole transaction");
        s.record(None, &[], 0).unwrap();
        assert_eq!(s.last_change().unwrap(), 1, "no decision, no change");
        s.delete(Some("192.0.2.1"), None, 5).unwrap();
        s.delete(Some("192.0.2.9"), None, 5).unwrap();
        assert_eq!(s.last_change().unwrap(), 2, "a delete that matched nothing takes no number");
    }

    #[test]
    fn simulated_decisions_are_hidden_unless_asked() {
        let mut s = Store::memory().unwrap();
        s.record(None, &[NewDecision { simulated: true, ..dec("192.0.2.9", 100, "crowdsec") }], 0).unwrap();
        assert!(s.query(&DecisionFilter::default(), 1).unwrap().is_empty());
        assert_eq!(s.query(&DecisionFilter { simulated: true, ..Default::default() }, 1).unwrap().len(), 1);
    }
}
