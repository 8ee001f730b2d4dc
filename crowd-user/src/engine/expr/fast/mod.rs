//! A fast path for the expressions that make up most filters and statics: field reads,
//! comparisons of fields with literals (`evt.Meta.log_type == 'ssh_failed-auth'`,
//! `evt.Parsed.program in ['sshd', 'sshd-session']`), the string operators (`contains`,
//! `startsWith`, `endsWith`, `matches` with a constant pattern compiled once), the common string
//! helpers (`Lower`, `Upper`, `TrimSpace`, `RegexpInFile`, `ContainsAnyLine`, `IpInRange`, ...),
//! `len`, `+`, `?:`, `&&`/`||`/`!` of those, and the hub's closures over data files,
//! `any(File('f'), {Upper(evt.Meta.http_path) contains Upper(#)})`, run as one matcher over the
//! whole file (Aho-Corasick, a hash set, a regex set) built on first use. They run straight on the
//! event, without converting it for the interpreter; a missing field reads as "" as in Go's
//! `map[string]string`. Anything else goes to expr-lang.
mod parse;

use std::{borrow::Cow, collections::HashSet, sync::OnceLock};

use aho_corasick::AhoCorasick;
use regex::{Regex, RegexSet};

pub use parse::{compile, guard};

use super::{
    DataFiles,
    helpers::{ip_in_range, ip_prefix},
};
use crate::engine::event::Event;

/// A cursor over lexed tokens, for the fast path's parser and the queue conditions' parser.
pub(crate) struct Tokens<T> {
    /// The tokens.
    pub(crate) toks: Vec<T>,
    /// The next one's index.
    pub(crate) pos: usize,
}

impl<T: Clone + PartialEq> Tokens<T> {
    pub(crate) fn peek(&self) -> Option<&T> {
        self.toks.get(self.pos)
    }
    pub(crate) fn next(&mut self) -> Option<T> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    pub(crate) fn eat(&mut self, t: &T) -> Option<()> {
        (self.next()? == *t).then_some(())
    }
}

/// Helpers the fast path evaluates itself (pure functions of strings).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Func {
    Lower,
    Upper,
    TrimSpace,
    PathUnescape,
    QueryUnescape,
    RegexpInFile,
    ContainsAnyLine,
    IpInRange,
    IsIpv4,
    IsIpv6,
    IsIp,
    IpPrefix,
}

impl Func {
    fn from_name(name: &str) -> Option<Func> {
        Some(match name {
            "Lower" => Func::Lower,
            "Upper" => Func::Upper,
            "TrimSpace" => Func::TrimSpace,
            "PathUnescape" => Func::PathUnescape,
            "QueryUnescape" => Func::QueryUnescape,
            "RegexpInFile" => Func::RegexpInFile,
            "ContainsAnyLine" => Func::ContainsAnyLine,
            "IpInRange" => Func::IpInRange,
            "IsIPV4" => Func::IsIpv4,
            "IsIPV6" => Func::IsIpv6,
            "IsIP" => Func::IsIp,
            "IpPrefix" => Func::IpPrefix,
            _ => return None,
        })
    }
    fn arity(self) -> usize {
        match self {
            Func::RegexpInFile | Func::ContainsAnyLine | Func::IpInRange => 2,
            _ => 1,
        }
    }
    fn returns_string(self) -> bool {
        matches!(
            self,
            Func::Lower | Func::Upper | Func::TrimSpace | Func::PathUnescape | Func::QueryUnescape | Func::IpPrefix
        )
    }
}

/// `contains`, `startsWith`, `endsWith`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum StrOp {
    Contains,
    StartsWith,
    EndsWith,
}

/// How the subject of `any(File(..), {..})` meets each line `#`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LineOp {
    /// `subject contains #`.
    SubjectContains,
    /// `# contains subject`.
    LineContains,
    /// `subject == #`.
    Eq,
    /// `subject startsWith #`.
    StartsWith,
    /// `subject endsWith #`.
    EndsWith,
    /// `subject matches #`.
    Matches,
}

/// What is applied to each line before comparing: nothing, `Upper(#)`, `Lower(#)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Case {
    Same,
    Upper,
    Lower,
}

