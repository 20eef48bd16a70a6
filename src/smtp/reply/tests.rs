//! Parser cases as `(input, expected)` tables, each run through [`check`], which also feeds the
//! input split at every byte and one byte at a time and demands the same outcome.

use super::*;

/// What a case should parse to: per reply, the code, the enhanced code and the line texts.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Parsed {
    code: u16,
    enhanced: Option<String>,
    lines: Vec<Vec<u8>>,
    quirks: Quirks,
}

impl Parsed {
    fn of(reply: &Reply<'_>) -> Self {
        Self {
            code: reply.code().get(),
            enhanced: reply.enhanced().map(|e| e.to_string()),
            lines: reply.lines().map(<[u8]>::to_vec).collect(),
            quirks: reply.quirks(),
        }
    }
}

/// The whole outcome of a stream: its replies, then an error, or the length of an
/// incomplete tail.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    replies: Vec<Parsed>,
    end: Result<usize, ReplyError>,
}

fn parse_whole(input: &[u8], limits: &Limits) -> Outcome {
    let mut replies = Vec::new();
    let mut rest = input;
    loop {
        match parse_reply(rest, limits) {
            Ok(Status::Complete(reply)) => {
                assert!(reply.consumed() > 0, "a reply consumes bytes");
                replies.push(Parsed::of(&reply));
                rest = &rest[reply.consumed()..];
            }
            Ok(Status::Partial) => {
                return Outcome {
                    replies,
                    end: Ok(rest.len()),
                };
            }
            Err(error) => {
                return Outcome {
                    replies,
                    end: Err(error),
                };
            }
        }
    }
}

fn parse_chunked<'c>(chunks: impl IntoIterator<Item = &'c [u8]>, limits: &Limits) -> Outcome {
    let mut reader = ReplyReader::new(*limits);
    let mut replies = Vec::new();
    for chunk in chunks {
        reader.push(chunk);
        loop {
            match reader.next_reply() {
                Ok(Some(reply)) => replies.push(Parsed::of(&reply)),
                Ok(None) => break,
                Err(error) => {
                    return Outcome {
                        replies,
                        end: Err(error),
                    };
                }
            }
        }
    }
    Outcome {
        replies,
        end: Ok(reader.buffered()),
    }
}

fn escaped(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}

/// Parses `input` whole, at every two-way split, and one byte at a time; all must agree.
fn check_with(input: &[u8], limits: &Limits) -> Outcome {
    let whole = parse_whole(input, limits);
    for at in 0..=input.len() {
        let (a, b) = input.split_at(at);
        let split = parse_chunked([a, b], limits);
        assert_eq!(
            split,
            whole,
            "split at {at} changed the outcome of \"{}\"",
            escaped(input)
        );
    }
    let bytewise = parse_chunked(input.chunks(1), limits);
    assert_eq!(
        bytewise,
        whole,
        "byte-at-a-time changed the outcome of \"{}\"",
        escaped(input)
    );
    whole
}

fn check(input: &[u8]) -> Outcome {
    check_with(input, &Limits::DEFAULT)
}

/// Parses a stream holding exactly one complete reply.
fn one(input: &[u8]) -> Parsed {
    let outcome = check(input);
    assert_eq!(
        outcome.end,
        Ok(0),
        "\"{}\" should be one whole reply",
        escaped(input)
    );
    assert_eq!(outcome.replies.len(), 1, "\"{}\"", escaped(input));
    outcome.replies.into_iter().next().expect("one reply")
}

fn error(input: &[u8]) -> ReplyError {
    match check(input).end {
        Err(error) => error,
        Ok(tail) => panic!(
            "\"{}\" should be an error, left {tail} bytes",
            escaped(input)
        ),
    }
}

fn lines(p: &Parsed) -> Vec<&[u8]> {
    p.lines.iter().map(Vec::as_slice).collect()
}

