//! Which nameservers to ask, and how patiently: `/etc/resolv.conf` (resolv.conf(5)), or servers
//! given on the command line.
//!
//! Read from the file: `nameserver` lines (IPv4 or IPv6, up to any number, in order) and the
//! options `timeout:n`, `attempts:n` and `rotate`. Ignored on purpose: `search` and `domain`
//! (a mail domain is always fully qualified, so no search list applies, and neither does
//! `ndots`), `sortlist`, and options that tune glibc's stub alone (`edns0` is always on here,
//! `single-request` is moot since every query has its own socket). Unknown lines are ignored,
//! as the C library ignores them.
//!
//! A file with no usable nameserver is an error that says what to do, never a silent default:
//! guessing `127.0.0.1` would send every probe's lookups somewhere nobody chose.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// The standard DNS port.
pub const DNS_PORT: u16 = 53;

/// Where and how to send queries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameserverConfig {
    /// The servers, in the order to try them.
    pub servers: Vec<SocketAddr>,
    /// How long to wait for one try before the next (resolv.conf `timeout`, default 5 s; the
    /// resolver doubles it on each round, as the C library does).
    pub timeout: Duration,
    /// Rounds over all servers before giving up (resolv.conf `attempts`, default 2).
    pub attempts: u8,
    /// Spread queries over the servers instead of always starting with the first
    /// (resolv.conf `rotate`).
    pub rotate: bool,
}

impl NameserverConfig {
    /// resolv.conf's defaults for `timeout` and `attempts` (RES_TIMEOUT, RES_DFLRETRY).
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
    /// See [`Self::DEFAULT_TIMEOUT`].
    pub const DEFAULT_ATTEMPTS: u8 = 2;
    /// The C library caps `timeout` at 30 s and `attempts` at 5 (RES_MAXRETRANS,
    /// RES_MAXRETRY); so does this parser.
    const MAX_TIMEOUT_SECS: u64 = 30;
    const MAX_ATTEMPTS: u8 = 5;

    /// Servers given explicitly (`--dns-server`), with the default timing.
    #[must_use]
    pub fn with_servers(servers: Vec<SocketAddr>) -> Self {
        Self {
            servers,
            timeout: Self::DEFAULT_TIMEOUT,
            attempts: Self::DEFAULT_ATTEMPTS,
            rotate: false,
        }
    }

    /// Parses the text of a resolv.conf file.
    ///
    /// ```
    /// use mxprobe::dns::NameserverConfig;
    /// let config = NameserverConfig::parse_resolv_conf(
    ///     "search corp.example\nnameserver 192.0.2.53\nnameserver 2001:db8::53\noptions timeout:2 rotate\n",
    /// ).unwrap();
    /// assert_eq!(config.servers.len(), 2);
    /// assert_eq!(config.servers[1].to_string(), "[2001:db8::53]:53");
    /// assert_eq!(config.timeout.as_secs(), 2);
    /// assert!(config.rotate);
    /// ```
    pub fn parse_resolv_conf(text: &str) -> Result<Self, ResolvConfError> {
        let mut config = Self::with_servers(Vec::new());
        for line in text.lines() {
            // Comments start with '#' or ';' anywhere on the line.
            let line = line.split(['#', ';']).next().unwrap_or_default();
            let mut words = line.split_ascii_whitespace();
            match words.next() {
                Some("nameserver") => {
                    if let Some(server) = words.next().and_then(parse_nameserver) {
                        config.servers.push(SocketAddr::new(server, DNS_PORT));
                    }
                }
                Some("options") => {
                    for option in words {
                        config.apply_option(option);
                    }
                }
                _ => {}
            }
        }
        if config.servers.is_empty() {
            return Err(ResolvConfError::NoNameserver);
        }
        Ok(config)
    }

    fn apply_option(&mut self, option: &str) {
        let (name, value) = option.split_once(':').unwrap_or((option, ""));
        match name {
            "timeout" => {
                if let Ok(secs) = value.parse::<u64>() {
                    self.timeout = Duration::from_secs(secs.clamp(1, Self::MAX_TIMEOUT_SECS));
                }
            }
            "attempts" => {
                if let Ok(attempts) = value.parse::<u8>() {
                    self.attempts = attempts.clamp(1, Self::MAX_ATTEMPTS);
                }
            }
            "rotate" => self.rotate = true,
            _ => {}
        }
    }
}

