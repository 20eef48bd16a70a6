//! Addresses: from what a user typed to the mailbox that goes into `RCPT TO:<…>`.
//!
//! Every probe starts from a string that came from a person, a form or an old CSV file.
//! [`Address::parse`] turns it into a checked, normalised mailbox, or says precisely which rule
//! it breaks; a refused address becomes the verdict `undeliverable/invalid_syntax`
//! ([`InvalidAddress::reason`]) before any socket exists.
//!
//! # What parsing does, in order
//!
//! 1. **Input forms** (`input.rs`): first, a control character anywhere in the input refuses
//!    it (C0 such as CR, LF, TAB and NUL, DEL, C1 such as NEL; `control.rs`): a line is never
//!    cleaned into an address it does not show. Then surrounding whitespace, a `mailto:` prefix
//!    and a `Name <addr>` wrapper are taken off, the last only when `Name` is an RFC 5322 display
//!    name; the original string is kept for output.
//! 2. **Grammar** (RFC 5321 §4.1.2, RFC 6531 §3.3, via [`crate::smtp::path`]): a dot-string
//!    or quoted-string local part, `@`, a domain or address literal. CR, LF, NUL, every other
//!    control character, Unicode line separators, and `<`, `>`, SP outside quotes are refused
//!    here, so nothing from an address can inject an SMTP command.
//! 3. **Local part** (`local.rs`): rewritten with the least quoting RFC 5321 allows (`"john"`
//!    is `john`); never case-folded, since only the receiving server may interpret it. A
//!    non-ASCII local part is valid but needs a server that offers SMTPUTF8
//!    ([`Address::needs_smtputf8`]); the session reports `unknown/smtputf8_unsupported` when it
//!    meets one that does not.
//! 4. **Domain** (`domain.rs`): IDNA 2008 / UTS 46 to lower-case A-labels, which DNS uses and
//!    which every server accepts; then the rules every mail domain obeys (label and name
//!    lengths, a top-level label that is not all digits). A single label (`user@io`) is valid
//!    syntax: DNS says whether it has a mail server, and the guard that checks where a probe
//!    connects keeps it off `localhost` and private addresses. Address literals
//!    (`[192.0.2.1]`, `[IPv6:2001:db8::1]`) are parsed and flagged
//!    ([`Address::address_literal`]): whether to probe them is the caller's choice, and
//!    mxprobe's default is not to.
//! 5. **Lengths** of what goes on the wire: local part ≤ 64 octets, path ≤ 254 octets
//!    (RFC 5321 §4.5.3.1), checked on the normalised form.
//!
//! [`Address::flags`] then says whether the address is a role account or at a disposable or free
//! domain (`flags.rs`, with vendored lists in `lists/`), and [`Address::domain_suggestion`]
//! offers `gmail.com` for `gmial.com` (`suggest.rs`).
//!
//! # Guarantees
//!
//! - Parsing never panics, whatever the input.
//! - [`Address::mailbox`] of a parsed address always encodes as `RCPT TO:<…>` with
//!   [`crate::smtp::Command`] (with SMTPUTF8 exactly when [`Address::needs_smtputf8`]): parse
//!   applies the encoder's own check as its last step. A property test and the `address` fuzz
//!   target hold this true.
//! - A parsed address's [`Address::original`] holds no control character, and its mailbox no
//!   CR, LF or NUL: the verdict is about the line the user gave.
//! - The offsets of the step 1 errors ([`InvalidAddress::ControlCharacter`],
//!   [`InvalidAddress::EncodedControlCharacter`], [`InvalidAddress::NotADisplayName`]) count
//!   bytes of the raw input; the offsets of later ones count bytes of the mailbox after step 1.

use std::fmt;
use std::net::IpAddr;

use crate::smtp::path::{
    self, MAX_LOCAL_PART_LEN, MAX_MAILBOX_LEN, PathError, check_mailbox, local_part_len,
};
use crate::verdict::Reason;

mod control;
mod domain;
mod flags;
mod input;
mod lists;
mod local;
mod suggest;

pub use domain::MAX_DNS_NAME_LEN;
pub use flags::{DomainKind, Flags, domain_kind, is_role_account};
pub(crate) use suggest::popular_provider;
pub use suggest::suggest_domain;

