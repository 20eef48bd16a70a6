//! A random world from a seed: domains, their DNS, the mail servers behind them with their
//! personalities, the addresses to verify, and the faults of the run.
//!
//! Everything is drawn from one `StdRng` seeded with the seed, in a fixed order, so a seed is a
//! world. Addresses are documentation ranges (192.0.2.0/24, 198.51.100.0/24, 2001:db8::/32):
//! nothing is ever sent to them, the world is in memory.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::faults::FaultPlan;
use crate::sim::dns::{Misbehaviour, Zone};
use crate::sim::smtp::{Behaviour, Greeting, Personality};

/// The nameserver every scenario's resolver is pointed at.
pub const NAMESERVER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 53)), 53);

/// The port the world's mail servers listen on.
pub const SMTP_PORT: u16 = 25;

/// Local parts that exist somewhere (with a number after them); none contains a word the
/// verdict classifier reads as policy.
const NAMES: [&str; 12] = [
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "oscar",
    "peggy",
];

/// Local parts that need SMTPUTF8.
const UNICODE_NAMES: [&str; 4] = ["jörg", "zoë", "renée", "søren"];

/// Strings that are not addresses.
const INVALID: [&str; 5] = [
    "no-at-sign",
    "a@@b.test",
    "@nobody.test",
    "trailing@",
    "sp ace@x.test",
];

/// How a domain's mail is routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DomainKind {
    /// MX records to hosts of the world.
    Mx,
    /// No MX; the domain's own A/AAAA (RFC 5321 §5.1 implicit MX).
    ImplicitMx,
    /// `MX 0 .` (RFC 7505).
    NullMx,
    /// The name does not exist.
    NxDomain,
    /// Every question about it gets SERVFAIL.
    ServFail,
    /// A CNAME to another domain of the world with MX records.
    Cname,
    /// MX records to a host name that has no address.
    NoAddress,
}

/// One domain of the world.
#[derive(Debug, Clone)]
pub struct DomainSpec {
    /// Its name, `d{n}.test`.
    pub name: String,
    /// How its mail is routed.
    pub kind: DomainKind,
    /// How many (host, address) targets its route has: the failover list's length.
    pub targets: usize,
}

/// One mail server of the world.
#[derive(Debug, Clone)]
pub struct HostSpec {
    /// Its name in DNS (`mx{k}.hosts.test`), or the domain's own name for an implicit MX.
    pub name: String,
    /// Its addresses (one or two: IPv4, maybe IPv6 too).
    pub ips: Vec<IpAddr>,
    /// How it behaves.
    pub personality: Personality,
}

/// A world.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The seed it was drawn from.
    pub seed: u64,
    /// The mail servers.
    pub hosts: Vec<HostSpec>,
    /// The DNS data.
    pub zone: Zone,
    /// The domains.
    pub domains: Vec<DomainSpec>,
    /// The addresses to verify, in submission order (duplicates and invalid ones included).
    pub addresses: Vec<String>,
    /// The faults of the run.
    pub faults: FaultPlan,
}

