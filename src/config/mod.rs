//! [`Config`]: everything the engine needs besides the addresses, built once by
//! [`ConfigBuilder`] and checked as it is built.
//!
//! A configuration is the prober's side of every conversation: who it says it is (EHLO),
//! whom it says it sends for (MAIL FROM), whom it asks for MX records, how much it does at
//! once. A mistake in it must never become a verdict on somebody's mailbox, so there is one
//! way to make a [`Config`] — [`ConfigBuilder::build`] — and it refuses, with a
//! [`ConfigError`] that says what to change, anything the engine could not probe with: an EHLO
//! name or a sender that cannot be written into a command, no nameserver, a limit of zero.
//! The engine ([`Engine::start`](crate::Engine::start)) and the sans-IO
//! [`Scheduler`](crate::engine::Scheduler) take only a built `Config`.
//!
//! The settings are flat and named after what they do; the defaults are the ones a careful
//! operator would choose, with the reasoning in each method's documentation.
//!
//! ```
//! use std::time::Duration;
//! use mxprobe::Config;
//!
//! let config = Config::builder()
//!     .sender("verify@example.com")
//!     .nameserver("127.0.0.1:53".parse()?)
//!     .concurrency(500)
//!     .timeout(Duration::from_secs(20))
//!     .build()?;
//! assert_eq!(config.helo_name(), "example.com"); // taken from the sender's domain
//! assert_eq!(config.concurrency(), 500);
//!
//! let wrong = Config::builder().sender("verify@example.com").helo_name("bad\r\nname").build();
//! assert!(wrong.is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod error;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

pub use error::ConfigError;

/// Which address families mxprobe connects to mail servers over.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum IpVersion {
    /// IPv4 only.
    V4,
    /// IPv6 only.
    V6,
    /// Both: each MX host's IPv4 addresses first, then its IPv6 ones, and the next address
    /// when a connection fails, whatever its family.
    #[default]
    Any,
}

impl IpVersion {
    /// Whether `ip` is of a family this allows.
    #[must_use]
    pub const fn allows(self, ip: IpAddr) -> bool {
        matches!(
            (self, ip),
            (Self::Any, _) | (Self::V4, IpAddr::V4(_)) | (Self::V6, IpAddr::V6(_))
        )
    }
}

use crate::address::Address;
use crate::dns::{LookupConfig, NameserverConfig, ResolverConfig};
use crate::engine::EngineConfig;
use crate::session::{Sender, SessionConfig, Timeouts};
use crate::tls::{StartTls, TlsClient};

/// Where the system's nameservers are listed when none is given.
pub const RESOLV_CONF: &str = "/etc/resolv.conf";

/// The most RCPTs RFC 5321 §4.5.3.1.8 has every server accept in one transaction; more in one
/// session would only meet refusals.
const MAX_RCPTS_PER_SESSION: usize = 100;

/// A checked configuration of the engine. Made only by [`ConfigBuilder::build`]; see the
/// [module documentation](self).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub(crate) engine: EngineConfig,
}

