//! The farm by table, on a hand-moved clock: each row a personality, what a client sends and
//! when, and what the server writes and when, played through the [`Conversation`] that serves
//! every farm connection. No sockets and no sleeps: an instant is `t0 + n ms`. What only the
//! event loop does (accepting, readiness, timers firing on time, threads, drop) is smoke-tested
//! over loopback in `sockets.rs`.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;

use super::conversation::{Conversation, ServeContext};
use super::*;

mod sockets;
mod starttls;

const MX: &str = "mx.farm.test";
const GREETING: &str = "220 mx.farm.test ESMTP mxprobe-sim\r\n";
const EHLO: &str = "EHLO probe.test\r\n";
const EHLO_REPLY: &str = "250-mx.farm.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n\
                          250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n\
                          250 CHUNKING\r\n";
const MAIL: &str = "MAIL FROM:<probe@probe.test>\r\n";
const MAIL_OK: &str = "250 2.1.0 Ok\r\n";
const RCPT_ALICE: &str = "RCPT TO:<alice@farm.test>\r\n";
const RCPT_NOBODY: &str = "RCPT TO:<nobody@farm.test>\r\n";
const RCPT_OK: &str = "250 2.1.5 Ok\r\n";
const NOBODY_550: &str = "550 5.1.1 <nobody@farm.test>: Recipient address rejected: User \
                          unknown in virtual mailbox table\r\n";
const NOOP: &str = "NOOP\r\n";
const OK: &str = "250 2.0.0 Ok\r\n";
const QUIT: &str = "QUIT\r\n";
const BYE: &str = "221 2.0.0 Bye\r\n";
const TIMEOUT_421: &str = "421 4.4.2 mx.farm.test Error: timeout exceeded\r\n";

/// The idle limit of every connection on a bench: past the timelines of all rows but those
/// about it.
const IDLE_LIMIT_MS: u64 = 10_000;

/// How long a row's run goes on after the last instant it names, so a late or extra write
/// or close shows.
const HORIZON_MS: u64 = 1_000;

fn ms(count: u64) -> Duration {
    Duration::from_millis(count)
}

/// What a client does at an instant.
#[derive(Debug, Clone, Copy)]
enum Client {
    Sends(&'static str),
    HangsUp,
}
use Client::{HangsUp, Sends};

/// What the server does at an instant, in milliseconds since the client connected. All the
/// bytes written at one instant are one `Writes`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Server<Text> {
    Writes(u64, Text),
    Closes(u64),
}
use Server::{Closes, Writes};

impl Server<String> {
    fn as_str(&self) -> Server<&str> {
        match self {
            Writes(at, text) => Writes(*at, text.as_str()),
            Closes(at) => Closes(*at),
        }
    }
}

/// One listener as its event loop holds it (the script, the counters, the jitter, the
/// scratch space), on a clock that starts at `t0`.
struct Bench {
    script: ServerScript,
    counters: Counters,
    rng: StdRng,
    reply: Vec<u8>,
    address: String,
    t0: Instant,
}

/// One connection on a bench, and what the server did on it so far.
struct Conn {
    conversation: Conversation,
    now: Instant,
    seen: Vec<Server<String>>,
    closed: bool,
}

/// The conversation's next timer (a reply due, a drip, the idle limit) at or before `until`.
fn next_due(conversation: &Conversation, until: Instant) -> Option<Instant> {
    [conversation.poll_timeout(), conversation.idle_deadline()]
        .into_iter()
        .flatten()
        .min()
        .filter(|due| *due <= until)
}

impl Bench {
    fn new(personality: Personality) -> Self {
        Self {
            script: ServerScript::new(personality).expect("a valid personality"),
            counters: Counters::default(),
            rng: StdRng::seed_from_u64(7),
            reply: Vec::new(),
            address: String::new(),
            t0: Instant::now(),
        }
    }

    fn at(&self, at_ms: u64) -> Instant {
        self.t0 + ms(at_ms)
    }

