//! A fast path for the expressions that make up most filters and statics: field reads,
//! comparisons of fields with literals (`evt.Meta.log_type == 'ssh_failed-auth'`,
//! `evt.Parsed.program in ['sshd', 'sshd-session']`), the string operators (`contains`,
//! `startsWith`, `endsWith`), the common string helpers (`Lower`, `Upper`, `TrimSpace`,
//! `RegexpInFile`, `ContainsAnyLine`, `IpInRange`, ...), and `&&`/`||`/`!` of those. They run
//! straight on the event, without converting it for the interpreter; a missing field reads as ""
//! as in Go's `map[string]string`. Anything else goes to expr-lang.
use super::{event::Event, expr::DataFiles};

/// Helpers the fast path evaluates itself (pure functions of strings).
const FUNCS: [&str; 11] = [
    "Lower",
    "Upper",
    "TrimSpace",
    "RegexpInFile",
    "ContainsAnyLine",
    "IpInRange",
    "IsIPV4",
    "IsIPV6",
    "IsIP",
    "PathUnescape",
    "QueryUnescape",
];

/// A recognised expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Fast {
    /// A field's value (statics).
    Field(String),
    /// A string literal.
    Str(String),
    /// A helper call.
    Call(String, Vec<Fast>),
    /// `a == b` (`negate`: `!=`).
    Eq(Box<Fast>, Box<Fast>, bool),
    /// `a in [lits]` (`negate`: `not in`).
    In(Box<Fast>, Vec<String>, bool),
    /// `a contains|startsWith|endsWith b`.
    StrOp(&'static str, Box<Fast>, Box<Fast>),
    /// Both.
    And(Box<Fast>, Box<Fast>),
    /// Either.
    Or(Box<Fast>, Box<Fast>),
    /// Negation.
    Not(Box<Fast>),
    /// `true` / `false`.
    Bool(bool),
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Path(String),
    Str(String),
    Op(&'static str),
    LBrack,
    RBrack,
    LParen,
    RParen,
    Comma,
}

fn lex(s: &str) -> Option<Vec<Tok>> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let c = b[i];
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'\'' | b'"' => {
                let q = c;
                let mut v = String::new();
                i += 1;
                while i < b.len() && b[i] != q {
                    if b[i] == b'\\' {
                        return None; // escapes: leave to the full interpreter
                    }
                    let ch = s[i..].chars().next()?;
                    v.push(ch);
                    i += ch.len_utf8();
                }
                if i >= b.len() {
                    return None;
                }
                i += 1;
                out.push(Tok::Str(v));
            }
            b'[' => {
                out.push(Tok::LBrack);
                i += 1;
            }
            b']' => {
                out.push(Tok::RBrack);
                i += 1;
            }
            b'(' => {
                out.push(Tok::LParen);
                i += 1;
            }
            b')' => {
                out.push(Tok::RParen);
                i += 1;
            }
            b',' => {
                out.push(Tok::Comma);
                i += 1;
            }
            b'=' if b.get(i + 1) == Some(&b'=') => {
                out.push(Tok::Op("=="));
                i += 2;
            }
            b'!' if b.get(i + 1) == Some(&b'=') => {
                out.push(Tok::Op("!="));
                i += 2;
            }
            b'!' => {
                out.push(Tok::Op("!"));
                i += 1;
            }
            b'&' if b.get(i + 1) == Some(&b'&') => {
                out.push(Tok::Op("&&"));
                i += 2;
            }
            b'|' if b.get(i + 1) == Some(&b'|') => {
                out.push(Tok::Op("||"));
                i += 2;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'.') {
                    i += 1;
                }
                let w = &s[start..i];
                out.push(match w {
                    "and" => Tok::Op("&&"),
                    "or" => Tok::Op("||"),
                    "not" => Tok::Op("not"),
                    "in" => Tok::Op("in"),
                    "contains" => Tok::Op("contains"),
                    "startsWith" => Tok::Op("startsWith"),
                    "endsWith" => Tok::Op("endsWith"),
                    _ => Tok::Path(w.to_owned()),
                });
            }
            _ => return None,
        }
    }
    Some(out)
}

struct P {
    t: Vec<Tok>,
    i: usize,
}

