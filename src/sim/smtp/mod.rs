//! A farm of simulated SMTP servers on loopback, each listening address with a scripted
//! [`Personality`], for mxprobe's end-to-end tests and for `mxprobe bench`.
//!
//! A personality says which mailboxes exist and how the server behaves towards a prober:
//! catch-all, greylisting, a recipient limit, a refused or unavailable greeting, a rejected
//! sender, hidden extensions, network latency — and the failures a client must survive: silence,
//! a non-SMTP greeting, connections closed mid-dialogue, replies dripped byte by byte or held past
//! any sane timeout, the replies to a pipelined group lost, a reply nobody asked for
//! ([`Behaviour`]). It speaks just enough of RFC 5321 for a probe (EHLO, HELO, MAIL, RCPT, RSET,
//! NOOP, VRFY, QUIT) with Postfix's reply texts, and refuses DATA and BDAT while counting them, so
//! a test can assert that mxprobe never sent one.
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
//!
//! # Files
//!
//! - `personality.rs`: [`Personality`], [`Greeting`], [`Behaviour`]: what a server is like.
//! - `dialogue.rs`: the SMTP side of one connection, sans-IO: command lines in, reply bytes out
//!   (`ServerScript`, `Dialogue`). The loopback farm here and the in-memory world of
//!   [`crate::sim::net`] both serve through it: one implementation of every personality.
//! - `outbox.rs`: the latency model, sans-IO: replies held until due, dripped, then written.
//! - this file: the farm, its threads, sockets and timers.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use rand::SeedableRng;
use rand::rngs::StdRng;
use slab::Slab;
use socket2::{Domain, Protocol, Socket, Type};

mod dialogue;
mod outbox;
mod personality;

pub(crate) use dialogue::{AnswerContext, Counters, Dialogue, InRead, ServerScript, count};
pub(crate) use outbox::Outbox;
pub use personality::{Behaviour, Greeting, Personality};

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

    /// Answers every complete line in `input` and keeps the partial one, if any. Called once
    /// per read: the lines it answers are the ones that read completed.
    fn answer_complete_lines(&mut self, context: &mut StepContext<'_>) {
        let mut consumed = 0;
        let mut in_read = InRead::First;
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
                self.dialogue
                    .answer(line, in_read, &mut answer_context, reply);
            }
            in_read = InRead::Later;
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
mod tests;
