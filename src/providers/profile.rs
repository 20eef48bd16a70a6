//! A provider's profile: what its RCPT replies mean where they differ from the generic table,
//! whether its `250` means anything, how the catch-all control is sent there, and the
//! politeness it asks for.
//!
//! A profile only ever *narrows* what mxprobe concludes from a reply, with a rule the provider
//! documents or that is widely observed; everything a profile does not say is read by the
//! generic rules of [`crate::verdict`]. Each rule names its source (an index into the
//! provider's `sources`) and carries an example reply, as the provider sends it: a unit test
//! checks that every example is read by its own rule, so no rule is shadowed by an earlier one,
//! and the simulated farm's provider personalities send the same examples.

use serde::Deserialize;

use crate::smtp::{EnhancedCode, Reply};
use crate::verdict::{Reason, Stage};

/// What a provider's answers mean and the manners it asks for.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// RCPT replies read otherwise than by the generic table, in order: the first rule that
    /// matches decides.
    #[serde(default)]
    pub rcpt: Vec<Rule>,
    /// Set when the provider accepts every recipient at RCPT and refuses the unknown ones only
    /// later (after DATA, or by a bounce): a `250` there says nothing about the mailbox, and
    /// becomes `risky/accept_all` with this detail.
    #[serde(default)]
    pub accepts_every_recipient: Option<Cited>,
    /// What it means here when the catch-all control is accepted, where the provider says why
    /// it would be (a tenant or a gateway set up to take every recipient): the detail of the
    /// domain's `risky/accept_all` verdicts.
    #[serde(default)]
    pub catch_all: Option<Cited>,
    /// How the catch-all control is sent there.
    #[serde(default)]
    pub control: ControlMode,
    /// The manners it asks for.
    pub politeness: Politeness,
    /// What could not be established about it: there, the generic rules apply.
    #[serde(default)]
    pub unknown: Vec<String>,
}

impl Profile {
    /// The first rule that reads `reply`, received at `stage`, if one does. Only a reply to
    /// RCPT can say something about the mailbox: at the other stages (a MAIL FROM refused, a
    /// 421 that closed the session) only the rules that do not are read.
    #[must_use]
    pub fn read(&self, stage: Stage, reply: &Reply<'_>) -> Option<&Rule> {
        if self.rcpt.is_empty() {
            return None;
        }
        let code = reply.code().get();
        let enhanced = reply.enhanced();
        // The text is lower-cased once, and only if a rule that passed the codes asks for it.
        let mut text: Option<String> = None;
        self.rcpt.iter().find(|rule| {
            (stage == Stage::RcptTo || !rule.means.is_about_the_mailbox())
                && rule.codes.contains(&code)
                && rule
                    .enhanced
                    .is_none_or(|pattern| pattern.matches(enhanced))
                && (rule.text.is_empty() || {
                    let text = text.get_or_insert_with(|| lower_text(reply));
                    rule.text
                        .iter()
                        .all(|needle| text.contains(needle.as_str()))
                })
        })
    }
}

/// A reply's lines, joined by spaces and lower-cased.
fn lower_text(reply: &Reply<'_>) -> String {
    let mut text = String::with_capacity(reply.lines().map(|line| line.len() + 1).sum());
    for line in reply.lines() {
        text.push_str(&String::from_utf8_lossy(line));
        text.push(' ');
    }
    text.make_ascii_lowercase();
    text
}

/// One RCPT reply a provider sends, and what it means.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Reply codes it applies to: refusals (4yz, 5yz) only, so that no `250` is ever read
    /// otherwise (the data file's test checks it).
    pub codes: Vec<u16>,
    /// The enhanced status code it applies to, if it names one: `5.1.1`, or `4.7.*` for every
    /// detail of a subject.
    #[serde(default)]
    pub enhanced: Option<EnhancedPattern>,
    /// Fingerprints the text must all contain, lower case; empty for none.
    #[serde(default)]
    pub text: Vec<String>,
    /// What such a reply means.
    pub means: Meaning,
    /// Why, for people: goes into the verdict's `detail`.
    pub note: String,
    /// A reply as the provider sends it (lines joined by CRLF, without the last CRLF).
    pub example: String,
    /// Which of the provider's sources shows it (an index into `sources`).
    pub source: usize,
}

