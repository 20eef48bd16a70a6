//! An in-memory world for deterministic simulations: SMTP and DNS servers behind virtual
//! sockets, on a virtual clock, with seeded faults. No socket is opened and no clock is read:
//! the caller (the test harness in `tests/simulation.rs`) plays the driver's part, hands the
//! [`Network`] what a driver would send, and the time, and gets back what a driver would
//! receive.
//!
//! - `scenario.rs`: [`Scenario`], a random world from a seed: domains, DNS, mail servers and
//!   their personalities, addresses, faults.
//! - `faults.rs`: [`FaultPlan`], what goes wrong and how often.
//! - `smtp_host.rs`: the server end of a connection, on the loopback farm's own sans-IO
//!   dialogue and outbox (one implementation of every personality), every reply stamped with
//!   an id.
//! - `dns_host.rs`: the DNS server, on the loopback responder's own answer logic.
//! - `log.rs`: the [`Trace`] of the run and the [`ReplyLog`] of stamped replies.
//!
//! # Guarantees
//!
//! - Deterministic: the same scenario, the same calls with the same times, give the same
//!   events and the same trace, byte for byte. Every collection iterated is ordered
//!   (`BTreeMap`, `Vec`), and ties in time are broken by the order things were scheduled.
//! - Byte order per connection and direction is kept: a delivery never overtakes an earlier
//!   one. Only a [`Corruption::Swap`] reorders, and it reorders whole replies.
//! - Every reply a server generates is stamped ` (sim N)` on its last line, and
//!   [`ReplyLog`] says what N answered: the connection, the command line and the code.
//! - Bounded: a connection holds at most a partial command line and the replies it has
//!   decided; the event queue holds what is in flight.
//!
//! # Time
//!
//! Instants are the caller's: the world keeps the origin it was made with and stamps the trace
//! with the time since. `now` must never go backwards.

mod dns_host;
mod faults;
mod log;
mod scenario;
mod smtp_host;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

pub use faults::{Corruption, FaultPlan};
pub use log::{Fate, ReplyLog, ReplyRecord, STAMP_PREFIX, TRACE_LINES_KEPT, Trace, stamp_of};
pub use scenario::{DomainKind, DomainSpec, HostSpec, NAMESERVER, SMTP_PORT, Scenario};

use dns_host::{Answer, DnsHost};
use faults::chance;
use smtp_host::{HostContext, ServerEnd};

use crate::sim::smtp::{Behaviour, Counters, ServerScript};

/// Something that reaches the client side: what a driver would learn from its sockets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// SMTP connection `conn` is up.
    Connected(u64),
    /// Bytes arrived on SMTP connection `conn`.
    Data(u64, Vec<u8>),
    /// SMTP connection `conn` failed to connect, was closed by the server, or was reset.
    Closed(u64),
    /// A datagram on DNS socket `socket`.
    Udp {
        /// The client's socket.
        socket: u64,
        /// Who sent it.
        from: SocketAddr,
        /// The datagram.
        bytes: Vec<u8>,
    },
    /// Stream bytes on DNS socket `socket`.
    Tcp {
        /// The client's socket.
        socket: u64,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// DNS socket `socket` failed or was closed by the server.
    DnsClosed(u64),
}

/// Something scheduled inside the world.
#[derive(Debug)]
enum Happening {
    /// Delivered to the client, if its socket is still open then.
    Client(ClientEvent),
    /// A connection attempt reaches the server.
    Accept(u64),
    /// Client bytes reach the server, as one read.
    ToServer(u64, Vec<u8>),
    /// The server end of a connection has something due.
    Wake(u64),
    /// The connection is reset.
    Reset(u64),
    /// A UDP query reaches the DNS server.
    DnsUdp(u64, SocketAddr, Vec<u8>),
    /// A TCP connection with a query reaches the DNS server.
    DnsTcp(u64, SocketAddr, Vec<u8>),
    /// Every server goes away.
    Vanish,
}

