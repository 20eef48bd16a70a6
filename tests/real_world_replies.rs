//! Real-world SMTP replies from `fuzz/seeds/smtp_reply/`, each checked against expectations
//! written down by reading the file (`cat -A`), not by copying what the parser printed.
//!
//! Every seed is parsed whole with `parse_reply` (pipelined replies one after the other), then fed
//! to `ReplyReader` split at every byte and one byte at a time; all three must agree with the
//! table. A seed file without an entry in [`SEEDS`] fails [`every_seed_file_has_expectations`].

use std::fmt;
use std::path::Path;

use mxprobe::smtp::ehlo::{EhloRefused, OtherExtension, SizeLimit, parse_ehlo};
use mxprobe::smtp::reply::{Limits, Reply, ReplyReader, Status, parse_reply};
use mxprobe::smtp::{EnhancedClass, Quirk, ReplyClass, ReplyCode};

/// What one reply of a seed must parse to.
#[derive(Debug, Clone, Copy)]
struct Expected {
    code: u16,
    enhanced: Option<&'static str>,
    lines: usize,
    quirks: &'static [Quirk],
}

/// A conforming reply: no quirk.
const fn reply(code: u16, enhanced: Option<&'static str>, lines: usize) -> Expected {
    Expected {
        code,
        enhanced,
        lines,
        quirks: &[],
    }
}

impl Expected {
    /// The same reply, showing these quirks.
    const fn with(self, quirks: &'static [Quirk]) -> Self {
        Self { quirks, ..self }
    }
}

/// One file of `fuzz/seeds/smtp_reply/` and the replies it holds, in order.
struct Seed {
    /// The file name without `.txt`.
    name: &'static str,
    bytes: &'static [u8],
    replies: &'static [Expected],
}

