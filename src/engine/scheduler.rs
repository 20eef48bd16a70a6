//! [`Scheduler`]: addresses in, verdicts out — sans-IO.
//!
//! The plumbing between the engine's parts: the calling contract (`submit`, `handle_*`,
//! `poll_*`), starting sessions within the caps, collecting what they settle, and carrying out
//! what [`policy`] decides about each outcome. A domain's state lives in
//! [`domain`](super::domain), a job's in [`job`](super::job), deadlines in
//! [`timers`](super::timers).

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::calibration::calibrate;
use super::config::EngineConfig;
use super::domain::{Domain, DomainId, MxSlots, RouteState, SlotKey, Target};
use super::duplicates::Duplicates;
use super::gates::{Pass, ProviderGates};
use super::job::{Decided, Job, JobId, Joined, Member, Rare};
use super::policy::{self, Action, ControlAnswer, ControlFacts, Facts, ReadBy};
use super::proxies::Proxies;
use super::result::{VerifyResult, final_reason};
use super::slab::Slab;
use super::sources::{Sources, names_the_client};
use super::special_purpose::special_purpose;
use super::submission::{Priority, SubmitOptions};
use super::timers::{Timer, Timers};
use crate::Config;
use crate::address::{Address, Flags, is_role_account};
use crate::dns::{MailRoute, Resolver, RouteError, RouteId, SocketId, Transmit as DnsTransmit};
use crate::providers::{self, ControlMode, Meaning, Provider, Rule};
use crate::session::{
    CheckedSessionConfig, HandBack, Recipient, RecipientOutcome, Recipients, Session, SessionEvent,
};
use crate::smtp::reply::OwnedReply;
use crate::socks5::{Handshake, Progress};
use crate::tls::{StartTls, TlsVersion};
use crate::verdict::{Reason, Stage};

/// Names one SMTP connection the scheduler asked the driver for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// What the scheduler asks of the driver for SMTP connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnIo {
    /// Open a TCP connection to `to` (from `from`, if given); report it with
    /// [`Scheduler::handle_connected`], or its failure with [`Scheduler::handle_closed`] (or
    /// [`Scheduler::handle_no_resources`] when the system is out of sockets).
    Connect {
        /// The connection's name from now on.
        conn: ConnId,
        /// The mail server.
        to: SocketAddr,
        /// The source address to bind, if configured.
        from: Option<IpAddr>,
        /// The session carries a real-time address: someone waits for it, and a driver that
        /// can serve its socket ahead of the bulk sessions' should (the mio driver does).
        urgent: bool,
    },
    /// The session is over: write `last_words` if the socket takes them now (the QUIT), then
    /// close the connection. No more input is wanted from it.
    Close {
        /// The connection.
        conn: ConnId,
        /// Output the session left unwritten.
        last_words: Vec<u8>,
    },
}

/// How much the scheduler holds right now: for tests and simulations that check that memory
/// and timers stay bounded by the work in flight.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Census {
    /// Addresses submitted and not yet given a verdict.
    pub jobs: usize,
    /// Addresses answered and waiting for their domain's catch-all control.
    pub held: usize,
    /// Addresses queued in their domain, waiting for a session.
    pub queued: usize,
    /// SMTP sessions in flight.
    pub sessions: usize,
    /// Domains known (one per distinct domain submitted, less those forgotten once idle).
    pub domains: usize,
    /// Entries in the timer heap, live and dead.
    pub timers: usize,
    /// Verdicts waiting to be taken.
    pub results: usize,
    /// Finished results remembered for later submissions (at most `remember_results`).
    pub remembered: usize,
}

/// Counters of what the engine did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Addresses submitted.
    pub submitted: u64,
    /// Verdicts handed out.
    pub finished: u64,
    /// SMTP sessions started.
    pub sessions: u64,
    /// RCPT commands the sessions carried (catch-all controls included).
    pub rcpts: u64,
    /// Addresses asked again after a 4xx.
    pub retries: u64,
    /// Addresses asked again without pipelining because a session could not vouch for which
    /// reply answered them.
    pub lock_step_retries: u64,
    /// Addresses moved to the next MX after a connection failure.
    pub failovers: u64,
    /// Addresses that waited for their provider after it said "slow down"
    /// ([`providers`](crate::providers)), once per wait.
    pub throttled: u64,
    /// Connections whose SOCKS5 proxy failed before the server was reached.
    pub proxy_failures: u64,
    /// Sessions that spoke TLS after STARTTLS.
    pub tls_sessions: u64,
    /// Sessions whose TLS handshake after STARTTLS failed (a certificate `--tls-verify`
    /// refused, a server's broken TLS).
    pub tls_failures: u64,
    /// Times a source address was benched for refusals that named it.
    pub sources_benched: u64,
    /// Catch-all control probes sent.
    pub controls: u64,
    /// Connections refused for lack of resources (EMFILE and kin), retried later.
    pub resource_backoffs: u64,
    /// The most SMTP sessions that were in flight at once.
    pub peak_sessions: u64,
    /// Submissions of a mailbox already in flight, which joined its probe.
    pub joined: u64,
    /// Submissions answered from the results remembered.
    pub remembered: u64,
    /// Submissions answered `unknown/timeout` at their deadline while the probe went on.
    pub past_deadline: u64,
    /// Second results, the probe's own, delivered to submissions answered at their deadline
    /// ([`late_results`](crate::ConfigBuilder::late_results)); not counted in `finished`.
    pub late: u64,
    /// Idle domains forgotten (their memory given back; met again, they are looked up again).
    pub domains_forgotten: u64,
}

/// One session in flight, and who it asks about.
#[derive(Debug)]
struct Conn {
    session: Session,
    domain: DomainId,
    members: Vec<Member>,
    target: usize,
    timer_at: Option<Instant>,
    answered: usize,
    /// With transcripts on, outcomes wait for the end of the session, so that each verdict
    /// carries the whole conversation, QUIT included.
    deferred: Vec<(Member, RecipientOutcome)>,
    /// While the connection goes through a SOCKS5 proxy and the tunnel is not open yet: the
    /// handshake, and the proxy's place in the pool.
    tunnel: Option<Box<(Handshake, usize)>>,
    /// What went wrong with the proxy, if it failed before the server was reached.
    proxy_failure: Option<String>,
    /// The source address it connects from, if one is configured.
    source: Option<IpAddr>,
    /// The per-MX slot it holds.
    slot: SlotKey,
    /// The proxy was asked to CONNECT by the MX host's name (`socks5h://`): which address it
    /// reached is the proxy's to know, not the record's.
    by_name: bool,
    /// When it was opened, in nanoseconds since the epoch.
    opened: u64,
}

/// Catch-all answers learned from elsewhere kept at most ([`Scheduler::know_catch_all`]).
pub const MAX_KNOWN_CATCH_ALL: usize = 1_000_000;

/// Greylisting waits learned from elsewhere kept at most, for domains not yet met
/// ([`Scheduler::know_greylist_wait`]).
const MAX_KNOWN_GREYLIST_WAITS: usize = 1_000_000;

/// The domain table is looked over for idle domains to forget once it holds this many, and
/// then again at twice what was left: a long-lived engine (a service, a fleet's worker) keeps
/// about 1.2 KB per domain it remembers, so it forgets those it is done with.
const FORGET_SWEEP_MIN: usize = 65_536;

/// Servers remembered as taking MAIL FROM in plain text (a few MB at most).
const MAX_PLAIN_TEXT_SERVERS: usize = 100_000;

/// How long new connections wait after the system ran out of sockets.
const RESOURCE_BACKOFF: Duration = Duration::from_millis(100);
/// How long a domain's first queued address may wait for others to fill its session: input
/// arriving address by address, across many domains, would otherwise start a session per
/// address whenever a slot is free. Short against any server's reply time.
pub const BATCH_HOLD: Duration = Duration::from_millis(20);
/// Length of the random local part of the catch-all control.
const CONTROL_LOCAL_LEN: usize = 20;

