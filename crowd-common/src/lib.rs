//! Types and constants shared by the XDP program (`crowd-ebpf`) and userspace (`crowd-user`).
//!
//! Everything here is `#[repr(C)]` and `no_std`: it is the byte layout of the BPF maps, so a
//! change here is a change of the kernel ABI between crowd versions. Pinned maps whose key or
//! value size no longer matches are recreated by the loader (see `crowd-user/src/enforce/pins.rs`).
//! `docs/bpf-maps.md` documents every map; keep it in step with this file.
#![no_std]

/// Map names. They double as pin file names under the pin directory; the kernel keeps only
/// 15 characters of a map name, so every name here is at most 15 bytes.
pub mod map_names {
    /// Exact IPv4 bans: `HASH<[u8; 4], Ban>`.
    pub const BANS_V4: &str = "CROWD_BANS_V4";
    /// Exact IPv6 bans: `HASH<[u8; 16], Ban>`.
    pub const BANS_V6: &str = "CROWD_BANS_V6";
    /// IPv4 range bans: `LPM_TRIE<LpmKey<[u8; 4]>, Ban>`.
    pub const RANGES_V4: &str = "CROWD_NETS_V4";
    /// IPv6 range bans: `LPM_TRIE<LpmKey<[u8; 16]>, Ban>`.
    pub const RANGES_V6: &str = "CROWD_NETS_V6";
    /// IPv4 allowlist: `LPM_TRIE<LpmKey<[u8; 4]>, Allow>`.
    pub const ALLOW_V4: &str = "CROWD_ALLOW_V4";
    /// IPv6 allowlist: `LPM_TRIE<LpmKey<[u8; 16]>, Allow>`.
    pub const ALLOW_V6: &str = "CROWD_ALLOW_V6";
    /// Per-CPU packet counters: `PERCPU_ARRAY<Stats>` with one entry.
    pub const STATS: &str = "CROWD_STATS";
    /// Which optional lookups the program must do: `ARRAY<Config>` with one entry.
    pub const CONFIG: &str = "CROWD_CONFIG";

    /// Notes on manual map entries (reason, creation time), keyed by decision id:
    /// `HASH<u64, Note>`. Read and written by userspace only.
    pub const NOTES: &str = "CROWD_NOTES";

    /// IPv4 prefilter: one bit per /24 that holds a ban (exact or range): `ARRAY<u64>`, mmapable.
    pub const FILTER_V4: &str = "CROWD_FILTER_V4";
    /// IPv6 prefilter: one bit per hashed /48 that holds a ban: `ARRAY<u64>`, mmapable.
    pub const FILTER_V6: &str = "CROWD_FILTER_V6";

    /// Every map, in the order the loader checks them.
    pub const ALL: [&str; 11] =
        [BANS_V4, BANS_V6, RANGES_V4, RANGES_V6, ALLOW_V4, ALLOW_V6, STATS, CONFIG, NOTES, FILTER_V4, FILTER_V6];
}

/// Default capacities. Exact bans are sized for 1M addresses per family (about 80 MB of kernel
/// memory for IPv4, preallocated); ranges and allowlists stay small because an LPM trie lookup
/// grows with its size (37 ns at 1 entry, 263 ns at 100k).
pub mod capacity {
    /// Exact bans per family.
    pub const EXACT: u32 = 1 << 20;
    /// Range bans per family.
    pub const RANGES: u32 = 1 << 16;
    /// Allowlist entries per family.
    pub const ALLOW: u32 = 1 << 14;
    /// Notes on manual entries.
    pub const NOTES: u32 = 1 << 16;
}

/// The prefilters in front of the ban maps. Legitimate traffic (a miss) costs one inlined array
/// read and a bit test: only a source whose bit is set pays for the hash and trie lookups.
/// Bits are set by userspace before a ban is written (and again after), and only cleared by a
/// rebuild from the ban maps, so a set bit may be stale but a ban never lacks its bit.
pub mod filter {
    /// Words (u64) in each prefilter array: 2^24 bits, 2 MiB per family.
    pub const WORDS: u32 = 1 << 18;
    /// Bits in each prefilter.
    pub const BITS: u32 = WORDS * 64;
    /// Prefix length an IPv6 filter bit stands for.
    pub const V6_PREFIX: u8 = 48;

