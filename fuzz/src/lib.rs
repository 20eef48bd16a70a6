//! The properties the fuzz targets check, one function per target.
//!
//! Each function takes arbitrary bytes and panics if a guarantee of `mxprobe` is broken.
//! The fuzz targets in `fuzz_targets/` call them under libFuzzer (nightly); the regression test
//! `tests/fuzz_corpus.rs` of the main crate includes this file and replays every seed, corpus
//! and artifact file through them on stable Rust, so CI catches regressions without nightly.
//!
//! Only `std` and `mxprobe` are used here, so the file compiles in both places.

use mxprobe::smtp::path::check_mailbox;
use mxprobe::smtp::reply::{Limits, ReplyReader, Status, encode_reply, parse_reply};
use mxprobe::smtp::{Command, ReplyCode, ReversePath, parse_ehlo};

/// What a parsed reply is made of, owned, for comparing runs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Parsed {
    code: u16,
    enhanced: Option<String>,
    lines: Vec<Vec<u8>>,
    quirks: Vec<&'static str>,
    consumed: usize,
}

/// The whole outcome of parsing a stream: its replies, then either the error that ended it or
/// the number of bytes left over as an incomplete reply.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    replies: Vec<Parsed>,
    end: Result<usize, String>,
}

fn parsed(reply: &mxprobe::smtp::Reply<'_>, limits: &Limits) -> Parsed {
    // Guarantees of every reply, checked on each one.
    assert!(reply.consumed() > 0, "a reply consumes bytes");
    assert!(
        reply.consumed() <= limits.max_reply_len,
        "reply over its cap"
    );
    assert_eq!(
        reply.wire()[..3],
        reply.code().digits(),
        "wire starts with the code"
    );
    assert_eq!(
        reply.wire().last(),
        Some(&b'\n'),
        "a reply ends with its line ending"
    );
    assert!(reply.line_count() >= 1 && reply.line_count() <= limits.max_lines);
    let lines: Vec<Vec<u8>> = reply.lines().map(<[u8]>::to_vec).collect();
    assert_eq!(
        lines.len(),
        reply.line_count(),
        "lines() yields line_count lines"
    );
    for raw in reply.wire().split_inclusive(|&b| b == b'\n') {
        assert!(raw.len() <= limits.max_line_len, "line over its cap");
    }
    if let Some(enhanced) = reply.enhanced() {
        assert!(
            enhanced.agrees_with(reply.code()),
            "enhanced class disagrees"
        );
    }
    Parsed {
        code: reply.code().get(),
        enhanced: reply.enhanced().map(|e| e.to_string()),
        lines,
        quirks: reply.quirks().iter().map(|q| q.name()).collect(),
        consumed: reply.consumed(),
    }
}

/// Parses the stream whole, one `parse_reply` call per reply.
fn parse_whole(data: &[u8], limits: &Limits) -> Outcome {
    let mut replies = Vec::new();
    let mut rest = data;
    loop {
        match parse_reply(rest, limits) {
            Ok(Status::Complete(reply)) => {
                replies.push(parsed(&reply, limits));
                rest = &rest[reply.consumed()..];
            }
            Ok(Status::Partial) => {
                // Partial means a valid prefix within the caps: never more than a reply's worth,
                // and the shortest completion of it parses as a whole reply.
                assert!(
                    rest.len() < limits.max_reply_len.max(1),
                    "partial over the cap"
                );
                let completed = [rest, &shortest_completion(rest)].concat();
                assert!(
                    matches!(parse_reply(&completed, limits), Ok(Status::Complete(_))),
                    "partial \"{}\" cannot be completed within {limits:?}",
                    show(rest)
                );
                return Outcome {
                    replies,
                    end: Ok(rest.len()),
                };
            }
            Err(error) => {
                return Outcome {
                    replies,
                    end: Err(error.to_string()),
                };
            }
        }
    }
}

/// The fewest bytes that turn `partial`, the valid beginning of a reply, into a whole one: the
/// rest of the code, then LF, and after a `-` one more line, `code` LF.
fn shortest_completion(partial: &[u8]) -> Vec<u8> {
    let line_start = partial
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |lf| lf + 1);
    let line = &partial[line_start..];
    // Later lines repeat the first line's code; a first line may take any code.
    let code: &[u8] = if line_start > 0 {
        &partial[..3]
    } else {
        b"250"
    };
    let mut completion = Vec::new();
    if line.len() < 3 {
        if line_start == 0 && !line.is_empty() {
            // Any digits already there were valid; '0' is valid in the second and third place.
            completion.resize(3 - line.len(), b'0');
        } else {
            completion.extend_from_slice(&code[line.len()..]);
        }
    }
    completion.push(b'\n');
    if line.get(3) == Some(&b'-') {
        completion.extend_from_slice(&partial[line_start..line_start + 3]);
        completion.push(b'\n');
    }
    completion
}

