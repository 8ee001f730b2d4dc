//! A hand-written reader for the hub's `^%{SYSLOGLINE}` (the `syslog-logs` parser every CrowdSec
//! install runs on every syslog line), whose regex costs more than the rest of a line's parsing
//! through the backtracker. It reads the usual shape, `Mmm dd HH:MM:SS host prog[pid]: message`,
//! exactly as the regex's leftmost-first rules would, and answers `None` for anything it is not
//! sure of (ISO stamps, facilities, IPv6 or odd host names, single-digit hours), which the regex
//! then reads. A grok uses it only after agreeing with its own regex on `SAMPLES`; tests check
//! the agreement on generated and hub logs and on mutated lines.

/// The fields of one line, as spans of it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Fields<'a> {
    pub timestamp: &'a str,
    pub logsource: &'a str,
    pub program: &'a str,
    pub pid: &'a str,
    pub message: &'a str,
}

/// Lines covering every branch of the reader, for the agreement check.
pub const SAMPLES: [&str; 24] = [
    "Jan  6 00:00:00 bastion sshd[18330]: Accepted password for u from 198.51.100.7 port 4 ssh2",
    "Feb 16 10:11:12 host sudo:    alice : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/ls",
    "Mar 31 23:59:59 10.0.0.1 CRON[123]: (root) CMD (run-parts /etc/cron.hourly)",
    "Apr  1 01:02:03.123456 web-01.example.org nginx: 192.0.2.1 - - [x] \"GET / HTTP/1.1\"",
    "May  9 12:00:00 host -- MARK --",
    "Jun 10 12:00:00 host a:b: c",
    "Jul 11 12:00:00 host prog:x",
    "Aug 12 12:00:00 host sshd[0123]: pid with a leading zero",
    "Sep  2 12:00:00 host kernel: [12345.678] eth0: link up",
    "Oct  3 12:00:00 host. prog[1]: trailing dot",
    "Nov  4 12:00:00 host foo[12]x: not a pid",
    "Dec  5 12:00:00 host sshd[1]:",
    "Dec  5 12:00:00 host sshd[1]:  two spaces",
    "Jan 32 12:00:00 host x: bad day",
    "Jan 06 24:00:00 host x: bad hour",
    "Jan  6 1:00:00 host x: one-digit hour",
    "Jan  6 12:00:60 host x: leap second",
    "Jan  6 12:00:00,5 host x: comma fraction",
    "2024-01-06T12:00:00Z host x: iso",
    "Jan  6 12:00:00 <4.6> host x: facility",
    "Jan  6 12:00:00 fe80::1 x: ipv6",
    "Jan  6 12:00:00 h\u{e9}te x: non-ascii host",
    "Jan  6 12:00:00 host pr\u{f6}g: non-ascii program",
    "Jan  6 12:00:00 host",
];

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// PROG's characters: printable ASCII but `[` and `]`.
fn prog_char(c: u8) -> bool {
    (0x21..=0x7e).contains(&c) && c != b'[' && c != b']'
}

