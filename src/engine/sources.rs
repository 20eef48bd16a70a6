//! The source addresses probes connect from, with their health.
//!
//! Each domain has its place in the rotation, so its sessions, greylisting retries included,
//! come from the same address (greylisters key on it). Mail servers judge a client by its
//! address: one that refuses the prober *by its address* (a refusal, at greeting or later, that
//! names the client: a blocklist, a reputation listing) has not judged the mailbox. Such a refusal moves the
//! domain to the next address of the pool, and an address refused so [`BLOCKS_TO_BENCH`] times
//! in a row is benched for [`BENCH`]: domains skip it while another address of its family is
//! well. With no other address to go to, a benched one is still used: waiting would not make
//! it better.

use std::net::IpAddr;

use super::strikes::Strikes;
use std::time::{Duration, Instant};

/// Refusals naming the client in a row that bench a source address.
pub const BLOCKS_TO_BENCH: u32 = 3;

/// How long a benched source address is skipped.
pub const BENCH: Duration = Duration::from_secs(600);

/// The configured source addresses, by family, and how each is doing.
#[derive(Debug, Default)]
pub(super) struct Sources {
    /// IPv4, then IPv6.
    pools: [Vec<Source>; 2],
}

#[derive(Debug, Clone, Copy)]
struct Source {
    ip: IpAddr,
    strikes: Strikes,
}

/// The pool index of `ip`'s family.
fn family(ip: IpAddr) -> usize {
    usize::from(ip.is_ipv6())
}

impl Sources {
    pub(super) fn new(ips: &[IpAddr]) -> Self {
        let mut pools: [Vec<Source>; 2] = [Vec::new(), Vec::new()];
        for &ip in ips {
            pools[family(ip)].push(Source {
                ip,
                strikes: Strikes::default(),
            });
        }
        Self { pools }
    }

    /// True if a source address of `ip`'s family is configured.
    pub(super) fn has_family_of(&self, ip: IpAddr) -> bool {
        !self.pools[family(ip)].is_empty()
    }

    /// The source for a connection to `to` by the domain at `slot` of the rotation: its own,
    /// or the next one not benched; its own if all are. `None` without an address of `to`'s
    /// family.
    pub(super) fn pick(&self, to: IpAddr, slot: usize, now: Instant) -> Option<IpAddr> {
        let pool = &self.pools[family(to)];
        let n = pool.len();
        if n == 0 {
            return None;
        }
        (0..n)
            .map(|k| &pool[(slot + k) % n])
            .find(|source| source.strikes.is_well(now))
            .or_else(|| pool.get(slot % n))
            .map(|source| source.ip)
    }

    /// True if another source of `ip`'s family than `ip` is not benched at `now`.
    pub(super) fn another_is_well(&self, ip: IpAddr, now: Instant) -> bool {
        self.pools[family(ip)]
            .iter()
            .any(|source| source.ip != ip && source.strikes.is_well(now))
    }

    /// A server refused the prober by `ip`, its address, at `now`; true if that benched it.
    pub(super) fn blocked(&mut self, ip: IpAddr, now: Instant) -> bool {
        self.pools[family(ip)]
            .iter_mut()
            .find(|s| s.ip == ip)
            .is_some_and(|source| source.strikes.strike(now, BLOCKS_TO_BENCH, BENCH))
    }

    /// A server answered a recipient from `ip`: whatever refusals came before, it is not
    /// refused everywhere.
    pub(super) fn answered(&mut self, ip: IpAddr) {
        if let Some(source) = self.pools[family(ip)].iter_mut().find(|s| s.ip == ip) {
            source.strikes.clear();
        }
    }
}

/// True if `reply` text, a refusal, is about the client's address: it names the address, or
/// says "client host", "your IP" and the like (Spamhaus, Microsoft's "banned sending IP",
/// Yahoo's "Connections will not be accepted from"...).
pub(super) fn names_the_client(text: &str, source: IpAddr) -> bool {
    let text = text.to_ascii_lowercase();
    text.contains(&source.to_string())
        || [
            "client host",
            "client ip",
            "sending ip",
            "your ip",
            "ip address",
            "connecting ip",
            "connections will not be accepted from",
            "blocked using",
        ]
        .iter()
        .any(|phrase| text.contains(phrase))
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "a test needs an origin for its hand-moved clock"
)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    #[test]
    fn a_domain_keeps_its_address_until_it_is_benched_then_moves_and_comes_back() {
        let mut sources = Sources::new(&[ip("192.0.2.1"), ip("192.0.2.2"), ip("2001:db8::1")]);
        let now = Instant::now();
        let server = ip("198.51.100.25");
        assert_eq!(sources.pick(server, 2, now), Some(ip("192.0.2.1")));
        assert_eq!(
            sources.pick(ip("2001:db8::25"), 2, now),
            Some(ip("2001:db8::1"))
        );
        assert!(!sources.blocked(ip("192.0.2.1"), now));
        sources.answered(ip("192.0.2.1"));
        assert!(!sources.blocked(ip("192.0.2.1"), now));
        assert!(!sources.blocked(ip("192.0.2.1"), now));
        assert!(sources.blocked(ip("192.0.2.1"), now), "three in a row");
        assert_eq!(sources.pick(server, 2, now), Some(ip("192.0.2.2")));
        assert!(!sources.another_is_well(ip("192.0.2.2"), now));
        assert_eq!(sources.pick(server, 2, now + BENCH), Some(ip("192.0.2.1")));
    }

    #[test]
    fn with_every_address_benched_the_domains_own_is_still_used() {
        let mut sources = Sources::new(&[ip("192.0.2.1")]);
        let now = Instant::now();
        for _ in 0..BLOCKS_TO_BENCH {
            sources.blocked(ip("192.0.2.1"), now);
        }
        assert_eq!(
            sources.pick(ip("198.51.100.25"), 0, now),
            Some(ip("192.0.2.1"))
        );
        assert_eq!(sources.pick(ip("2001:db8::25"), 0, now), None);
    }

    #[test]
    fn refusals_that_name_the_client_are_told_from_others() {
        let source = ip("192.0.2.1");
        for text in [
            "5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org",
            "5.7.606 Access denied, banned sending IP [192.0.2.1]",
            "5.7.1 [BL21] Connections will not be accepted from 192.0.2.1",
            "rejected: 192.0.2.1 is listed",
        ] {
            assert!(names_the_client(text, source), "{text}");
        }
        for text in [
            "5.7.1 Message rejected under suspicion of SPAM",
            "5.7.1 Relaying denied",
            "5.1.1 User unknown",
        ] {
            assert!(!names_the_client(text, source), "{text}");
        }
    }
}
