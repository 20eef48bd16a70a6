//! The engine's flags, shared by the commands that run the engine (`verify`, `serve`): who
//! mxprobe says it is, where it asks DNS, how hard it pushes servers, and how long it waits.
//!
//! Each flag can also be set in the environment (`MXPROBE_` and its name: `MXPROBE_FROM`,
//! `MXPROBE_DNS_SERVERS` with commas between several), for services run by a supervisor; a
//! flag given on the command line wins.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use clap::{Args, ValueEnum};

use mxprobe::dns::parse_server;
use mxprobe::socks5::Proxy;
use mxprobe::tls::{StartTls, TlsClient};
use mxprobe::{Config, ConfigBuilder, ConfigError, IpVersion};

/// `--ip-version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IpVersionArg {
    /// IPv4 only.
    #[value(name = "4")]
    V4,
    /// IPv6 only.
    #[value(name = "6")]
    V6,
    /// Both: each MX host's IPv4 addresses first, then its IPv6 ones, falling back across
    /// families when a connection fails.
    Any,
}

/// `--starttls`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StartTlsArg {
    /// Never say STARTTLS.
    Never,
    /// Only when the server refuses a command until it is said (530).
    WhenRequired,
    /// At every server that offers it.
    Always,
}

impl From<StartTlsArg> for StartTls {
    fn from(arg: StartTlsArg) -> Self {
        match arg {
            StartTlsArg::Never => Self::Never,
            StartTlsArg::WhenRequired => Self::WhenRequired,
            StartTlsArg::Always => Self::Always,
        }
    }
}

impl From<IpVersionArg> for IpVersion {
    fn from(arg: IpVersionArg) -> Self {
        match arg {
            IpVersionArg::V4 => Self::V4,
            IpVersionArg::V6 => Self::V6,
            IpVersionArg::Any => Self::Any,
        }
    }
}

/// The engine's settings, as flags.
#[derive(Debug, Clone, Args)]
pub struct EngineArgs {
    /// The sender in MAIL FROM (`<>` for the null sender). Use a real mailbox on a domain you
    /// control, with SPF and a reverse DNS that matches --helo: servers check senders, and
    /// greylisters key on them.
    #[arg(long, value_name = "ADDRESS", env = "MXPROBE_FROM")]
    pub from: String,

    /// The name in EHLO: the DNS name of the machine mxprobe runs on, whose A record and
    /// reverse DNS match its address [default: the domain of --from].
    #[arg(long, value_name = "NAME", env = "MXPROBE_HELO")]
    pub helo: Option<String>,

