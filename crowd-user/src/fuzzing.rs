//! Fuzz entry points: what untrusted bytes reach. Log lines (syslog, journald JSON, HTTP, mail,
//! MySQL) go through the whole default pipeline and the source decoders; expressions are compiled
//! and run against an event built from the same bytes. Each must return, never panic. The
//! `fuzz/` crate drives them with libFuzzer (`cargo xtask fuzz TARGET`); the unit tests below
//! drive them with seeded random and mutated inputs on every `cargo test`.
use std::{cell::RefCell, collections::BTreeMap};

use crate::{
    config,
    detect::Detector,
    engine::{
        event::{Event, Line},
        expr::Env,
        profile::Profile,
    },
};

thread_local! {
    static DETECTOR: RefCell<Option<Detector>> = const { RefCell::new(None) };
    static ENV: RefCell<Option<Env>> = const { RefCell::new(None) };
}

/// One log line of each type through crowd's default pipeline and every line decoder.
pub fn log_line(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    DETECTOR.with(|d| {
        let mut d = d.borrow_mut();
        let d = d.get_or_insert_with(|| {
            let (p, e, s) = config::defaults::load().expect("embedded configuration");
            Detector::new(p, e, s, Profile::default(), 2026)
        });
        for kind in ["syslog", "nginx", "apache2", "mysql"] {
            let line = Line {
                raw: text.clone().into_owned(),
                src: "fuzz".into(),
                module: "file",
                labels: BTreeMap::from([("type".to_owned(), kind.to_owned())]).into(),
            };
            let _ = d.feed(line, 1_767_225_600.0);
        }
    });
    let now = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").expect("valid");
    let _ = crate::acquisition::syslog::to_line(&text, "192.0.2.1", &now);
    let _ = crate::acquisition::journal::entry_to_line(&text);
    let _ = crate::engine::parser::node::parse_kv(&text);
    let _ = crate::engine::parser::enrich::parse_date(&text, 2026);
}

/// `count` seeded mutations of `lines` (taken in turn): one byte among the first 48 replaced by a
/// character the syslog grammar cares about. Deterministic, so a failure reproduces; the syslog
/// reader's agreement tests feed them to `Grok::reader_disagreement`'s two paths.
#[must_use]
pub fn syslog_mutations(lines: &[String], count: usize) -> Vec<String> {
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let alphabet = b" :[]<>.-_0123456789aZ\t/";
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let Some(src) = lines.get(i % lines.len().max(1)).map(String::as_bytes) else { break };
        if src.is_empty() {
            continue;
        }
        let mut m = src.to_vec();
        let at = (seed as usize >> 8) % m.len().min(48);
        m[at] = alphabet[(seed as usize) % alphabet.len()];
        if let Ok(s) = String::from_utf8(m) {
            out.push(s);
        }
    }
    out
}

/// The first line of `data` as an expression; the rest as the values of an event it runs on.
pub fn expression(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (src, rest) = text.split_once('\n').unwrap_or((&text, ""));
    ENV.with(|e| {
        let mut e = e.borrow_mut();
        let env = e.get_or_insert_with(|| Env::new(std::sync::Arc::default()));
        let Ok(expr) = env.compile(src) else { return };
        let mut evt = Event::new(Line { raw: rest.to_owned(), ..Line::default() }, 0.0);
        for (i, part) in rest.split('\t').enumerate() {
            evt.parsed.insert(compact_str::format_compact!("f{i}"), part.into());
            evt.meta.insert(["source_ip", "http_path", "log_type"][i % 3].into(), part.into());
        }
        let _ = env.run(&expr, &evt);
        let _ = env.string(&expr, &evt);
        let _ = env.test(&expr, &evt);
    });
}

#[cfg(test)]
mod tests {
    /// A small deterministic generator (xorshift), so failures reproduce.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            usize::try_from(self.next() % n as u64).unwrap_or(0)
        }
    }

    /// Seeds mutated by byte flips, insertions, deletions, splices and truncations.
    fn mutations(seeds: &[&str], rounds: usize, seed: u64) -> Vec<Vec<u8>> {
        let mut r = Rng(seed);
        let mut out: Vec<Vec<u8>> = seeds.iter().map(|s| s.as_bytes().to_vec()).collect();
        for _ in 0..rounds {
            let mut v = seeds[r.below(seeds.len())].as_bytes().to_vec();
            for _ in 0..=r.below(6) {
                let at = if v.is_empty() { 0 } else { r.below(v.len()) };
                match r.below(6) {
                    0 if !v.is_empty() => v[at] = (r.next() & 0xff) as u8,
                    1 => v.insert(at, b"\0\n\t\"'%{}[]()\\<>:=.*?+#$\xff\xc3"[r.below(21)]),
                    2 if !v.is_empty() => {
                        v.remove(at);
                    }
                    3 => {
                        let other = seeds[r.below(seeds.len())].as_bytes();
                        v.splice(at..at, other[r.below(other.len().max(1))..].iter().copied());
                    }
                    4 => v.truncate(at),
                    _ => v.extend(std::iter::repeat_n(b'a' + (r.next() % 26) as u8, r.below(300))),
                }
            }
            out.push(v);
        }
        out
    }

    #[test]
    fn log_lines_never_panic() {
        let seeds = [
            "Jan  6 10:00:00 host sshd[1]: Failed password for invalid user bob from 192.0.2.7 port 22 ssh2",
            "Jan  6 10:00:00 mx1 postfix/smtpd[2]: warning: unknown[203.0.113.10]: SASL LOGIN authentication failed",
            "Jan  6 10:00:00 mx1 dovecot: imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<a>, method=PLAIN, rip=198.51.100.30, lip=192.0.2.1",
            "2001:db8::1 - - [06/Jan/2026:10:00:01 +0000] \"GET /../../etc/passwd HTTP/1.1\" 404 5 \"-\" \"sqlmap\"",
            "2026-01-06T10:00:01.123456Z 15 [Note] [MY-010926] [Server] Access denied for user 'root'@'192.0.2.50' (using password: YES)",
            "<34>1 2026-11-27T09:59:58.003Z edge2 sshd 812 ID47 [x a=\"b\\]\"] msg",
            r#"{"MESSAGE":[104,105],"_PID":"1","__REALTIME_TIMESTAMP":"99999999999999999999"}"#,
            "logger=a msg=\"unterminated",
        ];
        for input in mutations(&seeds, 3000, 0x5eed) {
            super::log_line(&input);
        }
    }

    #[test]
    fn expressions_never_panic() {
        let seeds = [
            "evt.Meta.source_ip == '192.0.2.1' && evt.Parsed.f0 in ['a', 'b']\nx\ty\tz",
            "any(File('x'), {# contains evt.Meta.http_path}) || Atoi(evt.Parsed.f1) > 3\n1\t2",
            "IpInRange(evt.Meta.source_ip, '192.0.2.0/24') ? Upper(evt.Parsed.f0) : Split(evt.Line.Raw, ':')[1]\n192.0.2.9\tb",
            "len(evt.Parsed) + Atof(evt.Meta.log_type) * 2 / 0\nx",
            "JsonExtract(evt.Line.Raw, 'a.b[0]') matches '^(a+)+$'\n{\"a\":{\"b\":[\"aaaa\"]}}",
            "evt.Meta.source_ip not startsWith '10.' and IpToRange(evt.Meta.source_ip, '/99') != ''\n::1",
            "Sprintf('%s-%d', evt.Meta.x, 3) == QueryUnescape('%zz%') ?? PathUnescape('%')\na",
        ];
        for input in mutations(&seeds, 3000, 0xfeed) {
            super::expression(&input);
        }
    }
}
