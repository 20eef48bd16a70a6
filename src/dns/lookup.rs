//! Record lookups: one question (name, type) from "wanted" to an outcome, over UDP and TCP, with
//! retries, a cache, and one query in flight per question however many ask.
//!
//! # A lookup's life
//!
//! 1. **Cache or coalesce.** A question with a live cached outcome is answered at once; one
//!    already in flight gains a waiter. Otherwise a lookup starts.
//! 2. **Tries.** Each try is a new UDP socket (a fresh, kernel-chosen random port) and a new
//!    random ID from a CSPRNG, sent to the next nameserver in turn. A try that gets no answer
//!    within the nameserver timeout is not abandoned: its socket stays open, so a slow answer
//!    still counts, while the next try goes out. Rounds over the servers double the timeout,
//!    as the C library does, and `attempts` rounds are all there is.
//! 3. **Answers.** A response must pass [`check_response`] and come from the server the try
//!    went to; anything else is dropped and counted, and the lookup keeps waiting (RFC 5452).
//!    TC=1 sends the same question over TCP to the same server. FORMERR or NOTIMP to a query
//!    with EDNS repeats it without EDNS (RFC 6891 §7). SERVFAIL, REFUSED and other errors
//!    move on to the next server at once. NOERROR and NXDOMAIN end the lookup.
//! 4. **Aliases.** A CNAME chain that leaves the answer becomes a lookup of its target,
//!    [`MAX_CHAIN`] links at most; the original question then takes the target's outcome.
//! 5. **Deadline.** Every lookup has one: the end of its last try's wait, and never later than
//!    the configured lookup timeout. Reaching it is [`LookupFailure::Timeout`].
//! 6. **Pacing.** At most [`LookupConfig::max_in_flight`] lookups are on the wire at once; the
//!    others wait in order, so ten thousand routes at once do not overflow the nameserver's
//!    socket buffer and lose queries.
//!
//! Nothing here does I/O or reads the clock: sockets are asked for with [`Transmit`], and time
//! arrives as `now`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, Record};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::answer::{Answer, MAX_CHAIN, interpret};
use super::cache::{Cache, CachePolicy};
use super::message::{Question, Rejected, check_response, encode_query, tcp_frame};
use super::resolv_conf::NameserverConfig;

/// Names one socket the resolver asked the driver for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketId(pub u64);

/// What the resolver asks of the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transmit {
    /// Open a new UDP socket on an ephemeral port, send `payload` to `server` from it, and
    /// report every datagram it receives with `handle_udp`; report an error on it (ICMP port
    /// unreachable, a failed send) with `handle_socket_closed`.
    Udp {
        /// The socket's name from now on.
        socket: SocketId,
        /// The nameserver.
        server: SocketAddr,
        /// One DNS message.
        payload: Vec<u8>,
    },
    /// Open a TCP connection to `server`, write `payload` (already length-framed), and report
    /// the bytes received with `handle_tcp`, the end of the stream or an error with
    /// `handle_socket_closed`.
    Tcp {
        /// The socket's name from now on.
        socket: SocketId,
        /// The nameserver.
        server: SocketAddr,
        /// One DNS message with its two-octet length in front.
        payload: Vec<u8>,
    },
    /// Close the socket: nothing more is wanted from it. Closing one already closed is fine.
    Close {
        /// The socket.
        socket: SocketId,
    },
}

/// Records found for a question.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordSet {
    /// The record data of the type asked, at the end of any CNAME chain.
    pub data: Vec<RData>,
    /// The additional section of the response: glue for MX exchanges.
    pub additionals: Vec<Record>,
}

/// What a lookup came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Records of the type asked.
    Records(RecordSet),
    /// The name exists without records of the type.
    NoData,
    /// The name does not exist.
    NxDomain,
    /// DNS did not give an answer.
    Failed(LookupFailure),
}

