//! The SOCKS5 proxies probes go through, with their health.
//!
//! Each domain has its place in the rotation (the one its source address comes from), so its
//! sessions, retries included, keep the same route while that proxy is well. A session whose
//! proxy fails moves its domain to the next proxy of the pool; a proxy that fails
//! [`FAILURES_TO_BENCH`] times in a row is benched for [`BENCH`], and the domains that pick it
//! go to the next one until it is back. A failure of a proxy is never a verdict on an address
//! (`policy`): the address is asked again, through the next proxy.
//!
//! A proxy's report that the mail server is unreachable or refused is the server's failure, as
//! a direct connection's would be — unless the proxy cannot reach port 25 at all (its network
//! blocks it, as most clouds do) while another proxy of the pool can: once a proxy has reported
//! [`UNREACHABLE_TO_SUSPECT`] different servers unreachable in a row, with no tunnel opened in
//! between, and another proxy has opened one, its further reports are its own failures.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::strikes::Strikes;
use crate::socks5::{Credentials, Proxy};

/// Failures in a row that bench a proxy.
pub const FAILURES_TO_BENCH: u32 = 3;

/// How long a benched proxy is left alone.
pub const BENCH: Duration = Duration::from_secs(60);

/// Different servers a proxy reports unreachable in a row before its reports, while another
/// proxy of the pool opens tunnels, are taken for its own failures (its port 25 blocked).
pub const UNREACHABLE_TO_SUSPECT: usize = 5;

/// The configured proxies and how each is doing.
#[derive(Debug, Default)]
pub(super) struct Proxies {
    proxies: Vec<(Proxy, Strikes)>,
    /// By proxy: the servers it reported unreachable since it last opened a tunnel (at most
    /// [`UNREACHABLE_TO_SUSPECT`] kept).
    unreachable: Vec<Vec<SocketAddr>>,
    /// By proxy: whether it has opened a tunnel.
    opened: Vec<bool>,
}

impl Proxies {
    pub(super) fn new(proxies: &[Proxy]) -> Self {
        Self {
            proxies: proxies
                .iter()
                .cloned()
                .map(|proxy| (proxy, Strikes::default()))
                .collect(),
            unreachable: vec![Vec::new(); proxies.len()],
            opened: vec![false; proxies.len()],
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
        if let (Some(unreachable), Some(opened)) =
            (self.unreachable.get_mut(i), self.opened.get_mut(i))
        {
            unreachable.clear();
            *opened = true;
        }
    }

    /// Proxy `i` reported `server` unreachable (or refusing). True if that is the proxy's own
    /// failure by now (see the module documentation); otherwise it is the server's, and the
    /// proxy did its part.
    pub(super) fn reported_unreachable(&mut self, i: usize, server: SocketAddr) -> bool {
        let another_opened = self.opened.iter().enumerate().any(|(j, &o)| o && j != i);
        let Some(unreachable) = self.unreachable.get_mut(i) else {
            return false;
        };
        if unreachable.len() < UNREACHABLE_TO_SUSPECT && !unreachable.contains(&server) {
            unreachable.push(server);
        }
        let suspect = another_opened && unreachable.len() >= UNREACHABLE_TO_SUSPECT;
        if !suspect && let Some((_, strikes)) = self.proxies.get_mut(i) {
            strikes.clear();
        }
        suspect
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

    /// Five different servers unreachable in a row through one proxy, while another opens
    /// tunnels: its reports are its own failures from then on, until it opens one.
    #[test]
    fn a_proxy_that_reaches_no_server_while_another_does_is_suspect() {
        let mut pool = proxies(2);
        let server = |n: u8| SocketAddr::from(([192, 0, 2, n], 25));
        for n in 0..10 {
            assert!(
                !pool.reported_unreachable(0, server(n)),
                "nothing to compare with"
            );
        }
        pool.succeeded(1);
        assert!(pool.reported_unreachable(0, server(10)));
        pool.succeeded(0);
        for n in 0..4 {
            assert!(!pool.reported_unreachable(0, server(n)));
        }
        // The same server again does not count twice: one dead server is not a blocked proxy.
        assert!(!pool.reported_unreachable(0, server(3)));
        assert!(pool.reported_unreachable(0, server(4)));
        // The other proxy's own reports are judged by its own history.
        assert!(!pool.reported_unreachable(1, server(0)));
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
