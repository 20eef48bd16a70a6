//! The whole engine — scheduler, sessions, DNS client, event loop, real sockets — against the
//! simulated MX farm (`sim::smtp`) and DNS responder (`sim::dns`) on loopback, one domain per
//! scenario, every verdict checked.

#![allow(
    clippy::disallowed_methods,
    reason = "these tests run real servers and read real time"
)]

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::time::Duration;

use mxprobe::session::Timeouts;

/// The tokio driver of the examples, under the same tests as the mio driver.
#[path = "../examples/tokio_driver.rs"]
#[allow(dead_code, reason = "its `main` is the example's, not the test's")]
mod tokio_driver;
use mxprobe::sim::dns::{DnsResponder, Misbehaviour, Zone};
use mxprobe::sim::smtp::{Behaviour, FarmOptions, Greeting, Personality, SmtpFarm};
use mxprobe::verdict::{Reason, Verdict};
use mxprobe::{Config, ConfigBuilder, Engine, VerifyResult};

/// A port free on every one of `ips` a moment ago, so one farm can listen on all of them.
fn common_port(ips: &[Ipv4Addr]) -> u16 {
    'search: loop {
        let probe = TcpListener::bind((ips[0], 0)).expect("bind");
        let port = probe.local_addr().expect("addr").port();
        drop(probe);
        for ip in ips {
            if TcpListener::bind((*ip, port)).is_err() {
                continue 'search;
            }
        }
        return port;
    }
}

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, last)
}

struct World {
    _dns: DnsResponder,
    farm: SmtpFarm,
    config: ConfigBuilder,
}

/// The farm: one MX per scenario, each on its own loopback address.
fn world() -> World {
    let mut personalities: Vec<(Ipv4Addr, Personality)> = vec![
        (
            ip(21),
            Personality::new("mx.plain.test").mailboxes(["alice@plain.test", "Bob@plain.test"]),
        ),
        (ip(22), Personality::new("mx.catchall.test").catch_all()),
        (
            ip(23),
            Personality::new("mx.grey.test")
                .mailbox("alice@grey.test")
                .greylist(Duration::from_millis(300)),
        ),
        (
            ip(24),
            Personality::new("mx.stubborn.test")
                .mailbox("alice@stubborn.test")
                .greylist(Duration::from_secs(3600)),
        ),
        (
            ip(25),
            Personality::new("mx.blocked.test").greeting(Greeting::Refuse),
        ),
        (
            ip(27),
            Personality::new("mx2.failover.test").mailbox("alice@failover.test"),
        ),
        (
            ip(28),
            Personality::new("mx.limited.test")
                .mailboxes((0..6).map(|i| format!("u{i}@limited.test")))
                .max_rcpt_per_session(2),
        ),
        (
            ip(29),
            Personality::new("mx.silent.test").behaviour(Behaviour::Silent),
        ),
        (
            ip(30),
            Personality::new("mx.garbage.test").behaviour(Behaviour::Garbage),
        ),
        (
            ip(31),
            Personality::new("mx.picky.test")
                .mailbox("alice@picky.test")
                .reject_sender(),
        ),
        (
            ip(32),
            Personality::new("mx.busy.test").greeting(Greeting::Unavailable),
        ),
        (
            ip(33),
            Personality::new("mx.ascii.test")
                .mailbox("jose@ascii.test")
                .without_smtputf8(),
        ),
        (ip(34), Personality::new("mx.mailinator.com").catch_all()),
        (
            ip(35),
            Personality::new("mx.lockstep.test")
                .mailbox("alice@lockstep.test")
                .without_pipelining(),
        ),
        (
            ip(36),
            Personality::new("mx.drops.test")
                .mailbox("alice@drops.test")
                .behaviour(Behaviour::LosesPipelinedReplies),
        ),
        (
            ip(37),
            Personality::new("mx.extra.test")
                .mailbox("alice@extra.test")
                .behaviour(Behaviour::ExtraReply),
        ),
    ];
    let mut ips: Vec<Ipv4Addr> = personalities.iter().map(|(ip, _)| *ip).collect();
    ips.push(ip(26)); // failover's dead first MX: nothing listens there
    let port = common_port(&ips);
    let listeners = personalities
        .drain(..)
        .map(|(ip, p)| (SocketAddr::from((ip, port)), p))
        .collect();
    let farm = SmtpFarm::start_with(
        listeners,
        FarmOptions {
            threads: 2,
            ..FarmOptions::default()
        },
    )
    .expect("start farm");

    let mut zone = Zone::new();
    for (domain, last) in [
        ("plain.test", 21),
        ("catchall.test", 22),
        ("grey.test", 23),
        ("stubborn.test", 24),
        ("blocked.test", 25),
        ("limited.test", 28),
        ("silent.test", 29),
        ("garbage.test", 30),
        ("picky.test", 31),
        ("busy.test", 32),
        ("ascii.test", 33),
        ("mailinator.com", 34),
        ("lockstep.test", 35),
        ("drops.test", 36),
        ("extra.test", 37),
    ] {
        let mx = format!("mx.{domain}");
        zone.mx(domain, 10, &mx).a(&mx, ip(last));
    }
    zone.mx("failover.test", 10, "mx1.failover.test")
        .a("mx1.failover.test", ip(26))
        .mx("failover.test", 20, "mx2.failover.test")
        .a("mx2.failover.test", ip(27));
    zone.null_mx("nullmx.test");
    // Does not exist, and takes a while to say so: addresses pile up behind its lookup.
    zone.misbehave(
        "slowgone.test",
        Misbehaviour::Delay(Duration::from_millis(200)),
    );
    zone.mx("nomail.test", 10, "ghost.nomail.test")
        .exists("ghost.nomail.test");
    let dns = DnsResponder::start(zone).expect("start DNS");

    let config = Config::builder()
        .sender("probe@probe.test")
        .nameserver(dns.addr())
        .dns_timeout(Duration::from_millis(500))
        .timeouts(Timeouts::all(Duration::from_millis(700)))
        .transcript(true)
        .smtp_port(port)
        .allow_private_mx(true)
        .retry_delay(Duration::from_millis(400))
        .retries(2)
        .domain_rate(None);
    World {
        _dns: dns,
        farm,
        config,
    }
}

