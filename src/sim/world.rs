//! A generated mail world for benchmarks: thousands of domains on a handful of simulated MX
//! hosts, a DNS responder serving their zone, and an endless supply of addresses whose right
//! verdict is known in advance.
//!
//! [`World::start`] builds it from a [`WorldSpec`]. Generated domains are `d{n}.bench.test`,
//! each of one [`DomainKind`] drawn with the spec's shares: ordinary servers where local parts
//! `user…` exist and `gone…` do not, catch-all servers, greylisting servers, servers that
//! refuse the prober at greeting, and the big mail systems mxprobe has profiles for
//! ([`super::providers`]: their MX host names, replies and rate limits, so that a run with a
//! provider share includes the politeness their profiles ask for). Domains share MX hosts as
//! hosted domains do (a few per kind on `127.10.k.h`, one per provider on `127.10.10.p`), so
//! the farm stays small however many domains there are. Mailboxes are a
//! rule ([`Personality::mailbox_prefix`]), not a list: a million addresses cost the farm no
//! memory.
//!
//! [`WorldSpec::address`] turns an index into an address and the reason a correct verifier gives
//! for it, with nothing stored per address; [`SHOWCASE`] is a fixed set of one address per
//! behaviour worth seeing (deliverable, unknown mailbox, accept-all, greylisted then accepted,
//! null MX, no such domain, timeout, blocked, disposable, invalid syntax) on servers of their
//! own.
//!
//! [`WorldSpec::real_time_address`] gives addresses at [`REAL_TIME_DOMAIN`], a domain no
//! generated address uses, on an ordinary server (`user…` exists, `gone…` does not) that runs in
//! a farm of its own, one thread: a benchmark that sends real-time requests beside a bulk load
//! measures them queueing in the verifier, not behind the bulk sessions at the simulated servers.
//!
//! Everything listens on loopback: the farm on one port common to all its addresses (a free
//! high port by default, 25 if asked and allowed), the DNS responder wherever the spec says.
//! A verifier pointed at [`World::dns_addr`] with that SMTP port sees the world; nothing else
//! does.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::time::Duration;

use super::dns::{DnsResponder, Zone};
use super::providers::{PROVIDER_SIMS, ProviderSim};
use super::smtp::{Behaviour, FarmOptions, Greeting, Personality, SmtpFarm, Tls};
use crate::verdict::Reason;

/// The parent of every generated domain.
pub const BENCH_ZONE: &str = "bench.test";

/// Local parts starting with this exist on ordinary and greylisting servers.
pub const EXISTING_PREFIX: &str = "user";

/// Local parts starting with this do not exist anywhere (catch-all servers accept them all
/// the same).
pub const MISSING_PREFIX: &str = "gone";

/// MX hosts per domain kind; generated domains are spread over them. Four hosts of each kind
/// let a farm of up to four threads share the load of every kind.
const HOSTS_PER_KIND: u8 = 4;

/// The second octet of every world address: `127.10.k.h`.
const WORLD_OCTET: u8 = 10;

/// The third octet of the showcase's servers.
const SHOWCASE_OCTET: u8 = 9;

/// The third octet of the providers' servers, one each: `127.10.10.p`.
const PROVIDER_OCTET: u8 = 10;

/// The domain of [`WorldSpec::real_time_address`]: no generated address is there, and its
/// server is the only one on its farm thread.
pub const REAL_TIME_DOMAIN: &str = "realtime.test";

/// The third octet of the real-time domain's server.
const REAL_TIME_OCTET: u8 = 8;

/// The name of the real-time farm's thread, followed by `-0`.
pub const REAL_TIME_THREAD: &str = "sim-realtime";

/// What a generated domain's mail server is like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DomainKind {
    /// Answers RCPT truthfully: `user…` exists, `gone…` gets `550 5.1.1`.
    Ordinary,
    /// Accepts every recipient.
    CatchAll,
    /// Like [`Ordinary`](Self::Ordinary), after greylisting each new recipient for the
    /// spec's period.
    Greylisting,
    /// Refuses the prober at greeting: `554 5.7.1 … blocked using zen.spamhaus.org`.
    Rejecting,
    /// Hosted at a big mail system: [`PROVIDER_SIMS`]`[n]`, with its MX host name, replies and
    /// rate limit; `user…` exists there, `gone…` does not.
    Provider(u8),
}