/// One SMTP connection, both ends.
#[derive(Debug)]
struct Link {
    host: Option<usize>,
    client_ip: IpAddr,
    server: Option<ServerEnd>,
    /// One-way latency.
    latency: Duration,
    /// When the last delivery towards each end arrives: no delivery overtakes another.
    to_client_at: Instant,
    to_server_at: Instant,
    /// The client has seen `Connected`.
    connected: bool,
    /// The client's socket is gone: it closed it, or it has seen `Closed`.
    client_closed: bool,
    /// A reset struck: bytes in flight are lost.
    reset: bool,
    /// The server end is there: it has neither closed nor been reset.
    server_open: bool,
    /// The server hangs up once it has sent this many bytes.
    hang_up_after: Option<usize>,
    sent: usize,
    delivered: usize,
    greeting_len: Option<usize>,
    said_421: bool,
    /// The instant of the one live `Wake` entry.
    wake_at: Option<Instant>,
    /// The corruptions that struck it, for [`Network::story`].
    faults: Vec<String>,
}

/// The in-memory world. See the module documentation.
#[derive(Debug)]
pub struct Network {
    origin: Instant,
    rng: StdRng,
    faults: FaultPlan,
    scripts: Vec<ServerScript>,
    corruptible: Vec<bool>,
    listeners: BTreeMap<IpAddr, usize>,
    counters: Counters,
    links: BTreeMap<u64, Link>,
    dns: DnsHost,
    dns_open: BTreeSet<u64>,
    queue: BinaryHeap<Reverse<(Instant, u64)>>,
    happenings: BTreeMap<u64, Happening>,
    next_seq: u64,
    vanished: bool,
    trace: Trace,
    replies: ReplyLog,
}

/// Deliveries a chunk is split into at most.
const MAX_PIECES: usize = 4;
/// The longest a connection lives before a reset fault strikes it.
const MAX_RESET_AFTER: Duration = Duration::from_secs(10);
/// Bytes a hanging-up server sends at most before it does.
const MAX_HANG_UP_AFTER: usize = 400;
/// Characters of data shown per trace line.
const TRACE_DATA: usize = 160;

impl Network {
    /// The world of `scenario`, its clock starting at `origin`.
    ///
    /// # Panics
    ///
    /// If a host's personality cannot serve (a hostname with CR or LF): the scenario is
    /// written in code, so that is a bug there.
    #[must_use]
    pub fn new(scenario: &Scenario, origin: Instant) -> Self {
        let scripts = scenario
            .hosts
            .iter()
            .map(|host| {
                ServerScript::new(host.personality.clone())
                    .expect("generated hostnames have no CR or LF")
            })
            .collect();
        let corruptible = scenario
            .hosts
            .iter()
            .map(|host| {
                !matches!(
                    host.personality.behaviour,
                    Behaviour::LosesPipelinedReplies | Behaviour::ExtraReply
                )
            })
            .collect();
        let mut network = Self {
            origin,
            rng: StdRng::seed_from_u64(scenario.seed ^ 0x6e65_7477_6f72_6b21),
            faults: scenario.faults.clone(),
            scripts,
            corruptible,
            listeners: scenario.listeners(),
            counters: Counters::default(),
            links: BTreeMap::new(),
            dns: DnsHost::new(scenario.zone.clone()),
            dns_open: BTreeSet::new(),
            queue: BinaryHeap::new(),
            happenings: BTreeMap::new(),
            next_seq: 0,
            vanished: false,
            trace: Trace::default(),
            replies: ReplyLog::default(),
        };
        if let Some(at) = scenario.faults.vanish_at {
            network.schedule(origin + at, Happening::Vanish);
        }
        network
    }

    /// The run's trace.
    #[must_use]
    pub fn trace(&self) -> &Trace {
        &self.trace
    }

    /// Adds a line to the trace at `now`: the harness's own events share the world's trace.
    pub fn note(&mut self, now: Instant, text: &str) {
        let at = now.saturating_duration_since(self.origin);
        self.trace.push(at, text);
    }

    /// Every stamped reply.
    #[must_use]
    pub fn replies(&self) -> &ReplyLog {
        &self.replies
    }

    /// DATA and BDAT commands the servers received, all connections together.
    #[must_use]
    pub fn data_commands(&self) -> u64 {
        self.counters.data_commands.load(Ordering::Relaxed)
    }

