//! Property tests of address parsing: whatever the input, an accepted address encodes into one
//! clean `RCPT TO` line, and its normal form is a fixed point.

use mxprobe::address::Address;
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
            "mailto:", "%0D%0A", "%40",
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

fn check(raw: &str) -> Result<(), TestCaseError> {
    let Ok(address) = Address::parse(raw) else {
        return Ok(());
    };
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
}
