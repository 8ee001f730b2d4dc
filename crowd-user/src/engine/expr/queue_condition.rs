//! Conditions over a bucket's queue run natively: the hub's conditional scenarios count, filter
//! and time the queue's events (`len(filter(queue.Queue, {#.Meta.log_type == 'x'})) >= 4 &&
//! MedianInterval(map(queue.Queue[-4:], {#.Time})) > duration("10m")`), which the interpreter
//! runs at every event by converting the queue and copying its variables per element. Element
//! predicates are fast-path expressions (see `fast`) over each queued event. A condition outside
//! this subset stays with the interpreter.
use std::{collections::VecDeque, sync::Arc};

use super::{
    DataFiles,
    fast::{Fast, Tokens},
};
use crate::engine::event::Event;

/// A list of queued events.
#[derive(Clone, Debug)]
enum List {
    Queue,
    /// `filter(list, {pred})`; the slot where its result is kept while one condition runs (a
    /// `let` inlined twice is filtered once).
    Filter(Box<List>, Fast, usize),
    /// `list[from:to]`, Go-style bounds (negative counts from the end), clamped.
    Slice(Box<List>, Option<i64>, Option<i64>),
}

/// A number.
#[derive(Clone, Debug)]
enum Num {
    Lit(f64),
    Len(List),
    Count(List, Fast),
    /// `MedianInterval(map(list, {#.Time}))`.
    Median(List),
}

/// A compiled condition, and how many filter results it keeps while it runs.
#[derive(Clone, Debug)]
pub struct QueueCondition(Cond, usize);

/// What one evaluation reads, and the filters' results so far.
struct QueuedEvent<'a> {
    q: &'a VecDeque<Arc<Event>>,
    data: &'a DataFiles,
    memo: std::cell::RefCell<Vec<Option<Vec<&'a Event>>>>,
}

