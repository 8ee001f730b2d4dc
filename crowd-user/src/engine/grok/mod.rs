//! Grok: named patterns (`%{IP:source}`) expanded into one regex with RE2 semantics.
//!
//! The pattern library is a map name → pattern, read from CrowdSec-format pattern files by the
//! config loader (`NAME pattern` per line, `#` comments). A grok expression is expanded
//! recursively; each `%{NAME:field}` becomes a capture group whose value is stored under
//! `field`. Groups get generated names, so a field may be named several times (one of its
//! groups gives it, by CrowdSec's rule: see [`Patterns::compile`]) and raw `(?<name>...)` groups
//! in patterns are captured as fields too.
mod syslog;

use std::collections::HashMap;

use regex::Regex;

use crate::engine::event::Str;

/// crowd's base patterns (numbers, words, addresses, dates, syslog and HTTP prefixes).
pub const BASE: &str = include_str!("../../../patterns/base");

/// A library of named patterns.
#[derive(Clone, Debug, Default)]
pub struct Patterns {
    defs: HashMap<String, String>,
}

/// A compiled grok expression.
#[derive(Clone, Debug)]
pub struct Grok {
    re: Regex,
    /// (capture group index, field name), in pattern order.
    fields: Vec<(usize, String)>,
    /// A literal every match contains: text without it is refused before the regex runs (most
    /// lines fail most of a parser's patterns; a substring search is far cheaper).
    required: Option<memchr::memmem::Finder<'static>>,
    /// For a pattern anchored at the start (`^...`): the texts every match starts with (the
    /// alternatives of its leading literal part). A line that starts with none is refused at
    /// once: a parser of many anchored patterns costs one comparison per pattern a line is not.
    starts: Option<Vec<Vec<u8>>>,
    /// For a pattern that ends in a top-level greedy `(?P<g>.*)` (`%{GREEDYDATA:message}`):
    /// the pattern without it and that group's index. The prefix gives the same captures (a
    /// greedy `.*` at the end accepts whatever follows the first prefix match in priority order)
    /// over a much shorter span, and the tail is the rest of the line.
    tail: Option<(Regex, usize)>,
    /// `^%{SYSLOGLINE}` read by hand (see `syslog.rs`), once it agreed with the regex.
    syslog: bool,
    /// The fields the hand reader gives, each once, and which part of the line each takes.
    syslog_parts: Vec<(String, SyslogPart)>,
}

/// A part of a syslog line read by hand.
#[derive(Clone, Copy, Debug)]
enum SyslogPart {
    Timestamp,
    Logsource,
    Program,
    Pid,
    Message,
    /// A field of the pattern the usual shape leaves empty (`facility`, `timestamp8601`).
    Empty,
}

/// Why a grok expression did not compile.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GrokError {
    /// `%{NAME}` names no pattern.
    #[error("unknown grok pattern `{0}`")]
    UnknownPattern(String),
    /// Patterns refer to each other in a loop (or nest absurdly deep).
    #[error("grok pattern `{0}` expands recursively")]
    Recursive(String),
    /// The expanded regex is not valid RE2 syntax.
    #[error("invalid regex after expanding grok: {0}")]
    Regex(String),
}

impl Patterns {
    /// A library holding crowd's base patterns.
    #[must_use]
    pub fn with_base() -> Patterns {
        let mut p = Patterns::default();
        p.add_text(BASE);
        p
    }

    /// Adds the definitions of a pattern file's text (`NAME pattern` lines, `#` comments).
    pub fn add_text(&mut self, text: &str) {
        for line in text.lines() {
            let line = line.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some((name, pat)) = line.split_once(char::is_whitespace) {
                self.defs.insert(name.to_owned(), pat.trim().to_owned());
            }
        }
    }

    /// Adds or replaces one pattern.
    pub fn add(&mut self, name: &str, pattern: &str) {
        self.defs.insert(name.to_owned(), pattern.to_owned());
    }

