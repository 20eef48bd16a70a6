//! The caps of [`Limits`] applied to a reply that is still arriving.
//!
//! "Partial means no invalid byte yet" asks more than a check of each complete line: after a `-`
//! on the last line a reply may have, or a few bytes before the reply's byte budget runs out, no
//! valid reply is possible any more although the line has not ended. So each check asks for the
//! shortest way the reply could still end:
//!
//! - before its separator is known, the line could still be `250` LF: 4 bytes, and the last one;
//! - after `code SP` or `code CR`, the line must end: its bytes so far and an LF;
//! - after `code-`, the line must end and at least one more line of at least 4 bytes follow.
//!
//! Along a line these conditions only tighten, so the first byte that breaks one is computed
//! rather than searched for. Reporting the cap broken at that *first* byte is what makes the
//! error the same whichever way the bytes were split across reads.

use super::{Limits, ReplyError};

/// The shortest possible line: three code digits and an LF.
const SHORTEST_LINE: usize = 4;

/// Where the reply being read stands before the current line.
#[derive(Debug, Clone, Copy)]
pub(super) struct Before {
    /// Bytes of the reply's complete lines.
    pub(super) bytes: usize,
    /// The reply's complete lines.
    pub(super) lines: usize,
}

/// The first state of the current line at which no completion fits the caps, as the number of
/// the line's bytes read by then, with the cap it breaks.
///
/// `line` holds the line's bytes read so far, without an LF; the grammar has accepted every one
/// of them. Nothing is reported before the reply's first byte.
#[inline]
pub(super) fn first_violation(
    line: &[u8],
    before: Before,
    limits: &Limits,
) -> Option<(usize, ReplyError)> {
    // The common case, far from every cap: even as a continuation line, the most demanding
    // kind, the line so far and its shortest completion fit.
    let shortest_line = line.len().max(3) + 1;
    if before.lines + 2 <= limits.max_lines
        && shortest_line <= limits.max_line_len
        && before.bytes + shortest_line + SHORTEST_LINE <= limits.max_reply_len
    {
        return None;
    }
    first_violation_near_caps(line, before, limits)
}

/// [`first_violation`] when some cap is close: which one breaks first, and where.
fn first_violation_near_caps(
    line: &[u8],
    before: Before,
    limits: &Limits,
) -> Option<(usize, ReplyError)> {
    // The state "no byte of this line yet" belongs to the reply only after a first line.
    let first_state = usize::from(before.lines == 0);
    if line.len() < first_state {
        return None;
    }
    // The separator is not known: the line may still be `250` LF, the reply's last.
    if let Some(error) = shortest_completion(SHORTEST_LINE, 0, 0, before, limits) {
        return Some((first_state, error));
    }
    let &separator = line.get(3)?;
    // After `-` another line must follow; after SP or CR this line is the last.
    let (more_lines, more_bytes) = if separator == b'-' {
        (1, SHORTEST_LINE)
    } else {
        (0, 0)
    };
    if let Some(error) = shortest_completion(5, more_lines, more_bytes, before, limits) {
        return Some((4, error));
    }
    // Each text byte lengthens the shortest completion by one; after `k` bytes the line needs
    // `k + 1`. Both thresholds are above 4, or the check above would have failed.
    let line_full_at = limits.max_line_len;
    let reply_full_at = limits
        .max_reply_len
        .saturating_sub(before.bytes + more_bytes);
    let (at, error) = if line_full_at <= reply_full_at {
        (
            line_full_at,
            ReplyError::LineTooLong {
                limit: limits.max_line_len,
                line: before.lines + 1,
            },
        )
    } else {
        (
            reply_full_at,
            ReplyError::ReplyTooLong {
                limit: limits.max_reply_len,
            },
        )
    };
    (at <= line.len()).then_some((at, error))
}

