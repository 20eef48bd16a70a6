//! A DNS responder on loopback that serves a [`Zone`] written in code, for integration tests and
//! benchmarks of mxprobe's DNS client.
//!
//! It plays the recursive resolver a client talks to, answering from a complete view of the
//! zone: CNAME chains inside the zone are followed, negative answers carry an SOA, large answers
//! are truncated over UDP and whole over TCP. Per name it can also do what real servers and
//! networks do to clients on bad days — stay silent, send garbage, spoof the ID, answer another
//! question, force truncation, fail, reject EDNS, answer late ([`Misbehaviour`]).
//!
//! # Guarantees
//!
//! - Deciding an answer does no I/O: `reply` turns the bytes of one query into the bytes of one
//!   response (or none), so the UDP loop, the TCP connections and the tests share one path.
//! - A packet that does not decode, is not a standard query or does not ask exactly one question
//!   gets no answer and is not counted.
//! - Nothing a client sends makes a responder thread panic; a slow or stuck TCP client holds
//!   only its own connection, for at most [`TCP_IDLE_LIMIT`] without input.
//! - A [`Misbehaviour::Delay`] over UDP never holds up other answers: late answers wait on a
//!   timer thread of their own.
//! - Dropping the [`DnsResponder`] stops and joins all its threads, in about [`STOP_POLL`] at
//!   most — unless a TCP client has stopped reading its answers, which can hold a connection
//!   thread in `write` for up to 5 seconds.
//!
//! # Threads
//!
//! One thread answers UDP (receive, decide, send, in a loop), one sends delayed UDP answers when
//! they fall due, one accepts TCP connections and one serves each connection, its queries one
//! after the other. Blocking std sockets with read timeouts, no runtime: the simulator must not
//! share machinery with the driver it tests.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};

/// TTL of records added before the first [`Zone::ttl`] call.
pub const DEFAULT_TTL: u32 = 300;

/// SOA MINIMUM (and SOA TTL) of negative answers unless [`Zone::negative_ttl`] says otherwise.
pub const DEFAULT_NEGATIVE_TTL: u32 = 60;

/// Most CNAME links followed for one question; the same bound as the client's.
pub const MAX_CNAME_LINKS: usize = 8;

/// The EDNS payload size the responder advertises: the DNS Flag Day 2020 value.
pub const ADVERTISED_EDNS_PAYLOAD: u16 = 1232;

/// The receive buffer the UDP socket asks for, so bursts of queries wait instead of dropping.
const UDP_RECEIVE_BUFFER: usize = 4 << 20;

/// How long a TCP connection may stay open without receiving a byte.
pub const TCP_IDLE_LIMIT: Duration = Duration::from_secs(30);

/// Read timeout of every blocking socket: the longest a thread takes to notice it must stop if
/// the wake-up packet sent on drop is lost.
pub const STOP_POLL: Duration = Duration::from_millis(50);

/// How long sending one TCP response may block on a client that does not read.
const TCP_WRITE_LIMIT: Duration = Duration::from_secs(5);

/// Bytes after the ID in a [`Misbehaviour::Garbage`] answer: with the ID, 9 bytes, shorter than
/// the 12-byte DNS header, so no decoder can take them for a message.
const GARBAGE_AFTER_ID: &[u8] = b"garbage";

/// XORed into the ID of a [`Misbehaviour::SpoofedId`] answer: nonzero, so the ID always differs.
const SPOOFED_ID_MASK: u16 = 0x5a5a;

/// Something the responder does instead of answering a question correctly, set per name with
/// [`Zone::misbehave`]. It applies to every question whose name (not a CNAME target) is that
/// name, over UDP and TCP alike unless said otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misbehaviour {
    /// Never answers.
    Silent,
    /// Answers with the query's ID followed by `garbage`: 9 bytes that are not a DNS message.
    Garbage,
    /// Answers correctly except for the ID, which is the query's XOR `0x5a5a` — never the right
    /// one.
    SpoofedId,
    /// Answers with the right ID and sections but the question name `wrong-question.sim.` (or
    /// `other-question.sim.` if that was the name asked).
    WrongQuestion,
    /// Over UDP, always answers TC=1 with the question (and OPT, if the query had one) and empty
    /// answer, authority and additional sections; over TCP, answers normally.
    Truncate,
    /// Answers SERVFAIL with the question and no records.
    ServFail,
    /// Answers REFUSED with the question and no records.
    Refused,
    /// Answers FORMERR (with the question, without OPT) to a query carrying an OPT record, as a
    /// server that predates EDNS does; answers normally without one.
    FormErrOnEdns,
    /// Answers normally after this delay. Over UDP other queries are answered meanwhile; a TCP
    /// connection answers its queries in order, so this holds up the ones behind it on the same
    /// connection only.
    Delay(Duration),
}

/// The records the responder serves and how it misbehaves, built in code:
///
/// ```
/// use std::net::Ipv4Addr;
/// use mxprobe::sim::dns::{DnsResponder, Misbehaviour, Zone};
///
/// let mut zone = Zone::new();
/// zone.mx("example.com", 10, "mx.example.com")
///     .a("mx.example.com", Ipv4Addr::new(192, 0, 2, 25))
///     .null_mx("nomail.example")
///     .misbehave("slow.example", Misbehaviour::ServFail);
/// let responder = DnsResponder::start(zone)?;
/// # let _ = responder.addr();
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// Names are case-insensitive and may be written with or without the final dot. A name exists
/// when it has a record or was declared with [`Zone::exists`]; a name the zone "serves" is one
/// whose last two labels are those of an existing name (this decides whether a CNAME target is
/// missing from the zone or belongs to someone else). Empty non-terminals are not inferred:
/// `mx.example.com` having records does not make `example.com` exist.
///
/// The builder methods panic on text that is not a DNS name: the zone is written in code, so
/// that is a bug in the caller, and the message names the text to fix.
#[derive(Debug, Clone)]
pub struct Zone {
    /// Every name that exists, with its records of every type (none for [`Zone::exists`]).
    names: HashMap<Name, Vec<Record>>,
    /// The last two labels of every existing name: the domains the zone speaks for.
    served_domains: HashSet<Name>,
    misbehaviours: HashMap<Name, Misbehaviour>,
    ttl: u32,
    negative_ttl: u32,
    glue: bool,
    soa_mname: Name,
    soa_rname: Name,
}

impl Default for Zone {
    fn default() -> Self {
        Self::new()
    }
}

impl Zone {
    /// An empty zone: every name is NXDOMAIN, TTL 300, negative TTL 60, glue on.
    #[must_use]
    pub fn new() -> Self {
        Self {
            names: HashMap::new(),
            served_domains: HashSet::new(),
            misbehaviours: HashMap::new(),
            ttl: DEFAULT_TTL,
            negative_ttl: DEFAULT_NEGATIVE_TTL,
            glue: true,
            soa_mname: zone_name("ns.sim."),
            soa_rname: zone_name("hostmaster.sim."),
        }
    }

