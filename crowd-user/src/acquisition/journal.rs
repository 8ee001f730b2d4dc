//! journald, read through `journalctl --follow --output=json` (no libsystemd linkage). Each entry
//! becomes a classic syslog line (`Mmm dd hh:mm:ss host ident[pid]: message`), the form the
//! `syslog` parsers expect, as CrowdSec's journalctl source gives them. The cursor of the last
//! entry read is saved, so a restart resumes after it: nothing lost, nothing repeated. journalctl
//! is restarted with a growing pause if it exits. `CROWD_JOURNALCTL` names another binary (tests).
use std::{
    io::{BufRead, BufReader},
    os::unix::process::CommandExt,
    path::Path,
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc::SyncSender,
    },
    time::{Duration, Instant},
};

use serde_json::Value;

use super::Read;
use crate::engine::event::Line;

/// A journald source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalSource {
    /// journalctl matches (`_SYSTEMD_UNIT=ssh.service`) or long options.
    pub filters: Vec<String>,
    /// Labels (with `type`).
    pub labels: crate::engine::event::Labels,
}

fn program() -> String {
    std::env::var("CROWD_JOURNALCTL").unwrap_or_else(|_| "journalctl".into())
}

/// Whether journalctl can be run on this host.
#[must_use]
pub fn available() -> bool {
    Command::new(program())
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// One journal entry as a syslog line, and its cursor. `None` for entries without a message.
#[must_use]
pub fn entry_to_line(json: &str) -> Option<(String, Option<String>)> {
    let v: Value = serde_json::from_str(json).ok()?;
    let field = |k: &str| -> Option<String> {
        match v.get(k)? {
            Value::String(s) => Some(s.clone()),
            // Fields with binary content come as arrays of bytes.
            Value::Array(bytes) => {
                let b: Vec<u8> = bytes.iter().filter_map(|x| x.as_u64().and_then(|n| u8::try_from(n).ok())).collect();
                Some(String::from_utf8_lossy(&b).into_owned())
            }
            _ => None,
        }
    };
    let message = field("MESSAGE")?;
    let ident = field("SYSLOG_IDENTIFIER").or_else(|| field("_COMM")).unwrap_or_else(|| "unknown".into());
    let pid = field("SYSLOG_PID").or_else(|| field("_PID"));
    let host = field("_HOSTNAME").unwrap_or_else(|| "localhost".into());
    let micros: i64 = field("__REALTIME_TIMESTAMP").and_then(|t| t.parse().ok()).unwrap_or(0);
    let when = chrono::DateTime::from_timestamp_micros(micros).unwrap_or_default().with_timezone(&chrono::Local);
    let stamp = when.format("%b %e %H:%M:%S");
    // One event per entry: a multi-line message is kept on one line.
    let message = message.trim_end_matches('\n').replace('\n', " ");
    let line = match pid {
        Some(p) => format!("{stamp} {host} {ident}[{p}]: {message}"),
        None => format!("{stamp} {host} {ident}: {message}"),
    };
    Some((line, field("__CURSOR")))
}

/// Runs journalctl until `stop`, sending its entries to `tx`. The cursor is read from and saved
/// to `cursor_file` when given.
pub fn follow(source: &JournalSource, cursor_file: Option<&Path>, tx: &SyncSender<Read>, stop: &Arc<AtomicBool>) {
    let mut cursor = cursor_file.and_then(|f| std::fs::read_to_string(f).ok()).map(|c| c.trim().to_owned());
    let mut pause = Duration::from_secs(1);
    while !stop.load(Ordering::Relaxed) {
        let mut cmd = Command::new(program());
        cmd.args(["--follow", "--output=json", "--no-pager"]);
        match &cursor {
            Some(c) if !c.is_empty() => cmd.arg(format!("--after-cursor={c}")),
            _ => cmd.arg("--lines=0"),
        };
        cmd.args(&source.filters).stdout(Stdio::piped()).stderr(Stdio::piped());
        // SAFETY: prctl is async-signal-safe; journalctl dies with us instead of lingering.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(program = %program(), error = %e, "cannot run journalctl; retrying");
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_secs(60));
                continue;
            }
        };
        let started = Instant::now();
        let mut last_save = Instant::now();
        let mut out = BufReader::new(child.stdout.take().expect("piped"));
        let mut buf = String::new();
        loop {
            buf.clear();
            match out.read_line(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let Some((raw, c)) = entry_to_line(&buf) else { continue };
            let line = Line { raw, src: "journalctl".into(), module: "journalctl", labels: source.labels.clone() };
            if tx.send((line, crate::clock::unix_now_f64())).is_err() {
                let _ = child.kill();
                return;
            }
            if c.is_some() {
                cursor = c;
            }
            if let (Some(f), Some(c)) = (cursor_file, &cursor)
                && last_save.elapsed() > Duration::from_secs(1)
            {
                save(f, c);
                last_save = Instant::now();
            }
            if stop.load(Ordering::Relaxed) {
                break;
            }
        }
        let _ = child.kill();
        let status = child.wait();
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        if let (Some(f), Some(c)) = (cursor_file, &cursor) {
            save(f, c);
        }
        if stop.load(Ordering::Relaxed) {
            return;
        }
        tracing::warn!(status = ?status, stderr = %err.trim(), "journalctl exited; restarting");
        if started.elapsed() > Duration::from_secs(60) {
            pause = Duration::from_secs(1);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_secs(60));
    }
}

fn save(path: &Path, cursor: &str) {
    super::save_atomically(path, cursor.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::entry_to_line;

    #[test]
    fn an_entry_becomes_a_syslog_line() {
        let (line, cursor) = entry_to_line(
            r#"{"__CURSOR":"s=1;i=2","__REALTIME_TIMESTAMP":"1700000000000000","_HOSTNAME":"edge1","SYSLOG_IDENTIFIER":"sshd","_PID":"812","MESSAGE":"Failed password for root from 192.0.2.7 port 22 ssh2"}"#,
        )
        .unwrap();
        assert!(line.ends_with(" edge1 sshd[812]: Failed password for root from 192.0.2.7 port 22 ssh2"), "{line}");
        assert_eq!(cursor.as_deref(), Some("s=1;i=2"));
        // Binary messages arrive as byte arrays.
        let (line, _) = entry_to_line(r#"{"MESSAGE":[104,105,10],"_COMM":"x"}"#).unwrap();
        assert!(line.ends_with(" localhost x: hi"), "{line}");
        assert!(entry_to_line(r#"{"_COMM":"x"}"#).is_none());
        assert!(entry_to_line("not json").is_none());
    }
}
