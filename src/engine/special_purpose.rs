//! Special-purpose IP ranges (RFC 6890) and the lookup that tells whether an address falls in
//! one.
//!
//! # What for
//!
//! mxprobe connects wherever a user's domain points: its MX hosts' A and AAAA records, or the
//! domain's own records when there is no MX (RFC 5321 §5.1). Anyone who controls a domain can
//! point those at `127.0.0.1`, `10.0.0.5` or `169.254.169.254`, and a verifier that follows
//! would open SMTP connections into the network of whoever runs it (server-side request
//! forgery). A public mail server never has such an address, so the engine refuses, unless
//! `--allow-private-mx`, to connect to any address [`special_purpose`] names a range for.
//!
//! # What is in the table
//!
//! Every entry of the IANA IPv4 and IPv6 Special-Purpose Address Registries, which RFC 6890
//! set up (as of 2025, including RFC 9637's `3fff::/20`, RFC 9602's `5f00::/16` and RFC 9780's
//! `100:0:0:1::/64`), whatever their "globally reachable" column says: AS112, AMT or the
//! anycast entries do hold routable addresses, but never a mail server. Besides the registries:
//! IPv4 multicast (`224.0.0.0/4`, RFC 5771), IPv6 multicast (`ff00::/8`, RFC 4291), the
//! deprecated site-local `fec0::/10` (RFC 3879) and the deprecated IPv4-compatible `::/96`
//! (RFC 4291 §2.5.5.1). IPv6 space the IETF holds in reserve outside `2000::/3` but that no
//! registry entry names (`4000::/3`, for one) is not in the table.
//!
//! Where entries nest (`192.0.0.8/32` inside `192.0.0.0/24`, Teredo inside `2001::/23`,
//! `255.255.255.255/32` inside `240.0.0.0/4`), the more specific entry comes first and the
//! first match wins, so an address is reported under the most precise name the registries
//! give it. A test holds the table to that order.
//!
//! # IPv6 addresses that carry an IPv4 address
//!
//! Four IPv6 forms embed an IPv4 address, and each leads (or may lead) to that IPv4 host:
//!
//! | form | prefix | where the IPv4 address sits |
//! |---|---|---|
//! | IPv4-mapped (RFC 4291 §2.5.5.2) | `::ffff:0:0/96` | the last 32 bits; a dual-stack socket connects to it over IPv4 |
//! | IPv4-compatible, deprecated (RFC 4291 §2.5.5.1) | `::/96` | the last 32 bits |
//! | NAT64 well-known prefix (RFC 6052 §2.1) | `64:ff9b::/96` | the last 32 bits; the operator's own NAT64 gateway connects to it |
//! | 6to4 (RFC 3056 §2) | `2002::/16` | bits 16 to 48; a 6to4 relay tunnels to it |
//!
//! Such an address is special exactly when the IPv4 address it carries is, and the lookup then
//! returns the IPv4 address's range (`::ffff:10.0.0.5` gives `10.0.0.0/8 (private-use,
//! RFC 1918)`), since that is where the connection would go. A form carrying a public IPv4
//! address (`64:ff9b::8.8.8.8`) is not special: through NAT64 it is how an IPv6-only host
//! reaches a public IPv4 mail server, and RFC 6052 §3.1 forbids the well-known prefix for
//! non-global IPv4 addresses anyway. `::` and `::1` lie inside `::/96` but are the
//! unspecified and loopback addresses (RFC 4291 §2.5.2, §2.5.3); their own entries come first.
//! The local-use translation prefix `64:ff9b:1::/48` (RFC 8215) is special as a whole: what it
//! maps to is the operator's own choice.
//!
//! # Guarantees
//!
//! - Pure: no I/O, no clock, no allocation; a linear scan over a `static` table of about
//!   fifty entries.
//! - [`special_purpose`] never panics, for any address.
//! - Every entry's network has no bit set beyond its prefix length, and its `prefix` text
//!   spells that same network and length (tested).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One entry of the IANA special-purpose address registries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpecialRange {
    /// The prefix as CIDR text, e.g. "10.0.0.0/8", "fc00::/7".
    pub prefix: &'static str,
    /// What the registry calls it, e.g. "private-use", "loopback", "link-local",
    /// "shared address space (CGNAT)", "documentation (TEST-NET-1)".
    pub name: &'static str,
    /// The RFC that defines it, e.g. "RFC 1918".
    pub rfc: &'static str,
}

impl fmt::Display for SpecialRange {
    /// `10.0.0.0/8 (private-use, RFC 1918)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}, {})", self.prefix, self.name, self.rfc)
    }
}

