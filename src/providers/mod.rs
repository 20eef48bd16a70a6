//! The big mail systems, recognised by their MX hosts: which provider (or which security
//! gateway in front of one) receives a domain's mail.
//!
//! Most addresses of a real list live at a few dozen mail systems, and knowing which one a
//! domain uses is the first step to reading its answers right. This module holds that
//! knowledge as data: `providers.json`, compiled in, one entry per provider, each naming the
//! MX host suffixes that identify it and the public sources that say so (listed for people in
//! `docs/providers.md`). [`by_mx_host`] recognises a host; the longest matching suffix wins, so
//! an entry may claim a more specific suffix under another's.
//!
//! Each entry also carries its [`Profile`] (`profile.rs`): what its RCPT replies mean where
//! they differ from the generic table, whether its `250` means anything, how the catch-all
//! control is sent there, and the politeness it asks for. The engine applies the profile of the
//! MX host each session goes to.

use std::sync::OnceLock;

use serde::Deserialize;

mod profile;

pub use profile::{Cited, ControlMode, EnhancedPattern, Meaning, Politeness, Profile, Rule};

/// The data file, as compiled in.
const DATA: &str = include_str!("providers.json");

/// What kind of mail system a provider is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Mailboxes of its own consumer domains (gmail.com, yahoo.com...), and often of hosted
    /// ones too.
    MailboxProvider,
    /// Hosted mail for businesses' own domains.
    HostedBusiness,
    /// A security gateway that receives a domain's mail and passes it on to another system.
    Gateway,
}

impl Kind {
    /// The name shown: `mailbox_provider`, `hosted_business`, `gateway`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::MailboxProvider => "mailbox_provider",
            Self::HostedBusiness => "hosted_business",
            Self::Gateway => "gateway",
        }
    }
}

/// A public source for an entry's facts.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// Where it is.
    pub url: String,
    /// What it shows, in a line.
    pub what: String,
}

/// One provider.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    /// A stable name (`google`, `microsoft365`...): lower-case ASCII letters, digits and `_`.
    pub id: String,
    /// The name for people.
    pub name: String,
    /// What kind of system it is.
    pub kind: Kind,
    /// MX host names that belong to it: a host is the provider's if it is one of these or ends
    /// with `.` and one of these. Lower case, without a trailing dot.
    pub mx_suffixes: Vec<String>,
    /// What its answers mean and the manners it asks for.
    pub profile: Profile,
    /// Where the facts come from; rules and statements name one by its index.
    pub sources: Vec<Source>,
    /// Its place in [`all`]: the engine keeps per-provider state in a table indexed by it.
    #[serde(skip)]
    index: usize,
}

impl Provider {
    /// Its place in [`all`], from 0 to `all().len() - 1`.
    #[must_use]
    pub const fn index(&self) -> usize {
        self.index
    }

    /// Whether `host` (lower case, no trailing dot) is under `suffix`.
    fn claims<'s>(&'s self, host: &str) -> Option<&'s str> {
        self.mx_suffixes
            .iter()
            .map(String::as_str)
            .filter(|suffix| {
                host == *suffix
                    || host
                        .strip_suffix(suffix)
                        .is_some_and(|head| head.ends_with('.'))
            })
            .max_by_key(|suffix| suffix.len())
    }
}

/// Every provider mxprobe knows, in the data file's order.
///
/// # Panics
///
/// Never in a released build: the data file is compiled in and a unit test parses it.
#[must_use]
pub fn all() -> &'static [Provider] {
    static PROVIDERS: OnceLock<Vec<Provider>> = OnceLock::new();
    PROVIDERS.get_or_init(|| {
        // Compiled-in data, parsed by a unit test: a broken file is a build defect.
        let mut providers: Vec<Provider> =
            serde_json::from_str(DATA).expect("src/providers/providers.json parses");
        for (index, provider) in providers.iter_mut().enumerate() {
            provider.index = index;
        }
        providers
    })
}

/// The provider that MX host `host` belongs to, if mxprobe knows it: the entry with the longest
/// suffix that `host` is under. Case and a trailing dot do not matter.
#[must_use]
pub fn by_mx_host(host: &str) -> Option<&'static Provider> {
    find(all(), host)
}

/// [`by_mx_host`] among `providers`.
fn find<'p>(providers: &'p [Provider], host: &str) -> Option<&'p Provider> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    providers
        .iter()
        .filter_map(|provider| {
            provider
                .claims(&host)
                .map(|suffix| (provider, suffix.len()))
        })
        .max_by_key(|(_, length)| *length)
        .map(|(provider, _)| provider)
}

#[cfg(test)]
mod tests;
