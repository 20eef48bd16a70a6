//! What a session says about each recipient, and about itself.

use std::fmt;

use crate::smtp::reply::{OwnedReply, ReplyError};
use crate::smtp::{CommandError, Extensions};
use crate::tls::TlsVersion;
use crate::verdict::{Reason, Stage};

/// What became of one recipient in one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecipientOutcome {
    /// A reply decided: the RCPT reply, or an earlier one (greeting, EHLO, MAIL FROM) that ended
    /// the conversation before the recipient was asked about. `reason` is the classification
    /// of `reply` at `stage` ([`crate::verdict::classify`]). The session hands these out only
    /// once it can vouch that the reply answered this recipient's own command (see
    /// [`Misalignment`]).
    Replied {
        /// Which command the reply answered.
        stage: Stage,
        /// The reply, as received.
        reply: OwnedReply,
        /// What it means.
        reason: Reason,
    },
    /// The address needs SMTPUTF8 and the server does not offer it; it was not sent.
    Smtputf8Unsupported,
    /// The recipient was not asked about, or got no answer, for a reason that says nothing of
    /// it: the engine should ask again, on another session or another MX.
    HandedBack(HandBack),
    /// The session cannot vouch that the reply it read for this recipient answered its RCPT
    /// (or it got none), because the exchange was broken under pipelining or never proven
    /// whole: the engine should ask again, in a session without pipelining.
    Unconfirmed(Misalignment),
    /// The conversation failed before an answer: a timeout or a server that broke the protocol.
    Failed(Failure),
    /// The mailbox cannot be written into a command (the address layer should have refused it).
    Unencodable(CommandError),
}

impl RecipientOutcome {
    /// The verdict reason, for outcomes that have one; `None` for [`Self::HandedBack`] and
    /// [`Self::Unconfirmed`], which the engine resolves by asking again.
    #[must_use]
    pub fn reason(&self) -> Option<Reason> {
        match self {
            Self::Replied { reason, .. } => Some(*reason),
            Self::Smtputf8Unsupported => Some(Reason::Smtputf8Unsupported),
            Self::HandedBack(_) | Self::Unconfirmed(_) => None,
            Self::Failed(Failure::Timeout(_)) => Some(Reason::Timeout),
            Self::Failed(Failure::Protocol(_)) => Some(Reason::ProtocolError),
            Self::Unencodable(_) => Some(Reason::InvalidSyntax),
        }
    }
}

/// Why a recipient was handed back unanswered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HandBack {
    /// The connection could not be made (refused, unreachable, timed out): try the next MX.
    ConnectFailed,
    /// The server answered 421 (greeting or later): it is shutting down or overloaded.
    ServiceUnavailable,
    /// The server closed the connection before answering.
    ConnectionLost,
    /// The server limits recipients per session or transaction (452, x.5.3).
    TooManyRecipients,
    /// RSET between transactions failed, so the rest could not be asked.
    ResetRefused,
    /// The SOCKS5 proxy the connection went through failed before the server was reached:
    /// nothing is known of the server (see [`crate::socks5`]).
    ProxyFailed,
    /// The server refused for want of TLS and the session could not start over on its
    /// connection: a `421` whose text asks for it (Gmail's `421 4.7.0 TLS required for RCPT
    /// domain, closing connection`, its reply in [`SessionSummary::closing`]), or a `530` that
    /// came after QUIT was sent with the last group, where STARTTLS was offered and not yet
    /// said. Asked again with STARTTLS first
    /// ([`Session::with_starttls`](super::Session::with_starttls)).
    TlsRequired,
    /// STARTTLS was answered `220` and the TLS handshake then failed (a certificate refused
    /// under `--tls-verify`, a server whose TLS is broken, a handshake that timed out):
    /// [`SessionSummary::tls_failure`] says how. Nothing was asked over TLS, and after a
    /// `220` to STARTTLS nothing may be said in plain text.
    TlsFailed,
}

