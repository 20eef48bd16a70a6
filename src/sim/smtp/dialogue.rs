//! The SMTP side of one connection, sans-IO: [`Dialogue`] turns command lines into reply bytes
//! as a [`ServerScript`] (a [`Personality`] made ready to serve) says.
//!
//! # Guarantees
//!
//! - No I/O and no clock: the caller hands over each complete command line, where it stood in
//!   the read that brought it ([`InRead`]), and the time; the dialogue appends the reply bytes
//!   to a buffer the caller owns, and allocates nothing per reply on the common paths.
//! - One call answers one line with at most one reply, except where a personality says
//!   otherwise ([`Behaviour::ExtraReply`] adds one) or says nothing
//!   ([`Behaviour::LosesPipelinedReplies`], [`Behaviour::Silent`], a session that is over).
//! - DATA and BDAT are refused and counted in [`Counters::data_commands`].
//! - STARTTLS is answered as the personality's [`Tls`] says; a `220` to it leaves the dialogue
//!   waiting ([`Dialogue::is_starting_tls`]) until the connection reports the handshake done
//!   ([`Dialogue::tls_started`]): what carries the bytes is the connection's business. A script
//!   without a certificate ([`ServerScript::with_tls`] never called) answers every STARTTLS
//!   it would have accepted with `454`.
//!
//! The loopback farm (`super`) and the in-memory world (`crate::sim::net`) both serve through
//! this file, so a personality behaves the same over real sockets and in a simulation.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::RngExt;
use rand::rngs::StdRng;

use rustls::ServerConfig;

use super::{Behaviour, Greeting, Personality, Tls};

/// The greeting of a [`Behaviour::Garbage`] server: HTTP, not SMTP.
const GARBAGE_GREETING: &[u8] = b"HTTP/1.1 400 Bad Request\r\n";

/// Counters of one loop thread, read by [`SmtpFarm::stats`](super::SmtpFarm::stats). Aligned to
/// its own cache lines so threads counting side by side do not slow each other down.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Counters {
    pub(crate) connections: AtomicU64,
    pub(crate) sessions_completed: AtomicU64,
    pub(crate) rcpt_commands: AtomicU64,
    pub(crate) mail_commands: AtomicU64,
    pub(crate) data_commands: AtomicU64,
    pub(crate) open_connections: AtomicU64,
    pub(crate) reply_rounds: AtomicU64,
    pub(crate) peak_open_connections: AtomicU64,
    pub(crate) peak_rcpts_in_session: AtomicU64,
    pub(crate) throttled_transactions: AtomicU64,
    pub(crate) tls_handshakes: AtomicU64,
    pub(crate) starttls_injections: AtomicU64,
}

