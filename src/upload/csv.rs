//! [`Format::Csv`](super::Format::Csv): the addresses in one column of a CSV file, read the way
//! `mxprobe verify` reads them with the `csv` crate (`has_headers(false)`, `flexible(true)`,
//! byte records), on the same parser: `csv-core`, the `csv` crate's push parser, with the same
//! default dialect (comma, double quote with `""` inside quotes, records ending at CR, LF or
//! CRLF, empty lines skipped, no comments at the CSV level).
//!
//! `csv-core` is driven one field at a time (`read_field`), so no record is ever held whole:
//! only the field in the address column is kept (every field of a header naming its columns,
//! one at a time, to find the column and list the names), and the record's size is counted
//! as it goes. A record is refused once its fields' bytes plus one per separating comma pass
//! the line limit, at the byte that passes it: each call to `csv-core` may write at most one
//! byte beyond the limit, so it stops there whatever the chunks. A NUL byte is refused when
//! `csv-core` reads it, with its physical line.
//!
//! Two things `csv` does around `csv-core` are done here the same way: a byte-order mark is
//! taken off only when the first input holds at least three bytes (`csv-core` looks at its
//! first input only, so the body's first bytes are held until there are four — one more than
//! the mark, since an input that the mark empties would read as the body's end); and a
//! record's line is `csv-core`'s line count when the record before it ended (see the module
//! docs of [`upload`](super) for what that means in CRLF files and after blank lines).

use csv_core::ReadFieldResult;

use super::column::Column;
use super::error::{Place, UploadError};
use super::{Item, extend_capped, text};

/// The most bytes `csv-core` writes per call. The buffer is on the stack and zeroed at each
/// call (about once per field), so it is small: an address field fits, a longer one takes a few
/// calls.
const SCRATCH: usize = 512;

/// The most bytes of a header's column names kept for the error message.
const NAMES_SHOWN: usize = 1024;

/// The state between chunks.
#[derive(Debug)]
pub(super) struct Csv {
    reader: csv_core::Reader,
    column: Column,
    /// The body's first bytes, until there are four (then `csv-core` has them).
    head: [u8; 4],
    /// How many of them have arrived.
    head_len: usize,
    /// `csv-core` has had its first input.
    started: bool,
    /// The first record (the header, maybe) has been looked at.
    header_checked: bool,
    /// The field the addresses are in, from 0, once known.
    index: Option<usize>,
    /// The line of the record being read, as `verify` numbers it.
    line: u64,
    record: Record,
}

/// What is known of the record being read.
#[derive(Debug)]
struct Record {
    /// The field being read, from 0.
    field: usize,
    /// Its fields' bytes so far, plus one per comma between them.
    size: usize,
    /// Every byte of its fields so far is ASCII white space.
    blank: bool,
    /// The bytes of the field being read, when it is wanted.
    kept: Vec<u8>,
    /// The address column's field has been read whole: it is in `kept`.
    has_column: bool,
    /// For a header by name: the first column with the name.
    found: Option<usize>,
    /// For a header by name: its columns, trimmed, separated by ", ", cut short.
    names: String,
}

impl Record {
    fn new() -> Self {
        Self {
            field: 0,
            size: 0,
            blank: true,
            kept: Vec::new(),
            has_column: false,
            found: None,
            names: String::new(),
        }
    }

    /// Ready for the next record, keeping the buffer's capacity.
    fn reset(&mut self) {
        let mut kept = std::mem::take(&mut self.kept);
        kept.clear();
        *self = Self {
            kept,
            ..Self::new()
        };
    }
}

impl Csv {
    pub(super) fn new(column: Column) -> Self {
        Self {
            reader: csv_core::Reader::new(),
            index: column.index(),
            column,
            head: [0; 4],
            head_len: 0,
            started: false,
            header_checked: false,
            line: 1,
            record: Record::new(),
        }
    }

    pub(super) fn feed(
        &mut self,
        mut chunk: &[u8],
        max_line: usize,
        out: &mut Vec<Item>,
    ) -> Result<(), UploadError> {
        if !self.started {
            let (more, rest) = chunk.split_at(chunk.len().min(4 - self.head_len));
            self.head[self.head_len..self.head_len + more.len()].copy_from_slice(more);
            self.head_len += more.len();
            chunk = rest;
            if self.head_len < 4 {
                return Ok(());
            }
            self.started = true;
            let head = self.head;
            self.read(&head, max_line, out)?;
        }
        self.read(chunk, max_line, out)
    }

    pub(super) fn finish(
        mut self,
        max_line: usize,
        out: &mut Vec<Item>,
    ) -> Result<(), UploadError> {
        if !self.started {
            self.started = true;
            let head = self.head;
            self.read(&head[..self.head_len], max_line, out)?;
        }
        // An empty input tells `csv-core` the body has ended; it then ends the last record.
        while self.step(&[], max_line, out)?.0 != ReadFieldResult::End {}
        Ok(())
    }

    pub(super) fn buffered(&self) -> usize {
        let head = if self.started { 0 } else { self.head_len };
        head + self.record.kept.capacity() + self.record.names.capacity()
    }

