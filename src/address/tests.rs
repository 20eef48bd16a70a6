//! Address cases as tables: what each valid input normalises to, and which rule each invalid one
//! breaks. Every accepted mailbox is also encoded into `RCPT TO` to prove it reaches the wire
//! intact.

use super::*;
use crate::smtp::Command;
use crate::smtp::path::DotPlace;

/// Parses `raw`, checks that the mailbox encodes into `RCPT TO` as itself, and returns it.
fn accepted(raw: &str) -> Address {
    let address = Address::parse(raw).unwrap_or_else(|e| panic!("{raw:?}: {e}"));
    let mut wire = Vec::new();
    Command::RcptTo {
        forward_path: address.mailbox(),
        smtputf8: address.needs_smtputf8(),
    }
    .encode(&mut wire)
    .unwrap_or_else(|e| panic!("{raw:?} parsed but does not encode: {e}"));
    assert_eq!(
        wire,
        format!("RCPT TO:<{}>\r\n", address.mailbox()).as_bytes()
    );
    assert_eq!(address.original(), raw);
    assert_eq!(
        address.mailbox(),
        format!("{}@{}", address.local_part(), address.domain())
    );
    address
}

#[test]
fn valid_addresses_and_their_normal_form() {
    let local64 = "l".repeat(64);
    let label = "d".repeat(63);
    // 64 + 1 + 189 = 254 octets: the longest path.
    let domain189 = format!("{label}.{label}.{}.com", "d".repeat(57));
    let longest = format!("{local64}@{domain189}");
    assert_eq!(longest.len(), 254);
    let cases: Vec<(String, &str, bool)> = vec![
        // (input, mailbox, needs SMTPUTF8)
        ("alice@example.com".into(), "alice@example.com", false),
        ("Alice@EXAMPLE.com".into(), "Alice@example.com", false),
        (
            "first.last+tag@sub.example.co.uk".into(),
            "first.last+tag@sub.example.co.uk",
            false,
        ),
        (
            "!#$%&'*+-/=?^_`{|}~@example.com".into(),
            "!#$%&'*+-/=?^_`{|}~@example.com",
            false,
        ),
        // Quoted locals: with spaces and '@' they keep their quotes, without they lose them.
        (
            "\"john doe\"@example.com".into(),
            "\"john doe\"@example.com",
            false,
        ),
        (
            "\"john@doe\"@example.com".into(),
            "\"john@doe\"@example.com",
            false,
        ),
        (
            "\"john..doe\"@example.com".into(),
            "\"john..doe\"@example.com",
            false,
        ),
        (
            "\".john\"@example.com".into(),
            "\".john\"@example.com",
            false,
        ),
        ("\"john\"@example.com".into(), "john@example.com", false),
        ("\"jo\\hn\"@example.com".into(), "john@example.com", false),
        (
            "\"a\\\"b\"@example.com".into(),
            "\"a\\\"b\"@example.com",
            false,
        ),
        // IDN domains and UTF-8 local parts.
        (
            "josé@bücher.example".into(),
            "josé@xn--bcher-kva.example",
            true,
        ),
        (
            "user@BÜCHER.example".into(),
            "user@xn--bcher-kva.example",
            false,
        ),
        ("用户@例子.广告".into(), "用户@xn--fsqu00a.xn--4rr70v", true),
        ("😀@example.com".into(), "😀@example.com", true),
        ("\"ü ö\"@example.com".into(), "\"ü ö\"@example.com", true),
        (
            "\"\u{a0}john\"@example.com".into(),
            "\"\u{a0}john\"@example.com",
            true,
        ),
        // Lengths at their limits.
        (format!("{local64}@example.com"), "", false),
        (longest.clone(), "", false),
        // Address literals.
        ("user@[192.0.2.1]".into(), "user@[192.0.2.1]", false),
        (
            "user@[IPv6:2001:DB8::1]".into(),
            "user@[IPv6:2001:db8::1]",
            false,
        ),
        // Input forms.
        ("  alice@example.com  ".into(), "alice@example.com", false),
        (
            "Alice Example <alice@example.com>".into(),
            "alice@example.com",
            false,
        ),
        (
            "\"Example, Alice <CEO>\" <alice@example.com>".into(),
            "alice@example.com",
            false,
        ),
        ("<alice@example.com>".into(), "alice@example.com", false),
        (
            "Anna Müller <Anna.Mueller@Bücher.Example>".into(),
            "Anna.Mueller@xn--bcher-kva.example",
            false,
        ),
        (
            "mailto:Alice <alice@example.com>".into(),
            "alice@example.com",
            false,
        ),
        (
            "J. R. R. Tolkien <jrr@example.com>".into(),
            "jrr@example.com",
            false,
        ),
        (
            "Alice (Sales, EMEA) <alice@example.com>".into(),
            "alice@example.com",
            false,
        ),
        // Quirk `repeated-addr`: exports write the address as its own display name.
        (
            "alice@example.com <alice@example.com>".into(),
            "alice@example.com",
            false,
        ),
        (
            "Alice@Example.com <alice@EXAMPLE.com>".into(),
            "alice@example.com",
            false,
        ),
        (
            "mailto:alice@example.com?subject=x".into(),
            "alice@example.com",
            false,
        ),
        ("a@b.co".into(), "a@b.co", false),
        // One label: valid syntax; DNS says whether it receives mail (RFC 5321 §2.3.5).
        ("alice@localhost".into(), "alice@localhost", false),
        ("user@io".into(), "user@io", false),
        ("user@Example".into(), "user@example", false),
        ("user@bücher".into(), "user@xn--bcher-kva", false),
    ];
    for (raw, mailbox, smtputf8) in cases {
        let address = accepted(&raw);
        let expected = if mailbox.is_empty() {
            raw.trim()
        } else {
            mailbox
        };
        assert_eq!(address.mailbox(), expected, "{raw:?}");
        assert_eq!(address.needs_smtputf8(), smtputf8, "{raw:?}");
    }
}