    fn context(&mut self, now: Instant) -> ServeContext<'_> {
        ServeContext {
            script: &mut self.script,
            counters: &self.counters,
            rng: &mut self.rng,
            now,
            reply: &mut self.reply,
            address: &mut self.address,
        }
    }

    /// A client connects from 127.0.0.1 at `at_ms`.
    fn connect(&mut self, at_ms: u64) -> Conn {
        let now = self.at(at_ms);
        let client = IpAddr::from(Ipv4Addr::LOCALHOST);
        let conversation = Conversation::open(client, ms(IDLE_LIMIT_MS), &mut self.context(now));
        let mut conn = Conn {
            conversation,
            now,
            seen: Vec::new(),
            closed: false,
        };
        self.collect(&mut conn);
        conn
    }

    /// Lets time pass up to `until_ms` as the event loop would: each timer the conversation
    /// asks for, and its idle limit (which the loop's sweep enforces), fires at its instant.
    fn run_until(&mut self, conn: &mut Conn, until_ms: u64) {
        let until = self.at(until_ms);
        for _ in 0..100_000 {
            if conn.closed {
                return;
            }
            match next_due(&conn.conversation, until) {
                Some(due) => {
                    conn.now = conn.now.max(due);
                    conn.conversation
                        .handle_timeout(conn.now, &self.script, &mut self.reply);
                    self.collect(conn);
                }
                _ => {
                    conn.now = conn.now.max(until);
                    return;
                }
            }
        }
        panic!("timers still due at {until_ms} ms: the conversation never settles");
    }

    /// The client's bytes arrive at `at_ms`, in one read.
    fn send(&mut self, conn: &mut Conn, at_ms: u64, bytes: &[u8]) {
        self.run_until(conn, at_ms);
        if conn.closed {
            return;
        }
        let now = conn.now;
        conn.conversation
            .handle_timeout(now, &self.script, &mut self.reply);
        // As the event loop: a server that stopped reading leaves the bytes in the socket.
        if conn.conversation.wants_input() {
            conn.conversation
                .handle_input(bytes, &mut self.context(now));
        }
        self.collect(conn);
    }

    /// The client hangs up at `at_ms`.
    fn hang_up(&mut self, conn: &mut Conn, at_ms: u64) {
        self.run_until(conn, at_ms);
        if conn.closed {
            return;
        }
        conn.conversation.handle_eof();
        self.collect(conn);
    }

    /// Takes what the server has to write at `conn.now`, and its close if it closes.
    fn collect(&self, conn: &mut Conn) {
        let at = u64::try_from(conn.now.duration_since(self.t0).as_millis()).expect("ms");
        let unsent = conn.conversation.unsent();
        if !unsent.is_empty() {
            let text = String::from_utf8(unsent.to_vec()).expect("replies are UTF-8");
            let written = unsent.len();
            match conn.seen.last_mut() {
                Some(Writes(last, so_far)) if *last == at => so_far.push_str(&text),
                _ => conn.seen.push(Writes(at, text)),
            }
            conn.conversation.mark_written(written);
        }
        if conn.conversation.is_finished(conn.now) {
            conn.closed = true;
            conn.seen.push(Closes(at));
        }
    }

    /// Sends `line` at `at_ms` and returns what the server wrote at that instant.
    fn exchange(&mut self, conn: &mut Conn, at_ms: u64, line: &str) -> String {
        let before = conn.seen.len();
        self.send(conn, at_ms, line.as_bytes());
        conn.seen[before..]
            .iter()
            .filter_map(|seen| match seen {
                Writes(at, text) if *at == at_ms => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }

    fn count(&self, counter: fn(&Counters) -> &std::sync::atomic::AtomicU64) -> u64 {
        counter(&self.counters).load(Ordering::Relaxed)
    }
}

/// Connects at 0, plays `script` and runs [`HORIZON_MS`] past `last_ms`.
fn play(bench: &mut Bench, script: &[(u64, Client)], last_ms: u64) -> Vec<Server<String>> {
    let mut conn = bench.connect(0);
    for &(at, what) in script {
        match what {
            Sends(text) => bench.send(&mut conn, at, text.as_bytes()),
            HangsUp => bench.hang_up(&mut conn, at),
        }
    }
    bench.run_until(&mut conn, last_ms + HORIZON_MS);
    conn.seen
}

fn mx() -> Personality {
    Personality::new(MX)
        .mailbox("alice@farm.test")
        .mailbox("Bob@Farm.Test")
        .mailbox("ünïcode@farm.test")
}

/// `(what it shows, personality, what the client does and when, what the server does and
/// when)`. Instants are milliseconds after the client connected.
type TimedRow = (
    &'static str,
    Personality,
    &'static [(u64, Client)],
    &'static [Server<&'static str>],
);