/// Verifies `addresses` and returns the results by address.
fn verify(config: ConfigBuilder, addresses: &[&str]) -> HashMap<String, VerifyResult> {
    let (engine, results) =
        Engine::start(config.build().expect("a valid configuration")).expect("start engine");
    let handle = engine.handle();
    for (tag, address) in addresses.iter().enumerate() {
        handle.submit(*address, tag as u64).expect("submit");
    }
    handle.finish();
    let mut by_address = HashMap::new();
    for result in results {
        assert_eq!(addresses[result.tag as usize], result.address);
        let previous = by_address.insert(result.address.clone(), result);
        assert!(previous.is_none(), "an address answered twice");
    }
    engine.join().expect("engine ran");
    assert_eq!(by_address.len(), addresses.len(), "every address answered");
    by_address
}

/// A way to run the engine: mxprobe's mio driver, or the tokio one of the examples.
type Verify = fn(ConfigBuilder, &[&str]) -> HashMap<String, VerifyResult>;

/// [`verify`] through `examples/tokio_driver.rs` on a current-thread tokio runtime.
fn verify_on_tokio(config: ConfigBuilder, addresses: &[&str]) -> HashMap<String, VerifyResult> {
    let config = config.build().expect("a valid configuration");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let by_address = runtime.block_on(async {
        let (submit, submissions) = tokio::sync::mpsc::channel(64);
        let (results, mut verdicts) = tokio::sync::mpsc::unbounded_channel();
        let engine = tokio::spawn(tokio_driver::run(config, [7; 32], submissions, results));
        for (tag, address) in addresses.iter().enumerate() {
            submit
                .send(((*address).to_owned(), tag as u64))
                .await
                .expect("submit");
        }
        drop(submit);
        let mut by_address = HashMap::new();
        while let Some(result) = verdicts.recv().await {
            assert_eq!(addresses[result.tag as usize], result.address);
            let previous = by_address.insert(result.address.clone(), result);
            assert!(previous.is_none(), "an address answered twice");
        }
        let stats = engine.await.expect("the driver ran");
        assert_eq!(stats.finished, addresses.len() as u64);
        by_address
    });
    assert_eq!(by_address.len(), addresses.len(), "every address answered");
    by_address
}

