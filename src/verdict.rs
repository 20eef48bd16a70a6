//! The vocabulary of results: one [`Verdict`] per address, and the [`Reason`] behind it.
//!
//! These are the stable names of the output schema (DESIGN.md §3): `verdict` is one of four
//! words, `reason` one of nineteen, and every reason belongs to exactly one verdict, so a
//! [`Reason`] alone determines the [`Verdict`] ([`Reason::verdict`]). The names never change
//! once released; scripts match on them.
//!
//! [`classify`] maps an SMTP reply, and the stage of the conversation it answered, to a
//! [`Reason`]. docs/verdicts.md has the full table with the RFC or the observed provider
//! behaviour behind each row.
//!
//! # How a reply is read
//!
//! Codes decide; text only refines (DESIGN.md §3). In order:
//!
//! 1. The reply code's class: 2yz, 4yz or 5yz (a 3yz where none is expected is a protocol
//!    error).
//! 2. The enhanced status code (RFC 3463), when the server sent one and it is specific:
//!    `x.1.x` addressing, `x.2.1` disabled, `x.2.2` full, `x.7.x` policy, and Microsoft's
//!    `5.4.1` "Recipient address rejected: Access denied", which is its directory saying the
//!    mailbox does not exist (its `5.4.1 Relay Access Denied` is not).
//! 3. The text, for what codes cannot say: a rejection that is about the *sender* or the
//!    client even though it came at RCPT (Postfix checks sender, client and HELO restrictions
//!    at RCPT by default, `smtpd_delay_reject = yes`; Exim verifies senders at RCPT), a
//!    blocklist or policy refusal sent as a plain 550, greylisting sent as a plain 450.
//! 4. The reply code itself: 550, 551, 553 the mailbox does not exist; 552 it is full; 554
//!    refused by policy; 450 and 451 greylisting; other 4yz temporary.
//!
//! Nothing here is ever `undeliverable` on a reply that could be about the sender, the client
//! or a policy: those are `unknown`, so a blocked prober never turns good addresses bad.
//!
//! # Refusals the table cannot explain
//!
//! A 5yz to RCPT refuses that recipient for good (RFC 5321 §4.2.1), but real servers send
//! enhanced codes outside the table's (`550 5.2.4`, `550 5.3.0`, `550 5.0.0`), bare 550s, or
//! codes RFC 5321 does not list for RCPT (`521`, `571`). Read alone, such a reply cannot say
//! whether the mailbox is missing or the server refuses everyone. [`read_rcpt`] marks it
//! [`Reading::unexplained`], and the engine calibrates it against the rest of the session
//! (other recipients accepted: the mailbox is missing; every recipient and the catch-all
//! control refused alike: a blanket refusal, `blocked`). [`classify`] gives the reading by the
//! code alone, for when nothing in the session can calibrate it.

use std::fmt;

use crate::smtp::{Reply, ReplyClass};

/// What mxprobe concludes about one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verdict {
    /// The server accepted the mailbox, and the domain is not catch-all.
    Deliverable,
    /// The address cannot receive mail: its syntax, its domain or its server says so.
    Undeliverable,
    /// Mail would probably be accepted, but the answer is not worth much: catch-all domains,
    /// full mailboxes, disposable domains.
    Risky,
    /// No definitive answer: greylisting, policy blocks, timeouts, DNS failures.
    Unknown,
}

