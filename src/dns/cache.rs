//! What DNS said, kept for as long as it may be believed, so that a hundred thousand addresses
//! at one domain cost one MX lookup.
//!
//! - Positive answers live for their TTL, capped at [`CachePolicy::max_ttl`].
//! - Negative answers (NXDOMAIN, NODATA) live for the SOA-derived TTL of RFC 2308 §5, capped at
//!   [`CachePolicy::max_negative_ttl`]; one without an SOA is not kept.
//! - Failures (SERVFAIL, REFUSED, timeouts) live for [`CachePolicy::failure_ttl`], briefly, as
//!   RFC 2308 §7.1 allows ("in no case ... more than 5 minutes"): a broken domain with ten
//!   thousand addresses must not cost ten thousand timeouts, and a flapping server must not
//!   be believed dead for long.
//!
//! The cache holds at most [`CachePolicy::max_entries`]. When full, the entry that expires
//! soonest makes room: it is the one worth least. Time is an argument; nothing here reads the
//! clock.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::lookup::Outcome;
use super::message::Question;

/// How long each kind of answer is kept, and how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachePolicy {
    /// Most entries held. Default 65,536 (a few MiB).
    pub max_entries: usize,
    /// Longest a positive answer is kept, whatever its TTL. Default one day.
    pub max_ttl: Duration,
    /// Longest a negative answer is kept. Default one hour.
    pub max_negative_ttl: Duration,
    /// How long a failure is kept. Default 30 s.
    pub failure_ttl: Duration,
}

impl Default for CachePolicy {
    fn default() -> Self {
        Self {
            max_entries: 65_536,
            max_ttl: Duration::from_secs(86_400),
            max_negative_ttl: Duration::from_secs(3_600),
            failure_ttl: Duration::from_secs(30),
        }
    }
}

#[derive(Debug)]
struct Entry {
    expires: Instant,
    /// Tie-breaker in the expiry order, unique per insertion.
    seq: u64,
    outcome: Arc<Outcome>,
}

/// The cache of lookup outcomes, keyed by question.
#[derive(Debug)]
pub struct Cache {
    policy: CachePolicy,
    entries: HashMap<Question, Entry>,
    by_expiry: BTreeMap<(Instant, u64), Question>,
    next_seq: u64,
}

impl Cache {
    /// An empty cache.
    #[must_use]
    pub fn new(policy: CachePolicy) -> Self {
        Self {
            policy,
            entries: HashMap::new(),
            by_expiry: BTreeMap::new(),
            next_seq: 0,
        }
    }

    /// The outcome for `question` and the seconds it has left, if one is held and has not
    /// expired at `now`.
    pub fn get(&mut self, question: &Question, now: Instant) -> Option<(Arc<Outcome>, u32)> {
        let entry = self.entries.get(question)?;
        if entry.expires > now {
            let left = u32::try_from((entry.expires - now).as_secs()).unwrap_or(u32::MAX);
            return Some((Arc::clone(&entry.outcome), left));
        }
        let key = (entry.expires, entry.seq);
        self.entries.remove(question);
        self.by_expiry.remove(&key);
        None
    }

    /// Keeps `outcome` for as long as `ttl` (seconds, from DNS; `None` for a negative answer
    /// without SOA) and the policy allow. Returns the shared outcome either way.
    pub fn insert(
        &mut self,
        question: Question,
        outcome: Outcome,
        ttl: Option<u32>,
        now: Instant,
    ) -> Arc<Outcome> {
        let outcome = Arc::new(outcome);
        let Some(lifetime) = self.lifetime(&outcome, ttl) else {
            return outcome;
        };
        if lifetime.is_zero() || self.policy.max_entries == 0 {
            return outcome;
        }
        if let Some(old) = self.entries.remove(&question) {
            self.by_expiry.remove(&(old.expires, old.seq));
        }
        while self.entries.len() >= self.policy.max_entries {
            let Some((_, soonest)) = self.by_expiry.pop_first() else {
                break;
            };
            self.entries.remove(&soonest);
        }
        let expires = now + lifetime;
        let seq = self.next_seq;
        self.next_seq += 1;
        self.by_expiry.insert((expires, seq), question.clone());
        self.entries.insert(
            question,
            Entry {
                expires,
                seq,
                outcome: Arc::clone(&outcome),
            },
        );
        outcome
    }

