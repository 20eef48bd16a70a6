//! STARTTLS end to end: the session against a small SMTP server that speaks real TLS (rustls,
//! server side) over an in-memory pipe, on a hand-moved clock. The server logs every command
//! it reads, and whether it came over TLS, so the tests can say what went on the wire.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;

use super::*;
use crate::sim::tls::SelfSigned;
use crate::tls::{StartTls, TlsClient, TlsVersion};
use crate::verdict::{Reason, Stage};

/// What the server does about TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// STARTTLS offered, never required.
    Offered,
    /// MAIL FROM refused with 530 before TLS (Postfix's `smtpd_tls_security_level = encrypt`).
    Required,
    /// MAIL FROM taken, every RCPT refused with 530 before TLS (an Exim ACL).
    RequiredAtRcpt,
    /// Required, and STARTTLS answered 454.
    Unavailable,
    /// Offered, and answered 454.
    OfferedThenRefused,
    /// 220 to STARTTLS, then bytes that are not TLS.
    Broken,
    /// 220 to STARTTLS, then nothing at all.
    Silent,
    /// 220 to STARTTLS, then a hang-up at the ClientHello.
    HangsUp,
    /// 220 to STARTTLS with a reply nobody asked for in the same write.
    Injects,
    /// Every RCPT before TLS gets Gmail's closing `421 4.7.0 TLS required`.
    ClosesForTls,
}

/// A server of one connection: plain text, then TLS after STARTTLS.
struct Server {
    mode: Mode,
    config: Arc<rustls::ServerConfig>,
    tls: Option<rustls::ServerConnection>,
    input: Vec<u8>,
    mail: bool,
    closed: bool,
    broken_pending: bool,
    /// Every command read, `tls:` in front of those that came over TLS.
    log: Vec<String>,
}

impl Server {
    fn new(mode: Mode, cert: &SelfSigned) -> Self {
        Self {
            mode,
            config: cert.server_config(),
            tls: None,
            input: Vec::new(),
            mail: false,
            closed: false,
            broken_pending: false,
            log: Vec::new(),
        }
    }

    /// Takes what the client wrote; gives back what the server sends.
    fn feed(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        if self.closed || bytes.is_empty() {
            return out;
        }
        if self.broken_pending {
            // The ClientHello, answered with something that is not TLS, or a hang-up.
            self.broken_pending = false;
            if self.mode == Mode::HangsUp {
                self.closed = true;
            } else {
                out.extend_from_slice(b"this is not TLS\r\n");
            }
            return out;
        }
        if let Some(tls) = &mut self.tls {
            let mut rest = bytes;
            while !rest.is_empty() {
                tls.read_tls(&mut rest).unwrap();
                if tls.process_new_packets().is_err() {
                    self.closed = true;
                    break;
                }
            }
            let mut plain = Vec::new();
            let _ = tls.reader().read_to_end(&mut plain);
            self.input.extend_from_slice(&plain);
        } else {
            self.input.extend_from_slice(bytes);
        }
        let mut replies = Vec::new();
        while let Some(end) = self.input.windows(2).position(|w| w == b"\r\n") {
            let line: Vec<u8> = self.input.drain(..end + 2).collect();
            let line = String::from_utf8(line[..end].to_vec()).unwrap();
            let over_tls = self.tls.is_some();
            self.log
                .push(format!("{}{line}", if over_tls { "tls:" } else { "" }));
            let reply = self.answer(&line, over_tls);
            replies.extend_from_slice(reply.as_bytes());
            if line == "STARTTLS" && reply.starts_with("220") {
                out.extend_from_slice(&replies);
                replies.clear();
                match self.mode {
                    Mode::Broken | Mode::HangsUp => self.broken_pending = true,
                    Mode::Injects => out.extend_from_slice(b"250 injected\r\n"),
                    _ => {}
                }
                // Postfix drops what was pipelined after STARTTLS.
                self.input.clear();
                if !matches!(
                    self.mode,
                    Mode::Broken | Mode::Silent | Mode::Injects | Mode::HangsUp
                ) {
                    self.tls =
                        Some(rustls::ServerConnection::new(Arc::clone(&self.config)).unwrap());
                }
                return out;
            }
        }
        match &mut self.tls {
            Some(tls) => {
                tls.writer().write_all(&replies).unwrap();
                while tls.wants_write() {
                    tls.write_tls(&mut out).unwrap();
                }
            }
            None => out.extend_from_slice(&replies),
        }
        out
    }