fn timed_rows() -> Vec<TimedRow> {
    vec![
        (
            "without latency a reply goes out at the instant its command arrives",
            mx(),
            &[(10, Sends(EHLO)), (20, Sends(QUIT))],
            &[
                Writes(0, GREETING),
                Writes(10, EHLO_REPLY),
                Writes(20, BYE),
                Closes(20),
            ],
        ),
        (
            "latency delays the greeting and each lock-step reply by one delay",
            mx().latency(ms(200)),
            &[(250, Sends(EHLO)), (500, Sends(MAIL)), (800, Sends(QUIT))],
            &[
                Writes(200, GREETING),
                Writes(450, EHLO_REPLY),
                Writes(700, MAIL_OK),
                Writes(1000, BYE),
                Closes(1000),
            ],
        ),
        (
            "a pipelined group costs one delay, not one per command",
            mx().latency(ms(200)),
            &[(
                300,
                Sends(
                    "MAIL FROM:<probe@probe.test>\r\nRCPT TO:<alice@farm.test>\r\n\
                     RCPT TO:<nobody@farm.test>\r\nRCPT TO:<bob@farm.test>\nQUIT\r\n",
                ),
            )],
            &[
                Writes(200, GREETING),
                Writes(
                    500,
                    "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550 5.1.1 <nobody@farm.test>: Recipient \
                     address rejected: User unknown in virtual mailbox table\r\n250 2.1.5 Ok\r\n\
                     221 2.0.0 Bye\r\n",
                ),
                Closes(500),
            ],
        ),
        (
            "reads that come while replies are held are answered in turn, one delay each",
            mx().latency(ms(200)),
            &[(300, Sends(NOOP)), (350, Sends(NOOP)), (360, Sends(QUIT))],
            &[
                Writes(200, GREETING),
                Writes(500, OK),
                Writes(550, OK),
                Writes(560, BYE),
                Closes(560),
            ],
        ),
        (
            "no reply overtakes another: the idle limit's 421 waits behind a held greeting",
            mx().latency(ms(12_000)),
            &[],
            &[
                Writes(
                    12_000,
                    "220 mx.farm.test ESMTP mxprobe-sim\r\n421 4.4.2 mx.farm.test \
                              Error: timeout exceeded\r\n",
                ),
                Closes(12_000),
            ],
        ),
        (
            "a tarpit holds every reply on top of the latency",
            mx().latency(ms(100)).behaviour(Behaviour::Tarpit(ms(300))),
            &[(500, Sends(NOOP)), (1000, Sends(QUIT))],
            &[
                Writes(400, GREETING),
                Writes(900, OK),
                Writes(1400, BYE),
                Closes(1400),
            ],
        ),
        (
            "the idle limit counts from the last byte received, a partial line too",
            mx(),
            &[(4000, Sends(NOOP)), (9000, Sends("NO"))],
            &[
                Writes(0, GREETING),
                Writes(4000, OK),
                Writes(19_000, TIMEOUT_421),
                Closes(19_000),
            ],
        ),
        (
            "a silent server writes nothing, reads on, and hangs up silently at the idle limit",
            mx().behaviour(Behaviour::Silent),
            &[(10, Sends(EHLO)), (5000, Sends(QUIT))],
            &[Closes(15_000)],
        ),
        (
            "garbage greets in HTTP, ignores commands, hangs up a linger after its greeting",
            mx().latency(ms(200)).behaviour(Behaviour::Garbage),
            &[(300, Sends(EHLO))],
            &[Writes(200, "HTTP/1.1 400 Bad Request\r\n"), Closes(1200)],
        ),
        (
            "garbage: a client that hangs up first ends it",
            mx().behaviour(Behaviour::Garbage),
            &[(300, HangsUp)],
            &[Writes(0, "HTTP/1.1 400 Bad Request\r\n"), Closes(300)],
        ),
        (
            "a client that hangs up still gets the replies it is owed, then the server closes",
            mx().latency(ms(200)),
            &[(250, Sends(NOOP)), (260, HangsUp)],
            &[Writes(200, GREETING), Writes(450, OK), Closes(450)],
        ),
        (
            "an unavailable greeting is 421, then close",
            mx().greeting(Greeting::Unavailable),
            &[(10, Sends(EHLO))],
            &[
                Writes(
                    0,
                    "421 4.7.0 mx.farm.test Error: too many connections from 127.0.0.1\r\n",
                ),
                Closes(0),
            ],
        ),
        (
            "a refused greeting answers 503 until QUIT",
            mx().greeting(Greeting::Refuse),
            &[(10, Sends(EHLO)), (20, Sends(MAIL)), (30, Sends(QUIT))],
            &[
                Writes(
                    0,
                    "554 5.7.1 Service unavailable; Client host [127.0.0.1] blocked using \
                     zen.spamhaus.org\r\n",
                ),
                Writes(10, "503 5.5.1 Error: no SMTP service here\r\n"),
                Writes(20, "503 5.5.1 Error: no SMTP service here\r\n"),
                Writes(30, BYE),
                Closes(30),
            ],
        ),
        (
            "close after greeting: the 220, then close",
            mx().behaviour(Behaviour::CloseAfterGreeting),
            &[(10, Sends(EHLO))],
            &[Writes(0, GREETING), Closes(0)],
        ),
        (
            "close after MAIL: the MAIL reply, the rest of its group unanswered, close",
            mx().reject_sender().behaviour(Behaviour::CloseAfterMail),
            &[
                (10, Sends(EHLO)),
                (
                    20,
                    Sends("MAIL FROM:<probe@probe.test>\r\nRCPT TO:<alice@farm.test>\r\n"),
                ),
            ],
            &[
                Writes(0, GREETING),
                Writes(10, EHLO_REPLY),
                Writes(20, MAIL_OK),
                Closes(20),
            ],
        ),
        (
            "losing pipelined replies: a group gets its first reply and the 221",
            mx().behaviour(Behaviour::LosesPipelinedReplies),
            &[
                (10, Sends(EHLO)),
                (
                    20,
                    Sends(
                        "MAIL FROM:<probe@probe.test>\r\nRCPT TO:<alice@farm.test>\r\n\
                         RCPT TO:<nobody@farm.test>\r\nQUIT\r\n",
                    ),
                ),
            ],
            &[
                Writes(0, GREETING),
                Writes(10, EHLO_REPLY),
                Writes(20, "250 2.1.0 Ok\r\n221 2.0.0 Bye\r\n"),
                Closes(20),
            ],
        ),
        (
            "losing pipelined replies: lock-step commands are all answered",
            mx().behaviour(Behaviour::LosesPipelinedReplies),
            &[
                (10, Sends(MAIL)),
                (20, Sends(RCPT_ALICE)),
                (30, Sends(RCPT_NOBODY)),
                (40, Sends(QUIT)),
            ],
            &[
                Writes(0, GREETING),
                Writes(10, MAIL_OK),
                Writes(20, RCPT_OK),
                Writes(30, NOBODY_550),
                Writes(40, BYE),
                Closes(40),
            ],
        ),
        (
            "an extra reply follows the MAIL reply unasked, in the same write",
            mx().behaviour(Behaviour::ExtraReply),
            &[
                (10, Sends(MAIL)),
                (20, Sends(RCPT_NOBODY)),
                (30, Sends(QUIT)),
            ],
            &[
                Writes(0, GREETING),
                Writes(10, "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"),
                Writes(20, NOBODY_550),
                Writes(30, BYE),
                Closes(30),
            ],
        ),
        (
            "a command split across reads is answered when its line ends; bare LF ends one",
            mx(),
            &[
                (10, Sends("MAIL FROM:<pro")),
                (20, Sends("be@probe.test>\r\nRCPT TO:<al")),
                (30, Sends("ice@farm.test>\n")),
            ],
            &[
                Writes(0, GREETING),
                Writes(20, MAIL_OK),
                Writes(30, RCPT_OK),
            ],
        ),
    ]
}

