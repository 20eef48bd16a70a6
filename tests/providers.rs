//! The provider profiles end to end: `mxprobe verify` against simulated big mail systems
//! (`mxprobe::sim::providers`), each on a loopback address of its own behind MX host names
//! under the provider's suffixes, served by the in-repo DNS responder.
//!
//! For every provider: the verdict, the reason and `provider` of an existing, an unknown, a
//! disabled and a full mailbox (where the provider's replies for them are known), written
//! here by hand from what each provider documents; and that the politeness its profile asks
//! for held at its servers (RCPTs per session, sessions at once, and no transaction over the
//! rate its servers throttle at). Then a provider that says "slow down" is waited for, without
//! spending retries.

#![allow(
    clippy::disallowed_methods,
    reason = "these tests run the binary and servers in real time"
)]

#[path = "support/jsonl.rs"]
mod jsonl;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::process::{Command, Output, Stdio};

use mxprobe::sim::dns::{DnsResponder, Zone};
use mxprobe::sim::providers::{PROVIDER_SIMS, ProviderSim};
use mxprobe::sim::smtp::{FarmStats, SmtpFarm};
use serde_json::Value;

/// Mailboxes that exist at each simulated domain: `user1` to `user6`.
const USERS: usize = 6;

/// What mxprobe must conclude at one provider: (verdict, reason) for an existing mailbox, an
/// unknown one, and, where the provider's replies are simulated, a disabled and a full one.
struct Expected {
    id: &'static str,
    existing: (&'static str, &'static str),
    unknown: (&'static str, &'static str),
    disabled: Option<(&'static str, &'static str)>,
    full: Option<(&'static str, &'static str)>,
    /// The detail of the unknown mailbox's verdict names the provider's profile: a profile
    /// rule read the reply.
    unknown_read_by_profile: bool,
}

const DELIVERABLE: (&str, &str) = ("deliverable", "accepted");
const NOT_FOUND: (&str, &str) = ("undeliverable", "mailbox_not_found");
const ACCEPT_ALL: (&str, &str) = ("risky", "accept_all");
const FULL: (&str, &str) = ("risky", "mailbox_full");

const EXPECTED: [Expected; 15] = [
    Expected {
        id: "google",
        existing: DELIVERABLE,
        unknown: NOT_FOUND,
        disabled: Some(("undeliverable", "mailbox_disabled")),
        full: Some(FULL),
        unknown_read_by_profile: false,
    },
    Expected {
        id: "microsoft365",
        existing: DELIVERABLE,
        unknown: NOT_FOUND,
        disabled: None,
        full: None,
        unknown_read_by_profile: false,
    },
    Expected {
        id: "outlook_com",
        existing: DELIVERABLE,
        unknown: NOT_FOUND,
        disabled: None,
        full: None,
        unknown_read_by_profile: true,
    },
    // Yahoo and Mail.ru accept every recipient at RCPT: nothing there is deliverable.
    Expected {
        id: "yahoo",
        existing: ACCEPT_ALL,
        unknown: ACCEPT_ALL,
        disabled: None,
        full: None,
        unknown_read_by_profile: false,
    },
    Expected {
        id: "icloud",
        existing: DELIVERABLE,
        unknown: NOT_FOUND,
        disabled: None,
        full: Some(FULL),
        unknown_read_by_profile: false,
    },
    // Zoho's "Mailbox delivery failure policy error" carries 5.1.1 but is a policy refusal.
    Expected {
        id: "zoho",
        existing: DELIVERABLE,
        unknown: NOT_FOUND,
        disabled: Some(("unknown", "blocked")),
        full: None,
        unknown_read_by_profile: false,
    },
    // Yandex's unknown mailbox is a 5.7.1, which the generic table reads as a policy refusal.
    Expected {
        id: "yandex",
        existing: DELIVERABLE,
        unknown: NOT_FOUND,
        disabled: None,
        full: Some(FULL),
        unknown_read_by_profile: true,
    },
    Expected {
        id: "mail_ru",
        existing: ACCEPT_ALL,
        unknown: ACCEPT_ALL,
        disabled: None,
        full: None,
        unknown_read_by_profile: false,
    },
    // GMX's bare "550 mailbox unavailable" is calibrated by the generic rules: the server
    // accepted other recipients in the same session.
    Expected {
        id: "gmx_webde",
        existing: DELIVERABLE,
        unknown: NOT_FOUND,
        disabled: None,
        full: Some(FULL),
        unknown_read_by_profile: false,
    },
    Expected {
        id: "fastmail",
        existing: DELIVERABLE,
        unknown: NOT_FOUND,
        disabled: None,
        full: None,
        unknown_read_by_profile: false,
    },
    Expected {
        id: "proton",
        existing: DELIVERABLE,
        unknown: NOT_FOUND,
        disabled: None,
        full: None,
        unknown_read_by_profile: false,
    },
    // Proofpoint's "marked as invalid" is a 5.7.1.
    Expected {
        id: "proofpoint",
        existing: DELIVERABLE,
        unknown: NOT_FOUND,
        disabled: None,
        full: None,
        unknown_read_by_profile: true,
    },
    Expected {
        id: "mimecast",
        existing: DELIVERABLE,
        unknown: NOT_FOUND,
        disabled: None,
        full: None,
        unknown_read_by_profile: true,
    },
    Expected {
        id: "barracuda",
        existing: DELIVERABLE,
        unknown: NOT_FOUND,
        disabled: None,
        full: None,
        unknown_read_by_profile: true,
    },
    Expected {
        id: "cisco",
        existing: DELIVERABLE,
        unknown: NOT_FOUND,
        disabled: None,
        full: None,
        unknown_read_by_profile: false,
    },
];