impl Verdict {
    /// The output name: `deliverable`, `undeliverable`, `risky` or `unknown`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Deliverable => "deliverable",
            Self::Undeliverable => "undeliverable",
            Self::Risky => "risky",
            Self::Unknown => "unknown",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Why an address got its verdict. See `docs/verdicts.md` for the full table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// `deliverable`: RCPT TO was accepted (250/251).
    Accepted,
    /// `undeliverable`: the address breaks the mailbox grammar or a length limit; no packet
    /// was sent.
    InvalidSyntax,
    /// `undeliverable`: the domain does not exist (NXDOMAIN).
    DomainNotFound,
    /// `undeliverable`: the domain publishes a null MX (RFC 7505): it accepts no mail.
    NullMx,
    /// `undeliverable`: MX records exist but no exchange has an address.
    NoMailServer,
    /// `undeliverable`: the server says the mailbox does not exist (550 5.1.1 and kin).
    MailboxNotFound,
    /// `undeliverable`: the mailbox exists but is disabled (x.2.1).
    MailboxDisabled,
    /// `risky`: the domain accepts any local part (catch-all), so acceptance proves nothing.
    AcceptAll,
    /// `risky`: the mailbox is full (552, x.2.2).
    MailboxFull,
    /// `risky`: the domain hands out throwaway addresses.
    Disposable,
    /// `unknown`: the server asked to try again later, as greylisting does.
    Greylisted,
    /// `unknown`: another transient failure (4xx).
    TemporaryFailure,
    /// `unknown`: a policy refused the probe (554, 5.7.x, blocklists).
    Blocked,
    /// `unknown`: the server refused the sender at MAIL FROM.
    SenderRejected,
    /// `unknown`: a deadline passed before an answer.
    Timeout,
    /// `unknown`: no mail server could be connected to.
    ConnectionFailed,
    /// `unknown`: the server broke the SMTP protocol.
    ProtocolError,
    /// `unknown`: DNS did not answer (SERVFAIL, REFUSED, timeout).
    DnsFailure,
    /// `unknown`: the address needs SMTPUTF8 and the server does not offer it.
    Smtputf8Unsupported,
}

impl Reason {
    /// Every reason, in the order of the output schema's table.
    pub const ALL: [Self; 19] = [
        Self::Accepted,
        Self::InvalidSyntax,
        Self::DomainNotFound,
        Self::NullMx,
        Self::NoMailServer,
        Self::MailboxNotFound,
        Self::MailboxDisabled,
        Self::AcceptAll,
        Self::MailboxFull,
        Self::Disposable,
        Self::Greylisted,
        Self::TemporaryFailure,
        Self::Blocked,
        Self::SenderRejected,
        Self::Timeout,
        Self::ConnectionFailed,
        Self::ProtocolError,
        Self::DnsFailure,
        Self::Smtputf8Unsupported,
    ];

    /// The verdict this reason belongs to.
    #[must_use]
    pub const fn verdict(self) -> Verdict {
        match self {
            Self::Accepted => Verdict::Deliverable,
            Self::InvalidSyntax
            | Self::DomainNotFound
            | Self::NullMx
            | Self::NoMailServer
            | Self::MailboxNotFound
            | Self::MailboxDisabled => Verdict::Undeliverable,
            Self::AcceptAll | Self::MailboxFull | Self::Disposable => Verdict::Risky,
            Self::Greylisted
            | Self::TemporaryFailure
            | Self::Blocked
            | Self::SenderRejected
            | Self::Timeout
            | Self::ConnectionFailed
            | Self::ProtocolError
            | Self::DnsFailure
            | Self::Smtputf8Unsupported => Verdict::Unknown,
        }
    }

    /// The output name, e.g. `mailbox_not_found`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::InvalidSyntax => "invalid_syntax",
            Self::DomainNotFound => "domain_not_found",
            Self::NullMx => "null_mx",
            Self::NoMailServer => "no_mail_server",
            Self::MailboxNotFound => "mailbox_not_found",
            Self::MailboxDisabled => "mailbox_disabled",
            Self::AcceptAll => "accept_all",
            Self::MailboxFull => "mailbox_full",
            Self::Disposable => "disposable",
            Self::Greylisted => "greylisted",
            Self::TemporaryFailure => "temporary_failure",
            Self::Blocked => "blocked",
            Self::SenderRejected => "sender_rejected",
            Self::Timeout => "timeout",
            Self::ConnectionFailed => "connection_failed",
            Self::ProtocolError => "protocol_error",
            Self::DnsFailure => "dns_failure",
            Self::Smtputf8Unsupported => "smtputf8_unsupported",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Which command a reply answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// The server's greeting, before any command.
    Greeting,
    /// EHLO or HELO.
    Hello,
    /// MAIL FROM.
    MailFrom,
    /// RCPT TO.
    RcptTo,
}

impl Stage {
    /// A stable lower-case name for transcripts and output.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Greeting => "greeting",
            Self::Hello => "hello",
            Self::MailFrom => "mail_from",
            Self::RcptTo => "rcpt_to",
        }
    }
}