    /// The IPv4 filter bit of an address: its /24.
    #[must_use]
    #[inline(always)]
    pub const fn v4_bit(addr: [u8; 4]) -> u32 {
        ((addr[0] as u32) << 16) | ((addr[1] as u32) << 8) | addr[2] as u32
    }

    /// The IPv6 filter bit of an address: its /48, hashed (multiplicative) into 24 bits.
    #[must_use]
    #[inline(always)]
    pub const fn v6_bit_of_prefix48(top48: u64) -> u32 {
        (top48.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as u32
    }

    /// The top 48 bits of an IPv6 address, from its first 8 bytes read big-endian.
    #[must_use]
    #[inline(always)]
    pub const fn v6_top48(first8_be: u64) -> u64 {
        first8_be >> 16
    }
}

/// Where a ban came from. Stored as a byte in [`Ban::origin`].
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Unknown or written by a newer crowd.
    Unknown = 0,
    /// Added by hand (`crowd map add`, `crowd decisions add`); CrowdSec's `cscli`.
    Manual = 1,
    /// Decided by this host's scenarios; CrowdSec's `crowdsec`.
    Local = 2,
    /// Pulled from the community blocklist; CrowdSec's `CAPI`.
    Community = 3,
    /// Imported from a third-party list; CrowdSec's `lists`.
    List = 4,
    /// Received from a remote Local API (fleet enforcement).
    Remote = 5,
}

impl Origin {
    /// All origins, for parsing and listing.
    pub const ALL: [Origin; 6] =
        [Origin::Unknown, Origin::Manual, Origin::Local, Origin::Community, Origin::List, Origin::Remote];

    /// Decodes the byte stored in a map value; unknown bytes map to [`Origin::Unknown`].
    #[must_use]
    pub fn from_u8(v: u8) -> Origin {
        match v {
            1 => Origin::Manual,
            2 => Origin::Local,
            3 => Origin::Community,
            4 => Origin::List,
            5 => Origin::Remote,
            _ => Origin::Unknown,
        }
    }

    /// The name used on the command line and in JSON (CrowdSec's origin names where they exist).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Origin::Unknown => "unknown",
            Origin::Manual => "manual",
            Origin::Local => "crowd",
            Origin::Community => "community",
            Origin::List => "lists",
            Origin::Remote => "remote",
        }
    }
}

/// The value of every ban map entry (exact and range). 32 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ban {
    /// Expiry on the kernel's boot-time clock (`bpf_ktime_get_boot_ns`, `CLOCK_BOOTTIME`), in ns.
    /// 0 means permanent. An entry past its expiry is treated as absent by the program.
    pub expires_at_ns: u64,
    /// Packets this ban dropped; incremented atomically by the program.
    pub drops: u64,
    /// The decision this ban enforces (0 when added straight into the map).
    pub decision_id: u64,
    /// An [`Origin`] byte.
    pub origin: u8,
    /// Reserved, zero.
    pub _pad: [u8; 7],
}

impl Ban {
    /// A new ban with no drops counted yet.
    #[must_use]
    pub const fn new(expires_at_ns: u64, decision_id: u64, origin: Origin) -> Ban {
        Ban { expires_at_ns, drops: 0, decision_id, origin: origin as u8, _pad: [0; 7] }
    }

    /// True when the ban has an expiry and `now_ns` (boot-time clock) is past it.
    #[must_use]
    #[inline(always)]
    pub const fn is_expired(&self, now_ns: u64) -> bool {
        self.expires_at_ns != 0 && now_ns >= self.expires_at_ns
    }
}

/// The value of every allowlist entry. 8 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Allow {
    /// Packets that matched a ban but were passed because of this entry; incremented atomically.
    pub hits: u64,
}

/// The key of an LPM trie entry: a native-endian prefix length, then the address bytes in
/// network order. Same layout as the kernel's `struct bpf_lpm_trie_key_u8` and aya's `lpm_trie::Key`.
#[repr(C, packed)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LpmKey<const N: usize> {
    /// Number of leading bits of `addr` that count.
    pub prefix_len: u32,
    /// The address, network byte order.
    pub addr: [u8; N],
}

