//! Acquisition sources other than files: the syslog listener (UDP, TCP with both framings,
//! RFC 3164 and 5424, cut messages) and journald through a stand-in journalctl that honours
//! `--after-cursor` (a restart resumes after the last entry read: nothing lost or repeated).
use std::{
    collections::BTreeMap,
    io::Write,
    net::{TcpStream, UdpSocket},
    path::Path,
    sync::{Arc, atomic::AtomicBool, mpsc},
    time::Duration,
};

use crowd::acquisition::{self, Read, Source};

fn free_port() -> u16 {
    // A port free for both UDP and TCP on loopback.
    loop {
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = u.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn acquis(dir: &Path, yaml: &str) -> Vec<Source> {
    let p = dir.join("acquis.yaml");
    std::fs::write(&p, yaml).unwrap();
    acquisition::parse(&p, yaml).unwrap()
}

fn recv(rx: &mpsc::Receiver<Read>, n: usize) -> Vec<String> {
    (0..n).map(|_| rx.recv_timeout(Duration::from_secs(10)).expect("a line").0.raw).collect()
}

#[test]
fn syslog_listener_udp_and_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, rx) = mpsc::sync_channel(64);
    let stop = Arc::new(AtomicBool::new(false));
    // A free port can be taken again before the listener binds it (parallel tests open
    // ephemeral UDP sockets): try a few.
    let mut port = 0;
    for attempt in 0.. {
        port = free_port();
        let sources = acquis(
            dir.path(),
            &format!(
                "source: syslog\nlisten_addr: 127.0.0.1\nlisten_port: {port}\nmax_message_len: 200\nlabels:\n  type: syslog\n"
            ),
        );
        match acquisition::start(sources, None, &tx, &stop) {
            Ok(()) => break,
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && attempt < 10 => continue,
            Err(e) => panic!("syslog listener: {e}"),
        }
    }

    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    u.send_to(b"<38>Nov 27 09:59:58 edge1 sshd[812]: Invalid user bob from 192.0.2.9 port 4242", ("127.0.0.1", port))
        .unwrap();
    let got = recv(&rx, 1);
    assert_eq!(got[0], "Nov 27 09:59:58 edge1 sshd[812]: Invalid user bob from 192.0.2.9 port 4242");

    let mut t = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let framed = "<34>1 2026-11-27T09:59:58Z edge2 sshd 9 - - Failed password for root from 192.0.2.7 port 22 ssh2";
    write!(t, "{} {framed}", framed.len()).unwrap();
    t.write_all(b"<38>Nov 27 10:00:01 edge3 sshd[1]: line one\n<38>Nov 27 10:00:02 edge3 sshd[1]: line two\r\n")
        .unwrap();
    let long = format!("<38>Nov 27 10:00:03 edge3 app: {}", "x".repeat(1000));
    write!(t, "{} {long}", long.len()).unwrap();
    t.write_all(b"<38>Nov 27 10:00:04 edge3 app: after the long one\n").unwrap();
    t.flush().unwrap();
    let got = recv(&rx, 5);
    assert_eq!(got[0], "Nov 27 09:59:58 edge2 sshd[9]: Failed password for root from 192.0.2.7 port 22 ssh2");
    assert_eq!(got[1], "Nov 27 10:00:01 edge3 sshd[1]: line one");
    assert_eq!(got[2], "Nov 27 10:00:02 edge3 sshd[1]: line two");
    assert!(got[3].starts_with("Nov 27 10:00:03 edge3 app: xxx") && got[3].len() < 220, "cut: {}", got[3].len());
    // The stream stays in step after a cut frame.
    assert_eq!(got[4], "Nov 27 10:00:04 edge3 app: after the long one");
    assert!(acquisition::syslog::CUT.load(std::sync::atomic::Ordering::Relaxed) >= 1);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
}

#[test]
fn a_busy_port_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let held = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let sources =
        acquis(dir.path(), &format!("source: syslog\nlisten_port: {port}\nprotocol: udp\nlabels:\n  type: syslog\n"));
    let (tx, _rx) = mpsc::sync_channel(1);
    let err = acquisition::start(sources, None, &tx, &Arc::new(AtomicBool::new(false))).unwrap_err();
    assert!(err.to_string().contains(&format!("syslog udp 127.0.0.1:{port}")), "{err}");
}

#[test]
fn acquisition_yaml_errors_name_the_field() {
    let p = Path::new("acquis.yaml");
    let e = acquisition::parse(p, "source: syslog\nfilenames: [/x]\nlabels: {type: syslog}\n").unwrap_err();
    assert!(e.to_string().contains("filenames"), "{e}");
    let e = acquisition::parse(p, "source: file\nlabels: {type: syslog}\nlisten_port: 5\n").unwrap_err();
    assert!(e.to_string().contains("listen_port"), "{e}");
    let e = acquisition::parse(p, "source: kafka\nlabels: {type: syslog}\n").unwrap_err();
    assert!(e.to_string().contains("kafka"), "{e}");
    let e = acquisition::parse(p, "source: syslog\nlisten_port: nope\nlabels: {type: syslog}\n").unwrap_err();
    assert!(e.to_string().starts_with("acquis.yaml:2:"), "{e}");
    let e = acquisition::parse(p, "filenames: [/x]\n").unwrap_err();
    assert!(e.to_string().contains("labels.type"), "{e}");
}

