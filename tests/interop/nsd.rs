//! The DNS client against NSD, an authoritative server from NLnet Labs, serving a test zone on
//! loopback: every routing case of RFC 5321 §5.1 and RFC 7505, a truncated answer that moves to
//! TCP, IPv6 exchanges, and `mxprobe mx` on top.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use mxprobe::dns::{LookupConfig, MailRoute, NameserverConfig, ResolverConfig, RouteError};
use mxprobe::driver::resolve_routes;

use crate::support::Nsd;

/// The test zone. `multi` has three preferences; `equal` three hosts at one; `nullmx` a null
/// MX; `nomx` no MX but addresses (implicit MX); `ghost` an MX whose exchange has no address;
/// `v6` an IPv6-only exchange; `alias` a CNAME to `multi`; `big` enough MX records that the
/// answer exceeds 1,232 octets and arrives truncated over UDP.
fn zone() -> String {
    let mut zone = String::from(
        "$ORIGIN interop.test.\n\
         $TTL 300\n\
         @ IN SOA ns.interop.test. hostmaster.interop.test. 1 3600 600 86400 60\n\
         @ IN NS ns\n\
         ns IN A 127.0.0.53\n\
         multi IN MX 30 mx3.multi\n\
         multi IN MX 10 mx1.multi\n\
         multi IN MX 20 mx2.multi\n\
         mx1.multi IN A 127.0.0.11\n\
         mx2.multi IN A 127.0.0.12\n\
         mx2.multi IN AAAA ::1\n\
         mx3.multi IN A 127.0.0.13\n\
         equal IN MX 10 a.equal\n\
         equal IN MX 10 b.equal\n\
         equal IN MX 10 c.equal\n\
         a.equal IN A 127.0.0.21\n\
         b.equal IN A 127.0.0.22\n\
         c.equal IN A 127.0.0.23\n\
         nullmx IN MX 0 .\n\
         nomx IN A 127.0.0.30\n\
         nomx IN AAAA ::1\n\
         ghost IN MX 10 nowhere.ghost\n\
         v6 IN MX 10 mx.v6\n\
         mx.v6 IN AAAA ::1\n\
         alias IN CNAME multi\n",
    );
    for i in 0..80 {
        let _ = writeln!(
            zone,
            "big IN MX {i} a-rather-long-exchange-name-number-{i:02}.big"
        );
        let _ = writeln!(
            zone,
            "a-rather-long-exchange-name-number-{i:02}.big IN A 127.0.1.{i}"
        );
    }
    zone
}

fn config(server: SocketAddr) -> ResolverConfig {
    let mut nameservers = NameserverConfig::with_servers(vec![server]);
    nameservers.timeout = Duration::from_secs(2);
    ResolverConfig::new(LookupConfig::new(nameservers))
}

fn route(server: SocketAddr, domain: &str) -> Result<MailRoute, RouteError> {
    let results = resolve_routes(config(server), &[domain.to_owned()], 8).expect("event loop");
    results.into_iter().next().expect("one result").result
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("ip")
}