#[derive(Clone, Debug)]
enum Cond {
    Cmp(Num, &'static str, Num),
    Any(List, Fast, bool),
    All(List, Fast),
    And(Box<Cond>, Box<Cond>),
    Or(Box<Cond>, Box<Cond>),
    Not(Box<Cond>),
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Word(String),
    Num(f64),
    Str(String),
    Op(&'static str),
    /// A closure's body, as text.
    Body(String),
    Open,
    Close,
    LBrack,
    RBrack,
    Colon,
    Comma,
}

/// The end of the quoted literal starting at `i`.
fn skip_str(b: &[u8], mut i: usize) -> Option<usize> {
    let q = b[i];
    i += 1;
    while i < b.len() && b[i] != q {
        i += if b[i] == b'\\' { 2 } else { 1 };
    }
    (i < b.len()).then_some(i + 1)
}

fn lex(s: &str) -> Option<Vec<Tok>> {
    let b = s.as_bytes();
    let (mut i, mut out) = (0, Vec::new());
    while i < b.len() {
        let two = b.get(i..i + 2);
        let (tok, len) = match b[i] {
            c if c.is_ascii_whitespace() => (None, 1),
            b'\'' | b'"' => {
                let end = skip_str(b, i)?;
                (Some(Tok::Str(s[i + 1..end - 1].to_owned())), end - i)
            }
            b'{' => {
                let (mut depth, mut j) = (0, i);
                loop {
                    match *b.get(j)? {
                        b'\'' | b'"' => {
                            j = skip_str(b, j)?;
                            continue;
                        }
                        b'{' => depth += 1,
                        b'}' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    j += 1;
                }
                (Some(Tok::Body(s[i + 1..j].to_owned())), j + 1 - i)
            }
            b'(' => (Some(Tok::Open), 1),
            b')' => (Some(Tok::Close), 1),
            b'[' => (Some(Tok::LBrack), 1),
            b']' => (Some(Tok::RBrack), 1),
            b':' => (Some(Tok::Colon), 1),
            b',' => (Some(Tok::Comma), 1),
            _ if two == Some(b">=") => (Some(Tok::Op(">=")), 2),
            _ if two == Some(b"<=") => (Some(Tok::Op("<=")), 2),
            _ if two == Some(b"==") => (Some(Tok::Op("==")), 2),
            _ if two == Some(b"!=") => (Some(Tok::Op("!=")), 2),
            _ if two == Some(b"&&") => (Some(Tok::Op("&&")), 2),
            _ if two == Some(b"||") => (Some(Tok::Op("||")), 2),
            b'>' => (Some(Tok::Op(">")), 1),
            b'<' => (Some(Tok::Op("<")), 1),
            b'!' => (Some(Tok::Op("!")), 1),
            b'-' | b'0'..=b'9' => {
                let end = (i + 1..b.len()).find(|&j| !(b[j].is_ascii_digit() || b[j] == b'.')).unwrap_or(b.len());
                (Some(Tok::Num(s[i..end].parse().ok()?)), end - i)
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let end = (i..b.len())
                    .find(|&j| !(b[j].is_ascii_alphanumeric() || b[j] == b'_' || b[j] == b'.'))
                    .unwrap_or(b.len());
                let w = &s[i..end];
                let t = match w {
                    "and" => Tok::Op("&&"),
                    "or" => Tok::Op("||"),
                    "not" => Tok::Op("!"),
                    _ => Tok::Word(w.to_owned()),
                };
                (Some(t), end - i)
            }
            _ => return None,
        };
        out.extend(tok);
        i += len;
    }
    Some(out)
}

/// A closure body over one element (`#.Meta.x`, or the shorthand `.Meta.x`) as a fast-path
/// expression over that element as `evt`.
fn element_pred(body: &str) -> Option<Fast> {
    let b = body.as_bytes();
    let mut out = String::with_capacity(body.len() + 16);
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\'' | b'"' => {
                let end = skip_str(b, i)?;
                out.push_str(&body[i..end]);
                i = end;
                continue;
            }
            b'#' if b.get(i + 1) == Some(&b'.') => {
                out.push_str("evt.");
                i += 2;
                continue;
            }
            b'.' if i == 0 || !(b[i - 1].is_ascii_alphanumeric() || matches!(b[i - 1], b'_' | b')' | b']')) => {
                out.push_str("evt");
            }
            _ => {}
        }
        let ch = body[i..].chars().next()?;
        out.push(ch);
        i += ch.len_utf8();
    }
    super::fast::compile(&out)
}

struct CondParser {
    c: Tokens<Tok>,
}

impl CondParser {
    fn or(&mut self) -> Option<Cond> {
        let mut l = self.and()?;
        while self.c.peek() == Some(&Tok::Op("||")) {
            self.c.pos += 1;
            l = Cond::Or(Box::new(l), Box::new(self.and()?));
        }
        Some(l)
    }
    fn and(&mut self) -> Option<Cond> {
        let mut l = self.unary()?;
        while self.c.peek() == Some(&Tok::Op("&&")) {
            self.c.pos += 1;
            l = Cond::And(Box::new(l), Box::new(self.unary()?));
        }
        Some(l)
    }
    fn unary(&mut self) -> Option<Cond> {
        if self.c.peek() == Some(&Tok::Op("!")) {
            self.c.pos += 1;
            return Some(Cond::Not(Box::new(self.unary()?)));
        }
        if self.c.peek() == Some(&Tok::Open) {
            let save = self.c.pos;
            self.c.pos += 1;
            if let Some(c) = self.or()
                && self.c.eat(&Tok::Close).is_some()
            {
                return Some(c);
            }
            self.c.pos = save;
        }
        if let Some(Tok::Word(w)) = self.c.peek()
            && matches!(w.as_str(), "any" | "all" | "none")
        {
            let w = w.clone();
            self.c.pos += 1;
            self.c.eat(&Tok::Open)?;
            let list = self.list()?;
            self.c.eat(&Tok::Comma)?;
            let Tok::Body(body) = self.c.next()? else { return None };
            self.c.eat(&Tok::Close)?;
            let pred = element_pred(&body)?;
            return Some(match w.as_str() {
                "any" => Cond::Any(list, pred, false),
                "none" => Cond::Any(list, pred, true),
                _ => Cond::All(list, pred),
            });
        }
        let l = self.num()?;
        let Some(Tok::Op(op @ (">=" | "<=" | ">" | "<" | "==" | "!="))) = self.c.next() else { return None };
        Some(Cond::Cmp(l, op, self.num()?))
    }
    fn num(&mut self) -> Option<Num> {
        match self.c.next()? {
            Tok::Num(n) => Some(Num::Lit(n)),
            Tok::Word(w) if w == "duration" => {
                self.c.eat(&Tok::Open)?;
                let Tok::Str(d) = self.c.next()? else { return None };
                self.c.eat(&Tok::Close)?;
                crate::clock::go_duration_secs(&d).map(Num::Lit)
            }
            Tok::Word(w) if w == "len" => {
                self.c.eat(&Tok::Open)?;
                let l = self.list()?;
                self.c.eat(&Tok::Close)?;
                Some(Num::Len(l))
            }
            Tok::Word(w) if w == "count" => {
                self.c.eat(&Tok::Open)?;
                let l = self.list()?;
                self.c.eat(&Tok::Comma)?;
                let Tok::Body(body) = self.c.next()? else { return None };
                self.c.eat(&Tok::Close)?;
                Some(Num::Count(l, element_pred(&body)?))
            }
            Tok::Word(w) if w == "MedianInterval" => {
                self.c.eat(&Tok::Open)?;
                self.c.eat(&Tok::Word("map".into()))?;
                self.c.eat(&Tok::Open)?;
                let l = self.list()?;
                self.c.eat(&Tok::Comma)?;
                let Tok::Body(body) = self.c.next()? else { return None };
                if !matches!(body.trim(), "#.Time" | ".Time") {
                    return None;
                }
                self.c.eat(&Tok::Close)?;
                self.c.eat(&Tok::Close)?;
                Some(Num::Median(l))
            }
            _ => None,
        }
    }
    fn list(&mut self) -> Option<List> {
        let mut l = match self.c.next()? {
            Tok::Open => {
                let l = self.list()?;
                self.c.eat(&Tok::Close)?;
                l
            }
            Tok::Word(w) if w == "queue.Queue" => List::Queue,
            Tok::Word(w) if w == "filter" => {
                self.c.eat(&Tok::Open)?;
                let l = self.list()?;
                self.c.eat(&Tok::Comma)?;
                let Tok::Body(body) = self.c.next()? else { return None };
                self.c.eat(&Tok::Close)?;
                List::Filter(Box::new(l), element_pred(&body)?, 0)
            }
            _ => return None,
        };
        while self.c.peek() == Some(&Tok::LBrack) {
            self.c.pos += 1;
            let bound = |p: &mut CondParser| match p.c.peek() {
                Some(Tok::Num(n)) if n.fract() == 0.0 => {
                    let n = *n as i64;
                    p.c.pos += 1;
                    Some(n)
                }
                _ => None,
            };
            let from = bound(self);
            self.c.eat(&Tok::Colon)?;
            let to = bound(self);
            self.c.eat(&Tok::RBrack)?;
            l = List::Slice(Box::new(l), from, to);
        }
        Some(l)
    }
}

/// Compiles `src` (its `let`s inlined), or `None` when it needs the interpreter.
#[must_use]
pub fn compile(src: &str) -> Option<QueueCondition> {
    let mut p = CondParser { c: Tokens { toks: lex(src)?, pos: 0 } };
    let mut c = p.or()?;
    let mut keys = Vec::new();
    c.number_filters(&mut keys);
    (p.c.pos == p.c.toks.len()).then_some(QueueCondition(c, keys.len()))
}

impl Cond {
    /// Gives each distinct `filter(...)` a slot (the same text gets the same slot).
    fn number_filters(&mut self, keys: &mut Vec<String>) {
        match self {
            Cond::Cmp(a, _, b) => {
                a.number_filters(keys);
                b.number_filters(keys);
            }
            Cond::Any(l, ..) | Cond::All(l, _) => l.number_filters(keys),
            Cond::And(a, b) | Cond::Or(a, b) => {
                a.number_filters(keys);
                b.number_filters(keys);
            }
            Cond::Not(a) => a.number_filters(keys),
        }
    }
}

impl Num {
    fn number_filters(&mut self, keys: &mut Vec<String>) {
        match self {
            Num::Lit(_) => {}
            Num::Len(l) | Num::Count(l, _) | Num::Median(l) => l.number_filters(keys),
        }
    }
}

impl List {
    fn number_filters(&mut self, keys: &mut Vec<String>) {
        match self {
            List::Queue => {}
            List::Slice(l, ..) => l.number_filters(keys),
            List::Filter(l, pred, slot) => {
                l.number_filters(keys);
                let key = format!("{l:?}/{pred:?}");
                *slot = keys.iter().position(|k| *k == key).unwrap_or_else(|| {
                    keys.push(key);
                    keys.len() - 1
                });
            }
        }
    }

