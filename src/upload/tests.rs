//! Tests by format and by table. Every table case goes through [`outcome`], which also feeds
//! the body split at every byte and one byte at a time and requires the same items and error.

use std::num::NonZeroUsize;

use proptest::prelude::*;

use super::*;

/// What a body gives: its items, then the error that ended it, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    items: Vec<Item>,
    error: Option<UploadError>,
}

/// Feeds `chunks` in order, then finishes.
fn run(format: &Format, max_line: usize, chunks: &[&[u8]]) -> Outcome {
    let mut parser = Parser::new(format.clone()).with_max_line(max_line);
    let mut items = Vec::new();
    for chunk in chunks {
        if let Err(error) = parser.feed(chunk, &mut items) {
            // An error is final: the parser says it again.
            assert_eq!(parser.feed(b"more", &mut Vec::new()), Err(error.clone()));
            return Outcome {
                items,
                error: Some(error),
            };
        }
    }
    let error = parser.finish(&mut items).err();
    Outcome { items, error }
}

/// The outcome of `body` fed whole, after checking that it is the same split at every byte
/// and fed one byte at a time.
fn outcome(format: &Format, max_line: usize, body: &[u8]) -> Outcome {
    let whole = run(format, max_line, &[body]);
    for at in 0..=body.len() {
        let (a, b) = body.split_at(at);
        assert_eq!(
            run(format, max_line, &[a, b]),
            whole,
            "{format:?} split at {at}: \"{}\"",
            body.escape_ascii()
        );
    }
    let bytes: Vec<&[u8]> = body.chunks(1).collect();
    assert_eq!(
        run(format, max_line, &bytes),
        whole,
        "{format:?} byte by byte: \"{}\"",
        body.escape_ascii()
    );
    whole
}

fn items(list: &[(u64, &str)]) -> Vec<Item> {
    list.iter()
        .map(|&(line, text)| Item {
            line,
            text: text.to_owned(),
        })
        .collect()
}

/// The body gives these items and no error.
fn ok(format: &Format, body: &[u8], expected: &[(u64, &str)]) {
    ok_within(format, MAX_LINE, body, expected);
}

/// The body gives these items and no error, with lines of at most `max_line` bytes.
fn ok_within(format: &Format, max_line: usize, body: &[u8], expected: &[(u64, &str)]) {
    let got = outcome(format, max_line, body);
    assert_eq!(
        got,
        Outcome {
            items: items(expected),
            error: None
        },
        "\"{}\"",
        body.escape_ascii()
    );
}

/// The body gives these items, then this error.
fn fails(
    format: &Format,
    max_line: usize,
    body: &[u8],
    before: &[(u64, &str)],
    error: UploadError,
) {
    let got = outcome(format, max_line, body);
    assert_eq!(
        got,
        Outcome {
            items: items(before),
            error: Some(error)
        },
        "\"{}\"",
        body.escape_ascii()
    );
}

