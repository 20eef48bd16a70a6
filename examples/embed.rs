//! Embedding mxprobe: the engine on its own thread, addresses submitted from another, verdicts
//! consumed as they complete.
//!
//! So that it runs anywhere without touching the internet, this example starts mxprobe's own
//! simulators on loopback — a DNS responder for `example.test` and an MX farm with two
//! mailboxes — and points the engine at them. In production, build the resolver configuration
//! from `/etc/resolv.conf` (`NameserverConfig::parse_resolv_conf`) and leave `smtp_port` at 25.
//!
//! ```text
//! cargo run --example embed
//! ```

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "an example program prints its results"
)]

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::thread;

use mxprobe::dns::{LookupConfig, NameserverConfig, ResolverConfig};
use mxprobe::driver::Engine;
use mxprobe::engine::EngineConfig;
use mxprobe::session::{Sender, SessionConfig};
use mxprobe::sim::dns::{DnsResponder, Zone};
use mxprobe::sim::smtp::{Personality, SmtpFarm};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The simulated world: example.test's MX on 127.0.0.25, knowing two mailboxes.
    let mx = Ipv4Addr::new(127, 0, 0, 25);
    let port = TcpListener::bind((mx, 0))?.local_addr()?.port();
    let farm = SmtpFarm::start(
        vec![(
            SocketAddr::from((mx, port)),
            Personality::new("mx.example.test")
                .mailboxes(["alice@example.test", "bob@example.test"]),
        )],
        1,
    )?;
    let mut zone = Zone::new();
    zone.mx("example.test", 10, "mx.example.test")
        .a("mx.example.test", mx);
    let dns = DnsResponder::start(zone)?;

    // The engine: who it says it is, where DNS is, how politely it probes.
    let session = SessionConfig::new(
        "probe.example.test",
        Sender::Mailbox("verify@example.test".into()),
    );
    session.validate()?;
    let resolver = ResolverConfig::new(LookupConfig::new(NameserverConfig::with_servers(vec![
        dns.addr(),
    ])));
    let mut config = EngineConfig::new(session, resolver);
    config.smtp_port = port;
    // mxprobe's own simulators listen on loopback, where it connects only when told to.
    config.allow_private_mx = true;
    config.concurrency = 50;

    let engine = Engine::start(config)?;
    for notice in engine.notices() {
        eprintln!("mxprobe: {notice}");
    }

    // A producer on another thread: submit blocks when the engine's queue is full.
    let handle = engine.handle();
    let producer = thread::spawn(move || {
        let addresses = [
            "alice@example.test",
            "nobody@example.test",
            "Bob <bob@example.test>",
            "not-an-address",
        ];
        for (tag, address) in addresses.into_iter().enumerate() {
            if handle.submit(address, tag as u64).is_err() {
                break;
            }
        }
        handle.finish();
    });

    // Verdicts arrive as they complete, not in submission order; the tag says which is which.
    for result in engine.results() {
        println!(
            "#{} {:<24} {:<13} {:<18} {}",
            result.tag,
            result.address,
            result.verdict,
            result.reason,
            result.smtp.as_ref().map_or(String::new(), |reply| {
                String::from_utf8_lossy(reply.as_reply().wire())
                    .trim_end()
                    .to_owned()
            }),
        );
    }
    producer
        .join()
        .map_err(|_| "the producer thread panicked")?;
    let report = engine.join()?;
    println!(
        "{} addresses, {} SMTP sessions, {} DNS lookups, {:.0?}",
        report.stats.finished,
        report.stats.sessions,
        report.resolver.lookups.lookups,
        report.elapsed
    );
    drop(farm);
    Ok(())
}
