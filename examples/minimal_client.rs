//! The yardstick for `mxprobe bench`: the least a prober can do on one `mio` loop, with none of
//! mxprobe's work — no DNS, no reply parsing beyond finding where a reply ends, no verdicts,
//! no timeouts, no politeness. It runs sessions (greeting, EHLO, MAIL FROM, RCPT TO × N, QUIT)
//! against the ordinary MX hosts of a world that `mxprobe bench --serve` started, and prints
//! sessions/s and addresses/s. mxprobe's own figures against the same world, from
//! `mxprobe bench --remote-dns`, are then compared with these (docs/benchmarks.md).
//!
//! ```text
//! mxprobe bench --serve --smtp-port 2525 --dns-listen 127.0.0.1:5399 > /dev/null &
//! cargo run --release --example minimal_client -- 2525 200000 1000 10 pipelined
//! ```
//!
//! Arguments: the farm's port, addresses, concurrency, RCPTs per session, and `pipelined`,
//! `pipelined-quit` (QUIT ends the group of MAIL and RCPTs, as mxprobe sends it: RFC 2920 §3.1)
//! or `lockstep`. It trusts the server completely: this is a measuring stick, not a prober.

#![allow(
    clippy::disallowed_methods,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line measuring tool that reads the clock and prints"
)]

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

/// The ordinary hosts of `sim::world`: 127.10.0.1 to .4, where `user…` mailboxes exist.
const HOSTS: u8 = 4;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Step {
    Greeting,
    Ehlo,
    /// Replies still due to MAIL and the RCPTs.
    Envelope(usize),
    Quit,
}

struct Conn {
    stream: TcpStream,
    step: Step,
    /// Index of the first address of this session, and how many it carries.
    first: u64,
    count: usize,
    /// Lock-step: RCPTs sent so far.
    sent: usize,
    input: Vec<u8>,
}

struct Settings {
    port: u16,
    addresses: u64,
    concurrency: usize,
    rcpts: usize,
    pipelined: bool,
    /// QUIT goes with the MAIL and RCPT group instead of after its replies.
    quit_in_group: bool,
}

fn settings() -> Settings {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage =
        "usage: minimal_client PORT ADDRESSES CONCURRENCY RCPTS pipelined|pipelined-quit|lockstep";
    let number = |i: usize| -> u64 {
        args.get(i)
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("{usage}"))
    };
    Settings {
        port: u16::try_from(number(0)).expect("a port"),
        addresses: number(1),
        concurrency: usize::try_from(number(2)).expect("a concurrency"),
        rcpts: usize::try_from(number(3)).expect("an RCPT count").max(1),
        pipelined: args.get(4).is_none_or(|mode| mode != "lockstep"),
        quit_in_group: args.get(4).is_some_and(|mode| mode == "pipelined-quit"),
    }
}

/// How many complete replies `input` holds, consuming them: a reply ends with a line whose
/// fourth byte is not `-`.
fn take_replies(input: &mut Vec<u8>) -> usize {
    let mut replies = 0;
    let mut start = 0;
    while let Some(end) = input[start..].iter().position(|&b| b == b'\n') {
        let line = &input[start..start + end];
        if line.get(3) != Some(&b'-') {
            replies += 1;
        }
        start += end + 1;
    }
    input.drain(..start);
    replies
}

fn rcpt(out: &mut Vec<u8>, index: u64) {
    out.extend_from_slice(
        format!("RCPT TO:<user{index}@d{}.bench.test>\r\n", index % 1000).as_bytes(),
    );
}

