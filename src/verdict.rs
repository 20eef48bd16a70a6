//! The vocabulary of results: one [`Verdict`] per address, and the [`Reason`] behind it.
//!
//! These are the stable names of the output schema (DESIGN.md §3): `verdict` is one of four
//! words, `reason` one of nineteen, and every reason belongs to exactly one verdict, so a
//! [`Reason`] alone determines the [`Verdict`] ([`Reason::verdict`]). The names never change
//! once released; scripts match on them.
//!
//! This module holds the vocabulary only. Today the address layer produces
//! [`Reason::InvalidSyntax`]; the mapping of SMTP replies and DNS facts to reasons arrives with
//! the probe session.

use std::fmt;

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
        f.write_str(self.as_str())
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
        f.write_str(self.as_str())
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
}