impl Case {
    /// The case change a closure applies to its line: `#`, `Upper(#)`, `Lower(#)`.
    fn of_line(line: &Fast) -> Option<Case> {
        match line {
            Fast::Hash => Some(Case::Same),
            Fast::Call(Func::Upper, a) if a == &[Fast::Hash] => Some(Case::Upper),
            Fast::Call(Func::Lower, a) if a == &[Fast::Hash] => Some(Case::Lower),
            _ => None,
        }
    }

    /// `e` with this case change applied.
    fn apply(self, e: Fast) -> Fast {
        match self {
            Case::Same => e,
            Case::Upper => Fast::Call(Func::Upper, vec![e]),
            Case::Lower => Fast::Call(Func::Lower, vec![e]),
        }
    }
}

/// `any(File(file), {subject op case(#)})`.
#[derive(Clone, Debug)]
pub struct AnyFile {
    file: String,
    subject: Fast,
    op: LineOp,
    case: Case,
    matcher: OnceLock<Matcher>,
}

/// A data file compiled for one [`LineOp`].
#[derive(Clone, Debug)]
enum Matcher {
    Substrings(AhoCorasick),
    Set(HashSet<String>),
    Lines(Vec<String>),
    Regexes(RegexSet),
    /// When the set is too big to build.
    RegexList(std::sync::Arc<Vec<Regex>>),
    Never,
}

/// A recognised expression.
#[derive(Clone, Debug)]
pub enum Fast {
    /// A field's value (statics).
    Field(crate::engine::event::FieldRef),
    /// A string literal.
    Str(String),
    /// `nil`: equal to nothing a field holds.
    Nil,
    /// The line `#` of a closure over a file (only inside [`AnyFile`] while parsing).
    Hash,
    /// A helper call.
    Call(Func, Vec<Fast>),
    /// `len(s)`: characters.
    Len(Box<Fast>),
    /// `a + b + ...` of strings.
    Concat(Vec<Fast>),
    /// `a == b` (`negate`: `!=`).
    Eq(Box<Fast>, Box<Fast>, bool),
    /// `a in [lits]` (`negate`: `not in`).
    In(Box<Fast>, Vec<String>, bool),
    /// `a contains|startsWith|endsWith b`.
    StrOp(StrOp, Box<Fast>, Box<Fast>),
    /// `a matches 'constant'`.
    Matches(Box<Fast>, Regex),
    /// `a matches #`, `a matches Upper(#)` or `a matches Lower(#)` (only inside [`AnyFile`]
    /// while parsing).
    MatchesLine(Box<Fast>, Case),
    /// `any(File(..), {..})`.
    AnyFile(Box<AnyFile>),
    /// `c ? a : b`.
    Cond(Box<Fast>, Box<Fast>, Box<Fast>),
    /// Both.
    And(Box<Fast>, Box<Fast>),
    /// Either.
    Or(Box<Fast>, Box<Fast>),
    /// Negation.
    Not(Box<Fast>),
    /// `true` / `false`.
    Bool(bool),
}

impl Fast {
    /// The values `field` must hold for this to be true, when there are a few known ones
    /// (`evt.Meta.log_type == 'x' && ...`, `evt.Parsed.program in [...] || ...`): what lets
    /// the pipeline and the scenarios skip, by one look-up, the filters an event cannot pass.
    #[must_use]
    pub fn required_values(&self, field: &crate::engine::event::FieldRef) -> Option<Vec<String>> {
        match self {
            Fast::Eq(a, b, false) => match (&**a, &**b) {
                (Fast::Field(f), Fast::Str(s)) | (Fast::Str(s), Fast::Field(f)) if f == field => Some(vec![s.clone()]),
                _ => None,
            },
            Fast::In(a, lits, false) => match &**a {
                Fast::Field(f) if f == field => Some(lits.clone()),
                _ => None,
            },
            Fast::And(a, b) => a.required_values(field).or_else(|| b.required_values(field)),
            Fast::Or(a, b) => {
                let mut v = a.required_values(field)?;
                v.extend(b.required_values(field)?);
                Some(v)
            }
            Fast::Bool(false) => Some(Vec::new()),
            _ => None,
        }
    }
}