    fn eval<'a>(&self, ev: &QueuedEvent<'a>) -> Vec<&'a Event> {
        match self {
            List::Queue => ev.q.iter().map(|e| &**e).collect(),
            List::Filter(l, pred, slot) => {
                if let Some(Some(v)) = ev.memo.borrow().get(*slot) {
                    return v.clone();
                }
                let mut v = l.eval(ev);
                v.retain(|e| pred.test(e, ev.data));
                if let Some(m) = ev.memo.borrow_mut().get_mut(*slot) {
                    *m = Some(v.clone());
                }
                v
            }
            List::Slice(l, from, to) => {
                let v = l.eval(ev);
                let n = i64::try_from(v.len()).unwrap_or(i64::MAX);
                let at = |b: i64| usize::try_from(if b < 0 { n + b } else { b }.clamp(0, n)).unwrap_or(0);
                let (a, b) = (at(from.unwrap_or(0)), at(to.unwrap_or(n)));
                if a >= b { Vec::new() } else { v[a..b].to_vec() }
            }
        }
    }
}

impl Num {
    fn eval(&self, ev: &QueuedEvent<'_>) -> f64 {
        match self {
            Num::Lit(n) => *n,
            Num::Len(l) => l.eval(ev).len() as f64,
            Num::Count(l, pred) => l.eval(ev).iter().filter(|e| pred.test(e, ev.data)).count() as f64,
            Num::Median(l) => {
                let times: Vec<f64> = l.eval(ev).iter().map(|e| e.time).collect();
                super::median_interval(&times)
            }
        }
    }
}