const SEEDS: &[Seed] = &[
    Seed {
        name: "exim_421_lost_input",
        bytes: include_bytes!("../fuzz/seeds/smtp_reply/exim_421_lost_input.txt"),
        replies: &[reply(421, None, 1)],
    },
    Seed {
        name: "exim_ehlo",
        bytes: include_bytes!("../fuzz/seeds/smtp_reply/exim_ehlo.txt"),
        replies: &[reply(250, None, 8)],
    },
    Seed {
        name: "exim_greeting",
        bytes: include_bytes!("../fuzz/seeds/smtp_reply/exim_greeting.txt"),
        replies: &[reply(220, None, 1)],
    },
    Seed {
        name: "exim_rcpt_unrouteable",
        bytes: include_bytes!("../fuzz/seeds/smtp_reply/exim_rcpt_unrouteable.txt"),
        replies: &[reply(550, None, 1)],
    },
    Seed {
        name: "exim_sender_verify_failed",
        bytes: include_bytes!("../fuzz/seeds/smtp_reply/exim_sender_verify_failed.txt"),
        replies: &[reply(550, None, 3)],
    },
    Seed {
        name: "gmail_421_rate_limited",
        bytes: include_bytes!("../fuzz/seeds/smtp_reply/gmail_421_rate_limited.txt"),
        replies: &[reply(421, Some("4.7.28"), 4)],
    },
    Seed {
        name: "gmail_450_4_2_1_rate",
        bytes: include_bytes!("../fuzz/seeds/smtp_reply/gmail_450_4_2_1_rate.txt"),
        replies: &[reply(450, Some("4.2.1"), 5)],
    },
    Seed {
        name: "gmail_550_5_1_1",
        bytes: include_bytes!("../fuzz/seeds/smtp_reply/gmail_550_5_1_1.txt"),
        replies: &[reply(550, Some("5.1.1"), 4)],
    },
    Seed {
        name: "gmail_550_5_2_1_disabled",
        bytes: include_bytes!("../fuzz/seeds/smtp_reply/gmail_550_5_2_1_disabled.txt"),
        replies: &[reply(550, Some("5.2.1"), 3)],
    },
    Seed {
        name: "gmail_greeting",
        bytes: include_bytes!("../fuzz/seeds/smtp_reply/gmail_greeting.txt"),
        replies: &[reply(220, None, 1)],
    },
    Seed {
        name: "greylist_451_4_7_1",
        bytes: include_bytes!("../fuzz/seeds/smtp_reply/greylist_451_4_7_1.txt"),
        replies: &[reply(451, Some("4.7.1"), 1)],
    },
    Seed {
        name: "m365_550_5_4_1",
        bytes: include_bytes!("../fuzz/seeds/smtp_reply/m365_550_5_4_1.txt"),
        replies: &[reply(550, Some("5.4.1"), 1)],
    },
    Seed {
        name: "mimecast_451_greylist",
        bytes: include_bytes!("../fuzz/seeds/smtp_reply/mimecast_451_greylist.txt"),
        replies: &[reply(451, None, 1)],
    },
    Seed {
        name: "multiline_220_banner",
        bytes: include_bytes!("../fuzz/seeds/smtp_reply/multiline_220_banner.txt"),
        replies: &[reply(220, None, 3)],
    },
    Seed {
        name: "outlook_550_5_5_0",
        bytes: include_bytes!("../fuzz/seeds/smtp_reply/outlook_550_5_5_0.txt"),
        replies: &[reply(550, Some("5.5.0"), 1)],
    },
    Seed {
        name: "postfix_421_timeout",
        bytes: include_bytes!("../fuzz/seeds/smtp_reply/postfix_421_timeout.txt"),
        replies: &[reply(421, Some("4.4.2"), 1)],
    },
    Seed {
        name: "postfix_421_too_many_connections",
        bytes: include_bytes!("../fuzz/seeds/smtp_reply/postfix_421_too_many_connections.txt"),
        replies: &[reply(421, Some("4.7.0"), 1)],
    },
    Seed {
        name: "postfix_ehlo",
        bytes: include_bytes!("../fuzz/seeds/smtp_reply/postfix_ehlo.txt"),
        replies: &[reply(250, None, 10)],
    },
    Seed {
        name: "postfix_ehlo_not_recognized",
        bytes: include_bytes!("../fuzz/seeds/smtp_reply/postfix_ehlo_not_recognized.txt"),
        replies: &[reply(502, Some("5.5.2"), 1)],
    },
    Seed {
        name: "postfix_ehlo_starttls",
        bytes: include_bytes!("../fuzz/seeds/smtp_reply/postfix_ehlo_starttls.txt"),
        replies: &[reply(250, None, 11)],
    },
    Seed {
        name: "postfix_greeting",
        bytes: include_bytes!("../fuzz/seeds/smtp_reply/postfix_greeting.txt"),
        replies: &[reply(220, None, 1)],
    },
    Seed {
        name: "postfix_mail_from_ok",
        bytes: include_bytes!("../fuzz/seeds/smtp_reply/postfix_mail_from_ok.txt"),
        replies: &[reply(250, Some("2.1.0"), 1)],
    },
    Seed {
        name: "postfix_mailbox_full",
        bytes: include_bytes!("../fuzz/seeds/smtp_reply/postfix_mailbox_full.txt"),
        replies: &[reply(552, Some("5.2.2"), 1)],
    },
    Seed {
        name: "postfix_pipelined_transaction",
        bytes: include_bytes!("../fuzz/seeds/smtp_reply/postfix_pipelined_transaction.txt"),
        replies: &[
            reply(250, Some("2.1.0"), 1),
            reply(250, Some("2.1.5"), 1),
            reply(550, Some("5.1.1"), 1),
            reply(250, Some("2.1.5"), 1),
        ],
    },
    Seed {
        name: "postfix_postscreen_multiline_greeting",
        bytes: include_bytes!("../fuzz/seeds/smtp_reply/postfix_postscreen_multiline_greeting.txt"),
        replies: &[reply(220, None, 2)],
    },
    Seed {
        name: "postfix_quit",
        bytes: include_bytes!("../fuzz/seeds/smtp_reply/postfix_quit.txt"),
        replies: &[reply(221, Some("2.0.0"), 1)],
    },
    Seed {
        name: "postfix_rcpt_ok",
        bytes: include_bytes!("../fuzz/seeds/smtp_reply/postfix_rcpt_ok.txt"),
        replies: &[reply(250, Some("2.1.5"), 1)],
    },
    Seed {
        name: "postfix_rcpt_unknown_local",
        bytes: include_bytes!("../fuzz/seeds/smtp_reply/postfix_rcpt_unknown_local.txt"),
        replies: &[reply(550, Some("5.1.1"), 1)],
    },
    Seed {
        name: "postfix_rcpt_unknown_virtual",
        bytes: include_bytes!("../fuzz/seeds/smtp_reply/postfix_rcpt_unknown_virtual.txt"),
        replies: &[reply(550, Some("5.1.1"), 1)],
    },
    Seed {
        name: "postfix_relay_denied",
        bytes: include_bytes!("../fuzz/seeds/smtp_reply/postfix_relay_denied.txt"),
        replies: &[reply(554, Some("5.7.1"), 1)],
    },
    Seed {
        name: "postfix_too_many_recipients",
        bytes: include_bytes!("../fuzz/seeds/smtp_reply/postfix_too_many_recipients.txt"),
        replies: &[reply(452, Some("4.5.3"), 1)],
    },
    Seed {
        name: "postgrey_450_greylisted",
        bytes: include_bytes!("../fuzz/seeds/smtp_reply/postgrey_450_greylisted.txt"),
        replies: &[reply(450, Some("4.2.0"), 1)],
    },
    Seed {
        name: "sloppy_bare_lf",
        bytes: include_bytes!("../fuzz/seeds/smtp_reply/sloppy_bare_lf.txt"),
        replies: &[
            reply(220, None, 1).with(&[Quirk::BareLf]),
            reply(250, None, 1).with(&[Quirk::BareLf]),
        ],
    },
    Seed {
        name: "sloppy_latin1_text",
        bytes: include_bytes!("../fuzz/seeds/smtp_reply/sloppy_latin1_text.txt"),
        replies: &[reply(550, Some("5.1.1"), 1).with(&[Quirk::EightBitText])],
    },
    Seed {
        name: "sloppy_no_space_last_line",
        bytes: include_bytes!("../fuzz/seeds/smtp_reply/sloppy_no_space_last_line.txt"),
        // `250` CRLF alone is allowed by RFC 5321 §4.2 ("[ SP textstring ]"): no quirk.
        replies: &[reply(250, None, 2)],
    },
    Seed {
        name: "spamhaus_554_blocked",
        bytes: include_bytes!("../fuzz/seeds/smtp_reply/spamhaus_554_blocked.txt"),
        replies: &[reply(554, Some("5.7.1"), 1)],
    },
    Seed {
        name: "yahoo_rcpt_ok",
        bytes: include_bytes!("../fuzz/seeds/smtp_reply/yahoo_rcpt_ok.txt"),
        replies: &[reply(250, None, 1)],
    },
];