impl P {
    fn peek(&self) -> Option<&Tok> {
        self.t.get(self.i)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.t.get(self.i).cloned();
        self.i += 1;
        t
    }
    fn or(&mut self) -> Option<Fast> {
        let mut l = self.and()?;
        while self.peek() == Some(&Tok::Op("||")) {
            self.i += 1;
            l = Fast::Or(Box::new(l), Box::new(self.and()?));
        }
        Some(l)
    }
    fn and(&mut self) -> Option<Fast> {
        let mut l = self.unary()?;
        while self.peek() == Some(&Tok::Op("&&")) {
            self.i += 1;
            l = Fast::And(Box::new(l), Box::new(self.unary()?));
        }
        Some(l)
    }
    fn unary(&mut self) -> Option<Fast> {
        if matches!(self.peek(), Some(Tok::Op("!" | "not"))) {
            self.i += 1;
            return Some(Fast::Not(Box::new(self.unary()?)));
        }
        self.cmp()
    }
    fn cmp(&mut self) -> Option<Fast> {
        if self.peek() == Some(&Tok::LParen) {
            self.i += 1;
            let e = self.or()?;
            return (self.next()? == Tok::RParen).then_some(e);
        }
        let left = self.value()?;
        match self.peek() {
            Some(Tok::Op(op @ ("==" | "!="))) => {
                let neg = *op == "!=";
                self.i += 1;
                Some(Fast::Eq(Box::new(left), Box::new(self.value()?), neg))
            }
            Some(Tok::Op(op @ ("contains" | "startsWith" | "endsWith"))) => {
                let op = *op;
                self.i += 1;
                Some(Fast::StrOp(op, Box::new(left), Box::new(self.value()?)))
            }
            Some(Tok::Op("in")) => {
                self.i += 1;
                self.list().map(|l| Fast::In(Box::new(left), l, false))
            }
            Some(Tok::Op("not")) if self.t.get(self.i + 1) == Some(&Tok::Op("in")) => {
                self.i += 2;
                self.list().map(|l| Fast::In(Box::new(left), l, true))
            }
            _ => Some(left),
        }
    }
    fn value(&mut self) -> Option<Fast> {
        match self.next()? {
            Tok::Str(s) => Some(Fast::Str(s)),
            Tok::Path(p) if p == "true" || p == "false" => Some(Fast::Bool(p == "true")),
            Tok::Path(p) if FUNCS.contains(&p.as_str()) && self.peek() == Some(&Tok::LParen) => {
                self.i += 1;
                let mut args = Vec::new();
                if self.peek() == Some(&Tok::RParen) {
                    self.i += 1;
                    return Some(Fast::Call(p, args));
                }
                loop {
                    args.push(self.value()?);
                    match self.next()? {
                        Tok::Comma => {}
                        Tok::RParen => return Some(Fast::Call(p, args)),
                        _ => return None,
                    }
                }
            }
            Tok::Path(p) => field_path(&p).map(Fast::Field),
            _ => None,
        }
    }
    fn list(&mut self) -> Option<Vec<String>> {
        if self.next()? != Tok::LBrack {
            return None;
        }
        let mut v = Vec::new();
        loop {
            match self.next()? {
                Tok::Str(s) => v.push(s),
                Tok::RBrack => return Some(v),
                _ => return None,
            }
            match self.next()? {
                Tok::Comma => {}
                Tok::RBrack => return Some(v),
                _ => return None,
            }
        }
    }
}

/// Only fields the event holds as strings.
fn field_path(p: &str) -> Option<String> {
    let rest = p.strip_prefix("evt.")?;
    let ok = rest == "StrTime"
        || rest == "Line.Raw"
        || rest == "Line.Src"
        || rest == "Line.Module"
        || ["Parsed.", "Meta.", "Enriched.", "Line.Labels."]
            .iter()
            .any(|pre| rest.strip_prefix(pre).is_some_and(|k| !k.is_empty() && !k.contains('.')));
    ok.then(|| rest.to_owned())
}

/// Recognises `src`, or `None` when it needs the full interpreter.
#[must_use]
pub fn compile(src: &str) -> Option<Fast> {
    let t = lex(src)?;
    let mut p = P { t, i: 0 };
    let e = p.or()?;
    (p.i == p.t.len()).then_some(e)
}

