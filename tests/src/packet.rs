//! Builders for test frames: Ethernet with optional VLAN tags, IPv4 (with options), IPv6, ARP.
use std::net::{Ipv4Addr, Ipv6Addr};

/// 802.1Q tag protocol id.
pub const TPID_8021Q: u16 = 0x8100;
/// 802.1ad (QinQ outer) tag protocol id.
pub const TPID_8021AD: u16 = 0x88a8;

fn eth(ethertype: u16, tags: &[u16]) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02];
    for &tpid in tags {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&100u16.to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

fn udp(payload: usize) -> Vec<u8> {
    let len = u16::try_from(8 + payload).expect("small");
    let mut u = vec![0x30, 0x39, 0x00, 0x35];
    u.extend_from_slice(&len.to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.resize(8 + payload, 0xab);
    u
}

/// An IPv4/UDP frame from `src`, with `tags` VLAN tags and `option_words` words of IPv4 options.
pub fn ipv4(src: Ipv4Addr, tags: &[u16], option_words: u8) -> Vec<u8> {
    let mut f = eth(0x0800, tags);
    let ihl = 5 + option_words;
    let body = udp(18);
    let total = u16::try_from(usize::from(ihl) * 4 + body.len()).expect("small");
    f.push(0x40 | ihl);
    f.push(0);
    f.extend_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&[0, 1, 0x40, 0, 64, 17, 0, 0]);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&Ipv4Addr::new(192, 0, 2, 1).octets());
    for _ in 0..option_words {
        f.extend_from_slice(&[1, 1, 1, 1]); // NOP options
    }
    f.extend_from_slice(&body);
    f
}

/// An IPv6/UDP frame from `src`, with `tags` VLAN tags.
pub fn ipv6(src: Ipv6Addr, tags: &[u16]) -> Vec<u8> {
    let mut f = eth(0x86dd, tags);
    let body = udp(18);
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&u16::try_from(body.len()).expect("small").to_be_bytes());
    f.extend_from_slice(&[17, 64]);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().expect("addr").octets());
    f.extend_from_slice(&body);
    f
}

/// An ARP request whose sender is `src` (crowd must pass it whatever the bans).
pub fn arp(src: Ipv4Addr) -> Vec<u8> {
    let mut f = eth(0x0806, &[]);
    f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x02]);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&Ipv4Addr::new(192, 0, 2, 1).octets());
    f.resize(60, 0);
    f
}
