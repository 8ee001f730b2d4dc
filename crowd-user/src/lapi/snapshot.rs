//! Shared full pulls. A fleet that restarts (or reconnects after an outage) sends many
//! `startup=true` pulls at once; each used to read every row from the store and serialize it
//! on its own. Here the first pull with a given filter starts one *snapshot*: the store is read
//! once, the JSON is gzip-compressed as it is written and kept as a list of shared chunks, and
//! every pull with the same filter that arrives while it is being built (or up to
//! [`SHARE_SECS`] after, if the store has not changed and none of its decisions has expired
//! since) streams those chunks at its own socket's pace. A client that accepts
//! gzip (Go's and ureq's HTTP clients do by default) gets the chunks as they are; another gets
//! them decompressed on the fly, a chunk at a time. Memory is one compressed copy of the list
//! (a million decisions: tens of MiB), whatever the number of pullers, and it is dropped when
//! the last of them is done and the sharing window has passed.
//!
//! Each puller's cursor becomes the snapshot's (its change number and time), and only once it
//! has been sent everything, so the deltas that follow carry whatever changed since the read.
//! The durations in a shared list were computed when it was read: a joiner's may be a few
//! seconds long (the build time plus at most [`SHARE_SECS`]); what changed meanwhile comes in its
//! first delta, as it would for any bouncer.
use std::{
    io::Write,
    sync::{
        Arc, Mutex,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};

use axum::body::{Body, Bytes};
use flate2::{Compression, write::GzDecoder, write::GzEncoder};
use tokio::sync::watch;

use super::StorePool;
use crate::store::{Cursor, DecisionFilter};

/// How long a finished snapshot still serves new pulls.
pub const SHARE_SECS: u64 = 5;

/// Where a snapshot is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    Building,
    Done(Cursor),
    Failed,
}

/// One read of the store, compressed, shared by the pulls that asked for it.
pub struct Snapshot {
    chunks: Mutex<Vec<Bytes>>,
    progress: watch::Sender<(usize, End)>,
    /// The store's change number when it was asked for.
    version: u64,
    /// The earliest expiry among the decisions it lists as new (Unix seconds).
    expires: AtomicI64,
}

impl Snapshot {
    fn push(&self, chunk: Vec<u8>) {
        if chunk.is_empty() {
            return;
        }
        let n = {
            let mut c = self.chunks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            c.push(Bytes::from(chunk));
            c.len()
        };
        self.progress.send_modify(|p| p.0 = n);
    }

    fn end(&self, end: End) {
        self.progress.send_modify(|p| p.1 = end);
    }

    fn chunk(&self, i: usize) -> Option<Bytes> {
        self.chunks.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(i).cloned()
    }

    /// Whether a pull arriving at `now`, with the store at change `version`, may take it: while
    /// it is built (as if the pull had come a moment earlier), or once built while nothing in
    /// the store changed and none of its decisions expired.
    fn serves(&self, version: u64, now: i64) -> bool {
        match self.progress.borrow().1 {
            End::Building => true,
            End::Done(_) => self.version == version && now < self.expires.load(Ordering::Relaxed),
            End::Failed => false,
        }
    }

    /// Compressed bytes held.
    #[must_use]
    pub fn bytes(&self) -> usize {
        self.chunks.lock().map(|c| c.iter().map(Bytes::len).sum()).unwrap_or(0)
    }
}

/// The JSON sink of a snapshot build: compresses and publishes as it goes.
pub struct Compressor {
    enc: GzEncoder<Vec<u8>>,
    snap: Arc<Snapshot>,
}

impl Compressor {
    /// Compresses `json` and publishes whatever compressed output is ready.
    pub fn write(&mut self, json: &[u8]) {
        // Writing into a Vec cannot fail.
        let _ = self.enc.write_all(json);
        let out = std::mem::take(self.enc.get_mut());
        self.snap.push(out);
    }

    /// Notes that the list gives a decision ending at `until` as new.
    pub fn lists_until(&self, until: i64) {
        self.snap.expires.fetch_min(until, Ordering::Relaxed);
    }

    fn finish(self) {
        if let Ok(rest) = self.enc.finish() {
            self.snap.push(rest);
        }
    }
}

/// The snapshots being built or still shared, by filter.
#[derive(Default)]
pub struct Snapshots {
    live: Mutex<Vec<(DecisionFilter, Arc<Snapshot>)>>,
}