/// Why DNS gave no answer. None of these says anything about the domain itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LookupFailure {
    /// No usable response before the deadline.
    Timeout,
    /// Every server answered with an error: SERVFAIL, REFUSED, NOTIMP or another code.
    ServerError(ResponseCode),
    /// No server could be reached (connection refused, port unreachable).
    Unreachable,
    /// A CNAME chain longer than [`MAX_CHAIN`] links, or a loop.
    AliasChain,
    /// The name to look up is not a valid DNS name.
    InvalidName,
}

impl fmt::Display for LookupFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout => f.write_str("no answer from the nameservers before the deadline"),
            Self::ServerError(rcode) => {
                let name = match rcode {
                    ResponseCode::FormErr => "FORMERR",
                    ResponseCode::ServFail => "SERVFAIL",
                    ResponseCode::NotImp => "NOTIMP",
                    ResponseCode::Refused => "REFUSED",
                    _ => "",
                };
                if name.is_empty() {
                    write!(
                        f,
                        "the nameservers answered with rcode {}",
                        u16::from(*rcode)
                    )
                } else {
                    write!(f, "the nameservers answered {name}")
                }
            }
            Self::Unreachable => f.write_str("no nameserver could be reached"),
            Self::AliasChain => f.write_str("a CNAME chain that is too long or loops"),
            Self::InvalidName => f.write_str("the name is not a valid DNS name"),
        }
    }
}

/// Who is waiting for a lookup: a mail-route lookup, and which of its questions this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Waiter {
    pub(crate) route: u64,
    pub(crate) slot: u32,
}

/// An outcome ready for a waiter.
#[derive(Debug, Clone)]
pub(crate) struct Ready {
    pub(crate) waiter: Waiter,
    pub(crate) outcome: Arc<Outcome>,
}

/// Counters of what the lookups did, for statistics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LookupStats {
    /// Lookups started (cache misses that were not coalesced).
    pub lookups: u64,
    /// Questions answered from the cache.
    pub cache_hits: u64,
    /// Questions that joined a lookup already in flight.
    pub coalesced: u64,
    /// UDP queries sent.
    pub udp_queries: u64,
    /// TCP queries sent (after TC=1).
    pub tcp_queries: u64,
    /// Responses accepted.
    pub accepted: u64,
    /// Packets dropped as undecodable.
    pub dropped_malformed: u64,
    /// Packets dropped because the ID, the question, the kind of message or the source did
    /// not match the query (late answers to an earlier try among them).
    pub dropped_mismatched: u64,
    /// Lookups that ended in [`LookupFailure::Timeout`].
    pub timeouts: u64,
}

/// How lookups are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupConfig {
    /// Servers, timeout, attempts, rotation.
    pub nameservers: NameserverConfig,
    /// The most one lookup may take, whatever the tries still allow. Default 20 s.
    pub lookup_timeout: Duration,
    /// The cache.
    pub cache: CachePolicy,
    /// Most lookups on the wire at once; the rest wait their turn, in order. Default 256: a
    /// recursive resolver answers a few hundred outstanding queries per client without
    /// dropping any (unbound's default is 1,024 per thread in all), and at a millisecond per
    /// answer that is still 256,000 lookups a second.
    pub max_in_flight: usize,
}

impl LookupConfig {
    /// The defaults around the given nameservers.
    #[must_use]
    pub fn new(nameservers: NameserverConfig) -> Self {
        Self {
            nameservers,
            lookup_timeout: Duration::from_secs(20),
            cache: CachePolicy::default(),
            max_in_flight: 256,
        }
    }
}

/// One try of a lookup: a question sent once, on one socket, to one server.
#[derive(Debug)]
struct Try {
    socket: SocketId,
    id: u16,
    server: SocketAddr,
    edns: bool,
    /// For TCP: the bytes received so far. `None` for UDP.
    tcp: Option<Vec<u8>>,
}

