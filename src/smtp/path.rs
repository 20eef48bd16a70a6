//! The wire grammar of what goes between `<` and `>` in MAIL FROM and RCPT TO, and of the
//! EHLO/HELO argument (RFC 5321 §4.1.2, extended for UTF-8 by RFC 6531 §3.3).
//!
//! This is the last gate before bytes reach a server: the command encoder refuses anything these
//! checks refuse. User-facing parsing — trimming, `Name <addr>` forms, IDNA, normalisation — is
//! the job of the address layer, which produces mailboxes that pass here.
//!
//! Guarantees: a mailbox or HELO name accepted here contains no CR, LF, NUL, other control byte,
//! or DEL; no SP, `<` or `>` outside a quoted local part; is within the RFC's length limits; and
//! holds bytes above 127 only as well-formed UTF-8, and only when the caller allows SMTPUTF8.

use std::fmt;

/// Longest mailbox, in octets: a Path is at most 256 octets including `<` and `>`
/// (RFC 5321 §4.5.3.1.3).
pub const MAX_MAILBOX_LEN: usize = 254;
/// Longest local part, in octets (RFC 5321 §4.5.3.1.1).
pub const MAX_LOCAL_PART_LEN: usize = 64;
/// Longest domain, in octets (RFC 5321 §4.5.3.1.2).
pub const MAX_DOMAIN_LEN: usize = 255;
/// Longest domain label, in octets (RFC 1035 §2.3.4).
pub const MAX_LABEL_LEN: usize = 63;

/// Why a mailbox or HELO name cannot be written into a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// Nothing to write.
    Empty,
    /// CR, LF, NUL, another control byte or DEL: could end the command line early and smuggle
    /// in another command.
    ForbiddenByte {
        /// The byte.
        byte: u8,
        /// Its offset in the argument.
        at: usize,
    },
    /// A Unicode control character (C1, such as NEL) or line or paragraph separator, which
    /// some software treats as a line break.
    ForbiddenChar {
        /// The character.
        ch: char,
        /// Its byte offset in the argument.
        at: usize,
    },
    /// A byte above 127 where the server was not asked for SMTPUTF8.
    NonAscii {
        /// Offset of the first such byte.
        at: usize,
    },
    /// Bytes above 127 that are not well-formed UTF-8.
    InvalidUtf8 {
        /// Offset of the first bad byte.
        at: usize,
    },
    /// The mailbox exceeds [`MAX_MAILBOX_LEN`] octets.
    MailboxTooLong {
        /// Its length in octets.
        len: usize,
    },
    /// The local part exceeds [`MAX_LOCAL_PART_LEN`] octets.
    LocalPartTooLong {
        /// Its length in octets.
        len: usize,
    },
    /// The domain exceeds [`MAX_DOMAIN_LEN`] octets.
    DomainTooLong {
        /// Its length in octets.
        len: usize,
    },
    /// No `@` between local part and domain.
    MissingAt,
    /// The local part is neither a Dot-string nor a Quoted-string.
    InvalidLocalPart {
        /// Offset of the first byte that breaks the grammar.
        at: usize,
    },
    /// The domain is neither a Domain nor an address literal.
    InvalidDomain {
        /// Offset of the first byte that breaks the grammar.
        at: usize,
    },
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Empty => f.write_str("is empty"),
            Self::ForbiddenByte { byte, at } => {
                let name = match byte {
                    b'\r' => "CR".to_owned(),
                    b'\n' => "LF".to_owned(),
                    0 => "NUL".to_owned(),
                    other => format!("control byte 0x{other:02x}"),
                };
                write!(
                    f,
                    "contains {name} at byte {at}, which could inject an SMTP command"
                )
            }
            Self::ForbiddenChar { ch, at } => write!(
                f,
                "contains the character U+{:04X} at byte {at}, which some servers read as a line break",
                u32::from(ch)
            ),
            Self::NonAscii { at } => write!(
                f,
                "contains a non-ASCII byte at {at}, which needs a server that offers SMTPUTF8"
            ),
            Self::InvalidUtf8 { at } => write!(f, "contains invalid UTF-8 at byte {at}"),
            Self::MailboxTooLong { len } => write!(
                f,
                "is {len} octets long; RFC 5321 allows at most {MAX_MAILBOX_LEN}"
            ),
            Self::LocalPartTooLong { len } => write!(
                f,
                "has a local part of {len} octets; RFC 5321 allows at most {MAX_LOCAL_PART_LEN}"
            ),
            Self::DomainTooLong { len } => write!(
                f,
                "has a domain of {len} octets; RFC 5321 allows at most {MAX_DOMAIN_LEN}"
            ),
            Self::MissingAt => f.write_str("has no '@' between local part and domain"),
            Self::InvalidLocalPart { at } => write!(
                f,
                "has an invalid local part (byte {at} breaks the RFC 5321 grammar)"
            ),
            Self::InvalidDomain { at } => write!(
                f,
                "has an invalid domain (byte {at} breaks the RFC 5321 grammar)"
            ),
        }
    }
}