/// Adds one to a counter.
pub(crate) fn count(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// A personality made ready to serve: replies that never change encoded once, mailboxes
/// lowercased, and the greylist memory of its listener.
#[derive(Debug)]
pub(crate) struct ServerScript {
    pub(crate) personality: Personality,
    mailboxes: HashSet<String>,
    mailbox_prefixes: Vec<String>,
    greeting: Vec<u8>,
    /// The EHLO reply before TLS: STARTTLS advertised unless the personality has no TLS.
    ehlo: Vec<u8>,
    /// The EHLO reply once TLS is up: STARTTLS never advertised (RFC 3207 §4.2).
    ehlo_in_tls: Vec<u8>,
    helo: Vec<u8>,
    timeout: Vec<u8>,
    greylist_first_seen: HashMap<GreylistTriplet, Instant>,
    /// Replies that stand in for the defaults, encoded once, CRLF included.
    unknown_reply: Option<Vec<u8>>,
    replies: HashMap<String, Vec<u8>>,
    throttle_reply: Option<Vec<u8>>,
    /// When the transactions of the last second started, for the [`Personality::throttle`].
    recent_transactions: VecDeque<Instant>,
    /// Transactions started at this listener.
    transactions: usize,
    /// What a `220` to STARTTLS starts TLS with; without it STARTTLS gets `454`.
    tls_config: Option<Arc<ServerConfig>>,
}

/// What greylisting remembers, addresses lowercased.
#[derive(Debug, PartialEq, Eq, Hash)]
struct GreylistTriplet {
    client: IpAddr,
    sender: String,
    recipient: String,
}

impl ServerScript {
    /// Prepares `personality`; refuses a hostname with CR or LF, which would inject lines.
    pub(crate) fn new(personality: Personality) -> io::Result<Self> {
        let hostname = &personality.hostname;
        if hostname.contains(['\r', '\n']) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("the simulated MX hostname {hostname:?} contains CR or LF; remove them"),
            ));
        }
        let mut address = String::new();
        let mailboxes = personality
            .mailboxes
            .iter()
            .map(|mailbox| {
                lowercase_into(mailbox.as_bytes(), &mut address);
                address.clone()
            })
            .collect();
        let mailbox_prefixes = personality
            .mailbox_prefixes
            .iter()
            .map(|prefix| {
                lowercase_into(prefix.as_bytes(), &mut address);
                address.clone()
            })
            .collect();
        let wire = |text: &str| format!("{text}\r\n").into_bytes();
        for text in personality
            .greeting_text
            .iter()
            .chain(&personality.ehlo_text)
            .chain(&personality.unknown_reply)
            .chain(personality.replies.values())
            .chain(personality.throttle.as_ref().map(|t| &t.reply))
        {
            if text.contains('\n') && !text.contains("\r\n") || text.ends_with("\r\n") {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "the simulated reply {text:?} must join its lines with CRLF and not end in one"
                    ),
                ));
            }
        }
        // Postfix's order: STARTTLS after SIZE (and VRFY, ETRN), before ENHANCEDSTATUSCODES.
        let ehlo_reply = |starttls: bool| {
            let ehlo_first = personality.ehlo_text.as_deref().unwrap_or(hostname);
            let mut ehlo = format!("250-{ehlo_first}\r\n");
            if personality.pipelining {
                ehlo.push_str("250-PIPELINING\r\n");
            }
            ehlo.push_str("250-SIZE 10240000\r\n");
            if starttls {
                ehlo.push_str("250-STARTTLS\r\n");
            }
            ehlo.push_str("250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n");
            if personality.smtputf8 {
                ehlo.push_str("250-SMTPUTF8\r\n");
            }
            ehlo.push_str("250 CHUNKING\r\n");
            ehlo.into_bytes()
        };
        Ok(Self {
            greeting: match &personality.greeting_text {
                Some(text) => wire(&format!("220 {text}")),
                None => format!("220 {hostname} ESMTP mxprobe-sim\r\n").into_bytes(),
            },
            unknown_reply: personality.unknown_reply.as_deref().map(wire),
            replies: personality
                .replies
                .iter()
                .map(|(address, reply)| (address.to_ascii_lowercase(), wire(reply)))
                .collect(),
            throttle_reply: personality.throttle.as_ref().map(|t| wire(&t.reply)),
            recent_transactions: VecDeque::new(),
            transactions: 0,
            ehlo: ehlo_reply(personality.tls != Tls::None),
            ehlo_in_tls: ehlo_reply(false),
            tls_config: None,
            helo: format!("250 {hostname}\r\n").into_bytes(),
            timeout: format!("421 4.4.2 {hostname} Error: timeout exceeded\r\n").into_bytes(),
            mailboxes,
            mailbox_prefixes,
            greylist_first_seen: HashMap::new(),
            personality,
        })
    }

    /// Gives the script the server configuration (certificate and key) a `220` to STARTTLS
    /// starts TLS with.
    pub(crate) fn with_tls(mut self, config: Arc<ServerConfig>) -> Self {
        self.tls_config = Some(config);
        self
    }

    /// What a connection that answered STARTTLS `220` starts TLS with, if the script has it.
    pub(crate) fn tls_config(&self) -> Option<&Arc<ServerConfig>> {
        self.tls_config.as_ref()
    }

    /// Whether `address` (lowercased) is a mailbox: listed, or its local part is one of the
    /// prefixes followed by digits.
    fn has_mailbox(&self, address: &str) -> bool {
        if self.mailboxes.contains(address) {
            return true;
        }
        let local = address.rsplit_once('@').map_or(address, |(local, _)| local);
        self.mailbox_prefixes.iter().any(|prefix| {
            local.strip_prefix(prefix.as_str()).is_some_and(|number| {
                !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit())
            })
        })
    }

    /// A transaction starts at `now`: true if the [`Personality::throttle`] slows it down (it
    /// is among the first it throttles, or more than `per_second` began in the second before
    /// it, this one included).
    fn over_the_rate(&mut self, now: Instant) -> bool {
        let Some((per_second, first)) = self
            .personality
            .throttle
            .as_ref()
            .map(|t| (t.per_second, t.first))
        else {
            return false;
        };
        self.transactions += 1;
        if self.transactions <= first {
            return true;
        }
        let window = Duration::from_secs(1);
        while self
            .recent_transactions
            .front()
            .is_some_and(|at| now.saturating_duration_since(*at) >= window)
        {
            self.recent_transactions.pop_front();
        }
        self.recent_transactions.push_back(now);
        self.recent_transactions.len() > per_second
    }

    /// How long the next reply waits: latency, tarpit and a fresh draw of jitter.
    pub(crate) fn reply_delay(&self, rng: &mut StdRng) -> Duration {
        let personality = &self.personality;
        let tarpit = match personality.behaviour {
            Behaviour::Tarpit(hold) => hold,
            _ => Duration::ZERO,
        };
        let jitter = if personality.jitter.is_zero() {
            Duration::ZERO
        } else {
            let most = u64::try_from(personality.jitter.as_nanos()).unwrap_or(u64::MAX);
            Duration::from_nanos(rng.random_range(0..=most))
        };
        personality.latency + tarpit + jitter
    }
}

