//! STARTTLS by state, on a hand-moved clock: each personality's [`Tls`] played through the
//! [`Conversation`] that serves every farm connection, with a real rustls client on the other
//! side of the bytes. The server's bytes are asserted as they leave: plain text up to the `220`,
//! TLS records after it. Over loopback, through the event loop, in `sockets.rs`.

use std::io::{Read, Write};

use rustls::ClientConnection;
use rustls::pki_types::ServerName;

use super::*;
use crate::sim::tls::SelfSigned;
use crate::tls::TlsClient;

const READY: &str = "220 2.0.0 Ready to start TLS\r\n";
const MUST_STARTTLS: &str = "530 5.7.0 Must issue a STARTTLS command first\r\n";
const EHLO_FIRST: &str = "503 5.5.1 Error: send HELO/EHLO first\r\n";
const NEED_MAIL: &str = "503 5.5.1 Error: need MAIL command\r\n";
const EHLO_WITH_STARTTLS: &str = "250-mx.farm.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n\
                                  250-STARTTLS\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n\
                                  250-SMTPUTF8\r\n250 CHUNKING\r\n";

/// The first byte of a TLS handshake record, and of an alert record.
const HANDSHAKE_RECORD: u8 = 0x16;
const ALERT_RECORD: u8 = 0x15;

/// A bench whose script holds a certificate, as the farm gives every listener one.
fn tls_bench(personality: Personality) -> Bench {
    let mut bench = Bench::new(personality.clone());
    let config = SelfSigned::new(&[MX, "localhost"]).server_config();
    bench.script = ServerScript::new(personality)
        .expect("a valid personality")
        .with_tls(config);
    bench
}

/// One connection on a bench, at the byte level: what the server writes may be TLS.
struct Wire {
    conversation: Conversation,
    now: Instant,
    closed: bool,
}

impl Wire {
    /// A client connects at 0; returns the connection and what the server wrote at once.
    fn open(bench: &mut Bench) -> (Self, Vec<u8>) {
        let now = bench.at(0);
        let client = IpAddr::from(Ipv4Addr::LOCALHOST);
        let conversation = Conversation::open(client, ms(IDLE_LIMIT_MS), &mut bench.context(now));
        let mut wire = Self {
            conversation,
            now,
            closed: false,
        };
        let greeting = wire.take();
        (wire, greeting)
    }

    /// Everything the server has to write now (the write loop of the event loop), and its
    /// close if it closes.
    fn take(&mut self) -> Vec<u8> {
        let mut bytes = Vec::new();
        loop {
            let unsent = self.conversation.unsent();
            if unsent.is_empty() {
                break;
            }
            bytes.extend_from_slice(unsent);
            let written = unsent.len();
            self.conversation.mark_written(written);
        }
        if self.conversation.is_finished(self.now) {
            self.closed = true;
        }
        bytes
    }

    /// Lets time pass to `at_ms`, each timer firing at its instant; returns what the server
    /// wrote meanwhile.
    fn wait(&mut self, bench: &mut Bench, at_ms: u64) -> Vec<u8> {
        let until = bench.at(at_ms);
        let mut bytes = Vec::new();
        for _ in 0..100_000 {
            if self.closed {
                return bytes;
            }
            match next_due(&self.conversation, until) {
                Some(due) => {
                    self.now = self.now.max(due);
                    self.conversation
                        .handle_timeout(self.now, &bench.script, &mut bench.reply);
                    bytes.extend(self.take());
                }
                _ => {
                    self.now = self.now.max(until);
                    return bytes;
                }
            }
        }
        panic!("timers still due at {at_ms} ms: the conversation never settles");
    }

    /// The client's bytes arrive at `at_ms` in one read; returns what the server wrote from
    /// the last call up to and including that instant.
    fn send(&mut self, bench: &mut Bench, at_ms: u64, bytes: &[u8]) -> Vec<u8> {
        let mut written = self.wait(bench, at_ms);
        if self.closed {
            return written;
        }
        self.conversation
            .handle_timeout(self.now, &bench.script, &mut bench.reply);
        if self.conversation.wants_input() {
            self.conversation
                .handle_input(bytes, &mut bench.context(self.now));
        }
        written.extend(self.take());
        written
    }
}

