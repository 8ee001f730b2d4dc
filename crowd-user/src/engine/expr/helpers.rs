//! CrowdSec's helper functions as plain Rust, one implementation each, used by the interpreter's
//! registered functions (`mod.rs`) and by the fast path (`fast/`) alike.
use std::net::IpAddr;

use expr::Value;

/// `MedianInterval`: the median gap in seconds between consecutive times (0 for fewer than two).
#[must_use]
pub fn median_interval(times: &[f64]) -> f64 {
    let mut gaps: Vec<f64> = times.windows(2).map(|w| (w[1] - w[0]).abs()).collect();
    if gaps.is_empty() {
        return 0.0;
    }
    gaps.sort_by(f64::total_cmp);
    let m = gaps.len() / 2;
    if gaps.len().is_multiple_of(2) { f64::midpoint(gaps[m - 1], gaps[m]) } else { gaps[m] }
}

pub(crate) fn arg_str(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Nil) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

pub(crate) fn ip_in_range(ip: &str, range: &str) -> bool {
    let Ok(ip) = ip.trim().parse::<IpAddr>() else { return false };
    range.trim().parse::<ipnet::IpNet>().is_ok_and(|n| n.contains(&crate::addr::canonical_ip(ip)))
}

pub(crate) fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit() => {
                let hex = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
                out.push(hex(b[i + 1]) * 16 + hex(b[i + 2]));
                i += 3;
                continue;
            }
            b'+' if plus_is_space => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// CrowdSec's `JsonExtract(json, "a.b[0].c")`: the value at a dotted path, as a string ("" when
/// absent or not JSON). Strings come back unquoted when `unescape`, else as their JSON text
/// without the quotes too (CrowdSec returns raw strings for string leaves).
pub(crate) fn json_extract(json: &str, path: &str, _unescape: bool) -> String {
    let Ok(mut v) = serde_json::from_str::<serde_json::Value>(json) else { return String::new() };
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, idx) = match part.find('[') {
            Some(i) => (&part[..i], part[i + 1..].trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        if !key.is_empty() {
            v = match v.get(key) {
                Some(x) => x.clone(),
                None => return String::new(),
            };
        }
        if let Some(i) = idx {
            v = match v.get(i) {
                Some(x) => x.clone(),
                None => return String::new(),
            };
        }
    }
    match v {
        serde_json::Value::String(s) => s,
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `*` matches any run, `?` one character.
pub(crate) fn glob_match(pattern: &str, s: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), s.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(sp) = star {
            pi = sp + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}
