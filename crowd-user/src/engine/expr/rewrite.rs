//! Source rewrites that let the `expr-lang` crate run what Go's expr accepts in CrowdSec's
//! files: `let` inlining, `.Field` in closures, `a not startsWith b`, missing map keys as "",
//! Go `time.Time` methods on `evt.Time` as `GoTime(...)` calls, and `evt` field reads as
//! `CrowdField(...)` calls (the light programs that convert no event).
use regex::Regex;

/// For each byte of `src`: whether it lies inside a string literal (`"..."`, `'...'`, `` `...` ``).
pub(crate) fn literal_mask(src: &str) -> Vec<bool> {
    let mut literal = vec![false; src.len() + 1];
    let mut q: Option<char> = None;
    for (i, c) in src.char_indices() {
        match q {
            Some(x) if c == x => q = None,
            Some(_) => literal[i] = true,
            None if matches!(c, '"' | '\'' | '`') => q = Some(c),
            None => {}
        }
    }
    literal
}

/// `evt.Meta.x`, `evt.Parsed["x"]`, `evt.Line.Raw`, `evt.Line.Labels.type`, `evt.StrTime` as
/// `CrowdField(...)` calls; `None` when `evt` is still used otherwise (`evt.Unmarshaled`,
/// `evt.SetMeta(...)`, `evt.Time`, ...).
pub(crate) fn field_calls(src: &str) -> Option<String> {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| {
        Regex::new(
            r#"\bevt\.(?:(Parsed|Meta|Enriched)\.([A-Za-z_][A-Za-z0-9_]*)|(Parsed|Meta|Enriched)\[\s*(?:"([^"]*)"|'([^']*)')\s*\]|Line\.(Raw|Src|Module)\b|Line\.Labels\.([A-Za-z_][A-Za-z0-9_]*)|(StrTime)\b)"#,
        )
        .expect("valid")
    });
    let literal = literal_mask(src);
    let mut out = String::with_capacity(src.len() + 32);
    let mut last = 0;
    for c in re.captures_iter(src) {
        let m = c.get(0).expect("match");
        if literal[m.start()] || src[m.end()..].trim_start().starts_with('(') {
            continue;
        }
        let g = |i: usize| c.get(i).map(|x| x.as_str());
        let (part, key) = match (g(1), g(3), g(6), g(7), g(8)) {
            (Some(p), ..) => (p, g(2).unwrap_or_default()),
            (_, Some(p), ..) => (p, g(4).or(g(5)).unwrap_or_default()),
            (_, _, Some(k), ..) => ("Line", k),
            (_, _, _, Some(k), _) => ("Labels", k),
            _ => ("StrTime", ""),
        };
        if key.contains(['\'', '\\']) {
            return None;
        }
        out.push_str(&src[last..m.start()]);
        out.push_str(&format!("CrowdField('{part}', '{key}')"));
        last = m.end();
    }
    out.push_str(&src[last..]);
    // Any other use of `evt` needs the converted event.
    static WORD: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    let word = WORD.get_or_init(|| Regex::new(r"\bevt\b").expect("valid"));
    let lit = literal_mask(&out);
    if word.find_iter(&out).any(|m| !lit[m.start()]) {
        return None;
    }
    Some(out)
}

/// In CrowdSec, `evt.Parsed`, `evt.Meta`, `evt.Enriched` and `evt.Line.Labels` are Go
/// `map[string]string`: a missing key reads as "". The Rust interpreter gives nil, so each such
/// field access is rewritten to `(field ?? "")`.
pub(crate) fn zero_value_fields(src: &str) -> String {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| {
        Regex::new(
            r#"(?:\bevt|#)\.(?:Parsed|Meta|Enriched|Line\.Labels)(?:\.[A-Za-z_][A-Za-z0-9_]*|\[\s*(?:"[^"]*"|'[^']*')\s*\])"#,
        )
        .expect("valid")
    });
    let mut out = String::with_capacity(src.len() + 16);
    let mut last = 0;
    // Positions inside string literals are left alone.
    let literal = literal_mask(src);
    for m in re.find_iter(src) {
        if literal[m.start()] || src[m.end()..].trim_start().starts_with('(') {
            continue;
        }
        out.push_str(&src[last..m.start()]);
        out.push('(');
        out.push_str(m.as_str());
        out.push_str(" ?? \"\")");
        last = m.end();
    }
    out.push_str(&src[last..]);
    out
}

