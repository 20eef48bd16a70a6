//! The wire grammar of what goes between `<` and `>` in MAIL FROM and RCPT TO, and of the
//! EHLO/HELO argument (RFC 5321 §4.1.2, extended for UTF-8 by RFC 6531 §3.3).
//!
//! This is the last gate before bytes reach a server: the command encoder refuses anything these
//! checks refuse. User-facing parsing — trimming, `Name <addr>` forms, IDNA, normalisation — is
//! the job of the address layer, which produces mailboxes that pass here.
//!
//! Guarantees: a mailbox or HELO name accepted here contains no CR, LF, NUL, other control byte,
//! or DEL, no Unicode line separator and no invisible formatting character; no SP (nor Unicode
//! whitespace), `<` or `>` outside a quoted local part; is within the RFC's length limits; and
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
///
/// Each variant names the rule that was broken, so a user can fix the address; offsets are in
/// bytes from the start of the checked argument.
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
    /// An invisible formatting character (a byte-order mark, a zero-width space or joiner, a
    /// bidirectional override, a soft hyphen): never typed on purpose, a way to make two
    /// addresses look alike, and a way to make one that is not what it shows.
    InvisibleChar {
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
    /// Nothing before the `@`.
    EmptyLocalPart,
    /// A dot at the start or end of an unquoted local part, or two dots in a row.
    LocalPartDot {
        /// Where the dot is.
        place: DotPlace,
        /// Offset of the offending dot.
        at: usize,
    },
    /// A character an unquoted local part cannot hold (SP, `(`, `<`, `,`, `"` …): only
    /// `atext` and dots may appear there, anything else needs a quoted local part.
    UnquotedChar {
        /// The character.
        ch: char,
        /// Its offset.
        at: usize,
    },
    /// A quoted local part without its closing `"`.
    UnterminatedQuote,
    /// A backslash in a quoted local part not followed by a printable ASCII character.
    InvalidQuotedPair {
        /// Offset of the backslash.
        at: usize,
    },
    /// Something other than `@` after the closing quote of a quoted local part.
    TextAfterQuote {
        /// Offset of the first byte after the quote.
        at: usize,
    },
    /// A second `@` outside quotes.
    ExtraAt {
        /// Its offset.
        at: usize,
    },
    /// Nothing after the `@`.
    EmptyDomain,
    /// A dot at the start or end of the domain, or two dots in a row: an empty label.
    DomainDot {
        /// Where the dot is.
        place: DotPlace,
        /// Offset of the offending dot.
        at: usize,
    },
    /// A domain label longer than [`MAX_LABEL_LEN`] octets.
    LabelTooLong {
        /// Offset of the label.
        at: usize,
        /// Its length in octets.
        len: usize,
    },
    /// A character other than a letter, digit or hyphen in a domain label.
    LabelChar {
        /// The character.
        ch: char,
        /// Its offset.
        at: usize,
    },
    /// A domain label that starts or ends with a hyphen.
    LabelHyphen {
        /// Offset of the hyphen.
        at: usize,
    },
    /// A bracketed domain that is not `[IPv4 address]` or `[IPv6:IPv6 address]`.
    InvalidAddressLiteral,
}