fn check(results: &HashMap<String, VerifyResult>, address: &str, verdict: Verdict, reason: Reason) {
    let result = &results[address];
    assert_eq!(
        (result.verdict(), result.reason),
        (verdict, reason),
        "{address}: {result:#?}"
    );
}

/// Servers that break the pairing of replies and commands never decide a verdict: one that
/// loses the RCPT replies of a pipelined group (answering MAIL, RCPT, RCPT, QUIT with `250`,
/// `221`) is asked again without pipelining, where it answers right; one that sends a reply
/// nobody asked for ends as `protocol_error`, in either mode.
#[test]
fn servers_that_break_the_pairing_never_decide() {
    pairing_breakers(verify);
}

/// The same, with the scheduler on a tokio runtime (`examples/tokio_driver.rs`).
#[test]
fn servers_that_break_the_pairing_never_decide_on_tokio() {
    pairing_breakers(verify_on_tokio);
}

fn pairing_breakers(verify: Verify) {
    let world = world();
    let addresses = [
        "alice@drops.test",
        "nobody@drops.test",
        "alice@extra.test",
        "nobody@extra.test",
    ];
    let results = verify(world.config.clone(), &addresses);
    check(
        &results,
        "alice@drops.test",
        Verdict::Deliverable,
        Reason::Accepted,
    );
    check(
        &results,
        "nobody@drops.test",
        Verdict::Undeliverable,
        Reason::MailboxNotFound,
    );
    for address in ["alice@drops.test", "nobody@drops.test"] {
        let result = &results[address];
        assert_eq!(result.attempts, 2, "{address}: asked again, lock-step");
        let code = result.smtp.as_ref().map(|r| r.as_reply().code().get());
        assert!(matches!(code, Some(250 | 550)), "{address}: {code:?}");
        let transcript = result.transcript.as_deref().unwrap_or_default();
        assert!(
            transcript.contains("< 221 2.0.0 Bye"),
            "{address}: the 221 came, and decided nothing: {transcript}"
        );
    }
    for address in ["alice@extra.test", "nobody@extra.test"] {
        check(&results, address, Verdict::Unknown, Reason::ProtocolError);
        let code = results[address]
            .smtp
            .as_ref()
            .map(|r| r.as_reply().code().get());
        assert_ne!(code, Some(221), "{address}: never QUIT's 221");
    }
    assert_eq!(world.farm.stats().data_commands, 0);
}

#[test]
fn every_scenario_gets_its_verdict() {
    every_scenario(verify);
}

/// The same, with the scheduler on a tokio runtime (`examples/tokio_driver.rs`): a driver
/// built on the public sans-IO API alone gets every verdict right.
#[test]
fn every_scenario_gets_its_verdict_on_tokio() {
    every_scenario(verify_on_tokio);
}