#[derive(Debug)]
enum State {
    Querying {
        tries: Vec<Try>,
        /// Tries sent over UDP so far (TCP follow-ups are not counted).
        sent: u32,
        /// The server index the first try went to.
        first_server: usize,
        /// When to send the next try if no answer came.
        next_try_at: Instant,
        /// False after a FORMERR or NOTIMP to a query with EDNS.
        edns: bool,
        last_failure: Option<LookupFailure>,
    },
    /// Waiting for the lookup `target` of the name this one is an alias for.
    Aliased { ttl: u32, target: u64 },
    /// Waiting for room under [`LookupConfig::max_in_flight`]; nothing sent yet.
    Queued,
}

#[derive(Debug)]
struct Lookup {
    question: Question,
    /// CNAME links followed to reach this question.
    chain: usize,
    deadline: Instant,
    state: State,
    waiters: Vec<Waiter>,
    /// Lookups of alias sources waiting for this one.
    aliases: Vec<u64>,
}

/// The record-lookup machine. See the module documentation.
#[derive(Debug)]
pub(crate) struct Lookups {
    config: LookupConfig,
    rng: StdRng,
    cache: Cache,
    active: HashMap<u64, Lookup>,
    by_question: HashMap<Question, u64>,
    sockets: HashMap<SocketId, u64>,
    timers: BinaryHeap<Reverse<(Instant, u64)>>,
    transmits: VecDeque<Transmit>,
    ready: VecDeque<Ready>,
    /// Lookups waiting for room on the wire, oldest first.
    queue: VecDeque<u64>,
    /// Lookups on the wire (state `Querying`).
    querying: usize,
    next_key: u64,
    next_socket: u64,
    rotation: usize,
    stats: LookupStats,
}

impl Lookups {
    pub(crate) fn new(config: LookupConfig, seed: [u8; 32]) -> Self {
        let cache = Cache::new(config.cache);
        Self {
            config,
            rng: StdRng::from_seed(seed),
            cache,
            active: HashMap::new(),
            by_question: HashMap::new(),
            sockets: HashMap::new(),
            timers: BinaryHeap::new(),
            transmits: VecDeque::new(),
            ready: VecDeque::new(),
            queue: VecDeque::new(),
            querying: 0,
            next_key: 0,
            next_socket: 0,
            rotation: 0,
            stats: LookupStats::default(),
        }
    }

    pub(crate) fn rng(&mut self) -> &mut StdRng {
        &mut self.rng
    }

    pub(crate) fn stats(&self) -> LookupStats {
        self.stats
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.active.len()
    }

    pub(crate) fn on_the_wire(&self) -> usize {
        self.querying
    }

    pub(crate) fn cached(&self) -> usize {
        self.cache.len()
    }

    /// `waiter` wants the outcome for `question`.
    pub(crate) fn want(&mut self, question: Question, waiter: Waiter, now: Instant) {
        if let Some((outcome, _)) = self.cache.get(&question, now) {
            self.stats.cache_hits += 1;
            self.ready.push_back(Ready { waiter, outcome });
            return;
        }
        if let Some(lookup) = self
            .by_question
            .get(&question)
            .and_then(|key| self.active.get_mut(key))
        {
            self.stats.coalesced += 1;
            lookup.waiters.push(waiter);
            return;
        }
        let key = self.start(question, 0, now);
        if let Some(lookup) = self.active.get_mut(&key) {
            lookup.waiters.push(waiter);
        }
    }

    pub(crate) fn poll_ready(&mut self) -> Option<Ready> {
        self.ready.pop_front()
    }

