//! The farm over loopback: real sockets, a blocking test client, conversations per personality.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use super::*;

const MX: &str = "mx.farm.test";
/// Longest a test client waits for a byte it expects.
const READ_LIMIT: Duration = Duration::from_secs(3);

/// A blocking test client that reads whole SMTP replies.
struct Client {
    stream: TcpStream,
    received: Vec<u8>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect_timeout(&addr, READ_LIMIT).unwrap();
        stream.set_read_timeout(Some(READ_LIMIT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Self {
            stream,
            received: Vec::new(),
        }
    }

    fn send(&mut self, text: &str) {
        self.stream.write_all(text.as_bytes()).unwrap();
    }

    /// One line, line ending included; `None` at EOF.
    fn line(&mut self) -> Option<String> {
        loop {
            if let Some(newline) = self.received.iter().position(|&byte| byte == b'\n') {
                let line: Vec<u8> = self.received.drain(..=newline).collect();
                return Some(String::from_utf8(line).unwrap());
            }
            let mut chunk = [0; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(received) => self.received.extend_from_slice(&chunk[..received]),
                Err(error) => panic!(
                    "no complete line after {READ_LIMIT:?} ({error}); got {:?}",
                    String::from_utf8_lossy(&self.received)
                ),
            }
        }
    }

    /// One complete reply, every line of a multi-line one.
    fn reply(&mut self) -> String {
        let mut reply = String::new();
        loop {
            let Some(line) = self.line() else {
                panic!("EOF inside a reply; got {reply:?}");
            };
            reply.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return reply;
            }
        }
    }

    fn command(&mut self, line: &str) -> String {
        self.send(&format!("{line}\r\n"));
        self.reply()
    }

    /// Asserts that the server closes without sending anything more.
    fn expect_close(&mut self) {
        assert_eq!(self.line(), None, "expected the server to close");
        assert!(self.received.is_empty(), "{:?}", self.received);
    }

    /// Whether a byte arrives within `wait`.
    fn receives_within(&mut self, wait: Duration) -> bool {
        self.stream.set_read_timeout(Some(wait)).unwrap();
        let mut byte = [0; 1];
        let received = match self.stream.read(&mut byte) {
            Ok(0) => false,
            Ok(_) => {
                self.received.push(byte[0]);
                true
            }
            Err(error) => {
                assert!(
                    matches!(
                        error.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ),
                    "{error}"
                );
                false
            }
        };
        self.stream.set_read_timeout(Some(READ_LIMIT)).unwrap();
        received
    }
}

fn loopback(host: u8) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::new(127, 0, 0, host), 0))
}

fn farm_of(personality: Personality) -> SmtpFarm {
    SmtpFarm::start(vec![(loopback(1), personality)], 1).unwrap()
}

fn greeted(farm: &SmtpFarm) -> Client {
    let mut client = Client::connect(farm.addrs()[0]);
    let greeting = client.reply();
    assert!(greeting.starts_with("220 "), "{greeting:?}");
    client
}