/// Lowercases `address` into `out` (replacing it), invalid UTF-8 as U+FFFD, so lookups compare
/// addresses case-insensitively without allocating.
pub(crate) fn lowercase_into(address: &[u8], out: &mut String) {
    out.clear();
    for chunk in address.utf8_chunks() {
        for character in chunk.valid().chars() {
            if character.is_ascii() {
                out.push(character.to_ascii_lowercase());
            } else {
                out.extend(character.to_lowercase());
            }
        }
        if !chunk.invalid().is_empty() {
            out.push(char::REPLACEMENT_CHARACTER);
        }
    }
}

/// Where a session stands, as far as what the server will still say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Answering commands.
    Commands,
    /// The greeting refused service: 503 to everything but QUIT.
    Refused,
    /// Saying nothing and ignoring input ([`Behaviour::Silent`], [`Behaviour::Garbage`]).
    Deaf,
    /// STARTTLS was answered `220`: no command is read until the connection says TLS is up.
    StartingTls,
    /// The last reply has been decided; the connection closes once it is sent.
    Over,
}

/// The SMTP side of one connection: turns command lines into reply bytes. No I/O and no clock:
/// the connection hands it lines and the time, and delivers what it writes.
#[derive(Debug)]
pub(crate) struct Dialogue {
    phase: Phase,
    /// Whether MAIL has been accepted and not ended by RSET or EHLO/HELO.
    in_transaction: bool,
    /// The current sender, lowercased, for greylisting.
    sender: String,
    /// RCPT commands received in a transaction this session, for the recipient limit.
    recipients: usize,
    /// RCPT commands received this session, all transactions together.
    session_rcpts: u64,
    /// The transaction started over the [`Personality::throttle`] rate.
    throttled: bool,
    /// Where the session stands with TLS.
    tls: TlsState,
}

/// Where a session stands with TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TlsState {
    /// No TLS yet: everything is plain text.
    Plain,
    /// TLS is up; `greeted` once the client has said EHLO or HELO again (RFC 3207 §4.2).
    Active { greeted: bool },
}

/// What answering one line needs besides the line.
pub(crate) struct AnswerContext<'a> {
    pub(crate) script: &'a mut ServerScript,
    pub(crate) counters: &'a Counters,
    pub(crate) client: IpAddr,
    pub(crate) now: Instant,
    /// Scratch space for a lowercased address.
    pub(crate) address: &'a mut String,
}

/// Where a command line stood in the read that completed it. A read that completes several
/// lines is a pipelined group (RFC 2920): the client wrote them without waiting. A line split
/// over several reads belongs to the read that brought its line ending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InRead {
    /// The first line the read completed: every lock-step command is one.
    First,
    /// A line after the first in the same read.
    Later,
}

/// The commands the server knows, by verb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Ehlo,
    Helo,
    Mail,
    Rcpt,
    Rset,
    Noop,
    Vrfy,
    Data,
    Bdat,
    Quit,
    StartTls,
    Unknown,
}

impl Verb {
    fn parse(verb: &[u8]) -> Self {
        const VERBS: [(&[u8], Verb); 11] = [
            (b"EHLO", Verb::Ehlo),
            (b"HELO", Verb::Helo),
            (b"MAIL", Verb::Mail),
            (b"RCPT", Verb::Rcpt),
            (b"RSET", Verb::Rset),
            (b"NOOP", Verb::Noop),
            (b"VRFY", Verb::Vrfy),
            (b"DATA", Verb::Data),
            (b"BDAT", Verb::Bdat),
            (b"QUIT", Verb::Quit),
            (b"STARTTLS", Verb::StartTls),
        ];
        VERBS
            .iter()
            .find(|(text, _)| verb.eq_ignore_ascii_case(text))
            .map_or(Verb::Unknown, |&(_, known)| known)
    }
}

