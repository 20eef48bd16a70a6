//! The engine's settings as the scheduler reads them: plain data, made only by
//! [`ConfigBuilder::build`](crate::ConfigBuilder::build), which checks each one (the reasoning
//! behind every default is on the builder's methods).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use crate::dns::ResolverConfig;
use crate::session::CheckedSessionConfig;

/// Everything the engine needs besides the addresses, checked. Wrapped by [`crate::Config`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EngineConfig {
    /// The EHLO name, the sender, the SMTP timeouts.
    pub session: CheckedSessionConfig,
    /// The DNS client.
    pub resolver: ResolverConfig,
    /// The port mail servers listen on.
    pub smtp_port: u16,
    /// Most SMTP sessions in flight at once.
    pub concurrency: usize,
    /// Most sessions at once per MX address.
    pub per_mx: usize,
    /// Most new connections per second to one domain's servers; `None` for no limit.
    pub domain_rate: Option<f64>,
    /// Addresses of one domain asked in one session, not counting the catch-all control.
    pub rcpts_per_session: usize,
    /// Ask a random local part at each domain to tell catch-all domains apart.
    pub catch_all: bool,
    /// How often an address answered 4xx is asked again.
    pub retries: u32,
    /// The wait before the first retry; each later one waits twice as long.
    pub retry_delay: Duration,
    /// Source addresses to connect from, round-robin per domain. Empty: the system chooses.
    pub source_ips: Vec<IpAddr>,
    /// The address families mail servers are connected to over.
    pub ip_version: crate::config::IpVersion,
    /// SOCKS5 proxies to connect through, one per domain in rotation; empty: directly.
    pub proxies: Vec<crate::socks5::Proxy>,
    /// Probe address literals.
    pub allow_address_literals: bool,
    /// Connect to mail servers at special-purpose addresses (RFC 6890).
    pub allow_private_mx: bool,
    /// Addresses taken in beyond what the sessions in flight carry.
    pub lookahead: usize,
    /// Finished results kept for later submissions of the same mailbox.
    pub remember_results: usize,
    /// Deliver a probe's own result to a submission already answered at its deadline.
    pub late_results: bool,
    /// Catch-all answers known before the run, by domain.
    pub known_catch_all: HashMap<String, bool>,
    /// Apply the provider profiles ([`crate::providers`]).
    pub provider_profiles: bool,
    /// The wait after a provider's "slow down" reply, instead of its profile's own.
    pub throttle_backoff: Option<Duration>,
}

impl EngineConfig {
    /// Addresses the engine holds at most: what its sessions carry, plus the lookahead.
    pub(crate) fn intake(&self) -> usize {
        (self.concurrency * self.rcpts_per_session).saturating_add(self.lookahead)
    }
}
