//! The kernel's boot-time clock, in which ban expiries are written to the XDP maps.
//!
//! The XDP program compares `Ban::expires_at_ns` with `bpf_ktime_get_boot_ns()`, which is
//! `CLOCK_BOOTTIME`: it keeps counting across suspend and is shared by every process, so a ban
//! written by one crowd process expires at the same moment for the next one. Wall-clock times
//! (what users see) are converted at the edges with [`BootClock`].
use std::time::{Duration, SystemTime};

/// Nanoseconds on `CLOCK_BOOTTIME` now.
#[must_use]
pub fn boot_now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid pointer to a timespec; CLOCK_BOOTTIME exists on every supported kernel.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &raw mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_BOOTTIME)");
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0)
}

/// `CLOCK_BOOTTIME - CLOCK_MONOTONIC` in ns (the time spent suspended since boot), which the XDP
/// program adds to its coarse monotonic clock to compare with boot-time expiries.
#[must_use]
pub fn boot_offset_ns() -> u64 {
    let read = |clock| {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: valid pointer to a timespec.
        unsafe { libc::clock_gettime(clock, &raw mut ts) };
        u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0)
    };
    let mono = read(libc::CLOCK_MONOTONIC);
    let boot = read(libc::CLOCK_BOOTTIME);
    // Round down to a millisecond: the two reads are a few hundred ns apart.
    boot.saturating_sub(mono) / 1_000_000 * 1_000_000
}

/// A pair of readings of the boot-time and wall clocks taken together, to convert between them.
#[derive(Clone, Copy, Debug)]
pub struct BootClock {
    /// Boot-time nanoseconds at `wall`.
    pub boot_ns: u64,
    /// Wall-clock time at `boot_ns`.
    pub wall: SystemTime,
}

impl BootClock {
    /// Reads both clocks now.
    #[must_use]
    pub fn now() -> BootClock {
        BootClock { boot_ns: boot_now_ns(), wall: SystemTime::now() }
    }

    /// The boot-time expiry for a ban lasting `d` from now; `None` means permanent (0 in the map).
    #[must_use]
    pub fn expiry_after(&self, d: Option<Duration>) -> u64 {
        match d {
            None => 0,
            Some(d) => self.boot_ns.saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)).max(1),
        }
    }

    /// Time left before a boot-time expiry (`None` for permanent, zero once past).
    #[must_use]
    pub fn remaining(&self, expires_at_ns: u64) -> Option<Duration> {
        (expires_at_ns != 0).then(|| Duration::from_nanos(expires_at_ns.saturating_sub(self.boot_ns)))
    }

    /// The wall-clock instant of a boot-time expiry (`None` for permanent).
    #[must_use]
    pub fn wall_time(&self, expires_at_ns: u64) -> Option<SystemTime> {
        self.remaining(expires_at_ns).map(|r| self.wall + r)
    }
}

/// Formats a duration the way CrowdSec and Go do (`3h59m58s`, `45s`), without a day unit.
#[must_use]
pub fn go_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

/// The wall clock as whole Unix seconds (the store's and the Local API's time).
#[must_use]
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

/// Unix seconds as RFC 3339 UTC (`2026-11-28T10:00:00Z`); empty when out of range.
#[must_use]
pub fn rfc3339(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// An RFC 3339 time as Go's `time.Time.String()` prints it in UTC, the way CrowdSec's Local API
/// serves an alert's `start_at`, `stop_at` and event timestamps (`2026-11-28 08:50:32.025353849
/// +0000 UTC`: the fraction without trailing zeros, none when whole); `None` if it does not parse.
#[must_use]
pub fn go_time_string(rfc3339: &str) -> Option<String> {
    let t = chrono::DateTime::parse_from_rfc3339(rfc3339).ok()?.with_timezone(&chrono::Utc);
    let mut out = t.format("%Y-%m-%d %H:%M:%S").to_string();
    let nanos = t.timestamp_subsec_nanos();
    if nanos > 0 {
        let frac = format!("{nanos:09}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out.push_str(" +0000 UTC");
    Some(out)
}

/// The wall clock as Unix seconds with a fraction (the time lines are read at).
#[must_use]
pub fn unix_now_f64() -> f64 {
    SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// Parses a Go-style duration (`10s`, `1m30s`, `2h`, `500ms`) into seconds: the crate's one
/// parser of Go durations (scenarios, profiles, statics, the Local API, the stream puller).
#[must_use]
pub fn go_duration_secs(s: &str) -> Option<f64> {
    let s = s.trim();
    if s == "0" {
        return Some(0.0);
    }
    let mut total = 0.0;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let mut unit = c.to_string();
        while let Some(&n) = chars.peek() {
            if n.is_ascii_alphabetic() || n == 'µ' {
                unit.push(n);
                chars.next();
            } else {
                break;
            }
        }
        let v: f64 = num.parse().ok()?;
        num.clear();
        total += v * match unit.as_str() {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            _ => return None,
        };
        any = true;
    }
    (any && num.is_empty()).then_some(total)
}

/// [`go_duration_secs`] with a sign (`-12s`: an ended decision on the wire), whole seconds.
#[must_use]
pub fn go_duration_secs_signed(d: &str) -> Option<i64> {
    let (neg, body) = d.strip_prefix('-').map_or((false, d), |b| (true, b));
    let s = go_duration_secs(body)? as i64;
    Some(if neg { -s } else { s })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_time_strings() {
        assert_eq!(
            go_time_string("2026-11-28T09:50:32.025353849+01:00").as_deref(),
            Some("2026-11-28 08:50:32.025353849 +0000 UTC")
        );
        assert_eq!(go_time_string("2026-12-02T02:17:54Z").as_deref(), Some("2026-12-02 02:17:54 +0000 UTC"));
        assert_eq!(go_time_string("2026-12-02T02:17:54.5Z").as_deref(), Some("2026-12-02 02:17:54.5 +0000 UTC"));
        assert_eq!(go_time_string("yesterday"), None);
    }

    #[test]
    fn boot_clock_moves_forward() {
        let a = boot_now_ns();
        let b = boot_now_ns();
        assert!(a > 0 && b >= a);
    }

    #[test]
    fn expiry_and_remaining_round_trip() {
        let c = BootClock { boot_ns: 1_000, wall: SystemTime::UNIX_EPOCH };
        assert_eq!(c.expiry_after(None), 0);
        let e = c.expiry_after(Some(Duration::from_secs(4 * 3600)));
        assert_eq!(c.remaining(e), Some(Duration::from_secs(4 * 3600)));
        assert_eq!(c.remaining(0), None);
        assert_eq!(c.remaining(500), Some(Duration::ZERO));
    }

    #[test]
    fn go_style() {
        assert_eq!(go_duration(Duration::from_secs(4 * 3600 - 2)), "3h59m58s");
        assert_eq!(go_duration(Duration::from_secs(50 * 3600)), "50h0m0s");
        assert_eq!(go_duration(Duration::from_secs(61)), "1m1s");
        assert_eq!(go_duration(Duration::from_millis(900)), "0s");
    }
}
