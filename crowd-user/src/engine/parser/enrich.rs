//! Enrichment methods that statics call with `method:` (`ParseDate`, `GeoIpCity`, `GeoIpASN`,
//! `IpToRange`, `UnmarshalJSON`, `reverse_dns`). Functions of the value and the event; the GeoIP
//! ones read the MaxMind databases the configuration loaded (`engine/geoip.rs`). Reverse DNS is
//! off: `reverse_dns` adds nothing (a resolver on the hot path would stall the pipeline).
use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone, Utc};

use super::node::Ctx;
use crate::engine::event::Event;

/// Runs enrichment method `name` on `value`.
pub fn run(name: &str, value: &str, evt: &mut Event, ctx: &Ctx<'_>) {
    match name {
        "ParseDate" => match parse_date_cached(value, ctx.year) {
            Some((marshaled, time)) => {
                evt.enriched.insert("MarshaledTime".into(), marshaled);
                evt.time = time;
            }
            // As CrowdSec: a stamp no layout reads dates the event when it was read.
            None => {
                let read = DateTime::from_timestamp_nanos((evt.time * 1e9) as i64).fixed_offset();
                evt.enriched.insert("MarshaledTime".into(), go_rfc3339_nano(&read).into());
            }
        },
        "IpToRange" => {
            if let Some(r) = ctx.env.data().geoip.range(value) {
                evt.enriched.insert("SourceRange".into(), r.into());
            }
        }
        "GeoIpCity" => ctx.env.data().geoip.city(value, &mut evt.enriched),
        "GeoIpASN" => ctx.env.data().geoip.asn(value, &mut evt.enriched),
        "UnmarshalJSON" => {
            // As CrowdSec: the document under `JSON`; an empty one when the value is not JSON.
            let doc = serde_json::from_str::<serde_json::Value>(value)
                .ok()
                .filter(serde_json::Value::is_object)
                .unwrap_or_else(|| serde_json::Value::Object(serde_json::Map::new()));
            evt.unmarshaled.insert("JSON".into(), doc);
        }
        _ => {}
    }
}

/// [`parse_date`] as `ParseDate` writes it (Go's RFC 3339 text, Unix seconds), remembering the
/// last stamp: consecutive lines of a log mostly share their second.
fn parse_date_cached(value: &str, year: i32) -> Option<(crate::engine::event::Str, f64)> {
    use crate::engine::event::Str;
    thread_local! {
        static LAST: std::cell::RefCell<Option<(i32, Str, Str, f64)>> = const { std::cell::RefCell::new(None) };
    }
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if let Some((y, input, marshaled, time)) = last.as_ref()
            && *y == year
            && input == value
        {
            return Some((marshaled.clone(), *time));
        }
        let t = parse_date(value, year)?;
        let out = (Str::from(go_rfc3339_nano(&t)), t.timestamp() as f64 + f64::from(t.timestamp_subsec_nanos()) / 1e9);
        *last = Some((year, Str::from(value), out.0.clone(), out.1));
        Some(out)
    })
}

/// Formats like Go's `time.RFC3339Nano`: fractional seconds without trailing zeros, `Z` for UTC.
#[must_use]
pub fn go_rfc3339_nano(t: &DateTime<FixedOffset>) -> String {
    use chrono::{Datelike, Timelike};
    // Written digit by digit: this runs for every event with a timestamp.
    fn digits(s: &mut String, v: u32, width: u32) {
        for p in (0..width).rev() {
            s.push(char::from(b'0' + u8::try_from(v / 10u32.pow(p) % 10).unwrap_or(0)));
        }
    }
    let mut s = String::with_capacity(36);
    let year = t.year();
    if (0..=9999).contains(&year) {
        digits(&mut s, year.unsigned_abs(), 4);
    } else {
        s.push_str(&format!("{year:+05}"));
    }
    for (sep, v) in [('-', t.month()), ('-', t.day()), ('T', t.hour()), (':', t.minute()), (':', t.second())] {
        s.push(sep);
        digits(&mut s, v, 2);
    }
    let mut nanos = t.nanosecond() % 1_000_000_000;
    if nanos > 0 {
        let mut width = 9;
        while nanos.is_multiple_of(10) {
            nanos /= 10;
            width -= 1;
        }
        s.push('.');
        digits(&mut s, nanos, width);
    }
    let off = t.offset().local_minus_utc();
    if off == 0 {
        s.push('Z');
    } else {
        s.push(if off < 0 { '-' } else { '+' });
        let off = off.unsigned_abs();
        digits(&mut s, off / 3600, 2);
        s.push(':');
        digits(&mut s, off % 3600 / 60, 2);
    }
    s
}

