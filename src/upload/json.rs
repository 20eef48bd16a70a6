//! [`Format::Json`](super::Format::Json): one JSON array of strings (RFC 8259).
//!
//! ```text
//! body   = [ BOM ] ws "[" ws [ string *( ws "," ws string ) ws ] "]" ws
//! ws     = *( %x20 / %x09 / %x0A / %x0D )
//! string = %x22 *( "\" any-byte / any-byte-but-quote-or-backslash ) %x22
//! ```
//!
//! The array's structure is tokenized here, byte by byte, so that the body streams: a string's
//! raw bytes, quotes included, are kept only until its closing quote (`\"` and `\\` honoured),
//! then decoded whole by `serde_json`, which owns the escapes, the control characters and the
//! UTF-16 surrogates. A string in one chunk is decoded where it lies; only one that spans
//! chunks is copied, and only up to the line limit. Faults are found at fixed points of the
//! stream: a NUL byte where it is, a string that grows past the limit at its first byte too
//! many, anything else at the byte where the structure breaks.

use super::error::{JsonToken, Place, UploadError};
use super::{Item, extend_capped, text};

/// A UTF-8 byte-order mark, allowed before the array (RFC 8259 §8.1 lets a parser ignore it).
const BOM: &[u8; 3] = b"\xef\xbb\xbf";

/// Where the tokenizer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the array, with the first `bom` bytes of a byte-order mark seen.
    Start { bom: usize },
    /// After `[`: an element or `]` is due.
    Open,
    /// After a comma: an element is due.
    Comma,
    /// Inside a string; `escaped` after a backslash.
    InString { escaped: bool },
    /// After an element: a comma or `]` is due.
    Element,
    /// After `]`: only white space may follow.
    Closed,
}

/// The state between chunks.
#[derive(Debug)]
pub(super) struct Json {
    state: State,
    /// Bytes of the body before the current chunk.
    offset: u64,
    /// Elements begun so far: the current or last string's position.
    elements: u64,
    /// Where the current string's opening quote is.
    string_at: u64,
    /// Bytes between its quotes so far.
    string_len: usize,
    /// Its bytes from the opening quote, when it spans chunks: at most `max_line + 2`.
    partial: Vec<u8>,
}

impl Json {
    pub(super) fn new() -> Self {
        Self {
            state: State::Start { bom: 0 },
            offset: 0,
            elements: 0,
            string_at: 0,
            string_len: 0,
            partial: Vec::new(),
        }
    }

    pub(super) fn feed(
        &mut self,
        chunk: &[u8],
        max_line: usize,
        out: &mut Vec<Item>,
    ) -> Result<(), UploadError> {
        let mut i = 0;
        while i < chunk.len() {
            i = match self.state {
                // Only at the chunk's start: a string begun in an earlier chunk.
                State::InString { escaped } => self.string(chunk, i, i, escaped, max_line, out)?,
                _ => self.structure(chunk, i, max_line, out)?,
            };
        }
        self.offset += chunk.len() as u64;
        Ok(())
    }

    pub(super) fn finish(self) -> Result<(), UploadError> {
        match self.state {
            State::Closed => Ok(()),
            State::Start { bom: 1 | 2 } => Err(not_an_array_bom()),
            State::Start { .. } => Err(UploadError::NotAnArray {
                byte: self.offset,
                found: JsonToken::EndOfBody,
            }),
            State::Open | State::Comma | State::InString { .. } | State::Element => {
                Err(UploadError::Unfinished { byte: self.offset })
            }
        }
    }

    pub(super) fn buffered(&self) -> usize {
        self.partial.capacity()
    }

    /// The byte at `i`, outside any string: the array's structure. Returns where to go on.
    fn structure(
        &mut self,
        chunk: &[u8],
        i: usize,
        max_line: usize,
        out: &mut Vec<Item>,
    ) -> Result<usize, UploadError> {
        let byte = chunk[i];
        let at = self.offset + i as u64;
        let found = JsonToken::starting_with(byte);
        if byte == 0 {
            return Err(UploadError::Binary {
                at: Place::Byte(at),
            });
        }
        self.state = match (self.state, byte) {
            (State::Start { bom }, _) if bom < 3 && at == bom as u64 && byte == BOM[bom] => {
                State::Start { bom: bom + 1 }
            }
            (State::Start { bom: 1 | 2 }, _) => return Err(not_an_array_bom()),
            (state, b' ' | b'\t' | b'\n' | b'\r') => state,
            (State::Start { .. }, b'[') => State::Open,
            (State::Start { .. }, _) => return Err(UploadError::NotAnArray { byte: at, found }),
            (State::Open, b']') | (State::Element, b']') => State::Closed,
            (State::Open | State::Comma, b'"') => {
                self.elements += 1;
                self.string_at = at;
                self.string_len = 0;
                return self.string(chunk, i, i + 1, false, max_line, out);
            }
            (State::Open | State::Comma, _) => {
                return Err(UploadError::NotAString {
                    element: self.elements + 1,
                    byte: at,
                    found,
                });
            }
            (State::Element, b',') => State::Comma,
            (State::Element, _) => {
                return Err(UploadError::MissingComma {
                    after: self.elements,
                    byte: at,
                    found,
                });
            }
            (State::Closed, _) => return Err(UploadError::TrailingData { byte: at, found }),
            // Strings are read by `string`, which leaves this state only at a chunk's end.
            (State::InString { escaped }, _) => {
                return self.string(chunk, i, i, escaped, max_line, out);
            }
        };
        Ok(i + 1)
    }

