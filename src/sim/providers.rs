//! Simulated big mail systems: a [`Personality`] for each provider mxprobe has a profile for
//! ([`crate::providers`]), answering as that provider documents or is observed to.
//!
//! Each [`ProviderSim`] gives a host name under one of the provider's MX suffixes (to be
//! served by the simulated DNS, so that mxprobe recognises the provider), its banner, the
//! replies it sends for unknown, disabled and full mailboxes, whether it accepts every
//! recipient, the recipients it takes in one session, and, from the provider's profile, the
//! reply that means "slow down", sent to transactions over a rate. The replies are the ones
//! `docs/providers.md` cites; where a banner or a reply could not be established, the
//! simulator's own stands in, and the table says so.
//!
//! These are fixtures for the end-to-end tests and `mxprobe bench`: what mxprobe *concludes*
//! from them is the tests' business, written there by hand, not derived from here.

use super::smtp::Personality;
use crate::providers::{self, Meaning, Provider};

/// How one provider's servers answer, as the simulator plays them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProviderSim {
    /// The provider's id in [`crate::providers`].
    pub id: &'static str,
    /// An MX host name of the provider's.
    pub mx_host: &'static str,
    /// The greeting's text after `220 `; `None`: no source showed it, the simulator's own.
    pub greeting: Option<&'static str>,
    /// The reply to an unknown mailbox; `None`: every recipient is accepted.
    pub unknown: Option<&'static str>,
    /// The reply to a disabled mailbox, if the provider's is known.
    pub disabled: Option<&'static str>,
    /// The reply to a full mailbox, if the provider's is known.
    pub full: Option<&'static str>,
    /// Recipients taken in one session; the next get `452 4.5.3`.
    pub max_rcpts: Option<usize>,
}