impl Dialogue {
    /// Starts a session: writes the greeting (nothing, for a silent server) into `reply`.
    pub(crate) fn open(script: &ServerScript, client: IpAddr, reply: &mut Vec<u8>) -> Self {
        let personality = &script.personality;
        let greeting = if personality.refused_clients.contains(&client) {
            Greeting::Refuse
        } else {
            personality.greeting
        };
        let phase = match (personality.behaviour, greeting) {
            (Behaviour::Silent, _) => Phase::Deaf,
            (Behaviour::Garbage, _) => {
                reply.extend_from_slice(GARBAGE_GREETING);
                Phase::Deaf
            }
            (_, Greeting::Unavailable) => {
                let hostname = &personality.hostname;
                let text =
                    format!("421 4.7.0 {hostname} Error: too many connections from {client}\r\n");
                reply.extend_from_slice(text.as_bytes());
                Phase::Over
            }
            (behaviour, Greeting::Refuse) => {
                let text = format!(
                    "554 5.7.1 Service unavailable; Client host [{client}] blocked using \
                     zen.spamhaus.org\r\n"
                );
                reply.extend_from_slice(text.as_bytes());
                if behaviour == Behaviour::CloseAfterGreeting {
                    Phase::Over
                } else {
                    Phase::Refused
                }
            }
            (behaviour, Greeting::Normal) => {
                reply.extend_from_slice(&script.greeting);
                if behaviour == Behaviour::CloseAfterGreeting {
                    Phase::Over
                } else {
                    Phase::Commands
                }
            }
        };
        Self {
            phase,
            in_transaction: false,
            sender: String::new(),
            recipients: 0,
            session_rcpts: 0,
            throttled: false,
            tls: TlsState::Plain,
        }
    }

    /// Whether the server still reads what the client sends as commands.
    pub(crate) fn listens(&self) -> bool {
        matches!(self.phase, Phase::Commands | Phase::Refused)
    }

    pub(crate) fn is_over(&self) -> bool {
        self.phase == Phase::Over
    }

    /// Whether STARTTLS was just answered `220`: the connection must start TLS (or fail to)
    /// and report it with [`Dialogue::tls_started`] or [`Dialogue::hang_up`].
    pub(crate) fn is_starting_tls(&self) -> bool {
        self.phase == Phase::StartingTls
    }

    /// The TLS handshake after a `220` to STARTTLS completed: the session starts over as RFC
    /// 3207 §4.2 asks (no transaction, the client must say EHLO again) and commands are read
    /// again.
    pub(crate) fn tls_started(&mut self) {
        if self.phase == Phase::StartingTls {
            self.phase = Phase::Commands;
        }
        self.tls = TlsState::Active { greeted: false };
        self.in_transaction = false;
        self.sender.clear();
        self.recipients = 0;
        self.throttled = false;
    }

    /// The connection gives up on the session (a failed TLS handshake): nothing more is said.
    pub(crate) fn hang_up(&mut self) {
        self.phase = Phase::Over;
    }

    /// Answers one command line (its line ending included or not) into `reply`, and counts it.
    /// `in_read` says where the line stood in the read that completed it.
    pub(crate) fn answer(
        &mut self,
        line: &[u8],
        in_read: InRead,
        context: &mut AnswerContext<'_>,
        reply: &mut Vec<u8>,
    ) {
        let line = line
            .strip_suffix(b"\n")
            .map_or(line, |line| line.strip_suffix(b"\r").unwrap_or(line));
        let (verb, argument) = match memchr::memchr(b' ', line) {
            Some(space) => (&line[..space], &line[space + 1..]),
            None => (line, &[][..]),
        };
        let verb = Verb::parse(verb);
        let counters = context.counters;
        match verb {
            Verb::Mail => count(&counters.mail_commands),
            Verb::Rcpt => count(&counters.rcpt_commands),
            Verb::Data | Verb::Bdat => count(&counters.data_commands),
            _ => {}
        }
        match self.phase {
            Phase::Deaf | Phase::StartingTls | Phase::Over => {}
            Phase::Refused if verb == Verb::Quit => self.quit(counters, reply),
            Phase::Refused => reply.extend_from_slice(b"503 5.5.1 Error: no SMTP service here\r\n"),
            // The reply is lost: the server read the RCPT (and counted it) and said nothing.
            Phase::Commands
                if verb == Verb::Rcpt
                    && in_read == InRead::Later
                    && context.script.personality.behaviour == Behaviour::LosesPipelinedReplies => {
            }
            Phase::Commands => self.command(verb, argument, context, reply),
        }
    }