#[test]
fn the_server_writes_what_its_personality_says_when_its_latency_says() {
    for (shows, personality, script, expected) in timed_rows() {
        let last = script
            .iter()
            .map(|&(at, _)| at)
            .chain(expected.iter().map(|seen| match *seen {
                Writes(at, _) | Closes(at) => at,
            }))
            .max()
            .unwrap_or(0);
        let seen = play(&mut Bench::new(personality), script, last);
        let seen: Vec<Server<&str>> = seen.iter().map(Server::as_str).collect();
        assert_eq!(seen, expected, "{shows}");
    }
}

#[test]
fn drip_lets_one_byte_out_per_interval_and_queues_replies_behind_it() {
    let mut bench = Bench::new(mx().behaviour(Behaviour::Drip));
    let mut conn = bench.connect(0);
    // Sent while the greeting drips: answered at once, let out after it.
    bench.send(&mut conn, 50, NOOP.as_bytes());
    let total = GREETING.len() + OK.len();
    let interval = u64::try_from(DRIP_INTERVAL.as_millis()).expect("ms");
    bench.run_until(&mut conn, interval * total as u64 + HORIZON_MS);
    let expected: Vec<Server<String>> = GREETING
        .chars()
        .chain(OK.chars())
        .enumerate()
        .map(|(index, byte)| Writes(index as u64 * interval, byte.to_string()))
        .collect();
    assert_eq!(conn.seen, expected);
}

