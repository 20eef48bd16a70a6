//! STARTTLS end to end, through the binary: simulated servers that require TLS at MAIL FROM or
//! at RCPT TO, close the connection for want of it (Gmail's `421 4.7.0 TLS required`), offer
//! it, do not have it, or break the handshake. Under the default (`--starttls when-required`)
//! the first two are asked over TLS on the same connection, the third in a session that says
//! STARTTLS first, and the records say `"tls":"TLSv1.3"`; `always` starts TLS wherever it is offered and fails over
//! past a broken handshake; `never` takes the 530 as the answer, which is never a verdict on a
//! mailbox; `--tls-verify` takes the farm's certificate only when `--tls-ca` trusts it, and a
//! refused certificate is `unknown/connection_failed` with `tls_failed` in the detail.

#![allow(
    clippy::disallowed_methods,
    reason = "these tests run the binary and servers in real time"
)]

#[path = "support/jsonl.rs"]
mod jsonl;

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::process::{Command, Stdio};

use mxprobe::sim::dns::{DnsResponder, Zone};
use mxprobe::sim::smtp::{Personality, SmtpFarm, Tls};
use serde_json::Value;

/// Each server: its address, host name, domain and what it does about TLS.
const SERVERS: [(Ipv4Addr, &str, &str, Tls); 6] = [
    (
        Ipv4Addr::new(127, 0, 0, 41),
        "mx.required.test",
        "required.test",
        Tls::Required,
    ),
    (
        Ipv4Addr::new(127, 0, 0, 42),
        "mx.atrcpt.test",
        "atrcpt.test",
        Tls::RequiredAtRcpt,
    ),
    (
        Ipv4Addr::new(127, 0, 0, 43),
        "mx.offered.test",
        "offered.test",
        Tls::Offered,
    ),
    (
        Ipv4Addr::new(127, 0, 0, 44),
        "mx.broken.test",
        "broken.test",
        Tls::BrokenHandshake,
    ),
    (
        Ipv4Addr::new(127, 0, 0, 45),
        "mx.plain.test",
        "plain.test",
        Tls::None,
    ),
    (
        Ipv4Addr::new(127, 0, 0, 46),
        "mx.closing.test",
        "closing.test",
        Tls::RequiredClosing,
    ),
];

struct World {
    dns: DnsResponder,
    farm: SmtpFarm,
    port: u16,
}

/// Every server knows `alice` at its own domain (and at `failover.test`, whose first MX breaks
/// the handshake and whose second offers TLS).
fn world() -> World {
    let port = TcpListener::bind((SERVERS[0].0, 0))
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let mut zone = Zone::new();
    let mut listeners = Vec::new();
    for (ip, host, domain, tls) in SERVERS {
        zone.mx(domain, 10, host);
        zone.a(host, ip);
        let personality = Personality::new(host)
            .mailbox(&format!("alice@{domain}"))
            .mailbox("alice@failover.test")
            .tls(tls);
        listeners.push((SocketAddr::from((ip, port)), personality));
    }
    zone.mx("failover.test", 10, "mx.broken.test");
    zone.mx("failover.test", 20, "mx.offered.test");
    let farm = SmtpFarm::start(listeners, 1).expect("farm");
    let dns = DnsResponder::start(zone).expect("dns");
    World { dns, farm, port }
}

impl World {
    /// `mxprobe verify` of `addresses` with `flags`: the records by address.
    fn verify(&self, flags: &[&str], addresses: &[&str]) -> Vec<Value> {
        self.verify_and_stderr(flags, addresses).0
    }

