//! The fast path's lexer and parser: the subset of expr-lang it recognises, with constant
//! folding (`Upper('lit')`), regexes compiled once, and `any(File(...), {...})` closures turned
//! into whole-file matchers. Anything else yields `None` and goes to the interpreter.
use std::sync::OnceLock;

use super::{AnyFile, Case, Fast, Func, LineOp, StrOp, Tokens};
use crate::engine::event::FieldRef;

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Path(String),
    Str(String),
    Op(&'static str),
    LBrack,
    RBrack,
    LParen,
    RParen,
    LBrace,
    RBrace,
    Comma,
    Hash,
}

/// Go's escapes in a quoted literal, or `None` for one the fast path leaves to the interpreter.
fn unescape(b: &[u8], i: &mut usize, s: &str) -> Option<String> {
    let q = b[*i];
    let mut v = String::new();
    *i += 1;
    while *i < b.len() && b[*i] != q {
        if b[*i] == b'\\' {
            let c = match b.get(*i + 1)? {
                b'\\' => '\\',
                b'n' => '\n',
                b'r' => '\r',
                b't' => '\t',
                b'"' if q == b'"' => '"',
                _ => return None,
            };
            v.push(c);
            *i += 2;
            continue;
        }
        let ch = s[*i..].chars().next()?;
        v.push(ch);
        *i += ch.len_utf8();
    }
    if *i >= b.len() {
        return None;
    }
    *i += 1;
    Some(v)
}

fn lex(s: &str) -> Option<Vec<Tok>> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let two = b.get(i..i + 2);
        let (tok, len) = match b[i] {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            b'\'' | b'"' => {
                out.push(Tok::Str(unescape(b, &mut i, s)?));
                continue;
            }
            b'[' => (Tok::LBrack, 1),
            b']' => (Tok::RBrack, 1),
            b'(' => (Tok::LParen, 1),
            b')' => (Tok::RParen, 1),
            b'{' => (Tok::LBrace, 1),
            b'}' => (Tok::RBrace, 1),
            b',' => (Tok::Comma, 1),
            b'#' => (Tok::Hash, 1),
            b'?' => (Tok::Op("?"), 1),
            b':' => (Tok::Op(":"), 1),
            b'+' => (Tok::Op("+"), 1),
            _ if two == Some(b"==") => (Tok::Op("=="), 2),
            _ if two == Some(b"!=") => (Tok::Op("!="), 2),
            _ if two == Some(b"&&") => (Tok::Op("&&"), 2),
            _ if two == Some(b"||") => (Tok::Op("||"), 2),
            b'!' => (Tok::Op("!"), 1),
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
                    "matches" => Tok::Op("matches"),
                    _ => Tok::Path(w.to_owned()),
                });
                continue;
            }
            _ => return None,
        };
        out.push(tok);
        i += len;
    }
    Some(out)
}

/// What a node yields, to refuse mixes the interpreter would treat differently (numbers).
#[derive(Clone, Copy, PartialEq)]
enum Yields {
    Str,
    Bool,
    Int,
    Nil,
}

fn kind(f: &Fast) -> Yields {
    match f {
        Fast::Field(_) | Fast::Str(_) | Fast::Concat(_) | Fast::Hash => Yields::Str,
        Fast::Call(func, _) if func.returns_string() => Yields::Str,
        Fast::Cond(_, a, _) => kind(a),
        Fast::Len(_) => Yields::Int,
        Fast::Nil => Yields::Nil,
        _ => Yields::Bool,
    }
}

struct FastParser {
    c: Tokens<Tok>,
    /// Inside an `any(File(..), {..})` body, where `#` is the file's line.
    in_closure: bool,
}