/// Bytes as readable text for failure messages: `\r\n`, `\xe0` and so on spelled out.
fn show(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}

/// A parsed reply reduced to what the table and the reader comparison look at.
#[derive(Clone, PartialEq, Eq)]
struct Seen {
    code: u16,
    enhanced: Option<String>,
    lines: Vec<Vec<u8>>,
    quirks: Vec<Quirk>,
}

impl Seen {
    fn of(reply: &Reply<'_>) -> Self {
        Self {
            code: reply.code().get(),
            enhanced: reply.enhanced().map(|e| e.to_string()),
            lines: reply.lines().map(<[u8]>::to_vec).collect(),
            quirks: reply.quirks().iter().collect(),
        }
    }
}

impl fmt::Debug for Seen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.lines.iter().map(|line| show(line)).collect();
        f.debug_struct("Seen")
            .field("code", &self.code)
            .field("enhanced", &self.enhanced)
            .field("lines", &lines)
            .field("quirks", &self.quirks)
            .finish()
    }
}

fn seed(name: &str) -> &'static Seed {
    SEEDS
        .iter()
        .find(|seed| seed.name == name)
        .unwrap_or_else(|| panic!("no seed named {name} in SEEDS"))
}

/// Every reply of `bytes`, parsed with `parse_reply` one after the other. Panics on a parse
/// error or on bytes left over that do not complete a reply.
fn parse_all(bytes: &'static [u8]) -> Vec<Reply<'static>> {
    let mut replies = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        match parse_reply(rest, &Limits::DEFAULT) {
            Ok(Status::Complete(reply)) => {
                assert!(reply.consumed() > 0, "a reply consumed no bytes");
                replies.push(reply);
                rest = &rest[reply.consumed()..];
            }
            Ok(Status::Partial) => panic!(
                "{} bytes left that complete no reply: \"{}\" (whole input \"{}\")",
                rest.len(),
                show(rest),
                show(bytes)
            ),
            Err(error) => panic!(
                "{error} at \"{}\" (whole input \"{}\")",
                show(rest),
                show(bytes)
            ),
        }
    }
    replies
}