    /// Sets the TTL of the records added after this call.
    pub fn ttl(&mut self, seconds: u32) -> &mut Self {
        self.ttl = seconds;
        self
    }

    /// Sets the SOA MINIMUM and SOA TTL of every negative (NXDOMAIN and NODATA) answer.
    pub fn negative_ttl(&mut self, seconds: u32) -> &mut Self {
        self.negative_ttl = seconds;
        self
    }

    /// Whether MX answers carry the A and AAAA records of their exchanges in the additional
    /// section, as resolvers usually do. On by default; applies to the whole zone.
    pub fn glue(&mut self, on: bool) -> &mut Self {
        self.glue = on;
        self
    }

    /// Adds an MX record: `domain` takes mail at `exchange` with this preference.
    pub fn mx(&mut self, domain: &str, preference: u16, exchange: &str) -> &mut Self {
        let exchange = zone_name(exchange);
        self.add(domain, RData::MX(MX::new(preference, exchange)))
    }

    /// Adds the null MX of RFC 7505 (`MX 0 .`): `domain` takes no mail.
    pub fn null_mx(&mut self, domain: &str) -> &mut Self {
        self.add(domain, RData::MX(MX::new(0, Name::root())))
    }

    /// Adds an A record.
    pub fn a(&mut self, name: &str, ip: Ipv4Addr) -> &mut Self {
        self.add(name, RData::A(A(ip)))
    }

    /// Adds an AAAA record.
    pub fn aaaa(&mut self, name: &str, ip: Ipv6Addr) -> &mut Self {
        self.add(name, RData::AAAA(AAAA(ip)))
    }

    /// Adds a CNAME record: `name` is an alias for `target`.
    pub fn cname(&mut self, name: &str, target: &str) -> &mut Self {
        let target = zone_name(target);
        self.add(name, RData::CNAME(CNAME(target)))
    }

    /// Declares a name that exists without records: questions about it get NODATA, not
    /// NXDOMAIN.
    pub fn exists(&mut self, name: &str) -> &mut Self {
        self.declare(zone_name(name));
        self
    }

    /// Makes every question about `name` meet `how` instead of the zone's data. A later call for
    /// the same name replaces the earlier one. It does not make the name exist.
    pub fn misbehave(&mut self, name: &str, how: Misbehaviour) -> &mut Self {
        self.misbehaviours.insert(zone_name(name), how);
        self
    }

    fn add(&mut self, name: &str, data: RData) -> &mut Self {
        let name = zone_name(name);
        let record = Record::from_rdata(name.clone(), self.ttl, data);
        self.declare(name).push(record);
        self
    }

    fn declare(&mut self, name: Name) -> &mut Vec<Record> {
        self.served_domains.insert(name.trim_to(2));
        self.names.entry(name).or_default()
    }

    fn serves(&self, name: &Name) -> bool {
        self.served_domains.contains(&name.trim_to(2))
    }

    /// The answer to `(name, record_type)` from the zone's data, misbehaviours aside.
    fn resolve(&self, name: &Name, record_type: RecordType) -> Resolution {
        let mut resolution = Resolution::default();
        let mut current = name;
        let mut visited: Vec<&Name> = Vec::new();
        loop {
            let Some(records) = self.names.get(current) else {
                // Past the first link, a target under a domain the zone does not serve belongs to
                // another zone: answer as its authority would, with the chain alone.
                if visited.is_empty() || self.serves(current) {
                    resolution.response_code = ResponseCode::NXDomain;
                    resolution.authorities.push(self.soa_for(current));
                }
                return resolution;
            };
            let before = resolution.answers.len();
            resolution.answers.extend(
                records
                    .iter()
                    .filter(|record| record.record_type() == record_type)
                    .cloned(),
            );
            if resolution.answers.len() > before {
                if record_type == RecordType::MX && self.glue {
                    resolution.additionals = self.glue_for(&resolution.answers[before..]);
                }
                return resolution;
            }
            let alias = records.iter().find_map(|record| match &record.data {
                RData::CNAME(target) if record_type != RecordType::CNAME => {
                    Some((record, &target.0))
                }
                _ => None,
            });
            let Some((link, target)) = alias else {
                resolution.authorities.push(self.soa_for(current));
                return resolution;
            };
            resolution.answers.push(link.clone());
            visited.push(current);
            // A loop or an overlong chain ends here, with the links so far and no SOA: the
            // client sees the loop (or the name to ask next) for itself.
            if visited.len() >= MAX_CNAME_LINKS || visited.contains(&target) {
                return resolution;
            }
            current = target;
        }
    }

    /// The A and AAAA records of the exchanges of `mx_records`, each exchange once.
    fn glue_for(&self, mx_records: &[Record]) -> Vec<Record> {
        let mut exchanges: Vec<&Name> = Vec::new();
        for record in mx_records {
            if let RData::MX(mx) = &record.data
                && !exchanges.contains(&&mx.exchange)
            {
                exchanges.push(&mx.exchange);
            }
        }
        let mut glue = Vec::new();
        for exchange in exchanges {
            let Some(records) = self.names.get(exchange) else {
                continue;
            };
            for wanted in [RecordType::A, RecordType::AAAA] {
                glue.extend(
                    records
                        .iter()
                        .filter(|record| record.record_type() == wanted)
                        .cloned(),
                );
            }
        }
        glue
    }

    /// The SOA of a negative answer about `name`: owned by its last two labels.
    fn soa_for(&self, name: &Name) -> Record {
        let soa = SOA::new(
            self.soa_mname.clone(),
            self.soa_rname.clone(),
            1,
            3600,
            600,
            86_400,
            self.negative_ttl,
        );
        Record::from_rdata(name.trim_to(2), self.negative_ttl, RData::SOA(soa))
    }
}

/// Parses a name written in a zone, fully qualified and lower-cased.
fn zone_name(text: &str) -> Name {
    let mut name = Name::from_ascii(text).unwrap_or_else(|error| {
        panic!(
            "the zone names {text:?}, which is not a DNS name ({error}): fix the name in the zone"
        )
    });
    name.set_fqdn(true);
    name.to_lowercase()
}

/// What the zone's data says about one question.
#[derive(Debug, Default)]
struct Resolution {
    response_code: ResponseCode,
    answers: Vec<Record>,
    authorities: Vec<Record>,
    additionals: Vec<Record>,
}

/// Which transport a query came over: it decides the size limit and [`Misbehaviour::Truncate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    Udp,
    Tcp,
}

/// What to do after [`reply`] has looked at a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reply {
    /// The packet is not a standard query with one question: ignore it, do not count it.
    NotAQuery,
    /// A query, deliberately left unanswered.
    Silence,
    /// Send the bytes now.
    Send,
    /// Send the bytes after this delay.
    SendAfter(Duration),
}

/// Decides the response to one received packet and encodes it into `out` (cleared first).
pub(crate) fn reply(zone: &Zone, packet: &[u8], transport: Transport, out: &mut Vec<u8>) -> Reply {
    reply_as(zone, packet, transport, None, out)
}

