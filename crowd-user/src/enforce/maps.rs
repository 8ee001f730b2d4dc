//! The pinned maps, opened by path: add, remove, look up, list and count bans, ranges and
//! allowlist entries, read the counters, sweep expired entries.
//!
//! Works with or without a running daemon: every method goes straight to the kernel maps. After
//! each change to a range or allowlist trie, [`BanMaps::refresh_config`] tells the XDP program
//! whether that trie needs a lookup at all.
use std::{
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::fd::AsFd,
    path::Path,
};

use aya::maps::{Array, HashMap, IterableMap, LpmTrie, Map, MapData, MapError, PerCpuArray, lpm_trie::Key};
use crowd_common::{Allow, Ban, Config, Note, REASON_LEN, Stats, map_names as names};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::{EnforceError, Result, Settings, filter::Filter, pins, sys};
use crate::addr::Target;

/// Which kind of entry matched or is listed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BanKind {
    /// An exact address ban.
    Exact,
    /// A range (CIDR) ban.
    Range,
}

/// One ban as stored in the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BanEntry {
    /// The banned address or range.
    pub target: Target,
    /// Exact or range.
    pub kind: BanKind,
    /// The map value.
    pub ban: Ban,
}

/// One allowlist entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllowEntry {
    /// The allowed address or range.
    pub target: Target,
    /// The map value.
    pub allow: Allow,
}

/// What the XDP program would do with a packet from an address, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lookup {
    /// The exact ban on the address, if any (expired or not).
    pub exact: Option<BanEntry>,
    /// The longest range ban containing the address, if any.
    pub range: Option<BanEntry>,
    /// The longest allowlist entry containing the address, if any.
    pub allow: Option<AllowEntry>,
}

type V4Key = Key<[u8; 4]>;
type V6Key = Key<[u8; 16]>;

/// The pinned maps of one pin directory.
pub struct BanMaps {
    settings: Settings,
    bans_v4: HashMap<MapData, [u8; 4], Ban>,
    bans_v6: HashMap<MapData, [u8; 16], Ban>,
    nets_v4: LpmTrie<MapData, [u8; 4], Ban>,
    nets_v6: LpmTrie<MapData, [u8; 16], Ban>,
    allow_v4: LpmTrie<MapData, [u8; 4], Allow>,
    allow_v6: LpmTrie<MapData, [u8; 16], Allow>,
    stats: PerCpuArray<MapData, Stats>,
    config: Array<MapData, Config>,
    notes: HashMap<MapData, u64, Note>,
    filter_v4: Filter,
    filter_v6: Filter,
}

fn open_map<T>(dir: &Path, name: &str) -> Result<T>
where
    T: TryFrom<Map, Error = MapError>,
{
    let path = dir.join(name);
    let data =
        MapData::from_pin(&path).map_err(|e| EnforceError::BadPin { path: path.clone(), reason: e.to_string() })?;
    let map = Map::from_map_data(data)?;
    Ok(T::try_from(map)?)
}

fn is_full(e: &MapError) -> bool {
    matches!(e, MapError::SyscallError(s) if matches!(s.io_error.raw_os_error(), Some(libc::E2BIG | libc::ENOSPC | libc::ENOMEM)))
}

fn is_missing(e: &MapError) -> bool {
    match e {
        MapError::KeyNotFound => true,
        MapError::SyscallError(s) => s.io_error.raw_os_error() == Some(libc::ENOENT),
        _ => false,
    }
}

fn v4_net(k: &V4Key) -> Target {
    let (len, data) = (k.prefix_len(), k.data());
    let ip = Ipv4Addr::from(data);
    if len >= 32 {
        Target::Ip(IpAddr::V4(ip))
    } else {
        Target::Net(IpNet::V4(Ipv4Net::new(ip, len as u8).expect("len < 32")))
    }
}

fn v6_net(k: &V6Key) -> Target {
    let (len, data) = (k.prefix_len(), k.data());
    let ip = Ipv6Addr::from(data);
    if len >= 128 {
        Target::Ip(IpAddr::V6(ip))
    } else {
        Target::Net(IpNet::V6(Ipv6Net::new(ip, len as u8).expect("len < 128")))
    }
}