/// Go's expr accepts `let x = e; body` anywhere an expression goes (`a and (let u = e; u == 1)`);
/// the Rust crate only at the top. Bindings are inlined instead: every `x` of the body (up to the
/// end of the enclosing parentheses) becomes `(e)`. The expressions are pure, so only the number
/// of evaluations changes.
pub(crate) fn inline_lets(src: &str) -> String {
    let mut s = src.to_owned();
    for _ in 0..16 {
        let Some((start, name, expr_start)) = find_let(&s) else { break };
        let b = s.as_bytes();
        // The bound expression ends at the first `;` outside strings and brackets.
        let (mut i, mut depth, mut q) = (expr_start, 0i32, None::<u8>);
        while i < b.len() {
            match (q, b[i]) {
                (Some(c), x) if x == c && b[i - 1] != b'\\' => q = None,
                (Some(_), _) => {}
                (None, b'"' | b'\'' | b'`') => q = Some(b[i]),
                (None, b'(' | b'[' | b'{') => depth += 1,
                (None, b')' | b']' | b'}') => depth -= 1,
                (None, b';') if depth == 0 => break,
                _ => {}
            }
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let value = s[expr_start..i].trim().to_owned();
        // The body runs to the `)` closing the group the `let` is in (or the end).
        let (mut j, mut depth, mut q) = (i + 1, 0i32, None::<u8>);
        while j < b.len() {
            match (q, b[j]) {
                (Some(c), x) if x == c && b[j - 1] != b'\\' => q = None,
                (Some(_), _) => {}
                (None, b'"' | b'\'' | b'`') => q = Some(b[j]),
                (None, b'(' | b'[' | b'{') => depth += 1,
                (None, b')' | b']' | b'}') if depth == 0 => break,
                (None, b')' | b']' | b'}') => depth -= 1,
                _ => {}
            }
            j += 1;
        }
        let body = replace_word(&s[i + 1..j], &name, &format!("({value})"));
        s = format!("{}{}{}", &s[..start], body, &s[j..]);
    }
    s
}

/// The first `let NAME =` outside string literals: (its start, NAME, where the value starts).
pub(crate) fn find_let(s: &str) -> Option<(usize, String, usize)> {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| Regex::new(r"\blet\s+([A-Za-z_][A-Za-z0-9_]*)\s*=[^=]").expect("valid"));
    let literal = literal_mask(s);
    re.captures_iter(s).find(|c| !literal[c.get(0).map_or(0, |m| m.start())]).map(|c| {
        let m = c.get(0).expect("match");
        (m.start(), c[1].to_owned(), m.end() - 1)
    })
}

/// `text` with every whole-word `name` outside string literals (not a field: no `.` or `#`
/// before it) replaced by `with`.
pub(crate) fn replace_word(text: &str, name: &str, with: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let (mut i, mut q) = (0, None::<u8>);
    while i < b.len() {
        let c = b[i];
        match q {
            Some(x) if c == x => q = None,
            Some(_) => {}
            None if matches!(c, b'"' | b'\'' | b'`') => q = Some(c),
            None if text[i..].starts_with(name)
                && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || matches!(b[i - 1], b'_' | b'.' | b'#')))
                && !text[i + name.len()..].starts_with(|n: char| n.is_ascii_alphanumeric() || n == '_') =>
            {
                out.push_str(with);
                i += name.len();
                continue;
            }
            None => {}
        }
        let ch = text[i..].chars().next().expect("in bounds");
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// Go's expr reads `.Meta.x` inside a closure as a field of the element (`#.Meta.x`); the Rust
/// crate needs the `#`.
pub(crate) fn closure_member_shorthand(src: &str) -> String {
    let mut out = String::with_capacity(src.len() + 8);
    let mut in_str: Option<char> = None;
    let mut prev: Option<char> = None;
    let mut chars = src.chars().peekable();
    while let Some(c) = chars.next() {
        match in_str {
            Some(q) if c == q && prev != Some('\\') => in_str = None,
            Some(_) => {}
            None if c == '"' || c == '\'' || c == '`' => in_str = Some(c),
            None if c == '.'
                && chars.peek().is_some_and(|n| n.is_ascii_alphabetic() || *n == '_')
                && prev
                    .is_none_or(|p| !(p.is_ascii_alphanumeric() || matches!(p, '_' | ')' | ']' | '#' | '.' | '?'))) =>
            {
                out.push('#');
            }
            None => {}
        }
        out.push(c);
        prev = Some(c);
    }
    out
}

