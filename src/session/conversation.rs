//! [`Session`]: the state machine of one probe conversation.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Instant;

use rustls::pki_types::ServerName;

use super::config::{CheckedSessionConfig, Sender};
use super::outcome::{
    Answering, Failure, HandBack, Misalignment, ProtocolViolation, RecipientOutcome,
    SessionSummary, Wait,
};
use super::recipients::Recipients;
use super::transcript::{Direction, Transcript};
use crate::smtp::reply::{OwnedReply, ReplyReader};
use crate::smtp::{Command, CommandError, Extensions, ReversePath, parse_ehlo};
use crate::tls::{StartTls, TlsVersion};
use crate::verdict::{Stage, classify};

/// What a session reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// Recipient `index` (its position in the list the session was made with) is settled.
    Recipient {
        /// Which recipient.
        index: usize,
        /// What became of it.
        outcome: RecipientOutcome,
    },
    /// The session is over: every recipient has had its event, and the connection should be
    /// closed once [`Session::pending_output`] is written (or at once if it cannot be). Boxed:
    /// it comes once per session, and keeps every other event small.
    Finished(Box<SessionSummary>),
}

/// What a reply we wait for answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Awaiting {
    Greeting,
    Ehlo,
    Helo,
    MailFrom,
    /// The RCPT of this recipient (an index that fits 32 bits: [`Recipients`] holds no more).
    Rcpt(u32),
    Rset,
    /// The reply to STARTTLS.
    StartTls,
    /// Not a reply: the TLS handshake after STARTTLS's `220`, with the EHLO wait's deadline.
    Handshake,
    Quit,
}

impl Awaiting {
    fn stage(self) -> Stage {
        match self {
            Self::Greeting => Stage::Greeting,
            Self::Ehlo | Self::Helo | Self::StartTls | Self::Handshake => Stage::Hello,
            Self::MailFrom | Self::Rset | Self::Quit => Stage::MailFrom,
            Self::Rcpt(_) => Stage::RcptTo,
        }
    }

    fn wait(self) -> Wait {
        match self {
            Self::Rset => Wait::Rset,
            other => Wait::Reply(other.stage()),
        }
    }

    fn answering(self) -> Answering {
        match self {
            Self::Greeting => Answering::Greeting,
            Self::Ehlo => Answering::Ehlo,
            Self::Helo => Answering::Helo,
            Self::MailFrom => Answering::MailFrom,
            Self::Rcpt(_) => Answering::RcptTo,
            Self::Rset => Answering::Rset,
            Self::StartTls | Self::Handshake => Answering::StartTls,
            Self::Quit => Answering::Quit,
        }
    }
}

/// Where the session stands with TLS (RFC 3207).
#[derive(Debug, Default)]
enum TlsState {
    /// Plain text.
    #[default]
    Off,
    /// STARTTLS was answered `220`: the handshake is under way, and nothing else is said.
    Handshaking(Box<rustls::ClientConnection>),
    /// The handshake is done: every byte both ways goes through it.
    On(Box<rustls::ClientConnection>, TlsVersion),
}

/// Where the conversation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Connecting,
    Talking,
    /// QUIT sent (at the end of a pipelined group, replies to the group may still be due);
    /// waiting (bounded) for 221.
    Quitting,
    Done,
}

/// One probe conversation on one connection, sans-IO.
///
/// # Calling contract
///
/// Inputs, each with the current time (`now` never goes backwards):
/// [`handle_connected`](Self::handle_connected) once the TCP connection is up,
/// [`handle_input`](Self::handle_input) with every byte read,
/// [`handle_closed`](Self::handle_closed) when the peer closed or the socket failed (before or
/// after connecting), [`handle_timeout`](Self::handle_timeout) when
/// [`poll_timeout`](Self::poll_timeout)'s instant has come.
///
/// After every input: write [`pending_output`](Self::pending_output) and report what was
/// written with [`consume_output`](Self::consume_output); drain
/// [`poll_event`](Self::poll_event) until `None`; sleep until
/// [`poll_timeout`](Self::poll_timeout). When [`is_finished`](Self::is_finished), write what
/// output is left if the socket takes it and close the connection.
///
/// # Guarantees
///
/// - Every recipient gets exactly one [`SessionEvent::Recipient`], then comes one
///   [`SessionEvent::Finished`].
/// - A recipient's [`RecipientOutcome::Replied`] is handed out only once the session can vouch
///   that the reply answered that recipient's own command: every reply is checked against the
///   codes its command may get (RFC 5321 §4.3.2), an RCPT reply that names another recipient
///   of the session is refused, and the session holds its answers until QUIT is answered
///   `221` with nothing after it (see [`Misalignment`]). Otherwise they are handed back as
///   [`RecipientOutcome::Unconfirmed`] (ask again, without pipelining), or fail as a protocol
///   error when the sequence broke in lock-step.
/// - It never sends DATA or BDAT: [`Command`] cannot say them.
/// - Every wait has a deadline (per reply, and one for the session), and memory is bounded:
///   replies by [`crate::smtp::Limits`], output by the commands of one transaction.
/// - It never speaks before the greeting is complete, and a server that speaks out of turn
///   is a protocol error.
#[derive(Debug)]
pub struct Session {
    config: Arc<CheckedSessionConfig>,
    /// Who to ask, and who is settled.
    recipients: Recipients,
    /// The queue of recipients not yet sent: the unsettled ones from here on, in order.
    queue_from: usize,
    /// In lock-step, the current transaction's recipients not yet sent: the unsettled ones in
    /// `batch_from..queue_from`.
    batch_from: usize,
    /// Recipients asked in the current transaction.
    in_transaction: usize,
    /// Replies expected, in order, the first with its deadline.
    awaiting: VecDeque<Awaiting>,
    reply_deadline: Option<Instant>,
    phase: Phase,
    /// A 452 or a failed MAIL FROM: ask no more, quit when the replies in flight are in.
    stop_asking: bool,
    reader: ReplyReader,
    out: Vec<u8>,
    out_start: usize,
    events: VecDeque<SessionEvent>,
    extensions: Option<Extensions>,
    greeting: Option<OwnedReply>,
    /// The 421 that closed the session, and the command it answered, if one did. Boxed: rare.
    closing: Option<Box<(Stage, OwnedReply)>>,
    quit_acknowledged: bool,
    failure: Option<Failure>,
    transactions: usize,
    pipelined: bool,
    /// Evidence that replies and commands no longer line up, once seen.
    broken: Option<ProtocolViolation>,
    started: Instant,
    transcript: Option<Transcript>,
    /// The name TLS is started with (SNI, and what a verifying client checks).
    server_name: Option<ServerName<'static>>,
    /// When to say STARTTLS: the configuration's, unless [`Self::with_starttls`] said.
    starttls: StartTls,
    /// The server is known to take MAIL FROM in plain text ([`Self::with_plain_text_known`]).
    plain_text_known: bool,
    tls: TlsState,
    /// With TLS, `out[..sealed]` is ciphertext; what is written after it is plain text until
    /// [`Self::seal`] encrypts it at the end of the input being handled.
    sealed: usize,
    /// The server answered a command "530, STARTTLS first": the replies still in flight are
    /// read and dropped, then STARTTLS, and the transaction's recipients are asked again.
    draining_for_tls: bool,
    /// The server demanded TLS (a `530`), as opposed to being offered it.
    tls_demanded: bool,
    /// The server refused STARTTLS: the session goes on in plain text (opportunistic TLS).
    starttls_refused: bool,
    /// RSET is answered before STARTTLS, to close a transaction the server opened.
    tls_after_rset: bool,
    /// The first recipient of the current transaction, and whether MAIL FROM opened it.
    transaction_from: usize,
    transaction_open: bool,
    tls_failure: Option<String>,
}

