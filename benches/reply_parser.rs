//! Throughput of the SMTP reply parser, in bytes per second.
//!
//! Run with `cargo bench --bench reply_parser`; figures and the machine they came from are in
//! docs/benchmarks.md. The inputs are real replies from `fuzz/seeds/smtp_reply/`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mxprobe::smtp::reply::{Limits, ReplyReader, Status, parse_reply};

const ONE_LINE: &[u8] = b"250 OK\r\n";
const EHLO_10_LINES: &[u8] = include_bytes!("../fuzz/seeds/smtp_reply/postfix_ehlo.txt");
const GMAIL_550: &[u8] = include_bytes!("../fuzz/seeds/smtp_reply/gmail_550_5_1_1.txt");

/// What a pipelining server sends back to a batch of probes: MAIL FROM accepted, then RCPT
/// replies of every kind, RSET, and so on — 1,000 replies in one buffer.
fn pipelined_buffer() -> Vec<u8> {
    let replies: [&[u8]; 8] = [
        include_bytes!("../fuzz/seeds/smtp_reply/postfix_mail_from_ok.txt"),
        include_bytes!("../fuzz/seeds/smtp_reply/postfix_rcpt_ok.txt"),
        include_bytes!("../fuzz/seeds/smtp_reply/postfix_rcpt_unknown_virtual.txt"),
        include_bytes!("../fuzz/seeds/smtp_reply/postfix_rcpt_ok.txt"),
        include_bytes!("../fuzz/seeds/smtp_reply/greylist_451_4_7_1.txt"),
        include_bytes!("../fuzz/seeds/smtp_reply/postfix_rcpt_ok.txt"),
        include_bytes!("../fuzz/seeds/smtp_reply/postfix_mailbox_full.txt"),
        b"250 2.0.0 Ok\r\n",
    ];
    replies
        .iter()
        .cycle()
        .take(1000)
        .copied()
        .collect::<Vec<_>>()
        .concat()
}

/// Parses every reply in `buf` and returns a checksum, so nothing can be optimised away.
fn parse_all(buf: &[u8]) -> u64 {
    let limits = Limits::DEFAULT;
    let mut rest = buf;
    let mut sum = 0u64;
    while let Ok(Status::Complete(reply)) = parse_reply(rest, &limits) {
        sum +=
            u64::from(reply.code().get()) + reply.enhanced().map_or(0, |e| u64::from(e.detail()));
        rest = &rest[reply.consumed()..];
    }
    assert!(rest.is_empty(), "every benchmark input is whole replies");
    sum
}

fn parse(c: &mut Criterion) {
    let pipelined = pipelined_buffer();
    let cases: [(&str, &[u8]); 4] = [
        ("250_ok", ONE_LINE),
        ("ehlo_10_lines", EHLO_10_LINES),
        ("gmail_550_5_1_1", GMAIL_550),
        ("pipelined_1000", &pipelined),
    ];
    let mut group = c.benchmark_group("parse_reply");
    for (name, input) in cases {
        group.throughput(Throughput::Bytes(input.len() as u64));
        group.bench_function(name, |b| b.iter(|| parse_all(black_box(input))));
    }
    group.finish();
}

/// The streaming path: the same pipelined buffer arriving in 1,460-byte segments (one Ethernet
/// MSS) through a [`ReplyReader`], as the session will feed it.
fn read(c: &mut Criterion) {
    let pipelined = pipelined_buffer();
    let mut group = c.benchmark_group("reply_reader");
    group.throughput(Throughput::Bytes(pipelined.len() as u64));
    group.bench_function("pipelined_1000_in_1460_byte_reads", |b| {
        let mut reader = ReplyReader::new(Limits::DEFAULT);
        b.iter(|| {
            let mut sum = 0u64;
            for segment in black_box(&pipelined).chunks(1460) {
                reader.push(segment);
                while let Ok(Some(reply)) = reader.next_reply() {
                    sum += u64::from(reply.code().get());
                }
            }
            sum
        });
    });

    // A server that drips a 4 KiB line one byte per read: the reader must stay linear.
    let mut drip = b"250 ".to_vec();
    drip.resize(4094, b'x');
    drip.extend_from_slice(b"\r\n");
    group.throughput(Throughput::Bytes(drip.len() as u64));
    group.bench_function("4k_line_in_1_byte_reads", |b| {
        let mut reader = ReplyReader::new(Limits::DEFAULT);
        b.iter(|| {
            let mut lines = 0;
            for byte in black_box(&drip).chunks(1) {
                reader.push(byte);
                while let Ok(Some(reply)) = reader.next_reply() {
                    lines += reply.line_count();
                }
            }
            lines
        });
    });
    group.finish();
}

criterion_group!(benches, parse, read);
criterion_main!(benches);