/// Go's expr accepts `a not startsWith b` (and `endsWith`, `contains`, `matches`); the Rust
/// crate only `not in`. Rewrite to `not (a startsWith b)`.
pub(crate) fn rewrite_negated_ops(src: &str) -> String {
    let mut s = src.to_owned();
    for op in ["startsWith", "endsWith", "contains", "matches"] {
        let needle = format!(" not {op} ");
        while let Some(at) = s.find(&needle) {
            let b = s.as_bytes();
            // Left operand: back over spaces, a balanced (...) call or a path/literal.
            let mut l = at;
            let mut depth = 0i32;
            while l > 0 {
                let c = b[l - 1];
                if c == b')' || c == b']' {
                    depth += 1;
                } else if (c == b'(' || c == b'[') && depth > 0 {
                    depth -= 1;
                } else if depth == 0
                    && !(c.is_ascii_alphanumeric() || c == b'_' || c == b'.' || c == b'\'' || c == b'"')
                {
                    break;
                }
                l -= 1;
            }
            // Right operand: a quoted string, or a path/call.
            let r0 = at + needle.len();
            let mut r = r0;
            if r < b.len() && (b[r] == b'"' || b[r] == b'\'') {
                let q = b[r];
                r += 1;
                while r < b.len() && b[r] != q {
                    r += if b[r] == b'\\' { 2 } else { 1 };
                }
                r = (r + 1).min(b.len());
            } else {
                let mut depth = 0i32;
                while r < b.len() {
                    let c = b[r];
                    if c == b'(' || c == b'[' {
                        depth += 1;
                    } else if (c == b')' || c == b']') && depth > 0 {
                        depth -= 1;
                    } else if depth == 0 && !(c.is_ascii_alphanumeric() || c == b'_' || c == b'.') {
                        break;
                    }
                    r += 1;
                }
            }
            let rewritten = format!("not ({} {op} {})", &s[l..at], &s[r0..r]);
            s.replace_range(l..r, &rewritten);
        }
    }
    s
}

/// Go's `time.Time` methods on `evt.Time` (`evt.Time.Hour()`, `evt.Time.Weekday().String()`,
/// ...) as `GoTime('Method', evt.Time, evt.Enriched.MarshaledTime)`: the crate's `evt.Time` is
/// a number, and Go reads hours and days in the zone of the log's own stamp.
pub(crate) fn go_time_methods(src: &str) -> String {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| {
        Regex::new(
            r"\bevt\.Time\.(Hour|Minute|Second|Nanosecond|Day|Year|YearDay|Unix|UnixMilli|Weekday|Month)\(\)(\.String\(\))?",
        )
        .expect("valid")
    });
    let literal = literal_mask(src);
    re.replace_all(src, |c: &regex::Captures<'_>| {
        let m = c.get(0).expect("match");
        if literal[m.start()] {
            return m.as_str().to_owned();
        }
        let name = if c.get(2).is_some() { "Name" } else { "" };
        format!("GoTime('{}{name}', evt.Time, evt.Enriched.MarshaledTime)", &c[1])
    })
    .into_owned()
}
