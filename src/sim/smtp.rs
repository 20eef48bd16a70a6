//! A farm of simulated SMTP servers on loopback, each listening address with a scripted
//! [`Personality`], for mxprobe's end-to-end tests and for `mxprobe bench`.
//!
//! A personality says which mailboxes exist and how the server behaves towards a prober:
//! catch-all, greylisting, a recipient limit, a refused or unavailable greeting, a rejected
//! sender, hidden extensions, network latency — and the failures a client must survive: silence,
//! a non-SMTP greeting, connections closed mid-dialogue, replies dripped byte by byte or held past
//! any sane timeout ([`Behaviour`]). It speaks just enough of RFC 5321 for a probe (EHLO, HELO,
//! MAIL, RCPT, RSET, NOOP, VRFY, QUIT) with Postfix's reply texts, and refuses DATA and BDAT while
//! counting them, so a test can assert that mxprobe never sent one.
//!
//! # Guarantees
//!
//! - Commands are answered in the order received, whether they arrive one per read, several per
//!   read (pipelining) or split across reads at any byte. A line ends in CRLF or a bare LF; a line
//!   longer than [`MAX_LINE`] bytes (line ending included) gets `500 5.5.2 Line too long` and the
//!   connection is closed.
//! - Replies follow the latency model: a reply to a command received at `t` is sent at
//!   `max(t + delay, when the previous reply on this connection was sent)`, where `delay` is the
//!   personality's latency, plus its tarpit, plus a uniform random jitter. A pipelined batch is
//!   thus answered one delay later, all together; lock-step commands each cost one delay.
//! - Memory per connection is bounded: input by [`MAX_LINE`] plus one read, undelivered replies
//!   by a quarter MiB plus the replies to one read (the farm stops reading from a client that
//!   does not read its replies). Greylist memory is not: it keeps every triplet for the life of
//!   the farm, as a greylister keeps them for days.
//! - Nothing a client sends makes a farm thread panic. A client holds only its own connection,
//!   for at most the idle limit ([`DEFAULT_IDLE_LIMIT`], give or take one idle sweep) without
//!   input.
//! - An idle farm uses no CPU: threads sleep in `epoll_wait` until a socket, a timer or the stop
//!   signal wakes them. Dropping the [`SmtpFarm`] stops and joins every thread within one wake-up
//!   and closes every socket.
//!
//! # Threads and timers
//!
//! The farm runs `threads` event loops, each a thread with its own `mio::Poll`; listener `i` is
//! served by thread `i % threads`, with all its connections and its greylist memory, so threads
//! share nothing but their counters. One listener therefore uses at most one core: to load
//! several cores, give the farm several listeners. Each loop keeps one timer heap for reply
//! release, dripped bytes, the [`Behaviour::Garbage`] linger and accept back-off after `EMFILE`,
//! and sweeps for idle connections every quarter of the idle limit (at most every second); it
//! polls with the time to the earliest timer as timeout and never sleeps otherwise.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use slab::Slab;
use socket2::{Domain, Protocol, Socket, Type};

/// The longest command line accepted, line ending included.
pub const MAX_LINE: usize = 4096;

/// How long a connection may go without receiving a byte before the server says
/// `421 4.4.2 … Error: timeout exceeded` and closes it, unless [`FarmOptions::idle_limit`] says
/// otherwise. Postfix's `smtpd_timeout` default is 300 s; a minute keeps benchmarks tidy.
pub const DEFAULT_IDLE_LIMIT: Duration = Duration::from_secs(60);

/// The pace of a [`Behaviour::Drip`] reply: one byte per interval.
pub const DRIP_INTERVAL: Duration = Duration::from_millis(100);

/// How long a [`Behaviour::Garbage`] server keeps the connection open after its greeting.
pub const GARBAGE_LINGER: Duration = Duration::from_secs(1);

/// How long a listener stops accepting after `accept` fails for want of descriptors or memory,
/// so a farm out of file descriptors does not spin.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The listen backlog asked for, and the one asked for if the first is refused. The kernel caps
/// both at `net.core.somaxconn`.
const LISTEN_BACKLOG: i32 = 4096;
const FALLBACK_LISTEN_BACKLOG: i32 = 1024;

/// Undelivered reply bytes past which the farm stops reading from a connection until its client
/// reads some of them.
const UNSENT_LIMIT: usize = 256 * 1024;

/// Bytes read from a socket at a time.
const READ_CHUNK: usize = 16 * 1024;

/// Reads spent discarding unread input before closing, so the kernel sends FIN rather than RST
/// and the client reads the last reply.
const DISCARD_READS_AT_CLOSE: usize = 4;

/// The idle sweep runs this often at most, and more often for short idle limits.
const MAX_SWEEP_INTERVAL: Duration = Duration::from_secs(1);

const EVENTS_PER_POLL: usize = 1024;

/// The token of each loop's waker; listeners count up from `FIRST_LISTENER`, connections are
/// their slab keys, far below both.
const WAKE: Token = Token(usize::MAX);
const FIRST_LISTENER: usize = usize::MAX / 2;

/// The greeting of a [`Behaviour::Garbage`] server: HTTP, not SMTP.
const GARBAGE_GREETING: &[u8] = b"HTTP/1.1 400 Bad Request\r\n";

/// What one listening address is like: its name, its mailboxes and its manners. Start from
/// [`Personality::new`] and chain the builder methods:
///
/// ```
/// use std::time::Duration;
/// use mxprobe::sim::smtp::Personality;
///
/// let strict = Personality::new("mx1.farm.test")
///     .mailbox("alice@farm.test")
///     .greylist(Duration::from_secs(300))
///     .max_rcpt_per_session(10)
///     .latency(Duration::from_millis(50));
/// # assert!(strict.mailboxes.contains("alice@farm.test"));
/// ```
#[derive(Debug, Clone)]
pub struct Personality {
    /// The name in the greeting and the EHLO reply, e.g. `mx1.farm.test`. It must not contain
    /// CR or LF.
    pub hostname: String,
    /// Full addresses that exist; RCPT compares them case-insensitively.
    pub mailboxes: HashSet<String>,
    /// Local-part prefixes: at every domain this server receives for, a local part that
    /// starts with one of them exists (case-insensitively). Generated worlds of millions of
    /// mailboxes use this instead of listing them.
    pub mailbox_prefixes: Vec<String>,
    /// Every RCPT is accepted, whether the mailbox exists or not.
    pub catch_all: bool,
    /// Greylisting: a RCPT for a (client IP, sender, recipient) triplet first seen less than
    /// this long ago gets `451 4.7.1`; afterwards it is answered normally. Triplets are
    /// remembered per listener, across connections, for the life of the farm.
    pub greylist: Option<Duration>,
    /// What the server says on connect.
    pub greeting: Greeting,
    /// After this many RCPT commands in one session, every further one gets `452 4.5.3`.
    pub max_rcpt_per_session: Option<usize>,
    /// Advertise PIPELINING after EHLO. The server handles pipelined commands either way.
    pub pipelining: bool,
    /// Advertise SMTPUTF8 after EHLO.
    pub smtputf8: bool,
    /// MAIL FROM gets `553 5.1.8 <sender>: Sender address rejected: Domain not found`.
    pub reject_sender: bool,
    /// Added before every reply, the greeting included: the network round trip it models.
    pub latency: Duration,
    /// A uniform random extra in `[0, jitter]` added to each reply's latency.
    pub jitter: Duration,
    /// How the server misbehaves, if it does.
    pub behaviour: Behaviour,
}

/// What a server says when a client connects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Greeting {
    /// `220 {hostname} ESMTP mxprobe-sim`.
    Normal,
    /// `554 5.7.1 Service unavailable; Client host [ip] blocked using zen.spamhaus.org`, then
    /// `503 5.5.1 Error: no SMTP service here` to every command but QUIT, as RFC 5321 §3.1 asks
    /// of a server that refuses at greeting.
    Refuse,
    /// `421 4.7.0 {hostname} Error: too many connections from ip`, then the server closes.
    Unavailable,
}

/// A way a server fails a client, on top of its [`Personality`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Speaks SMTP as described in the module docs.
    Normal,
    /// Accepts the connection and never sends a byte: the client must time out. The server
    /// closes when the client does, or after the idle limit.
    Silent,
    /// Greets with `HTTP/1.1 400 Bad Request` (not SMTP), ignores what the client sends and
    /// closes [`GARBAGE_LINGER`] after the greeting, or when the client closes.
    Garbage,
    /// Sends the greeting, then closes.
    CloseAfterGreeting,
    /// Answers normally up to MAIL FROM, answers that with `250 2.1.0 Ok` (even if the sender
    /// would be rejected), then closes without answering anything else.
    CloseAfterMail,
    /// Sends every reply one byte per [`DRIP_INTERVAL`].
    Drip,
    /// Delays every reply, the greeting included, by this long on top of the latency: meant to
    /// exceed the client's timeouts.
    Tarpit(Duration),
}

impl Personality {
    /// A well-behaved server named `hostname` with no mailboxes: PIPELINING and SMTPUTF8
    /// advertised, no greylisting, no recipient limit, no latency.
    #[must_use]
    pub fn new(hostname: &str) -> Self {
        Self {
            hostname: hostname.to_owned(),
            mailboxes: HashSet::new(),
            mailbox_prefixes: Vec::new(),
            catch_all: false,
            greylist: None,
            greeting: Greeting::Normal,
            max_rcpt_per_session: None,
            pipelining: true,
            smtputf8: true,
            reject_sender: false,
            latency: Duration::ZERO,
            jitter: Duration::ZERO,
            behaviour: Behaviour::Normal,
        }
    }

    /// Adds a mailbox that exists (a full address, any case).
    #[must_use]
    pub fn mailbox(mut self, address: &str) -> Self {
        self.mailboxes.insert(address.to_owned());
        self
    }

    /// Adds mailboxes that exist.
    #[must_use]
    pub fn mailboxes<I, S>(mut self, addresses: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.mailboxes.extend(addresses.into_iter().map(Into::into));
        self
    }

    /// Every local part that starts with `prefix` exists, at any domain: `user` makes
    /// `user1@a.test` and `User42@b.test` exist, not `nobody@a.test`.
    #[must_use]
    pub fn mailbox_prefix(mut self, prefix: &str) -> Self {
        self.mailbox_prefixes.push(prefix.to_owned());
        self
    }

