//! [`Slab`]: the scheduler's table of addresses in flight, a vector of slots reused through a
//! free list, each slot with a generation so that a stale key (a retry timer for an address
//! long finished) does not find the address that took its place (the slot would have to be
//! reused 2³² times while the stale key waits).
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
    generation: u32,
}

#[derive(Debug)]
struct Slot<T> {
    /// Counts the occupants the slot has had; a key names one of them.
    generation: u32,
    value: Option<T>,
}

/// Values under generational keys. See the module documentation.
#[derive(Debug)]
pub struct Slab<T> {
    slots: Vec<Slot<T>>,
    /// Indices of empty slots, the most recently freed last.
    free: Vec<u32>,
    len: usize,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
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
        self.len += 1;
        if let Some(index) = self.free.pop() {
            let slot = &mut self.slots[index as usize];
            slot.value = Some(value);
            return Key {
                index,
                generation: slot.generation,
            };
        }
        let index = u32::try_from(self.slots.len()).expect("fewer than 2^32 addresses held");
        self.slots.push(Slot {
            generation: 0,
            value: Some(value),
        });
        Key {
            index,
            generation: 0,
        }
    }

    /// The value under `key`, if it is still there.
    #[must_use]
    pub fn get(&self, key: Key) -> Option<&T> {
        self.slots
            .get(key.index as usize)
            .filter(|slot| slot.generation == key.generation)
            .and_then(|slot| slot.value.as_ref())
    }

    /// The value under `key`, if it is still there.
    pub fn get_mut(&mut self, key: Key) -> Option<&mut T> {
        self.slots
            .get_mut(key.index as usize)
            .filter(|slot| slot.generation == key.generation)
            .and_then(|slot| slot.value.as_mut())
    }

    /// True if `key` still names a value.
    #[must_use]
    pub fn contains(&self, key: Key) -> bool {
        self.get(key).is_some()
    }

    /// Takes the value under `key` out; its key, and every copy of it, then name nothing.
    pub fn remove(&mut self, key: Key) -> Option<T> {
        let slot = self
            .slots
            .get_mut(key.index as usize)
            .filter(|slot| slot.generation == key.generation)?;
        let value = slot.value.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(key.index);
        self.len -= 1;
        Some(value)
    }

    /// Keeps the values for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(Key, &T) -> bool) {
        let doomed: Vec<Key> = self
            .iter()
            .filter(|(key, value)| !keep(*key, value))
            .map(|(key, _)| key)
            .collect();
        for key in doomed {
            self.remove(key);
        }
    }

    /// The values and their keys, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (Key, &T)> {
        self.slots.iter().enumerate().filter_map(|(index, slot)| {
            let value = slot.value.as_ref()?;
            let index = u32::try_from(index).ok()?;
            Some((
                Key {
                    index,
                    generation: slot.generation,
                },
                value,
            ))
        })
    }

    /// Values held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
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
        assert_eq!(
            slab.slots.len(),
            100,
            "never more slots than were live at once"
        );
        for key in &live {
            assert!(slab.contains(*key));
        }
    }

    #[test]
    fn retain_and_iter_see_the_live_values_only() {
        let mut slab = Slab::default();
        let keys: Vec<Key> = (0..10).map(|i| slab.insert(i)).collect();
        slab.remove(keys[3]);
        slab.retain(|_, value| value % 2 == 0);
        let left: Vec<i32> = slab.iter().map(|(_, v)| *v).collect();
        assert_eq!(left, [0, 2, 4, 6, 8]);
        assert_eq!(slab.len(), 5);
        assert!(!slab.is_empty());
        assert!(slab.get(keys[1]).is_none());
        assert_eq!(slab.get(keys[2]), Some(&2));
    }
}
