//! Ban targets: parsing and normalising IP addresses and CIDR ranges from user input.
//!
//! Owns the rules every entry point shares (CLI, later the store and the API): IPv4-mapped IPv6
//! addresses become IPv4, host bits set in a CIDR are cleared (and the caller is told), a /32 or
//! /128 is an exact address. The XDP maps take the raw network-order bytes produced here.
use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    str::FromStr,
};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// A parsed and normalised ban or allowlist target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// One address (an IPv4-mapped IPv6 address is stored as IPv4).
    Ip(IpAddr),
    /// A range with its host bits cleared; never a /32 or /128 (those are [`Target::Ip`]).
    Net(IpNet),
}

/// A target as parsed, plus what normalisation changed, so the CLI can say so.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    /// The normalised target.
    pub target: Target,
    /// Human notes on what was changed (empty when the input was already canonical).
    pub notes: Vec<String>,
}

/// Why a target was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AddrError {
    /// Neither an address nor a CIDR.
    #[error("`{0}` is not an IP address or CIDR range (examples: 192.0.2.7, 198.51.100.0/24, 2001:db8::/32)")]
    Malformed(String),
    /// Prefix longer than the family allows.
    #[error("`{0}`: prefix length must be at most {1}")]
    BadPrefix(String, u8),
    /// A /0 would ban (or allow) the whole internet.
    #[error("`{0}` covers every address of its family; refusing a /0")]
    Everything(String),
}

/// Maps `::ffff:a.b.c.d` to `a.b.c.d`; any other address is returned unchanged.
#[must_use]
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 @ IpAddr::V4(_) => v4,
    }
}

impl Target {
    /// Parses and normalises user input.
    ///
    /// # Errors
    /// [`AddrError`] when the text is not an address or range, or the prefix is out of range or /0.
    pub fn parse(input: &str) -> Result<Parsed, AddrError> {
        let s = input.trim();
        let mut notes = Vec::new();
        let Some((addr, len)) = s.split_once('/') else {
            let ip = IpAddr::from_str(s).map_err(|_| AddrError::Malformed(input.to_owned()))?;
            let canon = canonical_ip(ip);
            if canon != ip {
                notes.push(format!("`{ip}` is IPv4-mapped IPv6: using `{canon}`"));
            }
            return Ok(Parsed { target: Target::Ip(canon), notes });
        };
        let ip = IpAddr::from_str(addr).map_err(|_| AddrError::Malformed(input.to_owned()))?;
        let len: u8 = len.parse().map_err(|_| AddrError::Malformed(input.to_owned()))?;
        let (ip, len) = match ip {
            IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() && len >= 96 => {
                let v4 = v6.to_ipv4_mapped().expect("checked");
                notes.push(format!("`{input}` is IPv4-mapped IPv6: using IPv4"));
                (IpAddr::V4(v4), len - 96)
            }
            other => (other, len),
        };
        let max = if ip.is_ipv4() { 32 } else { 128 };
        if len > max {
            return Err(AddrError::BadPrefix(input.to_owned(), max));
        }
        if len == 0 {
            return Err(AddrError::Everything(input.to_owned()));
        }
        if len == max {
            return Ok(Parsed { target: Target::Ip(ip), notes });
        }
        let net = match ip {
            IpAddr::V4(a) => IpNet::V4(Ipv4Net::new(a, len).expect("len checked")),
            IpAddr::V6(a) => IpNet::V6(Ipv6Net::new(a, len).expect("len checked")),
        };
        let trunc = net.trunc();
        if trunc.addr() != ip {
            notes.push(format!("`{s}` has host bits set: using `{trunc}`"));
        }
        Ok(Parsed { target: Target::Net(trunc), notes })
    }

    /// True for IPv4 targets.
    #[must_use]
    pub fn is_ipv4(&self) -> bool {
        match self {
            Target::Ip(ip) => ip.is_ipv4(),
            Target::Net(n) => matches!(n, IpNet::V4(_)),
        }
    }

    /// The target as a network (an address as its /32 or /128).
    #[must_use]
    pub fn net(self) -> IpNet {
        match self {
            Target::Ip(ip) => IpNet::from(ip),
            Target::Net(n) => n,
        }
    }

    /// True when `ip` is this address or inside this range.
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical_ip(ip);
        match self {
            Target::Ip(a) => *a == ip,
            Target::Net(n) => n.contains(&ip),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Ip(ip) => write!(f, "{ip}"),
            Target::Net(n) => write!(f, "{n}"),
        }
    }
}

impl FromStr for Target {
    type Err = AddrError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Target::parse(s).map(|p| p.target)
    }
}

