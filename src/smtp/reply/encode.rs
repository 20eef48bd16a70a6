//! The server side of the reply grammar: what the simulated MX farm and the tests send.

use std::fmt;

use crate::smtp::code::ReplyCode;

/// Why [`encode_reply`] refused to write a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodeReplyError {
    /// A reply needs at least one line.
    NoLines,
    /// A line's text contains CR or LF, which would end the line early.
    LineBreakInText {
        /// Index of the offending line, from 0.
        line: usize,
    },
}

impl fmt::Display for EncodeReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoLines => f.write_str("a reply needs at least one line"),
            Self::LineBreakInText { line } => {
                write!(f, "line {line} of the reply text contains CR or LF")
            }
        }
    }
}

impl std::error::Error for EncodeReplyError {}

/// Writes a reply as a server sends it: `code-text` CRLF for every line but the last, then
/// `code SP text` CRLF, or `code` CRLF when the last text is empty.
///
/// This is the server side of the grammar, for the simulated MX farm and for tests. Texts must
/// not contain CR or LF; on error nothing is written.
///
/// ```
/// use mxprobe::smtp::{reply::encode_reply, ReplyCode};
/// let mut out = Vec::new();
/// encode_reply(ReplyCode::MAILBOX_UNAVAILABLE, &[b"5.1.1 No such user", b"5.1.1 Bye"], &mut out).unwrap();
/// assert_eq!(out, b"550-5.1.1 No such user\r\n550 5.1.1 Bye\r\n");
/// ```
pub fn encode_reply(
    code: ReplyCode,
    lines: &[&[u8]],
    out: &mut Vec<u8>,
) -> Result<(), EncodeReplyError> {
    if lines.is_empty() {
        return Err(EncodeReplyError::NoLines);
    }
    if let Some(line) = lines
        .iter()
        .position(|text| memchr::memchr2(b'\r', b'\n', text).is_some())
    {
        return Err(EncodeReplyError::LineBreakInText { line });
    }
    let digits = code.digits();
    let last = lines.len() - 1;
    for (i, text) in lines.iter().enumerate() {
        out.extend_from_slice(&digits);
        match (i == last, text.is_empty()) {
            (false, _) => out.push(b'-'),
            (true, false) => out.push(b' '),
            (true, true) => {}
        }
        out.extend_from_slice(text);
        out.extend_from_slice(b"\r\n");
    }
    Ok(())
}