/// Where a misplaced dot stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DotPlace {
    /// First.
    Leading,
    /// Last.
    Trailing,
    /// Right after another dot.
    Doubled,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dot = |place| match place {
            DotPlace::Leading => "starts with a dot",
            DotPlace::Trailing => "ends with a dot",
            DotPlace::Doubled => "has two dots in a row",
        };
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
            Self::InvisibleChar { ch, at } => write!(
                f,
                "contains the invisible character U+{:04X} at byte {at}, usually pasted by accident",
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
            Self::EmptyLocalPart => f.write_str("has nothing before the '@'"),
            Self::LocalPartDot { place, at } => write!(
                f,
                "has a local part that {} (byte {at}); dots there must stand between other characters unless the local part is quoted",
                dot(place)
            ),
            Self::UnquotedChar { ch, at } => write!(
                f,
                "has {ch:?} at byte {at}, which a local part may hold only inside quotes"
            ),
            Self::UnterminatedQuote => {
                f.write_str("has a quoted local part without its closing '\"'")
            }
            Self::InvalidQuotedPair { at } => write!(
                f,
                "has a backslash at byte {at} that is not followed by a printable ASCII character"
            ),
            Self::TextAfterQuote { at } => write!(
                f,
                "has text after the closing quote of its local part (byte {at}); the '@' must follow it"
            ),
            Self::ExtraAt { at } => write!(
                f,
                "has a second '@' at byte {at}; an '@' in the local part must be quoted"
            ),
            Self::EmptyDomain => f.write_str("has nothing after the '@'"),
            Self::DomainDot { place, at } => {
                write!(f, "has a domain that {} (byte {at})", dot(place))
            }
            Self::LabelTooLong { at, len } => write!(
                f,
                "has a domain label of {len} octets at byte {at}; DNS allows at most {MAX_LABEL_LEN}"
            ),
            Self::LabelChar { ch, at } => write!(
                f,
                "has {ch:?} in its domain at byte {at}; a domain holds only letters, digits, hyphens and dots"
            ),
            Self::LabelHyphen { at } => write!(
                f,
                "has a domain label that starts or ends with a hyphen (byte {at})"
            ),
            Self::InvalidAddressLiteral => f.write_str(
                "has a bracketed domain that is neither [IPv4 address] nor [IPv6:IPv6 address]",
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
    let domain_start = local_end + 1;
    let domain = &mailbox[domain_start..];
    if domain.len() > MAX_DOMAIN_LEN {
        return Err(PathError::DomainTooLong { len: domain.len() });
    }
    check_domain_or_literal(domain).map_err(|e| e.shifted(domain_start))
}

/// Checks the argument of EHLO or HELO: a Domain or an address literal, ASCII only
/// (RFC 5321 §4.1.1.1; RFC 6531 §3.7.1 keeps it ASCII even with SMTPUTF8).
pub fn check_helo_name(name: &[u8]) -> Result<(), PathError> {
    check_bytes(name, false)?;
    if name.len() > MAX_DOMAIN_LEN {
        return Err(PathError::DomainTooLong { len: name.len() });
    }
    check_domain_or_literal(name)
}

/// The rules every byte obeys, whatever its place: no controls, ASCII unless SMTPUTF8, and then
/// well-formed UTF-8 without Unicode line breaks.
pub fn check_bytes(bytes: &[u8], smtputf8: bool) -> Result<(), PathError> {
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
        // Invisible formatting characters are refused too: no mailbox needs one.
        for (at, ch) in text.char_indices().filter(|&(_, ch)| !ch.is_ascii()) {
            if ch.is_control() || matches!(ch, '\u{2028}' | '\u{2029}') {
                return Err(PathError::ForbiddenChar { ch, at });
            }
            if is_invisible(ch) {
                return Err(PathError::InvisibleChar { ch, at });
            }
        }
    }
    Ok(())
}

impl PathError {
    /// The same error with its offsets moved by `by` bytes, for a part checked on its own.
    #[must_use]
    pub const fn shifted(self, by: usize) -> Self {
        match self {
            Self::ForbiddenByte { byte, at } => Self::ForbiddenByte { byte, at: at + by },
            Self::ForbiddenChar { ch, at } => Self::ForbiddenChar { ch, at: at + by },
            Self::InvisibleChar { ch, at } => Self::InvisibleChar { ch, at: at + by },
            Self::NonAscii { at } => Self::NonAscii { at: at + by },
            Self::InvalidUtf8 { at } => Self::InvalidUtf8 { at: at + by },
            Self::LocalPartDot { place, at } => Self::LocalPartDot { place, at: at + by },
            Self::UnquotedChar { ch, at } => Self::UnquotedChar { ch, at: at + by },
            Self::InvalidQuotedPair { at } => Self::InvalidQuotedPair { at: at + by },
            Self::TextAfterQuote { at } => Self::TextAfterQuote { at: at + by },
            Self::ExtraAt { at } => Self::ExtraAt { at: at + by },
            Self::DomainDot { place, at } => Self::DomainDot { place, at: at + by },
            Self::LabelTooLong { at, len } => Self::LabelTooLong { at: at + by, len },
            Self::LabelChar { ch, at } => Self::LabelChar { ch, at: at + by },
            Self::LabelHyphen { at } => Self::LabelHyphen { at: at + by },
            other => other,
        }
    }
}

