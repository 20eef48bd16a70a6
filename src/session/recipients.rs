//! [`Recipients`]: the addresses one session asks about, packed.
//!
//! The engine runs ten thousand sessions at once, each with up to dozens of recipients, and
//! most of that time every session is waiting for a reply. So a session keeps its mailboxes
//! in one string and one small table of where each ends — two allocations per session
//! instead of one per mailbox — and the table also says which recipients are settled.

/// One recipient, as it is given to and read from [`Recipients`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recipient<'a> {
    /// The mailbox in wire form, as `Address::mailbox` gives it.
    pub mailbox: &'a str,
    /// True if the mailbox needs SMTPUTF8 (`Address::needs_smtputf8`).
    pub smtputf8: bool,
}

/// Where one mailbox ends in the packed text, and its flags. Eight bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    end: u32,
    smtputf8: bool,
    settled: bool,
}

/// The recipients of one session, in the order they are asked.
///
/// ```
/// use mxprobe::session::{Recipient, Recipients};
///
/// let mut recipients = Recipients::with_capacity(2, 32);
/// recipients.push(Recipient { mailbox: "alice@example.com", smtputf8: false });
/// recipients.push(Recipient { mailbox: "josé@example.com", smtputf8: true });
/// assert_eq!(recipients.len(), 2);
/// assert_eq!(recipients.get(1).map(|r| r.mailbox), Some("josé@example.com"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recipients {
    text: String,
    entries: Vec<Entry>,
}

impl Recipients {
    /// Room for `count` recipients whose mailboxes add up to `bytes`: a session made with the
    /// exact figures allocates exactly what it keeps.
    #[must_use]
    pub fn with_capacity(count: usize, bytes: usize) -> Self {
        Self {
            text: String::with_capacity(bytes),
            entries: Vec::with_capacity(count),
        }
    }

    /// Adds a recipient after the others.
    ///
    /// # Panics
    ///
    /// If the mailboxes add up to 4 GiB or more, or number 2³² or more (offsets and indices
    /// are 32-bit, as a session asks about tens of addresses of at most a few hundred bytes).
    pub fn push(&mut self, recipient: Recipient<'_>) {
        assert!(
            u32::try_from(self.entries.len()).is_ok_and(|count| count < u32::MAX),
            "a session has fewer than 2^32 recipients"
        );
        self.text.push_str(recipient.mailbox);
        let end = u32::try_from(self.text.len())
            .expect("a session's mailboxes add up to less than 4 GiB");
        self.entries.push(Entry {
            end,
            smtputf8: recipient.smtputf8,
            settled: false,
        });
    }

    /// How many recipients.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The recipient at `index`, in the order they were pushed.
    #[must_use]
    pub fn get(&self, index: usize) -> Option<Recipient<'_>> {
        let entry = self.entries.get(index)?;
        let start = match index {
            0 => 0,
            _ => self.entries[index - 1].end,
        };
        Some(Recipient {
            mailbox: &self.text[start as usize..entry.end as usize],
            smtputf8: entry.smtputf8,
        })
    }

    /// Every recipient, in order.
    pub fn iter(&self) -> impl Iterator<Item = Recipient<'_>> {
        (0..self.len()).filter_map(|index| self.get(index))
    }

    /// True if recipient `index` needs SMTPUTF8.
    pub(super) fn needs_smtputf8(&self, index: usize) -> bool {
        self.entries[index].smtputf8
    }

    /// True once recipient `index` has its outcome.
    pub(super) fn is_settled(&self, index: usize) -> bool {
        self.entries[index].settled
    }

    /// Marks recipient `index` settled; false if it already was.
    pub(super) fn settle(&mut self, index: usize) -> bool {
        !std::mem::replace(&mut self.entries[index].settled, true)
    }

    /// The first recipient in `from..to` not settled yet.
    pub(super) fn first_unsettled(&self, from: usize, to: usize) -> Option<usize> {
        let to = to.min(self.len());
        (from..to).find(|&index| !self.entries[index].settled)
    }
}

impl<'a> FromIterator<Recipient<'a>> for Recipients {
    fn from_iter<I: IntoIterator<Item = Recipient<'a>>>(iter: I) -> Self {
        let mut recipients = Self::default();
        for recipient in iter {
            recipients.push(recipient);
        }
        recipients
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mailboxes_come_back_as_they_went_in() {
        let given = [
            Recipient {
                mailbox: "a@example.com",
                smtputf8: false,
            },
            Recipient {
                mailbox: "",
                smtputf8: false,
            },
            Recipient {
                mailbox: "josé@example.com",
                smtputf8: true,
            },
        ];
        let recipients: Recipients = given.iter().copied().collect();
        assert_eq!(recipients.len(), 3);
        assert_eq!(recipients.iter().collect::<Vec<_>>(), given);
        assert_eq!(recipients.get(3), None);
        assert!(recipients.needs_smtputf8(2));
    }

    #[test]
    fn settling_is_once_and_skipped_by_the_search() {
        let mut recipients: Recipients = ["a@x.test", "b@x.test", "c@x.test"]
            .into_iter()
            .map(|mailbox| Recipient {
                mailbox,
                smtputf8: false,
            })
            .collect();
        assert!(recipients.settle(0));
        assert!(!recipients.settle(0));
        assert!(recipients.is_settled(0));
        assert_eq!(recipients.first_unsettled(0, 3), Some(1));
        recipients.settle(1);
        assert_eq!(recipients.first_unsettled(0, 2), None);
        assert_eq!(recipients.first_unsettled(0, 99), Some(2));
    }

    #[test]
    fn an_entry_is_eight_bytes() {
        assert_eq!(std::mem::size_of::<Entry>(), 8);
    }
}
