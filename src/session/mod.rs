//! One probe conversation on one connection, as a sans-IO state machine.
//!
//! ```text
//!   connect ─► 220 greeting ─► EHLO (HELO if 500/502) ─► MAIL FROM ─► RCPT TO × n ─► QUIT
//!                                                          ▲              │
//!                                                          └──── RSET ◄───┘ (more than one transaction)
//! ```
//!
//! [`Session`] takes "connected", the bytes the server sends, "closed" and the time, and gives
//! back the bytes to write, its next deadline and [`SessionEvent`]s: one per recipient, then one
//! when the conversation is over. It never owns a socket or reads the clock, and it cannot send
//! DATA or BDAT: the command type it writes with has no such variant.
//!
//! - `config.rs`: the EHLO name, the sender, the timeouts and why they are what they are.
//! - `conversation.rs`: the state machine.
//! - `recipients.rs`: the addresses a session asks about, packed in one string, and which are
//!   settled.
//! - `outcome.rs`: what becomes of each recipient: a reply that decided (classified by
//!   [`crate::verdict::classify`]), "SMTPUTF8 unsupported", handed back to the engine
//!   (connection failed or lost, 421, too many recipients), or a failure (timeout, protocol
//!   error).
//! - `transcript.rs`: the conversation both ways with timestamps, when asked for.
//!
//! # STARTTLS (RFC 3207)
//!
//! The session can turn its connection into TLS, bytes in and bytes out like the rest: after
//! STARTTLS's `220` it feeds what it reads to a rustls client connection and its commands
//! through it, so the driver moves ciphertext as it moved plain text. When is the
//! configuration's [`StartTls`](crate::tls::StartTls): by default only when the server refuses
//! MAIL FROM or RCPT TO with `530` (or `x.7.10`, or `x.7.0` naming TLS), where it offered
//! STARTTLS; the replies still in flight are then read and dropped, an open transaction is
//! RSET, STARTTLS goes out alone, and after the handshake EHLO again (what was learned before
//! TLS is forgotten) and the transaction starts over, on the same connection. While such a
//! refusal may still come, QUIT is not put in the last pipelined group, unless the engine knows
//! the server takes MAIL FROM in plain text ([`Session::with_plain_text_known`]); a `530` that
//! comes after QUIT anyway hands the recipients back as [`HandBack::TlsRequired`]. A handshake that fails
//! hands every recipient back ([`HandBack::TlsFailed`]); a `421` for want of TLS hands them
//! back as [`HandBack::TlsRequired`], for a session that says STARTTLS first. Bytes that come
//! with STARTTLS's `220`, or before the client's EHLO after the handshake, break the protocol.
//!
//! # What the session does with what the server says
//!
//! - **Greeting**: waits for the whole of it (a multi-line `220-` banner included) and says
//!   nothing before — Postfix's postscreen drops clients that talk first. 220 goes on; 421
//!   hands the recipients back (try the next MX); any other code settles them all and QUITs.
//! - **EHLO**, then **HELO** if EHLO is answered 500 or 502 (RFC 5321 §4.1.4).
//! - **SMTPUTF8**: a recipient that needs it, at a server that does not offer it, is settled
//!   as `smtputf8_unsupported` and never sent.
//! - **MAIL FROM** with `SMTPUTF8` when a recipient in the transaction needs it. Refused: every
//!   recipient gets that reply (`sender_rejected` or `blocked`, never a verdict on them).
//! - **RCPT TO**, each with its own outcome. With **PIPELINING** (RFC 2920), and only then,
//!   MAIL FROM and the transaction's RCPTs go out in one write and the replies are matched in
//!   order; otherwise lock-step. More recipients than a transaction may hold: RSET, and
//!   another transaction. **452** or **x.5.3** ("too many recipients"): the rest are handed
//!   back for another session.
//! - **QUIT** always, and a bounded wait for the 221, which vouches for every answer of the
//!   session: replies carry no reference to their command, and only as many replies as
//!   commands, each fitting its command, prove the pairing (`Misalignment`). Until then no
//!   event leaves the session. With PIPELINING, QUIT ends the last transaction's group (RFC
//!   2920 §3.1 allows QUIT as the last command of a group), so the 221 comes with the RCPT
//!   replies and the session takes one round trip less.
//! - Every reply has a deadline of its own, counted from the previous reply when pipelined, and
//!   the session one for everything: a silent server, one that drips a byte a second, or one
//!   that sends an endless multi-line reply ends in bounded time and memory.
//! - A server that breaks the protocol or the pairing (a malformed reply, a reply nobody asked
//!   for, a code its command may not get, a reply naming another recipient) ends the session:
//!   its answers are asked again without pipelining, or are `protocol_error` in lock-step.

mod config;
mod conversation;
mod outcome;
mod recipients;
mod transcript;

pub use config::{CheckedSessionConfig, ConfigError, Sender, SessionConfig, Timeouts};
pub use conversation::{Session, SessionEvent};
pub use outcome::{
    Answering, Failure, HandBack, Misalignment, ProtocolViolation, RecipientOutcome,
    SessionSummary, Wait,
};
pub use recipients::{Recipient, Recipients};
pub use transcript::{Direction, Entry, Transcript};

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "a test needs an origin for its hand-moved clock"
)]
mod tests;
#[cfg(test)]
#[cfg(feature = "sim")]
#[allow(
    clippy::disallowed_methods,
    reason = "a test needs an origin for its hand-moved clock"
)]
mod tls_tests;
