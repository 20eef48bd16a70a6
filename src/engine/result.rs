//! One verdict per address: what the engine hands back, with everything that led to it.

use std::net::IpAddr;
use std::time::Duration;

use crate::address::{Address, Flags};
use crate::smtp::reply::OwnedReply;
use crate::tls::TlsVersion;
use crate::verdict::{Reason, Verdict};

/// The engine's answer for one submitted address: the fields of the output schema
/// (DESIGN.md §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyResult {
    /// The caller's tag from [`submit`](super::Scheduler::submit) (a line number, a row id).
    pub tag: u64,
    /// The address exactly as submitted.
    pub address: String,
    /// The normalised mailbox that was probed, if the address parsed.
    pub mailbox: Option<String>,
    /// The domain, lower-case ASCII, if the address parsed.
    pub domain: Option<String>,
    /// Why: the precise answer, from which the [`verdict`](Self::verdict) follows.
    pub reason: Reason,
    /// A sentence for people, where the reason alone does not say it all (which syntax rule,
    /// which DNS failure, which timeout).
    pub detail: Option<String>,
    /// The MX host whose reply decided, if one did.
    pub mx: Option<String>,
    /// Its address.
    pub ip: Option<IpAddr>,
    /// The SMTP reply that decided, if one did.
    pub smtp: Option<OwnedReply>,
    /// Whether the domain accepts any local part: `None` when not tested or inconclusive.
    pub catch_all: Option<bool>,
    /// Role account, disposable domain, free provider.
    pub flags: Flags,
    /// A popular provider the domain probably misspells.
    pub suggestion: Option<&'static str>,
    /// SMTP sessions that asked about this address.
    pub attempts: u32,
    /// From submission to verdict.
    pub elapsed: Duration,
    /// The conversations, when transcripts were asked for.
    pub transcript: Option<String>,
    /// The TLS version of the session whose reply decided, if it spoke TLS (STARTTLS).
    pub tls: Option<TlsVersion>,
    /// How long greylisting held the address before its server let it through, when that
    /// alone held it: from the first "try again later" to the start of the session that got
    /// the answer, at the same server, with no provider's "slow down" or other detour in
    /// between. Not in the record; the engine learns from it when to ask the domain's next
    /// addresses again, and so can a fleet
    /// ([`Handle::know_greylist_wait`](crate::Handle::know_greylist_wait)).
    pub greylist_wait: Option<Duration>,
}

impl VerifyResult {
    /// The result of submission `tag` of `text`, decided by `reason` with nothing else known
    /// yet: no server, no reply, no session. The mailbox and domain come from `parsed`, if
    /// the text parsed. Callers fill in what they know with struct update syntax.
    pub(crate) fn decided(
        tag: u64,
        text: &str,
        parsed: Option<&Address>,
        reason: Reason,
        detail: Option<String>,
    ) -> Self {
        Self {
            tag,
            address: text.to_owned(),
            mailbox: parsed.map(|a| a.mailbox().to_owned()),
            domain: parsed.map(|a| a.domain().to_owned()),
            reason,
            detail,
            mx: None,
            ip: None,
            smtp: None,
            catch_all: None,
            flags: Flags::default(),
            suggestion: None,
            attempts: 0,
            elapsed: Duration::ZERO,
            transcript: None,
            tls: None,
            greylist_wait: None,
        }
    }

    /// The result of submission `tag` of `text` that a front end decides without a probe (a
    /// fleet's batch delivered too often, say): `reason` and `detail`, the mailbox and domain
    /// if the text parses, nothing of a server.
    #[must_use]
    pub fn unprobed(tag: u64, text: &str, reason: Reason, detail: Option<String>) -> Self {
        let parsed = Address::parse(text).ok();
        Self::decided(tag, text, parsed.as_ref(), reason, detail)
    }

    /// deliverable, undeliverable, risky or unknown: what the [`reason`](Self::reason) means.
    /// Derived, never stored, so the two cannot disagree.
    #[must_use]
    pub fn verdict(&self) -> Verdict {
        self.reason.verdict()
    }
}

/// Applies the rules that combine the facts: the catch-all control turns an acceptance into
/// `risky/accept_all`, and a disposable domain is `risky/disposable` unless the mailbox was
/// refused.
pub(super) fn final_reason(reason: Reason, catch_all: Option<bool>, disposable: bool) -> Reason {
    let reason = if reason == Reason::Accepted && catch_all == Some(true) {
        Reason::AcceptAll
    } else {
        reason
    };
    if disposable && reason.verdict() != Verdict::Undeliverable {
        Reason::Disposable
    } else {
        reason
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_combine_as_the_schema_says() {
        assert_eq!(
            final_reason(Reason::Accepted, Some(false), false),
            Reason::Accepted
        );
        assert_eq!(
            final_reason(Reason::Accepted, None, false),
            Reason::Accepted
        );
        assert_eq!(
            final_reason(Reason::Accepted, Some(true), false),
            Reason::AcceptAll
        );
        assert_eq!(
            final_reason(Reason::MailboxNotFound, Some(true), false),
            Reason::MailboxNotFound
        );
        assert_eq!(
            final_reason(Reason::Accepted, Some(false), true),
            Reason::Disposable
        );
        assert_eq!(
            final_reason(Reason::Greylisted, None, true),
            Reason::Disposable
        );
        assert_eq!(
            final_reason(Reason::MailboxNotFound, None, true),
            Reason::MailboxNotFound
        );
        assert_eq!(
            final_reason(Reason::DomainNotFound, None, true),
            Reason::DomainNotFound
        );
    }
}