fn every_scenario(verify: Verify) {
    let world = world();
    let limited: Vec<String> = (0..6).map(|i| format!("u{i}@limited.test")).collect();
    let mut addresses = vec![
        "alice@plain.test",
        "BOB@plain.test",
        "nobody@plain.test",
        "anyone@catchall.test",
        "alice@grey.test",
        "alice@stubborn.test",
        "alice@blocked.test",
        "alice@failover.test",
        "alice@silent.test",
        "alice@garbage.test",
        "alice@picky.test",
        "alice@busy.test",
        "josé@ascii.test",
        "jose@ascii.test",
        "whoever@mailinator.com",
        "alice@lockstep.test",
        "alice@nullmx.test",
        "alice@nxdomain.test",
        "alice@nomail.test",
        "not an address",
        "user@[127.0.0.1]",
    ];
    addresses.extend(limited.iter().map(String::as_str));
    let results = verify(world.config.clone(), &addresses);

    check(
        &results,
        "alice@plain.test",
        Verdict::Deliverable,
        Reason::Accepted,
    );
    check(
        &results,
        "BOB@plain.test",
        Verdict::Deliverable,
        Reason::Accepted,
    );
    check(
        &results,
        "nobody@plain.test",
        Verdict::Undeliverable,
        Reason::MailboxNotFound,
    );
    let alice = &results["alice@plain.test"];
    assert_eq!(alice.catch_all, Some(false));
    assert_eq!(alice.mx.as_deref(), Some("mx.plain.test"));
    assert_eq!(alice.ip, Some(IpAddr::V4(ip(21))));
    assert_eq!(
        alice.smtp.as_ref().map(|r| r.as_reply().code().get()),
        Some(250)
    );
    assert!(
        alice
            .transcript
            .as_deref()
            .is_some_and(|t| t.contains("RCPT TO:<alice@plain.test>")),
        "{:?}",
        alice.transcript
    );

    check(
        &results,
        "anyone@catchall.test",
        Verdict::Risky,
        Reason::AcceptAll,
    );
    assert_eq!(results["anyone@catchall.test"].catch_all, Some(true));

    // Greylisted for 300 ms, retried after 400 ms: accepted on the retry.
    check(
        &results,
        "alice@grey.test",
        Verdict::Deliverable,
        Reason::Accepted,
    );
    assert!(results["alice@grey.test"].attempts >= 2);
    // Greylisted for an hour: the retries run out.
    check(
        &results,
        "alice@stubborn.test",
        Verdict::Unknown,
        Reason::Greylisted,
    );
    assert_eq!(results["alice@stubborn.test"].attempts, 3);

    check(
        &results,
        "alice@blocked.test",
        Verdict::Unknown,
        Reason::Blocked,
    );
    // The first MX refuses connections; the second answers.
    check(
        &results,
        "alice@failover.test",
        Verdict::Deliverable,
        Reason::Accepted,
    );
    assert_eq!(
        results["alice@failover.test"].mx.as_deref(),
        Some("mx2.failover.test")
    );

    check(
        &results,
        "alice@silent.test",
        Verdict::Unknown,
        Reason::Timeout,
    );
    check(
        &results,
        "alice@garbage.test",
        Verdict::Unknown,
        Reason::ProtocolError,
    );
    check(
        &results,
        "alice@picky.test",
        Verdict::Unknown,
        Reason::SenderRejected,
    );
    check(
        &results,
        "alice@busy.test",
        Verdict::Unknown,
        Reason::TemporaryFailure,
    );
    check(
        &results,
        "josé@ascii.test",
        Verdict::Unknown,
        Reason::Smtputf8Unsupported,
    );
    check(
        &results,
        "jose@ascii.test",
        Verdict::Deliverable,
        Reason::Accepted,
    );
    check(
        &results,
        "whoever@mailinator.com",
        Verdict::Risky,
        Reason::Disposable,
    );
    assert!(results["whoever@mailinator.com"].flags.disposable);
    check(
        &results,
        "alice@lockstep.test",
        Verdict::Deliverable,
        Reason::Accepted,
    );
    check(
        &results,
        "alice@nullmx.test",
        Verdict::Undeliverable,
        Reason::NullMx,
    );
    check(
        &results,
        "alice@nxdomain.test",
        Verdict::Undeliverable,
        Reason::DomainNotFound,
    );
    check(
        &results,
        "alice@nomail.test",
        Verdict::Undeliverable,
        Reason::NoMailServer,
    );
    check(
        &results,
        "not an address",
        Verdict::Undeliverable,
        Reason::InvalidSyntax,
    );
    check(
        &results,
        "user@[127.0.0.1]",
        Verdict::Undeliverable,
        Reason::InvalidSyntax,
    );
    // Two RCPTs per session at most: six addresses still all get their answer.
    for address in &limited {
        check(&results, address, Verdict::Deliverable, Reason::Accepted);
    }

    assert_eq!(
        world.farm.stats().data_commands,
        0,
        "DATA must never be sent"
    );
}