impl DomainKind {
    /// The kinds with [`HOSTS_PER_KIND`] hosts of their own.
    const ALL: [Self; 4] = [
        Self::Ordinary,
        Self::CatchAll,
        Self::Greylisting,
        Self::Rejecting,
    ];

    /// The third octet of this kind's hosts.
    fn octet(self) -> u8 {
        match self {
            Self::Ordinary => 0,
            Self::CatchAll => 1,
            Self::Greylisting => 2,
            Self::Rejecting => 3,
            Self::Provider(_) => PROVIDER_OCTET,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Ordinary => "ordinary",
            Self::CatchAll => "catchall",
            Self::Greylisting => "greylisting",
            Self::Rejecting => "rejecting",
            Self::Provider(_) => "provider",
        }
    }

    /// The reason a correct verifier gives for a local part that exists (or not) here, if it
    /// waits out greylisting.
    #[must_use]
    pub fn expected(self, exists: bool) -> Reason {
        let accepts_everyone = |n: u8| {
            PROVIDER_SIMS
                .get(usize::from(n))
                .is_some_and(|sim| sim.unknown.is_none())
        };
        match (self, exists) {
            (Self::CatchAll, _) => Reason::AcceptAll,
            (Self::Provider(n), _) if accepts_everyone(n) => Reason::AcceptAll,
            (Self::Rejecting, _) => Reason::Blocked,
            (_, true) => Reason::Accepted,
            (_, false) => Reason::MailboxNotFound,
        }
    }
}

/// How to build a [`World`].
#[derive(Debug, Clone, PartialEq)]
pub struct WorldSpec {
    /// Generated domains. At least 1.
    pub domains: usize,
    /// The share of generated addresses whose mailbox exists, in `[0, 1]`.
    pub existing_share: f64,
    /// The share of domains on catch-all servers.
    pub catch_all_share: f64,
    /// The share of domains on greylisting servers.
    pub greylist_share: f64,
    /// The share of domains on servers that refuse the prober.
    pub reject_share: f64,
    /// The share of domains hosted at the big mail systems, spread evenly over them: their
    /// profiles' politeness (a few connections a second each, one RCPT a session at
    /// Outlook.com) then bounds how fast those addresses can go.
    pub provider_share: f64,
    /// How long greylisting servers refuse a new recipient.
    pub greylist_period: Duration,
    /// Every reply's delay, the greeting included: the network round trip modelled.
    pub latency: Duration,
    /// A uniform random extra in `[0, jitter]` on each reply.
    pub jitter: Duration,
    /// Whether servers advertise PIPELINING.
    pub pipelining: bool,
    /// Whether servers offer STARTTLS ([`Tls::Offered`]: a self-signed certificate), for
    /// measuring what TLS costs a prober that says it at every one.
    pub tls: bool,
    /// Event-loop threads of the SMTP farm.
    pub farm_threads: usize,
    /// The farm's port on every address; 0 finds one free on all of them.
    pub smtp_port: u16,
    /// Where the DNS responder listens (UDP and TCP); port 0 lets the OS choose.
    pub dns_addr: SocketAddr,
    /// Seeds which domain gets which kind, which address exists, and the farm's jitter.
    pub seed: u64,
}

impl Default for WorldSpec {
    /// 1,000 domains, 70 % of mailboxes existing, 10 % catch-all and 5 % rejecting domains,
    /// no greylisting (it adds its period to any run; the showcase shows it) and no providers
    /// (their politeness sets the pace of any run), no latency, pipelining, one farm thread,
    /// free ports.
    fn default() -> Self {
        Self {
            domains: 1000,
            existing_share: 0.7,
            catch_all_share: 0.1,
            greylist_share: 0.0,
            reject_share: 0.05,
            provider_share: 0.0,
            greylist_period: Duration::from_secs(1),
            latency: Duration::ZERO,
            jitter: Duration::ZERO,
            pipelining: true,
            tls: false,
            farm_threads: 1,
            smtp_port: 0,
            dns_addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            seed: 0x6d78_7072_6f62_6521,
        }
    }
}

