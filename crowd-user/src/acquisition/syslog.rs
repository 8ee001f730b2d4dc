//! A syslog listener (UDP datagrams; TCP with octet-counting or newline framing, RFC 6587) on
//! loopback by default. Messages in RFC 3164 or RFC 5424 become classic syslog lines
//! (`Mmm dd hh:mm:ss host app[pid]: message`), the form the `syslog` parsers read, as CrowdSec's
//! syslog source gives them. Messages longer than `max_len` are cut and counted; garbage is
//! passed on as the message text, never fatal.
use std::{
    io::{BufRead, BufReader, Read as _},
    net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket},
    os::fd::AsRawFd,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
        mpsc::SyncSender,
    },
    time::Duration,
};

use super::Read;
use crate::engine::event::Line;

/// Transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// Datagrams.
    Udp,
    /// Streams.
    Tcp,
}

/// A syslog listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyslogSource {
    /// Address and port.
    pub addr: SocketAddr,
    /// UDP, TCP or both.
    pub protocols: Vec<Protocol>,
    /// The longest message kept, in bytes.
    pub max_len: usize,
    /// Labels (with `type`).
    pub labels: crate::engine::event::Labels,
}

/// Messages received and messages cut at `max_len`, over every listener.
pub static RECEIVED: AtomicU64 = AtomicU64::new(0);
/// Messages cut at `max_len`.
pub static CUT: AtomicU64 = AtomicU64::new(0);
const MAX_CONNECTIONS: usize = 512;

/// Binds the listeners and starts their threads.
///
/// # Errors
/// A port cannot be bound (in use, or below 1024 without the capability).
pub fn listen(source: &SyslogSource, tx: &SyncSender<Read>, stop: &Arc<AtomicBool>) -> std::io::Result<()> {
    for p in &source.protocols {
        let (s, tx, stop) = (source.clone(), tx.clone(), stop.clone());
        match p {
            Protocol::Udp => {
                let sock = UdpSocket::bind(s.addr)
                    .map_err(|e| std::io::Error::new(e.kind(), format!("syslog udp {}: {e}", s.addr)))?;
                sock.set_read_timeout(Some(Duration::from_millis(500)))?;
                std::thread::Builder::new().name("syslog-udp".into()).spawn(move || udp(&sock, &s, &tx, &stop))?;
            }
            Protocol::Tcp => {
                let l = TcpListener::bind(s.addr)
                    .map_err(|e| std::io::Error::new(e.kind(), format!("syslog tcp {}: {e}", s.addr)))?;
                std::thread::Builder::new().name("syslog-tcp".into()).spawn(move || tcp(&l, &s, &tx, &stop))?;
            }
        }
    }
    Ok(())
}

fn send(s: &SyslogSource, tx: &SyncSender<Read>, peer: IpAddr, msg: &[u8]) -> bool {
    RECEIVED.fetch_add(1, Ordering::Relaxed);
    let msg = if msg.len() > s.max_len {
        CUT.fetch_add(1, Ordering::Relaxed);
        &msg[..s.max_len]
    } else {
        msg
    };
    let now = chrono::Local::now();
    let raw = to_line(&String::from_utf8_lossy(msg), &peer.to_string(), &now.fixed_offset());
    let line = Line { raw, src: peer.to_string().into(), module: "syslog", labels: s.labels.clone() };
    tx.send((line, crate::clock::unix_now_f64())).is_ok()
}

fn udp(sock: &UdpSocket, s: &SyslogSource, tx: &SyncSender<Read>, stop: &AtomicBool) {
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::Relaxed) {
        let Ok((n, peer)) = sock.recv_from(&mut buf) else { continue };
        let msg = buf[..n].strip_suffix(b"\n").unwrap_or(&buf[..n]);
        if !send(s, tx, peer.ip(), msg) {
            return;
        }
    }
}

fn tcp(l: &TcpListener, s: &SyslogSource, tx: &SyncSender<Read>, stop: &Arc<AtomicBool>) {
    let open = Arc::new(AtomicUsize::new(0));
    while !stop.load(Ordering::Relaxed) {
        let mut pfd = libc::pollfd { fd: l.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&raw mut pfd, 1, 500) } <= 0 {
            continue;
        }
        let Ok((conn, peer)) = l.accept() else { continue };
        if open.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
            tracing::warn!(peer = %peer, "syslog: too many connections; refused");
            continue;
        }
        open.fetch_add(1, Ordering::Relaxed);
        let (s, tx, stop, open) = (s.clone(), tx.clone(), stop.clone(), open.clone());
        let started = std::thread::Builder::new().name("syslog-conn".into()).spawn(move || {
            connection(conn, peer.ip(), &s, &tx, &stop);
            open.fetch_sub(1, Ordering::Relaxed);
        });
        if started.is_err() {
            tracing::warn!(peer = %peer, "syslog: cannot start a connection thread");
        }
    }
}