impl std::error::Error for PathError {}

/// Checks a mailbox for `MAIL FROM:<…>` or `RCPT TO:<…>`.
///
/// ```text
/// Mailbox        = Local-part "@" ( Domain / address-literal )
/// Local-part     = Dot-string / Quoted-string
/// Dot-string     = Atom *("."  Atom)
/// Atom           = 1*atext
/// Quoted-string  = DQUOTE *QcontentSMTP DQUOTE
/// QcontentSMTP   = qtextSMTP / quoted-pairSMTP
/// quoted-pairSMTP = %d92 %d32-126
/// qtextSMTP      = %d32-33 / %d35-91 / %d93-126
/// atext          =/ UTF8-non-ascii     ; RFC 6531, with SMTPUTF8 only
/// qtextSMTP      =/ UTF8-non-ascii     ; RFC 6531, with SMTPUTF8 only
/// ```
///
/// `smtputf8` says whether the transaction was opened with the SMTPUTF8 parameter; without it
/// every byte must be ASCII.
pub fn check_mailbox(mailbox: &[u8], smtputf8: bool) -> Result<(), PathError> {
    check_bytes(mailbox, smtputf8)?;
    if mailbox.len() > MAX_MAILBOX_LEN {
        return Err(PathError::MailboxTooLong { len: mailbox.len() });
    }
    let local_end = local_part_len(mailbox)?;
    if local_end > MAX_LOCAL_PART_LEN {
        return Err(PathError::LocalPartTooLong { len: local_end });
    }
    match mailbox.get(local_end) {
        Some(b'@') => {}
        None => return Err(PathError::MissingAt),
        Some(_) => return Err(PathError::InvalidLocalPart { at: local_end }),
    }
    let domain_start = local_end + 1;
    let domain = &mailbox[domain_start..];
    if domain.len() > MAX_DOMAIN_LEN {
        return Err(PathError::DomainTooLong { len: domain.len() });
    }
    domain_or_literal(domain).map_err(|at| PathError::InvalidDomain {
        at: domain_start + at,
    })
}

/// Checks the argument of EHLO or HELO: a Domain or an address literal, ASCII only
/// (RFC 5321 §4.1.1.1; RFC 6531 §3.7.1 keeps it ASCII even with SMTPUTF8).
pub fn check_helo_name(name: &[u8]) -> Result<(), PathError> {
    check_bytes(name, false)?;
    if name.len() > MAX_DOMAIN_LEN {
        return Err(PathError::DomainTooLong { len: name.len() });
    }
    domain_or_literal(name).map_err(|at| PathError::InvalidDomain { at })
}

