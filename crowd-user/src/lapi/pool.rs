//! The Local API's store workers: a fixed set of threads, each with its own store connection,
//! taking jobs from two queues in arrival order: [`short_workers`] for requests (queries,
//! pushes, delta pulls, key checks) and [`LONG_WORKERS`] for full pulls, so a full pull never
//! delays a short request. A burst of a fleet's requests waits in the queues holding no thread,
//! no connection and no buffer: the process keeps the same threads and connections however
//! many clients come (tokio's blocking pool, used before, grew to a hundred threads under 500
//! pollers, each with its allocator heap, and kept them).
use std::{
    panic::AssertUnwindSafe,
    sync::{Arc, Mutex, mpsc},
    time::Duration,
};

use super::ApiError;
use crate::store::{Location, Store, StoreError};

/// Requests served by the store at once (queries, pushes, delta pulls): reads are CPU-bound
/// on SQLite, and more workers than this only add caches and context switches.
#[must_use]
pub fn short_workers() -> usize {
    std::thread::available_parallelism().map_or(4, |n| n.get() * 2).clamp(4, 16)
}
/// Full pulls read at once.
pub const LONG_WORKERS: usize = 2;
/// A worker that had nothing to do for this long gives back its connection's page cache.
const IDLE: Duration = Duration::from_secs(1);

type Job = Box<dyn FnOnce(&mut Option<Store>, &Location) + Send>;

/// A pool of store workers on one database.
pub struct StorePool {
    short: mpsc::Sender<Job>,
    long: mpsc::Sender<Job>,
}

fn workers(loc: &Location, n: usize, name: &str, first: Option<Store>) -> Result<mpsc::Sender<Job>, StoreError> {
    let (tx, rx) = mpsc::channel::<Job>();
    let rx = Arc::new(Mutex::new(rx));
    let mut first = first;
    for i in 0..n {
        let (rx, loc) = (rx.clone(), loc.clone());
        let mut conn = if i == 0 { first.take() } else { None };
        std::thread::Builder::new()
            .name(format!("{name}-{i}"))
            .spawn(move || {
                let mut used = false;
                loop {
                    // The lock is held only while waiting for the next job.
                    let job = match rx.lock() {
                        Ok(r) => r.recv_timeout(IDLE),
                        Err(_) => return,
                    };
                    let job = match job {
                        Ok(job) => job,
                        Err(mpsc::RecvTimeoutError::Timeout) => {
                            // Idle after a burst: the cache goes back (the workers take turns
                            // waiting, so each gets here within a few seconds of quiet).
                            if std::mem::take(&mut used) {
                                if let Some(s) = &mut conn {
                                    s.release_memory();
                                }
                                collect_heap();
                            }
                            continue;
                        }
                        Err(mpsc::RecvTimeoutError::Disconnected) => return,
                    };
                    used = true;
                    // A panicking job loses its connection, not the worker.
                    if std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut conn, &loc))).is_err() {
                        conn = None;
                    }
                }
            })
            .map_err(|e| StoreError::Sql(rusqlite::Error::ToSqlConversionFailure(Box::new(e))))?;
    }
    Ok(tx)
}

/// Gives back what this thread's allocator heap keeps: blocks that other threads freed (a
/// full pull's chunks are made here and dropped by the connections that sent them) and pages
/// left empty. Without it an idle worker holds them until its next allocation.
fn collect_heap() {
    // SAFETY: `mi_collect` has no preconditions; it works on the calling thread's heap (and
    // does nothing to memory that another allocator owns).
    unsafe { libmimalloc_sys::mi_collect(true) }
}

impl StorePool {
    /// A pool on the store at `loc` (opened and migrated once here); its threads end when the
    /// pool is dropped.
    ///
    /// # Errors
    /// Store errors.
    pub fn open(loc: &Location) -> Result<Arc<StorePool>, StoreError> {
        let first = Store::open_at(loc)?;
        Ok(Arc::new(StorePool {
            short: workers(loc, short_workers(), "store", Some(first))?,
            long: workers(loc, LONG_WORKERS, "store-full", None)?,
        }))
    }

    /// Runs `f` on a connection, on one of the [`short_workers`], in arrival order.
    ///
    /// # Errors
    /// [`ApiError::Internal`] for store errors or a panicked job.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, ApiError> {
        Self::send(&self.short, f).await
    }

    /// [`StorePool::run`] for a full pull, on one of the [`LONG_WORKERS`].
    ///
    /// # Errors
    /// As [`StorePool::run`].
    pub async fn run_long<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, ApiError> {
        Self::send(&self.long, f).await
    }

    async fn send<T: Send + 'static>(
        queue: &mpsc::Sender<Job>,
        f: impl FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |conn, loc| {
            let out = match conn {
                Some(s) => f(s),
                None => Store::open_at(loc).and_then(|s| f(conn.insert(s))),
            };
            // After an error the connection may be in any state: the next job opens another.
            if out.is_err() {
                *conn = None;
            }
            let _ = tx.send(out);
        });
        queue.send(job).map_err(|_| ApiError::Internal("the store workers are gone".into()))?;
        rx.await
            .map_err(|_| ApiError::Internal("a store job panicked".into()))?
            .map_err(|e| ApiError::Internal(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_run_on_the_fixed_workers_and_a_panic_loses_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let pool = StorePool::open(&Location::Sqlite(dir.path().join("crowd.db"))).unwrap();
        let names: Vec<String> = futures_util::future::join_all((0..64).map(|_| {
            pool.run(|s| {
                s.replace_secret("x", "y")?;
                Ok(std::thread::current().name().unwrap_or("").to_owned())
            })
        }))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
        let distinct: std::collections::HashSet<&String> = names.iter().collect();
        assert!(distinct.len() <= short_workers() && names.iter().all(|n| n.starts_with("store-")), "{distinct:?}");
        let r = pool.run::<()>(|_| panic!("a bad job")).await;
        assert!(matches!(r, Err(ApiError::Internal(_))));
        assert_eq!(pool.run_long(|s| s.get_secret("x")).await.unwrap().as_deref(), Some("y"));
        assert_eq!(pool.run(|s| s.get_secret("x")).await.unwrap().as_deref(), Some("y"));
    }
}