/// A checked, normalised mailbox, ready for `RCPT TO:<…>`.
///
/// ```
/// use mxprobe::address::Address;
///
/// let address = Address::parse("  Alice <\"Alice\"@Bücher.Example>  ").expect("valid");
/// assert_eq!(address.mailbox(), "Alice@xn--bcher-kva.example");
/// assert_eq!(address.local_part(), "Alice"); // case kept, quotes dropped
/// assert_eq!(address.domain(), "xn--bcher-kva.example");
/// assert_eq!(address.original(), "  Alice <\"Alice\"@Bücher.Example>  ");
/// assert!(!address.needs_smtputf8());
///
/// let refused = Address::parse("john..doe@example.com").unwrap_err();
/// assert_eq!(refused.reason().as_str(), "invalid_syntax");
/// assert_eq!(
///     refused.to_string(),
///     "the address has a local part that has two dots in a row (byte 5); \
///      dots there must stand between other characters unless the local part is quoted"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Address {
    /// `local@domain` in wire form, then the input as given if that differs. One string and
    /// small offsets, and the address literal worked out again when asked for: the engine
    /// holds a hundred thousand addresses at a time, at 24 bytes each plus this text.
    text: Box<str>,
    /// Where the mailbox ends in `text` (at most [`MAX_MAILBOX_LEN`]).
    mailbox_len: u16,
    /// Offset of the `@` that separates local part and domain (at most 64).
    at: u16,
    smtputf8: bool,
}

impl Address {
    /// Parses an address as a user wrote it. See the module documentation for the rules.
    pub fn parse(raw: &str) -> Result<Self, InvalidAddress> {
        let bare = input::bare_mailbox(raw)?;
        path::check_bytes(bare.as_bytes(), true).map_err(InvalidAddress::Grammar)?;
        let local_len = local_part_len(bare.as_bytes()).map_err(InvalidAddress::Grammar)?;
        let local = local::minimal_quoting(&bare[..local_len]);
        if local.len() > MAX_LOCAL_PART_LEN {
            return Err(InvalidAddress::Grammar(PathError::LocalPartTooLong {
                len: local.len(),
            }));
        }
        let domain = domain::check(&bare[local_len + 1..], local_len + 1)?;
        let wire_domain = domain.wire();
        let len = local.len() + 1 + wire_domain.len();
        if len > MAX_MAILBOX_LEN {
            return Err(InvalidAddress::Grammar(PathError::MailboxTooLong { len }));
        }
        // The input is kept after the mailbox when it differs (sized up front, so that the
        // boxed string is the allocation itself).
        let same = raw.len() == len
            && raw.starts_with(&*local)
            && raw.as_bytes()[local.len()] == b'@'
            && raw.ends_with(wire_domain);
        let mut mailbox = String::with_capacity(if same { len } else { len + raw.len() });
        mailbox.push_str(&local);
        mailbox.push('@');
        mailbox.push_str(wire_domain);
        let smtputf8 = !local.is_ascii();
        // The encoder's own check, so that a parsed address can always be written into
        // `RCPT TO`. It cannot fail after the steps above; if it ever did, the address is
        // refused, not sent.
        check_mailbox(mailbox.as_bytes(), smtputf8).map_err(InvalidAddress::Grammar)?;
        if !same {
            mailbox.push_str(raw);
        }
        Ok(Self {
            at: u16::try_from(local.len())
                .expect("a local part of at most 64 octets, checked above"),
            mailbox_len: u16::try_from(len)
                .expect("a mailbox of at most 254 octets, checked above"),
            text: mailbox.into_boxed_str(),
            smtputf8,
        })
    }

    /// The mailbox as it goes between `<` and `>` in `RCPT TO`: minimal quoting, domain in
    /// lower-case A-labels or a normalised address literal.
    #[must_use]
    pub fn mailbox(&self) -> &str {
        &self.text[..usize::from(self.mailbox_len)]
    }

    /// The local part, with minimal quoting and its case as given.
    #[must_use]
    pub fn local_part(&self) -> &str {
        &self.text[..usize::from(self.at)]
    }

