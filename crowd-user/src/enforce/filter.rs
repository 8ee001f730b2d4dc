//! The prefilter bitmaps in front of the ban maps (`CROWD_FILTER_V4`, `CROWD_FILTER_V6`).
//!
//! One bit per IPv4 /24 and per hashed IPv6 /48 that may hold a ban. The XDP program passes a
//! packet whose bit is clear without touching the ban maps. The arrays are memory-mapped here and
//! updated with atomic ORs, so concurrent writers (the daemon and the CLI) never lose a bit.
//! Invariant: a ban's bits are set before the ban is written and again after; bits are cleared
//! only by [`Filter::replace`] during a rebuild, which is followed by a pass that sets the bits of
//! every ban present, so a ban written concurrently keeps its bit.
use std::{
    os::fd::{AsFd, AsRawFd},
    path::Path,
    ptr::NonNull,
    sync::atomic::{AtomicU64, Ordering},
};

use aya::maps::MapData;
use crowd_common::filter::{self, BITS, V6_PREFIX, WORDS};
use ipnet::IpNet;

use super::{EnforceError, Result};
use crate::addr::Target;

/// A memory-mapped prefilter.
pub struct Filter {
    words: NonNull<AtomicU64>,
    _map: MapData,
}

const LEN: usize = WORDS as usize;

impl Filter {
    /// Maps the pinned filter array at `path`.
    ///
    /// # Errors
    /// When the pin cannot be opened or mapped (an old pin without `BPF_F_MMAPABLE`).
    pub fn open(path: &Path) -> Result<Filter> {
        let bad = |reason: String| EnforceError::BadPin { path: path.to_path_buf(), reason };
        let map = MapData::from_pin(path).map_err(|e| bad(e.to_string()))?;
        let fd = map.fd().as_fd().as_raw_fd();
        // SAFETY: mapping a BPF array of LEN u64 values, shared with the kernel.
        let p = unsafe {
            libc::mmap(std::ptr::null_mut(), LEN * 8, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, fd, 0)
        };
        if p == libc::MAP_FAILED {
            return Err(bad(format!("mmap: {}", std::io::Error::last_os_error())));
        }
        let words = NonNull::new(p.cast::<AtomicU64>()).ok_or_else(|| bad("mmap returned null".into()))?;
        Ok(Filter { words, _map: map })
    }

    fn words(&self) -> &[AtomicU64] {
        // SAFETY: LEN u64 words mapped for the life of self; AtomicU64 has u64's layout.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr(), LEN) }
    }

    /// Sets one bit.
    pub fn set(&self, bit: u32) {
        self.words()[(bit >> 6) as usize].fetch_or(1 << (bit & 63), Ordering::SeqCst);
    }

    /// Sets bits `lo..hi`.
    pub fn set_range(&self, lo: u32, hi: u32) {
        let w = self.words();
        let mut b = lo;
        while b < hi {
            if b.is_multiple_of(64) && hi - b >= 64 {
                w[(b >> 6) as usize].fetch_or(u64::MAX, Ordering::SeqCst);
                b += 64;
            } else {
                self.set(b);
                b += 1;
            }
        }
    }

    /// Sets the bits of a target.
    pub fn set_target(&self, t: Target) {
        match bits(t) {
            Bits::One(b) => self.set(b),
            Bits::Range(lo, hi) => self.set_range(lo, hi),
            Bits::Many(v) => v.into_iter().for_each(|b| self.set(b)),
        }
    }

    /// Replaces the whole bitmap (a rebuild); `new` has one entry per word.
    pub fn replace(&self, new: &[u64]) {
        for (w, n) in self.words().iter().zip(new) {
            w.store(*n, Ordering::SeqCst);
        }
    }

    /// Number of bits set (for stats).
    #[must_use]
    pub fn ones(&self) -> u64 {
        self.words().iter().map(|w| u64::from(w.load(Ordering::Relaxed).count_ones())).sum()
    }
}

// SAFETY: the mapping is shared memory accessed only through atomics; the pointer stays valid
// for the life of the value, whichever thread holds it.
unsafe impl Send for Filter {}