impl Session {
    /// A session that will ask about `recipients`, from the moment the connect call is made.
    #[must_use]
    pub fn new(config: Arc<CheckedSessionConfig>, recipients: Recipients, now: Instant) -> Self {
        let transcript = config.transcript.then(Transcript::default);
        let reader = ReplyReader::new(config.reply_limits);
        let starttls = config.starttls;
        Self {
            config,
            recipients,
            queue_from: 0,
            batch_from: 0,
            in_transaction: 0,
            awaiting: VecDeque::new(),
            reply_deadline: None,
            phase: Phase::Connecting,
            stop_asking: false,
            reader,
            out: Vec::new(),
            out_start: 0,
            events: VecDeque::new(),
            extensions: None,
            greeting: None,
            closing: None,
            quit_acknowledged: false,
            failure: None,
            transactions: 0,
            pipelined: false,
            broken: None,
            started: now,
            transcript,
            server_name: None,
            starttls,
            plain_text_known: false,
            tls: TlsState::Off,
            sealed: 0,
            draining_for_tls: false,
            tls_demanded: false,
            starttls_refused: false,
            tls_after_rset: false,
            transaction_from: 0,
            transaction_open: false,
            tls_failure: None,
        }
    }

    /// The server's name for TLS: sent as SNI, and what the certificate must name when the
    /// configuration verifies ([`crate::tls::server_name`] makes it from the MX host). A session
    /// without one that is asked to start TLS fails the handshake as the prober's own failure
    /// ([`HandBack::TlsFailed`]).
    #[must_use]
    pub fn with_server_name(mut self, name: ServerName<'static>) -> Self {
        self.server_name = Some(name);
        self
    }

    /// When this session says STARTTLS, whatever the configuration says: the engine asks a
    /// domain whose server closed for want of TLS ([`HandBack::TlsRequired`]) with
    /// [`StartTls::Always`].
    #[must_use]
    pub fn with_starttls(mut self, when: StartTls) -> Self {
        self.starttls = when;
        self
    }

    /// The server is known to take MAIL FROM in plain text (an earlier session's RCPTs were
    /// answered without TLS): QUIT ends the last pipelined group as it does at servers that do
    /// not offer STARTTLS. Without this, under [`StartTls::WhenRequired`] at a server that
    /// offers STARTTLS, QUIT waits for the replies so that a `530` can still be answered by
    /// starting over on the same connection. Should the server say `530` anyway, with QUIT
    /// already sent, the recipients are handed back as [`HandBack::TlsRequired`].
    #[must_use]
    pub fn with_plain_text_known(mut self) -> Self {
        self.plain_text_known = true;
        self
    }

    /// The TCP connection is up: wait for the greeting.
    pub fn handle_connected(&mut self, now: Instant) {
        if self.phase != Phase::Connecting {
            return;
        }
        self.phase = Phase::Talking;
        self.expect(Awaiting::Greeting, now);
    }

    /// Bytes arrived from the server.
    pub fn handle_input(&mut self, bytes: &[u8], now: Instant) {
        if !matches!(self.phase, Phase::Talking | Phase::Quitting) {
            return;
        }
        if matches!(self.tls, TlsState::Off) {
            self.reader.push(bytes);
        } else if let Err(why) = self.decrypt(bytes) {
            self.tls_failed(why);
        } else if let TlsState::Handshaking(conn) = &self.tls
            && !conn.is_handshaking()
        {
            self.handshake_done(now);
        }
        self.read_replies(now);
        self.seal();
    }

