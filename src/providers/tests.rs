//! The data file's guard: it parses, its names are well formed, no two entries claim the same
//! suffix, every suffix leads to its own entry, every rule is reachable and changes what the
//! generic table would say, every statement cites a source, and docs/providers.md lists it all.

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
        profile: Profile {
            rcpt: Vec::new(),
            accepts_every_recipient: None,
            catch_all: None,
            control: ControlMode::SameSession,
            politeness: Politeness {
                rcpts_per_session: None,
                sessions_per_mx: None,
                connects_per_second: None,
                backoff_secs: 60,
                basis: String::new(),
            },
            unknown: Vec::new(),
        },
        sources: Vec::new(),
        index: 0,
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

/// The reply a rule's example is, parsed.
fn example(provider: &Provider, rule: &Rule) -> crate::smtp::reply::OwnedReply {
    let wire = format!("{}\r\n", rule.example);
    match crate::smtp::reply::parse_reply(wire.as_bytes(), &crate::smtp::reply::Limits::DEFAULT) {
        Ok(crate::smtp::reply::Status::Complete(reply)) if reply.consumed() == wire.len() => {
            reply.into_owned()
        }
        other => panic!(
            "{}: example {:?} is not one reply: {other:?}",
            provider.id, rule.example
        ),
    }
}

#[test]
fn the_providers_the_issue_names_all_have_entries() {
    for id in [
        "google",
        "microsoft365",
        "outlook_com",
        "yahoo",
        "icloud",
        "zoho",
        "yandex",
        "mail_ru",
        "gmx_webde",
        "fastmail",
        "proton",
        "proofpoint",
        "mimecast",
        "barracuda",
        "cisco",
    ] {
        assert!(all().iter().any(|p| p.id == id), "no entry for {id}");
    }
    for (index, provider) in all().iter().enumerate() {
        assert_eq!(provider.index(), index, "{}", provider.id);
    }
}

#[test]
fn every_rule_is_reached_by_its_own_example_and_cites_a_source() {
    use crate::verdict::Stage;
    for provider in all() {
        let profile = &provider.profile;
        for (n, rule) in profile.rcpt.iter().enumerate() {
            let at = format!("{} rule {n} ({})", provider.id, rule.example);
            assert!(
                rule.source < provider.sources.len(),
                "{at}: no source {}",
                rule.source
            );
            assert!(!rule.note.is_empty(), "{at}: no note");
            assert!(
                rule.enhanced.is_some() || !rule.text.is_empty(),
                "{at}: a rule needs an enhanced code or a text fingerprint, not codes alone"
            );
            // A rule reads refusals only: a 250 is never rewritten.
            assert!(
                !rule.codes.is_empty(),
                "{at}: a rule names the codes it reads"
            );
            for code in &rule.codes {
                assert!(
                    (400..600).contains(code),
                    "{at}: code {code} is not a refusal"
                );
            }
            for needle in &rule.text {
                assert!(
                    !needle.is_empty() && needle.to_ascii_lowercase() == *needle,
                    "{at}: fingerprint {needle:?} must be lower case"
                );
            }
            // A 421 closes the session before any recipient is answered: it can only ever say
            // something about the prober.
            assert!(
                !(rule.codes.contains(&421) && rule.means.is_about_the_mailbox()),
                "{at}: a 421 says nothing about a mailbox"
            );
            let reply = example(provider, rule);
            let read = profile.read(Stage::RcptTo, &reply.as_reply());
            assert_eq!(
                read,
                Some(rule),
                "{at}: its example is read by another rule"
            );
            if !rule.means.is_about_the_mailbox() {
                assert_eq!(
                    profile.read(Stage::MailFrom, &reply.as_reply()),
                    Some(rule),
                    "{at}: not read at MAIL FROM"
                );
            }
        }
    }
}

#[test]
fn every_rule_changes_what_the_generic_table_says() {
    for provider in all() {
        for rule in &provider.profile.rcpt {
            let reply = example(provider, rule);
            let generic = crate::verdict::read_rcpt(&reply.as_reply());
            let changes = rule.means == Meaning::Throttled
                || generic.unexplained
                || generic.reason != rule.means.reason()
                || reply.as_reply().code().get() == 421;
            assert!(
                changes,
                "{}: {:?} is read as {} by the generic table already: the rule is not needed",
                provider.id, rule.example, generic.reason
            );
        }
    }
}

#[test]
fn statements_cite_sources_and_politeness_is_sane() {
    for provider in all() {
        let profile = &provider.profile;
        if let Some(cited) = &profile.catch_all {
            assert!(cited.source < provider.sources.len(), "{}", provider.id);
            assert!(profile.accepts_every_recipient.is_none(), "{}", provider.id);
        }
        if let Some(cited) = &profile.accepts_every_recipient {
            assert!(cited.source < provider.sources.len(), "{}", provider.id);
            assert!(!cited.detail.is_empty(), "{}", provider.id);
            assert_eq!(
                profile.control,
                ControlMode::None,
                "{}: a catch-all control means nothing where every recipient is accepted",
                provider.id
            );
        }
        let politeness = &profile.politeness;
        assert!(!politeness.basis.is_empty(), "{}: no basis", provider.id);
        assert!(politeness.backoff_secs > 0, "{}", provider.id);
        assert!(
            politeness
                .rcpts_per_session
                .is_none_or(|n| (1..=100).contains(&n))
        );
        assert!(politeness.sessions_per_mx.is_none_or(|n| n >= 1));
        assert!(
            politeness
                .connects_per_second
                .is_none_or(|rate| rate.is_finite() && rate > 0.0),
            "{}",
            provider.id
        );
        assert!(
            !(profile.control == ControlMode::SameSession
                && politeness.rcpts_per_session == Some(1)),
            "{}: one RCPT a session leaves no room for the control beside an address: say own_session",
            provider.id
        );
    }
}

#[test]
fn docs_providers_md_lists_every_provider_source_and_rule() {
    let docs = include_str!("../../docs/providers.md");
    for provider in all() {
        assert!(
            docs.contains(&format!("`{}`", provider.id)),
            "{} is not in the docs",
            provider.id
        );
        for source in &provider.sources {
            assert!(
                docs.contains(&source.url),
                "{}: {} is not in the docs",
                provider.id,
                source.url
            );
        }
        for rule in &provider.profile.rcpt {
            let first_line = rule.example.lines().next().unwrap_or_default();
            assert!(
                docs.contains(first_line),
                "{}: the rule for {first_line:?} is not in the docs",
                provider.id
            );
        }
    }
}

#[test]
fn enhanced_patterns_parse_and_match() {
    use crate::smtp::EnhancedCode;
    let exact = EnhancedPattern::try_from("5.1.1".to_owned()).expect("parses");
    let any = EnhancedPattern::try_from("4.7.*".to_owned()).expect("parses");
    assert!(exact.matches(EnhancedCode::new(5, 1, 1)));
    assert!(!exact.matches(EnhancedCode::new(5, 1, 2)));
    assert!(!exact.matches(None));
    assert!(any.matches(EnhancedCode::new(4, 7, 500)));
    assert!(!any.matches(EnhancedCode::new(5, 7, 500)));
    for bad in ["5.1", "5.1.1.1", "3.1.1", "5.x.1", "5..1", "5.1.1000", ""] {
        assert!(
            EnhancedPattern::try_from(bad.to_owned()).is_err(),
            "{bad:?}"
        );
    }
}
