//! Per-owner limits: requests per second, addresses per day, jobs at once. What is over a limit
//! is answered `429` with the seconds to wait.
//!
//! The request rate is a GCRA token bucket per owner (`governor`). The daily address count
//! resets at midnight UTC and lives in memory: a restart forgives the day so far, which the
//! operator who restarts can live with. Jobs at once are counted from the store.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::auth::Owner;

const DAY: u64 = 24 * 60 * 60;

/// The limits, and what each owner has used.
#[derive(Debug)]
pub struct Limits {
    requests: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
    daily_addresses: u64,
    /// Owner → (day number since the epoch, addresses taken that day).
    used: Mutex<HashMap<String, (u64, u64)>>,
    /// Jobs running at once per owner.
    pub max_jobs: usize,
}

/// Over a limit: try again after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverLimit {
    /// Which limit.
    pub what: &'static str,
    /// Seconds until it would pass, at least 1.
    pub retry_after: u64,
}

impl Limits {
    /// `rate` requests a second (bursts of as many), `daily_addresses` a day, `max_jobs` at once.
    pub fn new(rate: NonZeroU32, daily_addresses: u64, max_jobs: usize) -> Self {
        Self {
            requests: RateLimiter::keyed(Quota::per_second(rate)),
            clock: DefaultClock::default(),
            daily_addresses,
            used: Mutex::new(HashMap::new()),
            max_jobs,
        }
    }

    /// Counts one request of `owner`.
    pub fn request(&self, owner: &Owner) -> Result<(), OverLimit> {
        self.requests.check_key(&owner.0).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            OverLimit {
                what: "requests per second",
                retry_after: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
            }
            .at_least_one()
        })?;
        // The keyed limiter keeps a state per owner; owners are the tokens, a handful.
        Ok(())
    }

    /// Takes `count` addresses from `owner`'s day at `now`, or none if they do not fit.
    pub fn addresses(&self, owner: &Owner, count: u64, now: SystemTime) -> Result<(), OverLimit> {
        let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        let today = since_epoch.as_secs() / DAY;
        let mut used = self
            .used
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = used.entry(owner.0.clone()).or_insert((today, 0));
        if entry.0 != today {
            *entry = (today, 0);
        }
        if entry.1.saturating_add(count) > self.daily_addresses {
            return Err(OverLimit {
                what: "addresses per day",
                retry_after: (today + 1) * DAY - since_epoch.as_secs(),
            }
            .at_least_one());
        }
        entry.1 += count;
        Ok(())
    }

    /// Whether `count` more addresses of `owner` would fit in its day at `now`, taking none.
    pub fn check_addresses(
        &self,
        owner: &Owner,
        count: u64,
        now: SystemTime,
    ) -> Result<(), OverLimit> {
        let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        let today = since_epoch.as_secs() / DAY;
        let used = self
            .used
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let taken = used
            .get(&owner.0)
            .filter(|(day, _)| *day == today)
            .map_or(0, |(_, n)| *n);
        if taken.saturating_add(count) > self.daily_addresses {
            return Err(OverLimit {
                what: "addresses per day",
                retry_after: (today + 1) * DAY - since_epoch.as_secs(),
            }
            .at_least_one());
        }
        Ok(())
    }
}

impl OverLimit {
    fn at_least_one(mut self) -> Self {
        self.retry_after = self.retry_after.max(1);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(name: &str) -> Owner {
        Owner(name.into())
    }

    #[test]
    fn requests_over_the_rate_wait_and_owners_do_not_share_a_bucket() {
        let limits = Limits::new(NonZeroU32::new(3).unwrap(), 10, 1);
        for _ in 0..3 {
            limits.request(&owner("a")).unwrap();
        }
        let over = limits.request(&owner("a")).unwrap_err();
        assert_eq!(over.what, "requests per second");
        assert_eq!(over.retry_after, 1);
        limits.request(&owner("b")).unwrap();
    }

    #[test]
    fn addresses_per_day_reset_at_midnight_utc() {
        let limits = Limits::new(NonZeroU32::new(1).unwrap(), 10, 1);
        let morning = UNIX_EPOCH + Duration::from_secs(20_000 * DAY + 3600);
        limits.addresses(&owner("a"), 7, morning).unwrap();
        limits.check_addresses(&owner("a"), 3, morning).unwrap();
        let over = limits.addresses(&owner("a"), 4, morning).unwrap_err();
        assert_eq!(over.retry_after, DAY - 3600);
        assert_eq!(limits.check_addresses(&owner("a"), 4, morning), Err(over));
        limits.check_addresses(&owner("a"), 3, morning).unwrap();
        limits.addresses(&owner("b"), 10, morning).unwrap();
        let tomorrow = morning + Duration::from_secs(DAY);
        limits.addresses(&owner("a"), 10, tomorrow).unwrap();
    }
}