/// `Mmm d HH:MM:SS[.fff]` (one or more spaces between day and month), in `year`; `None` for
/// anything else (the general parser then tries it).
fn syslog_stamp(s: &str, year: i32) -> Option<NaiveDateTime> {
    const MONTHS: [&[u8; 3]; 12] =
        [b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"];
    let b = s.as_bytes();
    let month = MONTHS.iter().position(|m| b.get(..3) == Some(&m[..]))? + 1;
    let mut i = 3;
    let spaces = b[i..].iter().take_while(|c| **c == b' ').count();
    if spaces == 0 {
        return None;
    }
    i += spaces;
    let digits = |from: usize, n: usize| -> Option<u32> {
        let d = b.get(from..from + n)?;
        d.iter().all(u8::is_ascii_digit).then(|| d.iter().fold(0, |a, c| a * 10 + u32::from(c - b'0')))
    };
    let day_len = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
    if !(1..=2).contains(&day_len) {
        return None;
    }
    let day = digits(i, day_len)?;
    i += day_len;
    if b.get(i) != Some(&b' ') || b.get(i + 3) != Some(&b':') || b.get(i + 6) != Some(&b':') {
        return None;
    }
    let (h, m, sec) = (digits(i + 1, 2)?, digits(i + 4, 2)?, digits(i + 7, 2)?);
    i += 9;
    let nanos = match b.get(i) {
        None => 0,
        Some(b'.') if b.len() > i + 1 && b.len() - i - 1 <= 9 => {
            let frac = digits(i + 1, b.len() - i - 1)?;
            frac * 10u32.pow(u32::try_from(10 - (b.len() - i)).ok()?)
        }
        _ => return None,
    };
    chrono::NaiveDate::from_ymd_opt(year, u32::try_from(month).ok()?, day)?.and_hms_nano_opt(h, m, sec, nanos)
}

/// `s` after a leading English weekday ("Thu ", "Thu, "), if it has one.
fn without_weekday(s: &str) -> Option<&str> {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    let day = s.get(..3)?;
    if !DAYS.iter().any(|d| d.eq_ignore_ascii_case(day)) {
        return None;
    }
    let rest = s[3..].strip_prefix(',').unwrap_or(&s[3..]);
    rest.starts_with(' ').then(|| rest.trim_start())
}

/// Parses the timestamps logs carry. Year-less syslog stamps take `year`; stamps without a
/// zone are UTC.
#[must_use]
pub fn parse_date(s: &str, year: i32) -> Option<DateTime<FixedOffset>> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let utc = |n: NaiveDateTime| Some(Utc.from_utc_datetime(&n).fixed_offset());
    // The most common stamp first: year-less syslog ("Feb 12 14:10:21"), read by hand.
    if let Some(n) = syslog_stamp(s, year) {
        return utc(n);
    }
    if s.as_bytes().first().is_some_and(u8::is_ascii_alphabetic) && s.len() <= 26 && s.as_bytes().get(3) == Some(&b' ')
    {
        let with_year = format!("{year} {}", s.split_whitespace().collect::<Vec<_>>().join(" "));
        for f in ["%Y %b %d %H:%M:%S%.f", "%Y %b %d %H:%M:%S"] {
            if let Ok(n) = NaiveDateTime::parse_from_str(&with_year, f) {
                return utc(n);
            }
        }
    }
    // A comma before the fraction (Java, Python logging): "2022-04-05 14:40:34,644".
    let comma;
    let s = match s.find(',') {
        Some(i) if i >= 8 && s.as_bytes()[i - 3] == b':' && s.as_bytes().get(i + 1).is_some_and(u8::is_ascii_digit) => {
            comma = format!("{}.{}", &s[..i], &s[i + 1..]);
            comma.as_str()
        }
        _ => s,
    };
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t);
    }
    for f in [
        "%d/%b/%Y:%H:%M:%S %z",
        "%Y-%m-%dT%H:%M:%S%.f%z",
        "%Y-%m-%d %H:%M:%S%.f %z",
        "%a, %d %b %Y %H:%M:%S %z",
        "%Y-%m-%dT%H:%M:%S%.f%:z",
    ] {
        if let Ok(t) = DateTime::parse_from_str(s, f) {
            return Some(t);
        }
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y/%m/%d %H:%M:%S%.f",
        "%a %b %e %H:%M:%S%.f %Y",
        "%a %b %d %H:%M:%S %Y",
        "%d/%b/%Y:%H:%M:%S",
        "%y%m%d %H:%M:%S",
        "%Y%m%d %H:%M:%S",
        "%d-%b-%Y %H:%M:%S%.f",
        "%m/%d/%Y %H:%M:%S%.f",
        "%d/%m/%Y %H:%M:%S%.f",
        "%m/%d/%Y, %I:%M:%S %p",
        "%m/%d/%Y, %H:%M:%S",
        "%m/%d/%Y-%H:%M:%S%.f",
    ] {
        if let Ok(n) = NaiveDateTime::parse_from_str(s, f) {
            return utc(n);
        }
    }
    // Year-less syslog: "Feb 12 14:10:21", "Feb  2 14:10:21.123".
    let with_year = format!("{year} {}", s.split_whitespace().collect::<Vec<_>>().join(" "));
    for f in ["%Y %b %d %H:%M:%S%.f", "%Y %b %d %H:%M:%S"] {
        if let Ok(n) = NaiveDateTime::parse_from_str(&with_year, f) {
            return utc(n);
        }
    }
    // Dates alone: midnight UTC.
    for f in ["%Y/%m/%d", "%Y-%m-%d", "%m/%d/%Y", "%d/%b/%Y"] {
        if let Ok(d) = chrono::NaiveDate::parse_from_str(s, f) {
            return utc(d.and_hms_opt(0, 0, 0)?);
        }
    }
    // klog / glog: "0613 10:22:21.684962" (month and day, no year).
    if s.len() > 5 && s.as_bytes()[..4].iter().all(u8::is_ascii_digit) && s.as_bytes()[4] == b' ' {
        for f in ["%Y%m%d %H:%M:%S%.f", "%Y%m%d %H:%M:%S"] {
            if let Ok(n) = NaiveDateTime::parse_from_str(&format!("{year}{s}"), f) {
                return utc(n);
            }
        }
    }
    // Go checks a weekday's spelling, never its value ("Thu Jul 08 2023" is a Saturday): read
    // the stamp again without it.
    if let Some(rest) = without_weekday(s) {
        for f in ["%d %b %Y %H:%M:%S %z"] {
            if let Ok(t) = DateTime::parse_from_str(rest, f) {
                return Some(t);
            }
        }
        for f in ["%b %e %H:%M:%S%.f %Y", "%b %d %H:%M:%S %Y"] {
            if let Ok(n) = NaiveDateTime::parse_from_str(rest, f) {
                return utc(n);
            }
        }
    }
    // Unix epoch seconds; the fraction is dropped, as CrowdSec does.
    if let Ok(secs) = s.parse::<f64>()
        && secs > 0.0
    {
        let n = DateTime::from_timestamp(secs.trunc() as i64, 0)?;
        return Some(n.fixed_offset());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc(s: &str) -> String {
        parse_date(s, 2026).map(|t| go_rfc3339_nano(&t)).unwrap_or_else(|| format!("unparsed {s}"))
    }

    /// The hand-written formatter agrees with chrono's `%Y-%m-%dT%H:%M:%S`, fraction and offset.
    #[test]
    fn rfc3339_nano_written_by_hand_agrees_with_chrono() {
        let by_chrono = |t: &DateTime<FixedOffset>| {
            let mut s = t.format("%Y-%m-%dT%H:%M:%S").to_string();
            let nanos = t.timestamp_subsec_nanos();
            if nanos > 0 {
                s.push('.');
                s.push_str(format!("{nanos:09}").trim_end_matches('0'));
            }
            s + &if t.offset().local_minus_utc() == 0 { "Z".to_owned() } else { t.format("%:z").to_string() }
        };
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let secs = i64::try_from(x % 253_402_300_799).unwrap();
            let nanos = match x % 4 {
                0 => 0,
                1 => u32::try_from(x % 1000).unwrap() * 1_000_000,
                _ => u32::try_from(x % 1_000_000_000).unwrap(),
            };
            let off = i32::try_from(x % 100_000).unwrap() % 50_400 / 60 * 60 * if x.is_multiple_of(3) { -1 } else { 1 };
            let off = if x.is_multiple_of(5) { 0 } else { off };
            let t = DateTime::from_timestamp(secs, nanos).unwrap().with_timezone(&FixedOffset::east_opt(off).unwrap());
            assert_eq!(go_rfc3339_nano(&t), by_chrono(&t), "{secs} {nanos} {off}");
        }
    }

    /// The hand reader of syslog stamps agrees with chrono's `%b %d %H:%M:%S%.f`.
    #[test]
    fn syslog_stamps_read_by_hand_agree_with_chrono() {
        for (i, m) in
            ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"].iter().enumerate()
        {
            for d in [1, 9, 10, 28, 29, 31] {
                for t in ["00:00:00", "23:59:59", "07:08:09.5", "12:34:56.000123"] {
                    for s in [format!("{m} {d} {t}"), format!("{m} {d:>2} {t}"), format!("{m}   {d} {t}")] {
                        let chrono = NaiveDateTime::parse_from_str(
                            &format!("2024 {}", s.split_whitespace().collect::<Vec<_>>().join(" ")),
                            "%Y %b %d %H:%M:%S%.f",
                        )
                        .ok();
                        assert_eq!(syslog_stamp(&s, 2024), chrono, "{s} (month {i})");
                    }
                }
            }
        }
    }

    #[test]
    fn common_log_timestamps() {
        assert_eq!(rfc("Feb 12 14:10:21"), "2026-02-12T14:10:21Z");
        assert_eq!(rfc("Feb  2 04:10:21"), "2026-02-02T04:10:21Z");
        assert_eq!(rfc("Dec 31 23:59:59.25"), "2026-12-31T23:59:59.25Z");
        assert_eq!(rfc("Feb 12 14:10:21.123456789"), "2026-02-12T14:10:21.123456789Z");
        // Not a date the hand reader takes: the general parsers decide.
        assert_eq!(rfc("Feb 30 14:10:21"), "unparsed Feb 30 14:10:21");
        assert_eq!(rfc("Feb 12 14:10"), "unparsed Feb 12 14:10");
        assert_eq!(rfc("2022-10-14T09:55:53+02:00"), "2022-10-14T09:55:53+02:00");
        assert_eq!(rfc("10/Oct/2023:13:55:36 -0700"), "2023-10-10T13:55:36-07:00");
        assert_eq!(rfc("2023-10-10 13:55:36"), "2023-10-10T13:55:36Z");
        assert_eq!(rfc("Wed Oct 11 14:32:52 2023"), "2023-10-11T14:32:52Z");
        assert_eq!(rfc("1700000000"), "2023-11-14T22:13:20Z");
        assert_eq!(rfc("2024-09-12T09:15:43.126560Z"), "2024-09-12T09:15:43.12656Z");
        assert_eq!(rfc("2024-11-13 09:07:04.784"), "2024-11-13T09:07:04.784Z");
        assert!(parse_date("not a date", 2026).is_none());
        assert_eq!(rfc("0613 10:22:21.684962"), "2026-06-13T10:22:21.684962Z");
        assert_eq!(rfc("1700758468.384018898"), "2023-11-23T16:54:28Z");
        assert_eq!(rfc("19-Oct-2022 05:34:02.425"), "2022-10-19T05:34:02.425Z");
        assert_eq!(rfc("2012/11/01"), "2012-11-01T00:00:00Z");
        assert_eq!(rfc("08/02/2023, 7:32:47 PM"), "2023-08-02T19:32:47Z");
        assert_eq!(rfc("2022-04-05 14:40:34,644"), "2022-04-05T14:40:34.644Z");
        assert_eq!(rfc("07/11/2022-10:29:01.860293"), "2022-07-11T10:29:01.860293Z");
        assert_eq!(rfc("07/11/2022 10:29:01.860293"), "2022-07-11T10:29:01.860293Z");
        assert_eq!(rfc("08/02/2023, 7:34:03"), "2023-08-02T07:34:03Z");
        assert_eq!(rfc("11/02/2012 13:37:05"), "2012-11-02T13:37:05Z");
        // A weekday that does not match the date is ignored, as Go's time.Parse does.
        assert_eq!(rfc("Thu Jul 08 09:19:24.428126 2023"), "2023-07-08T09:19:24.428126Z");
        assert_eq!(rfc("Mon Oct 11 14:32:52 2023"), "2023-10-11T14:32:52Z");
        assert_eq!(rfc("Mon, 11 Oct 2023 14:32:52 +0200"), "2023-10-11T14:32:52+02:00");
        assert_eq!(rfc("Someday Oct 11 14:32:52 2023"), "unparsed Someday Oct 11 14:32:52 2023");
    }
}
