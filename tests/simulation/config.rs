//! A random engine configuration within sane ranges, drawn from the seed.

use std::time::Duration;

use mxprobe::Config;
use mxprobe::engine::Scheduler;
use mxprobe::session::Timeouts;
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

/// The configuration of the run of `seed`, remembering `remember` results.
pub fn engine_config(seed: u64, remember: usize) -> Config {
    let rng = &mut StdRng::seed_from_u64(seed ^ CONFIG_STREAM);
    let mut config = Config::builder()
        .sender("probe@sim.test")
        .nameserver(NAMESERVER)
        .dns_timeout(millis(rng, 300..=5_000))
        .dns_attempts(rng.random_range(1..=3))
        .dns_lookup_timeout(secs(rng, 2..=20))
        .dns_route_timeout(secs(rng, 5..=45))
        .pipelining(rng.random_bool(0.8))
        .timeouts(Timeouts {
            connect: secs(rng, 1..=10),
            greeting: secs(rng, 2..=30),
            hello: secs(rng, 2..=30),
            mail_from: secs(rng, 2..=30),
            rcpt_to: secs(rng, 2..=30),
            rset: secs(rng, 2..=10),
            quit: secs(rng, 1..=5),
            session: secs(rng, 20..=180),
        });
    if rng.random_bool(0.2) {
        config = config.max_recipients_per_transaction(rng.random_range(1..=3));
    }
    config
        .smtp_port(SMTP_PORT)
        .concurrency(rng.random_range(1..=20))
        .per_mx(rng.random_range(1..=4))
        .domain_rate(if rng.random_bool(0.3) {
            None
        } else {
            Some(rng.random_range(1.0..20.0))
        })
        .rcpts_per_session(rng.random_range(1..=8))
        .catch_all(rng.random_bool(0.8))
        .retries(rng.random_range(0..=2))
        .retry_delay(secs(rng, 1..=120))
        // The world's servers sit on documentation addresses (192.0.2.0/24, 198.51.100.0/24,
        // 2001:db8::/32), which the engine refuses unless allowed. Nothing is ever sent to
        // them: the world is in memory.
        .allow_private_mx(true)
        .remember_results(remember)
        .build()
        .expect("the simulation's configurations are valid")
}

/// The scheduler of the run. Every other seed, it forgets idle domains from a table of 1 to 4
/// on (a long-lived engine's does from 65,536): a domain met again after is looked up again,
/// and nothing may refer to a forgotten one. The draw takes nothing from the seed's random
/// stream, so a regression seed's world is what it was.
pub fn scheduler(config: Config, seed: u64) -> Scheduler {
    let mut bytes = [0_u8; 32];
    for (i, chunk) in bytes.chunks_mut(8).enumerate() {
        let word = seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    let mut scheduler = Scheduler::new(config, bytes);
    if seed.is_multiple_of(2) {
        scheduler.forget_domains_from(1 + usize::try_from(seed / 2 % 4).unwrap_or(0));
    }
    scheduler
}