/// Every provider with a profile, as the simulator plays it.
pub const PROVIDER_SIMS: [ProviderSim; 15] = [
    ProviderSim {
        id: "google",
        mx_host: "gmail-smtp-in.l.google.com",
        greeting: Some("mx.google.com ESMTP b26si1910042pgs.432 - gsmtp"),
        unknown: Some(
            "550-5.1.1 The email account that you tried to reach does not exist. Please try\r\n\
             550-5.1.1 double-checking the recipient's email address for typos or\r\n\
             550 5.1.1 unnecessary spaces. https://support.google.com/mail/?p=NoSuchUser - gsmtp",
        ),
        disabled: Some(
            "550 5.2.1 The email account that you tried to reach is disabled. Learn more at \
             https://support.google.com/mail/?p=DisabledUser - gsmtp",
        ),
        full: Some(
            "452 4.2.2 The email account that you tried to reach is over quota. \
             https://support.google.com/mail/?p=OverQuotaTemp - gsmtp",
        ),
        max_rcpts: None,
    },
    ProviderSim {
        id: "microsoft365",
        mx_host: "contoso-com.mail.protection.outlook.com",
        greeting: Some(
            "SN1NAM02FT0049.mail.protection.outlook.com Microsoft ESMTP MAIL Service ready at \
             Sun, 6 Dec 2026 12:02:11 +0000",
        ),
        unknown: Some(
            "550 5.4.1 Recipient address rejected: Access denied. AS(201806281) \
             [SN1NAM02FT0049.eop-nam02.prod.protection.outlook.com]",
        ),
        disabled: None,
        full: None,
        max_rcpts: None,
    },
    ProviderSim {
        id: "outlook_com",
        mx_host: "hotmail-com.olc.protection.outlook.com",
        greeting: None,
        unknown: Some(
            "550 5.5.0 Requested action not taken: mailbox unavailable. \
             [BN8NAM12FT088.eop-nam12.prod.protection.outlook.com]",
        ),
        disabled: None,
        full: None,
        // AfterShip/email-verifier#72: a second RCPT in a session gets 452.
        max_rcpts: Some(1),
    },
    ProviderSim {
        id: "yahoo",
        mx_host: "mta5.am0.yahoodns.net",
        greeting: Some("mtaproxy511.free.mail.bf1.yahoo.com ESMTP ready"),
        unknown: None,
        disabled: None,
        full: None,
        max_rcpts: None,
    },
    ProviderSim {
        id: "icloud",
        mx_host: "mx01.mail.icloud.com",
        greeting: Some(
            "iCloud iscream SMTP proxy - p00-iscream-smtp-d759469dd-ss5bd 3.5.0 \
             (2403B23-529c1e05a5df)",
        ),
        unknown: Some("550 5.1.1 <recipient@icloud.com>: user does not exist"),
        disabled: None,
        full: Some("552 5.2.2 <recipient@icloud.com>: user is over quota"),
        max_rcpts: None,
    },
    ProviderSim {
        id: "zoho",
        mx_host: "mx.zoho.com",
        greeting: Some("mx.zohomail.com SMTP Server ready"),
        unknown: Some("550 5.1.1 <recipient@zoho.com> User unknown"),
        disabled: Some("552 5.1.1 <recipient@zoho.com> Mailbox delivery failure policy error"),
        full: None,
        max_rcpts: None,
    },
    ProviderSim {
        id: "yandex",
        mx_host: "mx.yandex.net",
        greeting: None,
        unknown: Some("550 5.7.1 No such user!"),
        disabled: None,
        full: Some("552 5.2.2 Mailbox size limit exceeded"),
        max_rcpts: None,
    },
    ProviderSim {
        id: "mail_ru",
        mx_host: "mxs.mail.ru",
        greeting: Some("mxs.mail.ru ESMTP ready"),
        unknown: None,
        disabled: None,
        full: None,
        max_rcpts: None,
    },
    ProviderSim {
        id: "gmx_webde",
        mx_host: "mx00.emig.gmx.net",
        greeting: None,
        unknown: Some("550 Requested action not taken: mailbox unavailable"),
        disabled: None,
        full: Some("552 Requested mail action aborted: exceeded storage allocation"),
        max_rcpts: None,
    },
    ProviderSim {
        id: "fastmail",
        mx_host: "in1-smtp.messagingengine.com",
        greeting: None,
        unknown: Some(
            "550 5.1.1 <recipient@fastmail.com>: Recipient address rejected: User unknown",
        ),
        disabled: None,
        full: None,
        max_rcpts: None,
    },
    ProviderSim {
        id: "proton",
        mx_host: "mail.protonmail.ch",
        greeting: Some("mailinosl111.protonmail.ch ESMTP Postfix"),
        unknown: Some("550 5.1.1 <recipient@proton.me>: Recipient address rejected: User unknown"),
        disabled: None,
        full: None,
        max_rcpts: None,
    },
    ProviderSim {
        id: "proofpoint",
        mx_host: "mx0a-00123456.pphosted.com",
        greeting: None,
        unknown: Some(
            "550 5.7.1 <recipient@example.com>: Recipient address rejected: User email \
             address is marked as invalid.",
        ),
        disabled: None,
        full: None,
        max_rcpts: None,
    },
    ProviderSim {
        id: "mimecast",
        mx_host: "us-smtp-inbound-1.mimecast.com",
        greeting: None,
        unknown: Some("550 Invalid Recipient - https://community.mimecast.com/docs/DOC-1369#550"),
        disabled: None,
        full: None,
        max_rcpts: None,
    },
    ProviderSim {
        id: "barracuda",
        mx_host: "d405521.a.ess.barracudanetworks.com",
        greeting: None,
        unknown: Some("550 No such user (recipient@example.com)"),
        disabled: None,
        full: None,
        max_rcpts: None,
    },
    ProviderSim {
        id: "cisco",
        mx_host: "mx1.hc1234-56.iphmx.com",
        greeting: None,
        unknown: Some("550 #5.1.0 Address rejected"),
        disabled: None,
        full: None,
        max_rcpts: None,
    },
];