/// The engine's brain: per-domain queues, routing, batching, politeness, catch-all, retries,
/// failover. Sans-IO, like the session and the resolver it drives.
///
/// # Calling contract
///
/// Inputs, each with the current time (`now` never goes backwards): [`submit`](Self::submit);
/// for SMTP connections [`handle_connected`](Self::handle_connected),
/// [`handle_input`](Self::handle_input), [`handle_closed`](Self::handle_closed),
/// [`handle_no_resources`](Self::handle_no_resources); for DNS sockets
/// [`handle_udp`](Self::handle_udp), [`handle_tcp`](Self::handle_tcp),
/// [`handle_dns_closed`](Self::handle_dns_closed); [`handle_timeout`](Self::handle_timeout).
///
/// After every input drain the outputs: [`poll_conn_io`](Self::poll_conn_io),
/// [`poll_dns_transmit`](Self::poll_dns_transmit), the bytes of every connection with
/// [`output`](Self::output) / [`consume_output`](Self::consume_output),
/// [`poll_result`](Self::poll_result); then sleep until [`poll_timeout`](Self::poll_timeout).
///
/// # Guarantees
///
/// - Every submitted address gets exactly one [`VerifyResult`].
/// - One MX lookup per domain while it is remembered, however many addresses; addresses of
///   one domain share sessions. A domain idle long enough is forgotten, and looked up again
///   if it comes again.
/// - At most `concurrency` sessions at once, at most `per_mx` per MX address, at most
///   `domain_rate` new connections a second per domain; domains take turns.
/// - A lower-preference MX is used only when the ones before it failed, never for load
///   (backup MXes often accept every address, which would turn unknowns into false passes).
#[derive(Debug)]
pub struct Scheduler {
    config: EngineConfig,
    /// Mail servers seen answering RCPT in plain text: they take MAIL FROM without TLS, so
    /// their sessions end the last group with QUIT though they offer STARTTLS
    /// ([`Session::with_plain_text_known`]).
    plain_text_servers: HashSet<IpAddr>,
    session_config: Arc<CheckedSessionConfig>,
    /// The same without pipelining: for addresses and servers a pipelined session could not
    /// vouch for.
    lock_step_config: Arc<CheckedSessionConfig>,
    resolver: Resolver,
    rng: StdRng,
    jobs: Slab<Job>,
    domains: Vec<Domain>,
    by_name: HashMap<String, DomainId>,
    routing: HashMap<RouteId, DomainId>,
    /// Sessions in flight, boxed: the table's empty slots then cost a pointer, not a session.
    conns: HashMap<u64, Box<Conn>>,
    ready: VecDeque<DomainId>,
    /// Domains with real-time work queued: served before `ready`.
    urgent: VecDeque<DomainId>,
    /// Mailboxes in flight, and results remembered.
    duplicates: Duplicates,
    /// Submissions that joined a job in flight and wait for its result: they count in
    /// [`pending`](Self::pending) like jobs, or a list of one address repeated would grow
    /// memory without bound.
    joined_waiting: usize,
    /// The per-MX-address cap, across domains.
    mx_slots: MxSlots,
    /// The politeness owed to each provider, across its domains.
    gates: ProviderGates,
    /// The SOCKS5 proxies, with their health.
    proxies: Proxies,
    /// Deadlines, with lazy deletion: an entry whose owner has moved on (a session ended, a
    /// domain woken earlier) stays until it reaches the top, or until the heap is compacted.
    timers: Timers,
    io: VecDeque<ConnIo>,
    results: VecDeque<VerifyResult>,
    next_conn: u64,
    source_rotation: usize,
    /// The source addresses, by family, with their health.
    sources: Sources,
    backoff_until: Option<Instant>,
    /// After [`Scheduler::abandon_queued`]: no new session starts.
    stopping: bool,
    /// Submissions a stop dropped without a verdict, so far.
    dropped_by_stop: usize,
    /// Greylisting waits learned elsewhere, for domains not yet met.
    known_greylist_waits: HashMap<String, Duration>,
    /// Indices of forgotten domains, for new ones.
    free_domains: Vec<DomainId>,
    /// The table's length at which idle domains are next looked for, and the least it is
    /// ([`FORGET_SWEEP_MIN`]; lower in tests).
    sweep_at: usize,
    sweep_min: usize,
    /// When the pass that starts sessions for new submissions is due.
    schedule_at: Option<Instant>,
    /// The first instant the scheduler was given: submission times count from here, in
    /// eight bytes where an `Instant` takes sixteen.
    epoch: Option<Instant>,
    /// Scratch: what a session settled in one go, emptied before the call that fills it ends.
    settled: Vec<(Member, RecipientOutcome)>,
    stats: EngineStats,
}

impl Scheduler {
    /// A scheduler with nothing to do yet. `seed` feeds the CSPRNG behind DNS query IDs, MX
    /// shuffles and catch-all local parts: take it from the operating system's CSPRNG
    /// ([`os_seed`](crate::driver::os_seed)), or fix it to replay a run.
    #[must_use]
    pub fn new(config: Config, seed: [u8; 32]) -> Self {
        let config = config.engine;
        let mut dns_seed = seed;
        dns_seed[0] ^= 0x5a;
        let resolver = Resolver::new(config.resolver.clone(), dns_seed);
        let lock_step_config = Arc::new(config.session.without_pipelining());
        let session_config = Arc::new(config.session.clone());
        let sources = Sources::new(&config.source_ips);
        let proxies = Proxies::new(&config.proxies);
        let mut duplicates = Duplicates::new(config.remember_results);
        duplicates.reserve_in_flight(config.intake());
        Self {
            config,
            session_config,
            lock_step_config,
            resolver,
            rng: StdRng::from_seed(seed),
            jobs: Slab::default(),
            domains: Vec::new(),
            by_name: HashMap::new(),
            routing: HashMap::new(),
            conns: HashMap::new(),
            ready: VecDeque::new(),
            urgent: VecDeque::new(),
            duplicates,
            joined_waiting: 0,
            mx_slots: MxSlots::default(),
            gates: ProviderGates::default(),
            proxies,
            timers: Timers::default(),
            io: VecDeque::new(),
            results: VecDeque::new(),
            next_conn: 0,
            source_rotation: 0,
            sources,
            backoff_until: None,
            stopping: false,
            dropped_by_stop: 0,
            known_greylist_waits: HashMap::new(),
            free_domains: Vec::new(),
            sweep_at: FORGET_SWEEP_MIN,
            sweep_min: FORGET_SWEEP_MIN,
            schedule_at: None,
            epoch: None,
            settled: Vec::new(),
            plain_text_servers: HashSet::new(),
            stats: EngineStats::default(),
        }
    }

    /// Takes an address as a user wrote it; `tag` comes back in its result. Its domain's MX
    /// lookup starts at once; sessions start at the next [`handle_timeout`](Self::handle_timeout)
    /// (due at once: see [`poll_timeout`](Self::poll_timeout)), so that a burst of submissions
    /// is batched by domain. A bulk submission without a deadline: see
    /// [`submit_with`](Self::submit_with).
    pub fn submit(&mut self, raw: &str, tag: u64, now: Instant) {
        self.submit_with(raw, tag, SubmitOptions::default(), now);
    }

    /// [`submit`](Self::submit), with a priority and a deadline ([`SubmitOptions`]). A mailbox
    /// already in flight is not probed again: the submission joins that probe and gets its
    /// result under its own tag and text; one finished lately is answered from memory when
    /// the configuration keeps results.
    pub fn submit_with(&mut self, raw: &str, tag: u64, options: SubmitOptions, now: Instant) {
        self.stats.submitted += 1;
        let address = match Address::parse(raw) {
            Ok(address) => address,
            Err(invalid) => {
                let detail = Some(invalid.to_string());
                self.emit(VerifyResult::decided(
                    tag,
                    raw,
                    None,
                    invalid.reason(),
                    detail,
                ));
                return;
            }
        };
        if address.address_literal().is_some() && !self.config.allow_address_literals {
            let detail = "address literals are not probed unless allowed (--allow-literals)";
            let reason = Reason::InvalidSyntax;
            self.emit(VerifyResult {
                flags: address.flags(),
                ..VerifyResult::decided(tag, raw, Some(&address), reason, Some(detail.into()))
            });
            return;
        }
        let submitted = self.since_epoch(now);
        let deadline = options.deadline.map(|deadline| {
            let nanos = u64::try_from(deadline.as_nanos()).unwrap_or(u64::MAX);
            submitted.saturating_add(nanos)
        });
        let urgent = options.priority == Priority::RealTime;
        let key = self.duplicates.key(address.mailbox());
        if let Some(slot) = self.duplicates.in_flight(key)
            && let Some(job) = self.jobs.key_at(slot)
            && let Some(j) = self.jobs.get_mut(job)
            && j.address.mailbox() == address.mailbox()
        {
            j.rare().joined.push(Joined {
                tag,
                address: raw.to_owned(),
                submitted,
                deadline,
            });
            let hurry = urgent && !j.urgent;
            j.urgent |= urgent;
            self.stats.joined += 1;
            self.joined_waiting += 1;
            if let Some(deadline) = deadline {
                let at = self.at_since_epoch(deadline);
                self.push_timer(at, Timer::Deadline(job, tag));
            }
            if hurry {
                self.hurry(job);
            }
            return;
        }
        if let Some(result) = self.duplicates.recall(key, address.mailbox(), tag, raw) {
            self.stats.remembered += 1;
            self.emit(result);
            return;
        }
        let domain = self.domain_for(&address, now);
        let mut j = Job::new(tag, address, submitted, domain);
        j.urgent = urgent;
        if deadline.is_some() {
            j.rare().deadline = deadline;
        }
        let job = self.jobs.insert(j);
        self.duplicates.started(key, job);
        if let Some(deadline) = deadline {
            let at = self.at_since_epoch(deadline);
            self.push_timer(at, Timer::Deadline(job, tag));
        }
        match &self.domains[domain].route {
            RouteState::Failed(decided) => {
                let decided = decided.clone();
                self.finish_job(job, decided, now);
            }
            RouteState::Resolving => self.enqueue(job, domain),
            RouteState::Ready => {
                self.enqueue(job, domain);
                self.mark_ready(domain);
                if urgent {
                    self.mark_urgent(domain);
                }
            }
        }
        // Sessions start at the next timeout, not now: the rest of a burst of submissions
        // joins the queue first, and addresses of one domain share sessions.
        if self.schedule_at.is_none() {
            self.schedule_at = Some(now);
            self.push_timer(now, Timer::Schedule);
        }
    }

    /// The connection `conn` is up.
    pub fn handle_connected(&mut self, conn: ConnId, now: Instant) {
        // Through a proxy, the server is reached when the tunnel opens, not now.
        if let Some(c) = self.conns.get_mut(&conn.0)
            && c.tunnel.is_none()
        {
            c.session.handle_connected(now);
        }
        self.after_session(conn.0, now);
        self.pump(now);
    }

    /// Bytes arrived on `conn`.
    pub fn handle_input(&mut self, conn: ConnId, bytes: &[u8], now: Instant) {
        if let Some(c) = self.conns.get_mut(&conn.0) {
            match c.tunnel.as_mut() {
                None => c.session.handle_input(bytes, now),
                Some(tunnel) => match tunnel.0.handle_input(bytes) {
                    Ok(Progress::Pending) => {}
                    Ok(Progress::Open { leftover }) => {
                        self.proxies.succeeded(tunnel.1);
                        c.tunnel = None;
                        c.session.handle_connected(now);
                        if leftover < bytes.len() {
                            c.session.handle_input(&bytes[leftover..], now);
                        }
                    }
                    // The proxy reached out and the server refused or was unreachable: what a
                    // direct connection would have met, unless the proxy reaches no server at
                    // all while another does (its own port 25 blocked).
                    Err(error) if error.reaches_the_server() => {
                        let (proxy, server) = (tunnel.1, tunnel.0.target());
                        if self.proxies.reported_unreachable(proxy, server) {
                            let why = format!(
                                "{error}, and so it has said of {} different mail servers in a \
                                 row while another proxy of the pool reaches them: its own \
                                 port 25 is likely blocked",
                                super::proxies::UNREACHABLE_TO_SUSPECT
                            );
                            self.proxy_failed(conn.0, proxy, why, now);
                        } else {
                            c.tunnel = None;
                            c.session.handle_closed(now);
                        }
                    }
                    Err(error) => {
                        let proxy = tunnel.1;
                        self.proxy_failed(conn.0, proxy, error.to_string(), now);
                    }
                },
            }
        }
        self.after_session(conn.0, now);
        self.pump(now);
    }

