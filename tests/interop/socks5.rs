//! The engine through a real SOCKS5 proxy: microsocks (Debian's `microsocks`), started by the
//! test on loopback without and with a username and password, in front of the simulated farm
//! and DNS. Verdicts must come through the tunnel as they come directly; a wrong password, a
//! dead proxy and a proxy that reports the server unreachable must never be verdicts. Through
//! `socks5h://` the proxy resolves the MX host's name itself: a name mxprobe's DNS puts where
//! nothing listens, and the proxy's resolver (its /etc/hosts) puts on the farm, is reached.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mxprobe::sim::dns::{DnsResponder, Zone};
use mxprobe::sim::smtp::{Personality, SmtpFarm};
use mxprobe::socks5::Proxy;
use mxprobe::verdict::{Reason, Verdict};

use crate::support::{engine_config, summary, verify};

const OPEN_PROXY: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 91);
const AUTH_PROXY: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 92);
const MX: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 93);
const DEAD: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 94);

/// A running microsocks, killed on drop.
struct Microsocks(Child);

impl Microsocks {
    fn start(program: &Path, ip: Ipv4Addr, port: u16, auth: Option<(&str, &str)>) -> Self {
        let mut command = Command::new(program);
        command
            .args(["-i", &ip.to_string(), "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some((user, password)) = auth {
            command.args(["-u", user, "-P", password]);
        }
        let child = command.spawn().expect("start microsocks");
        let addr = SocketAddr::from((ip, port));
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "microsocks did not start on {addr}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self(child)
    }
}

impl Drop for Microsocks {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port(ip: Ipv4Addr) -> u16 {
    TcpListener::bind((ip, 0))
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn proxy(text: &str) -> Proxy {
    Proxy::parse(text).expect("a valid proxy")
}

#[test]
fn verdicts_through_microsocks_and_failures_that_are_never_verdicts() {
    let Some(program) = crate::require_program("microsocks", "microsocks") else {
        return;
    };
    let smtp_port = free_port(MX);
    // `localhost` as the proxy resolves it (either family), for `named.test`.
    let named = || Personality::new("localhost").mailbox("alice@named.test");
    let farm = SmtpFarm::start(
        vec![
            (
                SocketAddr::from((MX, smtp_port)),
                Personality::new("mx.socks.test").mailbox("alice@socks.test"),
            ),
            (SocketAddr::from((Ipv4Addr::LOCALHOST, smtp_port)), named()),
            (
                SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, smtp_port)),
                named(),
            ),
        ],
        1,
    )
    .expect("farm");
    let mut zone = Zone::new();
    zone.mx("socks.test", 10, "mx.socks.test")
        .a("mx.socks.test", MX)
        .mx("gone.test", 10, "mx.gone.test")
        .a("mx.gone.test", DEAD)
        // mxprobe's DNS says nothing listens there; the proxy's resolver knows better.
        .mx("named.test", 10, "localhost")
        .a("localhost", DEAD);
    let dns = DnsResponder::start(zone).expect("dns");
    let (open_port, auth_port, dead_port) = (
        free_port(OPEN_PROXY),
        free_port(AUTH_PROXY),
        free_port(DEAD),
    );
    let _open = Microsocks::start(&program, OPEN_PROXY, open_port, None);
    let _auth = Microsocks::start(&program, AUTH_PROXY, auth_port, Some(("probe", "s3cret")));
    let config = |proxies: Vec<Proxy>| {
        engine_config(dns.addr())
            .smtp_port(smtp_port)
            .retries(0)
            .timeout(Duration::from_secs(5))
            .proxies(proxies)
    };
    let right = [
        ("alice@socks.test", Verdict::Deliverable, Reason::Accepted),
        (
            "nobody@socks.test",
            Verdict::Undeliverable,
            Reason::MailboxNotFound,
        ),
    ];
    let addresses = ["alice@socks.test", "nobody@socks.test"];

    // Without and with credentials, and with a dead proxy first in the pool: the verdicts
    // come through as they would directly.
    for proxies in [
        vec![proxy(&format!("socks5://{OPEN_PROXY}:{open_port}"))],
        vec![proxy(&format!(
            "socks5://probe:s3cret@{AUTH_PROXY}:{auth_port}"
        ))],
        vec![
            proxy(&format!("socks5://{DEAD}:{dead_port}")),
            proxy(&format!("socks5://{OPEN_PROXY}:{open_port}")),
        ],
    ] {
        let results = verify(config(proxies.clone()), &addresses);
        assert_eq!(summary(&results), right, "{proxies:?}: {results:#?}");
        assert_eq!(
            results[0].catch_all,
            Some(false),
            "the control went through too"
        );
        assert_eq!(
            results[0].ip,
            Some(MX.into()),
            "the server's address, not the proxy's"
        );
    }
    assert_eq!(farm.stats().data_commands, 0);

    // The proxy's own failures: unknown, with the proxy's failure as the detail.
    for (proxies, why) in [
        (
            vec![proxy(&format!(
                "socks5://probe:wrong@{AUTH_PROXY}:{auth_port}"
            ))],
            "refused the username and password",
        ),
        (
            vec![proxy(&format!("socks5://{AUTH_PROXY}:{auth_port}"))],
            "accepts none of the offered methods",
        ),
        (
            vec![proxy(&format!("socks5://{DEAD}:{dead_port}"))],
            "refused the connection",
        ),
    ] {
        let results = verify(config(proxies), &addresses);
        for result in &results {
            assert_eq!(
                (result.verdict(), result.reason),
                (Verdict::Unknown, Reason::ConnectionFailed),
                "{result:#?}"
            );
            let detail = result.detail.as_deref().unwrap_or_default();
            assert!(
                detail.starts_with("proxy_failed: ") && detail.contains(why),
                "{detail}"
            );
        }
    }

    // The proxy reaches out and the server is not there: what a direct connection would
    // meet, not the proxy's failure.
    let results = verify(
        config(vec![proxy(&format!("socks5://{OPEN_PROXY}:{open_port}"))]),
        &["alice@gone.test"],
    );
    assert_eq!(results[0].reason, Reason::ConnectionFailed, "{results:#?}");
    let detail = results[0].detail.as_deref().unwrap_or_default();
    assert!(!detail.contains("proxy_failed"), "{detail}");

    // By name: the proxy resolves `localhost` and reaches the farm; by address, mxprobe's own
    // answer (where nothing listens) is what the proxy is asked for.
    let named = ["alice@named.test", "nobody@named.test"];
    let results = verify(
        config(vec![proxy(&format!("socks5h://{OPEN_PROXY}:{open_port}"))]),
        &named,
    );
    assert_eq!(
        summary(&results),
        [
            ("alice@named.test", Verdict::Deliverable, Reason::Accepted),
            (
                "nobody@named.test",
                Verdict::Undeliverable,
                Reason::MailboxNotFound
            ),
        ],
        "{results:#?}"
    );
    // Which address the proxy reached is not mxprobe's to say.
    assert_eq!(results[0].ip, None, "{results:#?}");
    assert_eq!(results[0].mx.as_deref(), Some("localhost"));
    let results = verify(
        config(vec![proxy(&format!("socks5://{OPEN_PROXY}:{open_port}"))]),
        &named[..1],
    );
    assert_eq!(results[0].reason, Reason::ConnectionFailed, "{results:#?}");
}