impl Config {
    /// A builder with the defaults; [`sender`](ConfigBuilder::sender) is the one setting
    /// without a default.
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder::default()
    }

    /// The name said in EHLO.
    #[must_use]
    pub fn helo_name(&self) -> &str {
        &self.engine.session.helo_name
    }

    /// The sender in MAIL FROM.
    #[must_use]
    pub fn sender(&self) -> &Sender {
        &self.engine.session.sender
    }

    /// The nameservers asked, in order.
    #[must_use]
    pub fn nameservers(&self) -> &[SocketAddr] {
        &self.engine.resolver.lookups.nameservers.servers
    }

    /// The port mail servers are reached on.
    #[must_use]
    pub fn smtp_port(&self) -> u16 {
        self.engine.smtp_port
    }

    /// Most SMTP sessions at once.
    #[must_use]
    pub fn concurrency(&self) -> usize {
        self.engine.concurrency
    }

    /// Most RCPTs (addresses of one domain) asked in one session.
    #[must_use]
    pub fn rcpts_per_session(&self) -> usize {
        self.engine.rcpts_per_session
    }

    /// The waits of a session.
    #[must_use]
    pub fn timeouts(&self) -> Timeouts {
        self.engine.session.timeouts
    }

    /// Whether verdicts carry the SMTP conversation.
    #[must_use]
    pub fn transcript(&self) -> bool {
        self.engine.session.transcript
    }

    /// Most sessions at once per MX address.
    #[must_use]
    pub fn per_mx(&self) -> usize {
        self.engine.per_mx
    }

    /// Most new connections a second to one domain's servers; `None` for no limit.
    #[must_use]
    pub fn domain_rate(&self) -> Option<f64> {
        self.engine.domain_rate
    }

    /// Whether each domain gets a catch-all control probe.
    #[must_use]
    pub fn catch_all(&self) -> bool {
        self.engine.catch_all
    }

    /// How often an address answered 4xx is asked again.
    #[must_use]
    pub fn retries(&self) -> u32 {
        self.engine.retries
    }

    /// The wait before the first retry; each later one waits twice as long.
    #[must_use]
    pub fn retry_delay(&self) -> Duration {
        self.engine.retry_delay
    }

    /// Whether the provider profiles apply.
    #[must_use]
    pub fn provider_profiles(&self) -> bool {
        self.engine.provider_profiles
    }

    /// The wait after a provider's "slow down" reply, if it replaces the profiles' own.
    #[must_use]
    pub fn throttle_backoff(&self) -> Option<Duration> {
        self.engine.throttle_backoff
    }

    /// The most finding one domain's mail route may take.
    #[must_use]
    pub fn dns_route_timeout(&self) -> Duration {
        self.engine.resolver.route_timeout
    }

    /// The source addresses probes connect from; empty when the system chooses.
    #[must_use]
    pub fn source_ips(&self) -> &[IpAddr] {
        &self.engine.source_ips
    }

    /// The address families mail servers are connected to over.
    #[must_use]
    pub fn ip_version(&self) -> IpVersion {
        self.engine.ip_version
    }

    /// When sessions say STARTTLS.
    #[must_use]
    pub fn starttls(&self) -> StartTls {
        self.engine.session.starttls
    }

    /// True if STARTTLS verifies the server's certificate.
    #[must_use]
    pub fn tls_verifies(&self) -> bool {
        self.engine.session.tls.verifies()
    }

    /// The SOCKS5 proxies probes go through; empty when they go directly.
    #[must_use]
    pub fn proxies(&self) -> &[crate::socks5::Proxy] {
        &self.engine.proxies
    }

    /// Whether mail servers at special-purpose addresses may be connected to.
    #[must_use]
    pub fn allow_private_mx(&self) -> bool {
        self.engine.allow_private_mx
    }

    /// How many addresses the engine takes in before a submitter waits: what its sessions in
    /// flight carry, plus the lookahead.
    #[must_use]
    pub fn intake(&self) -> usize {
        self.engine.intake()
    }

    /// The same configuration with fewer sessions at once: what a driver does when the
    /// system will not give it the sockets for more.
    #[must_use]
    pub fn with_concurrency_lowered_to(mut self, concurrency: usize) -> Self {
        self.engine.concurrency = concurrency.clamp(1, self.engine.concurrency);
        self
    }
}

/// Where the nameservers come from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Nameservers {
    /// A resolv.conf file, read when the configuration is built.
    ResolvConf(PathBuf),
    /// These, in order.
    Given(Vec<SocketAddr>),
}

/// Builds a [`Config`]. Every setting has a default except the sender; `build` checks them all
/// at once.
#[derive(Debug, Clone, PartialEq)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct ConfigBuilder {
    sender: Option<String>,
    helo_name: Option<String>,
    nameservers: Nameservers,
    dns_timeout: Option<Duration>,
    dns_attempts: Option<u8>,
    dns_lookup_timeout: Option<Duration>,
    dns_route_timeout: Option<Duration>,
    smtp_port: u16,
    concurrency: usize,
    per_mx: usize,
    domain_rate: Option<f64>,
    rcpts_per_session: usize,
    catch_all: bool,
    retries: u32,
    retry_delay: Duration,
    timeouts: Timeouts,
    pipelining: bool,
    max_recipients_per_transaction: usize,
    transcript: bool,
    starttls: StartTls,
    tls: TlsClient,
    source_ips: Vec<IpAddr>,
    ip_version: IpVersion,
    proxies: Vec<crate::socks5::Proxy>,
    allow_address_literals: bool,
    allow_private_mx: bool,
    lookahead: usize,
    remember_results: usize,
    late_results: bool,
    known_catch_all: HashMap<String, bool>,
    provider_profiles: bool,
    throttle_backoff: Option<Duration>,
}