/// Feeds the stream to a [`ReplyReader`] in the given pieces, draining after each.
fn parse_chunked<'a>(chunks: impl IntoIterator<Item = &'a [u8]>, limits: &Limits) -> Outcome {
    let mut reader = ReplyReader::new(*limits);
    let mut replies = Vec::new();
    for chunk in chunks {
        reader.push(chunk);
        loop {
            match reader.next_reply() {
                Ok(Some(reply)) => replies.push(parsed(&reply, limits)),
                Ok(None) => break,
                Err(error) => {
                    return Outcome {
                        replies,
                        end: Err(error.to_string()),
                    };
                }
            }
        }
        // Drained after every push, the reader holds less than one reply's worth.
        assert!(
            reader.buffered() < limits.max_reply_len,
            "reader over the cap"
        );
    }
    Outcome {
        replies,
        end: Ok(reader.buffered()),
    }
}

/// A small deterministic generator (xorshift64*) seeded from the input, for chunk sizes.
struct SplitRng(u64);

impl SplitRng {
    fn new(data: &[u8]) -> Self {
        // FNV-1a of the input: the same bytes always split the same way.
        let seed = data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        Self(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Cuts `data` into pieces of 1 to `max` bytes.
    fn chunks<'a>(&mut self, data: &'a [u8], max: u64) -> Vec<&'a [u8]> {
        let mut pieces = Vec::new();
        let mut rest = data;
        while !rest.is_empty() {
            let len = usize::try_from(self.next() % max + 1)
                .unwrap_or(1)
                .min(rest.len());
            let (piece, tail) = rest.split_at(len);
            pieces.push(piece);
            rest = tail;
        }
        pieces
    }
}

fn show(data: &[u8]) -> String {
    let shown: Vec<u8> = data.iter().copied().take(200).collect();
    shown.escape_ascii().to_string()
}

/// Target `smtp_reply`: arbitrary server bytes.
///
/// - `parse_reply` never panics, and every reply and leftover respects the caps;
/// - the outcome does not depend on how the bytes were split: whole, one byte at a time, at
///   a few split points, and in random pieces all give the same replies and the same error;
/// - both under the default caps and under tiny ones that make every cap reachable;
/// - every reply whose text can be re-encoded round-trips through `encode_reply`.
pub fn smtp_reply(data: &[u8]) {
    let tiny = Limits {
        max_line_len: 24,
        max_lines: 4,
        max_reply_len: 64,
    };
    for limits in [Limits::DEFAULT, tiny] {
        let whole = parse_whole(data, &limits);
        let mut rng = SplitRng::new(data);
        let mut splits: Vec<Vec<&[u8]>> = vec![
            vec![data],
            data.chunks(1).collect(),
            rng.chunks(data, 7),
            rng.chunks(data, 300),
        ];
        for _ in 0..4 {
            let at = usize::try_from(rng.next() % (data.len() as u64 + 1)).unwrap_or(0);
            let (a, b) = data.split_at(at.min(data.len()));
            splits.push(vec![a, b]);
        }
        for chunks in splits {
            let sizes: Vec<usize> = chunks.iter().map(|c| c.len()).collect();
            let chunked = parse_chunked(chunks, &limits);
            assert_eq!(
                chunked,
                whole,
                "splitting into {sizes:?} changed the outcome of \"{}\"",
                show(data)
            );
        }
        for reply in &whole.replies {
            round_trip(reply);
        }
    }
}

/// Re-encodes a parsed reply and parses it again: same code, lines and enhanced code.
fn round_trip(reply: &Parsed) {
    let Some(code) = ReplyCode::new(reply.code) else {
        panic!("parsed code {} is not a valid code", reply.code);
    };
    let lines: Vec<&[u8]> = reply.lines.iter().map(Vec::as_slice).collect();
    let mut wire = Vec::new();
    if encode_reply(code, &lines, &mut wire).is_err() {
        // Text with a stray CR (a tolerated quirk) cannot be written back; nothing to check.
        return;
    }
    match parse_reply(&wire, &Limits::DEFAULT) {
        Ok(Status::Complete(again)) => {
            assert_eq!(again.code().get(), reply.code);
            assert_eq!(again.enhanced().map(|e| e.to_string()), reply.enhanced);
            let again_lines: Vec<&[u8]> = again.lines().collect();
            assert_eq!(again_lines, lines, "re-encoded \"{}\"", show(&wire));
            assert_eq!(again.consumed(), wire.len());
        }
        other => panic!("re-encoded \"{}\" parsed as {other:?}", show(&wire)),
    }
}