impl WorldSpec {
    /// Checks the numbers before anything is bound.
    ///
    /// # Errors
    ///
    /// A sentence naming the setting that is out of range and its range.
    pub fn validate(&self) -> Result<(), String> {
        if self.domains == 0 {
            return Err("a world needs at least one domain".into());
        }
        if self.farm_threads == 0 {
            return Err("the farm needs at least one thread".into());
        }
        for (name, share) in [
            ("existing share", self.existing_share),
            ("catch-all share", self.catch_all_share),
            ("greylist share", self.greylist_share),
            ("reject share", self.reject_share),
            ("provider share", self.provider_share),
        ] {
            if !(0.0..=1.0).contains(&share) {
                return Err(format!("the {name} must be between 0 and 1, not {share}"));
            }
        }
        let special =
            self.catch_all_share + self.greylist_share + self.reject_share + self.provider_share;
        if special > 1.0 {
            return Err(format!(
                "the catch-all, greylist, reject and provider shares add up to {special}; they \
                 may add up to 1 at most"
            ));
        }
        Ok(())
    }

    /// The kind of generated domain `n`.
    #[must_use]
    pub fn kind_of(&self, domain: usize) -> DomainKind {
        let draw = unit(mix(self.seed ^ 0x00d0_3a1e, domain as u64));
        let mut bound = self.catch_all_share;
        if draw < bound {
            return DomainKind::CatchAll;
        }
        bound += self.greylist_share;
        if draw < bound {
            return DomainKind::Greylisting;
        }
        bound += self.reject_share;
        if draw < bound {
            return DomainKind::Rejecting;
        }
        bound += self.provider_share;
        if draw < bound {
            let pick = mix(self.seed ^ 0x0070_0f11, domain as u64) % PROVIDER_SIMS.len() as u64;
            return DomainKind::Provider(u8::try_from(pick).unwrap_or(0));
        }
        DomainKind::Ordinary
    }

    /// Generated address number `index`: at domain `index % domains`, existing or not as the
    /// seed decides. Distinct indexes give distinct addresses.
    #[must_use]
    pub fn address(&self, index: u64) -> Generated {
        let (domain, kind, exists) = self.draw(index);
        let prefix = if exists {
            EXISTING_PREFIX
        } else {
            MISSING_PREFIX
        };
        Generated {
            address: format!("{prefix}{index}@d{domain}.{BENCH_ZONE}"),
            kind,
            expected: kind.expected(exists),
        }
    }

    /// The right reason for address number `index`, without building the address.
    #[must_use]
    pub fn expected(&self, index: u64) -> Reason {
        let (_, kind, exists) = self.draw(index);
        kind.expected(exists)
    }

    /// Real-time address number `index`: at [`REAL_TIME_DOMAIN`], an ordinary domain,
    /// existing or not with the spec's share as the seed decides. Distinct indexes give
    /// distinct addresses, none of them a generated one.
    #[must_use]
    pub fn real_time_address(&self, index: u64) -> Generated {
        let exists = unit(mix(self.seed ^ 0x7ea1_71de, index)) < self.existing_share;
        let prefix = if exists {
            EXISTING_PREFIX
        } else {
            MISSING_PREFIX
        };
        Generated {
            address: format!("{prefix}{index}@{REAL_TIME_DOMAIN}"),
            kind: DomainKind::Ordinary,
            expected: DomainKind::Ordinary.expected(exists),
        }
    }

    fn draw(&self, index: u64) -> (usize, DomainKind, bool) {
        let domain = (index % self.domains as u64) as usize;
        let exists = unit(mix(self.seed ^ 0x0add_7e55, index)) < self.existing_share;
        (domain, self.kind_of(domain), exists)
    }
}

/// One of the [`SHOWCASE`] addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShowcaseCase {
    /// What it shows, for people.
    pub label: &'static str,
    /// The address, as a user would submit it.
    pub address: &'static str,
    /// The reason a correct verifier gives.
    pub expected: Reason,
    /// How many SMTP sessions a correct verifier needs for it (greylisting needs a retry).
    pub sessions: u32,
}