impl BanMaps {
    /// Opens every pinned map under the settings' pin directory and checks each against its spec.
    ///
    /// # Errors
    /// [`EnforceError::NotInitialised`] when nothing is pinned there yet; [`EnforceError::BadPin`]
    /// when a pin does not match this crowd's layout.
    pub fn open(settings: &Settings) -> Result<BanMaps> {
        let dir = &settings.pin_dir;
        if !dir.join(names::BANS_V4).exists() {
            return Err(EnforceError::NotInitialised(dir.clone()));
        }
        // Open with the capacities the pins have: a capacity change is the loader's business,
        // but a layout change would make every read wrong.
        let mut settings = settings.clone();
        for spec in pins::specs(&settings) {
            let path = dir.join(spec.name);
            let data = MapData::from_pin(&path)
                .map_err(|e| EnforceError::BadPin { path: path.clone(), reason: e.to_string() })?;
            let info = data.info()?;
            if info.key_size() != spec.key_size || info.value_size() != spec.value_size {
                return Err(EnforceError::BadPin {
                    path,
                    reason: format!(
                        "key/value size {}/{}, this crowd expects {}/{}: run `crowd attach` or `crowd run` to recreate it",
                        info.key_size(),
                        info.value_size(),
                        spec.key_size,
                        spec.value_size
                    ),
                });
            }
            match spec.name {
                n if n == names::BANS_V4 => settings.exact_capacity = info.max_entries(),
                n if n == names::RANGES_V4 => settings.range_capacity = info.max_entries(),
                n if n == names::ALLOW_V4 => settings.allow_capacity = info.max_entries(),
                _ => {}
            }
        }
        Ok(BanMaps {
            bans_v4: open_map(dir, names::BANS_V4)?,
            bans_v6: open_map(dir, names::BANS_V6)?,
            nets_v4: open_map(dir, names::RANGES_V4)?,
            nets_v6: open_map(dir, names::RANGES_V6)?,
            allow_v4: open_map(dir, names::ALLOW_V4)?,
            allow_v6: open_map(dir, names::ALLOW_V6)?,
            stats: open_map(dir, names::STATS)?,
            config: open_map(dir, names::CONFIG)?,
            notes: open_map(dir, names::NOTES)?,
            filter_v4: Filter::open(&dir.join(names::FILTER_V4))?,
            filter_v6: Filter::open(&dir.join(names::FILTER_V6))?,
            settings,
        })
    }

    /// The settings with the capacities the pinned maps actually have.
    #[must_use]
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Adds or replaces a ban. Keeps the drop counter of a ban that is replaced.
    ///
    /// # Errors
    /// [`EnforceError::MapFull`] when the map has no room (nothing else is changed).
    pub fn insert_ban(&mut self, target: Target, mut ban: Ban) -> Result<()> {
        // The prefilter bit goes first (and again after): a ban never sits behind a clear bit.
        self.filter(target).set_target(target);
        let full = |map, capacity| EnforceError::MapFull { map, capacity, entry: target.to_string() };
        let r = match target {
            Target::Ip(IpAddr::V4(a)) => {
                ban.drops = self.bans_v4.get(&a.octets(), 0).map(|b| b.drops).unwrap_or(0);
                self.bans_v4.insert(a.octets(), ban, 0).map_err(|e| (e, names::BANS_V4, self.settings.exact_capacity))
            }
            Target::Ip(IpAddr::V6(a)) => {
                ban.drops = self.bans_v6.get(&a.octets(), 0).map(|b| b.drops).unwrap_or(0);
                self.bans_v6.insert(a.octets(), ban, 0).map_err(|e| (e, names::BANS_V6, self.settings.exact_capacity))
            }
            Target::Net(IpNet::V4(n)) => {
                let k = Key::new(u32::from(n.prefix_len()), n.network().octets());
                ban.drops = self.nets_v4.get(&k, 0).map(|b| b.drops).unwrap_or(0);
                self.nets_v4.insert(&k, ban, 0).map_err(|e| (e, names::RANGES_V4, self.settings.range_capacity))
            }
            Target::Net(IpNet::V6(n)) => {
                let k = Key::new(u32::from(n.prefix_len()), n.network().octets());
                ban.drops = self.nets_v6.get(&k, 0).map(|b| b.drops).unwrap_or(0);
                self.nets_v6.insert(&k, ban, 0).map_err(|e| (e, names::RANGES_V6, self.settings.range_capacity))
            }
        };
        match r {
            Ok(()) => {}
            Err((e, map, cap)) if is_full(&e) => return Err(full(map, cap)),
            Err((e, _, _)) => return Err(e.into()),
        }
        self.filter(target).set_target(target);
        if matches!(target, Target::Net(_)) {
            self.refresh_config()?;
        }
        Ok(())
    }