/// Target `ehlo`: arbitrary bytes as an EHLO reply.
///
/// The bytes are read two ways: as a stream of replies, each given to `parse_ehlo`; and as the
/// lines of a 250 reply (split at LF), which reaches the keyword parser even when the framing
/// would be invalid. `parse_ehlo` must not panic, must refuse every code but 250, and each
/// flag it reports must come from a line that names it.
pub fn ehlo(data: &[u8]) {
    let mut rest = data;
    while let Ok(Status::Complete(reply)) = parse_reply(rest, &Limits::DEFAULT) {
        check_ehlo(&reply);
        rest = &rest[reply.consumed()..];
    }
    let lines: Vec<&[u8]> = std::iter::once(&b"mx.example"[..])
        .chain(
            data.split(|&b| b == b'\n')
                .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
                .filter(|line| !line.contains(&b'\r')),
        )
        .collect();
    let mut wire = Vec::new();
    if encode_reply(ReplyCode::OK, &lines, &mut wire).is_ok() {
        match parse_reply(&wire, &Limits::DEFAULT) {
            Ok(Status::Complete(reply)) => check_ehlo(&reply),
            // Too many or too long lines for the default caps: a protocol error, not an EHLO.
            Err(error) => assert!(error.is_limit_exceeded(), "{error}"),
            Ok(Status::Partial) => panic!("a whole encoded reply parsed as partial"),
        }
    }
}

fn check_ehlo(reply: &mxprobe::smtp::Reply<'_>) {
    let Ok(ehlo) = parse_ehlo(reply) else {
        assert_ne!(reply.code(), ReplyCode::OK, "a 250 EHLO reply was refused");
        return;
    };
    assert_eq!(reply.code(), ReplyCode::OK, "only 250 is a successful EHLO");
    let keywords: Vec<String> = reply
        .lines()
        .skip(1)
        .filter_map(|line| {
            line.trim_ascii()
                .split(|&b| b == b' ' || b == b'\t')
                .next()
                .filter(|k| !k.is_empty())
                .map(|k| String::from_utf8_lossy(k).to_ascii_uppercase())
        })
        .collect();
    let named = |name: &str| keywords.iter().any(|k| k == name);
    let x = &ehlo.extensions;
    assert_eq!(x.pipelining(), named("PIPELINING"));
    assert_eq!(x.smtputf8(), named("SMTPUTF8"));
    assert_eq!(x.eight_bit_mime(), named("8BITMIME"));
    assert_eq!(x.size().is_some(), named("SIZE"));
    assert_eq!(x.starttls(), named("STARTTLS"));
    assert_eq!(x.enhanced_status_codes(), named("ENHANCEDSTATUSCODES"));
    assert_eq!(x.chunking(), named("CHUNKING"));
    assert!(x.others().len() <= keywords.len());
    for other in x.others() {
        assert_eq!(other.keyword, other.keyword.to_ascii_uppercase());
        assert!(keywords.contains(&other.keyword), "kept keyword was listed");
    }
}