/// The special-purpose range `ip` falls in, or `None` for an address a public mail server may
/// have.
///
/// For an IPv6 address that carries an IPv4 address (IPv4-mapped, IPv4-compatible, NAT64
/// well-known prefix, 6to4), the answer is the carried IPv4 address's range, or `None` if that
/// address is public: see the module documentation.
#[must_use]
pub fn special_purpose(ip: IpAddr) -> Option<&'static SpecialRange> {
    match ip {
        IpAddr::V4(v4) => special_v4(v4),
        IpAddr::V6(v6) => special_v6(v6),
    }
}

fn special_v4(ip: Ipv4Addr) -> Option<&'static SpecialRange> {
    let bits = ip.to_bits();
    V4_TABLE
        .iter()
        .find(|entry| entry.contains(bits))
        .map(|entry| &entry.range)
}

fn special_v6(ip: Ipv6Addr) -> Option<&'static SpecialRange> {
    let bits = ip.to_bits();
    let entry = V6_TABLE.iter().find(|entry| entry.contains(bits))?;
    match entry.kind {
        V6Kind::Special => Some(&entry.range),
        V6Kind::EmbedsV4 { shift } => special_v4(embedded_v4(bits, shift)),
    }
}

/// The 32 bits of `bits` that end `shift` bits from the right, as an IPv4 address.
const fn embedded_v4(bits: u128, shift: u32) -> Ipv4Addr {
    // `checked_shr` keeps a bad `shift` from panicking; the table test holds every shift below
    // 128. The cast keeps the low 32 bits on purpose: they are the IPv4 address.
    let shifted = match bits.checked_shr(shift) {
        Some(shifted) => shifted,
        None => 0,
    };
    Ipv4Addr::from_bits(shifted as u32)
}

/// The mask with the first `len` of 32 bits set; `len` above 32 counts as 32.
const fn mask_v4(len: u8) -> u32 {
    match u32::MAX.checked_shl(32u32.saturating_sub(len as u32)) {
        Some(mask) => mask,
        None => 0, // len 0: a shift by 32 would overflow; no bit is fixed.
    }
}

/// The mask with the first `len` of 128 bits set; `len` above 128 counts as 128.
const fn mask_v6(len: u8) -> u128 {
    match u128::MAX.checked_shl(128u32.saturating_sub(len as u32)) {
        Some(mask) => mask,
        None => 0, // len 0: a shift by 128 would overflow; no bit is fixed.
    }
}

/// An IPv4 table row: the network as bits, its prefix length, and what it is.
#[derive(Debug)]
struct V4Entry {
    network: u32,
    len: u8,
    range: SpecialRange,
}

impl V4Entry {
    const fn contains(&self, bits: u32) -> bool {
        bits & mask_v4(self.len) == self.network
    }
}

/// How an IPv6 entry judges the addresses inside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum V6Kind {
    /// Every address inside is special.
    Special,
    /// Every address inside carries an IPv4 address `shift` bits from the right, and is special
    /// exactly when that IPv4 address is.
    EmbedsV4 { shift: u32 },
}

/// An IPv6 table row: the network as bits, its prefix length, how to judge it, what it is.
#[derive(Debug)]
struct V6Entry {
    network: u128,
    len: u8,
    kind: V6Kind,
    range: SpecialRange,
}

impl V6Entry {
    const fn contains(&self, bits: u128) -> bool {
        bits & mask_v6(self.len) == self.network
    }
}

const fn v4(
    network: Ipv4Addr,
    len: u8,
    prefix: &'static str,
    name: &'static str,
    rfc: &'static str,
) -> V4Entry {
    V4Entry {
        network: network.to_bits(),
        len,
        range: SpecialRange { prefix, name, rfc },
    }
}

const fn v6(
    network: Ipv6Addr,
    len: u8,
    prefix: &'static str,
    name: &'static str,
    rfc: &'static str,
) -> V6Entry {
    V6Entry {
        network: network.to_bits(),
        len,
        kind: V6Kind::Special,
        range: SpecialRange { prefix, name, rfc },
    }
}

/// An IPv6 entry whose addresses carry an IPv4 address ending `shift` bits from the right.
const fn v6_embeds_v4(
    network: Ipv6Addr,
    len: u8,
    shift: u32,
    prefix: &'static str,
    name: &'static str,
    rfc: &'static str,
) -> V6Entry {
    V6Entry {
        network: network.to_bits(),
        len,
        kind: V6Kind::EmbedsV4 { shift },
        range: SpecialRange { prefix, name, rfc },
    }
}

