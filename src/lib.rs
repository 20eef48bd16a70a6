//! mxprobe tells whether a mailbox exists without sending mail.
//!
//! For each address it checks the syntax, finds the domain's mail servers with its own DNS
//! client, opens SMTP to the preferred MX, says EHLO, MAIL FROM, RCPT TO — and QUIT. It never
//! sends DATA. The RCPT reply, a catch-all control probe and the DNS facts become one verdict
//! per address.
//!
//! # Layers
//!
//! ```text
//! addresses ─► address ─► engine ─► dns ─► engine ─► session ─► verdict ─► output
//!                          ▲                  ▲
//!                          └──── driver (mio) ┘   sockets, timers, the clock
//! ```
//!
//! Dependencies run one way: `cli → driver → engine → {session, dns, address} → {smtp, verdict}`.
//! Everything below the driver is *sans-IO*: plain state machines that take received bytes and
//! `now: Instant` as arguments and hand back bytes to send and the next deadline. They never
//! touch a socket and never read the clock — clippy enforces the latter (`clippy.toml`) — so every
//! protocol path can be tested byte for byte and fuzzed.
//!
//! This release contains the wire layer:
//!
//! - [`smtp`]: the streaming SMTP reply parser, reply and enhanced codes, EHLO extensions, and
//!   the command encoder that refuses CR, LF and NUL and has no way to say DATA.

pub mod address;
pub mod dns;
pub mod driver;
pub mod engine;
pub mod session;
pub mod sim;
pub mod smtp;
pub mod verdict;

/// The examples of README.md, compiled and run as doc tests so they cannot rot.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