impl FastParser {
    fn ternary(&mut self) -> Option<Fast> {
        let c = self.or()?;
        if self.c.peek() != Some(&Tok::Op("?")) {
            return Some(c);
        }
        self.c.pos += 1;
        let a = self.ternary()?;
        self.c.eat(&Tok::Op(":"))?;
        let b = self.ternary()?;
        (kind(&c) == Yields::Bool && kind(&a) == kind(&b)).then(|| Fast::Cond(Box::new(c), Box::new(a), Box::new(b)))
    }
    fn or(&mut self) -> Option<Fast> {
        let mut l = self.and()?;
        while self.c.peek() == Some(&Tok::Op("||")) {
            self.c.pos += 1;
            l = Fast::Or(Box::new(l), Box::new(self.and()?));
        }
        Some(l)
    }
    fn and(&mut self) -> Option<Fast> {
        let mut l = self.unary()?;
        while self.c.peek() == Some(&Tok::Op("&&")) {
            self.c.pos += 1;
            l = Fast::And(Box::new(l), Box::new(self.unary()?));
        }
        Some(l)
    }
    fn unary(&mut self) -> Option<Fast> {
        if matches!(self.c.peek(), Some(Tok::Op("!" | "not"))) {
            self.c.pos += 1;
            return Some(Fast::Not(Box::new(self.unary()?)));
        }
        self.cmp()
    }
    fn cmp(&mut self) -> Option<Fast> {
        let left = self.sum()?;
        let mut neg = false;
        if self.c.peek() == Some(&Tok::Op("not")) {
            neg = true;
            self.c.pos += 1;
        }
        let op = match self.c.peek() {
            Some(Tok::Op(op @ ("==" | "!=" | "contains" | "startsWith" | "endsWith" | "matches" | "in"))) => *op,
            _ if neg => return None,
            _ => return Some(left),
        };
        if neg && matches!(op, "==" | "!=") {
            return None;
        }
        self.c.pos += 1;
        if op == "in" {
            let l = self.list()?;
            return (kind(&left) == Yields::Str).then(|| Fast::In(Box::new(left), l, neg));
        }
        let right = self.sum()?;
        let (kl, kr) = (kind(&left), kind(&right));
        let node = match op {
            "==" | "!=" => {
                let comparable =
                    kl == kr || (kl == Yields::Nil || kr == Yields::Nil) && kl != Yields::Int && kr != Yields::Int;
                if !comparable {
                    return None;
                }
                Fast::Eq(Box::new(left), Box::new(right), op == "!=")
            }
            _ if kl != Yields::Str || kr != Yields::Str => return None,
            "matches" => matches_node(left, right)?,
            _ => {
                let op = match op {
                    "contains" => StrOp::Contains,
                    "startsWith" => StrOp::StartsWith,
                    _ => StrOp::EndsWith,
                };
                Fast::StrOp(op, Box::new(left), Box::new(right))
            }
        };
        Some(if neg { Fast::Not(Box::new(node)) } else { node })
    }
    fn sum(&mut self) -> Option<Fast> {
        let first = self.value()?;
        if self.c.peek() != Some(&Tok::Op("+")) {
            return Some(first);
        }
        let mut parts = vec![first];
        while self.c.peek() == Some(&Tok::Op("+")) {
            self.c.pos += 1;
            parts.push(self.value()?);
        }
        parts.iter().all(|p| kind(p) == Yields::Str).then_some(Fast::Concat(parts))
    }
    fn args(&mut self) -> Option<Vec<Fast>> {
        self.c.eat(&Tok::LParen)?;
        let mut args = Vec::new();
        if self.c.peek() == Some(&Tok::RParen) {
            self.c.pos += 1;
            return Some(args);
        }
        loop {
            args.push(self.ternary()?);
            match self.c.next()? {
                Tok::Comma => {}
                Tok::RParen => return Some(args),
                _ => return None,
            }
        }
    }
    fn value(&mut self) -> Option<Fast> {
        match self.c.next()? {
            Tok::Str(s) => Some(Fast::Str(s)),
            Tok::Hash if self.in_closure => Some(Fast::Hash),
            Tok::LParen => {
                let e = self.ternary()?;
                self.c.eat(&Tok::RParen)?;
                Some(e)
            }
            Tok::Path(p) if p == "true" || p == "false" => Some(Fast::Bool(p == "true")),
            Tok::Path(p) if p == "nil" => Some(Fast::Nil),
            Tok::Path(p) if self.c.peek() == Some(&Tok::LParen) => self.call(&p),
            Tok::Path(p) => field_path(&p).map(Fast::Field),
            _ => None,
        }
    }
    fn call(&mut self, name: &str) -> Option<Fast> {
        if matches!(name, "any" | "none") && !self.in_closure {
            return self.any_file(name == "none");
        }
        let args = self.args()?;
        if name == "len" {
            let [a] = <[Fast; 1]>::try_from(args).ok()?;
            return (kind(&a) == Yields::Str).then(|| Fast::Len(Box::new(a)));
        }
        let func = Func::from_name(name)?;
        if args.len() != func.arity() || args.iter().any(|a| kind(a) != Yields::Str) {
            return None;
        }
        // A helper over a named data file becomes a matcher over the whole file.
        let file_op = match func {
            Func::RegexpInFile => Some((LineOp::Matches, Case::Same)),
            Func::ContainsAnyLine => Some((LineOp::SubjectContains, Case::Lower)),
            _ => None,
        };
        if let (Some((op, case)), [subject, Fast::Str(file)]) = (file_op, args.as_slice()) {
            let subject = match case {
                Case::Lower => Fast::Call(Func::Lower, vec![subject.clone()]),
                _ => subject.clone(),
            };
            let file = file.clone();
            return Some(Fast::AnyFile(Box::new(AnyFile { file, subject, op, case, matcher: OnceLock::new() })));
        }
        Some(fold(Fast::Call(func, args)))
    }
    /// `any(File('name'), { body })`, where the body compares one side that does not read the
    /// line with the line itself (`#`, `Upper(#)` or `Lower(#)`).
    fn any_file(&mut self, negate: bool) -> Option<Fast> {
        self.c.eat(&Tok::LParen)?;
        if self.c.next()? != Tok::Path("File".into()) {
            return None;
        }
        self.c.eat(&Tok::LParen)?;
        let Tok::Str(file) = self.c.next()? else { return None };
        self.c.eat(&Tok::RParen)?;
        self.c.eat(&Tok::Comma)?;
        self.c.eat(&Tok::LBrace)?;
        self.in_closure = true;
        let body = self.ternary();
        self.in_closure = false;
        self.c.eat(&Tok::RBrace)?;
        self.c.eat(&Tok::RParen)?;
        let (op, subject, line) = match body? {
            Fast::StrOp(op, a, b) if !a.reads_line() && b.reads_line() => (
                match op {
                    StrOp::Contains => LineOp::SubjectContains,
                    StrOp::StartsWith => LineOp::StartsWith,
                    StrOp::EndsWith => LineOp::EndsWith,
                },
                *a,
                *b,
            ),
            Fast::StrOp(StrOp::Contains, a, b) if a.reads_line() && !b.reads_line() => (LineOp::LineContains, *b, *a),
            Fast::Eq(a, b, false) if !a.reads_line() && b.reads_line() => (LineOp::Eq, *a, *b),
            Fast::Eq(a, b, false) if a.reads_line() && !b.reads_line() => (LineOp::Eq, *b, *a),
            Fast::MatchesLine(a, case) => (LineOp::Matches, *a, case.apply(Fast::Hash)),
            _ => return None,
        };
        let case = Case::of_line(&line)?;
        let any = Fast::AnyFile(Box::new(AnyFile { file, subject, op, case, matcher: OnceLock::new() }));
        Some(if negate { Fast::Not(Box::new(any)) } else { any })
    }
    fn list(&mut self) -> Option<Vec<String>> {
        self.c.eat(&Tok::LBrack)?;
        let mut v = Vec::new();
        loop {
            match self.c.next()? {
                Tok::Str(s) => v.push(s),
                Tok::RBrack => return Some(v),
                _ => return None,
            }
            match self.c.next()? {
                Tok::Comma => {}
                Tok::RBrack => return Some(v),
                _ => return None,
            }
        }
    }
}

