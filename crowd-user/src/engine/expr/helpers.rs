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

/// `IpPrefix`: an IPv4 address (or IPv4-mapped IPv6 one) as itself, an IPv6 address as its
/// network of `bits` bits (`2001:db8:1:2::/64`; the address alone at 128), anything else unchanged.
pub(crate) fn ip_prefix(ip: &str, bits: u8) -> String {
    if !ip.contains(':') {
        // IPv4 (or not an address): itself.
        return ip.to_owned();
    }
    match ip.trim().parse::<IpAddr>().map(crate::addr::canonical_ip) {
        Ok(IpAddr::V4(a)) => a.to_string(),
        Ok(IpAddr::V6(a)) if bits < 128 => {
            ipnet::Ipv6Net::new(a, bits).map_or_else(|_| a.to_string(), |n| n.trunc().to_string())
        }
        Ok(IpAddr::V6(a)) => a.to_string(),
        Err(_) => ip.to_owned(),
    }
}

/// A prefix length written `64` or `/64` (128, the address alone, when unreadable).
pub(crate) fn prefix_bits(s: &str) -> u8 {
    s.trim().trim_start_matches('/').parse::<u8>().map_or(128, |b| b.min(128))
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

/// Go's `time.Time` method `method` (`Hour`, `WeekdayName`, `Unix`, ...; see
/// `rewrite::go_time_methods`) of the instant `secs` (Unix seconds), in the zone of `stamp` (an
/// RFC 3339 text, the event's `MarshaledTime`; UTC without one).
pub(crate) fn go_time(method: &str, secs: f64, stamp: &str) -> Value {
    use chrono::{Datelike, Timelike};
    let utc = chrono::FixedOffset::east_opt(0).expect("zero offset");
    let zone = chrono::DateTime::parse_from_rfc3339(stamp).map_or(utc, |t| *t.offset());
    let t = chrono::DateTime::from_timestamp_nanos((secs * 1e9) as i64).with_timezone(&zone);
    let n = |v: i64| Value::Integer(v);
    match method {
        "Hour" => n(i64::from(t.hour())),
        "Minute" => n(i64::from(t.minute())),
        "Second" => n(i64::from(t.second())),
        "Nanosecond" => n(i64::from(t.nanosecond())),
        "Day" => n(i64::from(t.day())),
        "Year" => n(i64::from(t.year())),
        "YearDay" => n(i64::from(t.ordinal())),
        "Unix" => n(t.timestamp()),
        "UnixMilli" => n(t.timestamp_millis()),
        // Go's Weekday counts from Sunday, its Month from January (1).
        "Weekday" => n(i64::from(t.weekday().num_days_from_sunday())),
        "Month" => n(i64::from(t.month())),
        "WeekdayName" => Value::String(t.format("%A").to_string()),
        "MonthName" => Value::String(t.format("%B").to_string()),
        _ => Value::Nil,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_prefix_groups_ipv6_by_network_and_leaves_ipv4_alone() {
        assert_eq!(ip_prefix("2001:db8:1:2::1e", 64), "2001:db8:1:2::/64");
        assert_eq!(ip_prefix("2001:db8:1:2:aaaa::1", 48), "2001:db8:1::/48");
        assert_eq!(ip_prefix("2001:db8:1:2::1e", 128), "2001:db8:1:2::1e");
        assert_eq!(ip_prefix("203.0.113.5", 64), "203.0.113.5");
        assert_eq!(ip_prefix("::ffff:203.0.113.5", 64), "203.0.113.5", "IPv4-mapped is IPv4");
        assert_eq!(ip_prefix("not an address", 64), "not an address");
        assert_eq!((prefix_bits("/56"), prefix_bits("48"), prefix_bits("x"), prefix_bits("200")), (56, 48, 128, 128));
    }
}