/// A rustls client, the one mxprobe's sessions use, fed by hand.
struct Peer {
    tls: ClientConnection,
    plaintext: Vec<u8>,
    /// The server said close_notify.
    closed_cleanly: bool,
}

impl Peer {
    fn new() -> Self {
        let name = ServerName::try_from(MX).expect("a DNS name").to_owned();
        Self {
            tls: TlsClient::unverified()
                .connect(name)
                .expect("the client configuration is valid"),
            plaintext: Vec::new(),
            closed_cleanly: false,
        }
    }

    /// The records the client has to send.
    fn outgoing(&mut self) -> Vec<u8> {
        let mut bytes = Vec::new();
        while self.tls.wants_write() {
            self.tls.write_tls(&mut bytes).expect("writing into a Vec");
        }
        bytes
    }

    /// The server's bytes: records processed, plaintext kept.
    fn receive(&mut self, mut bytes: &[u8]) -> Result<(), rustls::Error> {
        while !bytes.is_empty() {
            self.tls.read_tls(&mut bytes).expect("rustls takes bytes");
            self.tls.process_new_packets()?;
        }
        let mut chunk = [0; 4096];
        loop {
            match self.tls.reader().read(&mut chunk) {
                Ok(0) => {
                    self.closed_cleanly = true;
                    return Ok(());
                }
                Ok(read) => self.plaintext.extend_from_slice(&chunk[..read]),
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                Err(error) => panic!("reading plaintext: {error}"),
            }
        }
    }

    /// The plaintext received so far, taken.
    fn text(&mut self) -> String {
        String::from_utf8(std::mem::take(&mut self.plaintext)).expect("replies are UTF-8")
    }
}

/// A client in lock-step on a zero-latency bench, one command every 10 ms, in plain text or
/// in TLS as the session stands.
struct Session {
    bench: Bench,
    wire: Wire,
    at_ms: u64,
    peer: Option<Peer>,
}

impl Session {
    fn start(personality: Personality) -> Self {
        let mut bench = tls_bench(personality);
        let (wire, greeting) = Wire::open(&mut bench);
        assert_eq!(greeting, GREETING.as_bytes());
        Self {
            bench,
            wire,
            at_ms: 0,
            peer: None,
        }
    }

    /// `bytes` arrive in one read, 10 ms after the last; returns what the server wrote.
    fn raw(&mut self, bytes: &[u8]) -> Vec<u8> {
        self.at_ms += 10;
        self.wire.send(&mut self.bench, self.at_ms, bytes)
    }

    /// One command line, CRLF added; returns the reply, decrypted if under TLS.
    fn command(&mut self, line: &str) -> String {
        let line = format!("{line}\r\n");
        let Some(mut peer) = self.peer.take() else {
            return String::from_utf8(self.raw(line.as_bytes())).expect("plain replies are UTF-8");
        };
        peer.tls
            .writer()
            .write_all(line.as_bytes())
            .expect("rustls buffers plaintext");
        let records = peer.outgoing();
        let back = self.raw(&records);
        peer.receive(&back).expect("the server's records are valid");
        let reply = peer.text();
        self.peer = Some(peer);
        reply
    }

    /// The client's side of the handshake after a `220`, flight by flight, until it has
    /// nothing more to send; the peer is kept if the handshake completed.
    fn handshake(&mut self) -> Result<(), rustls::Error> {
        let mut peer = Peer::new();
        for _ in 0..10 {
            let records = peer.outgoing();
            if records.is_empty() {
                break;
            }
            let back = self.raw(&records);
            peer.receive(&back)?;
        }
        assert!(!peer.tls.is_handshaking(), "the handshake did not finish");
        self.peer = Some(peer);
        Ok(())
    }