    /// Whether a pattern exists.
    #[must_use]
    pub fn contains(&self, name: &str) -> bool {
        self.defs.contains_key(name)
    }

    /// Number of patterns.
    #[must_use]
    pub fn len(&self) -> usize {
        self.defs.len()
    }

    /// True when empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.defs.is_empty()
    }

    /// Compiles a grok expression, with `local` patterns (a parser's `pattern_syntax`) taking
    /// precedence over the library. A field named more than once takes one group, as CrowdSec's
    /// grok (grokky) does: the last `%{X:field}` of the expression itself, whether it captured or
    /// not, else the field of the last pattern used that names it (by the same rule inside).
    ///
    /// # Errors
    /// [`GrokError`] naming the unknown pattern or the regex error.
    pub fn compile(&self, pattern: &str, local: &HashMap<String, String>) -> Result<Grok, GrokError> {
        let mut groups = 0;
        let mut out = String::with_capacity(pattern.len() * 4);
        let winners = self.expand(pattern, local, &mut out, &mut groups, 0, "")?;
        // One group per field, in group order.
        let mut fields: Vec<(String, String)> = winners.into_iter().map(|(name, g)| (format!("g{g}"), name)).collect();
        fields.sort_by_key(|(g, _)| g[1..].parse::<usize>().unwrap_or(usize::MAX));
        let out = re2_ascii_classes(&escape_literal_braces(&out));
        let re = Regex::new(&out).map_err(|e| GrokError::Regex(e.to_string()))?;
        let names: HashMap<&str, usize> =
            re.capture_names().enumerate().filter_map(|(i, n)| n.map(|n| (n, i))).collect();
        let fields: Vec<(usize, String)> =
            fields.into_iter().filter_map(|(g, f)| names.get(g.as_str()).map(|i| (*i, f))).collect();
        let required = required_literal(&out).map(|l| memchr::memmem::Finder::new(&l).into_owned());
        let starts = anchored_starts(&out);
        let tail = greedy_tail(&out).and_then(|(prefix, name)| {
            let group = re.capture_names().position(|n| n == Some(name.as_str()))?;
            Some((Regex::new(&prefix).ok()?, group))
        });
        let mut syslog_parts: Vec<(String, SyslogPart)> = Vec::new();
        for (_, name) in &fields {
            if !syslog_parts.iter().any(|(n, _)| n == name) {
                let part = match name.as_str() {
                    "timestamp" => SyslogPart::Timestamp,
                    "logsource" => SyslogPart::Logsource,
                    "program" => SyslogPart::Program,
                    "pid" => SyslogPart::Pid,
                    "message" => SyslogPart::Message,
                    _ => SyslogPart::Empty,
                };
                syslog_parts.push((name.clone(), part));
            }
        }
        let mut g = Grok { re, fields, required, starts, tail, syslog: false, syslog_parts };
        g.syslog = pattern.trim() == "^%{SYSLOGLINE}" && g.syslog_reader_agrees();
        Ok(g)
    }

    fn lookup<'a>(&'a self, name: &str, local: &'a HashMap<String, String>) -> Option<&'a str> {
        local.get(name).or_else(|| self.defs.get(name)).map(String::as_str)
    }

    /// Expands `pat` into `out`, numbering capture groups from `groups`; returns which group
    /// gives each field, by CrowdSec's (grokky's) rule: a field named in `pat` itself is its
    /// last `%{X:field}` there, captured or not; a field named only inside the patterns `pat`
    /// uses is that of the last of them to have it.
    fn expand(
        &self,
        pat: &str,
        local: &HashMap<String, String>,
        out: &mut String,
        groups: &mut usize,
        depth: usize,
        within: &str,
    ) -> Result<HashMap<String, usize>, GrokError> {
        if depth > 64 {
            return Err(GrokError::Recursive(within.to_owned()));
        }
        let own = own_fields(pat);
        let mut winners: HashMap<String, usize> = HashMap::new();
        let b = pat.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'\\' && i + 1 < b.len() {
                // Copy escapes whole (a `\%` or `\(` must not start anything).
                let ch_len = pat[i + 1..].chars().next().map_or(1, char::len_utf8);
                out.push_str(&pat[i..i + 1 + ch_len]);
                i += 1 + ch_len;
            } else if pat[i..].starts_with("%{")
                && let Some(end) = pat[i..].find('}')
            {
                let inner = &pat[i + 2..i + end];
                let mut parts = inner.splitn(3, ':');
                let name = parts.next().unwrap_or("");
                let field = parts.next().filter(|f| !f.is_empty());
                let def = self.lookup(name, local).ok_or_else(|| GrokError::UnknownPattern(name.to_owned()))?;
                match field {
                    Some(f) => {
                        winners.insert(f.to_owned(), *groups);
                        out.push_str(&format!("(?P<g{}>", *groups));
                        *groups += 1;
                    }
                    None => out.push_str("(?:"),
                }
                for (k, g) in self.expand(def, local, out, groups, depth + 1, name)? {
                    if !own.contains(k.as_str()) {
                        winners.insert(k, g);
                    }
                }
                out.push(')');
                i += end + 1;
            } else if pat[i..].starts_with("(?<") && !pat[i..].starts_with("(?<=") && !pat[i..].starts_with("(?<!")
                || pat[i..].starts_with("(?P<")
            {
                // A raw named group: captured as a field of that name.
                let start = if pat[i..].starts_with("(?P<") { i + 4 } else { i + 3 };
                let Some(close) = pat[start..].find('>') else {
                    out.push_str(&pat[i..]);
                    break;
                };
                let name = &pat[start..start + close];
                winners.insert(name.to_owned(), *groups);
                out.push_str(&format!("(?P<g{}>", *groups));
                *groups += 1;
                i = start + close + 1;
            } else {
                let ch = pat[i..].chars().next().expect("in bounds");
                out.push(ch);
                i += ch.len_utf8();
            }
        }
        Ok(winners)
    }
}

