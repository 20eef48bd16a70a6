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
//!
//! A remembered result keeps what a later submission needs and no more ([`Remembered`]: its
//! strings in one allocation, the reply in another), in a ring of slots allocated as it fills.
//! Whole results in a hash map cost several times as much once the allocator's fragmentation
//! is counted (`docs/benchmarks.md`, the verify path).

use std::collections::HashMap;
use std::collections::hash_map::{Entry, RandomState};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::net::IpAddr;
use std::time::Duration;

use super::job::JobId;
use super::result::VerifyResult;
use crate::address::Flags;
use crate::smtp::reply::OwnedReply;
use crate::verdict::Reason;

/// A mailbox's key in the tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct MailboxKey(u64);

/// The tables. See the module documentation.
#[derive(Debug)]
pub(super) struct Duplicates {
    keys: RandomState,
    in_flight: HashMap<u64, JobId, BuildHasherDefault<KeyHasher>>,
    /// Key → its slot in `ring`.
    recent: HashMap<u64, u32, BuildHasherDefault<KeyHasher>>,
    /// The results remembered; once full, the next one takes the oldest's slot.
    ring: Vec<Remembered>,
    /// The slot the next result takes once the ring is full.
    next: usize,
    capacity: usize,
}

impl Duplicates {
    /// Tables that remember up to `capacity` finished results (none with 0).
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            keys: RandomState::new(),
            in_flight: HashMap::default(),
            recent: HashMap::default(),
            ring: Vec::new(),
            next: 0,
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

    /// `job` has its `result`, remembered for later submissions when results are kept.
    pub(super) fn finished(&mut self, key: MailboxKey, job: JobId, result: &VerifyResult) {
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
        let entry = Remembered::new(key.0, result);
        if let Some(&slot) = self.recent.get(&key.0) {
            self.ring[slot as usize] = entry;
            return;
        }
        let slot = if self.ring.len() < self.capacity {
            self.ring.push(entry);
            self.ring.len() - 1
        } else {
            let slot = self.next;
            self.next = (self.next + 1) % self.capacity;
            let oldest = std::mem::replace(&mut self.ring[slot], entry);
            self.recent.remove(&oldest.key);
            slot
        };
        let slot = u32::try_from(slot).expect("fewer than 2^32 results remembered");
        self.recent.insert(key.0, slot);
    }

    /// The remembered result of `mailbox`, as submission `tag` of `address` gets it.
    #[inline]
    pub(super) fn recall(
        &self,
        key: MailboxKey,
        mailbox: &str,
        tag: u64,
        address: &str,
    ) -> Option<VerifyResult> {
        let slot = *self.recent.get(&key.0)?;
        let entry = &self.ring[slot as usize];
        (entry.mailbox() == mailbox).then(|| entry.result(tag, address))
    }

    /// Results remembered now.
    pub(super) fn remembered(&self) -> usize {
        self.recent.len()
    }
}

/// What a later submission of a mailbox needs of its result: everything but its own tag, text
/// and transcript. The strings share one allocation.
#[derive(Debug)]
struct Remembered {
    key: u64,
    /// Mailbox, domain, MX host and detail, one after the other; `ends` says where each ends.
    text: Box<str>,
    ends: [u32; 4],
    /// Which of the four a result had (an empty one is not none).
    has: [bool; 4],
    reason: Reason,
    catch_all: Option<bool>,
    flags: Flags,
    attempts: u32,
    elapsed: Duration,
    ip: Option<IpAddr>,
    suggestion: Option<&'static str>,
    smtp: Option<OwnedReply>,
}

impl Remembered {
    fn new(key: u64, result: &VerifyResult) -> Self {
        let parts = [
            result.mailbox.as_deref(),
            result.domain.as_deref(),
            result.mx.as_deref(),
            result.detail.as_deref(),
        ];
        let mut text = String::with_capacity(parts.iter().flatten().map(|p| p.len()).sum());
        let mut ends = [0; 4];
        for (end, part) in ends.iter_mut().zip(parts) {
            text.push_str(part.unwrap_or_default());
            *end = u32::try_from(text.len()).expect("a result's text is under 4 GiB");
        }
        Self {
            key,
            text: text.into_boxed_str(),
            ends,
            has: parts.map(|part| part.is_some()),
            reason: result.reason,
            catch_all: result.catch_all,
            flags: result.flags,
            attempts: result.attempts,
            elapsed: result.elapsed,
            ip: result.ip,
            suggestion: result.suggestion,
            smtp: result.smtp.clone(),
        }
    }

    /// The `n`th string, if the result had it.
    fn part(&self, n: usize) -> Option<&str> {
        let start = if n == 0 { 0 } else { self.ends[n - 1] as usize };
        self.has[n].then(|| &self.text[start..self.ends[n] as usize])
    }

    fn mailbox(&self) -> &str {
        self.part(0).unwrap_or_default()
    }