/// The cap broken by the shortest completion: this line ending after `line_len` bytes, then
/// `more_lines` lines of `more_bytes` bytes in all. Line count first, then line length, then
/// reply size, when several break at once.
fn shortest_completion(
    line_len: usize,
    more_lines: usize,
    more_bytes: usize,
    before: Before,
    limits: &Limits,
) -> Option<ReplyError> {
    if before.lines + 1 + more_lines > limits.max_lines {
        Some(ReplyError::TooManyLines {
            limit: limits.max_lines,
        })
    } else if line_len > limits.max_line_len {
        Some(ReplyError::LineTooLong {
            limit: limits.max_line_len,
            line: before.lines + 1,
        })
    } else if before.bytes + line_len + more_bytes > limits.max_reply_len {
        Some(ReplyError::ReplyTooLong {
            limit: limits.max_reply_len,
        })
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: Before = Before { bytes: 0, lines: 0 };

    fn limits(max_line_len: usize, max_lines: usize, max_reply_len: usize) -> Limits {
        Limits {
            max_line_len,
            max_lines,
            max_reply_len,
        }
    }

    #[test]
    fn nothing_is_reported_before_the_first_byte() {
        assert_eq!(first_violation(b"", START, &limits(0, 0, 0)), None);
        assert_eq!(
            first_violation(b"2", START, &limits(0, 0, 0)),
            Some((1, ReplyError::TooManyLines { limit: 0 }))
        );
    }

    #[test]
    fn a_dash_on_the_last_allowed_line_is_refused_at_the_dash() {
        let before = Before { bytes: 7, lines: 1 };
        let caps = limits(4096, 2, 65536);
        assert_eq!(first_violation(b"250", before, &caps), None);
        assert_eq!(first_violation(b"250 text", before, &caps), None);
        assert_eq!(
            first_violation(b"250-text", before, &caps),
            Some((4, ReplyError::TooManyLines { limit: 2 }))
        );
    }

    #[test]
    fn the_byte_budget_counts_the_line_that_must_follow_a_dash() {
        let caps = limits(4096, 64, 20);
        let before = Before {
            bytes: 10,
            lines: 1,
        };
        // 10 + "250-" + LF + "250" LF = 19: fits; one text byte more would make 20; two, 21.
        assert_eq!(first_violation(b"250-", before, &caps), None);
        assert_eq!(first_violation(b"250-a", before, &caps), None);
        assert_eq!(
            first_violation(b"250-ab", before, &caps),
            Some((6, ReplyError::ReplyTooLong { limit: 20 }))
        );
        // A final line may use the bytes a dash would have kept for the next line.
        assert_eq!(first_violation(b"250 abcde", before, &caps), None);
        assert_eq!(
            first_violation(b"250 abcdef", before, &caps),
            Some((10, ReplyError::ReplyTooLong { limit: 20 }))
        );
    }

    #[test]
    fn less_budget_than_the_shortest_line_is_refused_at_once() {
        let caps = limits(4096, 64, 10);
        let before = Before { bytes: 7, lines: 1 };
        assert_eq!(
            first_violation(b"", before, &caps),
            Some((0, ReplyError::ReplyTooLong { limit: 10 }))
        );
    }

    #[test]
    fn the_first_cap_to_break_wins() {
        // Line cap at 8 bytes, reply budget at 9: the line cap breaks first.
        let caps = limits(8, 64, 9);
        assert_eq!(
            first_violation(b"250 abcdefgh", START, &caps),
            Some((8, ReplyError::LineTooLong { limit: 8, line: 1 }))
        );
        // Line cap at 9, reply budget at 8: the reply cap breaks first.
        let caps = limits(9, 64, 8);
        assert_eq!(
            first_violation(b"250 abcdefgh", START, &caps),
            Some((8, ReplyError::ReplyTooLong { limit: 8 }))
        );
    }

    #[test]
    fn degenerate_caps_fail_at_the_first_byte() {
        assert_eq!(
            first_violation(b"2", START, &limits(3, 64, 65536)),
            Some((1, ReplyError::LineTooLong { limit: 3, line: 1 }))
        );
        assert_eq!(
            first_violation(b"2", START, &limits(4096, 64, 3)),
            Some((1, ReplyError::ReplyTooLong { limit: 3 }))
        );
        // "250" LF fits a 4-byte line; "250 " cannot end in 4.
        assert_eq!(first_violation(b"250", START, &limits(4, 64, 65536)), None);
        assert_eq!(
            first_violation(b"250 ", START, &limits(4, 64, 65536)),
            Some((4, ReplyError::LineTooLong { limit: 4, line: 1 }))
        );
    }
}