impl Default for ConfigBuilder {
    fn default() -> Self {
        // The reasoning behind each default is on its method below.
        let session = SessionConfig::new("", Sender::Null);
        Self {
            sender: None,
            helo_name: None,
            nameservers: Nameservers::ResolvConf(PathBuf::from(RESOLV_CONF)),
            dns_timeout: None,
            dns_attempts: None,
            dns_lookup_timeout: None,
            dns_route_timeout: None,
            smtp_port: 25,
            concurrency: 100,
            per_mx: 4,
            domain_rate: Some(10.0),
            rcpts_per_session: 8,
            catch_all: true,
            retries: 2,
            retry_delay: Duration::from_secs(120),
            timeouts: session.timeouts,
            pipelining: session.pipelining,
            max_recipients_per_transaction: session.max_recipients_per_transaction,
            transcript: session.transcript,
            starttls: session.starttls,
            tls: session.tls,
            source_ips: Vec::new(),
            ip_version: IpVersion::Any,
            proxies: Vec::new(),
            allow_address_literals: false,
            allow_private_mx: false,
            lookahead: 16_384,
            remember_results: 0,
            late_results: false,
            known_catch_all: HashMap::new(),
            provider_profiles: true,
            throttle_backoff: None,
        }
    }
}

impl ConfigBuilder {
    /// The sender in MAIL FROM: a mailbox (ASCII, as not every server takes UTF-8 senders), or
    /// `<>` for the null sender. Use a real mailbox on a domain you control, with SPF and a
    /// reverse DNS that matches the EHLO name: servers check senders, and greylisters key on
    /// them. Required.
    pub fn sender(mut self, sender: impl Into<String>) -> Self {
        self.sender = Some(sender.into());
        self
    }

    /// The null sender, `MAIL FROM:<>`, as bounces use. Some servers refuse it from probes;
    /// an EHLO name must then be given.
    pub fn null_sender(self) -> Self {
        self.sender("<>")
    }

    /// The name said in EHLO: the DNS name of the host the probes come from, whose A record
    /// and reverse DNS match its address. Default: the domain of the sender.
    pub fn helo_name(mut self, name: impl Into<String>) -> Self {
        self.helo_name = Some(name.into());
        self
    }

    /// Asks this nameserver (added after any given before). Default: the nameservers of
    /// `/etc/resolv.conf`, with its `timeout`, `attempts` and `rotate` options.
    pub fn nameserver(mut self, server: SocketAddr) -> Self {
        match &mut self.nameservers {
            Nameservers::Given(servers) => servers.push(server),
            Nameservers::ResolvConf(_) => self.nameservers = Nameservers::Given(vec![server]),
        }
        self
    }

    /// Asks these nameservers, in order, instead of the system's.
    pub fn nameservers(mut self, servers: impl IntoIterator<Item = SocketAddr>) -> Self {
        self.nameservers = Nameservers::Given(servers.into_iter().collect());
        self
    }

    /// Takes the nameservers and their options from this resolv.conf file, read by `build`.
    pub fn resolv_conf(mut self, path: impl Into<PathBuf>) -> Self {
        self.nameservers = Nameservers::ResolvConf(path.into());
        self
    }

    /// How long to wait for one DNS answer before asking the next server (doubled on each
    /// round, as the C library does). Default: resolv.conf's `timeout`, or 5 s.
    pub fn dns_timeout(mut self, timeout: Duration) -> Self {
        self.dns_timeout = Some(timeout);
        self
    }

    /// Rounds over all nameservers before a lookup fails. Default: resolv.conf's `attempts`,
    /// or 2.
    pub fn dns_attempts(mut self, attempts: u8) -> Self {
        self.dns_attempts = Some(attempts);
        self
    }