impl Drop for Filter {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what open() mapped.
        unsafe { libc::munmap(self.words.as_ptr().cast(), LEN * 8) };
    }
}

/// The filter bits a target needs.
#[derive(Debug, PartialEq, Eq)]
pub enum Bits {
    /// One bit.
    One(u32),
    /// A contiguous run `lo..hi` (IPv4 ranges wider than a /24; the whole filter for very wide
    /// IPv6 ranges).
    Range(u32, u32),
    /// Scattered bits (IPv6 ranges between /32 and /48: one hashed bit per /48).
    Many(Vec<u32>),
}

fn v6_top48(a: std::net::Ipv6Addr) -> u64 {
    filter::v6_top48(u64::from_be_bytes(a.octets()[..8].try_into().expect("8 bytes")))
}

/// Which bits a target sets.
#[must_use]
pub fn bits(t: Target) -> Bits {
    match t {
        Target::Ip(std::net::IpAddr::V4(a)) => Bits::One(filter::v4_bit(a.octets())),
        Target::Ip(std::net::IpAddr::V6(a)) => Bits::One(filter::v6_bit_of_prefix48(v6_top48(a))),
        Target::Net(IpNet::V4(n)) => {
            let lo = filter::v4_bit(n.network().octets());
            if n.prefix_len() >= 24 { Bits::One(lo) } else { Bits::Range(lo, lo + (1 << (24 - n.prefix_len()))) }
        }
        Target::Net(IpNet::V6(n)) => {
            let top = v6_top48(n.network());
            match n.prefix_len() {
                l if l >= V6_PREFIX => Bits::One(filter::v6_bit_of_prefix48(top)),
                l if l >= 32 => {
                    Bits::Many((0..1u64 << (V6_PREFIX - l)).map(|i| filter::v6_bit_of_prefix48(top + i)).collect())
                }
                // Wider than a /32: more /48s than the filter has bits.
                _ => Bits::Range(0, BITS),
            }
        }
    }
}

/// Builds a fresh bitmap (one u64 per word) holding the bits of `targets`.
#[must_use]
pub fn build(targets: impl IntoIterator<Item = Target>) -> Vec<u64> {
    let mut w = vec![0u64; LEN];
    let mut set = |b: u32| w[(b >> 6) as usize] |= 1 << (b & 63);
    for t in targets {
        match bits(t) {
            Bits::One(b) => set(b),
            Bits::Range(lo, hi) => (lo..hi).for_each(&mut set),
            Bits::Many(v) => v.into_iter().for_each(&mut set),
        }
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Target {
        s.parse().unwrap()
    }

    #[test]
    fn v4_bits_are_the_slash24() {
        assert_eq!(bits(t("192.0.2.7")), Bits::One(0x00C0_0002));
        assert_eq!(bits(t("192.0.2.128/25")), Bits::One(0x00C0_0002));
        assert_eq!(bits(t("198.51.100.0/22")), Bits::Range(0x00C6_3364, 0x00C6_3368));
        assert_eq!(bits(t("10.0.0.0/8")), Bits::Range(0x000A_0000, 0x000B_0000));
    }

    #[test]
    fn v6_bits_follow_the_slash48() {
        let a = bits(t("2001:db8:1::5"));
        assert_eq!(a, bits(t("2001:db8:1:ffff::9")), "same /48, same bit");
        assert_eq!(a, bits(t("2001:db8:1::/64")));
        let Bits::Many(v) = bits(t("2001:db8:1::/44")) else { panic!() };
        assert_eq!(v.len(), 16);
        assert!(v.contains(&match a {
            Bits::One(b) => b,
            _ => unreachable!(),
        }));
        assert_eq!(bits(t("2001:db8::/31")), Bits::Range(0, BITS));
    }

    #[test]
    fn build_sets_exactly_the_bits() {
        let w = build([t("192.0.2.7"), t("198.51.100.0/23")]);
        let ones: u32 = w.iter().map(|x| x.count_ones()).sum();
        assert_eq!(ones, 3);
        assert_ne!(w[(0x00C0_0002 >> 6) as usize] & (1 << (0x00C0_0002 & 63)), 0);
    }
}
