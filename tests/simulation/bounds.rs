//! How long a run may take and how many connections it may open, computed from the world and
//! the configuration with the scheduler's own rules.
//!
//! # Connections
//!
//! Every session an address is part of ends, for that address, in exactly one of: a verdict;
//! a retry after a 4xx (at most `retries`); a failover to the next MX target (at most
//! `targets − 1` before the last failure is the verdict); a hand-back after "too many
//! recipients" or a refused RSET (at most `MAX_HAND_BACKS − 1` before the verdict); one
//! lock-step retry after a session that could not vouch for its answer. So an address is in
//! at most `retries + targets + MAX_HAND_BACKS` sessions. A domain's catch-all control counts
//! every try that did not decide against a budget of `retries + targets + 2`, so it is in at
//! most `retries + targets + 3` sessions (before that budget, nothing counted its hand-backs:
//! the nine-minute hang). Every session has at least one member, so
//!
//! ```text
//! connections ≤ Σ_address (retries + targets(domain) + 4) + Σ_domain (retries + targets + 3)
//! ```
//!
//! # Time
//!
//! In the worst case nothing overlaps: the slowest lookup, then every session one after the
//! other, each lasting at most the session deadline and preceded by the domain's rate gap and
//! the batch hold; every address waits out all its retry delays (`retry_delay × (2^retries − 1)`
//! with the doubling), and every failover may find all targets cooling down
//! (`TARGET_COOLDOWN`, 60 s).
//!
//! ```text
//! duration ≤ last submission + route_timeout
//!          + connections × (session deadline + 1/domain_rate + BATCH_HOLD)
//!          + Σ_address retry_delay × (2^retries − 1)
//!          + Σ_address targets × TARGET_COOLDOWN
//!          + 10 s
//! ```
//!
//! Generous, since it adds up what overlaps; a run that loops opens connections without end
//! and trips the first bound long before the second. A run past either is a finding.

use std::time::Duration;

use mxprobe::Config;
use mxprobe::engine::{BATCH_HOLD, MAX_HAND_BACKS, TARGET_COOLDOWN};
use mxprobe::sim::net::Scenario;

/// Added to the time bound for what the formula does not name (DNS answers in flight, QUIT
/// waits after the last verdict).
const SLACK: Duration = Duration::from_secs(10);

/// The bounds of one run.
#[derive(Debug, Clone)]
pub struct Bounds {
    /// Most SMTP connections the scheduler may ask for.
    pub connections: u64,
    /// Longest the run may take, from the origin.
    pub duration: Duration,
}

impl Bounds {
    /// The bounds for `addresses` (the scenario's, and any repeats) at `scenario`'s domains
    /// under `config`, with submissions until `last_submission`.
    pub fn of(
        scenario: &Scenario,
        addresses: &[String],
        config: &Config,
        last_submission: Duration,
    ) -> Self {
        let retries = u64::from(config.retries());
        let targets_of = |address: &str| -> u64 {
            address
                .rsplit_once('@')
                .and_then(|(_, domain)| scenario.domain(domain))
                .map_or(1, |domain| domain.targets.max(1) as u64)
        };
        let per_address: u64 = addresses
            .iter()
            .map(|address| retries + targets_of(address) + u64::from(MAX_HAND_BACKS))
            .sum();
        let per_domain: u64 = scenario
            .domains
            .iter()
            .map(|domain| retries + domain.targets.max(1) as u64 + 3)
            .sum();
        let connections = per_address + per_domain;

        let gap = config
            .domain_rate()
            .filter(|rate| *rate > 0.0)
            .map_or(Duration::ZERO, |rate| Duration::from_secs_f64(1.0 / rate));
        let per_session = config.timeouts().session + gap + BATCH_HOLD;
        let retry_waits = config
            .retry_delay()
            .saturating_mul((1_u32 << config.retries().min(16)) - 1);
        let cooldowns: u64 = addresses.iter().map(|a| targets_of(a)).sum();
        let addresses = saturating_u32(addresses.len() as u64);
        let duration = last_submission
            .saturating_add(config.dns_route_timeout())
            .saturating_add(per_session.saturating_mul(saturating_u32(connections)))
            .saturating_add(retry_waits.saturating_mul(addresses))
            .saturating_add(TARGET_COOLDOWN.saturating_mul(saturating_u32(cooldowns)))
            .saturating_add(SLACK);
        Self {
            connections,
            duration,
        }
    }
}

fn saturating_u32(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