#[test]
fn invalid_addresses_name_the_rule() {
    use InvalidAddress as E;
    use PathError as P;
    let local65 = "l".repeat(65);
    let label = "d".repeat(63);
    let domain190 = format!("{label}.{label}.{}.com", "d".repeat(58));
    let cases: Vec<(String, InvalidAddress)> = vec![
        ("".into(), E::Empty),
        ("plainaddress".into(), E::Grammar(P::MissingAt)),
        ("@example.com".into(), E::Grammar(P::EmptyLocalPart)),
        ("alice@".into(), E::Grammar(P::EmptyDomain)),
        (
            "john..doe@example.com".into(),
            E::Grammar(P::LocalPartDot {
                place: DotPlace::Doubled,
                at: 5,
            }),
        ),
        (
            ".john@example.com".into(),
            E::Grammar(P::LocalPartDot {
                place: DotPlace::Leading,
                at: 0,
            }),
        ),
        (
            "john.@example.com".into(),
            E::Grammar(P::LocalPartDot {
                place: DotPlace::Trailing,
                at: 4,
            }),
        ),
        (
            "john doe@example.com".into(),
            E::Grammar(P::UnquotedChar { ch: ' ', at: 4 }),
        ),
        (
            "john@doe@example.com".into(),
            E::Grammar(P::ExtraAt { at: 8 }),
        ),
        (
            "\"john@example.com".into(),
            E::Grammar(P::UnterminatedQuote),
        ),
        (
            "\"john\"doe@example.com".into(),
            E::Grammar(P::TextAfterQuote { at: 6 }),
        ),
        (
            "john(comment)@example.com".into(),
            E::Grammar(P::UnquotedChar { ch: '(', at: 4 }),
        ),
        (
            "a,b@example.com".into(),
            E::Grammar(P::UnquotedChar { ch: ',', at: 1 }),
        ),
        (
            "alice@example..com".into(),
            E::Grammar(P::DomainDot {
                place: DotPlace::Doubled,
                at: 14,
            }),
        ),
        (
            "alice@example.com.".into(),
            E::Grammar(P::DomainDot {
                place: DotPlace::Trailing,
                at: 17,
            }),
        ),
        (
            "alice@.example.com".into(),
            E::Grammar(P::DomainDot {
                place: DotPlace::Leading,
                at: 6,
            }),
        ),
        (
            "alice@-example.com".into(),
            E::Grammar(P::LabelHyphen { at: 6 }),
        ),
        (
            "alice@exa_mple.com".into(),
            E::Grammar(P::LabelChar { ch: '_', at: 9 }),
        ),
        ("alice@1.2.3.4".into(), E::NumericTopLevel),
        ("alice@123".into(), E::NumericTopLevel),
        (
            "alice@[1.2.3.999]".into(),
            E::Grammar(P::InvalidAddressLiteral),
        ),
        ("alice@xn--zz.example".into(), E::Idna),
        (
            format!("{local65}@example.com"),
            E::Grammar(P::LocalPartTooLong { len: 65 }),
        ),
        (
            format!("a@{}.com", "d".repeat(64)),
            E::Grammar(P::LabelTooLong { at: 2, len: 64 }),
        ),
        (
            format!("{}@{domain190}", "l".repeat(64)),
            E::Grammar(P::MailboxTooLong { len: 255 }),
        ),
        // Injection: CR, LF, NUL and every other control character never pass, wherever
        // they stand, and refuse the whole input at their offset in it.
        (
            "a\r\nDATA@example.com".into(),
            E::ControlCharacter { ch: '\r', at: 1 },
        ),
        (
            "alice@example.com\nRSET".into(),
            E::ControlCharacter { ch: '\n', at: 17 },
        ),
        (
            "al\0ice@example.com".into(),
            E::ControlCharacter { ch: '\0', at: 2 },
        ),
        (
            "\"a\r\n\"@example.com".into(),
            E::ControlCharacter { ch: '\r', at: 2 },
        ),
        (
            "a\u{85}b@example.com".into(),
            E::ControlCharacter {
                ch: '\u{85}',
                at: 1,
            },
        ),
        (
            "a@x.test\r\nRCPT TO:<b@x.test>".into(),
            E::ControlCharacter { ch: '\r', at: 8 },
        ),
        (
            "  alice@example.com\r\n".into(),
            E::ControlCharacter { ch: '\r', at: 19 },
        ),
        (
            "alice@example.com\t".into(),
            E::ControlCharacter { ch: '\t', at: 17 },
        ),
        (
            "\talice@example.com".into(),
            E::ControlCharacter { ch: '\t', at: 0 },
        ),
        (
            "Alice\t<alice@example.com>".into(),
            E::ControlCharacter { ch: '\t', at: 5 },
        ),
        (
            "alice@example.com\u{7f}".into(),
            E::ControlCharacter {
                ch: '\u{7f}',
                at: 17,
            },
        ),
        (
            "alice@example.com\u{85}".into(),
            E::ControlCharacter {
                ch: '\u{85}',
                at: 17,
            },
        ),
        (
            "\u{feff}\u{1b}[2Jalice@example.com".into(),
            E::ControlCharacter {
                ch: '\u{1b}',
                at: 3,
            },
        ),
        // Display names that are no phrase: the bracketed address is not verified instead.
        (
            "a@x.test RCPT TO:<b@x.test>".into(),
            E::NotADisplayName { ch: '@', at: 1 },
        ),
        (
            "x@y.test, <b@x.test>".into(),
            E::NotADisplayName { ch: '@', at: 1 },
        ),
        (
            "foo: <a@b.test>".into(),
            E::NotADisplayName { ch: ':', at: 3 },
        ),
        (
            "Doe, John <john@example.com>".into(),
            E::NotADisplayName { ch: ',', at: 3 },
        ),
        (
            "alice@example.com <bob@example.com>".into(),
            E::NotADisplayName { ch: '@', at: 5 },
        ),
        (
            "alice@example.com> NOTIFY=NEVER".into(),
            E::Grammar(P::LabelChar { ch: '>', at: 17 }),
        ),
        ("<alice@example.com".into(), E::UnclosedAngle),
        (
            "alice>@example.com".into(),
            E::Grammar(P::UnquotedChar { ch: '>', at: 5 }),
        ),
        (
            "mailto:a%0D%0ADATA@example.com".into(),
            E::EncodedControlCharacter { ch: '\r', at: 8 },
        ),
        (
            "mailto:a%C2%85@example.com".into(),
            E::EncodedControlCharacter {
                ch: '\u{85}',
                at: 8,
            },
        ),
        (
            "\"Alice <alice@example.com>".into(),
            E::Grammar(P::UnterminatedQuote),
        ),
    ];
    for (raw, error) in cases {
        assert_eq!(Address::parse(&raw), Err(error), "{raw:?}");
        assert_eq!(error.reason(), Reason::InvalidSyntax);
    }
}

