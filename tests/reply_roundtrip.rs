//! Property tests: every reply the encoder builds parses back to itself, alone or pipelined,
//! however the bytes are split; and no command the encoder accepts carries a line break.

use mxprobe::smtp::reply::{Limits, ReplyReader, Status, encode_reply, parse_reply};
use mxprobe::smtp::{Command, EnhancedCode, ReplyCode, ReversePath};
use proptest::prelude::*;

/// A reply as the test builds it: code, optional enhanced code on every line, line texts.
#[derive(Debug, Clone)]
struct Built {
    code: ReplyCode,
    enhanced: Option<EnhancedCode>,
    lines: Vec<Vec<u8>>,
}

impl Built {
    fn wire(&self) -> Vec<u8> {
        let lines: Vec<&[u8]> = self.lines.iter().map(Vec::as_slice).collect();
        let mut wire = Vec::new();
        encode_reply(self.code, &lines, &mut wire).expect("built texts hold no CR or LF");
        wire
    }
}

fn reply_code() -> impl Strategy<Value = ReplyCode> {
    (2u16..=5, 0u16..=5, 0u16..=9)
        .prop_map(|(a, b, c)| ReplyCode::new(a * 100 + b * 10 + c).expect("in the grammar"))
}

/// Text bytes: HT, printable ASCII, and bytes above 127 (which real servers send). The first
/// byte is never a digit, so the text cannot be mistaken for an enhanced code.
fn text() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        8 => 0x20u8..=0x7e,
        1 => Just(b'\t'),
        1 => 0x80u8..=0xff,
    ];
    proptest::collection::vec(byte, 0..120).prop_map(|mut text| {
        if text.first().is_some_and(u8::is_ascii_digit) {
            text[0] = b'x';
        }
        text
    })
}

fn built_reply() -> impl Strategy<Value = Built> {
    (
        reply_code(),
        any::<bool>(),
        1u16..=999,
        1u16..=999,
        proptest::collection::vec(text(), 1..=64),
    )
        .prop_map(|(code, with_enhanced, subject, detail, texts)| {
            // RFC 3463: the enhanced class is the reply code's first digit (2, 4 or 5 only).
            let enhanced = with_enhanced
                .then(|| EnhancedCode::new(code.get() / 100, subject, detail))
                .flatten();
            let lines = texts
                .into_iter()
                .map(|text| match enhanced {
                    Some(e) => [e.to_string().into_bytes(), b" ".to_vec(), text].concat(),
                    None => text,
                })
                .collect();
            Built {
                code,
                enhanced,
                lines,
            }
        })
}

fn assert_same(built: &Built, reply: &mxprobe::smtp::Reply<'_>) {
    assert_eq!(reply.code(), built.code);
    assert_eq!(reply.enhanced(), built.enhanced);
    let lines: Vec<&[u8]> = reply.lines().collect();
    let expected: Vec<&[u8]> = built.lines.iter().map(Vec::as_slice).collect();
    assert_eq!(lines, expected);
    assert_eq!(reply.line_count(), built.lines.len());
}

/// A plausible mailbox with one hostile character spliced in somewhere, so that both the
/// accepting and the refusing paths of the encoder are exercised.
fn near_mailbox() -> impl Strategy<Value = String> {
    let hostile = prop_oneof![
        Just("\r"),
        Just("\n"),
        Just("\r\n"),
        Just("\0"),
        Just(">"),
        Just("<"),
        Just(" "),
        Just("\""),
        Just("@"),
        Just("."),
        Just("\u{7f}"),
        Just("é"),
        Just(""),
    ];
    (
        "[a-z0-9.+\"]{1,20}@[a-z0-9-]{1,20}(\\.[a-z]{2,6}){0,2}",
        hostile,
        any::<prop::sample::Index>(),
    )
        .prop_map(|(mailbox, insert, at)| {
            let mut at = at.index(mailbox.len() + 1);
            while !mailbox.is_char_boundary(at) {
                at -= 1;
            }
            format!("{}{insert}{}", &mailbox[..at], &mailbox[at..])
        })
}

proptest! {
    #[test]
    fn encoded_reply_parses_back(built in built_reply()) {
        let wire = built.wire();
        match parse_reply(&wire, &Limits::DEFAULT) {
            Ok(Status::Complete(reply)) => {
                assert_same(&built, &reply);
                prop_assert_eq!(reply.consumed(), wire.len());
                prop_assert_eq!(reply.wire(), &wire[..]);
            }
            other => prop_assert!(false, "{:?} for {}", other, wire.escape_ascii()),
        }
    }

    #[test]
    fn pipelined_replies_parse_back_in_any_pieces(
        replies in proptest::collection::vec(built_reply(), 1..8),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..16),
    ) {
        let stream: Vec<u8> = replies.iter().flat_map(Built::wire).collect();
        let mut offsets: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
        offsets.extend([0, stream.len()]);
        offsets.sort_unstable();

        let mut reader = ReplyReader::new(Limits::DEFAULT);
        let mut next = replies.iter();
        for piece in offsets.windows(2) {
            reader.push(&stream[piece[0]..piece[1]]);
            while let Some(reply) = reader.next_reply().expect("valid stream") {
                assert_same(next.next().expect("no more replies than built"), &reply);
            }
        }
        prop_assert!(next.next().is_none(), "every built reply came out");
        prop_assert_eq!(reader.buffered(), 0);
    }

    #[test]
    fn accepted_commands_are_one_clean_line(
        argument in prop_oneof![".{0,80}", near_mailbox()],
        smtputf8 in any::<bool>(),
        which in 0u8..3,
    ) {
        let command = match which {
            0 => Command::Ehlo(&argument),
            1 => Command::MailFrom { reverse_path: ReversePath::Mailbox(&argument), smtputf8 },
            _ => Command::RcptTo { forward_path: &argument, smtputf8 },
        };
        let mut out = Vec::new();
        if command.encode(&mut out).is_ok() {
            let body = out.strip_suffix(b"\r\n").expect("ends in CRLF");
            prop_assert!(
                !body.iter().any(|&b| b < 0x20 || b == 0x7f),
                "control byte in {}", out.escape_ascii()
            );
        } else {
            prop_assert!(out.is_empty());
        }
    }
}