/// The fields `pat` names itself: its `%{X:field}` and raw `(?<field>...)` groups (escapes
/// skipped), not those of the patterns it uses.
fn own_fields(pat: &str) -> std::collections::HashSet<&str> {
    let mut own = std::collections::HashSet::new();
    let mut i = 0;
    while i < pat.len() {
        let rest = &pat[i..];
        if let Some(escaped) = rest.strip_prefix('\\') {
            i += 1 + escaped.chars().next().map_or(0, char::len_utf8);
            continue;
        }
        if rest.starts_with("%{")
            && let Some(end) = rest.find('}')
        {
            if let Some(f) = rest[2..end].split(':').nth(1).filter(|f| !f.is_empty()) {
                own.insert(f);
            }
            i += end + 1;
            continue;
        }
        let start = if rest.starts_with("(?P<") {
            Some(4)
        } else if rest.starts_with("(?<") && !rest.starts_with("(?<=") && !rest.starts_with("(?<!") {
            Some(3)
        } else {
            None
        };
        if let Some(st) = start
            && let Some(close) = rest[st..].find('>')
        {
            own.insert(&rest[st..st + close]);
        }
        i += rest.chars().next().map_or(1, char::len_utf8);
    }
    own
}

/// RE2 (Go), which CrowdSec uses, gives `\d`, `\w`, `\s` and `\b` their ASCII meaning; the
/// `regex` crate their Unicode one. Rewrite them to ASCII: the same matches as CrowdSec, and far
/// smaller automata (Unicode `\w` alone is hundreds of ranges).
fn re2_ascii_classes(re: &str) -> String {
    const W: &str = "0-9A-Za-z_";
    const D: &str = "0-9";
    const S: &str = "\\t\\n\\f\\r ";
    let mut out = String::with_capacity(re.len() + 16);
    let mut chars = re.chars().peekable();
    let mut class_depth = 0usize;
    while let Some(c) = chars.next() {
        if c == '\\' {
            let Some(n) = chars.next() else {
                out.push(c);
                break;
            };
            let inside = class_depth > 0;
            match (n, inside) {
                ('w', false) => out.push_str(&format!("[{W}]")),
                ('W', false) => out.push_str(&format!("[^{W}]")),
                ('d', false) => out.push_str(&format!("[{D}]")),
                ('D', false) => out.push_str(&format!("[^{D}]")),
                ('s', false) => out.push_str(&format!("[{S}]")),
                ('S', false) => out.push_str(&format!("[^{S}]")),
                ('b', false) => out.push_str("(?-u:\\b)"),
                ('B', false) => out.push_str("(?-u:\\B)"),
                ('w', true) => out.push_str(W),
                ('d', true) => out.push_str(D),
                ('s', true) => out.push_str(S),
                _ => {
                    out.push(c);
                    out.push(n);
                }
            }
            continue;
        }
        if c == '[' {
            class_depth += 1;
            out.push(c);
            // A `]` right after `[` or `[^` is a literal member.
            if chars.peek() == Some(&'^') {
                out.push(chars.next().expect("peeked"));
            }
            if chars.peek() == Some(&']') {
                out.push(chars.next().expect("peeked"));
            }
            continue;
        }
        if c == ']' && class_depth > 0 {
            class_depth -= 1;
        }
        out.push(c);
    }
    out
}