/// What an RCPT reply a profile reads means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Meaning {
    /// No such mailbox: `undeliverable/mailbox_not_found`.
    MailboxNotFound,
    /// The mailbox exists but is disabled: `undeliverable/mailbox_disabled`.
    MailboxDisabled,
    /// The mailbox is full: `risky/mailbox_full`.
    MailboxFull,
    /// A policy refused the prober, not the mailbox: `unknown/blocked`.
    Blocked,
    /// A transient failure that asking again later may cure: `unknown/temporary_failure`.
    TemporaryFailure,
    /// "Slow down": the provider limits this prober's rate. The engine leaves the provider
    /// alone for its backoff and asks again then, without spending the address's retries;
    /// `unknown/temporary_failure` if it never answers otherwise.
    Throttled,
}

impl Meaning {
    /// True for the meanings that are a verdict on the mailbox itself, which only a reply to
    /// its own RCPT may give.
    #[must_use]
    pub const fn is_about_the_mailbox(self) -> bool {
        matches!(
            self,
            Self::MailboxNotFound | Self::MailboxDisabled | Self::MailboxFull
        )
    }

    /// The reason a reply with this meaning gives.
    #[must_use]
    pub const fn reason(self) -> Reason {
        match self {
            Self::MailboxNotFound => Reason::MailboxNotFound,
            Self::MailboxDisabled => Reason::MailboxDisabled,
            Self::MailboxFull => Reason::MailboxFull,
            Self::Blocked => Reason::Blocked,
            Self::TemporaryFailure | Self::Throttled => Reason::TemporaryFailure,
        }
    }

    /// The name in the data file and the docs.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::MailboxNotFound => "mailbox_not_found",
            Self::MailboxDisabled => "mailbox_disabled",
            Self::MailboxFull => "mailbox_full",
            Self::Blocked => "blocked",
            Self::TemporaryFailure => "temporary_failure",
            Self::Throttled => "throttled",
        }
    }
}

/// An enhanced status code to match: exact (`5.1.1`) or any detail of a subject (`4.7.*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct EnhancedPattern {
    class: u16,
    subject: u16,
    /// `None` for `*`.
    detail: Option<u16>,
}

impl EnhancedPattern {
    /// Whether a reply's enhanced code (if it has one) matches.
    #[must_use]
    pub fn matches(self, code: Option<EnhancedCode>) -> bool {
        code.is_some_and(|code| {
            code.class() as u16 == self.class
                && code.subject() == self.subject
                && self.detail.is_none_or(|detail| detail == code.detail())
        })
    }
}

impl TryFrom<String> for EnhancedPattern {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        let bad = || format!("{text:?} is not an enhanced code pattern such as 5.1.1 or 4.7.*");
        let mut parts = text.split('.');
        let (Some(class), Some(subject), Some(detail), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let number = |part: &str| {
            (!part.is_empty() && part.len() <= 3 && part.bytes().all(|b| b.is_ascii_digit()))
                .then(|| part.parse::<u16>().ok())
                .flatten()
        };
        let class = number(class)
            .filter(|c| matches!(c, 2 | 4 | 5))
            .ok_or_else(bad)?;
        let subject = number(subject).ok_or_else(bad)?;
        let detail = match detail {
            "*" => None,
            detail => Some(number(detail).ok_or_else(bad)?),
        };
        Ok(Self {
            class,
            subject,
            detail,
        })
    }
}

/// A statement for people with the source that shows it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cited {
    /// The statement: goes into the verdict's `detail`.
    pub detail: String,
    /// Which of the provider's sources shows it.
    pub source: usize,
}

/// How the catch-all control (a random local part) is sent to a provider.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ControlMode {
    /// As the last recipient of a session that carries addresses: the generic way.
    #[default]
    SameSession,
    /// In a session of its own, for providers that refuse or throttle a second recipient.
    OwnSession,
    /// Not at all: the answer would mean nothing (the provider accepts every recipient).
    None,
}

/// The manners a provider asks for. Each limit is the tighter of this and the engine's own
/// setting; `None` leaves the engine's.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Politeness {
    /// Most RCPT commands in one session (the catch-all control included).
    #[serde(default)]
    pub rcpts_per_session: Option<usize>,
    /// Most sessions in flight at one of its server addresses.
    #[serde(default)]
    pub sessions_per_mx: Option<usize>,
    /// Most new connections a second to all of its servers together.
    #[serde(default)]
    pub connects_per_second: Option<f64>,
    /// How long the engine leaves the provider alone after a reply that means
    /// [`Meaning::Throttled`], in seconds.
    pub backoff_secs: u64,
    /// Where the numbers come from: the provider's published limits, or mxprobe's own choice
    /// where it publishes none.
    pub basis: String,
}
