//! The conversation as it happened, both directions, kept only when asked for (`--transcript`).

use std::fmt;
use std::time::Duration;

/// Who said it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// mxprobe to the server.
    Sent,
    /// The server to mxprobe.
    Received,
}

/// One command written, or one reply read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Time since the session started.
    pub at: Duration,
    /// Who said it.
    pub direction: Direction,
    /// The bytes, line endings included.
    pub bytes: Vec<u8>,
}

/// The conversation of one session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transcript {
    entries: Vec<Entry>,
}

impl Transcript {
    pub(super) fn push(&mut self, at: Duration, direction: Direction, bytes: &[u8]) {
        self.entries.push(Entry {
            at,
            direction,
            bytes: bytes.to_vec(),
        });
    }

    /// The entries, in order.
    #[must_use]
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }
}

impl fmt::Display for Transcript {
    /// `+0.012s > EHLO probe.example.net`, one line per line sent or received, escaped so a
    /// hostile server cannot write control characters to a terminal.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for entry in &self.entries {
            let arrow = match entry.direction {
                Direction::Sent => '>',
                Direction::Received => '<',
            };
            for line in entry.bytes.split_inclusive(|&b| b == b'\n') {
                let line = line.strip_suffix(b"\n").unwrap_or(line);
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                writeln!(
                    f,
                    "+{:.3}s {arrow} {}",
                    entry.at.as_secs_f64(),
                    line.escape_ascii()
                )?;
            }
        }
        Ok(())
    }
}