    /// How many entries are held (expired ones included until they are looked at or evicted).
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if nothing is held.
    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn lifetime(&self, outcome: &Outcome, ttl: Option<u32>) -> Option<Duration> {
        let secs = |ttl: u32| Duration::from_secs(u64::from(ttl));
        match outcome {
            Outcome::Records(_) => ttl.map(|t| secs(t).min(self.policy.max_ttl)),
            Outcome::NoData | Outcome::NxDomain => {
                ttl.map(|t| secs(t).min(self.policy.max_negative_ttl))
            }
            Outcome::Failed(_) => Some(self.policy.failure_ttl),
        }
    }
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "a test needs an origin for its hand-moved clock"
)]
mod tests {
    use hickory_proto::rr::{Name, RecordType};

    use super::*;
    use crate::dns::lookup::{LookupFailure, RecordSet};

    fn q(name: &str) -> Question {
        Question::new(&Name::from_ascii(name).expect("name"), RecordType::MX)
    }

    fn records() -> Outcome {
        Outcome::Records(RecordSet::default())
    }

    #[test]
    fn entries_live_for_their_ttl() {
        let now = Instant::now();
        let mut cache = Cache::new(CachePolicy::default());
        cache.insert(q("a.example."), records(), Some(60), now);
        assert!(
            cache
                .get(&q("A.EXAMPLE."), now + Duration::from_secs(59))
                .is_some()
        );
        assert!(
            cache
                .get(&q("a.example."), now + Duration::from_secs(60))
                .is_none()
        );
        assert!(
            cache.is_empty(),
            "an expired entry is dropped when looked at"
        );
    }

    #[test]
    fn ttls_are_capped_by_kind() {
        let now = Instant::now();
        let policy = CachePolicy {
            max_ttl: Duration::from_secs(100),
            max_negative_ttl: Duration::from_secs(10),
            failure_ttl: Duration::from_secs(3),
            ..CachePolicy::default()
        };
        let mut cache = Cache::new(policy);
        cache.insert(q("pos.example."), records(), Some(u32::MAX), now);
        cache.insert(q("neg.example."), Outcome::NxDomain, Some(u32::MAX), now);
        cache.insert(
            q("fail.example."),
            Outcome::Failed(LookupFailure::Timeout),
            None,
            now,
        );
        cache.insert(q("nosoa.example."), Outcome::NoData, None, now);
        cache.insert(q("zero.example."), records(), Some(0), now);
        let at = |s| now + Duration::from_secs(s);
        assert!(cache.get(&q("pos.example."), at(99)).is_some());
        assert!(cache.get(&q("pos.example."), at(100)).is_none());
        assert!(cache.get(&q("neg.example."), at(9)).is_some());
        assert!(cache.get(&q("neg.example."), at(10)).is_none());
        assert!(cache.get(&q("fail.example."), at(2)).is_some());
        assert!(cache.get(&q("fail.example."), at(3)).is_none());
        assert!(
            cache.get(&q("nosoa.example."), now).is_none(),
            "RFC 2308: no SOA, no caching"
        );
        assert!(cache.get(&q("zero.example."), now).is_none());
    }

    #[test]
    fn when_full_the_soonest_to_expire_makes_room() {
        let now = Instant::now();
        let mut cache = Cache::new(CachePolicy {
            max_entries: 2,
            ..CachePolicy::default()
        });
        cache.insert(q("long.example."), records(), Some(1000), now);
        cache.insert(q("short.example."), records(), Some(10), now);
        cache.insert(q("new.example."), records(), Some(500), now);
        assert_eq!(cache.len(), 2);
        assert!(cache.get(&q("short.example."), now).is_none());
        assert!(cache.get(&q("long.example."), now).is_some());
        assert!(cache.get(&q("new.example."), now).is_some());
        // Replacing an entry does not evict another.
        cache.insert(q("new.example."), records(), Some(700), now);
        assert_eq!(cache.len(), 2);
        assert!(cache.get(&q("long.example."), now).is_some());
    }
}
