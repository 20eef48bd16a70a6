use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use super::*;
use crate::smtp::reply::{Limits, Status, parse_reply};

fn reply(wire: &[u8]) -> OwnedReply {
    let Ok(Status::Complete(reply)) = parse_reply(wire, &Limits::DEFAULT) else {
        panic!("not a reply: {wire:?}");
    };
    reply.into_owned()
}

/// The field names of a JSON object, in order.
fn names(value: &serde_json::Value) -> Vec<&str> {
    let object = value.as_object().expect("a JSON object");
    object.keys().map(String::as_str).collect()
}

fn accepted() -> VerifyResult {
    VerifyResult {
        tag: 12,
        address: "Alice <alice@example.com>".into(),
        mailbox: Some("alice@example.com".into()),
        domain: Some("example.com".into()),
        reason: Reason::Accepted,
        detail: None,
        mx: Some("mx1.example.com".into()),
        ip: Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10))),
        smtp: Some(reply(b"250-2.1.5 Ok\r\n250 2.1.5 see you\r\n")),
        catch_all: Some(false),
        flags: Flags {
            role: false,
            disposable: false,
            free: true,
        },
        suggestion: None,
        attempts: 1,
        elapsed: Duration::from_micros(212_900),
        transcript: None,
        tls: None,
        greylist_wait: None,
    }
}

/// The field names, their order and their JSON types are the schema that every consumer of
/// mxprobe's output parses: a change here is a change of contract.
#[test]
fn the_record_pins_the_output_schema() {
    let json = serde_json::to_string(&accepted().record()).unwrap();
    assert_eq!(
        json,
        r#"{"address":"Alice <alice@example.com>","verdict":"deliverable","reason":"accepted","domain":"example.com","mx":"mx1.example.com","ip":"192.0.2.10","smtp":{"code":250,"enhanced":"2.1.5","message":"2.1.5 Ok\n2.1.5 see you"},"catch_all":false,"flags":{"role":false,"disposable":false,"free":true},"attempts":1,"elapsed_ms":212,"line":12,"detail":null,"suggestion":null,"provider":null,"tls":null}"#
    );
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(names(&value), FIELDS[..16]);
}

#[test]
fn a_transcript_is_the_last_field_and_only_when_kept() {
    let mut result = accepted();
    result.transcript = Some("S: 220 hi\r\n".into());
    let value: serde_json::Value = serde_json::to_value(result.record()).unwrap();
    assert_eq!(names(&value), FIELDS);
    assert_eq!(value["transcript"], "S: 220 hi\r\n");
}

#[test]
fn nulls_and_an_undecided_result() {
    let detail = Some("the domain is empty".into());
    let result = VerifyResult::decided(1, "bob@", None, Reason::InvalidSyntax, detail);
    let value = serde_json::to_value(result.record()).unwrap();
    assert_eq!(value["verdict"], "undeliverable");
    assert_eq!(value["reason"], "invalid_syntax");
    for null in ["domain", "mx", "ip", "smtp", "catch_all", "suggestion"] {
        assert!(value[null].is_null(), "{null}");
    }
    assert_eq!(value["detail"], "the domain is empty");
}

#[test]
fn a_reply_that_is_not_utf8_is_replaced_not_dropped() {
    let mut result = accepted();
    result.smtp = Some(reply(b"550 5.1.1 caf\xe9 inconnu\r\n"));
    result.reason = Reason::MailboxNotFound;
    let value = serde_json::to_value(result.record()).unwrap();
    assert_eq!(value["smtp"]["message"], "5.1.1 caf\u{FFFD} inconnu");
    assert_eq!(value["smtp"]["code"], 550);
    assert_eq!(value["verdict"], "undeliverable");
}

#[test]
fn every_reason_serializes_as_its_schema_name() {
    for reason in Reason::ALL {
        assert_eq!(
            serde_json::to_value(reason).unwrap(),
            serde_json::Value::from(reason.as_str())
        );
        assert_eq!(
            serde_json::to_value(reason.verdict()).unwrap(),
            serde_json::Value::from(reason.verdict().as_str())
        );
    }
}

/// A record read back writes out as the same record, whatever it holds.
#[test]
fn a_record_read_back_is_the_same_record() {
    let mut multi_line = accepted();
    multi_line.smtp = Some(reply(
        b"550-5.1.1 <bob@example.com>: no such user\r\n550-see https://example.com/x\r\n550 5.1.1 bye\r\n",
    ));
    multi_line.reason = Reason::MailboxNotFound;
    multi_line.suggestion = Some("gmail.com");
    multi_line.transcript = Some("S: 220 hi\nC: EHLO x".into());
    multi_line.detail = Some("a \"quoted\" detail".into());
    let mut no_enhanced = accepted();
    no_enhanced.smtp = Some(reply(b"250 OK\r\n"));
    let mut not_utf8 = accepted();
    not_utf8.smtp = Some(reply(b"550 caf\xe9 au lait\r\n"));
    let invalid = VerifyResult::decided(3, "not an address", None, Reason::InvalidSyntax, None);
    let over_tls = VerifyResult {
        tls: Some(crate::tls::TlsVersion::Tls12),
        ..accepted()
    };
    for result in [
        accepted(),
        multi_line,
        no_enhanced,
        not_utf8,
        invalid,
        over_tls,
    ] {
        let json = serde_json::to_string(&result.record()).unwrap();
        let back = VerifyResult::from_record_json(&json).unwrap();
        assert_eq!(serde_json::to_string(&back.record()).unwrap(), json);
        assert_eq!(back.tag, result.tag);
        assert_eq!(back.mailbox.is_some(), result.mailbox.is_some(), "{json}");
    }
    for broken in [
        "",
        "{}",
        r#"{"address":"a","reason":"no_such_reason"}"#,
        &serde_json::to_string(&accepted().record())
            .unwrap()
            .replace("\"suggestion\":null", "\"suggestion\":\"evil.example\""),
        &serde_json::to_string(&accepted().record())
            .unwrap()
            .replace("\"tls\":null", "\"tls\":\"SSLv3\""),
    ] {
        assert!(VerifyResult::from_record_json(broken).is_err(), "{broken}");
    }
}

/// A record read back from before the `tls` field existed has none.
#[test]
fn a_record_without_tls_reads_back() {
    let json = serde_json::to_string(&accepted().record())
        .unwrap()
        .replace(",\"tls\":null", "");
    assert!(!json.contains("tls"));
    assert_eq!(VerifyResult::from_record_json(&json).unwrap().tls, None);
    let over_tls = serde_json::to_string(
        &VerifyResult {
            tls: Some(crate::tls::TlsVersion::Tls13),
            ..accepted()
        }
        .record(),
    )
    .unwrap();
    assert!(
        over_tls.contains(r#""provider":null,"tls":"TLSv1.3"}"#),
        "{over_tls}"
    );
}

/// The provider comes from the MX host that decided, and only when mxprobe knows it.
#[test]
fn the_provider_is_the_deciding_hosts() {
    let mut result = accepted();
    result.mx = Some("alt1.aspmx.l.google.com".into());
    assert_eq!(result.record().provider, Some("google"));
    result.mx = Some("mx1.example.com".into());
    assert_eq!(result.record().provider, None);
    result.mx = None;
    assert_eq!(result.record().provider, None);
}
