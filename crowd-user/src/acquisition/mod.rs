//! Acquisition: where lines come from, configured by a CrowdSec-format acquisition YAML
//! (`source: file|journalctl|syslog|stdin`, `labels.type`). Files are followed by name and woken
//! by inotify (`files.rs`, `tail.rs`), journald through `journalctl --follow -o json`
//! (`journal.rs`), syslog senders through a UDP and TCP listener speaking RFC 3164 and RFC 5424
//! (`syslog.rs`), and standard input line by line. Every source sends [`Read`]s into one bounded
//! channel: when the pipeline is behind, sources wait; nothing is dropped.
pub mod files;
pub mod journal;
pub mod syslog;
pub mod tail;

use std::{
    collections::BTreeMap,
    io::BufRead,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    sync::{Arc, atomic::AtomicBool, mpsc::SyncSender},
};

use serde::Deserialize;

use crate::engine::event::{Labels, Line};

/// A line read, with the time it was read (Unix seconds).
pub type Read = (Line, f64);

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
    /// Accepted and ignored (CrowdSec's acquisition mode: tail or cat).
    pub mode: Option<String>,
    /// Accepted and ignored (CrowdSec's name, log level and time machine flags).
    pub name: Option<String>,
    /// Accepted and ignored.
    pub log_level: Option<String>,
    /// Accepted and ignored (replay uses the logs' own time: `crowd replay`).
    pub use_time_machine: Option<bool>,
    /// Regular expressions of file names to leave out of `filenames` globs.
    #[serde(default)]
    pub exclude_regexps: Vec<String>,
    /// journalctl matches (`_SYSTEMD_UNIT=ssh.service`, ...).
    pub journalctl_filter: Option<Vec<String>>,
    /// syslog: the address to listen on (default 127.0.0.1).
    pub listen_addr: Option<IpAddr>,
    /// syslog: the port (default 514).
    pub listen_port: Option<u16>,
    /// syslog: the longest message kept (default 2048 bytes; longer ones are cut and counted).
    pub max_message_len: Option<usize>,
    /// syslog: `udp`, `tcp` or both (default both; a crowd extension).
    pub protocol: Option<String>,
}

/// A source to read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A file followed by name.
    File(FileSource),
    /// journald through journalctl.
    Journal(journal::JournalSource),
    /// A syslog listener.
    Syslog(syslog::SyslogSource),
    /// Standard input, line by line, until its end.
    Stdin {
        /// Labels (with `type`).
        labels: Labels,
    },
}

impl Source {
    /// The `type` label (which parsers read the lines).
    #[must_use]
    pub fn kind(&self) -> &str {
        let labels = match self {
            Source::File(f) => &f.labels,
            Source::Journal(j) => &j.labels,
            Source::Syslog(s) => &s.labels,
            Source::Stdin { labels } => labels,
        };
        labels.get("type").map_or("", String::as_str)
    }

    /// What the source reads, for logs.
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Source::File(f) => f.path.display().to_string(),
            Source::Journal(j) => format!("journalctl {}", j.filters.join(" ")),
            Source::Syslog(s) => format!("syslog {:?} {}", s.protocols, s.addr),
            Source::Stdin { .. } => "stdin".into(),
        }
    }
}