/// [`reply`], with `forced` (if any) in place of the misbehaviour the zone sets for the name:
/// how the in-memory world (`crate::sim::net`) makes one query meet a fault.
pub(crate) fn reply_as(
    zone: &Zone,
    packet: &[u8],
    transport: Transport,
    forced: Option<Misbehaviour>,
    out: &mut Vec<u8>,
) -> Reply {
    out.clear();
    let Some(query) = decode_query(packet) else {
        return Reply::NotAQuery;
    };
    let id = query.metadata.id;
    // `decode_query` lets through only queries with exactly one question, so `queries[0]` exists
    // here and in every response built from the query.
    let misbehaviour = forced.or_else(|| zone.misbehaviours.get(&query.queries[0].name).copied());
    let mut response = match misbehaviour {
        Some(Misbehaviour::Silent) => return Reply::Silence,
        Some(Misbehaviour::Garbage) => {
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(GARBAGE_AFTER_ID);
            return Reply::Send;
        }
        Some(Misbehaviour::ServFail) => empty_response(&query, ResponseCode::ServFail),
        Some(Misbehaviour::Refused) => empty_response(&query, ResponseCode::Refused),
        Some(Misbehaviour::FormErrOnEdns) if query.edns.is_some() => {
            let mut response = empty_response(&query, ResponseCode::FormErr);
            response.edns = None;
            response
        }
        _ => normal_response(zone, &query),
    };
    match misbehaviour {
        Some(Misbehaviour::SpoofedId) => response.metadata.id = id ^ SPOOFED_ID_MASK,
        Some(Misbehaviour::WrongQuestion) => {
            let asked = &query.queries[0].name;
            let wrong = ["wrong-question.sim.", "other-question.sim."]
                .into_iter()
                .map(zone_name)
                .find(|name| name != asked)
                .unwrap_or_else(Name::root);
            response.queries[0].name = wrong;
        }
        Some(Misbehaviour::Truncate) if transport == Transport::Udp => {
            response = response.truncate();
        }
        _ => {}
    }
    let limit = match transport {
        // RFC 6891 §6.2.5: a payload size below 512 is treated as 512; no OPT means 512.
        Transport::Udp => usize::from(query.max_payload()),
        Transport::Tcp => usize::from(u16::MAX),
    };
    if !encode_within(&response, limit, out) {
        return Reply::Silence;
    }
    match misbehaviour {
        Some(Misbehaviour::Delay(delay)) => Reply::SendAfter(delay),
        _ => Reply::Send,
    }
}

/// The packet as a standard query with exactly one question, or `None`.
fn decode_query(packet: &[u8]) -> Option<Message> {
    let message = Message::from_vec(packet).ok()?;
    let is_standard_query = message.metadata.message_type == MessageType::Query
        && message.metadata.op_code == OpCode::Query
        && message.queries.len() == 1;
    is_standard_query.then_some(message)
}

/// A response to `query` with its question, this rcode and, if it had an OPT, ours; no records
/// yet.
fn empty_response(query: &Message, response_code: ResponseCode) -> Message {
    let mut response = Message::response(query.metadata.id, OpCode::Query);
    response.metadata.authoritative = true;
    response.metadata.recursion_desired = query.metadata.recursion_desired;
    response.metadata.recursion_available = true;
    response.metadata.response_code = response_code;
    response.queries = query.queries.clone();
    if query.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(ADVERTISED_EDNS_PAYLOAD);
        response.set_edns(edns);
    }
    response
}

/// The response the zone's data gives to `query`.
fn normal_response(zone: &Zone, query: &Message) -> Message {
    let question: &Query = &query.queries[0];
    let resolution = zone.resolve(&question.name, question.query_type);
    let mut response = empty_response(query, resolution.response_code);
    response.answers = resolution.answers;
    response.authorities = resolution.authorities;
    response.additionals = resolution.additionals;
    response
}

/// Encodes `message` into `out`, or its truncated form (TC=1, no records) if it would exceed
/// `limit` bytes. False only if even the truncated form cannot be encoded.
fn encode_within(message: &Message, limit: usize, out: &mut Vec<u8>) -> bool {
    out.clear();
    if message.emit(&mut BinEncoder::new(out)).is_ok() && out.len() <= limit {
        return true;
    }
    out.clear();
    message.truncate().emit(&mut BinEncoder::new(out)).is_ok()
}

/// State the responder's threads share with it.
#[derive(Debug, Default)]
struct Shared {
    stopping: AtomicBool,
    udp_queries: AtomicU64,
    tcp_queries: AtomicU64,
}

impl Shared {
    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }
}

/// A running DNS responder: UDP and TCP on one port, each answering from the same [`Zone`].
/// Dropping it stops and joins its threads.
#[derive(Debug)]
pub struct DnsResponder {
    addr: SocketAddr,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl DnsResponder {
    /// Starts a responder on `127.0.0.1`, UDP and TCP on one port the OS chooses.
    ///
    /// # Errors
    ///
    /// If no port is free for both UDP and TCP, or a thread cannot be started.
    pub fn start(zone: Zone) -> io::Result<Self> {
        Self::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), zone)
    }

    /// Starts a responder on `addr` (port 0: one the OS chooses), UDP and TCP on the same port;
    /// `[::1]:0` for IPv6.
    ///
    /// # Errors
    ///
    /// If the address cannot be bound for both UDP and TCP, or a thread cannot be started.
    pub fn start_on(addr: SocketAddr, zone: Zone) -> io::Result<Self> {
        let (udp, tcp) = bind_udp_and_tcp(addr)?;
        udp.set_read_timeout(Some(STOP_POLL))?;
        let delayed_udp = udp.try_clone()?;
        let mut responder = Self {
            addr: udp.local_addr()?,
            shared: Arc::new(Shared::default()),
            threads: Vec::with_capacity(3),
        };
        let zone = Arc::new(zone);
        // From here on an error drops `responder`, which stops the threads already started.
        let (delayed_sender, delayed_receiver) = mpsc::channel();
        responder
            .threads
            .push(spawn("sim-dns-udp-delayed", move || {
                send_delayed_answers(&delayed_udp, &delayed_receiver);
            })?);
        let (udp_zone, udp_shared) = (Arc::clone(&zone), Arc::clone(&responder.shared));
        responder.threads.push(spawn("sim-dns-udp", move || {
            serve_udp(&udp, &udp_zone, &udp_shared, &delayed_sender);
        })?);
        let tcp_shared = Arc::clone(&responder.shared);
        responder.threads.push(spawn("sim-dns-tcp", move || {
            accept_tcp(&tcp, &zone, &tcp_shared);
        })?);
        Ok(responder)
    }

    /// The address both transports listen on.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Queries received over UDP so far, answered or not (packets that are not queries aside).
    #[must_use]
    pub fn udp_queries(&self) -> u64 {
        self.shared.udp_queries.load(Ordering::Relaxed)
    }

    /// Queries received over TCP so far, answered or not (frames that are not queries aside).
    #[must_use]
    pub fn tcp_queries(&self) -> u64 {
        self.shared.tcp_queries.load(Ordering::Relaxed)
    }

    /// Sends an empty datagram and opens a connection to the listening threads, so blocked
    /// `recv_from` and `accept` calls return and see the stop flag now rather than after a poll.
    fn wake_threads(&self) {
        let mut target = self.addr;
        if target.ip().is_unspecified() {
            target.set_ip(match target {
                SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
            });
        }
        let any_port: SocketAddr = match target {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        // Failures only cost the wait for a read timeout: the UDP socket polls the flag anyway.
        let _ = UdpSocket::bind(any_port).and_then(|socket| socket.send_to(&[], target));
        // `accept` has no timeout: this connection is what ends it.
        let _ = TcpStream::connect_timeout(&target, Duration::from_secs(1));
    }
}

