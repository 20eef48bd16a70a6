//! Where addresses come from: command-line arguments, or a file (or standard input) with one
//! address per line, or CSV with a column chosen by name or number.
//!
//! Every line that holds something becomes an [`Item`]: an address to verify, or — when the
//! line is not valid UTF-8, or a CSV row lacks the column — a line that cannot be read, which
//! the caller reports as `invalid_syntax` with its line number. Nothing is skipped silently but
//! blank lines and `#` comments. Lines are read one at a time: the input's size never matters.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

/// Which CSV column holds the addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Column {
    /// By header name (case-insensitive): the first row is the header.
    Name(String),
    /// By position, from 1: the first row is a header if that column holds no `@`.
    Number(usize),
}

impl std::str::FromStr for Column {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.parse::<usize>() {
            Ok(0) => Err("columns are numbered from 1".into()),
            Ok(n) => Ok(Self::Number(n)),
            Err(_) if !text.trim().is_empty() => Ok(Self::Name(text.trim().to_owned())),
            Err(_) => Err("give a column name or a number from 1".into()),
        }
    }
}

/// One line's worth of input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// An address to verify, trimmed.
    Address {
        /// The line it came from (or the argument's position), from 1.
        line: u64,
        /// The address as written.
        text: String,
    },
    /// A line that cannot be an address.
    Unreadable {
        /// The line, from 1.
        line: u64,
        /// What it held, lossily decoded.
        text: String,
        /// Why it cannot be read.
        detail: String,
    },
}

/// The source of items.
pub enum Input {
    /// Command-line arguments.
    Arguments(std::vec::IntoIter<String>, u64),
    /// One address per line.
    Lines(Box<dyn BufRead + Send>, u64),
    /// CSV.
    Csv {
        reader: csv::Reader<Box<dyn Read + Send>>,
        column: Column,
        index: Option<usize>,
        header_checked: bool,
    },
}

impl Input {
    /// Addresses given as arguments.
    pub fn arguments(addresses: Vec<String>) -> Self {
        Self::Arguments(addresses.into_iter(), 0)
    }

    /// A file (`-` for standard input), plain or CSV.
    pub fn open(path: &Path, column: Option<Column>) -> io::Result<Self> {
        let reader: Box<dyn Read + Send> = if path == Path::new("-") {
            Box::new(io::stdin())
        } else {
            Box::new(File::open(path).map_err(|e| {
                io::Error::new(e.kind(), format!("cannot open {}: {e}", path.display()))
            })?)
        };
        Ok(match column {
            None => Self::Lines(Box::new(BufReader::with_capacity(1 << 16, reader)), 0),
            Some(column) => Self::Csv {
                reader: csv::ReaderBuilder::new()
                    .has_headers(false)
                    .flexible(true)
                    .from_reader(reader),
                column,
                index: None,
                header_checked: false,
            },
        })
    }

    /// The next item; `Ok(None)` at the end. An `Err` is the input failing (a read error, a
    /// CSV header without the named column): fatal.
    pub fn next_item(&mut self) -> io::Result<Option<Item>> {
        match self {
            Self::Arguments(arguments, position) => {
                for text in arguments.by_ref() {
                    *position += 1;
                    let text = text.trim();
                    if !text.is_empty() {
                        return Ok(Some(Item::Address {
                            line: *position,
                            text: text.to_owned(),
                        }));
                    }
                }
                Ok(None)
            }
            Self::Lines(reader, line) => {
                let mut buffer = Vec::new();
                loop {
                    buffer.clear();
                    if reader.read_until(b'\n', &mut buffer)? == 0 {
                        return Ok(None);
                    }
                    *line += 1;
                    if let Some(item) = item_of(*line, &buffer) {
                        return Ok(Some(item));
                    }
                }
            }
            Self::Csv {
                reader,
                column,
                index,
                header_checked,
            } => {
                let mut record = csv::ByteRecord::new();
                loop {
                    match reader.read_byte_record(&mut record) {
                        Ok(false) => return Ok(None),
                        Ok(true) => {}
                        Err(error) => {
                            let line = error.position().map_or(0, csv::Position::line);
                            return Ok(Some(Item::Unreadable {
                                line,
                                text: String::new(),
                                detail: format!("line {line} is not valid CSV: {error}"),
                            }));
                        }
                    }
                    let line = record.position().map_or(0, csv::Position::line);
                    if !*header_checked {
                        *header_checked = true;
                        match column {
                            Column::Name(name) => {
                                let found = record.iter().position(|field| {
                                    String::from_utf8_lossy(field)
                                        .trim()
                                        .eq_ignore_ascii_case(name)
                                });
                                let Some(found) = found else {
                                    let columns: Vec<String> = record
                                        .iter()
                                        .map(|f| String::from_utf8_lossy(f).trim().to_owned())
                                        .collect();
                                    return Err(io::Error::new(
                                        io::ErrorKind::InvalidInput,
                                        format!(
                                            "the CSV header has no column named {name:?} (it has: {}); pass --column with one of those or a number",
                                            columns.join(", ")
                                        ),
                                    ));
                                };
                                *index = Some(found);
                                continue;
                            }
                            Column::Number(n) => {
                                *index = Some(*n - 1);
                                // A header row names its columns; an address has an '@'.
                                if record.get(*n - 1).is_some_and(|f| !f.contains(&b'@')) {
                                    continue;
                                }
                            }
                        }
                    }
                    let column_index = index.unwrap_or(0);
                    let Some(field) = record.get(column_index) else {
                        if record.iter().all(|f| f.trim_ascii().is_empty()) {
                            continue;
                        }
                        return Ok(Some(Item::Unreadable {
                            line,
                            text: String::from_utf8_lossy(record.as_slice()).into_owned(),
                            detail: format!("line {line} has no column {}", column_index + 1),
                        }));
                    };
                    if let Some(item) = item_of(line, field) {
                        return Ok(Some(item));
                    }
                }
            }
        }
    }
}