#[test]
fn routing_against_nsd() {
    let Some(program) = crate::require_program("nsd", "nsd") else {
        return;
    };
    let nsd = Nsd::start(&program, "interop.test.", &zone());
    let server = nsd.addr;

    // Several preferences: lowest first, each host with its addresses (IPv4 before IPv6).
    let multi = route(server, "multi.interop.test").expect("multi");
    let summary: Vec<(&str, u16, &[IpAddr])> = multi
        .hosts
        .iter()
        .map(|h| (h.name.as_str(), h.preference, h.addresses.as_slice()))
        .collect();
    assert_eq!(
        summary,
        [
            ("mx1.multi.interop.test", 10, &[ip("127.0.0.11")][..]),
            (
                "mx2.multi.interop.test",
                20,
                &[ip("127.0.0.12"), ip("::1")][..]
            ),
            ("mx3.multi.interop.test", 30, &[ip("127.0.0.13")][..]),
        ]
    );
    assert!(!multi.implicit);

    // Equal preferences: all three, in an order that varies between lookups.
    let mut orders = std::collections::HashSet::new();
    for _ in 0..30 {
        let equal = route(server, "equal.interop.test").expect("equal");
        assert_eq!(equal.hosts.len(), 3);
        assert!(equal.hosts.iter().all(|h| h.preference == 10));
        orders.insert(
            equal
                .hosts
                .iter()
                .map(|h| h.name.clone())
                .collect::<Vec<_>>(),
        );
    }
    assert!(
        orders.len() > 1,
        "equal preferences were never shuffled: {orders:?}"
    );

    assert_eq!(
        route(server, "nullmx.interop.test"),
        Err(RouteError::NullMx)
    );
    assert_eq!(
        route(server, "gone.interop.test"),
        Err(RouteError::DomainNotFound)
    );
    assert_eq!(
        route(server, "ghost.interop.test"),
        Err(RouteError::NoMailServer)
    );

    let nomx = route(server, "nomx.interop.test").expect("implicit MX");
    assert!(nomx.implicit);
    assert_eq!(nomx.hosts.len(), 1);
    assert_eq!(nomx.hosts[0].name, "nomx.interop.test");
    assert_eq!(nomx.hosts[0].preference, 0);
    assert_eq!(nomx.hosts[0].addresses, [ip("127.0.0.30"), ip("::1")]);

    let v6 = route(server, "v6.interop.test").expect("v6");
    assert_eq!(v6.hosts[0].addresses, [ip("::1")]);

    let alias = route(server, "alias.interop.test").expect("alias");
    assert_eq!(alias.domain, "alias.interop.test");
    assert_eq!(alias.hosts[0].name, "mx1.multi.interop.test");

    // 80 MX records do not fit 1,232 octets: NSD truncates, the client asks again over TCP.
    let big = route(server, "big.interop.test").expect("big");
    assert_eq!(big.hosts.len(), 10, "the ten most preferred of 80");
    assert_eq!(
        big.hosts[0].name,
        "a-rather-long-exchange-name-number-00.big.interop.test"
    );
    assert_eq!(big.hosts[0].addresses, [ip("127.0.1.0")]);

    // Many domains at once, each once.
    let domains: Vec<String> = [
        "multi", "equal", "nullmx", "gone", "nomx", "v6", "ghost", "alias",
    ]
    .iter()
    .cycle()
    .take(200)
    .map(|d| format!("{d}.interop.test"))
    .collect();
    let results = resolve_routes(config(server), &domains, 64).expect("event loop");
    assert_eq!(results.len(), 200);
    for result in &results {
        let expected_ok = !matches!(
            result.domain.split('.').next(),
            Some("nullmx" | "gone" | "ghost")
        );
        assert_eq!(
            result.result.is_ok(),
            expected_ok,
            "{}: {:?}",
            result.domain,
            result.result
        );
    }
}

#[test]
fn mx_command_against_nsd() {
    let Some(program) = crate::require_program("nsd", "nsd") else {
        return;
    };
    let nsd = Nsd::start(&program, "interop.test.", &zone());
    let output = Command::new(env!("CARGO_BIN_EXE_mxprobe"))
        .args(["mx", "--format", "jsonl", "--dns-server"])
        .arg(nsd.addr.to_string())
        .args([
            "multi.interop.test",
            "nullmx.interop.test",
            "gone.interop.test",
            "local host",
        ])
        .output()
        .expect("run mxprobe");
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).expect("UTF-8");
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    assert_eq!(lines[0]["status"], "ok");
    assert_eq!(lines[0]["hosts"][0]["name"], "mx1.multi.interop.test");
    assert_eq!(lines[0]["hosts"][0]["preference"], 10);
    assert_eq!(lines[0]["hosts"][0]["addresses"][0], "127.0.0.11");
    assert_eq!(lines[1]["status"], "null_mx");
    assert_eq!(lines[2]["status"], "domain_not_found");
    assert_eq!(lines[3]["status"], "invalid_domain");

    let human = Command::new(env!("CARGO_BIN_EXE_mxprobe"))
        .args(["mx", "--format", "human", "--dns-server"])
        .arg(nsd.addr.to_string())
        .arg("multi.interop.test")
        .output()
        .expect("run mxprobe");
    let text = String::from_utf8(human.stdout).expect("UTF-8");
    assert!(text.starts_with("multi.interop.test\n"), "{text}");
    assert!(
        text.contains("10  mx1.multi.interop.test  127.0.0.11"),
        "{text}"
    );
}
