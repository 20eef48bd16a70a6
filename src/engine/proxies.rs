//! The SOCKS5 proxies probes go through, with their health.
//!
//! Each domain has its place in the rotation (the one its source address comes from), so its
//! sessions, retries included, keep the same route while that proxy is well. A session whose
//! proxy fails moves its domain to the next proxy of the pool; a proxy that fails
//! [`FAILURES_TO_BENCH`] times in a row is benched for [`BENCH`], and the domains that pick it
//! go to the next one until it is back. A failure of a proxy is never a verdict on an address
//! (`policy`): the address is asked again, through the next proxy.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::strikes::Strikes;
use crate::socks5::{Credentials, Proxy};

/// Failures in a row that bench a proxy.
pub const FAILURES_TO_BENCH: u32 = 3;

/// How long a benched proxy is left alone.
pub const BENCH: Duration = Duration::from_secs(60);

/// The configured proxies and how each is doing.
#[derive(Debug, Default)]
pub(super) struct Proxies {
    proxies: Vec<(Proxy, Strikes)>,
}

impl Proxies {
    pub(super) fn new(proxies: &[Proxy]) -> Self {
        Self {
            proxies: proxies
                .iter()
                .cloned()
                .map(|proxy| (proxy, Strikes::default()))
                .collect(),
        }
    }

    /// True if probes go through proxies.
    pub(super) fn configured(&self) -> bool {
        !self.proxies.is_empty()
    }

    /// The proxy for the domain at `slot` of the rotation at `now`: its own, or the next one
    /// not benched. `Err` with when the first bench ends if every proxy is benched.
    pub(super) fn pick(&self, slot: usize, now: Instant) -> Result<usize, Instant> {
        let n = self.proxies.len();
        (0..n)
            .map(|k| (slot + k) % n)
            .find(|&i| self.proxies[i].1.is_well(now))
            .ok_or_else(|| {
                self.proxies
                    .iter()
                    .filter_map(|(_, strikes)| strikes.benched_until())
                    .min()
                    .unwrap_or(now)
            })
    }

    /// Where proxy `i` listens and what it wants.
    pub(super) fn get(&self, i: usize) -> (SocketAddr, Option<Credentials>, bool) {
        let proxy = &self.proxies[i].0;
        (proxy.addr, proxy.credentials.clone(), proxy.resolves_names)
    }

    /// Proxy `i` opened a tunnel.
    pub(super) fn succeeded(&mut self, i: usize) {
        if let Some((_, strikes)) = self.proxies.get_mut(i) {
            strikes.clear();
        }
    }

    /// Proxy `i` failed at `now`; true if that benched it.
    pub(super) fn failed(&mut self, i: usize, now: Instant) -> bool {
        self.proxies
            .get_mut(i)
            .is_some_and(|(_, strikes)| strikes.strike(now, FAILURES_TO_BENCH, BENCH))
    }
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "a test needs an origin for its hand-moved clock"
)]
mod tests {
    use super::*;

    fn proxies(n: u16) -> Proxies {
        let list: Vec<Proxy> = (0..n)
            .map(|i| Proxy::parse(&format!("socks5://127.0.0.1:{}", 1080 + i)).expect("valid"))
            .collect();
        Proxies::new(&list)
    }

    #[test]
    fn a_domain_keeps_its_proxy_until_it_is_benched_then_moves_on_and_back() {
        let mut pool = proxies(3);
        let now = Instant::now();
        assert_eq!(pool.pick(4, now), Ok(1));
        assert!(!pool.failed(1, now));
        pool.succeeded(1);
        assert!(!pool.failed(1, now));
        assert!(!pool.failed(1, now));
        assert!(pool.failed(1, now), "three failures in a row bench it");
        assert_eq!(pool.pick(4, now), Ok(2));
        assert_eq!(pool.pick(4, now + BENCH), Ok(1), "back after the bench");
    }

    #[test]
    fn with_every_proxy_benched_the_first_return_is_when() {
        let mut pool = proxies(2);
        let now = Instant::now();
        for _ in 0..FAILURES_TO_BENCH {
            pool.failed(0, now);
        }
        let later = now + Duration::from_secs(5);
        for _ in 0..FAILURES_TO_BENCH {
            pool.failed(1, later);
        }
        assert_eq!(pool.pick(0, later), Err(now + BENCH));
    }
}