/// The rules every byte obeys, whatever its place: no controls, ASCII unless SMTPUTF8, and then
/// well-formed UTF-8.
fn check_bytes(bytes: &[u8], smtputf8: bool) -> Result<(), PathError> {
    if bytes.is_empty() {
        return Err(PathError::Empty);
    }
    if let Some(at) = bytes.iter().position(|&b| b < 0x20 || b == 0x7f) {
        return Err(PathError::ForbiddenByte {
            byte: bytes[at],
            at,
        });
    }
    if let Some(at) = bytes.iter().position(|b| !b.is_ascii()) {
        if !smtputf8 {
            return Err(PathError::NonAscii { at });
        }
        let text = std::str::from_utf8(bytes).map_err(|error| PathError::InvalidUtf8 {
            at: error.valid_up_to(),
        })?;
        // RFC 6531 admits any UTF-8, but C1 controls (NEL among them) and the Unicode line and
        // paragraph separators are line breaks to some software: refused like CR and LF.
        if let Some((at, ch)) = text
            .char_indices()
            .find(|&(_, ch)| ch.is_control() || matches!(ch, '\u{2028}' | '\u{2029}'))
        {
            return Err(PathError::ForbiddenChar { ch, at });
        }
    }
    Ok(())
}

/// The length of the local part at the front of `mailbox`: a Quoted-string or a Dot-string.
fn local_part_len(mailbox: &[u8]) -> Result<usize, PathError> {
    if mailbox.first() == Some(&b'"') {
        quoted_string_len(mailbox)
    } else {
        dot_string_len(mailbox)
    }
}

/// ```text
/// Quoted-string = DQUOTE *QcontentSMTP DQUOTE
/// ```
fn quoted_string_len(input: &[u8]) -> Result<usize, PathError> {
    let mut i = 1;
    while let Some(&b) = input.get(i) {
        match b {
            b'"' => return Ok(i + 1),
            // quoted-pairSMTP: a backslash and one printable ASCII byte (controls are already
            // refused by `check_bytes`).
            b'\\' => match input.get(i + 1) {
                Some(&next) if (0x20..=0x7e).contains(&next) => i += 2,
                _ => return Err(PathError::InvalidLocalPart { at: i + 1 }),
            },
            // qtextSMTP: every remaining byte is %d32-126 or UTF-8 (already checked).
            _ => i += 1,
        }
    }
    Err(PathError::InvalidLocalPart { at: input.len() })
}

/// ```text
/// Dot-string = Atom *("."  Atom)
/// ```
fn dot_string_len(input: &[u8]) -> Result<usize, PathError> {
    let mut atom_len = 0;
    for (i, &b) in input.iter().enumerate() {
        match b {
            b'.' if atom_len == 0 => return Err(PathError::InvalidLocalPart { at: i }),
            b'.' => atom_len = 0,
            b if is_atext(b) => atom_len += 1,
            _ if atom_len == 0 => return Err(PathError::InvalidLocalPart { at: i }),
            _ => return Ok(i),
        }
    }
    Ok(input.len())
}

/// `atext` of RFC 5322 §3.2.3, plus the bytes of UTF-8 sequences (RFC 6531), whose
/// well-formedness `check_bytes` has already established.
fn is_atext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b) || b >= 0x80
}