    /// [`World::verify`], and what mxprobe said on stderr.
    fn verify_and_stderr(&self, flags: &[&str], addresses: &[&str]) -> (Vec<Value>, String) {
        let output = Command::new(env!("CARGO_BIN_EXE_mxprobe"))
            .arg("verify")
            .args(["--from", "probe@probe.test", "--format", "jsonl"])
            .args(["--dns-server", &self.dns.addr().to_string()])
            .args(["--smtp-port", &self.port.to_string()])
            .args(["--allow-private-mx", "--retries", "0", "--timeout", "5"])
            .args(flags)
            .args(addresses)
            .stdin(Stdio::null())
            .output()
            .expect("run mxprobe");
        assert!(output.status.success(), "{output:?}");
        let mut records = jsonl::records(&output.stdout);
        records.sort_by_key(|r| r["line"].as_u64());
        assert_eq!(records.len(), addresses.len(), "{records:?}");
        (
            records,
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }
}

/// (address, verdict, reason, tls) of a record.
fn summary(record: &Value) -> (&str, &str, &str, Option<&str>) {
    (
        record["address"].as_str().unwrap_or_default(),
        record["verdict"].as_str().unwrap_or_default(),
        record["reason"].as_str().unwrap_or_default(),
        record["tls"].as_str(),
    )
}

#[test]
fn when_required_asks_over_tls_only_where_the_server_demands_it() {
    let world = world();
    let records = world.verify(
        &[],
        &[
            "alice@required.test",
            "nobody@required.test",
            "alice@atrcpt.test",
            "nobody@atrcpt.test",
            "alice@offered.test",
            "alice@plain.test",
            "alice@closing.test",
            "nobody@closing.test",
        ],
    );
    let got: Vec<_> = records.iter().map(summary).collect();
    let tls13 = Some("TLSv1.3");
    assert_eq!(
        got,
        [
            ("alice@required.test", "deliverable", "accepted", tls13),
            (
                "nobody@required.test",
                "undeliverable",
                "mailbox_not_found",
                tls13
            ),
            ("alice@atrcpt.test", "deliverable", "accepted", tls13),
            (
                "nobody@atrcpt.test",
                "undeliverable",
                "mailbox_not_found",
                tls13
            ),
            ("alice@offered.test", "deliverable", "accepted", None),
            ("alice@plain.test", "deliverable", "accepted", None),
            ("alice@closing.test", "deliverable", "accepted", tls13),
            (
                "nobody@closing.test",
                "undeliverable",
                "mailbox_not_found",
                tls13
            ),
        ],
        "{records:#?}"
    );
    // The server that closed for want of TLS: asked again, STARTTLS first.
    assert_eq!(records[6]["attempts"], 2, "{}", records[6]);
    let stats = world.farm.stats();
    assert!(stats.tls_handshakes >= 2, "{stats:?}");
    assert_eq!(stats.starttls_injections, 0, "{stats:?}");
    assert_eq!(stats.data_commands, 0);
}

#[test]
fn never_takes_the_servers_refusal_as_the_answer() {
    let world = world();
    let records = world.verify(
        &["--starttls", "never"],
        &[
            "alice@required.test",
            "alice@atrcpt.test",
            "alice@offered.test",
            "alice@closing.test",
        ],
    );
    for record in &records[..2] {
        assert_eq!(record["verdict"], "unknown", "{record}");
        assert_eq!(record["smtp"]["code"], 530, "{record}");
        assert!(record["tls"].is_null());
    }
    assert_eq!(summary(&records[2]).2, "accepted");
    // Never asked over TLS, the server's closing 421 is all there is: unknown.
    assert_eq!(records[3]["verdict"], "unknown", "{}", records[3]);
    assert_eq!(world.farm.stats().tls_handshakes, 0);
}

#[test]
fn always_starts_tls_where_offered_and_fails_over_past_a_broken_handshake() {
    let world = world();
    let records = world.verify(
        &["--starttls", "always"],
        &[
            "alice@offered.test",
            "alice@plain.test",
            "alice@failover.test",
            "alice@broken.test",
        ],
    );
    let got: Vec<_> = records.iter().map(summary).collect();
    assert_eq!(
        got[..3],
        [
            (
                "alice@offered.test",
                "deliverable",
                "accepted",
                Some("TLSv1.3")
            ),
            ("alice@plain.test", "deliverable", "accepted", None),
            (
                "alice@failover.test",
                "deliverable",
                "accepted",
                Some("TLSv1.3")
            ),
        ],
        "{records:#?}"
    );
    assert_eq!(records[2]["mx"], "mx.offered.test");
    // The broken server's only MX: the prober's TLS failure, never a verdict on the mailbox.
    let broken = &records[3];
    assert_eq!(
        summary(broken),
        ("alice@broken.test", "unknown", "connection_failed", None),
        "{broken}"
    );
    let detail = broken["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("tls_failed: "), "{detail}");
}

#[test]
fn tls_verify_takes_only_a_trusted_certificate() {
    let world = world();
    let pem = world
        .farm
        .tls_cert_pem()
        .expect("the farm has a certificate");
    let dir = std::env::temp_dir().join(format!("mxprobe-starttls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let ca = dir.join("farm.pem");
    std::fs::write(&ca, pem).expect("write the CA file");
    let trusted = world.verify(
        &["--tls-verify", "--tls-ca", ca.to_str().expect("UTF-8 path")],
        &["alice@required.test"],
    );
    assert_eq!(
        summary(&trusted[0]),
        (
            "alice@required.test",
            "deliverable",
            "accepted",
            Some("TLSv1.3")
        )
    );
    // The Mozilla roots do not know the farm's self-signed certificate.
    let (untrusted, stderr) = world.verify_and_stderr(&["--tls-verify"], &["alice@required.test"]);
    assert!(
        stderr.contains("TLS handshake(s) after STARTTLS failed")
            && stderr.contains("--tls-verify"),
        "{stderr}"
    );
    assert_eq!(
        summary(&untrusted[0]),
        ("alice@required.test", "unknown", "connection_failed", None),
        "{untrusted:?}"
    );
    let detail = untrusted[0]["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("tls_failed: ") && detail.contains("certificate"),
        "{detail}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_ca_file_that_is_not_pem_is_refused_before_anything_is_probed() {
    let dir = std::env::temp_dir().join(format!("mxprobe-starttls-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let ca = dir.join("not.pem");
    std::fs::write(&ca, "not a certificate\n").expect("write");
    let output = Command::new(env!("CARGO_BIN_EXE_mxprobe"))
        .args([
            "verify",
            "--from",
            "probe@probe.test",
            "--dns-server",
            "127.0.0.1:1",
        ])
        .args(["--tls-verify", "--tls-ca", ca.to_str().expect("UTF-8 path")])
        .arg("alice@example.test")
        .stdin(Stdio::null())
        .output()
        .expect("run mxprobe");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--tls-ca"), "{stderr}");
    assert!(output.stdout.is_empty(), "{output:?}");
}
