//! The provider gates: the politeness owed to a mail system as a whole, across every domain
//! it receives for.
//!
//! Thousands of domains of a list may be hosted at one provider, and a provider judges a
//! prober by everything it sends, not domain by domain. Each provider with a profile
//! ([`crate::providers`]) gets a gate that spaces new connections by the rate its profile
//! allows, and closes for the profile's backoff when the provider answers "slow down". A
//! domain that finds its provider's gate closed waits for it to open (a timer of its own); the
//! domain's queue is untouched, so its addresses spend no retries while they wait.

use std::time::{Duration, Instant};

use crate::providers::{self, Provider};

/// One gate per known provider, indexed by [`Provider::index`].
#[derive(Debug)]
pub(super) struct ProviderGates {
    gates: Vec<Gate>,
}

/// What a provider's gate remembers.
#[derive(Debug, Clone, Copy, Default)]
struct Gate {
    /// No new connection before this: the connection rate.
    next_connect_at: Option<Instant>,
    /// No new connection before this either: the provider said "slow down".
    backoff_until: Option<Instant>,
}

impl Default for ProviderGates {
    fn default() -> Self {
        Self {
            gates: vec![Gate::default(); providers::all().len()],
        }
    }
}

impl ProviderGates {
    /// When `provider`'s gate opens, if it is closed at `now`.
    pub(super) fn closed_until(&self, provider: &Provider, now: Instant) -> Option<Instant> {
        let gate = self.gates.get(provider.index())?;
        [gate.next_connect_at, gate.backoff_until]
            .into_iter()
            .flatten()
            .filter(|at| *at > now)
            .max()
    }

    /// A connection to `provider` starts at `now`: the next waits for its rate.
    pub(super) fn connected(&mut self, provider: &Provider, now: Instant) {
        let rate = provider.profile.politeness.connects_per_second;
        if let (Some(gate), Some(rate)) = (
            self.gates.get_mut(provider.index()),
            rate.filter(|r| r.is_finite() && *r > 0.0),
        ) {
            gate.next_connect_at = Some(now + Duration::from_secs_f64(1.0 / rate));
        }
    }

    /// `provider` said "slow down" at `now`: no new connection there for `wait` (a later
    /// backoff already set stands).
    pub(super) fn throttled(&mut self, provider: &Provider, now: Instant, wait: Duration) {
        if let Some(gate) = self.gates.get_mut(provider.index()) {
            let until = now + wait;
            gate.backoff_until = Some(gate.backoff_until.map_or(until, |at| at.max(until)));
        }
    }
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "a test needs an origin for its hand-moved clock"
)]
mod tests {
    use super::*;

    fn google() -> &'static Provider {
        providers::all()
            .iter()
            .find(|p| p.id == "google")
            .expect("google has an entry")
    }

    #[test]
    fn a_gate_spaces_connections_by_the_profiles_rate() {
        let provider = google();
        let rate = provider
            .profile
            .politeness
            .connects_per_second
            .expect("google's profile has a connection rate");
        let mut gates = ProviderGates::default();
        let start = Instant::now();
        assert_eq!(gates.closed_until(provider, start), None);
        gates.connected(provider, start);
        let open = start + Duration::from_secs_f64(1.0 / rate);
        assert_eq!(gates.closed_until(provider, start), Some(open));
        assert_eq!(gates.closed_until(provider, open), None);
    }

    #[test]
    fn a_throttle_closes_the_gate_for_the_longest_backoff_asked() {
        let provider = google();
        let mut gates = ProviderGates::default();
        let start = Instant::now();
        gates.throttled(provider, start, Duration::from_secs(300));
        gates.throttled(provider, start, Duration::from_secs(10));
        assert_eq!(
            gates.closed_until(provider, start + Duration::from_secs(299)),
            Some(start + Duration::from_secs(300))
        );
        assert_eq!(
            gates.closed_until(provider, start + Duration::from_secs(300)),
            None
        );
    }
}