    /// A nameserver to ask instead of those in /etc/resolv.conf, as IP or IP:PORT (repeatable).
    #[arg(
        long = "dns-server",
        value_name = "IP[:PORT]",
        value_parser = parse_dns_server,
        env = "MXPROBE_DNS_SERVERS",
        value_delimiter = ','
    )]
    pub dns_servers: Vec<SocketAddr>,

    /// Seconds to wait for one DNS answer before asking the next server [default:
    /// resolv.conf's timeout, or 5].
    #[arg(long = "dns-timeout", value_name = "SECS", env = "MXPROBE_DNS_TIMEOUT")]
    pub dns_timeout: Option<u64>,

    /// The port mail servers listen on. Change it only to point mxprobe at test servers.
    #[arg(
        long = "smtp-port",
        value_name = "PORT",
        default_value_t = 25,
        env = "MXPROBE_SMTP_PORT"
    )]
    pub smtp_port: u16,

    /// A source address to connect from (repeatable: used round-robin per domain, so retries
    /// keep the address greylisters key on; a connection takes one of its server's family).
    #[arg(
        long = "source-ip",
        value_name = "IP",
        env = "MXPROBE_SOURCE_IPS",
        value_delimiter = ','
    )]
    pub source_ips: Vec<IpAddr>,

    /// A SOCKS5 proxy to probe through, where port 25 is blocked (repeatable: a pool, one proxy
    /// per domain in rotation; one that keeps failing is benched for a minute and its domains
    /// move on). Give the proxy's IP address; %-escape special characters in the credentials.
    /// socks5h:// asks the proxy to connect to each mail server by name, resolving it in its
    /// own network (the record's ip is then null). A proxy's failure is never a verdict:
    /// unknown/connection_failed says `proxy_failed`.
    #[arg(
        long = "proxy",
        value_name = "socks5[h]://[USER:PASS@]IP:PORT",
        value_parser = Proxy::parse,
        env = "MXPROBE_PROXIES",
        value_delimiter = ','
    )]
    pub proxies: Vec<Proxy>,

    /// The address families to reach mail servers over. A domain whose servers are all of the
    /// other family gets unknown/connection_failed, never a verdict.
    #[arg(
        long = "ip-version",
        value_enum,
        default_value = "any",
        env = "MXPROBE_IP_VERSION"
    )]
    pub ip_version: IpVersionArg,

    /// When to say STARTTLS: when-required (only when a server refuses MAIL FROM or RCPT TO
    /// until it is said, 530; the session then starts over on the same connection), always
    /// (at every server that offers it), or never (a server that requires TLS refuses the
    /// transaction, and that is the answer). A failed TLS handshake is never a verdict:
    /// unknown/connection_failed says `tls_failed`.
    #[arg(
        long = "starttls",
        value_enum,
        default_value = "when-required",
        env = "MXPROBE_STARTTLS"
    )]
    pub starttls: StartTlsArg,

    /// Verify the server's certificate after STARTTLS: it must chain to a trusted root (the
    /// Mozilla roots compiled in, or --tls-ca) and name the MX host. By default any certificate
    /// is taken: a probe sends no secrets, and most MX certificates would not verify.
    #[arg(long = "tls-verify", env = "MXPROBE_TLS_VERIFY")]
    pub tls_verify: bool,

    /// The roots --tls-verify trusts instead of the Mozilla ones: a PEM file of certificates.
    #[arg(
        long = "tls-ca",
        value_name = "FILE",
        env = "MXPROBE_TLS_CA",
        requires = "tls_verify"
    )]
    pub tls_ca: Option<std::path::PathBuf>,

    /// SMTP sessions at once (lowered, with a notice, if the open-file limit does not allow).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 100,
        env = "MXPROBE_CONCURRENCY"
    )]
    pub concurrency: usize,

    /// Sessions at once per MX address: many domains share one server, and politeness is
    /// owed to the server.
    #[arg(
        long = "per-mx",
        value_name = "N",
        default_value_t = 4,
        env = "MXPROBE_PER_MX"
    )]
    pub per_mx: usize,

    /// New connections per second per domain (0: no limit).
    #[arg(
        long = "domain-rate",
        value_name = "PER_SEC",
        default_value_t = 10.0,
        env = "MXPROBE_DOMAIN_RATE"
    )]
    pub domain_rate: f64,

    /// Seconds to wait for each reply (and the connection); a session may take six times
    /// that in all. Slower servers get unknown/timeout, never a verdict.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 30,
        env = "MXPROBE_TIMEOUT"
    )]
    pub timeout: u64,

    /// How often an address answered 4xx (greylisting) is asked again.
    #[arg(long, value_name = "N", default_value_t = 2, env = "MXPROBE_RETRIES")]
    pub retries: u32,

    /// Seconds before the first retry; each later one waits twice as long. Greylisters
    /// usually want 1 to 5 minutes.
    #[arg(
        long = "retry-delay",
        value_name = "SECS",
        default_value_t = 120,
        env = "MXPROBE_RETRY_DELAY"
    )]
    pub retry_delay: u64,

    /// Do not ask a random address at each domain to detect catch-all domains.
    #[arg(long = "no-catch-all", env = "MXPROBE_NO_CATCH_ALL")]
    pub no_catch_all: bool,

    /// Read every reply with the generic rules and use only this configuration's limits: no
    /// provider profiles (docs/providers.md). The provider is still reported.
    #[arg(long = "no-provider-profiles", env = "MXPROBE_NO_PROVIDER_PROFILES")]
    pub no_provider_profiles: bool,

    /// Seconds to leave a provider alone after it says "slow down" (throttling), instead of
    /// its profile's own backoff (minutes).
    #[arg(
        long = "throttle-backoff",
        value_name = "SECS",
        env = "MXPROBE_THROTTLE_BACKOFF"
    )]
    pub throttle_backoff: Option<u64>,

    /// Probe address literals (user@[192.0.2.1]); by default they are refused.
    #[arg(long = "allow-literals", env = "MXPROBE_ALLOW_LITERALS")]
    pub allow_literals: bool,

    /// Connect to mail servers at special-purpose addresses (RFC 6890: loopback, private,
    /// link-local, CGNAT, documentation, unique-local...). By default they are refused, with
    /// undeliverable/no_mail_server, so that a domain pointed at your own network cannot aim
    /// the prober there. For tests, simulators and intranets.
    #[arg(long = "allow-private-mx", env = "MXPROBE_ALLOW_PRIVATE_MX")]
    pub allow_private_mx: bool,

    /// Add the SMTP conversation to each verdict.
    #[arg(long, env = "MXPROBE_TRANSCRIPT")]
    pub transcript: bool,
}