/// Target `command`: arbitrary bytes as the argument of a command.
///
/// The first byte picks the command and the SMTPUTF8 flag; the rest is the argument. Whatever
/// `Command::encode` accepts must be exactly one line: the verb, the argument, CRLF at the end
/// and nowhere else, no NUL or other control byte, no SP, `<` or `>` outside a quoted local
/// part, never a DATA or BDAT verb, within RFC 5321's 512-octet command line. Whatever it
/// refuses must leave the buffer untouched.
pub fn command(data: &[u8]) {
    let Some((&selector, argument)) = data.split_first() else {
        return;
    };
    let argument = String::from_utf8_lossy(argument);
    let argument = argument.as_ref();
    let smtputf8 = selector & 0x10 != 0;
    let command = match selector % 8 {
        0 => Command::Ehlo(argument),
        1 => Command::Helo(argument),
        2 => Command::MailFrom {
            reverse_path: ReversePath::Mailbox(argument),
            smtputf8,
        },
        3 => Command::RcptTo {
            forward_path: argument,
            smtputf8,
        },
        4 => Command::MailFrom {
            reverse_path: ReversePath::Null,
            smtputf8,
        },
        5 => Command::Rset,
        6 => Command::Noop,
        _ => Command::Quit,
    };
    let mut out = b"prefix".to_vec();
    if command.encode(&mut out).is_err() {
        assert_eq!(out, b"prefix", "a refused command wrote bytes");
        return;
    }
    let line = &out[b"prefix".len()..];
    assert!(line.len() <= 512, "command line over 512 octets");
    assert!(line.ends_with(b"\r\n"));
    let body = &line[..line.len() - 2];
    assert!(
        !body.iter().any(|&b| b < 0x20 || b == 0x7f),
        "control byte in \"{}\"",
        show(line)
    );
    assert!(!body.starts_with(b"DATA") && !body.starts_with(b"BDAT"));
    if let Command::Ehlo(_) | Command::Helo(_) = command {
        assert_eq!(
            body.split(|&b| b == b' ').count(),
            2,
            "one SP, after the verb"
        );
    }
    if let Command::MailFrom { .. } | Command::RcptTo { .. } = command {
        let open = body
            .iter()
            .position(|&b| b == b'<')
            .expect("a path opens with <");
        let close = body
            .iter()
            .rposition(|&b| b == b'>')
            .expect("a path closes with >");
        let path = &body[open + 1..close];
        if !path.is_empty() {
            assert_eq!(check_mailbox(path, smtputf8), Ok(()));
        }
        // Quotes mean something in the local part only; an address literal may hold `"`.
        let mut quoted = false;
        let mut escaped = false;
        let mut in_domain = false;
        for &b in path {
            match (in_domain, quoted, escaped, b) {
                (false, true, true, _) => escaped = false,
                (false, true, false, b'\\') => escaped = true,
                (false, _, false, b'"') => quoted = !quoted,
                (false, false, _, b'@') => in_domain = true,
                (_, false, _, b' ' | b'<' | b'>') => {
                    panic!("unquoted {} in path \"{}\"", b as char, show(path))
                }
                _ => {}
            }
        }
        assert!(!quoted, "path ends inside quotes");
    }
}

/// Target `address`: arbitrary text as an address a user typed.
///
/// `Address::parse` must not panic. An input with a control character anywhere is refused,
/// naming the first one. What it accepts must encode into exactly one `RCPT TO`
/// line with no control byte before the CRLF, with SMTPUTF8 exactly when the mailbox is not
/// ASCII; its normal form must be a fixed point (parsing the mailbox again gives the same
/// address); and its parts, flags and suggestion must be consistent.
pub fn address(data: &[u8]) {
    use mxprobe::address::InvalidAddress;

    let text = String::from_utf8_lossy(data);
    let parsed = mxprobe::address::Address::parse(&text);
    if let Some((at, ch)) = text.char_indices().find(|&(_, ch)| ch.is_control()) {
        assert_eq!(
            parsed,
            Err(InvalidAddress::ControlCharacter { ch, at }),
            "{text:?} holds a control character"
        );
        return;
    }
    let Ok(address) = parsed else {
        return;
    };
    assert!(
        !address.original().chars().any(char::is_control),
        "accepted {text:?} with a control character"
    );
    let mailbox = address.mailbox();
    assert_eq!(address.needs_smtputf8(), !mailbox.is_ascii());
    assert!(
        address.domain().is_ascii(),
        "domain {:?} not in A-label form",
        address.domain()
    );
    assert_eq!(
        mailbox,
        format!("{}@{}", address.local_part(), address.domain())
    );
    assert!(mailbox.len() <= 254 && address.local_part().len() <= 64);
    let mut line = Vec::new();
    let rcpt = Command::RcptTo {
        forward_path: mailbox,
        smtputf8: address.needs_smtputf8(),
    };
    if let Err(error) = rcpt.encode(&mut line) {
        panic!("accepted {mailbox:?} does not encode: {error}");
    }
    let body = line
        .strip_suffix(b"\r\n")
        .expect("a command ends with CRLF");
    assert!(
        !body.iter().any(|&b| b < 0x20 || b == 0x7f),
        "control byte in \"{}\"",
        show(&line)
    );
    match mxprobe::address::Address::parse(mailbox) {
        Ok(again) => {
            assert_eq!(again.mailbox(), mailbox, "normal form is not a fixed point");
            assert_eq!(again.address_literal(), address.address_literal());
        }
        Err(error) => panic!("normal form {mailbox:?} of {text:?} is refused: {error}"),
    }
    let _ = (address.flags(), address.domain_suggestion());
}