impl Scenario {
    /// The world of `seed`.
    #[must_use]
    pub fn generate(seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut hosts: Vec<HostSpec> = (0..rng.random_range(1..=10_usize))
            .map(|k| host(&mut rng, k))
            .collect();
        let mut zone = Zone::new();
        zone.ttl(rng.random_range(0..600));
        for host in &hosts {
            add_addresses(&mut zone, &host.name, &host.ips);
        }
        let domain_count = rng.random_range(1..=30_usize);
        let mut domains: Vec<DomainSpec> = Vec::with_capacity(domain_count);
        let mut addresses = Vec::new();
        let mut next_v4 = 100_u8;
        for n in 0..domain_count {
            let name = format!("d{n}.test");
            let kind = pick_kind(&mut rng, &domains);
            let mut targets = 0;
            match kind {
                DomainKind::Mx => {
                    let count = rng.random_range(1..=3_usize).min(hosts.len());
                    let mut chosen: Vec<usize> = Vec::new();
                    while chosen.len() < count {
                        let k = rng.random_range(0..hosts.len());
                        if !chosen.contains(&k) {
                            chosen.push(k);
                        }
                    }
                    for &k in &chosen {
                        let preference = if rng.random_bool(0.3) {
                            10
                        } else {
                            rng.random_range(0..50)
                        };
                        zone.mx(&name, preference, &hosts[k].name);
                        targets += hosts[k].ips.len();
                    }
                    add_mailboxes(&mut rng, &mut hosts, &chosen, &name, &mut addresses);
                }
                DomainKind::ImplicitMx => {
                    next_v4 = next_v4.wrapping_add(1).max(100);
                    let mut spec = host(&mut rng, 0);
                    spec.name.clone_from(&name);
                    spec.personality.hostname = format!("mx.{name}");
                    spec.ips = vec![IpAddr::V4(Ipv4Addr::new(198, 51, 100, next_v4))];
                    add_addresses(&mut zone, &name, &spec.ips);
                    targets = spec.ips.len();
                    hosts.push(spec);
                    let k = hosts.len() - 1;
                    add_mailboxes(&mut rng, &mut hosts, &[k], &name, &mut addresses);
                }
                DomainKind::NullMx => {
                    zone.null_mx(&name);
                }
                DomainKind::NxDomain => {}
                DomainKind::ServFail => {
                    zone.misbehave(&name, Misbehaviour::ServFail);
                }
                DomainKind::Cname => {
                    let candidates: Vec<&DomainSpec> = domains
                        .iter()
                        .filter(|d| d.kind == DomainKind::Mx)
                        .collect();
                    let target = candidates[rng.random_range(0..candidates.len())];
                    zone.cname(&name, &target.name);
                    targets = target.targets;
                }
                DomainKind::NoAddress => {
                    zone.mx(&name, 10, &format!("gone.{name}"));
                }
            }
            for _ in 0..rng.random_range(0..=2_usize) {
                addresses.push(format!(
                    "{}{}@{name}",
                    pick(&mut rng, &NAMES),
                    rng.random_range(500..600)
                ));
            }
            domains.push(DomainSpec {
                name,
                kind,
                targets,
            });
        }
        // Duplicates, in another case too; invalid strings; an address literal.
        for _ in 0..rng.random_range(0..=addresses.len() / 4) {
            let copy = addresses[rng.random_range(0..addresses.len())].clone();
            addresses.push(if rng.random_bool(0.5) {
                copy.to_uppercase()
            } else {
                copy
            });
        }
        for _ in 0..rng.random_range(0..=2_usize) {
            addresses.push(pick(&mut rng, &INVALID).to_owned());
        }
        if rng.random_bool(0.1) {
            addresses.push("someone@[192.0.2.9]".into());
        }
        shuffle(&mut rng, &mut addresses);
        let faults = FaultPlan::random(&mut rng);
        Self {
            seed,
            hosts,
            zone,
            domains,
            addresses,
            faults,
        }
    }

    /// Every (address, host index) the world's servers listen on.
    #[must_use]
    pub fn listeners(&self) -> BTreeMap<IpAddr, usize> {
        let mut listeners = BTreeMap::new();
        for (k, host) in self.hosts.iter().enumerate() {
            for ip in &host.ips {
                listeners.insert(*ip, k);
            }
        }
        listeners
    }

    /// The domain of this name, if the world has it.
    #[must_use]
    pub fn domain(&self, name: &str) -> Option<&DomainSpec> {
        self.domains
            .iter()
            .find(|d| d.name.eq_ignore_ascii_case(name))
    }

    /// A one-line summary for the trace.
    #[must_use]
    pub fn summary(&self) -> String {
        format!(
            "seed {}: {} domains, {} hosts, {} addresses, faults {:?}",
            self.seed,
            self.domains.len(),
            self.hosts.len(),
            self.addresses.len(),
            self.faults
        )
    }
}