/// One address per behaviour worth seeing, each on a server (or DNS name) of its own.
pub const SHOWCASE: [ShowcaseCase; 12] = [
    ShowcaseCase {
        label: "mailbox exists",
        address: "alice@shop.test",
        expected: Reason::Accepted,
        sessions: 1,
    },
    ShowcaseCase {
        label: "no such mailbox",
        address: "nobody@shop.test",
        expected: Reason::MailboxNotFound,
        sessions: 1,
    },
    ShowcaseCase {
        label: "domain accepts anything",
        address: "anyone@catchall.test",
        expected: Reason::AcceptAll,
        sessions: 1,
    },
    ShowcaseCase {
        label: "greylisted, then accepted",
        address: "alice@greylisting.test",
        expected: Reason::Accepted,
        sessions: 2,
    },
    ShowcaseCase {
        label: "domain takes no mail",
        address: "alice@nullmx.test",
        expected: Reason::NullMx,
        sessions: 0,
    },
    ShowcaseCase {
        label: "no such domain",
        address: "alice@no-such-domain.test",
        expected: Reason::DomainNotFound,
        sessions: 0,
    },
    ShowcaseCase {
        label: "server never answers",
        address: "alice@silent.test",
        expected: Reason::Timeout,
        sessions: 1,
    },
    ShowcaseCase {
        label: "loses pipelined replies",
        address: "alice@drops-replies.test",
        expected: Reason::Accepted,
        sessions: 2,
    },
    ShowcaseCase {
        label: "sends a reply unasked",
        address: "alice@extra-reply.test",
        expected: Reason::ProtocolError,
        sessions: 2,
    },
    ShowcaseCase {
        label: "prober blocked",
        address: "alice@blocklisting.test",
        expected: Reason::Blocked,
        sessions: 1,
    },
    ShowcaseCase {
        label: "disposable domain",
        address: "temp123@mailinator.com",
        expected: Reason::Disposable,
        sessions: 1,
    },
    ShowcaseCase {
        label: "not an address",
        address: "alice@@shop.test",
        expected: Reason::InvalidSyntax,
        sessions: 0,
    },
];

/// A generated address and the reason a correct verifier gives for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    /// The address.
    pub address: String,
    /// Its domain's kind.
    pub kind: DomainKind,
    /// The right reason, provided greylisting is waited out.
    pub expected: Reason,
}

/// A running world: the SMTP farm, the real-time domain's farm and the DNS responder.
/// Dropping it stops them all.
#[derive(Debug)]
pub struct World {
    spec: WorldSpec,
    farm: SmtpFarm,
    real_time_farm: SmtpFarm,
    dns: DnsResponder,
    smtp_port: u16,
}

impl World {
    /// Binds every server and starts the farms' and the responder's threads.
    ///
    /// # Errors
    ///
    /// If the spec is out of range, an address cannot be bound (the port is taken on one of
    /// the farm's addresses, or port 25 without the right to bind it), or a thread cannot be
    /// started; the message says which.
    pub fn start(spec: WorldSpec) -> io::Result<Self> {
        spec.validate()
            .map_err(|message| io::Error::new(io::ErrorKind::InvalidInput, message))?;
        let mut hosts = Vec::new();
        for kind in DomainKind::ALL {
            for h in 0..HOSTS_PER_KIND {
                let personality = generated_personality(&spec, kind, h);
                hosts.push((host_ip(kind, h), personality));
            }
        }
        for (n, sim) in PROVIDER_SIMS.iter().enumerate() {
            hosts.push((provider_ip(n), provider_personality(&spec, sim)));
        }
        hosts.extend(showcase_hosts(&spec));
        let real_time_personality = with_network(
            &spec,
            Personality::new(&real_time_host()).mailbox_prefix(EXISTING_PREFIX),
        );
        let mut ips: Vec<Ipv4Addr> = hosts.iter().map(|(ip, _)| *ip).collect();
        ips.push(real_time_ip());
        let smtp_port = match spec.smtp_port {
            0 => common_free_port(&ips)?,
            port => port,
        };
        let listeners = hosts
            .into_iter()
            .map(|(ip, personality)| (SocketAddr::from((ip, smtp_port)), personality))
            .collect();
        let farm = SmtpFarm::start_with(
            listeners,
            FarmOptions {
                threads: spec.farm_threads,
                seed: spec.seed,
                ..FarmOptions::default()
            },
        )?;
        let real_time_farm = SmtpFarm::start_with(
            vec![(
                SocketAddr::from((real_time_ip(), smtp_port)),
                real_time_personality,
            )],
            FarmOptions {
                threads: 1,
                seed: spec.seed ^ 0x7ea1_71de,
                thread_name: REAL_TIME_THREAD,
                ..FarmOptions::default()
            },
        )?;
        let dns = DnsResponder::start_on(spec.dns_addr, zone(&spec))?;
        Ok(Self {
            spec,
            farm,
            real_time_farm,
            dns,
            smtp_port,
        })
    }