fn get<'a>(evt: &'a Event, field: &str) -> &'a str {
    if let Some(k) = field.strip_prefix("Line.Labels.") {
        return evt.line.labels.get(k).map_or("", String::as_str);
    }
    evt.get(field).unwrap_or("")
}

fn ip_in_range(ip: &str, range: &str) -> bool {
    let Ok(ip) = ip.trim().parse::<std::net::IpAddr>() else { return false };
    range.trim().parse::<ipnet::IpNet>().is_ok_and(|n| n.contains(&crate::addr::canonical_ip(ip)))
}

impl Fast {
    /// Evaluates as a condition.
    #[must_use]
    pub fn test(&self, evt: &Event, data: &DataFiles) -> bool {
        match self {
            Fast::Eq(a, b, neg) => (a.string(evt, data) == b.string(evt, data)) != *neg,
            Fast::In(a, l, neg) => {
                let x = a.string(evt, data);
                l.contains(&x) != *neg
            }
            Fast::StrOp(op, a, b) => {
                let (a, b) = (a.string(evt, data), b.string(evt, data));
                match *op {
                    "contains" => a.contains(&b),
                    "startsWith" => a.starts_with(&b),
                    _ => a.ends_with(&b),
                }
            }
            Fast::And(a, b) => a.test(evt, data) && b.test(evt, data),
            Fast::Or(a, b) => a.test(evt, data) || b.test(evt, data),
            Fast::Not(a) => !a.test(evt, data),
            Fast::Bool(b) => *b,
            Fast::Call(..) => self.string(evt, data) == "true",
            // A bare string is not a boolean: the full interpreter would make the filter false.
            Fast::Field(_) | Fast::Str(_) => false,
        }
    }

    /// Evaluates as a value (statics, operands).
    #[must_use]
    pub fn string(&self, evt: &Event, data: &DataFiles) -> String {
        match self {
            Fast::Field(f) => get(evt, f).to_owned(),
            Fast::Str(s) => s.clone(),
            Fast::Call(name, args) => {
                let a = |i: usize| args.get(i).map(|x| x.string(evt, data)).unwrap_or_default();
                match name.as_str() {
                    "Lower" => a(0).to_lowercase(),
                    "Upper" => a(0).to_uppercase(),
                    "TrimSpace" => a(0).trim().to_owned(),
                    "RegexpInFile" => {
                        let s = a(0);
                        data.regexes.get(&a(1)).is_some_and(|rs| rs.iter().any(|r| r.is_match(&s))).to_string()
                    }
                    "ContainsAnyLine" => {
                        let s = a(0).to_lowercase();
                        data.lines
                            .get(&a(1))
                            .is_some_and(|l| l.iter().any(|x| s.contains(&x.to_lowercase())))
                            .to_string()
                    }
                    "IpInRange" => ip_in_range(&a(0), &a(1)).to_string(),
                    "IsIPV4" => a(0).parse::<std::net::Ipv4Addr>().is_ok().to_string(),
                    "IsIPV6" => a(0).parse::<std::net::Ipv6Addr>().is_ok().to_string(),
                    "IsIP" => a(0).parse::<std::net::IpAddr>().is_ok().to_string(),
                    "PathUnescape" => super::expr::percent_decode(&a(0), false),
                    "QueryUnescape" => super::expr::percent_decode(&a(0), true),
                    _ => String::new(),
                }
            }
            other => other.test(evt, data).to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evt() -> Event {
        let mut e = Event::default();
        e.parsed.insert("program".into(), "sshd".into());
        e.meta.insert("log_type".into(), "ssh_failed-auth".into());
        e.line.labels.insert("type".into(), "syslog".into());
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
    fn everything_else_goes_to_the_interpreter() {
        for src in [
            "File('x')",
            "evt.Parsed.x matches 'a'",
            "any(File('a'), {# == 'b'})",
            "evt.Unmarshaled.a.b == 'c'",
            "1 == 1",
            "evt.Parsed.a == 'x\\\\'y'",
        ] {
            assert!(compile(src).is_none(), "{src}");
        }
    }
}