/// A file to follow and its labels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSource {
    /// The path.
    pub path: PathBuf,
    /// Labels (with `type`).
    pub labels: Labels,
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
pub fn parse(path: &Path, text: &str) -> Result<Vec<Source>, AcquisError> {
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
        if !spec.labels.contains_key("type") {
            return Err(bad("labels.type is required (it selects the parsers)".into()));
        }
        let labels = Arc::new(spec.labels.clone());
        let source = spec.source.as_deref().unwrap_or("file");
        let misplaced = |field: &str, set: bool| {
            if set { Err(bad(format!("field `{field}` does not apply to `source: {source}`"))) } else { Ok(()) }
        };
        if source != "syslog" {
            misplaced("listen_addr", spec.listen_addr.is_some())?;
            misplaced("listen_port", spec.listen_port.is_some())?;
            misplaced("max_message_len", spec.max_message_len.is_some())?;
            misplaced("protocol", spec.protocol.is_some())?;
        }
        if source != "journalctl" {
            misplaced("journalctl_filter", spec.journalctl_filter.is_some())?;
        }
        if source != "file" {
            misplaced("filenames", !spec.filenames.is_empty() || spec.filename.is_some())?;
        }
        match source {
            "file" => {
                if spec.filenames.is_empty() && spec.filename.is_none() {
                    return Err(bad("`source: file` needs `filenames` or `filename`".into()));
                }
                let exclude = spec
                    .exclude_regexps
                    .iter()
                    .map(|r| regex::Regex::new(r).map_err(|e| bad(format!("exclude_regexps `{r}`: {e}"))))
                    .collect::<Result<Vec<_>, _>>()?;
                let kept = |p: &Path| !exclude.iter().any(|r| r.is_match(&p.to_string_lossy()));
                for f in spec.filenames.iter().chain(spec.filename.iter()) {
                    let matches: Vec<PathBuf> =
                        glob::glob(f).map(|g| g.flatten().filter(|p| kept(p)).collect()).unwrap_or_default();
                    if matches.is_empty() {
                        // Not there yet: followed by name, read when it appears.
                        out.push(Source::File(FileSource { path: PathBuf::from(f), labels: labels.clone() }));
                    }
                    out.extend(
                        matches.into_iter().map(|p| Source::File(FileSource { path: p, labels: labels.clone() })),
                    );
                }
            }
            "journalctl" => {
                let filters = spec.journalctl_filter.unwrap_or_default();
                if let Some(f) = filters.iter().find(|f| f.starts_with('-') && !f.starts_with("--")) {
                    return Err(bad(format!("journalctl_filter `{f}`: give matches (FIELD=value) or long options")));
                }
                out.push(Source::Journal(journal::JournalSource { filters, labels }));
            }
            "syslog" => {
                let protocols = match spec.protocol.as_deref() {
                    None | Some("udp,tcp" | "tcp,udp" | "both") => vec![syslog::Protocol::Udp, syslog::Protocol::Tcp],
                    Some("udp") => vec![syslog::Protocol::Udp],
                    Some("tcp") => vec![syslog::Protocol::Tcp],
                    Some(p) => return Err(bad(format!("protocol `{p}`: expected udp, tcp or both"))),
                };
                out.push(Source::Syslog(syslog::SyslogSource {
                    addr: SocketAddr::new(
                        spec.listen_addr.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                        spec.listen_port.unwrap_or(514),
                    ),
                    protocols,
                    max_len: spec.max_message_len.unwrap_or(2048),
                    labels,
                }));
            }
            "stdin" => out.push(Source::Stdin { labels }),
            other => return Err(bad(format!("source `{other}` is unknown (file, journalctl, syslog or stdin)"))),
        }
    }
    Ok(out)
}