    /// Accepts every recipient.
    #[must_use]
    pub fn catch_all(mut self) -> Self {
        self.catch_all = true;
        self
    }

    /// Greylists each new (client IP, sender, recipient) triplet for `period`.
    #[must_use]
    pub fn greylist(mut self, period: Duration) -> Self {
        self.greylist = Some(period);
        self
    }

    /// Greets with `greeting`.
    #[must_use]
    pub fn greeting(mut self, greeting: Greeting) -> Self {
        self.greeting = greeting;
        self
    }

    /// Answers `452 4.5.3` to every RCPT after the first `limit` in a session.
    #[must_use]
    pub fn max_rcpt_per_session(mut self, limit: usize) -> Self {
        self.max_rcpt_per_session = Some(limit);
        self
    }

    /// Leaves PIPELINING out of the EHLO reply.
    #[must_use]
    pub fn without_pipelining(mut self) -> Self {
        self.pipelining = false;
        self
    }

    /// Leaves SMTPUTF8 out of the EHLO reply.
    #[must_use]
    pub fn without_smtputf8(mut self) -> Self {
        self.smtputf8 = false;
        self
    }

    /// Rejects every sender with `553 5.1.8`.
    #[must_use]
    pub fn reject_sender(mut self) -> Self {
        self.reject_sender = true;
        self
    }

    /// Adds `latency` before every reply.
    #[must_use]
    pub fn latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// Adds a uniform random extra in `[0, jitter]` before every reply.
    #[must_use]
    pub fn jitter(mut self, jitter: Duration) -> Self {
        self.jitter = jitter;
        self
    }

    /// Misbehaves as `behaviour` says.
    #[must_use]
    pub fn behaviour(mut self, behaviour: Behaviour) -> Self {
        self.behaviour = behaviour;
        self
    }
}

/// How a farm runs, beyond its listeners. `FarmOptions::default()` is one thread, a
/// [`DEFAULT_IDLE_LIMIT`] and seed 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FarmOptions {
    /// Event-loop threads, at least 1. More threads than listeners would idle, so the farm
    /// starts at most one per listener.
    pub threads: usize,
    /// How long a connection may go without input before the server closes it.
    pub idle_limit: Duration,
    /// Seeds the jitter of every thread, so a run can be repeated.
    pub seed: u64,
}

impl Default for FarmOptions {
    fn default() -> Self {
        Self {
            threads: 1,
            idle_limit: DEFAULT_IDLE_LIMIT,
            seed: 0,
        }
    }
}

/// What the farm has seen, summed over its threads at the moment of asking.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FarmStats {
    /// Connections accepted.
    pub connections: u64,
    /// Sessions that ended with QUIT answered.
    pub sessions_completed: u64,
    /// RCPT commands received, whatever their answer.
    pub rcpt_commands: u64,
    /// MAIL commands received, whatever their answer.
    pub mail_commands: u64,
    /// DATA and BDAT commands received (all refused). mxprobe must keep this at 0.
    pub data_commands: u64,
    /// Waits the farm imposed: the greeting, and every reply not queued behind an earlier
    /// one still held back by latency or queued at the same instant (a pipelined batch's
    /// replies are one wait, lock-step commands one each). With latency `L`, clients spent about `reply_rounds × L` waiting in
    /// all, which a benchmark divides by its concurrency for the ideal wall time.
    pub reply_rounds: u64,
    /// Connections accepted and not yet closed.
    pub open_connections: u64,
}

/// A running farm of simulated SMTP servers. Dropping it stops and joins its threads and
/// closes every listener and connection.
///
/// ```
/// use mxprobe::sim::smtp::{Personality, SmtpFarm};
///
/// let farm = SmtpFarm::start(
///     vec![("127.0.0.1:0".parse()?, Personality::new("mx.farm.test").mailbox("a@farm.test"))],
///     1,
/// )?;
/// let mx = farm.addrs()[0];
/// # assert_ne!(mx.port(), 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct SmtpFarm {
    addrs: Vec<SocketAddr>,
    stop: Arc<AtomicBool>,
    loops: Vec<RunningLoop>,
}

/// One event-loop thread as the farm holds it.
#[derive(Debug)]
struct RunningLoop {
    waker: Waker,
    counters: Arc<Counters>,
    thread: Option<JoinHandle<()>>,
}

impl SmtpFarm {
    /// Binds every listener (each its own address; port 0 lets the OS choose) and serves them
    /// on `threads` event-loop threads (at most one per listener), listeners spread
    /// round-robin. The caller raises `RLIMIT_NOFILE` if it wants many connections; when
    /// descriptors run out, a listener pauses for [`ACCEPT_BACKOFF`] and tries again.
    ///
    /// # Errors
    ///
    /// If `threads` is 0, a hostname contains CR or LF, an address cannot be bound, or a thread
    /// cannot be started; the message says which and what to change.
    pub fn start(listeners: Vec<(SocketAddr, Personality)>, threads: usize) -> io::Result<Self> {
        Self::start_with(
            listeners,
            FarmOptions {
                threads,
                ..FarmOptions::default()
            },
        )
    }

    /// [`SmtpFarm::start`] with every option spelled out.
    ///
    /// # Errors
    ///
    /// As [`SmtpFarm::start`].
    pub fn start_with(
        listeners: Vec<(SocketAddr, Personality)>,
        options: FarmOptions,
    ) -> io::Result<Self> {
        if options.threads == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "an SmtpFarm needs at least one thread: pass threads >= 1",
            ));
        }
        let thread_count = options.threads.min(listeners.len());
        let mut slots_per_loop: Vec<Vec<ListenerSlot>> =
            (0..thread_count).map(|_| Vec::new()).collect();
        let mut addrs = Vec::with_capacity(listeners.len());
        for (index, (addr, personality)) in listeners.into_iter().enumerate() {
            let script = ServerScript::new(personality)?;
            let socket = bind_listener(addr)?;
            addrs.push(socket.local_addr()?);
            slots_per_loop[index % thread_count].push(ListenerSlot {
                socket,
                script,
                backing_off: false,
            });
        }
        let mut farm = Self {
            addrs,
            stop: Arc::new(AtomicBool::new(false)),
            loops: Vec::with_capacity(thread_count),
        };
        // From here on an error drops `farm`, which stops the loops already started.
        for (index, mut slots) in slots_per_loop.into_iter().enumerate() {
            let poll = Poll::new()?;
            for (slot_index, slot) in slots.iter_mut().enumerate() {
                poll.registry().register(
                    &mut slot.socket,
                    Token(FIRST_LISTENER + slot_index),
                    Interest::READABLE,
                )?;
            }
            let waker = Waker::new(poll.registry(), WAKE)?;
            let counters = Arc::new(Counters::default());
            let event_loop = EventLoop {
                poll,
                listeners: slots,
                connections: Slab::new(),
                timers: BinaryHeap::new(),
                sweep_armed: false,
                counters: Arc::clone(&counters),
                stop: Arc::clone(&farm.stop),
                rng: StdRng::seed_from_u64(options.seed ^ (index as u64).wrapping_mul(0x9e37_79b9)),
                scratch: Scratch {
                    read_buffer: vec![0; READ_CHUNK].into_boxed_slice(),
                    reply: Vec::with_capacity(512),
                    address: String::with_capacity(256),
                    keys: Vec::new(),
                },
                idle_limit: options.idle_limit,
                next_generation: 0,
            };
            let thread = thread::Builder::new()
                .name(format!("sim-smtp-{index}"))
                .spawn(move || event_loop.run())?;
            farm.loops.push(RunningLoop {
                waker,
                counters,
                thread: Some(thread),
            });
        }
        Ok(farm)
    }

    /// The bound addresses, in the order the listeners were given.
    #[must_use]
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.addrs.clone()
    }

    /// The counters of every thread, summed now.
    #[must_use]
    pub fn stats(&self) -> FarmStats {
        let mut total = FarmStats::default();
        for running in &self.loops {
            let counters = &running.counters;
            total.connections += counters.connections.load(Ordering::Relaxed);
            total.sessions_completed += counters.sessions_completed.load(Ordering::Relaxed);
            total.rcpt_commands += counters.rcpt_commands.load(Ordering::Relaxed);
            total.mail_commands += counters.mail_commands.load(Ordering::Relaxed);
            total.data_commands += counters.data_commands.load(Ordering::Relaxed);
            total.reply_rounds += counters.reply_rounds.load(Ordering::Relaxed);
            total.open_connections += counters.open_connections.load(Ordering::Relaxed);
        }
        total
    }
}

impl Drop for SmtpFarm {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        for running in &self.loops {
            // A failed wake leaves that loop asleep until its next event or timer; nothing
            // better can be done from a destructor.
            let _ = running.waker.wake();
        }
        for running in &mut self.loops {
            if let Some(thread) = running.thread.take() {
                // A loop thread that panicked has already printed why; a second panic here
                // while dropping would only hide the first.
                let _ = thread.join();
            }
        }
    }
}

/// Binds a nonblocking listener on `addr` with a deep backlog, so a benchmark's burst of
/// connects queues instead of being refused.
fn bind_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into()).map_err(|error| {
        let advice = match error.kind() {
            io::ErrorKind::AddrInUse => "use another port, or port 0 to let the OS choose",
            io::ErrorKind::AddrNotAvailable => {
                "on Linux all of 127.0.0.0/8 is loopback; elsewhere add the address to the \
                 loopback interface first (macOS: `sudo ifconfig lo0 alias <ip>`)"
            }
            _ => "check the address",
        };
        io::Error::new(
            error.kind(),
            format!("the SMTP simulator could not bind {addr}: {error}; {advice}"),
        )
    })?;
    if socket.listen(LISTEN_BACKLOG).is_err() {
        socket.listen(FALLBACK_LISTEN_BACKLOG)?;
    }
    Ok(TcpListener::from_std(socket.into()))
}

/// Counters of one loop thread, read by [`SmtpFarm::stats`]. Aligned to its own cache lines so
/// threads counting side by side do not slow each other down.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Counters {
    connections: AtomicU64,
    sessions_completed: AtomicU64,
    rcpt_commands: AtomicU64,
    mail_commands: AtomicU64,
    data_commands: AtomicU64,
    open_connections: AtomicU64,
    reply_rounds: AtomicU64,
}