#[test]
fn replies_with_jitter_keep_their_order_and_wait_between_latency_and_latency_plus_jitter() {
    let (latency, jitter) = (100, 50);
    let mut bench = Bench::new(mx().latency(ms(latency)).jitter(ms(jitter)));
    let mut conn = bench.connect(0);
    let mut asked = vec![0];
    for round in 1..=40 {
        let at = round * 30;
        bench.send(&mut conn, at, NOOP.as_bytes());
        asked.push(at);
    }
    bench.run_until(&mut conn, 40 * 30 + latency + jitter + HORIZON_MS);
    let mut due = Vec::new();
    for seen in &conn.seen {
        let Writes(at, text) = seen else {
            panic!("closed early: {:?}", conn.seen);
        };
        // Replies written at one instant were due by then, the later ones queued behind.
        due.extend(std::iter::repeat_n(*at, text.matches("\r\n").count()));
    }
    assert_eq!(due.len(), asked.len(), "{:?}", conn.seen);
    let mut distinct = std::collections::HashSet::new();
    for (index, (&asked, &answered)) in asked.iter().zip(&due).enumerate() {
        distinct.insert(answered - asked);
        let earliest = asked + latency;
        let previous = if index == 0 { 0 } else { due[index - 1] };
        assert!(
            answered >= earliest,
            "reply {index}: {answered} < {earliest}"
        );
        assert!(
            answered <= (asked + latency + jitter).max(previous),
            "reply {index} at {answered}, asked at {asked}, previous at {previous}"
        );
        assert!(
            answered >= previous,
            "reply {index} overtook the one before"
        );
    }
    assert!(distinct.len() > 5, "the jitter varies: {distinct:?}");
}