    pub(crate) fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub(crate) fn poll_timeout(&mut self) -> Option<Instant> {
        // Timers of finished lookups are dropped lazily, here and in `handle_timeout`.
        while let Some(&Reverse((at, key))) = self.timers.peek() {
            if self
                .active
                .get(&key)
                .is_some_and(|l| l.wake_at() == Some(at))
            {
                return Some(at);
            }
            self.timers.pop();
        }
        None
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        while let Some(&Reverse((at, key))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(lookup) = self.active.get(&key) else {
                continue;
            };
            if lookup.wake_at() != Some(at) {
                continue;
            }
            if now >= lookup.deadline {
                // A server that answered with an error says more than one that stayed silent.
                let failure = match &lookup.state {
                    State::Querying {
                        last_failure: Some(failure),
                        ..
                    } => *failure,
                    _ => LookupFailure::Timeout,
                };
                if failure == LookupFailure::Timeout {
                    self.stats.timeouts += 1;
                }
                self.complete(key, Outcome::Failed(failure), None, now);
            } else {
                self.send_try(key, now);
            }
        }
    }

    pub(crate) fn handle_udp(
        &mut self,
        socket: SocketId,
        from: SocketAddr,
        datagram: &[u8],
        now: Instant,
    ) {
        let Some((key, index)) = self.find_try(socket) else {
            // A socket of a finished lookup: its answer came too late to matter.
            self.stats.dropped_mismatched += 1;
            return;
        };
        let accepted = {
            let lookup = &self.active[&key];
            let State::Querying { tries, .. } = &lookup.state else {
                return;
            };
            let attempt = &tries[index];
            if attempt.tcp.is_some() {
                return;
            }
            if from != attempt.server {
                // RFC 5452: only the server the query went to may answer it.
                self.stats.dropped_mismatched += 1;
                return;
            }
            check_response(datagram, attempt.id, &lookup.question)
        };
        self.on_response(key, index, accepted, now);
    }

    pub(crate) fn handle_tcp(&mut self, socket: SocketId, bytes: &[u8], now: Instant) {
        let Some((key, index)) = self.find_try(socket) else {
            return;
        };
        let frame = {
            let lookup = self.active.get_mut(&key).expect("find_try found it");
            let State::Querying { tries, .. } = &mut lookup.state else {
                return;
            };
            let Some(buffer) = tries[index].tcp.as_mut() else {
                return;
            };
            buffer.extend_from_slice(bytes);
            match buffer.get(..2) {
                Some(&[high, low]) => {
                    let len = usize::from(u16::from_be_bytes([high, low]));
                    // Bounded: the try ends with the first frame, which is at most 65,537 bytes.
                    (buffer.len() >= 2 + len).then(|| buffer[2..2 + len].to_vec())
                }
                _ => None,
            }
        };
        let Some(frame) = frame else {
            return;
        };
        let accepted = {
            let lookup = &self.active[&key];
            let State::Querying { tries, .. } = &lookup.state else {
                return;
            };
            check_response(&frame, tries[index].id, &lookup.question)
        };
        // On a connection of its own, a wrong message cannot be a stray: the try has failed.
        if accepted.is_err() {
            self.count_rejected(accepted.as_ref().err().copied());
            self.fail_try(key, index, LookupFailure::Timeout, now);
            return;
        }
        self.on_response(key, index, accepted, now);
    }

    pub(crate) fn handle_socket_closed(&mut self, socket: SocketId, now: Instant) {
        if let Some((key, index)) = self.find_try(socket) {
            self.fail_try(key, index, LookupFailure::Unreachable, now);
        }
    }

    fn find_try(&self, socket: SocketId) -> Option<(u64, usize)> {
        let key = *self.sockets.get(&socket)?;
        let State::Querying { tries, .. } = &self.active.get(&key)?.state else {
            return None;
        };
        let index = tries.iter().position(|t| t.socket == socket)?;
        Some((key, index))
    }

    fn count_rejected(&mut self, rejected: Option<Rejected>) {
        match rejected {
            Some(Rejected::Malformed) => self.stats.dropped_malformed += 1,
            Some(_) => self.stats.dropped_mismatched += 1,
            None => {}
        }
    }

