//! SMTP replies: a zero-copy streaming parser, a resumable reader, and the encoder servers use.
//!
//! The grammar is RFC 5321 §4.2:
//!
//! ```text
//! Greeting   = ( "220 " (Domain / address-literal) [ SP textstring ] CRLF ) /
//!              ( "220-" (Domain / address-literal) [ SP textstring ] CRLF
//!                *( "220-" [ textstring ] CRLF )
//!                "220" [ SP textstring ] CRLF )
//! textstring = 1*(%d09 / %d32-126) ; HT, SP, Printable US-ASCII
//! Reply-line = *( Reply-code "-" [ textstring ] CRLF )
//!              Reply-code [ SP textstring ] CRLF
//! Reply-code = %x32-35 %x30-35 %x30-39
//! ```
//!
//! # Guarantees
//!
//! - [`parse_reply`] never panics, never loops and never allocates, whatever the input.
//! - [`Status::Partial`] means no invalid byte has been seen yet: every byte so far is the prefix
//!   of some reply within the [`Limits`]. An error is reported at the first byte that makes a
//!   valid reply impossible, so a hostile server can never make the caller buffer more than
//!   [`Limits::max_reply_len`] bytes waiting for a reply that cannot come.
//! - The result does not depend on how the bytes were split across reads: feeding a stream to
//!   [`ReplyReader`] in any chunks gives the same replies and the same error as parsing it whole.
//! - Parsed replies borrow the input: lines are slices of it. [`Reply::into_owned`] is the one,
//!   explicit, copying step.
//!
//! # Strict and liberal
//!
//! Strict where it matters for framing: every line carries the same valid code (a mismatch is
//! an error, not a guess), the byte after the code is `-`, SP or the line end, and every cap is
//! enforced. Liberal where real servers are sloppy but the meaning is unambiguous: each tolerated
//! deviation is a named [`Quirk`], recorded on the reply that showed it.
//!
//! nom is an implementation detail: it never appears in this module's public types.

use std::fmt;

use super::code::{EnhancedCode, ReplyClass, ReplyCode};

mod caps;
mod encode;
mod grammar;
mod quirk;
mod reader;
#[cfg(test)]
mod tests;

pub use encode::{EncodeReplyError, encode_reply};
pub use quirk::{Quirk, Quirks};
pub use reader::ReplyReader;

use caps::{Before, first_violation};
use grammar::{Fault, enhanced_code_prefix, reply_line};

/// Caps that bound what one reply may cost.
///
/// RFC 5321 §4.5.3.1.5 limits a reply line to 512 octets including CRLF, but real servers
/// exceed it (long Microsoft 365 diagnostics, banners), so the defaults are more generous while
/// still bounding memory per connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest accepted line in bytes, counting its line ending. Default 4 KiB.
    pub max_line_len: usize,
    /// Most lines in one reply. Default 64.
    pub max_lines: usize,
    /// Most bytes in one reply, all lines and line endings included. Default 64 KiB.
    pub max_reply_len: usize,
}

