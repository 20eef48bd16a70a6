//! A random engine configuration within sane ranges, drawn from the seed.

use std::time::Duration;

use mxprobe::dns::{LookupConfig, NameserverConfig, ResolverConfig};
use mxprobe::engine::{EngineConfig, Scheduler};
use mxprobe::session::{Sender, SessionConfig, Timeouts};
use mxprobe::sim::net::{NAMESERVER, SMTP_PORT};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// Mixed into the seed for the configuration's draws, so they do not repeat the world's.
const CONFIG_STREAM: u64 = 0xc0f1_6000_0000_0001;

fn millis(rng: &mut StdRng, range: std::ops::RangeInclusive<u64>) -> Duration {
    Duration::from_millis(rng.random_range(range))
}

fn secs(rng: &mut StdRng, range: std::ops::RangeInclusive<u64>) -> Duration {
    Duration::from_secs(rng.random_range(range))
}

/// The configuration of the run of `seed`.
pub fn engine_config(seed: u64) -> EngineConfig {
    let rng = &mut StdRng::seed_from_u64(seed ^ CONFIG_STREAM);
    let mut nameservers = NameserverConfig::with_servers(vec![NAMESERVER]);
    nameservers.timeout = millis(rng, 300..=5_000);
    nameservers.attempts = rng.random_range(1..=3);
    let mut lookups = LookupConfig::new(nameservers);
    lookups.lookup_timeout = secs(rng, 2..=20);
    let mut resolver = ResolverConfig::new(lookups);
    resolver.route_timeout = secs(rng, 5..=45);

    let mut session =
        SessionConfig::new("probe.sim.test", Sender::Mailbox("probe@sim.test".into()));
    session.pipelining = rng.random_bool(0.8);
    session.timeouts = Timeouts {
        connect: secs(rng, 1..=10),
        greeting: secs(rng, 2..=30),
        hello: secs(rng, 2..=30),
        mail_from: secs(rng, 2..=30),
        rcpt_to: secs(rng, 2..=30),
        rset: secs(rng, 2..=10),
        quit: secs(rng, 1..=5),
        session: secs(rng, 20..=180),
    };
    if rng.random_bool(0.2) {
        session.max_recipients_per_transaction = rng.random_range(1..=3);
    }

    let mut config = EngineConfig::new(session, resolver);
    config.smtp_port = SMTP_PORT;
    config.concurrency = rng.random_range(1..=20);
    config.per_mx = rng.random_range(1..=4);
    config.domain_rate = if rng.random_bool(0.3) {
        None
    } else {
        Some(rng.random_range(1.0..20.0))
    };
    config.rcpts_per_session = rng.random_range(1..=8);
    config.catch_all = rng.random_bool(0.8);
    config.retries = rng.random_range(0..=2);
    config.retry_delay = secs(rng, 1..=120);
    // The world's servers sit on documentation addresses (192.0.2.0/24, 198.51.100.0/24,
    // 2001:db8::/32), which the engine refuses unless allowed. Nothing is ever sent to them:
    // the world is in memory.
    config.allow_private_mx = true;
    config
}

/// The scheduler of the run.
pub fn scheduler(config: EngineConfig, seed: u64) -> Scheduler {
    let mut bytes = [0_u8; 32];
    for (i, chunk) in bytes.chunks_mut(8).enumerate() {
        let word = seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    Scheduler::new(config, bytes).expect("the simulation's configurations are valid")
}