    /// STARTTLS, its `220`, and a handshake that must complete.
    fn start_tls(&mut self) {
        assert_eq!(self.command("STARTTLS"), READY);
        self.handshake().expect("the handshake completes");
    }

    fn count(&self, counter: fn(&Counters) -> &std::sync::atomic::AtomicU64) -> u64 {
        self.bench.count(counter)
    }
}

#[test]
fn offered_tls_starts_a_fresh_session_that_forgets_ehlo_and_stops_advertising() {
    let mut session = Session::start(mx().tls(Tls::Offered));
    assert_eq!(session.command("EHLO probe.test"), EHLO_WITH_STARTTLS);
    assert_eq!(session.command("MAIL FROM:<probe@probe.test>"), MAIL_OK);
    session.start_tls();
    assert_eq!(session.count(|c| &c.tls_handshakes), 1);
    // RFC 3207 §4.2: the server forgot the EHLO and the transaction.
    assert_eq!(session.command("MAIL FROM:<probe@probe.test>"), EHLO_FIRST);
    assert_eq!(session.command("RCPT TO:<alice@farm.test>"), NEED_MAIL);
    assert_eq!(session.command("EHLO probe.test"), EHLO_REPLY);
    assert_eq!(session.command("MAIL FROM:<probe@probe.test>"), MAIL_OK);
    assert_eq!(session.command("RCPT TO:<alice@farm.test>"), RCPT_OK);
    assert_eq!(session.command("RCPT TO:<nobody@farm.test>"), NOBODY_550);
    assert_eq!(
        session.command("STARTTLS"),
        "554 5.5.1 Error: TLS already active\r\n"
    );
    assert_eq!(session.command("QUIT"), BYE);
    assert!(session.wire.closed, "the server closes after its 221");
    let peer = session.peer.as_ref().expect("TLS is up");
    assert!(peer.closed_cleanly, "the 221 is followed by close_notify");
    assert_eq!(session.count(|c| &c.starttls_injections), 0);
    assert_eq!(session.count(|c| &c.sessions_completed), 1);
}

#[test]
fn required_tls_refuses_mail_with_530_until_tls_is_up() {
    let mut session = Session::start(mx().tls(Tls::Required));
    assert_eq!(session.command("EHLO probe.test"), EHLO_WITH_STARTTLS);
    assert_eq!(
        session.command("MAIL FROM:<probe@probe.test>"),
        MUST_STARTTLS
    );
    assert_eq!(session.command("RCPT TO:<alice@farm.test>"), NEED_MAIL);
    session.start_tls();
    assert_eq!(session.command("EHLO probe.test"), EHLO_REPLY);
    assert_eq!(session.command("MAIL FROM:<probe@probe.test>"), MAIL_OK);
    assert_eq!(session.command("RCPT TO:<alice@farm.test>"), RCPT_OK);
    assert_eq!(session.count(|c| &c.tls_handshakes), 1);
}

#[test]
fn tls_required_at_rcpt_takes_mail_and_refuses_each_rcpt_until_tls_is_up() {
    let mut session = Session::start(mx().tls(Tls::RequiredAtRcpt));
    assert_eq!(session.command("EHLO probe.test"), EHLO_WITH_STARTTLS);
    assert_eq!(session.command("MAIL FROM:<probe@probe.test>"), MAIL_OK);
    assert_eq!(session.command("RCPT TO:<alice@farm.test>"), MUST_STARTTLS);
    assert_eq!(session.command("RCPT TO:<nobody@farm.test>"), MUST_STARTTLS);
    session.start_tls();
    assert_eq!(session.command("HELO probe.test"), "250 mx.farm.test\r\n");
    assert_eq!(session.command("MAIL FROM:<probe@probe.test>"), MAIL_OK);
    assert_eq!(session.command("RCPT TO:<alice@farm.test>"), RCPT_OK);
    assert_eq!(session.command("RCPT TO:<nobody@farm.test>"), NOBODY_550);
}