impl Limits {
    /// The defaults: 4 KiB lines, 64 lines, 64 KiB replies.
    pub const DEFAULT: Self = Self {
        max_line_len: 4096,
        max_lines: 64,
        max_reply_len: 64 * 1024,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The outcome of parsing a buffer that may hold less than one reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status<T> {
    /// A whole reply was at the front of the buffer.
    Complete(T),
    /// The buffer holds the valid beginning of a reply; more bytes are needed.
    Partial,
}

/// Why a byte stream is not a valid sequence of SMTP replies.
///
/// Every variant means the server broke the protocol: the session ends and classifies the
/// outcome as `protocol_error`. After an error the stream has lost its framing; nothing after it
/// can be trusted. Line numbers count from 1 within the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyError {
    /// The first line does not start with a reply code `[2-5][0-5][0-9]`.
    InvalidCode,
    /// A continuation line carries a different code from the first line (or no code).
    CodeMismatch {
        /// The code of the reply's first line.
        expected: ReplyCode,
        /// The offending line.
        line: usize,
    },
    /// The byte after the code is not `-`, SP or the line ending.
    InvalidSeparator {
        /// The offending line.
        line: usize,
    },
    /// A line exceeds [`Limits::max_line_len`].
    LineTooLong {
        /// The cap in force.
        limit: usize,
        /// The offending line.
        line: usize,
    },
    /// The reply has more lines than [`Limits::max_lines`].
    TooManyLines {
        /// The cap in force.
        limit: usize,
    },
    /// The reply exceeds [`Limits::max_reply_len`] bytes.
    ReplyTooLong {
        /// The cap in force.
        limit: usize,
    },
}

impl ReplyError {
    /// True if the error is a cap being exceeded rather than a grammar violation.
    #[must_use]
    pub const fn is_limit_exceeded(self) -> bool {
        matches!(
            self,
            Self::LineTooLong { .. } | Self::TooManyLines { .. } | Self::ReplyTooLong { .. }
        )
    }
}

impl fmt::Display for ReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidCode => {
                f.write_str("reply does not start with a three-digit code from 200 to 559")
            }
            Self::CodeMismatch { expected, line } => write!(
                f,
                "line {line} of a multi-line reply does not repeat the code {expected}"
            ),
            Self::InvalidSeparator { line } => write!(
                f,
                "line {line}: the reply code is followed by neither '-', a space nor the line end"
            ),
            Self::LineTooLong { limit, line } => {
                write!(f, "line {line} of the reply exceeds {limit} bytes")
            }
            Self::TooManyLines { limit } => write!(f, "reply has more than {limit} lines"),
            Self::ReplyTooLong { limit } => write!(f, "reply exceeds {limit} bytes"),
        }
    }
}

impl std::error::Error for ReplyError {}

/// One complete SMTP reply, borrowed from the buffer it was parsed from.
///
/// It carries everything the engine decides on — code, class, enhanced code — already parsed,
/// and the lines as slices of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply<'a> {
    code: ReplyCode,
    enhanced: Option<EnhancedCode>,
    wire: &'a [u8],
    line_count: usize,
    quirks: Quirks,
}

impl<'a> Reply<'a> {
    /// The reply code, e.g. `550`.
    #[must_use]
    pub const fn code(&self) -> ReplyCode {
        self.code
    }

    /// Positive, intermediate, transient or permanent, from the code's first digit.
    #[must_use]
    pub const fn class(&self) -> ReplyClass {
        self.code.class()
    }

    /// The enhanced status code from the start of the text (`5.1.1`), if a line carried one
    /// whose class agrees with the reply code. The first such line wins.
    #[must_use]
    pub const fn enhanced(&self) -> Option<EnhancedCode> {
        self.enhanced
    }

    /// The text of each line: what follows the code and its separator, without the line ending.
    /// An enhanced code at the start of the text is kept (`"5.1.1 User unknown"`).
    #[must_use]
    pub fn lines(&self) -> Lines<'a> {
        Lines { rest: self.wire }
    }

    /// How many lines the reply has (at least one).
    #[must_use]
    pub const fn line_count(&self) -> usize {
        self.line_count
    }

    /// The reply exactly as received, codes and line endings included.
    #[must_use]
    pub const fn wire(&self) -> &'a [u8] {
        self.wire
    }

    /// How many bytes of the input the reply used.
    #[must_use]
    pub const fn consumed(&self) -> usize {
        self.wire.len()
    }

    /// The deviations from RFC 5321 the reply showed.
    #[must_use]
    pub const fn quirks(&self) -> Quirks {
        self.quirks
    }

    /// Copies the reply out of the input buffer.
    #[must_use]
    pub fn into_owned(self) -> OwnedReply {
        OwnedReply {
            code: self.code,
            enhanced: self.enhanced,
            wire: self.wire.into(),
            line_count: self.line_count,
            quirks: self.quirks,
        }
    }
}

/// A [`Reply`] that owns its bytes, for keeping past the buffer it came from (the reply that
/// decided a verdict, a transcript).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedReply {
    code: ReplyCode,
    enhanced: Option<EnhancedCode>,
    wire: Box<[u8]>,
    line_count: usize,
    quirks: Quirks,
}

