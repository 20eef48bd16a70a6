//! [`ConfigError`]: a configuration the prober cannot probe with, and what to do about it.

use std::fmt;

use crate::smtp::CommandError;

/// A configuration the prober cannot probe with: its own mistake, never a verdict on a mailbox.
///
/// [`ConfigBuilder::build`](super::ConfigBuilder::build) returns it, and nothing else makes a
/// [`Config`](super::Config), so an engine never starts with one of these mistakes in it. The
/// message says what to change.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// No sender was given: MAIL FROM needs one.
    NoSender,
    /// The sender cannot be written into MAIL FROM.
    Sender {
        /// The sender as configured.
        sender: String,
        /// What is wrong with it.
        why: String,
    },
    /// The null sender was chosen and no EHLO name given: there is no domain to take it from.
    NoHeloName,
    /// The EHLO name cannot be written into EHLO.
    HeloName {
        /// The name as configured.
        name: String,
        /// What is wrong with it.
        error: CommandError,
    },
    /// No nameserver to ask: none given, and the system's list could not be read.
    Nameservers {
        /// Why there are none.
        why: String,
    },
    /// A setting is out of its range.
    Setting {
        /// The builder method that set it, such as `concurrency`.
        name: &'static str,
        /// The value given.
        value: String,
        /// What it must be.
        expected: &'static str,
    },
}

impl ConfigError {
    pub(super) fn setting(
        name: &'static str,
        value: impl fmt::Display,
        expected: &'static str,
    ) -> Self {
        Self::Setting {
            name,
            value: value.to_string(),
            expected,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoSender => f.write_str(
                "no sender for MAIL FROM; give a mailbox on a domain you control, such as \
                 verify@example.com",
            ),
            Self::Sender { sender, why } => write!(
                f,
                "the sender {sender:?} cannot be used in MAIL FROM ({why}); give a mailbox on \
                 a domain you control, such as verify@example.com"
            ),
            Self::NoHeloName => f.write_str(
                "with the null sender there is no domain to say in EHLO; give the EHLO name \
                 (the domain name of the host the probes come from)",
            ),
            Self::HeloName { name, error } => write!(
                f,
                "the EHLO name {name:?} cannot be used ({error}); give the domain name of the \
                 host the probes come from, such as probe.example.com"
            ),
            Self::Nameservers { why } => write!(f, "no nameserver to ask: {why}"),
            Self::Setting {
                name,
                value,
                expected,
            } => write!(f, "{name} cannot be {value}: it must be {expected}"),
        }
    }
}

impl std::error::Error for ConfigError {}