#[test]
fn counters_count_commands_sessions_and_waits() {
    // Lock-step: the greeting and every reply is a wait of its own.
    let mut bench = Bench::new(mx());
    let lock_step = [
        (10, Sends(EHLO)),
        (20, Sends(MAIL)),
        (30, Sends(RCPT_ALICE)),
        (40, Sends(RCPT_NOBODY)),
        (45, Sends("DATA\r\n")),
        (47, Sends("BDAT 0 LAST\r\n")),
        (50, Sends("RSET\r\n")),
        (60, Sends(QUIT)),
    ];
    play(&mut bench, &lock_step, 60);
    assert_eq!(bench.count(|c| &c.reply_rounds), 9);
    assert_eq!(bench.count(|c| &c.mail_commands), 1);
    assert_eq!(bench.count(|c| &c.rcpt_commands), 2);
    assert_eq!(
        bench.count(|c| &c.data_commands),
        2,
        "DATA and BDAT, refused"
    );
    assert_eq!(bench.count(|c| &c.sessions_completed), 1);

    // Pipelined: the greeting, then one wait for the whole group.
    let mut bench = Bench::new(mx().latency(ms(50)));
    let group = "MAIL FROM:<probe@probe.test>\r\nRCPT TO:<alice@farm.test>\r\nQUIT\r\n";
    play(&mut bench, &[(100, Sends(group))], 100);
    assert_eq!(bench.count(|c| &c.reply_rounds), 2);
    assert_eq!(bench.count(|c| &c.sessions_completed), 1);

    // Losing pipelined replies: the RCPTs are read and counted, not answered.
    let mut bench = Bench::new(mx().behaviour(Behaviour::LosesPipelinedReplies));
    let group = "MAIL FROM:<probe@probe.test>\r\nRCPT TO:<alice@farm.test>\r\n\
                 RCPT TO:<nobody@farm.test>\r\nQUIT\r\n";
    play(&mut bench, &[(10, Sends(group))], 10);
    assert_eq!(bench.count(|c| &c.rcpt_commands), 2);
}

#[test]
fn commands_split_at_every_byte_are_answered_when_each_line_ends() {
    let input = "MAIL FROM:<probe@probe.test>\r\nRCPT TO:<alice@farm.test>\nQUIT\r\n";
    let mut bench = Bench::new(mx());
    let mut conn = bench.connect(0);
    let mut expected = vec![Writes(0, GREETING.to_owned())];
    let replies = [MAIL_OK, RCPT_OK, BYE];
    let mut ends = 0;
    for (index, byte) in input.bytes().enumerate() {
        let at = index as u64 + 1;
        bench.send(&mut conn, at, &[byte]);
        if byte == b'\n' {
            expected.push(Writes(at, replies[ends].to_owned()));
            ends += 1;
        }
    }
    expected.push(Closes(input.len() as u64));
    assert_eq!(conn.seen, expected);
    assert_eq!(
        bench.count(|c| &c.reply_rounds),
        4,
        "one read per line ending"
    );
}

#[test]
fn lines_longer_than_the_limit_end_the_session() {
    // (bytes sent, whether a line ending follows, the reply, whether the server closes)
    let cases = [
        (MAX_LINE, true, OK, false),
        (MAX_LINE + 1, true, "500 5.5.2 Line too long\r\n", true),
        (MAX_LINE, false, "500 5.5.2 Line too long\r\n", true),
    ];
    for (length, ended, expected, closes) in cases {
        let mut bench = Bench::new(mx());
        let mut conn = bench.connect(0);
        let mut line = format!("NOOP {}", "x".repeat(length - "NOOP \r\n".len()));
        line.push_str(if ended { "\r\n" } else { "xx" });
        assert_eq!(
            bench.exchange(&mut conn, 10, &line),
            expected,
            "{length} bytes, ended: {ended}"
        );
        assert_eq!(conn.closed, closes, "{length} bytes, ended: {ended}");
    }
}

