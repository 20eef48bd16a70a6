//! What an address is, beyond whether it exists: a role account, a disposable domain, a free
//! mailbox provider (the `flags` of the output schema).
//!
//! - **role**: the local part names a function, not a person (`postmaster`, `sales`,
//!   `noreply`). Matched case-insensitively, without a `+tag` subaddress (`info+web@` is
//!   `info@`), against the vendored role accounts (`lists/`): RFC 2142's names plus a curated
//!   public list.
//! - **disposable**: the domain, or a domain it is a subdomain of, hands out throwaway
//!   addresses. Such an address gets `risky/disposable` unless the mailbox was refused.
//! - **free**: the domain, or a parent, is a free mailbox provider (gmail.com, web.de). Only a
//!   flag: free mailboxes are as deliverable as any.
//!
//! The two domain lists are disjoint (the free list is built without the disposable domains),
//! and the most specific listed suffix of a domain decides. Every lookup is a binary search over
//! a static sorted array (narrowed by a prefix index for the domain lists); nothing allocates.

use super::lists::{DISPOSABLE, FREE, ROLE_ACCOUNTS};
use crate::smtp::path::MAX_LOCAL_PART_LEN;

/// The flags of one address.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Flags {
    /// The local part is a role account (postmaster, info, sales, noreply, …).
    pub role: bool,
    /// The domain hands out disposable addresses.
    pub disposable: bool,
    /// The domain is a free mailbox provider.
    pub free: bool,
}

/// What a domain is known as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DomainKind {
    /// On the disposable list, or a subdomain of a domain on it.
    Disposable,
    /// On the free-provider list, or a subdomain of a domain on it.
    Free,
}

/// What the lists say of `domain` (lower-case ASCII, as [`super::Address::domain`] gives it):
/// the most specific listed suffix decides.
///
/// ```
/// use mxprobe::address::{domain_kind, DomainKind};
/// assert_eq!(domain_kind("gmail.com"), Some(DomainKind::Free));
/// assert_eq!(domain_kind("mailinator.com"), Some(DomainKind::Disposable));
/// assert_eq!(domain_kind("eu.mailinator.com"), Some(DomainKind::Disposable));
/// assert_eq!(domain_kind("example.com"), None);
/// ```
#[must_use]
pub fn domain_kind(domain: &str) -> Option<DomainKind> {
    // Suffixes from the whole name down to the last two labels: no list holds a bare TLD.
    let mut suffix = domain;
    while suffix.contains('.') {
        if DISPOSABLE.contains(suffix) {
            return Some(DomainKind::Disposable);
        }
        if FREE.contains(suffix) {
            return Some(DomainKind::Free);
        }
        suffix = suffix.split_once('.').map_or("", |(_, parent)| parent);
    }
    None
}

/// True if `local` (a local part as [`super::Address::local_part`] gives it) is a role account.
///
/// ```
/// use mxprobe::address::is_role_account;
/// assert!(is_role_account("postmaster"));
/// assert!(is_role_account("Sales+newsletter"));
/// assert!(!is_role_account("alice"));
/// ```
#[must_use]
pub fn is_role_account(local: &str) -> bool {
    let base = local.split_once('+').map_or(local, |(base, _)| base);
    if base.is_empty() || base.len() > MAX_LOCAL_PART_LEN || !base.is_ascii() {
        return false;
    }
    let mut lower = [0u8; MAX_LOCAL_PART_LEN];
    let lower = &mut lower[..base.len()];
    lower.copy_from_slice(base.as_bytes());
    lower.make_ascii_lowercase();
    ROLE_ACCOUNTS
        .binary_search_by(|entry| entry.as_bytes().cmp(lower))
        .is_ok()
}

/// True if `domain` is on the free-provider list itself (not as a subdomain).
pub(super) fn is_free_provider(domain: &str) -> bool {
    FREE.contains(domain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::path::{check_domain, is_dot_string};

    fn assert_sorted_unique(name: &str, list: &[&str]) {
        for pair in list.windows(2) {
            assert!(
                pair[0].as_bytes() < pair[1].as_bytes(),
                "{name}: {:?} must sort before {:?}, once",
                pair[0],
                pair[1]
            );
        }
    }

    #[test]
    fn the_lists_are_sorted_unique_lower_case_and_well_formed() {
        assert_sorted_unique("disposable", DISPOSABLE.entries());
        assert_sorted_unique("free", FREE.entries());
        assert_sorted_unique("role", &ROLE_ACCOUNTS);
        for domain in DISPOSABLE.entries().iter().chain(FREE.entries()) {
            assert_eq!(check_domain(domain.as_bytes()), Ok(()), "{domain}");
            assert!(domain.contains('.'), "{domain}");
            assert_eq!(*domain, domain.to_ascii_lowercase(), "{domain}");
        }
        for local in ROLE_ACCOUNTS {
            assert!(is_dot_string(local.as_bytes()), "{local}");
            assert_eq!(local, local.to_ascii_lowercase(), "{local}");
        }
        for domain in FREE.entries() {
            assert!(!DISPOSABLE.contains(domain), "{domain} on both lists");
        }
    }

    #[test]
    fn the_lists_hold_what_users_expect() {
        assert!(DISPOSABLE.entries().len() > 5_000);
        assert!(FREE.entries().len() > 3_000);
        assert!((300..2_000).contains(&ROLE_ACCOUNTS.len()));
        for domain in [
            "gmail.com",
            "outlook.com",
            "yahoo.com",
            "hotmail.com",
            "gmx.de",
            "web.de",
        ] {
            assert_eq!(domain_kind(domain), Some(DomainKind::Free), "{domain}");
        }
        for domain in [
            "mailinator.com",
            "guerrillamail.com",
            "10minutemail.com",
            "yopmail.com",
        ] {
            assert_eq!(
                domain_kind(domain),
                Some(DomainKind::Disposable),
                "{domain}"
            );
        }
        // RFC 2142 names and the usual suspects.
        for local in [
            "postmaster",
            "abuse",
            "hostmaster",
            "webmaster",
            "noc",
            "security",
            "info",
            "sales",
            "support",
            "marketing",
            "noreply",
            "no-reply",
            "admin",
            "billing",
            "hr",
        ] {
            assert!(is_role_account(local), "{local}");
        }
    }

    #[test]
    fn subdomains_of_a_listed_domain_match_and_the_most_specific_wins() {
        assert_eq!(
            domain_kind("a.b.mailinator.com"),
            Some(DomainKind::Disposable)
        );
        assert_eq!(domain_kind("mail.gmail.com"), Some(DomainKind::Free));
        assert_eq!(domain_kind("notgmail.com"), None);
        assert_eq!(domain_kind("gmail.com.example"), None);
        assert_eq!(domain_kind("com"), None);
        assert_eq!(domain_kind(""), None);
    }

    #[test]
    fn role_matching_ignores_case_and_subaddress_only() {
        assert!(is_role_account("POSTMASTER"));
        assert!(is_role_account("info+shop"));
        assert!(is_role_account("customer.service"));
        assert!(!is_role_account("alice+info"));
        assert!(!is_role_account("info.alice"));
        assert!(!is_role_account("+info"));
        assert!(!is_role_account("\"info\""));
        assert!(!is_role_account("infö"));
        assert!(!is_role_account(&"a".repeat(65)));
    }
}