/// A table row of a refused body: the body, the items before the fault, the fault.
type Refused = (&'static [u8], &'static [(u64, &'static str)], UploadError);

fn number(n: usize) -> Column {
    Column::Number(NonZeroUsize::new(n).expect("columns count from 1"))
}

fn by_name(name: &str) -> Format {
    Format::Csv(Column::Name(name.to_owned()))
}

fn by_number(n: usize) -> Format {
    Format::Csv(number(n))
}

mod lines {
    use super::*;

    const LINES: &Format = &Format::Lines;

    #[test]
    fn blank_lines_and_comments_are_skipped_but_counted() {
        ok(
            LINES,
            b"\xef\xbb\xbfa@x.test\r\n\n  # a comment\n  b@x.test  \nc@x.test",
            &[(1, "a@x.test"), (4, "b@x.test"), (5, "c@x.test")],
        );
        ok(
            LINES,
            b"\t\n \r\n\r\r\n\xc2\xa0\t\n  \t# a comment\na@x.test\n",
            &[(6, "a@x.test")],
        );
        ok(LINES, b"", &[]);
        ok(LINES, b"\n\n", &[]);
        ok(LINES, b"#only\n", &[]);
    }

    #[test]
    fn crlf_and_lf_are_taken_off_and_nothing_else() {
        ok(
            LINES,
            b"a@x.test\r\n  b@x.test  \r\n\r\nc@x.test\n",
            &[(1, "a@x.test"), (2, "b@x.test"), (4, "c@x.test")],
        );
        for (body, text) in [
            (
                &b"a@x.test\rRCPT TO:<b@x.test>\n"[..],
                "a@x.test\rRCPT TO:<b@x.test>",
            ),
            (b"a@x.test\r\r\n", "a@x.test\r"),
            // At the end of the body, without LF, a CR is no terminator.
            (b"a@x.test\r", "a@x.test\r"),
            (b"\ta@x.test\n", "\ta@x.test"),
            (b"  a@x.test\t \r\n", "a@x.test\t"),
            (b"a@x\t.test\n", "a@x\t.test"),
            (b"a@x.test\xc2\x85\n", "a@x.test\u{85}"),
            (b"\xc2\xa0a@x.test\xe3\x80\x80\n", "a@x.test"),
        ] {
            ok(LINES, body, &[(1, text)]);
        }
    }

    #[test]
    fn faults_name_their_line() {
        fails(
            LINES,
            MAX_LINE,
            b"a@x.test\nb\xff@x.test\nc@x.test\n",
            &[(1, "a@x.test")],
            UploadError::NotUtf8 { at: Place::Line(2) },
        );
        fails(
            LINES,
            MAX_LINE,
            b"a@x.test\n\nb\0@x.test\n",
            &[(1, "a@x.test")],
            UploadError::Binary { at: Place::Line(3) },
        );
        // A NUL byte is a fault even in a line that would be skipped.
        fails(
            LINES,
            MAX_LINE,
            b"# \0\n",
            &[],
            UploadError::Binary { at: Place::Line(1) },
        );
    }

    #[test]
    fn a_line_may_be_max_line_bytes_long_and_no_more() {
        let too_long = |line| UploadError::TooLong {
            at: Place::Line(line),
            limit: 8,
        };
        for (body, expected) in [
            (&b"12345678\n"[..], Ok(&[(1, "12345678")][..])),
            (b"12345678\r\n", Ok(&[(1, "12345678")])),
            (b"12345678", Ok(&[(1, "12345678")])),
            (b"ok\n123456789\n", Err((&[(1, "ok")][..], too_long(2)))),
            (b"123456789", Err((&[], too_long(1)))),
            // The CR of a CRLF does not count; at the end of the body it is text, and counts.
            (b"12345678\r", Err((&[], too_long(1)))),
            (b"12345678\r9\n", Err((&[], too_long(1)))),
            (b"12345678\r\r\n", Err((&[], too_long(1)))),
            // A NUL byte within the first `max_line + 2` bytes is seen first; later, the length.
            (
                b"123456789\0",
                Err((&[], UploadError::Binary { at: Place::Line(1) })),
            ),
            (b"1234567890\0", Err((&[], too_long(1)))),
        ] {
            let got = outcome(LINES, 8, body);
            let want = match expected {
                Ok(list) => Outcome {
                    items: items(list),
                    error: None,
                },
                Err((list, error)) => Outcome {
                    items: items(list),
                    error: Some(error),
                },
            };
            assert_eq!(got, want, "\"{}\"", body.escape_ascii());
        }
    }
}

mod csv {
    use super::*;

    #[test]
    fn by_name_by_number_and_header_detection() {
        let text = b"name,Email\nAlice,alice@x.test\n\"Doe, John\",john@x.test\nNobody\n";
        let expected = [(2, "alice@x.test"), (3, "john@x.test"), (4, "")];
        ok(&by_name("email"), text, &expected);
        // By number, the header is recognised because its column has no '@'.
        ok(&by_number(2), text, &expected);
        // No header: the first row is data.
        ok(
            &by_number(1),
            b"alice@x.test,1\nbob@x.test,2\n",
            &[(1, "alice@x.test"), (2, "bob@x.test")],
        );
        // A first row too short for the column is data, not a header.
        ok(
            &by_number(2),
            b"a\nb,c@x.test\n",
            &[(1, ""), (2, "c@x.test")],
        );
        ok(&by_name("email"), b"", &[]);
        ok(&by_name("email"), b"email\n", &[]);
    }

    #[test]
    fn rows_without_the_column_are_skipped_when_blank_and_empty_items_otherwise() {
        ok(
            &by_number(2),
            b"a,x@y.test\n \t\n , \nNobody\n",
            &[(1, "x@y.test"), (4, "")],
        );
    }

    #[test]
    fn fields_are_read_like_lines_and_keep_their_control_characters() {
        let text = "name,email\r\n\
                    Alice, alice@x.test \r\n\
                    Bob,\"bob@x.test\nRCPT TO:<c@x.test>\"\r\n\
                    Carol,\"carol@x.test\r\n\"\r\n\
                    Dan,dan@x.test\t\r\n\
                    Eve,# a comment\r\n\
                    Fay,\"  \"\r\n";
        ok(
            &by_name("email"),
            text.as_bytes(),
            &[
                // Numbered as the csv crate numbers records after CRLF: see the module docs.
                (1, "alice@x.test"),
                (2, "bob@x.test\nRCPT TO:<c@x.test>"),
                (4, "carol@x.test\r\n"),
                (6, "dan@x.test\t"),
            ],
        );
    }

    #[test]
    fn a_header_without_the_named_column_lists_the_columns() {
        fails(
            &by_name("email"),
            MAX_LINE,
            b"name, mail \nx@y.test,z\n",
            &[],
            UploadError::NoSuchColumn {
                name: "email".into(),
                header: "name, mail".into(),
            },
        );
        let error = run(&by_name("email"), MAX_LINE, &[b"name,mail\n"]).error;
        let message = error.expect("no such column").to_string();
        assert_eq!(
            message,
            "the CSV header has no column named \"email\" (it has: name, mail): name one of \
             those, or give the column's number from 1"
        );
    }

    #[test]
    fn a_long_header_is_listed_in_1_kib() {
        let header = vec!["column"; 1000].join(",");
        let error = run(&by_name("email"), MAX_LINE, &[header.as_bytes()])
            .error
            .expect("no such column");
        let UploadError::NoSuchColumn { header, .. } = error else {
            panic!("{error:?}");
        };
        assert!(header.len() <= 1024 + '…'.len_utf8(), "{}", header.len());
        assert!(header.starts_with("column, column, "), "{header}");
        assert!(header.ends_with('…'), "{header}");
    }

    #[test]
    fn faults_name_their_record_or_line() {
        fails(
            &by_number(1),
            MAX_LINE,
            b"a@x.test\n\"b\xff@x.test\"\n",
            &[(1, "a@x.test")],
            UploadError::NotUtf8 {
                at: Place::Record(2),
            },
        );
        // Not UTF-8 outside the column is none of the upload's business.
        ok(&by_number(1), b"a@x.test,\xff\n", &[(1, "a@x.test")]);
        // A NUL byte is named by its physical line.
        fails(
            &by_number(1),
            MAX_LINE,
            b"a@x.test\n\"b\nc\",\0\n",
            &[(1, "a@x.test")],
            UploadError::Binary { at: Place::Line(3) },
        );
    }

    #[test]
    fn a_record_may_be_max_line_bytes_long_and_no_more() {
        let too_long = |line| UploadError::TooLong {
            at: Place::Record(line),
            limit: 8,
        };
        // Fields' bytes plus one per comma: quotes and line ends do not count.
        ok_within(&by_number(1), 8, b"a@,b,c,d\n", &[(1, "a@")]);
        ok_within(&by_number(1), 8, b"\"abcdefg@\"\r\n", &[(1, "abcdefg@")]);
        fails(&by_number(1), 8, b"a,b,c,d,e\n", &[], too_long(1));
        fails(
            &by_number(1),
            8,
            b"x@y\n\"abc\"\"defgh\"\n",
            &[(1, "x@y")],
            too_long(2),
        );
        fails(&by_number(1), 8, b"123456789", &[], too_long(1));
        fails(&by_number(1), 8, b",,,,,,,,,", &[], too_long(1));
    }

    #[test]
    fn a_byte_order_mark_is_taken_off_once() {
        ok(
            &by_name("email"),
            b"\xef\xbb\xbfemail\nx@y.test\n",
            &[(2, "x@y.test")],
        );
        // A second one is text; with a name it spoils the header.
        fails(
            &by_name("email"),
            MAX_LINE,
            b"\xef\xbb\xbf\xef\xbb\xbfemail\nx@y.test\n",
            &[],
            UploadError::NoSuchColumn {
                name: "email".into(),
                header: "\u{feff}email".into(),
            },
        );
        ok(&by_number(1), b"\xef\xbb\xbf", &[]);
        ok(&by_number(1), b"\xef\xbb\xbfa@b", &[(1, "a@b")]);
        ok(&by_number(1), b"a@b", &[(1, "a@b")]);
    }
}

mod json {
    use super::*;

    const JSON: &Format = &Format::Json;

    #[test]
    fn an_array_of_strings_gives_every_element_at_its_position() {
        ok(
            JSON,
            br#"["a@x.test", "b@y.test"]"#,
            &[(1, "a@x.test"), (2, "b@y.test")],
        );
        ok(JSON, b"[]", &[]);
        ok(JSON, b" \r\n\t[ \n ]\n ", &[]);
        ok(JSON, b"\xef\xbb\xbf[\"a\"]", &[(1, "a")]);
        // Blank elements and "comments" are items too: JSON has no comments.
        ok(
            JSON,
            br##"["", "  ", "# x", " c@x.test "]"##,
            &[(1, ""), (2, ""), (3, "# x"), (4, "c@x.test")],
        );
    }

    #[test]
    fn escapes_are_decoded_by_serde_json() {
        ok(
            JSON,
            br#"["a\"b", "c\\", "\u0041@x.test", "\ud83d\ude00", "x\ny", "\/"]"#,
            &[
                (1, "a\"b"),
                (2, "c\\"),
                (3, "A@x.test"),
                (4, "\u{1f600}"),
                (5, "x\ny"),
                (6, "/"),
            ],
        );
        ok(JSON, "[\"é@x.test\"]".as_bytes(), &[(1, "é@x.test")]);
    }

    #[test]
    fn a_body_that_is_not_an_array_of_strings_is_refused_at_its_byte() {
        use JsonToken::*;
        let cases: &[Refused] = &[
            (
                b"",
                &[],
                UploadError::NotAnArray {
                    byte: 0,
                    found: EndOfBody,
                },
            ),
            (
                b"  ",
                &[],
                UploadError::NotAnArray {
                    byte: 2,
                    found: EndOfBody,
                },
            ),
            (
                br#"{"a": 1}"#,
                &[],
                UploadError::NotAnArray {
                    byte: 0,
                    found: Object,
                },
            ),
            (
                br#" "a""#,
                &[],
                UploadError::NotAnArray {
                    byte: 1,
                    found: String,
                },
            ),
            (
                b"a@x.test",
                &[],
                UploadError::NotAnArray {
                    byte: 0,
                    found: Other(b'a'),
                },
            ),
            (
                b"\xef\xbb[]",
                &[],
                UploadError::NotAnArray {
                    byte: 0,
                    found: Other(0xef),
                },
            ),
            (
                b" \xef\xbb\xbf[]",
                &[],
                UploadError::NotAnArray {
                    byte: 1,
                    found: Other(0xef),
                },
            ),
            (
                b"[1]",
                &[],
                UploadError::NotAString {
                    element: 1,
                    byte: 1,
                    found: Number,
                },
            ),
            (
                br#"["a", -1]"#,
                &[(1, "a")],
                UploadError::NotAString {
                    element: 2,
                    byte: 6,
                    found: Number,
                },
            ),
            (
                b"[null]",
                &[],
                UploadError::NotAString {
                    element: 1,
                    byte: 1,
                    found: Null,
                },
            ),
            (
                b"[true]",
                &[],
                UploadError::NotAString {
                    element: 1,
                    byte: 1,
                    found: Boolean,
                },
            ),
            (
                b"[[\"a\"]]",
                &[],
                UploadError::NotAString {
                    element: 1,
                    byte: 1,
                    found: Array,
                },
            ),
            (
                b"[{}]",
                &[],
                UploadError::NotAString {
                    element: 1,
                    byte: 1,
                    found: Object,
                },
            ),
            (
                b"[,\"a\"]",
                &[],
                UploadError::NotAString {
                    element: 1,
                    byte: 1,
                    found: Comma,
                },
            ),
            (
                br#"["a",]"#,
                &[(1, "a")],
                UploadError::NotAString {
                    element: 2,
                    byte: 5,
                    found: EndOfArray,
                },
            ),
            (
                br#"["a" "b"]"#,
                &[(1, "a")],
                UploadError::MissingComma {
                    after: 1,
                    byte: 5,
                    found: String,
                },
            ),
            (
                br#"["a"] x"#,
                &[(1, "a")],
                UploadError::TrailingData {
                    byte: 6,
                    found: Other(b'x'),
                },
            ),
            (
                br#"["a"]]"#,
                &[(1, "a")],
                UploadError::TrailingData {
                    byte: 5,
                    found: EndOfArray,
                },
            ),
            (
                br#"[]["a"]"#,
                &[],
                UploadError::TrailingData {
                    byte: 2,
                    found: Array,
                },
            ),
            (b"[", &[], UploadError::Unfinished { byte: 1 }),
            (br#"["a""#, &[(1, "a")], UploadError::Unfinished { byte: 4 }),
            (
                br#"["a", "b"#,
                &[(1, "a")],
                UploadError::Unfinished { byte: 8 },
            ),
            (br#"["a\"#, &[], UploadError::Unfinished { byte: 4 }),
            (
                b"[\"a\0\"]",
                &[],
                UploadError::Binary { at: Place::Byte(3) },
            ),
            (b"[\0]", &[], UploadError::Binary { at: Place::Byte(1) }),
            (
                b"[\"\\\0\"]",
                &[],
                UploadError::Binary { at: Place::Byte(3) },
            ),
            (
                b"[\"a\", \"\xff\"]",
                &[(1, "a")],
                UploadError::NotUtf8 {
                    at: Place::Element { number: 2, byte: 6 },
                },
            ),
        ];
        for (body, before, error) in cases {
            fails(JSON, MAX_LINE, body, before, error.clone());
        }
    }

    #[test]
    fn strings_serde_json_refuses_are_refused_with_its_reason() {
        for (body, detail) in [
            (&br#"["a\x"]"#[..], "invalid escape"),
            (
                b"[\"a\tb\"]",
                "control character (\\u0000-\\u001F) found while parsing a string",
            ),
            (br#"["\ud800"]"#, "unexpected end of hex escape"),
            (br#"["\udc00"]"#, "lone leading surrogate in hex escape"),
            (br#"["\u12xy"]"#, "invalid escape"),
        ] {
            let got = outcome(JSON, MAX_LINE, body);
            let Some(UploadError::BadString {
                element: 1,
                byte: 1,
                detail: said,
            }) = &got.error
            else {
                panic!("\"{}\": {got:?}", body.escape_ascii());
            };
            assert_eq!(said, detail, "\"{}\"", body.escape_ascii());
        }
    }

    #[test]
    fn a_string_may_be_max_line_bytes_long_and_no_more() {
        let too_long = |number, byte| UploadError::TooLong {
            at: Place::Element { number, byte },
            limit: 4,
        };
        // The bytes between the quotes count, escapes as written.
        ok_within(JSON, 4, br#"["abcd"]"#, &[(1, "abcd")]);
        ok_within(JSON, 4, br#"["a\"b"]"#, &[(1, "a\"b")]);
        fails(JSON, 4, br#"["ab", "abcde"]"#, &[(1, "ab")], too_long(2, 7));
        fails(JSON, 4, br#"["ab\"c"]"#, &[], too_long(1, 1));
        // A NUL byte in the first `max_line + 1` bytes is seen first; later, the length.
        fails(
            JSON,
            4,
            b"[\"abcd\0",
            &[],
            UploadError::Binary { at: Place::Byte(6) },
        );
        fails(JSON, 4, b"[\"abcde\0", &[], too_long(1, 1));
    }
}

/// The same files as `mxprobe verify` reads them (`src/cli/input.rs`), written down by hand.
mod as_verify_reads_it {
    use super::*;

    #[test]
    fn a_tricky_text_file() {
        let body = b"\xef\xbb\xbfa@x.test\r\n\
                     \r\n\
                     \x20  # comment\n\
                     \x20 b@x.test  \r\n\
                     \t\n\
                     c@x.test\r\r\n\
                     \xc2\xa0d@x.test\xc2\xa0\n\
                     \x20\te@x.test\n\
                     #\n\
                     f@x.test";
        ok(
            &Format::Lines,
            body,
            &[
                (1, "a@x.test"),
                (4, "b@x.test"),
                (6, "c@x.test\r"),
                (7, "d@x.test"),
                (8, "\te@x.test"),
                (10, "f@x.test"),
            ],
        );
        assert_eq!(
            verify_lines(body),
            items(&[
                (1, "a@x.test"),
                (4, "b@x.test"),
                (6, "c@x.test\r"),
                (7, "d@x.test"),
                (8, "\te@x.test"),
                (10, "f@x.test"),
            ])
        );
    }

    /// A CSV file with a BOM, CRLF and LF lines, a blank line, a quoted field across lines, a
    /// short row, a blank row and a comment. Records are numbered as the csv crate numbers
    /// them (one line short after CRLF; see the module docs): Alice is on line 2, Doe starts
    /// on line 4.
    const TRICKY_CSV: &[u8] = b"\xef\xbb\xbfname, Email \r\n\
        Alice, alice@x.test \r\n\
        \r\n\
        \"Doe,\nJohn\",john@x.test\n\
        Nobody\n\
        \x20 \t\n\
        Carol,# not an address\n\
        Eve,\"eve@x.test\r\nRCPT TO:<x@y>\"\n\
        Dan,dan@x.test";

    const TRICKY_CSV_ITEMS: &[(u64, &str)] = &[
        (1, "alice@x.test"),
        (2, "john@x.test"),
        (6, ""),
        (9, "eve@x.test\r\nRCPT TO:<x@y>"),
        (11, "dan@x.test"),
    ];

    #[test]
    fn a_tricky_csv_file_by_name_and_by_number() {
        for column in [Column::Name("email".into()), number(2)] {
            ok(&Format::Csv(column.clone()), TRICKY_CSV, TRICKY_CSV_ITEMS);
            assert_eq!(verify_csv(TRICKY_CSV, &column), Ok(items(TRICKY_CSV_ITEMS)));
        }
    }

    /// The csv crate's numbering: after CRLF, and after blank lines.
    #[test]
    fn csv_records_are_numbered_as_the_csv_crate_numbers_them() {
        for (body, expected) in [
            (
                &b"a@x.test\r\nb@x.test\r\nc@x.test\r\n"[..],
                &[(1, "a@x.test"), (1, "b@x.test"), (2, "c@x.test")][..],
            ),
            (
                b"a@x.test\n\n\nb@x.test\n",
                &[(1, "a@x.test"), (2, "b@x.test")],
            ),
            (
                b"a@x.test\rb@x.test\rc@x.test",
                &[(1, "a@x.test"), (1, "b@x.test"), (1, "c@x.test")],
            ),
            (
                b"\"a@x.test\n\"\nb@x.test",
                &[(1, "a@x.test\n"), (3, "b@x.test")],
            ),
        ] {
            ok(&by_number(1), body, expected);
            assert_eq!(verify_csv(body, &number(1)), Ok(items(expected)));
        }
    }
}

/// `mxprobe verify`'s reading of plain lines (`Input::Lines` in `src/cli/input.rs`),
/// transcribed: `read_until(b'\n')`, the terminator off, then the same text rules.
fn verify_lines(body: &[u8]) -> Vec<Item> {
    use std::io::BufRead;
    let mut reader = std::io::Cursor::new(body);
    let mut items = Vec::new();
    let mut line = 0;
    let mut buffer = Vec::new();
    loop {
        buffer.clear();
        if reader.read_until(b'\n', &mut buffer).expect("in memory") == 0 {
            return items;
        }
        line += 1;
        let bytes = buffer
            .strip_suffix(b"\r\n")
            .or_else(|| buffer.strip_suffix(b"\n"))
            .unwrap_or(&buffer);
        items.extend(text::item_of(line, bytes).expect("UTF-8 in these tests"));
    }
}

/// `mxprobe verify`'s reading of CSV (`Input::Csv` in `src/cli/input.rs`), transcribed onto
/// the csv crate it uses, with the same settings: the reference for the records, their fields
/// and their line numbers. `Err` for the faults the upload refuses (a missing header column,
/// a field not UTF-8), where `verify` has a fatal error or an unreadable line.
fn verify_csv(body: &[u8], column: &Column) -> Result<Vec<Item>, &'static str> {
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(body);
    let mut record = ::csv::ByteRecord::new();
    let mut index = column.index();
    let mut checked = false;
    let mut items = Vec::new();
    while reader
        .read_byte_record(&mut record)
        .expect("byte records of flexible width cannot fail")
    {
        let line = record.position().expect("a read record has one").line();
        if !checked {
            checked = true;
            match column {
                Column::Name(name) => {
                    index = record.iter().position(|field| {
                        String::from_utf8_lossy(field)
                            .trim()
                            .eq_ignore_ascii_case(name)
                    });
                    if index.is_none() {
                        return Err("no such column");
                    }
                    continue;
                }
                Column::Number(n) => {
                    if record.get(n.get() - 1).is_some_and(|f| !f.contains(&b'@')) {
                        continue;
                    }
                }
            }
        }
        let Some(field) = record.get(index.expect("known after the header")) else {
            if !record.iter().all(|f| f.trim_ascii().is_empty()) {
                items.push(Item {
                    line,
                    text: String::new(),
                });
            }
            continue;
        };
        items.extend(text::item_of(line, field).map_err(|_| "not UTF-8")?);
    }
    Ok(items)
}

#[test]
fn a_10_mb_line_is_refused_having_held_no_more_than_max_line() {
    for (format, start) in [
        (Format::Lines, &b""[..]),
        (by_number(1), b""),
        (by_name("e"), b"e\n"),
        (Format::Json, b"[\""),
    ] {
        let mut parser = Parser::new(format.clone());
        let mut out = Vec::new();
        parser.feed(start, &mut out).expect("a good start");
        let chunk = [b'a'; 4096];
        let mut fed = 0;
        let error = loop {
            assert!(fed < 10 << 20, "{format:?}: 10 MB taken");
            match parser.feed(&chunk, &mut out) {
                Ok(()) => fed += chunk.len(),
                Err(error) => break error,
            }
            assert!(
                parser.buffered() <= MAX_LINE + 2,
                "{format:?} holds {} bytes after {fed}",
                parser.buffered()
            );
        };
        assert!(fed <= MAX_LINE + 2, "{format:?}: refused after {fed} bytes");
        assert!(
            matches!(
                error,
                UploadError::TooLong {
                    limit: MAX_LINE,
                    ..
                }
            ),
            "{format:?}: {error:?}"
        );
        assert!(out.is_empty());
    }
}

#[test]
fn a_limit_lowered_below_the_line_being_read_refuses_it() {
    for (format, start) in [
        (Format::Lines, &b"abcdef"[..]),
        (by_number(1), b"abcdef"),
        (Format::Json, b"[\"abcdef"),
    ] {
        let mut out = Vec::new();
        let mut parser = Parser::new(format.clone());
        parser.feed(start, &mut out).expect("a good start");
        let mut parser = parser.with_max_line(2);
        let error = parser.feed(b"g", &mut out).expect_err("too long now");
        assert!(
            matches!(error, UploadError::TooLong { limit: 2, .. }),
            "{format:?}: {error:?}"
        );
    }
}

#[test]
fn messages_say_what_where_and_what_to_do() {
    let message = |error: UploadError| error.to_string();
    assert_eq!(
        message(UploadError::NotUtf8 { at: Place::Line(3) }),
        "line 3 is not UTF-8: upload text, not a binary file, and convert a Latin-1 or UTF-16 \
         export to UTF-8 first"
    );
    assert_eq!(
        message(UploadError::TooLong {
            at: Place::Record(7),
            limit: 65536
        }),
        "the CSV record at line 7 is longer than 65536 bytes, and no address is longer than \
         254: check that lines end with LF or CRLF and that the body is in the format its \
         Content-Type says"
    );
    assert_eq!(
        message(UploadError::Binary {
            at: Place::Byte(12)
        }),
        "byte offset 12 holds a NUL byte, so this is a binary file: upload text (one address \
         per line, CSV, or a JSON array of strings), encoded as UTF-8"
    );
    assert_eq!(
        message(UploadError::NotAString {
            element: 2,
            byte: 9,
            found: JsonToken::Number
        }),
        "element 2 of the JSON array (at byte offset 9) is a number, not a string: send each \
         address as a JSON string, such as [\"a@x.test\", \"b@y.test\"]"
    );
    assert_eq!(
        message(UploadError::NotAString {
            element: 2,
            byte: 9,
            found: JsonToken::EndOfArray
        }),
        "element 2 of the JSON array is missing: at byte offset 9 comes the end of the array \
         (]); remove the extra comma before it"
    );
    assert_eq!(
        message(UploadError::MissingComma {
            after: 1,
            byte: 5,
            found: JsonToken::Other(b'x')
        }),
        "the JSON array needs a comma or its closing ] after element 1: at byte offset 5 comes \
         'x', which starts no JSON value; separate the elements with commas"
    );
}

#[test]
fn columns_parse_as_the_command_line_parses_them() {
    assert_eq!("2".parse::<Column>(), Ok(number(2)));
    assert_eq!("Email".parse::<Column>(), Ok(Column::Name("Email".into())));
    assert_eq!(
        " Email ".parse::<Column>(),
        Ok(Column::Name("Email".into()))
    );
    assert_eq!(
        "0".parse::<Column>(),
        Err("columns are numbered from 1".to_owned())
    );
    assert_eq!(
        " ".parse::<Column>(),
        Err("give a column name or a number from 1".to_owned())
    );
}

/// Bytes that matter to some format, and now and then any byte.
fn body() -> impl Strategy<Value = Vec<u8>> {
    let special = prop::sample::select(b"\n\r,\"\\[]{} \t#@a:u0\0\xef\xbb\xbf\xc3\xa9".to_vec());
    prop::collection::vec(prop_oneof![4 => special, 1 => any::<u8>()], 0..160)
}

/// A JSON array of strings as a client would send it, maybe cut short.
fn json_body() -> impl Strategy<Value = Vec<u8>> {
    let text = prop::collection::vec(
        prop::sample::select(vec![
            'a', '@', '"', '\\', ' ', '\n', '\t', 'é', '😀', '\u{feff}', '#',
        ]),
        0..12,
    )
    .prop_map(|chars| chars.into_iter().collect::<String>());
    (
        prop::collection::vec(text, 0..8),
        any::<bool>(),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(strings, pretty, cut)| {
            let body = if pretty {
                serde_json::to_vec_pretty(&strings)
            } else {
                serde_json::to_vec(&strings)
            }
            .expect("strings serialise");
            // Cut at a random point now and then: the tail case.
            let end = if cut.index(4) == 0 {
                cut.index(body.len() + 1)
            } else {
                body.len()
            };
            body[..end].to_vec()
        })
}

/// A plain-text body from pieces that matter to lines, all UTF-8.
fn text_body() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop::sample::select(vec![
        "a@", " ", "\t", "\r", "\n", "#", "\u{a0}", "\u{feff}", "\u{85}",
    ]);
    prop::collection::vec(piece, 0..60).prop_map(|pieces| pieces.concat().into_bytes())
}

/// A CSV body from pieces that matter to CSV, all ASCII.
fn csv_body() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop::sample::select(vec![
        "a", "x@y", ",", "\"", "\n", "\r", "\r\n", " ", "\t", "#", "email", "\u{feff}",
    ]);
    prop::collection::vec(piece, 0..40).prop_map(|pieces| pieces.concat().into_bytes())
}

fn format_of(choice: u8) -> Format {
    match choice % 5 {
        0 => Format::Lines,
        1 => Format::Json,
        2 => by_number(1),
        3 => by_number(2),
        _ => by_name("email"),
    }
}

/// `body` cut at the given points (taken modulo its length, in order).
fn pieces<'a>(body: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|cut| cut % (body.len() + 1)).collect();
    points.sort_unstable();
    let mut pieces = Vec::new();
    let mut start = 0;
    for point in points {
        pieces.push(&body[start..point]);
        start = point;
    }
    pieces.push(&body[start..]);
    pieces
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_body_split_anywhere_gives_what_it_gives_whole(
        body in prop_oneof![body(), json_body(), csv_body()],
        choice in any::<u8>(),
        max_line in prop::sample::select(vec![0, 1, 3, 8, MAX_LINE]),
        cuts in prop::collection::vec(any::<usize>(), 0..6),
    ) {
        let format = format_of(choice);
        let whole = run(&format, max_line, &[&body]);
        let chunked = run(&format, max_line, &pieces(&body, &cuts));
        prop_assert_eq!(&chunked, &whole, "{:?} \"{}\"", format, body.escape_ascii());
        for item in &whole.items {
            prop_assert!(item.text.len() <= max_line, "{:?}", item);
            prop_assert_eq!(text::trim_spaces(&item.text), item.text.as_str());
        }
        let lines: Vec<u64> = whole.items.iter().map(|item| item.line).collect();
        prop_assert!(lines.windows(2).all(|w| w[0] <= w[1]), "{:?}", lines);
    }

    #[test]
    fn csv_reads_as_the_csv_crate_reads_it(
        body in csv_body(),
        choice in 2u8..5,
        cuts in prop::collection::vec(any::<usize>(), 0..4),
    ) {
        let format = format_of(choice);
        let Format::Csv(column) = &format else { unreachable!("choices 2 to 4 are CSV") };
        let got = run(&format, MAX_LINE, &pieces(&body, &cuts));
        match verify_csv(&body, column) {
            Ok(expected) => prop_assert_eq!(got, Outcome { items: expected, error: None }),
            Err(_) => prop_assert!(
                matches!(got.error, Some(UploadError::NoSuchColumn { .. })),
                "{:?}", got
            ),
        }
    }

    #[test]
    fn lines_read_as_verify_reads_them(
        body in text_body(),
        cuts in prop::collection::vec(any::<usize>(), 0..4),
    ) {
        let got = run(&Format::Lines, MAX_LINE, &pieces(&body, &cuts));
        prop_assert_eq!(got, Outcome { items: verify_lines(&body), error: None });
    }
}