/// `nameserver` takes an IPv4 or IPv6 address; glibc also accepts an IPv6 scope (`fe80::1%eth0`),
/// which a probe engine has no use for and which is skipped here.
fn parse_nameserver(text: &str) -> Option<IpAddr> {
    text.parse().ok()
}

/// Parses `--dns-server IP[:PORT]`: `192.0.2.53`, `192.0.2.53:5353`, `2001:db8::53`,
/// `[2001:db8::53]:5353`.
///
/// ```
/// use mxprobe::dns::parse_server;
/// assert_eq!(parse_server("127.0.0.1:5353").unwrap().to_string(), "127.0.0.1:5353");
/// assert_eq!(parse_server("::1").unwrap().to_string(), "[::1]:53");
/// assert!(parse_server("dns.example").is_err());
/// ```
pub fn parse_server(text: &str) -> Result<SocketAddr, ResolvConfError> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, DNS_PORT));
    }
    text.parse::<SocketAddr>()
        .map_err(|_| ResolvConfError::BadServer(text.to_owned()))
}

/// Why no nameserver configuration could be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolvConfError {
    /// The file has no `nameserver` line with an IP address.
    NoNameserver,
    /// A server given on the command line is not `IP` or `IP:PORT`.
    BadServer(String),
}

impl fmt::Display for ResolvConfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoNameserver => f.write_str(
                "no nameserver in /etc/resolv.conf; pass --dns-server IP[:PORT] (for example --dns-server 127.0.0.1)",
            ),
            Self::BadServer(text) => write!(
                f,
                "--dns-server {text:?} is not an IP address with an optional port (192.0.2.53, 192.0.2.53:5353, [2001:db8::53]:5353)"
            ),
        }
    }
}

impl std::error::Error for ResolvConfError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn servers(config: &NameserverConfig) -> Vec<String> {
        config.servers.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_typical_file() {
        let config = NameserverConfig::parse_resolv_conf(
            "# Generated by NetworkManager\n\
             search corp.example lab.example\n\
             nameserver 10.0.0.2\n\
             nameserver fe80::1%eth0\n\
             nameserver 2001:db8::1 ; trailing comment\n\
             options ndots:5 timeout:3 attempts:4 edns0\n",
        )
        .expect("valid");
        assert_eq!(servers(&config), ["10.0.0.2:53", "[2001:db8::1]:53"]);
        assert_eq!(config.timeout, Duration::from_secs(3));
        assert_eq!(config.attempts, 4);
        assert!(!config.rotate);
    }

    #[test]
    fn defaults_and_caps_follow_the_c_library() {
        let config = NameserverConfig::parse_resolv_conf("nameserver 127.0.0.53\n").expect("valid");
        assert_eq!(config.timeout, Duration::from_secs(5));
        assert_eq!(config.attempts, 2);
        let capped = NameserverConfig::parse_resolv_conf(
            "nameserver 127.0.0.53\noptions timeout:99 attempts:9\noptions timeout:0x rotate\n",
        )
        .expect("valid");
        assert_eq!(capped.timeout, Duration::from_secs(30));
        assert_eq!(capped.attempts, 5);
        assert!(capped.rotate);
    }

    #[test]
    fn no_nameserver_is_an_error_that_says_what_to_do() {
        for text in [
            "",
            "search example.com\n",
            "nameserver\n",
            "nameserver dns.example\n",
            "#nameserver 10.0.0.1\n",
        ] {
            assert_eq!(
                NameserverConfig::parse_resolv_conf(text),
                Err(ResolvConfError::NoNameserver),
                "{text:?}"
            );
        }
        assert!(
            ResolvConfError::NoNameserver
                .to_string()
                .contains("--dns-server")
        );
    }

    #[test]
    fn command_line_servers() {
        for (text, parsed) in [
            ("192.0.2.53", "192.0.2.53:53"),
            ("127.0.0.1:5353", "127.0.0.1:5353"),
            ("2001:db8::53", "[2001:db8::53]:53"),
            ("[::1]:5353", "[::1]:5353"),
        ] {
            assert_eq!(
                parse_server(text).map(|s| s.to_string()),
                Ok(parsed.to_owned())
            );
        }
        for text in ["", "dns.example", "127.0.0.1:99999", "::1:53x"] {
            assert!(parse_server(text).is_err(), "{text}");
        }
    }
}
