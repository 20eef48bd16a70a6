//! Property tests of address parsing: whatever the input, an accepted address encodes into one
//! clean `RCPT TO` line, and its normal form is a fixed point; an input holding a control
//! character is refused, naming the first one; and a parsed address came from an input
//! without one.

use mxprobe::address::{Address, InvalidAddress};
use mxprobe::smtp::Command;
use proptest::prelude::*;

/// Text that looks like an address often enough to pass the grammar, with the characters that
/// break or inject: quotes, backslashes, angle brackets, CR, LF, NUL, NEL, spaces, dots, '@',
/// and non-ASCII letters.
fn address_like() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        6 => "[a-zA-Z0-9]{1,8}",
        1 => Just(".".to_owned()),
        1 => Just("@".to_owned()),
        1 => Just("\"".to_owned()),
        1 => Just("\\".to_owned()),
        1 => prop::sample::select(vec![
            " ", "<", ">", "\r", "\n", "\r\n", "\0", "\u{85}", "\u{2028}", "\t", "(", ",",
            "[", "]", "IPv6:", "::1", "192.0.2.1", "xn--", "-", "+", "ü", "例", "😀", "。",
            "mailto:", "%0D%0A", "%40", "\u{7f}", "\u{1b}", "\u{9b}", ")", ":", ";",
            "RCPT TO:", "%09", "%C2%85",
        ])
        .prop_map(str::to_owned),
    ];
    prop::collection::vec(piece, 1..16).prop_map(|pieces| pieces.concat())
}

/// Local part, '@', domain: accepted often, so the properties are exercised on valid input.
fn plausible_address() -> impl Strategy<Value = String> {
    (
        "[a-zA-Z0-9._%+ü\"-]{1,20}",
        "[a-zA-Z0-9-]{1,12}",
        prop::sample::select(vec!["com", "de", "co.uk", "example", "xn--p1ai"]),
    )
        .prop_map(|(local, label, tld)| format!("{local}@{label}.{tld}"))
}

/// A plausible address with a control character put in at any place.
fn address_with_a_control_character() -> impl Strategy<Value = (String, usize, char)> {
    let control = prop_oneof![
        prop::char::range('\u{0}', '\u{1f}'),
        Just('\u{7f}'),
        prop::char::range('\u{80}', '\u{9f}'),
    ];
    (plausible_address(), any::<prop::sample::Index>(), control).prop_map(|(address, index, ch)| {
        let places: Vec<usize> = address
            .char_indices()
            .map(|(at, _)| at)
            .chain([address.len()])
            .collect();
        let at = places[index.index(places.len())];
        let mut raw = address;
        raw.insert(at, ch);
        (raw, at, ch)
    })
}

fn check(raw: &str) -> Result<(), TestCaseError> {
    let parsed = Address::parse(raw);
    if let Some((at, ch)) = raw.char_indices().find(|&(_, ch)| ch.is_control()) {
        prop_assert_eq!(
            parsed,
            Err(InvalidAddress::ControlCharacter { ch, at }),
            "{:?} holds a control character",
            raw
        );
        return Ok(());
    }
    let Ok(address) = parsed else {
        return Ok(());
    };
    prop_assert!(
        !address.original().chars().any(char::is_control),
        "{raw:?} accepted with a control character in its original"
    );
    prop_assert!(
        !address
            .mailbox()
            .bytes()
            .any(|b| matches!(b, b'\r' | b'\n' | 0)),
        "{raw:?} -> mailbox {:?}",
        address.mailbox()
    );
    let mut line = Vec::new();
    Command::RcptTo {
        forward_path: address.mailbox(),
        smtputf8: address.needs_smtputf8(),
    }
    .encode(&mut line)
    .map_err(|e| TestCaseError::fail(format!("{raw:?} accepted but not encodable: {e}")))?;
    let body = line
        .strip_suffix(b"\r\n")
        .ok_or_else(|| TestCaseError::fail("no CRLF"))?;
    prop_assert!(
        !body.iter().any(|&b| matches!(b, b'\r' | b'\n' | 0)),
        "{raw:?} -> {:?}",
        String::from_utf8_lossy(&line)
    );
    prop_assert!(body.starts_with(b"RCPT TO:<") && body.ends_with(b">"));
    let again = Address::parse(address.mailbox())
        .map_err(|e| TestCaseError::fail(format!("normal form of {raw:?} refused: {e}")))?;
    prop_assert_eq!(again.mailbox(), address.mailbox());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn accepted_addresses_encode_cleanly(raw in address_like()) {
        check(&raw)?;
    }

    #[test]
    fn plausible_addresses_encode_cleanly(raw in plausible_address()) {
        check(&raw)?;
    }

    #[test]
    fn arbitrary_text_never_panics_and_encodes_cleanly(raw in any::<String>()) {
        check(&raw)?;
    }

    #[test]
    fn a_control_character_anywhere_refuses_the_address((raw, at, ch) in address_with_a_control_character()) {
        prop_assert_eq!(
            Address::parse(&raw),
            Err(InvalidAddress::ControlCharacter { ch, at })
        );
        check(&raw)?;
        // The same inside a Name <addr> line and in a mailto: link, at its offset there.
        for prefix in ["Alice <", "mailto:"] {
            prop_assert_eq!(
                Address::parse(&format!("{prefix}{raw}>")),
                Err(InvalidAddress::ControlCharacter { ch, at: at + prefix.len() })
            );
        }
    }

    /// A line with an address, text that is no display name, and another address in brackets is
    /// refused, never verified as the bracketed address.
    #[test]
    fn smuggled_angle_addresses_are_refused(
        first in plausible_address(),
        second in plausible_address(),
        glue in prop::sample::select(vec![" ", " RCPT TO:", ", ", " ; ", "\u{a0}"]),
    ) {
        let raw = format!("{first}{glue}<{second}>");
        let same = first.trim().eq_ignore_ascii_case(second.trim()) && glue.trim().is_empty();
        if let Ok(address) = Address::parse(&raw) {
            prop_assert!(same, "{raw:?} accepted as {:?}", address.mailbox());
        }
    }
}