    /// The spec the world was built from.
    #[must_use]
    pub fn spec(&self) -> &WorldSpec {
        &self.spec
    }

    /// The port every simulated MX listens on.
    #[must_use]
    pub fn smtp_port(&self) -> u16 {
        self.smtp_port
    }

    /// Where the DNS responder answers, over UDP and TCP.
    #[must_use]
    pub fn dns_addr(&self) -> SocketAddr {
        self.dns.addr()
    }

    /// The SMTP farm, for its counters.
    #[must_use]
    pub fn farm(&self) -> &SmtpFarm {
        &self.farm
    }

    /// The farm of [`REAL_TIME_DOMAIN`]'s server alone, for its counters.
    #[must_use]
    pub fn real_time_farm(&self) -> &SmtpFarm {
        &self.real_time_farm
    }

    /// The DNS responder, for its counters.
    #[must_use]
    pub fn dns(&self) -> &DnsResponder {
        &self.dns
    }
}

/// The address of host `h` of a kind (a provider has one host).
fn host_ip(kind: DomainKind, h: u8) -> Ipv4Addr {
    match kind {
        DomainKind::Provider(n) => provider_ip(usize::from(n)),
        _ => Ipv4Addr::new(127, WORLD_OCTET, kind.octet(), h + 1),
    }
}

fn host_name(kind: DomainKind, h: u8) -> String {
    match kind {
        DomainKind::Provider(n) => PROVIDER_SIMS[usize::from(n)].mx_host.to_owned(),
        _ => format!("mx{h}.{}.{BENCH_ZONE}", kind.label()),
    }
}

/// The address of provider `n`'s server.
fn provider_ip(n: usize) -> Ipv4Addr {
    Ipv4Addr::new(
        127,
        WORLD_OCTET,
        PROVIDER_OCTET,
        u8::try_from(n + 1).unwrap_or(u8::MAX),
    )
}

/// A provider's server: its replies, `user…` existing, and its rate limit.
fn provider_personality(spec: &WorldSpec, sim: &ProviderSim) -> Personality {
    let personality = sim.dress(
        Personality::new(sim.mx_host).mailbox_prefix(EXISTING_PREFIX),
        &[],
        &[],
        sim.throttle_rate(),
    );
    with_network(spec, personality)
}

/// The address of [`REAL_TIME_DOMAIN`]'s server.
fn real_time_ip() -> Ipv4Addr {
    Ipv4Addr::new(127, WORLD_OCTET, REAL_TIME_OCTET, 1)
}

fn real_time_host() -> String {
    format!("mx.{REAL_TIME_DOMAIN}")
}

fn with_network(spec: &WorldSpec, mut personality: Personality) -> Personality {
    personality = personality.latency(spec.latency).jitter(spec.jitter);
    if !spec.pipelining {
        personality = personality.without_pipelining();
    }
    if spec.tls {
        personality = personality.tls(Tls::Offered);
    }
    personality
}