#[test]
fn a_thousand_addresses_at_one_domain_share_sessions_and_one_lookup() {
    let world = world();
    let addresses: Vec<String> = (0..1000u32)
        .map(|i| {
            if i.is_multiple_of(2) {
                "alice@plain.test".to_owned()
            } else {
                format!("user{i}@plain.test")
            }
        })
        .collect();
    let refs: Vec<&str> = addresses.iter().map(String::as_str).collect();
    let (engine, results) = Engine::start(world.config.clone().build().unwrap()).expect("start");
    let handle = engine.handle();
    for (tag, address) in refs.iter().enumerate() {
        handle.submit(*address, tag as u64).expect("submit");
    }
    handle.finish();
    let mut answered = vec![false; refs.len()];
    for result in &results {
        let tag = result.tag as usize;
        assert!(!answered[tag], "answered twice");
        answered[tag] = true;
        let expected = if tag.is_multiple_of(2) {
            Reason::Accepted
        } else {
            Reason::MailboxNotFound
        };
        assert_eq!(result.reason, expected, "{}", result.address);
    }
    let report = engine.join().expect("ran");
    assert!(answered.iter().all(|a| *a));
    // 1,000 addresses, 8 per session: about 125 sessions, not 1,000 connections.
    assert!(
        report.stats.sessions <= 130,
        "{} sessions",
        report.stats.sessions
    );
    assert_eq!(
        report.resolver.lookups.lookups, 1,
        "one MX lookup; the address is glue"
    );
    assert_eq!(
        report.stats.controls, 1,
        "one catch-all control for the domain"
    );
    assert_eq!(world.farm.stats().data_commands, 0);
}

/// Open file descriptors of this process.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

#[test]
fn five_thousand_sessions_at_once() {
    let _ = mxprobe::driver::raise_open_files_limit(16_384);
    // 5,000 domains with one address each, on one MX that answers after 300 ms, so that the
    // sessions overlap.
    let port = common_port(&[ip(40)]);
    let mut personality = Personality::new("mx.many.test").catch_all();
    personality.latency = Duration::from_millis(300);
    let farm = SmtpFarm::start_with(
        vec![(SocketAddr::from((ip(40), port)), personality)],
        FarmOptions {
            threads: 1,
            ..FarmOptions::default()
        },
    )
    .expect("farm");
    let mut zone = Zone::new();
    let addresses: Vec<String> = (0..5000).map(|i| format!("user@d{i}.many.test")).collect();
    for i in 0..5000 {
        zone.mx(&format!("d{i}.many.test"), 10, "mx.many.test");
    }
    zone.a("mx.many.test", ip(40));
    let dns = DnsResponder::start(zone).expect("dns");
    let nameservers = [dns.addr()];
    let config = Config::builder()
        .sender("probe@probe.test")
        .nameservers(nameservers)
        .dns_timeout(Duration::from_secs(2))
        .smtp_port(port)
        .allow_private_mx(true)
        .concurrency(5000)
        .per_mx(5000)
        .domain_rate(None)
        .catch_all(false)
        .build()
        .unwrap();

    let before = open_fds();
    let (engine, results) = Engine::start(config).expect("start");
    assert!(engine.notices().is_empty(), "{:?}", engine.notices());
    let handle = engine.handle();
    for (tag, address) in addresses.iter().enumerate() {
        handle.submit(address.as_str(), tag as u64).expect("submit");
    }
    handle.finish();
    let mut answered = vec![false; addresses.len()];
    let mut peak = 0;
    for result in &results {
        assert!(!answered[result.tag as usize], "answered twice");
        answered[result.tag as usize] = true;
        assert_eq!(result.reason, Reason::Accepted, "{result:#?}");
        peak = peak.max(farm.stats().open_connections);
    }
    let report = engine.join().expect("ran");
    assert!(answered.iter().all(|a| *a), "every address answered");
    assert_eq!(report.stats.sessions, 5000);
    assert!(
        peak >= 1000,
        "sessions overlapped: peak {peak} open at once"
    );
    assert_eq!(farm.stats().data_commands, 0);
    drop(farm);
    drop(dns);
    // Descriptors close as threads wind down (and other tests in this process open and close
    // theirs): wait for the count to come back, failing only if it never does.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut after = open_fds();
    while after > before + 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        after = open_fds();
    }
    assert!(
        after <= before + 2,
        "file descriptors leaked: {before} before, {after} after"
    );
}

