//! Acquisition: where lines come from. Today: files, followed by name (`tail.rs`) and woken by
//! inotify, configured by a CrowdSec-format acquisition YAML (`filenames`/`filename`,
//! `labels.type`, `source: file`). Positions are persisted so a restart neither loses nor
//! repeats lines. journald and syslog sources are not built yet and are refused by name.
pub mod tail;

use std::{
    collections::{BTreeMap, HashMap},
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
use serde::Deserialize;

use self::tail::{Position, Tail};
use crate::engine::event::Line;

/// One source of an acquisition file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// `file` (default), `journalctl`, `syslog`.
    pub source: Option<String>,
    /// Files or globs.
    #[serde(default)]
    pub filenames: Vec<String>,
    /// One file or glob.
    pub filename: Option<String>,
    /// Labels; `type` selects the parsers.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Accepted and ignored (CrowdSec's acquisition mode).
    pub mode: Option<String>,
    /// journalctl filters (refused for now).
    pub journalctl_filter: Option<Vec<String>>,
}

/// A file to follow and its labels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSource {
    /// The path.
    pub path: PathBuf,
    /// Labels (with `type`).
    pub labels: BTreeMap<String, String>,
}

/// Why an acquisition file was refused.
#[derive(Debug, thiserror::Error)]
pub enum AcquisError {
    /// Bad YAML.
    #[error("{path}:{line}: {message}")]
    Invalid {
        /// File.
        path: PathBuf,
        /// Line.
        line: usize,
        /// Message.
        message: String,
    },
}

/// Reads an acquisition YAML (several documents).
///
/// # Errors
/// [`AcquisError`] naming file and line: unknown fields, a missing `labels.type`, a source crowd
/// does not support yet.
pub fn parse(path: &Path, text: &str) -> Result<Vec<FileSource>, AcquisError> {
    let mut out = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let spec = match Option::<SourceSpec>::deserialize(doc) {
            Ok(Some(s)) => s,
            Ok(None) => continue,
            Err(e) => {
                return Err(AcquisError::Invalid {
                    path: path.into(),
                    line: e.location().map_or(0, |l| l.line()),
                    message: e.to_string(),
                });
            }
        };
        let bad = |m: String| AcquisError::Invalid { path: path.into(), line: 0, message: m };
        match spec.source.as_deref().unwrap_or("file") {
            "file" => {}
            other => return Err(bad(format!("source `{other}` is not supported yet (only `file`)"))),
        }
        if !spec.labels.contains_key("type") {
            return Err(bad("labels.type is required (it selects the parsers)".into()));
        }
        for f in spec.filenames.iter().chain(spec.filename.iter()) {
            let matches: Vec<PathBuf> = glob::glob(f).map(|g| g.flatten().collect()).unwrap_or_default();
            if matches.is_empty() {
                // Not there yet: followed by name, read when it appears.
                out.push(FileSource { path: PathBuf::from(f), labels: spec.labels.clone() });
            }
            out.extend(matches.into_iter().map(|p| FileSource { path: p, labels: spec.labels.clone() }));
        }
    }
    Ok(out)
}

/// The embedded default: the usual locations that exist on this host.
#[must_use]
pub fn defaults() -> Vec<FileSource> {
    let mk =
        |p: &str, t: &str| FileSource { path: p.into(), labels: BTreeMap::from([("type".to_owned(), t.to_owned())]) };
    [
        ("/var/log/auth.log", "syslog"),
        ("/var/log/secure", "syslog"),
        ("/var/log/nginx/access.log", "nginx"),
        ("/var/log/apache2/access.log", "apache2"),
    ]
    .into_iter()
    .filter(|(p, _)| Path::new(p).exists())
    .map(|(p, t)| mk(p, t))
    .collect()
}

/// A line read, with the time it was read (Unix seconds).
pub type Read = (Line, f64);

/// Follows `sources` until `stop`, sending lines to `tx` (blocking when the pipeline is behind:
/// nothing is dropped). Positions are loaded from and saved to `state` (JSON).
///
/// # Errors
/// inotify cannot be set up.
pub fn follow(
    sources: Vec<FileSource>,
    state: Option<PathBuf>,
    tx: SyncSender<Read>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<()> {
    let saved: HashMap<String, Position> = state
        .as_ref()
        .and_then(|s| std::fs::read(s).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let mut tails: Vec<(Tail, Arc<FileSource>)> = sources
        .into_iter()
        .map(|s| {
            let saved = saved.get(&s.path.display().to_string()).copied();
            (Tail::new(&s.path, saved, false, 64 * 1024), Arc::new(s))
        })
        .collect();
    let mut inotify = Inotify::init()?;
    let mut dirs: Vec<PathBuf> = tails.iter().filter_map(|(t, _)| t.path().parent().map(Path::to_path_buf)).collect();
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
    let mut buf = vec![0u8; 64 * 1024];
    let mut last_save = Instant::now();
    let mut lines = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        for (t, src) in &mut tails {
            if let Err(e) = t.poll(&mut lines) {
                tracing::warn!(file = %t.path().display(), error = %e, "reading");
            }
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0);
            for raw in lines.drain(..) {
                let line = Line {
                    raw,
                    src: src.path.display().to_string(),
                    module: "file".into(),
                    labels: src.labels.clone(),
                };
                if tx.send((line, now)).is_err() {
                    return Ok(());
                }
            }
        }
        if let Some(s) = &state
            && last_save.elapsed() > Duration::from_secs(1)
        {
            let map: HashMap<String, Position> =
                tails.iter().map(|(t, _)| (t.path().display().to_string(), t.position())).collect();
            let tmp = s.with_extension("tmp");
            if std::fs::write(&tmp, serde_json::to_vec(&map).unwrap_or_default()).is_ok() {
                let _ = std::fs::rename(&tmp, s);
            }
            last_save = Instant::now();
        }
        // Sleep until inotify says something changed (or 2 s, as a safety net).
        let mut pfd = libc::pollfd { fd: inotify.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&raw mut pfd, 1, 2000) };
        let _ = inotify.read_events(&mut buf);
    }
    Ok(())
}