/// The embedded default: the usual log files that exist on this host (access and error logs of
/// the web servers, auth and mail logs, database error logs), and journald for sshd and
/// MariaDB/MySQL when the host has journalctl but not their log files.
#[must_use]
pub fn defaults() -> Vec<Source> {
    let labels = crate::engine::event::type_label;
    let mut out: Vec<Source> = [
        ("/var/log/auth.log", "syslog"),
        ("/var/log/secure", "syslog"),
        ("/var/log/nginx/access.log", "nginx"),
        ("/var/log/nginx/error.log", "nginx"),
        ("/var/log/apache2/access.log", "apache2"),
        ("/var/log/apache2/error.log", "apache2"),
        ("/var/log/httpd/access_log", "apache2"),
        ("/var/log/httpd/error_log", "apache2"),
        ("/var/log/mail.log", "syslog"),
        ("/var/log/maillog", "syslog"),
        ("/var/log/dovecot.log", "dovecot"),
        ("/var/log/mysql/error.log", "mysql"),
        ("/var/log/mysqld.log", "mysql"),
        ("/var/log/mariadb/mariadb.log", "mysql"),
    ]
    .into_iter()
    .filter(|(p, _)| Path::new(p).exists())
    .map(|(p, t)| Source::File(FileSource { path: p.into(), labels: labels(t) }))
    .collect();
    let has = |prefixes: &[&str]| {
        out.iter().any(|s| matches!(s, Source::File(f) if prefixes.iter().any(|p| f.path.starts_with(p))))
    };
    let mut units = Vec::new();
    if !has(&["/var/log/auth.log", "/var/log/secure"]) {
        units.extend(["ssh.service", "sshd.service"]);
    }
    if !has(&["/var/log/mysql", "/var/log/mysqld.log", "/var/log/mariadb"]) {
        units.extend(["mariadb.service", "mysql.service", "mysqld.service"]);
    }
    if !units.is_empty() && journal::available() {
        out.push(Source::Journal(journal::JournalSource {
            filters: units.into_iter().map(|u| format!("_SYSTEMD_UNIT={u}")).collect(),
            labels: labels("syslog"),
        }));
    }
    out
}

/// Starts one thread per kind of source (all files share one), sending lines into `tx` until
/// `stop`. Read positions and journal cursors are kept in `state_dir` when given.
///
/// # Errors
/// A thread cannot be started, a syslog port cannot be bound, inotify cannot be set up.
pub fn start(
    sources: Vec<Source>,
    state_dir: Option<&Path>,
    tx: &SyncSender<Read>,
    stop: &Arc<AtomicBool>,
) -> std::io::Result<()> {
    let mut file_sources = Vec::new();
    for (n, s) in sources.into_iter().enumerate() {
        let (tx, stop) = (tx.clone(), stop.clone());
        match s {
            Source::File(f) => file_sources.push(f),
            Source::Journal(j) => {
                let cursor = state_dir.map(|d| d.join(format!("journal-{n}.cursor")));
                std::thread::Builder::new()
                    .name("journal".into())
                    .spawn(move || journal::follow(&j, cursor.as_deref(), &tx, &stop))?;
            }
            Source::Syslog(s) => syslog::listen(&s, &tx, &stop)?,
            Source::Stdin { labels } => {
                std::thread::Builder::new().name("stdin".into()).spawn(move || read_stdin(&labels, &tx))?;
            }
        }
    }
    if !file_sources.is_empty() {
        let state = state_dir.map(|d| d.join("positions.json"));
        let (tx, stop) = (tx.clone(), stop.clone());
        // inotify is set up before the thread starts, so its errors reach the caller.
        let follower = files::Follower::new(file_sources, state)?;
        std::thread::Builder::new().name("files".into()).spawn(move || follower.run(&tx, &stop))?;
    }
    Ok(())
}

/// Writes `bytes` over `path` atomically and privately (`crate::private::write`): a crash
/// leaves the old state or the new one, never half of one (read positions, journal cursors).
/// Failures are left for the next save.
fn save_atomically(path: &Path, bytes: &[u8]) {
    if let Err(e) = crate::private::write(path, bytes) {
        tracing::debug!(path = %path.display(), error = %e, "saving read positions (next save retries)");
    }
}

fn read_stdin(labels: &Labels, tx: &SyncSender<Read>) {
    let mut stdin = std::io::stdin().lock();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match stdin.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let raw = String::from_utf8_lossy(buf.strip_suffix(b"\n").unwrap_or(&buf)).into_owned();
        let line = Line { raw, src: "stdin".into(), module: "stdin", labels: labels.clone() };
        if tx.send((line, crate::clock::unix_now_f64())).is_err() {
            return;
        }
    }
}
