//! The streaming parser of bulk-job uploads: the body of `POST /v1/jobs`, arriving in chunks,
//! turned into [`Item`]s — a line number and an address's text — chunk by chunk.
//!
//! It is sans-IO: the HTTP service hands it each chunk of the body as it arrives
//! ([`Parser::feed`]) and tells it where the body ends ([`Parser::finish`]); it never reads a
//! socket. A ten-million-line upload goes through without ever being held in memory.
//!
//! # Calling contract
//!
//! Make a [`Parser`] for the body's [`Format`] (from its `Content-Type`), then for each chunk
//! call [`Parser::feed`], and after the last one [`Parser::finish`]. Both append the items
//! completed so far to `out` (never clearing it), so the caller can store them and clear `out`
//! between chunks. An `Err` is final: the items appended before it are the lines that precede
//! the fault, every later call returns the same error, and the upload as a whole is to be
//! refused with the error's message — it says what is wrong, where, and what to do.
//!
//! # Guarantees
//!
//! - No input makes it panic.
//! - The outcome does not depend on how the body was split into chunks: at any byte (inside a
//!   UTF-8 sequence, between CR and LF, inside a JSON escape or a CSV quote), the items and the
//!   error are those of the whole body fed at once. Each fault is found at a fixed point of the
//!   byte stream, never "whenever the chunk ends".
//! - Memory is bounded by the line limit ([`Parser::with_max_line`], default [`MAX_LINE`]):
//!   the parser holds at most one line's worth of bytes (plus, for a CSV header naming its
//!   columns, up to 2 KiB of their names for the error message), whatever the body. A 10 MB
//!   line with no line end is refused once its first `max_line + 2` bytes have arrived.
//!   [`Parser::buffered`] reports what it holds. The items of a chunk are the caller's to keep
//!   or drop.
//!
//! # The formats, and what `mxprobe verify` does with the same file
//!
//! A job's results are compared line for line with `mxprobe verify`'s output for the same file,
//! so plain lines and CSV follow the rules of the command line's input (`src/cli/input.rs`)
//! exactly: the same lines skipped, the same line numbers, the same text handed to
//! `Address::parse`.
//!
//! - [`Format::Lines`] (`text/plain`): one address per line. A line ends at LF, and its
//!   terminator (`\n` or `\r\n`, nothing else) is taken off; a lone CR stays in the text, for
//!   `Address::parse` to refuse by name. Lines are numbered from 1 as they are in the file.
//!   Blank lines (nothing but white space, control characters included, and byte-order marks)
//!   and `#` comments are skipped but counted. The text loses the spaces around it (Unicode
//!   white space that is not a control character, and byte-order marks), never a TAB or CR.
//! - [`Format::Csv`] (`text/csv`): RFC 4180 as the `csv` crate reads it (its push parser,
//!   `csv-core`, with the same settings: comma, double quote, CR, LF or CRLF between records,
//!   rows of any length). The [`Column`] says which field holds the address and whether the
//!   first row is a header. Fields are read like lines: blank fields and fields starting with
//!   `#` are skipped, the spaces around the text taken off. A row that does not reach the
//!   column is skipped when all its fields are blank, and otherwise is an item with the text
//!   `""`, which the engine reports as `invalid_syntax`: a row in the wrong shape gets a result
//!   on its line rather than vanishing, and no other field of it is verified by mistake.
//! - [`Format::Json`] (`application/json`): one JSON array of strings, such as
//!   `["a@x.test", "b@y.test"]`. An item's `line` is the element's position in the array, from 1.
//!   Every element is an item, trimmed like a line, even when blank or starting with `#`: JSON
//!   has no comments, and each element the client sent gets its result at its position.
//!   Strings are decoded by `serde_json`; an escaped control character (`\n`, `\u0000`) is
//!   decoded and left in the text for `Address::parse` to refuse by name, as a raw one in a
//!   line is. A leading byte-order mark is allowed.
//!
//! **CSV line numbers.** A record's `line` is the `csv` crate's `Position::line`, as `verify`
//! reports it: the line on which the reader stood when the record before it ended. That is the
//! record's first line in a file with LF line ends and no blank lines, but one line short after
//! a record ending in CRLF (BurntSushi/rust-csv#395), and the first blank line's number for a
//! record after blank lines. Numbering records the way `verify` does keeps a job's results
//! comparable with `verify`'s; when `verify` changes its numbering, this parser must change
//! with it.
//!
//! **Where an upload is stricter than `verify`.** `verify` reports a line that is not UTF-8 as
//! `invalid_syntax` and goes on; so does a line with a NUL byte, which `Address::parse`
//! refuses, and it has no limit on a line's length. An upload with such a line is refused
//! whole ([`UploadError`]), before any job exists, since its client is there to fix the file:
//! a body that is not UTF-8 text or has NUL bytes is almost always a spreadsheet or a binary
//! file sent by mistake, and one without line ends is not a list. For a CSV row without the
//! column, `verify` writes the row's text and "line N has no column K" in its result, where a
//! job has the empty text and the engine's `invalid_syntax` detail; both are `invalid_syntax`
//! on the same line.
//!
//! [`Column`] repeats the command line's own type (`src/cli/input.rs`), with the same parsing
//! and messages (its number is a `NonZeroUsize` here, where the command line relies on its
//! parser never giving 0), until the command line uses this one.