    fn result(&self, tag: u64, address: &str) -> VerifyResult {
        VerifyResult {
            tag,
            address: address.to_owned(),
            mailbox: self.part(0).map(str::to_owned),
            domain: self.part(1).map(str::to_owned),
            reason: self.reason,
            detail: self.part(3).map(str::to_owned),
            mx: self.part(2).map(str::to_owned),
            ip: self.ip,
            smtp: self.smtp.clone(),
            catch_all: self.catch_all,
            flags: self.flags,
            suggestion: self.suggestion,
            attempts: self.attempts,
            elapsed: self.elapsed,
            transcript: None,
        }
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
    use crate::smtp::reply::{Limits, Status, parse_reply};

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
            flags: Flags::default(),
            suggestion: None,
            attempts: 1,
            elapsed: Duration::ZERO,
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
        tables.finished(key, second, &result("a@x.test"));
        assert_eq!(tables.in_flight(key), Some(first));
        tables.finished(key, first, &result("a@x.test"));
        assert_eq!(tables.in_flight(key), None);
        let recalled = tables.recall(key, "a@x.test", 1, "a@x.test");
        assert_eq!(recalled, None, "nothing kept with capacity 0");
    }

    #[test]
    fn results_are_remembered_up_to_the_capacity_oldest_forgotten_first() {
        let mut slab = Slab::default();
        let mut tables = Duplicates::new(2);
        let mut first = None;
        for mailbox in ["a@x.test", "b@x.test", "c@x.test"] {
            let job = slab.insert(());
            let key = tables.key(mailbox);
            tables.started(key, job);
            tables.finished(key, job, &result(mailbox));
            first.get_or_insert(job);
        }
        assert_eq!(tables.remembered(), 2);
        let recall = |mailbox: &str| tables.recall(tables.key(mailbox), mailbox, 9, "Text");
        assert!(recall("a@x.test").is_none());
        for mailbox in ["b@x.test", "c@x.test"] {
            let found = recall(mailbox).expect("remembered");
            assert_eq!(found.mailbox.as_deref(), Some(mailbox));
            assert_eq!((found.tag, found.address.as_str()), (9, "Text"));
        }
        // A colliding key never answers for another mailbox.
        let key = tables.key("b@x.test");
        assert!(tables.recall(key, "other@x.test", 9, "x").is_none());
    }

    #[test]
    fn a_job_not_the_keys_is_not_remembered() {
        let mut slab = Slab::default();
        let (first, second) = (slab.insert(()), slab.insert(()));
        let mut tables = Duplicates::new(4);
        let key = tables.key("a@x.test");
        tables.started(key, first);
        tables.finished(key, second, &result("a@x.test"));
        assert_eq!(tables.remembered(), 0);
        assert_eq!(tables.in_flight(key), Some(first));
    }

    #[test]
    fn a_remembered_result_is_the_result_but_for_its_tag_text_and_transcript() {
        let mut slab = Slab::default();
        let mut tables = Duplicates::new(4);
        let job = slab.insert(());
        let wire = b"550-5.1.1 no such user\r\n550 5.1.1 try again never\r\n";
        let Ok(Status::Complete(reply)) = parse_reply(wire, &Limits::DEFAULT) else {
            panic!("a reply");
        };
        let full = VerifyResult {
            tag: 3,
            address: "Alice <alice@x.test>".into(),
            mailbox: Some("alice@x.test".into()),
            domain: Some("x.test".into()),
            reason: Reason::MailboxNotFound,
            detail: Some(String::new()),
            mx: Some("mx.x.test".into()),
            ip: Some("192.0.2.1".parse().unwrap()),
            smtp: Some(reply.into_owned()),
            catch_all: Some(false),
            flags: Flags {
                role: false,
                disposable: false,
                free: true,
            },
            suggestion: Some("gmail.com"),
            attempts: 2,
            elapsed: Duration::from_millis(1234),
            transcript: Some("S: 220\r\n".into()),
        };
        let key = tables.key("alice@x.test");
        tables.started(key, job);
        tables.finished(key, job, &full);
        let again = tables
            .recall(key, "alice@x.test", 8, "alice@x.test")
            .expect("remembered");
        let expected = VerifyResult {
            tag: 8,
            address: "alice@x.test".into(),
            transcript: None,
            ..full
        };
        assert_eq!(again, expected);
    }

    #[test]
    fn the_ring_reuses_the_oldest_slot_and_forgets_only_its_key() {
        let mut slab = Slab::default();
        let mut tables = Duplicates::new(3);
        let names: Vec<String> = (0..10).map(|i| format!("u{i}@x.test")).collect();
        for name in &names {
            let job = slab.insert(());
            let key = tables.key(name);
            tables.started(key, job);
            tables.finished(key, job, &result(name));
        }
        assert_eq!(tables.remembered(), 3);
        assert_eq!(tables.ring.len(), 3, "no more slots than the capacity");
        for (i, name) in names.iter().enumerate() {
            let found = tables.recall(tables.key(name), name, 0, name).is_some();
            assert_eq!(found, i >= 7, "{name}");
        }
    }
}