    fn on_response(
        &mut self,
        key: u64,
        index: usize,
        accepted: Result<Message, Rejected>,
        now: Instant,
    ) {
        let message = match accepted {
            Ok(message) => message,
            Err(rejected) => {
                self.count_rejected(Some(rejected));
                return;
            }
        };
        self.stats.accepted += 1;
        let (question, chain, attempt_server, attempt_edns, over_udp) = {
            let lookup = &self.active[&key];
            let State::Querying { tries, .. } = &lookup.state else {
                return;
            };
            let attempt = &tries[index];
            (
                lookup.question.clone(),
                lookup.chain,
                attempt.server,
                attempt.edns,
                attempt.tcp.is_none(),
            )
        };
        if message.metadata.truncation && over_udp {
            self.close_try(key, index);
            self.send_tcp(key, attempt_server, attempt_edns);
            return;
        }
        match interpret(&message, &question) {
            Answer::Records {
                data,
                additionals,
                ttl,
            } => self.complete(
                key,
                Outcome::Records(RecordSet { data, additionals }),
                Some(ttl),
                now,
            ),
            Answer::NoData { negative_ttl } => {
                self.complete(key, Outcome::NoData, negative_ttl, now);
            }
            Answer::NxDomain { negative_ttl } => {
                self.complete(key, Outcome::NxDomain, negative_ttl, now);
            }
            Answer::Alias { target, ttl } => {
                if chain + 1 > MAX_CHAIN {
                    self.complete(key, Outcome::Failed(LookupFailure::AliasChain), None, now);
                    return;
                }
                self.follow_alias(key, Question::new(&target, question.qtype), ttl, now);
            }
            Answer::ServerError(rcode @ (ResponseCode::FormErr | ResponseCode::NotImp))
                if attempt_edns =>
            {
                // RFC 6891 §7: a server that does not know EDNS answers FORMERR (or NOTIMP);
                // ask it again without.
                self.close_try(key, index);
                if let Some(Lookup {
                    state:
                        State::Querying {
                            edns, last_failure, ..
                        },
                    ..
                }) = self.active.get_mut(&key)
                {
                    *edns = false;
                    *last_failure = Some(LookupFailure::ServerError(rcode));
                }
                self.send_to(key, attempt_server, false);
            }
            Answer::ServerError(rcode) => {
                self.fail_try(key, index, LookupFailure::ServerError(rcode), now);
            }
        }
    }

    /// Starts a lookup of `question` and returns its key: on the wire at once if there is room,
    /// queued otherwise.
    fn start(&mut self, question: Question, chain: usize, now: Instant) -> u64 {
        let key = self.next_key;
        self.next_key += 1;
        self.stats.lookups += 1;
        self.by_question.insert(question.clone(), key);
        self.active.insert(
            key,
            Lookup {
                question,
                chain,
                deadline: now + self.config.lookup_timeout,
                state: State::Queued,
                waiters: Vec::new(),
                aliases: Vec::new(),
            },
        );
        self.queue.push_back(key);
        self.admit(now);
        key
    }

    /// Puts queued lookups on the wire while there is room. A lookup's deadline runs from
    /// here: time spent queued is the other lookups' time.
    fn admit(&mut self, now: Instant) {
        while self.querying < self.config.max_in_flight.max(1) {
            let Some(key) = self.queue.pop_front() else {
                return;
            };
            let servers = self.config.nameservers.servers.len().max(1);
            let first_server = if self.config.nameservers.rotate {
                self.rotation = (self.rotation + 1) % servers;
                self.rotation
            } else {
                0
            };
            let Some(lookup) = self.active.get_mut(&key) else {
                continue;
            };
            if !matches!(lookup.state, State::Queued) {
                continue;
            }
            lookup.deadline = now + self.config.lookup_timeout;
            lookup.state = State::Querying {
                tries: Vec::new(),
                sent: 0,
                first_server,
                next_try_at: now,
                edns: true,
                last_failure: None,
            };
            self.querying += 1;
            self.send_try(key, now);
        }
    }