fn count(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// A personality made ready to serve: replies that never change encoded once, mailboxes
/// lowercased, and the greylist memory of its listener.
#[derive(Debug)]
struct ServerScript {
    personality: Personality,
    mailboxes: HashSet<String>,
    mailbox_prefixes: Vec<String>,
    greeting: Vec<u8>,
    ehlo: Vec<u8>,
    helo: Vec<u8>,
    timeout: Vec<u8>,
    greylist_first_seen: HashMap<GreylistTriplet, Instant>,
}

/// What greylisting remembers, addresses lowercased.
#[derive(Debug, PartialEq, Eq, Hash)]
struct GreylistTriplet {
    client: IpAddr,
    sender: String,
    recipient: String,
}

impl ServerScript {
    fn new(personality: Personality) -> io::Result<Self> {
        let hostname = &personality.hostname;
        if hostname.contains(['\r', '\n']) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("the simulated MX hostname {hostname:?} contains CR or LF; remove them"),
            ));
        }
        let mut address = String::new();
        let mailboxes = personality
            .mailboxes
            .iter()
            .map(|mailbox| {
                lowercase_into(mailbox.as_bytes(), &mut address);
                address.clone()
            })
            .collect();
        let mailbox_prefixes = personality
            .mailbox_prefixes
            .iter()
            .map(|prefix| {
                lowercase_into(prefix.as_bytes(), &mut address);
                address.clone()
            })
            .collect();
        let mut ehlo = format!("250-{hostname}\r\n");
        if personality.pipelining {
            ehlo.push_str("250-PIPELINING\r\n");
        }
        ehlo.push_str("250-SIZE 10240000\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n");
        if personality.smtputf8 {
            ehlo.push_str("250-SMTPUTF8\r\n");
        }
        ehlo.push_str("250 CHUNKING\r\n");
        Ok(Self {
            greeting: format!("220 {hostname} ESMTP mxprobe-sim\r\n").into_bytes(),
            ehlo: ehlo.into_bytes(),
            helo: format!("250 {hostname}\r\n").into_bytes(),
            timeout: format!("421 4.4.2 {hostname} Error: timeout exceeded\r\n").into_bytes(),
            mailboxes,
            mailbox_prefixes,
            greylist_first_seen: HashMap::new(),
            personality,
        })
    }

    /// Whether `address` (lowercased) is a mailbox: listed, or its local part starts with one
    /// of the prefixes.
    fn has_mailbox(&self, address: &str) -> bool {
        if self.mailboxes.contains(address) {
            return true;
        }
        let local = address.rsplit_once('@').map_or(address, |(local, _)| local);
        self.mailbox_prefixes
            .iter()
            .any(|prefix| local.starts_with(prefix.as_str()))
    }

    /// How long the next reply waits: latency, tarpit and a fresh draw of jitter.
    fn reply_delay(&self, rng: &mut StdRng) -> Duration {
        let personality = &self.personality;
        let tarpit = match personality.behaviour {
            Behaviour::Tarpit(hold) => hold,
            _ => Duration::ZERO,
        };
        let jitter = if personality.jitter.is_zero() {
            Duration::ZERO
        } else {
            let most = u64::try_from(personality.jitter.as_nanos()).unwrap_or(u64::MAX);
            Duration::from_nanos(rng.random_range(0..=most))
        };
        personality.latency + tarpit + jitter
    }
}

/// Lowercases `address` into `out` (replacing it), invalid UTF-8 as U+FFFD, so lookups compare
/// addresses case-insensitively without allocating.
fn lowercase_into(address: &[u8], out: &mut String) {
    out.clear();
    for chunk in address.utf8_chunks() {
        for character in chunk.valid().chars() {
            if character.is_ascii() {
                out.push(character.to_ascii_lowercase());
            } else {
                out.extend(character.to_lowercase());
            }
        }
        if !chunk.invalid().is_empty() {
            out.push(char::REPLACEMENT_CHARACTER);
        }
    }
}

/// Where a session stands, as far as what the server will still say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Answering commands.
    Commands,
    /// The greeting refused service: 503 to everything but QUIT.
    Refused,
    /// Saying nothing and ignoring input ([`Behaviour::Silent`], [`Behaviour::Garbage`]).
    Deaf,
    /// The last reply has been decided; the connection closes once it is sent.
    Over,
}

/// The SMTP side of one connection: turns command lines into reply bytes. No I/O and no clock:
/// the connection hands it lines and the time, and delivers what it writes.
#[derive(Debug)]
struct Dialogue {
    phase: Phase,
    /// Whether MAIL has been accepted and not ended by RSET or EHLO/HELO.
    in_transaction: bool,
    /// The current sender, lowercased, for greylisting.
    sender: String,
    /// RCPT commands received in a transaction this session, for the recipient limit.
    recipients: usize,
}

/// What answering one line needs besides the line.
struct AnswerContext<'a> {
    script: &'a mut ServerScript,
    counters: &'a Counters,
    client: IpAddr,
    now: Instant,
    /// Scratch space for a lowercased address.
    address: &'a mut String,
}

/// The commands the server knows, by verb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Ehlo,
    Helo,
    Mail,
    Rcpt,
    Rset,
    Noop,
    Vrfy,
    Data,
    Bdat,
    Quit,
    Unknown,
}

impl Verb {
    fn parse(verb: &[u8]) -> Self {
        const VERBS: [(&[u8], Verb); 10] = [
            (b"EHLO", Verb::Ehlo),
            (b"HELO", Verb::Helo),
            (b"MAIL", Verb::Mail),
            (b"RCPT", Verb::Rcpt),
            (b"RSET", Verb::Rset),
            (b"NOOP", Verb::Noop),
            (b"VRFY", Verb::Vrfy),
            (b"DATA", Verb::Data),
            (b"BDAT", Verb::Bdat),
            (b"QUIT", Verb::Quit),
        ];
        VERBS
            .iter()
            .find(|(text, _)| verb.eq_ignore_ascii_case(text))
            .map_or(Verb::Unknown, |&(_, known)| known)
    }
}

impl Dialogue {
    /// Starts a session: writes the greeting (nothing, for a silent server) into `reply`.
    fn open(script: &ServerScript, client: IpAddr, reply: &mut Vec<u8>) -> Self {
        let personality = &script.personality;
        let phase = match (personality.behaviour, personality.greeting) {
            (Behaviour::Silent, _) => Phase::Deaf,
            (Behaviour::Garbage, _) => {
                reply.extend_from_slice(GARBAGE_GREETING);
                Phase::Deaf
            }
            (_, Greeting::Unavailable) => {
                let hostname = &personality.hostname;
                let text =
                    format!("421 4.7.0 {hostname} Error: too many connections from {client}\r\n");
                reply.extend_from_slice(text.as_bytes());
                Phase::Over
            }
            (behaviour, Greeting::Refuse) => {
                let text = format!(
                    "554 5.7.1 Service unavailable; Client host [{client}] blocked using \
                     zen.spamhaus.org\r\n"
                );
                reply.extend_from_slice(text.as_bytes());
                if behaviour == Behaviour::CloseAfterGreeting {
                    Phase::Over
                } else {
                    Phase::Refused
                }
            }
            (behaviour, Greeting::Normal) => {
                reply.extend_from_slice(&script.greeting);
                if behaviour == Behaviour::CloseAfterGreeting {
                    Phase::Over
                } else {
                    Phase::Commands
                }
            }
        };
        Self {
            phase,
            in_transaction: false,
            sender: String::new(),
            recipients: 0,
        }
    }

    /// Whether the server still reads what the client sends as commands.
    fn listens(&self) -> bool {
        matches!(self.phase, Phase::Commands | Phase::Refused)
    }

    fn is_over(&self) -> bool {
        self.phase == Phase::Over
    }

    /// Answers one command line (its line ending included or not) into `reply`, and counts it.
    fn answer(&mut self, line: &[u8], context: &mut AnswerContext<'_>, reply: &mut Vec<u8>) {
        let line = line
            .strip_suffix(b"\n")
            .map_or(line, |line| line.strip_suffix(b"\r").unwrap_or(line));
        let (verb, argument) = match memchr::memchr(b' ', line) {
            Some(space) => (&line[..space], &line[space + 1..]),
            None => (line, &[][..]),
        };
        let verb = Verb::parse(verb);
        let counters = context.counters;
        match verb {
            Verb::Mail => count(&counters.mail_commands),
            Verb::Rcpt => count(&counters.rcpt_commands),
            Verb::Data | Verb::Bdat => count(&counters.data_commands),
            _ => {}
        }
        match self.phase {
            Phase::Deaf | Phase::Over => {}
            Phase::Refused if verb == Verb::Quit => self.quit(counters, reply),
            Phase::Refused => reply.extend_from_slice(b"503 5.5.1 Error: no SMTP service here\r\n"),
            Phase::Commands => self.command(verb, argument, context, reply),
        }
    }

    fn command(
        &mut self,
        verb: Verb,
        argument: &[u8],
        context: &mut AnswerContext<'_>,
        reply: &mut Vec<u8>,
    ) {
        let script = &*context.script;
        match verb {
            Verb::Ehlo | Verb::Helo if argument.trim_ascii().is_empty() => {
                let text: &[u8] = if verb == Verb::Ehlo {
                    b"501 5.5.4 Syntax: EHLO hostname\r\n"
                } else {
                    b"501 5.5.4 Syntax: HELO hostname\r\n"
                };
                reply.extend_from_slice(text);
            }
            Verb::Ehlo => {
                self.in_transaction = false;
                reply.extend_from_slice(&script.ehlo);
            }
            Verb::Helo => {
                self.in_transaction = false;
                reply.extend_from_slice(&script.helo);
            }
            Verb::Mail => self.mail(argument, context, reply),
            Verb::Rcpt => self.rcpt(argument, context, reply),
            Verb::Rset => {
                self.in_transaction = false;
                reply.extend_from_slice(b"250 2.0.0 Ok\r\n");
            }
            Verb::Noop => reply.extend_from_slice(b"250 2.0.0 Ok\r\n"),
            Verb::Vrfy => {
                reply.extend_from_slice(b"252 2.0.0 Send some mail, I'll try my best\r\n");
            }
            Verb::Data | Verb::Bdat => {
                reply.extend_from_slice(b"554 5.5.1 Error: no valid recipients\r\n");
            }
            Verb::Quit => self.quit(context.counters, reply),
            Verb::Unknown => {
                reply.extend_from_slice(b"502 5.5.2 Error: command not recognized\r\n");
            }
        }
    }

