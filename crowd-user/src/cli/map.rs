//! `crowd map ...`: inspect and edit the pinned kernel maps directly.
//!
//! These commands edit the kernel maps only: persistent decisions belong to the store. When no
//! maps are pinned yet, `add` and `allow add` load the object once to create them.
use std::{
    net::IpAddr,
    path::PathBuf,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use crowd_common::{Ban, Origin, Stats};
use serde_json::{Value, json};

use super::{Format, output};
use crate::{
    addr::Target,
    clock::{BootClock, boot_now_ns, go_duration},
    enforce::{
        EnforceError, Settings,
        maps::{AllowEntry, BanEntry, BanMaps, Lookup},
        object,
    },
};

/// `crowd map` subcommands.
#[derive(Debug, Subcommand)]
pub enum MapCommand {
    /// Ban an address or range.
    Add {
        /// IP address or CIDR range.
        target: String,
        /// How long the ban lasts (`4h`, `30m`, `2d`) or `permanent`.
        #[arg(long, default_value = "4h")]
        duration: String,
        /// Origin recorded with the ban.
        #[arg(long, value_parser = parse_origin, default_value = "manual")]
        origin: Origin,
        /// Why (kept in a note beside the ban, at most 56 bytes).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Remove a ban.
    Del {
        /// IP address or CIDR range, as it was added.
        target: String,
    },
    /// List every ban.
    List,
    /// Show which entry matches an address and what the XDP program does with it.
    Get {
        /// An IP address.
        ip: String,
    },
    /// Remove every ban (the allowlist stays).
    Flush,
    /// Load bans in bulk from a file: one address or range per line, `#` comments.
    Load {
        /// The file.
        file: PathBuf,
        /// Duration of every ban loaded.
        #[arg(long, default_value = "4h")]
        duration: String,
        /// Origin of every ban loaded.
        #[arg(long, value_parser = parse_origin, default_value = "lists")]
        origin: Origin,
    },
    /// Edit the allowlist (it wins over every ban).
    Allow {
        #[command(subcommand)]
        command: AllowCommand,
    },
    /// Packet counters: totals, and rates with --watch.
    Stats {
        /// Print again every interval until interrupted.
        #[arg(long)]
        watch: bool,
        /// Interval for --watch.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "1s")]
        interval: Duration,
        /// Stop --watch after this many reports (default: never).
        #[arg(long)]
        count: Option<u64>,
    },
}

/// `crowd map allow` subcommands.
#[derive(Debug, Subcommand)]
pub enum AllowCommand {
    /// Allow an address or range.
    Add {
        /// IP address or CIDR range.
        target: String,
    },
    /// Remove an allowlist entry.
    Del {
        /// IP address or CIDR range, as it was added.
        target: String,
    },
    /// List the allowlist.
    List,
}

fn parse_origin(s: &str) -> Result<Origin, String> {
    Origin::ALL
        .into_iter()
        .find(|o| o.name() == s)
        .ok_or_else(|| format!("unknown origin `{s}` (one of: {})", Origin::ALL.map(Origin::name).join(", ")))
}

/// Parses `--duration`: a humantime duration, or `permanent`.
///
/// # Errors
/// A message naming the bad value.
pub fn parse_ban_duration(s: &str) -> Result<Option<Duration>> {
    if s == "permanent" || s == "0" {
        return Ok(None);
    }
    let d = humantime::parse_duration(s)
        .with_context(|| format!("--duration `{s}`: expected e.g. 4h, 30m, 2d or `permanent`"))?;
    if d.is_zero() {
        bail!("--duration `{s}` is zero");
    }
    Ok(Some(d))
}

fn parse_target(s: &str) -> Result<Target> {
    let p = Target::parse(s)?;
    for n in &p.notes {
        eprintln!("note: {n}");
    }
    Ok(p.target)
}

/// Opens the pinned maps, creating them (one load of the object) if none exist yet.
fn open_or_create(settings: &Settings) -> Result<BanMaps> {
    match BanMaps::open(settings) {
        Err(EnforceError::NotInitialised(_)) => {
            object::load(settings).context("creating the pinned maps")?;
            Ok(BanMaps::open(settings)?)
        }
        r => Ok(r?),
    }
}

fn new_manual_id(maps: &BanMaps) -> u64 {
    // Manual map entries get ids with the top bit set, so they never collide with store ids.
    let mut id = (boot_now_ns() ^ (u64::from(std::process::id()) << 40)) | (1 << 63);
    while maps.has_note(id) {
        id = id.wrapping_add(1) | (1 << 63);
    }
    id
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn ban_json(maps: &BanMaps, clock: &BootClock, e: &BanEntry) -> Value {
    let note = (e.ban.decision_id != 0).then(|| maps.note(e.ban.decision_id)).flatten();
    json!({
        "target": e.target.to_string(),
        "kind": e.kind,
        "family": if e.target.is_ipv4() { "ipv4" } else { "ipv6" },
        "origin": Origin::from_u8(e.ban.origin).name(),
        "decision_id": e.ban.decision_id,
        "expires_in": clock.remaining(e.ban.expires_at_ns).map(go_duration),
        "expires_at": clock.wall_time(e.ban.expires_at_ns).map(|t| humantime::format_rfc3339_seconds(t).to_string()),
        "expired": e.ban.is_expired(clock.boot_ns),
        "drops": e.ban.drops,
        "reason": note.map(|n| n.0).filter(|r| !r.is_empty()),
    })
}

fn ban_row(v: &Value) -> Vec<String> {
    let s = |k: &str| match &v[k] {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let expires = if v["expired"] == true {
        "expired".to_owned()
    } else if v["expires_in"].is_null() {
        "never".to_owned()
    } else {
        s("expires_in")
    };
    vec![s("target"), s("kind"), s("origin"), expires, output::count(v["drops"].as_u64().unwrap_or(0)), s("reason")]
}

/// Runs a `crowd map` subcommand.
///
/// # Errors
/// Bad input (named), missing privileges or maps, a full map.
pub fn dispatch(settings: &Settings, cmd: &MapCommand, fmt: Format) -> Result<()> {
    match cmd {
        MapCommand::Add { target, duration, origin, reason } => {
            let target = parse_target(target)?;
            let d = parse_ban_duration(duration)?;
            let mut maps = open_or_create(settings)?;
            let clock = BootClock::now();
            let id = new_manual_id(&maps);
            maps.insert_ban(target, Ban::new(clock.expiry_after(d), id, *origin))?;
            if let Err(e) = maps.set_note(id, reason.as_deref().unwrap_or(""), unix_now()) {
                eprintln!("warning: {e}");
            }
            let e = BanEntry { target, kind: kind_of(target), ban: Ban::new(clock.expiry_after(d), id, *origin) };
            let v = ban_json(&maps, &clock, &e);
            match fmt {
                Format::Json => output::json(&v),
                Format::Table => println!(
                    "banned {} ({}, {})",
                    target,
                    v["kind"].as_str().unwrap_or(""),
                    d.map_or("permanent".to_owned(), |d| format!("for {}", humantime::format_duration(d)))
                ),
            }
        }
        MapCommand::Del { target } => {
            let target = parse_target(target)?;
            let mut maps = BanMaps::open(settings)?;
            let existed = maps.remove_ban(target)?;
            match fmt {
                Format::Json => output::json(&json!({"target": target.to_string(), "removed": existed})),
                Format::Table if existed => println!("removed {target}"),
                Format::Table => println!("{target} was not banned"),
            }
            if !existed {
                std::process::exit(1);
            }
        }
        MapCommand::List => {
            let maps = BanMaps::open(settings)?;
            let clock = BootClock::now();
            let mut list: Vec<Value> = maps.bans()?.iter().map(|e| ban_json(&maps, &clock, e)).collect();
            list.sort_by(|a, b| {
                b["drops"].as_u64().cmp(&a["drops"].as_u64()).then(a["target"].as_str().cmp(&b["target"].as_str()))
            });
            match fmt {
                Format::Json => output::json(&list),
                Format::Table => output::table(
                    &["TARGET", "KIND", "ORIGIN", "EXPIRES IN", "DROPS", "REASON"],
                    &list.iter().map(ban_row).collect::<Vec<_>>(),
                ),
            }
        }
        MapCommand::Get { ip } => {
            let ip: IpAddr = ip.trim().parse().with_context(|| format!("`{ip}` is not an IP address"))?;
            let maps = BanMaps::open(settings)?;
            let clock = BootClock::now();
            let l = maps.lookup(ip);
            let (verdict, why) = explain(&l, clock.boot_ns);
            let v = json!({
                "ip": crate::addr::canonical_ip(ip).to_string(),
                "verdict": verdict,
                "why": why,
                "exact": l.exact.as_ref().map(|e| ban_json(&maps, &clock, e)),
                "range": l.range.as_ref().map(|e| ban_json(&maps, &clock, e)),
                "allow": l.allow.as_ref().map(allow_json),
            });
            match fmt {
                Format::Json => output::json(&v),
                Format::Table => println!("{}: {verdict} ({why})", v["ip"].as_str().unwrap_or("")),
            }
        }
        MapCommand::Flush => {
            let mut maps = BanMaps::open(settings)?;
            let n = maps.flush()?;
            match fmt {
                Format::Json => output::json(&json!({"removed": n})),
                Format::Table => println!("removed {n} bans"),
            }
        }
        MapCommand::Load { file, duration, origin } => load_file(settings, file, duration, *origin, fmt)?,
        MapCommand::Allow { command } => allow(settings, command, fmt)?,
        MapCommand::Stats { watch, interval, count } => stats(settings, *watch, *interval, *count, fmt)?,
    }
    Ok(())
}

fn kind_of(t: Target) -> crate::enforce::maps::BanKind {
    match t {
        Target::Ip(_) => crate::enforce::maps::BanKind::Exact,
        Target::Net(_) => crate::enforce::maps::BanKind::Range,
    }
}

/// The program's decision for a lookup, in the order the program takes it.
#[must_use]
pub fn explain(l: &Lookup, now_ns: u64) -> (&'static str, String) {
    let live = |e: &Option<BanEntry>| e.filter(|e| !e.ban.is_expired(now_ns));
    let ban = live(&l.exact).or(live(&l.range));
    match (ban, &l.allow) {
        (Some(b), Some(a)) => {
            ("pass", format!("banned by {} {}, but allowlisted by {}", kind_name(&b), b.target, a.target))
        }
        (Some(b), None) => ("drop", format!("{} ban {}", kind_name(&b), b.target)),
        (None, _) if l.exact.is_some() || l.range.is_some() => ("pass", "only expired bans match".to_owned()),
        (None, Some(a)) => ("pass", format!("no ban; allowlisted by {}", a.target)),
        (None, None) => ("pass", "no ban matches".to_owned()),
    }
}

fn kind_name(e: &BanEntry) -> &'static str {
    match e.kind {
        crate::enforce::maps::BanKind::Exact => "exact",
        crate::enforce::maps::BanKind::Range => "range",
    }
}

fn allow_json(a: &AllowEntry) -> Value {
    json!({"target": a.target.to_string(), "family": if a.target.is_ipv4() { "ipv4" } else { "ipv6" }, "hits": a.allow.hits})
}

fn allow(settings: &Settings, cmd: &AllowCommand, fmt: Format) -> Result<()> {
    match cmd {
        AllowCommand::Add { target } => {
            let t = parse_target(target)?;
            let mut maps = open_or_create(settings)?;
            maps.allow(t)?;
            match fmt {
                Format::Json => output::json(&json!({"target": t.to_string(), "allowed": true})),
                Format::Table => println!("allowed {t}"),
            }
        }
        AllowCommand::Del { target } => {
            let t = parse_target(target)?;
            let mut maps = BanMaps::open(settings)?;
            let existed = maps.disallow(t)?;
            match fmt {
                Format::Json => output::json(&json!({"target": t.to_string(), "removed": existed})),
                Format::Table if existed => println!("removed {t} from the allowlist"),
                Format::Table => println!("{t} was not in the allowlist"),
            }
        }
        AllowCommand::List => {
            let maps = BanMaps::open(settings)?;
            let list: Vec<Value> = maps.allowlist()?.iter().map(allow_json).collect();
            match fmt {
                Format::Json => output::json(&list),
                Format::Table => output::table(
                    &["TARGET", "FAMILY", "HITS"],
                    &list
                        .iter()
                        .map(|v| {
                            vec![
                                v["target"].as_str().unwrap_or("").to_owned(),
                                v["family"].as_str().unwrap_or("").to_owned(),
                                output::count(v["hits"].as_u64().unwrap_or(0)),
                            ]
                        })
                        .collect::<Vec<_>>(),
                ),
            }
        }
    }
    Ok(())
}

fn load_file(settings: &Settings, file: &PathBuf, duration: &str, origin: Origin, fmt: Format) -> Result<()> {
    let d = parse_ban_duration(duration)?;
    let text = std::fs::read_to_string(file).with_context(|| format!("reading `{}`", file.display()))?;
    let clock = BootClock::now();
    let ban = Ban::new(clock.expiry_after(d), 0, origin);
    let mut entries = Vec::new();
    let mut errors = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        match Target::parse(line) {
            Ok(p) => entries.push((p.target, ban)),
            Err(e) => errors.push(format!("{}:{}: {e}", file.display(), i + 1)),
        }
    }
    if !errors.is_empty() {
        let shown = errors.iter().take(10).cloned().collect::<Vec<_>>().join("\n");
        bail!("{} bad line(s), nothing loaded:\n{shown}", errors.len());
    }
    let mut maps = open_or_create(settings)?;
    let started = std::time::Instant::now();
    let n = maps.insert_many(&entries)?;
    let took = started.elapsed();
    match fmt {
        Format::Json => output::json(&json!({"loaded": n, "seconds": took.as_secs_f64()})),
        Format::Table => println!("loaded {n} bans in {:.3}s", took.as_secs_f64()),
    }
    Ok(())
}

fn stats_json(s: &Stats, counts: [usize; 6], filter: (u64, u64), settings: &Settings) -> Value {
    json!({
        "filter_bits": {"v4": filter.0, "v6": filter.1},
        "seen": s.seen,
        "passed": s.passed,
        "dropped": s.dropped_exact + s.dropped_range,
        "dropped_exact": s.dropped_exact,
        "dropped_range": s.dropped_range,
        "allowlisted": s.allowlisted,
        "expired": s.expired,
        "unparsable": s.unparsable,
        "non_ip": s.non_ip,
        "entries": {
            "exact_v4": counts[0], "exact_v6": counts[1], "ranges_v4": counts[2], "ranges_v6": counts[3],
            "allow_v4": counts[4], "allow_v6": counts[5],
        },
        "capacity": {"exact": settings.exact_capacity, "ranges": settings.range_capacity, "allow": settings.allow_capacity},
        "attached": crate::enforce::attach::attached(&settings.pin_dir).into_iter().map(|(i, info)| json!({"iface": i, "live": info.is_some_and(|x| x.ifindex != 0)})).collect::<Vec<_>>(),
    })
}

const STAT_KEYS: [&str; 9] =
    ["seen", "passed", "dropped", "dropped_exact", "dropped_range", "allowlisted", "expired", "unparsable", "non_ip"];

fn stats(settings: &Settings, watch: bool, interval: Duration, count: Option<u64>, fmt: Format) -> Result<()> {
    let maps = BanMaps::open(settings)?;
    let mut prev: Option<(Value, std::time::Instant)> = None;
    let mut n = 0u64;
    loop {
        let now = std::time::Instant::now();
        let mut v = stats_json(&maps.stats()?, maps.counts(), maps.filter_ones(), maps.settings());
        if let Some((p, t)) = &prev {
            let secs = now.duration_since(*t).as_secs_f64().max(1e-9);
            let rates: serde_json::Map<String, Value> = STAT_KEYS
                .iter()
                .map(|k| {
                    (
                        (*k).to_owned(),
                        json!(
                            ((v[k].as_u64().unwrap_or(0).saturating_sub(p[k].as_u64().unwrap_or(0))) as f64 / secs)
                                .round()
                        ),
                    )
                })
                .collect();
            v["rates_per_second"] = Value::Object(rates);
        }
        match fmt {
            Format::Json if watch => println!("{}", serde_json::to_string(&v)?),
            Format::Json => output::json(&v),
            Format::Table => {
                let rows: Vec<Vec<String>> = STAT_KEYS
                    .iter()
                    .map(|k| {
                        let rate = v.get("rates_per_second").map_or("-".to_owned(), |r| {
                            format!("{}/s", output::count(r[k].as_f64().unwrap_or(0.0) as u64))
                        });
                        vec![(*k).to_owned(), output::count(v[k].as_u64().unwrap_or(0)), rate]
                    })
                    .collect();
                output::table(&["COUNTER", "TOTAL", "RATE"], &rows);
                let e = &v["entries"];
                println!(
                    "entries: {} exact v4, {} exact v6, {} ranges v4, {} ranges v6, {} allow",
                    e["exact_v4"],
                    e["exact_v6"],
                    e["ranges_v4"],
                    e["ranges_v6"],
                    e["allow_v4"].as_u64().unwrap_or(0) + e["allow_v6"].as_u64().unwrap_or(0)
                );
                if watch {
                    println!();
                }
            }
        }
        n += 1;
        if !watch || count.is_some_and(|c| n >= c) {
            return Ok(());
        }
        prev = Some((v, now));
        std::thread::sleep(interval);
    }
}