    /// The most one DNS lookup may take, all tries together. Default 30 s.
    pub fn dns_lookup_timeout(mut self, timeout: Duration) -> Self {
        self.dns_lookup_timeout = Some(timeout);
        self
    }

    /// The most finding a domain's mail route may take (MX, then the exchanges' addresses).
    /// Default 60 s.
    pub fn dns_route_timeout(mut self, timeout: Duration) -> Self {
        self.dns_route_timeout = Some(timeout);
        self
    }

    /// The port mail servers listen on. Default 25; change it only to reach test servers.
    pub fn smtp_port(mut self, port: u16) -> Self {
        self.smtp_port = port;
        self
    }

    /// Most SMTP sessions in flight at once. Default 100.
    pub fn concurrency(mut self, sessions: usize) -> Self {
        self.concurrency = sessions;
        self
    }

    /// Most sessions at once per MX address: many domains share one mail server, and
    /// politeness is owed to the server, not the domain. Default 4.
    pub fn per_mx(mut self, sessions: usize) -> Self {
        self.per_mx = sessions;
        self
    }

    /// Most new connections per second to one domain's servers; `None` for no limit.
    /// Default 10.
    pub fn domain_rate(mut self, per_second: Option<f64>) -> Self {
        self.domain_rate = per_second;
        self
    }

    /// Addresses of one domain asked in one session (one RCPT each), not counting the
    /// catch-all control. Default 8: Postfix slows a client down after 10 errors in a session
    /// (`smtpd_soft_error_limit`) and disconnects it after 20 (`smtpd_hard_error_limit`), and
    /// refused RCPTs count as errors, so eight addresses and one control stay under both
    /// whatever the answers. At most 100.
    pub fn rcpts_per_session(mut self, rcpts: usize) -> Self {
        self.rcpts_per_session = rcpts;
        self
    }

    /// Ask a random local part at each domain to tell catch-all domains apart. Default on.
    pub fn catch_all(mut self, on: bool) -> Self {
        self.catch_all = on;
        self
    }

    /// How often an address answered 4xx (greylisting, temporary failures) is asked again.
    /// Default 2.
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// The wait before the first retry; each later one waits twice as long. Default 120 s.
    ///
    /// RFC 5321 §4.5.4.1 has a mail client retry for days, first after at least 30 minutes.
    /// A verifier has no message to deliver and a user waiting, so it stops sooner, and says
    /// so with `unknown/greylisted`. The defaults (retries after 2 and then 4 more minutes, 6
    /// in all) outlast the common greylisting delays: postgrey's default is 5 minutes, most
    /// others 1 to 5.
    pub fn retry_delay(mut self, delay: Duration) -> Self {
        self.retry_delay = delay;
        self
    }

    /// Apply the provider profiles ([`crate::providers`]): read the replies of the big mail
    /// systems and gateways as each documents them, send the catch-all control the way each
    /// needs, and keep to the politeness each asks for (the tighter of its limits and this
    /// configuration's). Default on; off, every reply is read by the generic table and only
    /// this configuration's limits apply.
    pub fn provider_profiles(mut self, on: bool) -> Self {
        self.provider_profiles = on;
        self
    }

    /// How long the engine leaves a provider alone after a reply its profile reads as "slow
    /// down" (throttling), from 1 ns to a day. Default `None`: each profile's own backoff
    /// (minutes). The addresses wait without spending their retries.
    pub fn throttle_backoff(mut self, wait: Option<Duration>) -> Self {
        self.throttle_backoff = wait;
        self
    }

    /// Every SMTP wait (connect, greeting, each reply) set to `each`, QUIT's to at most 5 s,
    /// and the whole session's to six times `each`. Default: see [`Timeouts`]. A server slower
    /// than this gets `unknown/timeout`, never a verdict.
    pub fn timeout(mut self, each: Duration) -> Self {
        self.timeouts = Timeouts {
            quit: each.min(Duration::from_secs(5)),
            ..Timeouts::all(each)
        };
        self
    }

    /// Each SMTP wait set on its own.
    pub fn timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// Send MAIL FROM and the RCPTs in one write when the server offers PIPELINING (RFC
    /// 2920). Default on.
    pub fn pipelining(mut self, on: bool) -> Self {
        self.pipelining = on;
        self
    }

