//! [`Strikes`]: the record a pool keeps of one of its members (a SOCKS5 proxy, a source
//! address): failures in a row, and the bench they earn. Shared by `proxies.rs` and
//! `sources.rs`, which differ only in what counts as a failure and how long a bench lasts.

use std::time::{Duration, Instant};

/// One member's recent record.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Strikes {
    in_a_row: u32,
    benched_until: Option<Instant>,
}

impl Strikes {
    /// A failure at `now`; the `limit`-th in a row benches the member for `bench` (and starts
    /// the count again). True if this one benched it.
    pub(super) fn strike(&mut self, now: Instant, limit: u32, bench: Duration) -> bool {
        self.in_a_row += 1;
        if self.in_a_row >= limit {
            self.in_a_row = 0;
            self.benched_until = Some(now + bench);
            true
        } else {
            false
        }
    }

    /// It did its job: the failures before no longer count.
    pub(super) fn clear(&mut self) {
        self.in_a_row = 0;
    }

    /// True if it may be used at `now`.
    pub(super) fn is_well(&self, now: Instant) -> bool {
        self.benched_until.is_none_or(|until| until <= now)
    }

    /// When its bench ends, if it has one.
    pub(super) fn benched_until(&self) -> Option<Instant> {
        self.benched_until
    }
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "a test needs an origin for its hand-moved clock"
)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_in_a_row_benches_and_a_success_between_forgives() {
        let bench = Duration::from_secs(60);
        let now = Instant::now();
        let mut strikes = Strikes::default();
        assert!(!strikes.strike(now, 3, bench));
        strikes.clear();
        assert!(!strikes.strike(now, 3, bench));
        assert!(!strikes.strike(now, 3, bench));
        assert!(strikes.is_well(now));
        assert!(strikes.strike(now, 3, bench));
        assert!(!strikes.is_well(now));
        assert_eq!(strikes.benched_until(), Some(now + bench));
        assert!(strikes.is_well(now + bench));
    }
}