/// The item a line's bytes make, or `None` for a blank line or a `#` comment.
fn item_of(line: u64, bytes: &[u8]) -> Option<Item> {
    let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(text) => {
            let text = text.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
            if text.is_empty() || text.starts_with('#') {
                return None;
            }
            Some(Item::Address {
                line,
                text: text.to_owned(),
            })
        }
        Err(error) => Some(Item::Unreadable {
            line,
            text: String::from_utf8_lossy(bytes).trim().to_owned(),
            detail: format!(
                "line {line} is not valid UTF-8 (byte {} of the line)",
                error.valid_up_to()
            ),
        }),
    }
}

/// Lines in a regular file, for the progress bar's total; `None` for standard input.
pub fn count_lines(path: &Path) -> Option<u64> {
    if path == Path::new("-") {
        return None;
    }
    let mut file = File::open(path).ok()?;
    let mut buffer = vec![0u8; 1 << 16];
    let mut count = 0u64;
    let mut last = b'\n';
    loop {
        let read = file.read(&mut buffer).ok()?;
        if read == 0 {
            break;
        }
        count += memchr::memchr_iter(b'\n', &buffer[..read]).count() as u64;
        last = buffer[read - 1];
    }
    if last != b'\n' {
        count += 1;
    }
    Some(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(mut input: Input) -> Vec<Item> {
        std::iter::from_fn(|| input.next_item().expect("readable")).collect()
    }

    fn lines(text: &[u8]) -> Input {
        Input::Lines(Box::new(io::Cursor::new(text.to_vec())), 0)
    }

    fn csv(text: &str, column: Column) -> Input {
        let reader: Box<dyn Read + Send> = Box::new(io::Cursor::new(text.as_bytes().to_vec()));
        Input::Csv {
            reader: csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .from_reader(reader),
            column,
            index: None,
            header_checked: false,
        }
    }

    fn address(line: u64, text: &str) -> Item {
        Item::Address {
            line,
            text: text.into(),
        }
    }

    #[test]
    fn plain_lines_skip_blanks_and_comments_and_keep_line_numbers() {
        let got = items(lines(
            b"\xef\xbb\xbfa@x.test\r\n\n  # a comment\n  b@x.test  \nc@x.test",
        ));
        assert_eq!(
            got,
            [
                address(1, "a@x.test"),
                address(4, "b@x.test"),
                address(5, "c@x.test")
            ]
        );
    }

    #[test]
    fn invalid_utf8_is_an_item_with_its_line_number() {
        let got = items(lines(b"a@x.test\nb\xff@x.test\n"));
        assert_eq!(got[0], address(1, "a@x.test"));
        let Item::Unreadable { line, detail, .. } = &got[1] else {
            panic!("{got:?}");
        };
        assert_eq!(*line, 2);
        assert!(detail.contains("not valid UTF-8"), "{detail}");
    }

    #[test]
    fn csv_by_name_by_number_and_header_detection() {
        let text = "name,Email\nAlice,alice@x.test\n\"Doe, John\",john@x.test\nNobody\n";
        let got = items(csv(text, Column::Name("email".into())));
        assert_eq!(got[0], address(2, "alice@x.test"));
        assert_eq!(got[1], address(3, "john@x.test"));
        assert!(
            matches!(&got[2], Item::Unreadable { line: 4, .. }),
            "{got:?}"
        );
        // By number, the header is recognised because its column has no '@'.
        let got = items(csv(text, Column::Number(2)));
        assert_eq!(got[0], address(2, "alice@x.test"));
        // No header: the first row is data.
        let got = items(csv("alice@x.test,1\nbob@x.test,2\n", Column::Number(1)));
        assert_eq!(got, [address(1, "alice@x.test"), address(2, "bob@x.test")]);
    }

    #[test]
    fn a_missing_header_column_is_a_fatal_error_that_names_the_columns() {
        let mut input = csv("name,mail\n", Column::Name("email".into()));
        let error = input.next_item().expect_err("no such column");
        assert!(error.to_string().contains("it has: name, mail"), "{error}");
    }

    #[test]
    fn arguments_are_numbered_by_position() {
        let got = items(Input::arguments(vec![
            "a@x.test".into(),
            " ".into(),
            "b@x.test".into(),
        ]));
        assert_eq!(got, [address(1, "a@x.test"), address(3, "b@x.test")]);
    }

    #[test]
    fn columns_parse() {
        assert_eq!("2".parse::<Column>(), Ok(Column::Number(2)));
        assert_eq!("Email".parse::<Column>(), Ok(Column::Name("Email".into())));
        assert!("0".parse::<Column>().is_err());
    }
}