#[test]
fn single_line_replies() {
    /// Input, code, line texts.
    type Case = (&'static [u8], u16, &'static [&'static [u8]]);
    let cases: &[Case] = &[
        (b"250 OK\r\n", 250, &[b"OK"]),
        (
            b"220 mx.example.com ESMTP Postfix\r\n",
            220,
            &[b"mx.example.com ESMTP Postfix"],
        ),
        (b"221 2.0.0 Bye\r\n", 221, &[b"2.0.0 Bye"]),
        (
            b"354 End data with <CR><LF>.<CR><LF>\r\n",
            354,
            &[b"End data with <CR><LF>.<CR><LF>"],
        ),
        (b"250 \r\n", 250, &[b""]),
        (b"250  two spaces\r\n", 250, &[b" two spaces"]),
        (b"250 tab\there\r\n", 250, &[b"tab\there"]),
        (b"559 x\r\n", 559, &[b"x"]),
        (b"200 x\r\n", 200, &[b"x"]),
    ];
    for (input, code, text) in cases {
        let p = one(input);
        assert_eq!(p.code, *code, "{}", escaped(input));
        assert_eq!(lines(&p), *text, "{}", escaped(input));
        assert!(p.quirks.is_empty(), "{}: {:?}", escaped(input), p.quirks);
    }
}

#[test]
fn missing_space_after_code_on_last_line_is_accepted_strictly() {
    // RFC 5321 §4.2: the server SHOULD send SP, "clients MUST be prepared for it to be
    // omitted". Not a quirk: the grammar allows `Reply-code [ SP textstring ] CRLF`.
    let p = one(b"250\r\n");
    assert_eq!((p.code, lines(&p)), (250, vec![&b""[..]]));
    assert!(p.quirks.is_empty());
    let p = one(b"250-first\r\n250\r\n");
    assert_eq!(lines(&p), [&b"first"[..], b""]);
    let p = one(b"221\n");
    assert!(p.quirks.contains(Quirk::BareLf));
}

#[test]
fn multi_line_replies() {
    let p = one(b"250-mx.example.com\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250 8BITMIME\r\n");
    assert_eq!(p.code, 250);
    assert_eq!(
        lines(&p),
        [
            &b"mx.example.com"[..],
            b"PIPELINING",
            b"SIZE 10240000",
            b"8BITMIME"
        ]
    );
    let p = one(b"220-mx ESMTP\r\n220-\r\n220 welcome\r\n");
    assert_eq!(lines(&p), [&b"mx ESMTP"[..], b"", b"welcome"]);
}

#[test]
fn bare_lf_is_a_named_quirk() {
    let strict = one(b"250-a\r\n250 b\r\n");
    assert!(strict.quirks.is_empty());
    let relaxed = one(b"250-a\n250 b\r\n");
    assert_eq!(lines(&relaxed), lines(&strict));
    assert_eq!(relaxed.quirks.iter().collect::<Vec<_>>(), [Quirk::BareLf]);
}

#[test]
fn non_ascii_and_control_text_are_named_quirks() {
    let p = one("250 Bienvenue à bord\r\n".as_bytes());
    assert_eq!(p.quirks.iter().collect::<Vec<_>>(), [Quirk::EightBitText]);
    let p = one(b"250 a\rb\x00c\r\n");
    assert_eq!(lines(&p), [&b"a\rb\x00c"[..]]);
    assert_eq!(p.quirks.iter().collect::<Vec<_>>(), [Quirk::ControlInText]);
    let p = one(b"250 del\x7f\r\n");
    assert!(p.quirks.contains(Quirk::ControlInText));
    // A CR before CRLF is text followed by the CRLF.
    let p = one(b"250 x\r\r\n");
    assert_eq!(lines(&p), [&b"x\r"[..]]);
    assert!(p.quirks.contains(Quirk::ControlInText));
}

#[test]
fn pipelined_replies_come_out_in_order() {
    let outcome = check(b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550 5.1.1 No\r\n221 2.0.0 Bye\r\n");
    let codes: Vec<u16> = outcome.replies.iter().map(|p| p.code).collect();
    assert_eq!(codes, [250, 250, 550, 221]);
    assert_eq!(outcome.end, Ok(0));
}

#[test]
fn partial_input_is_not_an_error() {
    for input in [
        &b""[..],
        b"2",
        b"25",
        b"250",
        b"250\r",
        b"250-",
        b"250-text",
        b"250-text\r",
        b"250-text\r\n",
        b"250-text\r\n2",
        b"250-text\r\n250",
        b"250 done",
    ] {
        assert_eq!(
            parse_reply(input, &Limits::DEFAULT),
            Ok(Status::Partial),
            "\"{}\"",
            escaped(input)
        );
        assert_eq!(check(input).end, Ok(input.len()));
    }
}

#[test]
fn invalid_codes_are_errors_at_the_first_bad_byte() {
    for input in [
        &b"1"[..],
        b"6",
        b"x",
        b" 250 OK\r\n",
        b"\r\n",
        b"\n",
        b"26",
        b"2a0 OK\r\n",
        b"25x",
        b"199 no\r\n",
        b"600 no\r\n",
        b"25 OK\r\n",
        b"HTTP/1.1 400 Bad Request\r\n",
        b"\x16\x03\x01\x02\x00",
    ] {
        assert_eq!(
            error(input),
            ReplyError::InvalidCode,
            "\"{}\"",
            escaped(input)
        );
    }
}

#[test]
fn invalid_separators_are_errors() {
    for input in [
        &b"250OK\r\n"[..],
        b"2500 OK\r\n",
        b"250\rX\n",
        b"250\t OK\r\n",
        b"250_",
    ] {
        assert_eq!(
            error(input),
            ReplyError::InvalidSeparator { line: 1 },
            "\"{}\"",
            escaped(input)
        );
    }
    assert_eq!(
        error(b"250-a\r\n250:b\r\n"),
        ReplyError::InvalidSeparator { line: 2 }
    );
}

#[test]
fn every_line_must_repeat_the_code() {
    let expected = ReplyCode::OK;
    for input in [
        &b"250-a\r\n251 b\r\n"[..],
        b"250-a\r\n550 b\r\n",
        // "2" alone may still become 250; "22" cannot.
        b"250-a\r\n22",
        b"250-a\r\n\r\n",
        b"250-a\r\n 250 b\r\n",
    ] {
        assert_eq!(
            error(input),
            ReplyError::CodeMismatch { expected, line: 2 },
            "\"{}\"",
            escaped(input)
        );
    }
    assert_eq!(check(b"250-a\r\n2").end, Ok(8));
    assert_eq!(
        error(b"451-a\r\n451-b\r\n450 c\r\n"),
        ReplyError::CodeMismatch {
            expected: ReplyCode::new(451).expect("valid"),
            line: 3
        }
    );
}

#[test]
fn enhanced_codes_are_numbers_from_the_text() {
    let cases: &[(&[u8], Option<&str>)] = &[
        (b"250 2.1.5 Ok\r\n", Some("2.1.5")),
        (
            b"550 5.1.1 <x@y>: Recipient address rejected\r\n",
            Some("5.1.1"),
        ),
        (
            b"550-5.1.1 The email account\r\n550 5.1.1  https://x\r\n",
            Some("5.1.1"),
        ),
        (b"451 4.7.1 Greylisted\r\n", Some("4.7.1")),
        (b"550 5.7.26 DMARC\r\n", Some("5.7.26")),
        (b"550 5.123.999 big\r\n", Some("5.123.999")),
        (b"250 2.0.0\r\n", Some("2.0.0")),
        // The code may be on a later line only.
        (
            b"550-Verification failed\r\n550 5.1.1 Unknown user\r\n",
            Some("5.1.1"),
        ),
        (b"550 5.1.1.\r\n", None),
        (b"550 5.1.1x\r\n", None),
        (b"550 5.1\r\n", None),
        (b"550 5.1234.1 x\r\n", None),
        (b"550 5..1 x\r\n", None),
        (b"550 3.1.1 x\r\n", None),
        (b"550 Unrouteable address\r\n", None),
        (b"550 5.1.1\tx\r\n", None),
        (b"354 2.0.0 go ahead\r\n", None),
    ];
    for (input, enhanced) in cases {
        let p = one(input);
        assert_eq!(p.enhanced.as_deref(), *enhanced, "\"{}\"", escaped(input));
    }
    let p = one(b"550 5.1.1 x\r\n");
    assert!(p.quirks.is_empty());
}

#[test]
fn enhanced_class_must_agree_with_the_reply_code() {
    let strict = one(b"550 5.1.1 unknown\r\n");
    assert_eq!(strict.enhanced.as_deref(), Some("5.1.1"));
    let relaxed = one(b"550 2.1.5 looks fine but is not\r\n");
    assert_eq!(relaxed.enhanced, None);
    assert_eq!(
        relaxed.quirks.iter().collect::<Vec<_>>(),
        [Quirk::EnhancedClassMismatch]
    );
}

#[test]
fn line_cap_counts_the_line_ending() {
    let limits = Limits {
        max_line_len: 8,
        ..Limits::DEFAULT
    };
    // "250 abc\n" is 8 bytes: fits. "250 abc\r\n" is 9: does not.
    let ok = check_with(b"250 abc\n", &limits);
    assert_eq!((ok.replies.len(), ok.end), (1, Ok(0)));
    let too_long = check_with(b"250 abc\r\n", &limits);
    assert_eq!(
        too_long.end,
        Err(ReplyError::LineTooLong { limit: 8, line: 1 })
    );
    // Known too long before the line ends: eight bytes and no LF.
    assert_eq!(
        check_with(b"250 abcd", &limits).end,
        Err(ReplyError::LineTooLong { limit: 8, line: 1 })
    );
    assert_eq!(check_with(b"250 abc", &limits).end, Ok(7));
    assert_eq!(
        check_with(b"250-a\r\n250 abcdefgh\r\n", &limits).end,
        Err(ReplyError::LineTooLong { limit: 8, line: 2 })
    );
}

#[test]
fn default_line_cap_is_four_kib() {
    let mut line = b"250 ".to_vec();
    line.resize(4094, b'x');
    line.extend_from_slice(b"\r\n");
    assert_eq!(check(&line).end, Ok(0));
    line.insert(5, b'x');
    assert_eq!(
        parse_whole(&line, &Limits::DEFAULT).end,
        Err(ReplyError::LineTooLong {
            limit: 4096,
            line: 1
        })
    );
}

#[test]
fn line_count_cap_fails_as_soon_as_another_line_is_announced() {
    let limits = Limits {
        max_lines: 3,
        ..Limits::DEFAULT
    };
    let ok = check_with(b"250-a\r\n250-b\r\n250 c\r\n", &limits);
    assert_eq!((ok.replies.len(), ok.end), (1, Ok(0)));
    // The third line promises a fourth: an error before the fourth arrives.
    assert_eq!(
        check_with(b"250-a\r\n250-b\r\n250-c\r\n", &limits).end,
        Err(ReplyError::TooManyLines { limit: 3 })
    );
    let mut endless = Vec::new();
    for _ in 0..65 {
        endless.extend_from_slice(b"250-x\r\n");
    }
    assert_eq!(
        parse_whole(&endless, &Limits::DEFAULT).end,
        Err(ReplyError::TooManyLines { limit: 64 })
    );
}

#[test]
fn reply_size_cap_fails_before_the_reply_ends() {
    let limits = Limits {
        max_reply_len: 20,
        ..Limits::DEFAULT
    };
    // 10 + 10 bytes: exactly at the cap.
    let ok = check_with(b"250-abcd\r\n250 efgh\r\n", &limits);
    assert_eq!((ok.replies.len(), ok.end), (1, Ok(0)));
    assert_eq!(
        check_with(b"250-abcd\r\n250 efghi\r\n", &limits).end,
        Err(ReplyError::ReplyTooLong { limit: 20 })
    );
    // After 20 bytes of continuation lines no final line can fit.
    assert_eq!(
        check_with(b"250-abcd\r\n250-efgh\r\n", &limits).end,
        Err(ReplyError::ReplyTooLong { limit: 20 })
    );
    // The cap is per reply: the next reply has its own budget.
    let two = check_with(b"250-abcd\r\n250 efgh\r\n250-abcd\r\n250 efgh\r\n", &limits);
    assert_eq!((two.replies.len(), two.end), (2, Ok(0)));
}

#[test]
fn reader_stays_failed_and_bounded() {
    let mut reader = ReplyReader::new(Limits::DEFAULT);
    reader.push(b"250 ok\r\nbogus\r\n");
    assert!(matches!(reader.next_reply(), Ok(Some(_))));
    assert_eq!(reader.next_reply(), Err(ReplyError::InvalidCode));
    reader.push(b"250 ok\r\n");
    assert_eq!(reader.next_reply(), Err(ReplyError::InvalidCode));

    // A drip-fed endless line is refused once it reaches the cap, not buffered forever.
    let mut reader = ReplyReader::new(Limits::DEFAULT);
    reader.push(b"250 ");
    let mut result = Ok(None);
    for _ in 0..10_000 {
        reader.push(b"x");
        result = reader.next_reply().map(|r| r.map(|r| r.consumed()));
        if result.is_err() {
            break;
        }
    }
    assert_eq!(
        result,
        Err(ReplyError::LineTooLong {
            limit: 4096,
            line: 1
        })
    );
    assert_eq!(reader.buffered(), 4096);
}

#[test]
fn reader_drops_consumed_replies() {
    let mut reader = ReplyReader::new(Limits::DEFAULT);
    reader.push(b"250 a\r\n250 b\r\n25");
    assert_eq!(
        reader.next_reply().map(|r| r.map(|r| r.code().get())),
        Ok(Some(250))
    );
    assert_eq!(reader.buffered(), 9);
    assert!(matches!(reader.next_reply(), Ok(Some(_))));
    assert_eq!(reader.next_reply(), Ok(None));
    assert_eq!(reader.buffered(), 2);
    reader.push(b"0 c\r\n");
    let reply = reader.next_reply().expect("valid").expect("complete");
    assert_eq!(reply.wire(), b"250 c\r\n");
    assert_eq!(reader.buffered(), 0);
}

#[test]
fn owned_reply_keeps_everything() {
    let buf = b"550-5.1.1 a\r\n550 5.1.1 b\n".to_vec();
    let Ok(Status::Complete(reply)) = parse_reply(&buf, &Limits::DEFAULT) else {
        panic!("complete reply expected")
    };
    let owned = reply.into_owned();
    drop(buf);
    let view = owned.as_reply();
    assert_eq!(view.code().get(), 550);
    assert_eq!(view.class(), ReplyClass::PermanentNegative);
    assert_eq!(
        view.enhanced().map(|e| e.to_string()).as_deref(),
        Some("5.1.1")
    );
    assert_eq!(view.line_count(), 2);
    assert_eq!(
        view.lines().collect::<Vec<_>>(),
        [&b"5.1.1 a"[..], b"5.1.1 b"]
    );
    assert!(view.quirks().contains(Quirk::BareLf));
}

#[test]
fn encoder_writes_what_the_parser_reads() {
    let mut out = Vec::new();
    encode_reply(ReplyCode::OK, &[b"mx", b"PIPELINING", b""], &mut out).expect("valid");
    assert_eq!(out, b"250-mx\r\n250-PIPELINING\r\n250\r\n");
    let p = one(&out);
    assert_eq!(lines(&p), [&b"mx"[..], b"PIPELINING", b""]);

    let mut out = b"kept".to_vec();
    assert_eq!(
        encode_reply(ReplyCode::OK, &[b"a", b"b\r\n250 c"], &mut out),
        Err(EncodeReplyError::LineBreakInText { line: 1 })
    );
    assert_eq!(
        encode_reply(ReplyCode::OK, &[], &mut out),
        Err(EncodeReplyError::NoLines)
    );
    assert_eq!(out, b"kept");
}

#[test]
fn errors_read_as_sentences() {
    assert_eq!(
        ReplyError::CodeMismatch {
            expected: ReplyCode::OK,
            line: 2
        }
        .to_string(),
        "line 2 of a multi-line reply does not repeat the code 250"
    );
    assert!(ReplyError::TooManyLines { limit: 64 }.is_limit_exceeded());
    assert!(!ReplyError::InvalidCode.is_limit_exceeded());
}

#[test]
fn a_dash_on_the_last_allowed_line_fails_at_the_dash() {
    let mut input = Vec::new();
    for _ in 0..63 {
        input.extend_from_slice(b"250-x\r\n");
    }
    let mut last = input.clone();
    last.extend_from_slice(b"250 final\r\n");
    assert_eq!(check(&last).replies.len(), 1, "64 lines fit");
    input.extend_from_slice(b"250-");
    // The 64th line announces a 65th: no valid reply can follow, long before its LF.
    assert_eq!(
        check(&input).end,
        Err(ReplyError::TooManyLines { limit: 64 })
    );
}

#[test]
fn a_reply_budget_too_small_for_one_more_line_fails_at_once() {
    let limits = Limits {
        max_reply_len: 10,
        ..Limits::DEFAULT
    };
    // After 7 bytes of `250-abc` CRLF, the shortest next line (`250` LF) needs 4 more: 11 > 10.
    assert_eq!(
        check_with(b"250-abc\r\n", &limits).end,
        Err(ReplyError::ReplyTooLong { limit: 10 })
    );
    // ... and already at the `-`: "250-" + LF + "250" LF is 9, "250-abc" + LF + 4 is 12.
    assert_eq!(check_with(b"250-a", &limits).end, Ok(5));
    assert_eq!(
        check_with(b"250-ab", &limits).end,
        Err(ReplyError::ReplyTooLong { limit: 10 })
    );
    // A last line may use those bytes.
    let fits = check_with(b"250 abcde\n", &limits);
    assert_eq!((fits.replies.len(), fits.end), (1, Ok(0)));
}

#[test]
fn degenerate_limits_fail_at_the_first_byte_and_not_before() {
    for (max_line_len, max_lines, max_reply_len) in [(3, 64, 100), (100, 0, 100), (100, 64, 3)] {
        let limits = Limits {
            max_line_len,
            max_lines,
            max_reply_len,
        };
        assert_eq!(parse_reply(b"", &limits), Ok(Status::Partial));
        assert!(check_with(b"2", &limits).end.is_err(), "{limits:?}");
    }
}

#[test]
fn a_cap_broken_before_a_bad_byte_is_the_error() {
    let limits = Limits {
        max_lines: 1,
        ..Limits::DEFAULT
    };
    // The `-` already breaks the line cap; the bad code on the next line comes later.
    assert_eq!(
        check_with(b"250-a\r\n2x", &limits).end,
        Err(ReplyError::TooManyLines { limit: 1 })
    );
    // `250` CR is a valid prefix needing 5 bytes; with a 4-byte line cap it is the CR that
    // fails, before the X could.
    let limits = Limits {
        max_line_len: 4,
        ..Limits::DEFAULT
    };
    assert_eq!(
        check_with(b"250\rX\n", &limits).end,
        Err(ReplyError::LineTooLong { limit: 4, line: 1 })
    );
    // With room for the CR, the X is the first error.
    assert_eq!(
        check(b"250\rX\n").end,
        Err(ReplyError::InvalidSeparator { line: 1 })
    );
}
