//! crowd's XDP program: drops packets whose source address is banned, at the NIC.
//!
//! Owns the packet path only. Userspace (`crowd-user/src/enforce/`) owns every map write except the
//! counters. Lookup order, cheapest for legitimate traffic (a miss) first:
//! 1. the family's prefilter bit (an array read the verifier inlines): clear means no ban can
//!    match, and the packet passes at once;
//! 2. exact ban (hash);
//! 3. range ban (LPM trie), only while the trie holds entries (`CROWD_CONFIG`);
//! 4. only on a ban hit: expiry (one clock read, only for bans that expire) and the allowlist
//!    (LPM trie, only while it holds entries), which wins over any ban.
//!
//! It fails open: what it cannot parse is passed and counted, never `XDP_ABORTED`. Nothing is
//! logged per packet; everything is counted in the per-CPU `CROWD_STATS` entry.
#![no_std]
#![no_main]

use core::{mem::size_of, ptr};

use aya_ebpf::{
    bindings::{
        BPF_F_MMAPABLE, BPF_F_NO_PREALLOC,
        xdp_action::{XDP_DROP, XDP_PASS, XDP_TX},
    },
    helpers::bpf_ktime_get_coarse_ns,
    macros::{map, xdp},
    maps::{Array, HashMap, LpmTrie, PerCpuArray, lpm_trie::Key},
    programs::XdpContext,
};
use crowd_common::{Allow, Ban, Config, Note, Stats, capacity, filter};

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
#[map(name = "CROWD_FILTER_V4")]
static FILTER_V4: Array<u64> = Array::pinned(filter::WORDS, BPF_F_MMAPABLE);
#[map(name = "CROWD_FILTER_V6")]
static FILTER_V6: Array<u64> = Array::pinned(filter::WORDS, BPF_F_MMAPABLE);

const ETH_HLEN: usize = 14;
// Ethertypes as read from the packet on a little-endian machine (network order bytes).
const ETH_P_IP: u16 = 0x0800u16.to_be();
const ETH_P_IPV6: u16 = 0x86DDu16.to_be();
const ETH_P_8021Q: u16 = 0x8100u16.to_be();
const ETH_P_8021AD: u16 = 0x88A8u16.to_be();
const VLAN_HLEN: usize = 4;
const IPV4_HLEN: usize = 20;
const IPV6_HLEN: usize = 40;

/// The one bounds-checked access to packet bytes: a pointer to `T` at `off`, if it fits.
#[inline(always)]
fn ptr_at<T>(ctx: &XdpContext, off: usize) -> Option<*const T> {
    let start = ctx.data();
    if start + off + size_of::<T>() > ctx.data_end() {
        return None;
    }
    Some((start + off) as *const T)
}

/// Reads a `T` at `off` (headers are 2-byte aligned in XDP buffers; the JIT handles the rest).
#[inline(always)]
fn read<T: Copy>(ctx: &XdpContext, off: usize) -> Option<T> {
    // SAFETY: ptr_at checked that the bytes are inside the packet.
    ptr_at::<T>(ctx, off).map(|p| unsafe { ptr::read(p) })
}

#[inline(always)]
fn is_vlan(proto: u16) -> bool {
    proto == ETH_P_8021Q || proto == ETH_P_8021AD
}

#[inline(always)]
fn bit_set(words: &Array<u64>, bit: u32) -> bool {
    match words.get(bit >> 6) {
        Some(w) => *w & (1u64 << (bit & 63)) != 0,
        // Out of range cannot happen (24-bit index); fail towards the full lookup.
        None => true,
    }
}

/// Counts a packet against a ban or allowlist entry. The counter lives in the map value, shared
/// by all CPUs, and is incremented without a lock: two CPUs hitting the same ban at the same
/// instant can lose one increment, which costs nothing on the drop path (a locked add measured
/// 10-20% of the drop rate on a veth link). The per-CPU totals in `CROWD_STATS` are exact.
#[inline(always)]
fn count(counter: *mut u64) {
    // SAFETY: `counter` points into a live map value for this program run; 8-byte aligned.
    unsafe { ptr::write_volatile(counter, ptr::read_volatile(counter) + 1) };
}

/// False once an expiring ban is past its expiry. The clock is read only for bans that expire,
/// and it is the coarse monotonic clock (kernel >= 5.11; a few ns against tens for the precise
/// clocks in a VM) plus the boot-time offset userspace keeps in the config: expiry is exact to a
/// jiffy.
#[inline(always)]
fn live(ban: *mut Ban, cfg: &Config) -> bool {
    // SAFETY: a map value pointer valid for this run; the helper has no preconditions.
    unsafe {
        let exp = (*ban).expires_at_ns;
        exp == 0 || bpf_ktime_get_coarse_ns() + cfg.boot_offset_ns < exp
    }
}

#[inline(always)]
fn config() -> Config {
    CONFIG.get(0).copied().unwrap_or_default()
}