/// The replies `ReplyReader` gives when `chunks` arrive one read at a time, drained after each.
fn read_chunks<'c>(chunks: impl IntoIterator<Item = &'c [u8]>) -> Vec<Seen> {
    let mut reader = ReplyReader::new(Limits::DEFAULT);
    let mut seen = Vec::new();
    for chunk in chunks {
        reader.push(chunk);
        loop {
            match reader.next_reply() {
                Ok(Some(reply)) => seen.push(Seen::of(&reply)),
                Ok(None) => break,
                Err(error) => panic!("ReplyReader: {error} after chunk \"{}\"", show(chunk)),
            }
        }
    }
    assert_eq!(reader.buffered(), 0, "bytes left in the reader");
    seen
}

/// The only reply of a seed that holds exactly one.
fn only_reply(name: &str) -> Reply<'static> {
    let seed = seed(name);
    match parse_all(seed.bytes)[..] {
        [reply] => reply,
        ref replies => panic!(
            "{name}: expected one reply, got {}: \"{}\"",
            replies.len(),
            show(seed.bytes)
        ),
    }
}

fn texts(reply: &Reply<'_>) -> Vec<String> {
    reply.lines().map(show).collect()
}

#[test]
fn every_seed_file_has_expectations() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/smtp_reply");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("readable directory entry").path();
            let name = path.file_name().expect("a file name").to_string_lossy();
            name.strip_suffix(".txt")
                .unwrap_or_else(|| panic!("seed {name} is not a .txt file"))
                .to_owned()
        })
        .collect();
    on_disk.sort();
    let mut in_table: Vec<String> = SEEDS.iter().map(|seed| seed.name.to_owned()).collect();
    in_table.sort();
    assert_eq!(
        on_disk, in_table,
        "fuzz/seeds/smtp_reply and SEEDS must list the same files, each once"
    );
    for seed in SEEDS {
        let path = dir.join(format!("{}.txt", seed.name));
        let bytes =
            std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        assert!(
            bytes == seed.bytes,
            "{}: include_bytes! names another file than the entry's name",
            seed.name
        );
        assert!(
            !seed.replies.is_empty(),
            "{}: no replies expected",
            seed.name
        );
    }
}

