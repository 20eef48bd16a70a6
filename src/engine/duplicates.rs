//! [`Duplicates`]: which mailboxes are being probed now, and what the last few thousand came
//! to — so that a mailbox submitted twice is probed once.
//!
//! Real lists repeat addresses, and an API front end gets the same address from many callers.
//! A second submission of a mailbox that is still in flight joins the first one's job: one
//! probe, and every submission gets the result under its own tag and text. A submission of a
//! mailbox finished lately is answered from memory when the configuration keeps results
//! ([`remember_results`](crate::ConfigBuilder::remember_results)): a bounded number of them,
//! the oldest forgotten first, so memory does not grow with the input.
//!
//! Mailboxes are keyed by a 64-bit SipHash of the normalised mailbox under a random key, so the
//! tables hold eight bytes a key, not a copy of the text, and cannot be flooded by crafted
//! addresses. Two mailboxes whose keys collide are told apart by comparing the text; the
//! second then simply goes unshared.

use std::collections::hash_map::{Entry, RandomState};
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

use super::job::JobId;
use super::result::VerifyResult;

/// A mailbox's key in the tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct MailboxKey(u64);

/// The tables. See the module documentation.
#[derive(Debug)]
pub(super) struct Duplicates {
    keys: RandomState,
    in_flight: HashMap<u64, JobId, BuildHasherDefault<KeyHasher>>,
    recent: HashMap<u64, VerifyResult, BuildHasherDefault<KeyHasher>>,
    /// The keys of `recent`, oldest first.
    order: VecDeque<u64>,
    capacity: usize,
}

impl Duplicates {
    /// Tables that remember up to `capacity` finished results (none with 0).
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            keys: RandomState::new(),
            in_flight: HashMap::default(),
            recent: HashMap::default(),
            order: VecDeque::new(),
            capacity,
        }
    }

    /// The key of a normalised mailbox.
    #[inline]
    pub(super) fn key(&self, mailbox: &str) -> MailboxKey {
        MailboxKey(self.keys.hash_one(mailbox))
    }

    /// The job probing the mailbox with this key, if one is (the caller compares mailboxes).
    #[inline]
    pub(super) fn in_flight(&self, key: MailboxKey) -> Option<JobId> {
        self.in_flight.get(&key.0).copied()
    }

    /// `job` probes the mailbox with this key. A key already taken (by a colliding mailbox)
    /// stays with its job.
    #[inline]
    pub(super) fn started(&mut self, key: MailboxKey, job: JobId) {
        self.in_flight.entry(key.0).or_insert(job);
    }

    /// `job` has its result, to be remembered for later submissions when results are kept.
    /// `result` is what a later submission needs (its own tag and text are set then).
    pub(super) fn finished(
        &mut self,
        key: MailboxKey,
        job: JobId,
        result: impl FnOnce() -> VerifyResult,
    ) {
        if let Entry::Occupied(entry) = self.in_flight.entry(key.0)
            && *entry.get() == job
        {
            entry.remove();
        } else {
            // Not the key's job (a colliding mailbox): not shared, not remembered.
            return;
        }
        if self.capacity == 0 {
            return;
        }
        if self.recent.insert(key.0, result()).is_none() {
            self.order.push_back(key.0);
            if self.order.len() > self.capacity
                && let Some(oldest) = self.order.pop_front()
            {
                self.recent.remove(&oldest);
            }
        }
    }

    /// The remembered result of `mailbox`, if any.
    #[inline]
    pub(super) fn recall(&self, key: MailboxKey, mailbox: &str) -> Option<&VerifyResult> {
        self.recent
            .get(&key.0)
            .filter(|result| result.mailbox.as_deref() == Some(mailbox))
    }

    /// Results remembered now.
    pub(super) fn remembered(&self) -> usize {
        self.recent.len()
    }
}

/// A `Hasher` for keys that are already SipHash outputs: it passes them through.
#[derive(Debug, Default)]
pub(super) struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used; anything else is folded in, never dropped.
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, key: u64) {
        self.0 = key;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::slab::Slab;
    use crate::verdict::Reason;

    fn result(mailbox: &str) -> VerifyResult {
        VerifyResult {
            tag: 0,
            address: String::new(),
            mailbox: Some(mailbox.into()),
            domain: None,
            reason: Reason::Accepted,
            detail: None,
            mx: None,
            ip: None,
            smtp: None,
            catch_all: None,
            flags: crate::address::Flags::default(),
            suggestion: None,
            attempts: 1,
            elapsed: std::time::Duration::ZERO,
            transcript: None,
        }
    }

    #[test]
    fn a_mailbox_in_flight_is_found_until_it_finishes() {
        let mut slab = Slab::default();
        let (first, second) = (slab.insert(()), slab.insert(()));
        let mut tables = Duplicates::new(0);
        let key = tables.key("a@x.test");
        assert_eq!(tables.key("a@x.test"), key);
        assert_ne!(tables.key("b@x.test"), key);
        assert_eq!(tables.in_flight(key), None);
        tables.started(key, first);
        tables.started(key, second);
        assert_eq!(
            tables.in_flight(key),
            Some(first),
            "the key stays with its job"
        );
        tables.finished(key, second, || unreachable!("not the key's job"));
        assert_eq!(tables.in_flight(key), Some(first));
        tables.finished(key, first, || result("a@x.test"));
        assert_eq!(tables.in_flight(key), None);
        assert_eq!(
            tables.recall(key, "a@x.test"),
            None,
            "nothing kept with capacity 0"
        );
    }

    #[test]
    fn results_are_remembered_up_to_the_capacity_oldest_forgotten_first() {
        let mut slab = Slab::default();
        let mut tables = Duplicates::new(2);
        for mailbox in ["a@x.test", "b@x.test", "c@x.test"] {
            let job = slab.insert(());
            let key = tables.key(mailbox);
            tables.started(key, job);
            tables.finished(key, job, || result(mailbox));
        }
        assert_eq!(tables.remembered(), 2);
        assert!(tables.recall(tables.key("a@x.test"), "a@x.test").is_none());
        for mailbox in ["b@x.test", "c@x.test"] {
            let found = tables.recall(tables.key(mailbox), mailbox);
            assert_eq!(found.and_then(|r| r.mailbox.as_deref()), Some(mailbox));
        }
        // A colliding key never answers for another mailbox.
        let key = tables.key("b@x.test");
        assert!(tables.recall(key, "other@x.test").is_none());
    }
}