    /// The domain: lower-case ASCII with A-labels (`xn--bcher-kva.example`), or an address
    /// literal as written into commands (`[192.0.2.1]`, `[IPv6:2001:db8::1]`).
    #[must_use]
    pub fn domain(&self) -> &str {
        &self.text[usize::from(self.at) + 1..usize::from(self.mailbox_len)]
    }

    /// The input this address was parsed from, as given.
    #[must_use]
    pub fn original(&self) -> &str {
        match &self.text[usize::from(self.mailbox_len)..] {
            "" => self.mailbox(),
            original => original,
        }
    }

    /// The IP address if the domain is an address literal. mxprobe does not probe those unless
    /// configured to: no MX lookup applies, and servers rarely accept them.
    #[must_use]
    pub fn address_literal(&self) -> Option<IpAddr> {
        let body = self.domain().strip_prefix('[')?.strip_suffix(']')?;
        path::address_literal_ip(body.as_bytes())
    }

    /// True if the domain is an address literal (no domain name starts with `[`).
    fn is_literal(&self) -> bool {
        self.domain().starts_with('[')
    }

    /// True if the local part holds non-ASCII characters: the mailbox may only be sent to a
    /// server that offered SMTPUTF8, in a transaction opened with `MAIL FROM:<…> SMTPUTF8`.
    #[must_use]
    pub fn needs_smtputf8(&self) -> bool {
        self.smtputf8
    }

    /// Role account, disposable domain, free provider.
    #[must_use]
    pub fn flags(&self) -> Flags {
        let kind = if self.is_literal() {
            None
        } else {
            domain_kind(self.domain())
        };
        Flags {
            role: is_role_account(self.local_part()),
            disposable: kind == Some(DomainKind::Disposable),
            free: kind == Some(DomainKind::Free),
        }
    }

    /// A popular free provider the domain is probably a misspelling of (`gmial.com` →
    /// `gmail.com`). Advice only: it never changes a verdict.
    #[must_use]
    pub fn domain_suggestion(&self) -> Option<&'static str> {
        if self.is_literal() {
            return None;
        }
        suggest_domain(self.domain())
    }
}

/// Checks and normalises a domain on its own, as `mxprobe mx` takes it: a control character
/// anywhere refuses it, as in an address; whitespace around it and one trailing dot (the root, as DNS tools write it) are dropped, then the domain rules of
/// [`Address::parse`] apply. Returns lower-case ASCII with A-labels.
///
/// ```
/// use mxprobe::address::parse_domain;
/// assert_eq!(parse_domain(" Bücher.Example. ").as_deref(), Ok("xn--bcher-kva.example"));
/// assert_eq!(parse_domain("IO").as_deref(), Ok("io")); // one label: DNS decides
/// assert!(parse_domain("1.2.3.4").is_err());
/// assert!(parse_domain("[192.0.2.1]").is_err());
/// ```
pub fn parse_domain(text: &str) -> Result<String, InvalidAddress> {
    if let Some((at, ch)) = control::first(text) {
        return Err(InvalidAddress::ControlCharacter { ch, at });
    }
    let text = text.trim();
    let text = text.strip_suffix('.').unwrap_or(text);
    if text.is_empty() {
        return Err(InvalidAddress::Grammar(PathError::EmptyDomain));
    }
    path::check_bytes(text.as_bytes(), true).map_err(InvalidAddress::Grammar)?;
    match domain::check(text, 0)? {
        domain::CheckedDomain::Name(name) => Ok(name),
        domain::CheckedDomain::Literal(..) => {
            Err(InvalidAddress::Grammar(PathError::InvalidAddressLiteral))
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.mailbox())
    }
}