#[test]
fn the_local_part_keeps_its_case_and_the_domain_loses_it() {
    let address = accepted("John.Doe@Example.COM");
    assert_eq!(address.local_part(), "John.Doe");
    assert_eq!(address.domain(), "example.com");
}

#[test]
fn the_original_is_kept_and_costs_nothing_when_already_bare() {
    let bare = accepted("alice@example.com");
    assert_eq!(bare.text.len(), "alice@example.com".len());
    assert_eq!(bare.original(), "alice@example.com");
    let named = Address::parse("Alice <alice@example.com>").expect("valid");
    assert_eq!(named.original(), "Alice <alice@example.com>");
    assert_eq!(named.mailbox(), "alice@example.com");
    assert_eq!(named.domain(), "example.com");
    assert_eq!(named.to_string(), "alice@example.com");
    // Same length, other text: the input is still kept.
    let cased = accepted("alice@EXAMPLE.com");
    assert_eq!(cased.mailbox(), "alice@example.com");
    assert_eq!(cased.original(), "alice@EXAMPLE.com");
}

#[test]
fn address_literals_are_flagged() {
    let address = accepted("postmaster@[IPv6:::1]");
    assert_eq!(address.address_literal(), "::1".parse().ok());
    assert_eq!(address.domain(), "[IPv6:::1]");
    assert_eq!(
        address.flags(),
        Flags {
            role: true,
            disposable: false,
            free: false
        }
    );
    assert_eq!(address.domain_suggestion(), None);
    let v4 = Address::parse(" <postmaster@[010.0.2.1]>").expect("valid");
    assert_eq!(v4.address_literal(), "10.0.2.1".parse().ok());
    assert_eq!(v4.domain(), "[10.0.2.1]");
    assert_eq!(v4.original(), " <postmaster@[010.0.2.1]>");
    assert_eq!(accepted("a@example.com").address_literal(), None);
}