    fn answer(&mut self, line: &str, over_tls: bool) -> String {
        let verb = line.split([' ', ':']).next().unwrap_or_default();
        let required = matches!(self.mode, Mode::Required | Mode::Unavailable) && !over_tls;
        match verb {
            "EHLO" => {
                let starttls = if over_tls { "" } else { "250-STARTTLS\r\n" };
                format!("250-mx.test\r\n250-PIPELINING\r\n{starttls}250 8BITMIME\r\n")
            }
            "MAIL" if required => "530 5.7.0 Must issue a STARTTLS command first\r\n".into(),
            "MAIL" => {
                self.mail = true;
                "250 2.1.0 Ok\r\n".into()
            }
            "RCPT" if !self.mail => "503 5.5.1 Error: need MAIL command\r\n".into(),
            "RCPT" if self.mode == Mode::ClosesForTls && !over_tls => {
                self.closed = true;
                "421 4.7.0 TLS required for RCPT domain, closing connection. - gsmtp\r\n".into()
            }
            "RCPT" if self.mode == Mode::RequiredAtRcpt && !over_tls => {
                "530 5.7.0 Must issue a STARTTLS command first\r\n".into()
            }
            "RCPT" if line.contains("<alice@x.test>") => "250 2.1.5 Ok\r\n".into(),
            "RCPT" => {
                let mailbox = line.trim_start_matches("RCPT TO:");
                format!("550 5.1.1 {mailbox}: Recipient address rejected: User unknown\r\n")
            }
            "RSET" => {
                self.mail = false;
                "250 2.0.0 Ok\r\n".into()
            }
            "STARTTLS" if over_tls => "503 5.5.1 Error: TLS already active\r\n".into(),
            "STARTTLS" if matches!(self.mode, Mode::Unavailable | Mode::OfferedThenRefused) => {
                "454 4.7.0 TLS not available due to local problem\r\n".into()
            }
            "STARTTLS" => "220 2.0.0 Ready to start TLS\r\n".into(),
            "QUIT" => {
                self.closed = true;
                "221 2.0.0 Bye\r\n".into()
            }
            _ => "502 5.5.2 Error: command not recognized\r\n".into(),
        }
    }
}

/// What a conversation came to.
struct Ended {
    outcomes: Vec<RecipientOutcome>,
    summary: SessionSummary,
    log: Vec<String>,
    /// The client's bytes written after the server's last plain-text byte.
    after_starttls: Vec<u8>,
    /// Each write of the client's, as text where it is text.
    writes: Vec<String>,
}

/// Runs a session against `server` until it ends; `wait` lets time pass when neither side
/// has anything to say (the server went silent).
fn converse(config: SessionConfig, server: Server, mailboxes: &[&str]) -> Ended {
    let starttls = config.starttls;
    converse_with(config, server, mailboxes, starttls)
}

/// [`converse`] with a session that knows the server takes MAIL FROM in plain text
/// ([`Session::with_plain_text_known`]).
fn converse_known(config: SessionConfig, server: Server, mailboxes: &[&str]) -> Ended {
    PLAIN_TEXT_KNOWN.with(|known| known.set(true));
    let ended = converse(config, server, mailboxes);
    PLAIN_TEXT_KNOWN.with(|known| known.set(false));
    ended
}