#[test]
fn unavailable_tls_is_advertised_answered_454_and_still_required() {
    let mut session = Session::start(mx().tls(Tls::Unavailable));
    assert_eq!(session.command("EHLO probe.test"), EHLO_WITH_STARTTLS);
    assert_eq!(
        session.command("STARTTLS"),
        "454 4.7.0 TLS not available due to local problem\r\n"
    );
    assert_eq!(
        session.command("MAIL FROM:<probe@probe.test>"),
        MUST_STARTTLS
    );
    assert_eq!(session.command("RCPT TO:<alice@farm.test>"), NEED_MAIL);
    assert_eq!(
        session.command("NOOP"),
        OK,
        "the session goes on in plain text"
    );
    assert!(!session.wire.closed);
    assert_eq!(session.count(|c| &c.tls_handshakes), 0);
}

#[test]
fn a_broken_handshake_answers_the_client_hello_with_garbage_and_closes() {
    let mut session = Session::start(mx().tls(Tls::BrokenHandshake));
    assert_eq!(session.command("EHLO probe.test"), EHLO_WITH_STARTTLS);
    assert_eq!(session.command("STARTTLS"), READY);
    let mut peer = Peer::new();
    let client_hello = peer.outgoing();
    assert_eq!(session.raw(&client_hello), b"garbage\r\n");
    assert!(session.wire.closed, "the server closes after its garbage");
    assert!(
        peer.receive(b"garbage\r\n").is_err(),
        "the client's handshake fails"
    );
    assert_eq!(session.count(|c| &c.tls_handshakes), 0);
}

#[test]
fn without_tls_starttls_is_neither_advertised_nor_implemented() {
    let mut session = Session::start(mx());
    assert_eq!(session.command("EHLO probe.test"), EHLO_REPLY);
    assert_eq!(
        session.command("STARTTLS"),
        "502 5.5.1 Error: command not implemented\r\n"
    );
    assert_eq!(session.command("MAIL FROM:<probe@probe.test>"), MAIL_OK);
}

#[test]
fn starttls_with_an_argument_is_a_syntax_error() {
    let mut session = Session::start(mx().tls(Tls::Offered));
    assert_eq!(
        session.command("STARTTLS now"),
        "501 5.5.4 Syntax: STARTTLS\r\n"
    );
    session.start_tls();
}

#[test]
fn plain_text_after_starttls_in_the_same_read_is_discarded_and_counted() {
    let mut session = Session::start(mx().tls(Tls::Offered));
    // EHLO before STARTTLS in the same read is a pipelined group, answered; what follows
    // STARTTLS is the injection of CVE-2011-0411, never answered.
    let written = session.raw(
        b"EHLO probe.test\r\nSTARTTLS\r\nMAIL FROM:<probe@probe.test>\r\n\
          RCPT TO:<alice@farm.test>\r\n",
    );
    assert_eq!(
        String::from_utf8(written).expect("plain text"),
        format!("{EHLO_WITH_STARTTLS}{READY}")
    );
    assert_eq!(session.count(|c| &c.starttls_injections), 1);
    assert_eq!(
        session.count(|c| &c.mail_commands),
        0,
        "the MAIL was never read"
    );
    session
        .handshake()
        .expect("the injected bytes did not reach TLS");
    // No transaction was started by the injected MAIL: it needs EHLO, then starts one.
    assert_eq!(session.command("RCPT TO:<alice@farm.test>"), NEED_MAIL);
    assert_eq!(session.command("EHLO probe.test"), EHLO_REPLY);
    assert_eq!(session.command("MAIL FROM:<probe@probe.test>"), MAIL_OK);
    assert_eq!(session.count(|c| &c.mail_commands), 1);
    assert_eq!(session.count(|c| &c.starttls_injections), 1);
}