/// What `reply`, received at `stage`, says about the address being probed.
///
/// At [`Stage::RcptTo`] this is the verdict on the recipient. At the earlier stages the reply
/// ended the conversation before any recipient was asked about, so it says something about the
/// server, the sender or the prober, never about the mailbox: every such reason is `unknown`.
///
/// ```
/// use mxprobe::smtp::reply::{parse_reply, Limits, Status};
/// use mxprobe::verdict::{classify, Reason, Stage};
///
/// let wire = b"550-5.1.1 The email account that you tried to reach does not exist.\r\n550 5.1.1 gsmtp\r\n";
/// let Ok(Status::Complete(reply)) = parse_reply(wire, &Limits::DEFAULT) else { panic!() };
/// assert_eq!(classify(Stage::RcptTo, &reply), Reason::MailboxNotFound);
/// assert_eq!(classify(Stage::MailFrom, &reply), Reason::SenderRejected);
/// ```
#[must_use]
pub fn classify(stage: Stage, reply: &Reply<'_>) -> Reason {
    match stage {
        Stage::RcptTo => read_rcpt(reply).reason,
        Stage::MailFrom => classify_mail_from(reply),
        Stage::Greeting | Stage::Hello => classify_session(reply),
    }
}

/// What one RCPT reply says on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    /// The reason, by this reply alone.
    pub reason: Reason,
    /// A permanent refusal (5yz) whose codes say neither that the mailbox does not exist nor
    /// why the server refuses (see the module documentation): `reason` is the reading by the
    /// code alone, and the rest of the session should calibrate it.
    pub unexplained: bool,
}

/// What an RCPT reply says about the mailbox, and whether that needs calibrating.
///
/// ```
/// use mxprobe::smtp::reply::{parse_reply, Limits, Status};
/// use mxprobe::verdict::{read_rcpt, Reason};
///
/// let wire = b"550 5.2.4 Mailing list expansion problem\r\n";
/// let Ok(Status::Complete(reply)) = parse_reply(wire, &Limits::DEFAULT) else { panic!() };
/// let reading = read_rcpt(&reply);
/// assert_eq!((reading.reason, reading.unexplained), (Reason::MailboxNotFound, true));
///
/// let wire = b"550 5.1.1 User unknown\r\n";
/// let Ok(Status::Complete(reply)) = parse_reply(wire, &Limits::DEFAULT) else { panic!() };
/// assert!(!read_rcpt(&reply).unexplained);
/// ```
#[must_use]
pub fn read_rcpt(reply: &Reply<'_>) -> Reading {
    match classify_rcpt(reply) {
        Ok(reason) => Reading {
            reason,
            unexplained: false,
        },
        Err(reason) => Reading {
            reason,
            unexplained: true,
        },
    }
}