    fn filter(&self, t: Target) -> &Filter {
        if t.is_ipv4() { &self.filter_v4 } else { &self.filter_v6 }
    }

    /// Sets the prefilter bits of every ban present (never clears any).
    ///
    /// # Errors
    /// Kernel errors while iterating.
    pub fn reassert_filters(&mut self) -> Result<()> {
        for e in self.bans()? {
            self.filter(e.target).set_target(e.target);
        }
        Ok(())
    }

    /// Rebuilds the prefilters from the ban maps, clearing the bits of removed bans. Bans written
    /// concurrently keep their bits (see `filter.rs`).
    ///
    /// # Errors
    /// Kernel errors while iterating.
    pub fn rebuild_filters(&mut self) -> Result<()> {
        let bans = self.bans()?;
        let v4 = super::filter::build(bans.iter().filter(|e| e.target.is_ipv4()).map(|e| e.target));
        let v6 = super::filter::build(bans.iter().filter(|e| !e.target.is_ipv4()).map(|e| e.target));
        self.filter_v4.replace(&v4);
        self.filter_v6.replace(&v6);
        self.reassert_filters()
    }

    /// Bits set in the (v4, v6) prefilters.
    #[must_use]
    pub fn filter_ones(&self) -> (u64, u64) {
        (self.filter_v4.ones(), self.filter_v6.ones())
    }

    /// Writes many exact bans with batch updates (ranges go one by one). Returns how many were
    /// written; stops at the first full map with [`EnforceError::MapFull`] naming the first entry
    /// not written (entries before it stay).
    ///
    /// # Errors
    /// As [`BanMaps::insert_ban`].
    pub fn insert_many(&mut self, entries: &[(Target, Ban)]) -> Result<usize> {
        const BATCH: usize = 16 * 1024;
        let (mut k4, mut v4, mut k6, mut v6, mut nets) = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (t, b) in entries {
            match t {
                Target::Ip(IpAddr::V4(a)) => {
                    k4.push(a.octets());
                    v4.push(*b);
                }
                Target::Ip(IpAddr::V6(a)) => {
                    k6.push(a.octets());
                    v6.push(*b);
                }
                Target::Net(_) => nets.push((*t, *b)),
            }
        }
        for (t, _) in entries {
            self.filter(*t).set_target(*t);
        }
        let mut done = 0;
        let cap = self.settings.exact_capacity;
        for (fd, keys, values, name, width) in [
            (self.bans_v4.map().fd().as_fd(), as_bytes(&k4), as_bytes(&v4), names::BANS_V4, 4),
            (self.bans_v6.map().fd().as_fd(), as_bytes(&k6), as_bytes(&v6), names::BANS_V6, 16),
        ] {
            let n = keys.len() / width;
            let vsz = size_of::<Ban>();
            let mut at = 0;
            while at < n {
                let end = (at + BATCH).min(n);
                match sys::update_batch(fd, &keys[at * width..end * width], &values[at * vsz..end * vsz], end - at) {
                    Ok(_) => {}
                    Err((written, e)) => {
                        tracing::warn!(map = name, written = done + at + written, "batch load stopped early");
                        let entry = if width == 4 {
                            IpAddr::from(
                                <[u8; 4]>::try_from(&keys[(at + written) * 4..(at + written) * 4 + 4]).expect("4"),
                            )
                        } else {
                            IpAddr::from(
                                <[u8; 16]>::try_from(&keys[(at + written) * 16..(at + written) * 16 + 16]).expect("16"),
                            )
                        };
                        return Err(if matches!(e.raw_os_error(), Some(libc::E2BIG | libc::ENOSPC | libc::ENOMEM)) {
                            EnforceError::MapFull { map: name, capacity: cap, entry: entry.to_string() }
                        } else {
                            EnforceError::io(format!("batch update of `{name}`"), e)
                        });
                    }
                }
                at = end;
            }
            done += n;
        }
        for (t, b) in nets {
            self.insert_ban(t, b)?;
            done += 1;
        }
        for (t, _) in entries {
            self.filter(*t).set_target(*t);
        }
        Ok(done)
    }

