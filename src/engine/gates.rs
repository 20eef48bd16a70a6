//! The provider gates: the politeness owed to a mail system as a whole, across every domain
//! it receives for.
//!
//! Thousands of domains of a list may be hosted at one provider, and a provider judges a
//! prober by everything it sends, not domain by domain. Each provider with a profile
//! ([`crate::providers`]) gets a gate that spaces new connections by the rate its profile
//! allows, and closes for the profile's backoff when the provider answers "slow down".
//!
//! A domain that finds the gate closed, or others already waiting, joins the gate's line. Each
//! opening is given to one domain of the line, its **turn**: the first with real-time work, or
//! else the first in line; the others keep their places, so a provider's domains take turns and
//! none with real-time work waits behind the bulk ones. A domain that does not use its turn
//! (it has no work left, or its server is full) loses it after one pacing interval, and the
//! next in line gets one. A gate with no connection rate (only a backoff) lets its whole line
//! go when it opens. The domains' queues are untouched while they wait, so their addresses
//! spend no retries.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::domain::DomainId;
use crate::providers::{self, Provider};

/// How long a turn lasts when the provider sets no pace (and how often a line with no pace is
/// looked at): short against any reply time.
const DEFAULT_TURN: Duration = Duration::from_millis(50);

/// One gate per known provider, indexed by [`Provider::index`].
#[derive(Debug)]
pub(super) struct ProviderGates {
    gates: Vec<Gate>,
}

/// What a provider's gate remembers.
#[derive(Debug, Clone, Default)]
struct Gate {
    /// No new connection before this: the connection rate.
    next_connect_at: Option<Instant>,
    /// No new connection before this either: the provider said "slow down".
    backoff_until: Option<Instant>,
    /// Domains waiting for an opening, in the order they came.
    line: VecDeque<DomainId>,
    /// The domain the current opening is kept for, if one is.
    turn: Option<DomainId>,
    /// The moment the scheduler's timer heap holds for this gate, if any.
    wake_at: Option<Instant>,
}

/// What [`ProviderGates::pass`] says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pass {
    /// Connect now (and say so with [`ProviderGates::connected`]).
    Go,
    /// Wait in line; if `Some`, arm a gate timer for that moment.
    Wait(Option<Instant>),
}

/// What a gate's timer does when it fires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Opening {
    /// Domains to put back in the scheduler's lines: the one whose turn it is, or, at a gate
    /// without a pace, the whole line.
    pub(super) wake: Vec<DomainId>,
    /// The next moment to look at the gate, if its line is not empty.
    pub(super) again_at: Option<Instant>,
}

impl Default for ProviderGates {
    fn default() -> Self {
        Self {
            gates: vec![Gate::default(); providers::all().len()],
        }
    }
}

impl Gate {
    /// When the gate opens, if it is closed at `now`.
    fn closed_until(&self, now: Instant) -> Option<Instant> {
        [self.next_connect_at, self.backoff_until]
            .into_iter()
            .flatten()
            .filter(|at| *at > now)
            .max()
    }

    /// Asks for a timer at `at` unless one as early is armed.
    fn wake(&mut self, at: Instant) -> Option<Instant> {
        if self.wake_at.is_none_or(|armed| at < armed) {
            self.wake_at = Some(at);
            Some(at)
        } else {
            None
        }
    }
}

/// The provider's pacing interval, if it sets a connection rate.
fn interval(provider: &Provider) -> Option<Duration> {
    provider
        .profile
        .politeness
        .connects_per_second
        .filter(|rate| rate.is_finite() && *rate > 0.0)
        .map(|rate| Duration::from_secs_f64(1.0 / rate))
}

