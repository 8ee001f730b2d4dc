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
    store::{DecisionRow, Store, StoreError},
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
pub fn reconcile(store: &Store, maps: &mut BanMaps, now_unix: i64) -> Result<Report, ReconcileError> {
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