    /// Most RCPTs in one transaction; beyond that a session says RSET and starts another.
    /// Default 100, the number RFC 5321 §4.5.3.1.8 requires every server to accept.
    pub fn max_recipients_per_transaction(mut self, rcpts: usize) -> Self {
        self.max_recipients_per_transaction = rcpts;
        self
    }

    /// Keep each session's conversation and hand it out with the verdicts. Default off: it
    /// costs memory per session.
    pub fn transcript(mut self, on: bool) -> Self {
        self.transcript = on;
        self
    }

    /// When sessions say STARTTLS (RFC 3207). Default [`StartTls::WhenRequired`]: only when a
    /// server refuses MAIL FROM or RCPT TO until it is said (`530`), and then the session
    /// starts over on the same connection; for that the first session at each server that
    /// offers STARTTLS holds QUIT back from its last pipelined group (one round trip), until
    /// the server has answered RCPT in plain text. [`StartTls::Always`]: at every
    /// server that offers it. [`StartTls::Never`]: a server that requires TLS refuses the
    /// transaction, and that refusal is the answer (never a verdict on a mailbox).
    pub fn starttls(mut self, when: StartTls) -> Self {
        self.starttls = when;
        self
    }

    /// The TLS client STARTTLS starts. Default [`TlsClient::unverified`]: a probe sends no
    /// secrets and most MX certificates would not verify. [`TlsClient::verified`] refuses a
    /// certificate that does not chain to its roots and name the MX host; the addresses then
    /// get `unknown/connection_failed` (`tls_failed` in the detail), never a verdict.
    pub fn tls(mut self, client: TlsClient) -> Self {
        self.tls = client;
        self
    }

    /// Source addresses to connect from, used round-robin per domain (so retries keep the
    /// address greylisters key on); a connection takes one of its server's family. With a pool
    /// of one family only, servers of the other are not connected to (their domains'
    /// addresses get `unknown/connection_failed`, which says why). Default: none, the system
    /// chooses.
    pub fn source_ips(mut self, ips: impl IntoIterator<Item = IpAddr>) -> Self {
        self.source_ips = ips.into_iter().collect();
        self
    }

    /// SOCKS5 proxies to probe through ([`crate::socks5`]), where port 25 is blocked: each
    /// domain's sessions go through one of them in rotation (so retries keep their route),
    /// a proxy that keeps failing is benched for a minute and its domains move to the next,
    /// and a proxy's failure is never a verdict. PIPELINING works through them. Default: none,
    /// connections go directly.
    pub fn proxies(mut self, proxies: impl IntoIterator<Item = crate::socks5::Proxy>) -> Self {
        self.proxies = proxies.into_iter().collect();
        self
    }

    /// The address families to connect to mail servers over. Default [`IpVersion::Any`]. A
    /// domain whose servers are all of the other family gets `unknown/connection_failed`,
    /// never a verdict: the servers exist, this prober does not reach them.
    pub fn ip_version(mut self, version: IpVersion) -> Self {
        self.ip_version = version;
        self
    }

    /// Probe address literals (`user@[192.0.2.1]`). Default off: they bypass DNS, and public
    /// servers rarely accept them.
    pub fn allow_address_literals(mut self, on: bool) -> Self {
        self.allow_address_literals = on;
        self
    }

    /// Connect to mail servers at special-purpose addresses (RFC 6890: loopback, private,
    /// link-local, CGNAT, documentation, multicast, unique-local and the rest; see
    /// [`special_purpose`](crate::engine::special_purpose)). Default off: the domains come
    /// from users, and anyone can point a domain's MX at `127.0.0.1`, `10.0.0.5` or
    /// `169.254.169.254`, which would aim the prober at the operator's own network. Addresses
    /// there get `undeliverable/no_mail_server` without a packet sent. Tests, simulators and
    /// intranets turn it on.
    pub fn allow_private_mx(mut self, on: bool) -> Self {
        self.allow_private_mx = on;
        self
    }