    /// Reads the replies the bytes so far complete, and answers them.
    fn read_replies(&mut self, now: Instant) {
        loop {
            if self.phase == Phase::Done {
                return;
            }
            let reply = match self.reader.next_reply() {
                Ok(Some(reply)) => reply.into_owned(),
                Ok(None) => return,
                Err(error) => {
                    self.violation(ProtocolViolation::Malformed(error), now);
                    return;
                }
            };
            if let Some(transcript) = &mut self.transcript {
                transcript.push(
                    now - self.started,
                    Direction::Received,
                    reply.as_reply().wire(),
                );
            }
            let Some(front) = self.awaiting.pop_front() else {
                self.violation(ProtocolViolation::Unsolicited(Some(reply)), now);
                return;
            };
            // Bytes already here when the last expected reply is read were sent before the
            // server could have seen our next command: it talks out of turn. After QUIT's 221
            // that is one reply too many, so the 221 proves nothing.
            let out_of_turn = self.awaiting.is_empty() && self.reader.buffered() > 0;
            self.reply_deadline = None;
            // After STARTTLS's 220 too: plain text sent ahead of the handshake would be read as
            // if it came over TLS (CVE-2011-0411 is the server-side twin).
            if out_of_turn && matches!(front, Awaiting::Quit | Awaiting::StartTls) {
                let extra = self.unsolicited();
                self.violation(extra, now);
                return;
            }
            self.on_reply(front, reply, now);
            if out_of_turn && self.phase != Phase::Done {
                let extra = self.unsolicited();
                self.violation(extra, now);
                return;
            }
            if let Some(&next) = self.awaiting.front() {
                self.reply_deadline = Some(now + self.timeout_of(next));
            }
        }
    }

    /// The peer closed the connection, or the socket failed (before or after connecting).
    pub fn handle_closed(&mut self, now: Instant) {
        let _ = now;
        match self.phase {
            Phase::Done => {}
            Phase::Connecting => self.finish(RecipientOutcome::HandedBack(HandBack::ConnectFailed)),
            Phase::Talking if matches!(self.tls, TlsState::Handshaking(_)) => {
                self.tls_failed(
                    "the server closed the connection during the TLS handshake".to_owned(),
                );
                self.seal();
            }
            Phase::Quitting => {
                self.check_quit_partial();
                self.finish(RecipientOutcome::HandedBack(HandBack::ConnectionLost));
            }
            Phase::Talking => self.finish(RecipientOutcome::HandedBack(HandBack::ConnectionLost)),
        }
    }

    /// The connection was to go through a SOCKS5 proxy, and the proxy failed (refused,
    /// hung up, broke its protocol or took too long) before the server was reached: every
    /// recipient is handed back with [`HandBack::ProxyFailed`]. Only before the server is
    /// reached; afterwards the tunnel is the server's connection, and its failures are the
    /// server's.
    pub fn handle_proxy_failed(&mut self, now: Instant) {
        let _ = now;
        if self.phase == Phase::Connecting {
            self.finish(RecipientOutcome::HandedBack(HandBack::ProxyFailed));
        }
    }