/// Reads `line`, or `None` when the regex must decide.
#[must_use]
pub fn read(line: &str) -> Option<Fields<'_>> {
    let b = line.as_bytes();
    // MONTH (English abbreviations only), one or more spaces, MONTHDAY, TIME.
    if !MONTHS.iter().any(|m| b.starts_with(m.as_bytes())) || b.get(3) != Some(&b' ') {
        return None;
    }
    let mut i = 3 + b[3..].iter().take_while(|c| **c == b' ').count();
    let day_len = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
    let day = &b[i..i + day_len];
    // MONTHDAY's alternatives, in order: 0[1-9], [12][0-9], 3[01], [1-9] (taken whole).
    let day_ok = matches!(day, [b'0', b'1'..=b'9'] | [b'1' | b'2', b'0'..=b'9'] | [b'3', b'0' | b'1'] | [b'1'..=b'9']);
    if !day_ok || b.get(i + day_len) != Some(&b' ') {
        return None;
    }
    i += day_len + 1;
    // TIME as HH:MM:SS with HH 00-23, MM and SS 00-59, an optional [.,:]digits fraction.
    let t = b.get(i..i + 8)?;
    let two =
        |x: &[u8], max: u8| x[0].is_ascii_digit() && x[1].is_ascii_digit() && (x[0] - b'0') * 10 + (x[1] - b'0') <= max;
    if !(two(&t[0..2], 23) && t[2] == b':' && two(&t[3..5], 59) && t[5] == b':' && two(&t[6..8], 59)) {
        return None;
    }
    i += 8;
    if matches!(b.get(i), Some(b'.' | b',' | b':')) {
        let n = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        i += 1 + n;
    }
    let timestamp = &line[..i];
    if b.get(i) != Some(&b' ') {
        return None;
    }
    i += 1;
    // The host: labels of [0-9A-Za-z-] (1 to 63, starting with a letter or digit) joined by
    // dots, an optional final dot; taken whole (IP and HOSTNAME read it alike).
    let host_start = i;
    let mut label = 0usize;
    while i < b.len() && b[i] != b' ' {
        match b[i] {
            b'.' if label > 0 => label = 0,
            c @ (b'0'..=b'9' | b'A'..=b'Z' | b'a'..=b'z' | b'-') => {
                if label == 0 && c == b'-' {
                    return None;
                }
                label += 1;
                if label > 63 {
                    return None;
                }
            }
            _ => return None,
        }
        i += 1;
    }
    if i == host_start || b.get(i) != Some(&b' ') {
        return None;
    }
    let logsource = &line[host_start..i];
    // ` PROG[pid]:` then a space, in the regex's order: the longest PROG first, with a pid when
    // a `[` follows it; else no program at all and the message starts after the host.
    let run_start = i + 1;
    let run = b[run_start..].iter().take_while(|c| prog_char(**c)).count();
    for k in (1..=run).rev() {
        let after = run_start + k;
        if k == run && b.get(after) == Some(&b'[') {
            let digits = b[after + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
            let close = after + 1 + digits;
            if digits > 0
                && b[after + 1] != b'0'
                && b.get(close) == Some(&b']')
                && b.get(close + 1) == Some(&b':')
                && b.get(close + 2) == Some(&b' ')
            {
                return Some(Fields {
                    timestamp,
                    logsource,
                    program: &line[run_start..after],
                    pid: &line[after + 1..close],
                    message: &line[close + 3..],
                });
            }
        }
        if b.get(after) == Some(&b':') && b.get(after + 1) == Some(&b' ') {
            return Some(Fields {
                timestamp,
                logsource,
                program: &line[run_start..after],
                pid: "",
                message: &line[after + 2..],
            });
        }
    }
    Some(Fields { timestamp, logsource, message: &line[run_start..], ..Fields::default() })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::engine::grok::Patterns;

    /// Every line the reader takes gets the regex's fields (crowd's own pattern library): the
    /// samples and seeded mutations of them. (`crowd-user/tests/grok_hub.rs` does the same with
    /// the hub's library, its test logs and a generated auth.log.)
    #[test]
    fn the_reader_agrees_with_the_regex() {
        let g = Patterns::with_base().compile("^%{SYSLOGLINE}", &HashMap::new()).expect("SYSLOGLINE");
        assert!(g.syslog, "the reader is on for SYSLOGLINE");
        let mut lines: Vec<String> = SAMPLES.iter().map(|s| (*s).to_owned()).collect();
        let more = crate::fuzzing::syslog_mutations(&lines, 20_000);
        lines.extend(more);
        let mut read = 0;
        for l in &lines {
            if let Some(f) = read_line(l) {
                read += 1;
                assert_eq!(Some(g.syslog_fields(&f)), g.regex_captures(l), "{l:?}");
            }
        }
        assert!(read > lines.len() / 4, "read {read} of {}", lines.len());
    }

    fn read_line(l: &str) -> Option<Fields<'_>> {
        read(l)
    }

    #[test]
    fn other_patterns_keep_the_regex() {
        let mut p = Patterns::with_base();
        assert!(!p.compile("^%{SYSLOGBASE} %{GREEDYDATA:message}", &HashMap::new()).unwrap().syslog);
        // A library whose SYSLOGLINE reads differently: the samples disagree, the regex stays.
        p.add("SYSLOGLINE", "%{SYSLOGTIMESTAMP:timestamp} %{WORD:logsource} %{GREEDYDATA:message}");
        assert!(!p.compile("^%{SYSLOGLINE}", &HashMap::new()).unwrap().syslog);
    }
}