/// ```text
/// Domain                = sub-domain *("." sub-domain)
/// sub-domain            = Let-dig [Ldh-str]          ; =/ U-label (RFC 6531)
/// Let-dig               = ALPHA / DIGIT
/// Ldh-str               = *( ALPHA / DIGIT / "-" ) Let-dig
/// address-literal       = "[" ( IPv4-address-literal / IPv6-address-literal /
///                               General-address-literal ) "]"
/// IPv4-address-literal  = Snum 3("."  Snum)
/// IPv6-address-literal  = "IPv6:" IPv6-addr
/// ```
///
/// Returns the offset of the first offending byte on failure (for an address literal, of its
/// opening bracket). A General-address-literal needs a tag "registered with IANA" and none is,
/// so only IPv4 and IPv6 literals pass — which also keeps `<`, `>` and other `dcontent` bytes
/// that a careless server could read as the end of the path out of the command.
fn domain_or_literal(domain: &[u8]) -> Result<(), usize> {
    if domain.first() == Some(&b'[') {
        return match domain.strip_prefix(b"[").and_then(|d| d.strip_suffix(b"]")) {
            Some(body) if is_address_literal(body) => Ok(()),
            _ => Err(0),
        };
    }
    let mut start = 0;
    for label in domain.split(|&b| b == b'.') {
        let bad = |offset: usize| Err(start + offset);
        if label.is_empty() {
            return bad(0);
        }
        // The 63-octet limit applies to a label's ASCII form; a U-label's A-label (punycode) is
        // shorter than its UTF-8, and is the address layer's to check after IDNA.
        if label.len() > MAX_LABEL_LEN && label.is_ascii() {
            return bad(MAX_LABEL_LEN);
        }
        if let Some(at) = label
            .iter()
            .position(|&b| !(b.is_ascii_alphanumeric() || b == b'-' || b >= 0x80))
        {
            return bad(at);
        }
        if label[0] == b'-' {
            return bad(0);
        }
        if label[label.len() - 1] == b'-' {
            return bad(label.len() - 1);
        }
        start += label.len() + 1;
    }
    Ok(())
}

/// The inside of an address literal: `IPv4-address-literal` or `IPv6-address-literal`.
fn is_address_literal(body: &[u8]) -> bool {
    const IPV6_TAG: &[u8] = b"IPv6:";
    match body.get(..IPV6_TAG.len()) {
        Some(tag) if tag.eq_ignore_ascii_case(IPV6_TAG) => is_ipv6_addr(&body[IPV6_TAG.len()..]),
        _ => is_ipv4_address(body),
    }
}

/// ```text
/// IPv4-address-literal = Snum 3("."  Snum)
/// Snum                 = 1*3DIGIT   ; representing a decimal integer value in the range 0-255
/// ```
fn is_ipv4_address(text: &[u8]) -> bool {
    let mut octets = 0;
    for snum in text.split(|&b| b == b'.') {
        if snum.is_empty() || snum.len() > 3 || !snum.iter().all(u8::is_ascii_digit) {
            return false;
        }
        let value = snum.iter().fold(0u16, |n, &d| n * 10 + u16::from(d - b'0'));
        if value > 255 {
            return false;
        }
        octets += 1;
    }
    octets == 4
}