/// RCPT TO, row by row as docs/verdicts.md gives them: `Ok` when a row decides, `Err` with the
/// code's own reading when the reply is a permanent refusal no row explains.
fn classify_rcpt(reply: &Reply<'_>) -> Result<Reason, Reason> {
    let code = reply.code().get();
    let subject_detail = reply.enhanced().map(|e| (e.subject(), e.detail()));
    match reply.class() {
        ReplyClass::PositiveCompletion if code == 252 => Ok(Reason::Blocked),
        ReplyClass::PositiveCompletion => Ok(Reason::Accepted),
        ReplyClass::PositiveIntermediate => Ok(Reason::ProtocolError),
        ReplyClass::TransientNegative => Ok(classify_rcpt_transient(reply, code, subject_detail)),
        ReplyClass::PermanentNegative => {
            let text = Text::of(reply);
            // The sender refused at RCPT: RFC 3463's x.1.7 and x.1.8 are the sender's address,
            // and Postfix says "Sender address rejected" even under a generic 5.1.0.
            if matches!(subject_detail, Some((1, 7 | 8))) || text.is_about_sender() {
                return Ok(Reason::SenderRejected);
            }
            match subject_detail {
                Some((1, _)) => return Ok(Reason::MailboxNotFound),
                Some((2, 1)) => return Ok(Reason::MailboxDisabled),
                Some((2, 2)) => return Ok(Reason::MailboxFull),
                Some((7, _)) => return Ok(Reason::Blocked),
                // Microsoft 365's directory-based edge blocking: "550 5.4.1 Recipient
                // address rejected: Access denied" means no such recipient in the tenant.
                // Its "550 5.4.1 Relay Access Denied" does not: the server does not take mail
                // for the domain at all, which the policy words below catch.
                Some((4, 1)) if code == 550 && text.has(&["recipient address rejected"]) => {
                    return Ok(Reason::MailboxNotFound);
                }
                _ => {}
            }
            if text.is_policy() {
                return Ok(Reason::Blocked);
            }
            match code {
                // 501: the server refuses the address's syntax; the address cannot be
                // delivered to.
                501 => Ok(Reason::MailboxNotFound),
                552 => Ok(Reason::MailboxFull),
                554 => Ok(Reason::Blocked),
                // RFC 7504: the recipient's domain does not accept mail.
                556 => Ok(Reason::MailboxNotFound),
                // 500, 502, 503, 504, 555: the command itself was not understood.
                500 | 502..=504 | 555 => Ok(Reason::ProtocolError),
                // "Mailbox unavailable", "user not local", "mailbox name not allowed" (RFC 5321
                // §4.2.2): most often no such mailbox, but the code alone cannot rule out a
                // server that refuses everyone. A bare code, or an enhanced code the rows
                // above do not know (Outlook.com's 5.5.0, 5.2.4, 5.3.0, 5.0.0).
                550 | 551 | 553 => Err(Reason::MailboxNotFound),
                // A permanent refusal under a code RFC 5321 does not list for RCPT (521, 530,
                // 571...): refused for good, but nothing says why.
                _ => Err(Reason::Blocked),
            }
        }
    }
}

/// RCPT TO, 4yz: asking again later may change the answer; the text says what kind of wait.
fn classify_rcpt_transient(
    reply: &Reply<'_>,
    code: u16,
    subject_detail: Option<(u16, u16)>,
) -> Reason {
    if subject_detail == Some((2, 2)) {
        return Reason::MailboxFull;
    }
    // 421: the server is closing the connection, whatever the rest says.
    if code == 421 {
        return Reason::TemporaryFailure;
    }
    let text = Text::of(reply);
    // RFC 3463: x.1.7 and x.1.8 are the sender's address.
    if matches!(subject_detail, Some((1, 7 | 8))) || text.is_about_sender() {
        return Reason::SenderRejected;
    }
    if text.mentions_greylisting() {
        return Reason::Greylisted;
    }
    // A policy refusal that happens to be temporary (Postfix's "454 4.7.1 Relay access
    // denied", "450 4.7.1 Client host rejected"): asking again in a few minutes will not
    // change it.
    if text.is_policy() {
        return Reason::Blocked;
    }
    match subject_detail {
        Some((7, _)) => Reason::Greylisted,
        // 4.2.1: the mailbox is receiving too fast (Gmail); 4.3.x system, 4.4.x network and
        // routing, 4.5.x protocol: transient faults, not greylisting.
        Some((2, 1) | (3..=5, _)) => Reason::TemporaryFailure,
        _ if matches!(code, 450 | 451) => Reason::Greylisted,
        _ => Reason::TemporaryFailure,
    }
}

/// MAIL FROM: a refusal is about the sender or the prober, never about the recipient.
fn classify_mail_from(reply: &Reply<'_>) -> Reason {
    let subject = reply.enhanced().map(|e| e.subject());
    match reply.class() {
        ReplyClass::PositiveCompletion => Reason::Accepted,
        ReplyClass::PositiveIntermediate => Reason::ProtocolError,
        ReplyClass::TransientNegative => {
            if Text::of(reply).mentions_greylisting() || subject == Some(7) {
                Reason::Greylisted
            } else {
                Reason::TemporaryFailure
            }
        }
        ReplyClass::PermanentNegative => {
            if subject == Some(7) || reply.code().get() == 554 || Text::of(reply).is_policy() {
                Reason::Blocked
            } else {
                Reason::SenderRejected
            }
        }
    }
}

