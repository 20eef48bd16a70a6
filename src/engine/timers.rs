//! The scheduler's deadlines: one heap for every kind, with lazy deletion.
//!
//! An entry names its owner ([`Timer`]) and the instant it was armed for. When the owner moves
//! on (a session ends, a domain is woken earlier, a job is retried or finished), its entry is
//! not searched for: it stays in the heap, dead, until it reaches the top or the heap is
//! compacted. Only the owner knows whether an entry is still wanted, so liveness is a
//! predicate the caller passes in.
//!
//! Guarantees:
//! - [`Timers::pop_due`] hands out entries in deadline order, never one later than `now`.
//! - [`Timers::compact_if_due`] keeps the heap within twice its live length (and never bothers
//!   below [`MIN_TIMERS_COMPACT`]): memory stays proportional to what is live, at amortised
//!   constant cost per entry.
//! - Nothing here reads the clock.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use super::domain::DomainId;
use super::job::JobId;

/// Who a deadline is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Timer {
    /// A session's next deadline (its reply or connect timeout).
    Session(u64),
    /// A domain waiting out its batch hold, its connection rate or its servers' cooldown.
    Domain(DomainId),
    /// A job's retry after a 4xx: live while the job has made exactly this many retries.
    Retry(JobId, u16),
    /// The end of the pause after the system ran out of sockets.
    Backoff,
    /// Start sessions for what was submitted: once per burst of submissions, so that the
    /// addresses of one domain submitted together share sessions.
    Schedule,
    /// The deadline of a submission (its tag) answered by a job: live while that submission
    /// waits.
    Deadline(JobId, u64),
    /// A provider's gate opens (its index in [`crate::providers::all`]): the domains that
    /// waited for it go back in line.
    Gate(usize),
}

/// The timer heap is never compacted below this length: small heaps are cheap to keep.
pub(super) const MIN_TIMERS_COMPACT: usize = 1024;

/// Deadlines, earliest first, dead entries included until they are dropped.
#[derive(Debug)]
pub(super) struct Timers {
    heap: BinaryHeap<Reverse<(Instant, Timer)>>,
    /// The heap is compacted when it reaches this length: twice its live length after the
    /// last compaction (a session's entry outlives it by up to a reply timeout, so at
    /// thousands of sessions a second the dead would otherwise outnumber the live a
    /// hundredfold).
    compact_at: usize,
}

impl Default for Timers {
    fn default() -> Self {
        Self {
            heap: BinaryHeap::new(),
            compact_at: MIN_TIMERS_COMPACT,
        }
    }
}