    fn command(
        &mut self,
        verb: Verb,
        argument: &[u8],
        context: &mut AnswerContext<'_>,
        reply: &mut Vec<u8>,
    ) {
        let script = &*context.script;
        match verb {
            Verb::Ehlo | Verb::Helo if argument.trim_ascii().is_empty() => {
                let text: &[u8] = if verb == Verb::Ehlo {
                    b"501 5.5.4 Syntax: EHLO hostname\r\n"
                } else {
                    b"501 5.5.4 Syntax: HELO hostname\r\n"
                };
                reply.extend_from_slice(text);
            }
            Verb::Ehlo => {
                self.in_transaction = false;
                match self.tls {
                    TlsState::Plain => reply.extend_from_slice(&script.ehlo),
                    TlsState::Active { .. } => {
                        self.tls = TlsState::Active { greeted: true };
                        reply.extend_from_slice(&script.ehlo_in_tls);
                    }
                }
            }
            Verb::Helo => {
                self.in_transaction = false;
                if let TlsState::Active { .. } = self.tls {
                    self.tls = TlsState::Active { greeted: true };
                }
                reply.extend_from_slice(&script.helo);
            }
            Verb::StartTls => self.starttls(argument, script, reply),
            Verb::Mail => self.mail(argument, context, reply),
            Verb::Rcpt => self.rcpt(argument, context, reply),
            Verb::Rset => {
                self.in_transaction = false;
                reply.extend_from_slice(b"250 2.0.0 Ok\r\n");
            }
            Verb::Noop => reply.extend_from_slice(b"250 2.0.0 Ok\r\n"),
            Verb::Vrfy => {
                reply.extend_from_slice(b"252 2.0.0 Send some mail, I'll try my best\r\n");
            }
            Verb::Data | Verb::Bdat => {
                reply.extend_from_slice(b"554 5.5.1 Error: no valid recipients\r\n");
            }
            Verb::Quit => self.quit(context.counters, reply),
            Verb::Unknown => {
                reply.extend_from_slice(b"502 5.5.2 Error: command not recognized\r\n");
            }
        }
    }

    /// `STARTTLS` (RFC 3207), with Postfix's replies and in Postfix's order of checks.
    fn starttls(&mut self, argument: &[u8], script: &ServerScript, reply: &mut Vec<u8>) {
        let tls = script.personality.tls;
        if !argument.trim_ascii().is_empty() {
            reply.extend_from_slice(b"501 5.5.4 Syntax: STARTTLS\r\n");
        } else if let TlsState::Active { .. } = self.tls {
            reply.extend_from_slice(b"554 5.5.1 Error: TLS already active\r\n");
        } else if tls == Tls::None {
            reply.extend_from_slice(b"502 5.5.1 Error: command not implemented\r\n");
        } else if tls == Tls::Unavailable || script.tls_config.is_none() {
            reply.extend_from_slice(b"454 4.7.0 TLS not available due to local problem\r\n");
        } else {
            reply.extend_from_slice(b"220 2.0.0 Ready to start TLS\r\n");
            self.in_transaction = false;
            self.phase = Phase::StartingTls;
        }
    }

    /// Whether the personality wants TLS before `stage` and the session has none: Postfix's
    /// `530` under `smtpd_tls_security_level = encrypt`, or an Exim ACL's.
    fn must_start_tls_first(&self, personality: &Personality, stage: Verb) -> bool {
        let required = match personality.tls {
            Tls::Required | Tls::Unavailable => stage == Verb::Mail,
            Tls::RequiredAtRcpt | Tls::RequiredClosing => stage == Verb::Rcpt,
            Tls::None | Tls::Offered | Tls::BrokenHandshake => false,
        };
        required && self.tls == TlsState::Plain
    }

    /// `MAIL FROM:<reverse-path> [parameters]`
    fn mail(&mut self, argument: &[u8], context: &mut AnswerContext<'_>, reply: &mut Vec<u8>) {
        self.mail_answered(argument, context, reply);
        if context.script.personality.behaviour == Behaviour::ExtraReply {
            // Nobody asked for it: it reads like the answer to a RCPT not yet sent.
            reply.extend_from_slice(b"250 2.1.5 Ok\r\n");
        }
    }

    /// The reply to MAIL FROM as the personality has it.
    fn mail_answered(
        &mut self,
        argument: &[u8],
        context: &mut AnswerContext<'_>,
        reply: &mut Vec<u8>,
    ) {
        let personality = &context.script.personality;
        if self.must_start_tls_first(personality, Verb::Mail) {
            reply.extend_from_slice(b"530 5.7.0 Must issue a STARTTLS command first\r\n");
            return;
        }
        if self.tls == (TlsState::Active { greeted: false }) {
            reply.extend_from_slice(b"503 5.5.1 Error: send HELO/EHLO first\r\n");
            return;
        }
        let Some(sender) = path_after(argument, b"FROM:") else {
            reply.extend_from_slice(b"501 5.5.4 Syntax: MAIL FROM:<address>\r\n");
            return;
        };
        if personality.behaviour == Behaviour::CloseAfterMail {
            reply.extend_from_slice(b"250 2.1.0 Ok\r\n");
            self.phase = Phase::Over;
        } else if self.in_transaction {
            reply.extend_from_slice(b"503 5.5.1 Error: nested MAIL command\r\n");
        } else if personality.reject_sender {
            address_reply(
                reply,
                b"553 5.1.8 <",
                sender,
                b">: Sender address rejected: Domain not found",
            );
        } else {
            lowercase_into(sender, &mut self.sender);
            self.in_transaction = true;
            self.throttled = context.script.over_the_rate(context.now);
            if self.throttled {
                count(&context.counters.throttled_transactions);
            }
            reply.extend_from_slice(b"250 2.1.0 Ok\r\n");
        }
    }