/// The greeting, EHLO or HELO refused: the server will not talk to this prober now.
fn classify_session(reply: &Reply<'_>) -> Reason {
    match reply.class() {
        ReplyClass::PositiveCompletion => Reason::Accepted,
        ReplyClass::PositiveIntermediate => Reason::ProtocolError,
        ReplyClass::TransientNegative => Reason::TemporaryFailure,
        ReplyClass::PermanentNegative => Reason::Blocked,
    }
}

/// The reply's text, lower-cased once, for the few questions codes cannot answer.
struct Text(String);

impl Text {
    fn of(reply: &Reply<'_>) -> Self {
        let mut text = String::with_capacity(reply.lines().map(|line| line.len() + 1).sum());
        for line in reply.lines() {
            text.push_str(&String::from_utf8_lossy(line));
            text.push(' ');
        }
        text.make_ascii_lowercase();
        Self(text)
    }

    fn has(&self, needles: &[&str]) -> bool {
        needles.iter().any(|needle| self.0.contains(needle))
    }

    /// A rejection of the sender that came at RCPT: Postfix's "Sender address rejected",
    /// Exim's "Sender verify failed", callout verification.
    fn is_about_sender(&self) -> bool {
        self.has(&[
            "sender address rejected",
            "sender verify failed",
            "sender verification",
            "verification failed for <",
            "sender rejected",
            "sender domain",
        ])
    }

    fn mentions_greylisting(&self) -> bool {
        self.has(&[
            "greylist",
            "graylist",
            "grey-list",
            "gray-list",
            "grey list",
            "gray list",
        ])
    }