    /// `MAIL FROM:<reverse-path> [parameters]`
    fn mail(&mut self, argument: &[u8], context: &mut AnswerContext<'_>, reply: &mut Vec<u8>) {
        let personality = &context.script.personality;
        let Some(sender) = path_after(argument, b"FROM:") else {
            reply.extend_from_slice(b"501 5.5.4 Syntax: MAIL FROM:<address>\r\n");
            return;
        };
        if personality.behaviour == Behaviour::CloseAfterMail {
            reply.extend_from_slice(b"250 2.1.0 Ok\r\n");
            self.phase = Phase::Over;
        } else if self.in_transaction {
            reply.extend_from_slice(b"503 5.5.1 Error: nested MAIL command\r\n");
        } else if personality.reject_sender {
            address_reply(
                reply,
                b"553 5.1.8 <",
                sender,
                b">: Sender address rejected: Domain not found",
            );
        } else {
            lowercase_into(sender, &mut self.sender);
            self.in_transaction = true;
            reply.extend_from_slice(b"250 2.1.0 Ok\r\n");
        }
    }

    /// `RCPT TO:<forward-path> [parameters]`
    fn rcpt(&mut self, argument: &[u8], context: &mut AnswerContext<'_>, reply: &mut Vec<u8>) {
        if !self.in_transaction {
            reply.extend_from_slice(b"503 5.5.1 Error: need MAIL command\r\n");
            return;
        }
        let Some(recipient) = path_after(argument, b"TO:") else {
            reply.extend_from_slice(b"501 5.5.4 Syntax: RCPT TO:<address>\r\n");
            return;
        };
        self.recipients += 1;
        let script = &mut *context.script;
        let Personality {
            max_rcpt_per_session,
            greylist,
            catch_all,
            ..
        } = script.personality;
        if max_rcpt_per_session.is_some_and(|limit| self.recipients > limit) {
            reply.extend_from_slice(b"452 4.5.3 Error: too many recipients\r\n");
            return;
        }
        lowercase_into(recipient, context.address);
        if let Some(period) = greylist {
            let triplet = GreylistTriplet {
                client: context.client,
                sender: self.sender.clone(),
                recipient: context.address.clone(),
            };
            let first_seen = *script
                .greylist_first_seen
                .entry(triplet)
                .or_insert(context.now);
            if context.now.saturating_duration_since(first_seen) < period {
                address_reply(
                    reply,
                    b"451 4.7.1 <",
                    recipient,
                    b">: Recipient address rejected: Greylisted, try again later",
                );
                return;
            }
        }
        if catch_all || script.has_mailbox(context.address) {
            reply.extend_from_slice(b"250 2.1.5 Ok\r\n");
        } else {
            address_reply(
                reply,
                b"550 5.1.1 <",
                recipient,
                b">: Recipient address rejected: User unknown in virtual mailbox table",
            );
        }
    }

    fn quit(&mut self, counters: &Counters, reply: &mut Vec<u8>) {
        reply.extend_from_slice(b"221 2.0.0 Bye\r\n");
        count(&counters.sessions_completed);
        self.phase = Phase::Over;
    }

    /// The client sent a line longer than [`MAX_LINE`]: say so and end the session.
    fn line_too_long(&mut self, reply: &mut Vec<u8>) {
        reply.extend_from_slice(b"500 5.5.2 Line too long\r\n");
        self.phase = Phase::Over;
    }

    /// The client sent nothing for the idle limit: say so if the server speaks at all, and end
    /// the session.
    fn time_out(&mut self, script: &ServerScript, reply: &mut Vec<u8>) {
        if self.listens() {
            reply.extend_from_slice(&script.timeout);
        }
        self.phase = Phase::Over;
    }
}

/// The address of `keyword <address> [parameters]`, e.g. of `FROM:<a@b> SIZE=10`: what lies
/// between `<` and the first `>`. The keyword is case-insensitive; spaces may surround it.
fn path_after<'line>(argument: &'line [u8], keyword: &[u8]) -> Option<&'line [u8]> {
    let (head, rest) = argument
        .trim_ascii_start()
        .split_at_checked(keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = rest.trim_ascii_start().strip_prefix(b"<")?;
    let end = memchr::memchr(b'>', rest)?;
    Some(&rest[..end])
}

fn address_reply(reply: &mut Vec<u8>, before: &[u8], address: &[u8], after: &[u8]) {
    reply.extend_from_slice(before);
    reply.extend_from_slice(address);
    reply.extend_from_slice(after);
    reply.extend_from_slice(b"\r\n");
}

/// The replies of one connection on their way out: held until due, dripped if the personality
/// drips, then written. No I/O and no clock: the connection passes the time and writes
/// [`Outbox::unsent`] itself.
#[derive(Debug)]
struct Outbox {
    /// Reply bytes decided but not yet due, back to back.
    scheduled: VecDeque<u8>,
    /// When each scheduled reply is due and how long it is, oldest first.
    schedule: VecDeque<(Instant, usize)>,
    /// When the previous reply was (or will be) sent: no reply overtakes another.
    last_due: Instant,
    /// For [`Behaviour::Drip`]: bytes released but not yet let out.
    trickle: Option<Trickle>,
    /// Bytes to write; the first `written` of them already are.
    output: Vec<u8>,
    written: usize,
}

#[derive(Debug)]
struct Trickle {
    bytes: VecDeque<u8>,
    /// When the next byte may go out.
    ready_at: Instant,
}

impl Outbox {
    fn new(now: Instant, drip: bool) -> Self {
        Self {
            scheduled: VecDeque::new(),
            schedule: VecDeque::new(),
            last_due: now,
            trickle: drip.then(|| Trickle {
                bytes: VecDeque::new(),
                ready_at: now,
            }),
            output: Vec::new(),
            written: 0,
        }
    }

    /// Queues `reply` to be sent at `due`, or after the previous reply if that is later.
    /// Returns whether the client starts a new wait for it: no earlier reply was still held,
    /// nor queued at this same instant.
    fn push(&mut self, reply: &[u8], due: Instant, now: Instant) -> bool {
        let new_wait = self.last_due < now;
        let due = due.max(self.last_due);
        self.last_due = due;
        if due <= now && self.schedule.is_empty() {
            match &mut self.trickle {
                Some(trickle) => trickle.bytes.extend(reply),
                None => self.output.extend_from_slice(reply),
            }
        } else {
            self.scheduled.extend(reply);
            self.schedule.push_back((due, reply.len()));
        }
        new_wait
    }

    /// Moves every reply due by `now` towards the socket, and one dripped byte if one may go.
    fn release_due(&mut self, now: Instant) {
        while let Some(&(due, length)) = self.schedule.front() {
            if due > now {
                break;
            }
            self.schedule.pop_front();
            let reply = self.scheduled.drain(..length);
            match &mut self.trickle {
                Some(trickle) => trickle.bytes.extend(reply),
                None => self.output.extend(reply),
            }
        }
        if let Some(trickle) = &mut self.trickle
            && now >= trickle.ready_at
            && let Some(byte) = trickle.bytes.pop_front()
        {
            self.output.push(byte);
            trickle.ready_at = now + DRIP_INTERVAL;
        }
    }

    /// Bytes released and not yet written.
    fn unsent(&self) -> &[u8] {
        &self.output[self.written..]
    }

    fn mark_written(&mut self, count: usize) {
        self.written += count;
        if self.written == self.output.len() {
            self.output.clear();
            self.written = 0;
        }
    }

    /// Reply bytes decided and not yet written.
    fn backlog(&self) -> usize {
        let dripping = self
            .trickle
            .as_ref()
            .map_or(0, |trickle| trickle.bytes.len());
        self.scheduled.len() + dripping + self.unsent().len()
    }

    fn is_empty(&self) -> bool {
        self.backlog() == 0
    }

    /// When [`Outbox::release_due`] next has something to do, if ever.
    fn next_deadline(&self) -> Option<Instant> {
        let next_reply = self.schedule.front().map(|&(due, _)| due);
        let next_drop = self
            .trickle
            .as_ref()
            .filter(|trickle| !trickle.bytes.is_empty())
            .map(|trickle| trickle.ready_at);
        match (next_reply, next_drop) {
            (Some(reply), Some(drop)) => Some(reply.min(drop)),
            (reply, drop) => reply.or(drop),
        }
    }
}

/// Scratch space one loop thread reuses for every connection.
#[derive(Debug)]
struct Scratch {
    read_buffer: Box<[u8]>,
    reply: Vec<u8>,
    address: String,
    /// Keys of connections the idle sweep found expired.
    keys: Vec<usize>,
}

/// What a connection needs from its loop for one step.
struct StepContext<'a> {
    script: &'a mut ServerScript,
    counters: &'a Counters,
    rng: &'a mut StdRng,
    scratch: &'a mut Scratch,
    now: Instant,
    idle_limit: Duration,
}

/// Whether a connection survived a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Liveness {
    Open,
    Closed,
}

/// One accepted client: its socket, its dialogue and the bytes in flight either way.
#[derive(Debug)]
struct Connection {
    stream: TcpStream,
    /// Index of its listener in the loop's `listeners`.
    listener: usize,
    client: IpAddr,
    /// Tells this connection from an earlier one that had the same slab key, for timers.
    generation: u64,
    dialogue: Dialogue,
    /// Received bytes not yet answered: at most one partial line, below [`MAX_LINE`].
    input: Vec<u8>,
    outbox: Outbox,
    idle_deadline: Instant,
    /// When a [`Behaviour::Garbage`] server hangs up regardless.
    close_deadline: Option<Instant>,
    /// The deadline of the one live timer-heap entry for this connection, if any.
    timer: Option<Instant>,
    /// Whether the socket may have bytes to read: set by readiness events, cleared by
    /// `WouldBlock` (mio is edge-triggered).
    readable: bool,
    input_closed: bool,
    broken: bool,
    write_interest: bool,
}