/// Forty domains of four kinds, ten addresses each, half of them real: every verdict checked.
#[test]
fn hundreds_of_addresses_across_dozens_of_domains() {
    let ips: Vec<Ipv4Addr> = (0..40).map(|i| ip(100 + i)).collect();
    let port = common_port(&ips);
    let mut listeners = Vec::new();
    let mut zone = Zone::new();
    let mut expected: Vec<(String, Reason)> = Vec::new();
    for (i, mx_ip) in ips.iter().enumerate() {
        let domain = format!("d{i}.dozens.test");
        let mx = format!("mx.{domain}");
        zone.mx(&domain, 10, &mx).a(&mx, *mx_ip);
        let real: Vec<String> = (0..5).map(|k| format!("real{k}@{domain}")).collect();
        let mut personality = Personality::new(&mx).mailboxes(real.clone());
        let kind = i % 4;
        match kind {
            0 => {}
            1 => personality = personality.catch_all(),
            2 => personality = personality.greylist(Duration::from_millis(200)),
            _ => personality = personality.max_rcpt_per_session(3).without_pipelining(),
        }
        listeners.push((SocketAddr::from((*mx_ip, port)), personality));
        for (k, real) in real.iter().enumerate() {
            let accepted = if kind == 1 {
                Reason::AcceptAll
            } else {
                Reason::Accepted
            };
            expected.push((real.clone(), accepted));
            let missing = if kind == 1 {
                Reason::AcceptAll
            } else {
                Reason::MailboxNotFound
            };
            expected.push((format!("missing{k}@{domain}"), missing));
        }
    }
    let farm = SmtpFarm::start_with(
        listeners,
        FarmOptions {
            threads: 2,
            ..FarmOptions::default()
        },
    )
    .expect("farm");
    let dns = DnsResponder::start(zone).expect("dns");
    let nameservers = [dns.addr()];
    let config = Config::builder()
        .sender("probe@probe.test")
        .nameservers(nameservers)
        .dns_timeout(Duration::from_millis(500))
        .smtp_port(port)
        .allow_private_mx(true)
        .domain_rate(None)
        .retry_delay(Duration::from_millis(300));
    let addresses: Vec<&str> = expected.iter().map(|(a, _)| a.as_str()).collect();
    let results = verify(config, &addresses);
    for (address, reason) in &expected {
        assert_eq!(
            results[address].reason, *reason,
            "{address}: {:#?}",
            results[address]
        );
    }
    assert_eq!(results.len(), 400);
    assert_eq!(farm.stats().data_commands, 0);
}

/// An engine that has gone idle is woken by the next submission, however long after it comes:
/// the waker is rung only when the loop sleeps, and must be rung then.
#[test]
fn an_idle_engine_wakes_for_each_late_submission() {
    let world = world();
    let (engine, results) = Engine::start(world.config.clone().build().unwrap()).expect("start");
    let handle = engine.handle();
    for (tag, pause) in [0u64, 5, 50, 200].into_iter().enumerate() {
        // The pause is the input, not a wait for something: each submission comes a little
        // later after the last verdict, when the loop may be awake, going to sleep, or asleep.
        // Nothing below depends on how long it really lasted.
        std::thread::sleep(Duration::from_millis(pause));
        handle
            .submit(format!("user{tag}@plain.test"), tag as u64)
            .expect("submit");
        // A hang guard: an engine the submission did not wake has no timer to wake it either.
        let result = results
            .recv_timeout(Duration::from_secs(30))
            .expect("a verdict for a late submission");
        assert_eq!(result.tag, tag as u64);
        assert_eq!(result.reason, Reason::MailboxNotFound);
    }
    // An idle engine's snapshot is its final state: every verdict counted.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while handle.snapshot().stats.finished < 4 {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            handle.snapshot()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let snapshot = handle.snapshot();
    assert_eq!(snapshot.census.jobs, 0);
    assert!(snapshot.resolver.lookups.udp_queries >= 1, "{snapshot:?}");
    handle.finish();
    assert!(results.recv().is_none());
    engine.join().expect("engine ran");
}

