//! crowd's XDP program: drops packets whose source address is banned, at the NIC.
//!
//! Owns the packet path only. Userspace (`crowd-user/src/enforce/`) owns every map write except the
//! counters. Lookup order, cheapest for legitimate traffic (a miss) first:
//! 1. exact ban (hash, one lookup);
//! 2. range ban (LPM trie), only while the trie holds entries (`CROWD_CONFIG`);
//! 3. only on a ban hit: expiry (one clock read, only for bans that expire) and the allowlist
//!    (LPM trie, only while it holds entries), which wins over any ban.
//!
//! It fails open: what it cannot parse is passed and counted, never `XDP_ABORTED`. Nothing is
//! logged per packet; everything is counted in the per-CPU `CROWD_STATS` entry.
#![no_std]
#![no_main]
// Atomic add on map values: the BPF target has no AtomicU64::fetch_add, but LLVM lowers this
// intrinsic to the BPF `lock xadd` instruction (an atomic add without fetch, kernel >= 3.18).
#![allow(internal_features)]
#![feature(core_intrinsics)]

use core::{
    intrinsics::{AtomicOrdering, atomic_xadd},
    mem::size_of,
};

use aya_ebpf::{
    bindings::{
        BPF_F_NO_PREALLOC,
        xdp_action::{XDP_DROP, XDP_PASS, XDP_TX},
    },
    helpers::bpf_ktime_get_boot_ns,
    macros::{map, xdp},
    maps::{Array, HashMap, LpmTrie, PerCpuArray, lpm_trie::Key},
    programs::XdpContext,
};
use crowd_common::{Allow, Ban, Config, Note, Stats, capacity};

#[map(name = "CROWD_BANS_V4")]
static BANS_V4: HashMap<[u8; 4], Ban> = HashMap::pinned(capacity::EXACT, 0);
#[map(name = "CROWD_BANS_V6")]
static BANS_V6: HashMap<[u8; 16], Ban> = HashMap::pinned(capacity::EXACT, 0);
#[map(name = "CROWD_NETS_V4")]
static RANGES_V4: LpmTrie<[u8; 4], Ban> = LpmTrie::pinned(capacity::RANGES, 0);
#[map(name = "CROWD_NETS_V6")]
static RANGES_V6: LpmTrie<[u8; 16], Ban> = LpmTrie::pinned(capacity::RANGES, 0);
#[map(name = "CROWD_ALLOW_V4")]
static ALLOW_V4: LpmTrie<[u8; 4], Allow> = LpmTrie::pinned(capacity::ALLOW, 0);
#[map(name = "CROWD_ALLOW_V6")]
static ALLOW_V6: LpmTrie<[u8; 16], Allow> = LpmTrie::pinned(capacity::ALLOW, 0);
#[map(name = "CROWD_STATS")]
static STATS: PerCpuArray<Stats> = PerCpuArray::pinned(1, 0);
#[map(name = "CROWD_CONFIG")]
static CONFIG: Array<Config> = Array::pinned(1, 0);
/// Userspace-only notes on manual entries; declared here so that one load creates every map.
#[map(name = "CROWD_NOTES")]
static NOTES: HashMap<u64, Note> = HashMap::pinned(capacity::NOTES, BPF_F_NO_PREALLOC);

const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88A8;
const VLAN_HLEN: usize = 4;
const IPV4_HLEN: usize = 20;
const IPV6_HLEN: usize = 40;

/// What the parser found.
enum Source {
    V4([u8; 4]),
    V6([u8; 16]),
    NonIp,
    Unparsable,
}

/// Why a ban matched.
enum Hit {
    Exact,
    Range,
}

/// The one bounds-checked read of packet bytes: a pointer to `T` at `off`, if it fits.
#[inline(always)]
fn ptr_at<T>(ctx: &XdpContext, off: usize) -> Option<*const T> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + off + size_of::<T>() > end {
        return None;
    }
    Some((start + off) as *const T)
}

#[inline(always)]
fn ethertype_at(ctx: &XdpContext, off: usize) -> Option<u16> {
    // SAFETY: ptr_at checked that the two bytes are inside the packet.
    ptr_at::<[u8; 2]>(ctx, off).map(|p| u16::from_be_bytes(unsafe { *p }))
}

/// Parses Ethernet, up to two VLAN tags (802.1Q, 802.1ad), then the IPv4 or IPv6 source address.
#[inline(always)]
fn parse(ctx: &XdpContext) -> Source {
    let Some(mut proto) = ethertype_at(ctx, ETH_HLEN - 2) else {
        return Source::Unparsable;
    };
    let mut l3 = ETH_HLEN;
    // Two tags at most, unrolled: outer (802.1ad or 802.1Q) and inner.
    if proto == ETH_P_8021Q || proto == ETH_P_8021AD {
        let Some(p) = ethertype_at(ctx, l3 + 2) else { return Source::Unparsable };
        proto = p;
        l3 += VLAN_HLEN;
        if proto == ETH_P_8021Q || proto == ETH_P_8021AD {
            let Some(p) = ethertype_at(ctx, l3 + 2) else { return Source::Unparsable };
            proto = p;
            l3 += VLAN_HLEN;
        }
    }
    if proto == ETH_P_IP {
        let Some(h) = ptr_at::<[u8; IPV4_HLEN]>(ctx, l3) else { return Source::Unparsable };
        // SAFETY: the whole fixed header is inside the packet (checked above).
        let h = unsafe { &*h };
        // Version 4 and a header length of at least five words; options are allowed (the source
        // address sits at a fixed offset whatever the header length).
        if h[0] >> 4 != 4 || h[0] & 0x0f < 5 {
            return Source::Unparsable;
        }
        Source::V4([h[12], h[13], h[14], h[15]])
    } else if proto == ETH_P_IPV6 {
        let Some(h) = ptr_at::<[u8; IPV6_HLEN]>(ctx, l3) else { return Source::Unparsable };
        // SAFETY: the whole fixed header is inside the packet (checked above).
        let h = unsafe { &*h };
        if h[0] >> 4 != 6 {
            return Source::Unparsable;
        }
        let mut a = [0u8; 16];
        a.copy_from_slice(&h[8..24]);
        Source::V6(a)
    } else if proto == ETH_P_8021Q || proto == ETH_P_8021AD {
        // A third tag: deeper than we parse. Pass it, but count it as unparsable.
        Source::Unparsable
    } else {
        Source::NonIp
    }
}