    /// `RCPT TO:<forward-path> [parameters]`
    fn rcpt(&mut self, argument: &[u8], context: &mut AnswerContext<'_>, reply: &mut Vec<u8>) {
        if !self.in_transaction {
            reply.extend_from_slice(b"503 5.5.1 Error: need MAIL command\r\n");
            return;
        }
        let Some(recipient) = path_after(argument, b"TO:") else {
            reply.extend_from_slice(b"501 5.5.4 Syntax: RCPT TO:<address>\r\n");
            return;
        };
        if self.must_start_tls_first(&context.script.personality, Verb::Rcpt) {
            if context.script.personality.tls == Tls::RequiredClosing {
                reply.extend_from_slice(
                    b"421 4.7.0 TLS required for RCPT domain, closing connection. - gsmtp\r\n",
                );
                self.phase = Phase::Over;
            } else {
                reply.extend_from_slice(b"530 5.7.0 Must issue a STARTTLS command first\r\n");
            }
            return;
        }
        self.recipients += 1;
        self.session_rcpts += 1;
        context
            .counters
            .peak_rcpts_in_session
            .fetch_max(self.session_rcpts, Ordering::Relaxed);
        let script = &mut *context.script;
        let Personality {
            max_rcpt_per_session,
            greylist,
            catch_all,
            ..
        } = script.personality;
        if max_rcpt_per_session.is_some_and(|limit| self.recipients > limit) {
            reply.extend_from_slice(b"452 4.5.3 Error: too many recipients\r\n");
            return;
        }
        if self.throttled
            && let Some(throttle) = &script.throttle_reply
        {
            reply.extend_from_slice(throttle);
            // A 421 says the server closes the channel (RFC 5321 §3.8).
            if throttle.starts_with(b"421") {
                self.phase = Phase::Over;
            }
            return;
        }
        lowercase_into(recipient, context.address);
        if let Some(special) = script.replies.get(context.address.as_str()) {
            reply.extend_from_slice(special);
            return;
        }
        if let Some(period) = greylist {
            let triplet = GreylistTriplet {
                client: context.client,
                sender: self.sender.clone(),
                recipient: context.address.clone(),
            };
            let first_seen = *script
                .greylist_first_seen
                .entry(triplet)
                .or_insert(context.now);
            if context.now.saturating_duration_since(first_seen) < period {
                address_reply(
                    reply,
                    b"451 4.7.1 <",
                    recipient,
                    b">: Recipient address rejected: Greylisted, try again later",
                );
                return;
            }
        }
        if catch_all || script.has_mailbox(context.address) {
            reply.extend_from_slice(b"250 2.1.5 Ok\r\n");
        } else if let Some(unknown) = &script.unknown_reply {
            reply.extend_from_slice(unknown);
        } else {
            address_reply(
                reply,
                b"550 5.1.1 <",
                recipient,
                b">: Recipient address rejected: User unknown in virtual mailbox table",
            );
        }
    }

    fn quit(&mut self, counters: &Counters, reply: &mut Vec<u8>) {
        reply.extend_from_slice(b"221 2.0.0 Bye\r\n");
        count(&counters.sessions_completed);
        self.phase = Phase::Over;
    }

    /// The client sent a line longer than [`MAX_LINE`]: say so and end the session.
    pub(crate) fn line_too_long(&mut self, reply: &mut Vec<u8>) {
        reply.extend_from_slice(b"500 5.5.2 Line too long\r\n");
        self.phase = Phase::Over;
    }

    /// The client sent nothing for the idle limit: say so if the server speaks at all, and end
    /// the session.
    pub(crate) fn time_out(&mut self, script: &ServerScript, reply: &mut Vec<u8>) {
        if self.listens() {
            reply.extend_from_slice(&script.timeout);
        }
        self.phase = Phase::Over;
    }
}

