//! What a line's text becomes: skipped (blank, a `#` comment) or an address's text with the
//! spaces around it taken off. These are the rules of `mxprobe verify`'s input
//! (`src/cli/input.rs`: `is_blank`, `trim_spaces`, `item_of`), copied word for word so that an
//! upload and `verify` read the same file the same way; change both or neither.

use std::str::Utf8Error;

use super::Item;

/// True for what is not worth a verdict: nothing but white space (control characters such as
/// TAB and CR included, since no address is hidden among them) and byte-order marks.
fn is_blank(text: &str) -> bool {
    text.chars().all(|c| c.is_whitespace() || c == '\u{feff}')
}

/// True for a `#` comment, white space before the `#` allowed.
fn is_comment(text: &str) -> bool {
    text.trim_start_matches(|c: char| c.is_whitespace() || c == '\u{feff}')
        .starts_with('#')
}

/// The spaces around an address (Unicode white space, a byte-order mark) taken off, but no
/// control character: `Address::parse` refuses those by name.
pub(super) fn trim_spaces(text: &str) -> &str {
    text.trim_matches(|c: char| (c.is_whitespace() && !c.is_control()) || c == '\u{feff}')
}

/// The item a line's (or a CSV field's) bytes make, `None` for a blank line or a `#` comment,
/// or the UTF-8 error that makes it unreadable.
pub(super) fn item_of(line: u64, bytes: &[u8]) -> Result<Option<Item>, Utf8Error> {
    let text = std::str::from_utf8(bytes)?;
    if is_blank(text) || is_comment(text) {
        return Ok(None);
    }
    Ok(Some(Item {
        line,
        text: trim_spaces(text).to_owned(),
    }))
}
