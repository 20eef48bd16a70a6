//! What happened in the in-memory world: a [`Trace`] of lines with their virtual times, and a
//! [`ReplyLog`] that says, for every reply id a server stamped, what the reply answered.

use std::fmt::Write as _;
use std::hash::{DefaultHasher, Hasher};
use std::time::Duration;

/// Lines kept in full; past this only the hash and the count grow (the harness's memory stays
/// bounded however long a run goes).
pub const TRACE_LINES_KEPT: usize = 200_000;

/// The run's event log, one line per event, each stamped with the virtual time since the
/// world's origin. Two runs of one seed must produce the same lines, byte for byte.
#[derive(Debug)]
pub struct Trace {
    lines: Vec<String>,
    count: u64,
    hasher: DefaultHasher,
}

impl Default for Trace {
    fn default() -> Self {
        Self {
            lines: Vec::new(),
            count: 0,
            hasher: DefaultHasher::new(),
        }
    }
}

impl Trace {
    /// Adds a line at `at` (since the origin).
    pub fn push(&mut self, at: Duration, text: &str) {
        let mut line = String::with_capacity(text.len() + 12);
        let _ = write!(line, "{:>10.3} {text}", at.as_secs_f64());
        self.hasher.write(line.as_bytes());
        self.hasher.write_u8(b'\n');
        self.count += 1;
        if self.lines.len() < TRACE_LINES_KEPT {
            self.lines.push(line);
        }
    }

    /// The lines kept (the first [`TRACE_LINES_KEPT`]).
    #[must_use]
    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    /// Lines pushed, kept or not.
    #[must_use]
    pub fn count(&self) -> u64 {
        self.count
    }

    /// A hash of every line pushed, in order: equal traces have equal digests.
    #[must_use]
    pub fn digest(&self) -> u64 {
        self.hasher.finish()
    }
}

/// What became of a reply a server decided on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Sent as decided.
    Sent,
    /// Decided, then dropped by a fault: the client never sees it.
    Dropped,
    /// Sent twice by a fault: the copy carries the same id.
    Duplicated,
    /// Made up by a fault: it answers nothing.
    Injected,
}

/// One reply a server stamped with an id.
#[derive(Debug, Clone)]
pub struct ReplyRecord {
    /// The client's name for the connection.
    pub conn: u64,
    /// The command line it answered, without its line ending (`RCPT TO:<a@b.test>`), or what
    /// it was in parentheses: `(greeting)`, `(unsolicited)`, `(injected)`, `(idle timeout)`.
    pub command: String,
    /// The reply code.
    pub code: u16,
    /// What became of it.
    pub fate: Fate,
}

/// Every stamped reply, by id (ids count from 1).
#[derive(Debug, Default)]
pub struct ReplyLog {
    records: Vec<ReplyRecord>,
}

impl ReplyLog {
    /// Records a reply and returns its id.
    pub fn add(&mut self, record: ReplyRecord) -> u64 {
        self.records.push(record);
        self.records.len() as u64
    }

    /// The reply with this id.
    #[must_use]
    pub fn get(&self, id: u64) -> Option<&ReplyRecord> {
        let index = usize::try_from(id).ok()?.checked_sub(1)?;
        self.records.get(index)
    }

    /// Changes what became of reply `id`.
    pub fn set_fate(&mut self, id: u64, fate: Fate) {
        if let Some(index) = usize::try_from(id).ok().and_then(|id| id.checked_sub(1))
            && let Some(record) = self.records.get_mut(index)
        {
            record.fate = fate;
        }
    }

    /// Replies recorded.
    #[must_use]
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True if none was.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

/// The text the in-memory servers append to the last line of every reply: ` (sim 123)`. It
/// contains no word the verdict classifier reads as policy or greylisting.
pub const STAMP_PREFIX: &str = " (sim ";

/// The id stamped on the last line of `last_line_text`, if any.
#[must_use]
pub fn stamp_of(last_line_text: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(last_line_text).ok()?;
    let text = text.trim_end_matches(['\r', '\n']);
    let start = text.rfind(STAMP_PREFIX)? + STAMP_PREFIX.len();
    text[start..].strip_suffix(')')?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_read_back() {
        assert_eq!(stamp_of(b"2.1.5 Ok (sim 42)"), Some(42));
        assert_eq!(stamp_of(b"2.1.5 Ok (sim 42)\r\n"), Some(42));
        assert_eq!(stamp_of(b"2.1.5 Ok"), None);
        assert_eq!(stamp_of(b"2.1.5 Ok (sim x)"), None);
    }

    #[test]
    fn equal_traces_have_equal_digests() {
        let mut a = Trace::default();
        let mut b = Trace::default();
        for trace in [&mut a, &mut b] {
            trace.push(Duration::from_millis(1500), "one");
            trace.push(Duration::from_millis(2500), "two");
        }
        assert_eq!(a.digest(), b.digest());
        assert_eq!(a.lines()[0], "     1.500 one");
        b.push(Duration::ZERO, "three");
        assert_ne!(a.digest(), b.digest());
    }
}
