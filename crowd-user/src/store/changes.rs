//! The store's change feed: a thread that notices when another connection (another process,
//! the CLI, another host's API on a shared PostgreSQL) commits to the store, through SQLite's
//! `data_version` or PostgreSQL's `LISTEN`/`NOTIFY`, and bumps a `watch` channel. Its users are
//! the daemon (store changes into the XDP maps, whether the Local API runs or not), the Local
//! API (long-polled deltas, a rotated token key) and, later, the community client.
use std::time::Duration;

use tokio::sync::watch;

use super::{Location, Result, Store, StoreError};

/// How often the store is looked at (a look is one pragma or one socket read).
pub const POLL: Duration = Duration::from_millis(10);

/// Starts watching the store at `loc`; the receiver's value moves at every change seen. The
/// thread ends when every receiver is gone.
///
/// # Errors
/// The store does not open.
pub fn watch(loc: &Location, poll: Duration) -> Result<watch::Receiver<u64>> {
    let mut watcher = Store::open_at(loc)?;
    watcher.listen()?;
    let (tx, rx) = watch::channel(0u64);
    std::thread::Builder::new()
        .name("store-changes".into())
        .spawn(move || {
            let mut last = watcher.data_version().unwrap_or(0);
            let mut n = 0u64;
            while !tx.is_closed() {
                std::thread::sleep(poll);
                match watcher.data_version() {
                    Ok(v) if v != last => {
                        last = v;
                        n += 1;
                        let _ = tx.send(n);
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "watching the store for changes"),
                }
            }
        })
        .map_err(|e| StoreError::Sql(rusqlite::Error::ToSqlConversionFailure(Box::new(e))))?;
    Ok(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_connections_commit_moves_the_feed() {
        let dir = tempfile::tempdir().unwrap();
        let loc = Location::Sqlite(dir.path().join("crowd.db"));
        drop(Store::open_at(&loc).unwrap());
        let mut rx = watch(&loc, Duration::from_millis(5)).unwrap();
        let before = *rx.borrow_and_update();
        let mut other = Store::open_at(&loc).unwrap();
        other.replace_secret("x", "y").unwrap();
        let t = std::time::Instant::now();
        while !rx.has_changed().unwrap() {
            assert!(t.elapsed() < Duration::from_secs(5), "no change seen");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(*rx.borrow() > before);
    }
}