/// ```text
/// IPv6-addr   = IPv6-full / IPv6-comp / IPv6v4-full / IPv6v4-comp
/// IPv6-hex    = 1*4HEXDIG
/// IPv6-full   = IPv6-hex 7(":" IPv6-hex)
/// IPv6-comp   = [IPv6-hex *5(":" IPv6-hex)] "::" [IPv6-hex *5(":" IPv6-hex)]
///               ; The "::" represents at least 2 16-bit groups of zeros. No more than
///               ; 6 groups in addition to the "::" may be present.
/// IPv6v4-full = IPv6-hex 5(":" IPv6-hex) ":" IPv4-address-literal
/// IPv6v4-comp = [IPv6-hex *3(":" IPv6-hex)] "::" [IPv6-hex *3(":" IPv6-hex) ":"]
///               IPv4-address-literal
///               ; No more than 4 groups in addition to the "::" and IPv4-address-literal.
/// ```
///
/// RFC 5321 §4.1.3's grammar, which is stricter than RFC 4291's text forms (`1:2:3:4:5:6:7::`
/// is not in it) and allows leading zeros in the embedded IPv4 address.
fn is_ipv6_addr(text: &[u8]) -> bool {
    // An embedded IPv4 address is the last part, after the last colon, if it holds a dot.
    let (hex, has_ipv4) = match text.iter().rposition(|&b| b == b':') {
        Some(colon) if text[colon..].contains(&b'.') => {
            if !is_ipv4_address(&text[colon + 1..]) {
                return false;
            }
            // Keep the colon before the IPv4 address when it is part of a "::".
            let keep = if colon > 0 && text[colon - 1] == b':' {
                colon + 1
            } else {
                colon
            };
            (&text[..keep], true)
        }
        _ => (text, false),
    };
    let groups = |part: &[u8]| -> Option<usize> {
        if part.is_empty() {
            return Some(0);
        }
        let mut count = 0;
        for group in part.split(|&b| b == b':') {
            if group.is_empty() || group.len() > 4 || !group.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            count += 1;
        }
        Some(count)
    };
    let (full, most_around_gap) = if has_ipv4 { (6, 4) } else { (8, 6) };
    let gap = hex.windows(2).position(|pair| pair == b"::");
    match gap {
        None => groups(hex) == Some(full),
        Some(at) => {
            let (left, right) = (&hex[..at], &hex[at + 2..]);
            match (groups(left), groups(right)) {
                (Some(l), Some(r)) => l + r <= most_around_gap,
                _ => false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_mailboxes() {
        for mailbox in [
            "alice@example.com",
            "a@b",
            "first.last+tag@sub.example.co.uk",
            "!#$%&'*+-/=?^_`{|}~@example.com",
            "\"john doe\"@example.com",
            "\"a@b <c>\"@example.com",
            "\"quote\\\"d\"@example.com",
            "\"\"@example.com",
            "user@[192.0.2.1]",
            "user@[010.0.0.1]",
            "user@[IPv6:2001:db8::1]",
            "user@[ipv6:::1]",
            "user@[IPv6:::ffff:192.0.2.1]",
            "user@[IPv6:::ffff:010.0.0.1]",
            "user@[IPv6:1:2:3:4:5:6:7:8]",
            "user@[IPv6:1:2:3:4:5:6::]",
            "user@[IPv6:::1:2:3:4:5:6]",
            "user@[IPv6:::]",
            "user@[IPv6:1:2:3:4:5:6:1.2.3.4]",
            "user@[IPv6:1:2:3:4::1.2.3.4]",
            "user@[IPv6:::1.2.3.4]",
            "user@[IPv6:fe80::1]",
            "user@xn--bcher-kva.example",
            "0@0.example",
            "a@a-b.c-d",
        ] {
            assert_eq!(
                check_mailbox(mailbox.as_bytes(), false),
                Ok(()),
                "{mailbox}"
            );
        }
    }

    #[test]
    fn utf8_needs_smtputf8() {
        for mailbox in [
            "josé@example.com",
            "用户@例子.广告",
            "\"ü ö\"@example.com",
            "😀@example.com",
        ] {
            assert_eq!(check_mailbox(mailbox.as_bytes(), true), Ok(()), "{mailbox}");
            assert!(
                matches!(
                    check_mailbox(mailbox.as_bytes(), false),
                    Err(PathError::NonAscii { .. })
                ),
                "{mailbox}"
            );
        }
        assert_eq!(
            check_mailbox(b"a\xff@example.com", true),
            Err(PathError::InvalidUtf8 { at: 1 })
        );
        // A 32-letter U-label is 64 UTF-8 octets but a short A-label: not refused here.
        let long_u_label = format!("a@{}.de", "ü".repeat(32));
        assert_eq!(check_mailbox(long_u_label.as_bytes(), true), Ok(()));
    }

    #[test]
    fn unicode_line_breaks_are_refused_even_with_smtputf8() {
        for (mailbox, ch, at) in [
            ("a\u{85}b@example.com", '\u{85}', 1),
            ("a\u{2028}b@example.com", '\u{2028}', 1),
            ("ab@exa\u{2029}mple.com", '\u{2029}', 6),
            ("\"a\u{9b}\"@example.com", '\u{9b}', 2),
        ] {
            assert_eq!(
                check_mailbox(mailbox.as_bytes(), true),
                Err(PathError::ForbiddenChar { ch, at }),
                "{}",
                mailbox.escape_debug()
            );
        }
    }

    #[test]
    fn injection_bytes_are_refused_wherever_they_are() {
        for (input, byte, at) in [
            (&b"a\r\nDATA@example.com"[..], b'\r', 1),
            (b"a@example.com\r\nDATA", b'\r', 13),
            (b"a@example.com\nRSET", b'\n', 13),
            (b"\"a\r\n\"@example.com", b'\r', 2),
            (b"a\0@example.com", 0, 1),
            (b"a\x1b@example.com", 0x1b, 1),
            (b"a\x7f@example.com", 0x7f, 1),
            (b"a@ex\tample.com", b'\t', 4),
        ] {
            assert_eq!(
                check_mailbox(input, true),
                Err(PathError::ForbiddenByte { byte, at }),
                "{}",
                input.escape_ascii()
            );
        }
        assert_eq!(
            check_helo_name(b"probe.example\r\nMAIL FROM:<>"),
            Err(PathError::ForbiddenByte {
                byte: b'\r',
                at: 13
            })
        );
    }

    #[test]
    fn structure_breakers_outside_quotes_are_refused() {
        for (input, error) in [
            ("a>b@example.com", PathError::InvalidLocalPart { at: 1 }),
            (
                "a@example.com> NOTIFY=NEVER",
                PathError::InvalidDomain { at: 13 },
            ),
            ("<a@example.com", PathError::InvalidLocalPart { at: 0 }),
            ("a b@example.com", PathError::InvalidLocalPart { at: 1 }),
            ("a@exa mple.com", PathError::InvalidDomain { at: 5 }),
            ("example.com", PathError::MissingAt),
            ("a@", PathError::InvalidDomain { at: 2 }),
            ("@example.com", PathError::InvalidLocalPart { at: 0 }),
            (".a@example.com", PathError::InvalidLocalPart { at: 0 }),
            ("a.@example.com", PathError::InvalidLocalPart { at: 2 }),
            ("a..b@example.com", PathError::InvalidLocalPart { at: 2 }),
            ("a@b@example.com", PathError::InvalidDomain { at: 3 }),
            (
                "\"unterminated@example.com",
                PathError::InvalidLocalPart { at: 25 },
            ),
            ("\"a\"b@example.com", PathError::InvalidLocalPart { at: 3 }),
            ("a@example..com", PathError::InvalidDomain { at: 10 }),
            ("a@example.com.", PathError::InvalidDomain { at: 14 }),
            ("a@-example.com", PathError::InvalidDomain { at: 2 }),
            ("a@example-.com", PathError::InvalidDomain { at: 9 }),
            ("a@exam_ple.com", PathError::InvalidDomain { at: 6 }),
            ("a@[1.2.3.4", PathError::InvalidDomain { at: 2 }),
            ("a@[]", PathError::InvalidDomain { at: 2 }),
            ("a@[1.2[3]", PathError::InvalidDomain { at: 2 }),
            ("a@[1.2.3]", PathError::InvalidDomain { at: 2 }),
            ("a@[1.2.3.256]", PathError::InvalidDomain { at: 2 }),
            ("a@[1.2.3.4.5]", PathError::InvalidDomain { at: 2 }),
            ("a@[1.2.3.0004]", PathError::InvalidDomain { at: 2 }),
            ("a@[1.2.3.99999999]", PathError::InvalidDomain { at: 2 }),
            ("a@[IPv6:::>2]", PathError::InvalidDomain { at: 2 }),
            (
                "a@[IPv6:1:2:3:4:5:6:7::]",
                PathError::InvalidDomain { at: 2 },
            ),
            ("a@[IPv6:1:2:3:4:5:6:7]", PathError::InvalidDomain { at: 2 }),
            (
                "a@[IPv6:1:2:3:4:5:6:7:8:9]",
                PathError::InvalidDomain { at: 2 },
            ),
            ("a@[IPv6:1::2::3]", PathError::InvalidDomain { at: 2 }),
            ("a@[IPv6:12345::1]", PathError::InvalidDomain { at: 2 }),
            (
                "a@[IPv6:1:2:3:4:5::1.2.3.4]",
                PathError::InvalidDomain { at: 2 },
            ),
            ("a@[IPv6:::ffff:1.2.3]", PathError::InvalidDomain { at: 2 }),
            ("a@[IPv6:g::1]", PathError::InvalidDomain { at: 2 }),
            ("a@[IPv6:1:::2]", PathError::InvalidDomain { at: 2 }),
            ("a@[IPv6:1.2.3.4]", PathError::InvalidDomain { at: 2 }),
            ("a@[IPv6:]", PathError::InvalidDomain { at: 2 }),
            ("a@[x-tag:anything]", PathError::InvalidDomain { at: 2 }),
            ("a@[::>2]", PathError::InvalidDomain { at: 2 }),
            ("a@[db###\"#8:1]", PathError::InvalidDomain { at: 2 }),
            ("", PathError::Empty),
        ] {
            assert_eq!(
                check_mailbox(input.as_bytes(), false),
                Err(error),
                "{input}"
            );
        }
    }

    #[test]
    fn length_limits_are_rfc_5321s() {
        let local64 = "l".repeat(64);
        assert_eq!(
            check_mailbox(format!("{local64}@example.com").as_bytes(), false),
            Ok(())
        );
        assert_eq!(
            check_mailbox(format!("{local64}x@example.com").as_bytes(), false),
            Err(PathError::LocalPartTooLong { len: 65 })
        );
        // 254 octets in all: 64 + 1 + 189 (three 61-octet labels and their dots, and "com").
        let label = "d".repeat(61);
        let domain = format!("{label}.{label}.{label}.com");
        let mailbox = format!("{local64}@{domain}");
        assert_eq!(mailbox.len(), 254);
        assert_eq!(check_mailbox(mailbox.as_bytes(), false), Ok(()));
        let mailbox = format!("{local64}@x{domain}");
        assert_eq!(
            check_mailbox(mailbox.as_bytes(), false),
            Err(PathError::MailboxTooLong { len: 255 })
        );
        let long_label = format!("a@{}.com", "d".repeat(64));
        assert_eq!(
            check_mailbox(long_label.as_bytes(), false),
            Err(PathError::InvalidDomain { at: 2 + 63 })
        );
        assert!(check_helo_name("h".repeat(63).as_bytes()).is_ok());
        let long_helo = vec![b"a.".as_slice(); 128].concat();
        assert_eq!(
            check_helo_name(&long_helo),
            Err(PathError::DomainTooLong { len: 256 })
        );
    }

    #[test]
    fn helo_names() {
        for name in [
            "probe.example.net",
            "localhost",
            "[192.0.2.7]",
            "[IPv6:::1]",
        ] {
            assert_eq!(check_helo_name(name.as_bytes()), Ok(()), "{name}");
        }
        assert_eq!(check_helo_name(b""), Err(PathError::Empty));
        assert_eq!(
            check_helo_name("prüfung.example".as_bytes()),
            Err(PathError::NonAscii { at: 2 })
        );
        assert_eq!(
            check_helo_name(b"probe example"),
            Err(PathError::InvalidDomain { at: 5 })
        );
    }

    #[test]
    fn errors_say_what_to_fix() {
        assert_eq!(
            PathError::ForbiddenByte { byte: b'\n', at: 3 }.to_string(),
            "contains LF at byte 3, which could inject an SMTP command"
        );
        assert_eq!(
            PathError::LocalPartTooLong { len: 65 }.to_string(),
            "has a local part of 65 octets; RFC 5321 allows at most 64"
        );
    }
}