impl Connection {
    /// Greets a client just accepted: the greeting is queued, not yet written.
    fn accept(
        stream: TcpStream,
        listener: usize,
        client: IpAddr,
        generation: u64,
        context: &mut StepContext<'_>,
    ) -> Self {
        let now = context.now;
        let reply = &mut context.scratch.reply;
        reply.clear();
        let dialogue = Dialogue::open(context.script, client, reply);
        let personality = &context.script.personality;
        let mut outbox = Outbox::new(now, personality.behaviour == Behaviour::Drip);
        let greeting_due = now + context.script.reply_delay(context.rng);
        if !reply.is_empty() {
            outbox.push(reply, greeting_due, now);
            count(&context.counters.reply_rounds);
        }
        Self {
            stream,
            listener,
            client,
            generation,
            dialogue,
            input: Vec::new(),
            outbox,
            idle_deadline: now + context.idle_limit,
            close_deadline: (personality.behaviour == Behaviour::Garbage)
                .then(|| greeting_due + GARBAGE_LINGER),
            timer: None,
            readable: false,
            input_closed: false,
            broken: false,
            write_interest: false,
        }
    }

    /// Does all the connection can do now: read and answer, release due replies, write. The
    /// run-loop rule: after any event or timer, step until nothing more can be done now.
    fn step(&mut self, context: &mut StepContext<'_>) -> Liveness {
        let now = context.now;
        if self.close_deadline.is_some_and(|deadline| now >= deadline) {
            return Liveness::Closed;
        }
        if !self.dialogue.is_over() && now >= self.idle_deadline {
            let reply = &mut context.scratch.reply;
            reply.clear();
            self.dialogue.time_out(context.script, reply);
            self.outbox.push(reply, now, now);
        }
        loop {
            self.read_and_answer(context);
            self.outbox.release_due(now);
            self.write();
            if self.broken {
                return Liveness::Closed;
            }
            if !self.wants_to_read() {
                break;
            }
        }
        if self.outbox.is_empty() && (self.dialogue.is_over() || self.input_closed) {
            return Liveness::Closed;
        }
        Liveness::Open
    }

    fn wants_to_read(&self) -> bool {
        self.readable
            && !self.input_closed
            && !self.dialogue.is_over()
            && self.outbox.backlog() < UNSENT_LIMIT
    }

    /// Reads until `WouldBlock`, EOF or too many unsent replies, answering each complete line.
    fn read_and_answer(&mut self, context: &mut StepContext<'_>) {
        while self.wants_to_read() {
            match self.stream.read(&mut context.scratch.read_buffer) {
                Ok(0) => self.input_closed = true,
                Ok(received) => {
                    self.idle_deadline = context.now + context.idle_limit;
                    if self.dialogue.listens() {
                        self.input
                            .extend_from_slice(&context.scratch.read_buffer[..received]);
                        self.answer_complete_lines(context);
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => self.readable = false,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => self.broken = true,
            }
            if self.broken {
                return;
            }
        }
    }

    /// Answers every complete line in `input` and keeps the partial one, if any.
    fn answer_complete_lines(&mut self, context: &mut StepContext<'_>) {
        let mut consumed = 0;
        while self.dialogue.listens() {
            let Some(newline) = memchr::memchr(b'\n', &self.input[consumed..]) else {
                break;
            };
            let line = &self.input[consumed..=consumed + newline];
            consumed += newline + 1;
            let reply = &mut context.scratch.reply;
            reply.clear();
            if line.len() > MAX_LINE {
                self.dialogue.line_too_long(reply);
            } else {
                let mut answer_context = AnswerContext {
                    script: context.script,
                    counters: context.counters,
                    client: self.client,
                    now: context.now,
                    address: &mut context.scratch.address,
                };
                self.dialogue.answer(line, &mut answer_context, reply);
            }
            if !reply.is_empty() {
                let due = context.now + context.script.reply_delay(context.rng);
                if self.outbox.push(reply, due, context.now) {
                    count(&context.counters.reply_rounds);
                }
            }
        }
        if !self.dialogue.listens() {
            self.input.clear();
            return;
        }
        self.input.drain(..consumed);
        if self.input.len() >= MAX_LINE {
            // No line ending within MAX_LINE bytes: whatever follows, the line is too long.
            let reply = &mut context.scratch.reply;
            reply.clear();
            self.dialogue.line_too_long(reply);
            let due = context.now + context.script.reply_delay(context.rng);
            self.outbox.push(reply, due, context.now);
            self.input.clear();
        }
    }

    /// Writes released replies until done or `WouldBlock`.
    fn write(&mut self) {
        while !self.outbox.unsent().is_empty() {
            match self.stream.write(self.outbox.unsent()) {
                Ok(0) => self.broken = true,
                Ok(sent) => self.outbox.mark_written(sent),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => self.broken = true,
            }
            if self.broken {
                return;
            }
        }
    }

    /// The earliest time a timer must step this connection (idle limits aside: the sweep
    /// covers those).
    fn next_deadline(&self) -> Option<Instant> {
        match (self.outbox.next_deadline(), self.close_deadline) {
            (Some(reply), Some(close)) => Some(reply.min(close)),
            (reply, close) => reply.or(close),
        }
    }

    /// Reads and discards what the client sent last, so closing sends FIN, not RST (which could
    /// make the client lose the last reply), then closes.
    fn close(mut self, read_buffer: &mut [u8]) {
        for _ in 0..DISCARD_READS_AT_CLOSE {
            match self.stream.read(read_buffer) {
                Ok(received) if received > 0 => {}
                _ => break,
            }
        }
    }
}

/// Something a loop's timer heap wakes up for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TimerTarget {
    Connection {
        key: usize,
        generation: u64,
    },
    /// The end of a listener's accept back-off.
    Listener(usize),
    IdleSweep,
}

#[derive(Debug)]
struct ListenerSlot {
    socket: TcpListener,
    script: ServerScript,
    backing_off: bool,
}

/// One event-loop thread: its listeners, their connections, its timers.
struct EventLoop {
    poll: Poll,
    listeners: Vec<ListenerSlot>,
    connections: Slab<Connection>,
    timers: BinaryHeap<Reverse<(Instant, TimerTarget)>>,
    sweep_armed: bool,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
    rng: StdRng,
    scratch: Scratch,
    idle_limit: Duration,
    next_generation: u64,
}

impl EventLoop {
    fn run(mut self) {
        let mut events = Events::with_capacity(EVENTS_PER_POLL);
        loop {
            let timeout = self
                .timers
                .peek()
                .map(|Reverse((at, _))| at.saturating_duration_since(Instant::now()));
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                // epoll_wait fails otherwise only on a bad descriptor or buffer: a bug in mio
                // or here, and nothing this loop could serve through.
                Err(error) => panic!("the SMTP simulator's poll failed: {error}"),
            }
            if self.stop.load(Ordering::Acquire) {
                return;
            }
            let now = Instant::now();
            for event in &events {
                match event.token() {
                    WAKE => {}
                    Token(token) if token >= FIRST_LISTENER => {
                        self.accept_all(token - FIRST_LISTENER, now);
                    }
                    Token(key) => {
                        if (event.is_readable() || event.is_read_closed() || event.is_error())
                            && let Some(connection) = self.connections.get_mut(key)
                        {
                            connection.readable = true;
                        }
                        self.step_connection(key, now);
                    }
                }
            }
            self.fire_due_timers(Instant::now());
        }
    }

    /// Accepts until `WouldBlock`, or backs off for [`ACCEPT_BACKOFF`] if accepting fails for
    /// want of descriptors or memory.
    fn accept_all(&mut self, index: usize, now: Instant) {
        let Some(slot) = self.listeners.get_mut(index) else {
            return;
        };
        if slot.backing_off {
            return;
        }
        loop {
            let slot = &mut self.listeners[index];
            let (mut stream, peer) = match slot.socket.accept() {
                Ok(accepted) => accepted,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                Err(error)
                    if matches!(
                        error.kind(),
                        io::ErrorKind::Interrupted
                            | io::ErrorKind::ConnectionAborted
                            | io::ErrorKind::ConnectionReset
                    ) =>
                {
                    continue;
                }
                // EMFILE, ENFILE, ENOBUFS, ENOMEM and anything else that may persist: retrying
                // at once would spin.
                Err(_) => {
                    slot.backing_off = true;
                    self.timers.push(Reverse((
                        now + ACCEPT_BACKOFF,
                        TimerTarget::Listener(index),
                    )));
                    return;
                }
            };
            // Replies are small and latency-bound: never let Nagle hold one back. Failing to
            // set it only costs speed.
            let _ = stream.set_nodelay(true);
            let entry = self.connections.vacant_entry();
            let key = entry.key();
            if self
                .poll
                .registry()
                .register(&mut stream, Token(key), Interest::READABLE)
                .is_err()
            {
                continue;
            }
            self.next_generation += 1;
            let mut context = StepContext {
                script: &mut self.listeners[index].script,
                counters: &self.counters,
                rng: &mut self.rng,
                scratch: &mut self.scratch,
                now,
                idle_limit: self.idle_limit,
            };
            let connection =
                Connection::accept(stream, index, peer.ip(), self.next_generation, &mut context);
            entry.insert(connection);
            count(&self.counters.connections);
            count(&self.counters.open_connections);
            if !self.sweep_armed {
                self.sweep_armed = true;
                let sweep_at = now + self.sweep_interval();
                self.timers
                    .push(Reverse((sweep_at, TimerTarget::IdleSweep)));
            }
            self.step_connection(key, now);
        }
    }