/// A stand-in journalctl: prints the entries of a JSON-lines file after `--after-cursor`, or
/// none of the old ones with `--lines=0`, then "follows" by exiting (crowd restarts it).
const FAKE: &str = r#"#!/bin/sh
[ "$1" = "--version" ] && exit 0
after=""; skip_all=0
for a in "$@"; do
  case "$a" in
    --after-cursor=*) after="${a#--after-cursor=}";;
    --lines=0) skip_all=1;;
  esac
  echo "$a" >> "$JOURNAL_DIR/args"
done
if [ $skip_all = 1 ]; then cp "$JOURNAL_DIR/entries" "$JOURNAL_DIR/seen"; sleep 0.5; exit 0; fi
found=0
while IFS= read -r l; do
  if [ $found = 1 ]; then echo "$l"; fi
  case "$l" in *"\"__CURSOR\":\"$after\""*) found=1;; esac
done < "$JOURNAL_DIR/entries"
sleep 3
"#;

fn entry(n: u32) -> String {
    format!(
        r#"{{"__CURSOR":"c{n}","__REALTIME_TIMESTAMP":"1700000000000000","_HOSTNAME":"h","SYSLOG_IDENTIFIER":"sshd","_PID":"7","MESSAGE":"message {n}"}}"#
    )
}

#[test]
fn journal_resumes_after_its_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("journalctl");
    std::fs::write(&bin, FAKE).unwrap();
    std::fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let entries = dir.path().join("entries");
    let write = |ns: std::ops::RangeInclusive<u32>| {
        std::fs::write(&entries, ns.map(|n| entry(n) + "\n").collect::<String>()).unwrap();
    };
    // SAFETY: set before any thread of this test binary reads the environment for journalctl.
    unsafe {
        std::env::set_var("CROWD_JOURNALCTL", &bin);
        std::env::set_var("JOURNAL_DIR", dir.path());
    }
    let src = acquisition::journal::JournalSource {
        filters: vec!["_SYSTEMD_UNIT=ssh.service".into()],
        labels: std::sync::Arc::new(BTreeMap::from([("type".into(), "syslog".into())])),
    };
    let cursor = dir.path().join("journal.cursor");
    // First start, no cursor: old entries are not read (`--lines=0`)...
    write(1..=2);
    let (tx, rx) = mpsc::sync_channel(64);
    let stop = Arc::new(AtomicBool::new(false));
    {
        let (src, cursor, tx, stop) = (src.clone(), cursor.clone(), tx.clone(), stop.clone());
        std::thread::spawn(move || acquisition::journal::follow(&src, Some(&cursor), &tx, &stop));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(rx.try_recv().is_err(), "old entries must not be replayed on a first start");
    // A later start with a saved cursor reads what came after it.
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(1500));

    std::fs::write(&cursor, "c2").unwrap();
    write(1..=5);
    let stop = Arc::new(AtomicBool::new(false));
    {
        let (src, cursor, stop) = (src.clone(), cursor.clone(), stop.clone());
        std::thread::spawn(move || acquisition::journal::follow(&src, Some(&cursor), &tx, &stop));
    }
    let got = recv(&rx, 3);
    assert!(got[0].ends_with(" h sshd[7]: message 3"), "{got:?}");
    assert!(got[2].ends_with(" h sshd[7]: message 5"), "{got:?}");
    // The cursor is saved when journalctl ends.
    std::thread::sleep(Duration::from_millis(3500));
    assert_eq!(std::fs::read_to_string(&cursor).unwrap(), "c5");
    let args = std::fs::read_to_string(dir.path().join("args")).unwrap();
    assert!(args.contains("_SYSTEMD_UNIT=ssh.service") && args.contains("--output=json"), "{args}");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Debian's crowdsec 1.4.6 ships this `acquis.yaml` (a relative path, a comment between keys, a
/// journald source, `filename` and `filenames`): `crowd run --config /etc/crowdsec` reads it.
#[test]
fn debians_shipped_acquisition_file_reads_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let text = "filenames:\n  - /var/log/nginx/*.log\n  - ./tests/nginx/nginx.log\n#this is not a syslog log, indicate which kind of logs it is\nlabels:\n  type: nginx\n---\nfilenames:\n - /var/log/auth.log\n - /var/log/syslog\nlabels:\n  type: syslog\n---\nsource: journalctl\njournalctl_filter:\n - \"_SYSTEMD_UNIT=ssh.service\"\nlabels:\n  type: syslog\n---\nfilename: /var/log/apache2/*.log\nlabels:\n  type: apache2\n";
    let sources = acquis(dir.path(), text);
    let kinds: Vec<&str> = sources.iter().map(Source::kind).collect();
    assert_eq!(kinds, ["nginx", "nginx", "syslog", "syslog", "syslog", "apache2"]);
    assert!(matches!(sources[4], Source::Journal(_)), "{}", sources[4].describe());
}