    /// A refusal by policy: blocklists, reputation, relay refusals, client or HELO checks.
    fn is_policy(&self) -> bool {
        self.has(&[
            "spamhaus",
            "blocked",
            "blacklist",
            "blocklist",
            "block list",
            "black list",
            "dnsbl",
            "rbl",
            "proofpoint",
            "barracuda",
            "spamcop",
            "reputation",
            "policy",
            "relay access denied",
            "relaying denied",
            "not permitted",
            "client host rejected",
            "helo command rejected",
            "access denied",
            "banned",
            "abuse",
            "spam",
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table of DESIGN.md §3, written out: verdict, then its reasons.
    const SCHEMA: [(&str, &[&str]); 4] = [
        ("deliverable", &["accepted"]),
        (
            "undeliverable",
            &[
                "invalid_syntax",
                "domain_not_found",
                "null_mx",
                "no_mail_server",
                "mailbox_not_found",
                "mailbox_disabled",
            ],
        ),
        ("risky", &["accept_all", "mailbox_full", "disposable"]),
        (
            "unknown",
            &[
                "greylisted",
                "temporary_failure",
                "blocked",
                "sender_rejected",
                "timeout",
                "connection_failed",
                "protocol_error",
                "dns_failure",
                "smtputf8_unsupported",
            ],
        ),
    ];

    #[test]
    fn every_reason_has_the_schema_name_and_verdict() {
        let mut listed = Vec::new();
        for (verdict, reasons) in SCHEMA {
            listed.extend(reasons.iter().map(|reason| (*reason, verdict)));
        }
        let ours: Vec<(&str, &str)> = Reason::ALL
            .iter()
            .map(|r| (r.as_str(), r.verdict().as_str()))
            .collect();
        assert_eq!(ours, listed);
        assert_eq!(Reason::MailboxFull.to_string(), "mailbox_full");
        assert_eq!(Verdict::Risky.to_string(), "risky");
    }

    /// (stage, reply as received, expected reason): the real-world replies of the seed corpus
    /// and the rows of docs/verdicts.md.
    const CASES: &[(Stage, &[u8], Reason)] = &[
        // Accepted.
        (
            Stage::RcptTo,
            include_bytes!("../fuzz/seeds/smtp_reply/postfix_rcpt_ok.txt"),
            Reason::Accepted,
        ),
        (
            Stage::RcptTo,
            include_bytes!("../fuzz/seeds/smtp_reply/yahoo_rcpt_ok.txt"),
            Reason::Accepted,
        ),
        (
            Stage::RcptTo,
            b"251 2.1.5 User not local; will forward to <a@b.example>\r\n",
            Reason::Accepted,
        ),
        (
            Stage::RcptTo,
            b"252 2.1.5 Cannot VRFY user, but will accept message\r\n",
            Reason::Blocked,
        ),
        // The mailbox does not exist.
        (
            Stage::RcptTo,
            include_bytes!("../fuzz/seeds/smtp_reply/gmail_550_5_1_1.txt"),
            Reason::MailboxNotFound,
        ),
        (
            Stage::RcptTo,
            include_bytes!("../fuzz/seeds/smtp_reply/postfix_rcpt_unknown_local.txt"),
            Reason::MailboxNotFound,
        ),
        (
            Stage::RcptTo,
            include_bytes!("../fuzz/seeds/smtp_reply/postfix_rcpt_unknown_virtual.txt"),
            Reason::MailboxNotFound,
        ),
        (
            Stage::RcptTo,
            include_bytes!("../fuzz/seeds/smtp_reply/exim_rcpt_unrouteable.txt"),
            Reason::MailboxNotFound,
        ),
        (
            Stage::RcptTo,
            include_bytes!("../fuzz/seeds/smtp_reply/outlook_550_5_5_0.txt"),
            Reason::MailboxNotFound,
        ),
        (
            Stage::RcptTo,
            include_bytes!("../fuzz/seeds/smtp_reply/m365_550_5_4_1.txt"),
            Reason::MailboxNotFound,
        ),
        // Microsoft's other 5.4.1: the server takes no mail for the domain, whoever the
        // recipient.
        (
            Stage::RcptTo,
            b"550 5.4.1 Relay Access Denied [BN8NAM12FT012.eop-nam12.prod.protection.outlook.com]\r\n",
            Reason::Blocked,
        ),
        (
            Stage::RcptTo,
            include_bytes!("../fuzz/seeds/smtp_reply/sloppy_latin1_text.txt"),
            Reason::MailboxNotFound,
        ),
        (
            Stage::RcptTo,
            b"551 5.1.6 User has moved; please try <b@c.example>\r\n",
            Reason::MailboxNotFound,
        ),
        (
            Stage::RcptTo,
            b"553 5.1.3 Bad recipient address syntax\r\n",
            Reason::MailboxNotFound,
        ),
        (
            Stage::RcptTo,
            b"550 5.1.10 Recipient address has null MX\r\n",
            Reason::MailboxNotFound,
        ),
        (
            Stage::RcptTo,
            b"550 No such user here\r\n",
            Reason::MailboxNotFound,
        ),
        (
            Stage::RcptTo,
            b"501 Bad address\r\n",
            Reason::MailboxNotFound,
        ),
        // Disabled, full.
        (
            Stage::RcptTo,
            include_bytes!("../fuzz/seeds/smtp_reply/gmail_550_5_2_1_disabled.txt"),
            Reason::MailboxDisabled,
        ),
        (
            Stage::RcptTo,
            include_bytes!("../fuzz/seeds/smtp_reply/postfix_mailbox_full.txt"),
            Reason::MailboxFull,
        ),
        (
            Stage::RcptTo,
            b"452 4.2.2 Mailbox full\r\n",
            Reason::MailboxFull,
        ),
        (
            Stage::RcptTo,
            b"552 Requested mail action aborted: exceeded storage allocation\r\n",
            Reason::MailboxFull,
        ),
        // Greylisting and other transient failures.
        (
            Stage::RcptTo,
            include_bytes!("../fuzz/seeds/smtp_reply/greylist_451_4_7_1.txt"),
            Reason::Greylisted,
        ),
        (
            Stage::RcptTo,
            include_bytes!("../fuzz/seeds/smtp_reply/postgrey_450_greylisted.txt"),
            Reason::Greylisted,
        ),
        (
            Stage::RcptTo,
            include_bytes!("../fuzz/seeds/smtp_reply/mimecast_451_greylist.txt"),
            Reason::Greylisted,
        ),
        (
            Stage::RcptTo,
            include_bytes!("../fuzz/seeds/smtp_reply/gmail_450_4_2_1_rate.txt"),
            Reason::TemporaryFailure,
        ),
        (
            Stage::RcptTo,
            include_bytes!("../fuzz/seeds/smtp_reply/gmail_421_rate_limited.txt"),
            Reason::TemporaryFailure,
        ),
        (
            Stage::RcptTo,
            include_bytes!("../fuzz/seeds/smtp_reply/postfix_421_timeout.txt"),
            Reason::TemporaryFailure,
        ),
        (
            Stage::RcptTo,
            b"451 4.3.0 Temporary lookup failure\r\n",
            Reason::TemporaryFailure,
        ),
        (
            Stage::RcptTo,
            b"452 Insufficient system storage\r\n",
            Reason::TemporaryFailure,
        ),
        // Policy: never a verdict on the mailbox.
        (
            Stage::RcptTo,
            include_bytes!("../fuzz/seeds/smtp_reply/spamhaus_554_blocked.txt"),
            Reason::Blocked,
        ),
        (
            Stage::RcptTo,
            include_bytes!("../fuzz/seeds/smtp_reply/postfix_relay_denied.txt"),
            Reason::Blocked,
        ),
        (
            Stage::RcptTo,
            b"550 Mail from 192.0.2.7 refused, listed at bl.spamcop.net\r\n",
            Reason::Blocked,
        ),
        (
            Stage::RcptTo,
            b"550 5.7.1 Service unavailable; client host blocked by Proofpoint\r\n",
            Reason::Blocked,
        ),
        (
            Stage::RcptTo,
            b"554 Transaction failed\r\n",
            Reason::Blocked,
        ),
        (
            Stage::RcptTo,
            b"550 Access denied - Invalid HELO name\r\n",
            Reason::Blocked,
        ),
        (
            Stage::RcptTo,
            b"450 4.7.1 Client host rejected: cannot find your reverse hostname\r\n",
            Reason::Blocked,
        ),
        (
            Stage::RcptTo,
            b"454 4.7.1 <x@elsewhere.test>: Relay access denied\r\n",
            Reason::Blocked,
        ),
        // The sender, refused at RCPT.
        (
            Stage::RcptTo,
            include_bytes!("../fuzz/seeds/smtp_reply/exim_sender_verify_failed.txt"),
            Reason::SenderRejected,
        ),
        (
            Stage::RcptTo,
            b"450 4.1.8 <p@example.net>: Sender address rejected: Domain not found\r\n",
            Reason::SenderRejected,
        ),
        (
            Stage::RcptTo,
            b"553 5.1.8 <p@example.net>: Sender address rejected: Domain not found\r\n",
            Reason::SenderRejected,
        ),
        (
            Stage::RcptTo,
            b"550 5.1.0 <p@example.net>: Sender address rejected: User unknown\r\n",
            Reason::SenderRejected,
        ),
        // The command not understood.
        (
            Stage::RcptTo,
            b"500 5.5.1 Command unrecognized\r\n",
            Reason::ProtocolError,
        ),
        (
            Stage::RcptTo,
            b"503 5.5.1 Error: need MAIL command\r\n",
            Reason::ProtocolError,
        ),
        (Stage::RcptTo, b"354 go ahead\r\n", Reason::ProtocolError),
        // MAIL FROM: about the sender or the prober.
        (
            Stage::MailFrom,
            b"550 5.1.0 Sender rejected\r\n",
            Reason::SenderRejected,
        ),
        (
            Stage::MailFrom,
            b"553 5.1.8 Domain of sender address does not exist\r\n",
            Reason::SenderRejected,
        ),
        (
            Stage::MailFrom,
            b"550 5.7.1 Sender blocked by policy\r\n",
            Reason::Blocked,
        ),
        (
            Stage::MailFrom,
            include_bytes!("../fuzz/seeds/smtp_reply/spamhaus_554_blocked.txt"),
            Reason::Blocked,
        ),
        (
            Stage::MailFrom,
            b"451 4.7.1 Please try again later\r\n",
            Reason::Greylisted,
        ),
        (
            Stage::MailFrom,
            b"451 4.3.0 Temporary failure\r\n",
            Reason::TemporaryFailure,
        ),
        // Greeting, EHLO, HELO.
        (
            Stage::Greeting,
            include_bytes!("../fuzz/seeds/smtp_reply/spamhaus_554_blocked.txt"),
            Reason::Blocked,
        ),
        (
            Stage::Greeting,
            include_bytes!("../fuzz/seeds/smtp_reply/postfix_421_too_many_connections.txt"),
            Reason::TemporaryFailure,
        ),
        (
            Stage::Hello,
            b"550 5.7.1 Helo command rejected: Host not found\r\n",
            Reason::Blocked,
        ),
        (
            Stage::Hello,
            b"451 4.3.0 Try again\r\n",
            Reason::TemporaryFailure,
        ),
    ];

    #[test]
    fn replies_map_to_reasons() {
        use crate::smtp::reply::{Limits, Status, parse_reply};
        for (stage, wire, expected) in CASES {
            let Ok(Status::Complete(reply)) = parse_reply(wire, &Limits::DEFAULT) else {
                panic!("{}: not one reply", wire.escape_ascii());
            };
            assert_eq!(
                classify(*stage, &reply),
                *expected,
                "{stage:?} {}",
                wire.escape_ascii()
            );
        }
    }

    /// (reply, reading alone, needs the session to calibrate it)
    const READINGS: &[(&[u8], Reason, bool)] = &[
        (
            b"550 5.1.1 User unknown\r\n",
            Reason::MailboxNotFound,
            false,
        ),
        (b"550 5.2.1 Inactive\r\n", Reason::MailboxDisabled, false),
        (b"550 5.7.1 Blocked\r\n", Reason::Blocked, false),
        (b"554 Transaction failed\r\n", Reason::Blocked, false),
        (b"503 5.5.1 Need MAIL\r\n", Reason::ProtocolError, false),
        (
            b"556 5.1.10 Domain does not accept mail\r\n",
            Reason::MailboxNotFound,
            false,
        ),
        (
            b"556 Domain does not accept mail\r\n",
            Reason::MailboxNotFound,
            false,
        ),
        (b"550 Rejected\r\n", Reason::MailboxNotFound, true),
        (
            b"550 5.2.4 Mailing list expansion problem\r\n",
            Reason::MailboxNotFound,
            true,
        ),
        (
            b"550 5.3.0 Mail system error\r\n",
            Reason::MailboxNotFound,
            true,
        ),
        (b"553 5.0.0 No\r\n", Reason::MailboxNotFound, true),
        (
            include_bytes!("../fuzz/seeds/smtp_reply/outlook_550_5_5_0.txt"),
            Reason::MailboxNotFound,
            true,
        ),
        (
            b"521 5.3.0 This host does not accept mail\r\n",
            Reason::Blocked,
            true,
        ),
        (b"530 Not here\r\n", Reason::Blocked, true),
        (b"521 5.0.0 Refused by policy\r\n", Reason::Blocked, false),
        (b"451 4.3.0 Try again\r\n", Reason::TemporaryFailure, false),
    ];

    #[test]
    fn unexplained_refusals_are_marked_for_calibration() {
        use crate::smtp::reply::{Limits, Status, parse_reply};
        for (wire, reason, unexplained) in READINGS {
            let Ok(Status::Complete(reply)) = parse_reply(wire, &Limits::DEFAULT) else {
                panic!("{}", wire.escape_ascii());
            };
            assert_eq!(
                read_rcpt(&reply),
                Reading {
                    reason: *reason,
                    unexplained: *unexplained
                },
                "{}",
                wire.escape_ascii()
            );
        }
    }

    #[test]
    fn nothing_before_rcpt_is_a_verdict_on_the_mailbox() {
        use crate::smtp::reply::{Limits, Status, parse_reply};
        for (_, wire, _) in CASES {
            let Ok(Status::Complete(reply)) = parse_reply(wire, &Limits::DEFAULT) else {
                panic!("{}", wire.escape_ascii());
            };
            for stage in [Stage::Greeting, Stage::Hello, Stage::MailFrom] {
                let reason = classify(stage, &reply);
                assert!(
                    matches!(reason.verdict(), Verdict::Unknown) || reason == Reason::Accepted,
                    "{stage:?} {} -> {reason:?}",
                    wire.escape_ascii()
                );
            }
        }
    }
}