/// The address of `keyword <address> [parameters]`, e.g. of `FROM:<a@b> SIZE=10`: what lies
/// between `<` and the first `>`. The keyword is case-insensitive; spaces may surround it.
pub(crate) fn path_after<'line>(argument: &'line [u8], keyword: &[u8]) -> Option<&'line [u8]> {
    let (head, rest) = argument
        .trim_ascii_start()
        .split_at_checked(keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = rest.trim_ascii_start().strip_prefix(b"<")?;
    let end = memchr::memchr(b'>', rest)?;
    Some(&rest[..end])
}

fn address_reply(reply: &mut Vec<u8>, before: &[u8], address: &[u8], after: &[u8]) {
    reply.extend_from_slice(before);
    reply.extend_from_slice(address);
    reply.extend_from_slice(after);
    reply.extend_from_slice(b"\r\n");
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "an origin for a hand-moved clock"
)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    /// Plays `reads` (each a list of lines completed by one read) against a fresh dialogue with
    /// `personality`, after its greeting; returns the reply bytes of each read and whether the
    /// session is over.
    fn play(personality: Personality, reads: &[&[&str]]) -> (Vec<String>, bool) {
        let mut script = ServerScript::new(personality).expect("a valid personality");
        let counters = Counters::default();
        let mut greeting = Vec::new();
        let client = IpAddr::from(Ipv4Addr::new(192, 0, 2, 1));
        let mut dialogue = Dialogue::open(&script, client, &mut greeting);
        let mut address = String::new();
        let mut replies = Vec::new();
        for lines in reads {
            let mut reply = Vec::new();
            for (position, line) in lines.iter().enumerate() {
                let in_read = if position == 0 {
                    InRead::First
                } else {
                    InRead::Later
                };
                let mut context = AnswerContext {
                    script: &mut script,
                    counters: &counters,
                    client,
                    now: Instant::now(),
                    address: &mut address,
                };
                dialogue.answer(line.as_bytes(), in_read, &mut context, &mut reply);
            }
            replies.push(String::from_utf8(reply).expect("replies are UTF-8"));
        }
        (replies, dialogue.is_over())
    }

    fn mx() -> Personality {
        Personality::new("mx.dialogue.test").mailbox("alice@dialogue.test")
    }

    const MAIL: &str = "MAIL FROM:<probe@probe.test>\r\n";
    const ALICE: &str = "RCPT TO:<alice@dialogue.test>\r\n";
    const NOBODY: &str = "RCPT TO:<nobody@dialogue.test>\r\n";
    const QUIT: &str = "QUIT\r\n";

    #[test]
    fn a_normal_server_answers_a_pipelined_group_whole() {
        let (replies, over) = play(mx(), &[&[MAIL, ALICE, NOBODY, QUIT]]);
        assert_eq!(
            replies[0],
            "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550 5.1.1 <nobody@dialogue.test>: Recipient address \
             rejected: User unknown in virtual mailbox table\r\n221 2.0.0 Bye\r\n"
        );
        assert!(over);
    }

    #[test]
    fn losing_pipelined_replies_drops_the_rcpt_replies_of_a_group_and_quits() {
        let loses = || mx().behaviour(Behaviour::LosesPipelinedReplies);
        let (replies, over) = play(loses(), &[&[MAIL, ALICE, NOBODY, QUIT]]);
        assert_eq!(replies, ["250 2.1.0 Ok\r\n221 2.0.0 Bye\r\n"]);
        assert!(over, "the server closes after its 221");
        // Lock-step, one command per read: every reply is there.
        let (replies, over) = play(loses(), &[&[MAIL], &[ALICE], &[NOBODY], &[QUIT]]);
        assert_eq!(replies[0], "250 2.1.0 Ok\r\n");
        assert_eq!(replies[1], "250 2.1.5 Ok\r\n");
        assert!(replies[2].starts_with("550 5.1.1 <nobody@dialogue.test>"));
        assert_eq!(replies[3], "221 2.0.0 Bye\r\n");
        assert!(over);
        // A RCPT that leads its read is answered; the ones after it in the read are not.
        let (replies, over) = play(loses(), &[&[MAIL], &[ALICE, NOBODY]]);
        assert_eq!(replies[1], "250 2.1.5 Ok\r\n");
        assert!(!over);
    }

    #[test]
    fn a_provider_personality_speaks_in_its_own_words() {
        let provider = mx()
            .greeting_text("mx.google.com ESMTP x - gsmtp")
            .ehlo_text("mx.google.com at your service")
            .unknown_reply("550-5.1.1 no such\r\n550 5.1.1 user - gsmtp")
            .reply_to("Bob@dialogue.test", "550 5.2.1 disabled - gsmtp");
        let script = ServerScript::new(provider.clone()).expect("valid");
        assert_eq!(script.greeting, b"220 mx.google.com ESMTP x - gsmtp\r\n");
        let (replies, _) = play(
            provider,
            &[
                &["EHLO probe.test\r\n"],
                &[MAIL, ALICE, NOBODY, "RCPT TO:<BOB@dialogue.test>\r\n"],
            ],
        );
        assert!(replies[0].starts_with("250-mx.google.com at your service\r\n"));
        assert_eq!(
            replies[1],
            "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550-5.1.1 no such\r\n550 5.1.1 user - gsmtp\r\n\
             550 5.2.1 disabled - gsmtp\r\n"
        );
        for bad in ["550 a\nb", "550 a\r\n"] {
            assert!(
                ServerScript::new(mx().unknown_reply(bad)).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_throttle_slows_down_the_transactions_over_its_rate() {
        let throttled = "451 4.7.500 Server busy. Please try again later";
        let mut script =
            ServerScript::new(mx().throttle(2, throttled)).expect("a valid personality");
        let counters = Counters::default();
        let client = IpAddr::from(Ipv4Addr::new(192, 0, 2, 1));
        let start = Instant::now();
        let mut address = String::new();
        let mut session = |at: Instant| {
            let mut greeting = Vec::new();
            let mut dialogue = Dialogue::open(&script, client, &mut greeting);
            let mut reply = Vec::new();
            for line in [MAIL, ALICE] {
                let mut context = AnswerContext {
                    script: &mut script,
                    counters: &counters,
                    client,
                    now: at,
                    address: &mut address,
                };
                dialogue.answer(line.as_bytes(), InRead::First, &mut context, &mut reply);
            }
            String::from_utf8(reply).expect("UTF-8")
        };
        let ok = "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n";
        assert_eq!(session(start), ok);
        assert_eq!(session(start + Duration::from_millis(500)), ok);
        assert_eq!(
            session(start + Duration::from_millis(900)),
            format!("250 2.1.0 Ok\r\n{throttled}\r\n"),
            "the third in a second"
        );
        assert_eq!(
            session(start + Duration::from_millis(1600)),
            ok,
            "a second on"
        );
        assert_eq!(counters.throttled_transactions.load(Ordering::Relaxed), 1);
        assert_eq!(counters.peak_rcpts_in_session.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_throttle_of_the_first_transactions_defers_them_and_no_more() {
        let deferred = "451 4.7.500 Access denied, please try again later";
        let personality = mx().throttle_first(1, deferred);
        let (replies, _) = play(personality.clone(), &[&[MAIL, ALICE, NOBODY]]);
        assert_eq!(
            replies[0],
            format!("250 2.1.0 Ok\r\n{deferred}\r\n{deferred}\r\n")
        );
        // A second transaction, in the same session after RSET, is the listener's second.
        let (replies, _) = play(
            personality,
            &[&[MAIL, ALICE], &["RSET\r\n"], &[MAIL, ALICE]],
        );
        assert_eq!(replies[0], format!("250 2.1.0 Ok\r\n{deferred}\r\n"));
        assert_eq!(replies[2], "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n");
    }

    #[test]
    fn without_a_certificate_starttls_is_advertised_but_not_available() {
        // The in-memory world's scripts have no certificate: the 220 is never said.
        let unavailable = "454 4.7.0 TLS not available due to local problem\r\n";
        for (tls, mail) in [
            (Tls::Offered, "250 2.1.0 Ok\r\n"),
            (Tls::BrokenHandshake, "250 2.1.0 Ok\r\n"),
            (
                Tls::Required,
                "530 5.7.0 Must issue a STARTTLS command first\r\n",
            ),
        ] {
            let (replies, over) = play(
                mx().tls(tls),
                &[&["EHLO probe.test\r\n"], &["STARTTLS\r\n"], &[MAIL]],
            );
            assert!(replies[0].contains("\r\n250-STARTTLS\r\n"), "{tls:?}");
            assert_eq!(replies[1], unavailable, "{tls:?}");
            assert_eq!(replies[2], mail, "{tls:?}");
            assert!(!over, "{tls:?}");
        }
    }

    #[test]
    fn an_extra_reply_follows_the_mail_reply_in_the_same_write() {
        let extra = || mx().behaviour(Behaviour::ExtraReply);
        let (replies, _) = play(extra(), &[&[MAIL], &[ALICE], &[NOBODY]]);
        assert_eq!(replies[0], "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n");
        assert_eq!(replies[1], "250 2.1.5 Ok\r\n");
        assert!(replies[2].starts_with("550 5.1.1 "));
        let (replies, _) = play(extra(), &[&[MAIL, ALICE, QUIT]]);
        assert_eq!(
            replies[0],
            "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n221 2.0.0 Bye\r\n"
        );
    }
}
