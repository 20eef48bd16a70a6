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
//! - A `Name <addr>` wrapper is taken off only when `Name` is an RFC 5322 display name (or the
//!   one named quirk, the address repeated): `a@x.test RCPT TO:<b@x.test>` is refused
//!   ([`InvalidAddress::NotADisplayName`]), not verified as `b@x.test`.
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
            let bare = angle_addr(&to.text).map_err(|e| located(e, |at| to.origin(at)))?;
            Cow::Owned(bare.to_owned())
        }
        None => Cow::Borrowed(angle_addr(text).map_err(|e| located(e, |at| start + at))?),
    };
    if reduced.is_empty() {
        return Err(InvalidAddress::Empty);
    }
    Ok(reduced)
}

/// `error` with an offset counted in a part of the input moved to count in the input.
fn located(error: InvalidAddress, in_raw: impl Fn(usize) -> usize) -> InvalidAddress {
    match error {
        InvalidAddress::NotADisplayName { ch, at } => {
            InvalidAddress::NotADisplayName { ch, at: in_raw(at) }
        }
        other => other,
    }
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

/// The `to` part of a `mailto:` link, percent-decoded and trimmed, with where each of its bytes
/// came from in the raw input.
struct MailtoTo {
    text: String,
    /// For each byte of `text`, the offset in the raw input of the byte or `%` escape it was
    /// decoded from.
    origins: Vec<usize>,
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
            origins: origins[start..end].to_vec(),
        })
    }

    /// The offset in the raw input of byte `at` of the decoded text.
    fn origin(&self, at: usize) -> usize {
        self.origins.get(at).copied().unwrap_or(usize::MAX)
    }
}

fn hex_value(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// ```text
/// name-addr     = [display-name] angle-addr / repeated-addr   ; RFC 5322 §3.4
/// display-name  = phrase
/// phrase        = word *( word / "." / CFWS )                 ; §3.2.5 phrase, §4.1 obs-phrase
/// word          = atom / quoted-string                        ; §3.2.5
/// atom          = [CFWS] 1*atext [CFWS]                       ; §3.2.3
/// atext         = ALPHA / DIGIT / "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" /
///                 "/" / "=" / "?" / "^" / "_" / "`" / "{" / "|" / "}" / "~" /
///                 UTF8-non-ascii                              ; RFC 6532 §3.2
/// quoted-string = [CFWS] DQUOTE *( qcontent / SP ) DQUOTE [CFWS]   ; §3.2.4
/// qcontent      = qtext / quoted-pair
/// qtext         = %d33 / %d35-91 / %d93-126 / UTF8-non-ascii
/// quoted-pair   = "\" ( VCHAR / SP / UTF8-non-ascii )           ; §3.2.1
/// CFWS          = 1*( SP / comment )                          ; §3.2.2, folding excluded
/// comment       = "(" *( ctext / quoted-pair / comment / SP ) ")"
/// ctext         = %d33-39 / %d42-91 / %d93-126 / UTF8-non-ascii
/// angle-addr    = [CFWS] "<" *WS addr-spec *WS ">" *WS
/// repeated-addr = addr-spec *WS "<" *WS addr-spec *WS ">" *WS    ; quirk, see below
/// WS            = <Unicode White_Space or U+FEFF, which the caller trims at the ends>
/// ```
///
/// The mailbox inside the angle brackets if `text` has them outside quotes and comments, else
/// `text` itself, for the grammar to judge as an `addr-spec`. White space in a phrase is SP
/// only: CR, LF and HTAB (RFC 5322's FWS) never get this far, and non-ASCII spaces such as
/// U+00A0 are atext, as RFC 6532 has it. A quoted name may hold `<` and `>`, a comment may
/// hold `<`.
///
/// Text before the `<` that is not a phrase (an unquoted `@`, `:`, `,`, `;`, `<`, `>`, `[`, `]`,
/// `\`, `)`, or a dot before the first word) is refused: `a@x.test RCPT TO:<b@x.test>` is no
/// name and an address, and verifying `b@x.test` would answer a question nobody asked. Text
/// after the closing `>` is refused too, comments included: it would be a second address or a
/// comment, and guessing which is not this layer's job.
///
/// Quirk `repeated-addr`: CRM and spreadsheet exports write the address as its own display name,
/// unquoted (`alice@example.com <alice@example.com>`). It is accepted when the two are the same
/// address, ASCII case aside.
fn angle_addr(text: &str) -> Result<&str, InvalidAddress> {
    let (open, misfit) = match display_name(text) {
        DisplayName::Ends { open } => (open, None),
        DisplayName::NoAngle => return Ok(text),
        DisplayName::Misfit { ch, at } => match first_unquoted(text, b'<') {
            Some(open) => (open, Some(InvalidAddress::NotADisplayName { ch, at })),
            // Not `Name <addr>` at all: an addr-spec, for the grammar to judge.
            None => return Ok(text),
        },
    };
    let inner = &text[open + 1..];
    // The address itself may quote a '>' ("a>b"@example.com), so the close is searched for
    // outside quotes too.
    let close = first_unquoted(inner, b'>');
    if let Some(error) = misfit {
        let repeated = close.is_some_and(|close| {
            trim(&inner[close + 1..]).is_empty()
                && is_repeated_address(&text[..open], &inner[..close])
        });
        if !repeated {
            return Err(error);
        }
    }
    let Some(close) = close else {
        return Err(InvalidAddress::UnclosedAngle);
    };
    if !trim(&inner[close + 1..]).is_empty() {
        return Err(InvalidAddress::TextAfterAngle);
    }
    Ok(trim(&inner[..close]))
}

/// Quirk `repeated-addr`: the unquoted "display name" is the address in the brackets again.
fn is_repeated_address(name: &str, address: &str) -> bool {
    let name = trim(name);
    !name.is_empty() && name.eq_ignore_ascii_case(trim(address))
}

/// Where a display name ends, read from the start of the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DisplayName {
    /// At the `<` at offset `open`: everything before it is a phrase, CFWS or nothing.
    Ends { open: usize },
    /// The text ends without a `<` outside quoted strings and comments.
    NoAngle,
    /// `ch` at offset `at` cannot stand in a phrase.
    Misfit { ch: char, at: usize },
}

