//! The local part of an address, in the form with the least quoting.
//!
//! RFC 5321 §4.1.2: "all quoted forms MUST be treated as equivalent, and the sending system
//! SHOULD transmit the form that uses the minimum quoting possible." So `"john"` is sent as
//! `john`, `"john\.doe"` as `john.doe`, and a local part that needs its quotes keeps them with
//! only `"` and `\` escaped. Case is never changed: the local part is the receiving server's to
//! interpret.

use std::borrow::Cow;

use crate::smtp::path::is_dot_string;

/// The minimally quoted form of a local part that passed the grammar
/// ([`crate::smtp::path::local_part_len`]).
pub(super) fn minimal_quoting(local: &str) -> Cow<'_, str> {
    let Some(quoted) = local
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
    else {
        return Cow::Borrowed(local);
    };
    let content = unescape(quoted);
    if is_dot_string(content.as_bytes()) {
        return Cow::Owned(content.into_owned());
    }
    let mut requoted = String::with_capacity(content.len() + 2);
    requoted.push('"');
    for ch in content.chars() {
        if matches!(ch, '"' | '\\') {
            requoted.push('\\');
        }
        requoted.push(ch);
    }
    requoted.push('"');
    if requoted == local {
        Cow::Borrowed(local)
    } else {
        Cow::Owned(requoted)
    }
}

/// The content of a quoted string with its quoted pairs resolved: `\x` is `x`.
fn unescape(quoted: &str) -> Cow<'_, str> {
    if !quoted.contains('\\') {
        return Cow::Borrowed(quoted);
    }
    let mut content = String::with_capacity(quoted.len());
    let mut chars = quoted.chars();
    while let Some(ch) = chars.next() {
        match ch {
            // The grammar guarantees a character after every backslash.
            '\\' => content.extend(chars.next()),
            ch => content.push(ch),
        }
    }
    Cow::Owned(content)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_stay_only_where_needed() {
        for (local, minimal) in [
            ("john", "john"),
            ("John.Doe", "John.Doe"),
            ("\"john\"", "john"),
            ("\"John.Doe\"", "John.Doe"),
            ("\"john\\.doe\"", "john.doe"),
            ("\"j\\ohn\"", "john"),
            ("\"john doe\"", "\"john doe\""),
            ("\"john\\ doe\"", "\"john doe\""),
            ("\"a@b\"", "\"a@b\""),
            ("\"a\\\"b\"", "\"a\\\"b\""),
            ("\"a\\\\b\"", "\"a\\\\b\""),
            ("\"a..b\"", "\"a..b\""),
            ("\".a\"", "\".a\""),
            ("\"\"", "\"\""),
            ("\"josé\"", "josé"),
        ] {
            assert_eq!(minimal_quoting(local), minimal, "{local}");
        }
    }

    #[test]
    fn an_already_minimal_form_is_not_copied() {
        assert!(matches!(minimal_quoting("john"), Cow::Borrowed(_)));
        assert!(matches!(minimal_quoting("\"john doe\""), Cow::Borrowed(_)));
    }
}