    /// Addresses the engine takes in beyond what its sessions in flight carry
    /// (`concurrency` × `rcpts_per_session`). Default 16,384: enough that a session ending
    /// finds the next batch of its domain waiting (fewer, and sessions leave half empty), no
    /// more (each held address costs a few hundred bytes). Zero is allowed: the engine then
    /// takes in only what its sessions can carry.
    pub fn lookahead(mut self, addresses: usize) -> Self {
        self.lookahead = addresses;
        self
    }

    /// Finished results kept to answer later submissions of the same mailbox without a probe:
    /// the most recent `results`, the oldest forgotten first. Default 0 (none): a front end
    /// with its own cache wants every submission it makes probed. A second submission of a
    /// mailbox still in flight always joins that probe, whatever this says. `mxprobe verify`
    /// keeps 20,000, a few megabytes, for the repeats of a list.
    pub fn remember_results(mut self, results: usize) -> Self {
        self.remember_results = results;
        self
    }

    /// Whether a submission answered `unknown/timeout` at its deadline
    /// ([`SubmitOptions::deadline`](crate::SubmitOptions::deadline)) gets a second result when
    /// the probe it started ends: the probe's own verdict, under the same tag. Default false:
    /// one result per submission. A front end with a cache turns it on, so that the work
    /// done past a deadline is kept (`mxprobe serve` does); it then recognises the second
    /// result by its tag, which it has already answered.
    pub fn late_results(mut self, deliver: bool) -> Self {
        self.late_results = deliver;
        self
    }

    /// Catch-all answers already known, domain by domain (`true`: the domain accepts any local
    /// part), from an earlier run: a domain given here is not asked the control again, and its
    /// accepted addresses get their verdict at once. A front end with a store passes what it
    /// learned recently (`mxprobe serve` and `verify --store` pass the answers of the last day,
    /// from the results' `catch_all`). Domains are lower-case, as results give them;
    /// internationalised ones in A-labels. Default: none.
    pub fn known_catch_all(mut self, answers: impl IntoIterator<Item = (String, bool)>) -> Self {
        self.known_catch_all.extend(answers);
        self
    }

    /// Checks every setting and makes the [`Config`], or says what to change.
    pub fn build(self) -> Result<Config, ConfigError> {
        let (sender, sender_domain) = sender(self.sender.as_deref())?;
        let helo_name = match (self.helo_name, sender_domain) {
            (Some(name), _) => name.trim().to_owned(),
            (None, Some(domain)) => domain,
            (None, None) => return Err(ConfigError::NoHeloName),
        };
        let mut session = SessionConfig::new(helo_name, sender);
        session.timeouts = checked_timeouts(self.timeouts)?;
        session.pipelining = self.pipelining;
        session.transcript = self.transcript;
        session.starttls = self.starttls;
        session.tls = self.tls;
        session.max_recipients_per_transaction = at_least_one(
            "max_recipients_per_transaction",
            self.max_recipients_per_transaction,
        )?;
        let session = session.check()?;

        let mut nameservers = match self.nameservers {
            Nameservers::Given(servers) => NameserverConfig::with_servers(servers),
            Nameservers::ResolvConf(path) => {
                let text =
                    std::fs::read_to_string(&path).map_err(|e| ConfigError::Nameservers {
                        why: format!("cannot read {} ({e}); give the nameservers", path.display()),
                    })?;
                NameserverConfig::parse_resolv_conf(&text).map_err(|e| {
                    ConfigError::Nameservers {
                        why: format!("{}: {e}", path.display()),
                    }
                })?
            }
        };
        if nameservers.servers.is_empty() {
            return Err(ConfigError::Nameservers {
                why: "the list is empty".into(),
            });
        }
        if let Some(timeout) = self.dns_timeout {
            nameservers.timeout = nonzero("dns_timeout", timeout)?;
        }
        if let Some(attempts) = self.dns_attempts {
            if attempts == 0 {
                return Err(ConfigError::setting("dns_attempts", 0, "at least 1"));
            }
            nameservers.attempts = attempts;
        }
        let mut lookups = LookupConfig::new(nameservers);
        if let Some(timeout) = self.dns_lookup_timeout {
            lookups.lookup_timeout = nonzero("dns_lookup_timeout", timeout)?;
        }
        let mut resolver = ResolverConfig::new(lookups);
        if let Some(timeout) = self.dns_route_timeout {
            resolver.route_timeout = nonzero("dns_route_timeout", timeout)?;
        }

        if self.smtp_port == 0 {
            return Err(ConfigError::setting(
                "smtp_port",
                0,
                "a port from 1 to 65535",
            ));
        }
        if let Some(rate) = self.domain_rate
            && !(rate.is_finite() && rate > 0.0)
        {
            return Err(ConfigError::setting(
                "domain_rate",
                rate,
                "a positive number of connections a second, or None for no limit",
            ));
        }
        if !(1..=MAX_RCPTS_PER_SESSION).contains(&self.rcpts_per_session) {
            return Err(ConfigError::setting(
                "rcpts_per_session",
                self.rcpts_per_session,
                "from 1 to 100 (RFC 5321 §4.5.3.1.8)",
            ));
        }
        let engine = EngineConfig {
            session,
            resolver,
            smtp_port: self.smtp_port,
            concurrency: at_least_one("concurrency", self.concurrency)?,
            per_mx: at_least_one("per_mx", self.per_mx)?,
            domain_rate: self.domain_rate,
            rcpts_per_session: self.rcpts_per_session,
            catch_all: self.catch_all,
            retries: self.retries,
            retry_delay: nonzero("retry_delay", self.retry_delay)?,
            source_ips: self.source_ips,
            ip_version: self.ip_version,
            proxies: self.proxies,
            allow_address_literals: self.allow_address_literals,
            allow_private_mx: self.allow_private_mx,
            lookahead: self.lookahead,
            remember_results: self.remember_results,
            late_results: self.late_results,
            known_catch_all: self.known_catch_all,
            provider_profiles: self.provider_profiles,
            throttle_backoff: match self.throttle_backoff {
                Some(wait) if wait > MAX_THROTTLE_BACKOFF => {
                    return Err(ConfigError::setting(
                        "throttle_backoff",
                        format!("{} s", wait.as_secs()),
                        "at most a day (86400 s)",
                    ));
                }
                Some(wait) => Some(nonzero("throttle_backoff", wait)?),
                None => None,
            },
        };
        Ok(Config { engine })
    }
}