#[test]
fn greylisting_defers_a_new_triplet_until_its_period_is_over_across_connections() {
    let mut bench = Bench::new(mx().greylist(ms(300)));
    let mut first = bench.connect(0);
    bench.exchange(&mut first, 5, MAIL);
    assert_eq!(
        bench.exchange(&mut first, 10, RCPT_ALICE),
        "451 4.7.1 <alice@farm.test>: Recipient address rejected: Greylisted, try again \
         later\r\n"
    );
    // Remembered across connections, case-insensitively; the sender is part of the triplet.
    let mut again = bench.connect(20);
    bench.exchange(&mut again, 25, "MAIL FROM:<PROBE@probe.test>\r\n");
    let reply = bench.exchange(&mut again, 30, "RCPT TO:<Alice@farm.test>\r\n");
    assert!(reply.starts_with("451 4.7.1"), "{reply:?}");
    bench.exchange(&mut again, 35, "RSET\r\n");
    bench.exchange(&mut again, 40, "MAIL FROM:<other@probe.test>\r\n");
    let reply = bench.exchange(&mut again, 45, RCPT_ALICE);
    assert!(reply.starts_with("451 4.7.1"), "{reply:?}");
    // One millisecond short of the period, then the period.
    let reply = bench.exchange(&mut first, 309, RCPT_ALICE);
    assert!(reply.starts_with("451 4.7.1"), "{reply:?}");
    assert_eq!(bench.exchange(&mut first, 310, RCPT_ALICE), RCPT_OK);
    let reply = bench.exchange(&mut first, 311, RCPT_NOBODY);
    assert!(reply.starts_with("451 4.7.1"), "a new triplet: {reply:?}");
    // The other sender's triplet was first seen at 45.
    let reply = bench.exchange(&mut again, 344, RCPT_ALICE);
    assert!(reply.starts_with("451 4.7.1"), "{reply:?}");
    assert_eq!(bench.exchange(&mut again, 345, RCPT_ALICE), RCPT_OK);
}

/// `(what it shows, personality, [(command, the start of the reply it gets)])`, each sent in
/// lock-step after the greeting.
type ExchangeRow = (
    &'static str,
    Personality,
    &'static [(&'static str, &'static str)],
);