    /// True if the client of `conn` has been handed the server's whole greeting, and it was
    /// an SMTP reply.
    #[must_use]
    pub fn greeted(&self, conn: u64) -> bool {
        self.links
            .get(&conn)
            .and_then(|link| link.greeting_len.map(|len| link.delivered >= len))
            .unwrap_or(false)
    }

    /// True if the server of `conn` sent a 421: it announced that it closes the channel.
    #[must_use]
    pub fn said_421(&self, conn: u64) -> bool {
        self.links.get(&conn).is_some_and(|link| link.said_421)
    }

    /// What was special about connection `conn`: its server's behaviour and the faults that
    /// struck it, for a report that says why an invariant broke there.
    #[must_use]
    pub fn story(&self, conn: u64) -> String {
        let Some(link) = self.links.get(&conn) else {
            return "unknown connection".into();
        };
        let mut story = link.host.map_or_else(
            || "no server".to_owned(),
            |host| format!("{:?} server", self.scripts[host].personality.behaviour),
        );
        if link.reset {
            story.push_str(", reset");
        }
        if link.hang_up_after.is_some() {
            story.push_str(", hang-up fault");
        }
        for fault in &link.faults {
            story.push_str(", ");
            story.push_str(fault);
        }
        story
    }

    /// Things scheduled and not yet happened: for checks that the world stays bounded.
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.happenings.len()
    }

    /// Connections not yet forgotten.
    #[must_use]
    pub fn links(&self) -> usize {
        self.links.len()
    }

    /// When the next thing happens, if anything is scheduled.
    #[must_use]
    pub fn next_at(&self) -> Option<Instant> {
        self.queue.peek().map(|Reverse((at, _))| *at)
    }

    /// The next event for the client due by `now`, after carrying out everything inside the
    /// world that is due before it.
    pub fn poll(&mut self, now: Instant) -> Option<ClientEvent> {
        while let Some(&Reverse((at, seq))) = self.queue.peek() {
            if at > now {
                return None;
            }
            self.queue.pop();
            let Some(happening) = self.happenings.remove(&seq) else {
                continue;
            };
            if let Some(event) = self.happen(happening, at) {
                return Some(event);
            }
        }
        None
    }

    // ---- what the client does ----

    /// The client opens SMTP connection `conn` to `to`.
    pub fn connect(&mut self, conn: u64, to: SocketAddr, now: Instant) {
        let latency = Duration::from_millis(self.rng.random_range(1..=30));
        let host = (to.port() == SMTP_PORT)
            .then(|| self.listeners.get(&to.ip()).copied())
            .flatten();
        let client_ip = match to {
            SocketAddr::V4(_) => IpAddr::from([192, 0, 2, 200]),
            SocketAddr::V6(_) => IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0xc1]),
        };
        self.links.insert(
            conn,
            Link {
                host,
                client_ip,
                server: None,
                latency,
                to_client_at: now,
                to_server_at: now,
                connected: false,
                client_closed: false,
                reset: false,
                server_open: false,
                hang_up_after: None,
                sent: 0,
                delivered: 0,
                greeting_len: None,
                said_421: false,
                wake_at: None,
                faults: Vec::new(),
            },
        );
        let what = if host.is_none() || self.vanished || chance(&mut self.rng, self.faults.refuse) {
            self.schedule(
                now + latency * 2,
                Happening::Client(ClientEvent::Closed(conn)),
            );
            "refused"
        } else if chance(&mut self.rng, self.faults.hang) {
            "never completes"
        } else {
            self.schedule(now + latency, Happening::Accept(conn));
            "syn"
        };
        self.note(now, &format!("c{conn} connect {to}: {what}"));
    }

    /// The client writes `bytes` on `conn`. False if the socket does not take them (not
    /// connected, or closed).
    pub fn send(&mut self, conn: u64, bytes: &[u8], now: Instant) -> bool {
        let Some(link) = self.links.get_mut(&conn) else {
            return false;
        };
        if !link.connected || link.client_closed {
            return false;
        }
        let at = (now + link.latency).max(link.to_server_at);
        link.to_server_at = at;
        self.schedule(at, Happening::ToServer(conn, bytes.to_vec()));
        self.note(now, &format!("c{conn} > {}", escaped(bytes)));
        true
    }

    /// The client closes `conn`: nothing more reaches it, and the server end goes away.
    pub fn close(&mut self, conn: u64, now: Instant) {
        if let Some(link) = self.links.get_mut(&conn)
            && !link.client_closed
        {
            link.client_closed = true;
            link.server_open = false;
            link.server = None;
            self.note(now, &format!("c{conn} closed by the client"));
        }
    }

    /// The client sends a UDP query from socket `socket` to `server`.
    pub fn udp(&mut self, socket: u64, server: SocketAddr, payload: Vec<u8>, now: Instant) {
        self.dns_open.insert(socket);
        let latency = self.dns_latency();
        self.note(now, &format!("d{socket} udp query to {server}"));
        self.schedule(now + latency, Happening::DnsUdp(socket, server, payload));
    }

    /// The client opens a TCP connection from socket `socket` to `server` and writes
    /// `payload` (framed).
    pub fn tcp(&mut self, socket: u64, server: SocketAddr, payload: Vec<u8>, now: Instant) {
        self.dns_open.insert(socket);
        let latency = self.dns_latency();
        self.note(now, &format!("d{socket} tcp query to {server}"));
        self.schedule(now + latency, Happening::DnsTcp(socket, server, payload));
    }

    /// The client closes DNS socket `socket`.
    pub fn dns_close(&mut self, socket: u64, now: Instant) {
        if self.dns_open.remove(&socket) {
            self.dns.close(socket);
            self.note(now, &format!("d{socket} closed by the client"));
        }
    }

    // ---- inside the world ----

    fn dns_latency(&mut self) -> Duration {
        Duration::from_millis(self.rng.random_range(1..=20))
    }

    fn schedule(&mut self, at: Instant, happening: Happening) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.queue.push(Reverse((at, seq)));
        self.happenings.insert(seq, happening);
    }

    /// Carries out `happening` at `now`; returns the client event it is, if it is one and
    /// still wanted.
    fn happen(&mut self, happening: Happening, now: Instant) -> Option<ClientEvent> {
        match happening {
            Happening::Client(event) => self.deliver(event, now),
            Happening::Accept(conn) => {
                self.accept(conn, now);
                None
            }
            Happening::ToServer(conn, bytes) => {
                self.server_receive(conn, &bytes, now);
                None
            }
            Happening::Wake(conn) => {
                if let Some(link) = self.links.get_mut(&conn)
                    && link.wake_at == Some(now)
                {
                    link.wake_at = None;
                    self.step_server(conn, now);
                }
                None
            }
            Happening::Reset(conn) => {
                self.reset(conn, now, "reset");
                None
            }
            Happening::DnsUdp(socket, server, payload) => {
                self.dns_udp(socket, server, &payload, now);
                None
            }
            Happening::DnsTcp(socket, server, payload) => {
                if self.vanished || server != NAMESERVER {
                    let latency = self.dns_latency();
                    self.schedule(
                        now + latency,
                        Happening::Client(ClientEvent::DnsClosed(socket)),
                    );
                } else {
                    let answers = self.dns.tcp(socket, &payload, &self.faults, &mut self.rng);
                    let latency = self.dns_latency();
                    self.schedule(
                        now + latency,
                        Happening::Client(ClientEvent::Tcp {
                            socket,
                            bytes: answers,
                        }),
                    );
                }
                None
            }
            Happening::Vanish => {
                self.vanished = true;
                self.note(now, "every server vanishes");
                let open: Vec<u64> = self
                    .links
                    .iter()
                    .filter(|(_, link)| !link.client_closed && !link.reset)
                    .map(|(conn, _)| *conn)
                    .collect();
                for conn in open {
                    self.reset(conn, now, "reset (vanished)");
                }
                None
            }
        }
    }

    /// Hands `event` to the client if its socket still wants it.
    fn deliver(&mut self, event: ClientEvent, now: Instant) -> Option<ClientEvent> {
        match &event {
            ClientEvent::Connected(conn) => {
                let link = self.links.get_mut(conn)?;
                if link.client_closed || link.reset {
                    return None;
                }
                link.connected = true;
                self.note(now, &format!("c{conn} connected"));
            }
            ClientEvent::Data(conn, bytes) => {
                let link = self.links.get_mut(conn)?;
                if link.client_closed || link.reset || !link.connected {
                    return None;
                }
                link.delivered += bytes.len();
                let line = format!("c{conn} < {}", escaped(bytes));
                self.note(now, &line);
            }
            ClientEvent::Closed(conn) => {
                let link = self.links.get_mut(conn)?;
                if link.client_closed {
                    return None;
                }
                link.client_closed = true;
                link.server_open = false;
                link.server = None;
                self.note(now, &format!("c{conn} closed by the server side"));
            }
            ClientEvent::Udp { socket, .. } | ClientEvent::Tcp { socket, .. } => {
                if !self.dns_open.contains(socket) {
                    return None;
                }
                let what = if matches!(event, ClientEvent::Udp { .. }) {
                    "udp"
                } else {
                    "tcp"
                };
                self.note(now, &format!("d{socket} {what} answer"));
            }
            ClientEvent::DnsClosed(socket) => {
                if !self.dns_open.remove(socket) {
                    return None;
                }
                self.note(now, &format!("d{socket} closed by the server"));
            }
        }
        Some(event)
    }

    fn accept(&mut self, conn: u64, now: Instant) {
        let Some(link) = self.links.get(&conn) else {
            return;
        };
        let (Some(host), latency, client_ip) = (link.host, link.latency, link.client_ip) else {
            return;
        };
        if self.vanished {
            self.schedule(now + latency, Happening::Client(ClientEvent::Closed(conn)));
            return;
        }
        let corruption = if self.corruptible[host] {
            self.faults.corruption(&mut self.rng)
        } else {
            None
        };
        let hang_up_after = chance(&mut self.rng, self.faults.hang_up)
            .then(|| self.rng.random_range(0..MAX_HANG_UP_AFTER));
        if chance(&mut self.rng, self.faults.reset) {
            let after = self.rng.random_range(Duration::ZERO..MAX_RESET_AFTER);
            self.schedule(now + after, Happening::Reset(conn));
        }
        let mut note = None;
        let server = ServerEnd::accept(
            &mut HostContext {
                script: &mut self.scripts[host],
                counters: &self.counters,
                replies: &mut self.replies,
                rng: &mut self.rng,
                conn,
                client: client_ip,
                now,
                note: &mut note,
            },
            corruption,
        );
        if let Some(link) = self.links.get_mut(&conn) {
            link.greeting_len = server.greeting_len();
            link.said_421 = server.said_421();
            link.server = Some(server);
            link.server_open = true;
            link.hang_up_after = hang_up_after;
            link.to_client_at = now + latency;
        }
        let faults = match (corruption, hang_up_after) {
            (None, None) => String::new(),
            (corruption, hang_up) => {
                format!(" (faults: {corruption:?}, hang up after {hang_up:?})")
            }
        };
        self.note(now, &format!("c{conn} accepted{faults}"));
        self.schedule(
            now + latency,
            Happening::Client(ClientEvent::Connected(conn)),
        );
        self.step_server(conn, now);
    }

    fn server_receive(&mut self, conn: u64, bytes: &[u8], now: Instant) {
        let Some(link) = self.links.get_mut(&conn) else {
            return;
        };
        let (Some(server), Some(host)) = (link.server.as_mut(), link.host) else {
            return;
        };
        let mut note = None;
        server.receive(
            bytes,
            &mut HostContext {
                script: &mut self.scripts[host],
                counters: &self.counters,
                replies: &mut self.replies,
                rng: &mut self.rng,
                conn,
                client: link.client_ip,
                now,
                note: &mut note,
            },
        );
        link.said_421 |= server.said_421();
        if let Some(note) = note {
            link.faults.push(note.clone());
            self.note(now, &format!("c{conn} fault: {note}"));
        }
        self.step_server(conn, now);
    }

    /// Lets out what the server end has due, closes it if it is done, and arranges to be
    /// woken for what comes next.
    fn step_server(&mut self, conn: u64, now: Instant) {
        let Some(link) = self.links.get_mut(&conn) else {
            return;
        };
        let (Some(server), Some(host)) = (link.server.as_mut(), link.host) else {
            return;
        };
        let mut bytes = server.release(&self.scripts[host], now);
        link.said_421 |= server.said_421();
        let mut close = server.wants_close(now);
        let next = server.next_deadline();
        if let Some(limit) = link.hang_up_after {
            let left = limit.saturating_sub(link.sent);
            if bytes.len() >= left && (!bytes.is_empty() || left == 0) {
                bytes.truncate(left);
                close = true;
            }
        }
        link.sent += bytes.len();
        if !bytes.is_empty() {
            self.transmit(conn, bytes, now);
        }
        if close {
            self.server_close(conn, now);
            return;
        }
        if let Some(at) = next
            && let Some(link) = self.links.get_mut(&conn)
            && link.wake_at.is_none_or(|armed| at < armed)
        {
            link.wake_at = Some(at);
            self.schedule(at, Happening::Wake(conn));
        }
    }

    /// Sends server bytes towards the client: split and delayed as the faults say, never out
    /// of order.
    fn transmit(&mut self, conn: u64, bytes: Vec<u8>, now: Instant) {
        let pieces = if bytes.len() > 1 && chance(&mut self.rng, self.faults.split) {
            let count = self.rng.random_range(2..=MAX_PIECES.min(bytes.len()));
            let mut cuts: Vec<usize> = (0..count - 1)
                .map(|_| self.rng.random_range(1..bytes.len()))
                .collect();
            cuts.sort_unstable();
            cuts.dedup();
            let mut pieces = Vec::with_capacity(cuts.len() + 1);
            let mut start = 0;
            for cut in cuts {
                pieces.push(bytes[start..cut].to_vec());
                start = cut;
            }
            pieces.push(bytes[start..].to_vec());
            pieces
        } else {
            vec![bytes]
        };
        for piece in pieces {
            let extra = if chance(&mut self.rng, self.faults.delay) {
                self.rng
                    .random_range(Duration::ZERO..=self.faults.max_delay)
            } else {
                Duration::ZERO
            };
            let Some(link) = self.links.get_mut(&conn) else {
                return;
            };
            let at = (now + link.latency + extra).max(link.to_client_at);
            link.to_client_at = at;
            self.schedule(at, Happening::Client(ClientEvent::Data(conn, piece)));
        }
    }

    /// The server closes its end after what it has sent: the client reads EOF after the data.
    fn server_close(&mut self, conn: u64, now: Instant) {
        let Some(link) = self.links.get_mut(&conn) else {
            return;
        };
        if !link.server_open {
            return;
        }
        link.server_open = false;
        link.server = None;
        let at = (now + link.latency).max(link.to_client_at);
        link.to_client_at = at;
        self.note(now, &format!("c{conn} server closes"));
        self.schedule(at, Happening::Client(ClientEvent::Closed(conn)));
    }

    /// The connection is gone both ways at once: bytes in flight are lost.
    fn reset(&mut self, conn: u64, now: Instant, what: &str) {
        let Some(link) = self.links.get_mut(&conn) else {
            return;
        };
        if link.client_closed || link.reset {
            return;
        }
        // Deliveries in flight are lost (`deliver` drops data after a reset); the client
        // hears of it now, as an error on its socket.
        link.reset = true;
        link.server_open = false;
        link.server = None;
        self.note(now, &format!("c{conn} {what}"));
        self.schedule(now, Happening::Client(ClientEvent::Closed(conn)));
    }

    fn dns_udp(&mut self, socket: u64, server: SocketAddr, payload: &[u8], now: Instant) {
        if self.vanished || server != NAMESERVER {
            return;
        }
        let mut note = None;
        let answer = self
            .dns
            .udp(payload, &self.faults, &mut self.rng, &mut note);
        if let Some(note) = note {
            self.note(now, &format!("d{socket} fault: {note}"));
        }
        if let Answer::Send(bytes, extra) = answer {
            let latency = self.dns_latency();
            self.schedule(
                now + latency + extra,
                Happening::Client(ClientEvent::Udp {
                    socket,
                    from: server,
                    bytes,
                }),
            );
        }
    }
}