    /// Sends the next UDP try, if the budget allows. With the budget spent and nothing in
    /// flight, the lookup ends with its last failure.
    fn send_try(&mut self, key: u64, now: Instant) {
        let servers = &self.config.nameservers.servers;
        let max_tries = u32::from(self.config.nameservers.attempts) * servers.len() as u32;
        let timeout = self.config.nameservers.timeout;
        let Some(lookup) = self.active.get_mut(&key) else {
            return;
        };
        let State::Querying {
            sent,
            first_server,
            next_try_at,
            edns,
            tries,
            last_failure,
        } = &mut lookup.state
        else {
            return;
        };
        if *sent >= max_tries {
            if tries.is_empty() {
                let failure = last_failure.unwrap_or(LookupFailure::Unreachable);
                self.complete(key, Outcome::Failed(failure), None, now);
            }
            return;
        }
        let server = servers[(*first_server + *sent as usize) % servers.len()];
        // Round r waits timeout × 2^r, as the C library's res_send does.
        let round = *sent / servers.len() as u32;
        let wait = timeout.saturating_mul(2u32.saturating_pow(round.min(16)));
        *sent += 1;
        *next_try_at = now + wait;
        if *sent >= max_tries {
            lookup.deadline = lookup.deadline.min(*next_try_at);
        }
        let use_edns = *edns;
        self.send_to(key, server, use_edns);
    }

    /// Sends one UDP query for lookup `key` to `server` and arms its timer.
    fn send_to(&mut self, key: u64, server: SocketAddr, edns: bool) {
        let id = self.rng.random::<u16>();
        let socket = self.new_socket();
        let Some(lookup) = self.active.get_mut(&key) else {
            return;
        };
        let payload = encode_query(id, &lookup.question, edns);
        if let State::Querying { tries, .. } = &mut lookup.state {
            tries.push(Try {
                socket,
                id,
                server,
                edns,
                tcp: None,
            });
        }
        self.sockets.insert(socket, key);
        self.stats.udp_queries += 1;
        self.transmits.push_back(Transmit::Udp {
            socket,
            server,
            payload,
        });
        if let Some(at) = self.active.get(&key).and_then(Lookup::wake_at) {
            self.timers.push(Reverse((at, key)));
        }
    }

    /// Asks `server` again over TCP, after a truncated UDP answer.
    fn send_tcp(&mut self, key: u64, server: SocketAddr, edns: bool) {
        let id = self.rng.random::<u16>();
        let socket = self.new_socket();
        let Some(lookup) = self.active.get_mut(&key) else {
            return;
        };
        let payload = tcp_frame(&encode_query(id, &lookup.question, edns));
        if let State::Querying { tries, .. } = &mut lookup.state {
            tries.push(Try {
                socket,
                id,
                server,
                edns,
                tcp: Some(Vec::new()),
            });
        }
        self.sockets.insert(socket, key);
        self.stats.tcp_queries += 1;
        self.transmits.push_back(Transmit::Tcp {
            socket,
            server,
            payload,
        });
    }

    fn new_socket(&mut self) -> SocketId {
        let socket = SocketId(self.next_socket);
        self.next_socket += 1;
        socket
    }

    /// Closes try `index` of lookup `key`.
    fn close_try(&mut self, key: u64, index: usize) {
        let Some(Lookup {
            state: State::Querying { tries, .. },
            ..
        }) = self.active.get_mut(&key)
        else {
            return;
        };
        let attempt = tries.remove(index);
        self.sockets.remove(&attempt.socket);
        self.transmits.push_back(Transmit::Close {
            socket: attempt.socket,
        });
    }

    /// Try `index` failed for `failure`: the next server is asked at once.
    fn fail_try(&mut self, key: u64, index: usize, failure: LookupFailure, now: Instant) {
        self.close_try(key, index);
        if let Some(Lookup {
            state: State::Querying { last_failure, .. },
            ..
        }) = self.active.get_mut(&key)
        {
            *last_failure = Some(failure);
        }
        self.send_try(key, now);
    }