/// Reads one TCP stream: octet-counted frames (`LEN SP MSG`) or newline-terminated messages.
fn connection(conn: TcpStream, peer: IpAddr, s: &SyslogSource, tx: &SyncSender<Read>, stop: &AtomicBool) {
    let _ = conn.set_read_timeout(Some(Duration::from_millis(500)));
    let mut r = BufReader::new(conn);
    let mut frame = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let first = match r.fill_buf() {
            Ok([]) => return,
            Ok(b) => b[0],
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => continue,
            Err(_) => return,
        };
        frame.clear();
        if first.is_ascii_digit() {
            // Octet counting: the length, a space, then exactly that many bytes.
            let mut len = Vec::new();
            if r.read_until(b' ', &mut len).is_err() {
                return;
            }
            let Some(n) = std::str::from_utf8(&len).ok().and_then(|l| l.trim().parse::<usize>().ok()) else {
                return;
            };
            // Bytes past the limit are read and thrown away, to stay in step with the stream.
            let keep = n.min(s.max_len + 1);
            frame.resize(keep, 0);
            if r.read_exact(&mut frame).is_err() {
                return;
            }
            if std::io::copy(&mut (&mut r).take((n - keep) as u64), &mut std::io::sink()).is_err() {
                return;
            }
        } else {
            match r.read_until(b'\n', &mut frame) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            while frame.last().is_some_and(|c| *c == b'\n' || *c == b'\r') {
                frame.pop();
            }
        }
        if !frame.is_empty() && !send(s, tx, peer, &frame) {
            return;
        }
    }
}

/// One syslog message (RFC 5424, RFC 3164, or neither) as a classic syslog line; `peer` stands in
/// for a missing host name and `now` for a missing timestamp.
#[must_use]
pub fn to_line(msg: &str, peer: &str, now: &chrono::DateTime<chrono::FixedOffset>) -> String {
    const STAMP: &str = "%b %e %H:%M:%S";
    let body = match msg.strip_prefix('<').and_then(|m| m.split_once('>')) {
        Some((pri, rest)) if !pri.is_empty() && pri.len() <= 3 && pri.bytes().all(|b| b.is_ascii_digit()) => rest,
        _ => msg,
    };
    // RFC 5424: VERSION TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA [MSG]
    if let Some(rest) = body.strip_prefix("1 ") {
        let mut f = rest.splitn(6, ' ');
        let (ts, host, app, pid, _msgid, tail) = (f.next(), f.next(), f.next(), f.next(), f.next(), f.next());
        if let (Some(ts), Some(host), Some(app), Some(pid), Some(tail)) = (ts, host, app, pid, tail) {
            let when = chrono::DateTime::parse_from_rfc3339(ts).unwrap_or(*now);
            let host = if host == "-" { peer } else { host };
            let text = skip_structured_data(tail);
            let text = text.strip_prefix('\u{feff}').unwrap_or(text);
            let tag = match (app, pid) {
                ("-", _) => String::new(),
                (a, "-") => format!("{a}: "),
                (a, p) => format!("{a}[{p}]: "),
            };
            return format!("{} {host} {tag}{text}", when.format(STAMP));
        }
    }
    // RFC 3164: Mmm dd hh:mm:ss HOST TAG: MSG (the host is sometimes left out).
    if body.len() > 16
        && let Ok(t) = chrono::NaiveTime::parse_from_str(body.get(7..15).unwrap_or(""), "%H:%M:%S")
        && body.as_bytes()[15] == b' '
    {
        let _ = t;
        let (stamp, rest) = body.split_at(15);
        let rest = &rest[1..];
        let first = rest.split(' ').next().unwrap_or("");
        return if first.ends_with(':') || first.contains('[') {
            format!("{stamp} {peer} {rest}")
        } else {
            format!("{stamp} {rest}")
        };
    }
    format!("{} {peer} {body}", now.format(STAMP))
}

fn skip_structured_data(s: &str) -> &str {
    if let Some(rest) = s.strip_prefix("- ") {
        return rest;
    }
    if s == "-" {
        return "";
    }
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() && b[i] == b'[' {
        // An element ends at the first `]` not escaped by a backslash.
        i += 1;
        while i < b.len() && b[i] != b']' {
            i += if b[i] == b'\\' { 2 } else { 1 };
        }
        i += 1;
    }
    s.get(i..).map_or("", |r| r.strip_prefix(' ').unwrap_or(r))
}

#[cfg(test)]
mod tests {
    use super::to_line;

    fn now() -> chrono::DateTime<chrono::FixedOffset> {
        chrono::DateTime::parse_from_rfc3339("2026-11-27T10:00:00+00:00").unwrap()
    }

    #[test]
    fn rfc3164_with_and_without_host() {
        let l = to_line("<38>Nov 27 09:59:58 edge1 sshd[812]: Invalid user bob from 192.0.2.9", "198.51.100.1", &now());
        assert_eq!(l, "Nov 27 09:59:58 edge1 sshd[812]: Invalid user bob from 192.0.2.9");
        let l = to_line("<38>Nov  7 09:59:58 sshd[812]: hello", "198.51.100.1", &now());
        assert_eq!(l, "Nov  7 09:59:58 198.51.100.1 sshd[812]: hello");
    }

    #[test]
    fn rfc5424_with_structured_data_and_bom() {
        let l = to_line(
            "<34>1 2026-11-27T09:59:58.003Z edge2 sshd 812 ID47 [exampleSDID@32473 iut=\"3\" a=\"x\\]y\"] \u{feff}Failed password for root from 192.0.2.7 port 22 ssh2",
            "198.51.100.1",
            &now(),
        );
        assert_eq!(l, "Nov 27 09:59:58 edge2 sshd[812]: Failed password for root from 192.0.2.7 port 22 ssh2");
        let l = to_line("<34>1 - - nginx - - - GET /", "198.51.100.1", &now());
        assert_eq!(l, "Nov 27 10:00:00 198.51.100.1 nginx: GET /");
    }

    #[test]
    fn garbage_is_kept_as_the_message() {
        assert_eq!(to_line("\u{1}\u{2}junk", "p", &now()), "Nov 27 10:00:00 p \u{1}\u{2}junk");
        assert_eq!(to_line("<999999>x", "p", &now()), "Nov 27 10:00:00 p <999999>x");
    }
}