/// Length of [`Note::reason`].
pub const REASON_LEN: usize = 56;

/// A note on a manual map entry (`crowd map add --reason`). 64 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Note {
    /// When the entry was added, seconds since the Unix epoch.
    pub created_unix: u64,
    /// UTF-8 reason, NUL-padded (cut at a character boundary to fit).
    pub reason: [u8; REASON_LEN],
}

/// Which optional lookups the program performs. Userspace rewrites this after every change to the
/// range and allowlist maps, so that traffic pays for an LPM lookup only while the trie holds entries.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// Non-zero while `CROWD_NETS_V4` holds entries.
    pub ranges_v4: u32,
    /// Non-zero while `CROWD_NETS_V6` holds entries.
    pub ranges_v6: u32,
    /// Non-zero while `CROWD_ALLOW_V4` holds entries.
    pub allow_v4: u32,
    /// Non-zero while `CROWD_ALLOW_V6` holds entries.
    pub allow_v6: u32,
    /// `CLOCK_BOOTTIME - CLOCK_MONOTONIC` in ns: the program reads the cheap coarse monotonic clock
    /// and adds this to compare with boot-time expiries. Refreshed by userspace (it only changes
    /// across a suspend).
    pub boot_offset_ns: u64,
}

/// Per-CPU packet counters (one `CROWD_STATS` entry per CPU). Userspace sums over CPUs.
/// Invariant: `seen == passed + dropped_exact + dropped_range`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Every packet the program ran on.
    pub seen: u64,
    /// Packets passed, for any reason.
    pub passed: u64,
    /// Packets dropped by an exact ban.
    pub dropped_exact: u64,
    /// Packets dropped by a range ban.
    pub dropped_range: u64,
    /// Packets that matched a ban but were passed because the allowlist covers them.
    pub allowlisted: u64,
    /// Packets that matched only expired bans (and were passed).
    pub expired: u64,
    /// Packets the program could not parse (truncated headers, bad IPv4 header length); passed.
    pub unparsable: u64,
    /// Non-IP packets (ARP, LLDP, ...); passed.
    pub non_ip: u64,
}

/// Number of `u64` counters in [`Stats`].
pub const STATS_FIELDS: usize = 8;

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all of these are #[repr(C)] plain data with no padding holes that the kernel could
    // leave uninitialised (padding is explicit), and every bit pattern is a valid value.
    unsafe impl aya::Pod for super::Ban {}
    unsafe impl aya::Pod for super::Allow {}
    unsafe impl aya::Pod for super::Config {}
    unsafe impl aya::Pod for super::Stats {}
    unsafe impl aya::Pod for super::Note {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::size_of;

    #[test]
    fn layouts_are_stable() {
        assert_eq!(size_of::<Ban>(), 32);
        assert_eq!(size_of::<Allow>(), 8);
        assert_eq!(size_of::<Note>(), 64);
        assert_eq!(size_of::<Config>(), 24);
        assert_eq!(size_of::<Stats>(), STATS_FIELDS * 8);
        assert_eq!(size_of::<LpmKey<4>>(), 8);
        assert_eq!(size_of::<LpmKey<16>>(), 20);
    }

    #[test]
    fn names_fit_the_kernel() {
        for n in map_names::ALL {
            assert!(n.len() <= 15, "{n} is longer than BPF_OBJ_NAME_LEN - 1");
        }
    }

    #[test]
    fn expiry() {
        let permanent = Ban::new(0, 1, Origin::Manual);
        assert!(!permanent.is_expired(u64::MAX));
        let b = Ban::new(100, 1, Origin::Manual);
        assert!(!b.is_expired(99));
        assert!(b.is_expired(100));
    }

    #[test]
    fn origin_roundtrip() {
        for o in Origin::ALL {
            assert_eq!(Origin::from_u8(o as u8), o);
        }
        assert_eq!(Origin::from_u8(200), Origin::Unknown);
    }
}