impl PartialEq for Fast {
    /// Structural equality where it is cheap (the parser compares `Upper(#)`); compiled
    /// matchers and regexes compare by pattern.
    fn eq(&self, other: &Fast) -> bool {
        match (self, other) {
            (Fast::Field(a), Fast::Field(b)) => a == b,
            (Fast::Str(a), Fast::Str(b)) => a == b,
            (Fast::Nil, Fast::Nil) | (Fast::Hash, Fast::Hash) => true,
            (Fast::Call(f, a), Fast::Call(g, b)) => f == g && a == b,
            (Fast::Bool(a), Fast::Bool(b)) => a == b,
            (Fast::Matches(a, r), Fast::Matches(b, s)) => a == b && r.as_str() == s.as_str(),
            _ => false,
        }
    }
}

fn get<'a>(evt: &'a Event, field: &crate::engine::event::FieldRef) -> &'a str {
    evt.field(field).unwrap_or("")
}

fn bool_str(b: bool) -> Cow<'static, str> {
    Cow::Borrowed(if b { "true" } else { "false" })
}

impl AnyFile {
    fn build(&self, data: &DataFiles) -> Matcher {
        let Some(lines) = data.lines.get(&self.file) else { return Matcher::Never };
        let lines: Vec<String> = lines
            .iter()
            .map(|l| match self.case {
                Case::Same => l.clone(),
                Case::Upper => l.to_uppercase(),
                Case::Lower => l.to_lowercase(),
            })
            .collect();
        match self.op {
            LineOp::SubjectContains => AhoCorasick::new(&lines).map_or(Matcher::Lines(lines), Matcher::Substrings),
            LineOp::Eq => Matcher::Set(lines.into_iter().collect()),
            LineOp::Matches => {
                // The valid regexes of the lines as the closure writes them, compiled once: the
                // file's own (shared with `RegexpInFile`), or the upper- or lower-cased lines
                // (`matches Upper(#)`: the case change applies to the pattern's text, escapes
                // included, as the interpreter does it).
                let valid = match self.case {
                    Case::Same => match data.regexes(&self.file) {
                        Some(v) => v,
                        None => return Matcher::Never,
                    },
                    _ => std::sync::Arc::new(lines.iter().filter_map(|l| Regex::new(l).ok()).collect()),
                };
                match RegexSet::new(valid.iter().map(Regex::as_str)) {
                    Ok(set) => Matcher::Regexes(set),
                    Err(_) => Matcher::RegexList(valid),
                }
            }
            LineOp::LineContains | LineOp::StartsWith | LineOp::EndsWith => Matcher::Lines(lines),
        }
    }

    fn test(&self, evt: &Event, data: &DataFiles) -> bool {
        let s = self.subject.value(evt, data);
        match (self.matcher.get_or_init(|| self.build(data)), self.op) {
            (Matcher::Never, _) => false,
            (Matcher::Substrings(ac), _) => ac.is_match(s.as_ref()),
            (Matcher::Set(set), _) => set.contains(s.as_ref()),
            (Matcher::Regexes(set), _) => set.is_match(&s),
            (Matcher::RegexList(l), _) => l.iter().any(|r| r.is_match(&s)),
            (Matcher::Lines(l), LineOp::StartsWith) => l.iter().any(|x| s.starts_with(x.as_str())),
            (Matcher::Lines(l), LineOp::EndsWith) => l.iter().any(|x| s.ends_with(x.as_str())),
            (Matcher::Lines(l), LineOp::LineContains) => l.iter().any(|x| x.contains(s.as_ref())),
            (Matcher::Lines(l), _) => l.iter().any(|x| s.contains(x.as_str())),
        }
    }
}

impl Fast {
    /// Whether the node reads a closure's line (`#`).
    fn reads_line(&self) -> bool {
        match self {
            Fast::Hash | Fast::MatchesLine(..) => true,
            Fast::Call(_, a) | Fast::Concat(a) => a.iter().any(Fast::reads_line),
            Fast::Len(a) | Fast::In(a, ..) | Fast::Not(a) | Fast::Matches(a, _) => a.reads_line(),
            Fast::Eq(a, b, _) | Fast::StrOp(_, a, b) | Fast::And(a, b) | Fast::Or(a, b) => {
                a.reads_line() || b.reads_line()
            }
            Fast::Cond(c, a, b) => c.reads_line() || a.reads_line() || b.reads_line(),
            Fast::Field(_) | Fast::Str(_) | Fast::Nil | Fast::Bool(_) | Fast::AnyFile(_) => false,
        }
    }