/// Target `dns_response`: arbitrary bytes as the answers to the resolver's queries.
///
/// The resolver routes `example.com`. Every query it sends over UDP is answered with the input,
/// its first two bytes replaced by the query's ID (otherwise nearly every input would stop at
/// the ID check and the decoder would go untested); a second copy arrives unpatched. Then a
/// truncated answer moves one question to TCP, where the input arrives framed, in pieces.
/// Finally the clock runs to the end.
///
/// - nothing panics;
/// - a route, when there is one, has hosts in preference order, each with an address;
/// - every route ends by its deadline: nothing waits forever.
pub fn dns_response(data: &[u8]) {
    use mxprobe::dns::{
        LookupConfig, NameserverConfig, Resolver, ResolverConfig, SocketId, Transmit,
    };
    use std::time::{Duration, Instant};

    let server: std::net::SocketAddr = "192.0.2.1:53".parse().expect("literal address");
    let mut config = ResolverConfig::new(LookupConfig::new(NameserverConfig::with_servers(vec![
        server,
    ])));
    config.route_timeout = Duration::from_secs(60);
    let mut resolver = Resolver::new(config, [42; 32]);
    // A fixed origin: the fuzz check must not depend on the wall clock.
    #[allow(
        clippy::disallowed_methods,
        reason = "an origin for a hand-moved clock"
    )]
    let start = Instant::now();
    let mut now = start;
    resolver.resolve("example.com", now);

    let mut tcp_tried = false;
    for _round in 0..8 {
        let transmits: Vec<Transmit> = std::iter::from_fn(|| resolver.poll_transmit()).collect();
        if transmits.is_empty() {
            break;
        }
        for transmit in transmits {
            match transmit {
                Transmit::Udp {
                    socket, payload, ..
                } => {
                    let mut patched = data.to_vec();
                    if patched.len() >= 2 {
                        patched[..2].copy_from_slice(&payload[..2]);
                    }
                    resolver.handle_udp(socket, server, &patched, now);
                    resolver.handle_udp(socket, server, data, now);
                    if !tcp_tried {
                        tcp_tried = true;
                        resolver.handle_udp(socket, server, &truncated_answer(&payload), now);
                    }
                }
                Transmit::Tcp {
                    socket, payload, ..
                } => {
                    let mut patched = data.to_vec();
                    if patched.len() >= 2 {
                        patched[..2].copy_from_slice(&payload[2..4]);
                    }
                    let len = u16::try_from(patched.len()).unwrap_or(u16::MAX);
                    let mut framed = len.to_be_bytes().to_vec();
                    framed.extend_from_slice(&patched);
                    for piece in framed.chunks(5) {
                        resolver.handle_tcp(socket, piece, now);
                    }
                    resolver.handle_socket_closed(socket, now);
                }
                Transmit::Close {
                    socket: SocketId(_),
                } => {}
            }
        }
        now += Duration::from_millis(10);
    }
    // Let every deadline pass.
    let end = start + Duration::from_secs(120);
    while let Some(at) = resolver.poll_timeout() {
        assert!(at <= end, "a deadline beyond the route timeout");
        now = now.max(at);
        resolver.handle_timeout(now);
        while resolver.poll_transmit().is_some() {}
    }
    assert_eq!(
        resolver.routes_in_flight(),
        0,
        "a route outlived every deadline"
    );
    let mut events = 0;
    while let Some(event) = resolver.poll_event() {
        events += 1;
        if let Ok(route) = event.result {
            assert!(!route.hosts.is_empty(), "a route without hosts");
            assert!(route.hosts.iter().all(|h| !h.addresses.is_empty()));
            assert!(
                route
                    .hosts
                    .windows(2)
                    .all(|w| w[0].preference <= w[1].preference)
            );
        }
    }
    assert_eq!(events, 1, "one route asked, one result");
}

/// A response to `query` (with its EDNS OPT record, 11 octets, at the end) that says only
/// "truncated": QR and TC set, no records.
fn truncated_answer(query: &[u8]) -> Vec<u8> {
    let mut answer = query[..query.len().saturating_sub(11).max(12)].to_vec();
    answer[2] |= 0x80 | 0x02;
    answer[10] = 0;
    answer[11] = 0;
    answer
}

/// Canned replies the `session` target can play, so that arbitrary input reaches every stage.
const CANNED_REPLIES: [&[u8]; 13] = [
    b"220 mx.example ESMTP\r\n",
    b"250 ok\r\n",
    b"250-mx.example\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 SMTPUTF8\r\n",
    b"550 5.1.1 no such user\r\n",
    b"452 4.5.3 too many recipients\r\n",
    b"421 4.3.2 shutting down\r\n",
    b"221 bye\r\n",
    b"451 4.7.1 greylisted\r\n",
    b"502 5.5.2 what\r\n",
    b"554 5.7.1 blocked\r\n",
    b"220-multi\r\n220 line\r\n",
    b"553 5.1.8 Sender address rejected\r\n",
    b"530 5.7.0 Must issue a STARTTLS command first\r\n",
];