mod column;
mod csv;
mod error;
mod json;
mod lines;
#[cfg(test)]
mod tests;
mod text;

pub use column::Column;
pub use error::{JsonToken, Place, UploadError};

/// The default limit on a line's length (a CSV record's, a JSON string's), in bytes: 64 KiB.
///
/// An address is at most 254 octets on the wire (RFC 5321 §4.5.3.1.3, with its errata), so a
/// line a thousand times that long is not an address list: it is a file without line ends
/// (old Mac CR-only, or a spreadsheet sent as text) or a hostile body, and it is refused
/// before it costs more memory than this.
pub const MAX_LINE: usize = 64 * 1024;

/// What an upload's body holds, from its `Content-Type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    /// `text/plain`: one address per line.
    Lines,
    /// `application/json`: one array of strings.
    Json,
    /// `text/csv`: the addresses in one column.
    Csv(Column),
}

/// One address to verify, as the upload gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Where it came from: its line (plain text), the line of its record (CSV, numbered as
    /// `verify` numbers it), or its position in the array (JSON), from 1.
    pub line: u64,
    /// The text, with the spaces around it taken off but every control character kept, for
    /// `Address::parse` to judge. Empty for a CSV row without the column and a blank JSON
    /// element: the engine reports those as `invalid_syntax`.
    pub text: String,
}

/// The streaming parser of one upload. See the [module docs](self) for the calling contract.
#[derive(Debug)]
pub struct Parser {
    machine: Machine,
    max_line: usize,
    /// The error that ended the upload, returned again by every later call.
    failed: Option<UploadError>,
}

/// The state machine of each format.
#[derive(Debug)]
enum Machine {
    Lines(lines::Lines),
    Csv(Box<csv::Csv>),
    Json(json::Json),
}

impl Parser {
    /// A parser for a body in `format`, with lines of at most [`MAX_LINE`] bytes.
    #[must_use]
    pub fn new(format: Format) -> Self {
        let machine = match format {
            Format::Lines => Machine::Lines(lines::Lines::new()),
            Format::Json => Machine::Json(json::Json::new()),
            Format::Csv(column) => Machine::Csv(Box::new(csv::Csv::new(column))),
        };
        Self {
            machine,
            max_line: MAX_LINE,
            failed: None,
        }
    }

    /// Lines (CSV records, JSON strings) of at most `bytes` bytes, not counting their line
    /// end (or a JSON string's quotes); a longer one is an error. Set it before the first
    /// [`feed`](Self::feed): lowered later, it refuses the line being read if that is already
    /// longer.
    #[must_use]
    pub fn with_max_line(mut self, bytes: usize) -> Self {
        self.max_line = bytes;
        self
    }

    /// The next chunk of the body, which may end anywhere. Appends to `out` the items it
    /// completes. An `Err` ends the upload: see the [module docs](self).
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<Item>) -> Result<(), UploadError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        let result = match &mut self.machine {
            Machine::Lines(lines) => lines.feed(chunk, self.max_line, out),
            Machine::Csv(csv) => csv.feed(chunk, self.max_line, out),
            Machine::Json(json) => json.feed(chunk, self.max_line, out),
        };
        self.remember(result)
    }

    /// The end of the body: appends the items of its last line to `out`, or says why the body
    /// is not whole (a JSON array not closed, a CSV header without the named column...).
    pub fn finish(self, out: &mut Vec<Item>) -> Result<(), UploadError> {
        if let Some(error) = self.failed {
            return Err(error);
        }
        match self.machine {
            Machine::Lines(lines) => lines.finish(self.max_line, out),
            Machine::Csv(csv) => csv.finish(self.max_line, out),
            Machine::Json(json) => json.finish(),
        }
    }

    /// The bytes of the body the parser holds now (the capacity of its buffers): at most
    /// `max_line + 2`, plus up to 2 KiB of the names of a CSV header's columns while the
    /// header is read.
    #[must_use]
    pub fn buffered(&self) -> usize {
        match &self.machine {
            Machine::Lines(lines) => lines.buffered(),
            Machine::Csv(csv) => csv.buffered(),
            Machine::Json(json) => json.buffered(),
        }
    }

    fn remember(&mut self, result: Result<(), UploadError>) -> Result<(), UploadError> {
        if let Err(error) = &result {
            self.failed = Some(error.clone());
        }
        result
    }
}

/// Appends `bytes` to `buffer`, letting its capacity grow by doubling but never past `cap`
/// (unless the bytes themselves need more): the buffers of a line stay within the line limit,
/// where plain doubling could take twice that.
fn extend_capped(buffer: &mut Vec<u8>, bytes: &[u8], cap: usize) {
    let needed = buffer.len() + bytes.len();
    if needed > buffer.capacity() {
        let target = buffer
            .capacity()
            .saturating_mul(2)
            .max(64)
            .min(cap)
            .max(needed);
        buffer.reserve_exact(target - buffer.len());
    }
    buffer.extend_from_slice(bytes);
}