impl fmt::Display for HandBack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ConnectFailed => "the connection could not be made",
            Self::ServiceUnavailable => "the server answered 421 (service not available)",
            Self::ConnectionLost => "the server closed the connection before answering",
            Self::TooManyRecipients => "the server accepts no more recipients in this session",
            Self::ResetRefused => "the server refused RSET between transactions",
            Self::ProxyFailed => "the SOCKS5 proxy failed before the server was reached",
            Self::TlsFailed => "the TLS handshake after STARTTLS failed",
            Self::TlsRequired => "the server closed the connection for want of TLS",
        })
    }
}

/// Why a session cannot vouch for the pairing of replies and commands.
///
/// Replies carry no reference to the command they answer: a client pairs them by order
/// alone (RFC 5321 §4.3.2, RFC 2920 §3.2). A server that loses, repeats or adds one reply
/// shifts every reply after it onto the wrong command, and a `250` meant for one recipient is
/// read as the answer about another. With PIPELINING that is a whole group at once; in
/// lock-step too, an extra reply that comes after the next command went out is read as that
/// command's answer. So a session hands out no answer until QUIT, its last command, is answered
/// `221` with nothing after it: only then did exactly as many replies come as commands went,
/// each fitting its command. A server that hangs up or falls silent first leaves the answers
/// unproven: not even the end of the stream proves them, since a server can close with a
/// reply still owed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Misalignment {
    /// The server broke the sequence: this reply (or these bytes) cannot be the answer to the
    /// command it came for.
    Broken(ProtocolViolation),
    /// The exchange ended (closed, timed out, 421) before QUIT was answered: nothing shows a
    /// reply was lost, and nothing proves none was. With the failure that ended it, if one did
    /// (`None`: the server closed the connection or answered 421).
    Unproven(Option<Failure>),
}

impl Misalignment {
    /// The reply that showed the break, if it was a reply.
    #[must_use]
    pub fn reply(&self) -> Option<&OwnedReply> {
        match self {
            Self::Broken(violation) => violation.reply(),
            Self::Unproven(_) => None,
        }
    }
}

impl fmt::Display for Misalignment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Broken(violation) => violation.fmt(f),
            Self::Unproven(ending) => {
                match ending {
                    Some(failure) => write!(f, "{failure} ")?,
                    None => f.write_str("the server closed the connection ")?,
                }
                f.write_str(
                    "before QUIT was answered 221, so nothing proves which reply answered which \
                     command",
                )
            }
        }
    }
}

/// Why a session failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No reply (or no complete reply) before the deadline of the wait named.
    Timeout(Wait),
    /// The server broke the protocol.
    Protocol(ProtocolViolation),
}

/// The waits a session has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Wait {
    /// For the connection.
    Connect,
    /// For a reply to this stage's command (or the greeting).
    Reply(Stage),
    /// For the RSET reply.
    Rset,
    /// For the 221 after QUIT.
    Quit,
    /// The session's own deadline.
    Session,
}

/// What a reply answers: the greeting, or one of the commands a probe sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Answering {
    /// The server's greeting, before any command.
    Greeting,
    /// EHLO.
    Ehlo,
    /// HELO.
    Helo,
    /// MAIL FROM.
    MailFrom,
    /// RCPT TO.
    RcptTo,
    /// RSET.
    Rset,
    /// STARTTLS.
    StartTls,
    /// QUIT.
    Quit,
}

impl Answering {
    /// The command's name, as people read it in a message.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Greeting => "the greeting",
            Self::Ehlo => "EHLO",
            Self::Helo => "HELO",
            Self::MailFrom => "MAIL FROM",
            Self::RcptTo => "RCPT TO",
            Self::Rset => "RSET",
            Self::StartTls => "STARTTLS",
            Self::Quit => "QUIT",
        }
    }
}