/// Target `session`: a probe session against a server whose behaviour the input scripts.
///
/// The first byte picks the configuration (pipelining, transcript, one to four recipients, one
/// needing SMTPUTF8, one recipient per transaction or many, STARTTLS when required or always).
/// After STARTTLS's `220` the session speaks TLS: the input's bytes go to rustls, as a broken
/// or hostile server's would. Then each byte is an instruction:
/// below 160, feed that many bytes plus one of the input as they come (arbitrary server bytes
/// in arbitrary chunks); 160 to 219, let that many seconds minus 159 pass; 220 to 232, play a
/// canned reply; 233 and up, close the connection. Then time runs out.
///
/// - nothing panics, and the session ends, by its own deadline at the latest;
/// - every recipient is settled exactly once, then `Finished` comes, once;
/// - what it writes is whole command lines with CRLF only at their ends, never DATA or BDAT,
///   and its output buffer stays small; after `STARTTLS`, only TLS records (type 20 to 23).
pub fn session(data: &[u8]) {
    use mxprobe::session::{
        Recipient, RecipientOutcome, Recipients, Sender, Session, SessionConfig, SessionEvent,
    };
    use mxprobe::verdict::{Reason, Stage};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    let Some((&setup, mut script)) = data.split_first() else {
        return;
    };
    let mut config = SessionConfig::new(
        "probe.example.net",
        Sender::Mailbox("probe@example.net".into()),
    );
    config.pipelining = setup & 1 != 0;
    config.transcript = setup & 2 != 0;
    config.max_recipients_per_transaction = if setup & 4 != 0 { 1 } else { 100 };
    if setup & 0x40 != 0 {
        config.starttls = mxprobe::tls::StartTls::Always;
    }
    let count = usize::from(setup >> 3 & 3) + 1;
    let mut mailboxes: Vec<(String, bool)> = (0..count)
        .map(|i| (format!("user{i}@example.com"), false))
        .collect();
    if setup & 0x20 != 0 {
        mailboxes[0] = ("josé@example.com".into(), true);
    }
    let recipients: Recipients = mailboxes
        .iter()
        .map(|(mailbox, smtputf8)| Recipient {
            mailbox,
            smtputf8: *smtputf8,
        })
        .collect();
    #[allow(
        clippy::disallowed_methods,
        reason = "an origin for a hand-moved clock"
    )]
    let start = Instant::now();
    let mut now = start;
    let session_deadline = start + config.timeouts.session;
    let config = config.check().expect("a constant, valid configuration");
    let mut session = Session::new(Arc::new(config), recipients, now).with_server_name(
        mxprobe::tls::server_name("mx.example", std::net::Ipv4Addr::LOCALHOST.into()),
    );
    session.handle_connected(now);

    let mut written = Vec::new();
    let mut settled = vec![0u32; count];
    let mut finished = 0;
    let mut drain = |session: &mut Session, written: &mut Vec<u8>| {
        let output = session.pending_output();
        assert!(
            output.len() < 4096,
            "output buffer grew to {} bytes",
            output.len()
        );
        written.extend_from_slice(output);
        let len = output.len();
        session.consume_output(len);
        while let Some(event) = session.poll_event() {
            assert_eq!(finished, 0, "an event after Finished");
            match event {
                SessionEvent::Recipient { index, outcome } => {
                    settled[index] += 1;
                    // A verdict on a mailbox comes only from a reply that may answer RCPT,
                    // and only once the session could vouch for the pairing, which takes
                    // QUIT's 221 (so QUIT went out first).
                    if let RecipientOutcome::Replied {
                        stage: Stage::RcptTo,
                        reply,
                        reason,
                    } = &outcome
                    {
                        let code = reply.as_reply().code().get();
                        match reason {
                            Reason::Accepted => assert!(matches!(code, 250 | 251), "{code}"),
                            Reason::MailboxNotFound | Reason::MailboxDisabled => {
                                assert!((500..600).contains(&code), "{code}");
                            }
                            _ => {}
                        }
                        assert!(
                            written.windows(6).any(|w| w == b"QUIT\r\n"),
                            "an answer before QUIT was even sent"
                        );
                    }
                }
                SessionEvent::Finished(_) => finished += 1,
            }
        }
        if let Some(at) = session.poll_timeout() {
            assert!(at <= session_deadline, "a wait beyond the session deadline");
        }
    };
    drain(&mut session, &mut written);
    while let Some((&op, rest)) = script.split_first() {
        script = rest;
        match op {
            0..=159 => {
                let (chunk, rest) = script.split_at(script.len().min(usize::from(op) + 1));
                script = rest;
                session.handle_input(chunk, now);
            }
            160..=219 => {
                now += Duration::from_secs(u64::from(op) - 159);
                if session.poll_timeout().is_some_and(|at| at <= now) {
                    session.handle_timeout(now);
                }
            }
            220..=232 => session.handle_input(CANNED_REPLIES[usize::from(op - 220)], now),
            _ => session.handle_closed(now),
        }
        drain(&mut session, &mut written);
    }
    while let Some(at) = session.poll_timeout() {
        now = now.max(at);
        session.handle_timeout(now);
        drain(&mut session, &mut written);
    }
    assert!(session.is_finished(), "the session outlived every deadline");
    assert_eq!(finished, 1, "Finished once");
    assert!(settled.iter().all(|&n| n == 1), "settled {settled:?}");
    // Once STARTTLS's 220 came, only whole TLS records (a ClientHello first, then alerts or
    // application data): no plain text, QUIT included. Until then, plain text.
    let after_starttls = written
        .windows(10)
        .position(|w| w == b"STARTTLS\r\n")
        .map(|at| at + 10);
    let written = match after_starttls {
        Some(at) if written.get(at) == Some(&22) => {
            let mut records = &written[at..];
            while !records.is_empty() {
                assert!(
                    records.len() >= 5 && (20..=23).contains(&records[0]) && records[1] == 3,
                    "not a TLS record after STARTTLS: \"{}\"",
                    show(records)
                );
                let len = usize::from(u16::from_be_bytes([records[3], records[4]]));
                assert!(records.len() >= 5 + len, "a partial TLS record");
                records = &records[5 + len..];
            }
            written[..at].to_vec()
        }
        _ => written,
    };
    // Whole lines, CRLF only at the end of each, no DATA or BDAT.
    if !written.is_empty() {
        assert!(
            written.ends_with(b"\r\n"),
            "a partial line: \"{}\"",
            show(&written)
        );
    }
    for line in written.split(|&b| b == b'\n') {
        let Some(body) = line.strip_suffix(b"\r") else {
            assert!(line.is_empty(), "a bare LF in \"{}\"", show(&written));
            continue;
        };
        assert!(!body.contains(&b'\r'), "a bare CR in \"{}\"", show(line));
        assert!(!body.contains(&0), "a NUL in \"{}\"", show(line));
        let verb = body.split(|&b| b == b' ').next().unwrap_or_default();
        assert!(verb != b"DATA" && verb != b"BDAT", "DATA or BDAT written");
    }
}

