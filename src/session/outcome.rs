//! What a session says about each recipient, and about itself.

use std::fmt;

use crate::smtp::reply::{OwnedReply, ReplyError};
use crate::smtp::{CommandError, Extensions};
use crate::verdict::{Reason, Stage};

/// What became of one recipient in one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecipientOutcome {
    /// A reply decided: the RCPT reply, or an earlier one (greeting, EHLO, MAIL FROM) that ended
    /// the conversation before the recipient was asked about. `reason` is the classification
    /// of `reply` at `stage` ([`crate::verdict::classify`]).
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
    /// The conversation failed before an answer: a timeout or a server that broke the protocol.
    Failed(Failure),
    /// The mailbox cannot be written into a command (the address layer should have refused it).
    Unencodable(CommandError),
}

impl RecipientOutcome {
    /// The verdict reason, for outcomes that have one; `None` for [`Self::HandedBack`], which
    /// the engine resolves by asking again.
    #[must_use]
    pub fn reason(&self) -> Option<Reason> {
        match self {
            Self::Replied { reason, .. } => Some(*reason),
            Self::Smtputf8Unsupported => Some(Reason::Smtputf8Unsupported),
            Self::HandedBack(_) => None,
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
}

impl fmt::Display for HandBack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ConnectFailed => "the connection could not be made",
            Self::ServiceUnavailable => "the server answered 421 (service not available)",
            Self::ConnectionLost => "the server closed the connection before answering",
            Self::TooManyRecipients => "the server accepts no more recipients in this session",
            Self::ResetRefused => "the server refused RSET between transactions",
        })
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
    /// The session's own deadline.
    Session,
}

/// How a server broke the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtocolViolation {
    /// The bytes were not a valid reply, or a reply broke a cap.
    Malformed(ReplyError),
    /// A reply arrived when none was expected: the server talked out of turn.
    Unsolicited,
    /// A reply code that makes no sense where it came (a 250 greeting, a 354 to RCPT).
    UnexpectedCode {
        /// Where.
        stage: Stage,
        /// What.
        code: u16,
    },
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout(Wait::Connect) => f.write_str("timed out connecting"),
            Self::Timeout(Wait::Reply(stage)) => {
                write!(f, "timed out waiting for the {} reply", stage.as_str())
            }
            Self::Timeout(Wait::Rset) => f.write_str("timed out waiting for the RSET reply"),
            Self::Timeout(Wait::Session) => f.write_str("the session reached its deadline"),
            Self::Protocol(ProtocolViolation::Malformed(error)) => {
                write!(f, "the server sent a malformed reply: {error}")
            }
            Self::Protocol(ProtocolViolation::Unsolicited) => {
                f.write_str("the server sent a reply nobody asked for")
            }
            Self::Protocol(ProtocolViolation::UnexpectedCode { stage, code }) => write!(
                f,
                "the server answered {code} to {}, which makes no sense there",
                stage.as_str()
            ),
        }
    }
}

/// How a session ended, with what it learned about the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSummary {
    /// The greeting, if one came.
    pub greeting: Option<OwnedReply>,
    /// The server's extensions, if EHLO succeeded.
    pub extensions: Option<Extensions>,
    /// True if the server answered QUIT.
    pub quit_acknowledged: bool,
    /// What ended the session early, if anything did.
    pub failure: Option<Failure>,
    /// Transactions (MAIL FROM) started.
    pub transactions: usize,
}