#[test]
fn bytes_that_are_not_tls_after_the_220_get_an_alert_and_a_close() {
    let mut session = Session::start(mx().tls(Tls::Offered));
    assert_eq!(session.command("STARTTLS"), READY);
    let written = session.raw(b"EHLO probe.test\r\n");
    assert!(session.wire.closed, "the server closes");
    assert_eq!(
        written.first(),
        Some(&ALERT_RECORD),
        "an alert, not a reply: {written:?}"
    );
    assert_eq!(session.count(|c| &c.tls_handshakes), 0);
}

#[test]
fn a_client_silent_after_the_220_is_closed_at_the_idle_limit_without_a_word() {
    let mut session = Session::start(mx().tls(Tls::Offered));
    assert_eq!(session.command("STARTTLS"), READY);
    let at = session.at_ms + IDLE_LIMIT_MS + HORIZON_MS;
    let written = session.wire.wait(&mut session.bench, at);
    assert_eq!(written, b"", "no 421 in plain text inside a handshake");
    assert!(session.wire.closed);
}

#[test]
fn the_220_leaves_in_plain_text_after_its_latency_and_replies_in_tls_keep_it() {
    let mut bench = tls_bench(mx().tls(Tls::Offered).latency(ms(100)));
    let (mut wire, greeting) = Wire::open(&mut bench);
    assert_eq!(greeting, b"");
    assert_eq!(wire.wait(&mut bench, 100), GREETING.as_bytes());
    assert_eq!(wire.send(&mut bench, 150, b"STARTTLS\r\n"), b"");
    assert_eq!(wire.wait(&mut bench, 249), b"");
    assert_eq!(wire.wait(&mut bench, 250), READY.as_bytes());
    // The handshake costs no simulated latency: each flight is answered at once.
    let mut peer = Peer::new();
    let server_flight = wire.send(&mut bench, 260, &peer.outgoing());
    assert_eq!(server_flight.first(), Some(&HANDSHAKE_RECORD));
    peer.receive(&server_flight).expect("a valid server flight");
    let tickets = wire.send(&mut bench, 270, &peer.outgoing());
    peer.receive(&tickets).expect("valid records");
    assert!(!peer.tls.is_handshaking());
    assert_eq!(bench.count(|c| &c.tls_handshakes), 1);
    // A reply inside TLS is held one delay, then encrypted.
    peer.tls
        .writer()
        .write_all(EHLO.as_bytes())
        .expect("buffered");
    assert_eq!(wire.send(&mut bench, 300, &peer.outgoing()), b"");
    assert_eq!(wire.wait(&mut bench, 399), b"");
    let sealed = wire.wait(&mut bench, 400);
    assert!(!sealed.windows(4).any(|w| w == b"250-"), "encrypted");
    peer.receive(&sealed).expect("valid records");
    assert_eq!(peer.text(), EHLO_REPLY);
}

#[test]
fn a_client_hello_sent_before_the_220_arrives_is_answered_behind_it() {
    let mut bench = tls_bench(mx().tls(Tls::Offered).latency(ms(100)));
    let (mut wire, _) = Wire::open(&mut bench);
    wire.wait(&mut bench, 100);
    assert_eq!(wire.send(&mut bench, 150, b"STARTTLS\r\n"), b"");
    let mut peer = Peer::new();
    // An impatient client, in a read of its own: TLS, not an injection.
    assert_eq!(wire.send(&mut bench, 160, &peer.outgoing()), b"");
    let written = wire.wait(&mut bench, 250);
    let flight = written
        .strip_prefix(READY.as_bytes())
        .expect("the 220 comes first, in plain text");
    assert_eq!(flight.first(), Some(&HANDSHAKE_RECORD));
    peer.receive(flight).expect("a valid server flight");
    let tickets = wire.send(&mut bench, 260, &peer.outgoing());
    peer.receive(&tickets).expect("valid records");
    assert_eq!(bench.count(|c| &c.tls_handshakes), 1);
    assert_eq!(bench.count(|c| &c.starttls_injections), 0);
}
