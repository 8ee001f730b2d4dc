//! Keeping the XDP maps a cache of the store: every active decision of the store is in the maps
//! (with its remaining time), and every map entry that a store decision put there but that is no
//! longer active (deleted, expired) is removed. Entries added straight into the maps with
//! `crowd map add` (ids with the top bit set) are left alone.
use std::collections::HashMap;

use crowd_common::{Ban, Origin};

use crate::{
    addr::Target,
    clock::BootClock,
    enforce::{EnforceError, maps::BanMaps},
    store::{Cursor, DecisionFilter, DecisionRow, Store, StoreError, StreamPart},
};

/// What a reconciliation changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    /// Bans written into the maps.
    pub added: usize,
    /// Bans removed from the maps.
    pub removed: usize,
    /// Active decisions whose value is not an address or range (skipped).
    pub skipped: usize,
}

/// Reconciliation errors.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The maps.
    #[error(transparent)]
    Maps(#[from] EnforceError),
}

/// The map origin byte for a store origin name.
#[must_use]
pub fn origin(name: &str) -> Origin {
    match name {
        "crowd" | "crowdsec" => Origin::Local,
        "manual" | "cscli" => Origin::Manual,
        "community" | "CAPI" | "capi" => Origin::Community,
        "lists" => Origin::List,
        "remote" => Origin::Remote,
        _ => Origin::Unknown,
    }
}

/// The ban a decision row becomes, expiring `until` (Unix seconds) on the boot-time clock.
#[must_use]
pub fn ban_for(row: &DecisionRow, now_unix: i64, clock: &BootClock) -> Ban {
    let left = u64::try_from(row.until.saturating_sub(now_unix)).unwrap_or(0);
    Ban::new(
        clock.expiry_after(Some(std::time::Duration::from_secs(left.max(1)))),
        u64::try_from(row.id).unwrap_or(0),
        origin(&row.origin),
    )
}

fn store_owned(id: u64) -> bool {
    id != 0 && id & (1 << 63) == 0
}

/// Makes the maps match the store's active decisions.
///
/// # Errors
/// Store or map errors (a full map stops the reconciliation and is reported).
pub fn reconcile(store: &mut Store, maps: &mut BanMaps, now_unix: i64) -> Result<Report, ReconcileError> {
    let clock = BootClock::now();
    let mut report = Report::default();
    let mut desired: HashMap<Target, DecisionRow> = HashMap::new();
    for row in store.active(now_unix)? {
        if row.simulated || row.kind != "ban" {
            continue;
        }
        let Ok(t) = row.value.parse::<Target>() else {
            report.skipped += 1;
            continue;
        };
        // Several decisions on one target: the longest wins.
        match desired.get(&t) {
            Some(old) if old.until >= row.until => {}
            _ => {
                desired.insert(t, row);
            }
        }
    }
    let current = maps.bans()?;
    let mut present: HashMap<Target, u64> = HashMap::new();
    for e in &current {
        let id = e.ban.decision_id;
        match desired.get(&e.target) {
            Some(row) if u64::try_from(row.id).ok() == Some(id) => {
                present.insert(e.target, id);
            }
            Some(_) => {}
            None if store_owned(id) && maps.remove_ban(e.target)? => report.removed += 1,
            None => {}
        }
    }
    for (t, row) in &desired {
        if present.contains_key(t) {
            continue;
        }
        maps.insert_ban(*t, ban_for(row, now_unix, &clock))?;
        report.added += 1;
    }
    Ok(report)
}

/// The map entry for exactly `target`, if any.
fn entry_of(maps: &BanMaps, target: Target) -> Option<crate::enforce::maps::BanEntry> {
    match target {
        Target::Ip(ip) => maps.lookup(ip).exact,
        Target::Net(n) => maps.lookup(n.network()).range.filter(|e| e.target == target),
    }
}

/// Puts one decision into the maps: a ban expiring in `secs_left`, or, when `secs_left` is not
/// positive, the removal of the ban a decision put there (`crowd map add` entries stay).
/// Returns whether the maps changed.
///
/// # Errors
/// Map errors (a full map is reported).
pub fn apply_one(
    maps: &mut BanMaps,
    target: Target,
    secs_left: i64,
    id: i64,
    origin_name: &str,
    clock: &BootClock,
) -> Result<bool, EnforceError> {
    if secs_left <= 0 {
        return match entry_of(maps, target) {
            Some(e) if store_owned(e.ban.decision_id) => maps.remove_ban(target),
            _ => Ok(false),
        };
    }
    let ban = Ban::new(
        clock.expiry_after(Some(std::time::Duration::from_secs(u64::try_from(secs_left).unwrap_or(1)))),
        u64::try_from(id).unwrap_or(0),
        origin(origin_name),
    );
    maps.insert_ban(target, ban)?;
    Ok(true)
}

/// The decisions the XDP maps enforce, as a store filter: bans on addresses and ranges, not
/// simulated (`crate::engine::profile::enforced_in_kernel`, the same rule in SQL).
#[must_use]
pub fn enforced_filter() -> DecisionFilter {
    DecisionFilter { scopes: vec!["Ip".into(), "Range".into()], kind: Some("ban".into()), ..DecisionFilter::default() }
}

/// Applies the store's changes since `cursor` to the maps (the first call, with no cursor,
/// reconciles everything); moves the cursor.
///
/// # Errors
/// Store or map errors.
pub fn apply_changes(
    store: &mut Store,
    maps: &mut BanMaps,
    cursor: &mut Option<Cursor>,
    now_unix: i64,
) -> Result<Report, ReconcileError> {
    let Some(since) = *cursor else {
        let r = reconcile(store, maps, now_unix)?;
        *cursor = Some(Cursor { last_seq: store.last_change()?, last_pull: now_unix });
        return Ok(r);
    };
    let clock = BootClock::now();
    let f = enforced_filter();
    let (mut new, mut gone) = (Vec::new(), Vec::new());
    let next = store.stream(&f, Some(since), None, now_unix, 0, StreamPart::New, |r| new.push(r.clone()))?;
    store.stream(&f, Some(since), Some(next.last_seq), now_unix, 0, StreamPart::Deleted, |r| gone.push(r.clone()))?;
    let mut report = Report::default();
    for (rows, removing) in [(&gone, true), (&new, false)] {
        for r in rows {
            let Ok(t) = r.value.parse::<Target>() else {
                report.skipped += 1;
                continue;
            };
            let left = if removing { 0 } else { r.until - now_unix };
            if apply_one(maps, t, left, r.id, &r.origin, &clock)? {
                if removing { report.removed += 1 } else { report.added += 1 }
            }
        }
    }
    *cursor = Some(next);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_and_ownership() {
        assert_eq!(origin("crowd"), Origin::Local);
        assert_eq!(origin("cscli"), Origin::Manual);
        assert_eq!(origin("CAPI"), Origin::Community);
        assert!(store_owned(42));
        assert!(!store_owned(0));
        assert!(!store_owned((1 << 63) | 5));
    }
}