/// `a matches b`: the pattern must be constant (compiled here, once), or the closure's line.
fn matches_node(left: Fast, right: Fast) -> Option<Fast> {
    match right {
        Fast::Str(p) => regex::Regex::new(&p).ok().map(|r| Fast::Matches(Box::new(left), r)),
        line if !left.reads_line() => Case::of_line(&line).map(|c| Fast::MatchesLine(Box::new(left), c)),
        _ => None,
    }
}

/// Folds a helper over literals into its result (`Upper('/a')` is `'/A'`).
fn fold(call: Fast) -> Fast {
    match &call {
        // `IpPrefix` reads the configured prefix length: not a constant.
        Fast::Call(f, args)
            if f.returns_string() && *f != Func::IpPrefix && args.iter().all(|a| matches!(a, Fast::Str(_))) =>
        {
            Fast::Str(call.value(&crate::engine::event::Event::default(), &super::DataFiles::default()).into_owned())
        }
        _ => call,
    }
}

fn field_path(p: &str) -> Option<FieldRef> {
    let rest = p.strip_prefix("evt.")?;
    let ok = rest == "StrTime"
        || rest == "Line.Raw"
        || rest == "Line.Src"
        || rest == "Line.Module"
        || ["Parsed.", "Meta.", "Enriched.", "Line.Labels."]
            .iter()
            .any(|pre| rest.strip_prefix(pre).is_some_and(|k| !k.is_empty() && !k.contains('.')));
    if ok { FieldRef::parse(rest) } else { None }
}