impl Drop for DnsResponder {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::Release);
        self.wake_threads();
        for thread in self.threads.drain(..) {
            // A responder thread that panicked has already printed why; a second panic here
            // while dropping would only hide the first.
            let _ = thread.join();
        }
    }
}

fn spawn(name: &str, work: impl FnOnce() + Send + 'static) -> io::Result<JoinHandle<()>> {
    thread::Builder::new().name(name.to_owned()).spawn(work)
}

/// Binds UDP on `addr`, then TCP on the port UDP got; with port 0, tries other ports while TCP
/// finds the one UDP got taken.
fn bind_udp_and_tcp(addr: SocketAddr) -> io::Result<(UdpSocket, TcpListener)> {
    let attempts = if addr.port() == 0 { 16 } else { 1 };
    let mut attempt = 0;
    loop {
        attempt += 1;
        let udp = UdpSocket::bind(addr)?;
        // A burst of queries must queue, not drop: ask for a large receive buffer. The kernel
        // caps it at net.core.rmem_max, which is fine: this is a wish, not a requirement.
        let _ = socket2::SockRef::from(&udp).set_recv_buffer_size(UDP_RECEIVE_BUFFER);
        let bound = udp.local_addr()?;
        match TcpListener::bind(bound) {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(error) if attempt >= attempts => {
                return Err(io::Error::new(
                    error.kind(),
                    format!(
                        "the DNS simulator bound UDP {bound} but could not bind TCP on the same \
                         port ({error}); free that port, or start on port 0 to let the OS choose"
                    ),
                ));
            }
            Err(_) => {}
        }
    }
}

/// The UDP loop: receive, decide, send (or hand to the delay thread), until stopped.
fn serve_udp(socket: &UdpSocket, zone: &Zone, shared: &Shared, delayed: &Sender<DelayedAnswer>) {
    // The largest UDP payload: a query never needs more, but a bigger read cannot hurt.
    let mut packet = vec![0_u8; 65_535];
    let mut out = Vec::with_capacity(4096);
    let mut sequence = 0_u64;
    while !shared.stopping() {
        // Errors are read timeouts (the loop checks the stop flag) or ICMP reports about earlier
        // sends to clients that went away; neither concerns the next query.
        let Ok((length, client)) = socket.recv_from(&mut packet) else {
            continue;
        };
        let decision = reply(zone, &packet[..length], Transport::Udp, &mut out);
        if decision != Reply::NotAQuery {
            shared.udp_queries.fetch_add(1, Ordering::Relaxed);
        }
        match decision {
            Reply::NotAQuery | Reply::Silence => {}
            // A client that has gone away is its own problem; the next query is ours.
            Reply::Send => {
                let _ = socket.send_to(&out, client);
            }
            Reply::SendAfter(delay) => {
                sequence += 1;
                let answer = DelayedAnswer {
                    due: Instant::now() + delay,
                    sequence,
                    client,
                    bytes: out.clone(),
                };
                // The delay thread ends only after this loop does (it waits for this sender to
                // drop), so sending cannot fail while the loop runs.
                let _ = delayed.send(answer);
            }
        }
    }
}

/// A UDP answer waiting for its [`Misbehaviour::Delay`] to pass. Ordered by `due`, then by
/// `sequence` (arrival order): the derived order follows the field order.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct DelayedAnswer {
    due: Instant,
    sequence: u64,
    client: SocketAddr,
    bytes: Vec<u8>,
}

