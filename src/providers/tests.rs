//! The data file's guard: it parses, its names are well formed, no two entries claim the same
//! suffix, and every suffix leads to its own entry.

use std::collections::HashMap;

use super::*;

#[test]
fn the_data_file_parses_and_its_names_are_well_formed() {
    let providers = all();
    assert!(!providers.is_empty());
    let mut ids = HashMap::new();
    for provider in providers {
        assert!(
            !provider.id.is_empty()
                && provider
                    .id
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "id {:?}",
            provider.id
        );
        assert!(
            ids.insert(&provider.id, ()).is_none(),
            "{} twice",
            provider.id
        );
        assert!(!provider.name.is_empty(), "{}: no name", provider.id);
        assert!(
            !provider.mx_suffixes.is_empty(),
            "{}: no suffix",
            provider.id
        );
        assert!(!provider.sources.is_empty(), "{}: no source", provider.id);
        for source in &provider.sources {
            assert!(
                source.url.starts_with("https://"),
                "{}: {}",
                provider.id,
                source.url
            );
            assert!(!source.what.is_empty(), "{}: {}", provider.id, source.url);
        }
        for suffix in &provider.mx_suffixes {
            let well_formed = suffix.contains('.')
                && !suffix.starts_with('.')
                && !suffix.ends_with('.')
                && suffix.split('.').all(|label| {
                    !label.is_empty()
                        && !label.starts_with('-')
                        && !label.ends_with('-')
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                });
            assert!(well_formed, "{}: suffix {suffix:?}", provider.id);
        }
    }
}

#[test]
fn no_two_entries_claim_one_suffix_and_every_suffix_leads_to_its_entry() {
    let mut owners: HashMap<&str, &str> = HashMap::new();
    for provider in all() {
        for suffix in &provider.mx_suffixes {
            if let Some(other) = owners.insert(suffix, &provider.id) {
                panic!("{suffix} is claimed by {other} and {}", provider.id);
            }
        }
    }
    for provider in all() {
        for suffix in &provider.mx_suffixes {
            for host in [suffix.clone(), format!("mx1.{suffix}")] {
                assert_eq!(
                    by_mx_host(&host).map(|p| p.id.as_str()),
                    Some(provider.id.as_str()),
                    "{host}"
                );
            }
        }
    }
}

#[test]
fn a_host_is_matched_by_whole_labels_whatever_its_case_and_trailing_dot() {
    let Some(provider) = all().first() else {
        panic!("no providers");
    };
    let suffix = &provider.mx_suffixes[0];
    let id = Some(provider.id.as_str());
    assert_eq!(
        by_mx_host(&format!("MX.{}.", suffix.to_uppercase())).map(|p| p.id.as_str()),
        id
    );
    // Only whole labels: "notgoogle.com" is not under "google.com".
    assert_eq!(by_mx_host(&format!("x{suffix}")), None);
    assert_eq!(by_mx_host("mx.example.test"), None);
    assert_eq!(by_mx_host(""), None);
}

#[test]
fn the_longest_suffix_wins() {
    let entry = |id: &str, suffix: &str| Provider {
        id: id.into(),
        name: id.into(),
        kind: Kind::HostedBusiness,
        mx_suffixes: vec![suffix.into()],
        sources: Vec::new(),
    };
    let providers = [
        entry("wide", "mail.example"),
        entry("narrow", "gw.mail.example"),
    ];
    let id = |host: &str| find(&providers, host).map(|p| p.id.clone());
    assert_eq!(id("mx1.gw.mail.example").as_deref(), Some("narrow"));
    assert_eq!(id("mx1.in.mail.example").as_deref(), Some("wide"));
    assert_eq!(id("gw.mail.example").as_deref(), Some("narrow"));
}
