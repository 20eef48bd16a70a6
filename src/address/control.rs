//! Control characters: the first thing looked for in an address, and how to name one to a user.
//!
//! A control character has no place in any address, so one anywhere in the input — C0
//! (U+0000–U+001F: NUL, TAB, LF, CR …), DEL (U+007F) or C1 (U+0080–U+009F: NEL …), which is
//! exactly what [`char::is_control`] matches — refuses it before anything is trimmed or taken
//! apart. Trimming `a@x.test\r\n`, or reading `<b@x.test>` out of
//! `a@x.test\r\nRCPT TO:<b@x.test>`, would verify an address other than the line the verdict
//! is printed under. (The mailbox grammar in [`crate::smtp::path`] refuses control bytes too:
//! that is the encoder's last gate, this is the user's first answer.)
//!
//! Names follow [`crate::smtp::path::PathError`]'s: `CR`, `LF` and `NUL` bare, as every SMTP
//! text calls them; other C0 characters and DEL by their ASCII abbreviation and code
//! (`TAB (0x09)`, `DEL (0x7F)`); C1 characters by code point and abbreviation
//! (`U+0085 (NEL)`), since they arrive as two bytes of UTF-8.

use std::borrow::Cow;

/// The byte offset and the character of the first control character in `text`.
pub(super) fn first(text: &str) -> Option<(usize, char)> {
    text.char_indices().find(|&(_, ch)| ch.is_control())
}

/// How an error message names `ch`, a control character.
pub(super) fn name(ch: char) -> Cow<'static, str> {
    let code = u32::from(ch);
    match ch {
        '\r' => Cow::Borrowed("CR"),
        '\n' => Cow::Borrowed("LF"),
        '\0' => Cow::Borrowed("NUL"),
        '\u{0}'..='\u{7f}' => Cow::Owned(format!("{} (0x{code:02X})", abbreviation(ch))),
        _ => Cow::Owned(format!("U+{code:04X} ({})", abbreviation(ch))),
    }
}

/// Why `ch` is dangerous, or what to do about it: the end of the error message.
pub(super) fn danger(ch: char) -> &'static str {
    match ch {
        // What ends or cuts an SMTP command line.
        '\r' | '\n' | '\0' => "which could inject an SMTP command",
        // Mandatory line breaks in Unicode (UAX #14 class BK), as in `PathError::ForbiddenChar`.
        '\u{b}' | '\u{c}' | '\u{85}' => "which some software reads as a line break",
        _ => "which no address may hold; remove it",
    }
}

/// The abbreviation Unicode gives a control character (`NameAliases.txt`); `?` for anything
/// else, which callers never pass.
fn abbreviation(ch: char) -> &'static str {
    const C0: [&str; 32] = [
        "NUL", "SOH", "STX", "ETX", "EOT", "ENQ", "ACK", "BEL", "BS", "TAB", "LF", "VT", "FF",
        "CR", "SO", "SI", "DLE", "DC1", "DC2", "DC3", "DC4", "NAK", "SYN", "ETB", "CAN", "EM",
        "SUB", "ESC", "FS", "GS", "RS", "US",
    ];
    const C1: [&str; 32] = [
        "PAD", "HOP", "BPH", "NBH", "IND", "NEL", "SSA", "ESA", "HTS", "HTJ", "VTS", "PLD", "PLU",
        "RI", "SS2", "SS3", "DCS", "PU1", "PU2", "STS", "CCH", "MW", "SPA", "EPA", "SOS", "SGC",
        "SCI", "CSI", "ST", "OSC", "PM", "APC",
    ];
    let code = u32::from(ch);
    let index = |base: u32| usize::try_from(code - base).unwrap_or(usize::MAX);
    match code {
        0x00..=0x1f => C0.get(index(0)).copied().unwrap_or("?"),
        0x7f => "DEL",
        0x80..=0x9f => C1.get(index(0x80)).copied().unwrap_or("?"),
        _ => "?",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_control_character_and_nothing_else_is_found() {
        // Every character up to U+3000 (the C0 and C1 blocks, Latin, the Unicode spaces and
        // separators, the ideographic space), and a few beyond.
        for code in (0..=0x3000_u32).chain([0xfeff, 0x1f600, 0x10ffff]) {
            let Some(ch) = char::from_u32(code) else {
                continue;
            };
            let control = matches!(code, 0x00..=0x1f | 0x7f..=0x9f);
            let text = format!("ab{ch}c");
            assert_eq!(first(&text), control.then_some((2, ch)), "U+{code:04X}");
            if control {
                assert!(!name(ch).contains('?'), "U+{code:04X} has a name");
            }
        }
    }

    #[test]
    fn names_say_what_the_character_is() {
        for (ch, text) in [
            ('\r', "CR"),
            ('\n', "LF"),
            ('\0', "NUL"),
            ('\t', "TAB (0x09)"),
            ('\u{1b}', "ESC (0x1B)"),
            ('\u{1f}', "US (0x1F)"),
            ('\u{7f}', "DEL (0x7F)"),
            ('\u{80}', "U+0080 (PAD)"),
            ('\u{85}', "U+0085 (NEL)"),
            ('\u{9b}', "U+009B (CSI)"),
            ('\u{9f}', "U+009F (APC)"),
        ] {
            assert_eq!(name(ch), text, "{ch:?}");
        }
    }
}