/// `submit_many` rings the engine once for a chunk: an idle engine wakes for each chunk, however
/// late, and a chunk larger than the engine's way in (4,096 places) goes in whole.
#[test]
fn chunks_submitted_at_once_wake_the_engine_and_go_in_whole() {
    let world = world();
    let (engine, results) = Engine::start(world.config.clone().build().unwrap()).expect("start");
    let handle = engine.handle();
    let mut next = 0u64;
    for (size, pause) in [(1u64, 0u64), (3, 50), (10_000, 200), (2, 5)] {
        // The pause is the input: the chunk comes when the loop may be asleep.
        std::thread::sleep(Duration::from_millis(pause));
        let chunk: Vec<(String, u64)> = (next..next + size)
            .map(|tag| (format!("user{tag}@plain.test"), tag))
            .collect();
        // A big chunk waits for room while verdicts are read here.
        let submitter = {
            let handle = handle.clone();
            std::thread::spawn(move || handle.submit_many(chunk))
        };
        let mut tags: Vec<u64> = (0..size)
            .map(|_| {
                results
                    .recv_timeout(Duration::from_secs(30))
                    .expect("a verdict for every address of the chunk")
                    .tag
            })
            .collect();
        submitter.join().expect("submitter").expect("submitted");
        tags.sort_unstable();
        assert_eq!(tags, (next..next + size).collect::<Vec<_>>());
        next += size;
    }
    handle.finish();
    assert!(results.recv().is_none());
    engine.join().expect("engine ran");
}

/// The world's engine with no room to spare: one session, one recipient, no look-ahead.
fn without_room(world: &World) -> Config {
    world
        .config
        .clone()
        .concurrency(1)
        .rcpts_per_session(1)
        .lookahead(0)
        .build()
        .expect("a valid configuration")
}

/// With no room to spare (one session, one recipient, no lookahead), every turn of the loop
/// fills the scheduler and hands out the verdict that empties it. The intake must notice the
/// room that made and go on: the producer rang the waker long before, and will not again.
#[test]
fn a_full_intake_goes_on_when_verdicts_make_room() {
    let world = world();
    let (engine, results) = Engine::start(without_room(&world)).expect("start");
    let handle = engine.handle();
    let total = 2_000u64;
    let producer = std::thread::spawn(move || {
        for tag in 0..total {
            handle
                .submit(format!("user{tag}@slowgone.test"), tag)
                .expect("submit");
        }
        handle.finish();
    });
    let mut answered = 0u64;
    while answered < total {
        let result = results
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("stalled after {answered} verdicts of {total}"));
        assert_eq!(result.reason, Reason::DomainNotFound, "{result:#?}");
        answered += 1;
    }
    producer.join().expect("producer");
    assert!(results.recv().is_none());
    engine.join().expect("engine ran");
}

/// A stop is heard at once, even while the submission channel is full and the engine has no
/// room to take from it: it does not queue behind the submissions.
#[test]
fn a_stop_is_heard_while_submissions_wait() {
    let world = world();
    let (engine, results) = Engine::start(without_room(&world)).expect("start");
    let handle = engine.handle();
    let submitted_so_far = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let producer = {
        let handle = handle.clone();
        let submitted_so_far = std::sync::Arc::clone(&submitted_so_far);
        std::thread::spawn(move || {
            // The server never answers: the one session holds the only place for 700 ms,
            // and the channel behind it fills up.
            let mut submitted = 0u64;
            while handle
                .submit(format!("user{submitted}@silent.test"), submitted)
                .is_ok()
            {
                submitted += 1;
                submitted_so_far.store(submitted, std::sync::atomic::Ordering::SeqCst);
            }
            submitted
        })
    };
    // Stop once the channel is full (its 4,096 places and the one in flight), not after a
    // guess at how long filling it takes.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while submitted_so_far.load(std::sync::atomic::Ordering::SeqCst) <= 4_096 {
        assert!(
            std::time::Instant::now() < deadline,
            "the channel never filled up"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        handle.stop();
        let verdicts = results.count();
        engine.join().expect("engine ran");
        let _ = done.send(verdicts);
    });
    // A hang guard: an engine that queued the stop behind thousands of silent sessions would
    // take most of an hour.
    let verdicts = finished
        .recv_timeout(Duration::from_secs(30))
        .expect("the engine ends after its stop grace");
    let submitted = producer.join().expect("producer");
    assert!(
        submitted > 4_096,
        "the channel filled up: {submitted} submitted"
    );
    assert!(
        verdicts <= 1,
        "only the address in flight is answered: {verdicts}"
    );
}