fn generated_personality(spec: &WorldSpec, kind: DomainKind, h: u8) -> Personality {
    let personality = Personality::new(&host_name(kind, h));
    let personality = match kind {
        DomainKind::Ordinary => personality.mailbox_prefix(EXISTING_PREFIX),
        DomainKind::CatchAll => personality.catch_all(),
        DomainKind::Greylisting => personality
            .mailbox_prefix(EXISTING_PREFIX)
            .greylist(spec.greylist_period),
        DomainKind::Rejecting => personality.greeting(Greeting::Refuse),
        DomainKind::Provider(n) => {
            return provider_personality(spec, &PROVIDER_SIMS[usize::from(n)]);
        }
    };
    with_network(spec, personality)
}

/// The showcase's servers: (address, personality), in the order [`zone`] names them.
fn showcase_hosts(spec: &WorldSpec) -> Vec<(Ipv4Addr, Personality)> {
    let ip = |h| Ipv4Addr::new(127, WORLD_OCTET, SHOWCASE_OCTET, h);
    vec![
        (
            ip(1),
            Personality::new("mx.shop.test").mailbox("alice@shop.test"),
        ),
        (ip(2), Personality::new("mx.catchall.test").catch_all()),
        (
            ip(3),
            Personality::new("mx.greylisting.test")
                .mailbox("alice@greylisting.test")
                .greylist(spec.greylist_period),
        ),
        (
            ip(4),
            Personality::new("mx.silent.test").behaviour(Behaviour::Silent),
        ),
        (
            ip(5),
            Personality::new("mx.blocklisting.test").greeting(Greeting::Refuse),
        ),
        (ip(6), Personality::new("mx.mailinator.com").catch_all()),
        (
            ip(7),
            Personality::new("mx.drops-replies.test")
                .mailbox("alice@drops-replies.test")
                .behaviour(Behaviour::LosesPipelinedReplies),
        ),
        (
            ip(8),
            Personality::new("mx.extra-reply.test")
                .mailbox("alice@extra-reply.test")
                .behaviour(Behaviour::ExtraReply),
        ),
    ]
    .into_iter()
    .map(|(ip, personality)| (ip, with_network(spec, personality)))
    .collect()
}

/// The zone: every generated domain's MX, the hosts' addresses, the showcase's names, the
/// real-time domain.
fn zone(spec: &WorldSpec) -> Zone {
    let mut zone = Zone::new();
    for domain in 0..spec.domains {
        let kind = spec.kind_of(domain);
        let h = (domain % usize::from(HOSTS_PER_KIND)) as u8;
        zone.mx(&format!("d{domain}.{BENCH_ZONE}"), 10, &host_name(kind, h));
    }
    for kind in DomainKind::ALL {
        for h in 0..HOSTS_PER_KIND {
            zone.a(&host_name(kind, h), host_ip(kind, h));
        }
    }
    for (n, sim) in PROVIDER_SIMS.iter().enumerate() {
        zone.a(sim.mx_host, provider_ip(n));
    }
    let showcase_ip = |h| Ipv4Addr::new(127, WORLD_OCTET, SHOWCASE_OCTET, h);
    for (h, domain) in [
        "shop.test",
        "catchall.test",
        "greylisting.test",
        "silent.test",
        "blocklisting.test",
        "mailinator.com",
        "drops-replies.test",
        "extra-reply.test",
    ]
    .into_iter()
    .enumerate()
    {
        let exchange = format!("mx.{domain}");
        zone.mx(domain, 10, &exchange)
            .a(&exchange, showcase_ip(h as u8 + 1));
    }
    zone.null_mx("nullmx.test");
    zone.mx(REAL_TIME_DOMAIN, 10, &real_time_host())
        .a(&real_time_host(), real_time_ip());
    zone
}

/// A port free on every one of `ips` a moment ago, so one farm can listen on all of them.
fn common_free_port(ips: &[Ipv4Addr]) -> io::Result<u16> {
    const TRIES: usize = 64;
    let Some(first) = ips.first() else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "no addresses to find a port for",
        ));
    };
    'search: for _ in 0..TRIES {
        let port = TcpListener::bind((*first, 0))?.local_addr()?.port();
        for ip in &ips[1..] {
            if TcpListener::bind((*ip, port)).is_err() {
                continue 'search;
            }
        }
        return Ok(port);
    }
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        format!(
            "found no port free on all of the simulator's {} loopback addresses in {TRIES} tries; \
             choose one with a port option",
            ips.len()
        ),
    ))
}