impl EngineArgs {
    /// The engine's configuration from the flags, with what the command adds (`adjust`); an
    /// error names the flag to fix.
    pub fn config(
        &self,
        adjust: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
    ) -> Result<Config, String> {
        let args = self;
        let mut builder = Config::builder()
            .sender(args.from.as_str())
            .smtp_port(args.smtp_port)
            .concurrency(args.concurrency)
            .per_mx(args.per_mx)
            .domain_rate((args.domain_rate > 0.0).then_some(args.domain_rate))
            .retries(args.retries)
            .retry_delay(Duration::from_secs(args.retry_delay))
            .timeout(Duration::from_secs(args.timeout))
            .catch_all(!args.no_catch_all)
            .provider_profiles(!args.no_provider_profiles)
            .throttle_backoff(args.throttle_backoff.map(Duration::from_secs))
            .allow_address_literals(args.allow_literals)
            .allow_private_mx(args.allow_private_mx)
            .source_ips(args.source_ips.iter().copied())
            .ip_version(args.ip_version.into())
            .proxies(args.proxies.iter().cloned())
            .starttls(args.starttls.into())
            .transcript(args.transcript);
        if args.tls_verify {
            let roots = match &args.tls_ca {
                Some(path) => {
                    TlsClient::roots_from_pem_file(path).map_err(|e| format!("--tls-ca: {e}"))?
                }
                None => TlsClient::mozilla_roots(),
            };
            builder =
                builder.tls(TlsClient::verified(roots).map_err(|e| format!("--tls-verify: {e}"))?);
        }
        if let Some(helo) = &args.helo {
            builder = builder.helo_name(helo.as_str());
        }
        if !args.dns_servers.is_empty() {
            builder = builder.nameservers(args.dns_servers.iter().copied());
        }
        if let Some(secs) = args.dns_timeout {
            builder = builder.dns_timeout(Duration::from_secs(secs.max(1)));
        }
        adjust(builder).build().map_err(|e| {
            let flag = match &e {
                ConfigError::NoSender | ConfigError::Sender { .. } => "--from",
                ConfigError::NoHeloName | ConfigError::HeloName { .. } => "--helo",
                ConfigError::Nameservers { .. } => "--dns-server",
                ConfigError::Setting { name, .. } => match *name {
                    "smtp_port" => "--smtp-port",
                    "per_mx" => "--per-mx",
                    "domain_rate" => "--domain-rate",
                    "retry_delay" => "--retry-delay",
                    "throttle_backoff" => "--throttle-backoff",
                    "dns_timeout" => "--dns-timeout",
                    "concurrency" => "--concurrency",
                    name if name.starts_with("timeouts.") => "--timeout",
                    _ => "the configuration",
                },
                _ => "the configuration",
            };
            format!("{flag}: {e}")
        })
    }
}

fn parse_dns_server(text: &str) -> Result<SocketAddr, String> {
    parse_server(text).map_err(|e| e.to_string())
}