/// An engine ends at its finish even when the handle that finished it is the last and is
/// dropped at once: the loop's waker must outlive every handle, or the finish's wake-up is lost
/// with the closed descriptor and the engine sleeps for ever (seen: `engine.handle().finish();
/// engine.join()` hung).
#[test]
fn an_engine_finished_by_its_last_handle_ends() {
    let world = world();
    let (sender, verdicts) = std::sync::mpsc::channel();
    let engine = Engine::start_with_callback(world.config.clone().build().unwrap(), move |r| {
        let _ = sender.send(r);
    })
    .expect("start");
    let handle = engine.handle();
    for tag in 0..3u64 {
        handle
            .submit_with(
                format!("user{tag}@plain.test"),
                tag,
                mxprobe::SubmitOptions::real_time(),
            )
            .expect("submit");
        let result = verdicts
            .recv_timeout(Duration::from_secs(30))
            .expect("a verdict");
        assert_eq!(result.tag, tag);
    }
    // The engine's own handle is the last: `join` drops it right after the finish's wake. The
    // pause is the input (an engine asleep, with nothing to do), not a wait for something.
    drop(handle);
    std::thread::sleep(Duration::from_millis(200));
    let (joined, done) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        engine.handle().finish();
        let _ = joined.send(engine.join().map(|report| report.stats.finished));
    });
    let finished = done
        .recv_timeout(Duration::from_secs(30))
        .expect("the engine ends after its finish");
    assert_eq!(finished.expect("engine ran"), 3);
}

/// Real-time addresses submitted amid a bulk load of a thousand sessions travel in a lane of
/// their own (the driver's urgent sockets, served between every few events of a turn): each
/// gets its right verdict, and so does every bulk address beside them.
#[test]
fn real_time_addresses_amid_a_bulk_load_get_their_verdicts() {
    use mxprobe::sim::world::{World as SimWorld, WorldSpec};

    let spec = WorldSpec {
        domains: 200,
        ..WorldSpec::default()
    };
    let world = SimWorld::start(spec.clone()).expect("the simulated world");
    let config = Config::builder()
        .sender("probe@probe.test")
        .nameservers([world.dns_addr()])
        .smtp_port(world.smtp_port())
        .allow_private_mx(true)
        .domain_rate(None)
        .concurrency(1000)
        .per_mx(1000)
        .build()
        .expect("config");
    let (sender, verdicts) = std::sync::mpsc::channel();
    let engine = Engine::start_with_callback(config, move |result: VerifyResult| {
        let _ = sender.send(result);
    })
    .expect("start");
    let handle = engine.handle();
    const BULK: u64 = 30_000;
    const REAL_TIME: u64 = 60;
    let mut expected: HashMap<u64, (String, Reason)> = HashMap::new();
    for index in 0..BULK {
        let generated = spec.address(index);
        handle
            .submit(generated.address.clone(), index)
            .expect("submit");
        expected.insert(index, (generated.address, generated.expected));
        // A real-time address every 500 bulk ones, while the bulk sessions run.
        if index % (BULK / REAL_TIME) == 0 {
            let tag = BULK + index / (BULK / REAL_TIME);
            let generated = spec.real_time_address(tag);
            handle
                .submit_with(
                    generated.address.clone(),
                    tag,
                    mxprobe::SubmitOptions::real_time(),
                )
                .expect("submit");
            expected.insert(tag, (generated.address, generated.expected));
        }
    }
    handle.finish();
    let mut seen = 0;
    while seen < expected.len() {
        let result = verdicts
            .recv_timeout(Duration::from_secs(60))
            .expect("every verdict within a minute");
        let (address, reason) = &expected[&result.tag];
        assert_eq!((&result.address, result.reason), (address, *reason));
        seen += 1;
    }
    let report = engine.join().expect("engine ran");
    assert_eq!(report.stats.finished, expected.len() as u64);
    assert!(report.stats.peak_sessions > 100, "{:?}", report.stats);
}