#[test]
fn every_seed_parses_to_its_expected_replies() {
    let mut wrong = Vec::new();
    for seed in SEEDS {
        let got: Vec<Seen> = parse_all(seed.bytes).iter().map(Seen::of).collect();
        let got_summary: Vec<_> = got
            .iter()
            .map(|s| (s.code, s.enhanced.clone(), s.lines.len(), s.quirks.clone()))
            .collect();
        let want_summary: Vec<_> = seed
            .replies
            .iter()
            .map(|e| {
                let quirks: Vec<Quirk> = Quirk::ALL
                    .into_iter()
                    .filter(|q| e.quirks.contains(q))
                    .collect();
                (e.code, e.enhanced.map(str::to_owned), e.lines, quirks)
            })
            .collect();
        if got_summary != want_summary {
            wrong.push(format!(
                "{}: (code, enhanced, lines, quirks)\n    expected {want_summary:?}\n    \
                 parser gave {got_summary:?}\n    input \"{}\"",
                seed.name,
                show(seed.bytes)
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// An independent look at the line texts: split the file at LF, drop the line ending, the code
/// and the `-` or SP after it. The replies must also cover the file exactly, in order.
#[test]
fn every_seed_line_text_is_the_file_line_after_code_and_separator() {
    for seed in SEEDS {
        let from_file: Vec<String> = seed
            .bytes
            .split_inclusive(|&b| b == b'\n')
            .map(|line| {
                let line = line.strip_suffix(b"\n").unwrap_or(line);
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                let after_code = line.get(3..).unwrap_or_default();
                let text = after_code
                    .strip_prefix(b"-")
                    .or_else(|| after_code.strip_prefix(b" "))
                    .unwrap_or(after_code);
                show(text)
            })
            .collect();
        let replies = parse_all(seed.bytes);
        let parsed: Vec<String> = replies.iter().flat_map(texts).collect();
        assert_eq!(parsed, from_file, "{}: line texts", seed.name);
        let rejoined: Vec<u8> = replies.iter().flat_map(|r| r.wire().to_vec()).collect();
        assert!(
            rejoined == seed.bytes,
            "{}: the replies' wire bytes \"{}\" are not the file \"{}\"",
            seed.name,
            show(&rejoined),
            show(seed.bytes)
        );
    }
}

#[test]
fn every_seed_reads_the_same_split_at_any_byte() {
    for seed in SEEDS {
        let whole: Vec<Seen> = parse_all(seed.bytes).iter().map(Seen::of).collect();
        for at in 0..=seed.bytes.len() {
            let (head, tail) = seed.bytes.split_at(at);
            assert_eq!(
                read_chunks([head, tail]),
                whole,
                "{} split after byte {at}: \"{}\" | \"{}\"",
                seed.name,
                show(head),
                show(tail)
            );
        }
    }
}

#[test]
fn every_seed_reads_the_same_one_byte_at_a_time() {
    for seed in SEEDS {
        let whole: Vec<Seen> = parse_all(seed.bytes).iter().map(Seen::of).collect();
        assert_eq!(
            read_chunks(seed.bytes.chunks(1)),
            whole,
            "{} one byte at a time: \"{}\"",
            seed.name,
            show(seed.bytes)
        );
    }
}

#[test]
fn gmail_multiline_550_is_mailbox_unknown_5_1_1() {
    let reply = only_reply("gmail_550_5_1_1");
    assert_eq!(reply.code(), ReplyCode::MAILBOX_UNAVAILABLE);
    assert_eq!(reply.class(), ReplyClass::PermanentNegative);
    assert_eq!(reply.line_count(), 4);
    let enhanced = reply.enhanced().expect("Gmail sends an enhanced code");
    assert_eq!(enhanced.to_string(), "5.1.1");
    assert_eq!(enhanced.class(), EnhancedClass::PermanentFailure);
    let first = reply.lines().next().expect("a first line");
    assert!(
        first.starts_with(b"5.1.1 The email account"),
        "first line: \"{}\"",
        show(first)
    );
    for line in reply.lines() {
        assert!(line.starts_with(b"5.1.1 "), "line \"{}\"", show(line));
    }
    assert!(reply.quirks().is_empty());
}

#[test]
fn gmail_multiline_550_5_2_1_is_disabled_account() {
    let reply = only_reply("gmail_550_5_2_1_disabled");
    assert_eq!(reply.code().get(), 550);
    assert_eq!(reply.line_count(), 3);
    assert_eq!(
        reply.enhanced().map(|e| e.to_string()).as_deref(),
        Some("5.2.1")
    );
}

#[test]
fn outlook_550_is_5_5_0_mailbox_unavailable() {
    let reply = only_reply("outlook_550_5_5_0");
    assert_eq!(reply.code(), ReplyCode::MAILBOX_UNAVAILABLE);
    assert_eq!(reply.line_count(), 1);
    assert_eq!(
        reply.enhanced().map(|e| e.to_string()).as_deref(),
        Some("5.5.0")
    );
    let text = reply.lines().next().expect("one line");
    assert!(
        text.starts_with(b"5.5.0 Requested action not taken: mailbox unavailable"),
        "text: \"{}\"",
        show(text)
    );
}

#[test]
fn microsoft_365_550_is_5_4_1_access_denied() {
    let reply = only_reply("m365_550_5_4_1");
    assert_eq!(reply.code(), ReplyCode::MAILBOX_UNAVAILABLE);
    assert_eq!(reply.line_count(), 1);
    let enhanced = reply
        .enhanced()
        .expect("Microsoft 365 sends an enhanced code");
    assert_eq!(
        (enhanced.class(), enhanced.subject(), enhanced.detail()),
        (EnhancedClass::PermanentFailure, 4, 1)
    );
    let text = reply.lines().next().expect("one line");
    assert!(
        text.starts_with(b"5.4.1 Recipient address rejected: Access denied."),
        "text: \"{}\"",
        show(text)
    );
}

#[test]
fn greylisting_451_is_transient_4_7_1() {
    let reply = only_reply("greylist_451_4_7_1");
    assert_eq!(reply.code().get(), 451);
    assert_eq!(reply.class(), ReplyClass::TransientNegative);
    let enhanced = reply.enhanced().expect("an enhanced code");
    assert_eq!(enhanced.to_string(), "4.7.1");
    assert_eq!(enhanced.class(), EnhancedClass::PersistentTransientFailure);
}

#[test]
fn every_greylisting_reply_is_transient() {
    for (name, code, enhanced) in [
        ("greylist_451_4_7_1", 451, Some("4.7.1")),
        ("postgrey_450_greylisted", 450, Some("4.2.0")),
        ("mimecast_451_greylist", 451, None),
    ] {
        let reply = only_reply(name);
        assert_eq!(reply.code().get(), code, "{name}");
        assert_eq!(reply.class(), ReplyClass::TransientNegative, "{name}");
        assert_eq!(
            reply.enhanced().map(|e| e.to_string()).as_deref(),
            enhanced,
            "{name}"
        );
    }
}

#[test]
fn multiline_220_greeting_has_three_lines() {
    let reply = only_reply("multiline_220_banner");
    assert_eq!(reply.code(), ReplyCode::SERVICE_READY);
    assert_eq!(reply.line_count(), 3);
    assert_eq!(
        texts(&reply),
        [
            "mail.example.com ESMTP",
            "Unauthorised access is prohibited.",
            "Talk to postmaster@example.com for help.",
        ]
    );
    assert_eq!(reply.enhanced(), None);
}

#[test]
fn postscreen_multiline_220_greeting_has_two_lines() {
    let reply = only_reply("postfix_postscreen_multiline_greeting");
    assert_eq!(reply.code(), ReplyCode::SERVICE_READY);
    assert_eq!(
        texts(&reply),
        [
            "mx.example.com ESMTP Postfix",
            "mx.example.com ESMTP Postfix"
        ]
    );
}

#[test]
fn postfix_421_shutdowns_carry_4_4_2_and_4_7_0() {
    for (name, enhanced) in [
        ("postfix_421_timeout", "4.4.2"),
        ("postfix_421_too_many_connections", "4.7.0"),
    ] {
        let reply = only_reply(name);
        assert_eq!(reply.code(), ReplyCode::SERVICE_NOT_AVAILABLE, "{name}");
        assert_eq!(reply.class(), ReplyClass::TransientNegative, "{name}");
        assert_eq!(reply.line_count(), 1, "{name}");
        assert_eq!(
            reply.enhanced().map(|e| e.to_string()).as_deref(),
            Some(enhanced),
            "{name}"
        );
    }
}

#[test]
fn exim_421_shutdown_has_no_enhanced_code() {
    let reply = only_reply("exim_421_lost_input");
    assert_eq!(reply.code(), ReplyCode::SERVICE_NOT_AVAILABLE);
    assert_eq!(reply.enhanced(), None);
    assert_eq!(texts(&reply), ["mail.example.org lost input connection"]);
}

#[test]
fn gmail_421_rate_limit_is_4_7_28_over_four_lines() {
    let reply = only_reply("gmail_421_rate_limited");
    assert_eq!(reply.code(), ReplyCode::SERVICE_NOT_AVAILABLE);
    assert_eq!(reply.line_count(), 4);
    let enhanced = reply.enhanced().expect("Gmail sends an enhanced code");
    assert_eq!(
        (enhanced.class(), enhanced.subject(), enhanced.detail()),
        (EnhancedClass::PersistentTransientFailure, 7, 28)
    );
}

fn keywords(others: &[OtherExtension]) -> Vec<(&str, &str)> {
    others
        .iter()
        .map(|o| (o.keyword.as_str(), o.params.as_str()))
        .collect()
}

#[test]
fn postfix_ehlo_offers_pipelining_size_smtputf8_but_no_starttls() {
    let ehlo = parse_ehlo(&only_reply("postfix_ehlo")).expect("a 250 EHLO reply");
    let x = &ehlo.extensions;
    assert_eq!(ehlo.greeting, "mx.example.com");
    assert!(x.pipelining(), "PIPELINING");
    assert_eq!(x.size(), Some(SizeLimit::Max(10_240_000)));
    assert!(x.smtputf8(), "SMTPUTF8");
    assert!(!x.starttls(), "no STARTTLS line in this reply");
    assert!(x.enhanced_status_codes() && x.eight_bit_mime() && x.chunking());
    assert_eq!(
        keywords(x.others()),
        [("VRFY", ""), ("ETRN", ""), ("DSN", "")]
    );
}

#[test]
fn postfix_ehlo_with_starttls_offers_starttls() {
    let ehlo = parse_ehlo(&only_reply("postfix_ehlo_starttls")).expect("a 250 EHLO reply");
    let x = &ehlo.extensions;
    assert!(x.starttls(), "STARTTLS");
    assert!(x.pipelining() && x.smtputf8());
    assert_eq!(x.size(), Some(SizeLimit::Max(10_240_000)));
    assert_eq!(
        keywords(x.others()),
        [("VRFY", ""), ("ETRN", ""), ("DSN", "")]
    );
}

#[test]
fn exim_ehlo_keeps_pipeconnect_prdr_and_help() {
    let ehlo = parse_ehlo(&only_reply("exim_ehlo")).expect("a 250 EHLO reply");
    let x = &ehlo.extensions;
    assert_eq!(
        ehlo.greeting,
        "mail.example.org Hello probe.example.net [192.0.2.7]"
    );
    assert!(x.pipelining(), "PIPELINING");
    assert_eq!(x.size(), Some(SizeLimit::Max(52_428_800)));
    assert!(!x.smtputf8(), "Exim here does not offer SMTPUTF8");
    assert!(!x.starttls(), "Exim here does not offer STARTTLS");
    assert!(x.eight_bit_mime() && x.chunking());
    assert!(!x.enhanced_status_codes());
    assert_eq!(
        keywords(x.others()),
        [("PIPECONNECT", ""), ("PRDR", ""), ("HELP", "")]
    );
}

#[test]
fn postfix_502_to_ehlo_is_ehlo_refused() {
    let reply = only_reply("postfix_ehlo_not_recognized");
    assert_eq!(
        parse_ehlo(&reply),
        Err(EhloRefused(
            ReplyCode::new(502).expect("502 is a valid code")
        ))
    );
    assert_eq!(
        reply.enhanced().map(|e| e.to_string()).as_deref(),
        Some("5.5.2")
    );
}

#[test]
fn postfix_pipelined_transaction_gives_four_replies_in_order() {
    let replies = parse_all(seed("postfix_pipelined_transaction").bytes);
    let summary: Vec<(u16, String)> = replies
        .iter()
        .map(|r| {
            let enhanced = r.enhanced().map(|e| e.to_string()).unwrap_or_default();
            (r.code().get(), enhanced)
        })
        .collect();
    assert_eq!(
        summary,
        [
            (250, "2.1.0".to_owned()),
            (250, "2.1.5".to_owned()),
            (550, "5.1.1".to_owned()),
            (250, "2.1.5".to_owned()),
        ]
    );
}

#[test]
fn sloppy_bare_lf_gives_two_replies_with_the_bare_lf_quirk() {
    let replies = parse_all(seed("sloppy_bare_lf").bytes);
    let summary: Vec<(u16, Vec<String>, Vec<Quirk>)> = replies
        .iter()
        .map(|r| (r.code().get(), texts(r), r.quirks().iter().collect()))
        .collect();
    assert_eq!(
        summary,
        [
            (
                220,
                vec!["old.example.net SMTP ready".to_owned()],
                vec![Quirk::BareLf]
            ),
            (250, vec!["ok".to_owned()], vec![Quirk::BareLf]),
        ]
    );
}

#[test]
fn sloppy_latin1_text_is_eight_bit_text_and_keeps_5_1_1() {
    let reply = only_reply("sloppy_latin1_text");
    assert_eq!(
        reply.quirks().iter().collect::<Vec<_>>(),
        [Quirk::EightBitText]
    );
    assert_eq!(
        reply.enhanced().map(|e| e.to_string()).as_deref(),
        Some("5.1.1")
    );
    assert_eq!(
        texts(&reply),
        ["5.1.1 Destinataire inconnu \\xe0 cette adresse"]
    );
}

#[test]
fn sloppy_last_line_without_space_is_no_quirk() {
    let reply = only_reply("sloppy_no_space_last_line");
    assert_eq!(reply.code(), ReplyCode::OK);
    assert!(reply.quirks().is_empty(), "quirks: {:?}", reply.quirks());
    assert_eq!(texts(&reply), ["mx.example.com", ""]);
}