    /// `conn` failed to connect, was closed by the peer, or broke.
    pub fn handle_closed(&mut self, conn: ConnId, now: Instant) {
        if let Some(c) = self.conns.get_mut(&conn.0) {
            match c.tunnel.as_ref().map(|tunnel| tunnel.1) {
                None => c.session.handle_closed(now),
                Some(proxy) => self.proxy_failed(
                    conn.0,
                    proxy,
                    "the SOCKS5 proxy refused the connection or closed it before the tunnel \
                     opened"
                        .into(),
                    now,
                ),
            }
        }
        self.after_session(conn.0, now);
        self.pump(now);
    }

    /// The driver could not open `conn` for lack of resources (EMFILE, ENFILE, ENOBUFS): its
    /// addresses go back to their queue, nothing counts as a failure, and new connections
    /// wait a moment.
    pub fn handle_no_resources(&mut self, conn: ConnId, now: Instant) {
        let Some(c) = self.conns.remove(&conn.0) else {
            return;
        };
        self.stats.resource_backoffs += 1;
        self.release_capacity(&c);
        let domain = c.domain;
        if self.stopping {
            // Nothing starts again: what it carried is left for the next run, as a stop leaves
            // what was queued.
            for member in &c.members {
                match member {
                    Member::Job(job) => self.drop_after_stop(*job),
                    Member::Control => self.domains[domain].control_unsent(),
                }
            }
            for job in self.domains[domain].abandon() {
                self.drop_after_stop(job);
            }
            return;
        }
        for member in c.members.iter().rev() {
            match member {
                Member::Job(job) => self.domains[domain].queue.push_front(*job),
                Member::Control => self.domains[domain].control_unsent(),
            }
        }
        let until = now + RESOURCE_BACKOFF;
        self.backoff_until = Some(until);
        self.push_timer(until, Timer::Backoff);
        self.mark_ready(domain);
        self.pump(now);
    }

    /// A datagram for the DNS client.
    pub fn handle_udp(&mut self, socket: SocketId, from: SocketAddr, bytes: &[u8], now: Instant) {
        self.resolver.handle_udp(socket, from, bytes, now);
        self.pump(now);
    }

    /// Stream bytes for the DNS client.
    pub fn handle_tcp(&mut self, socket: SocketId, bytes: &[u8], now: Instant) {
        self.resolver.handle_tcp(socket, bytes, now);
        self.pump(now);
    }

    /// A DNS socket failed or closed.
    pub fn handle_dns_closed(&mut self, socket: SocketId, now: Instant) {
        self.resolver.handle_socket_closed(socket, now);
        self.pump(now);
    }