impl ProviderGates {
    /// Every domain in a gate's line, or whose turn it is.
    pub(super) fn waiting_domains(&self) -> impl Iterator<Item = DomainId> + '_ {
        self.gates
            .iter()
            .flat_map(|gate| gate.line.iter().copied().chain(gate.turn))
    }

    /// Whether `domain` may connect to `provider` at `now`: the gate is open, and nobody is
    /// waiting or it is this domain's turn. Otherwise it joins the line.
    pub(super) fn pass(&mut self, provider: &Provider, domain: DomainId, now: Instant) -> Pass {
        let Some(gate) = self.gates.get_mut(provider.index()) else {
            return Pass::Go;
        };
        let closed = gate.closed_until(now);
        let mine = gate.turn == Some(domain);
        if closed.is_none() && (mine || (gate.turn.is_none() && gate.line.is_empty())) {
            gate.turn = None;
            gate.line.retain(|waiting| *waiting != domain);
            return Pass::Go;
        }
        if mine {
            // Its turn came while the gate closed again: first in line for the next opening.
            gate.turn = None;
            gate.line.push_front(domain);
        } else if !gate.line.contains(&domain) {
            gate.line.push_back(domain);
        }
        // Closed: look again when it opens. Open but kept for another: its turn ends within
        // a pacing interval, and a timer is armed for that already.
        match closed {
            Some(at) => Pass::Wait(gate.wake(at)),
            None if gate.wake_at.is_none() => Pass::Wait(gate.wake(now)),
            None => Pass::Wait(None),
        }
    }

    /// A connection to `provider` starts at `now`: the next waits for its rate.
    pub(super) fn connected(&mut self, provider: &Provider, now: Instant) {
        if let (Some(gate), Some(interval)) =
            (self.gates.get_mut(provider.index()), interval(provider))
        {
            gate.next_connect_at = Some(now + interval);
        }
    }

    /// `provider` said "slow down" at `now`: no new connection there for `wait` (a later
    /// backoff already set stands).
    pub(super) fn throttled(&mut self, provider: &Provider, now: Instant, wait: Duration) {
        if let Some(gate) = self.gates.get_mut(provider.index()) {
            let until = now.checked_add(wait).unwrap_or(now);
            gate.backoff_until = Some(gate.backoff_until.map_or(until, |at| at.max(until)));
        }
    }

    /// True if the timer for gate `index` at `at` is still wanted.
    pub(super) fn is_due(&self, index: usize, at: Instant) -> bool {
        self.gates
            .get(index)
            .is_some_and(|gate| gate.wake_at == Some(at))
    }

    /// Gate `index`'s timer fires at `now`: whose turn it is (`urgent` tells a domain with
    /// real-time work), and when to look again.
    pub(super) fn open(
        &mut self,
        index: usize,
        now: Instant,
        urgent: impl Fn(DomainId) -> bool,
    ) -> Opening {
        let nothing = Opening {
            wake: Vec::new(),
            again_at: None,
        };
        let (Some(gate), Some(provider)) = (self.gates.get_mut(index), providers::all().get(index))
        else {
            return nothing;
        };
        gate.wake_at = None;
        if let Some(at) = gate.closed_until(now) {
            // Closed again meanwhile (a connection took the opening, or a backoff began).
            return Opening {
                wake: Vec::new(),
                again_at: gate.wake(at),
            };
        }
        // An unused turn ends here: its holder may join the line again.
        gate.turn = None;
        let Some(interval) = interval(provider) else {
            // No pace: the whole line goes.
            return Opening {
                wake: gate.line.drain(..).collect(),
                again_at: None,
            };
        };
        let Some(next) = gate
            .line
            .iter()
            .position(|domain| urgent(*domain))
            .or((!gate.line.is_empty()).then_some(0))
        else {
            return nothing;
        };
        let domain = gate.line.remove(next).unwrap_or_default();
        gate.turn = Some(domain);
        Opening {
            wake: vec![domain],
            again_at: gate.wake(now + interval.max(DEFAULT_TURN)),
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

    fn pace(provider: &Provider) -> Duration {
        interval(provider).expect("google's profile has a connection rate")
    }

    #[test]
    fn a_gate_spaces_connections_by_the_profiles_rate() {
        let provider = google();
        let mut gates = ProviderGates::default();
        let start = Instant::now();
        assert_eq!(gates.pass(provider, 1, start), Pass::Go);
        gates.connected(provider, start);
        let open = start + pace(provider);
        assert_eq!(gates.pass(provider, 1, start), Pass::Wait(Some(open)));
        assert_eq!(
            gates.pass(provider, 2, start),
            Pass::Wait(None),
            "one timer"
        );
        // The opening goes to the first in line; the other waits its turn.
        let opening = gates.open(provider.index(), open, |_| false);
        assert_eq!(opening.wake, [1]);
        assert_eq!(gates.pass(provider, 2, open), Pass::Wait(None));
        assert_eq!(gates.pass(provider, 1, open), Pass::Go);
        gates.connected(provider, open);
        let next = gates.open(provider.index(), opening.again_at.expect("again"), |_| {
            false
        });
        assert_eq!(next.wake, [2], "then the next in line");
    }

    #[test]
    fn real_time_work_goes_first_and_an_unused_turn_passes_on() {
        let provider = google();
        let mut gates = ProviderGates::default();
        let start = Instant::now();
        gates.connected(provider, start);
        for domain in [1, 2, 3] {
            let _ = gates.pass(provider, domain, start);
        }
        let open = start + pace(provider);
        let opening = gates.open(provider.index(), open, |domain| domain == 3);
        assert_eq!(opening.wake, [3], "the domain with real-time work");
        // Domain 3 never comes: its turn passes to the first in line.
        let again = opening.again_at.expect("looked at again");
        let opening = gates.open(provider.index(), again, |_| false);
        assert_eq!(opening.wake, [1]);
    }

    #[test]
    fn a_throttle_closes_the_gate_for_the_longest_backoff_asked() {
        let provider = google();
        let mut gates = ProviderGates::default();
        let start = Instant::now();
        gates.throttled(provider, start, Duration::from_secs(300));
        gates.throttled(provider, start, Duration::from_secs(10));
        let end = start + Duration::from_secs(300);
        assert_eq!(
            gates.pass(provider, 1, start + Duration::from_secs(299)),
            Pass::Wait(Some(end))
        );
        let opening = gates.open(provider.index(), end, |_| false);
        assert_eq!(opening.wake, [1]);
        assert_eq!(gates.pass(provider, 1, end), Pass::Go);
    }
}
