//! IPv6: `mxprobe verify` against the simulated farm on `::1`. An IPv6-only MX is reached, a
//! dual-stack MX whose IPv4 address refuses is reached over IPv6, `--ip-version` keeps to its
//! family, and a source-address pool without an address of a server's family never turns the
//! prober's own limits into a verdict.

#![allow(
    clippy::disallowed_methods,
    reason = "these tests run the binary and servers in real time"
)]

#[path = "support/jsonl.rs"]
mod jsonl;

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::process::{Command, Stdio};

use mxprobe::sim::dns::{DnsResponder, Zone};
use mxprobe::sim::smtp::{Personality, SmtpFarm};
use serde_json::Value;

/// Where nothing listens: the IPv4 address of the dual-stack MX.
const REFUSING: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 199);

struct World {
    dns: DnsResponder,
    _farm: SmtpFarm,
    port: u16,
}

/// `v6.test` (MX with an AAAA only) and `dual.test` (MX with an A where nothing listens and
/// an AAAA), both served by one server on `[::1]`.
fn world() -> World {
    // A port free on [::1] and on the refusing IPv4 address: nothing will listen there.
    let (farm, port) = loop {
        let probe = TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).expect("bind [::1]");
        let port = probe.local_addr().expect("addr").port();
        drop(probe);
        if TcpListener::bind((REFUSING, port)).is_err() {
            continue;
        }
        let mx = Personality::new("mx.v6.test").mailboxes(["alice@v6.test", "alice@dual.test"]);
        if let Ok(farm) =
            SmtpFarm::start(vec![(SocketAddr::from((Ipv6Addr::LOCALHOST, port)), mx)], 1)
        {
            break (farm, port);
        }
    };
    let mut zone = Zone::new();
    zone.mx("v6.test", 10, "mx.v6.test")
        .aaaa("mx.v6.test", Ipv6Addr::LOCALHOST)
        .mx("dual.test", 10, "mx.dual.test")
        .a("mx.dual.test", REFUSING)
        .aaaa("mx.dual.test", Ipv6Addr::LOCALHOST);
    let dns = DnsResponder::start(zone).expect("dns");
    World {
        dns,
        _farm: farm,
        port,
    }
}

impl World {
    fn verify(&self, extra: &[&str], addresses: &[&str]) -> Vec<Value> {
        let output = Command::new(env!("CARGO_BIN_EXE_mxprobe"))
            .arg("verify")
            .args(["--from", "probe@probe.test", "--quiet", "--format", "jsonl"])
            .args(["--dns-server", &self.dns.addr().to_string()])
            .args(["--smtp-port", &self.port.to_string()])
            .args(["--allow-private-mx", "--retries", "0", "--timeout", "5"])
            .args(extra)
            .args(addresses)
            .stdin(Stdio::null())
            .output()
            .expect("run mxprobe");
        assert!(output.status.success(), "{output:?}");
        let mut records: Vec<Value> = jsonl::records(&output.stdout);
        records.sort_by_key(|r| r["line"].as_u64());
        records
    }
}

fn outcome(record: &Value) -> (&str, &str, &str) {
    (
        record["verdict"].as_str().unwrap_or_default(),
        record["reason"].as_str().unwrap_or_default(),
        record["ip"].as_str().unwrap_or_default(),
    )
}

#[test]
fn an_ipv6_only_mail_server_is_reached() {
    let world = world();
    let records = world.verify(&[], &["alice@v6.test", "nobody@v6.test"]);
    assert_eq!(
        outcome(&records[0]),
        ("deliverable", "accepted", "::1"),
        "{records:?}"
    );
    assert_eq!(
        outcome(&records[1]),
        ("undeliverable", "mailbox_not_found", "::1"),
        "{records:?}"
    );
}

#[test]
fn a_dual_stack_server_is_reached_over_ipv6_when_its_ipv4_address_refuses() {
    let world = world();
    for extra in [
        &[][..],
        &["--ip-version", "6"],
        &["--source-ip", "127.0.0.1", "--source-ip", "::1"],
    ] {
        let records = world.verify(extra, &["alice@dual.test"]);
        assert_eq!(
            outcome(&records[0]),
            ("deliverable", "accepted", "::1"),
            "{extra:?}: {records:?}"
        );
    }
}

#[test]
fn a_family_the_prober_does_not_use_is_unknown_never_a_verdict() {
    let world = world();
    for (extra, why) in [
        (&["--ip-version", "4"][..], "--ip-version 4"),
        (
            &["--source-ip", "127.0.0.1"][..],
            "no --source-ip of that family",
        ),
    ] {
        let records = world.verify(extra, &["alice@v6.test"]);
        let record = &records[0];
        assert_eq!(
            (record["verdict"].as_str(), record["reason"].as_str()),
            (Some("unknown"), Some("connection_failed")),
            "{extra:?}: {record}"
        );
        let detail = record["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains("an IPv6 address") && detail.contains(why),
            "{detail}"
        );
    }
    // IPv4 only on the dual-stack domain: its IPv4 address refuses, and that is all there is.
    let records = world.verify(&["--ip-version", "4"], &["alice@dual.test"]);
    assert_eq!(outcome(&records[0]).1, "connection_failed", "{records:?}");
}

#[test]
fn an_ipv6_source_address_is_used_for_an_ipv6_server() {
    let world = world();
    let records = world.verify(&["--source-ip", "::1"], &["alice@v6.test"]);
    assert_eq!(
        outcome(&records[0]),
        ("deliverable", "accepted", "::1"),
        "{records:?}"
    );
}