    /// Evaluates as a condition.
    #[must_use]
    pub fn test(&self, evt: &Event, data: &DataFiles) -> bool {
        match self {
            Fast::Eq(a, b, neg) => {
                let equal = match (&**a, &**b) {
                    (Fast::Nil, Fast::Nil) => true,
                    (Fast::Nil, _) | (_, Fast::Nil) => false,
                    _ => a.value(evt, data) == b.value(evt, data),
                };
                equal != *neg
            }
            Fast::In(a, l, neg) => {
                let x = a.value(evt, data);
                l.iter().any(|s| *s == x) != *neg
            }
            Fast::StrOp(op, a, b) => {
                let (a, b) = (a.value(evt, data), b.value(evt, data));
                match op {
                    StrOp::Contains => a.contains(b.as_ref()),
                    StrOp::StartsWith => a.starts_with(b.as_ref()),
                    StrOp::EndsWith => a.ends_with(b.as_ref()),
                }
            }
            Fast::Matches(a, r) => r.is_match(&a.value(evt, data)),
            Fast::AnyFile(f) => f.test(evt, data),
            Fast::Cond(c, a, b) => {
                if c.test(evt, data) {
                    a.test(evt, data)
                } else {
                    b.test(evt, data)
                }
            }
            Fast::And(a, b) => a.test(evt, data) && b.test(evt, data),
            Fast::Or(a, b) => a.test(evt, data) || b.test(evt, data),
            Fast::Not(a) => !a.test(evt, data),
            Fast::Bool(b) => *b,
            Fast::Call(..) => self.value(evt, data) == "true",
            // A string, a number or nil is not a boolean: the interpreter makes the filter false.
            Fast::Field(_) | Fast::Str(_) | Fast::Nil | Fast::Hash | Fast::Len(_) | Fast::Concat(_) => false,
            Fast::MatchesLine(..) => false,
        }
    }

    /// Evaluates as a value, borrowed from the event or the expression where it can be.
    #[must_use]
    pub fn value<'a>(&'a self, evt: &'a Event, data: &DataFiles) -> Cow<'a, str> {
        match self {
            Fast::Field(f) => Cow::Borrowed(get(evt, f)),
            Fast::Str(s) => Cow::Borrowed(s),
            Fast::Nil | Fast::Hash => Cow::Borrowed(""),
            Fast::Len(a) => Cow::Owned(a.value(evt, data).chars().count().to_string()),
            Fast::Concat(parts) => Cow::Owned(parts.iter().map(|p| p.value(evt, data)).collect()),
            Fast::Cond(c, a, b) => {
                if c.test(evt, data) {
                    a.value(evt, data)
                } else {
                    b.value(evt, data)
                }
            }
            Fast::Call(func, args) => {
                let a = |i: usize| args.get(i).map(|x| x.value(evt, data)).unwrap_or_default();
                match func {
                    Func::Lower => Cow::Owned(a(0).to_lowercase()),
                    Func::Upper => Cow::Owned(a(0).to_uppercase()),
                    Func::TrimSpace => match a(0) {
                        Cow::Borrowed(s) => Cow::Borrowed(s.trim()),
                        Cow::Owned(s) => Cow::Owned(s.trim().to_owned()),
                    },
                    Func::PathUnescape => Cow::Owned(super::percent_decode(&a(0), false)),
                    Func::QueryUnescape => Cow::Owned(super::percent_decode(&a(0), true)),
                    Func::RegexpInFile => {
                        let s = a(0);
                        bool_str(data.regexes(a(1).as_ref()).is_some_and(|rs| rs.iter().any(|r| r.is_match(&s))))
                    }
                    Func::ContainsAnyLine => {
                        let s = a(0).to_lowercase();
                        bool_str(
                            data.lines
                                .get(a(1).as_ref())
                                .is_some_and(|l| l.iter().any(|x| s.contains(&x.to_lowercase()))),
                        )
                    }
                    Func::IpInRange => bool_str(ip_in_range(&a(0), &a(1))),
                    Func::IsIpv4 => bool_str(a(0).parse::<std::net::Ipv4Addr>().is_ok()),
                    Func::IsIpv6 => bool_str(a(0).parse::<std::net::Ipv6Addr>().is_ok()),
                    Func::IsIp => bool_str(a(0).parse::<std::net::IpAddr>().is_ok()),
                    Func::IpPrefix => Cow::Owned(ip_prefix(&a(0), data.ipv6_prefix.get())),
                }
            }
            other => bool_str(other.test(evt, data)),
        }
    }

