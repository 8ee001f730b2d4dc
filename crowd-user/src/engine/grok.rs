//! Grok: named patterns (`%{IP:source}`) expanded into one regex with RE2 semantics.
//!
//! The pattern library is a map name → pattern, read from CrowdSec-format pattern files by the
//! config loader (`NAME pattern` per line, `#` comments). A grok expression is expanded
//! recursively; each `%{NAME:field}` becomes a capture group whose value is stored under
//! `field`. Groups get generated names, so a field may appear in several alternatives (the first
//! non-empty capture wins) and raw `(?<name>...)` groups in patterns are captured as fields too.
use std::collections::HashMap;

use regex::Regex;

/// crowd's base patterns (numbers, words, addresses, dates, syslog and HTTP prefixes).
pub const BASE: &str = include_str!("../../patterns/base");

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
    /// precedence over the library.
    ///
    /// # Errors
    /// [`GrokError`] naming the unknown pattern or the regex error.
    pub fn compile(&self, pattern: &str, local: &HashMap<String, String>) -> Result<Grok, GrokError> {
        let mut fields = Vec::new();
        let mut out = String::with_capacity(pattern.len() * 4);
        self.expand(pattern, local, &mut out, &mut fields, 0, "")?;
        let out = escape_literal_braces(&out);
        let re = Regex::new(&out).map_err(|e| GrokError::Regex(e.to_string()))?;
        let names: HashMap<&str, usize> =
            re.capture_names().enumerate().filter_map(|(i, n)| n.map(|n| (n, i))).collect();
        let fields = fields.into_iter().filter_map(|(g, f)| names.get(g.as_str()).map(|i| (*i, f))).collect();
        Ok(Grok { re, fields })
    }

    fn lookup<'a>(&'a self, name: &str, local: &'a HashMap<String, String>) -> Option<&'a str> {
        local.get(name).or_else(|| self.defs.get(name)).map(String::as_str)
    }

    fn expand(
        &self,
        pat: &str,
        local: &HashMap<String, String>,
        out: &mut String,
        fields: &mut Vec<(String, String)>,
        depth: usize,
        within: &str,
    ) -> Result<(), GrokError> {
        if depth > 64 {
            return Err(GrokError::Recursive(within.to_owned()));
        }
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
                        let g = format!("g{}", fields.len());
                        fields.push((g.clone(), f.to_owned()));
                        out.push_str(&format!("(?P<{g}>"));
                    }
                    None => out.push_str("(?:"),
                }
                self.expand(def, local, out, fields, depth + 1, name)?;
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
                let g = format!("g{}", fields.len());
                fields.push((g.clone(), name.to_owned()));
                out.push_str(&format!("(?P<{g}>"));
                i = start + close + 1;
            } else {
                let ch = pat[i..].chars().next().expect("in bounds");
                out.push(ch);
                i += ch.len_utf8();
            }
        }
        Ok(())
    }
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
    /// Matches `text`; on success returns the captured fields (first non-empty capture of each
    /// field name wins; fields that captured nothing are present and empty, as in CrowdSec).
    #[must_use]
    pub fn captures(&self, text: &str) -> Option<Vec<(&str, String)>> {
        let caps = self.re.captures(text)?;
        let mut out: Vec<(&str, String)> = Vec::with_capacity(self.fields.len());
        for (i, f) in &self.fields {
            let v = caps.get(*i).map_or("", |m| m.as_str());
            match out.iter_mut().find(|(n, _)| *n == f.as_str()) {
                Some((_, old)) if old.is_empty() => *old = v.to_owned(),
                Some(_) => {}
                None => out.push((f.as_str(), v.to_owned())),
            }
        }
        Some(out)
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

    #[test]
    fn raw_named_groups_are_fields() {
        let g = lib().compile(r"(?<verb>GET|POST) (?P<path>\S+)", &HashMap::new()).unwrap();
        assert_eq!(g.captures("GET /x").unwrap(), vec![("verb", "GET".into()), ("path", "/x".into())]);
    }

    #[test]
    fn literal_braces_as_in_re2() {
        let g = lib().compile(r#"\{"ip":"%{IP:ip}"\}|{"ip":"%{IP:ip}"}"#, &HashMap::new()).unwrap();
        assert_eq!(g.captures(r#"{"ip":"192.0.2.9"}"#).unwrap(), vec![("ip", "192.0.2.9".into())]);
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

    #[test]
    fn the_hub_library_compiles_the_common_patterns() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/crowdsec-hub/patterns");
        let rd = std::fs::read_dir(&dir).expect("../shared/crowdsec-hub/patterns (test data beside the checkout)");
        let mut p = Patterns::with_base();
        for e in rd.flatten() {
            p.add_text(&std::fs::read_to_string(e.path()).unwrap());
        }
        assert!(p.len() > 200, "{} patterns", p.len());
        let g = p.compile("^%{SYSLOGLINE}", &HashMap::new()).unwrap();
        let c = g
            .captures("Feb 12 14:10:21 sd-126005 sshd[16378]: Invalid user pascal from 192.0.2.176 port 53502")
            .unwrap();
        let get = |k: &str| c.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("program"), Some("sshd"));
        assert_eq!(get("pid"), Some("16378"));
        assert_eq!(get("message"), Some("Invalid user pascal from 192.0.2.176 port 53502"));
        assert_eq!(get("timestamp"), Some("Feb 12 14:10:21"));
    }
}