/// The length of the local part at the front of `mailbox`, which must be followed by `@`.
///
/// `mailbox` must have passed [`check_bytes`]: any byte above 127 is then part of well-formed
/// UTF-8, which RFC 6531 admits in both forms of local part.
pub fn local_part_len(mailbox: &[u8]) -> Result<usize, PathError> {
    let len = if mailbox.first() == Some(&b'"') {
        quoted_string_len(mailbox)?
    } else {
        dot_string_len(mailbox)?
    };
    match mailbox.get(len) {
        Some(b'@') => Ok(len),
        None => Err(PathError::MissingAt),
        // A quoted string ended and something other than '@' follows.
        Some(_) => Err(PathError::TextAfterQuote { at: len }),
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
                Some(_) => return Err(PathError::InvalidQuotedPair { at: i }),
                None => return Err(PathError::UnterminatedQuote),
            },
            // qtextSMTP: every remaining byte is %d32-126 or UTF-8 (already checked).
            _ => i += 1,
        }
    }
    Err(PathError::UnterminatedQuote)
}

/// ```text
/// Dot-string = Atom *("."  Atom)
/// ```
///
/// The length up to the `@` that ends it, or to the end of the input.
fn dot_string_len(input: &[u8]) -> Result<usize, PathError> {
    let mut atom_len = 0;
    for (i, &b) in input.iter().enumerate() {
        match b {
            b'@' if i == 0 => return Err(PathError::EmptyLocalPart),
            b'@' if atom_len == 0 => {
                return Err(PathError::LocalPartDot {
                    place: DotPlace::Trailing,
                    at: i - 1,
                });
            }
            b'@' => return Ok(i),
            b'.' if i == 0 => {
                return Err(PathError::LocalPartDot {
                    place: DotPlace::Leading,
                    at: 0,
                });
            }
            b'.' if atom_len == 0 => {
                return Err(PathError::LocalPartDot {
                    place: DotPlace::Doubled,
                    at: i,
                });
            }
            b'.' => atom_len = 0,
            _ => match unquoted_char_at(input, i) {
                Ok(()) => atom_len += 1,
                Err(ch) => return Err(PathError::UnquotedChar { ch, at: i }),
            },
        }
    }
    match input.len() {
        0 => Err(PathError::EmptyLocalPart),
        len if atom_len == 0 => Err(PathError::LocalPartDot {
            place: DotPlace::Trailing,
            at: len - 1,
        }),
        len => Ok(len),
    }
}

/// Whether the byte at `i` may stand in an atom: `atext` of RFC 5322 §3.2.3, or part of a
/// UTF-8 character (RFC 6531 `UTF8-non-ascii`) that is not whitespace. The refused character
/// otherwise.
///
/// Unicode whitespace (U+00A0 NO-BREAK SPACE, U+3000 IDEOGRAPHIC SPACE, …) delimits words as SP
/// does, so like SP it needs quotes; an unquoted one is almost always a pasting accident, and
/// would not survive the trimming of a later parse. `input` must have passed [`check_bytes`].
fn unquoted_char_at(input: &[u8], i: usize) -> Result<(), char> {
    let b = input[i];
    if b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b) {
        return Ok(());
    }
    if b < 0x80 {
        return Err(char::from(b));
    }
    // A lead byte starts a character; continuation bytes were judged with it.
    if b < 0xc0 {
        return Ok(());
    }
    let len = match b {
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    };
    let ch = input
        .get(i..i + len)
        .and_then(|bytes| std::str::from_utf8(bytes).ok())
        .and_then(|text| text.chars().next());
    match ch {
        Some(ch) if ch.is_whitespace() => Err(ch),
        _ => Ok(()),
    }
}