/// Reads `phrase` (or `CFWS`, or nothing) up to the first `<` outside quoted strings and
/// comments; see [`angle_addr`] for the grammar.
fn display_name(text: &str) -> DisplayName {
    let bytes = text.as_bytes();
    let misfit = |at: usize| DisplayName::Misfit {
        ch: char::from(bytes[at]),
        at,
    };
    let mut words = false;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'<' => return DisplayName::Ends { open: i },
            b' ' => i += 1,
            b'(' => match comment_len(&bytes[i..]) {
                Some(len) => i += len,
                None => return misfit(i),
            },
            b'"' => match quoted_string_len(&bytes[i..]) {
                Some(len) => {
                    i += len;
                    words = true;
                }
                None => return misfit(i),
            },
            b'.' if words => i += 1,
            // Bytes of non-ASCII characters are atext (RFC 6532), C1 controls excepted, which
            // were refused before.
            b if is_atext(b) || !b.is_ascii() => {
                i += 1;
                words = true;
            }
            // Every byte seen here is ASCII, so it is a whole character.
            _ => return misfit(i),
        }
    }
    DisplayName::NoAngle
}

/// ASCII `atext` (RFC 5322 §3.2.3).
fn is_atext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b)
}

/// The length of the quoted string at the start of `bytes` (which starts with `"`), closing
/// quote included; `None` if it is not closed.
fn quoted_string_len(bytes: &[u8]) -> Option<usize> {
    let mut i = 1;
    loop {
        match bytes.get(i)? {
            b'"' => return Some(i + 1),
            // A quoted pair; a non-ASCII character after the backslash is left partly for the
            // next turns, whose bytes are all qtext.
            b'\\' => {
                bytes.get(i + 1)?;
                i += 2;
            }
            _ => i += 1,
        }
    }
}