/// The IANA IPv4 Special-Purpose Address Registry, plus multicast. First match wins: a more
/// specific entry comes before the entry it lies in (the limited broadcast address before
/// `240.0.0.0/4`, the `192.0.0.0/24` assignments before the block).
static V4_TABLE: [V4Entry; 27] = [
    // RFC 1122 §3.2.1.3: 0.0.0.0 means "this host", and only as a source address.
    v4(
        Ipv4Addr::new(0, 0, 0, 0),
        32,
        "0.0.0.0/32",
        "this host on this network",
        "RFC 1122",
    ),
    // RFC 791 §3.2 (as the registry now cites it): "this network", never a destination.
    v4(
        Ipv4Addr::new(0, 0, 0, 0),
        8,
        "0.0.0.0/8",
        "this network",
        "RFC 791",
    ),
    v4(
        Ipv4Addr::new(10, 0, 0, 0),
        8,
        "10.0.0.0/8",
        "private-use",
        "RFC 1918",
    ),
    v4(
        Ipv4Addr::new(100, 64, 0, 0),
        10,
        "100.64.0.0/10",
        "shared address space (CGNAT)",
        "RFC 6598",
    ),
    v4(
        Ipv4Addr::new(127, 0, 0, 0),
        8,
        "127.0.0.0/8",
        "loopback",
        "RFC 1122",
    ),
    // Cloud metadata services (169.254.169.254) live here.
    v4(
        Ipv4Addr::new(169, 254, 0, 0),
        16,
        "169.254.0.0/16",
        "link-local",
        "RFC 3927",
    ),
    v4(
        Ipv4Addr::new(172, 16, 0, 0),
        12,
        "172.16.0.0/12",
        "private-use",
        "RFC 1918",
    ),
    // The more specific assignments of 192.0.0.0/24 first.
    v4(
        Ipv4Addr::new(192, 0, 0, 0),
        29,
        "192.0.0.0/29",
        "IPv4 service continuity prefix (DS-Lite)",
        "RFC 7335",
    ),
    v4(
        Ipv4Addr::new(192, 0, 0, 8),
        32,
        "192.0.0.8/32",
        "IPv4 dummy address",
        "RFC 7600",
    ),
    v4(
        Ipv4Addr::new(192, 0, 0, 9),
        32,
        "192.0.0.9/32",
        "port control protocol anycast",
        "RFC 7723",
    ),
    v4(
        Ipv4Addr::new(192, 0, 0, 10),
        32,
        "192.0.0.10/32",
        "traversal using relays around NAT anycast",
        "RFC 8155",
    ),
    v4(
        Ipv4Addr::new(192, 0, 0, 170),
        32,
        "192.0.0.170/32",
        "NAT64/DNS64 discovery",
        "RFC 8880",
    ),
    v4(
        Ipv4Addr::new(192, 0, 0, 171),
        32,
        "192.0.0.171/32",
        "NAT64/DNS64 discovery",
        "RFC 8880",
    ),
    v4(
        Ipv4Addr::new(192, 0, 0, 0),
        24,
        "192.0.0.0/24",
        "IETF protocol assignments",
        "RFC 6890",
    ),
    v4(
        Ipv4Addr::new(192, 0, 2, 0),
        24,
        "192.0.2.0/24",
        "documentation (TEST-NET-1)",
        "RFC 5737",
    ),
    v4(
        Ipv4Addr::new(192, 31, 196, 0),
        24,
        "192.31.196.0/24",
        "AS112-v4",
        "RFC 7535",
    ),
    v4(
        Ipv4Addr::new(192, 52, 193, 0),
        24,
        "192.52.193.0/24",
        "automatic multicast tunneling (AMT)",
        "RFC 7450",
    ),
    v4(
        Ipv4Addr::new(192, 88, 99, 2),
        32,
        "192.88.99.2/32",
        "6a44-relay anycast",
        "RFC 6751",
    ),
    v4(
        Ipv4Addr::new(192, 88, 99, 0),
        24,
        "192.88.99.0/24",
        "deprecated (6to4 relay anycast)",
        "RFC 7526",
    ),
    v4(
        Ipv4Addr::new(192, 168, 0, 0),
        16,
        "192.168.0.0/16",
        "private-use",
        "RFC 1918",
    ),
    v4(
        Ipv4Addr::new(192, 175, 48, 0),
        24,
        "192.175.48.0/24",
        "direct delegation AS112 service",
        "RFC 7534",
    ),
    v4(
        Ipv4Addr::new(198, 18, 0, 0),
        15,
        "198.18.0.0/15",
        "benchmarking",
        "RFC 2544",
    ),
    v4(
        Ipv4Addr::new(198, 51, 100, 0),
        24,
        "198.51.100.0/24",
        "documentation (TEST-NET-2)",
        "RFC 5737",
    ),
    v4(
        Ipv4Addr::new(203, 0, 113, 0),
        24,
        "203.0.113.0/24",
        "documentation (TEST-NET-3)",
        "RFC 5737",
    ),
    // Not in the special-purpose registry but never a unicast host: RFC 5771 §3.
    v4(
        Ipv4Addr::new(224, 0, 0, 0),
        4,
        "224.0.0.0/4",
        "multicast",
        "RFC 5771",
    ),
    // Before 240.0.0.0/4, which holds it: the more precise name wins.
    v4(
        Ipv4Addr::new(255, 255, 255, 255),
        32,
        "255.255.255.255/32",
        "limited broadcast",
        "RFC 919",
    ),
    v4(
        Ipv4Addr::new(240, 0, 0, 0),
        4,
        "240.0.0.0/4",
        "reserved",
        "RFC 1112",
    ),
];