/// Target `upload`: a body for the job-upload parser (`mxprobe::upload`). The first byte
/// chooses the format (plain lines, JSON, CSV by column 1, 2 or 3 or by the name `email`) and
/// the line limit (64 KiB, or 2, 8 or 40 bytes, so that every limit is reachable); the second
/// chooses a split point; the rest is the body.
///
/// - the parser never panics, and every error has a message;
/// - the outcome (the items, then the error if any) is the same whole, in two chunks cut at
///   the chosen point, in random pieces, and one byte at a time;
/// - after every chunk the parser holds at most `max_line + 2` bytes, plus 2 KiB of a CSV
///   header's names;
/// - every item's text is at most `max_line` bytes, with no space around it; line numbers
///   never go back (plain lines and JSON elements only go forward), and a plain line's text
///   has no LF.
pub fn upload(data: &[u8]) {
    use mxprobe::upload::{Column, Format, MAX_LINE};
    use std::num::NonZeroUsize;

    let [choice, split, body @ ..] = data else {
        return;
    };
    let number = |n| Column::Number(NonZeroUsize::new(n).expect("columns count from 1"));
    let format = match choice % 8 {
        0 | 1 => Format::Lines,
        2 | 3 => Format::Json,
        4 => Format::Csv(number(1)),
        5 => Format::Csv(number(2)),
        6 => Format::Csv(number(3)),
        _ => Format::Csv(Column::Name("email".into())),
    };
    let max_line = match choice >> 6 {
        0 => MAX_LINE,
        1 => 2,
        2 => 8,
        _ => 40,
    };
    let whole = upload_in(&format, max_line, &[body]);
    let at = usize::from(*split) * body.len() / 255;
    let (a, b) = body.split_at(at);
    let mut rng = SplitRng::new(data);
    for chunks in [vec![a, b], rng.chunks(body, 64), body.chunks(1).collect()] {
        let sizes: Vec<usize> = chunks.iter().map(|c| c.len()).collect();
        assert_eq!(
            upload_in(&format, max_line, &chunks),
            whole,
            "{format:?}, max_line {max_line}: splitting into {sizes:?} changed the outcome of \"{}\"",
            show(body)
        );
    }
    let (items, error) = &whole;
    if let Some(error) = error {
        assert!(!error.to_string().is_empty());
    }
    let strictly = matches!(format, Format::Lines | Format::Json);
    for pair in items.windows(2) {
        let (before, after) = (pair[0].line, pair[1].line);
        assert!(
            after > before || (!strictly && after == before),
            "{format:?}: line {after} after line {before}"
        );
    }
    for item in items {
        assert!(item.line >= 1 && item.text.len() <= max_line, "{item:?}");
        let trimmed = item
            .text
            .trim_matches(|c: char| (c.is_whitespace() && !c.is_control()) || c == '\u{feff}');
        assert_eq!(trimmed, item.text, "{format:?}: spaces around {item:?}");
        if format == Format::Lines {
            assert!(!item.text.contains('\n'), "LF in {item:?}");
        }
    }
}