/// Recognises `src` (with its `let`s already inlined), or `None` when it needs the interpreter.
#[must_use]
pub fn compile(src: &str) -> Option<Fast> {
    let t = lex(src)?;
    let mut p = FastParser { c: Tokens { toks: t, pos: 0 }, in_closure: false };
    let e = p.ternary()?;
    (p.c.pos == p.c.toks.len() && !e.reads_line() && !matches!(e, Fast::MatchesLine(..))).then_some(e)
}

/// Byte offsets of `src`'s top-level `and`/`&&` (outside strings, brackets and braces), or
/// `None` when the top level also has `or`, `||` or `?` (the conjuncts would not be conditions
/// of the whole).
fn top_level_ands(src: &str) -> Option<Vec<(usize, usize)>> {
    let b = src.as_bytes();
    let word = |i: usize, w: &str| {
        b[i..].starts_with(w.as_bytes())
            && (i == 0 || !b[i - 1].is_ascii_alphanumeric() && b[i - 1] != b'_' && b[i - 1] != b'.')
            && b.get(i + w.len()).is_none_or(|c| !c.is_ascii_alphanumeric() && *c != b'_')
    };
    let (mut depth, mut quote, mut i, mut cuts) = (0i32, None, 0, Vec::new());
    while i < b.len() {
        let c = b[i];
        match quote {
            Some(_) if c == b'\\' => i += 1,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                b'\'' | b'"' | b'`' => quote = Some(c),
                b'(' | b'[' | b'{' => depth += 1,
                b')' | b']' | b'}' => depth -= 1,
                _ if depth != 0 => {}
                b'?' => return None,
                _ if b[i..].starts_with(b"||") || word(i, "or") => return None,
                _ if b[i..].starts_with(b"&&") => cuts.push((i, 2)),
                _ if word(i, "and") => cuts.push((i, 3)),
                _ => {}
            },
        }
        i += 1;
    }
    Some(cuts)
}

/// A necessary condition of `src` that the fast path can run when `src` itself needs the
/// interpreter: the recognised top-level conjuncts of `a and b and c`, or the condition of
/// `if (c) { ... } else { false }`. A filter whose guard is false is false without converting
/// the event for the interpreter.
#[must_use]
pub fn guard(src: &str) -> Option<Fast> {
    let s = src.trim();
    if let Some(rest) = s.strip_prefix("if").filter(|r| r.trim_start().starts_with('(')) {
        let rest = rest.trim_start();
        let close = matching_paren(rest)?;
        let tail: String = s.rsplit_once("else")?.1.chars().filter(|c| !c.is_whitespace()).collect();
        return if tail == "{false}" { compile(&rest[1..close]) } else { None };
    }
    let mut parts = Vec::new();
    let mut start = 0;
    for (at, len) in top_level_ands(s)? {
        parts.push(&s[start..at]);
        start = at + len;
    }
    parts.push(&s[start..]);
    if parts.len() < 2 {
        return None;
    }
    parts.into_iter().filter_map(compile).reduce(|a, b| Fast::And(Box::new(a), Box::new(b)))
}

/// The offset of the `)` closing the `(` that opens `s`.
fn matching_paren(s: &str) -> Option<usize> {
    let (mut depth, mut quote) = (0i32, None);
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match quote {
            Some(_) if c == b'\\' => i += 1,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                b'\'' | b'"' | b'`' => quote = Some(c),
                b'(' => depth += 1,
                b')' => {
                    depth -= 1;
                    if depth == 0 {
                        return Some(i);
                    }
                }
                _ => {}
            },
        }
        i += 1;
    }
    None
}
