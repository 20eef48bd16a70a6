//! Where addresses come from: command-line arguments, or a file (or standard input) with one
//! address per line, or CSV with a column chosen by name or number.
//!
//! Every line that holds something becomes an [`Item`]: an address to verify, or — when the
//! line is not valid UTF-8, or a CSV row lacks the column — a line that cannot be read, which
//! the caller reports as `invalid_syntax` with its line number. Nothing is skipped silently but
//! blank lines and `#` comments. Lines are read one at a time: the input's size never matters.
//!
//! What is taken off a line is its terminator (`\n` or `\r\n`, nothing else) and the spaces
//! around the address — never a control character: a lone CR inside a line, a TAB, or a newline
//! inside a quoted CSV field reaches [`mxprobe::address::Address::parse`], which refuses the
//! line as `invalid_syntax` and names the character, rather than verifying a cleaned-up
//! address the line does not show. Arguments are treated the same way.

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
    /// An address to verify, with the spaces around it taken off (never a control character:
    /// those are left for `Address::parse` to refuse).
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
                    if !is_blank(&text) {
                        return Ok(Some(Item::Address {
                            line: *position,
                            text: trim_spaces(&text).to_owned(),
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
                    if let Some(item) = item_of(*line, without_terminator(&buffer)) {
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

/// A line without its terminator, `\n` or `\r\n`; a CR anywhere else stays.
fn without_terminator(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r\n")
        .or_else(|| line.strip_suffix(b"\n"))
        .unwrap_or(line)
}

/// True for what is not worth a verdict: nothing but white space (control characters such as
/// TAB and CR included, since no address is hidden among them) and byte-order marks.
fn is_blank(text: &str) -> bool {
    text.chars().all(|c| c.is_whitespace() || c == '\u{feff}')
}

/// The spaces around an address (Unicode white space, a byte-order mark) taken off, but no
/// control character: `Address::parse` refuses those by name.
fn trim_spaces(text: &str) -> &str {
    text.trim_matches(|c: char| (c.is_whitespace() && !c.is_control()) || c == '\u{feff}')
}

/// The item a line's (or a CSV field's) bytes make, or `None` for a blank line or a `#`
/// comment.
fn item_of(line: u64, bytes: &[u8]) -> Option<Item> {
    match std::str::from_utf8(bytes) {
        Ok(text) => {
            let comment = text
                .trim_start_matches(|c: char| c.is_whitespace() || c == '\u{feff}')
                .starts_with('#');
            if is_blank(text) || comment {
                return None;
            }
            Some(Item::Address {
                line,
                text: trim_spaces(text).to_owned(),
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
    use mxprobe::address::Address;

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

    /// What the caller does with an item's text: its mailbox, or the error it reports.
    fn parsed(item: &Item) -> Result<String, String> {
        let Item::Address { text, .. } = item else {
            panic!("not an address: {item:?}");
        };
        Address::parse(text)
            .map(|address| address.mailbox().to_owned())
            .map_err(|error| error.to_string())
    }

    #[test]
    fn crlf_files_lose_exactly_their_terminators() {
        let got = items(lines(b"a@x.test\r\n  b@x.test  \r\n\r\nc@x.test\n"));
        assert_eq!(
            got,
            [
                address(1, "a@x.test"),
                address(2, "b@x.test"),
                address(4, "c@x.test")
            ]
        );
        for item in &got {
            assert!(parsed(item).is_ok(), "{item:?}");
        }
    }

    /// Lines of nothing but white space, tabs and stray CRs included, hide no address.
    #[test]
    fn blank_lines_are_skipped_whatever_white_space_they_hold() {
        let got = items(lines(
            b"\t\n \r\n\r\r\n\xc2\xa0\t\n  \t# a comment\na@x.test\n",
        ));
        assert_eq!(got, [address(6, "a@x.test")]);
    }

    /// A CR that is not part of the terminator, or a TAB, stays in the text, and the parser
    /// refuses the line, naming it: the address verified is never a cleaned-up one.
    #[test]
    fn control_characters_inside_a_line_reach_the_parser_and_are_refused() {
        let cr8 = "the address contains CR at byte 8, which could inject an SMTP command";
        for (input, text, error) in [
            (
                &b"a@x.test\rRCPT TO:<b@x.test>\n"[..],
                "a@x.test\rRCPT TO:<b@x.test>",
                cr8,
            ),
            (b"a@x.test\r\r\n", "a@x.test\r", cr8),
            // At the end of the input, without LF, a CR is no terminator.
            (b"a@x.test\r", "a@x.test\r", cr8),
            (
                b"\ta@x.test\n",
                "\ta@x.test",
                "the address contains TAB (0x09) at byte 0, which no address may hold; remove it",
            ),
            (
                b"  a@x.test\t \r\n",
                "a@x.test\t",
                "the address contains TAB (0x09) at byte 8, which no address may hold; remove it",
            ),
            (
                b"a@x\t.test\n",
                "a@x\t.test",
                "the address contains TAB (0x09) at byte 3, which no address may hold; remove it",
            ),
            (
                b"a@x.test\xc2\x85\n",
                "a@x.test\u{85}",
                "the address contains U+0085 (NEL) at byte 8, which some software reads as a line break",
            ),
        ] {
            let got = items(lines(input));
            assert_eq!(got, [address(1, text)], "{input:?}");
            assert_eq!(parsed(&got[0]), Err(error.to_owned()), "{input:?}");
        }
    }

    #[test]
    fn csv_records_end_at_crlf_and_quoted_fields_keep_their_control_characters() {
        let text = "name,email\r\n\
                    Alice, alice@x.test \r\n\
                    Bob,\"bob@x.test\nRCPT TO:<c@x.test>\"\r\n\
                    Carol,\"carol@x.test\r\n\"\r\n\
                    Dan,dan@x.test\t\r\n";
        let got = items(csv(text, Column::Name("email".into())));
        // Only the texts: the csv crate numbers the records of a CRLF file one line short
        // (BurntSushi/rust-csv#395), which is not what this test is about.
        let texts: Vec<_> = got
            .iter()
            .map(|item| match item {
                Item::Address { text, .. } => text.as_str(),
                Item::Unreadable { .. } => panic!("{item:?}"),
            })
            .collect();
        assert_eq!(
            texts,
            [
                "alice@x.test",
                "bob@x.test\nRCPT TO:<c@x.test>",
                "carol@x.test\r\n",
                "dan@x.test\t",
            ]
        );
        let errors: Vec<_> = got.iter().map(parsed).collect();
        assert_eq!(
            errors,
            [
                Ok("alice@x.test".to_owned()),
                Err(
                    "the address contains LF at byte 10, which could inject an SMTP command"
                        .to_owned()
                ),
                Err(
                    "the address contains CR at byte 12, which could inject an SMTP command"
                        .to_owned()
                ),
                Err(
                    "the address contains TAB (0x09) at byte 10, which no address may hold; remove it"
                        .to_owned()
                ),
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

    /// Arguments keep their control characters for the parser, as lines do.
    #[test]
    fn arguments_lose_spaces_but_not_control_characters() {
        let got = items(Input::arguments(vec![
            " a@x.test ".into(),
            "b@x.test\n".into(),
            "\t".into(),
            "c@x.test\r".into(),
        ]));
        assert_eq!(
            got,
            [
                address(1, "a@x.test"),
                address(2, "b@x.test\n"),
                address(4, "c@x.test\r")
            ]
        );
        assert_eq!(parsed(&got[0]), Ok("a@x.test".to_owned()));
        assert_eq!(
            parsed(&got[1]),
            Err("the address contains LF at byte 8, which could inject an SMTP command".to_owned())
        );
        assert_eq!(
            parsed(&got[2]),
            Err("the address contains CR at byte 8, which could inject an SMTP command".to_owned())
        );
    }

    #[test]
    fn columns_parse() {
        assert_eq!("2".parse::<Column>(), Ok(Column::Number(2)));
        assert_eq!("Email".parse::<Column>(), Ok(Column::Name("Email".into())));
        assert!("0".parse::<Column>().is_err());
    }
}
