//! The input layer: an address as people write it, reduced to the bare mailbox.
//!
//! Addresses arrive from forms, CRM exports and ten-year-old CSV files, so before the grammar is
//! applied this layer takes off what surrounds a mailbox without being part of it:
//!
//! - whitespace around it (Unicode `White_Space`, which includes the no-break space) and a
//!   byte-order mark, which spreadsheet exports put in front of the first line;
//! - a `mailto:` scheme (RFC 6068), case-insensitive, with its `?query` dropped and its
//!   percent-encoding decoded;
//! - a display name and angle brackets: `Alice Example <alice@example.com>`,
//!   `"Example, Alice" <alice@example.com>`, or just `<alice@example.com>` (RFC 5322 §3.4
//!   `name-addr`).
//!
//! # Guarantees
//!
//! - A control character anywhere in the input (C0, DEL, C1: CR, LF, TAB, NUL, NEL …) refuses
//!   it, before anything is trimmed or taken apart ([`InvalidAddress::ControlCharacter`]); so
//!   does one that a `mailto:` link's `%` escapes decode to
//!   ([`InvalidAddress::EncodedControlCharacter`]). Whitespace trimmed off is never a control
//!   character, so what is verified is the line the verdict is printed under.
//! - The offsets of these errors count bytes of the input as given (for a character that came
//!   out of a `%` escape, where the escape begins).
//!
//! Nothing else is changed: what is left is judged by the mailbox grammar, byte for byte.

use std::borrow::Cow;

use super::{InvalidAddress, control};

/// What surrounds a mailbox and is not part of it, taken off `raw`.
pub(super) fn bare_mailbox(raw: &str) -> Result<Cow<'_, str>, InvalidAddress> {
    if let Some((at, ch)) = control::first(raw) {
        return Err(InvalidAddress::ControlCharacter { ch, at });
    }
    let text = trim(raw);
    let start = raw.len() - trim_start(raw).len();
    let reduced = match strip_prefix_ignore_case(text, "mailto:") {
        Some(uri) => {
            let to = MailtoTo::decode(uri, start + "mailto:".len())?;
            Cow::Owned(angle_addr(&to.text)?.to_owned())
        }
        None => Cow::Borrowed(angle_addr(text)?),
    };
    if reduced.is_empty() {
        return Err(InvalidAddress::Empty);
    }
    Ok(reduced)
}

/// Whitespace and a byte-order mark.
fn is_trimmed(c: char) -> bool {
    c.is_whitespace() || c == '\u{feff}'
}

/// Whitespace and a byte-order mark off both ends.
fn trim(text: &str) -> &str {
    text.trim_matches(is_trimmed)
}