impl QueueCondition {
    /// Evaluates over a bucket's queue.
    #[must_use]
    pub fn test(&self, q: &VecDeque<Arc<Event>>, data: &DataFiles) -> bool {
        self.0.test(&QueuedEvent { q, data, memo: std::cell::RefCell::new(vec![None; self.1]) })
    }
}

impl Cond {
    fn test(&self, ev: &QueuedEvent<'_>) -> bool {
        match self {
            Cond::Cmp(a, op, b) => {
                let (a, b) = (a.eval(ev), b.eval(ev));
                match *op {
                    ">=" => a >= b,
                    "<=" => a <= b,
                    ">" => a > b,
                    "<" => a < b,
                    "==" => a == b,
                    _ => a != b,
                }
            }
            Cond::Any(l, pred, negate) => l.eval(ev).iter().any(|e| pred.test(e, ev.data)) != *negate,
            Cond::All(l, pred) => l.eval(ev).iter().all(|e| pred.test(e, ev.data)),
            Cond::And(a, b) => a.test(ev) && b.test(ev),
            Cond::Or(a, b) => a.test(ev) || b.test(ev),
            Cond::Not(a) => !a.test(ev),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::expr::{Env, EvtContext, inline_lets, queue};

    const HUB: [&str; 5] = [
        "let failedAuths = filter(queue.Queue, {#.Meta.log_type == 'ssh_failed-auth'});\nlen(failedAuths) >= 4 &&\nMedianInterval(map(failedAuths[-4:], {#.Time})) > duration(\"10m\")",
        "len(queue.Queue) >= 4 &&\n    MedianInterval(map(queue.Queue[-4:], {#.Time})) >= duration(\"20m\")",
        "any(queue.Queue, {.Meta.exe in [\"/usr/bin/wget\", \"/usr/bin/curl\"]})\nand (\n  any(queue.Queue, { !(.Meta.exe startsWith \"/usr/\" or .Meta.exe startsWith \"/bin/\")})\n  or any(queue.Queue, { .Meta.exe in [\"/bin/sh\", \"/bin/bash\"] })\n)",
        "count(queue.Queue, {#.Meta.exe == '/bin/sh'}) > 1 || all(queue.Queue, {#.Meta.log_type != 'ssh_failed-auth'})",
        "none(queue.Queue[-1:], {.Meta.exe endsWith 'sh'}) and len(queue.Queue[1:3]) == 2",
    ];

    /// The hub's conditions over queues of every length give the interpreter's answer.
    #[test]
    fn native_conditions_agree_with_the_interpreter() {
        let env = Env::new(Arc::default());
        let exes = ["/usr/bin/wget", "/bin/sh", "/tmp/x", "/usr/bin/curl", "/bin/bash"];
        let mut q: VecDeque<Arc<Event>> = VecDeque::new();
        let mut t = 0.0;
        let mut seen = [[false; 2]; HUB.len()];
        for n in 0..40u32 {
            let mut e = Event::default();
            let failed = n % 3 != 1;
            e.meta.insert("log_type".into(), if failed { "ssh_failed-auth" } else { "auth_success" }.into());
            e.meta.insert("exe".into(), exes[n as usize % exes.len()].into());
            t += f64::from((n * 7919) % 3000);
            e.time = t;
            q.push_back(Arc::new(e));
            if q.len() > 12 {
                q.pop_front();
            }
            for (i, src) in HUB.iter().enumerate() {
                let native = compile(&inline_lets(src)).unwrap_or_else(|| panic!("{src}"));
                let slow = env.compile(&queue::rewrite(src)).unwrap();
                let slim = queue::QueueFields::of(&[src]);
                let ctx: EvtContext = queue::context(&slim, q.back().unwrap(), q.iter(), expr::Value::Nil);
                let got = native.test(&q, env.data());
                assert_eq!(got, env.test_in(&slow, &ctx), "{src} over {} events", q.len());
                seen[i][usize::from(got)] = true;
            }
        }
        // The `let` inlined twice is one filter, run once per evaluation.
        assert_eq!(compile(&inline_lets(HUB[0])).map(|c| c.1), Some(1));
        // Each condition was both false and true on the way.
        assert_eq!(seen, [[true; 2]; HUB.len()]);
    }

    #[test]
    fn the_rest_stays_with_the_interpreter() {
        for src in [
            "len(queue.Queue) >= 2 and queue.Queue[0].Meta.exe == queue.Queue[1].Meta.exe",
            "count(queue.Queue, #.Meta.x == 'a') > 2",
            "any(queue.Queue, {#.Time > 3})",
            "len(queue.Queue) + 1 > 2",
        ] {
            assert!(compile(src).is_none(), "{src}");
        }
    }
}