    /// A string's bytes from `from`, those from `token` on being the string's (its opening
    /// quote included when it starts in this chunk). Returns where to go on: after the
    /// closing quote, or the chunk's end.
    fn string(
        &mut self,
        chunk: &[u8],
        token: usize,
        from: usize,
        mut escaped: bool,
        max_line: usize,
        out: &mut Vec<Item>,
    ) -> Result<usize, UploadError> {
        let mut i = from;
        while i < chunk.len() {
            if escaped {
                self.content(chunk, i, 1, max_line)?;
                escaped = false;
                i += 1;
                continue;
            }
            let Some(special) = memchr::memchr3(b'"', b'\\', 0, &chunk[i..]) else {
                self.content(chunk, i, chunk.len() - i, max_line)?;
                break;
            };
            self.content(chunk, i, special, max_line)?;
            i += special;
            match chunk[i] {
                b'"' => {
                    let end = i + 1;
                    if self.partial.is_empty() {
                        self.decode(&chunk[token..end], out)?;
                    } else {
                        let mut whole = std::mem::take(&mut self.partial);
                        extend_capped(&mut whole, &chunk[token..end], max_line.saturating_add(2));
                        let decoded = self.decode(&whole, out);
                        whole.clear();
                        self.partial = whole;
                        decoded?;
                    }
                    self.state = State::Element;
                    return Ok(end);
                }
                b'\\' => {
                    self.content(chunk, i, 1, max_line)?;
                    escaped = true;
                    i += 1;
                }
                // A NUL byte, which `content` reports.
                _ => self.content(chunk, i, 1, max_line)?,
            }
        }
        extend_capped(
            &mut self.partial,
            &chunk[token..],
            max_line.saturating_add(2),
        );
        self.state = State::InString { escaped };
        Ok(chunk.len())
    }

    /// Counts `len` bytes of a string's content from `i`: a NUL byte is refused where it is,
    /// and the string is refused at its first byte past the limit.
    fn content(
        &mut self,
        chunk: &[u8],
        i: usize,
        len: usize,
        max_line: usize,
    ) -> Result<(), UploadError> {
        let bytes = &chunk[i..i + len];
        let room = max_line.saturating_sub(self.string_len);
        if let Some(nul) = memchr::memchr(0, &bytes[..bytes.len().min(room.saturating_add(1))]) {
            return Err(UploadError::Binary {
                at: Place::Byte(self.offset + (i + nul) as u64),
            });
        }
        if len > room {
            return Err(UploadError::TooLong {
                at: self.place(),
                limit: max_line,
            });
        }
        self.string_len += len;
        Ok(())
    }

    /// A whole string token, quotes included: its item.
    fn decode(&self, token: &[u8], out: &mut Vec<Item>) -> Result<(), UploadError> {
        let text =
            std::str::from_utf8(token).map_err(|_| UploadError::NotUtf8 { at: self.place() })?;
        let decoded: String =
            serde_json::from_str(text).map_err(|error| UploadError::BadString {
                element: self.elements,
                byte: self.string_at,
                detail: without_position(&error),
            })?;
        let trimmed = text::trim_spaces(&decoded);
        let text = if trimmed.len() == decoded.len() {
            decoded
        } else {
            trimmed.to_owned()
        };
        out.push(Item {
            line: self.elements,
            text,
        });
        Ok(())
    }

    /// The current string, for errors.
    fn place(&self) -> Place {
        Place::Element {
            number: self.elements,
            byte: self.string_at,
        }
    }
}

/// The error for a body that starts with part of a byte-order mark only.
fn not_an_array_bom() -> UploadError {
    UploadError::NotAnArray {
        byte: 0,
        found: JsonToken::Other(BOM[0]),
    }
}

/// `serde_json`'s message without its " at line 1 column 7", which counts within the string
/// rather than the body; the error names the string by its element and offset instead.
fn without_position(error: &serde_json::Error) -> String {
    let message = error.to_string();
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message,
    }
}