    /// Steps one connection, then closes it or brings its socket interest and timer up to date.
    fn step_connection(&mut self, key: usize, now: Instant) {
        let Some(connection) = self.connections.get_mut(key) else {
            // An event for a connection already closed in this batch: spurious, harmless.
            return;
        };
        let mut context = StepContext {
            script: &mut self.listeners[connection.listener].script,
            counters: &self.counters,
            rng: &mut self.rng,
            scratch: &mut self.scratch,
            now,
            idle_limit: self.idle_limit,
        };
        let mut liveness = connection.step(&mut context);
        let wants_write = !connection.outbox.unsent().is_empty();
        if liveness == Liveness::Open && wants_write != connection.write_interest {
            let interest = if wants_write {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            match self
                .poll
                .registry()
                .reregister(&mut connection.stream, Token(key), interest)
            {
                Ok(()) => connection.write_interest = wants_write,
                Err(_) => liveness = Liveness::Closed,
            }
        }
        if liveness == Liveness::Closed {
            // Counted first, so a client that sees the close also sees the count.
            self.counters
                .open_connections
                .fetch_sub(1, Ordering::Relaxed);
            self.connections
                .remove(key)
                .close(&mut self.scratch.read_buffer);
            return;
        }
        // One live heap entry per connection, the earliest needed. A later deadline keeps the
        // earlier entry, which then fires early and re-arms: cheaper than a heap removal.
        if let Some(deadline) = connection.next_deadline()
            && connection.timer.is_none_or(|armed| deadline < armed)
        {
            connection.timer = Some(deadline);
            self.timers.push(Reverse((
                deadline,
                TimerTarget::Connection {
                    key,
                    generation: connection.generation,
                },
            )));
        }
    }

    fn fire_due_timers(&mut self, now: Instant) {
        while let Some(&Reverse((at, target))) = self.timers.peek() {
            if at > now {
                return;
            }
            self.timers.pop();
            match target {
                TimerTarget::Connection { key, generation } => {
                    // Entries for closed connections, or superseded by an earlier one, are stale.
                    if let Some(connection) = self.connections.get_mut(key)
                        && connection.generation == generation
                        && connection.timer == Some(at)
                    {
                        connection.timer = None;
                        self.step_connection(key, now);
                    }
                }
                TimerTarget::Listener(index) => {
                    if let Some(slot) = self.listeners.get_mut(index) {
                        slot.backing_off = false;
                    }
                    self.accept_all(index, now);
                }
                TimerTarget::IdleSweep => self.sweep_idle(now),
            }
        }
    }

    /// Steps every connection past its idle limit (which makes it say 421 and close), and
    /// re-arms while connections remain.
    fn sweep_idle(&mut self, now: Instant) {
        let mut expired = std::mem::take(&mut self.scratch.keys);
        expired.clear();
        expired.extend(
            self.connections
                .iter()
                .filter(|(_, connection)| {
                    now >= connection.idle_deadline && !connection.dialogue.is_over()
                })
                .map(|(key, _)| key),
        );
        for &key in &expired {
            self.step_connection(key, now);
        }
        self.scratch.keys = expired;
        self.sweep_armed = !self.connections.is_empty();
        if self.sweep_armed {
            let sweep_at = now + self.sweep_interval();
            self.timers
                .push(Reverse((sweep_at, TimerTarget::IdleSweep)));
        }
    }

    fn sweep_interval(&self) -> Duration {
        (self.idle_limit / 4).clamp(Duration::from_millis(1), MAX_SWEEP_INTERVAL)
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{Ipv4Addr, TcpStream};
    use std::thread;
    use std::time::{Duration, Instant};

    use super::*;

    const MX: &str = "mx.farm.test";
    /// Longest a test client waits for a byte it expects.
    const READ_LIMIT: Duration = Duration::from_secs(3);

    /// A blocking test client that reads whole SMTP replies.
    struct Client {
        stream: TcpStream,
        received: Vec<u8>,
    }

    impl Client {
        fn connect(addr: SocketAddr) -> Self {
            let stream = TcpStream::connect_timeout(&addr, READ_LIMIT).unwrap();
            stream.set_read_timeout(Some(READ_LIMIT)).unwrap();
            stream.set_nodelay(true).unwrap();
            Self {
                stream,
                received: Vec::new(),
            }
        }

        fn send(&mut self, text: &str) {
            self.stream.write_all(text.as_bytes()).unwrap();
        }

        /// One line, line ending included; `None` at EOF.
        fn line(&mut self) -> Option<String> {
            loop {
                if let Some(newline) = self.received.iter().position(|&byte| byte == b'\n') {
                    let line: Vec<u8> = self.received.drain(..=newline).collect();
                    return Some(String::from_utf8(line).unwrap());
                }
                let mut chunk = [0; 4096];
                match self.stream.read(&mut chunk) {
                    Ok(0) => return None,
                    Ok(received) => self.received.extend_from_slice(&chunk[..received]),
                    Err(error) => panic!(
                        "no complete line after {READ_LIMIT:?} ({error}); got {:?}",
                        String::from_utf8_lossy(&self.received)
                    ),
                }
            }
        }

        /// One complete reply, every line of a multi-line one.
        fn reply(&mut self) -> String {
            let mut reply = String::new();
            loop {
                let Some(line) = self.line() else {
                    panic!("EOF inside a reply; got {reply:?}");
                };
                reply.push_str(&line);
                if line.as_bytes().get(3) != Some(&b'-') {
                    return reply;
                }
            }
        }

        fn command(&mut self, line: &str) -> String {
            self.send(&format!("{line}\r\n"));
            self.reply()
        }

        /// Asserts that the server closes without sending anything more.
        fn expect_close(&mut self) {
            assert_eq!(self.line(), None, "expected the server to close");
            assert!(self.received.is_empty(), "{:?}", self.received);
        }

        /// Whether a byte arrives within `wait`.
        fn receives_within(&mut self, wait: Duration) -> bool {
            self.stream.set_read_timeout(Some(wait)).unwrap();
            let mut byte = [0; 1];
            let received = match self.stream.read(&mut byte) {
                Ok(0) => false,
                Ok(_) => {
                    self.received.push(byte[0]);
                    true
                }
                Err(error) => {
                    assert!(
                        matches!(
                            error.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ),
                        "{error}"
                    );
                    false
                }
            };
            self.stream.set_read_timeout(Some(READ_LIMIT)).unwrap();
            received
        }
    }

    fn loopback(host: u8) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::new(127, 0, 0, host), 0))
    }

    fn farm_of(personality: Personality) -> SmtpFarm {
        SmtpFarm::start(vec![(loopback(1), personality)], 1).unwrap()
    }

    fn greeted(farm: &SmtpFarm) -> Client {
        let mut client = Client::connect(farm.addrs()[0]);
        let greeting = client.reply();
        assert!(greeting.starts_with("220 "), "{greeting:?}");
        client
    }

    /// Waits (briefly) for the farm's threads to have counted what the client already saw
    /// happen, then returns the counts.
    fn settled_stats(farm: &SmtpFarm, settled: impl Fn(&FarmStats) -> bool) -> FarmStats {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let stats = farm.stats();
            if settled(&stats) || Instant::now() > deadline {
                return stats;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    fn farm_test_personality() -> Personality {
        Personality::new(MX)
            .mailbox("alice@farm.test")
            .mailbox("Bob@Farm.Test")
            .mailbox("ünïcode@farm.test")
    }

    #[test]
    fn normal_conversation_in_lock_step_is_answered_and_counted() {
        let farm = farm_of(farm_test_personality());
        let mut client = Client::connect(farm.addrs()[0]);
        assert_eq!(client.reply(), "220 mx.farm.test ESMTP mxprobe-sim\r\n");
        assert_eq!(
            client.command("EHLO probe.test"),
            "250-mx.farm.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n\
             250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n"
        );
        assert_eq!(
            client.command("MAIL FROM:<probe@probe.test>"),
            "250 2.1.0 Ok\r\n"
        );
        assert_eq!(
            client.command("RCPT TO:<alice@farm.test>"),
            "250 2.1.5 Ok\r\n"
        );
        assert_eq!(
            client.command("RCPT TO:<nobody@farm.test>"),
            "550 5.1.1 <nobody@farm.test>: Recipient address rejected: User unknown in \
             virtual mailbox table\r\n"
        );
        assert_eq!(client.command("RSET"), "250 2.0.0 Ok\r\n");
        assert_eq!(client.command("QUIT"), "221 2.0.0 Bye\r\n");
        client.expect_close();
        let stats = settled_stats(&farm, |stats| stats.open_connections == 0);
        assert_eq!(
            stats,
            FarmStats {
                connections: 1,
                sessions_completed: 1,
                rcpt_commands: 2,
                mail_commands: 1,
                data_commands: 0,
                open_connections: 0,
                reply_rounds: 7,
            }
        );
    }

    /// `(what it shows, personality, [(command, the reply it gets)])`, each run on a farm of
    /// its own after the 220 greeting.
    type ConversationCase = (
        &'static str,
        Personality,
        &'static [(&'static str, &'static str)],
    );

    fn conversation_cases() -> Vec<ConversationCase> {
        vec![
            (
                "recipients compare case-insensitively, Unicode too",
                farm_test_personality(),
                &[
                    ("ehlo probe.test", "250-mx.farm.test\r\n"),
                    (
                        "mail from: <Probe@Probe.test> SIZE=100 SMTPUTF8",
                        "250 2.1.0 Ok\r\n",
                    ),
                    ("RCPT TO:<ALICE@farm.TEST>", "250 2.1.5 Ok\r\n"),
                    ("RCPT TO:<bob@farm.test> NOTIFY=NEVER", "250 2.1.5 Ok\r\n"),
                    ("RCPT TO:<ÜNÏCODE@farm.test>", "250 2.1.5 Ok\r\n"),
                    (
                        "RCPT TO:<Nobody@farm.test>",
                        "550 5.1.1 <Nobody@farm.test>: ",
                    ),
                ],
            ),
            (
                "sequence and syntax errors",
                farm_test_personality(),
                &[
                    (
                        "RCPT TO:<alice@farm.test>",
                        "503 5.5.1 Error: need MAIL command\r\n",
                    ),
                    ("EHLO", "501 5.5.4 Syntax: EHLO hostname\r\n"),
                    ("HELO probe.test", "250 mx.farm.test\r\n"),
                    (
                        "MAIL FROM:probe@probe.test",
                        "501 5.5.4 Syntax: MAIL FROM:<address>\r\n",
                    ),
                    (
                        "MAIL TO:<probe@probe.test>",
                        "501 5.5.4 Syntax: MAIL FROM:<address>\r\n",
                    ),
                    ("MAIL FROM:<>", "250 2.1.0 Ok\r\n"),
                    (
                        "MAIL FROM:<probe@probe.test>",
                        "503 5.5.1 Error: nested MAIL command\r\n",
                    ),
                    (
                        "RCPT TO:alice@farm.test",
                        "501 5.5.4 Syntax: RCPT TO:<address>\r\n",
                    ),
                    ("RSET", "250 2.0.0 Ok\r\n"),
                    (
                        "RCPT TO:<alice@farm.test>",
                        "503 5.5.1 Error: need MAIL command\r\n",
                    ),
                    ("NOOP", "250 2.0.0 Ok\r\n"),
                    (
                        "VRFY alice",
                        "252 2.0.0 Send some mail, I'll try my best\r\n",
                    ),
                    ("STARTTLS", "502 5.5.2 Error: command not recognized\r\n"),
                    ("", "502 5.5.2 Error: command not recognized\r\n"),
                ],
            ),
            (
                "DATA and BDAT are refused",
                Personality::new(MX).catch_all(),
                &[
                    ("MAIL FROM:<probe@probe.test>", "250 2.1.0 Ok\r\n"),
                    ("RCPT TO:<anyone@farm.test>", "250 2.1.5 Ok\r\n"),
                    ("DATA", "554 5.5.1 Error: no valid recipients\r\n"),
                    ("bdat 0 LAST", "554 5.5.1 Error: no valid recipients\r\n"),
                ],
            ),
            (
                "catch-all accepts every recipient",
                Personality::new(MX).catch_all(),
                &[
                    ("MAIL FROM:<probe@probe.test>", "250 2.1.0 Ok\r\n"),
                    ("RCPT TO:<anyone@farm.test>", "250 2.1.5 Ok\r\n"),
                    ("RCPT TO:<x7q2@elsewhere.test>", "250 2.1.5 Ok\r\n"),
                ],
            ),
            (
                "the recipient limit counts the whole session",
                farm_test_personality().max_rcpt_per_session(2),
                &[
                    ("MAIL FROM:<probe@probe.test>", "250 2.1.0 Ok\r\n"),
                    ("RCPT TO:<alice@farm.test>", "250 2.1.5 Ok\r\n"),
                    ("RCPT TO:<nobody@farm.test>", "550 5.1.1 "),
                    (
                        "RCPT TO:<alice@farm.test>",
                        "452 4.5.3 Error: too many recipients\r\n",
                    ),
                    ("RSET", "250 2.0.0 Ok\r\n"),
                    ("MAIL FROM:<probe@probe.test>", "250 2.1.0 Ok\r\n"),
                    (
                        "RCPT TO:<bob@farm.test>",
                        "452 4.5.3 Error: too many recipients\r\n",
                    ),
                ],
            ),
            (
                "a rejected sender starts no transaction",
                farm_test_personality().reject_sender(),
                &[
                    (
                        "MAIL FROM:<Probe@nowhere.test>",
                        "553 5.1.8 <Probe@nowhere.test>: Sender address rejected: Domain not \
                         found\r\n",
                    ),
                    (
                        "RCPT TO:<alice@farm.test>",
                        "503 5.5.1 Error: need MAIL command\r\n",
                    ),
                ],
            ),
            (
                "QUIT ends the conversation",
                farm_test_personality(),
                &[("quit", "221 2.0.0 Bye\r\n")],
            ),
        ]
    }

    #[test]
    fn conversations_get_the_replies_of_their_personality() {
        for (shows, personality, exchanges) in conversation_cases() {
            let farm = farm_of(personality);
            let mut client = greeted(&farm);
            for (command, expected) in exchanges {
                let reply = client.command(command);
                assert!(
                    reply.starts_with(expected),
                    "{shows}: {command:?} got {reply:?}, expected {expected:?}"
                );
            }
        }
    }

    #[test]
    fn a_mailbox_prefix_makes_local_parts_exist_at_any_domain() {
        let farm = farm_of(
            Personality::new(MX)
                .mailbox_prefix("User")
                .mailbox("x@one.test"),
        );
        let mut client = greeted(&farm);
        client.command("MAIL FROM:<probe@probe.test>");
        for (recipient, code) in [
            ("user1@one.test", "250"),
            ("USER42@two.test", "250"),
            ("x@one.test", "250"),
            ("x@two.test", "550"),
            ("nobody@one.test", "550"),
            ("auser@one.test", "550"),
            ("one.test@user", "550"),
        ] {
            let reply = client.command(&format!("RCPT TO:<{recipient}>"));
            assert!(reply.starts_with(code), "{recipient}: {reply:?}");
        }
    }

    #[test]
    fn data_and_bdat_are_counted() {
        let farm = farm_of(Personality::new(MX).catch_all());
        let mut client = greeted(&farm);
        client.command("MAIL FROM:<probe@probe.test>");
        client.command("RCPT TO:<anyone@farm.test>");
        assert!(client.command("DATA").starts_with("554 5.5.1"));
        assert!(client.command("BDAT 0 LAST").starts_with("554 5.5.1"));
        assert_eq!(farm.stats().data_commands, 2);
    }

    #[test]
    fn ehlo_advertises_only_what_the_personality_has() {
        let cases = [
            (
                Personality::new(MX),
                &["PIPELINING", "SMTPUTF8"][..],
                &[][..],
            ),
            (
                Personality::new(MX).without_pipelining(),
                &["SMTPUTF8"],
                &["PIPELINING"],
            ),
            (
                Personality::new(MX).without_smtputf8(),
                &["PIPELINING"],
                &["SMTPUTF8"],
            ),
        ];
        for (personality, present, absent) in cases {
            let farm = farm_of(personality);
            let mut client = greeted(&farm);
            let ehlo = client.command("EHLO probe.test");
            assert!(ehlo.ends_with("\r\n250 CHUNKING\r\n"), "{ehlo:?}");
            for extension in present {
                assert!(ehlo.contains(&format!("250-{extension}\r\n")), "{ehlo:?}");
            }
            for extension in absent {
                assert!(!ehlo.contains(extension), "{ehlo:?}");
            }
        }
    }

    #[test]
    fn pipelined_commands_are_answered_in_order() {
        let farm = farm_of(farm_test_personality());
        let mut client = greeted(&farm);
        client.send(
            "MAIL FROM:<probe@probe.test>\r\nRCPT TO:<alice@farm.test>\r\n\
             RCPT TO:<nobody@farm.test>\r\nRCPT TO:<bob@farm.test>\nQUIT\r\n",
        );
        let replies: Vec<String> = (0..5).map(|_| client.reply()).collect();
        let codes: Vec<&str> = replies.iter().map(|reply| &reply[..3]).collect();
        assert_eq!(codes, ["250", "250", "550", "250", "221"], "{replies:?}");
        client.expect_close();
        let stats = settled_stats(&farm, |stats| stats.open_connections == 0);
        assert_eq!(
            stats.reply_rounds, 2,
            "the greeting, then one wait for the batch"
        );
    }

    #[test]
    fn commands_split_at_every_byte_lose_nothing() {
        let farm = farm_of(farm_test_personality());
        let mut client = greeted(&farm);
        for byte in "MAIL FROM:<probe@probe.test>\r\nRCPT TO:<alice@farm.test>\r\n".bytes() {
            client.stream.write_all(&[byte]).unwrap();
            thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(client.reply(), "250 2.1.0 Ok\r\n");
        assert_eq!(client.reply(), "250 2.1.5 Ok\r\n");
    }

    #[test]
    fn lines_longer_than_the_limit_end_the_session() {
        // (bytes sent, whether a line ending follows, expected reply)
        let cases = [
            (MAX_LINE, true, "250 2.0.0 Ok\r\n"),
            (MAX_LINE + 1, true, "500 5.5.2 Line too long\r\n"),
            (MAX_LINE, false, "500 5.5.2 Line too long\r\n"),
        ];
        for (length, ended, expected) in cases {
            let farm = farm_of(Personality::new(MX));
            let mut client = greeted(&farm);
            let mut line = format!("NOOP {}", "x".repeat(length - "NOOP \r\n".len()));
            line.push_str(if ended { "\r\n" } else { "xx" });
            client.send(&line);
            assert_eq!(client.reply(), expected, "{length} bytes, ended: {ended}");
            if expected.starts_with("500") {
                client.expect_close();
            }
        }
    }

    #[test]
    fn greylisting_defers_a_new_triplet_until_its_period_is_over() {
        let period = Duration::from_millis(300);
        let farm = farm_of(farm_test_personality().greylist(period));
        let started = Instant::now();
        let mut client = greeted(&farm);
        client.command("MAIL FROM:<probe@probe.test>");
        assert_eq!(
            client.command("RCPT TO:<alice@farm.test>"),
            "451 4.7.1 <alice@farm.test>: Recipient address rejected: Greylisted, try again \
             later\r\n"
        );
        // Remembered across connections, and the sender is part of the triplet.
        let mut again = greeted(&farm);
        again.command("MAIL FROM:<PROBE@probe.test>");
        assert!(
            again
                .command("RCPT TO:<Alice@farm.test>")
                .starts_with("451 4.7.1")
        );
        again.command("RSET");
        again.command("MAIL FROM:<other@probe.test>");
        assert!(
            again
                .command("RCPT TO:<alice@farm.test>")
                .starts_with("451 4.7.1")
        );
        thread::sleep(period.saturating_sub(started.elapsed()) + Duration::from_millis(20));
        assert_eq!(
            client.command("RCPT TO:<alice@farm.test>"),
            "250 2.1.5 Ok\r\n"
        );
        assert!(
            client
                .command("RCPT TO:<nobody@farm.test>")
                .starts_with("451 4.7.1")
        );
    }

    #[test]
    fn refused_greeting_answers_503_until_quit() {
        let farm = farm_of(Personality::new(MX).greeting(Greeting::Refuse));
        let mut client = Client::connect(farm.addrs()[0]);
        assert_eq!(
            client.reply(),
            "554 5.7.1 Service unavailable; Client host [127.0.0.1] blocked using \
             zen.spamhaus.org\r\n"
        );
        assert_eq!(
            client.command("EHLO probe.test"),
            "503 5.5.1 Error: no SMTP service here\r\n"
        );
        assert!(
            client
                .command("MAIL FROM:<probe@probe.test>")
                .starts_with("503 ")
        );
        assert_eq!(client.command("QUIT"), "221 2.0.0 Bye\r\n");
        client.expect_close();
    }

    #[test]
    fn unavailable_greeting_is_421_then_close() {
        let farm = farm_of(Personality::new(MX).greeting(Greeting::Unavailable));
        let mut client = Client::connect(farm.addrs()[0]);
        assert_eq!(
            client.reply(),
            "421 4.7.0 mx.farm.test Error: too many connections from 127.0.0.1\r\n"
        );
        client.expect_close();
    }

    #[test]
    fn silent_server_sends_nothing() {
        let farm = farm_of(Personality::new(MX).behaviour(Behaviour::Silent));
        let mut client = Client::connect(farm.addrs()[0]);
        client.send("EHLO probe.test\r\n");
        assert!(!client.receives_within(Duration::from_millis(300)));
        assert_eq!(farm.stats().open_connections, 1);
    }

    #[test]
    fn garbage_server_greets_in_http_and_hangs_up_after_its_linger() {
        let farm = farm_of(Personality::new(MX).behaviour(Behaviour::Garbage));
        let connected = Instant::now();
        let mut client = Client::connect(farm.addrs()[0]);
        assert_eq!(
            client.line().as_deref(),
            Some("HTTP/1.1 400 Bad Request\r\n")
        );
        client.send("EHLO probe.test\r\n");
        client.expect_close();
        let lingered = connected.elapsed();
        assert!(
            lingered >= GARBAGE_LINGER - Duration::from_millis(50) && lingered < GARBAGE_LINGER * 2,
            "{lingered:?}"
        );
    }

    #[test]
    fn close_after_greeting_closes_after_the_220() {
        let farm = farm_of(Personality::new(MX).behaviour(Behaviour::CloseAfterGreeting));
        let mut client = greeted(&farm);
        client.expect_close();
    }

    #[test]
    fn close_after_mail_answers_mail_then_closes() {
        let farm = farm_of(
            farm_test_personality()
                .reject_sender()
                .behaviour(Behaviour::CloseAfterMail),
        );
        let mut client = greeted(&farm);
        assert!(client.command("EHLO probe.test").starts_with("250-"));
        client.send("MAIL FROM:<probe@probe.test>\r\nRCPT TO:<alice@farm.test>\r\n");
        assert_eq!(client.reply(), "250 2.1.0 Ok\r\n");
        client.expect_close();
        assert_eq!(farm.stats().mail_commands, 1);
    }

    #[test]
    fn drip_sends_one_byte_per_interval() {
        let farm = farm_of(Personality::new(MX).behaviour(Behaviour::Drip));
        let connected = Instant::now();
        let mut client = Client::connect(farm.addrs()[0]);
        let mut first = [0; 4];
        client.stream.read_exact(&mut first).unwrap();
        let elapsed = connected.elapsed();
        assert_eq!(&first, b"220 ");
        // Bytes leave at 0, 100, 200 and 300 ms.
        assert!(
            elapsed >= DRIP_INTERVAL * 3 - Duration::from_millis(20),
            "{elapsed:?}"
        );
    }

    #[test]
    fn tarpit_holds_every_reply() {
        let hold = Duration::from_millis(300);
        let farm = farm_of(Personality::new(MX).behaviour(Behaviour::Tarpit(hold)));
        let connected = Instant::now();
        let mut client = Client::connect(farm.addrs()[0]);
        assert!(!client.receives_within(Duration::from_millis(150)));
        client.reply();
        assert!(connected.elapsed() >= hold, "{:?}", connected.elapsed());
        let asked = Instant::now();
        assert_eq!(client.command("NOOP"), "250 2.0.0 Ok\r\n");
        assert!(asked.elapsed() >= hold, "{:?}", asked.elapsed());
    }

    #[test]
    fn latency_costs_one_delay_per_round_trip_not_per_command() {
        let latency = Duration::from_millis(200);
        let farm = farm_of(farm_test_personality().latency(latency));
        let connected = Instant::now();
        let mut client = Client::connect(farm.addrs()[0]);
        client.reply();
        assert!(
            connected.elapsed() >= latency,
            "greeting after {:?}",
            connected.elapsed()
        );

        let asked = Instant::now();
        client.command("EHLO probe.test");
        assert!(
            asked.elapsed() >= latency,
            "EHLO after {:?}",
            asked.elapsed()
        );

        let asked = Instant::now();
        client.send("MAIL FROM:<probe@probe.test>\r\n");
        for _ in 0..5 {
            client.send("RCPT TO:<alice@farm.test>\r\n");
        }
        let replies: Vec<String> = (0..6).map(|_| client.reply()).collect();
        let answered = asked.elapsed();
        assert!(
            answered >= latency && answered < latency * 2,
            "6 pipelined commands answered after {answered:?}: {replies:?}"
        );
    }

    #[test]
    fn replies_never_overtake_each_other() {
        let start = Instant::now();
        let mut outbox = Outbox::new(start, false);
        outbox.push(b"first\r\n", start + Duration::from_millis(100), start);
        // Due earlier (less jitter), but must wait for the first.
        outbox.push(b"second\r\n", start + Duration::from_millis(50), start);
        assert_eq!(
            outbox.next_deadline(),
            Some(start + Duration::from_millis(100))
        );
        outbox.release_due(start + Duration::from_millis(60));
        assert_eq!(outbox.unsent(), b"");
        outbox.release_due(start + Duration::from_millis(100));
        assert_eq!(outbox.unsent(), b"first\r\nsecond\r\n");
        assert_eq!(outbox.next_deadline(), None);
        // Due now, with nothing ahead of it: released at once.
        outbox.push(
            b"third\r\n",
            start + Duration::from_millis(90),
            start + Duration::from_millis(120),
        );
        assert_eq!(outbox.unsent(), b"first\r\nsecond\r\nthird\r\n");
    }

    #[test]
    fn idle_connection_is_told_and_closed() {
        let idle_limit = Duration::from_millis(200);
        let farm = SmtpFarm::start_with(
            vec![(loopback(1), Personality::new(MX))],
            FarmOptions {
                idle_limit,
                ..FarmOptions::default()
            },
        )
        .unwrap();
        let mut client = greeted(&farm);
        let idle_since = Instant::now();
        assert_eq!(
            client.reply(),
            "421 4.4.2 mx.farm.test Error: timeout exceeded\r\n"
        );
        assert!(idle_since.elapsed() >= idle_limit - Duration::from_millis(20));
        client.expect_close();
    }

    #[test]
    fn listeners_on_several_loopback_addresses_keep_their_personalities() {
        let farm = SmtpFarm::start(
            vec![
                (loopback(2), farm_test_personality()),
                (
                    loopback(3),
                    Personality::new("catchall.farm.test").catch_all(),
                ),
                (loopback(4), Personality::new(MX).greeting(Greeting::Refuse)),
                (
                    loopback(5),
                    Personality::new(MX).greeting(Greeting::Unavailable),
                ),
            ],
            2,
        )
        .unwrap();
        let addrs = farm.addrs();
        let hosts: Vec<IpAddr> = addrs.iter().map(SocketAddr::ip).collect();
        assert_eq!(
            hosts,
            [2, 3, 4, 5].map(|host| IpAddr::from(Ipv4Addr::new(127, 0, 0, host)))
        );
        for (addr, expected_rcpt) in [(addrs[0], "550 5.1.1"), (addrs[1], "250 2.1.5")] {
            let mut client = Client::connect(addr);
            client.reply();
            client.command("MAIL FROM:<probe@probe.test>");
            let reply = client.command("RCPT TO:<nobody@farm.test>");
            assert!(reply.starts_with(expected_rcpt), "{addr}: {reply:?}");
        }
        assert!(Client::connect(addrs[2]).reply().starts_with("554 5.7.1"));
        assert!(Client::connect(addrs[3]).reply().starts_with("421 4.7.0"));
        assert_eq!(farm.stats().connections, 4);
    }

    #[test]
    fn five_hundred_concurrent_sessions_all_complete() {
        const CLIENTS: usize = 500;
        const CLIENT_THREADS: usize = 10;
        // Two sockets per session in this process, plus whatever other tests hold.
        rlimit::increase_nofile_limit(4096).unwrap();
        let farm = farm_of(farm_test_personality());
        let addr = farm.addrs()[0];
        let clients: Vec<Client> = (0..CLIENTS).map(|_| Client::connect(addr)).collect();
        let mut groups: Vec<Vec<Client>> = (0..CLIENT_THREADS).map(|_| Vec::new()).collect();
        for (index, client) in clients.into_iter().enumerate() {
            groups[index % CLIENT_THREADS].push(client);
        }
        let workers: Vec<_> = groups
            .into_iter()
            .map(|mut group| {
                thread::spawn(move || {
                    for client in &mut group {
                        assert!(client.reply().starts_with("220 "));
                    }
                    for client in &mut group {
                        client.send(
                            "EHLO probe.test\r\nMAIL FROM:<probe@probe.test>\r\n\
                             RCPT TO:<alice@farm.test>\r\nQUIT\r\n",
                        );
                    }
                    for client in &mut group {
                        let codes: Vec<String> =
                            (0..4).map(|_| client.reply()[..3].to_owned()).collect();
                        assert_eq!(codes, ["250", "250", "250", "221"]);
                        client.expect_close();
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().unwrap();
        }
        let stats = settled_stats(&farm, |stats| stats.open_connections == 0);
        assert_eq!(stats.connections, CLIENTS as u64);
        assert_eq!(stats.sessions_completed, CLIENTS as u64);
        assert_eq!(stats.rcpt_commands, CLIENTS as u64);
        assert_eq!(stats.open_connections, 0);
    }

    #[test]
    fn drop_stops_the_threads_promptly_and_closes_everything() {
        let farm = SmtpFarm::start(
            vec![
                (loopback(1), Personality::new(MX)),
                (
                    loopback(1),
                    Personality::new(MX).latency(Duration::from_secs(5)),
                ),
            ],
            2,
        )
        .unwrap();
        let addrs = farm.addrs();
        let mut idle = greeted(&farm);
        // A connection waiting on a far timer must not hold the drop up either.
        let _waiting = Client::connect(addrs[1]);
        let dropped_at = Instant::now();
        drop(farm);
        let took = dropped_at.elapsed();
        assert!(took < Duration::from_millis(500), "{took:?}");
        assert_eq!(idle.line(), None, "open connections are closed");
        for addr in addrs {
            assert!(TcpStream::connect(addr).is_err(), "{addr} still listens");
        }
    }

    #[test]
    fn start_refuses_what_it_cannot_serve_and_says_why() {
        let no_threads = SmtpFarm::start(vec![(loopback(1), Personality::new(MX))], 0);
        let error = no_threads.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        assert!(error.to_string().contains("threads >= 1"), "{error}");

        let bad_name = SmtpFarm::start(vec![(loopback(1), Personality::new("mx\r\n250 x"))], 1);
        let error = bad_name.unwrap_err();
        assert!(error.to_string().contains("CR or LF"), "{error}");

        let taken = farm_of(Personality::new(MX));
        let again = SmtpFarm::start(vec![(taken.addrs()[0], Personality::new(MX))], 1);
        let error = again.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::AddrInUse);
        assert!(error.to_string().contains("port 0"), "{error}");
    }

    #[test]
    fn a_farm_without_listeners_starts_and_stops() {
        let farm = SmtpFarm::start(Vec::new(), 4).unwrap();
        assert!(farm.addrs().is_empty());
        assert_eq!(farm.stats(), FarmStats::default());
    }
}
