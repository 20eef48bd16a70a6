//! "Did you mean gmail.com?": a suggestion for a domain that looks like a misspelt free
//! provider. It is advice for the user and never changes a verdict.
//!
//! Suggestions are made against the most used free providers only (a short list, each entry
//! also on the free-provider list), as mailcheck.js and most form validators do: comparing with
//! all five thousand free domains would "correct" many real domains into obscure ones. A domain
//! on the free-provider list is never corrected (`gmx.com` is not a typo of `gmx.de`); one on
//! the disposable list may be, since typo domains of big providers (`gmial.com`) are often
//! registered to catch mistyped mail.
//!
//! Closeness is the optimal-string-alignment distance (Damerau–Levenshtein without repeated
//! edits of one substring): one insertion, deletion, substitution or swap of neighbours is one
//! edit. Short names tolerate fewer edits: names of up to 7 octets none, so `gmx.com` is
//! never suggested for `mx.com`; up to 10 one edit, longer ones two.

use super::flags::is_free_provider;

/// The providers suggestions point to, most used first: the first of two equally close
/// candidates wins.
pub(super) const POPULAR_PROVIDERS: [&str; 48] = [
    "gmail.com",
    "yahoo.com",
    "hotmail.com",
    "outlook.com",
    "aol.com",
    "icloud.com",
    "live.com",
    "googlemail.com",
    "protonmail.com",
    "gmx.com",
    "gmx.de",
    "gmx.net",
    "web.de",
    "t-online.de",
    "yahoo.co.uk",
    "yahoo.fr",
    "yahoo.de",
    "yahoo.co.jp",
    "hotmail.co.uk",
    "hotmail.fr",
    "hotmail.de",
    "hotmail.it",
    "live.co.uk",
    "mail.ru",
    "yandex.ru",
    "yandex.com",
    "naver.com",
    "comcast.net",
    "verizon.net",
    "att.net",
    "sbcglobal.net",
    "bellsouth.net",
    "btinternet.com",
    "orange.fr",
    "laposte.net",
    "libero.it",
    "virgilio.it",
    "rediffmail.com",
    "zoho.com",
    "ymail.com",
    "rocketmail.com",
    "fastmail.com",
    "bigpond.com",
    "shaw.ca",
    "rogers.com",
    "sky.com",
    "uol.com.br",
    "bol.com.br",
];

/// The popular provider named `name`, as the static string suggestions are made of.
pub(crate) fn popular_provider(name: &str) -> Option<&'static str> {
    POPULAR_PROVIDERS
        .into_iter()
        .find(|provider| *provider == name)
}

/// The popular provider `domain` is probably a misspelling of, if any.
///
/// ```
/// use mxprobe::address::suggest_domain;
/// assert_eq!(suggest_domain("gmial.com"), Some("gmail.com"));
/// assert_eq!(suggest_domain("hotmial.com"), Some("hotmail.com"));
/// assert_eq!(suggest_domain("gmail.com"), None);
/// assert_eq!(suggest_domain("example.com"), None);
/// ```
#[must_use]
pub fn suggest_domain(domain: &str) -> Option<&'static str> {
    if is_free_provider(domain) {
        return None;
    }
    let domain = domain.as_bytes();
    let mut best: Option<(usize, &'static str)> = None;
    for candidate in POPULAR_PROVIDERS {
        let allowed = edits_allowed(candidate.len());
        let limit = best.map_or(allowed, |(d, _)| allowed.min(d.saturating_sub(1)));
        if let Some(distance) = osa_distance_within(domain, candidate.as_bytes(), limit)
            && distance > 0
        {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, candidate)| candidate)
}

/// How many edits a misspelling of a name this long may have.
const fn edits_allowed(len: usize) -> usize {
    match len {
        0..=7 => 0,
        8..=10 => 1,
        _ => 2,
    }
}

/// The optimal-string-alignment distance of `a` and `b` if it is at most `limit`.
fn osa_distance_within(a: &[u8], b: &[u8], limit: usize) -> Option<usize> {
    if a.len().abs_diff(b.len()) > limit {
        return None;
    }
    // Three rows of the dynamic programme: i-2, i-1, i. Domains are at most 253 octets.
    const COLS: usize = 256;
    if b.len() >= COLS {
        return None;
    }
    let mut before = [0usize; COLS];
    let mut previous: [usize; COLS] = std::array::from_fn(|j| j);
    let mut current = [0usize; COLS];
    for i in 1..=a.len() {
        current[0] = i;
        let mut row_min = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (previous[j] + 1)
                .min(current[j - 1] + 1)
                .min(previous[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(before[j - 2] + 1);
            }
            current[j] = d;
            row_min = row_min.min(d);
        }
        if row_min > limit {
            return None;
        }
        before = previous;
        previous = current;
    }
    let distance = previous[b.len()];
    (distance <= limit).then_some(distance)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_popular_provider_is_a_listed_free_provider() {
        for domain in POPULAR_PROVIDERS {
            assert!(is_free_provider(domain), "{domain}");
        }
    }

    #[test]
    fn common_typos_get_the_provider() {
        for (typo, provider) in [
            ("gmial.com", "gmail.com"),
            ("gmaill.com", "gmail.com"),
            ("gmai.com", "gmail.com"),
            ("gmail.co", "gmail.com"),
            ("gmail.cm", "gmail.com"),
            ("gamil.com", "gmail.com"),
            ("gnail.com", "gmail.com"),
            ("yahooo.com", "yahoo.com"),
            ("yaho.com", "yahoo.com"),
            ("yahoo.co", "yahoo.com"),
            ("hotmail.co", "hotmail.com"),
            ("outiook.com", "outlook.com"),
            ("hotmial.com", "hotmail.com"),
            ("hotmal.con", "hotmail.com"),
            ("outlok.com", "outlook.com"),
            ("icloud.co", "icloud.com"),
            ("yahoo.co.uj", "yahoo.co.uk"),
            ("t-onlin.de", "t-online.de"),
        ] {
            assert_eq!(suggest_domain(typo), Some(provider), "{typo}");
        }
    }

    #[test]
    fn real_and_unrelated_domains_get_nothing() {
        for domain in [
            "gmail.com",
            "gmx.com",
            "mail.com",
            "email.com",
            "yahoo.es",
            "hotmail.se",
            "fastmail.fm",
            "example.com",
            "mx.com",
            "me.org",
            "example.co.uk",
            "university.edu",
            "gmailxyz.com",
            "",
        ] {
            assert_eq!(suggest_domain(domain), None, "{domain}");
        }
    }

    #[test]
    fn osa_distance_counts_a_swap_as_one_edit() {
        assert_eq!(osa_distance_within(b"ab", b"ba", 2), Some(1));
        assert_eq!(osa_distance_within(b"kitten", b"sitting", 3), Some(3));
        assert_eq!(osa_distance_within(b"kitten", b"sitting", 2), None);
        assert_eq!(osa_distance_within(b"", b"abc", 3), Some(3));
        assert_eq!(osa_distance_within(b"same", b"same", 0), Some(0));
        // OSA, not full Damerau: "ca" -> "abc" is 3, not 2.
        assert_eq!(osa_distance_within(b"ca", b"abc", 3), Some(3));
    }
}