/// Characters that render as nothing: format characters (Unicode category Cf) that appear in
/// pasted text — the byte-order mark, zero-width space, non-joiner and joiner, direction marks,
/// bidirectional embeddings, overrides and isolates, word joiner and invisible operators, soft
/// hyphen, Arabic letter mark, Mongolian vowel separator, interlinear annotation controls.
fn is_invisible(ch: char) -> bool {
    matches!(
        ch,
        '\u{ad}'
            | '\u{61c}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206f}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}'
    )
}

/// True if `local` is a Dot-string: one or more atoms of `atext` joined by single dots.
///
/// ```
/// use mxprobe::smtp::path::is_dot_string;
/// assert!(is_dot_string(b"first.last+tag"));
/// assert!(!is_dot_string(b"john doe"));
/// assert!(!is_dot_string(b"a..b"));
/// ```
#[must_use]
pub fn is_dot_string(local: &[u8]) -> bool {
    std::str::from_utf8(local).is_ok() && dot_string_len(local) == Ok(local.len())
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
/// A General-address-literal needs a tag "registered with IANA" and none is, so only IPv4 and
/// IPv6 literals pass — which also keeps `<`, `>` and other `dcontent` bytes that a careless
/// server could read as the end of the path out of the command.
fn check_domain_or_literal(domain: &[u8]) -> Result<(), PathError> {
    if domain.first() == Some(&b'[') {
        return match domain.strip_prefix(b"[").and_then(|d| d.strip_suffix(b"]")) {
            Some(body) if is_address_literal(body) => Ok(()),
            _ => Err(PathError::InvalidAddressLiteral),
        };
    }
    check_domain(domain)
}

/// ```text
/// Domain     = sub-domain *("." sub-domain)
/// sub-domain = Let-dig [Ldh-str]          ; =/ U-label (RFC 6531)
/// ```
///
/// Bytes above 127 are admitted as parts of U-labels; the 63-octet label limit applies to a
/// label's ASCII form only, since a U-label's A-label (punycode) is shorter than its UTF-8 and
/// is the address layer's to check after IDNA.
pub fn check_domain(domain: &[u8]) -> Result<(), PathError> {
    if domain.is_empty() {
        return Err(PathError::EmptyDomain);
    }
    let mut start = 0;
    for label in domain.split(|&b| b == b'.') {
        if label.is_empty() {
            let place = if start == 0 {
                DotPlace::Leading
            } else if start == domain.len() {
                DotPlace::Trailing
            } else {
                DotPlace::Doubled
            };
            // The dot that ends the empty label, or for a trailing one the dot before it.
            let at = if place == DotPlace::Trailing {
                start - 1
            } else {
                start
            };
            return Err(PathError::DomainDot { place, at });
        }
        if let Some(offset) = label
            .iter()
            .position(|&b| !(b.is_ascii_alphanumeric() || b == b'-' || b >= 0x80))
        {
            let at = start + offset;
            return Err(match label[offset] {
                b'@' => PathError::ExtraAt { at },
                b => PathError::LabelChar {
                    ch: char::from(b),
                    at,
                },
            });
        }
        if label.len() > MAX_LABEL_LEN && label.is_ascii() {
            return Err(PathError::LabelTooLong {
                at: start,
                len: label.len(),
            });
        }
        if label[0] == b'-' {
            return Err(PathError::LabelHyphen { at: start });
        }
        if label[label.len() - 1] == b'-' {
            return Err(PathError::LabelHyphen {
                at: start + label.len() - 1,
            });
        }
        start += label.len() + 1;
    }
    Ok(())
}

/// The IP address an address literal stands for: `body` is what stands between the brackets,
/// and must satisfy RFC 5321's grammar (see [`check_mailbox`]).
///
/// ```
/// use mxprobe::smtp::path::address_literal_ip;
/// assert_eq!(address_literal_ip(b"192.0.2.1"), "192.0.2.1".parse().ok());
/// assert_eq!(address_literal_ip(b"IPv6:2001:db8::1"), "2001:db8::1".parse().ok());
/// assert_eq!(address_literal_ip(b"2001:db8::1"), None); // the tag is required
/// ```
#[must_use]
pub fn address_literal_ip(body: &[u8]) -> Option<std::net::IpAddr> {
    if !is_address_literal(body) {
        return None;
    }
    let text = std::str::from_utf8(body).ok()?;
    match text.get(..5) {
        Some(tag) if tag.eq_ignore_ascii_case("IPv6:") => {
            let v6 = &text[5..];
            // The grammar admits leading zeros in an embedded IPv4 address, which the standard
            // library's parser refuses: write it back without them first.
            let parsed = match v6.rsplit_once(':') {
                Some((head, v4)) if v4.contains('.') => format!(
                    "{head}:{}",
                    ipv4_octets(v4.as_bytes())?.map(|o| o.to_string()).join(".")
                )
                .parse(),
                _ => v6.parse(),
            };
            parsed.ok().map(std::net::IpAddr::V6)
        }
        _ => ipv4_octets(body).map(|octets| std::net::IpAddr::V4(octets.into())),
    }
}

/// The four octets of an `IPv4-address-literal`, leading zeros allowed.
fn ipv4_octets(text: &[u8]) -> Option<[u8; 4]> {
    let mut octets = [0u8; 4];
    let mut parts = text.split(|&b| b == b'.');
    for octet in &mut octets {
        let snum = parts.next()?;
        if snum.is_empty() || snum.len() > 3 || !snum.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let value = snum.iter().fold(0u16, |n, &d| n * 10 + u16::from(d - b'0'));
        *octet = u8::try_from(value).ok()?;
    }
    parts.next().is_none().then_some(octets)
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
    ipv4_octets(text).is_some()
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
    fn invisible_characters_are_refused_even_quoted() {
        for (mailbox, ch, at) in [
            ("\u{feff}a@example.com", '\u{feff}', 0),
            ("a\u{200b}b@example.com", '\u{200b}', 1),
            ("\"a\u{200d}\"@example.com", '\u{200d}', 2),
            ("a@exa\u{202e}mple.com", '\u{202e}', 5),
            ("a\u{ad}b@example.com", '\u{ad}', 1),
        ] {
            assert_eq!(
                check_mailbox(mailbox.as_bytes(), true),
                Err(PathError::InvisibleChar { ch, at }),
                "{}",
                mailbox.escape_debug()
            );
        }
    }

    #[test]
    fn unicode_whitespace_needs_quotes_like_sp() {
        for (mailbox, ch, at) in [
            ("a\u{a0}b@example.com", '\u{a0}', 1),
            ("\u{3000}b@example.com", '\u{3000}', 0),
            ("jos\u{e9}\u{2009}x@example.com", '\u{2009}', 5),
        ] {
            assert_eq!(
                check_mailbox(mailbox.as_bytes(), true),
                Err(PathError::UnquotedChar { ch, at }),
                "{}",
                mailbox.escape_debug()
            );
        }
        assert_eq!(
            check_mailbox("\"a\u{a0}b\"@example.com".as_bytes(), true),
            Ok(())
        );
        assert!(is_dot_string("jos\u{e9}.\u{7528}\u{6237}".as_bytes()));
        assert!(!is_dot_string("a\u{a0}b".as_bytes()));
        assert!(!is_dot_string(b""));
        assert!(!is_dot_string(b"a."));
        assert!(!is_dot_string(b"a@b"));
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
            (
                "a>b@example.com",
                PathError::UnquotedChar { ch: '>', at: 1 },
            ),
            (
                "a@example.com> NOTIFY=NEVER",
                PathError::LabelChar { ch: '>', at: 13 },
            ),
            ("<a@example.com", PathError::UnquotedChar { ch: '<', at: 0 }),
            (
                "a b@example.com",
                PathError::UnquotedChar { ch: ' ', at: 1 },
            ),
            ("a@exa mple.com", PathError::LabelChar { ch: ' ', at: 5 }),
            ("example.com", PathError::MissingAt),
            ("a@", PathError::EmptyDomain),
            ("@example.com", PathError::EmptyLocalPart),
            (
                ".a@example.com",
                PathError::LocalPartDot {
                    place: DotPlace::Leading,
                    at: 0,
                },
            ),
            (
                "a.@example.com",
                PathError::LocalPartDot {
                    place: DotPlace::Trailing,
                    at: 1,
                },
            ),
            (
                "a..b@example.com",
                PathError::LocalPartDot {
                    place: DotPlace::Doubled,
                    at: 2,
                },
            ),
            ("a@b@example.com", PathError::ExtraAt { at: 3 }),
            ("\"unterminated@example.com", PathError::UnterminatedQuote),
            ("\"a\\\"@example.com", PathError::UnterminatedQuote),
            ("\"a\\ü\"@example.com", PathError::NonAscii { at: 3 }),
            ("\"a\"b@example.com", PathError::TextAfterQuote { at: 3 }),
            (
                "a@example..com",
                PathError::DomainDot {
                    place: DotPlace::Doubled,
                    at: 10,
                },
            ),
            (
                "a@.example.com",
                PathError::DomainDot {
                    place: DotPlace::Leading,
                    at: 2,
                },
            ),
            (
                "a@example.com.",
                PathError::DomainDot {
                    place: DotPlace::Trailing,
                    at: 13,
                },
            ),
            ("a@-example.com", PathError::LabelHyphen { at: 2 }),
            ("a@example-.com", PathError::LabelHyphen { at: 9 }),
            ("a@exam_ple.com", PathError::LabelChar { ch: '_', at: 6 }),
            ("a@[1.2.3.4", PathError::InvalidAddressLiteral),
            ("a@[]", PathError::InvalidAddressLiteral),
            ("a@[1.2[3]", PathError::InvalidAddressLiteral),
            ("a@[1.2.3]", PathError::InvalidAddressLiteral),
            ("a@[1.2.3.256]", PathError::InvalidAddressLiteral),
            ("a@[1.2.3.4.5]", PathError::InvalidAddressLiteral),
            ("a@[1.2.3.0004]", PathError::InvalidAddressLiteral),
            ("a@[1.2.3.99999999]", PathError::InvalidAddressLiteral),
            ("a@[IPv6:::>2]", PathError::InvalidAddressLiteral),
            ("a@[IPv6:1:2:3:4:5:6:7::]", PathError::InvalidAddressLiteral),
            ("a@[IPv6:1:2:3:4:5:6:7]", PathError::InvalidAddressLiteral),
            (
                "a@[IPv6:1:2:3:4:5:6:7:8:9]",
                PathError::InvalidAddressLiteral,
            ),
            ("a@[IPv6:1::2::3]", PathError::InvalidAddressLiteral),
            ("a@[IPv6:12345::1]", PathError::InvalidAddressLiteral),
            (
                "a@[IPv6:1:2:3:4:5::1.2.3.4]",
                PathError::InvalidAddressLiteral,
            ),
            ("a@[IPv6:::ffff:1.2.3]", PathError::InvalidAddressLiteral),
            ("a@[IPv6:g::1]", PathError::InvalidAddressLiteral),
            ("a@[IPv6:1:::2]", PathError::InvalidAddressLiteral),
            ("a@[IPv6:1.2.3.4]", PathError::InvalidAddressLiteral),
            ("a@[IPv6:]", PathError::InvalidAddressLiteral),
            ("a@[x-tag:anything]", PathError::InvalidAddressLiteral),
            ("a@[::>2]", PathError::InvalidAddressLiteral),
            ("a@[db###\"#8:1]", PathError::InvalidAddressLiteral),
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
            Err(PathError::LabelTooLong { at: 2, len: 64 })
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
            Err(PathError::LabelChar { ch: ' ', at: 5 })
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