/// What an [`OwnedReply`] is besides its bytes: for a store that keeps the bytes of many
/// replies in one buffer (the engine's remembered results).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReplyMeta {
    code: ReplyCode,
    enhanced: Option<EnhancedCode>,
    line_count: usize,
    quirks: Quirks,
}

impl OwnedReply {
    /// The reply without its bytes ([`OwnedReply::from_meta`] puts them back).
    pub(crate) fn meta(&self) -> ReplyMeta {
        ReplyMeta {
            code: self.code,
            enhanced: self.enhanced,
            line_count: self.line_count,
            quirks: self.quirks,
        }
    }

    /// The reply `meta` was taken from, given its bytes back.
    pub(crate) fn from_meta(meta: ReplyMeta, wire: &[u8]) -> Self {
        Self {
            code: meta.code,
            enhanced: meta.enhanced,
            wire: wire.into(),
            line_count: meta.line_count,
            quirks: meta.quirks,
        }
    }

    /// The borrowed view, with every accessor of [`Reply`].
    #[must_use]
    pub fn as_reply(&self) -> Reply<'_> {
        Reply {
            code: self.code,
            enhanced: self.enhanced,
            wire: &self.wire,
            line_count: self.line_count,
            quirks: self.quirks,
        }
    }
}

/// Iterator over the text of a reply's lines; see [`Reply::lines`].
#[derive(Debug, Clone)]
pub struct Lines<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Lines<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.rest.is_empty() {
            return None;
        }
        // Every line of a parsed reply ends in LF; `wire` ends at the last one.
        let end = memchr::memchr(b'\n', self.rest).map_or(self.rest.len(), |lf| lf + 1);
        let (line, rest) = self.rest.split_at(end);
        self.rest = rest;
        Some(line_text(line))
    }
}

/// The text of one validated line: after `code` and its `-`/SP separator, before CRLF or LF.
fn line_text(line: &[u8]) -> &[u8] {
    let body = line.strip_suffix(b"\n").unwrap_or(line);
    let body = body.strip_suffix(b"\r").unwrap_or(body);
    match body.get(3) {
        Some(b'-' | b' ') => &body[4..],
        _ => body.get(3..).unwrap_or_default(),
    }
}

/// Parses one reply from the front of `buf`.
///
/// Returns [`Status::Partial`] if `buf` holds only the valid beginning of a reply, and the
/// reply otherwise; [`Reply::consumed`] says how many bytes to drop before parsing the next
/// (pipelined) reply.
///
/// ```
/// use mxprobe::smtp::reply::{parse_reply, Limits, Status};
///
/// let buf = b"250-mx.example.com\r\n250 PIPELINING\r\n354 next";
/// let Ok(Status::Complete(reply)) = parse_reply(buf, &Limits::DEFAULT) else { panic!() };
/// assert_eq!(reply.code().get(), 250);
/// assert_eq!(reply.lines().collect::<Vec<_>>(), [&b"mx.example.com"[..], b"PIPELINING"]);
/// assert_eq!(parse_reply(&buf[reply.consumed()..], &Limits::DEFAULT), Ok(Status::Partial));
/// ```
///
/// Parsing from the start again after more bytes arrive costs time proportional to the whole
/// reply; [`ReplyReader`] resumes where it stopped instead.
pub fn parse_reply<'a>(buf: &'a [u8], limits: &Limits) -> Result<Status<Reply<'a>>, ReplyError> {
    Progress::default().advance(buf, limits)
}

/// How far the parse of the reply at the front of a buffer has come: the complete lines already
/// validated, and how much of an incomplete line is known to hold no LF, so that a resumed parse
/// looks only at new bytes.
#[derive(Debug, Clone, Copy, Default)]
struct Progress {
    /// Bytes of complete, validated lines.
    scanned: usize,
    /// What the first line settled; `None` before it is complete.
    head: Option<Head>,
    /// Bytes after `scanned` of a line whose code and `-`/SP separator are valid and which
    /// holds no LF yet: only text can follow, so a later call looks for LF past them instead
    /// of parsing the line again. Zero when no such line is pending.
    pending_text: usize,
}