#[test]
fn flags_and_suggestions() {
    let flags = |raw: &str| accepted(raw).flags();
    assert_eq!(
        flags("alice@gmail.com"),
        Flags {
            role: false,
            disposable: false,
            free: true
        }
    );
    assert_eq!(
        flags("Info@Mailinator.com"),
        Flags {
            role: true,
            disposable: true,
            free: false
        }
    );
    assert_eq!(
        flags("sales+q4@example.com"),
        Flags {
            role: true,
            disposable: false,
            free: false
        }
    );
    assert_eq!(flags("alice@example.com"), Flags::default());
    assert_eq!(
        accepted("alice@gmial.com").domain_suggestion(),
        Some("gmail.com")
    );
    assert_eq!(
        accepted("alice@GMIAL.com").domain_suggestion(),
        Some("gmail.com")
    );
    assert_eq!(accepted("alice@gmail.com").domain_suggestion(), None);
}

#[test]
fn errors_read_as_sentences() {
    for (raw, text) in [
        ("", "the address is empty"),
        (
            "alice@example.com\r\nDATA",
            "the address contains CR at byte 17, which could inject an SMTP command",
        ),
        (
            "a\nb@example.com",
            "the address contains LF at byte 1, which could inject an SMTP command",
        ),
        (
            "alice@exa\0mple.com",
            "the address contains NUL at byte 9, which could inject an SMTP command",
        ),
        (
            "alice@example.com\t",
            "the address contains TAB (0x09) at byte 17, which no address may hold; remove it",
        ),
        (
            "alice@example.com\u{7f}",
            "the address contains DEL (0x7F) at byte 17, which no address may hold; remove it",
        ),
        (
            "alice@example.com\u{85}",
            "the address contains U+0085 (NEL) at byte 17, which some software reads as a line break",
        ),
        (
            "alice@example.com\u{c}",
            "the address contains FF (0x0C) at byte 17, which some software reads as a line break",
        ),
        (
            "mailto:a%0D%0ADATA@example.com",
            "the mailto: link has a '%' escape at byte 8 that decodes to CR, which could inject an SMTP command",
        ),
        (
            "a@x.test RCPT TO:<b@x.test>",
            "the text before '<' is not a display name (byte 1: '@'); quote the name or remove it",
        ),
        (
            "foo: <a@b.test>",
            "the text before '<' is not a display name (byte 3: ':'); quote the name or remove it",
        ),
        (
            "alice@123",
            "the domain's last label is all digits; write an IP address in brackets, as [192.0.2.1]",
        ),
        (
            "alice@example.com.",
            "the address has a domain that ends with a dot (byte 17)",
        ),
        (
            "john@doe@example.com",
            "the address has a second '@' at byte 8; an '@' in the local part must be quoted",
        ),
        (
            "alice@xn--zz.example",
            "the domain is not a valid internationalised domain name (IDNA 2008 / UTS 46)",
        ),
    ] {
        assert_eq!(
            Address::parse(raw).expect_err(raw).to_string(),
            text,
            "{raw:?}"
        );
    }
}