    /// Time has come for something.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.resolver.handle_timeout(now);
        while let Some((at, timer)) = self.timers.pop_due(now) {
            match timer {
                Timer::Session(conn) => {
                    let due = self
                        .conns
                        .get(&conn)
                        .is_some_and(|c| c.timer_at == Some(at));
                    if due {
                        if let Some(c) = self.conns.get_mut(&conn) {
                            c.timer_at = None;
                            // The deadline may have moved later since this entry was armed.
                            if c.session
                                .poll_timeout()
                                .is_some_and(|deadline| deadline <= now)
                            {
                                match c.tunnel.as_ref().map(|tunnel| tunnel.1) {
                                    // A deadline came while the tunnel was still being
                                    // opened (the session waits to connect until then): the
                                    // proxy's failure, not the server's.
                                    Some(proxy) => {
                                        self.proxy_failed(
                                            conn,
                                            proxy,
                                            "the SOCKS5 proxy did not open the tunnel within the \
                                             connect timeout"
                                                .into(),
                                            now,
                                        );
                                    }
                                    _ => c.session.handle_timeout(now),
                                }
                            }
                        }
                        self.after_session(conn, now);
                    }
                }
                Timer::Domain(domain) => {
                    if self.domains[domain].wake_at == Some(at) {
                        self.domains[domain].wake_at = None;
                        self.mark_ready_or_urgent(domain);
                    }
                }
                Timer::Gate(index) => {
                    if self.gates.is_due(index, at) {
                        let (domains, jobs) = (&self.domains, &self.jobs);
                        let opening = self
                            .gates
                            .open(index, now, |domain| front_is_urgent(&domains[domain], jobs));
                        for domain in opening.wake {
                            self.mark_ready_or_urgent(domain);
                        }
                        if let Some(again) = opening.again_at {
                            self.push_timer(again, Timer::Gate(index));
                        }
                    }
                }
                Timer::Retry(job, retries) => {
                    if let Some(j) = self.jobs.get(job)
                        && j.retries == retries
                    {
                        let domain = j.domain();
                        self.domains[domain].queue.push_back(job);
                        self.mark_ready(domain);
                    }
                }
                Timer::Backoff => {
                    if self.backoff_until.is_some_and(|until| until <= now) {
                        self.backoff_until = None;
                    }
                }
                Timer::Schedule => self.schedule_at = None,
                Timer::Deadline(job, tag) => self.past_deadline(job, tag, now),
            }
        }
        self.pump(now);
    }

    /// The next connection to open or close.
    #[must_use]
    pub fn poll_conn_io(&mut self) -> Option<ConnIo> {
        self.io.pop_front()
    }

    /// The next DNS socket operation.
    #[must_use]
    pub fn poll_dns_transmit(&mut self) -> Option<DnsTransmit> {
        self.resolver.poll_transmit()
    }

    /// The bytes waiting to be written on `conn`.
    #[must_use]
    pub fn output(&self, conn: ConnId) -> &[u8] {
        self.conns
            .get(&conn.0)
            .map_or(&[][..], |c| match &c.tunnel {
                Some(tunnel) => tunnel.0.output(),
                None => c.session.pending_output(),
            })
    }

    /// `n` bytes of [`output`](Self::output) were written.
    pub fn consume_output(&mut self, conn: ConnId, n: usize) {
        if let Some(c) = self.conns.get_mut(&conn.0) {
            match &mut c.tunnel {
                Some(tunnel) => tunnel.0.consume_output(n),
                None => c.session.consume_output(n),
            }
        }
    }

    /// What the outcomes of a session from `source` say of that address: refused by name (a
    /// refusal, at greeting or later, that names the client) counts against it and
    /// moves `domain` to the next address of the pool; an answer about a mailbox clears its
    /// record. Returns true if it was refused by name and another address of its family is
    /// well, so that the refused addresses are asked again from there. Through proxies the
    /// server never sees the source address: nothing is judged.
    fn judge_source(
        &mut self,
        source: Option<IpAddr>,
        domain: DomainId,
        settled: &[(Member, RecipientOutcome)],
        now: Instant,
    ) -> bool {
        let Some(source) = source.filter(|_| !self.proxies.configured()) else {
            return false;
        };
        let refused = settled.iter().any(|(_, outcome)| match outcome {
            RecipientOutcome::Replied {
                reply,
                reason: Reason::Blocked,
                ..
            } => names_the_client(&reply_text(reply), source),
            _ => false,
        });
        if refused {
            if self.sources.blocked(source, now) {
                self.stats.sources_benched += 1;
            }
            // Sessions in flight together fail together: the domain moves past this address
            // once, not once per session.
            let d = &mut self.domains[domain];
            let place = d.source_slot.wrapping_add(d.source_offset);
            if self.sources.pick(source, place, now) == Some(source) {
                d.source_offset = d.source_offset.wrapping_add(1);
            }
            return self.sources.another_is_well(source, now);
        }
        let answered = settled.iter().any(|(_, outcome)| {
            matches!(
                outcome,
                RecipientOutcome::Replied {
                    stage: Stage::RcptTo,
                    reason: Reason::Accepted
                        | Reason::MailboxNotFound
                        | Reason::MailboxDisabled
                        | Reason::MailboxFull,
                    ..
                }
            )
        });
        if answered {
            self.sources.answered(source);
        }
        false
    }

    /// The proxy of `conn` failed before the server was reached: it is charged with it (and
    /// benched if it keeps failing), and the session hands its recipients back.
    fn proxy_failed(&mut self, conn: u64, proxy: usize, why: String, now: Instant) {
        self.stats.proxy_failures += 1;
        self.proxies.failed(proxy, now);
        if let Some(c) = self.conns.get_mut(&conn) {
            // The work moves on to the next proxy of the pool, once however many sessions
            // failed at this one together.
            let d = &mut self.domains[c.domain];
            let place = d.source_slot.wrapping_add(d.proxy_offset);
            if self.proxies.pick(place, now) == Ok(proxy) {
                d.proxy_offset = d.proxy_offset.wrapping_add(1);
            }
            c.tunnel = None;
            c.proxy_failure = Some(why);
            c.session.handle_proxy_failed(now);
        }
    }

    /// The next verdict.
    #[must_use]
    pub fn poll_result(&mut self) -> Option<VerifyResult> {
        self.results.pop_front()
    }

    /// Gives back a verdict taken with [`poll_result`](Self::poll_result) that could not be
    /// handed on (the consumer is behind): it is the next one again, and still counts in
    /// [`pending`](Self::pending). The verdicts waiting for a slow consumer stay in one queue.
    pub fn unpoll_result(&mut self, result: VerifyResult) {
        self.results.push_front(result);
    }

    /// True while verdicts wait to be taken with [`poll_result`](Self::poll_result).
    #[must_use]
    pub fn has_results(&self) -> bool {
        !self.results.is_empty()
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next.
    #[must_use]
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        let own = self.with_timers(|timers, this| {
            timers.next_deadline(|at, timer| this.timer_is_live(at, timer))
        });
        match (own, self.resolver.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Addresses submitted and not finished, plus verdicts not yet taken with
    /// [`poll_result`](Self::poll_result): what a caller must count to keep memory bounded.
    #[must_use]
    pub fn pending(&self) -> usize {
        self.jobs.len() + self.joined_waiting + self.results.len()
    }

    /// True while the session on `conn` is running.
    #[must_use]
    pub fn has_conn(&self, conn: ConnId) -> bool {
        self.conns.contains_key(&conn.0)
    }

    /// Drops every address that is neither in a session nor answered, without a verdict, and
    /// returns how many: for a stop on request (Ctrl-C), where what was not asked is asked on
    /// the next run. So are accepted addresses whose domain's catch-all control is not in
    /// flight, now and as the sessions in flight accept more: without the control's answer an
    /// acceptance may be a catch-all's, and no verdict beats a wrong `deliverable`.
    pub fn abandon_queued(&mut self) -> usize {
        let mut keep = std::collections::HashSet::new();
        for conn in self.conns.values() {
            for member in &conn.members {
                if let Member::Job(job) = member {
                    keep.insert(*job);
                }
            }
        }
        self.stopping = true;
        for domain in &mut self.domains {
            // Not kept below: dropped with the rest.
            domain.abandon();
        }
        for domain in &self.domains {
            keep.extend(domain.held.iter().map(|(job, _)| *job));
        }
        let (mut abandoned, mut joined_dropped) = (0, 0);
        self.jobs.retain(|job, j| {
            let kept = keep.contains(&job);
            if !kept {
                let (own, joined) = unanswered(j);
                abandoned += own + joined;
                joined_dropped += joined;
            }
            kept
        });
        self.joined_waiting -= joined_dropped;
        self.ready.clear();
        self.urgent.clear();
        self.dropped_by_stop += abandoned;
        abandoned
    }

    /// Submissions a stop has dropped without a verdict: [`abandon_queued`]'s count, and the
    /// accepted addresses the sessions still in flight answered for domains whose catch-all
    /// control the stop left unasked.
    ///
    /// [`abandon_queued`]: Self::abandon_queued
    #[must_use]
    pub fn dropped_by_stop(&self) -> usize {
        self.dropped_by_stop
    }

    /// Drops `job` without a verdict, after a stop (see [`Scheduler::abandon_queued`]).
    fn drop_after_stop(&mut self, job: JobId) {
        if let Some(j) = self.jobs.remove(job) {
            let (own, joined) = unanswered(&j);
            self.joined_waiting -= joined;
            self.dropped_by_stop += own + joined;
        }
    }

    /// SMTP sessions in flight.
    #[must_use]
    pub fn sessions_in_flight(&self) -> usize {
        self.conns.len()
    }

    /// True when nothing is pending: no address, no session, nothing to hand out.
    #[must_use]
    pub fn is_idle(&self) -> bool {
        self.jobs.is_empty() && self.conns.is_empty() && self.results.is_empty()
    }

    /// Counters.
    #[must_use]
    pub fn stats(&self) -> EngineStats {
        self.stats
    }

    /// What the scheduler holds right now.
    #[must_use]
    pub fn census(&self) -> Census {
        Census {
            jobs: self.jobs.len(),
            held: self.domains.iter().map(|d| d.held.len()).sum(),
            queued: self.domains.iter().map(|d| d.queue.len()).sum(),
            sessions: self.conns.len(),
            domains: self.domains.len() - self.free_domains.len(),
            timers: self.timers.len(),
            results: self.results.len(),
            remembered: self.duplicates.remembered(),
        }
    }

    /// The DNS client's counters.
    #[must_use]
    pub fn resolver_stats(&self) -> crate::dns::ResolverStats {
        self.resolver.stats()
    }

    /// Domain `domain`'s catch-all answer, learned elsewhere: kept for when the domain's first
    /// address comes (as [`crate::ConfigBuilder::known_catch_all`] gives it). A domain already
    /// met keeps its own answer, or its control under way. At most a million answers are
    /// kept.
    pub fn know_catch_all(&mut self, domain: &str, accepts_any: bool) {
        let domain = domain.to_ascii_lowercase();
        if self.by_name.contains_key(&domain)
            || self.config.known_catch_all.len() >= MAX_KNOWN_CATCH_ALL
        {
            return;
        }
        // A domain met and forgotten keeps its own answer too.
        self.config
            .known_catch_all
            .entry(domain)
            .or_insert(accepts_any);
    }

    /// How long domain `domain`'s greylisting held an address elsewhere (another prober of a
    /// fleet) before its server answered: its first retry after a "try again later" waits
    /// about that long, not `retry_delay`. A domain met already takes it if it is shorter than
    /// its own; one not yet met, when it comes (at most a million are kept).
    pub fn know_greylist_wait(&mut self, domain: &str, wait: Duration) {
        let domain = domain.to_ascii_lowercase();
        if let Some(&id) = self.by_name.get(&domain) {
            self.domains[id].learn_greylist_wait(wait);
        } else if self.known_greylist_waits.len() < MAX_KNOWN_GREYLIST_WAITS {
            let known = self.known_greylist_waits.entry(domain).or_insert(wait);
            *known = (*known).min(wait);
        }
    }

    fn domain_for(&mut self, address: &Address, now: Instant) -> DomainId {
        let name = address.domain();
        if let Some(&id) = self.by_name.get(name) {
            return id;
        }
        if self.free_domains.is_empty() && self.domains.len() >= self.sweep_at {
            self.forget_idle_domains(now);
        }
        let source_slot = self.source_rotation;
        self.source_rotation = self.source_rotation.wrapping_add(1);
        let mut domain = Domain::new(address, source_slot, self.config.rcpts_per_session.max(1));
        if let Some(&accepts_any) = self.config.known_catch_all.get(name) {
            domain.know_catch_all(accepts_any);
        }
        if let Some(wait) = self.known_greylist_waits.remove(name) {
            domain.learn_greylist_wait(wait);
        }
        if let Some(ip) = address.address_literal() {
            match special_purpose(ip).filter(|_| !self.config.allow_private_mx) {
                Some(range) => {
                    domain.route =
                        RouteState::Failed(Decided::only_special_purpose(name, ip, range));
                }
                None => match self.unreachable_because(ip) {
                    Some(why) => {
                        domain.route = RouteState::Failed(Decided::unreachable(name, ip, why));
                    }
                    None => domain.route_ready(vec![Target::new(name.to_owned(), ip, None)]),
                },
            }
        }
        let id = match self.free_domains.pop() {
            Some(id) => {
                self.domains[id] = domain;
                id
            }
            None => {
                self.domains.push(domain);
                self.domains.len() - 1
            }
        };
        self.by_name.insert(name.to_owned(), id);
        if address.address_literal().is_none() {
            let route = self.resolver.resolve(name, now);
            self.routing.insert(route, id);
        }
        id
    }

    /// Forgets the domains nothing refers to and nothing waits on ([`Domain::is_forgettable`],
    /// and no job, session, lookup, line, gate, slot or timer names them): their indices go to
    /// new domains, and their catch-all answers and greylisting waits are kept by name, as
    /// learned elsewhere, for when they come again. The next look is when the table has grown
    /// to twice what was left (at least [`FORGET_SWEEP_MIN`]): linear work, amortised.
    fn forget_idle_domains(&mut self, now: Instant) {
        let mut named = vec![false; self.domains.len()];
        let mut mark = |domain: DomainId| {
            if let Some(named) = named.get_mut(domain) {
                *named = true;
            }
        };
        self.jobs.values().for_each(|j| mark(j.domain()));
        self.conns.values().for_each(|c| mark(c.domain));
        self.routing.values().copied().for_each(&mut mark);
        self.ready.iter().copied().for_each(&mut mark);
        self.urgent.iter().copied().for_each(&mut mark);
        self.mx_slots.waiting_domains().for_each(&mut mark);
        self.gates.waiting_domains().for_each(&mut mark);
        self.timers.domains().for_each(&mut mark);
        // A sweep runs only when no place is free: every place holds a domain.
        debug_assert!(self.free_domains.is_empty());
        for (id, domain) in self.domains.iter_mut().enumerate() {
            if named[id] || !domain.is_forgettable(now) {
                continue;
            }
            let name = std::mem::take(&mut domain.name);
            self.by_name.remove(&name);
            if let Some(accepts_any) = domain.catch_all_known()
                && self.config.known_catch_all.len() < MAX_KNOWN_CATCH_ALL
            {
                self.config
                    .known_catch_all
                    .insert(name.clone(), accepts_any);
            }
            if let Some(wait) = domain.greylist_wait
                && self.known_greylist_waits.len() < MAX_KNOWN_GREYLIST_WAITS
            {
                self.known_greylist_waits.insert(name, wait);
            }
            // What it held goes now, not when its index is taken again.
            *domain = Domain::forgotten();
            self.free_domains.push(id);
        }
        let live = self.domains.len() - self.free_domains.len();
        self.sweep_at = (live * 2).max(self.sweep_min);
        self.stats.domains_forgotten += self.free_domains.len() as u64;
    }

    /// Looks for idle domains to forget from a table of `domains` on, not 65,536: for tests
    /// and simulations, whose worlds are small.
    #[doc(hidden)]
    pub fn forget_domains_from(&mut self, domains: usize) {
        self.sweep_min = domains;
        self.sweep_at = domains;
    }

    /// Hands finished routes to their domains, then starts what can start.
    fn pump(&mut self, now: Instant) {
        while let Some(event) = self.resolver.poll_event() {
            if let Some(domain) = self.routing.remove(&event.id) {
                self.on_route(domain, event.result, now);
            }
        }
        self.schedule(now);
    }

    /// A domain's route is known: its targets are the addresses of its MX hosts in failover
    /// order, less those at special-purpose addresses (RFC 6890) unless the configuration
    /// allows them — a domain anyone can point at 10.0.0.5 or 169.254.169.254 must not aim
    /// the prober at its own network.
    fn on_route(&mut self, domain: DomainId, result: Result<MailRoute, RouteError>, now: Instant) {
        let route = match result {
            Ok(route) => route,
            Err(error) => return self.fail_route(domain, Decided::route_failed(error), now),
        };
        let allow_private = self.config.allow_private_mx;
        let mut refused = None;
        let mut unreachable = None;
        let mut targets = Vec::new();
        for host in &route.hosts {
            let provider = if self.config.provider_profiles {
                providers::by_mx_host(&host.name)
            } else {
                None
            };
            for &ip in &host.addresses {
                if let Some(range) = special_purpose(ip).filter(|_| !allow_private) {
                    refused.get_or_insert((host.name.as_str(), ip, range));
                } else if let Some(why) = self.unreachable_because(ip) {
                    unreachable.get_or_insert((host.name.as_str(), ip, why));
                } else {
                    targets.push(Target::new(host.name.clone(), ip, provider));
                }
            }
        }
        if targets.is_empty() {
            let decided = match (refused, unreachable) {
                (Some((host, ip, range)), _) => Decided::only_special_purpose(host, ip, range),
                (None, Some((host, ip, why))) => Decided::unreachable(host, ip, why),
                (None, None) => Decided::route_failed(RouteError::NoMailServer),
            };
            return self.fail_route(domain, decided, now);
        }
        self.domains[domain].route_ready(targets);
        self.mark_ready(domain);
        if self.front_is_urgent(domain) {
            self.mark_urgent(domain);
        }
    }

    /// Why this prober does not connect to `ip`, if it does not: its family is not the
    /// configured one, or no configured source address is of its family.
    fn unreachable_because(&self, ip: IpAddr) -> Option<&'static str> {
        if !self.config.ip_version.allows(ip) {
            return Some(if ip.is_ipv4() {
                "--ip-version 6 asks for IPv6 only"
            } else {
                "--ip-version 4 asks for IPv4 only"
            });
        }
        // Through proxies, the source address faces the proxy, not the server.
        (!self.config.source_ips.is_empty()
            && self.config.proxies.is_empty()
            && !self.sources.has_family_of(ip))
        .then_some("no --source-ip of that family is configured")
    }

    /// True if the first address queued at `domain` is real-time.
    fn front_is_urgent(&self, domain: DomainId) -> bool {
        front_is_urgent(&self.domains[domain], &self.jobs)
    }

    /// No session can start for `domain`: every address there, queued or to come, gets
    /// `decided`.
    fn fail_route(&mut self, domain: DomainId, decided: Decided, now: Instant) {
        self.domains[domain].route = RouteState::Failed(decided.clone());
        let jobs: Vec<JobId> = self.domains[domain].queue.drain(..).collect();
        for job in jobs {
            self.finish_job(job, decided.clone(), now);
        }
    }

    /// Puts `domain` in line: ahead of the rest if it has real-time work queued.
    fn mark_ready_or_urgent(&mut self, domain: DomainId) {
        if self.front_is_urgent(domain) {
            self.mark_urgent(domain);
        } else {
            self.mark_ready(domain);
        }
    }

    fn mark_ready(&mut self, domain: DomainId) {
        let d = &mut self.domains[domain];
        if !d.in_ready {
            d.in_ready = true;
            self.ready.push_back(domain);
        }
    }

    /// Puts `domain` in line ahead of the rest: it has real-time work queued.
    fn mark_urgent(&mut self, domain: DomainId) {
        let d = &mut self.domains[domain];
        if !d.in_urgent {
            d.in_urgent = true;
            self.urgent.push_back(domain);
        }
    }

    /// Queues `job` at its domain: a real-time job behind the real-time ones already there,
    /// ahead of the rest.
    fn enqueue(&mut self, job: JobId, domain: DomainId) {
        let urgent = self.jobs.get(job).is_some_and(|j| j.urgent);
        let queue = &mut self.domains[domain].queue;
        if urgent {
            let at = queue
                .iter()
                .take_while(|queued| self.jobs.get(**queued).is_some_and(|j| j.urgent))
                .count();
            queue.insert(at, job);
        } else {
            queue.push_back(job);
        }
    }

    /// `job` just became real-time (a real-time submission joined it): if it waits in its
    /// domain's queue, it moves ahead, and the domain into the line for the next session.
    fn hurry(&mut self, job: JobId) {
        let Some(domain) = self.jobs.get(job).map(Job::domain) else {
            return;
        };
        let queue = &mut self.domains[domain].queue;
        if let Some(at) = queue.iter().position(|queued| *queued == job) {
            queue.remove(at);
            self.enqueue(job, domain);
            if matches!(self.domains[domain].route, RouteState::Ready) {
                self.mark_ready(domain);
                self.mark_urgent(domain);
            }
        }
    }

    /// The deadline of submission `tag` of `job` has come: it is answered `unknown/timeout`
    /// now, and the probe goes on for the others and for memory.
    fn past_deadline(&mut self, job: JobId, tag: u64, now: Instant) {
        let elapsed_now = self.since_epoch(now);
        let Some(j) = self.jobs.get_mut(job) else {
            return;
        };
        let Some(rare) = j.rare.as_mut() else {
            return;
        };
        let (address, submitted, deadline) = if j.tag == tag && !rare.answered {
            let Some(deadline) = rare.deadline else {
                return;
            };
            rare.answered = true;
            (j.address.original().to_owned(), j.submitted, deadline)
        } else if let Some(at) = rare.joined.iter().position(|joined| joined.tag == tag) {
            let joined = rare.joined.swap_remove(at);
            let Some(deadline) = joined.deadline else {
                rare.joined.push(joined);
                return;
            };
            self.joined_waiting -= 1;
            (joined.address, joined.submitted, deadline)
        } else {
            return;
        };
        let waited = Duration::from_nanos(deadline.saturating_sub(submitted));
        let j = &self.jobs[job];
        let domain = &self.domains[j.domain()];
        let detail = format!(
            "no verdict within the {waited:?} the submission allowed; the probe goes on, and a \
             later submission of this mailbox gets its result"
        );
        let result = VerifyResult {
            flags: Flags {
                role: is_role_account(j.address.local_part()),
                disposable: domain.disposable,
                free: domain.free,
            },
            suggestion: domain.suggestion,
            attempts: u32::from(j.attempts),
            elapsed: Duration::from_nanos(elapsed_now.saturating_sub(submitted)),
            ..VerifyResult::decided(
                tag,
                &address,
                Some(&j.address),
                Reason::Timeout,
                Some(detail),
            )
        };
        self.stats.past_deadline += 1;
        self.emit(result);
    }

    /// Starts sessions while there is room, one per domain per turn.
    fn schedule(&mut self, now: Instant) {
        if self.stopping || self.backoff_until.is_some_and(|until| until > now) {
            return;
        }
        // Domains with someone waiting first, then rounds over the ready domains, one session
        // each per round, until the room is used up or a whole round starts nothing.
        while let Some(domain) = self.urgent.pop_front() {
            if self.conns.len() >= self.config.concurrency.max(1) {
                self.urgent.push_front(domain);
                return;
            }
            self.domains[domain].in_urgent = false;
            if self.try_start(domain, now) && self.domains[domain].has_work() {
                self.mark_ready(domain);
            }
        }
        loop {
            let round = self.ready.len();
            let mut started = 0;
            for _ in 0..round {
                if self.conns.len() >= self.config.concurrency.max(1) {
                    return;
                }
                let Some(domain) = self.ready.pop_front() else {
                    break;
                };
                self.domains[domain].in_ready = false;
                if self.try_start(domain, now) {
                    started += 1;
                    if self.domains[domain].has_work() {
                        self.mark_ready(domain);
                    }
                }
            }
            if started == 0 {
                return;
            }
        }
    }

    /// Starts one session for `domain` if politeness allows; otherwise arranges to be woken.
    fn try_start(&mut self, domain: DomainId, now: Instant) -> bool {
        if !self.domains[domain].has_work()
            || !matches!(self.domains[domain].route, RouteState::Ready)
        {
            return false;
        }
        if let Some(at) = self.domains[domain].rate_wait(now) {
            self.wake_domain(domain, at);
            return false;
        }
        // The first target not cooling down; a lower-preference MX only after the ones before.
        let target = match self.domains[domain].available_target(now) {
            Ok(target) => target,
            Err(soonest) => {
                if let Some(soonest) = soonest {
                    self.wake_domain(domain, soonest);
                }
                return false;
            }
        };
        let ip = self.domains[domain].targets[target].ip;
        let provider = self.domains[domain].targets[target].provider;
        let politeness = provider.map(|p| &p.profile.politeness);
        if let Some(provider) = provider
            && let Pass::Wait(timer) = self.gates.pass(provider, domain, now)
        {
            if let Some(at) = timer {
                self.push_timer(at, Timer::Gate(provider.index()));
            }
            return false;
        }
        let proxy = if self.proxies.configured() {
            let d = &self.domains[domain];
            match self
                .proxies
                .pick(d.source_slot.wrapping_add(d.proxy_offset), now)
            {
                Ok(proxy) => Some(proxy),
                Err(back) => {
                    // Every proxy is benched: wait for the first to come back.
                    self.wake_domain(domain, back);
                    return false;
                }
            }
        } else {
            None
        };
        // What the connection goes to (the server, or the proxy), and the source address of
        // its family the domain's place in the rotation gives.
        let server = SocketAddr::new(ip, self.config.smtp_port);
        let to = proxy.map_or(server, |proxy| self.proxies.get(proxy).0);
        let from = {
            let d = &self.domains[domain];
            self.sources
                .pick(to.ip(), d.source_slot.wrapping_add(d.source_offset), now)
        };
        let per_mx = politeness
            .and_then(|p| p.sessions_per_mx)
            .map_or(self.config.per_mx, |cap| cap.min(self.config.per_mx));
        // The server counts its clients by the address it sees: the proxy's, or the source's.
        let slot: SlotKey = (if proxy.is_some() { Some(to.ip()) } else { from }, ip);
        if self.mx_slots.is_full(slot, per_mx.max(1)) {
            self.mx_slots.wait(slot, domain);
            return false;
        }

        // The catch-all control goes with the addresses, alone in a session of its own, or
        // not at all, as the provider's profile says.
        let control_mode = provider.map_or(ControlMode::SameSession, |p| p.profile.control);
        if control_mode == ControlMode::None
            && self.domains[domain].control_due()
            && !self.domains[domain].held.is_empty()
        {
            // Addresses accepted at another of the domain's servers wait for a control this
            // one cannot answer meaningfully: the answer stays unknown, and they go.
            self.give_up_control(domain, now);
        }
        let control = self.config.catch_all
            && control_mode != ControlMode::None
            && self.domains[domain].control_due();
        let rcpts = politeness
            .and_then(|p| p.rcpts_per_session)
            .unwrap_or(usize::MAX)
            .max(1);
        let limit = match (control, control_mode) {
            (true, ControlMode::OwnSession) => 0,
            (true, _) => self.domains[domain].batch_limit.min(rcpts - 1),
            (false, _) => self.domains[domain].batch_limit.min(rcpts),
        };
        // A session that would leave room: with one in flight here already, wait for it to
        // end (it brings the domain back, and the queue will have grown) rather than spend a
        // connection on a few addresses; with none, give a fresh address a moment for company.
        let urgent = self.front_is_urgent(domain);
        let d = &self.domains[domain];
        if d.queue.len() < limit && !urgent {
            if d.sessions > 0 {
                return false;
            }
            if let Some(first) = d.queue.front().and_then(|job| self.jobs.get(*job))
                && first.attempts == 0
            {
                let full_or_not = self.at_since_epoch(first.submitted) + BATCH_HOLD;
                if full_or_not > now {
                    self.wake_domain(domain, full_or_not);
                    return false;
                }
            }
        }
        // Sized once: the queued addresses it can take, and room for a catch-all control.
        let mut members: Vec<Member> =
            Vec::with_capacity(limit.min(self.domains[domain].queue.len()) + 1);
        while members.len() < limit {
            let Some(job) = self.domains[domain].queue.pop_front() else {
                break;
            };
            if self.jobs.contains(job) {
                members.push(Member::Job(job));
            }
        }
        if control && self.domains[domain].take_control() {
            members.push(Member::Control);
            self.stats.controls += 1;
        }
        if members.is_empty() {
            return false;
        }
        // The catch-all control, if there is one, is the last member.
        let control = matches!(members.last(), Some(Member::Control)).then(|| {
            format!(
                "{}@{}",
                control_local_part(&mut self.rng),
                self.domains[domain].name
            )
        });
        let control = control.as_deref().unwrap_or_default();
        let recipient = |member: &Member| match member {
            Member::Job(job) => Recipient {
                mailbox: self.jobs[*job].address.mailbox(),
                smtputf8: self.jobs[*job].address.needs_smtputf8(),
            },
            Member::Control => Recipient {
                mailbox: control,
                smtputf8: false,
            },
        };
        let bytes = members.iter().map(|m| recipient(m).mailbox.len()).sum();
        let mut recipients = Recipients::with_capacity(members.len(), bytes);
        for member in &members {
            recipients.push(recipient(member));
        }
        let mut lock_step = self.domains[domain].targets[target].lock_step;
        for member in &members {
            if let Member::Job(job) = member
                && let Some(j) = self.jobs.get_mut(*job)
            {
                j.attempts = j.attempts.saturating_add(1);
                lock_step |= j.lock_step;
            }
        }
        self.stats.sessions += 1;
        self.stats.rcpts += recipients.len() as u64;
        let conn = self.next_conn;
        self.next_conn += 1;
        let config = if lock_step {
            &self.lock_step_config
        } else {
            &self.session_config
        };
        let server_name = {
            let t = &self.domains[domain].targets[target];
            crate::tls::server_name(&t.host, t.ip)
        };
        let mut session =
            Session::new(Arc::clone(config), recipients, now).with_server_name(server_name);
        if self.domains[domain].tls_first {
            session = session.with_starttls(StartTls::Always);
        } else if self
            .plain_text_servers
            .contains(&self.domains[domain].targets[target].ip)
        {
            session = session.with_plain_text_known();
        }
        self.mx_slots.take(slot);
        if let Some(provider) = provider {
            self.gates.connected(provider, now);
        }
        let d = &mut self.domains[domain];
        d.session_started(now, self.config.domain_rate);
        let tunnel = proxy.map(|proxy| {
            let (_, credentials, by_name) = self.proxies.get(proxy);
            let mut handshake = Handshake::new(server, credentials);
            if by_name {
                handshake = handshake.by_name(&self.domains[domain].targets[target].host);
            }
            Box::new((handshake, proxy))
        });
        let urgent = members.iter().any(
            |m| matches!(m, Member::Job(job) if self.jobs.get(*job).is_some_and(|j| j.urgent)),
        );
        let by_name = tunnel.as_ref().is_some_and(|t| t.0.name().is_some());
        let opened = self.since_epoch(now);
        self.conns.insert(
            conn,
            Box::new(Conn {
                opened,
                session,
                domain,
                members,
                target,
                timer_at: None,
                answered: 0,
                deferred: Vec::new(),
                tunnel,
                proxy_failure: None,
                source: from,
                slot,
                by_name,
            }),
        );
        self.io.push_back(ConnIo::Connect {
            conn: ConnId(conn),
            to,
            from,
            urgent,
        });
        self.stats.peak_sessions = self.stats.peak_sessions.max(self.conns.len() as u64);
        self.arm_session_timer(conn);
        true
    }

    /// Entries in the timer heap, live and dead: for tests of its compaction.
    #[cfg(test)]
    pub(crate) fn timer_entries(&self) -> usize {
        self.timers.len()
    }

    /// True if the heap entry (`at`, `timer`) is still wanted: its owner exists and still
    /// waits for exactly that moment.
    fn timer_is_live(&self, at: Instant, timer: Timer) -> bool {
        match timer {
            Timer::Session(conn) => self
                .conns
                .get(&conn)
                .is_some_and(|c| c.timer_at == Some(at)),
            Timer::Domain(domain) => self.domains[domain].wake_at == Some(at),
            Timer::Retry(job, retries) => self.jobs.get(job).is_some_and(|j| j.retries == retries),
            Timer::Backoff => self.backoff_until == Some(at),
            Timer::Schedule => self.schedule_at == Some(at),
            Timer::Gate(index) => self.gates.is_due(index, at),
            Timer::Deadline(job, tag) => self.jobs.get(job).is_some_and(|j| {
                j.rare.as_ref().is_some_and(|rare| {
                    (j.tag == tag && !rare.answered && rare.deadline.is_some())
                        || rare.joined.iter().any(|joined| joined.tag == tag)
                })
            }),
        }
    }

    /// Adds a deadline, first dropping the dead entries if they have come to fill half the
    /// heap: memory stays proportional to what is live, at amortised constant cost per entry.
    fn push_timer(&mut self, at: Instant, timer: Timer) {
        self.with_timers(|timers, this| {
            timers.compact_if_due(|at, timer| this.timer_is_live(at, timer));
        });
        self.timers.push(at, timer);
    }

    /// Runs `f` on the timer heap beside the rest of the scheduler, which liveness reads. The
    /// heap is moved out for the call (a few words, no allocation) and back after.
    #[inline]
    fn with_timers<R>(&mut self, f: impl FnOnce(&mut Timers, &Self) -> R) -> R {
        let mut timers = std::mem::take(&mut self.timers);
        let result = f(&mut timers, self);
        self.timers = timers;
        result
    }

    fn wake_domain(&mut self, domain: DomainId, at: Instant) {
        if self.domains[domain].wake(at) {
            self.push_timer(at, Timer::Domain(domain));
        }
    }

    /// Makes sure the heap holds an entry no later than the session's deadline. Deadlines
    /// mostly move later (each reply starts the next wait), so the entry already there is
    /// kept and re-armed when it fires: the heap holds about one entry per session, not one
    /// per reply.
    fn arm_session_timer(&mut self, conn: u64) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let Some(at) = c.session.poll_timeout() else {
            return;
        };
        if c.timer_at.is_none_or(|armed| at < armed) {
            c.timer_at = Some(at);
            self.push_timer(at, Timer::Session(conn));
        }
    }

    /// Collects what a session settled; ends it when it is over.
    fn after_session(&mut self, conn: u64, now: Instant) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        // The scratch list keeps its room from one session's replies to the next.
        let mut settled = std::mem::take(&mut self.settled);
        let mut finished = false;
        let mut closing = None;
        let mut tls = None;
        let mut tls_failure = None;
        while let Some(event) = c.session.poll_event() {
            match event {
                SessionEvent::Recipient { index, outcome } => {
                    settled.push((c.members[index], outcome));
                }
                SessionEvent::Finished(summary) => {
                    finished = true;
                    closing = summary.closing;
                    tls = summary.tls;
                    tls_failure = summary.tls_failure;
                    self.stats.tls_sessions += u64::from(tls.is_some());
                    self.stats.tls_failures += u64::from(tls_failure.is_some());
                }
            }
        }
        if self.session_config.transcript {
            c.deferred.append(&mut settled);
            if !finished {
                self.settled = settled;
                self.arm_session_timer(conn);
                return;
            }
            std::mem::swap(&mut settled, &mut c.deferred);
        }
        let domain = c.domain;
        let target = c.target;
        let proxy_failure = c.proxy_failure.clone();
        let source = c.source;
        let by_name = c.by_name;
        let opened = c.opened;
        let transcript = if finished {
            c.session.transcript().map(ToString::to_string)
        } else {
            None
        };
        c.answered += settled
            .iter()
            .filter(|(_, o)| matches!(o, RecipientOutcome::Replied { .. }))
            .count();
        let answered = c.answered;
        if let Some(transcript) = &transcript {
            for member in &c.members {
                if let Member::Job(job) = member
                    && let Some(j) = self.jobs.get_mut(*job)
                {
                    j.rare()
                        .transcript
                        .get_or_insert_with(String::new)
                        .push_str(transcript);
                }
            }
        }
        // The provider's profile reads the replies it knows first; the answers of a session
        // come together when it ends (it holds them until it can vouch for their pairing),
        // and the refusals nothing explains are judged against each other then.
        let provider = self.domains[domain]
            .targets
            .get(target)
            .and_then(|t| t.provider);
        let profiled =
            provider.and_then(|provider| read_by_profile(provider, &mut settled, closing.as_ref()));
        let calibrations = if finished {
            let members = c.members.len();
            calibrate(
                &mut settled,
                members,
                |m| matches!(m, Member::Control),
                |i| profiled.as_ref().is_some_and(|rules| rules[i].is_some()),
            )
        } else {
            None
        };
        let refused_by_address = self.judge_source(source, domain, &settled, now);
        // A server that answered RCPT in plain text takes MAIL FROM without TLS: its next
        // sessions may end their last group with QUIT even though it offers STARTTLS.
        if tls.is_none()
            && self.plain_text_servers.len() < MAX_PLAIN_TEXT_SERVERS
            && settled.iter().any(|(_, outcome)| {
                matches!(
                    outcome,
                    RecipientOutcome::Replied {
                        stage: Stage::RcptTo,
                        ..
                    }
                )
            })
            && let Some(t) = self.domains[domain].targets.get(target)
        {
            self.plain_text_servers.insert(t.ip);
        }
        for (i, (member, outcome)) in settled.drain(..).enumerate() {
            let read_by = match (&profiled, &calibrations) {
                (Some(rules), _) if rules[i].is_some() => rules[i]
                    .zip(provider)
                    .map(|(rule, provider)| ReadBy::Profile(provider, rule)),
                (_, Some(notes)) => notes[i].map(ReadBy::Calibration),
                _ => None,
            };
            let facts = OutcomeFacts {
                answered,
                read_by,
                proxy_failure: proxy_failure.as_deref(),
                refused_by_address,
                tls,
                tls_failure: tls_failure.as_deref(),
                by_name,
                opened,
            };
            self.on_outcome(domain, target, member, outcome, &facts, now);
        }
        self.settled = settled;
        if finished {
            if let Some(c) = self.conns.remove(&conn) {
                let last_words = c.session.pending_output().to_vec();
                self.release_capacity(&c);
                self.io.push_back(ConnIo::Close {
                    conn: ConnId(conn),
                    last_words,
                });
            }
            if self.domains[domain].has_work() {
                self.mark_ready(domain);
            }
        } else {
            self.arm_session_timer(conn);
        }
    }

    /// A session ended or never started: its MX address has room again.
    fn release_capacity(&mut self, c: &Conn) {
        let d = &mut self.domains[c.domain];
        d.sessions = d.sessions.saturating_sub(1);
        if let Some(waiters) = self.mx_slots.release(c.slot) {
            for domain in waiters {
                // A domain with real-time work keeps its place ahead of the bulk ones that
                // waited for the same server.
                if self.front_is_urgent(domain) {
                    self.mark_urgent(domain);
                } else {
                    self.mark_ready(domain);
                }
            }
        }
    }

    /// What a session said about one of its recipients: the policy decides, the scheduler
    /// carries it out.
    fn on_outcome(
        &mut self,
        domain: DomainId,
        target: usize,
        member: Member,
        outcome: RecipientOutcome,
        facts: &OutcomeFacts<'_>,
        now: Instant,
    ) {
        let OutcomeFacts {
            answered,
            read_by,
            proxy_failure,
            refused_by_address,
            tls,
            tls_failure,
            by_name,
            opened,
        } = *facts;
        if outcome == RecipientOutcome::HandedBack(HandBack::TlsRequired) {
            self.domains[domain].tls_first = true;
            if let Some(t) = self.domains[domain].targets.get(target) {
                self.plain_text_servers.remove(&t.ip);
            }
        }
        let provider = self.domains[domain]
            .targets
            .get(target)
            .and_then(|t| t.provider);
        if let (Some(provider), Some(ReadBy::Profile(_, rule))) = (provider, read_by)
            && rule.means == Meaning::Throttled
        {
            let wait = self.config.throttle_backoff.unwrap_or(Duration::from_secs(
                provider.profile.politeness.backoff_secs,
            ));
            self.gates.throttled(provider, now, wait);
        }
        let Member::Job(job) = member else {
            let throttled = matches!(
                read_by,
                Some(ReadBy::Profile(_, rule)) if rule.means == Meaning::Throttled
            );
            self.on_control(domain, target, &outcome, throttled, now);
            return;
        };
        let Some(j) = self.jobs.get(job) else {
            return;
        };
        let d = &self.domains[domain];
        let server = d.targets.get(target);
        let control_sent_here = provider.is_none_or(|p| p.profile.control != ControlMode::None);
        let decision = policy::decide(
            outcome,
            &Facts {
                mx: server.map(|t| t.host.as_str()),
                ip: server.map(|t| t.ip).filter(|_| !by_name),
                read_by,
                provider,
                answered,
                retries: j.retries,
                retries_allowed: self.config.retries,
                retry_delay: self.config.retry_delay,
                greylist_wait: d.greylist_wait,
                awaits_catch_all: self.config.catch_all
                    && control_sent_here
                    && d.awaits_catch_all(),
                failovers: j.failovers,
                targets: d.targets.len(),
                handed_back: j.handed_back,
                lock_step: j.lock_step,
                throttled: j.throttled,
                proxy_failure,
                refused_by_address,
                detours: j.detours,
                tls,
                tls_failure,
            },
        );
        if let Some(note) = decision.server {
            self.domains[domain].learn(target, note, now);
        }
        match &decision.action {
            Action::Finish(decided) | Action::Hold(decided) => {
                self.note_greylist_pass(domain, target, job, decided.reason, opened);
            }
            Action::RetryAfter { last_temporary, .. }
                if last_temporary.reason == Reason::Greylisted =>
            {
                self.note_greylisted(domain, target, job, now);
            }
            _ => {}
        }
        self.carry_out(domain, job, decision.action, now);
    }

    /// `job`'s server at `target` said "greylisted, try again later": the first time, when and
    /// by whom, and whether the retry the policy just timed used the domain's known wait.
    fn note_greylisted(&mut self, domain: DomainId, target: usize, job: JobId, now: Instant) {
        let now_nanos = self.since_epoch(now);
        let known = self.domains[domain].greylist_wait.is_some();
        if let Some(j) = self.jobs.get_mut(job) {
            let first_retry = j.retries == 0;
            let rare = j.rare();
            if rare.greylisted_at.is_none() {
                rare.greylisted_at = Some(now_nanos);
                rare.greylisted_by = Some(target);
                rare.timed_by_known_wait = first_retry && known;
            }
        }
    }

    /// `job`'s server answered `reason` in the session opened at `opened` (nanoseconds since
    /// the epoch): if greylisting held it before, and nothing else, how long, for the result
    /// and for the domain's next "try again later".
    ///
    /// The wait is measured to the session's start, not to the reply: the server let the
    /// address through by then, and time spent queued or in the session does not swell it. A
    /// sample is not learned from when the address was slowed by something else since (a
    /// provider's "slow down", another server, another route), nor when the first retry was
    /// timed by a wait known already and went through: that confirms the wait, and learning
    /// from it would only lengthen it a tenth at a time. A known wait that proved too short
    /// (the first retry greylisted again) is replaced by the new sample; otherwise the
    /// shortest sample is kept. None is kept longer than the configured retries would have
    /// waited in all.
    fn note_greylist_pass(
        &mut self,
        domain: DomainId,
        target: usize,
        job: JobId,
        reason: Reason,
        opened: u64,
    ) {
        if !matches!(
            reason,
            Reason::Accepted | Reason::MailboxNotFound | Reason::MailboxDisabled
        ) {
            return;
        }
        let Some(j) = self.jobs.get_mut(job) else {
            return;
        };
        let clean = j.throttled == 0 && j.failovers == 0 && j.detours == 0;
        let retries = j.retries;
        let Some(rare) = j.rare.as_deref_mut() else {
            return;
        };
        let (Some(at), Some(server)) = (rare.greylisted_at, rare.greylisted_by) else {
            return;
        };
        if !clean || server != target {
            return;
        }
        let wait = Duration::from_nanos(opened.saturating_sub(at));
        rare.greylist_wait = Some(wait);
        if rare.timed_by_known_wait && retries == 1 {
            return;
        }
        let timed = rare.timed_by_known_wait;
        let schedule = self
            .config
            .retry_delay
            .saturating_mul(2u32.saturating_pow(self.config.retries).saturating_sub(1));
        let d = &mut self.domains[domain];
        if timed {
            d.greylist_wait = Some(wait.min(schedule));
        } else {
            d.learn_greylist_wait(wait.min(schedule));
        }
    }

    /// Does what the policy decided for `job` (queued at `domain`).
    fn carry_out(&mut self, domain: DomainId, job: JobId, action: Action, now: Instant) {
        let Some(j) = self.jobs.get_mut(job) else {
            return;
        };
        match action {
            Action::Finish(decided) => self.finish_job(job, decided, now),
            Action::RetryAfter {
                delay,
                last_temporary,
            } => {
                j.rare().last_temporary = Some(last_temporary);
                j.retries += 1;
                self.stats.retries += 1;
                let retries = j.retries;
                self.push_timer(now + delay, Timer::Retry(job, retries));
            }
            Action::Hold(_) if self.domains[domain].catch_all_unasked() => {
                self.drop_after_stop(job);
            }
            Action::Hold(decided) => {
                if self.domains[domain].hold(job, decided) {
                    self.mark_ready(domain);
                }
            }
            Action::Requeue => {
                // Not marked ready: the session that handed it back is ending, and its end
                // brings the domain back.
                j.handed_back = j.handed_back.saturating_add(1);
                self.domains[domain].queue.push_front(job);
            }
            Action::LockStepRetry => {
                j.lock_step = true;
                self.stats.lock_step_retries += 1;
                self.domains[domain].queue.push_front(job);
                self.mark_ready(domain);
            }
            Action::FailOver => {
                j.failovers = j.failovers.saturating_add(1);
                self.stats.failovers += 1;
                self.domains[domain].queue.push_front(job);
                self.mark_ready(domain);
            }
            Action::LastServerFailed(decided) => {
                self.stats.failovers += 1;
                self.finish_job(job, decided, now);
            }
            Action::Detour => {
                // The domain has moved on to its next proxy or source address already.
                j.detours = j.detours.saturating_add(1);
                self.domains[domain].queue.push_front(job);
                self.mark_ready(domain);
            }
            Action::Throttled => {
                // The provider's gate is closed (`on_outcome`): the domain finds it so and
                // waits for it to open.
                j.throttled = j.throttled.saturating_add(1);
                self.stats.throttled += 1;
                self.domains[domain].queue.push_front(job);
                self.mark_ready(domain);
            }
        }
    }

    /// The catch-all control's answer, and the addresses that waited for it.
    fn on_control(
        &mut self,
        domain: DomainId,
        target: usize,
        outcome: &RecipientOutcome,
        throttled: bool,
        now: Instant,
    ) {
        let d = &mut self.domains[domain];
        let decision = policy::decide_control(
            outcome,
            &ControlFacts {
                retries_allowed: self.config.retries,
                targets: d.targets.len(),
                attempts: d.control_attempts(),
                stopping: self.stopping,
                throttled,
            },
        );
        if let Some(note) = decision.server {
            d.learn(target, note, now);
        }
        d.settle_control(decision.answer);
        match decision.answer {
            ControlAnswer::Known(_) | ControlAnswer::Inconclusive => {
                for (job, decided) in std::mem::take(&mut d.held) {
                    self.finish_job(job, decided, now);
                }
            }
            ControlAnswer::AskAgain => {
                if !d.held.is_empty() || !d.queue.is_empty() {
                    self.mark_ready(domain);
                }
            }
            ControlAnswer::Unasked => {
                for (job, _) in std::mem::take(&mut d.held) {
                    self.drop_after_stop(job);
                }
            }
        }
    }

    /// The catch-all control cannot be asked: the domain's answer stays unknown, and the
    /// addresses held for it get their verdicts.
    fn give_up_control(&mut self, domain: DomainId, now: Instant) {
        let d = &mut self.domains[domain];
        d.settle_control(ControlAnswer::Inconclusive);
        for (job, decided) in std::mem::take(&mut d.held) {
            self.finish_job(job, decided, now);
        }
    }

    /// `now` in nanoseconds since the epoch (which the first call sets).
    fn since_epoch(&mut self, now: Instant) -> u64 {
        let epoch = *self.epoch.get_or_insert(now);
        u64::try_from(now.saturating_duration_since(epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    /// The instant `nanos` after the epoch (`since_epoch` has set it: a job exists).
    fn at_since_epoch(&self, nanos: u64) -> Instant {
        let epoch = self
            .epoch
            .expect("the epoch is set by the first submission");
        epoch + Duration::from_nanos(nanos)
    }

    /// The verdict for `job`: the rules that combine facts, then out.
    fn finish_job(&mut self, job: JobId, decided: Decided, now: Instant) {
        let Some(j) = self.jobs.remove(job) else {
            return;
        };
        let elapsed = Duration::from_nanos(self.since_epoch(now).saturating_sub(j.submitted));
        let domain = &self.domains[j.domain()];
        let Rare {
            last_temporary,
            transcript,
            deadline: _,
            answered,
            joined,
            greylist_wait,
            ..
        } = j.rare.map(|rare| *rare).unwrap_or_default();
        // A retried address that never got past 4xx keeps its last 4xx reply.
        let decided = match (&decided.reason, last_temporary) {
            (Reason::Timeout | Reason::ConnectionFailed, Some(last)) => last,
            _ => decided,
        };
        let catch_all = domain.catch_all_known();
        let reason = final_reason(decided.reason, catch_all, domain.disposable);
        // An acceptance the catch-all answer made `accept_all`: the provider's profile may say
        // why its servers take every recipient.
        let decided = if reason == Reason::AcceptAll
            && decided.reason == Reason::Accepted
            && decided.detail.is_none()
            && self.config.provider_profiles
        {
            // The provider of the server that accepted (the domain's targets know it).
            let why = domain
                .targets
                .iter()
                .find(|t| t.provider.is_some() && Some(t.ip) == decided.ip)
                .and_then(|t| t.provider)
                .and_then(|p| Some((p, p.profile.catch_all.as_ref()?)))
                .map(|(p, cited)| format!("{} profile: {}", p.name, cited.detail));
            Decided {
                detail: why,
                ..decided
            }
        } else {
            decided
        };
        let flags = Flags {
            role: is_role_account(j.address.local_part()),
            disposable: domain.disposable,
            free: domain.free,
        };
        let suggestion = domain.suggestion;
        let result = VerifyResult {
            tag: j.tag,
            address: j.address.original().to_owned(),
            mailbox: Some(j.address.mailbox().to_owned()),
            domain: Some(j.address.domain().to_owned()),
            reason,
            detail: decided.detail,
            mx: decided.mx,
            ip: decided.ip,
            smtp: decided.reply,
            catch_all,
            flags,
            suggestion,
            attempts: u32::from(j.attempts),
            elapsed,
            transcript,
            tls: decided.tls,
            greylist_wait,
        };
        let key = self.duplicates.key(j.address.mailbox());
        self.duplicates.finished(key, job, &result);
        let now_nanos = self.since_epoch(now);
        self.joined_waiting -= joined.len();
        for waiting in joined {
            let mut shared = result.clone();
            shared.tag = waiting.tag;
            shared.address = waiting.address;
            shared.elapsed = Duration::from_nanos(now_nanos.saturating_sub(waiting.submitted));
            self.emit(shared);
        }
        if !answered {
            self.emit(result);
        } else if self.config.late_results {
            self.stats.late += 1;
            self.results.push_back(result);
        }
    }

    fn emit(&mut self, result: VerifyResult) {
        self.stats.finished += 1;
        self.results.push_back(result);
    }
}

/// What dropping `job` leaves unanswered: its own submission (unless answered at its
/// deadline already), and the submissions that joined it.
fn unanswered(job: &Job) -> (usize, usize) {
    let rare = job.rare.as_deref();
    (
        usize::from(!rare.is_some_and(|rare| rare.answered)),
        rare.map_or(0, |rare| rare.joined.len()),
    )
}

/// A reply's lines, joined by spaces (invalid UTF-8 replaced).
fn reply_text(reply: &OwnedReply) -> String {
    let reply = reply.as_reply();
    let mut text = String::new();
    for line in reply.lines() {
        text.push_str(&String::from_utf8_lossy(line));
        text.push(' ');
    }
    text
}

/// What the session said beside an outcome.
#[derive(Debug, Clone, Copy)]
struct OutcomeFacts<'a> {
    /// Recipients of the session that got a reply so far.
    answered: usize,
    /// What read the reply beyond the generic table, if anything did.
    read_by: Option<ReadBy>,
    /// What went wrong with the session's SOCKS5 proxy, if it failed.
    proxy_failure: Option<&'a str>,
    /// The server refused the session's source address by name, and another address of the
    /// pool is well: a `blocked` reply is asked again from there.
    refused_by_address: bool,
    /// The TLS version the session spoke, if it did.
    tls: Option<TlsVersion>,
    /// How its TLS handshake failed, if it did.
    tls_failure: Option<&'a str>,
    /// It went through a proxy that resolved the MX host's name: the server's address is not
    /// known here.
    by_name: bool,
    /// When the session was opened, in nanoseconds since the epoch.
    opened: u64,
}

/// True if the first address queued at `domain` is real-time.
fn front_is_urgent(domain: &Domain, jobs: &Slab<Job>) -> bool {
    domain
        .queue
        .front()
        .and_then(|job| jobs.get(*job))
        .is_some_and(|j| j.urgent)
}

/// Reads the replies among `settled` that `provider`'s profile knows, rewriting their reason:
/// the replies recipients got, and the 421 that closed the session (`closing`), which handed
/// back those it had not answered and becomes their reply if the profile reads it. The rule
/// that read each, by index, or `None` if it read none (no allocation then).
fn read_by_profile(
    provider: &'static Provider,
    settled: &mut [(Member, RecipientOutcome)],
    closing: Option<&(Stage, OwnedReply)>,
) -> Option<Vec<Option<&'static Rule>>> {
    let profile = &provider.profile;
    if profile.rcpt.is_empty() {
        return None;
    }
    // The 421 answered one command, but it stands for every recipient it handed back, asked
    // or not: only what it says about the prober (blocked, throttled) is read, never anything
    // about a mailbox.
    let closing = closing.and_then(|(stage, reply)| {
        profile
            .read(*stage, &reply.as_reply())
            .filter(|rule| !rule.means.is_about_the_mailbox())
            .map(|rule| (*stage, reply, rule))
    });
    let mut rules: Option<Vec<Option<&'static Rule>>> = None;
    let len = settled.len();
    for (i, (_, outcome)) in settled.iter_mut().enumerate() {
        let rule = match outcome {
            RecipientOutcome::Replied {
                stage,
                reply,
                reason,
            } => profile.read(*stage, &reply.as_reply()).inspect(|rule| {
                *reason = rule.means.reason();
            }),
            RecipientOutcome::HandedBack(HandBack::ServiceUnavailable) => {
                closing.map(|(stage, reply, rule)| {
                    *outcome = RecipientOutcome::Replied {
                        stage,
                        reply: reply.clone(),
                        reason: rule.means.reason(),
                    };
                    rule
                })
            }
            _ => None,
        };
        if let Some(rule) = rule {
            rules.get_or_insert_with(|| vec![None; len])[i] = Some(rule);
        }
    }
    rules
}

/// A local part no one has: 20 random lower-case letters and digits, starting with a letter,
/// never a role name.
fn control_local_part(rng: &mut StdRng) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    loop {
        let mut local = String::with_capacity(CONTROL_LOCAL_LEN);
        local.push(char::from(ALPHABET[rng.random_range(0..26)]));
        for _ in 1..CONTROL_LOCAL_LEN {
            local.push(char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]));
        }
        if !is_role_account(&local) {
            return local;
        }
    }
}
