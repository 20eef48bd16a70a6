//! [`UploadError`]: why an upload is refused, where, and what its sender should do about it.
//! Each message is written for the person who sent the file, and is meant to reach them as
//! is (in the HTTP service's error body).

use std::fmt;

/// Where in the body a fault is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// A line of a plain-text body (or, for a NUL byte, of a CSV body), from 1.
    Line(u64),
    /// A CSV record, by the line its items get (the `csv` crate's numbering, as `verify`'s:
    /// see the module docs).
    Record(u64),
    /// An element of a JSON array: its position from 1, and the offset of its first byte in the
    /// body, from 0.
    Element {
        /// Its position in the array, from 1.
        number: u64,
        /// The offset of its opening quote in the body, from 0.
        byte: u64,
    },
    /// An offset in the body, from 0.
    Byte(u64),
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Line(line) => write!(f, "line {line}"),
            Self::Record(line) => write!(f, "the CSV record at line {line}"),
            Self::Element { number, byte } => {
                write!(f, "element {number} (at byte offset {byte})")
            }
            Self::Byte(byte) => write!(f, "byte offset {byte}"),
        }
    }
}

/// What a JSON body holds where a fault is: the value or token the byte there starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonToken {
    /// `{`.
    Object,
    /// `[`.
    Array,
    /// `"`.
    String,
    /// `-` or a digit.
    Number,
    /// `t` or `f`.
    Boolean,
    /// `n`.
    Null,
    /// `]`.
    EndOfArray,
    /// `,`.
    Comma,
    /// Nothing: the body ends there.
    EndOfBody,
    /// A byte that starts no JSON token.
    Other(u8),
}

impl JsonToken {
    /// What `byte` starts.
    pub(super) fn starting_with(byte: u8) -> Self {
        match byte {
            b'{' => Self::Object,
            b'[' => Self::Array,
            b'"' => Self::String,
            b'-' | b'0'..=b'9' => Self::Number,
            b't' | b'f' => Self::Boolean,
            b'n' => Self::Null,
            b']' => Self::EndOfArray,
            b',' => Self::Comma,
            other => Self::Other(other),
        }
    }
}

impl fmt::Display for JsonToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Object => f.write_str("an object"),
            Self::Array => f.write_str("an array"),
            Self::String => f.write_str("a string"),
            Self::Number => f.write_str("a number"),
            Self::Boolean => f.write_str("true or false"),
            Self::Null => f.write_str("null"),
            Self::EndOfArray => f.write_str("the end of the array (])"),
            Self::Comma => f.write_str("a comma"),
            Self::EndOfBody => f.write_str("the end of the body"),
            Self::Other(byte) if byte.is_ascii_graphic() => {
                write!(f, "'{}', which starts no JSON value", char::from(*byte))
            }
            Self::Other(byte) => write!(f, "the byte 0x{byte:02X}, which starts no JSON value"),
        }
    }
}

/// Why an upload is refused. The message says what is wrong, where (a line, a CSV record, or
/// for JSON a byte offset), and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UploadError {
    /// A NUL byte: the body is a binary file, not text.
    Binary {
        /// Where the NUL byte is.
        at: Place,
    },
    /// A line, CSV record or JSON string longer than the limit.
    TooLong {
        /// Which one.
        at: Place,
        /// The limit, in bytes ([`Parser::with_max_line`](super::Parser::with_max_line)).
        limit: usize,
    },
    /// Text that is not UTF-8.
    NotUtf8 {
        /// Where.
        at: Place,
    },
    /// The CSV header has no column by the name asked for.
    NoSuchColumn {
        /// The name asked for.
        name: String,
        /// The header's columns, trimmed, separated by ", " (cut short after 1 KiB).
        header: String,
    },
    /// The JSON body does not start with an array.
    NotAnArray {
        /// Where the first thing that is not white space is.
        byte: u64,
        /// What is there.
        found: JsonToken,
    },
    /// An element of the JSON array is not a string (or is missing, between two commas).
    NotAString {
        /// Its position in the array, from 1.
        element: u64,
        /// Where it starts.
        byte: u64,
        /// What it is.
        found: JsonToken,
    },
    /// Two elements of the JSON array without a comma between them.
    MissingComma {
        /// The element before the missing comma.
        after: u64,
        /// Where a comma or `]` was due.
        byte: u64,
        /// What is there instead.
        found: JsonToken,
    },
    /// Something after the JSON array's closing `]`.
    TrailingData {
        /// Where.
        byte: u64,
        /// What.
        found: JsonToken,
    },
    /// The body ends inside the JSON array.
    Unfinished {
        /// The body's length.
        byte: u64,
    },
    /// A JSON string that `serde_json` refuses: a bad escape, a raw control character.
    BadString {
        /// Its position in the array, from 1.
        element: u64,
        /// Where it starts.
        byte: u64,
        /// `serde_json`'s complaint.
        detail: String,
    },
}

/// How a JSON body should look, for the messages.
const JSON_EXAMPLE: &str = r#"["a@x.test", "b@y.test"]"#;

impl fmt::Display for UploadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Binary { at } => write!(
                f,
                "{at} holds a NUL byte, so this is a binary file: upload text \
                 (one address per line, CSV, or a JSON array of strings), encoded as UTF-8"
            ),
            Self::TooLong { at, limit } => write!(
                f,
                "{at} is longer than {limit} bytes, and no address is longer than 254: check \
                 that lines end with LF or CRLF and that the body is in the format its \
                 Content-Type says"
            ),
            Self::NotUtf8 { at } => write!(
                f,
                "{at} is not UTF-8: upload text, not a binary file, and convert a Latin-1 or \
                 UTF-16 export to UTF-8 first"
            ),
            Self::NoSuchColumn { name, header } => write!(
                f,
                "the CSV header has no column named {name:?} (it has: {header}): name one of \
                 those, or give the column's number from 1"
            ),
            Self::NotAnArray { byte, found } => write!(
                f,
                "the body is not a JSON array: at byte offset {byte} it holds {found}; send an \
                 array of strings such as {JSON_EXAMPLE}, or the addresses one per line as \
                 text/plain"
            ),
            Self::NotAString {
                element,
                byte,
                found: found @ (JsonToken::Comma | JsonToken::EndOfArray),
            } => write!(
                f,
                "element {element} of the JSON array is missing: at byte offset {byte} comes \
                 {found}; remove the extra comma before it"
            ),
            Self::NotAString {
                element,
                byte,
                found,
            } => write!(
                f,
                "element {element} of the JSON array (at byte offset {byte}) is {found}, not a \
                 string: send each address as a JSON string, such as {JSON_EXAMPLE}"
            ),
            Self::MissingComma { after, byte, found } => write!(
                f,
                "the JSON array needs a comma or its closing ] after element {after}: at byte \
                 offset {byte} comes {found}; separate the elements with commas"
            ),
            Self::TrailingData { byte, found } => write!(
                f,
                "the JSON array is closed before byte offset {byte}, where {found} follows it: \
                 send one array and nothing after it"
            ),
            Self::Unfinished { byte } => write!(
                f,
                "the body ends at byte offset {byte}, inside the JSON array: send the whole \
                 array, up to its closing ]"
            ),
            Self::BadString {
                element,
                byte,
                detail,
            } => write!(
                f,
                "element {element} of the JSON array (at byte offset {byte}) is not a valid \
                 JSON string ({detail}): escape quotes, backslashes and control characters \
                 as JSON does (\\\" \\\\ \\n \\u0009)"
            ),
        }
    }
}

impl std::error::Error for UploadError {}
