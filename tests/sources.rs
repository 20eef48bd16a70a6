//! A pool of source addresses (`--source-ip`, repeatable) against a server that blocklists one
//! of them: the domains on the refused address move to the others and every address gets its
//! real answer; with nowhere to go, the refusal is `unknown/blocked`, never a verdict on the
//! mailbox; and each address of the pool has its own per-server allowance.

#![allow(
    clippy::disallowed_methods,
    reason = "these tests run the binary and servers in real time"
)]

#[path = "support/jsonl.rs"]
mod jsonl;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::process::{Command, Output, Stdio};

use mxprobe::sim::dns::{DnsResponder, Zone};
use mxprobe::sim::smtp::{Personality, SmtpFarm};
use serde_json::Value;

const MX: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 31);
const LISTED: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 32);
const CLEAN: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 33);

struct World {
    dns: DnsResponder,
    farm: SmtpFarm,
    port: u16,
}

/// Ten domains on one server that knows `user1` everywhere and refuses `LISTED` at greeting.
fn world() -> World {
    let port = TcpListener::bind((MX, 0))
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let mut mx = Personality::new("mx.pool.test").refuse_client(IpAddr::V4(LISTED));
    let mut zone = Zone::new();
    for d in 0..10 {
        let domain = format!("d{d}.pool.test");
        mx = mx.mailbox(&format!("user1@{domain}"));
        zone.mx(&domain, 10, "mx.pool.test");
    }
    zone.a("mx.pool.test", MX);
    let farm = SmtpFarm::start(vec![(SocketAddr::from((MX, port)), mx)], 1).expect("farm");
    let dns = DnsResponder::start(zone).expect("dns");
    World { dns, farm, port }
}

impl World {
    fn verify(&self, sources: &[Ipv4Addr]) -> (Vec<Value>, String) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_mxprobe"));
        command
            .arg("verify")
            .args(["--from", "probe@probe.test", "--format", "jsonl"])
            .args(["--dns-server", &self.dns.addr().to_string()])
            .args(["--smtp-port", &self.port.to_string()])
            .args(["--allow-private-mx", "--retries", "0", "--per-mx", "1"]);
        for source in sources {
            command.args(["--source-ip", &source.to_string()]);
        }
        for d in 0..10 {
            command.arg(format!("user1@d{d}.pool.test"));
            command.arg(format!("nobody@d{d}.pool.test"));
        }
        let output: Output = command.stdin(Stdio::null()).output().expect("run mxprobe");
        assert!(output.status.success(), "{output:?}");
        let records = jsonl::records(&output.stdout);
        (
            records,
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }
}

fn reason(record: &Value) -> (&str, &str) {
    (
        record["address"].as_str().unwrap_or_default(),
        record["reason"].as_str().unwrap_or_default(),
    )
}

#[test]
fn domains_refused_by_a_listed_source_move_to_a_clean_one() {
    let world = world();
    let (records, stderr) = world.verify(&[LISTED, CLEAN]);
    assert_eq!(records.len(), 20);
    for record in &records {
        let (address, reason) = reason(record);
        let want = if address.starts_with("user1@") {
            "accepted"
        } else {
            "mailbox_not_found"
        };
        assert_eq!(reason, want, "{record}");
    }
    assert!(
        stderr.contains("source address was benched"),
        "the bench is reported: {stderr}"
    );
    // Each source has its own allowance at the server (--per-mx 1): at most two at once.
    assert!(world.farm.stats().peak_open_connections <= 2);
}

#[test]
fn with_only_a_listed_source_the_refusal_is_unknown_never_a_verdict() {
    let world = world();
    let (records, _) = world.verify(&[LISTED]);
    for record in &records {
        assert_eq!(
            (record["verdict"].as_str(), record["reason"].as_str()),
            (Some("unknown"), Some("blocked")),
            "{record}"
        );
    }
}