fn exchange_rows() -> Vec<ExchangeRow> {
    vec![
        (
            "recipients compare case-insensitively, Unicode too",
            mx(),
            &[
                ("ehlo probe.test", "250-mx.farm.test\r\n"),
                (
                    "mail from: <Probe@Probe.test> SIZE=100 SMTPUTF8",
                    "250 2.1.0 Ok\r\n",
                ),
                ("RCPT TO:<ALICE@farm.TEST>", "250 2.1.5 Ok\r\n"),
                ("RCPT TO:<bob@farm.test> NOTIFY=NEVER", "250 2.1.5 Ok\r\n"),
                ("RCPT TO:<ÜNÏCODE@farm.test>", "250 2.1.5 Ok\r\n"),
                (
                    "RCPT TO:<Nobody@farm.test>",
                    "550 5.1.1 <Nobody@farm.test>: ",
                ),
            ],
        ),
        (
            "sequence and syntax errors",
            mx(),
            &[
                (
                    "RCPT TO:<alice@farm.test>",
                    "503 5.5.1 Error: need MAIL command\r\n",
                ),
                ("EHLO", "501 5.5.4 Syntax: EHLO hostname\r\n"),
                ("HELO probe.test", "250 mx.farm.test\r\n"),
                (
                    "MAIL FROM:probe@probe.test",
                    "501 5.5.4 Syntax: MAIL FROM:<address>\r\n",
                ),
                (
                    "MAIL TO:<probe@probe.test>",
                    "501 5.5.4 Syntax: MAIL FROM:<address>\r\n",
                ),
                ("MAIL FROM:<>", "250 2.1.0 Ok\r\n"),
                (
                    "MAIL FROM:<probe@probe.test>",
                    "503 5.5.1 Error: nested MAIL command\r\n",
                ),
                (
                    "RCPT TO:alice@farm.test",
                    "501 5.5.4 Syntax: RCPT TO:<address>\r\n",
                ),
                ("RSET", "250 2.0.0 Ok\r\n"),
                (
                    "RCPT TO:<alice@farm.test>",
                    "503 5.5.1 Error: need MAIL command\r\n",
                ),
                ("NOOP", "250 2.0.0 Ok\r\n"),
                (
                    "VRFY alice",
                    "252 2.0.0 Send some mail, I'll try my best\r\n",
                ),
                ("STARTTLS", "502 5.5.1 Error: command not implemented\r\n"),
                ("", "502 5.5.2 Error: command not recognized\r\n"),
            ],
        ),
        (
            "DATA and BDAT are refused",
            Personality::new(MX).catch_all(),
            &[
                ("MAIL FROM:<probe@probe.test>", "250 2.1.0 Ok\r\n"),
                ("RCPT TO:<anyone@farm.test>", "250 2.1.5 Ok\r\n"),
                ("DATA", "554 5.5.1 Error: no valid recipients\r\n"),
                ("bdat 0 LAST", "554 5.5.1 Error: no valid recipients\r\n"),
            ],
        ),
        (
            "catch-all accepts every recipient",
            Personality::new(MX).catch_all(),
            &[
                ("MAIL FROM:<probe@probe.test>", "250 2.1.0 Ok\r\n"),
                ("RCPT TO:<anyone@farm.test>", "250 2.1.5 Ok\r\n"),
                ("RCPT TO:<x7q2@elsewhere.test>", "250 2.1.5 Ok\r\n"),
            ],
        ),
        (
            "the recipient limit counts the whole session",
            mx().max_rcpt_per_session(2),
            &[
                ("MAIL FROM:<probe@probe.test>", "250 2.1.0 Ok\r\n"),
                ("RCPT TO:<alice@farm.test>", "250 2.1.5 Ok\r\n"),
                ("RCPT TO:<nobody@farm.test>", "550 5.1.1 "),
                (
                    "RCPT TO:<alice@farm.test>",
                    "452 4.5.3 Error: too many recipients\r\n",
                ),
                ("RSET", "250 2.0.0 Ok\r\n"),
                ("MAIL FROM:<probe@probe.test>", "250 2.1.0 Ok\r\n"),
                (
                    "RCPT TO:<bob@farm.test>",
                    "452 4.5.3 Error: too many recipients\r\n",
                ),
            ],
        ),
        (
            "a rejected sender starts no transaction",
            mx().reject_sender(),
            &[
                (
                    "MAIL FROM:<Probe@nowhere.test>",
                    "553 5.1.8 <Probe@nowhere.test>: Sender address rejected: Domain not \
                     found\r\n",
                ),
                (
                    "RCPT TO:<alice@farm.test>",
                    "503 5.5.1 Error: need MAIL command\r\n",
                ),
            ],
        ),
        (
            "a mailbox prefix makes local parts exist at any domain",
            Personality::new(MX)
                .mailbox_prefix("User")
                .mailbox("x@one.test"),
            &[
                ("MAIL FROM:<probe@probe.test>", "250 2.1.0 Ok\r\n"),
                ("RCPT TO:<user1@one.test>", "250 "),
                ("RCPT TO:<USER42@two.test>", "250 "),
                ("RCPT TO:<x@one.test>", "250 "),
                ("RCPT TO:<x@two.test>", "550 "),
                ("RCPT TO:<nobody@one.test>", "550 "),
                ("RCPT TO:<auser@one.test>", "550 "),
                ("RCPT TO:<one.test@user>", "550 "),
                ("RCPT TO:<user@one.test>", "550 "),
                ("RCPT TO:<usera8k2x@one.test>", "550 "),
                ("RCPT TO:<user12x@one.test>", "550 "),
            ],
        ),
        (
            "EHLO without PIPELINING",
            Personality::new(MX).without_pipelining(),
            &[(
                "EHLO probe.test",
                "250-mx.farm.test\r\n250-SIZE 10240000\r\n250-ENHANCEDSTATUSCODES\r\n\
                 250-8BITMIME\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n",
            )],
        ),
        (
            "EHLO without SMTPUTF8",
            Personality::new(MX).without_smtputf8(),
            &[(
                "EHLO probe.test",
                "250-mx.farm.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n\
                 250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250 CHUNKING\r\n",
            )],
        ),
        (
            "QUIT ends the conversation",
            mx(),
            &[("quit", "221 2.0.0 Bye\r\n")],
        ),
    ]
}

#[test]
fn each_command_gets_the_reply_of_its_personality() {
    for (shows, personality, exchanges) in exchange_rows() {
        let mut bench = Bench::new(personality);
        let mut conn = bench.connect(0);
        for (index, (command, expected)) in exchanges.iter().enumerate() {
            let at = 10 * (index as u64 + 1);
            let reply = bench.exchange(&mut conn, at, &format!("{command}\r\n"));
            assert!(
                reply.starts_with(expected),
                "{shows}: {command:?} got {reply:?}, expected {expected:?}"
            );
        }
    }
}