/// One simulated provider: its farm (one listener, so its counters are its own) and the two
/// domains it hosts.
struct Hosted {
    sim: &'static ProviderSim,
    farm: SmtpFarm,
    domains: [String; 2],
}

struct World {
    dns: DnsResponder,
    providers: Vec<Hosted>,
    port: u16,
}

/// A port free on every address in `ips`.
fn common_port(ips: &[Ipv4Addr]) -> u16 {
    loop {
        let port = TcpListener::bind((ips[0], 0))
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let held: Result<Vec<TcpListener>, _> = ips
            .iter()
            .map(|ip| TcpListener::bind((*ip, port)))
            .collect();
        if held.is_ok() {
            return port;
        }
    }
}

/// Every simulated provider on an address of its own (`127.0.0.{base + n}`), each hosting
/// `a.{id}.test` and `b.{id}.test` (`_` in the id as `-`); `personality` makes each
/// provider's server.
fn world(
    base: u8,
    personality: impl Fn(&'static ProviderSim, &[String; 2]) -> mxprobe::sim::smtp::Personality,
    sims: &[&'static ProviderSim],
) -> World {
    let ips: Vec<Ipv4Addr> = (0..sims.len())
        .map(|n| Ipv4Addr::new(127, 0, 0, base + u8::try_from(n).expect("few providers")))
        .collect();
    let port = common_port(&ips);
    let mut zone = Zone::new();
    let mut providers = Vec::new();
    for (sim, ip) in sims.iter().zip(&ips) {
        let label = sim.id.replace('_', "-");
        let domains = [format!("a.{label}.test"), format!("b.{label}.test")];
        for domain in &domains {
            zone.mx(domain, 10, sim.mx_host);
        }
        zone.a(sim.mx_host, *ip);
        let farm = SmtpFarm::start(
            vec![(SocketAddr::from((*ip, port)), personality(sim, &domains))],
            1,
        )
        .expect("farm");
        providers.push(Hosted { sim, farm, domains });
    }
    let dns = DnsResponder::start(zone).expect("dns");
    World {
        dns,
        providers,
        port,
    }
}

impl World {
    /// `mxprobe verify` of `addresses`, JSON Lines, with `extra` flags.
    fn verify(&self, addresses: &[String], extra: &[&str]) -> Vec<Value> {
        let mut command = Command::new(env!("CARGO_BIN_EXE_mxprobe"));
        command
            .arg("verify")
            .args(["--from", "probe@probe.test", "--quiet", "--format", "jsonl"])
            .args(["--input", "-"])
            .args(["--dns-server", &self.dns.addr().to_string()])
            .args(["--smtp-port", &self.port.to_string()])
            .arg("--allow-private-mx")
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("run mxprobe");
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().expect("stdin");
            for address in addresses {
                writeln!(stdin, "{address}").expect("write stdin");
            }
        }
        let output: Output = child.wait_with_output().expect("wait");
        assert!(output.status.success(), "{output:?}");
        jsonl::records(&output.stdout)
    }
}

fn by_address(records: &[Value]) -> HashMap<String, &Value> {
    records
        .iter()
        .map(|r| (r["address"].as_str().expect("address").to_owned(), r))
        .collect()
}

fn check(record: &Value, id: &str, want: (&str, &str), what: &str) {
    assert_eq!(
        (
            record["verdict"].as_str().unwrap_or_default(),
            record["reason"].as_str().unwrap_or_default()
        ),
        want,
        "{id} {what}: {record}"
    );
    assert_eq!(record["provider"], id, "{id} {what}: {record}");
}

/// The most its servers may see at once, and in one session, by the profile (the engine's
/// defaults where the profile sets nothing: 4 sessions per server, 8 addresses and the
/// control).
fn limits(sim: &ProviderSim) -> (u64, u64) {
    let politeness = &sim.provider().profile.politeness;
    let sessions = politeness.sessions_per_mx.unwrap_or(4).min(4);
    let rcpts = politeness.rcpts_per_session.unwrap_or(9).min(9);
    (sessions as u64, rcpts as u64)
}

#[test]
fn every_provider_is_read_as_it_documents_and_probed_as_politely_as_it_asks() {
    let sims: Vec<&'static ProviderSim> = PROVIDER_SIMS.iter().collect();
    let world = world(
        110,
        |sim, domains| {
            let mut mailboxes = Vec::new();
            for domain in domains {
                for n in 1..=USERS {
                    mailboxes.push(format!("user{n}@{domain}"));
                }
            }
            let mailboxes: Vec<&str> = mailboxes.iter().map(String::as_str).collect();
            let (disabled, full) = (
                format!("disabled@{}", domains[0]),
                format!("full@{}", domains[0]),
            );
            // Transactions beyond twice the profile's pace get the provider's "slow down".
            sim.personality(&mailboxes, &[&disabled], &[&full], sim.throttle_rate())
        },
        &sims,
    );
    let mut addresses = Vec::new();
    for hosted in &world.providers {
        for domain in &hosted.domains {
            for n in 1..=USERS {
                addresses.push(format!("user{n}@{domain}"));
            }
            addresses.push(format!("nobody@{domain}"));
        }
        addresses.push(format!("disabled@{}", hosted.domains[0]));
        addresses.push(format!("full@{}", hosted.domains[0]));
    }
    let records = world.verify(&addresses, &["--retries", "0", "--throttle-backoff", "1"]);
    assert_eq!(records.len(), addresses.len());
    let records = by_address(&records);
    for (hosted, expected) in world.providers.iter().zip(&EXPECTED) {
        let id = hosted.sim.id;
        assert_eq!(id, expected.id, "the tables are in the same order");
        for domain in &hosted.domains {
            for n in 1..=USERS {
                let address = format!("user{n}@{domain}");
                check(records[&address], id, expected.existing, &address);
            }
            let nobody = records[&format!("nobody@{domain}")];
            check(nobody, id, expected.unknown, "an unknown mailbox");
            let detail = nobody["detail"].as_str().unwrap_or_default();
            assert_eq!(
                detail.contains(" profile: "),
                expected.unknown_read_by_profile || expected.unknown == ACCEPT_ALL,
                "{id}: {nobody}"
            );
        }
        let disabled = records[&format!("disabled@{}", hosted.domains[0])];
        let full = records[&format!("full@{}", hosted.domains[0])];
        check(
            disabled,
            id,
            expected.disabled.unwrap_or(expected.unknown),
            "a disabled mailbox",
        );
        check(
            full,
            id,
            expected.full.unwrap_or(expected.unknown),
            "a full mailbox",
        );

        let stats: FarmStats = hosted.farm.stats();
        let (sessions, rcpts) = limits(hosted.sim);
        assert_eq!(stats.data_commands, 0, "{id}: never DATA");
        assert!(
            stats.peak_open_connections <= sessions,
            "{id}: {} sessions at once, the profile allows {sessions}",
            stats.peak_open_connections
        );
        assert!(
            stats.peak_rcpts_in_session <= rcpts,
            "{id}: {} RCPTs in a session, the profile allows {rcpts}",
            stats.peak_rcpts_in_session
        );
        assert_eq!(
            stats.throttled_transactions, 0,
            "{id}: mxprobe went faster than the profile's pace"
        );
        let profile = &hosted.sim.provider().profile;
        if profile.accepts_every_recipient.is_some() {
            // No catch-all control where it means nothing: the RCPTs are the addresses'.
            assert_eq!(stats.rcpt_commands, 2 * (USERS as u64 + 1) + 2, "{id}");
        }
    }
}

/// A provider that defers a new client's first transactions ("slow down") is left alone for
/// the backoff and asked again: every address gets its own answer, no retry is spent (there
/// are none to spend here), and the deferral is never a verdict.
#[test]
fn a_provider_that_says_slow_down_is_waited_for_without_spending_retries() {
    let sim = ProviderSim::get("microsoft365").expect("simulated");
    let throttle = sim
        .throttle_reply()
        .expect("Exchange Online has a throttling reply");
    let world = world(
        140,
        |sim, domains| {
            let mailboxes: Vec<String> = domains.iter().map(|d| format!("user1@{d}")).collect();
            let mailboxes: Vec<&str> = mailboxes.iter().map(String::as_str).collect();
            sim.personality(&mailboxes, &[], &[], 1000)
                .throttle_first(1, throttle)
        },
        &[sim],
    );
    let hosted = &world.providers[0];
    let addresses: Vec<String> = hosted
        .domains
        .iter()
        .flat_map(|d| [format!("user1@{d}"), format!("nobody@{d}")])
        .collect();
    let started = std::time::Instant::now();
    let records = world.verify(
        &addresses,
        &[
            "--retries",
            "0",
            "--throttle-backoff",
            "2",
            "--no-catch-all",
        ],
    );
    let records = by_address(&records);
    let mut deferred = 0;
    for domain in &hosted.domains {
        for (local, want) in [("user1", DELIVERABLE), ("nobody", NOT_FOUND)] {
            let record = records[&format!("{local}@{domain}")];
            check(record, "microsoft365", want, local);
            if record["attempts"] == 2 {
                deferred += 1;
            }
        }
    }
    assert_eq!(hosted.farm.stats().throttled_transactions, 1);
    assert!(
        deferred >= 1,
        "the deferred session's addresses were asked again"
    );
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(2),
        "the provider was left alone for the backoff"
    );
}