/// The IANA IPv6 Special-Purpose Address Registry, plus multicast, site-local and
/// IPv4-compatible. First match wins: a more specific entry comes before the entry it lies in
/// (`::` and `::1` before `::/96`, the `2001::/23` assignments before the block).
static V6_TABLE: [V6Entry; 28] = [
    v6(
        Ipv6Addr::UNSPECIFIED,
        128,
        "::/128",
        "unspecified",
        "RFC 4291",
    ),
    v6(Ipv6Addr::LOCALHOST, 128, "::1/128", "loopback", "RFC 4291"),
    // RFC 4291 §2.5.5.2: ::ffff:a.b.c.d, which a dual-stack socket sends to a.b.c.d over IPv4.
    v6_embeds_v4(
        Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0),
        96,
        0,
        "::ffff:0:0/96",
        "IPv4-mapped",
        "RFC 4291",
    ),
    // RFC 4291 §2.5.5.1: ::a.b.c.d, deprecated; after ::/128 and ::1/128, which it holds.
    v6_embeds_v4(
        Ipv6Addr::UNSPECIFIED,
        96,
        0,
        "::/96",
        "IPv4-compatible (deprecated)",
        "RFC 4291",
    ),
    // RFC 6052 §2.1: 64:ff9b::a.b.c.d, translated to a.b.c.d by the local NAT64 gateway.
    v6_embeds_v4(
        Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0),
        96,
        0,
        "64:ff9b::/96",
        "IPv4-IPv6 translation (NAT64 well-known prefix)",
        "RFC 6052",
    ),
    v6(
        Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0),
        48,
        "64:ff9b:1::/48",
        "IPv4-IPv6 translation (local-use)",
        "RFC 8215",
    ),
    v6(
        Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0),
        64,
        "100::/64",
        "discard-only",
        "RFC 6666",
    ),
    v6(
        Ipv6Addr::new(0x100, 0, 0, 1, 0, 0, 0, 0),
        64,
        "100:0:0:1::/64",
        "dummy IPv6 prefix",
        "RFC 9780",
    ),
    // The more specific assignments of 2001::/23 first.
    v6(
        Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0),
        32,
        "2001::/32",
        "Teredo",
        "RFC 4380",
    ),
    v6(
        Ipv6Addr::new(0x2001, 1, 0, 0, 0, 0, 0, 1),
        128,
        "2001:1::1/128",
        "port control protocol anycast",
        "RFC 7723",
    ),
    v6(
        Ipv6Addr::new(0x2001, 1, 0, 0, 0, 0, 0, 2),
        128,
        "2001:1::2/128",
        "traversal using relays around NAT anycast",
        "RFC 8155",
    ),
    v6(
        Ipv6Addr::new(0x2001, 1, 0, 0, 0, 0, 0, 3),
        128,
        "2001:1::3/128",
        "DNS-SD service registration protocol anycast",
        "RFC 9665",
    ),
    v6(
        Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0),
        48,
        "2001:2::/48",
        "benchmarking",
        "RFC 5180",
    ),
    v6(
        Ipv6Addr::new(0x2001, 3, 0, 0, 0, 0, 0, 0),
        32,
        "2001:3::/32",
        "automatic multicast tunneling (AMT)",
        "RFC 7450",
    ),
    v6(
        Ipv6Addr::new(0x2001, 4, 0x112, 0, 0, 0, 0, 0),
        48,
        "2001:4:112::/48",
        "AS112-v6",
        "RFC 7535",
    ),
    v6(
        Ipv6Addr::new(0x2001, 0x10, 0, 0, 0, 0, 0, 0),
        28,
        "2001:10::/28",
        "deprecated (previously ORCHID)",
        "RFC 4843",
    ),
    v6(
        Ipv6Addr::new(0x2001, 0x20, 0, 0, 0, 0, 0, 0),
        28,
        "2001:20::/28",
        "ORCHIDv2",
        "RFC 7343",
    ),
    v6(
        Ipv6Addr::new(0x2001, 0x30, 0, 0, 0, 0, 0, 0),
        28,
        "2001:30::/28",
        "drone remote ID protocol entity tags (DETs)",
        "RFC 9374",
    ),
    v6(
        Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0),
        23,
        "2001::/23",
        "IETF protocol assignments",
        "RFC 2928",
    ),
    v6(
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0),
        32,
        "2001:db8::/32",
        "documentation",
        "RFC 3849",
    ),
    // RFC 3056 §2: 2002:AABB:CCDD::/48 belongs to the site at IPv4 AA.BB.CC.DD, reached
    // through a relay; the IPv4 address ends 80 bits from the right.
    v6_embeds_v4(
        Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0),
        16,
        80,
        "2002::/16",
        "6to4",
        "RFC 3056",
    ),
    v6(
        Ipv6Addr::new(0x2620, 0x4f, 0x8000, 0, 0, 0, 0, 0),
        48,
        "2620:4f:8000::/48",
        "direct delegation AS112 service",
        "RFC 7534",
    ),
    v6(
        Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0),
        20,
        "3fff::/20",
        "documentation",
        "RFC 9637",
    ),
    v6(
        Ipv6Addr::new(0x5f00, 0, 0, 0, 0, 0, 0, 0),
        16,
        "5f00::/16",
        "segment routing (SRv6) SIDs",
        "RFC 9602",
    ),
    v6(
        Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0),
        7,
        "fc00::/7",
        "unique-local",
        "RFC 4193",
    ),
    v6(
        Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0),
        10,
        "fe80::/10",
        "link-local",
        "RFC 4291",
    ),
    // Deprecated by RFC 3879 but still routed inside some old networks; not in the registry.
    v6(
        Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0),
        10,
        "fec0::/10",
        "site-local (deprecated)",
        "RFC 3879",
    ),
    // Not in the special-purpose registry but never a unicast host: RFC 4291 §2.7.
    v6(
        Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0),
        8,
        "ff00::/8",
        "multicast",
        "RFC 4291",
    ),
];

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn ip(text: &str) -> IpAddr {
        IpAddr::from_str(text).unwrap_or_else(|e| panic!("{text:?} is not an address: {e}"))
    }

    fn prefix_of(text: &str) -> Option<&'static str> {
        special_purpose(ip(text)).map(|range| range.prefix)
    }

    /// The first and last address of every entry (and, where an entry holds more specific
    /// ones, the addresses on either side of them), with the entry the lookup must name.
    /// `every_entry_is_reached` checks that no entry is missing here.
    const FIRST_AND_LAST: &[(&str, &str)] = &[
        ("0.0.0.0", "0.0.0.0/32"),
        ("0.0.0.1", "0.0.0.0/8"),
        ("0.255.255.255", "0.0.0.0/8"),
        ("10.0.0.0", "10.0.0.0/8"),
        ("10.255.255.255", "10.0.0.0/8"),
        ("100.64.0.0", "100.64.0.0/10"),
        ("100.127.255.255", "100.64.0.0/10"),
        ("127.0.0.0", "127.0.0.0/8"),
        ("127.255.255.255", "127.0.0.0/8"),
        ("169.254.0.0", "169.254.0.0/16"),
        ("169.254.255.255", "169.254.0.0/16"),
        ("172.16.0.0", "172.16.0.0/12"),
        ("172.31.255.255", "172.16.0.0/12"),
        ("192.0.0.0", "192.0.0.0/29"),
        ("192.0.0.7", "192.0.0.0/29"),
        ("192.0.0.8", "192.0.0.8/32"),
        ("192.0.0.9", "192.0.0.9/32"),
        ("192.0.0.10", "192.0.0.10/32"),
        ("192.0.0.11", "192.0.0.0/24"),
        ("192.0.0.169", "192.0.0.0/24"),
        ("192.0.0.170", "192.0.0.170/32"),
        ("192.0.0.171", "192.0.0.171/32"),
        ("192.0.0.172", "192.0.0.0/24"),
        ("192.0.0.255", "192.0.0.0/24"),
        ("192.0.2.0", "192.0.2.0/24"),
        ("192.0.2.255", "192.0.2.0/24"),
        ("192.31.196.0", "192.31.196.0/24"),
        ("192.31.196.255", "192.31.196.0/24"),
        ("192.52.193.0", "192.52.193.0/24"),
        ("192.52.193.255", "192.52.193.0/24"),
        ("192.88.99.0", "192.88.99.0/24"),
        ("192.88.99.1", "192.88.99.0/24"),
        ("192.88.99.2", "192.88.99.2/32"),
        ("192.88.99.3", "192.88.99.0/24"),
        ("192.88.99.255", "192.88.99.0/24"),
        ("192.168.0.0", "192.168.0.0/16"),
        ("192.168.255.255", "192.168.0.0/16"),
        ("192.175.48.0", "192.175.48.0/24"),
        ("192.175.48.255", "192.175.48.0/24"),
        ("198.18.0.0", "198.18.0.0/15"),
        ("198.19.255.255", "198.18.0.0/15"),
        ("198.51.100.0", "198.51.100.0/24"),
        ("198.51.100.255", "198.51.100.0/24"),
        ("203.0.113.0", "203.0.113.0/24"),
        ("203.0.113.255", "203.0.113.0/24"),
        ("224.0.0.0", "224.0.0.0/4"),
        ("239.255.255.255", "224.0.0.0/4"),
        ("240.0.0.0", "240.0.0.0/4"),
        ("255.255.255.254", "240.0.0.0/4"),
        ("255.255.255.255", "255.255.255.255/32"),
        ("::", "::/128"),
        ("::1", "::1/128"),
        ("64:ff9b:1::", "64:ff9b:1::/48"),
        ("64:ff9b:1:ffff:ffff:ffff:ffff:ffff", "64:ff9b:1::/48"),
        ("100::", "100::/64"),
        ("100::ffff:ffff:ffff:ffff", "100::/64"),
        ("100:0:0:1::", "100:0:0:1::/64"),
        ("100::1:ffff:ffff:ffff:ffff", "100:0:0:1::/64"),
        ("2001::", "2001::/32"),
        ("2001:0:ffff:ffff:ffff:ffff:ffff:ffff", "2001::/32"),
        ("2001:1::", "2001::/23"),
        ("2001:1::1", "2001:1::1/128"),
        ("2001:1::2", "2001:1::2/128"),
        ("2001:1::3", "2001:1::3/128"),
        ("2001:1::4", "2001::/23"),
        ("2001:2::", "2001:2::/48"),
        ("2001:2:0:ffff:ffff:ffff:ffff:ffff", "2001:2::/48"),
        ("2001:2:1::", "2001::/23"),
        ("2001:3::", "2001:3::/32"),
        ("2001:3:ffff:ffff:ffff:ffff:ffff:ffff", "2001:3::/32"),
        ("2001:4:112::", "2001:4:112::/48"),
        ("2001:4:112:ffff:ffff:ffff:ffff:ffff", "2001:4:112::/48"),
        ("2001:10::", "2001:10::/28"),
        ("2001:1f:ffff:ffff:ffff:ffff:ffff:ffff", "2001:10::/28"),
        ("2001:20::", "2001:20::/28"),
        ("2001:2f:ffff:ffff:ffff:ffff:ffff:ffff", "2001:20::/28"),
        ("2001:30::", "2001:30::/28"),
        ("2001:3f:ffff:ffff:ffff:ffff:ffff:ffff", "2001:30::/28"),
        ("2001:40::", "2001::/23"),
        ("2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff", "2001::/23"),
        ("2001:db8::", "2001:db8::/32"),
        ("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", "2001:db8::/32"),
        ("2620:4f:8000::", "2620:4f:8000::/48"),
        ("2620:4f:8000:ffff:ffff:ffff:ffff:ffff", "2620:4f:8000::/48"),
        ("3fff::", "3fff::/20"),
        ("3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff", "3fff::/20"),
        ("5f00::", "5f00::/16"),
        ("5f00:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "5f00::/16"),
        ("fc00::", "fc00::/7"),
        ("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fc00::/7"),
        ("fe80::", "fe80::/10"),
        ("febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fe80::/10"),
        ("fec0::", "fec0::/10"),
        ("feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fec0::/10"),
        ("ff00::", "ff00::/8"),
        ("ff02::1", "ff00::/8"),
        ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ff00::/8"),
    ];

    /// IPv6 addresses that carry an IPv4 address, with the IPv4 range the lookup must name:
    /// the first and last of each such prefix, then the usual suspects in every form.
    const EMBEDDED: &[(&str, &str)] = &[
        ("::ffff:0:0", "0.0.0.0/32"),
        ("::ffff:ffff:ffff", "255.255.255.255/32"),
        ("::2", "0.0.0.0/8"),
        ("::ffff:ffff", "255.255.255.255/32"),
        ("64:ff9b::", "0.0.0.0/32"),
        ("64:ff9b::ffff:ffff", "255.255.255.255/32"),
        ("2002::", "0.0.0.0/32"),
        (
            "2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "255.255.255.255/32",
        ),
        ("::ffff:127.0.0.1", "127.0.0.0/8"),
        ("::127.0.0.1", "127.0.0.0/8"),
        ("64:ff9b::127.0.0.1", "127.0.0.0/8"),
        ("2002:7f00:1::", "127.0.0.0/8"),
        ("::ffff:10.0.0.5", "10.0.0.0/8"),
        ("::10.0.0.5", "10.0.0.0/8"),
        ("64:ff9b::10.0.0.5", "10.0.0.0/8"),
        ("2002:a00:5::", "10.0.0.0/8"),
        // The site part after the embedded address changes nothing.
        ("2002:a00:1:abcd::1", "10.0.0.0/8"),
        ("::ffff:169.254.169.254", "169.254.0.0/16"),
        ("::169.254.169.254", "169.254.0.0/16"),
        ("64:ff9b::169.254.169.254", "169.254.0.0/16"),
        ("2002:a9fe:a9fe::", "169.254.0.0/16"),
        ("::ffff:192.168.1.1", "192.168.0.0/16"),
        ("::192.168.1.1", "192.168.0.0/16"),
        ("64:ff9b::192.168.1.1", "192.168.0.0/16"),
        ("2002:c0a8:101::", "192.168.0.0/16"),
        ("::ffff:100.64.0.1", "100.64.0.0/10"),
        ("::100.64.0.1", "100.64.0.0/10"),
        ("64:ff9b::100.64.0.1", "100.64.0.0/10"),
        ("2002:6440:1::", "100.64.0.0/10"),
    ];

    /// Addresses that are not special: real public servers, the public forms of a public IPv4
    /// address, and the neighbours just outside each entry's boundaries where those are public.
    const NOT_SPECIAL: &[&str] = &[
        "8.8.8.8",
        "1.1.1.1",
        "142.250.1.27",
        "2606:4700:4700::1111",
        "2a00:1450:4001:80b::201a",
        "2001:4860:4860::8888",
        "::ffff:8.8.8.8",
        "::8.8.8.8",
        "64:ff9b::8.8.8.8",
        "2002:808:808::",
        "2002:808:808:1::25",
        // IPv4 boundaries.
        "1.0.0.0",
        "9.255.255.255",
        "11.0.0.0",
        "100.63.255.255",
        "100.128.0.0",
        "126.255.255.255",
        "128.0.0.0",
        "169.253.255.255",
        "169.255.0.0",
        "172.15.255.255",
        "172.32.0.0",
        "191.255.255.255",
        "192.0.1.0",
        "192.0.1.255",
        "192.0.3.0",
        "192.31.195.255",
        "192.31.197.0",
        "192.52.192.255",
        "192.52.194.0",
        "192.88.98.255",
        "192.88.100.0",
        "192.167.255.255",
        "192.169.0.0",
        "192.175.47.255",
        "192.175.49.0",
        "198.17.255.255",
        "198.20.0.0",
        "198.51.99.255",
        "198.51.101.0",
        "203.0.112.255",
        "203.0.114.0",
        "223.255.255.255",
        // IPv6 boundaries inside 2000::/3, the global unicast space.
        "2000:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "2001:200::",
        "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff",
        "2001:db9::",
        "2001:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "2003::",
        "2620:4f:7fff:ffff:ffff:ffff:ffff:ffff",
        "2620:4f:8001::",
        "3fff:1000::",
    ];

    /// Space the IETF holds in reserve that no registry entry names: not public, not refused.
    /// These pin the other boundaries of the IPv6 entries outside 2000::/3 and record the
    /// decision that unlisted reserved space is not in the table.
    const IN_NO_ENTRY: &[&str] = &[
        "::1:0:0",
        "::fffe:ffff:ffff",
        "::1:0:0:0",
        "::ffff:0:0:0",
        "64:ff9a:ffff:ffff:ffff:ffff:ffff:ffff",
        "64:ff9b::1:0:0",
        "64:ff9b:0:ffff:ffff:ffff:ffff:ffff",
        "64:ff9b:2::",
        "ff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "100:0:0:2::",
        "5eff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "5f01::",
        "4000::1",
        "fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "fe00::",
        "fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    ];

    #[test]
    fn first_and_last_address_of_every_range_is_special() {
        for &(address, expected) in FIRST_AND_LAST {
            assert_eq!(prefix_of(address), Some(expected), "{address}");
        }
    }

    #[test]
    fn every_entry_is_reached() {
        for entry in &V4_TABLE {
            let prefix = entry.range.prefix;
            assert!(
                FIRST_AND_LAST
                    .iter()
                    .any(|&(_, expected)| expected == prefix),
                "no test address is expected in {prefix}"
            );
        }
        for entry in &V6_TABLE {
            let prefix = entry.range.prefix;
            let reached = match entry.kind {
                V6Kind::Special => FIRST_AND_LAST
                    .iter()
                    .any(|&(_, expected)| expected == prefix),
                V6Kind::EmbedsV4 { .. } => EMBEDDED
                    .iter()
                    .any(|&(address, _)| contains(entry, address)),
            };
            assert!(reached, "no test address is expected in {prefix}");
        }
    }

    fn contains(entry: &V6Entry, address: &str) -> bool {
        match ip(address) {
            IpAddr::V6(v6) => entry.contains(v6.to_bits()),
            IpAddr::V4(_) => false,
        }
    }

    #[test]
    fn embedded_ipv4_forms_take_the_ipv4_range() {
        for &(address, expected) in EMBEDDED {
            assert_eq!(prefix_of(address), Some(expected), "{address}");
        }
    }

    #[test]
    fn public_addresses_are_not_special() {
        for &address in NOT_SPECIAL.iter().chain(IN_NO_ENTRY) {
            assert_eq!(special_purpose(ip(address)), None, "{address}");
        }
    }

    /// Each embedded form answers exactly as its IPv4 address does, for IPv4 addresses around
    /// every IPv4 boundary and spread over the whole space.
    #[test]
    fn embedded_forms_agree_with_ipv4() {
        let boundaries = V4_TABLE.iter().flat_map(|entry| {
            let last = entry.network | !mask_v4(entry.len);
            [
                entry.network.wrapping_sub(1),
                entry.network,
                last,
                last.wrapping_add(1),
            ]
        });
        let spread = (0..=u32::MAX).step_by(65_521);
        for bits in boundaries.chain(spread) {
            let v4 = Ipv4Addr::from_bits(bits);
            let expected = special_purpose(IpAddr::V4(v4));
            let v4_bits = u128::from(bits);
            let forms = [
                ("mapped", v4.to_ipv6_mapped().to_bits()),
                ("nat64", (0x64_ff9b_u128 << 96) | v4_bits),
                ("6to4", (0x2002_u128 << 112) | (v4_bits << 80) | 0xabcd),
            ];
            for (form, v6_bits) in forms {
                let v6 = Ipv6Addr::from_bits(v6_bits);
                assert_eq!(special_purpose(IpAddr::V6(v6)), expected, "{form} {v6}");
            }
            // `::` and `::1` are the unspecified and loopback addresses, not 0.0.0.0 and 0.0.0.1.
            if bits > 1 {
                let v6 = Ipv6Addr::from_bits(v4_bits);
                assert_eq!(special_purpose(IpAddr::V6(v6)), expected, "compatible {v6}");
            }
        }
    }

    #[test]
    fn display_names_prefix_name_and_rfc() {
        let cases = [
            ("169.254.169.254", "169.254.0.0/16 (link-local, RFC 3927)"),
            ("10.0.0.5", "10.0.0.0/8 (private-use, RFC 1918)"),
            (
                "100.64.0.1",
                "100.64.0.0/10 (shared address space (CGNAT), RFC 6598)",
            ),
            ("::1", "::1/128 (loopback, RFC 4291)"),
            ("fd00::1", "fc00::/7 (unique-local, RFC 4193)"),
            ("::ffff:127.0.0.1", "127.0.0.0/8 (loopback, RFC 1122)"),
        ];
        for (address, expected) in cases {
            let range = special_purpose(ip(address));
            assert_eq!(range.map(ToString::to_string).as_deref(), Some(expected));
        }
    }

    /// Each row's `prefix` text parses back to its network and length, the network has no bit
    /// set past the length, and the address family matches the table.
    #[test]
    fn table_rows_are_well_formed() {
        fn parse(prefix: &str) -> (IpAddr, u8) {
            let (network, len) = prefix
                .split_once('/')
                .unwrap_or_else(|| panic!("{prefix:?} has no '/'"));
            (ip(network), len.parse().expect(prefix))
        }
        for entry in &V4_TABLE {
            let prefix = entry.range.prefix;
            assert!(entry.len <= 32, "{prefix}");
            assert_eq!(entry.network & !mask_v4(entry.len), 0, "{prefix}");
            let (network, len) = parse(prefix);
            assert_eq!(network, IpAddr::V4(Ipv4Addr::from_bits(entry.network)));
            assert_eq!(len, entry.len, "{prefix}");
        }
        for entry in &V6_TABLE {
            let prefix = entry.range.prefix;
            assert!(entry.len <= 128, "{prefix}");
            assert_eq!(entry.network & !mask_v6(entry.len), 0, "{prefix}");
            let (network, len) = parse(prefix);
            assert_eq!(network, IpAddr::V6(Ipv6Addr::from_bits(entry.network)));
            assert_eq!(len, entry.len, "{prefix}");
            if let V6Kind::EmbedsV4 { shift } = entry.kind {
                // The IPv4 address lies wholly after the prefix.
                assert!(
                    u32::from(entry.len) + shift + 32 <= 128,
                    "{prefix}: shift {shift}"
                );
            }
        }
    }

    /// First match wins, so an entry that lies inside another must come before it, or it
    /// would never be found. No two entries may be the same prefix.
    #[test]
    fn more_specific_entries_come_first() {
        for (i, outer) in V4_TABLE.iter().enumerate() {
            for inner in &V4_TABLE[i + 1..] {
                let shadowed = inner.len >= outer.len && outer.contains(inner.network);
                assert!(
                    !shadowed,
                    "{} comes after {}, which holds it",
                    inner.range, outer.range
                );
            }
        }
        for (i, outer) in V6_TABLE.iter().enumerate() {
            for inner in &V6_TABLE[i + 1..] {
                let shadowed = inner.len >= outer.len && outer.contains(inner.network);
                assert!(
                    !shadowed,
                    "{} comes after {}, which holds it",
                    inner.range, outer.range
                );
            }
        }
    }

    #[test]
    fn masks_at_the_edges() {
        assert_eq!(mask_v4(0), 0);
        assert_eq!(mask_v4(1), 0x8000_0000);
        assert_eq!(mask_v4(32), u32::MAX);
        assert_eq!(mask_v4(33), u32::MAX);
        assert_eq!(mask_v6(0), 0);
        assert_eq!(mask_v6(1), 1 << 127);
        assert_eq!(mask_v6(128), u128::MAX);
        assert_eq!(mask_v6(200), u128::MAX);
    }
}