    /// Reads `input`, which must not be empty unless the body has ended.
    fn read(
        &mut self,
        mut input: &[u8],
        max_line: usize,
        out: &mut Vec<Item>,
    ) -> Result<(), UploadError> {
        while !input.is_empty() {
            let (_, read) = self.step(input, max_line, out)?;
            input = &input[read..];
        }
        Ok(())
    }

    /// One call to `csv-core`: what it said, and how many bytes of `input` it read.
    fn step(
        &mut self,
        input: &[u8],
        max_line: usize,
        out: &mut Vec<Item>,
    ) -> Result<(ReadFieldResult, usize), UploadError> {
        let mut scratch = [0; SCRATCH];
        let line_before = self.reader.line();
        // At most one byte past the limit, so that a record too long stops at the same byte
        // whatever the chunks. `size <= max_line` holds between calls, unless the limit was
        // lowered since: then the record is refused.
        let room = max_line
            .saturating_sub(self.record.size)
            .saturating_add(1)
            .min(SCRATCH);
        let (result, read, written) = self.reader.read_field(input, &mut scratch[..room]);
        let consumed = &input[..read];
        if let Some(nul) = memchr::memchr(0, consumed) {
            let lines = memchr::memchr_iter(b'\n', &consumed[..nul]).count() as u64;
            return Err(UploadError::Binary {
                at: Place::Line(line_before + lines),
            });
        }
        self.field_bytes(&scratch[..written], max_line)?;
        if let ReadFieldResult::Field { record_end } = result {
            self.end_field();
            if record_end {
                self.end_record(out)?;
            } else {
                self.record.field += 1;
                self.count(1, max_line)?;
            }
        }
        Ok((result, read))
    }

    /// Bytes of the current field.
    fn field_bytes(&mut self, bytes: &[u8], max_line: usize) -> Result<(), UploadError> {
        self.count(bytes.len(), max_line)?;
        self.record.blank &= bytes.iter().all(u8::is_ascii_whitespace);
        if self.wanted() {
            extend_capped(&mut self.record.kept, bytes, max_line.saturating_add(1));
        }
        Ok(())
    }

    /// Adds `bytes` to the record's size; past the limit, the record is refused.
    fn count(&mut self, bytes: usize, max_line: usize) -> Result<(), UploadError> {
        self.record.size += bytes;
        if self.record.size > max_line {
            return Err(UploadError::TooLong {
                at: Place::Record(self.line),
                limit: max_line,
            });
        }
        Ok(())
    }

    /// Whether the current field is kept: the address column's, or any of a header by name.
    fn wanted(&self) -> bool {
        match self.index {
            Some(index) => self.record.field == index,
            None => !self.header_checked,
        }
    }

    fn end_field(&mut self) {
        let record = &mut self.record;
        match (&self.column, self.index) {
            (Column::Name(name), None) => {
                let field = String::from_utf8_lossy(&record.kept);
                let field = field.trim();
                if record.found.is_none() && field.eq_ignore_ascii_case(name) {
                    record.found = Some(record.field);
                }
                list(&mut record.names, record.field, field);
                record.kept.clear();
            }
            (_, index) => record.has_column |= index == Some(record.field),
        }
    }

    /// The record has ended: its item, if any.
    fn end_record(&mut self, out: &mut Vec<Item>) -> Result<(), UploadError> {
        let line = self.line;
        // How `csv` numbers the next record: the line `csv-core` stands on now.
        self.line = self.reader.line();
        let result = self.item(line, out);
        self.record.reset();
        result
    }

    fn item(&mut self, line: u64, out: &mut Vec<Item>) -> Result<(), UploadError> {
        let record = &mut self.record;
        if !self.header_checked {
            self.header_checked = true;
            match &self.column {
                Column::Name(name) => {
                    let Some(found) = record.found else {
                        return Err(UploadError::NoSuchColumn {
                            name: name.clone(),
                            header: std::mem::take(&mut record.names),
                        });
                    };
                    self.index = Some(found);
                    return Ok(());
                }
                // A header row names its columns; an address has an '@'.
                Column::Number(_) if record.has_column && !record.kept.contains(&b'@') => {
                    return Ok(());
                }
                Column::Number(_) => {}
            }
        }
        if !record.has_column {
            if !record.blank {
                out.push(Item {
                    line,
                    text: String::new(),
                });
            }
            return Ok(());
        }
        match text::item_of(line, &record.kept) {
            Ok(item) => {
                out.extend(item);
                Ok(())
            }
            Err(_) => Err(UploadError::NotUtf8 {
                at: Place::Record(line),
            }),
        }
    }
}

/// Adds a header's column `name` to the `names` shown in an error, up to [`NAMES_SHOWN`]
/// bytes, then `…`.
fn list(names: &mut String, field: usize, name: &str) {
    if names.ends_with('…') {
        return;
    }
    if field > 0 {
        names.push_str(", ");
    }
    let room = NAMES_SHOWN.saturating_sub(names.len());
    names.push_str(cut(name, room));
    if name.len() > room {
        names.push('…');
    }
}

/// The longest start of `text` of at most `bytes` bytes that ends on a character boundary.
fn cut(text: &str, bytes: usize) -> &str {
    let mut end = bytes.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
