//! The domain of an address: an address literal, or a name in the ASCII form DNS and SMTP use.
//!
//! Names go through IDNA 2008 as UTS 46 processes it (the `idna` crate): `Bücher.example`
//! becomes `xn--bcher-kva.example`, upper case becomes lower case, and full-width dots become
//! dots. The result is then held to what a mail domain on the public internet must be:
//!
//! - every label 1–63 octets of letters, digits and hyphens, not starting or ending with a
//!   hyphen (RFC 1035 §2.3.1, RFC 5321 §4.1.2), and the whole name at most 253 octets, which is
//!   what fits DNS's 255-octet wire form (RFC 1035 §3.1);
//! - a top-level label that is not all digits (RFC 3696 §2): `1.2.3.4` is an IP address written
//!   without the brackets an address literal needs, and `123` is no name DNS can hold either.
//!
//! A single label (`user@example`, `user@io`) is valid syntax: RFC 5321 §2.3.5 names the case of
//! a top-level domain with an MX of its own, and whether a name receives mail is DNS's answer
//! (no such domain, no mail server, or a real MX), not the grammar's. That `localhost`,
//! `intranet` and other names that resolve to private addresses are not connected to is the job
//! of the guard that checks where a probe would connect, not of this syntax check.
//!
//! The domain is lower-cased; the local part never is (it is case-sensitive on the wire).

use std::net::IpAddr;

use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};

use super::InvalidAddress;
use crate::smtp::path::{self, PathError};

/// Longest domain name in its text form: 255 octets on the wire (RFC 1035 §3.1) are 253
/// characters without the root's trailing dot.
pub const MAX_DNS_NAME_LEN: usize = 253;

/// A checked domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum CheckedDomain {
    /// A DNS name in lower-case ASCII (A-labels for internationalised labels).
    Name(String),
    /// An address literal's IP address, and its text as written into a command.
    Literal(IpAddr, String),
}

impl CheckedDomain {
    /// The domain as it goes after the `@` on the wire.
    pub(super) fn wire(&self) -> &str {
        match self {
            Self::Name(name) => name,
            Self::Literal(_, text) => text,
        }
    }
}

/// Checks and normalises the domain part of an address. `at` is its offset in the mailbox,
/// for error positions.
pub(super) fn check(domain: &str, at: usize) -> Result<CheckedDomain, InvalidAddress> {
    let grammar = |error: PathError| InvalidAddress::Grammar(error.shifted(at));
    if let Some(body) = domain.strip_prefix('[') {
        let ip = body
            .strip_suffix(']')
            .and_then(|body| path::address_literal_ip(body.as_bytes()))
            .ok_or(InvalidAddress::Grammar(PathError::InvalidAddressLiteral))?;
        let text = match ip {
            IpAddr::V4(v4) => format!("[{v4}]"),
            IpAddr::V6(v6) => format!("[IPv6:{v6}]"),
        };
        return Ok(CheckedDomain::Literal(ip, text));
    }
    // The grammar first, on the domain as written (U-labels admitted): its errors point at the
    // offending character, which IDNA's do not.
    path::check_domain(domain.as_bytes()).map_err(grammar)?;
    let name = if is_plain_ascii(domain) {
        domain.to_ascii_lowercase()
    } else {
        to_a_labels(domain)?
    };
    // Again on the A-label form: a U-label can become a punycode label over 63 octets, and
    // UTS 46 mapping can create dots (U+3002 IDEOGRAPHIC FULL STOP is one).
    path::check_domain(name.as_bytes()).map_err(|error| match error {
        PathError::LabelTooLong { len, .. } => InvalidAddress::LabelTooLongAfterIdna { len },
        _ => InvalidAddress::Idna,
    })?;
    if name.len() > MAX_DNS_NAME_LEN {
        return Err(InvalidAddress::DomainTooLongForDns { len: name.len() });
    }
    let tld = name.rsplit_once('.').map_or(name.as_str(), |(_, tld)| tld);
    if tld.bytes().all(|b| b.is_ascii_digit()) {
        return Err(InvalidAddress::NumericTopLevel);
    }
    Ok(CheckedDomain::Name(name))
}

/// Letters, digits, hyphens and dots only, and no label with the ACE prefix `xn--`: such a
/// name is its own A-label form once lower-cased, and needs no IDNA processing.
fn is_plain_ascii(domain: &str) -> bool {
    domain
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && !domain.split('.').any(|label| {
            label
                .get(..4)
                .is_some_and(|prefix| prefix.eq_ignore_ascii_case("xn--"))
        })
}