/// Bytes as a trace shows them: printable ASCII as is, the rest escaped, cut at
/// [`TRACE_DATA`] characters.
fn escaped(bytes: &[u8]) -> String {
    let mut text = String::new();
    for &byte in bytes {
        if text.len() >= TRACE_DATA {
            let _ = write!(text, "…(+{} bytes)", bytes.len());
            break;
        }
        match byte {
            b'\r' => text.push_str("\\r"),
            b'\n' => text.push_str("\\n"),
            0x20..=0x7e => text.push(char::from(byte)),
            _ => {
                let _ = write!(text, "\\x{byte:02x}");
            }
        }
    }
    text
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, reason = "an origin for the virtual clock")]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::sim::smtp::Personality;

    /// One host, `mx.one.test` on 192.0.2.1, with `alice@one.test`; no faults.
    fn one_host(behaviour: Behaviour) -> Scenario {
        let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        Scenario {
            seed: 7,
            hosts: vec![HostSpec {
                name: "mx.one.test".into(),
                ips: vec![ip],
                personality: Personality::new("mx.one.test")
                    .mailbox("alice@one.test")
                    .behaviour(behaviour),
            }],
            zone: crate::sim::dns::Zone::new(),
            domains: Vec::new(),
            addresses: Vec::new(),
            faults: FaultPlan::clean(),
        }
    }

    /// Plays a second of virtual time (less than any idle limit), answering nothing: the
    /// client events in order.
    fn drain(net: &mut Network, now: &mut Instant) -> Vec<ClientEvent> {
        let until = *now + Duration::from_secs(1);
        let mut events = Vec::new();
        while let Some(at) = net.next_at().filter(|at| *at <= until) {
            *now = (*now).max(at);
            while let Some(event) = net.poll(*now) {
                events.push(event);
            }
        }
        events
    }

    fn data(events: &[ClientEvent]) -> String {
        let mut text = String::new();
        for event in events {
            if let ClientEvent::Data(_, bytes) = event {
                text.push_str(&String::from_utf8_lossy(bytes));
            }
        }
        text
    }

    #[test]
    fn every_reply_is_stamped_with_what_it_answered() {
        let origin = Instant::now();
        let mut now = origin;
        let mut net = Network::new(&one_host(Behaviour::Normal), origin);
        net.connect(1, "192.0.2.1:25".parse().expect("addr"), now);
        let events = drain(&mut net, &mut now);
        assert_eq!(events[0], ClientEvent::Connected(1));
        assert_eq!(
            data(&events),
            "220 mx.one.test ESMTP mxprobe-sim (sim 1)\r\n"
        );
        assert!(net.greeted(1));
        assert!(net.send(
            1,
            b"MAIL FROM:<p@p.test>\r\nRCPT TO:<alice@one.test>\r\nRCPT TO:<bob@one.test>\r\n",
            now
        ));
        let text = data(&drain(&mut net, &mut now));
        assert!(text.starts_with(
            "250 2.1.0 Ok (sim 2)\r\n250 2.1.5 Ok (sim 3)\r\n550 5.1.1 <bob@one.test>"
        ));
        assert!(text.ends_with("(sim 4)\r\n"), "{text:?}");
        let rcpt = net.replies().get(3).expect("reply 3");
        assert_eq!(rcpt.command, "RCPT TO:<alice@one.test>");
        assert_eq!((rcpt.conn, rcpt.code, rcpt.fate), (1, 250, Fate::Sent));
        assert_eq!(net.replies().get(4).map(|r| r.code), Some(550));
    }

    #[test]
    fn an_extra_reply_is_recorded_as_unsolicited_and_a_refusal_closes() {
        let origin = Instant::now();
        let mut now = origin;
        let mut net = Network::new(&one_host(Behaviour::ExtraReply), origin);
        net.connect(1, "192.0.2.1:25".parse().expect("addr"), now);
        drain(&mut net, &mut now);
        net.send(1, b"MAIL FROM:<p@p.test>\r\n", now);
        let events = drain(&mut net, &mut now);
        assert_eq!(events.len(), 1, "one write: {events:?}");
        assert_eq!(
            data(&events),
            "250 2.1.0 Ok (sim 2)\r\n250 2.1.5 Ok (sim 3)\r\n"
        );
        assert_eq!(
            net.replies().get(3).map(|r| r.command.as_str()),
            Some("(unsolicited)")
        );
        // No server at that address: refused.
        net.connect(2, "192.0.2.99:25".parse().expect("addr"), now);
        assert_eq!(drain(&mut net, &mut now), [ClientEvent::Closed(2)]);
        assert!(!net.greeted(2));
    }
}