impl Timers {
    /// Every domain an entry names, live or dead.
    pub(super) fn domains(&self) -> impl Iterator<Item = DomainId> + '_ {
        self.heap
            .iter()
            .filter_map(|Reverse((_, timer))| match timer {
                Timer::Domain(domain) => Some(*domain),
                _ => None,
            })
    }

    /// Entries in the heap, live and dead.
    pub(super) fn len(&self) -> usize {
        self.heap.len()
    }

    /// Adds a deadline. Call [`compact_if_due`](Self::compact_if_due) first: the heap does not
    /// know which of its entries are dead.
    #[inline]
    pub(super) fn push(&mut self, at: Instant, timer: Timer) {
        self.heap.push(Reverse((at, timer)));
    }

    /// Drops the dead entries if the heap has reached its compaction length, and sets the next
    /// one at twice what is left.
    #[inline]
    pub(super) fn compact_if_due(&mut self, is_live: impl FnMut(Instant, Timer) -> bool) {
        if self.heap.len() >= self.compact_at {
            self.compact(is_live);
        }
    }

    #[cold]
    fn compact(&mut self, mut is_live: impl FnMut(Instant, Timer) -> bool) {
        self.heap.retain(|&Reverse((at, timer))| is_live(at, timer));
        self.compact_at = (self.heap.len() * 2).max(MIN_TIMERS_COMPACT);
    }

    /// The earliest live deadline, after dropping the dead entries before it.
    pub(super) fn next_deadline(
        &mut self,
        mut is_live: impl FnMut(Instant, Timer) -> bool,
    ) -> Option<Instant> {
        while let Some(&Reverse((at, timer))) = self.heap.peek() {
            if is_live(at, timer) {
                return Some(at);
            }
            self.heap.pop();
        }
        None
    }

    /// The earliest entry if it is due at `now`, live or dead: the caller checks its owner.
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<(Instant, Timer)> {
        let &Reverse((at, timer)) = self.heap.peek()?;
        if at > now {
            return None;
        }
        self.heap.pop();
        Some((at, timer))
    }
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "a test needs an origin for its hand-moved clock"
)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn ms(origin: Instant, n: u64) -> Instant {
        origin + Duration::from_millis(n)
    }

    #[test]
    fn due_entries_come_out_in_deadline_order_and_no_later_than_now() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        timers.push(ms(t0, 30), Timer::Backoff);
        timers.push(ms(t0, 10), Timer::Session(7));
        timers.push(ms(t0, 20), Timer::Domain(3));
        assert_eq!(timers.pop_due(ms(t0, 5)), None);
        assert_eq!(
            timers.pop_due(ms(t0, 25)),
            Some((ms(t0, 10), Timer::Session(7)))
        );
        assert_eq!(
            timers.pop_due(ms(t0, 25)),
            Some((ms(t0, 20), Timer::Domain(3)))
        );
        assert_eq!(timers.pop_due(ms(t0, 25)), None);
        assert_eq!(timers.len(), 1);
        assert_eq!(
            timers.pop_due(ms(t0, 30)),
            Some((ms(t0, 30), Timer::Backoff))
        );
        assert_eq!(timers.len(), 0);
    }

    #[test]
    fn equal_deadlines_all_come_out() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        timers.push(t0, Timer::Schedule);
        timers.push(t0, Timer::Schedule);
        assert!(timers.pop_due(t0).is_some());
        assert!(timers.pop_due(t0).is_some());
        assert_eq!(timers.pop_due(t0), None);
    }

    #[test]
    fn the_next_deadline_skips_and_drops_the_dead() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        timers.push(ms(t0, 10), Timer::Session(1));
        timers.push(ms(t0, 20), Timer::Session(2));
        timers.push(ms(t0, 30), Timer::Session(3));
        let live = |_, timer| timer != Timer::Session(1);
        assert_eq!(timers.next_deadline(live), Some(ms(t0, 20)));
        // The dead entry at the top is gone; the live ones stay.
        assert_eq!(timers.len(), 2);
        assert_eq!(timers.next_deadline(|_, _| false), None);
        assert_eq!(timers.len(), 0);
    }

    #[test]
    fn compaction_waits_for_its_length_then_keeps_only_the_live() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        let even = |_, timer| matches!(timer, Timer::Session(n) if n % 2 == 0);
        for n in 0..MIN_TIMERS_COMPACT as u64 - 1 {
            timers.compact_if_due(even);
            timers.push(ms(t0, n), Timer::Session(n));
        }
        assert_eq!(timers.len(), MIN_TIMERS_COMPACT - 1);
        timers.compact_if_due(even);
        timers.push(ms(t0, 5000), Timer::Session(5001));
        assert_eq!(timers.len(), MIN_TIMERS_COMPACT);
        // At its length: half are dead and go.
        timers.compact_if_due(even);
        assert_eq!(timers.len(), MIN_TIMERS_COMPACT / 2);
        // Below the floor, nothing is compacted again however many are dead.
        timers.compact_if_due(|_, _| false);
        assert_eq!(timers.len(), MIN_TIMERS_COMPACT / 2);
    }

    #[test]
    fn after_compaction_the_next_comes_at_twice_the_live_length() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        let live = 3 * MIN_TIMERS_COMPACT as u64;
        // All live: the compactions at 1024 and 2048 keep everything, and each moves the
        // next to twice the length.
        for n in 0..live {
            timers.compact_if_due(|_, _| true);
            timers.push(ms(t0, n), Timer::Session(n));
        }
        assert_eq!(timers.len(), 3 * MIN_TIMERS_COMPACT);
        // Not due until 4096, however many are dead.
        timers.compact_if_due(|_, _| false);
        assert_eq!(timers.len(), 3 * MIN_TIMERS_COMPACT);
        assert_eq!(timers.compact_at, 4 * MIN_TIMERS_COMPACT);
    }
}