/// Why an address cannot be probed. Every variant is the verdict
/// `undeliverable/invalid_syntax`; its text is the verdict's human-readable detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidAddress {
    /// Nothing but whitespace (or an empty `<>` or `mailto:`).
    Empty,
    /// A control character anywhere in the input: C0 (U+0000–U+001F, TAB, CR and LF among
    /// them), DEL (U+007F) or C1 (U+0080–U+009F, NEL among them). Refused before anything is
    /// trimmed or taken apart, so that no part of a line can carry a second command or a second
    /// address past the parser.
    ControlCharacter {
        /// The character.
        ch: char,
        /// Its byte offset in the input as given.
        at: usize,
    },
    /// A `mailto:` link whose `%` escapes decode to a control character (`%0D%0A`).
    EncodedControlCharacter {
        /// The decoded character.
        ch: char,
        /// Byte offset, in the input as given, of the `%` escape that begins it.
        at: usize,
    },
    /// Text before a `<` that is not an RFC 5322 display name (a phrase): an unquoted `@`,
    /// `:`, `,`, `;`, `<`, `>`, `[`, `]`, `\`, `)` or a leading dot. Such a line is not
    /// `Name <addr>`, and the address in its brackets may not be the one the user meant.
    NotADisplayName {
        /// The first character that no display name may hold there.
        ch: char,
        /// Its byte offset in the input as given (in a `mailto:` link, where the `%` escape
        /// that encodes it begins, if it was encoded).
        at: usize,
    },
    /// A `<` without the `>` that closes it.
    UnclosedAngle,
    /// Text after the `>` that closes `Name <addr>`: a comment or a second address.
    TextAfterAngle,
    /// A `mailto:` link with a broken `%` escape, or one that decodes to invalid UTF-8.
    BadPercentEncoding,
    /// The mailbox grammar or a length limit of RFC 5321 / RFC 6531.
    Grammar(PathError),
    /// The domain is not a valid internationalised domain name (IDNA 2008, UTS 46): a
    /// disallowed character, a bad `xn--` label, a joiner out of place, mixed directions.
    Idna,
    /// A label is longer than 63 octets in its A-label (punycode) form.
    LabelTooLongAfterIdna {
        /// Its length in octets.
        len: usize,
    },
    /// The domain is longer than DNS allows ([`MAX_DNS_NAME_LEN`] octets) in A-label form.
    DomainTooLongForDns {
        /// Its length in octets.
        len: usize,
    },
    /// The top-level label is all digits (`user@1.2.3.4`): an IP address needs brackets.
    NumericTopLevel,
}

impl InvalidAddress {
    /// The verdict reason: always `invalid_syntax`.
    #[must_use]
    pub const fn reason(&self) -> Reason {
        Reason::InvalidSyntax
    }
}

impl fmt::Display for InvalidAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("the address is empty"),
            Self::ControlCharacter { ch, at } => write!(
                f,
                "the address contains {} at byte {at}, {}",
                control::name(*ch),
                control::danger(*ch)
            ),
            Self::EncodedControlCharacter { ch, at } => write!(
                f,
                "the mailto: link has a '%' escape at byte {at} that decodes to {}, {}",
                control::name(*ch),
                control::danger(*ch)
            ),
            Self::NotADisplayName { ch, at } => write!(
                f,
                "the text before '<' is not a display name (byte {at}: {ch:?}); quote the name or remove it"
            ),
            Self::UnclosedAngle => f.write_str("the address has a '<' without a closing '>'"),
            Self::TextAfterAngle => f.write_str(
                "text follows the '>' that closes the address; give one address per line, without comments",
            ),
            Self::BadPercentEncoding => f.write_str(
                "the mailto: link has a '%' escape that is not two hex digits or not UTF-8",
            ),
            Self::Grammar(error) => write!(f, "the address {error}"),
            Self::Idna => f.write_str(
                "the domain is not a valid internationalised domain name (IDNA 2008 / UTS 46)",
            ),
            Self::LabelTooLongAfterIdna { len } => write!(
                f,
                "a domain label is {len} octets in its ASCII (punycode) form; DNS allows at most 63"
            ),
            Self::DomainTooLongForDns { len } => write!(
                f,
                "the domain is {len} octets in its ASCII form; DNS allows at most {MAX_DNS_NAME_LEN}"
            ),
            Self::NumericTopLevel => f.write_str(
                "the domain's last label is all digits; write an IP address in brackets, as [192.0.2.1]",
            ),
        }
    }
}

impl std::error::Error for InvalidAddress {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Grammar(error) => Some(error),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;