    /// Removes a ban; returns whether it existed.
    ///
    /// # Errors
    /// Kernel errors other than "not found".
    pub fn remove_ban(&mut self, target: Target) -> Result<bool> {
        let r = match target {
            Target::Ip(IpAddr::V4(a)) => self.bans_v4.remove(&a.octets()),
            Target::Ip(IpAddr::V6(a)) => self.bans_v6.remove(&a.octets()),
            Target::Net(IpNet::V4(n)) => {
                self.nets_v4.remove(&Key::new(u32::from(n.prefix_len()), n.network().octets()))
            }
            Target::Net(IpNet::V6(n)) => {
                self.nets_v6.remove(&Key::new(u32::from(n.prefix_len()), n.network().octets()))
            }
        };
        let existed = match r {
            Ok(()) => true,
            Err(e) if is_missing(&e) => false,
            Err(e) => return Err(e.into()),
        };
        if matches!(target, Target::Net(_)) {
            self.refresh_config()?;
        }
        Ok(existed)
    }

    /// Every ban (exact then ranges).
    ///
    /// # Errors
    /// Kernel errors while iterating.
    pub fn bans(&self) -> Result<Vec<BanEntry>> {
        let mut out = Vec::new();
        for kv in self.bans_v4.iter() {
            let (k, ban) = kv?;
            out.push(BanEntry { target: Target::Ip(IpAddr::from(k)), kind: BanKind::Exact, ban });
        }
        for kv in self.bans_v6.iter() {
            let (k, ban) = kv?;
            out.push(BanEntry { target: Target::Ip(IpAddr::from(k)), kind: BanKind::Exact, ban });
        }
        for kv in self.nets_v4.iter() {
            let (k, ban) = kv?;
            out.push(BanEntry { target: v4_net(&k), kind: BanKind::Range, ban });
        }
        for kv in self.nets_v6.iter() {
            let (k, ban) = kv?;
            out.push(BanEntry { target: v6_net(&k), kind: BanKind::Range, ban });
        }
        Ok(out)
    }

    /// The ban stored for exactly `target` (an address's own entry, or the range's own prefix;
    /// not the ranges around it). Ranges are found by walking the range maps: call it for a few
    /// targets, or use [`BanMaps::range_bans`] once for many.
    #[must_use]
    pub fn ban_of(&self, target: Target) -> Option<Ban> {
        match target {
            Target::Ip(IpAddr::V4(a)) => self.bans_v4.get(&a.octets(), 0).ok(),
            Target::Ip(IpAddr::V6(a)) => self.bans_v6.get(&a.octets(), 0).ok(),
            Target::Net(_) => self.range_bans().ok()?.into_iter().find(|e| e.target == target).map(|e| e.ban),
        }
    }

    /// Every range ban.
    ///
    /// # Errors
    /// Kernel errors while iterating.
    pub fn range_bans(&self) -> Result<Vec<BanEntry>> {
        let mut out = Vec::new();
        for kv in self.nets_v4.iter() {
            let (k, ban) = kv?;
            out.push(BanEntry { target: v4_net(&k), kind: BanKind::Range, ban });
        }
        for kv in self.nets_v6.iter() {
            let (k, ban) = kv?;
            out.push(BanEntry { target: v6_net(&k), kind: BanKind::Range, ban });
        }
        Ok(out)
    }

    /// Entry counts: (exact v4, exact v6, ranges v4, ranges v6, allow v4, allow v6).
    #[must_use]
    pub fn counts(&self) -> [usize; 6] {
        [
            self.bans_v4.keys().count(),
            self.bans_v6.keys().count(),
            self.nets_v4.keys().count(),
            self.nets_v6.keys().count(),
            self.allow_v4.keys().count(),
            self.allow_v6.keys().count(),
        ]
    }

    /// Removes every ban (exact and range; the allowlist stays). Returns how many were removed.
    ///
    /// # Errors
    /// Kernel errors.
    pub fn flush(&mut self) -> Result<usize> {
        let all = self.bans()?;
        for e in &all {
            self.remove_ban(e.target)?;
        }
        self.rebuild_filters()?;
        Ok(all.len())
    }