    /// A deadline has come.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.on_timeout(now);
        self.seal();
    }

    fn on_timeout(&mut self, now: Instant) {
        if self.phase == Phase::Done {
            return;
        }
        if now >= self.session_deadline() {
            self.failure = Some(Failure::Timeout(Wait::Session));
            // QUIT goes out as a courtesy (unless it went already); nothing waits for its 221.
            if self.phase == Phase::Talking {
                self.write_always(&Command::Quit, now);
            }
            self.finish(RecipientOutcome::Failed(Failure::Timeout(Wait::Session)));
            return;
        }
        if self.phase == Phase::Connecting {
            if now >= self.connect_deadline() {
                self.failure = Some(Failure::Timeout(Wait::Connect));
                self.finish(RecipientOutcome::HandedBack(HandBack::ConnectFailed));
            }
            return;
        }
        let Some(deadline) = self.reply_deadline else {
            return;
        };
        if now < deadline {
            return;
        }
        let Some(&front) = self.awaiting.front() else {
            return;
        };
        if front == Awaiting::Handshake {
            // Nothing may be said in plain text now, not even QUIT.
            self.tls_failed(format!(
                "the TLS handshake did not finish within {} s",
                self.timeout_of(front).as_secs_f64()
            ));
            return;
        }
        if front == Awaiting::Quit {
            self.check_quit_partial();
            self.failure = Some(Failure::Timeout(Wait::Quit));
            self.finish(RecipientOutcome::HandedBack(HandBack::ConnectionLost));
            return;
        }
        // The server stopped answering: whoever is still waiting gets a timeout. QUIT goes out
        // (unless it already went with the last group), but there is no point waiting for its
        // answer behind the ones that never came.
        let failure = Failure::Timeout(front.wait());
        self.failure = Some(failure.clone());
        if self.phase == Phase::Talking {
            self.write_always(&Command::Quit, now);
        }
        self.finish(RecipientOutcome::Failed(failure));
    }

    /// The bytes to write to the server, oldest first.
    #[must_use]
    pub fn pending_output(&self) -> &[u8] {
        &self.out[self.out_start..]
    }

    /// `n` bytes of [`pending_output`](Self::pending_output) were written.
    pub fn consume_output(&mut self, n: usize) {
        self.out_start = (self.out_start + n).min(self.out.len());
        if self.out_start == self.out.len() {
            // All written: give the buffer back while the session waits for replies.
            self.out = Vec::new();
            self.out_start = 0;
            self.sealed = 0;
        }
    }

    /// The next event. Events come once the session is over: until then no answer can be
    /// vouched for (see [`Misalignment`]).
    #[must_use]
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        if self.phase != Phase::Done {
            return None;
        }
        let event = self.events.pop_front();
        if event.is_none() {
            // All taken: give the queue back while the session waits for replies.
            self.events = VecDeque::new();
        }
        event
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next; `None` once finished.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let wait = match self.phase {
            Phase::Done => return None,
            Phase::Connecting => Some(self.connect_deadline()),
            Phase::Talking | Phase::Quitting => self.reply_deadline,
        };
        let session_deadline = self.session_deadline();
        Some(wait.map_or(session_deadline, |w| w.min(session_deadline)))
    }

    /// True once the session is over: close the connection.
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.phase == Phase::Done
    }

    /// True while bytes from the server are wanted.
    #[must_use]
    pub fn wants_read(&self) -> bool {
        matches!(self.phase, Phase::Talking | Phase::Quitting)
    }

    /// The conversation so far, if the configuration asked for one.
    #[must_use]
    pub fn transcript(&self) -> Option<&Transcript> {
        self.transcript.as_ref()
    }

    /// The recipients this session was made with.
    #[must_use]
    pub fn recipients(&self) -> &Recipients {
        &self.recipients
    }

    fn connect_deadline(&self) -> Instant {
        self.started + self.config.timeouts.connect
    }

    fn session_deadline(&self) -> Instant {
        self.started + self.config.timeouts.session
    }

    /// Takes the next recipient off the queue.
    fn pop_queue(&mut self) -> Option<usize> {
        let index = self
            .recipients
            .first_unsettled(self.queue_from, self.recipients.len())?;
        self.queue_from = index + 1;
        Some(index)
    }

    fn queue_is_empty(&self) -> bool {
        self.recipients
            .first_unsettled(self.queue_from, self.recipients.len())
            .is_none()
    }

    /// Takes the next recipient of the lock-step batch.
    fn pop_batch(&mut self) -> Option<usize> {
        let index = self
            .recipients
            .first_unsettled(self.batch_from, self.queue_from)?;
        self.batch_from = index + 1;
        Some(index)
    }

    fn batch_is_empty(&self) -> bool {
        self.recipients
            .first_unsettled(self.batch_from, self.queue_from)
            .is_none()
    }

    /// Settles every recipient from `from` on that is not settled yet, and empties the queue
    /// and the batch.
    fn settle_from(&mut self, from: usize, outcome: &RecipientOutcome) {
        for index in from..self.recipients.len() {
            if !self.recipients.is_settled(index) {
                self.settle(index, outcome.clone());
            }
        }
        self.queue_from = self.recipients.len();
        self.batch_from = self.queue_from;
    }

    fn timeout_of(&self, awaiting: Awaiting) -> std::time::Duration {
        let t = &self.config.timeouts;
        match awaiting {
            Awaiting::Greeting => t.greeting,
            Awaiting::Ehlo | Awaiting::Helo => t.hello,
            Awaiting::MailFrom => t.mail_from,
            Awaiting::Rcpt(_) => t.rcpt_to,
            Awaiting::Rset => t.rset,
            Awaiting::StartTls | Awaiting::Handshake => t.hello,
            Awaiting::Quit => t.quit,
        }
    }

    /// Waits for a reply to a command just written (or for the greeting).
    fn expect(&mut self, awaiting: Awaiting, now: Instant) {
        if self.awaiting.is_empty() {
            self.reply_deadline = Some(now + self.timeout_of(awaiting));
        }
        self.awaiting.push_back(awaiting);
    }

    /// Appends a command to the output, or says why it cannot be written and appends nothing
    /// (the EHLO name and the sender are checked before a session exists; a recipient that
    /// does not encode is settled instead).
    fn write(&mut self, command: &Command<'_>, now: Instant) -> Result<(), CommandError> {
        let start = self.out.len();
        command.encode(&mut self.out)?;
        self.record_sent(start, now);
        Ok(())
    }

    /// Writes a command that has no argument (QUIT, RSET), which always encodes.
    fn write_always(&mut self, command: &Command<'_>, now: Instant) {
        let written = self.write(command, now);
        debug_assert!(
            written.is_ok(),
            "a command without an argument always encodes"
        );
    }

    /// Puts what was written to the output from `start` on in the transcript, if kept.
    fn record_sent(&mut self, start: usize, now: Instant) {
        if let Some(transcript) = &mut self.transcript {
            transcript.push(now - self.started, Direction::Sent, &self.out[start..]);
        }
    }

    fn on_reply(&mut self, awaiting: Awaiting, reply: OwnedReply, now: Instant) {
        let code = reply.as_reply().code().get();
        if let Some(violation) = self.misfit(awaiting, &reply) {
            self.violation(violation, now);
            return;
        }
        match awaiting {
            Awaiting::Greeting => {
                self.greeting = Some(reply.clone());
                match code {
                    220 => self.hello(Awaiting::Ehlo, now),
                    421 => self.service_unavailable(Stage::Greeting, reply),
                    _ => self.refused_all(Stage::Greeting, &reply, now),
                }
            }
            Awaiting::Ehlo | Awaiting::Helo => match code {
                250 => {
                    self.extensions = Some(if awaiting == Awaiting::Ehlo {
                        parse_ehlo(&reply.as_reply())
                            .map_or_else(|_| Extensions::default(), |e| e.extensions)
                    } else {
                        Extensions::default()
                    });
                    self.after_hello(now);
                }
                // RFC 5321 §4.1.4: a server that does not know EHLO answers 500 or 502; try
                // HELO, which every server knows.
                500 | 502 if awaiting == Awaiting::Ehlo => self.hello(Awaiting::Helo, now),
                421 => self.service_unavailable(Stage::Hello, reply),
                _ => self.refused_all(Stage::Hello, &reply, now),
            },
            Awaiting::MailFrom => match code {
                250 => {
                    self.transaction_open = true;
                    self.send_next_rcpt(now);
                }
                421 => self.service_unavailable(Stage::MailFrom, reply),
                _ if self.tls_would_help(&reply) => self.tls_demanded(now),
                // The sender was refused: every recipient gets that answer, and RCPT replies
                // still in flight (503 "need MAIL") are read and ignored.
                _ => self.refused_all(Stage::MailFrom, &reply, now),
            },
            Awaiting::Rcpt(index) => {
                let index = index as usize;
                if self.recipients.is_settled(index) {
                    // Settled by an earlier reply (a refused MAIL FROM); this one is its echo.
                } else if code == 421 {
                    self.service_unavailable(Stage::RcptTo, reply);
                    return;
                } else if self.draining_for_tls {
                    // Sent before the server asked for TLS: asked again over it.
                } else if self.tls_would_help(&reply) {
                    self.draining_for_tls = true;
                    self.tls_demanded = true;
                } else if self.names_another_recipient(index, &reply) {
                    self.violation(ProtocolViolation::NamesAnotherRecipient(reply), now);
                    return;
                } else if is_too_many_recipients(&reply) {
                    self.settle(
                        index,
                        RecipientOutcome::HandedBack(HandBack::TooManyRecipients),
                    );
                    self.hand_back_unasked(HandBack::TooManyRecipients);
                    self.stop_asking = true;
                } else {
                    let reason = classify(Stage::RcptTo, &reply.as_reply());
                    self.settle(
                        index,
                        RecipientOutcome::Replied {
                            stage: Stage::RcptTo,
                            reply,
                            reason,
                        },
                    );
                }
                self.after_rcpt_reply(now);
            }
            Awaiting::Rset => match code {
                250 if self.tls_after_rset => {
                    self.tls_after_rset = false;
                    self.transaction_open = false;
                    self.start_tls(now);
                }
                250 => self.start_transaction(now),
                421 => self.service_unavailable(Stage::MailFrom, reply),
                _ => {
                    self.hand_back_unasked(HandBack::ResetRefused);
                    self.quit(now);
                }
            },
            Awaiting::StartTls => match code {
                220 => self.begin_tls(now),
                421 => self.service_unavailable(Stage::Hello, reply),
                // Offered, then refused (454 "TLS not available"): opportunistic TLS goes on in
                // plain text; a server that demanded TLS and cannot give it refused the session.
                _ if !self.tls_demanded => {
                    self.starttls_refused = true;
                    self.after_hello(now);
                }
                _ => self.refused_all(Stage::Hello, &reply, now),
            },
            Awaiting::Handshake => {
                // No reply is read during the handshake (`misfit` refuses any).
            }
            Awaiting::Quit => {
                self.quit_acknowledged = true;
                self.finish(RecipientOutcome::HandedBack(HandBack::ConnectionLost));
            }
        }
    }

    /// True if STARTTLS could still be said and `reply` refuses a command for want of it:
    /// `530` (RFC 3207 §4: "Must issue a STARTTLS command first"), `x.7.10` ("encryption
    /// needed", RFC 5248), or `x.7.0` with text naming TLS. With `StartTls::Never`, or at a
    /// server that does not offer STARTTLS, the reply is the answer it is.
    fn tls_would_help(&self, reply: &OwnedReply) -> bool {
        self.starttls != StartTls::Never && self.offers_starttls() && demands_tls(reply)
    }

    /// True while STARTTLS can be said: plain text, offered, not refused.
    fn offers_starttls(&self) -> bool {
        matches!(self.tls, TlsState::Off)
            && !self.starttls_refused
            && self.extensions.as_ref().is_some_and(Extensions::starttls)
    }

    /// True if a refusal "TLS first" may still come, after which the session starts over on
    /// this connection: QUIT then waits for the transaction's replies instead of ending its
    /// group.
    fn may_demand_tls(&self) -> bool {
        self.starttls == StartTls::WhenRequired && self.offers_starttls() && !self.plain_text_known
    }

    /// The server refused MAIL FROM until STARTTLS: once the replies in flight are in (and
    /// dropped), STARTTLS, then the transaction starts over.
    fn tls_demanded(&mut self, now: Instant) {
        self.tls_demanded = true;
        self.draining_for_tls = true;
        if self.awaiting.is_empty() {
            self.restart_with_tls(now);
        }
    }

    /// Every reply of the refused transaction is in: its recipients go back on the queue, the
    /// transaction is closed if MAIL FROM opened it, and STARTTLS goes out.
    fn restart_with_tls(&mut self, now: Instant) {
        self.draining_for_tls = false;
        self.queue_from = self.transaction_from;
        self.batch_from = self.queue_from;
        if self.transaction_open {
            self.tls_after_rset = true;
            self.write_always(&Command::Rset, now);
            self.expect(Awaiting::Rset, now);
        } else {
            self.start_tls(now);
        }
    }

    /// Says STARTTLS, alone: nothing may follow it before its reply.
    fn start_tls(&mut self, now: Instant) {
        debug_assert!(self.awaiting.is_empty(), "STARTTLS is never pipelined");
        self.write_always(&Command::StartTls, now);
        self.expect(Awaiting::StartTls, now);
    }

    /// STARTTLS was answered `220`: the handshake begins. Output written so far is plain text
    /// and goes as it is.
    fn begin_tls(&mut self, now: Instant) {
        let Some(name) = self.server_name.clone() else {
            self.tls_failed("no server name to start TLS with".to_owned());
            return;
        };
        match self.config.tls.connect(name) {
            Ok(conn) => {
                self.sealed = self.out.len();
                self.tls = TlsState::Handshaking(Box::new(conn));
                self.expect(Awaiting::Handshake, now);
            }
            Err(error) => self.tls_failed(error.to_string()),
        }
    }

    /// Feeds ciphertext to TLS, and what it decrypts to the reply reader.
    fn decrypt(&mut self, mut bytes: &[u8]) -> Result<(), String> {
        let (TlsState::Handshaking(conn) | TlsState::On(conn, _)) = &mut self.tls else {
            return Ok(());
        };
        while !bytes.is_empty() {
            match conn.read_tls(&mut bytes) {
                Ok(0) => break,
                Ok(_) => {}
                Err(error) => return Err(error.to_string()),
            }
            let state = conn.process_new_packets().map_err(|e| e.to_string())?;
            let mut plaintext = state.plaintext_bytes_to_read();
            let mut chunk = [0u8; 4096];
            while plaintext > 0 {
                let n = conn
                    .reader()
                    .read(&mut chunk[..plaintext.min(4096)])
                    .map_err(|e| e.to_string())?;
                if n == 0 {
                    break;
                }
                self.reader.push(&chunk[..n]);
                plaintext -= n;
            }
        }
        Ok(())
    }

    /// The handshake finished: RFC 3207 §4.2 has the client forget what it learned before TLS
    /// and say EHLO again.
    fn handshake_done(&mut self, now: Instant) {
        let TlsState::Handshaking(conn) = std::mem::take(&mut self.tls) else {
            return;
        };
        let Some(version) = conn.protocol_version().and_then(TlsVersion::from_rustls) else {
            self.tls = TlsState::Handshaking(conn);
            self.tls_failed("the server negotiated a TLS version mxprobe does not speak".into());
            return;
        };
        self.tls = TlsState::On(conn, version);
        if self.awaiting.front() == Some(&Awaiting::Handshake) {
            self.awaiting.pop_front();
        }
        self.reply_deadline = None;
        if self.reader.buffered() > 0 {
            // The server spoke before the client's EHLO.
            let extra = self.unsolicited();
            self.violation(extra, now);
            return;
        }
        self.extensions = None;
        self.pipelined = false;
        self.hello(Awaiting::Ehlo, now);
    }

    /// The TLS handshake failed: nothing more is said (not even QUIT, which may not go in plain
    /// text after STARTTLS's 220); rustls's alert, if it has one, is the last output.
    fn tls_failed(&mut self, why: String) {
        self.tls_failure = Some(why);
        self.finish(RecipientOutcome::HandedBack(HandBack::TlsFailed));
    }

    /// With TLS, encrypts the commands written since the last call; the handshake's own
    /// messages go out too. Called at the end of every input handled.
    fn seal(&mut self) {
        let (TlsState::Handshaking(conn) | TlsState::On(conn, _)) = &mut self.tls else {
            return;
        };
        if self.sealed < self.out.len() {
            let plain = self.out.split_off(self.sealed);
            // rustls holds plain text written during the handshake until it completes; a
            // session's commands are far below its buffer limit, so all of it is taken.
            let taken = conn.writer().write_all(&plain);
            debug_assert!(taken.is_ok(), "rustls takes a session's commands");
        }
        while conn.wants_write() {
            match conn.write_tls(&mut self.out) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        self.sealed = self.out.len();
    }

    /// The server answered 421 at `stage`: it closes the connection, and every recipient not
    /// yet answered is handed back. The reply is kept for the summary: what a 421 says (a
    /// provider's "slow down", a refusal) is for the engine to read.
    fn service_unavailable(&mut self, stage: Stage, reply: OwnedReply) {
        // A 421 for want of TLS ("421 4.7.0 TLS required for RCPT domain, closing
        // connection"), at a server that offers STARTTLS: the next session says it first.
        let why = if self.tls_would_help(&reply) {
            HandBack::TlsRequired
        } else {
            HandBack::ServiceUnavailable
        };
        self.closing = Some(Box::new((stage, reply)));
        self.finish(RecipientOutcome::HandedBack(why));
    }

    /// The reply does not fit the command it was read as answering (RFC 5321 §4.3.2): a
    /// positive reply that command may not get, any 3yz (a probe never sends DATA), or a
    /// QUIT reply other than 221. Negative replies (4yz, 5yz) fit every command: what they say
    /// is decided where they are read.
    fn misfit(&self, awaiting: Awaiting, reply: &OwnedReply) -> Option<ProtocolViolation> {
        let code = reply.as_reply().code().get();
        let fits = match awaiting {
            Awaiting::Quit => code == 221,
            _ if code >= 400 => true,
            Awaiting::Greeting => code == 220,
            Awaiting::Ehlo | Awaiting::Helo | Awaiting::MailFrom | Awaiting::Rset => code == 250,
            Awaiting::StartTls => code == 220,
            // Nothing is read while the handshake runs.
            Awaiting::Handshake => false,
            // 252 ("cannot verify, will accept") fits; it is read as `blocked`.
            Awaiting::Rcpt(_) => matches!(code, 250..=252),
        };
        if fits {
            return None;
        }
        // A 221 while QUIT is still to be answered after this command: the server answered
        // QUIT early, so it lost the replies in between.
        if code == 221 && self.awaiting.contains(&Awaiting::Quit) {
            return Some(ProtocolViolation::RepliesLost(reply.clone()));
        }
        Some(ProtocolViolation::UnexpectedCode {
            to: awaiting.answering(),
            reply: reply.clone(),
        })
    }

    /// The bytes that came out of turn, as the violation they are: with the reply they make,
    /// if they make a whole one (it is what a verdict will show).
    fn unsolicited(&mut self) -> ProtocolViolation {
        let extra = self
            .reader
            .next_reply()
            .ok()
            .flatten()
            .map(|r| r.into_owned());
        ProtocolViolation::Unsolicited(extra)
    }

    /// The session ends while QUIT's reply is awaited (closed, timed out) with the start of a
    /// reply received: if it cannot be the start of a 221, it is the reply to an earlier
    /// command, shifted onto QUIT by one reply too many, and the pairing is broken. (Found by
    /// the simulation: an extra reply after MAIL FROM, the real RCPT reply dripped in after
    /// it, the connection gone before it was whole.)
    fn check_quit_partial(&mut self) {
        if self.broken.is_some() || self.awaiting.front() != Some(&Awaiting::Quit) {
            return;
        }
        let pending = self.reader.pending();
        let prefix = &pending[..pending.len().min(3)];
        if !prefix.is_empty() && !b"221".starts_with(prefix) {
            self.broken = Some(ProtocolViolation::ShiftedOntoQuit);
        }
    }

    /// True if the RCPT reply for recipient `index` names, in angle brackets, another
    /// recipient of this session and not this one: Postfix and many others echo the recipient
    /// in every refusal (`550 5.1.1 <b@x.example>: Recipient address rejected`), so a reply
    /// that names the wrong one was paired with the wrong command.
    fn names_another_recipient(&self, index: usize, reply: &OwnedReply) -> bool {
        let Some(own) = self.recipients.get(index) else {
            return false;
        };
        let reply = reply.as_reply();
        let mut another = false;
        for line in reply.lines() {
            let mut rest = line;
            while let Some(open) = memchr::memchr(b'<', rest) {
                let after = &rest[open + 1..];
                let Some(close) = memchr::memchr(b'>', after) else {
                    break;
                };
                let named = &after[..close];
                rest = &after[close + 1..];
                if named.eq_ignore_ascii_case(own.mailbox.as_bytes()) {
                    return false;
                }
                another |= (0..self.recipients.len()).any(|other| {
                    other != index
                        && self
                            .recipients
                            .get(other)
                            .is_some_and(|r| named.eq_ignore_ascii_case(r.mailbox.as_bytes()))
                });
            }
        }
        another
    }

    /// Says EHLO or HELO.
    fn hello(&mut self, which: Awaiting, now: Instant) {
        let config = Arc::clone(&self.config);
        let command = if which == Awaiting::Ehlo {
            Command::Ehlo(&config.helo_name)
        } else {
            Command::Helo(&config.helo_name)
        };
        let written = self.write(&command, now);
        debug_assert!(
            written.is_ok(),
            "a checked configuration's EHLO name encodes"
        );
        self.expect(which, now);
    }

    /// EHLO or HELO done: STARTTLS if it is to be said now; otherwise settle what cannot be
    /// asked here, then start asking.
    fn after_hello(&mut self, now: Instant) {
        if self.starttls == StartTls::Always && self.offers_starttls() {
            self.start_tls(now);
            return;
        }
        let smtputf8 = self.extensions.as_ref().is_some_and(Extensions::smtputf8);
        if !smtputf8 {
            for index in self.queue_from..self.recipients.len() {
                if self.recipients.needs_smtputf8(index) {
                    self.settle(index, RecipientOutcome::Smtputf8Unsupported);
                }
            }
        }
        self.pipelined =
            self.config.pipelining && self.extensions.as_ref().is_some_and(Extensions::pipelining);
        self.start_transaction(now);
    }

    /// MAIL FROM for the next transaction, with all its RCPTs if pipelining.
    fn start_transaction(&mut self, now: Instant) {
        if self.queue_is_empty() || self.stop_asking {
            self.quit(now);
            return;
        }
        let cap = self.config.max_recipients_per_transaction.max(1);
        self.transaction_from = self.queue_from;
        self.transaction_open = false;
        self.batch_from = self.queue_from;
        for _ in 0..cap {
            if self.pop_queue().is_none() {
                break;
            }
        }
        let smtputf8 = (self.batch_from..self.queue_from)
            .any(|i| !self.recipients.is_settled(i) && self.recipients.needs_smtputf8(i));
        let config = Arc::clone(&self.config);
        let reverse_path = match &config.sender {
            Sender::Null => ReversePath::Null,
            Sender::Mailbox(mailbox) => ReversePath::Mailbox(mailbox),
        };
        let mail = Command::MailFrom {
            reverse_path,
            smtputf8,
        };
        let written = self.write(&mail, now);
        debug_assert!(written.is_ok(), "a checked configuration's sender encodes");
        self.expect(Awaiting::MailFrom, now);
        self.transactions += 1;
        self.in_transaction = 0;
        if self.pipelined {
            // RFC 2920 §3.1: MAIL FROM and RCPT TO may go in one group; every reply is then
            // read in order.
            while self.write_next_rcpt(now) {}
            // RFC 2920 §3.1 lets QUIT end a group. After the last transaction there is nothing
            // left to ask, so QUIT goes with it: the 221 comes with the RCPT replies, which saves
            // a round trip per session. Postfix does not wait for the 221 at all
            // (`smtp_skip_quit_response`). Not while the server may still demand TLS: the
            // session must then start over on this connection.
            if self.queue_is_empty() && !self.may_demand_tls() {
                self.quit(now);
            }
        }
    }

    /// Lock-step: after MAIL FROM or an RCPT reply, the next RCPT of the transaction.
    fn send_next_rcpt(&mut self, now: Instant) {
        if self.pipelined {
            return;
        }
        if self.stop_asking {
            self.batch_from = self.queue_from;
        }
        if self.batch_is_empty() {
            self.end_transaction(now);
            return;
        }
        self.write_next_rcpt(now);
        if self.awaiting.is_empty() {
            // Every recipient left in the batch was unencodable.
            self.end_transaction(now);
        }
    }

    /// Writes RCPT TO for the next recipient of the batch that encodes, and settles those
    /// before it that do not. False if the batch ran out first.
    fn write_next_rcpt(&mut self, now: Instant) -> bool {
        while let Some(index) = self.pop_batch() {
            let start = self.out.len();
            let written = self.recipients.get(index).map(|recipient| {
                Command::RcptTo {
                    forward_path: recipient.mailbox,
                    smtputf8: recipient.smtputf8,
                }
                .encode(&mut self.out)
            });
            match written {
                Some(Ok(())) => {
                    self.record_sent(start, now);
                    self.in_transaction += 1;
                    let index = u32::try_from(index).expect("Recipients holds fewer than 2^32");
                    self.expect(Awaiting::Rcpt(index), now);
                    return true;
                }
                Some(Err(error)) => self.settle(index, RecipientOutcome::Unencodable(error)),
                None => {}
            }
        }
        false
    }

    fn after_rcpt_reply(&mut self, now: Instant) {
        if self.phase != Phase::Talking {
            return;
        }
        if self.draining_for_tls {
            if self.awaiting.is_empty() {
                self.restart_with_tls(now);
            }
            return;
        }
        if self.pipelined {
            if self.awaiting.is_empty() {
                self.end_transaction(now);
            }
        } else {
            self.send_next_rcpt(now);
        }
    }

    /// The transaction's replies are all in: RSET and go on, or QUIT.
    fn end_transaction(&mut self, now: Instant) {
        if self.queue_is_empty() || self.stop_asking {
            self.quit(now);
            return;
        }
        self.write_always(&Command::Rset, now);
        self.expect(Awaiting::Rset, now);
    }

    /// A reply before any RCPT refused the whole session: every unsettled recipient gets it.
    fn refused_all(&mut self, stage: Stage, reply: &OwnedReply, now: Instant) {
        let reason = classify(stage, &reply.as_reply());
        let outcome = RecipientOutcome::Replied {
            stage,
            reply: reply.clone(),
            reason,
        };
        self.settle_from(0, &outcome);
        self.stop_asking = true;
        self.quit(now);
    }

    /// Hands back every recipient not asked yet, and those whose RCPT is in flight.
    fn hand_back_unasked(&mut self, why: HandBack) {
        let outcome = RecipientOutcome::HandedBack(why);
        let (batch_from, queue_from) = (self.batch_from, self.queue_from);
        self.settle_from(queue_from, &outcome);
        for index in batch_from..queue_from {
            self.settle(index, outcome.clone());
        }
        for position in 0..self.awaiting.len() {
            if let Awaiting::Rcpt(index) = self.awaiting[position] {
                self.settle(index as usize, outcome.clone());
            }
        }
    }

    /// Says QUIT and waits (bounded) for the 221.
    fn quit(&mut self, now: Instant) {
        if self.phase != Phase::Talking {
            return;
        }
        self.write_always(&Command::Quit, now);
        self.expect(Awaiting::Quit, now);
        self.phase = Phase::Quitting;
    }

    /// The server broke the protocol: the framing is lost, so nothing more is read. QUIT
    /// goes out as a courtesy and the session ends at once.
    fn violation(&mut self, violation: ProtocolViolation, now: Instant) {
        self.broken = Some(violation.clone());
        let failure = Failure::Protocol(violation);
        self.failure = Some(failure.clone());
        if self.phase == Phase::Talking {
            self.write_always(&Command::Quit, now);
        }
        self.finish(RecipientOutcome::Failed(failure));
    }

    /// Gives recipient `index` its outcome, unless it has one. The events wait for the end of
    /// the session, where answers read from replies are vouched for or taken back.
    fn settle(&mut self, index: usize, outcome: RecipientOutcome) {
        if !self.recipients.settle(index) {
            return;
        }
        self.events
            .push_back(SessionEvent::Recipient { index, outcome });
    }

    /// Ends the session: every recipient not settled yet gets `rest`, the held answers go out
    /// if their pairing is vouched for (see [`Misalignment`]), then `Finished`.
    fn finish(&mut self, rest: RecipientOutcome) {
        if self.phase == Phase::Done {
            return;
        }
        // A "TLS first" came with QUIT already sent: the session could not start over, the
        // next one must say STARTTLS first.
        let rest = match rest {
            RecipientOutcome::HandedBack(HandBack::ConnectionLost) if self.draining_for_tls => {
                RecipientOutcome::HandedBack(HandBack::TlsRequired)
            }
            rest => rest,
        };
        let grouped = self.pipelined && self.transactions > 0;
        // Answers read after a command went out need QUIT's 221 (with nothing after it) to
        // stand: only then did exactly as many replies come as commands went. A greeting
        // answered no command, and is taken as it came.
        let needs_proof = self.events.iter().any(|event| {
            matches!(
                event,
                SessionEvent::Recipient {
                    outcome: RecipientOutcome::Replied { stage, .. },
                    ..
                } if *stage != Stage::Greeting
            )
        });
        let misalignment = match &self.broken {
            Some(violation) => Some(Misalignment::Broken(violation.clone())),
            None if needs_proof && !self.quit_acknowledged => {
                Some(Misalignment::Unproven(self.failure.clone()))
            }
            None => None,
        };
        // What the answers read become when their pairing cannot be vouched for: a protocol
        // error if the sequence broke in lock-step (asking again the same way cannot help);
        // otherwise asked again, without pipelining.
        let unvouched = match &misalignment {
            None => None,
            Some(Misalignment::Broken(violation)) if !grouped => Some(RecipientOutcome::Failed(
                Failure::Protocol(violation.clone()),
            )),
            Some(m) => Some(RecipientOutcome::Unconfirmed(m.clone())),
        };
        // The unanswered share that fate when the sequence broke: their replies are lost in it.
        let rest = match &unvouched {
            Some(outcome) if self.broken.is_some() => outcome.clone(),
            _ => rest,
        };
        for index in 0..self.recipients.len() {
            if !self.recipients.is_settled(index) {
                self.settle(index, rest.clone());
            }
        }
        if let Some(unvouched) = unvouched {
            for event in &mut self.events {
                if let SessionEvent::Recipient { outcome, .. } = event
                    && matches!(outcome, RecipientOutcome::Replied { stage, .. } if *stage != Stage::Greeting)
                {
                    *outcome = unvouched.clone();
                }
            }
        }
        self.phase = Phase::Done;
        self.awaiting.clear();
        self.reply_deadline = None;
        self.events
            .push_back(SessionEvent::Finished(Box::new(SessionSummary {
                greeting: self.greeting.take(),
                closing: self.closing.take().map(|closing| *closing),
                extensions: self.extensions.take(),
                quit_acknowledged: self.quit_acknowledged,
                failure: self.failure.take(),
                transactions: self.transactions,
                pipelined: grouped,
                misalignment,
                tls: match &self.tls {
                    TlsState::On(_, version) => Some(*version),
                    _ => None,
                },
                tls_failure: self.tls_failure.take(),
            })));
    }
}

/// `530`, `x.7.10`, or `x.7.0` with text naming TLS: the command is refused until STARTTLS
/// (RFC 3207 §4; Postfix says `530 5.7.0 Must issue a STARTTLS command first`).
fn demands_tls(reply: &OwnedReply) -> bool {
    let reply = reply.as_reply();
    if reply.code().get() == 530 {
        return true;
    }
    match reply.enhanced().map(|e| (e.subject(), e.detail())) {
        Some((7, 10)) => true,
        Some((7, 0)) => reply
            .lines()
            .any(|line| line.windows(3).any(|w| w.eq_ignore_ascii_case(b"tls"))),
        _ => false,
    }
}

/// 452 (RFC 5321 §4.5.3.1.10: "too many recipients") unless its enhanced code says it is about
/// storage, or any reply with the enhanced code x.5.3.
fn is_too_many_recipients(reply: &OwnedReply) -> bool {
    let reply = reply.as_reply();
    let enhanced = reply.enhanced().map(|e| (e.subject(), e.detail()));
    match enhanced {
        Some((5, 3)) => true,
        Some((2, 2) | (3, _)) => false,
        _ => reply.code().get() == 452,
    }
}
