//! [`Column`]: which field of a CSV upload holds the addresses, and whether its first row is a
//! header. The same rules and messages as the command line's `--column` (`src/cli/input.rs`).

use std::num::NonZeroUsize;
use std::str::FromStr;

/// Which CSV column holds the addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Column {
    /// By header name, compared case-insensitively with each header field trimmed: the first
    /// row is the header, and must have that column.
    Name(String),
    /// By position, from 1: the first row is a header if that column holds no `@`.
    Number(NonZeroUsize),
}

impl Column {
    /// The field the addresses are in once the header is known, from 0.
    pub(super) fn index(&self) -> Option<usize> {
        match self {
            Self::Name(_) => None,
            Self::Number(n) => Some(n.get() - 1),
        }
    }
}

impl FromStr for Column {
    type Err = String;

    /// A number from 1 is a position; anything else not blank is a name, trimmed.
    fn from_str(text: &str) -> Result<Self, String> {
        match text.parse::<usize>() {
            Ok(n) => NonZeroUsize::new(n)
                .map(Self::Number)
                .ok_or_else(|| "columns are numbered from 1".into()),
            Err(_) if !text.trim().is_empty() => Ok(Self::Name(text.trim().to_owned())),
            Err(_) => Err("give a column name or a number from 1".into()),
        }
    }
}