/// SplitMix64 of `seed + index`: a well-mixed 64-bit value per index.
fn mix(seed: u64, index: u64) -> u64 {
    let mut z = seed.wrapping_add(index.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A value in `[0, 1)` from the top 53 bits.
fn unit(bits: u64) -> f64 {
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_honoured_within_sampling_error() {
        let spec = WorldSpec {
            domains: 10_000,
            catch_all_share: 0.2,
            greylist_share: 0.1,
            reject_share: 0.05,
            ..WorldSpec::default()
        };
        let mut counts = [0usize; 4];
        for domain in 0..spec.domains {
            counts[spec.kind_of(domain).octet() as usize] += 1;
        }
        let share = |n: usize| n as f64 / spec.domains as f64;
        assert!((share(counts[1]) - 0.2).abs() < 0.02, "{counts:?}");
        assert!((share(counts[2]) - 0.1).abs() < 0.02, "{counts:?}");
        assert!((share(counts[3]) - 0.05).abs() < 0.015, "{counts:?}");
    }

    #[test]
    fn zero_shares_give_only_ordinary_domains() {
        let spec = WorldSpec {
            catch_all_share: 0.0,
            reject_share: 0.0,
            ..WorldSpec::default()
        };
        assert!((0..spec.domains).all(|d| spec.kind_of(d) == DomainKind::Ordinary));
    }

    #[test]
    fn out_of_range_specs_are_refused_with_the_setting_named() {
        let too_many = WorldSpec {
            catch_all_share: 0.6,
            reject_share: 0.6,
            ..WorldSpec::default()
        };
        assert!(too_many.validate().unwrap_err().contains("add up"));
        let negative = WorldSpec {
            existing_share: -0.1,
            ..WorldSpec::default()
        };
        assert!(negative.validate().unwrap_err().contains("existing share"));
        let empty = WorldSpec {
            domains: 0,
            ..WorldSpec::default()
        };
        assert!(empty.validate().is_err());
    }

    #[test]
    fn addresses_are_distinct_and_their_expectations_follow_their_kind() {
        let spec = WorldSpec {
            domains: 10,
            ..WorldSpec::default()
        };
        let mut seen = std::collections::HashSet::new();
        let mut existing = 0;
        for index in 0..10_000 {
            let generated = spec.address(index);
            assert!(seen.insert(generated.address.clone()));
            assert_eq!(spec.expected(index), generated.expected);
            let exists = generated.address.starts_with(EXISTING_PREFIX);
            existing += usize::from(exists);
            assert_eq!(generated.expected, generated.kind.expected(exists));
            assert!(
                generated
                    .address
                    .ends_with(&format!("@d{}.bench.test", index % 10))
            );
        }
        assert!(
            (6_500..7_500).contains(&existing),
            "{existing} of 10,000 exist"
        );
    }

    #[test]
    fn real_time_addresses_are_distinct_and_at_their_own_domain() {
        let spec = WorldSpec::default();
        let mut seen = std::collections::HashSet::new();
        let mut existing = 0;
        for index in 0..10_000 {
            let real_time = spec.real_time_address(index);
            assert!(seen.insert(real_time.address.clone()));
            assert!(real_time.address.ends_with(&format!("@{REAL_TIME_DOMAIN}")));
            let exists = real_time.address.starts_with(EXISTING_PREFIX);
            existing += usize::from(exists);
            assert_eq!(real_time.expected, DomainKind::Ordinary.expected(exists));
        }
        assert!(
            (6_500..7_500).contains(&existing),
            "{existing} of 10,000 exist"
        );
    }

    #[test]
    fn the_showcase_expects_what_its_reasons_say() {
        use crate::verdict::Verdict;
        let verdicts: Vec<Verdict> = SHOWCASE.iter().map(|c| c.expected.verdict()).collect();
        for verdict in [
            Verdict::Deliverable,
            Verdict::Undeliverable,
            Verdict::Risky,
            Verdict::Unknown,
        ] {
            assert!(verdicts.contains(&verdict), "{verdict} missing");
        }
    }
}