impl Snapshots {
    /// The snapshot for `f` asked at `now` with the store at change `version`: a shared one,
    /// or a new one built on one of the pool's long workers by `build`, which writes the whole
    /// JSON answer through the [`Compressor`] and returns the cursor it was read at.
    pub fn get(
        self: &Arc<Self>,
        db: &Arc<StorePool>,
        f: &DecisionFilter,
        version: u64,
        now: i64,
        build: impl FnOnce(&mut crate::store::Store, &mut Compressor) -> Result<Cursor, crate::store::StoreError>
        + Send
        + 'static,
    ) -> Arc<Snapshot> {
        let mut live = self.live.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, s)) = live.iter().find(|(g, s)| g == f && s.serves(version, now)) {
            return s.clone();
        }
        let snap = Arc::new(Snapshot {
            chunks: Mutex::new(Vec::new()),
            progress: watch::channel((0, End::Building)).0,
            version,
            expires: AtomicI64::new(i64::MAX),
        });
        live.push((f.clone(), snap.clone()));
        drop(live);
        let (me, db, s2, snap) = (self.clone(), db.clone(), snap.clone(), snap);
        let shared = snap.clone();
        tokio::spawn(async move {
            let res = db
                .run_long(move |store| {
                    let mut c = Compressor { enc: GzEncoder::new(Vec::new(), Compression::fast()), snap: s2 };
                    let cur = build(store, &mut c);
                    // A full read passes every page through this connection's cache.
                    store.release_memory();
                    let cur = cur?;
                    let snap = c.snap.clone();
                    c.finish();
                    snap.end(End::Done(cur));
                    Ok(snap.bytes())
                })
                .await;
            match res {
                Ok(bytes) => {
                    tracing::debug!(bytes, "full-pull snapshot built");
                    tokio::time::sleep(Duration::from_secs(SHARE_SECS)).await;
                }
                Err(e) => tracing::error!(error = %e, "reading decisions for a full pull"),
            }
            let mut live = me.live.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            live.retain(|(_, s)| !Arc::ptr_eq(s, &shared));
            drop(live);
            if shared.progress.borrow().1 == End::Building {
                shared.end(End::Failed);
            }
        });
        snap
    }

    /// Snapshots held (built or building).
    #[must_use]
    pub fn len(&self) -> usize {
        self.live.lock().map(|l| l.len()).unwrap_or(0)
    }

    /// Whether none is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One puller's reading of a snapshot.
struct Reader {
    snap: Arc<Snapshot>,
    progress: watch::Receiver<(usize, End)>,
    next: usize,
    /// Set for a client that does not take gzip.
    dec: Option<GzDecoder<Vec<u8>>>,
    finished: bool,
}

impl Reader {
    /// The next bytes for the client, `Ok(None)` at the end (with the snapshot's cursor).
    async fn next(&mut self) -> Result<Result<Bytes, Cursor>, std::io::Error> {
        loop {
            let (n, end) = *self.progress.borrow_and_update();
            if self.next < n {
                let Some(c) = self.snap.chunk(self.next) else { continue };
                self.next += 1;
                let Some(dec) = &mut self.dec else { return Ok(Ok(c)) };
                dec.write_all(&c)?;
                let out = std::mem::take(dec.get_mut());
                if out.is_empty() {
                    continue;
                }
                return Ok(Ok(Bytes::from(out)));
            }
            match end {
                End::Done(cur) => {
                    if !self.finished {
                        self.finished = true;
                        if let Some(dec) = &mut self.dec {
                            dec.try_finish()?;
                            let out = std::mem::take(dec.get_mut());
                            if !out.is_empty() {
                                return Ok(Ok(Bytes::from(out)));
                            }
                        }
                    }
                    return Ok(Err(cur));
                }
                End::Failed => return Err(std::io::Error::other("the full pull could not be read")),
                End::Building => {
                    if self.progress.changed().await.is_err() {
                        return Err(std::io::Error::other("the full pull was abandoned"));
                    }
                }
            }
        }
    }
}

/// A response body streaming `snap` (compressed if `gzip`); when all of it has gone out,
/// `done` gets the cursor (and is not called if the client leaves before).
pub fn body<F, Fut>(snap: Arc<Snapshot>, gzip: bool, done: F) -> Body
where
    F: FnOnce(Cursor) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let progress = snap.progress.subscribe();
    let dec = (!gzip).then(|| GzDecoder::new(Vec::new()));
    let reader = Reader { snap, progress, next: 0, dec, finished: false };
    let stream = futures_util::stream::unfold(Some((reader, Some(done))), |state| async move {
        let (mut r, mut done) = state?;
        match r.next().await {
            Ok(Ok(b)) => Some((Ok(b), Some((r, done)))),
            Ok(Err(cur)) => {
                if let Some(d) = done.take() {
                    d(cur).await;
                }
                None
            }
            // Said once; the body then ends, cut short.
            Err(e) => Some((Err(e), None)),
        }
    });
    Body::from_stream(stream)
}

/// Whether an `Accept-Encoding` value takes gzip.
#[must_use]
pub fn accepts_gzip(v: &str) -> bool {
    v.split(',').any(|item| {
        let mut parts = item.split(';');
        let name = parts.next().unwrap_or("").trim();
        let q0 = parts.any(|p| {
            let p = p.trim();
            p.strip_prefix("q=").is_some_and(|q| q.trim().parse::<f32>().is_ok_and(|q| q == 0.0))
        });
        (name.eq_ignore_ascii_case("gzip") || name == "*") && !q0
    })
}

#[cfg(test)]
mod tests {
    use super::accepts_gzip;

    #[test]
    fn gzip_is_taken_unless_refused() {
        assert!(accepts_gzip("gzip"));
        assert!(accepts_gzip("deflate, GZIP;q=0.5"));
        assert!(accepts_gzip("*"));
        assert!(!accepts_gzip("gzip;q=0"));
        assert!(!accepts_gzip("identity"));
        assert!(!accepts_gzip("br, deflate"));
    }
}