/// Every address configured on this host's interfaces (in this network namespace): the
/// addresses crowd must never ban.
#[must_use]
pub fn local_addresses() -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut ifap: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills a linked list we free below.
    if unsafe { libc::getifaddrs(&raw mut ifap) } != 0 {
        return out;
    }
    let mut p = ifap;
    while !p.is_null() {
        // SAFETY: p walks the list getifaddrs returned.
        let ifa = unsafe { &*p };
        if !ifa.ifa_addr.is_null() {
            // SAFETY: ifa_addr points to a sockaddr of the family it declares.
            match i32::from(unsafe { (*ifa.ifa_addr).sa_family }) {
                libc::AF_INET => {
                    // SAFETY: AF_INET: a sockaddr_in.
                    let sa = unsafe { &*ifa.ifa_addr.cast::<libc::sockaddr_in>() };
                    out.push(IpAddr::V4(Ipv4Addr::from(u32::from_be(sa.sin_addr.s_addr))));
                }
                libc::AF_INET6 => {
                    // SAFETY: AF_INET6: a sockaddr_in6.
                    let sa = unsafe { &*ifa.ifa_addr.cast::<libc::sockaddr_in6>() };
                    out.push(IpAddr::V6(Ipv6Addr::from(sa.sin6_addr.s6_addr)));
                }
                _ => {}
            }
        }
        p = ifa.ifa_next;
    }
    // SAFETY: freeing what getifaddrs allocated.
    unsafe { libc::freeifaddrs(ifap) };
    out
}

/// Network-order key bytes of an IPv4 address, as the XDP program reads them from the packet.
#[must_use]
pub fn v4_key(a: Ipv4Addr) -> [u8; 4] {
    a.octets()
}

/// Network-order key bytes of an IPv6 address.
#[must_use]
pub fn v6_key(a: Ipv6Addr) -> [u8; 16] {
    a.octets()
}

/// The first and last address of a target as big-endian bytes (4 for IPv4, 16 for IPv6): what
/// the store indexes so that "the decisions containing this address" is a range look-up.
#[must_use]
pub fn bounds(t: &Target) -> (Vec<u8>, Vec<u8>) {
    fn bytes(ip: IpAddr) -> Vec<u8> {
        match ip {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        }
    }
    match t {
        Target::Ip(ip) => (bytes(*ip), bytes(*ip)),
        Target::Net(n) => (bytes(n.network()), bytes(n.broadcast())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_cover_the_range() {
        let (a, b) = bounds(&t("198.51.100.0/24"));
        assert_eq!((a, b), (vec![198, 51, 100, 0], vec![198, 51, 100, 255]));
        let (a, b) = bounds(&t("2001:db8::/32"));
        assert_eq!(a.len(), 16);
        assert_eq!(&b[..4], &[0x20, 0x01, 0x0d, 0xb8]);
        assert!(b[4..].iter().all(|x| *x == 0xff));
    }

    fn t(s: &str) -> Target {
        Target::parse(s).unwrap().target
    }

    #[test]
    fn plain_addresses() {
        assert_eq!(t("192.0.2.7"), Target::Ip("192.0.2.7".parse().unwrap()));
        assert_eq!(t(" 2001:db8::1 "), Target::Ip("2001:db8::1".parse().unwrap()));
    }

    #[test]
    fn mapped_v6_becomes_v4() {
        let p = Target::parse("::ffff:198.51.100.9").unwrap();
        assert_eq!(p.target, Target::Ip("198.51.100.9".parse().unwrap()));
        assert_eq!(p.notes.len(), 1);
        assert_eq!(t("::ffff:198.51.100.0/120"), t("198.51.100.0/24"));
    }

    #[test]
    fn host_bits_are_cleared_and_reported() {
        let p = Target::parse("198.51.100.77/24").unwrap();
        assert_eq!(p.target.to_string(), "198.51.100.0/24");
        assert!(p.notes[0].contains("host bits"), "{:?}", p.notes);
        let p = Target::parse("2001:db8::ff/32").unwrap();
        assert_eq!(p.target.to_string(), "2001:db8::/32");
        assert!(Target::parse("198.51.100.0/24").unwrap().notes.is_empty());
    }

    #[test]
    fn full_length_prefix_is_exact() {
        assert_eq!(t("203.0.113.5/32"), Target::Ip("203.0.113.5".parse().unwrap()));
        assert_eq!(t("2001:db8::5/128"), Target::Ip("2001:db8::5".parse().unwrap()));
    }

    #[test]
    fn bad_input_is_refused_with_the_value() {
        for bad in ["", "1.2.3", "300.1.1.1", "abc", "1.2.3.4/x", "2001:db8::/"] {
            let e = Target::parse(bad).unwrap_err();
            assert!(matches!(e, AddrError::Malformed(_)), "{bad}: {e}");
        }
        assert_eq!(Target::parse("1.2.3.4/33").unwrap_err(), AddrError::BadPrefix("1.2.3.4/33".into(), 32));
        assert!(matches!(Target::parse("0.0.0.0/0").unwrap_err(), AddrError::Everything(_)));
        assert!(Target::parse("1.2.3.4/33").unwrap_err().to_string().contains("`1.2.3.4/33`"));
    }

    #[test]
    fn containment() {
        assert!(t("198.51.100.0/24").contains("198.51.100.200".parse().unwrap()));
        assert!(!t("198.51.100.0/24").contains("198.51.101.1".parse().unwrap()));
        assert!(t("192.0.2.1").contains("::ffff:192.0.2.1".parse().unwrap()));
    }

    #[test]
    fn loopback_is_a_local_address() {
        assert!(local_addresses().contains(&"127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn keys_are_network_order() {
        assert_eq!(v4_key("192.0.2.1".parse().unwrap()), [192, 0, 2, 1]);
        assert_eq!(v6_key("2001:db8::1".parse().unwrap())[..4], [0x20, 0x01, 0x0d, 0xb8]);
    }
}