fn main() {
    let s = settings();
    let mut poll = Poll::new().expect("poll");
    let mut events = Events::with_capacity(1024);
    let mut conns: Slab<Conn> = Slab::new();
    let mut next_address = 0u64;
    let mut next_host = 0u8;
    let mut done_addresses = 0u64;
    let mut sessions = 0u64;
    let mut buffer = vec![0u8; 16 * 1024];
    let mut out = Vec::with_capacity(1024);
    let started = Instant::now();

    let mut open = |conns: &mut Slab<Conn>, next_address: &mut u64, poll: &Poll| {
        while conns.len() < s.concurrency && *next_address < s.addresses {
            let count = s.rcpts.min((s.addresses - *next_address) as usize);
            let host = Ipv4Addr::new(127, 10, 0, 1 + next_host % HOSTS);
            next_host = next_host.wrapping_add(1);
            let mut stream = TcpStream::connect(SocketAddr::from((host, s.port))).expect("connect");
            stream.set_nodelay(true).expect("nodelay");
            let entry = conns.vacant_entry();
            poll.registry()
                .register(&mut stream, Token(entry.key()), Interest::READABLE)
                .expect("register");
            entry.insert(Conn {
                stream,
                step: Step::Greeting,
                first: *next_address,
                count,
                sent: 0,
                input: Vec::new(),
            });
            *next_address += count as u64;
        }
    };
    open(&mut conns, &mut next_address, &poll);

    while done_addresses < s.addresses {
        poll.poll(&mut events, None).expect("poll");
        for event in &events {
            let key = event.token().0;
            let mut finished = false;
            {
                let Some(conn) = conns.get_mut(key) else {
                    continue;
                };
                loop {
                    match conn.stream.read(&mut buffer) {
                        Ok(0) => panic!("the server closed a session early"),
                        Ok(n) => {
                            conn.input.extend_from_slice(&buffer[..n]);
                            if n < buffer.len() {
                                break;
                            }
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) => panic!("read: {e}"),
                    }
                }
                let mut replies = take_replies(&mut conn.input);
                out.clear();
                while replies > 0 {
                    replies -= 1;
                    match conn.step {
                        Step::Greeting => {
                            out.extend_from_slice(b"EHLO probe.bench.test\r\n");
                            conn.step = Step::Ehlo;
                        }
                        Step::Ehlo => {
                            out.extend_from_slice(b"MAIL FROM:<probe@probe.bench.test>\r\n");
                            if s.pipelined {
                                for i in 0..conn.count {
                                    rcpt(&mut out, conn.first + i as u64);
                                }
                                conn.sent = conn.count;
                            }
                            if s.quit_in_group {
                                out.extend_from_slice(b"QUIT\r\n");
                                // MAIL, the RCPTs, then the 221.
                                conn.step = Step::Envelope(conn.count + 2);
                            } else {
                                conn.step = Step::Envelope(conn.count + 1);
                            }
                        }
                        Step::Envelope(1) if s.quit_in_group => finished = true,
                        Step::Envelope(due) => {
                            if !s.pipelined && conn.sent < conn.count {
                                rcpt(&mut out, conn.first + conn.sent as u64);
                                conn.sent += 1;
                            }
                            if due == 1 {
                                out.extend_from_slice(b"QUIT\r\n");
                                conn.step = Step::Quit;
                            } else {
                                conn.step = Step::Envelope(due - 1);
                            }
                        }
                        Step::Quit => finished = true,
                    }
                }
                if !out.is_empty() {
                    // Commands are small and the socket empty: one write takes them all.
                    conn.stream.write_all(&out).expect("write");
                }
            }
            if finished {
                let conn = conns.remove(key);
                done_addresses += conn.count as u64;
                sessions += 1;
            }
        }
        open(&mut conns, &mut next_address, &poll);
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{} addresses, {sessions} sessions of up to {} RCPTs ({}), concurrency {}: {seconds:.3} s, \
         {:.0} sessions/s, {:.0} addresses/s",
        s.addresses,
        s.rcpts,
        match (s.pipelined, s.quit_in_group) {
            (true, true) => "pipelined, QUIT in the group",
            (true, false) => "pipelined",
            (false, _) => "lock-step",
        },
        s.concurrency,
        sessions as f64 / seconds,
        s.addresses as f64 / seconds,
    );
}
