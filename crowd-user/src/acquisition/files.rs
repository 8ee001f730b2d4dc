//! Following files: every file source on one thread, woken by inotify (a 2 s safety net when a
//! directory cannot be watched), with read positions persisted as JSON so a restart neither
//! loses nor repeats lines.
use std::{
    collections::HashMap,
    os::fd::AsRawFd,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc::SyncSender,
    },
    time::{Duration, Instant},
};

use inotify::{Inotify, WatchMask};

use super::{
    FileSource, Read,
    tail::{Position, Tail},
};
use crate::engine::event::Line;

/// Every followed file, the inotify instance that wakes them and where positions are saved.
pub struct Follower {
    tails: Vec<(Tail, Arc<FileSource>)>,
    inotify: Inotify,
    state: Option<PathBuf>,
}

impl Follower {
    /// Opens `sources` (resuming at positions saved in `state`, JSON) and watches their folders.
    ///
    /// # Errors
    /// inotify cannot be set up.
    pub fn new(sources: Vec<FileSource>, state: Option<PathBuf>) -> std::io::Result<Follower> {
        let saved: HashMap<String, Position> = state
            .as_ref()
            .and_then(|s| std::fs::read(s).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let tails: Vec<(Tail, Arc<FileSource>)> = sources
            .into_iter()
            .map(|s| {
                let saved = saved.get(&s.path.display().to_string()).copied();
                (Tail::new(&s.path, saved, false, 64 * 1024), Arc::new(s))
            })
            .collect();
        let inotify = Inotify::init()?;
        let mut dirs: Vec<PathBuf> =
            tails.iter().filter_map(|(t, _)| t.path().parent().map(Path::to_path_buf)).collect();
        dirs.sort();
        dirs.dedup();
        for d in &dirs {
            if let Err(e) = inotify
                .watches()
                .add(d, WatchMask::MODIFY | WatchMask::CREATE | WatchMask::MOVED_TO | WatchMask::CLOSE_WRITE)
            {
                tracing::warn!(dir = %d.display(), error = %e, "cannot watch; this directory is checked every 2s");
            }
        }
        Ok(Follower { tails, inotify, state })
    }

    /// Follows the files until `stop`, sending lines to `tx` (blocking when the pipeline is
    /// behind: nothing is dropped).
    pub fn run(self, tx: &SyncSender<Read>, stop: &Arc<AtomicBool>) {
        let Follower { mut tails, mut inotify, state } = self;
        let mut buf = vec![0u8; 64 * 1024];
        let mut last_save = Instant::now();
        let mut lines = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            for (t, src) in &mut tails {
                if let Err(e) = t.poll(&mut lines) {
                    tracing::warn!(file = %t.path().display(), error = %e, "reading");
                }
                let now = crate::clock::unix_now_f64();
                // One name for the batch, shared by its lines.
                let name: Option<Arc<str>> = (!lines.is_empty()).then(|| src.path.display().to_string().into());
                for raw in lines.drain(..) {
                    let line =
                        Line { raw, src: name.clone().unwrap_or_default(), module: "file", labels: src.labels.clone() };
                    if tx.send((line, now)).is_err() {
                        return;
                    }
                }
            }
            if let Some(s) = &state
                && last_save.elapsed() > Duration::from_secs(1)
            {
                let map: HashMap<String, Position> =
                    tails.iter().map(|(t, _)| (t.path().display().to_string(), t.position())).collect();
                super::save_atomically(s, &serde_json::to_vec(&map).unwrap_or_default());
                last_save = Instant::now();
            }
            // Sleep until inotify says something changed (or 2 s, as a safety net).
            let mut pfd = libc::pollfd { fd: inotify.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            // SAFETY: one valid pollfd.
            unsafe { libc::poll(&raw mut pfd, 1, 2000) };
            let _ = inotify.read_events(&mut buf);
        }
    }
}
