//! [`Format::Lines`](super::Format::Lines): one address per line.
//!
//! ```text
//! body       = *( line LF ) [ last-line ]     ; a last line needs no LF
//! line       = *( any byte but LF )          ; its CR, if last, is the CRLF's
//! ```
//!
//! A line in one chunk is read where it lies; only the unfinished line at a chunk's end is
//! copied, and only its first `max_line + 1` bytes: a line is refused as too long as soon as
//! `max_line + 2` bytes of it have arrived without LF (one of them may be the CR of a CRLF).
//! Faults are found at fixed points of the stream, whatever the chunks: a NUL byte among those
//! first bytes, then the length, then (at the line's end) its UTF-8.

use super::error::{Place, UploadError};
use super::{Item, extend_capped, text};

/// The state between chunks: the line being read.
#[derive(Debug)]
pub(super) struct Lines {
    /// Lines ended so far.
    ended: u64,
    /// The first bytes of the unfinished line, at most `max_line + 1`; empty between lines.
    partial: Vec<u8>,
}

impl Lines {
    pub(super) fn new() -> Self {
        Self {
            ended: 0,
            partial: Vec::new(),
        }
    }

    pub(super) fn feed(
        &mut self,
        chunk: &[u8],
        max_line: usize,
        out: &mut Vec<Item>,
    ) -> Result<(), UploadError> {
        let mut rest = chunk;
        while !rest.is_empty() {
            let lf = memchr::memchr(b'\n', rest);
            let piece = &rest[..lf.unwrap_or(rest.len())];
            self.check(piece, max_line)?;
            match lf {
                Some(lf) => {
                    if self.partial.is_empty() {
                        self.end_line(piece, true, max_line, out)?;
                    } else {
                        let mut line = std::mem::take(&mut self.partial);
                        extend_capped(&mut line, piece, max_line.saturating_add(2));
                        let ended = self.end_line(&line, true, max_line, out);
                        line.clear();
                        self.partial = line;
                        ended?;
                    }
                    rest = &rest[lf + 1..];
                }
                None => {
                    extend_capped(&mut self.partial, piece, max_line.saturating_add(2));
                    rest = &[];
                }
            }
        }
        Ok(())
    }

    pub(super) fn finish(
        mut self,
        max_line: usize,
        out: &mut Vec<Item>,
    ) -> Result<(), UploadError> {
        if self.partial.is_empty() {
            return Ok(());
        }
        let line = std::mem::take(&mut self.partial);
        self.end_line(&line, false, max_line, out)
    }

    pub(super) fn buffered(&self) -> usize {
        self.partial.capacity()
    }

    /// Checks the next `piece` of the current line (bytes without LF) before it is kept: a NUL
    /// byte, or one byte too many.
    fn check(&self, piece: &[u8], max_line: usize) -> Result<(), UploadError> {
        // `partial` holds at most `max_line + 1` bytes, so there is room for one more (unless
        // the limit was lowered since: then the line is refused).
        let room = max_line
            .saturating_add(2)
            .saturating_sub(self.partial.len());
        let seen = &piece[..piece.len().min(room)];
        let at = Place::Line(self.ended + 1);
        if memchr::memchr(0, seen).is_some() {
            return Err(UploadError::Binary { at });
        }
        if seen.len() == room {
            return Err(UploadError::TooLong {
                at,
                limit: max_line,
            });
        }
        Ok(())
    }

    /// A whole line, LF excluded: its item, if any.
    fn end_line(
        &mut self,
        line: &[u8],
        terminated: bool,
        max_line: usize,
        out: &mut Vec<Item>,
    ) -> Result<(), UploadError> {
        self.ended += 1;
        let at = Place::Line(self.ended);
        // Only a CR right before LF belongs to the line end; at the body's end a CR is text.
        let line = match line.strip_suffix(b"\r") {
            Some(without) if terminated => without,
            _ => line,
        };
        if line.len() > max_line {
            return Err(UploadError::TooLong {
                at,
                limit: max_line,
            });
        }
        match text::item_of(self.ended, line) {
            Ok(item) => {
                out.extend(item);
                Ok(())
            }
            Err(_) => Err(UploadError::NotUtf8 { at }),
        }
    }
}