/// Feeds an upload's `chunks` in order and finishes it: its items, then its error, if any.
fn upload_in(
    format: &mxprobe::upload::Format,
    max_line: usize,
    chunks: &[&[u8]],
) -> (
    Vec<mxprobe::upload::Item>,
    Option<mxprobe::upload::UploadError>,
) {
    let mut parser = mxprobe::upload::Parser::new(format.clone()).with_max_line(max_line);
    let mut items = Vec::new();
    for chunk in chunks {
        if let Err(error) = parser.feed(chunk, &mut items) {
            return (items, Some(error));
        }
        assert!(
            parser.buffered() <= max_line + 2 + 2048,
            "{format:?} holds {} bytes with lines of {max_line}",
            parser.buffered()
        );
    }
    let error = parser.finish(&mut items).err();
    (items, error)
}

/// Fuzz target `socks5`: a proxy's bytes to a SOCKS5 handshake ([`mxprobe::socks5`]).
///
/// The first byte picks the setup (credentials or not, an IPv4 or IPv6 target, by address or by
/// name for the proxy to resolve) and how the rest is split into reads. The handshake must never panic, must end in `Pending`, `Open` (with its
/// leftover inside the read) or an error, must refuse everything after an error or the
/// opening, and must write only requests of the protocol: the greeting, the credentials once,
/// the CONNECT once.
pub fn socks5(data: &[u8]) {
    use mxprobe::socks5::{Credentials, Handshake, Progress};
    let Some((&setup, rest)) = data.split_first() else {
        return;
    };
    let credentials = (setup & 1 == 1).then(|| Credentials::new("probe", "s3cret").expect("valid"));
    let target: std::net::SocketAddr = if setup & 2 == 2 {
        "[2001:db8::25]:25".parse().expect("addr")
    } else {
        "192.0.2.25:25".parse().expect("addr")
    };
    let by_name = setup & 4 == 4;
    let chunk = usize::from(setup >> 3).max(1);
    let mut handshake = Handshake::new(target, credentials.clone());
    if by_name {
        handshake = handshake.by_name("mx.example");
    }
    let mut written = Vec::new();
    let mut ended = false;
    for read in rest.chunks(chunk) {
        written.extend_from_slice(handshake.output());
        let n = handshake.output().len();
        handshake.consume_output(n);
        match handshake.handle_input(read) {
            Ok(Progress::Pending) => assert!(!ended, "input after the end was taken"),
            Ok(Progress::Open { leftover }) => {
                assert!(!ended, "opened twice");
                assert!(leftover <= read.len(), "leftover past the read");
                assert!(handshake.is_open());
                ended = true;
            }
            Err(_) => ended = true,
        }
    }
    written.extend_from_slice(handshake.output());
    // What went out: the greeting, then maybe the credentials, then maybe the CONNECT.
    let greeting: &[u8] = if credentials.is_some() {
        &[5, 2, 0, 2]
    } else {
        &[5, 1, 0]
    };
    assert!(written.starts_with(greeting), "{written:?}");
    let mut after = &written[greeting.len()..];
    if let Some(stripped) = after.strip_prefix(b"\x01\x05probe\x06s3cret") {
        assert!(
            credentials.is_some(),
            "credentials sent without being given"
        );
        after = stripped;
    }
    let connect_len = match (by_name, target.is_ipv6()) {
        (true, _) => 4 + 1 + "mx.example".len() + 2,
        (false, true) => 22,
        (false, false) => 10,
    };
    assert!(
        after.is_empty() || (after.len() == connect_len && after.starts_with(&[5, 1, 0])),
        "unexpected request bytes: {after:?}"
    );
}