#[inline(always)]
fn config() -> Config {
    match CONFIG.get(0) {
        Some(c) => *c,
        None => Config::default(),
    }
}

/// Counts a packet against a ban. The counter lives in the map value, shared by all CPUs.
#[inline(always)]
fn count_drop(ban: *mut Ban) {
    // SAFETY: `ban` points into a preallocated hash or trie value that stays valid for this
    // program run; the field is 8-byte aligned (#[repr(C)], u64 fields first).
    unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(&raw mut (*ban).drops, 1) };
}

#[inline(always)]
fn count_allow(allow: *mut Allow) {
    // SAFETY: as in count_drop.
    unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(&raw mut (*allow).hits, 1) };
}

macro_rules! decide {
    ($addr:expr, $bans:expr, $ranges:expr, $allow:expr, $ranges_on:ident, $allow_on:ident, $bits:expr, $st:expr) => {{
        let addr = $addr;
        let st: &mut Stats = $st;
        let mut expired = false;
        let mut hit: Option<(*mut Ban, Hit)> = None;
        if let Some(b) = $bans.get_ptr_mut(&addr) {
            // SAFETY: a valid map value pointer for the duration of this run.
            if unsafe { (*b).is_expired_at_now() } {
                expired = true;
            } else {
                hit = Some((b, Hit::Exact));
            }
        }
        let cfg = config();
        if hit.is_none() && cfg.$ranges_on != 0 {
            if let Some(b) = $ranges.get(Key::new($bits, addr)) {
                let b = core::ptr::from_ref(b).cast_mut();
                // SAFETY: as above.
                if unsafe { (*b).is_expired_at_now() } {
                    expired = true;
                } else {
                    hit = Some((b, Hit::Range));
                }
            }
        }
        match hit {
            None => {
                if expired {
                    st.expired += 1;
                }
                XDP_PASS
            }
            Some((ban, kind)) => {
                if cfg.$allow_on != 0 {
                    if let Some(a) = $allow.get(Key::new($bits, addr)) {
                        count_allow(core::ptr::from_ref(a).cast_mut());
                        st.allowlisted += 1;
                        return XDP_PASS;
                    }
                }
                count_drop(ban);
                match kind {
                    Hit::Exact => st.dropped_exact += 1,
                    Hit::Range => st.dropped_range += 1,
                }
                XDP_DROP
            }
        }
    }};
}

trait Expiry {
    fn is_expired_at_now(&self) -> bool;
}

impl Expiry for Ban {
    #[inline(always)]
    fn is_expired_at_now(&self) -> bool {
        // The clock is read only for bans that expire: permanent bans cost no helper call.
        // SAFETY: bpf_ktime_get_boot_ns has no preconditions (kernel >= 5.8).
        self.expires_at_ns != 0 && self.is_expired(unsafe { bpf_ktime_get_boot_ns() })
    }
}

#[inline(always)]
fn decide_v4(addr: [u8; 4], st: &mut Stats) -> u32 {
    decide!(addr, BANS_V4, RANGES_V4, ALLOW_V4, ranges_v4, allow_v4, 32, st)
}

#[inline(always)]
fn decide_v6(addr: [u8; 16], st: &mut Stats) -> u32 {
    decide!(addr, BANS_V6, RANGES_V6, ALLOW_V6, ranges_v6, allow_v6, 128, st)
}

/// The enforcer, attached to each protected interface.
#[xdp]
pub fn crowd(ctx: XdpContext) -> u32 {
    let Some(st) = STATS.get_ptr_mut(0) else {
        return XDP_PASS;
    };
    // SAFETY: per-CPU value, only this CPU writes it during this run.
    let st = unsafe { &mut *st };
    st.seen += 1;
    let verdict = match parse(&ctx) {
        Source::V4(a) => decide_v4(a, st),
        Source::V6(a) => decide_v6(a, st),
        Source::NonIp => {
            st.non_ip += 1;
            XDP_PASS
        }
        Source::Unparsable => {
            st.unparsable += 1;
            XDP_PASS
        }
    };
    if verdict == XDP_PASS {
        st.passed += 1;
    }
    verdict
}

/// Benchmark reference: the cheapest possible program (passes everything).
#[xdp]
pub fn bench_pass(_ctx: XdpContext) -> u32 {
    XDP_PASS
}

/// Benchmark reference: the limit for a dropping program (drops everything).
#[xdp]
pub fn bench_drop(_ctx: XdpContext) -> u32 {
    XDP_DROP
}

/// Benchmark traffic generator for the kernel's XDP live-frames test mode: sends every frame back
/// out of the interface it is run on (one end of a veth pair), to the program under test.
#[xdp]
pub fn bench_tx(_ctx: XdpContext) -> u32 {
    XDP_TX
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