/// When `re` is a top-level concatenation ending in a named greedy `(?P<name>.*)`: the pattern
/// before it and the group's name.
fn greedy_tail(re: &str) -> Option<(String, String)> {
    use regex_syntax::hir::{Class, HirKind};
    let hir = regex_syntax::ParserBuilder::new().utf8(true).build().parse(re).ok()?;
    let HirKind::Concat(parts) = hir.kind() else { return None };
    let HirKind::Capture(cap) = parts.last()?.kind() else { return None };
    let name = cap.name.as_deref()?;
    let HirKind::Repetition(rep) = cap.sub.kind() else { return None };
    // `.`: every character but `\n`.
    let dot = matches!(rep.sub.kind(), HirKind::Class(Class::Unicode(c))
        if c.ranges().len() == 2 && c.ranges()[0].start() == '\0' && c.ranges()[0].end() == '\u{9}'
            && c.ranges()[1].start() == '\u{b}' && c.ranges()[1].end() == char::MAX);
    if !(rep.min == 0 && rep.max.is_none() && rep.greedy && dot) {
        return None;
    }
    // The group's text, cut out (it may sit inside outer non-capturing groups, which close
    // after it: `^(?:... (?P<message>.*))`).
    let suffix = format!("(?P<{name}>.*)");
    let at = re.rfind(&suffix)?;
    let prefix = format!("{}{}", &re[..at], &re[at + suffix.len()..]);
    // The cut must leave exactly the concatenation's other parts.
    let cut = regex_syntax::ParserBuilder::new().utf8(true).build().parse(&prefix).ok()?;
    (cut == regex_syntax::hir::Hir::concat(parts[..parts.len() - 1].to_vec())).then(|| (prefix, name.to_owned()))
}

/// The longest literal (at least 3 bytes) that every match of `re` contains: literals met on
/// every path through the pattern (concatenations, groups, repetitions of at least one), never
/// inside alternations or optional parts. Case-insensitive parts are classes, not literals, so
/// they are never chosen.
fn required_literal(re: &str) -> Option<Vec<u8>> {
    use regex_syntax::hir::{Hir, HirKind};
    fn walk(h: &Hir, run: &mut Vec<u8>, out: &mut Vec<Vec<u8>>) {
        match h.kind() {
            HirKind::Literal(l) => run.extend_from_slice(&l.0),
            HirKind::Capture(c) => walk(&c.sub, run, out),
            HirKind::Concat(v) => {
                for x in v {
                    walk(x, run, out);
                }
            }
            HirKind::Repetition(r) if r.min >= 1 => {
                // One occurrence is certain; what follows it is not adjacent to it.
                out.push(std::mem::take(run));
                walk(&r.sub, run, out);
                out.push(std::mem::take(run));
            }
            // Empty matches and look-arounds (`^`, `\b`) add no text.
            HirKind::Empty | HirKind::Look(_) => {}
            _ => out.push(std::mem::take(run)),
        }
    }
    let hir = regex_syntax::ParserBuilder::new().utf8(true).build().parse(re).ok()?;
    let (mut run, mut out) = (Vec::new(), Vec::new());
    walk(&hir, &mut run, &mut out);
    out.push(run);
    out.into_iter().filter(|l| l.len() >= 3).max_by_key(Vec::len)
}

