//! How a probe session behaves: who it says it is, whom it says it sends for, how long it waits.

use std::ops::Deref;
use std::time::Duration;

pub use crate::config::ConfigError;
use crate::smtp::reply::Limits;
use crate::smtp::{Command, ReversePath};
use crate::tls::{StartTls, TlsClient};

/// The sender in `MAIL FROM`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sender {
    /// `MAIL FROM:<>`, the null sender of bounces. Some servers refuse it from probes, others
    /// prefer it; use it only when configured.
    Null,
    /// A mailbox, ideally a real one on a domain you control, with SPF and a matching reverse
    /// DNS: servers check senders, and greylisters key on them.
    Mailbox(String),
}

/// How long each wait may last.
///
/// RFC 5321 §4.5.3.2 asks a mail client to wait 5 minutes for the greeting and for each MAIL
/// and RCPT reply: a client with a message to deliver must not give up on a slow server. A
/// prober has nothing to deliver and thousands of sessions to run, so it waits less, and says
/// so: a server slower than these limits gets `unknown/timeout`, never a verdict. The defaults
/// still allow for Postfix's postscreen (it holds the greeting for 6 s and more), tarpitting
/// servers that delay every reply by several seconds, and stock Postfix's `in_flow_delay`
/// (1 s per accepted RCPT once a client runs out of flow tokens).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// From the connect call to the connection. Default 10 s.
    pub connect: Duration,
    /// For the whole greeting. Default 30 s.
    pub greeting: Duration,
    /// For the EHLO or HELO reply. Default 30 s.
    pub hello: Duration,
    /// For the MAIL FROM reply. Default 30 s.
    pub mail_from: Duration,
    /// For each RCPT TO reply, counted from the previous reply when pipelined. Default 30 s.
    pub rcpt_to: Duration,
    /// For the RSET reply between transactions. Default 10 s.
    pub rset: Duration,
    /// For the 221 after QUIT. Default 5 s.
    pub quit: Duration,
    /// For the whole session, whatever else: at this instant it closes. Default 180 s.
    pub session: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            greeting: Duration::from_secs(30),
            hello: Duration::from_secs(30),
            mail_from: Duration::from_secs(30),
            rcpt_to: Duration::from_secs(30),
            rset: Duration::from_secs(10),
            quit: Duration::from_secs(5),
            session: Duration::from_secs(180),
        }
    }
}

impl Timeouts {
    /// Every timeout set to `each`; the session's to six times that.
    #[must_use]
    pub fn all(each: Duration) -> Self {
        Self {
            connect: each,
            greeting: each,
            hello: each,
            mail_from: each,
            rcpt_to: each,
            rset: each,
            quit: each,
            session: each * 6,
        }
    }
}

/// Everything a session needs to know besides its recipients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// The name given in EHLO and HELO: a domain whose A record and reverse DNS match the
    /// source address, or servers may refuse the prober.
    pub helo_name: String,
    /// The sender in MAIL FROM.
    pub sender: Sender,
    /// The waits.
    pub timeouts: Timeouts,
    /// Most RCPTs in one transaction; beyond that the session says RSET and starts another.
    /// Default 100, the number RFC 5321 §4.5.3.1.8 requires every server to accept.
    pub max_recipients_per_transaction: usize,
    /// Send MAIL FROM and the RCPTs in one write when the server offers PIPELINING (RFC 2920).
    /// Default on.
    pub pipelining: bool,
    /// Keep a transcript of the conversation. Default off: it costs memory per session.
    pub transcript: bool,
    /// Caps on the server's replies.
    pub reply_limits: Limits,
    /// When to say STARTTLS (RFC 3207). Default [`StartTls::WhenRequired`].
    pub starttls: StartTls,
    /// The TLS client STARTTLS starts: by default one that takes any certificate (see
    /// [`crate::tls`]).
    pub tls: TlsClient,
}

impl SessionConfig {
    /// Checks that the EHLO name and the sender can be written into commands (no CR, LF or
    /// other injection, RFC 5321 grammar), and says what to fix if not.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut scratch = Vec::new();
        Command::Ehlo(&self.helo_name)
            .encode(&mut scratch)
            .map_err(|error| ConfigError::HeloName {
                name: self.helo_name.clone(),
                error,
            })?;
        let reverse_path = match &self.sender {
            Sender::Null => ReversePath::Null,
            Sender::Mailbox(mailbox) => ReversePath::Mailbox(mailbox),
        };
        Command::MailFrom {
            reverse_path,
            smtputf8: false,
        }
        .encode(&mut scratch)
        .map_err(|error| ConfigError::Sender {
            sender: match &self.sender {
                Sender::Null => String::new(),
                Sender::Mailbox(mailbox) => mailbox.clone(),
            },
            why: error.to_string(),
        })
    }

    /// The configuration, checked ([`validate`](Self::validate)): the only kind a
    /// [`Session`](super::Session) takes.
    pub fn check(self) -> Result<CheckedSessionConfig, ConfigError> {
        self.validate()?;
        Ok(CheckedSessionConfig(self))
    }

    /// The defaults, with this EHLO name and sender.
    #[must_use]
    pub fn new(helo_name: impl Into<String>, sender: Sender) -> Self {
        Self {
            helo_name: helo_name.into(),
            sender,
            timeouts: Timeouts::default(),
            max_recipients_per_transaction: 100,
            pipelining: true,
            transcript: false,
            reply_limits: Limits::DEFAULT,
            starttls: StartTls::default(),
            tls: TlsClient::unverified(),
        }
    }
}

/// A [`SessionConfig`] whose EHLO name and sender are known to encode
/// ([`SessionConfig::check`]). A [`Session`](super::Session) takes only this, so the prober's
/// own misconfiguration can never settle a recipient: it is refused before any session exists,
/// with an error that says what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedSessionConfig(SessionConfig);

impl Deref for CheckedSessionConfig {
    type Target = SessionConfig;

    fn deref(&self) -> &SessionConfig {
        &self.0
    }
}

impl CheckedSessionConfig {
    /// The same configuration without pipelining (still checked: the names did not change).
    #[must_use]
    pub fn without_pipelining(&self) -> Self {
        Self(SessionConfig {
            pipelining: false,
            ..self.0.clone()
        })
    }
}