    /// Removes bans whose expiry is at or before `now_ns` (boot-time clock). Returns the count.
    ///
    /// # Errors
    /// Kernel errors.
    pub fn sweep_expired(&mut self, now_ns: u64) -> Result<usize> {
        let expired: Vec<_> = self.bans()?.into_iter().filter(|e| e.ban.is_expired(now_ns)).collect();
        for e in &expired {
            self.remove_ban(e.target)?;
            if e.ban.decision_id != 0 {
                let _ = self.notes.remove(&e.ban.decision_id);
            }
        }
        if !expired.is_empty() {
            self.rebuild_filters()?;
        }
        Ok(expired.len())
    }

    /// What the program would find for a packet from `ip`.
    #[must_use]
    pub fn lookup(&self, ip: IpAddr) -> Lookup {
        match crate::addr::canonical_ip(ip) {
            IpAddr::V4(a) => {
                let ip = IpAddr::V4(a);
                Lookup {
                    exact: self.bans_v4.get(&a.octets(), 0).ok().map(|ban| BanEntry {
                        target: Target::Ip(ip),
                        kind: BanKind::Exact,
                        ban,
                    }),
                    range: longest(&self.nets_v4, ip, v4_net).map(|(target, ban)| BanEntry {
                        target,
                        kind: BanKind::Range,
                        ban,
                    }),
                    allow: longest(&self.allow_v4, ip, v4_net).map(|(target, allow)| AllowEntry { target, allow }),
                }
            }
            IpAddr::V6(a) => {
                let ip = IpAddr::V6(a);
                Lookup {
                    exact: self.bans_v6.get(&a.octets(), 0).ok().map(|ban| BanEntry {
                        target: Target::Ip(ip),
                        kind: BanKind::Exact,
                        ban,
                    }),
                    range: longest(&self.nets_v6, ip, v6_net).map(|(target, ban)| BanEntry {
                        target,
                        kind: BanKind::Range,
                        ban,
                    }),
                    allow: longest(&self.allow_v6, ip, v6_net).map(|(target, allow)| AllowEntry { target, allow }),
                }
            }
        }
    }

    /// Adds an allowlist entry (wins over any ban in the XDP program).
    ///
    /// # Errors
    /// [`EnforceError::MapFull`].
    pub fn allow(&mut self, target: Target) -> Result<()> {
        let (len4, len6) = prefix_lens(target);
        let r = match target {
            Target::Ip(IpAddr::V4(a)) => {
                self.allow_v4.insert(&Key::new(len4, a.octets()), Allow::default(), 0).map_err(|e| (e, names::ALLOW_V4))
            }
            Target::Net(IpNet::V4(n)) => self
                .allow_v4
                .insert(&Key::new(len4, n.network().octets()), Allow::default(), 0)
                .map_err(|e| (e, names::ALLOW_V4)),
            Target::Ip(IpAddr::V6(a)) => {
                self.allow_v6.insert(&Key::new(len6, a.octets()), Allow::default(), 0).map_err(|e| (e, names::ALLOW_V6))
            }
            Target::Net(IpNet::V6(n)) => self
                .allow_v6
                .insert(&Key::new(len6, n.network().octets()), Allow::default(), 0)
                .map_err(|e| (e, names::ALLOW_V6)),
        };
        match r {
            Ok(()) => {}
            Err((e, map)) if is_full(&e) => {
                return Err(EnforceError::MapFull {
                    map,
                    capacity: self.settings.allow_capacity,
                    entry: target.to_string(),
                });
            }
            Err((e, _)) => return Err(e.into()),
        }
        self.refresh_config()
    }

    /// Removes an allowlist entry; returns whether it existed.
    ///
    /// # Errors
    /// Kernel errors other than "not found".
    pub fn disallow(&mut self, target: Target) -> Result<bool> {
        let (len4, len6) = prefix_lens(target);
        let r = match target {
            Target::Ip(IpAddr::V4(a)) => self.allow_v4.remove(&Key::new(len4, a.octets())),
            Target::Net(IpNet::V4(n)) => self.allow_v4.remove(&Key::new(len4, n.network().octets())),
            Target::Ip(IpAddr::V6(a)) => self.allow_v6.remove(&Key::new(len6, a.octets())),
            Target::Net(IpNet::V6(n)) => self.allow_v6.remove(&Key::new(len6, n.network().octets())),
        };
        let existed = match r {
            Ok(()) => true,
            Err(e) if is_missing(&e) => false,
            Err(e) => return Err(e.into()),
        };
        self.refresh_config()?;
        Ok(existed)
    }

