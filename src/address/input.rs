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
//! Nothing else is changed: what is left is judged by the mailbox grammar, byte for byte.

use std::borrow::Cow;

use super::InvalidAddress;

/// What surrounds a mailbox and is not part of it, taken off `raw`.
pub(super) fn bare_mailbox(raw: &str) -> Result<Cow<'_, str>, InvalidAddress> {
    let text = trim(raw);
    let text = match strip_prefix_ignore_case(text, "mailto:") {
        Some(uri) => Cow::Owned(mailto_mailbox(uri)?),
        None => Cow::Borrowed(text),
    };
    let reduced = match text {
        Cow::Borrowed(text) => Cow::Borrowed(angle_addr(text)?),
        Cow::Owned(text) => Cow::Owned(angle_addr(&text)?.to_owned()),
    };
    if reduced.is_empty() {
        return Err(InvalidAddress::Empty);
    }
    Ok(reduced)
}

/// Whitespace and a byte-order mark off both ends.
fn trim(text: &str) -> &str {
    text.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}')
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// ```text
/// mailtoURI = "mailto:" [ to ] [ hfields ]       ; RFC 6068 §2
/// ```
///
/// The `to` part, percent-decoded. Several addresses (`a@x,b@y`) are left for the grammar to
/// refuse: a probe takes one address per line.
fn mailto_mailbox(uri: &str) -> Result<String, InvalidAddress> {
    let to = uri.split_once('?').map_or(uri, |(to, _)| to);
    let mut decoded = Vec::with_capacity(to.len());
    let mut bytes = to.bytes();
    while let Some(b) = bytes.next() {
        if b != b'%' {
            decoded.push(b);
            continue;
        }
        let high = bytes.next().and_then(hex_value);
        let low = bytes.next().and_then(hex_value);
        match (high, low) {
            (Some(high), Some(low)) => decoded.push(high << 4 | low),
            _ => return Err(InvalidAddress::BadPercentEncoding),
        }
    }
    let decoded = String::from_utf8(decoded).map_err(|_| InvalidAddress::BadPercentEncoding)?;
    Ok(trim(&decoded).to_owned())
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
            ("  alice@example.com \t", "alice@example.com"),
            ("\u{feff}alice@example.com\r\n", "alice@example.com"),
            ("\u{a0}alice@example.com\u{3000}", "alice@example.com"),
            ("mailto:alice@example.com", "alice@example.com"),
            ("MAILTO:alice@example.com?subject=hi", "alice@example.com"),
            ("mailto:alice%40example.com", "alice@example.com"),
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
            (" \t ", InvalidAddress::Empty),
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

    #[test]
    fn percent_decoding_can_reveal_injection_bytes_for_the_grammar_to_refuse() {
        assert_eq!(
            bare_mailbox("mailto:a%0D%0ADATA@example.com").as_deref(),
            Ok("a\r\nDATA@example.com")
        );
    }
}