#[derive(Debug, Clone, Copy)]
struct Head {
    code: ReplyCode,
    enhanced: Option<EnhancedCode>,
    lines: usize,
    quirks: Quirks,
}

impl Progress {
    /// Validates the complete lines of `buf` not yet validated, and returns the reply once its
    /// last line is there. `buf` must extend the buffer of the previous call on this value.
    fn advance<'a>(
        &mut self,
        buf: &'a [u8],
        limits: &Limits,
    ) -> Result<Status<Reply<'a>>, ReplyError> {
        // Worked on in locals, which the compiler keeps in registers; stored back only when the
        // parse stops short of a reply and must resume later.
        let Self {
            mut scanned,
            mut head,
            mut pending_text,
        } = *self;
        loop {
            let before = Before {
                bytes: scanned,
                lines: head.map_or(0, |h| h.lines),
            };
            let rest = &buf[scanned..];
            // At most one line's worth is scanned: a longer line is an error in any case.
            let window = &rest[..rest.len().min(limits.max_line_len)];

            // A drip-fed line is parsed only once its LF is there, so each byte is looked at a
            // bounded number of times however the line was split across reads.
            let seen = pending_text.min(window.len());
            let parsed = if seen > 0 && memchr::memchr(b'\n', &window[seen..]).is_none() {
                Err(nom::Err::Incomplete(nom::Needed::Unknown))
            } else {
                reply_line(window, head.map(|h| h.code))
            };
            let (after, line) = match parsed {
                Ok((after, line)) => {
                    let len = window.len() - after.len();
                    // Every byte before the LF was valid grammar; did one of them break a cap?
                    if let Some((_, error)) = first_violation(&window[..len - 1], before, limits) {
                        return Err(error);
                    }
                    (after, line)
                }
                Err(nom::Err::Incomplete(_)) => {
                    if let Some((_, error)) = first_violation(window, before, limits) {
                        return Err(error);
                    }
                    // Past `code SP` or `code-` only text or LF can come: remember how far the
                    // text is known to hold no LF.
                    if window.len() > 3 && matches!(window[3], b'-' | b' ') {
                        pending_text = window.len();
                    }
                    *self = Self {
                        scanned,
                        head,
                        pending_text,
                    };
                    return Ok(Status::Partial);
                }
                Err(nom::Err::Error(broken) | nom::Err::Failure(broken)) => {
                    // A cap broken before the offending byte was the first error.
                    if let Some((_, error)) = first_violation(&window[..broken.at], before, limits)
                    {
                        return Err(error);
                    }
                    let line = before.lines + 1;
                    return Err(match (broken.fault, head) {
                        (Fault::Code, _) => ReplyError::InvalidCode,
                        (Fault::Mismatch, Some(head)) => ReplyError::CodeMismatch {
                            expected: head.code,
                            line,
                        },
                        // A mismatch needs a first line; report the grammar it broke.
                        (Fault::Mismatch, None) => ReplyError::InvalidCode,
                        (Fault::Separator, _) => ReplyError::InvalidSeparator { line },
                    });
                }
            };
            scanned += window.len() - after.len();
            pending_text = 0;

            let settled = head.get_or_insert(Head {
                code: line.code,
                enhanced: None,
                lines: 0,
                quirks: Quirks::NONE,
            });
            settled.lines += 1;
            settled.quirks.union(line.quirks);
            if settled.enhanced.is_none() {
                match enhanced_code_prefix(line.text) {
                    Some(enhanced) if enhanced.agrees_with(settled.code) => {
                        settled.enhanced = Some(enhanced);
                    }
                    Some(_) => settled.quirks.insert(Quirk::EnhancedClassMismatch),
                    None => {}
                }
            }
            // The caps, line count included, were checked for this line and, after a `-`, for
            // the shortest line that must follow.
            if line.last {
                return Ok(Status::Complete(Reply {
                    code: settled.code,
                    enhanced: settled.enhanced,
                    wire: &buf[..scanned],
                    line_count: settled.lines,
                    quirks: settled.quirks,
                }));
            }
        }
    }
}