/// A mail server `mx{k}.hosts.test` on one or two documentation addresses, with a random
/// personality.
fn host(rng: &mut StdRng, k: usize) -> HostSpec {
    let name = format!("mx{k}.hosts.test");
    let octet = u8::try_from(k % 200).unwrap_or(0) + 1;
    let mut ips = vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, octet))];
    if rng.random_bool(0.3) {
        ips.push(IpAddr::V6(Ipv6Addr::new(
            0x2001,
            0xdb8,
            0,
            0,
            0,
            0,
            0,
            u16::from(octet),
        )));
    }
    let mut personality = Personality::new(&name);
    if rng.random_bool(0.15) {
        personality = personality.catch_all();
    }
    if rng.random_bool(0.15) {
        personality = personality.greylist(Duration::from_secs(rng.random_range(1..300)));
    }
    if rng.random_bool(0.15) {
        personality = personality.max_rcpt_per_session(rng.random_range(1..=5));
    }
    if rng.random_bool(0.05) {
        personality = personality.greeting(Greeting::Refuse);
    } else if rng.random_bool(0.05) {
        personality = personality.greeting(Greeting::Unavailable);
    }
    if rng.random_bool(0.05) {
        personality = personality.reject_sender();
    }
    if rng.random_bool(0.2) {
        personality = personality.without_pipelining();
    }
    if rng.random_bool(0.2) {
        personality = personality.without_smtputf8();
    }
    personality = personality
        .latency(Duration::from_millis(rng.random_range(0..300)))
        .jitter(Duration::from_millis(rng.random_range(0..100)));
    let behaviour = match rng.random_range(0..40) {
        0 => Behaviour::Silent,
        1 => Behaviour::Garbage,
        2 => Behaviour::CloseAfterGreeting,
        3 => Behaviour::CloseAfterMail,
        4 => Behaviour::Drip,
        5 => Behaviour::Tarpit(Duration::from_secs(rng.random_range(1..60))),
        6 | 7 => Behaviour::LosesPipelinedReplies,
        8 | 9 => Behaviour::ExtraReply,
        _ => Behaviour::Normal,
    };
    HostSpec {
        name,
        ips,
        personality: personality.behaviour(behaviour),
    }
}

fn add_addresses(zone: &mut Zone, name: &str, ips: &[IpAddr]) {
    for ip in ips {
        match ip {
            IpAddr::V4(v4) => zone.a(name, *v4),
            IpAddr::V6(v6) => zone.aaaa(name, *v6),
        };
    }
}

/// The kind of the next domain: mostly MX, the others now and then. A CNAME needs an MX
/// domain before it to point at.
fn pick_kind(rng: &mut StdRng, before: &[DomainSpec]) -> DomainKind {
    let kind = match rng.random_range(0..20) {
        0 => DomainKind::ImplicitMx,
        1 => DomainKind::NullMx,
        2 => DomainKind::NxDomain,
        3 => DomainKind::ServFail,
        4 => DomainKind::Cname,
        5 => DomainKind::NoAddress,
        _ => DomainKind::Mx,
    };
    if kind == DomainKind::Cname && !before.iter().any(|d| d.kind == DomainKind::Mx) {
        DomainKind::Mx
    } else {
        kind
    }
}

/// Gives `domain` some mailboxes on `hosts`, and adds addresses to verify: existing ones,
/// missing ones, and now and then one that needs SMTPUTF8.
fn add_mailboxes(
    rng: &mut StdRng,
    hosts: &mut [HostSpec],
    chosen: &[usize],
    domain: &str,
    addresses: &mut Vec<String>,
) {
    for _ in 0..rng.random_range(0..=4_usize) {
        let local = if rng.random_bool(0.1) {
            pick(rng, &UNICODE_NAMES).to_owned()
        } else {
            format!("{}{}", pick(rng, &NAMES), rng.random_range(0..100))
        };
        let mailbox = format!("{local}@{domain}");
        for &k in chosen {
            hosts[k].personality.mailboxes.insert(mailbox.clone());
        }
        addresses.push(mailbox);
    }
}

fn pick<'a>(rng: &mut StdRng, from: &[&'a str]) -> &'a str {
    from[rng.random_range(0..from.len())]
}

fn shuffle<T>(rng: &mut StdRng, items: &mut [T]) {
    for i in (1..items.len()).rev() {
        items.swap(i, rng.random_range(0..=i));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_is_a_world() {
        for seed in 0..50 {
            let a = Scenario::generate(seed);
            let b = Scenario::generate(seed);
            assert_eq!(a.addresses, b.addresses);
            assert_eq!(a.summary(), b.summary());
            assert!(!a.domains.is_empty() && a.domains.len() <= 30);
            for host in &a.hosts {
                assert!((1..=2).contains(&host.ips.len()));
            }
        }
    }
}
