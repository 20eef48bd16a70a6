//! How the engine schedules: how much at once, how politely, how persistently.

use std::net::IpAddr;
use std::time::Duration;

use crate::dns::ResolverConfig;
use crate::session::{ConfigError, SessionConfig};

/// Everything the engine needs besides the addresses.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    /// The EHLO name, the sender, the SMTP timeouts.
    pub session: SessionConfig,
    /// The DNS client.
    pub resolver: ResolverConfig,
    /// The port mail servers listen on. Default 25; tests point it at their own servers.
    pub smtp_port: u16,
    /// Most SMTP sessions in flight at once. Default 100.
    pub concurrency: usize,
    /// Most sessions at once per MX address: many domains share one mail server, and
    /// politeness is owed to the server, not the domain. Default 4.
    pub per_mx: usize,
    /// Most new connections per second to one domain's servers; `None` for no limit.
    /// Default 10.
    pub domain_rate: Option<f64>,
    /// Addresses of one domain asked in one session (one RCPT each), not counting the
    /// catch-all control. Default 8: Postfix slows a client down after 10 errors in a session
    /// (`smtpd_soft_error_limit`) and disconnects it after 20 (`smtpd_hard_error_limit`), and
    /// rejected RCPTs count as errors, so eight addresses and one control stay under both
    /// whatever the answers.
    pub rcpts_per_session: usize,
    /// Ask a random local part at each domain to tell catch-all domains apart. Default on.
    pub catch_all: bool,
    /// How often an address answered 4xx (greylisting, temporary failures) is asked again.
    /// Default 2.
    pub retries: u32,
    /// The wait before the first retry; each later one waits twice as long. Default 120 s.
    ///
    /// RFC 5321 §4.5.4.1 has a mail client retry for days, first after at least 30 minutes.
    /// A verifier has no message to deliver and a user waiting, so it stops sooner, and says
    /// so with `unknown/greylisted`. The defaults (retries after 2 and then 4 more minutes, 6
    /// in all) outlast the common greylisting delays: postgrey's default is 5 minutes, most
    /// others 1 to 5.
    pub retry_delay: Duration,
    /// Source addresses to connect from, used round-robin per domain (so retries keep the
    /// address greylisters key on). Empty: the system chooses.
    pub source_ips: Vec<IpAddr>,
    /// Probe address literals (`user@[192.0.2.1]`). Default off: they bypass DNS, and public
    /// servers rarely accept them.
    pub allow_address_literals: bool,
    /// Connect to mail servers at special-purpose addresses (RFC 6890: loopback, private,
    /// link-local, CGNAT, documentation, multicast, unique-local and the rest; see
    /// [`special_purpose`](super::special_purpose)). Default off: the domains come from users,
    /// and anyone can point a domain's MX at `127.0.0.1`, `10.0.0.5` or `169.254.169.254`,
    /// which would aim the prober at the operator's own network. Addresses there get
    /// `undeliverable/no_mail_server` without a packet sent. Tests, the simulated world of
    /// `mxprobe bench` and intranet use turn it on.
    pub allow_private_mx: bool,
    /// Addresses the engine takes in beyond what its sessions in flight carry
    /// (`concurrency` × `rcpts_per_session`). Default 16,384: enough that a session ending
    /// finds the next batch of its domain waiting (fewer, and sessions leave half empty), no
    /// more (each held address costs a few hundred bytes). What it must cover is the turnover
    /// between two intakes, so it does not grow with the concurrency.
    pub lookahead: usize,
}

impl EngineConfig {
    /// Checks what the engine cannot run with: an EHLO name or a sender that cannot be written
    /// into a command. [`Scheduler::new`](super::Scheduler::new) and the driver's `Engine`
    /// refuse such a configuration, with this error, which says what to fix.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.session.validate()
    }

    /// The defaults around a session and a resolver configuration.
    #[must_use]
    pub fn new(session: SessionConfig, resolver: ResolverConfig) -> Self {
        Self {
            session,
            resolver,
            smtp_port: 25,
            concurrency: 100,
            per_mx: 4,
            domain_rate: Some(10.0),
            rcpts_per_session: 8,
            catch_all: true,
            retries: 2,
            retry_delay: Duration::from_secs(120),
            source_ips: Vec::new(),
            allow_address_literals: false,
            allow_private_mx: false,
            lookahead: 16_384,
        }
    }
}