/// The verdict for a source whose prefilter bit is set.
macro_rules! decide {
    ($key:expr, $bans:expr, $ranges:expr, $allow:expr, $ranges_on:ident, $allow_on:ident, $bits:expr, $st:expr) => {{
        let key = $key;
        let st: &mut Stats = $st;
        let mut expired = false;
        let mut hit: *mut Ban = ptr::null_mut();
        let mut range = false;
        let cfg = config();
        if let Some(b) = $bans.get_ptr_mut(&key) {
            if live(b, &cfg) {
                hit = b;
            } else {
                expired = true;
            }
        }
        if hit.is_null() && cfg.$ranges_on != 0 {
            if let Some(b) = $ranges.get(Key::new($bits, key)) {
                let b = ptr::from_ref(b).cast_mut();
                if live(b, &cfg) {
                    hit = b;
                    range = true;
                } else {
                    expired = true;
                }
            }
        }
        if hit.is_null() {
            if expired {
                st.expired += 1;
            }
            return XDP_PASS;
        }
        if cfg.$allow_on != 0 {
            if let Some(a) = $allow.get(Key::new($bits, key)) {
                // SAFETY: `a` is a live map value for this run.
                count(unsafe { &raw mut (*ptr::from_ref(a).cast_mut()).hits });
                st.allowlisted += 1;
                return XDP_PASS;
            }
        }
        // SAFETY: `hit` is a live map value pointer.
        count(unsafe { &raw mut (*hit).drops });
        if range {
            st.dropped_range += 1;
        } else {
            st.dropped_exact += 1;
        }
        XDP_DROP
    }};
}

#[inline(always)]
fn decide_v4(key: [u8; 4], st: &mut Stats) -> u32 {
    decide!(key, BANS_V4, RANGES_V4, ALLOW_V4, ranges_v4, allow_v4, 32, st)
}

#[inline(always)]
fn decide_v6(key: [u8; 16], st: &mut Stats) -> u32 {
    decide!(key, BANS_V6, RANGES_V6, ALLOW_V6, ranges_v6, allow_v6, 128, st)
}

/// Parses Ethernet, up to two VLAN tags (802.1Q, 802.1ad), then the source address, and decides.
#[inline(always)]
fn verdict(ctx: &XdpContext, st: &mut Stats) -> u32 {
    let Some(mut proto) = read::<u16>(ctx, ETH_HLEN - 2) else {
        st.unparsable += 1;
        return XDP_PASS;
    };
    let mut l3 = ETH_HLEN;
    // Two tags at most, unrolled: outer (802.1ad or 802.1Q) and inner.
    if is_vlan(proto) {
        let Some(p) = read::<u16>(ctx, l3 + 2) else {
            st.unparsable += 1;
            return XDP_PASS;
        };
        proto = p;
        l3 += VLAN_HLEN;
        if is_vlan(proto) {
            let Some(p) = read::<u16>(ctx, l3 + 2) else {
                st.unparsable += 1;
                return XDP_PASS;
            };
            proto = p;
            l3 += VLAN_HLEN;
        }
    }
    if proto == ETH_P_IP {
        let Some(h) = ptr_at::<[u32; IPV4_HLEN / 4]>(ctx, l3) else {
            st.unparsable += 1;
            return XDP_PASS;
        };
        // SAFETY: the fixed header is inside the packet (checked above).
        let (vihl, src) = unsafe { (*(h as *const u8), (*h)[3]) };
        // Version 4 and a header length of at least five words; options are allowed (the source
        // address sits at a fixed offset whatever the header length).
        if vihl >> 4 != 4 || vihl & 0x0f < 5 {
            st.unparsable += 1;
            return XDP_PASS;
        }
        let key = src.to_ne_bytes();
        if !bit_set(&FILTER_V4, u32::from_be(src) >> 8) {
            return XDP_PASS;
        }
        decide_v4(key, st)
    } else if proto == ETH_P_IPV6 {
        let Some(h) = ptr_at::<[u64; IPV6_HLEN / 8]>(ctx, l3) else {
            st.unparsable += 1;
            return XDP_PASS;
        };
        // SAFETY: the fixed header is inside the packet (checked above).
        let (v, hi, lo) = unsafe { (*(h as *const u8), (*h)[1], (*h)[2]) };
        if v >> 4 != 6 {
            st.unparsable += 1;
            return XDP_PASS;
        }
        if !bit_set(&FILTER_V6, filter::v6_bit_of_prefix48(filter::v6_top48(u64::from_be(hi)))) {
            return XDP_PASS;
        }
        let mut key = [0u8; 16];
        key[..8].copy_from_slice(&hi.to_ne_bytes());
        key[8..].copy_from_slice(&lo.to_ne_bytes());
        decide_v6(key, st)
    } else if is_vlan(proto) {
        // A third tag: deeper than we parse. Pass it, but count it as unparsable.
        st.unparsable += 1;
        XDP_PASS
    } else {
        st.non_ip += 1;
        XDP_PASS
    }
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
    let v = verdict(&ctx, st);
    if v == XDP_PASS {
        st.passed += 1;
    }
    v
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

/// Drops counted by `bench_drop_count`.
#[map(name = "CROWD_BENCH")]
static BENCH_COUNT: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// Benchmark reference for live runs: drops everything and counts, in a per-CPU counter, the
/// packets it saw (the receiving side's rate, without the kernel's costly run-time stats).
#[xdp]
pub fn bench_drop_count(_ctx: XdpContext) -> u32 {
    if let Some(c) = BENCH_COUNT.get_ptr_mut(0) {
        // SAFETY: per-CPU value, only this CPU writes it during this run.
        unsafe { *c += 1 };
    }
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