/// How a server broke the protocol. Each kind that came as a reply carries it: it is the
/// reply that failed the session, and the one a verdict shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtocolViolation {
    /// The bytes were not a valid reply, or a reply broke a cap.
    Malformed(ReplyError),
    /// A reply arrived when none was expected: the server talked out of turn. `None` when the
    /// extra bytes came with the last reply expected and were not yet a whole reply.
    Unsolicited(Option<OwnedReply>),
    /// A reply code the command may not get (RFC 5321 §4.3.2): a `250` greeting, a `354` or a
    /// `221` to RCPT, anything but `221` to QUIT.
    UnexpectedCode {
        /// What the reply was read as answering.
        to: Answering,
        /// The reply.
        reply: OwnedReply,
    },
    /// QUIT was answered (`221`) while commands sent before it still waited for theirs: the
    /// server lost replies to pipelined commands.
    RepliesLost(OwnedReply),
    /// The session ended (closed, timed out) while QUIT's reply was coming, and what had
    /// come of it cannot begin a 221: it is the reply to an earlier command, shifted onto
    /// QUIT by one reply too many.
    ShiftedOntoQuit,
    /// The RCPT reply names another recipient of the session (`550 5.1.1 <b@x>: ...` read for
    /// `a@x`): the replies are out of order.
    NamesAnotherRecipient(OwnedReply),
}

impl ProtocolViolation {
    /// The reply that broke the protocol, if the violation was a reply.
    #[must_use]
    pub fn reply(&self) -> Option<&OwnedReply> {
        match self {
            Self::Malformed(_) | Self::Unsolicited(None) | Self::ShiftedOntoQuit => None,
            Self::Unsolicited(Some(reply))
            | Self::UnexpectedCode { reply, .. }
            | Self::RepliesLost(reply)
            | Self::NamesAnotherRecipient(reply) => Some(reply),
        }
    }
}

impl fmt::Display for ProtocolViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(error) => write!(f, "the server sent a malformed reply: {error}"),
            Self::Unsolicited(_) => f.write_str("the server sent a reply nobody asked for"),
            Self::UnexpectedCode { to, reply } => write!(
                f,
                "the server answered {} to {}, which RFC 5321 §4.3.2 does not allow there",
                reply.as_reply().code().get(),
                to.as_str()
            ),
            Self::RepliesLost(_) => f.write_str(
                "the server answered QUIT before the commands pipelined ahead of it: it lost \
                 their replies",
            ),
            Self::ShiftedOntoQuit => f.write_str(
                "the connection ended while QUIT was being answered with something other than \
                 221: the reply to an earlier command, shifted by one reply too many",
            ),
            Self::NamesAnotherRecipient(_) => f.write_str(
                "an RCPT TO reply names another recipient of the session: the replies are out \
                 of order",
            ),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout(Wait::Connect) => f.write_str("timed out connecting"),
            Self::Timeout(Wait::Reply(stage)) => {
                write!(f, "timed out waiting for the {} reply", stage.as_str())
            }
            Self::Timeout(Wait::Rset) => f.write_str("timed out waiting for the RSET reply"),
            Self::Timeout(Wait::Quit) => f.write_str("timed out waiting for the QUIT reply"),
            Self::Timeout(Wait::Session) => f.write_str("the session reached its deadline"),
            Self::Protocol(violation) => violation.fmt(f),
        }
    }
}

/// How a session ended, with what it learned about the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSummary {
    /// The greeting, if one came.
    pub greeting: Option<OwnedReply>,
    /// The 421 that closed the session and the command it answered, if one did: its recipients
    /// were handed back ([`HandBack::ServiceUnavailable`]), and its text may say why.
    pub closing: Option<(Stage, OwnedReply)>,
    /// The server's extensions, if EHLO succeeded.
    pub extensions: Option<Extensions>,
    /// True if the server answered QUIT with `221`.
    pub quit_acknowledged: bool,
    /// What ended the session early, if anything did.
    pub failure: Option<Failure>,
    /// Transactions (MAIL FROM) started.
    pub transactions: usize,
    /// True if the session used PIPELINING.
    pub pipelined: bool,
    /// Set when the session could not vouch for the pairing of replies and commands: its
    /// answers were handed back ([`RecipientOutcome::Unconfirmed`]) or failed.
    pub misalignment: Option<Misalignment>,
    /// The TLS version spoken after STARTTLS, if the handshake completed: every reply read
    /// after it came over TLS.
    pub tls: Option<TlsVersion>,
    /// How the TLS handshake failed, if it did ([`HandBack::TlsFailed`]): rustls's reason, or
    /// the server's hang-up or silence.
    pub tls_failure: Option<String>,
}
