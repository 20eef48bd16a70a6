//! The reply grammar of RFC 5321 §4.2, one nom parser per rule, applied to one line at a time.
//!
//! Each parser is streaming: `Incomplete` means the input ended before the rule could be
//! decided, never that a byte was wrong. Each reports a failure as [`Left`], how much input was
//! left where it failed; [`reply_line`] turns that into the rule that was broken and the offset
//! of the offending byte ([`Broken`]).
//!
//! Performance note: the primitives that consume bytes — one byte, a literal, the text up to LF
//! — are written here as nom parsers rather than taken from `nom::bytes` and `nom::number`. In
//! nom 8.0.0 those go through `Input::take_from`, which is not `#[inline]`
//! (rust-bakery/nom#1822), so every byte matched costs a cross-crate call and the parser ran at
//! half the speed without LTO. nom's combinators (`alt`, `peek`, `value`, `eof`, sequences)
//! compose these primitives and inline well.

use nom::branch::alt;
use nom::combinator::{eof, peek, value};
use nom::error::{ErrorKind, ParseError};
use nom::{IResult, Needed, Parser};

use super::{Quirk, Quirks};
use crate::smtp::code::{EnhancedCode, ReplyCode};

type LineResult<'a, T> = IResult<&'a [u8], T, Left>;

/// A rule failed with this many bytes of input left: the offending byte is the first of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Left(usize);

impl ParseError<&[u8]> for Left {
    fn from_error_kind(input: &[u8], _: ErrorKind) -> Self {
        Self(input.len())
    }

    fn append(_: &[u8], _: ErrorKind, other: Self) -> Self {
        other
    }

    /// Of two failed alternatives, the one that got further names the offending byte: after
    /// `250`, the input `\rX` fails `"-"` and `" "` at the CR but `"\r\n"` only at the X.
    fn or(self, other: Self) -> Self {
        Self(self.0.min(other.0))
    }
}

/// A line broke a rule of the grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Broken {
    pub(super) fault: Fault,
    /// Offset of the offending byte in the line.
    pub(super) at: usize,
}

/// Which rule a line broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fault {
    /// `Reply-code` on the first line.
    Code,
    /// A later line does not repeat the first line's code.
    Mismatch,
    /// The byte after the code.
    Separator,
}

/// One validated line of a reply.
pub(super) struct Line<'a> {
    pub(super) code: ReplyCode,
    /// `code SP text` or `code` CRLF: the reply's final line.
    pub(super) last: bool,
    /// Between the separator and the line ending.
    pub(super) text: &'a [u8],
    pub(super) quirks: Quirks,
}

/// ```text
/// Reply-line = *( Reply-code "-" [ textstring ] CRLF )
///              Reply-code [ SP textstring ] CRLF
/// ```
///
/// One line of it. The first line of a reply (`expected` is `None`) may carry any valid code;
/// later lines must repeat the first line's digits byte for byte, which is checked byte by byte
/// so a mismatch is reported as soon as it arrives.
#[inline]
pub(super) fn reply_line(
    line: &[u8],
    expected: Option<ReplyCode>,
) -> IResult<&[u8], Line<'_>, Broken> {
    let broken = |fault| {
        move |Left(left): Left| Broken {
            fault,
            at: line.len() - left,
        }
    };
    let (input, code) = match expected {
        None => reply_code(line).map_err(|e| e.map(broken(Fault::Code)))?,
        Some(code) => {
            let digits = code.digits();
            let (input, _) = literal(&digits)(line).map_err(|e| e.map(broken(Fault::Mismatch)))?;
            (input, code)
        }
    };
    let (input, last) = separator(input).map_err(|e| e.map(broken(Fault::Separator)))?;
    // `text_to_line_end` can only be incomplete: any byte but LF is text.
    let (input, (text, bare_lf)) =
        text_to_line_end(input).map_err(|e| e.map(broken(Fault::Separator)))?;
    let mut quirks = text_quirks(text);
    if bare_lf {
        quirks.insert(Quirk::BareLf);
    }
    Ok((
        input,
        Line {
            code,
            last,
            text,
            quirks,
        },
    ))
}

/// One byte that satisfies `accept`. Streaming: an empty input is `Incomplete`.
#[inline]
fn byte_where(accept: impl Fn(u8) -> bool) -> impl Fn(&[u8]) -> LineResult<'_, u8> {
    move |input: &[u8]| match input.split_first() {
        Some((&b, rest)) if accept(b) => Ok((rest, b)),
        Some(_) => Err(nom::Err::Error(Left(input.len()))),
        None => Err(nom::Err::Incomplete(Needed::new(1))),
    }
}