thread_local! {
    static PLAIN_TEXT_KNOWN: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// [`converse`], the session told when to say STARTTLS ([`Session::with_starttls`]).
fn converse_with(
    config: SessionConfig,
    mut server: Server,
    mailboxes: &[&str],
    starttls: StartTls,
) -> Ended {
    let origin = Instant::now();
    let mut now = origin;
    let recipients: Recipients = mailboxes
        .iter()
        .map(|m| Recipient {
            mailbox: m,
            smtputf8: false,
        })
        .collect();
    let mut session = Session::new(Arc::new(config.check().unwrap()), recipients, now)
        .with_server_name(ServerName::try_from("mx.test").unwrap())
        .with_starttls(starttls);
    if PLAIN_TEXT_KNOWN.with(std::cell::Cell::get) {
        session = session.with_plain_text_known();
    }
    session.handle_connected(now);
    session.handle_input(b"220 mx.test ESMTP\r\n", now);
    let mut after_starttls = Vec::new();
    let mut writes = Vec::new();
    let mut rounds = 0;
    while !session.is_finished() {
        rounds += 1;
        assert!(rounds < 100, "the conversation does not end");
        let out = session.pending_output().to_vec();
        session.consume_output(out.len());
        if server.log.iter().any(|l| l == "STARTTLS") {
            after_starttls.extend_from_slice(&out);
        }
        if !out.is_empty() {
            writes.push(String::from_utf8_lossy(&out).into_owned());
        }
        let reply = server.feed(&out);
        if !reply.is_empty() {
            session.handle_input(&reply, now);
        } else if server.closed {
            session.handle_closed(now);
        } else {
            let at = session.poll_timeout().expect("a deadline while unfinished");
            now = at.max(now);
            session.handle_timeout(now);
        }
    }
    let last_words = session.pending_output().to_vec();
    if server.log.iter().any(|l| l == "STARTTLS") {
        after_starttls.extend_from_slice(&last_words);
    }
    let mut outcomes = vec![None; mailboxes.len()];
    let mut summary = None;
    while let Some(event) = session.poll_event() {
        match event {
            SessionEvent::Recipient { index, outcome } => outcomes[index] = Some(outcome),
            SessionEvent::Finished(s) => summary = Some(*s),
        }
    }
    Ended {
        outcomes: outcomes.into_iter().map(Option::unwrap).collect(),
        summary: summary.unwrap(),
        log: server.log,
        after_starttls,
        writes,
    }
}

fn config(starttls: StartTls) -> SessionConfig {
    SessionConfig {
        starttls,
        ..SessionConfig::new(
            "probe.example.net",
            Sender::Mailbox("probe@example.net".into()),
        )
    }
}

fn reason(outcome: &RecipientOutcome) -> Option<Reason> {
    match outcome {
        RecipientOutcome::Replied {
            stage: Stage::RcptTo,
            reason,
            ..
        } => Some(*reason),
        _ => None,
    }
}

const BOTH: [&str; 2] = ["alice@x.test", "bob@x.test"];

/// Postfix with `smtpd_tls_security_level = encrypt`: MAIL FROM gets 530. The session drops
/// the group's replies, says STARTTLS, EHLO again, and asks over TLS on the same connection;
/// QUIT was held back from the first group so that it could.
#[test]
fn a_530_at_mail_from_starts_tls_and_the_transaction_over() {
    let cert = SelfSigned::new(&["mx.test"]);
    for pipelining in [true, false] {
        let config = SessionConfig {
            pipelining,
            ..config(StartTls::WhenRequired)
        };
        let ended = converse(config, Server::new(Mode::Required, &cert), &BOTH);
        let reasons: Vec<_> = ended.outcomes.iter().map(reason).collect();
        assert_eq!(
            reasons,
            [Some(Reason::Accepted), Some(Reason::MailboxNotFound)],
            "pipelining {pipelining}: {:?}",
            ended.outcomes
        );
        assert_eq!(ended.summary.tls, Some(TlsVersion::Tls13));
        let plain: Vec<&str> = ended
            .log
            .iter()
            .filter(|l| !l.starts_with("tls:"))
            .map(String::as_str)
            .collect();
        let expected_plain: &[&str] = if pipelining {
            &[
                "EHLO probe.example.net",
                "MAIL FROM:<probe@example.net>",
                "RCPT TO:<alice@x.test>",
                "RCPT TO:<bob@x.test>",
                "STARTTLS",
            ]
        } else {
            &[
                "EHLO probe.example.net",
                "MAIL FROM:<probe@example.net>",
                "STARTTLS",
            ]
        };
        assert_eq!(plain, expected_plain, "pipelining {pipelining}");
        assert_eq!(
            ended.log.iter().filter(|l| l.starts_with("tls:")).count(),
            5,
            "EHLO, MAIL, two RCPTs and QUIT over TLS: {:?}",
            ended.log
        );
        assert_eq!(ended.log.last().map(String::as_str), Some("tls:QUIT"));
        assert!(ended.summary.quit_acknowledged);
        // Nothing but TLS records after STARTTLS's 220: the first is a handshake record.
        assert_eq!(ended.after_starttls.first(), Some(&0x16));
        assert!(
            !ended
                .after_starttls
                .windows(4)
                .any(|w| w.eq_ignore_ascii_case(b"RCPT")),
            "a command went in plain text after STARTTLS"
        );
    }
}

/// 530 at RCPT after MAIL FROM was taken: RSET closes the open transaction first.
#[test]
fn a_530_at_rcpt_resets_the_transaction_before_starttls() {
    let cert = SelfSigned::new(&["mx.test"]);
    let ended = converse(
        config(StartTls::WhenRequired),
        Server::new(Mode::RequiredAtRcpt, &cert),
        &BOTH,
    );
    let reasons: Vec<_> = ended.outcomes.iter().map(reason).collect();
    assert_eq!(
        reasons,
        [Some(Reason::Accepted), Some(Reason::MailboxNotFound)]
    );
    assert_eq!(
        &ended.log[..6],
        [
            "EHLO probe.example.net",
            "MAIL FROM:<probe@example.net>",
            "RCPT TO:<alice@x.test>",
            "RCPT TO:<bob@x.test>",
            "RSET",
            "STARTTLS"
        ]
    );
    assert_eq!(ended.log[6], "tls:EHLO probe.example.net");
}

/// A server that offers STARTTLS and does not require it is probed in plain text under the
/// default, with QUIT after the replies (a 530 could still have come).
#[test]
fn when_required_leaves_an_offering_server_in_plain_text() {
    let cert = SelfSigned::new(&["mx.test"]);
    let ended = converse(
        config(StartTls::WhenRequired),
        Server::new(Mode::Offered, &cert),
        &BOTH,
    );
    assert_eq!(ended.summary.tls, None);
    assert!(
        ended
            .log
            .iter()
            .all(|l| !l.starts_with("tls:") && l != "STARTTLS")
    );
    assert_eq!(reason(&ended.outcomes[0]), Some(Reason::Accepted));
    assert_eq!(ended.log.last().map(String::as_str), Some("QUIT"));
}

/// `always`: STARTTLS right after the first EHLO, everything else over TLS.
#[test]
fn always_starts_tls_at_every_server_that_offers_it() {
    let cert = SelfSigned::new(&["mx.test"]);
    let ended = converse(
        config(StartTls::Always),
        Server::new(Mode::Offered, &cert),
        &BOTH,
    );
    assert_eq!(ended.log[..2], ["EHLO probe.example.net", "STARTTLS"]);
    assert!(
        ended.log[2..].iter().all(|l| l.starts_with("tls:")),
        "{:?}",
        ended.log
    );
    assert_eq!(ended.summary.tls, Some(TlsVersion::Tls13));
    let reasons: Vec<_> = ended.outcomes.iter().map(reason).collect();
    assert_eq!(
        reasons,
        [Some(Reason::Accepted), Some(Reason::MailboxNotFound)]
    );
    // Over TLS the server no longer offers STARTTLS, and QUIT ends the group again.
    assert!(!ended.log.iter().any(|l| l == "tls:STARTTLS"));
}

/// `always` at a server that refuses STARTTLS: the session goes on in plain text.
#[test]
fn always_goes_on_in_plain_text_when_starttls_is_refused() {
    let cert = SelfSigned::new(&["mx.test"]);
    let ended = converse(
        config(StartTls::Always),
        Server::new(Mode::OfferedThenRefused, &cert),
        &BOTH,
    );
    assert_eq!(ended.summary.tls, None);
    assert_eq!(reason(&ended.outcomes[0]), Some(Reason::Accepted));
    assert_eq!(ended.log.iter().filter(|l| *l == "STARTTLS").count(), 1);
}

/// `never`: the 530 is the answer, at MAIL FROM: never a verdict on the mailbox.
#[test]
fn never_takes_the_530_as_the_answer() {
    let cert = SelfSigned::new(&["mx.test"]);
    let ended = converse(
        config(StartTls::Never),
        Server::new(Mode::Required, &cert),
        &BOTH,
    );
    assert!(!ended.log.iter().any(|l| l == "STARTTLS"));
    for outcome in &ended.outcomes {
        let RecipientOutcome::Replied {
            stage,
            reply,
            reason,
        } = outcome
        else {
            panic!("{outcome:?}");
        };
        assert_eq!(*stage, Stage::MailFrom);
        assert_eq!(reply.as_reply().code().get(), 530);
        assert_ne!(reason.verdict(), crate::verdict::Verdict::Undeliverable);
        assert_ne!(reason.verdict(), crate::verdict::Verdict::Deliverable);
    }
}

/// A server that demands TLS and then cannot give it: its refusal of STARTTLS is the answer.
#[test]
fn tls_demanded_then_refused_is_the_servers_refusal() {
    let cert = SelfSigned::new(&["mx.test"]);
    let ended = converse(
        config(StartTls::WhenRequired),
        Server::new(Mode::Unavailable, &cert),
        &BOTH,
    );
    for outcome in &ended.outcomes {
        let RecipientOutcome::Replied { stage, reply, .. } = outcome else {
            panic!("{outcome:?}");
        };
        assert_eq!(*stage, Stage::Hello);
        assert_eq!(reply.as_reply().code().get(), 454);
    }
    assert_eq!(ended.summary.tls, None);
}

/// The handshake fails (not TLS, silence, a hang-up, a certificate refused): every recipient is
/// handed back as the prober's TLS failure, with the reason, and nothing more is said in
/// plain text.
#[test]
fn a_failed_handshake_hands_every_recipient_back() {
    let cert = SelfSigned::new(&["mx.test"]);
    for (mode, why) in [
        (Mode::Broken, "corrupt message"),
        (Mode::Silent, "did not finish within 30 s"),
        (
            Mode::HangsUp,
            "closed the connection during the TLS handshake",
        ),
    ] {
        let ended = converse(config(StartTls::Always), Server::new(mode, &cert), &BOTH);
        for outcome in &ended.outcomes {
            assert_eq!(
                *outcome,
                RecipientOutcome::HandedBack(HandBack::TlsFailed),
                "{mode:?}"
            );
        }
        let failure = ended.summary.tls_failure.expect("the reason");
        assert!(failure.contains(why), "{mode:?}: {failure}");
        assert!(
            !ended.after_starttls.windows(4).any(|w| w == b"QUIT"),
            "{mode:?}: QUIT in plain text after STARTTLS"
        );
    }
}

/// `--tls-verify`: a certificate that does not chain to a trusted root fails the handshake; the
/// same certificate, trusted, passes.
#[test]
fn verification_refuses_an_untrusted_certificate_and_takes_a_trusted_one() {
    let cert = SelfSigned::new(&["mx.test"]);
    let other = SelfSigned::new(&["mx.test"]);
    let roots = |c: &SelfSigned| TlsClient::roots_from_pem(c.cert_pem().as_bytes()).unwrap();
    let strict = |c: &SelfSigned| SessionConfig {
        tls: TlsClient::verified(roots(c)).unwrap(),
        ..config(StartTls::Always)
    };
    let refused = converse(strict(&other), Server::new(Mode::Offered, &cert), &BOTH);
    assert_eq!(
        refused.outcomes[0],
        RecipientOutcome::HandedBack(HandBack::TlsFailed)
    );
    let why = refused.summary.tls_failure.unwrap();
    assert!(why.contains("certificate"), "{why}");
    let trusted = converse(strict(&cert), Server::new(Mode::Offered, &cert), &BOTH);
    assert_eq!(trusted.summary.tls, Some(TlsVersion::Tls13));
    assert_eq!(reason(&trusted.outcomes[0]), Some(Reason::Accepted));
}

/// A reply sent with STARTTLS's 220 would be read as if it came over TLS: the server broke the
/// protocol, and no handshake starts.
#[test]
fn bytes_after_the_220_are_a_protocol_violation() {
    let cert = SelfSigned::new(&["mx.test"]);
    let ended = converse(
        config(StartTls::Always),
        Server::new(Mode::Injects, &cert),
        &BOTH,
    );
    assert!(matches!(
        ended.summary.failure,
        Some(Failure::Protocol(ProtocolViolation::Unsolicited(_)))
    ));
    assert_eq!(ended.summary.tls, None);
    assert_eq!(ended.after_starttls.first(), Some(&b'Q'), "QUIT, plain");
}

/// Without a server name a session cannot start TLS: the prober's failure, said so.
#[test]
fn no_server_name_is_a_tls_failure_of_the_probers() {
    let cert = SelfSigned::new(&["mx.test"]);
    let mut server = Server::new(Mode::Offered, &cert);
    let now = Instant::now();
    let recipients: Recipients = [Recipient {
        mailbox: "alice@x.test",
        smtputf8: false,
    }]
    .into_iter()
    .collect();
    let config = Arc::new(config(StartTls::Always).check().unwrap());
    let mut session = Session::new(config, recipients, now);
    session.handle_connected(now);
    session.handle_input(b"220 mx.test ESMTP\r\n", now);
    for _ in 0..3 {
        let out = session.pending_output().to_vec();
        session.consume_output(out.len());
        let reply = server.feed(&out);
        session.handle_input(&reply, now);
    }
    assert!(session.is_finished());
    let mut failure = None;
    while let Some(event) = session.poll_event() {
        if let SessionEvent::Finished(summary) = event {
            failure = summary.tls_failure;
        }
    }
    assert_eq!(failure.as_deref(), Some("no server name to start TLS with"));
    let _ = Duration::ZERO;
}

/// Gmail's `421 4.7.0 TLS required` closes the connection: the recipients are handed back as
/// `TlsRequired` (not `ServiceUnavailable`), and a session told to say STARTTLS first gets the
/// answers over TLS.
#[test]
fn a_421_for_want_of_tls_hands_back_for_a_session_that_starts_tls_first() {
    let cert = SelfSigned::new(&["mx.test"]);
    let ended = converse(
        config(StartTls::WhenRequired),
        Server::new(Mode::ClosesForTls, &cert),
        &BOTH,
    );
    for outcome in &ended.outcomes {
        assert_eq!(
            *outcome,
            RecipientOutcome::HandedBack(HandBack::TlsRequired)
        );
    }
    let closing = ended.summary.closing.expect("the 421");
    assert_eq!(closing.1.as_reply().code().get(), 421);
    // Under `never` the same 421 is only the server closing.
    let never = converse(
        config(StartTls::Never),
        Server::new(Mode::ClosesForTls, &cert),
        &BOTH,
    );
    assert_eq!(
        never.outcomes[0],
        RecipientOutcome::HandedBack(HandBack::ServiceUnavailable)
    );
    // The next session, STARTTLS first.
    let first = converse_with(
        config(StartTls::WhenRequired),
        Server::new(Mode::ClosesForTls, &cert),
        &BOTH,
        StartTls::Always,
    );
    let reasons: Vec<_> = first.outcomes.iter().map(reason).collect();
    assert_eq!(
        reasons,
        [Some(Reason::Accepted), Some(Reason::MailboxNotFound)]
    );
    assert_eq!(first.log[1], "STARTTLS");
}

/// A server that speaks only TLS 1.2: the session speaks it too, and says so.
#[test]
fn a_tls_1_2_server_is_spoken_to_in_tls_1_2() {
    let cert = SelfSigned::new(&["mx.test"]);
    let mut server = Server::new(Mode::Offered, &cert);
    server.config = cert.server_config_for(&[&rustls::version::TLS12]);
    let ended = converse(config(StartTls::Always), server, &BOTH);
    assert_eq!(ended.summary.tls, Some(TlsVersion::Tls12));
    assert_eq!(reason(&ended.outcomes[0]), Some(Reason::Accepted));
}

/// At a server known to take MAIL FROM in plain text, QUIT ends the last group again; an
/// offering server costs no round trip more than one without STARTTLS. Should it say 530 after
/// all, with QUIT gone, the recipients are handed back for a session that starts TLS first.
#[test]
fn a_server_known_to_take_plain_text_gets_quit_in_the_group() {
    let cert = SelfSigned::new(&["mx.test"]);
    let offered = converse_known(
        config(StartTls::WhenRequired),
        Server::new(Mode::Offered, &cert),
        &BOTH,
    );
    assert_eq!(reason(&offered.outcomes[0]), Some(Reason::Accepted));
    assert_eq!(
        offered.log,
        [
            "EHLO probe.example.net",
            "MAIL FROM:<probe@example.net>",
            "RCPT TO:<alice@x.test>",
            "RCPT TO:<bob@x.test>",
            "QUIT"
        ]
    );
    assert_eq!(
        offered.writes[1],
        "MAIL FROM:<probe@example.net>\r\nRCPT TO:<alice@x.test>\r\nRCPT TO:<bob@x.test>\r\nQUIT\r\n",
        "QUIT in the group"
    );
    // Not known: QUIT waits for the replies.
    let unknown = converse(
        config(StartTls::WhenRequired),
        Server::new(Mode::Offered, &cert),
        &BOTH,
    );
    assert_eq!(unknown.writes.last().map(String::as_str), Some("QUIT\r\n"));
    let required = converse_known(
        config(StartTls::WhenRequired),
        Server::new(Mode::Required, &cert),
        &BOTH,
    );
    for outcome in &required.outcomes {
        assert_eq!(
            *outcome,
            RecipientOutcome::HandedBack(HandBack::TlsRequired)
        );
    }
    assert!(!required.log.iter().any(|l| l == "STARTTLS"));
}
