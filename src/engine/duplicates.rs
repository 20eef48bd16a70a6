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
//! Mailboxes are keyed by 32 bits of a SipHash of the normalised mailbox under a random key, and
//! a job by its slot in the jobs table: eight bytes an entry, not a copy of the text, in tables
//! crafted addresses cannot flood. The caller compares the mailbox of the job (or result) found
//! with its own, so two mailboxes whose keys collide (about one pair in four billion) are told
//! apart; the second then simply goes unshared. The in-flight table is touched twice per
//! address, so its size is its cost: at 24,000 addresses in flight it is a quarter of a
//! megabyte.
//!
//! A remembered result keeps what a later submission needs and no more: its fixed parts in a
//! queue, its text and reply bytes in one ring of bytes ([`Memory`]), so that keeping one
//! allocates nothing. Whole results in a hash map cost several times the memory once the
//! allocator's fragmentation is counted, and their allocations were a tenth of `mxprobe
//! verify`'s CPU (`docs/benchmarks.md`, the verify path).

use std::collections::hash_map::{Entry, RandomState};
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::net::IpAddr;
use std::time::Duration;

use super::job::JobId;
use super::result::VerifyResult;
use crate::address::Flags;
use crate::smtp::reply::{OwnedReply, ReplyMeta};
use crate::tls::TlsVersion;
use crate::verdict::Reason;

/// A mailbox's key in the tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct MailboxKey(u32);

/// The tables. See the module documentation.
#[derive(Debug)]
pub(super) struct Duplicates {
    keys: RandomState,
    /// Key → the slot of its job in the jobs table.
    in_flight: HashMap<u32, u32, BuildHasherDefault<KeyHasher>>,
    memory: Memory,
}

impl Duplicates {
    /// Tables that remember up to `capacity` finished results (none with 0).
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            keys: RandomState::new(),
            in_flight: HashMap::default(),
            memory: Memory::new(capacity),
        }
    }

    /// Makes room in the in-flight table for `addresses` at once (the engine's intake), so
    /// that it never grows in a run: a table that doubles holds its old and new halves at
    /// once, and half again of its memory at the peak.
    pub(super) fn reserve_in_flight(&mut self, addresses: usize) {
        self.in_flight.reserve(addresses);
    }

    /// The key of a normalised mailbox.
    #[inline]
    pub(super) fn key(&self, mailbox: &str) -> MailboxKey {
        // The low half of SipHash's output: every bit of it depends on every key bit.
        MailboxKey(self.keys.hash_one(mailbox) as u32)
    }

    /// The slot of the job probing the mailbox with this key, if one is: the caller finds its
    /// key ([`Slab::key_at`](super::slab::Slab::key_at)) and compares mailboxes.
    #[inline]
    pub(super) fn in_flight(&self, key: MailboxKey) -> Option<u32> {
        self.in_flight.get(&key.0).copied()
    }

    /// `job` probes the mailbox with this key. A key already taken (by a colliding mailbox)
    /// stays with its job.
    #[inline]
    pub(super) fn started(&mut self, key: MailboxKey, job: JobId) {
        self.in_flight.entry(key.0).or_insert(job.index());
    }

    /// `job` has its `result`, remembered for later submissions when results are kept.
    pub(super) fn finished(&mut self, key: MailboxKey, job: JobId, result: &VerifyResult) {
        if let Entry::Occupied(entry) = self.in_flight.entry(key.0)
            && *entry.get() == job.index()
        {
            entry.remove();
        } else {
            // Not the key's job (a colliding mailbox): not shared, not remembered.
            return;
        }
        self.memory.keep(key.0, result);
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
        self.memory.recall(key.0, mailbox, tag, address)
    }

    /// Results remembered now.
    pub(super) fn remembered(&self) -> usize {
        self.memory.entries.len()
    }
}

/// Bytes of text (mailbox, domain, MX host, detail, reply) set aside per result remembered: a
/// typical result needs half of it, and a ring of bytes sized so holds `capacity` of them.
const BYTES_PER_RESULT: usize = 192;

/// The results remembered: what each needs besides text in a queue, oldest first, and the
/// text of all of them in one ring of bytes, so that keeping a result allocates nothing. A
/// new result's text goes after the last one's, or at the ring's start when it does not fit
/// before the end; the oldest results whose text it overwrites are forgotten, and so is the
/// oldest when `capacity` are kept.
#[derive(Debug)]
struct Memory {
    capacity: usize,
    /// Allocated on first use, `capacity × BYTES_PER_RESULT` long; its pages are touched as
    /// text reaches them.
    ring: Vec<u8>,
    /// Where the next result's text goes.
    head: usize,
    entries: VecDeque<Remembered>,
    /// The sequence number of `entries[0]`; each result kept takes the next.
    first: u64,
    /// Key → the sequence number of its result.
    index: HashMap<u32, u64, BuildHasherDefault<KeyHasher>>,
}