/// Exactly the bytes of `expected` (nom's `tag`). Streaming: a prefix of `expected` is
/// `Incomplete`, so a wrong byte is reported as soon as it arrives.
#[inline]
fn literal<'t>(expected: &'t [u8]) -> impl for<'i> Fn(&'i [u8]) -> LineResult<'i, &'i [u8]> + 't {
    move |input: &[u8]| {
        let available = expected.len().min(input.len());
        // A byte loop, not slice equality: that is a libc `memcmp` call, costly for 1-3 bytes.
        if let Some(wrong) = input.iter().zip(expected).position(|(a, b)| a != b) {
            Err(nom::Err::Error(Left(input.len() - wrong)))
        } else if available < expected.len() {
            Err(nom::Err::Incomplete(Needed::new(
                expected.len() - available,
            )))
        } else {
            let (matched, rest) = input.split_at(available);
            Ok((rest, matched))
        }
    }
}

/// Everything before the first LF (nom's `take_until`, with memchr). Streaming: no LF yet is
/// `Incomplete`.
#[inline]
fn until_lf(input: &[u8]) -> LineResult<'_, &[u8]> {
    match memchr::memchr(b'\n', input) {
        Some(lf) => {
            let (before, rest) = input.split_at(lf);
            Ok((rest, before))
        }
        None => Err(nom::Err::Incomplete(Needed::Unknown)),
    }
}

/// ```text
/// Reply-code = %x32-35 %x30-35 %x30-39
/// ```
#[inline]
fn reply_code(input: &[u8]) -> LineResult<'_, ReplyCode> {
    let (input, digits) = (
        byte_where(|b| matches!(b, b'2'..=b'5')),
        byte_where(|b| matches!(b, b'0'..=b'5')),
        byte_where(|b| b.is_ascii_digit()),
    )
        .parse(input)?;
    match ReplyCode::from_digits(digits.into()) {
        Some(code) => Ok((input, code)),
        // The three byte parsers admit exactly the grammar `from_digits` checks.
        None => Err(nom::Err::Error(Left(input.len() + 3))),
    }
}

/// What follows the code: `"-"` (more lines follow), SP (the last line, with text), or the line
/// ending itself (the last line, no text — RFC 5321 §4.2: "clients MUST be prepared for it to be
/// omitted"). Returns true for a last line. The line ending is not consumed.
#[inline]
fn separator(input: &[u8]) -> LineResult<'_, bool> {
    alt((
        value(false, literal(b"-")),
        value(true, literal(b" ")),
        value(true, peek(alt((literal(b"\r\n"), literal(b"\n"))))),
    ))
    .parse(input)
}

/// ```text
/// [ textstring ] CRLF
/// ```
///
/// The text up to the line ending, and whether that ending was a bare LF ([`Quirk::BareLf`]).
/// Anything but LF is accepted as text here; [`text_quirks`] records what was not US-ASCII.
#[inline]
fn text_to_line_end(input: &[u8]) -> LineResult<'_, (&[u8], bool)> {
    let (input, raw) = until_lf(input)?;
    let (input, _) = literal(b"\n").parse(input)?;
    Ok((
        input,
        match raw.strip_suffix(b"\r") {
            Some(text) => (text, false),
            None => (raw, true),
        },
    ))
}

/// The quirks a line's text shows: bytes outside `textstring = 1*(%d09 / %d32-126)`.
#[inline]
fn text_quirks(text: &[u8]) -> Quirks {
    // One branch-free pass, which the compiler vectorises; text is usually a few dozen bytes.
    let (high, control) = text.iter().fold((false, false), |(high, control), &b| {
        (
            high | (b >= 0x80),
            control | ((b < 0x20 && b != b'\t') | (b == 0x7f)),
        )
    });
    let mut quirks = Quirks::NONE;
    if high {
        quirks.insert(Quirk::EightBitText);
    }
    if control {
        quirks.insert(Quirk::ControlInText);
    }
    quirks
}

/// ```text
/// status-code = class "." subject "." detail    ; RFC 3463, RFC 2034 §4
/// class       = "2" / "4" / "5"
/// subject     = 1*3digit
/// detail      = 1*3digit
/// ```
///
/// The enhanced code at the start of a line's text, which RFC 2034 §4 requires be followed by
/// SP (or end the text). `5.1.1.` or `5.1.1x` are text, not codes.
#[inline]
pub(super) fn enhanced_code_prefix(text: &[u8]) -> Option<EnhancedCode> {
    let mut status_code = (
        byte_where(|b| matches!(b, b'2' | b'4' | b'5')),
        literal(b"."),
        one_to_three_digits,
        literal(b"."),
        one_to_three_digits,
        peek(alt((eof, literal(b" ")))),
    );
    let (_, (class, _, subject, _, detail, _)) = status_code.parse_complete(text).ok()?;
    EnhancedCode::new(u16::from(class - b'0'), subject, detail)
}

/// ```text
/// 1*3digit
/// ```
///
/// As a number. Works on complete text: at most three digits are taken, whatever follows.
#[inline]
fn one_to_three_digits(input: &[u8]) -> LineResult<'_, u16> {
    let len = input
        .iter()
        .take(3)
        .take_while(|b| b.is_ascii_digit())
        .count();
    if len == 0 {
        return Err(nom::Err::Error(Left(input.len())));
    }
    let (digits, rest) = input.split_at(len);
    let value = digits
        .iter()
        .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    Ok((rest, value))
}