/// Sends each delayed answer when it falls due; ends when the UDP loop drops its sender.
fn send_delayed_answers(socket: &UdpSocket, incoming: &Receiver<DelayedAnswer>) {
    let mut waiting: BinaryHeap<Reverse<DelayedAnswer>> = BinaryHeap::new();
    loop {
        let next = match waiting.peek() {
            None => incoming.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(Reverse(first)) => {
                let wait = first.due.saturating_duration_since(Instant::now());
                if wait.is_zero() {
                    if let Some(Reverse(due)) = waiting.pop() {
                        let _ = socket.send_to(&due.bytes, due.client);
                    }
                    continue;
                }
                incoming.recv_timeout(wait)
            }
        };
        match next {
            Ok(answer) => waiting.push(Reverse(answer)),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// Accepts TCP connections and serves each on a thread of its own, until stopped; then joins
/// them.
fn accept_tcp(listener: &TcpListener, zone: &Arc<Zone>, shared: &Arc<Shared>) {
    let mut connections: Vec<JoinHandle<()>> = Vec::new();
    for stream in listener.incoming() {
        if shared.stopping() {
            break;
        }
        // A failed accept (the client reset first, or out of descriptors) loses that client only.
        let Ok(stream) = stream else {
            continue;
        };
        connections.retain(|connection| !connection.is_finished());
        let (zone, shared) = (Arc::clone(zone), Arc::clone(shared));
        // Without a thread the client's connection is closed when `stream` drops: it sees EOF.
        if let Ok(connection) = spawn("sim-dns-tcp-conn", move || {
            serve_tcp_connection(stream, &zone, &shared);
        }) {
            connections.push(connection);
        }
    }
    for connection in connections {
        let _ = connection.join();
    }
}

/// Answers the queries of one TCP connection in order (RFC 1035 §4.2.2: each message preceded
/// by its length, two bytes, big-endian) until EOF, an error, [`TCP_IDLE_LIMIT`] or stop.
fn serve_tcp_connection(mut stream: TcpStream, zone: &Zone, shared: &Shared) {
    let configured = stream
        .set_read_timeout(Some(STOP_POLL))
        .and_then(|()| stream.set_write_timeout(Some(TCP_WRITE_LIMIT)))
        .and_then(|()| stream.set_nodelay(true));
    if configured.is_err() {
        return;
    }
    let mut received: Vec<u8> = Vec::new();
    let mut chunk = [0_u8; 4096];
    let mut out = Vec::with_capacity(4096);
    let mut frame = Vec::with_capacity(4096);
    let mut last_input = Instant::now();
    loop {
        while let Some(length) = whole_frame_length(&received) {
            let decision = reply(zone, &received[2..2 + length], Transport::Tcp, &mut out);
            received.drain(..2 + length);
            if decision != Reply::NotAQuery {
                shared.tcp_queries.fetch_add(1, Ordering::Relaxed);
            }
            let send_now = match decision {
                Reply::NotAQuery | Reply::Silence => false,
                Reply::Send => true,
                Reply::SendAfter(delay) => sleep_unless_stopping(delay, shared),
            };
            if send_now && write_frame(&mut stream, &out, &mut frame).is_err() {
                return;
            }
        }
        if shared.stopping() || last_input.elapsed() > TCP_IDLE_LIMIT {
            return;
        }
        match stream.read(&mut chunk) {
            Ok(0) => return,
            Ok(count) => {
                received.extend_from_slice(&chunk[..count]);
                last_input = Instant::now();
            }
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(_) => return,
        }
    }
}

/// The length of the first message in `received` if all of it has arrived.
pub(crate) fn whole_frame_length(received: &[u8]) -> Option<usize> {
    let prefix: [u8; 2] = received.get(..2)?.try_into().ok()?;
    let length = usize::from(u16::from_be_bytes(prefix));
    (received.len() >= 2 + length).then_some(length)
}

/// Writes `message` with its two-byte length prefix in one call (one segment where possible).
fn write_frame(stream: &mut TcpStream, message: &[u8], frame: &mut Vec<u8>) -> io::Result<()> {
    let length = u16::try_from(message.len()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "a DNS message over TCP is at most 65535 bytes; encode_within keeps to that",
        )
    })?;
    frame.clear();
    frame.extend_from_slice(&length.to_be_bytes());
    frame.extend_from_slice(message);
    stream.write_all(frame)
}

/// Sleeps for `delay`, waking every [`STOP_POLL`] to check the stop flag. True if the whole
/// delay passed, false if the responder is stopping.
fn sleep_unless_stopping(delay: Duration, shared: &Shared) -> bool {
    let due = Instant::now() + delay;
    loop {
        if shared.stopping() {
            return false;
        }
        let left = due.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        thread::sleep(left.min(STOP_POLL));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: u16 = 0x1234;
    const MX_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 25);
    const MX_IP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x25);
    /// How long a test waits for an answer it expects.
    const ANSWER_WAIT: Duration = Duration::from_secs(2);
    /// Longest a test waits for an answer that must come, however busy the machine: a hang
    /// guard, not a measurement.
    const HANG_GUARD: Duration = Duration::from_secs(30);
    /// How long a test waits to conclude that no answer is coming.
    const SILENCE_WAIT: Duration = Duration::from_millis(300);

    fn name(text: &str) -> Name {
        Name::from_ascii(text).unwrap()
    }

    /// The zone most tests answer from.
    fn example_zone() -> Zone {
        let mut zone = Zone::new();
        zone.mx("example.com", 10, "mx1.example.com")
            .mx("example.com", 20, "mx2.example.com")
            .a("mx1.example.com", MX_IP)
            .aaaa("mx1.example.com", MX_IP6)
            .a("mx2.example.com", Ipv4Addr::new(192, 0, 2, 26))
            .null_mx("nomail.example.com")
            .exists("empty.example.com")
            .cname("alias.example.com", "middle.example.com")
            .cname("middle.example.com", "example.com")
            .cname("dangling.example.com", "missing.example.com")
            .cname("nodata-alias.example.com", "empty.example.com")
            .cname("outside.example.com", "mail.elsewhere.net")
            .cname("loop1.example.com", "loop2.example.com")
            .cname("loop2.example.com", "loop1.example.com");
        zone
    }

    fn query(qname: &str, qtype: RecordType, edns_payload: Option<u16>) -> Message {
        let mut message = Message::new(ID, MessageType::Query, OpCode::Query);
        message.metadata.recursion_desired = true;
        message.add_query(Query::query(name(qname), qtype));
        if let Some(payload) = edns_payload {
            let mut edns = Edns::new();
            edns.set_max_payload(payload);
            message.set_edns(edns);
        }
        message
    }

    fn client_for(server: SocketAddr) -> UdpSocket {
        let local: SocketAddr = match server {
            SocketAddr::V4(_) => (Ipv4Addr::LOCALHOST, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::LOCALHOST, 0).into(),
        };
        UdpSocket::bind(local).unwrap()
    }

    /// Sends `packet` over UDP; the first datagram back within `wait`, if any.
    fn exchange_udp(server: SocketAddr, packet: &[u8], wait: Duration) -> Option<Vec<u8>> {
        let socket = client_for(server);
        socket.set_read_timeout(Some(wait)).unwrap();
        socket.send_to(packet, server).unwrap();
        let mut buffer = vec![0_u8; 65_535];
        let (length, _) = socket.recv_from(&mut buffer).ok()?;
        buffer.truncate(length);
        Some(buffer)
    }

    fn ask_udp(server: SocketAddr, message: &Message) -> Message {
        let bytes = exchange_udp(server, &message.to_vec().unwrap(), ANSWER_WAIT)
            .expect("the responder answers within the wait");
        Message::from_vec(&bytes).unwrap()
    }

    fn connect(server: SocketAddr) -> TcpStream {
        let stream = TcpStream::connect(server).unwrap();
        stream.set_read_timeout(Some(ANSWER_WAIT)).unwrap();
        stream
    }

    fn read_tcp_frame(stream: &mut TcpStream) -> Vec<u8> {
        let mut prefix = [0_u8; 2];
        stream.read_exact(&mut prefix).unwrap();
        let mut message = vec![0_u8; usize::from(u16::from_be_bytes(prefix))];
        stream.read_exact(&mut message).unwrap();
        message
    }

    fn ask_tcp(stream: &mut TcpStream, message: &Message) -> Message {
        let bytes = message.to_vec().unwrap();
        let mut frame = u16::try_from(bytes.len()).unwrap().to_be_bytes().to_vec();
        frame.extend_from_slice(&bytes);
        stream.write_all(&frame).unwrap();
        Message::from_vec(&read_tcp_frame(stream)).unwrap()
    }

    fn start(zone: Zone) -> DnsResponder {
        DnsResponder::start(zone).unwrap()
    }

    fn soa_of(message: &Message) -> (&Name, u32, &SOA) {
        assert_eq!(message.authorities.len(), 1, "one SOA: {message:?}");
        let record = &message.authorities[0];
        let RData::SOA(soa) = &record.data else {
            panic!("not an SOA: {record:?}");
        };
        (&record.name, record.ttl, soa)
    }

    fn answer_data(message: &Message) -> Vec<RData> {
        message.answers.iter().map(|r| r.data.clone()).collect()
    }

    fn mx(preference: u16, exchange: &str) -> RData {
        RData::MX(MX::new(preference, name(exchange)))
    }

    fn cname(target: &str) -> RData {
        RData::CNAME(CNAME(name(target)))
    }

    #[test]
    fn response_echoes_id_question_and_rd_and_sets_qr_ra() {
        let responder = start(example_zone());
        for recursion_desired in [true, false] {
            let mut asked = query("ExAmPle.CoM.", RecordType::MX, None);
            asked.metadata.recursion_desired = recursion_desired;
            let answer = ask_udp(responder.addr(), &asked);
            assert_eq!(answer.metadata.id, ID);
            assert_eq!(answer.metadata.message_type, MessageType::Response);
            assert!(answer.metadata.recursion_available);
            assert_eq!(answer.metadata.recursion_desired, recursion_desired);
            assert_eq!(answer.queries.len(), 1);
            assert!(answer.queries[0].name.eq_case(&name("ExAmPle.CoM.")));
            assert_eq!(answer.queries[0].query_type, RecordType::MX);
        }
    }

    #[test]
    fn records_of_the_type_asked_are_answered() {
        let responder = start(example_zone());
        let cases: &[(&str, RecordType, &[RData])] = &[
            (
                "example.com.",
                RecordType::MX,
                &[mx(10, "mx1.example.com."), mx(20, "mx2.example.com.")],
            ),
            ("mx1.example.com.", RecordType::A, &[RData::A(A(MX_IP))]),
            (
                "MX1.example.com.",
                RecordType::AAAA,
                &[RData::AAAA(AAAA(MX_IP6))],
            ),
            (
                "nomail.example.com.",
                RecordType::MX,
                &[RData::MX(MX::new(0, Name::root()))],
            ),
            (
                "alias.example.com.",
                RecordType::CNAME,
                &[cname("middle.example.com.")],
            ),
        ];
        for (qname, qtype, expected) in cases {
            let answer = ask_udp(responder.addr(), &query(qname, *qtype, None));
            assert_eq!(
                answer.metadata.response_code,
                ResponseCode::NoError,
                "{qname} {qtype}"
            );
            assert_eq!(answer_data(&answer), *expected, "{qname} {qtype}");
            assert!(answer.answers.iter().all(|r| r.ttl == DEFAULT_TTL));
            assert!(answer.authorities.is_empty(), "{qname} {qtype}");
        }
    }

    #[test]
    fn mx_answer_carries_glue_for_each_exchange() {
        let responder = start(example_zone());
        let answer = ask_udp(
            responder.addr(),
            &query("example.com.", RecordType::MX, None),
        );
        let glue: Vec<(Name, RData)> = answer
            .additionals
            .iter()
            .map(|r| (r.name.clone(), r.data.clone()))
            .collect();
        assert_eq!(
            glue,
            [
                (name("mx1.example.com."), RData::A(A(MX_IP))),
                (name("mx1.example.com."), RData::AAAA(AAAA(MX_IP6))),
                (
                    name("mx2.example.com."),
                    RData::A(A(Ipv4Addr::new(192, 0, 2, 26)))
                ),
            ]
        );
    }

    #[test]
    fn glue_off_leaves_the_additional_section_empty() {
        let mut zone = example_zone();
        zone.glue(false);
        let responder = start(zone);
        let answer = ask_udp(
            responder.addr(),
            &query("example.com.", RecordType::MX, None),
        );
        assert_eq!(answer.answers.len(), 2);
        assert!(answer.additionals.is_empty());
    }

    #[test]
    fn ttl_applies_to_records_added_after_it() {
        let mut zone = Zone::new();
        zone.a("early.example.", MX_IP)
            .ttl(5)
            .a("late.example.", MX_IP);
        let responder = start(zone);
        for (qname, ttl) in [("early.example.", DEFAULT_TTL), ("late.example.", 5)] {
            let answer = ask_udp(responder.addr(), &query(qname, RecordType::A, None));
            assert_eq!(answer.answers[0].ttl, ttl, "{qname}");
        }
    }

    #[test]
    fn negative_answers_carry_the_soa_of_the_last_two_labels() {
        let mut zone = example_zone();
        zone.negative_ttl(42);
        let responder = start(zone);
        let cases = [
            // (name, type, rcode, SOA owner)
            (
                "mx1.example.com.",
                RecordType::MX,
                ResponseCode::NoError,
                "example.com.",
            ),
            (
                "empty.example.com.",
                RecordType::A,
                ResponseCode::NoError,
                "example.com.",
            ),
            (
                "nosuch.example.com.",
                RecordType::MX,
                ResponseCode::NXDomain,
                "example.com.",
            ),
            (
                "a.b.nowhere.test.",
                RecordType::A,
                ResponseCode::NXDomain,
                "nowhere.test.",
            ),
        ];
        for (qname, qtype, rcode, owner) in cases {
            let answer = ask_udp(responder.addr(), &query(qname, qtype, None));
            assert_eq!(answer.metadata.response_code, rcode, "{qname} {qtype}");
            assert!(answer.answers.is_empty(), "{qname} {qtype}");
            let (soa_owner, soa_ttl, soa) = soa_of(&answer);
            assert_eq!(*soa_owner, name(owner), "{qname} {qtype}");
            assert_eq!((soa_ttl, soa.minimum), (42, 42), "{qname} {qtype}");
            assert_eq!(soa.mname, name("ns.sim."));
            assert_eq!(soa.rname, name("hostmaster.sim."));
        }
    }

    #[test]
    fn cname_chain_inside_the_zone_is_followed_to_the_records() {
        let responder = start(example_zone());
        let answer = ask_udp(
            responder.addr(),
            &query("alias.example.com.", RecordType::MX, None),
        );
        assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
        assert_eq!(
            answer_data(&answer),
            [
                cname("middle.example.com."),
                cname("example.com."),
                mx(10, "mx1.example.com."),
                mx(20, "mx2.example.com."),
            ]
        );
        assert_eq!(answer.additionals.len(), 3, "glue follows the chain");
        assert!(answer.authorities.is_empty());
    }

    #[test]
    fn cname_chain_ending_without_data_says_why() {
        let responder = start(example_zone());
        let cases = [
            // (alias, target, rcode, SOA expected)
            (
                "dangling.example.com.",
                "missing.example.com.",
                ResponseCode::NXDomain,
                true,
            ),
            (
                "nodata-alias.example.com.",
                "empty.example.com.",
                ResponseCode::NoError,
                true,
            ),
            (
                "outside.example.com.",
                "mail.elsewhere.net.",
                ResponseCode::NoError,
                false,
            ),
        ];
        for (alias, target, rcode, has_soa) in cases {
            let answer = ask_udp(responder.addr(), &query(alias, RecordType::MX, None));
            assert_eq!(answer.metadata.response_code, rcode, "{alias}");
            assert_eq!(answer_data(&answer), [cname(target)], "{alias}");
            assert_eq!(answer.authorities.len(), usize::from(has_soa), "{alias}");
        }
    }

    #[test]
    fn cname_loop_ends_after_each_link_once() {
        let responder = start(example_zone());
        let answer = ask_udp(
            responder.addr(),
            &query("loop1.example.com.", RecordType::A, None),
        );
        assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
        assert_eq!(
            answer_data(&answer),
            [cname("loop2.example.com."), cname("loop1.example.com.")]
        );
    }

    #[test]
    fn cname_chain_stops_at_the_link_limit() {
        let mut zone = Zone::new();
        for link in 0..20 {
            zone.cname(
                &format!("c{link}.example."),
                &format!("c{}.example.", link + 1),
            );
        }
        let responder = start(zone);
        let answer = ask_udp(responder.addr(), &query("c0.example.", RecordType::A, None));
        assert_eq!(answer.answers.len(), MAX_CNAME_LINKS);
        assert!(answer.authorities.is_empty());
    }

    #[test]
    fn edns_query_gets_an_opt_record_back() {
        let responder = start(example_zone());
        let with_opt = ask_udp(
            responder.addr(),
            &query("example.com.", RecordType::MX, Some(1400)),
        );
        let edns = with_opt.edns.expect("OPT in the response");
        assert_eq!(edns.max_payload(), ADVERTISED_EDNS_PAYLOAD);
        let without_opt = ask_udp(
            responder.addr(),
            &query("example.com.", RecordType::MX, None),
        );
        assert!(without_opt.edns.is_none());
    }

    /// A domain with 60 MX records: about 1.3 kB, over 512 and over 1232.
    fn large_mx_zone() -> Zone {
        let mut zone = Zone::new();
        for index in 0..60 {
            zone.mx("big.example.", index, &format!("mx{index:02}.big.example."));
        }
        zone
    }

    #[test]
    fn udp_answer_over_the_payload_limit_is_truncated() {
        let responder = start(large_mx_zone());
        let cases = [
            // (EDNS payload advertised, truncated)
            (None, true),
            (Some(1232), true),
            (Some(4096), false),
        ];
        for (payload, truncated) in cases {
            let answer = ask_udp(
                responder.addr(),
                &query("big.example.", RecordType::MX, payload),
            );
            assert_eq!(answer.metadata.truncation, truncated, "{payload:?}");
            let expected_answers = if truncated { 0 } else { 60 };
            assert_eq!(answer.answers.len(), expected_answers, "{payload:?}");
            assert!(answer.authorities.is_empty() && answer.additionals.is_empty());
            assert_eq!(answer.queries.len(), 1, "{payload:?}");
            assert_eq!(answer.edns.is_some(), payload.is_some(), "{payload:?}");
        }
    }

    #[test]
    fn tcp_answer_is_whole_and_length_prefixed() {
        let responder = start(large_mx_zone());
        let mut stream = connect(responder.addr());
        let answer = ask_tcp(&mut stream, &query("big.example.", RecordType::MX, None));
        assert!(!answer.metadata.truncation);
        assert_eq!(answer.answers.len(), 60);
        assert_eq!(responder.tcp_queries(), 1);
        assert_eq!(responder.udp_queries(), 0);
    }

    #[test]
    fn tcp_connection_answers_queries_in_turn_and_reassembles_split_frames() {
        let responder = start(example_zone());
        let mut stream = connect(responder.addr());
        let first = ask_tcp(&mut stream, &query("example.com.", RecordType::MX, None));
        assert_eq!(first.answers.len(), 2);

        let bytes = query("mx1.example.com.", RecordType::A, None)
            .to_vec()
            .unwrap();
        let mut frame = u16::try_from(bytes.len()).unwrap().to_be_bytes().to_vec();
        frame.extend_from_slice(&bytes);
        for piece in [&frame[..1], &frame[1..5], &frame[5..]] {
            stream.write_all(piece).unwrap();
            stream.flush().unwrap();
            thread::sleep(Duration::from_millis(20));
        }
        let second = Message::from_vec(&read_tcp_frame(&mut stream)).unwrap();
        assert_eq!(answer_data(&second), [RData::A(A(MX_IP))]);
        assert_eq!(responder.tcp_queries(), 2);
    }

    #[test]
    fn packets_that_are_not_single_standard_queries_are_ignored() {
        let responder = start(example_zone());
        let mut response = query("example.com.", RecordType::MX, None);
        response.metadata.message_type = MessageType::Response;
        let mut two_questions = query("example.com.", RecordType::MX, None);
        two_questions.add_query(Query::query(name("mx1.example.com."), RecordType::A));
        let mut no_question = query("example.com.", RecordType::MX, None);
        no_question.queries.clear();
        let mut notify = query("example.com.", RecordType::SOA, None);
        notify.metadata.op_code = OpCode::Notify;
        let cases: [(&str, Vec<u8>); 6] = [
            ("empty", Vec::new()),
            ("short", vec![0x12, 0x34, 0x01]),
            ("response", response.to_vec().unwrap()),
            ("two questions", two_questions.to_vec().unwrap()),
            ("no question", no_question.to_vec().unwrap()),
            ("notify", notify.to_vec().unwrap()),
        ];
        for (what, packet) in &cases {
            let mut out = Vec::new();
            let decision = reply(&example_zone(), packet, Transport::Udp, &mut out);
            assert_eq!(decision, Reply::NotAQuery, "{what}");
        }
        for (what, packet) in &cases[..2] {
            let answer = exchange_udp(responder.addr(), packet, Duration::from_millis(150));
            assert!(answer.is_none(), "{what}");
        }
        assert_eq!(responder.udp_queries(), 0);
        let answer = ask_udp(
            responder.addr(),
            &query("example.com.", RecordType::MX, None),
        );
        assert_eq!(answer.answers.len(), 2);
        assert_eq!(responder.udp_queries(), 1);
    }

    fn misbehaving(qname: &str, how: Misbehaviour) -> DnsResponder {
        let mut zone = example_zone();
        zone.misbehave(qname, how);
        start(zone)
    }

    #[test]
    fn error_misbehaviours_answer_their_rcode_with_the_question() {
        let cases = [
            // (misbehaviour, EDNS payload, rcode, OPT in the answer)
            (Misbehaviour::ServFail, None, ResponseCode::ServFail, false),
            (
                Misbehaviour::ServFail,
                Some(1232),
                ResponseCode::ServFail,
                true,
            ),
            (Misbehaviour::Refused, None, ResponseCode::Refused, false),
            (
                Misbehaviour::FormErrOnEdns,
                Some(1232),
                ResponseCode::FormErr,
                false,
            ),
            (
                Misbehaviour::FormErrOnEdns,
                None,
                ResponseCode::NoError,
                false,
            ),
        ];
        for (how, payload, rcode, has_opt) in cases {
            let responder = misbehaving("example.com", how);
            let answer = ask_udp(
                responder.addr(),
                &query("example.com.", RecordType::MX, payload),
            );
            assert_eq!(answer.metadata.id, ID, "{how:?} {payload:?}");
            assert_eq!(answer.metadata.response_code, rcode, "{how:?} {payload:?}");
            assert_eq!(answer.queries[0].name, name("example.com."), "{how:?}");
            assert_eq!(answer.edns.is_some(), has_opt, "{how:?} {payload:?}");
            let expected_answers = if rcode == ResponseCode::NoError { 2 } else { 0 };
            assert_eq!(
                answer.answers.len(),
                expected_answers,
                "{how:?} {payload:?}"
            );
        }
    }

    #[test]
    fn misbehaviour_touches_only_its_own_name() {
        let responder = misbehaving("example.com", Misbehaviour::Refused);
        let answer = ask_udp(
            responder.addr(),
            &query("mx1.example.com.", RecordType::A, None),
        );
        assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
        let refused = ask_udp(
            responder.addr(),
            &query("EXAMPLE.com.", RecordType::A, None),
        );
        assert_eq!(refused.metadata.response_code, ResponseCode::Refused);
    }

    #[test]
    fn silent_name_gets_no_answer_but_is_counted() {
        let responder = misbehaving("example.com", Misbehaviour::Silent);
        let packet = query("example.com.", RecordType::MX, None)
            .to_vec()
            .unwrap();
        assert_eq!(exchange_udp(responder.addr(), &packet, SILENCE_WAIT), None);
        assert_eq!(responder.udp_queries(), 1);
    }

    #[test]
    fn garbage_starts_with_the_id_and_does_not_decode() {
        let responder = misbehaving("example.com", Misbehaviour::Garbage);
        let packet = query("example.com.", RecordType::MX, None)
            .to_vec()
            .unwrap();
        let bytes = exchange_udp(responder.addr(), &packet, ANSWER_WAIT).unwrap();
        assert_eq!(bytes[..2], ID.to_be_bytes());
        assert!(Message::from_vec(&bytes).is_err(), "{bytes:?}");
    }

    #[test]
    fn spoofed_id_is_the_only_answer() {
        let responder = misbehaving("example.com", Misbehaviour::SpoofedId);
        let socket = client_for(responder.addr());
        socket.set_read_timeout(Some(SILENCE_WAIT)).unwrap();
        let packet = query("example.com.", RecordType::MX, None)
            .to_vec()
            .unwrap();
        socket.send_to(&packet, responder.addr()).unwrap();
        let mut buffer = [0_u8; 2048];
        let (length, _) = socket.recv_from(&mut buffer).unwrap();
        let answer = Message::from_vec(&buffer[..length]).unwrap();
        assert_ne!(answer.metadata.id, ID);
        assert_eq!(answer.answers.len(), 2, "the rest of the answer is right");
        assert!(socket.recv_from(&mut buffer).is_err(), "no second answer");
    }

    #[test]
    fn wrong_question_keeps_the_id_and_changes_the_name() {
        let responder = misbehaving("example.com", Misbehaviour::WrongQuestion);
        let answer = ask_udp(
            responder.addr(),
            &query("example.com.", RecordType::MX, None),
        );
        assert_eq!(answer.metadata.id, ID);
        assert_eq!(answer.queries[0].name, name("wrong-question.sim."));
        assert_eq!(answer.queries[0].query_type, RecordType::MX);
    }

    #[test]
    fn truncate_forces_tc_over_udp_only() {
        let responder = misbehaving("example.com", Misbehaviour::Truncate);
        let over_udp = ask_udp(
            responder.addr(),
            &query("example.com.", RecordType::MX, Some(1232)),
        );
        assert!(over_udp.metadata.truncation);
        assert!(over_udp.answers.is_empty() && over_udp.additionals.is_empty());
        assert!(over_udp.edns.is_some());
        let mut stream = connect(responder.addr());
        let over_tcp = ask_tcp(&mut stream, &query("example.com.", RecordType::MX, None));
        assert!(!over_tcp.metadata.truncation);
        assert_eq!(over_tcp.answers.len(), 2);
    }

    #[test]
    fn delayed_answer_arrives_late_without_holding_up_others() {
        // Long enough that only a responder that holds up the quick answer behind the slow one
        // gets the order wrong, however busy the machine.
        let delay = Duration::from_secs(1);
        let responder = misbehaving("example.com", Misbehaviour::Delay(delay));
        let client = client_for(responder.addr());
        client.set_read_timeout(Some(HANG_GUARD)).unwrap();
        let asked_at = Instant::now();
        for packet in [
            query("example.com.", RecordType::MX, None),
            query("mx1.example.com.", RecordType::A, None),
        ] {
            client
                .send_to(&packet.to_vec().unwrap(), responder.addr())
                .unwrap();
        }
        let mut buffer = [0_u8; 2048];
        let mut next_answer = || {
            let (length, _) = client.recv_from(&mut buffer).unwrap();
            Message::from_vec(&buffer[..length]).unwrap()
        };
        let first = next_answer();
        assert_eq!(
            first.queries[0].name,
            name("mx1.example.com."),
            "the quick answer comes first"
        );
        assert_eq!(first.answers.len(), 1);
        let second = next_answer();
        assert!(asked_at.elapsed() >= delay);
        assert_eq!(second.queries[0].name, name("example.com."));
        assert_eq!(second.answers.len(), 2);
    }

    #[test]
    fn delay_applies_over_tcp_too() {
        let delay = Duration::from_millis(150);
        let responder = misbehaving("example.com", Misbehaviour::Delay(delay));
        let mut stream = connect(responder.addr());
        let asked_at = Instant::now();
        let answer = ask_tcp(&mut stream, &query("example.com.", RecordType::MX, None));
        assert!(asked_at.elapsed() >= delay);
        assert_eq!(answer.answers.len(), 2);
    }

    #[test]
    fn ipv6_loopback_serves_udp_and_tcp() {
        let responder =
            match DnsResponder::start_on((Ipv6Addr::LOCALHOST, 0).into(), example_zone()) {
                Ok(responder) => responder,
                Err(error) => {
                    println!("skipped: cannot bind [::1] on this machine ({error})");
                    return;
                }
            };
        assert!(responder.addr().is_ipv6());
        let over_udp = ask_udp(
            responder.addr(),
            &query("example.com.", RecordType::MX, None),
        );
        assert_eq!(over_udp.answers.len(), 2);
        let mut stream = connect(responder.addr());
        let over_tcp = ask_tcp(&mut stream, &query("example.com.", RecordType::MX, None));
        assert_eq!(over_tcp.answers.len(), 2);
    }

    #[test]
    fn drop_stops_the_threads_promptly() {
        let responder = start(example_zone());
        let addr = responder.addr();
        // An open, idle TCP connection must not hold the drop up.
        let _idle = connect(addr);
        // A connection thread that waited for the idle limit instead of the stop flag would
        // hold the drop up for TCP_IDLE_LIMIT: the guard is well short of that, and generous.
        let guard = TCP_IDLE_LIMIT / 2;
        let (dropped, done) = std::sync::mpsc::channel();
        thread::spawn(move || {
            drop(responder);
            let _ = dropped.send(());
        });
        done.recv_timeout(guard)
            .expect("the drop did not stop the threads within the guard");
        let packet = query("example.com.", RecordType::MX, None)
            .to_vec()
            .unwrap();
        assert_eq!(
            exchange_udp(addr, &packet, Duration::from_millis(200)),
            None
        );
        assert!(TcpStream::connect(addr).is_err(), "the listener is closed");
    }

    #[test]
    #[should_panic(expected = "not a DNS name")]
    fn invalid_zone_name_panics_naming_it() {
        Zone::new().a("bad..name", MX_IP);
    }
}