    /// Lookup `key` turned out to be an alias: it takes the outcome of `target`'s lookup.
    fn follow_alias(&mut self, key: u64, target: Question, ttl: u32, now: Instant) {
        let Some(chain) = self.active.get(&key).map(|l| l.chain + 1) else {
            return;
        };
        if let Some((outcome, remaining)) = self.cache.get(&target, now) {
            self.stats.cache_hits += 1;
            let outcome = Outcome::clone(&outcome);
            self.complete(key, outcome, Some(ttl.min(remaining)), now);
            return;
        }
        let target_key = match self.by_question.get(&target) {
            Some(&existing) if self.active.contains_key(&existing) => existing,
            _ => self.start(target, chain, now),
        };
        // Joining a lookup that (through its own aliases) waits for this one would wait
        // forever: a CNAME loop across responses.
        if self.alias_path_reaches(target_key, key) {
            self.complete(key, Outcome::Failed(LookupFailure::AliasChain), None, now);
            return;
        }
        let Some(lookup) = self.active.get_mut(&key) else {
            return;
        };
        let old = std::mem::replace(
            &mut lookup.state,
            State::Aliased {
                ttl,
                target: target_key,
            },
        );
        if let State::Querying { tries, .. } = old {
            self.querying -= 1;
            for attempt in tries {
                self.sockets.remove(&attempt.socket);
                self.transmits.push_back(Transmit::Close {
                    socket: attempt.socket,
                });
            }
        }
        if let Some(target_lookup) = self.active.get_mut(&target_key) {
            target_lookup.aliases.push(key);
        }
        self.admit(now);
        if let Some(at) = self.active.get(&key).and_then(Lookup::wake_at) {
            self.timers.push(Reverse((at, key)));
        }
    }

    /// True if following alias targets from `from` arrives at `to`.
    fn alias_path_reaches(&self, from: u64, to: u64) -> bool {
        let mut at = from;
        for _ in 0..=MAX_CHAIN + 1 {
            if at == to {
                return true;
            }
            match self.active.get(&at).map(|l| &l.state) {
                Some(State::Aliased { target, .. }) => at = *target,
                _ => return false,
            }
        }
        true
    }

    /// Ends lookup `key` with `outcome`: caches it, closes its sockets, and hands it to every
    /// waiter, and to the lookups that were aliases of it.
    fn complete(&mut self, key: u64, outcome: Outcome, ttl: Option<u32>, now: Instant) {
        let Some(lookup) = self.active.remove(&key) else {
            return;
        };
        if self.by_question.get(&lookup.question) == Some(&key) {
            self.by_question.remove(&lookup.question);
        }
        if let State::Querying { tries, .. } = &lookup.state {
            self.querying -= 1;
            for attempt in tries {
                self.sockets.remove(&attempt.socket);
                self.transmits.push_back(Transmit::Close {
                    socket: attempt.socket,
                });
            }
        }
        let outcome = self.cache.insert(lookup.question, outcome, ttl, now);
        for waiter in lookup.waiters {
            self.ready.push_back(Ready {
                waiter,
                outcome: Arc::clone(&outcome),
            });
        }
        for alias in lookup.aliases {
            let alias_ttl = match self.active.get(&alias).map(|l| &l.state) {
                Some(State::Aliased { ttl: alias_ttl, .. }) => *alias_ttl,
                _ => continue,
            };
            let ttl = ttl.map(|t| t.min(alias_ttl));
            self.complete(alias, Outcome::clone(&outcome), ttl, now);
        }
        self.admit(now);
    }
}

impl Lookup {
    /// When this lookup next needs attention: its next try or its deadline.
    fn wake_at(&self) -> Option<Instant> {
        match &self.state {
            State::Querying { next_try_at, .. } => Some((*next_try_at).min(self.deadline)),
            State::Aliased { .. } => Some(self.deadline),
            State::Queued => None,
        }
    }
}
