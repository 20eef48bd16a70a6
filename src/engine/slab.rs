//! [`Slab`]: the scheduler's table of addresses in flight — the `slab` crate (the driver's
//! socket tables use it too) with a stamp on every entry, so that a stale key (a retry timer
//! for an address long finished) does not find the address that took its slot (the stamps of
//! one slot would have to come round 2³² inserts later while the stale key waits).
//!
//! Why not a hash map: the table holds up to `concurrency × rcpts_per_session + lookahead`
//! addresses (about 100,000 at 10,000 sessions), and a hash map spreads them over a table
//! larger than that, touching every page of it, and grows it again when removals leave
//! tombstones behind. A slab touches only as many slots as were ever live at once, keeps them
//! dense (the last freed is the first reused), and needs no hashing: a key is an index.

/// A slot's address in a [`Slab`]: its index, and which occupant of that slot it means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    index: u32,
    stamp: u32,
}

impl Key {
    /// The slot's index, without the stamp ([`Slab::key_at`] finds the key again).
    #[must_use]
    pub fn index(self) -> u32 {
        self.index
    }
}

/// Values under stamped keys. See the module documentation.
#[derive(Debug)]
pub struct Slab<T> {
    entries: slab::Slab<(u32, T)>,
    /// The stamp of the next insert.
    next_stamp: u32,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Self {
            entries: slab::Slab::new(),
            next_stamp: 0,
        }
    }
}

impl<T> Slab<T> {
    /// Stores `value` and returns its key.
    ///
    /// # Panics
    ///
    /// If more than 2³² values are live at once.
    pub fn insert(&mut self, value: T) -> Key {
        let stamp = self.next_stamp;
        self.next_stamp = self.next_stamp.wrapping_add(1);
        let index = self.entries.insert((stamp, value));
        Key {
            index: u32::try_from(index).expect("fewer than 2^32 addresses held"),
            stamp,
        }
    }

    /// The value under `key`, if it is still there.
    #[must_use]
    pub fn get(&self, key: Key) -> Option<&T> {
        self.entries
            .get(key.index as usize)
            .filter(|(stamp, _)| *stamp == key.stamp)
            .map(|(_, value)| value)
    }

    /// The value under `key`, if it is still there.
    pub fn get_mut(&mut self, key: Key) -> Option<&mut T> {
        self.entries
            .get_mut(key.index as usize)
            .filter(|(stamp, _)| *stamp == key.stamp)
            .map(|(_, value)| value)
    }

    /// The key of the value in slot `index`, if one is there: for tables that keep a slot's
    /// index alone and check the value they find.
    #[must_use]
    pub fn key_at(&self, index: u32) -> Option<Key> {
        self.entries.get(index as usize).map(|(stamp, _)| Key {
            index,
            stamp: *stamp,
        })
    }

    /// True if `key` still names a value.
    #[must_use]
    pub fn contains(&self, key: Key) -> bool {
        self.get(key).is_some()
    }

    /// Takes the value under `key` out; its key, and every copy of it, then name nothing.
    pub fn remove(&mut self, key: Key) -> Option<T> {
        self.contains(key)
            .then(|| self.entries.remove(key.index as usize).1)
    }

    /// Every value, in no particular order.
    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.entries.iter().map(|(_, (_, value))| value)
    }

    /// Keeps the values for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(Key, &T) -> bool) {
        self.entries.retain(|index, (stamp, value)| {
            let key = Key {
                index: u32::try_from(index).expect("an index handed out by insert"),
                stamp: *stamp,
            };
            keep(key, value)
        });
    }

    /// Values held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<T> std::ops::Index<Key> for Slab<T> {
    type Output = T;

    fn index(&self, key: Key) -> &T {
        self.get(key).expect("a live key")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stale_key_never_finds_the_next_occupant() {
        let mut slab = Slab::default();
        let first = slab.insert("first");
        assert_eq!(slab.remove(first), Some("first"));
        let second = slab.insert("second");
        assert_eq!(second.index, first.index, "the slot is reused");
        assert_eq!(slab.get(first), None);
        assert!(!slab.contains(first));
        assert_eq!(slab.remove(first), None);
        assert_eq!(slab[second], "second");
        assert_eq!(slab.len(), 1);
    }

    #[test]
    fn slots_stay_dense_under_churn() {
        let mut slab = Slab::default();
        let mut live: Vec<Key> = (0..100).map(|i| slab.insert(i)).collect();
        for round in 0..1_000 {
            let key = live.remove(round % live.len());
            assert!(slab.remove(key).is_some());
            live.push(slab.insert(round));
        }
        assert_eq!(slab.len(), 100);
        assert!(
            live.iter().all(|key| key.index < 100),
            "never more slots than were live at once"
        );
        for key in &live {
            assert!(slab.contains(*key));
        }
    }

    #[test]
    fn retain_keeps_what_it_is_told_and_keys_stay_valid() {
        let mut slab = Slab::default();
        let keys: Vec<Key> = (0..10).map(|i| slab.insert(i)).collect();
        slab.remove(keys[3]);
        slab.retain(|_, value| value % 2 == 0);
        assert_eq!(slab.len(), 5);
        assert!(!slab.is_empty());
        assert!(slab.get(keys[1]).is_none());
        assert_eq!(slab.get(keys[2]), Some(&2));
        assert_eq!(slab.get(keys[8]), Some(&8));
    }
}