/// The length of the comment at the start of `bytes` (which starts with `(`), nested comments
/// and closing parenthesis included; `None` if it is not closed.
fn comment_len(bytes: &[u8]) -> Option<usize> {
    let mut depth = 0_usize;
    let mut i = 0;
    loop {
        match bytes.get(i)? {
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            b'\\' => {
                bytes.get(i + 1)?;
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
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
            ("<alice@example.com>", "alice@example.com"),
            ("< alice@example.com >", "alice@example.com"),
            ("<\"a>b\"@example.com>", "\"a>b\"@example.com"),
            ("\"quoted\"@example.com", "\"quoted\"@example.com"),
            ("\"a<b\"@example.com", "\"a<b\"@example.com"),
        ] {
            assert_eq!(bare_mailbox(raw).as_deref(), Ok(bare), "{raw:?}");
        }
    }

    /// Everything RFC 5322 (with RFC 6532's UTF-8) calls a display name, and the one quirk.
    #[test]
    fn display_names_that_are_phrases_are_taken_off() {
        for raw in [
            "Alice Example <alice@example.com>",
            "Alice<alice@example.com>",
            "\"Example, Alice <CEO>\" <alice@example.com>",
            "\"Alice \\\"Al\\\" Example\" <alice@example.com>",
            "Anna Müller <alice@example.com>",
            "Anna\u{a0}Müller <alice@example.com>",
            "山田 太郎 <alice@example.com>",
            "J. R. R. Tolkien <alice@example.com>",
            "Alice.Example <alice@example.com>",
            "Alice \"The Boss\" Example <alice@example.com>",
            "O'Brien-Smith <alice@example.com>",
            "!#$%&'*+-/=?^_`{|}~ <alice@example.com>",
            "Alice (Sales) <alice@example.com>",
            "Alice (the <boss>, (really)) <alice@example.com>",
            "Alice (a \\) b) <alice@example.com>",
            "(Alice) <alice@example.com>",
            "mailto:Alice <alice@example.com>",
            "mailto:Alice%20Example%20%3Calice@example.com%3E",
            // Quirk `repeated-addr`: the address as its own unquoted display name.
            "alice@example.com <alice@example.com>",
            "Alice@Example.COM  < alice@example.com >",
            "alice@example.com<alice@example.com>",
            "\u{a0}alice@example.com\u{a0}<alice@example.com>",
        ] {
            assert_eq!(
                bare_mailbox(raw).as_deref(),
                Ok("alice@example.com"),
                "{raw:?}"
            );
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
            (
                "mailto:Alice%20%3Ca@example.com%3E%0D%0ARCPT",
                encoded('\r', 34),
            ),
        ] {
            assert_eq!(bare_mailbox(raw), Err(error), "{raw:?}");
        }
        // The query is not decoded: what follows '?' never reaches the address.
        assert_eq!(
            bare_mailbox("mailto:alice@example.com?body=%0D%0A").as_deref(),
            Ok("alice@example.com")
        );
    }

    /// Text before `<` that is no phrase: the line is not `Name <addr>`, and the address in its
    /// brackets is not verified in its place. Offsets count bytes of the input as given.
    #[test]
    fn text_before_the_angle_that_is_no_display_name_is_refused() {
        let misfit = |ch, at| InvalidAddress::NotADisplayName { ch, at };
        for (raw, error) in [
            ("a@x.test RCPT TO:<b@x.test>", misfit('@', 1)),
            ("RCPT TO:<b@x.test>", misfit(':', 7)),
            ("x@y.test, <b@x.test>", misfit('@', 1)),
            ("foo: <a@b.test>", misfit(':', 3)),
            ("  foo: <a@b.test>", misfit(':', 5)),
            ("Doe, John <john@example.com>", misfit(',', 3)),
            ("Alice; <alice@example.com>", misfit(';', 5)),
            ("[Alice] <alice@example.com>", misfit('[', 0)),
            ("Alice] <alice@example.com>", misfit(']', 5)),
            ("Alice) <alice@example.com>", misfit(')', 5)),
            ("Alice (unclosed <alice@example.com>", misfit('(', 6)),
            ("Al\\ice <alice@example.com>", misfit('\\', 2)),
            (". Alice <alice@example.com>", misfit('.', 0)),
            ("(c). Alice <alice@example.com>", misfit('.', 3)),
            ("Alice > <alice@example.com>", misfit('>', 6)),
            ("\"Alice\" > <alice@example.com>", misfit('>', 8)),
            // Quirk `repeated-addr` only for the same address.
            ("alice@example.com <bob@example.com>", misfit('@', 5)),
            ("alice@example.com <alice@example.org>", misfit('@', 5)),
            ("alice@example.com <alice@example.com", misfit('@', 5)),
            ("alice@example.com <alice@example.com> x", misfit('@', 5)),
            ("a@x.test <a@x.test>, <b@x.test>", misfit('@', 1)),
            // A '<' inside a comment is no angle, so the '@' after the comment is the misfit.
            ("x (<b@x.test>) c@d <e@f.test>", misfit('@', 16)),
            // In a mailto: link, where the escape that encodes the character begins.
            ("mailto:a%40x.test <b@x.test>", misfit('@', 8)),
            ("mailto:foo:<b@x.test>", misfit(':', 10)),
        ] {
            assert_eq!(bare_mailbox(raw), Err(error), "{raw:?}");
        }
    }

    /// Without a `<` outside quotes and comments there is no `Name <addr>`: the text is left
    /// whole for the mailbox grammar, which refuses what no addr-spec can hold.
    #[test]
    fn text_without_an_angle_is_left_for_the_grammar() {
        for raw in [
            "\"Alice <alice@example.com>",
            "Alice (<alice@example.com>)",
            "john(comment)@example.com",
            "a@x.test RCPT TO:b@x.test",
        ] {
            assert_eq!(bare_mailbox(raw).as_deref(), Ok(raw), "{raw:?}");
        }
    }
}