impl ProviderSim {
    /// The simulator's entry for provider `id`.
    #[must_use]
    pub fn get(id: &str) -> Option<&'static Self> {
        PROVIDER_SIMS.iter().find(|sim| sim.id == id)
    }

    /// The provider's profile entry.
    ///
    /// # Panics
    ///
    /// If the id is not a provider's: a unit test checks every entry.
    #[must_use]
    pub fn provider(&self) -> &'static Provider {
        providers::all()
            .iter()
            .find(|provider| provider.id == self.id)
            .expect("every simulated provider has an entry in providers.json")
    }

    /// A server that plays this provider: `mailboxes` exist, `disabled` and `full` get the
    /// provider's replies (where it has them), and transactions beyond `per_second` in any
    /// second get the reply its profile reads as "slow down" (where it has one).
    #[must_use]
    pub fn personality(
        &self,
        mailboxes: &[&str],
        disabled: &[&str],
        full: &[&str],
        per_second: usize,
    ) -> Personality {
        self.dress(
            Personality::new(self.mx_host).mailboxes(mailboxes.iter().copied()),
            disabled,
            full,
            per_second,
        )
    }

    /// The transactions a second this provider's simulated servers take before they throttle:
    /// twice its profile's connection pace, for sessions that reach MAIL FROM at uneven times
    /// on a loaded machine (no limit where the profile sets no pace). A prober that keeps to
    /// the profile is never throttled; one that ignores it (the engine's own limits allow ten
    /// connections a second per domain) is.
    #[must_use]
    pub fn throttle_rate(&self) -> usize {
        self.provider()
            .profile
            .politeness
            .connects_per_second
            .map_or(usize::MAX, |rate| rate.ceil() as usize * 2)
    }

    /// [`ProviderSim::personality`] on a `personality` of the caller's (its mailboxes, its
    /// network): the provider's banner, replies, recipient limit and throttle put on it.
    #[must_use]
    pub fn dress(
        &self,
        mut personality: Personality,
        disabled: &[&str],
        full: &[&str],
        per_second: usize,
    ) -> Personality {
        if let Some(greeting) = self.greeting {
            personality = personality.greeting_text(greeting);
        }
        match self.unknown {
            Some(reply) => personality = personality.unknown_reply(reply),
            None => personality = personality.catch_all(),
        }
        for (addresses, reply) in [(disabled, self.disabled), (full, self.full)] {
            if let Some(reply) = reply {
                for address in addresses {
                    personality = personality.reply_to(address, reply);
                }
            }
        }
        if let Some(limit) = self.max_rcpts {
            personality = personality.max_rcpt_per_session(limit);
        }
        if let Some(throttle) = self.throttle_reply() {
            personality = personality.throttle(per_second, throttle);
        }
        personality
    }

    /// The reply the provider's profile reads as "slow down": its first such rule's example.
    /// A `421` closes the session after it.
    #[must_use]
    pub fn throttle_reply(&self) -> Option<&'static str> {
        self.provider()
            .profile
            .rcpt
            .iter()
            .find(|rule| rule.means == Meaning::Throttled)
            .map(|rule| rule.example.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_provider_is_simulated_under_its_own_mx_suffix() {
        assert_eq!(PROVIDER_SIMS.len(), providers::all().len());
        for provider in providers::all() {
            let sim = ProviderSim::get(&provider.id)
                .unwrap_or_else(|| panic!("{} is not simulated", provider.id));
            assert_eq!(
                providers::by_mx_host(sim.mx_host).map(|p| p.id.as_str()),
                Some(provider.id.as_str()),
                "{}",
                sim.mx_host
            );
            assert_eq!(
                sim.unknown.is_none(),
                provider.profile.accepts_every_recipient.is_some(),
                "{}: a provider that accepts everyone is simulated as one",
                provider.id
            );
        }
    }
}