/// UTS 46 ToASCII with the STD3 rules (letters, digits, hyphens only), hyphens checked at the
/// start and end of labels, and the lengths left to [`check`], which names the label.
fn to_a_labels(domain: &str) -> Result<String, InvalidAddress> {
    Uts46::new()
        .to_ascii(
            domain.as_bytes(),
            AsciiDenyList::STD3,
            Hyphens::CheckFirstLast,
            DnsLength::Ignore,
        )
        .map(|ascii| ascii.into_owned())
        .map_err(|_| InvalidAddress::Idna)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(domain: &str) -> Result<String, InvalidAddress> {
        check(domain, 0).map(|d| d.wire().to_owned())
    }

    #[test]
    fn names_are_lower_cased_and_internationalised_to_a_labels() {
        for (domain, ascii) in [
            ("example.com", "example.com"),
            ("Example.COM", "example.com"),
            ("bücher.example", "xn--bcher-kva.example"),
            ("BÜCHER.example", "xn--bcher-kva.example"),
            ("xn--bcher-kva.example", "xn--bcher-kva.example"),
            ("XN--BCHER-KVA.example", "xn--bcher-kva.example"),
            ("例子.广告", "xn--fsqu00a.xn--4rr70v"),
            ("bücher。example", "xn--bcher-kva.example"),
            ("münchen.de", "xn--mnchen-3ya.de"),
            ("a-b.c-d.example", "a-b.c-d.example"),
            ("123.example", "123.example"),
            ("example.xn--p1ai", "example.xn--p1ai"),
            // One label: DNS decides (RFC 5321 §2.3.5).
            ("localhost", "localhost"),
            ("IO", "io"),
            ("example", "example"),
            ("Bücher", "xn--bcher-kva"),
            ("a1", "a1"),
        ] {
            assert_eq!(name(domain).as_deref(), Ok(ascii), "{domain}");
        }
    }

    #[test]
    fn what_no_mail_domain_can_be_is_refused() {
        for (domain, error) in [
            ("123", InvalidAddress::NumericTopLevel),
            ("0", InvalidAddress::NumericTopLevel),
            ("1.2.3.4", InvalidAddress::NumericTopLevel),
            ("example.123", InvalidAddress::NumericTopLevel),
            ("xn--zz.example", InvalidAddress::Idna),
            ("bü\u{200d}cher.example", InvalidAddress::Idna),
            ("\u{301}a.example", InvalidAddress::Idna),
            (
                "bücher.exam_ple",
                InvalidAddress::Grammar(PathError::LabelChar { ch: '_', at: 12 }),
            ),
        ] {
            assert_eq!(name(domain), Err(error), "{domain}");
        }
    }

    #[test]
    fn lengths_are_checked_on_the_a_label_form() {
        // 63 octets of ASCII: the longest label.
        let longest = format!("{}.example", "a".repeat(63));
        assert_eq!(name(&longest), Ok(longest.clone()));
        // 30 distinct CJK characters are 90 octets of UTF-8, which the grammar leaves to
        // IDNA; their A-label is longer than 63 octets.
        let cjk: String = (0..30)
            .filter_map(|i| char::from_u32(0x4e00 + i * 37))
            .collect();
        let long_u_label = format!("{cjk}.example");
        assert!(matches!(
            name(&long_u_label),
            Err(InvalidAddress::LabelTooLongAfterIdna { .. })
        ));
        // 4 labels of 63 and 3 dots are 255 octets: over DNS's 253.
        let label = "a".repeat(63);
        let too_long = [label.as_str(); 4].join(".");
        assert_eq!(
            name(&too_long),
            Err(InvalidAddress::DomainTooLongForDns { len: 255 })
        );
        let fits = format!("{}.{label}.{label}.{}", label, "b".repeat(61));
        assert_eq!(fits.len(), 253);
        assert_eq!(name(&fits), Ok(fits.clone()));
    }

    #[test]
    fn literals_are_parsed_to_ip_addresses() {
        for (domain, ip, text) in [
            ("[192.0.2.1]", "192.0.2.1", "[192.0.2.1]"),
            ("[010.000.002.001]", "10.0.2.1", "[10.0.2.1]"),
            ("[IPv6:2001:DB8::1]", "2001:db8::1", "[IPv6:2001:db8::1]"),
            ("[ipv6:::1]", "::1", "[IPv6:::1]"),
            (
                "[IPv6:::ffff:192.0.2.1]",
                "::ffff:192.0.2.1",
                "[IPv6:::ffff:192.0.2.1]",
            ),
            ("[IPv6:0:0:0:0:0:0:0:1]", "::1", "[IPv6:::1]"),
        ] {
            let ip: IpAddr = ip.parse().expect("test IP");
            assert_eq!(
                check(domain, 0),
                Ok(CheckedDomain::Literal(ip, text.to_owned())),
                "{domain}"
            );
        }
        for domain in [
            "[192.0.2.256]",
            "[192.0.2.1",
            "[IPv6:1.2.3.4]",
            "[x:y]",
            "[]",
        ] {
            assert_eq!(
                check(domain, 0),
                Err(InvalidAddress::Grammar(PathError::InvalidAddressLiteral)),
                "{domain}"
            );
        }
    }
}