    /// Every allowlist entry.
    ///
    /// # Errors
    /// Kernel errors while iterating.
    pub fn allowlist(&self) -> Result<Vec<AllowEntry>> {
        let mut out = Vec::new();
        for kv in self.allow_v4.iter() {
            let (k, allow) = kv?;
            out.push(AllowEntry { target: v4_net(&k), allow });
        }
        for kv in self.allow_v6.iter() {
            let (k, allow) = kv?;
            out.push(AllowEntry { target: v6_net(&k), allow });
        }
        Ok(out)
    }

    /// Counters summed over every CPU.
    ///
    /// # Errors
    /// Kernel errors.
    pub fn stats(&self) -> Result<Stats> {
        let per_cpu = self.stats.get(&0, 0)?;
        let mut t = Stats::default();
        for s in per_cpu.iter() {
            t.seen += s.seen;
            t.passed += s.passed;
            t.dropped_exact += s.dropped_exact;
            t.dropped_range += s.dropped_range;
            t.allowlisted += s.allowlisted;
            t.expired += s.expired;
            t.unparsable += s.unparsable;
            t.non_ip += s.non_ip;
        }
        Ok(t)
    }

    /// Tells the XDP program which tries hold entries, so empty ones cost no lookup.
    ///
    /// # Errors
    /// Kernel errors.
    pub fn refresh_config(&mut self) -> Result<()> {
        let on = |b: bool| u32::from(b);
        let c = Config {
            ranges_v4: on(self.nets_v4.keys().next().is_some()),
            ranges_v6: on(self.nets_v6.keys().next().is_some()),
            allow_v4: on(self.allow_v4.keys().next().is_some()),
            allow_v6: on(self.allow_v6.keys().next().is_some()),
            boot_offset_ns: crate::clock::boot_offset_ns(),
        };
        self.config.set(0, c, 0)?;
        Ok(())
    }

    /// Stores a note for a decision id (`--reason`). A full notes map is reported, not fatal to the ban.
    ///
    /// # Errors
    /// [`EnforceError::MapFull`].
    pub fn set_note(&mut self, decision_id: u64, reason: &str, created_unix: u64) -> Result<()> {
        let mut buf = [0u8; REASON_LEN];
        let mut cut = reason.len().min(REASON_LEN);
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        buf[..cut].copy_from_slice(&reason.as_bytes()[..cut]);
        match self.notes.insert(decision_id, Note { created_unix, reason: buf }, 0) {
            Ok(()) => Ok(()),
            Err(e) if is_full(&e) => Err(EnforceError::MapFull {
                map: names::NOTES,
                capacity: crowd_common::capacity::NOTES,
                entry: format!("note for decision {decision_id}"),
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// The note for a decision id, if any: (reason, created unix seconds).
    #[must_use]
    pub fn note(&self, decision_id: u64) -> Option<(String, u64)> {
        let n = self.notes.get(&decision_id, 0).ok()?;
        let end = n.reason.iter().position(|&b| b == 0).unwrap_or(REASON_LEN);
        Some((String::from_utf8_lossy(&n.reason[..end]).into_owned(), n.created_unix))
    }

    /// Whether a decision id is already used by a note.
    #[must_use]
    pub fn has_note(&self, decision_id: u64) -> bool {
        self.notes.get(&decision_id, 0).is_ok()
    }
}

fn prefix_lens(t: Target) -> (u32, u32) {
    match t {
        Target::Ip(_) => (32, 128),
        Target::Net(n) => (u32::from(n.prefix_len()), u32::from(n.prefix_len())),
    }
}

/// The longest-prefix entry of a trie containing `ip` (one pass over the trie; CLI use only).
fn longest<const N: usize, V: aya::Pod>(
    t: &LpmTrie<MapData, [u8; N], V>,
    ip: IpAddr,
    to_target: fn(&Key<[u8; N]>) -> Target,
) -> Option<(Target, V)> {
    t.iter()
        .filter_map(std::result::Result::ok)
        .map(|(k, v)| (k.prefix_len(), to_target(&k), v))
        .filter(|(_, target, _)| target.contains(ip))
        .max_by_key(|(len, _, _)| *len)
        .map(|(_, target, v)| (target, v))
}

fn as_bytes<T: aya::Pod>(v: &[T]) -> &[u8] {
    // SAFETY: Pod types are plain bytes with no padding holes.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
}

impl From<io::Error> for EnforceError {
    fn from(e: io::Error) -> Self {
        EnforceError::io("bpf", e)
    }
}