/// For a regex whose every match starts at the start of the text (`^`, not multi-line): the
/// finite set of texts a match must start with, when there is one and none is empty.
fn anchored_starts(re: &str) -> Option<Vec<Vec<u8>>> {
    use regex_syntax::hir::{
        Look,
        literal::{ExtractKind, Extractor},
    };
    let hir = regex_syntax::ParserBuilder::new().utf8(true).build().parse(re).ok()?;
    if !hir.properties().look_set_prefix().contains(Look::Start) {
        return None;
    }
    let seq = Extractor::new().kind(ExtractKind::Prefix).extract(&hir);
    let lits = seq.literals()?;
    if lits.is_empty() || lits.iter().any(|l| l.as_bytes().is_empty()) {
        return None;
    }
    Some(lits.iter().map(|l| l.as_bytes().to_vec()).collect())
}

/// RE2 (Go) reads a `{` that starts no valid repetition (`{"ip":`) as a literal; the `regex`
/// crate refuses it. Escape those, leaving `{n}`, `{n,}` and `{n,m}` alone.
fn escape_literal_braces(re: &str) -> String {
    let b = re.as_bytes();
    let mut out = String::with_capacity(re.len() + 8);
    let mut i = 0;
    let mut in_class = false;
    while i < b.len() {
        let c = b[i];
        if c == b'\\' && i + 1 < b.len() {
            let n = re[i + 1..].chars().next().map_or(1, char::len_utf8);
            out.push_str(&re[i..i + 1 + n]);
            i += 1 + n;
            continue;
        }
        if c == b'[' {
            in_class = true;
        } else if c == b']' {
            in_class = false;
        }
        if c == b'{' && !in_class {
            let rest = &re[i + 1..];
            let end = rest.find('}');
            let valid = end.is_some_and(|e| {
                let inner = &rest[..e];
                let mut parts = inner.splitn(2, ',');
                let lo = parts.next().unwrap_or("");
                let hi = parts.next();
                !lo.is_empty()
                    && lo.bytes().all(|d| d.is_ascii_digit())
                    && hi.is_none_or(|h| h.bytes().all(|d| d.is_ascii_digit()))
            });
            if !valid {
                out.push_str("\\{");
                i += 1;
                continue;
            }
        }
        let ch = re[i..].chars().next().expect("in bounds");
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

impl Grok {
    /// Whether the hand reader of syslog lines gives this grok's own answer on every sample
    /// it reads (and knows every field the grok names).
    fn syslog_reader_agrees(&self) -> bool {
        const KNOWN: [&str; 8] =
            ["timestamp", "timestamp8601", "facility", "priority", "logsource", "program", "pid", "message"];
        self.fields.iter().all(|(_, f)| KNOWN.contains(&f.as_str()))
            && syslog::SAMPLES
                .iter()
                .all(|l| syslog::read(l).is_none_or(|f| Some(self.syslog_fields(&f)) == self.regex_captures(l)))
    }

    /// The grok's output for fields read by hand.
    fn syslog_fields(&self, f: &syslog::Fields<'_>) -> Vec<(&str, Str)> {
        self.syslog_parts
            .iter()
            .map(|(name, part)| {
                let v = match part {
                    SyslogPart::Timestamp => f.timestamp,
                    SyslogPart::Logsource => f.logsource,
                    SyslogPart::Program => f.program,
                    SyslogPart::Pid => f.pid,
                    SyslogPart::Message => f.message.split('\n').next().unwrap_or(""),
                    SyslogPart::Empty => "",
                };
                (name.as_str(), Str::from(v))
            })
            .collect()
    }

    /// Matches `text`; on success returns the captured fields (one group per field name, see
    /// [`Patterns::compile`]; fields that captured nothing are present and empty, as in CrowdSec).
    #[must_use]
    pub fn captures(&self, text: &str) -> Option<Vec<(&str, Str)>> {
        if self.syslog
            && let Some(f) = syslog::read(text)
        {
            return Some(self.syslog_fields(&f));
        }
        self.regex_captures(text)
    }

    /// Whether the hand-written syslog reader is on for this grok (`^%{SYSLOGLINE}` with a
    /// library whose `SYSLOGLINE` reads as the reader does).
    #[must_use]
    pub fn reads_syslog_by_hand(&self) -> bool {
        self.syslog
    }

    /// A self-check (tests, fuzzing): where the hand-written reader takes `line`, its fields
    /// against the regex's; `None` when they agree or the reader does not take the line.
    #[must_use]
    pub fn reader_disagreement(&self, line: &str) -> Option<String> {
        let f = syslog::read(line).filter(|_| self.syslog)?;
        let (by_hand, by_regex) = (Some(self.syslog_fields(&f)), self.regex_captures(line));
        (by_hand != by_regex).then(|| format!("{line:?}: reader {by_hand:?}, regex {by_regex:?}"))
    }

    /// [`Grok::captures`] through the regex.
    fn regex_captures(&self, text: &str) -> Option<Vec<(&str, Str)>> {
        if let Some(starts) = &self.starts
            && !starts.iter().any(|p| text.as_bytes().starts_with(p))
        {
            return None;
        }
        if let Some(f) = &self.required
            && f.find(text.as_bytes()).is_none()
        {
            return None;
        }
        let (caps, tail) = match &self.tail {
            Some((prefix, group)) => {
                let caps = prefix.captures(text)?;
                let end = caps.get(0).map_or(0, |m| m.end());
                let rest = &text[end..];
                (caps, Some((*group, rest.split('\n').next().unwrap_or(rest))))
            }
            None => (self.re.captures(text)?, None),
        };
        let mut out: Vec<(&str, Str)> = Vec::with_capacity(self.fields.len());
        for (i, f) in &self.fields {
            let v = match tail {
                Some((g, rest)) if g == *i => rest,
                _ => caps.get(*i).map_or("", |m| m.as_str()),
            };
            out.push((f.as_str(), Str::from(v)));
        }
        Some(out)
    }

    /// The regex of the part before a greedy tail, if cut (benchmarks).
    #[doc(hidden)]
    #[must_use]
    pub fn prefix_regex(&self) -> Option<&str> {
        self.tail.as_ref().map(|(r, _)| r.as_str())
    }

    /// The expanded regex (for `crowd explain` and errors).
    #[must_use]
    pub fn regex(&self) -> &str {
        self.re.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_greedy_tail_is_cut_off_and_gives_the_same_captures() {
        let mut p = lib();
        // Also inside the group of a named pattern (`^%{SYSLOGLINE}` expands to `^(?:... (?P<m>.*))`).
        p.add("LINE", r"%{WORD:a} (?:x|%{INT:n}) %{GREEDYDATA:rest}");
        for pattern in [r"^%{WORD:a} (?:x|%{INT:n}) %{GREEDYDATA:rest}", "^%{LINE}"] {
            let g = p.compile(pattern, &HashMap::new()).unwrap();
            assert!(g.tail.is_some(), "{pattern}");
            let mut g2 = p.compile(pattern, &HashMap::new()).unwrap();
            g2.tail = None;
            let with_tail = |t: &str| g.captures(t);
            let full = |t: &str| g2.captures(t);
            for t in ["abc 12 the rest of it", "abc x  two spaces", "abc 12 ", "abc 12", "nope", "abc 7 a\nb"] {
                assert_eq!(with_tail(t), full(t), "{t:?}");
            }
        }
        // Not at the top level, or not greedy: no cut.
        assert!(p.compile(r"a|b%{GREEDYDATA:x}", &HashMap::new()).unwrap().tail.is_none());
        assert!(p.compile(r"(?:a|b%{GREEDYDATA:x})", &HashMap::new()).unwrap().tail.is_none());
        assert!(p.compile(r"(?:a%{GREEDYDATA:x})+", &HashMap::new()).unwrap().tail.is_none());
        assert!(p.compile(r"a(?P<x>.*?)", &HashMap::new()).unwrap().tail.is_none());
    }

    #[test]
    fn classes_have_their_re2_ascii_meaning() {
        assert_eq!(
            re2_ascii_classes(r"\w+\d\s\b[\w.-]\\w[^\d]"),
            r"[0-9A-Za-z_]+[0-9][\t\n\f\r ](?-u:\b)[0-9A-Za-z_.-]\\w[^0-9]"
        );
        let p = lib();
        let g = p.compile(r"^%{WORD:w}$", &HashMap::new()).unwrap();
        assert!(g.captures("abc_1").is_some());
        // Not word characters for RE2 (nor for CrowdSec).
        assert!(g.captures("héllo").is_none());
        assert!(p.compile(r"^\d+$", &HashMap::new()).unwrap().captures("١٢").is_none());
    }

    #[test]
    fn anchored_patterns_refuse_lines_by_their_start() {
        let starts = |re: &str| {
            anchored_starts(re).map(|v| v.into_iter().map(|l| String::from_utf8(l).unwrap()).collect::<Vec<_>>())
        };
        assert_eq!(starts(r"^Failed (?P<a>\w+) for").unwrap(), ["Failed "]);
        let mut alt = starts(r"^(?:fatal: )?Unable to negotiate with").unwrap();
        alt.sort();
        assert_eq!(alt, ["Unable to negotiate with", "fatal: Unable to negotiate with"]);
        assert_eq!(starts(r"Failed (?P<a>\w+) for"), None, "not anchored");
        assert_eq!(starts(r"(?m)^Failed"), None, "multi-line");
        assert_eq!(starts(r"^(?:x)?\d+"), None, "no literal start on every path");
        let g = lib().compile("^(?:Accepted|Failed) %{WORD:m}", &HashMap::new()).unwrap();
        assert!(g.captures("Failed password").is_some());
        assert!(g.captures("Accepted password").is_some());
        assert!(g.captures("pam_unix(sshd:session): session opened").is_none());
    }

    #[test]
    fn required_literals_are_on_every_path() {
        let lit = |re: &str| required_literal(re).map(|l| String::from_utf8(l).unwrap());
        assert_eq!(lit(r"Failed (?P<a>\w+) for (?P<u>\S+) from").as_deref(), Some("Failed "));
        assert_eq!(lit(r"^Connection closed by (?P<ip>\S+)$").as_deref(), Some("Connection closed by "));
        // Alternations and optional parts are never required.
        assert_eq!(lit(r"(?:abcdef|xyz)\d+").as_deref(), None);
        assert_eq!(lit(r"x(?:abcdefgh)?y").as_deref(), None);
        assert_eq!(lit(r"(?i)abcdef").as_deref(), None);
        // A repeated group's literal is required once.
        assert_eq!(lit(r"(?:port )+\d").as_deref(), Some("port "));
    }

    fn lib() -> Patterns {
        let mut p = Patterns::default();
        p.add_text(
            "# comment\nINT (?:[+-]?(?:[0-9]+))\nWORD \\b\\w+\\b\nIPV4 (?:\\d{1,3}\\.){3}\\d{1,3}\nIP %{IPV4}\n\
             GREEDYDATA .*\nLOOP %{LOOP}\n",
        );
        p
    }

    #[test]
    fn expands_and_captures() {
        let g = lib().compile("^%{WORD:user} from %{IP:ip} port %{INT:port}$", &HashMap::new()).unwrap();
        let c = g.captures("root from 192.0.2.7 port 22").unwrap();
        assert_eq!(c, vec![("user", "root".into()), ("ip", "192.0.2.7".into()), ("port", "22".into())]);
        assert!(g.captures("root from nowhere").is_none());
    }

    #[test]
    fn same_field_in_alternatives_and_local_patterns() {
        let mut local = HashMap::new();
        local.insert("MINE".to_owned(), "user %{WORD:u}|account %{WORD:u}".to_owned());
        let g = lib().compile("%{MINE}", &local).unwrap();
        assert_eq!(g.captures("account bob").unwrap(), vec![("u", "bob".into())]);
    }

    /// CrowdSec's grok (grokky) keeps one group per field: the last that names it in the
    /// expression itself, captured or not; a field named only in the patterns it uses comes
    /// from the last of those.
    #[test]
    fn a_field_named_twice_is_its_last_group_as_in_crowdsec() {
        let mut local = HashMap::new();
        local.insert("MINE".to_owned(), "user %{WORD:u}|account %{WORD:u}".to_owned());
        let g = lib().compile("%{MINE}", &local).unwrap();
        assert_eq!(
            g.captures("user bob").unwrap(),
            vec![("u", "".into())],
            "the first alternative's group is not read"
        );
        let g = lib().compile("LEN=%{INT:len} .* LEN=%{INT:len}", &HashMap::new()).unwrap();
        assert_eq!(g.captures("LEN=52 x LEN=32").unwrap(), vec![("len", "32".into())]);
        // The expression's own field wins over one of a pattern it uses, wherever they are.
        local.insert("PAIR".to_owned(), "%{WORD:a}=%{INT:n}".to_owned());
        let g = lib().compile("%{INT:n} %{PAIR}", &local).unwrap();
        assert_eq!(g.captures("7 x=9").unwrap(), vec![("n", "7".into()), ("a", "x".into())]);
    }

    #[test]
    fn raw_named_groups_are_fields() {
        let g = lib().compile(r"(?<verb>GET|POST) (?P<path>\S+)", &HashMap::new()).unwrap();
        assert_eq!(g.captures("GET /x").unwrap(), vec![("verb", "GET".into()), ("path", "/x".into())]);
    }

    #[test]
    fn literal_braces_as_in_re2() {
        for p in [r#"\{"ip":"%{IP:ip}"\}"#, r#"{"ip":"%{IP:ip}"}"#] {
            let g = lib().compile(p, &HashMap::new()).unwrap();
            assert_eq!(g.captures(r#"{"ip":"192.0.2.9"}"#).unwrap(), vec![("ip", "192.0.2.9".into())]);
        }
        assert!(lib().compile("a{2}b{1,3}", &HashMap::new()).unwrap().captures("aabbb").is_some());
    }

    #[test]
    fn errors_name_the_problem() {
        assert_eq!(lib().compile("%{NOPE:x}", &HashMap::new()).unwrap_err(), GrokError::UnknownPattern("NOPE".into()));
        assert!(matches!(lib().compile("%{LOOP}", &HashMap::new()).unwrap_err(), GrokError::Recursive(_)));
        assert!(matches!(lib().compile("(unclosed", &HashMap::new()).unwrap_err(), GrokError::Regex(_)));
    }

    #[test]
    fn every_base_pattern_compiles() {
        let p = Patterns::with_base();
        for line in BASE.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
            let name = line.split_whitespace().next().unwrap();
            p.compile(&format!("%{{{name}}}"), &HashMap::new()).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let ip = p.compile("^%{IP:ip}$", &HashMap::new()).unwrap();
        for ok in ["192.0.2.1", "2001:db8::1", "::ffff:192.0.2.1", "fe80::1%eth0"] {
            assert!(ip.captures(ok).is_some(), "{ok}");
        }
        assert!(ip.captures("192.0.2.300").is_none());
    }
}
