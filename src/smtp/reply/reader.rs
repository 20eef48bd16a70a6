//! [`ReplyReader`]: replies out of a byte stream that arrives in pieces, in linear time.

use super::{Limits, Progress, Reply, ReplyError, Status};

/// Reads pipelined replies from a byte stream that arrives in arbitrary pieces.
///
/// The calling contract: [`push`](Self::push) the bytes of each read, then call
/// [`next_reply`](Self::next_reply) until it returns `Ok(None)`. Each reply borrows the reader
/// until the next call. However the bytes were split, each is looked at a bounded number of
/// times — once for LF while its line is incomplete, once when the whole line is parsed — so a
/// server that drips a reply one byte at a time costs linear, not quadratic, time.
///
/// Memory stays bounded when the caller drains after each push: the reader then holds at most
/// the incomplete tail of one reply (below [`Limits::max_reply_len`], or an error is reported)
/// plus the last pushed piece, and nothing at all once every byte was part of a reply.
///
/// After an error the reader stays failed and returns the same error: the stream's framing is
/// lost and the session must end.
#[derive(Debug, Clone)]
pub struct ReplyReader {
    buf: Vec<u8>,
    /// Bytes at the front of `buf` already returned as replies.
    start: usize,
    progress: Progress,
    limits: Limits,
    failed: Option<ReplyError>,
}

impl ReplyReader {
    /// A reader with empty buffers and the given caps.
    #[must_use]
    pub fn new(limits: Limits) -> Self {
        Self {
            buf: Vec::new(),
            start: 0,
            progress: Progress::default(),
            limits,
            failed: None,
        }
    }

    /// Appends bytes received from the server.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete reply, `Ok(None)` if more bytes are needed.
    pub fn next_reply(&mut self) -> Result<Option<Reply<'_>>, ReplyError> {
        if let Some(error) = self.failed {
            return Err(error);
        }
        if self.start == self.buf.len() {
            // All read: give the buffer back. A session waits for its next reply far longer
            // than it reads, and ten thousand of them wait at once.
            self.buf = Vec::new();
            self.start = 0;
            return Ok(None);
        }
        let pending = &self.buf[self.start..];
        match self.progress.advance(pending, &self.limits) {
            Ok(Status::Complete(reply)) => {
                self.start += reply.consumed();
                self.progress = Progress::default();
                Ok(Some(reply))
            }
            Ok(Status::Partial) => Ok(None),
            Err(error) => {
                self.failed = Some(error);
                Err(error)
            }
        }
    }

    /// Bytes received but not yet returned as part of a reply.
    #[must_use]
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The bytes received but not yet returned as part of a reply: the start of the next one.
    #[must_use]
    pub fn pending(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A session waits far longer than it reads: a reader that has returned every byte keeps
    /// no buffer, and one holding half a reply keeps only that.
    #[test]
    fn the_buffer_is_given_back_once_every_byte_was_a_reply() {
        let mut reader = ReplyReader::new(Limits::DEFAULT);
        reader.push(b"250 2.1.5 Ok\r\n550 5.1.1 no such user\r\n250 Ok");
        assert!(reader.next_reply().expect("valid").is_some());
        assert!(reader.next_reply().expect("valid").is_some());
        assert!(reader.next_reply().expect("valid").is_none());
        assert_eq!(reader.buffered(), 6);
        assert!(reader.buf.capacity() > 0, "the partial reply is kept");
        reader.push(b"\r\n");
        assert!(reader.next_reply().expect("valid").is_some());
        assert!(reader.next_reply().expect("valid").is_none());
        assert_eq!(reader.buf.capacity(), 0);
        assert_eq!(reader.buffered(), 0);
    }
}