/// The sender, and the domain an EHLO name defaults to.
fn sender(given: Option<&str>) -> Result<(Sender, Option<String>), ConfigError> {
    let given = given.ok_or(ConfigError::NoSender)?.trim();
    if given == "<>" {
        return Ok((Sender::Null, None));
    }
    let refuse = |why: String| ConfigError::Sender {
        sender: given.to_owned(),
        why,
    };
    let address = Address::parse(given).map_err(|e| refuse(e.to_string()))?;
    if address.needs_smtputf8() {
        return Err(refuse(
            "it is not ASCII, and not every server accepts UTF-8 senders".into(),
        ));
    }
    Ok((
        Sender::Mailbox(address.mailbox().to_owned()),
        Some(address.domain().to_owned()),
    ))
}

fn at_least_one(name: &'static str, value: usize) -> Result<usize, ConfigError> {
    if value == 0 {
        return Err(ConfigError::setting(name, 0, "at least 1"));
    }
    Ok(value)
}

/// The longest wait after a provider's "slow down" that `throttle_backoff` takes.
const MAX_THROTTLE_BACKOFF: Duration = Duration::from_secs(86_400);

fn nonzero(name: &'static str, value: Duration) -> Result<Duration, ConfigError> {
    if value.is_zero() {
        return Err(ConfigError::setting(name, "0 s", "longer than zero"));
    }
    Ok(value)
}

fn checked_timeouts(timeouts: Timeouts) -> Result<Timeouts, ConfigError> {
    let Timeouts {
        connect,
        greeting,
        hello,
        mail_from,
        rcpt_to,
        rset,
        quit,
        session,
    } = timeouts;
    for (name, value) in [
        ("timeouts.connect", connect),
        ("timeouts.greeting", greeting),
        ("timeouts.hello", hello),
        ("timeouts.mail_from", mail_from),
        ("timeouts.rcpt_to", rcpt_to),
        ("timeouts.rset", rset),
        ("timeouts.quit", quit),
        ("timeouts.session", session),
    ] {
        nonzero(name, value)?;
    }
    Ok(timeouts)
}

#[cfg(test)]
mod tests;