fn trim_start(text: &str) -> &str {
    text.trim_start_matches(is_trimmed)
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// The `to` part of a `mailto:` link, percent-decoded and trimmed.
struct MailtoTo {
    text: String,
}

impl MailtoTo {
    /// ```text
    /// mailtoURI = "mailto:" [ to ] [ hfields ]       ; RFC 6068 §2
    /// ```
    ///
    /// `uri` follows `mailto:`, which ends at offset `base` of the raw input. Several addresses
    /// (`a@x,b@y`) are left for the grammar to refuse: a probe takes one address per line.
    fn decode(uri: &str, base: usize) -> Result<Self, InvalidAddress> {
        let to = uri.split_once('?').map_or(uri, |(to, _)| to);
        let mut decoded = Vec::with_capacity(to.len());
        let mut origins = Vec::with_capacity(to.len());
        let mut bytes = to.bytes().enumerate();
        while let Some((i, b)) = bytes.next() {
            origins.push(base + i);
            if b != b'%' {
                decoded.push(b);
                continue;
            }
            let high = bytes.next().and_then(|(_, b)| hex_value(b));
            let low = bytes.next().and_then(|(_, b)| hex_value(b));
            match (high, low) {
                (Some(high), Some(low)) => decoded.push(high << 4 | low),
                _ => return Err(InvalidAddress::BadPercentEncoding),
            }
        }
        let decoded = String::from_utf8(decoded).map_err(|_| InvalidAddress::BadPercentEncoding)?;
        // The raw input holds no control character, so one here came out of an escape.
        if let Some((at, ch)) = control::first(&decoded) {
            return Err(InvalidAddress::EncodedControlCharacter {
                ch,
                at: origins.get(at).copied().unwrap_or(base),
            });
        }
        let start = decoded.len() - trim_start(&decoded).len();
        let end = start + trim(&decoded).len();
        Ok(Self {
            text: decoded[start..end].to_owned(),
        })
    }
}

fn hex_value(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// ```text
/// name-addr  = [display-name] angle-addr       ; RFC 5322 §3.4
/// angle-addr = [CFWS] "<" addr-spec ">" [CFWS]
/// ```
///
/// The mailbox inside the angle brackets if `text` has them, else `text` itself. The display
/// name is not checked (exports put anything there, an unquoted `@` included); a quoted one may
/// hold `<` and `>`. Text after the closing `>` is refused: it would be a second address or a
/// comment, and guessing which is not this layer's job.
fn angle_addr(text: &str) -> Result<&str, InvalidAddress> {
    let Some(open) = first_unquoted(text, b'<') else {
        return Ok(text);
    };
    let inner = &text[open + 1..];
    // The address itself may quote a '>' ("a>b"@example.com), so the close is searched for
    // outside quotes too.
    let Some(close) = first_unquoted(inner, b'>') else {
        return Err(InvalidAddress::UnclosedAngle);
    };
    if !trim(&inner[close + 1..]).is_empty() {
        return Err(InvalidAddress::TextAfterAngle);
    }
    Ok(trim(&inner[..close]))
}

/// The offset of the first `wanted` outside a quoted string (with `\` escapes inside quotes).
fn first_unquoted(text: &str, wanted: u8) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, b) in text.bytes().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            b if b == wanted && !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_reduce_to_the_mailbox() {
        for (raw, bare) in [
            ("alice@example.com", "alice@example.com"),
            ("  alice@example.com  ", "alice@example.com"),
            ("\u{feff}alice@example.com", "alice@example.com"),
            ("\u{a0}alice@example.com\u{3000}", "alice@example.com"),
            ("mailto:alice@example.com", "alice@example.com"),
            ("MAILTO:alice@example.com?subject=hi", "alice@example.com"),
            ("mailto:alice%40example.com", "alice@example.com"),
            ("mailto:%20alice@example.com%20", "alice@example.com"),
            (
                "mailto:%22john%20doe%22@example.com",
                "\"john doe\"@example.com",
            ),
            ("Alice Example <alice@example.com>", "alice@example.com"),
            ("<alice@example.com>", "alice@example.com"),
            ("< alice@example.com >", "alice@example.com"),
            (
                "\"Example, Alice <CEO>\" <alice@example.com>",
                "alice@example.com",
            ),
            ("alice@example.com <alice@example.com>", "alice@example.com"),
            ("<\"a>b\"@example.com>", "\"a>b\"@example.com"),
            ("mailto:Alice <alice@example.com>", "alice@example.com"),
            ("\"quoted\"@example.com", "\"quoted\"@example.com"),
        ] {
            assert_eq!(bare_mailbox(raw).as_deref(), Ok(bare), "{raw:?}");
        }
    }

    #[test]
    fn broken_forms_say_what_is_wrong() {
        for (raw, error) in [
            ("", InvalidAddress::Empty),
            ("   ", InvalidAddress::Empty),
            ("mailto:", InvalidAddress::Empty),
            ("<>", InvalidAddress::Empty),
            ("Alice <alice@example.com", InvalidAddress::UnclosedAngle),
            (
                "<alice@example.com> (Alice)",
                InvalidAddress::TextAfterAngle,
            ),
            (
                "<a@example.com>, <b@example.com>",
                InvalidAddress::TextAfterAngle,
            ),
            (
                "Alice <a@example.com> <b@example.com>",
                InvalidAddress::TextAfterAngle,
            ),
            (
                "mailto:alice%4@example.com",
                InvalidAddress::BadPercentEncoding,
            ),
            (
                "mailto:alice%zz@example.com",
                InvalidAddress::BadPercentEncoding,
            ),
            (
                "mailto:alice%ff@example.com",
                InvalidAddress::BadPercentEncoding,
            ),
            ("mailto:alice%", InvalidAddress::BadPercentEncoding),
        ] {
            assert_eq!(bare_mailbox(raw), Err(error), "{raw:?}");
        }
    }

    /// A control character anywhere refuses the input, at its offset in the input as given:
    /// nothing is trimmed off first and nothing is read out of angle brackets around it.
    #[test]
    fn control_characters_anywhere_are_refused_before_anything_else() {
        let control = |ch, at| InvalidAddress::ControlCharacter { ch, at };
        for (raw, error) in [
            ("alice@example.com\r\n", control('\r', 17)),
            ("alice@example.com\n", control('\n', 17)),
            ("  alice@example.com \t", control('\t', 20)),
            ("\talice@example.com", control('\t', 0)),
            ("\u{feff}\r\nalice@example.com", control('\r', 3)),
            ("a@x.test\r\nRCPT TO:<b@x.test>", control('\r', 8)),
            ("Alice\r\n<alice@example.com>", control('\r', 5)),
            ("<alice@example.com>\r\nDATA", control('\r', 19)),
            ("\"a\0b\"@example.com", control('\0', 2)),
            ("alice@example.com\u{b}", control('\u{b}', 17)),
            ("alice\u{1b}[31m@example.com", control('\u{1b}', 5)),
            ("alice@example.com\u{7f}", control('\u{7f}', 17)),
            ("Müller\u{85}<alice@example.com>", control('\u{85}', 7)),
            ("alice@example.com\u{9b}", control('\u{9b}', 17)),
            ("mailto:alice@example.com\r\n", control('\r', 24)),
            // Before the '%' escapes are decoded, which would refuse them otherwise.
            ("mailto:%zz\r", control('\r', 10)),
            (" \u{3000}\u{a0}\n", control('\n', 6)),
        ] {
            assert_eq!(bare_mailbox(raw), Err(error), "{raw:?}");
        }
    }

    #[test]
    fn percent_escapes_that_decode_to_control_characters_are_refused_where_they_stand() {
        let encoded = |ch, at| InvalidAddress::EncodedControlCharacter { ch, at };
        for (raw, error) in [
            ("mailto:a%0D%0ADATA@example.com", encoded('\r', 8)),
            ("  mailto:a%0a@example.com", encoded('\n', 10)),
            ("mailto:alice@example.com%00", encoded('\0', 24)),
            ("mailto:%09alice@example.com", encoded('\t', 7)),
            ("mailto:alice@example.com%7F", encoded('\u{7f}', 24)),
            ("mailto:a%C2%85@example.com", encoded('\u{85}', 8)),
        ] {
            assert_eq!(bare_mailbox(raw), Err(error), "{raw:?}");
        }
        // The query is not decoded: what follows '?' never reaches the address.
        assert_eq!(
            bare_mailbox("mailto:alice@example.com?body=%0D%0A").as_deref(),
            Ok("alice@example.com")
        );
    }
}