/// Waits (briefly) for the farm's threads to have counted what the client already saw
/// happen, then returns the counts.
fn settled_stats(farm: &SmtpFarm, settled: impl Fn(&FarmStats) -> bool) -> FarmStats {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let stats = farm.stats();
        if settled(&stats) || Instant::now() > deadline {
            return stats;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

fn farm_test_personality() -> Personality {
    Personality::new(MX)
        .mailbox("alice@farm.test")
        .mailbox("Bob@Farm.Test")
        .mailbox("ünïcode@farm.test")
}

#[test]
fn normal_conversation_in_lock_step_is_answered_and_counted() {
    let farm = farm_of(farm_test_personality());
    let mut client = Client::connect(farm.addrs()[0]);
    assert_eq!(client.reply(), "220 mx.farm.test ESMTP mxprobe-sim\r\n");
    assert_eq!(
        client.command("EHLO probe.test"),
        "250-mx.farm.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n\
         250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n"
    );
    assert_eq!(
        client.command("MAIL FROM:<probe@probe.test>"),
        "250 2.1.0 Ok\r\n"
    );
    assert_eq!(
        client.command("RCPT TO:<alice@farm.test>"),
        "250 2.1.5 Ok\r\n"
    );
    assert_eq!(
        client.command("RCPT TO:<nobody@farm.test>"),
        "550 5.1.1 <nobody@farm.test>: Recipient address rejected: User unknown in \
         virtual mailbox table\r\n"
    );
    assert_eq!(client.command("RSET"), "250 2.0.0 Ok\r\n");
    assert_eq!(client.command("QUIT"), "221 2.0.0 Bye\r\n");
    client.expect_close();
    let stats = settled_stats(&farm, |stats| stats.open_connections == 0);
    assert_eq!(
        stats,
        FarmStats {
            connections: 1,
            sessions_completed: 1,
            rcpt_commands: 2,
            mail_commands: 1,
            data_commands: 0,
            open_connections: 0,
            reply_rounds: 7,
        }
    );
}

/// `(what it shows, personality, [(command, the reply it gets)])`, each run on a farm of
/// its own after the 220 greeting.
type ConversationCase = (
    &'static str,
    Personality,
    &'static [(&'static str, &'static str)],
);

fn conversation_cases() -> Vec<ConversationCase> {
    vec![
        (
            "recipients compare case-insensitively, Unicode too",
            farm_test_personality(),
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
            farm_test_personality(),
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
                ("STARTTLS", "502 5.5.2 Error: command not recognized\r\n"),
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
            farm_test_personality().max_rcpt_per_session(2),
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
            farm_test_personality().reject_sender(),
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
            "QUIT ends the conversation",
            farm_test_personality(),
            &[("quit", "221 2.0.0 Bye\r\n")],
        ),
    ]
}

#[test]
fn conversations_get_the_replies_of_their_personality() {
    for (shows, personality, exchanges) in conversation_cases() {
        let farm = farm_of(personality);
        let mut client = greeted(&farm);
        for (command, expected) in exchanges {
            let reply = client.command(command);
            assert!(
                reply.starts_with(expected),
                "{shows}: {command:?} got {reply:?}, expected {expected:?}"
            );
        }
    }
}

#[test]
fn a_mailbox_prefix_makes_local_parts_exist_at_any_domain() {
    let farm = farm_of(
        Personality::new(MX)
            .mailbox_prefix("User")
            .mailbox("x@one.test"),
    );
    let mut client = greeted(&farm);
    client.command("MAIL FROM:<probe@probe.test>");
    for (recipient, code) in [
        ("user1@one.test", "250"),
        ("USER42@two.test", "250"),
        ("x@one.test", "250"),
        ("x@two.test", "550"),
        ("nobody@one.test", "550"),
        ("auser@one.test", "550"),
        ("one.test@user", "550"),
    ] {
        let reply = client.command(&format!("RCPT TO:<{recipient}>"));
        assert!(reply.starts_with(code), "{recipient}: {reply:?}");
    }
}

#[test]
fn data_and_bdat_are_counted() {
    let farm = farm_of(Personality::new(MX).catch_all());
    let mut client = greeted(&farm);
    client.command("MAIL FROM:<probe@probe.test>");
    client.command("RCPT TO:<anyone@farm.test>");
    assert!(client.command("DATA").starts_with("554 5.5.1"));
    assert!(client.command("BDAT 0 LAST").starts_with("554 5.5.1"));
    assert_eq!(farm.stats().data_commands, 2);
}

#[test]
fn ehlo_advertises_only_what_the_personality_has() {
    let cases = [
        (
            Personality::new(MX),
            &["PIPELINING", "SMTPUTF8"][..],
            &[][..],
        ),
        (
            Personality::new(MX).without_pipelining(),
            &["SMTPUTF8"],
            &["PIPELINING"],
        ),
        (
            Personality::new(MX).without_smtputf8(),
            &["PIPELINING"],
            &["SMTPUTF8"],
        ),
    ];
    for (personality, present, absent) in cases {
        let farm = farm_of(personality);
        let mut client = greeted(&farm);
        let ehlo = client.command("EHLO probe.test");
        assert!(ehlo.ends_with("\r\n250 CHUNKING\r\n"), "{ehlo:?}");
        for extension in present {
            assert!(ehlo.contains(&format!("250-{extension}\r\n")), "{ehlo:?}");
        }
        for extension in absent {
            assert!(!ehlo.contains(extension), "{ehlo:?}");
        }
    }
}

#[test]
fn pipelined_commands_are_answered_in_order() {
    let farm = farm_of(farm_test_personality());
    let mut client = greeted(&farm);
    client.send(
        "MAIL FROM:<probe@probe.test>\r\nRCPT TO:<alice@farm.test>\r\n\
         RCPT TO:<nobody@farm.test>\r\nRCPT TO:<bob@farm.test>\nQUIT\r\n",
    );
    let replies: Vec<String> = (0..5).map(|_| client.reply()).collect();
    let codes: Vec<&str> = replies.iter().map(|reply| &reply[..3]).collect();
    assert_eq!(codes, ["250", "250", "550", "250", "221"], "{replies:?}");
    client.expect_close();
    let stats = settled_stats(&farm, |stats| stats.open_connections == 0);
    assert_eq!(
        stats.reply_rounds, 2,
        "the greeting, then one wait for the batch"
    );
}

#[test]
fn commands_split_at_every_byte_lose_nothing() {
    let farm = farm_of(farm_test_personality());
    let mut client = greeted(&farm);
    for byte in "MAIL FROM:<probe@probe.test>\r\nRCPT TO:<alice@farm.test>\r\n".bytes() {
        client.stream.write_all(&[byte]).unwrap();
        thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(client.reply(), "250 2.1.0 Ok\r\n");
    assert_eq!(client.reply(), "250 2.1.5 Ok\r\n");
}

#[test]
fn lines_longer_than_the_limit_end_the_session() {
    // (bytes sent, whether a line ending follows, expected reply)
    let cases = [
        (MAX_LINE, true, "250 2.0.0 Ok\r\n"),
        (MAX_LINE + 1, true, "500 5.5.2 Line too long\r\n"),
        (MAX_LINE, false, "500 5.5.2 Line too long\r\n"),
    ];
    for (length, ended, expected) in cases {
        let farm = farm_of(Personality::new(MX));
        let mut client = greeted(&farm);
        let mut line = format!("NOOP {}", "x".repeat(length - "NOOP \r\n".len()));
        line.push_str(if ended { "\r\n" } else { "xx" });
        client.send(&line);
        assert_eq!(client.reply(), expected, "{length} bytes, ended: {ended}");
        if expected.starts_with("500") {
            client.expect_close();
        }
    }
}

#[test]
fn greylisting_defers_a_new_triplet_until_its_period_is_over() {
    let period = Duration::from_millis(300);
    let farm = farm_of(farm_test_personality().greylist(period));
    let started = Instant::now();
    let mut client = greeted(&farm);
    client.command("MAIL FROM:<probe@probe.test>");
    assert_eq!(
        client.command("RCPT TO:<alice@farm.test>"),
        "451 4.7.1 <alice@farm.test>: Recipient address rejected: Greylisted, try again \
         later\r\n"
    );
    // Remembered across connections, and the sender is part of the triplet.
    let mut again = greeted(&farm);
    again.command("MAIL FROM:<PROBE@probe.test>");
    assert!(
        again
            .command("RCPT TO:<Alice@farm.test>")
            .starts_with("451 4.7.1")
    );
    again.command("RSET");
    again.command("MAIL FROM:<other@probe.test>");
    assert!(
        again
            .command("RCPT TO:<alice@farm.test>")
            .starts_with("451 4.7.1")
    );
    thread::sleep(period.saturating_sub(started.elapsed()) + Duration::from_millis(20));
    assert_eq!(
        client.command("RCPT TO:<alice@farm.test>"),
        "250 2.1.5 Ok\r\n"
    );
    assert!(
        client
            .command("RCPT TO:<nobody@farm.test>")
            .starts_with("451 4.7.1")
    );
}

#[test]
fn refused_greeting_answers_503_until_quit() {
    let farm = farm_of(Personality::new(MX).greeting(Greeting::Refuse));
    let mut client = Client::connect(farm.addrs()[0]);
    assert_eq!(
        client.reply(),
        "554 5.7.1 Service unavailable; Client host [127.0.0.1] blocked using \
         zen.spamhaus.org\r\n"
    );
    assert_eq!(
        client.command("EHLO probe.test"),
        "503 5.5.1 Error: no SMTP service here\r\n"
    );
    assert!(
        client
            .command("MAIL FROM:<probe@probe.test>")
            .starts_with("503 ")
    );
    assert_eq!(client.command("QUIT"), "221 2.0.0 Bye\r\n");
    client.expect_close();
}

#[test]
fn unavailable_greeting_is_421_then_close() {
    let farm = farm_of(Personality::new(MX).greeting(Greeting::Unavailable));
    let mut client = Client::connect(farm.addrs()[0]);
    assert_eq!(
        client.reply(),
        "421 4.7.0 mx.farm.test Error: too many connections from 127.0.0.1\r\n"
    );
    client.expect_close();
}

#[test]
fn silent_server_sends_nothing() {
    let farm = farm_of(Personality::new(MX).behaviour(Behaviour::Silent));
    let mut client = Client::connect(farm.addrs()[0]);
    client.send("EHLO probe.test\r\n");
    assert!(!client.receives_within(Duration::from_millis(300)));
    assert_eq!(farm.stats().open_connections, 1);
}

#[test]
fn garbage_server_greets_in_http_and_hangs_up_after_its_linger() {
    let farm = farm_of(Personality::new(MX).behaviour(Behaviour::Garbage));
    let connected = Instant::now();
    let mut client = Client::connect(farm.addrs()[0]);
    assert_eq!(
        client.line().as_deref(),
        Some("HTTP/1.1 400 Bad Request\r\n")
    );
    client.send("EHLO probe.test\r\n");
    client.expect_close();
    let lingered = connected.elapsed();
    assert!(
        lingered >= GARBAGE_LINGER - Duration::from_millis(50) && lingered < GARBAGE_LINGER * 2,
        "{lingered:?}"
    );
}

#[test]
fn close_after_greeting_closes_after_the_220() {
    let farm = farm_of(Personality::new(MX).behaviour(Behaviour::CloseAfterGreeting));
    let mut client = greeted(&farm);
    client.expect_close();
}

#[test]
fn close_after_mail_answers_mail_then_closes() {
    let farm = farm_of(
        farm_test_personality()
            .reject_sender()
            .behaviour(Behaviour::CloseAfterMail),
    );
    let mut client = greeted(&farm);
    assert!(client.command("EHLO probe.test").starts_with("250-"));
    client.send("MAIL FROM:<probe@probe.test>\r\nRCPT TO:<alice@farm.test>\r\n");
    assert_eq!(client.reply(), "250 2.1.0 Ok\r\n");
    client.expect_close();
    assert_eq!(farm.stats().mail_commands, 1);
}

#[test]
fn losing_pipelined_replies_answers_a_group_with_its_first_reply_and_221() {
    let farm = farm_of(farm_test_personality().behaviour(Behaviour::LosesPipelinedReplies));
    let mut client = greeted(&farm);
    assert!(client.command("EHLO probe.test").starts_with("250-"));
    client.send(
        "MAIL FROM:<probe@probe.test>\r\nRCPT TO:<alice@farm.test>\r\n\
         RCPT TO:<nobody@farm.test>\r\nQUIT\r\n",
    );
    assert_eq!(client.reply(), "250 2.1.0 Ok\r\n");
    assert_eq!(client.reply(), "221 2.0.0 Bye\r\n");
    client.expect_close();
    let stats = settled_stats(&farm, |stats| stats.open_connections == 0);
    assert_eq!(stats.rcpt_commands, 2, "read and counted, not answered");
}

#[test]
fn losing_pipelined_replies_answers_lock_step_normally() {
    let farm = farm_of(farm_test_personality().behaviour(Behaviour::LosesPipelinedReplies));
    let mut client = greeted(&farm);
    client.command("EHLO probe.test");
    assert_eq!(
        client.command("MAIL FROM:<probe@probe.test>"),
        "250 2.1.0 Ok\r\n"
    );
    assert_eq!(
        client.command("RCPT TO:<alice@farm.test>"),
        "250 2.1.5 Ok\r\n"
    );
    assert!(
        client
            .command("RCPT TO:<nobody@farm.test>")
            .starts_with("550 5.1.1 <nobody@farm.test>")
    );
    assert_eq!(client.command("QUIT"), "221 2.0.0 Bye\r\n");
    client.expect_close();
}

#[test]
fn an_extra_reply_comes_after_the_mail_reply_unasked() {
    let farm = farm_of(farm_test_personality().behaviour(Behaviour::ExtraReply));
    let mut client = greeted(&farm);
    client.command("EHLO probe.test");
    assert_eq!(
        client.command("MAIL FROM:<probe@probe.test>"),
        "250 2.1.0 Ok\r\n"
    );
    // Nothing was sent since: this one is the extra.
    assert_eq!(client.reply(), "250 2.1.5 Ok\r\n");
    assert!(
        client
            .command("RCPT TO:<nobody@farm.test>")
            .starts_with("550 5.1.1 ")
    );
    assert_eq!(client.command("QUIT"), "221 2.0.0 Bye\r\n");
    client.expect_close();
}

#[test]
fn drip_sends_one_byte_per_interval() {
    let farm = farm_of(Personality::new(MX).behaviour(Behaviour::Drip));
    let connected = Instant::now();
    let mut client = Client::connect(farm.addrs()[0]);
    let mut first = [0; 4];
    client.stream.read_exact(&mut first).unwrap();
    let elapsed = connected.elapsed();
    assert_eq!(&first, b"220 ");
    // Bytes leave at 0, 100, 200 and 300 ms.
    assert!(
        elapsed >= DRIP_INTERVAL * 3 - Duration::from_millis(20),
        "{elapsed:?}"
    );
}

#[test]
fn tarpit_holds_every_reply() {
    let hold = Duration::from_millis(300);
    let farm = farm_of(Personality::new(MX).behaviour(Behaviour::Tarpit(hold)));
    let connected = Instant::now();
    let mut client = Client::connect(farm.addrs()[0]);
    assert!(!client.receives_within(Duration::from_millis(150)));
    client.reply();
    assert!(connected.elapsed() >= hold, "{:?}", connected.elapsed());
    let asked = Instant::now();
    assert_eq!(client.command("NOOP"), "250 2.0.0 Ok\r\n");
    assert!(asked.elapsed() >= hold, "{:?}", asked.elapsed());
}

#[test]
fn latency_costs_one_delay_per_round_trip_not_per_command() {
    let latency = Duration::from_millis(200);
    let farm = farm_of(farm_test_personality().latency(latency));
    let connected = Instant::now();
    let mut client = Client::connect(farm.addrs()[0]);
    client.reply();
    assert!(
        connected.elapsed() >= latency,
        "greeting after {:?}",
        connected.elapsed()
    );

    let asked = Instant::now();
    client.command("EHLO probe.test");
    assert!(
        asked.elapsed() >= latency,
        "EHLO after {:?}",
        asked.elapsed()
    );

    let asked = Instant::now();
    client.send("MAIL FROM:<probe@probe.test>\r\n");
    for _ in 0..5 {
        client.send("RCPT TO:<alice@farm.test>\r\n");
    }
    let replies: Vec<String> = (0..6).map(|_| client.reply()).collect();
    let answered = asked.elapsed();
    assert!(
        answered >= latency && answered < latency * 2,
        "6 pipelined commands answered after {answered:?}: {replies:?}"
    );
}

#[test]
fn idle_connection_is_told_and_closed() {
    let idle_limit = Duration::from_millis(200);
    let farm = SmtpFarm::start_with(
        vec![(loopback(1), Personality::new(MX))],
        FarmOptions {
            idle_limit,
            ..FarmOptions::default()
        },
    )
    .unwrap();
    let mut client = greeted(&farm);
    let idle_since = Instant::now();
    assert_eq!(
        client.reply(),
        "421 4.4.2 mx.farm.test Error: timeout exceeded\r\n"
    );
    assert!(idle_since.elapsed() >= idle_limit - Duration::from_millis(20));
    client.expect_close();
}

#[test]
fn listeners_on_several_loopback_addresses_keep_their_personalities() {
    let farm = SmtpFarm::start(
        vec![
            (loopback(2), farm_test_personality()),
            (
                loopback(3),
                Personality::new("catchall.farm.test").catch_all(),
            ),
            (loopback(4), Personality::new(MX).greeting(Greeting::Refuse)),
            (
                loopback(5),
                Personality::new(MX).greeting(Greeting::Unavailable),
            ),
        ],
        2,
    )
    .unwrap();
    let addrs = farm.addrs();
    let hosts: Vec<IpAddr> = addrs.iter().map(SocketAddr::ip).collect();
    assert_eq!(
        hosts,
        [2, 3, 4, 5].map(|host| IpAddr::from(Ipv4Addr::new(127, 0, 0, host)))
    );
    for (addr, expected_rcpt) in [(addrs[0], "550 5.1.1"), (addrs[1], "250 2.1.5")] {
        let mut client = Client::connect(addr);
        client.reply();
        client.command("MAIL FROM:<probe@probe.test>");
        let reply = client.command("RCPT TO:<nobody@farm.test>");
        assert!(reply.starts_with(expected_rcpt), "{addr}: {reply:?}");
    }
    assert!(Client::connect(addrs[2]).reply().starts_with("554 5.7.1"));
    assert!(Client::connect(addrs[3]).reply().starts_with("421 4.7.0"));
    assert_eq!(farm.stats().connections, 4);
}

#[test]
fn five_hundred_concurrent_sessions_all_complete() {
    const CLIENTS: usize = 500;
    const CLIENT_THREADS: usize = 10;
    // Two sockets per session in this process, plus whatever other tests hold.
    rlimit::increase_nofile_limit(4096).unwrap();
    let farm = farm_of(farm_test_personality());
    let addr = farm.addrs()[0];
    let clients: Vec<Client> = (0..CLIENTS).map(|_| Client::connect(addr)).collect();
    let mut groups: Vec<Vec<Client>> = (0..CLIENT_THREADS).map(|_| Vec::new()).collect();
    for (index, client) in clients.into_iter().enumerate() {
        groups[index % CLIENT_THREADS].push(client);
    }
    let workers: Vec<_> = groups
        .into_iter()
        .map(|mut group| {
            thread::spawn(move || {
                for client in &mut group {
                    assert!(client.reply().starts_with("220 "));
                }
                for client in &mut group {
                    client.send(
                        "EHLO probe.test\r\nMAIL FROM:<probe@probe.test>\r\n\
                         RCPT TO:<alice@farm.test>\r\nQUIT\r\n",
                    );
                }
                for client in &mut group {
                    let codes: Vec<String> =
                        (0..4).map(|_| client.reply()[..3].to_owned()).collect();
                    assert_eq!(codes, ["250", "250", "250", "221"]);
                    client.expect_close();
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    let stats = settled_stats(&farm, |stats| stats.open_connections == 0);
    assert_eq!(stats.connections, CLIENTS as u64);
    assert_eq!(stats.sessions_completed, CLIENTS as u64);
    assert_eq!(stats.rcpt_commands, CLIENTS as u64);
    assert_eq!(stats.open_connections, 0);
}

#[test]
fn drop_stops_the_threads_promptly_and_closes_everything() {
    let farm = SmtpFarm::start(
        vec![
            (loopback(1), Personality::new(MX)),
            (
                loopback(1),
                Personality::new(MX).latency(Duration::from_secs(5)),
            ),
        ],
        2,
    )
    .unwrap();
    let addrs = farm.addrs();
    let mut idle = greeted(&farm);
    // A connection waiting on a far timer must not hold the drop up either.
    let _waiting = Client::connect(addrs[1]);
    let dropped_at = Instant::now();
    drop(farm);
    let took = dropped_at.elapsed();
    assert!(took < Duration::from_millis(500), "{took:?}");
    assert_eq!(idle.line(), None, "open connections are closed");
    for addr in addrs {
        assert!(TcpStream::connect(addr).is_err(), "{addr} still listens");
    }
}

#[test]
fn start_refuses_what_it_cannot_serve_and_says_why() {
    let no_threads = SmtpFarm::start(vec![(loopback(1), Personality::new(MX))], 0);
    let error = no_threads.unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
    assert!(error.to_string().contains("threads >= 1"), "{error}");

    let bad_name = SmtpFarm::start(vec![(loopback(1), Personality::new("mx\r\n250 x"))], 1);
    let error = bad_name.unwrap_err();
    assert!(error.to_string().contains("CR or LF"), "{error}");

    let taken = farm_of(Personality::new(MX));
    let again = SmtpFarm::start(vec![(taken.addrs()[0], Personality::new(MX))], 1);
    let error = again.unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::AddrInUse);
    assert!(error.to_string().contains("port 0"), "{error}");
}

#[test]
fn a_farm_without_listeners_starts_and_stops() {
    let farm = SmtpFarm::start(Vec::new(), 4).unwrap();
    assert!(farm.addrs().is_empty());
    assert_eq!(farm.stats(), FarmStats::default());
}