/// A result without its text: where its text is in the ring, and the rest.
#[derive(Debug)]
struct Remembered {
    key: u32,
    /// Where its text starts in the ring: mailbox, domain, MX host, detail and the reply's
    /// bytes, one after the other.
    start: u32,
    /// Their lengths, `None` for a part the result did not have.
    lens: [Option<u16>; 5],
    reason: Reason,
    catch_all: Option<bool>,
    flags: Flags,
    attempts: u32,
    elapsed: Duration,
    ip: Option<IpAddr>,
    suggestion: Option<&'static str>,
    reply: Option<ReplyMeta>,
    tls: Option<TlsVersion>,
}

impl Remembered {
    fn len(&self) -> usize {
        self.lens
            .iter()
            .flatten()
            .map(|len| usize::from(*len))
            .sum()
    }
}

impl Memory {
    fn new(capacity: usize) -> Self {
        Self {
            capacity,
            ring: Vec::new(),
            head: 0,
            entries: VecDeque::new(),
            first: 0,
            index: HashMap::default(),
        }
    }

    /// Keeps `result` under `key`, forgetting what it must to make room.
    fn keep(&mut self, key: u32, result: &VerifyResult) {
        if self.capacity == 0 {
            return;
        }
        let wire = result.smtp.as_ref().map(|reply| reply.as_reply().wire());
        let parts = [
            result.mailbox.as_deref().map(str::as_bytes),
            result.domain.as_deref().map(str::as_bytes),
            result.mx.as_deref().map(str::as_bytes),
            result.detail.as_deref().map(str::as_bytes),
            wire,
        ];
        let mut lens = [None; 5];
        for (len, part) in lens.iter_mut().zip(parts) {
            match part.map(|part| u16::try_from(part.len())) {
                Some(Ok(n)) => *len = Some(n),
                // A part past 64 KiB: not worth remembering.
                Some(Err(_)) => return,
                None => {}
            }
        }
        let total: usize = lens.iter().flatten().map(|len| usize::from(*len)).sum();
        if self.ring.is_empty() {
            self.ring = vec![0; self.capacity.saturating_mul(BYTES_PER_RESULT)];
        }
        if total > self.ring.len() / 8 {
            return;
        }
        // Where the text goes; the rest of the ring past `head` is skipped if it does not fit.
        let skipped = if self.head + total > self.ring.len() {
            let skipped = self.head..self.ring.len();
            self.head = 0;
            skipped
        } else {
            0..0
        };
        let written = self.head..self.head + total;
        while let Some(oldest) = self.entries.front() {
            let start = oldest.start as usize;
            let end = start + oldest.len();
            let overwritten = start < written.end && written.start < end;
            let in_skipped = skipped.contains(&start);
            if !(overwritten || in_skipped || self.entries.len() >= self.capacity) {
                break;
            }
            if self.index.get(&oldest.key) == Some(&self.first) {
                self.index.remove(&oldest.key);
            }
            self.entries.pop_front();
            self.first += 1;
        }
        let mut at = self.head;
        for part in parts.into_iter().flatten() {
            self.ring[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        }
        self.entries.push_back(Remembered {
            key,
            start: u32::try_from(self.head).expect("the ring is under 4 GiB"),
            lens,
            reason: result.reason,
            catch_all: result.catch_all,
            flags: result.flags,
            attempts: result.attempts,
            elapsed: result.elapsed,
            ip: result.ip,
            suggestion: result.suggestion,
            reply: result.smtp.as_ref().map(OwnedReply::meta),
            tls: result.tls,
        });
        self.head = at;
        let sequence = self.first + self.entries.len() as u64 - 1;
        self.index.insert(key, sequence);
    }

    /// The result remembered for `mailbox` (under `key`), as submission `tag` of `address`
    /// gets it.
    fn recall(&self, key: u32, mailbox: &str, tag: u64, address: &str) -> Option<VerifyResult> {
        let sequence = *self.index.get(&key)?;
        let entry = self
            .entries
            .get(usize::try_from(sequence.checked_sub(self.first)?).ok()?)?;
        let mut parts = [None; 5];
        let mut at = entry.start as usize;
        for (part, len) in parts.iter_mut().zip(entry.lens) {
            if let Some(len) = len {
                let len = usize::from(len);
                *part = Some(&self.ring[at..at + len]);
                at += len;
            }
        }
        let text =
            |n: usize| parts[n].map(|bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned());
        if parts[0] != Some(mailbox.as_bytes()) {
            return None;
        }
        Some(VerifyResult {
            tag,
            address: address.to_owned(),
            mailbox: text(0),
            domain: text(1),
            reason: entry.reason,
            detail: text(3),
            mx: text(2),
            ip: entry.ip,
            smtp: entry
                .reply
                .zip(parts[4])
                .map(|(meta, wire)| OwnedReply::from_meta(meta, wire)),
            catch_all: entry.catch_all,
            flags: entry.flags,
            suggestion: entry.suggestion,
            attempts: entry.attempts,
            elapsed: entry.elapsed,
            transcript: None,
            tls: entry.tls,
            greylist_wait: None,
        })
    }
}

/// A `Hasher` for keys that are already SipHash outputs: it spreads their 32 bits over the 64
/// the table uses (its bucket from the low bits, its tag from the top seven) with one
/// multiplication.
#[derive(Debug, Default)]
pub(super) struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u32` is used; anything else is folded in, never dropped.
        for &byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(byte)).wrapping_mul(SPREAD);
        }
    }

    fn write_u32(&mut self, key: u32) {
        self.0 = u64::from(key).wrapping_mul(SPREAD);
    }
}

/// 2⁶⁴ divided by the golden ratio, made odd: multiplying by it moves every input bit into the
/// high bits (Knuth's multiplicative hashing).
const SPREAD: u64 = 0x9e37_79b9_7f4a_7c15;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::slab::Slab;
    use crate::smtp::reply::{Limits, Status, parse_reply};

    fn result(mailbox: &str) -> VerifyResult {
        let parsed = crate::address::Address::parse(mailbox).ok();
        VerifyResult {
            attempts: 1,
            ..VerifyResult::decided(0, "", parsed.as_ref(), Reason::Accepted, None)
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
            Some(first.index()),
            "the key stays with its job"
        );
        tables.finished(key, second, &result("a@x.test"));
        assert_eq!(tables.in_flight(key), Some(first.index()));
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
        assert_eq!(tables.in_flight(key), Some(first.index()));
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
            tls: Some(crate::tls::TlsVersion::Tls13),
            greylist_wait: None,
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
        assert_eq!(tables.memory.entries.len(), 3, "no more than the capacity");
        for (i, name) in names.iter().enumerate() {
            let found = tables.recall(tables.key(name), name, 0, name).is_some();
            assert_eq!(found, i >= 7, "{name}");
        }
    }

    /// Results of every size, kept in a small ring that wraps many times: whatever is
    /// recalled is exactly what was kept, the newest is always there, and no more than the
    /// capacity is held.
    #[test]
    fn the_ring_of_text_wraps_and_never_mixes_results() {
        let mut slab = Slab::default();
        let mut tables = Duplicates::new(10);
        let mut kept: Vec<(String, VerifyResult)> = Vec::new();
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |bound: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % bound
        };
        for n in 0..2_000 {
            let mailbox = format!("user{n}@d{}.test", next(7));
            let detail_len = next(150) as usize; // within an eighth of the ring: always kept
            let full = VerifyResult {
                mx: (next(2) == 0).then(|| format!("mx{}.example", next(100))),
                detail: (detail_len > 0).then(|| "x".repeat(detail_len)),
                domain: Some(mailbox.split('@').nth(1).unwrap().to_owned()),
                attempts: next(5) as u32,
                ..result(&mailbox)
            };
            let job = slab.insert(());
            let key = tables.key(&mailbox);
            tables.started(key, job);
            tables.finished(key, job, &full);
            let newest = tables
                .recall(key, &mailbox, 1, "a")
                .expect("the newest is kept");
            assert_eq!(newest.detail, full.detail);
            assert!(tables.remembered() <= 10);
            kept.push((mailbox, full));
            for (mailbox, full) in kept.iter().rev().take(40) {
                if let Some(found) = tables.recall(tables.key(mailbox), mailbox, 1, "a") {
                    let expected = VerifyResult {
                        tag: 1,
                        address: "a".into(),
                        ..full.clone()
                    };
                    assert_eq!(found, expected, "{mailbox}");
                }
            }
        }
    }
}