    /// Evaluates as an owned string (statics, keys).
    #[must_use]
    pub fn string(&self, evt: &Event, data: &DataFiles) -> String {
        self.value(evt, data).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evt() -> Event {
        let mut e = Event::default();
        e.parsed.insert("program".into(), "sshd".into());
        e.meta.insert("log_type".into(), "ssh_failed-auth".into());
        std::sync::Arc::make_mut(&mut e.line.labels).insert("type".into(), "syslog".into());
        e
    }

    #[test]
    fn recognised_forms_agree_with_expected_results() {
        let e = evt();
        for (src, want) in [
            ("evt.Line.Labels.type == 'syslog'", true),
            ("evt.Line.Labels.type not in ['syslog', 'unifi']", false),
            ("evt.Parsed.program in ['sshd', 'sshd-session']", true),
            ("evt.Meta.log_type == 'ssh_failed-auth' && evt.StrTime != ''", false),
            ("evt.Meta.log_type == \"x\" or (evt.Parsed.program == 'sshd' and not (evt.StrTime != ''))", true),
            ("evt.Parsed.missing == ''", true),
        ] {
            let f = compile(src).unwrap_or_else(|| panic!("not recognised: {src}"));
            assert_eq!(f.test(&e, &DataFiles::default()), want, "{src}");
        }
        let d = DataFiles::default();
        assert_eq!(compile("evt.Parsed.program").unwrap().string(&e, &d), "sshd");
        assert!(
            compile("Upper(evt.Parsed.program) == 'SSHD' && evt.Parsed.program startsWith 'ss'").unwrap().test(&e, &d)
        );
        assert!(compile("Lower(evt.Parsed.x) contains 'a'").is_some());
    }

    #[test]
    fn guards_are_necessary_conditions() {
        let (e, d) = (evt(), DataFiles::default());
        let g = guard("evt.Parsed.program == 'nginx' && evt.Meta.x contains 'a' and any(x, {# > 1})").unwrap();
        assert!(!g.test(&e, &d));
        // Non-ASCII text is scanned by bytes (no slicing inside a character).
        assert!(guard("evt.Parsed.program == 'é' && évt(é) ?? x").is_none());
        assert!(!guard("evt.Parsed.program == 'é' && f(é)").unwrap().test(&e, &d));
        let g = guard("if (evt.Parsed.program == 'sshd') {\n let x = 1; x > 0 } else { false }").unwrap();
        assert!(g.test(&e, &d));
        for src in [
            "evt.Parsed.program == 'sshd' || any(x, {# > 1})",
            "evt.Parsed.program == 'sshd' and any(x, {# > 1}) ? true : false",
            "if (evt.Parsed.program == 'sshd') { 1 } else { true }",
            "any(x, {# > 1})",
            "evt.Parsed.a == 'x && y' or b",
        ] {
            assert!(guard(src).is_none(), "{src}");
        }
    }

    #[test]
    fn everything_else_goes_to_the_interpreter() {
        for src in [
            "File('x')",
            "evt.Parsed.x matches evt.Parsed.y",
            "evt.Parsed.x matches '('",
            "any(File('a'), {# == 'b' && evt.Parsed.x == 'c'})",
            "any(File('a'), {Upper(#) matches evt.Parsed.x})",
            "# == 'a'",
            "len(evt.Parsed.x) > 3",
            "len(evt.Parsed.x) + 'a'",
            "evt.Parsed.x == 1",
            "evt.Unmarshaled.a.b == 'c'",
            "1 == 1",
            "evt.Parsed.a == 'x\\\\'y'",
        ] {
            assert!(compile(src).is_none(), "{src}");
        }
    }
}
