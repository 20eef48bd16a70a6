//! The farm's sockets and threads: one mio event loop per thread, serving its listeners'
//! connections through the sans-IO [`Conversation`].
//!
//! # Run-loop rule
//!
//! After any readiness event or timer, a connection is stepped until nothing more can be done
//! at this instant: read until `WouldBlock` (or until its client stops reading replies),
//! answer, write until `WouldBlock`; then its socket interest and its one timer-heap entry are
//! brought up to date. Each loop polls with the time to its earliest timer as timeout and never
//! sleeps otherwise; its waker is how the farm's drop interrupts the poll.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
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

use super::conversation::{Conversation, ServeContext};
use super::dialogue::{Counters, ServerScript, count};
use super::{ACCEPT_BACKOFF, FarmOptions};

/// The listen backlog asked for, and the one asked for if the first is refused. The kernel caps
/// both at `net.core.somaxconn`.
const LISTEN_BACKLOG: i32 = 4096;
const FALLBACK_LISTEN_BACKLOG: i32 = 1024;

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

/// One event-loop thread as the farm holds it: how to wake it, what it counted, how to join it.
#[derive(Debug)]
pub(super) struct RunningLoop {
    pub(super) waker: Waker,
    pub(super) counters: Arc<Counters>,
    pub(super) thread: Option<JoinHandle<()>>,
}

/// A bound listener and the script of its personality, before its loop starts.
#[derive(Debug)]
pub(super) struct ListenerSlot {
    socket: TcpListener,
    script: ServerScript,
    backing_off: bool,
}

impl ListenerSlot {
    /// Binds `addr` for `script`; see [`bind_listener`].
    pub(super) fn bind(addr: SocketAddr, script: ServerScript) -> io::Result<Self> {
        Ok(Self {
            socket: bind_listener(addr)?,
            script,
            backing_off: false,
        })
    }

    pub(super) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }
}

/// Starts loop number `index` on a thread of its own, serving `listeners` until `stop` is set
/// and its waker rung.
pub(super) fn spawn(
    index: usize,
    mut listeners: Vec<ListenerSlot>,
    stop: &Arc<AtomicBool>,
    options: FarmOptions,
) -> io::Result<RunningLoop> {
    let poll = Poll::new()?;
    for (slot_index, slot) in listeners.iter_mut().enumerate() {
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
        listeners,
        connections: Slab::new(),
        timers: BinaryHeap::new(),
        sweep_armed: false,
        counters: Arc::clone(&counters),
        stop: Arc::clone(stop),
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
        .name(format!("{}-{index}", options.thread_name))
        .spawn(move || event_loop.run())?;
    Ok(RunningLoop {
        waker,
        counters,
        thread: Some(thread),
    })
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

/// Whether a connection survived a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Liveness {
    Open,
    Closed,
}

/// One accepted client: its socket, its conversation and what the loop knows of both.
#[derive(Debug)]
struct Connection {
    stream: TcpStream,
    /// Index of its listener in the loop's `listeners`.
    listener: usize,
    /// Tells this connection from an earlier one that had the same slab key, for timers.
    generation: u64,
    conversation: Conversation,
    /// The deadline of the one live timer-heap entry for this connection, if any.
    timer: Option<Instant>,
    /// Whether the socket may have bytes to read: set by readiness events, cleared by
    /// `WouldBlock` (mio is edge-triggered).
    readable: bool,
    broken: bool,
    write_interest: bool,
}

impl Connection {
    /// Does all the connection can do now: read and answer, release due replies, write. The
    /// run-loop rule: after any event or timer, step until nothing more can be done now.
    fn step(&mut self, read_buffer: &mut [u8], context: &mut ServeContext<'_>) -> Liveness {
        let now = context.now;
        if self.conversation.is_finished(now) {
            return Liveness::Closed;
        }
        self.conversation
            .handle_timeout(now, context.script, context.reply);
        loop {
            self.read_and_answer(read_buffer, context);
            self.write();
            if self.broken {
                return Liveness::Closed;
            }
            if !self.wants_to_read() {
                break;
            }
        }
        if self.conversation.is_finished(now) {
            return Liveness::Closed;
        }
        Liveness::Open
    }

    fn wants_to_read(&self) -> bool {
        self.readable && self.conversation.wants_input()
    }

    /// Reads until `WouldBlock`, EOF or too many unsent replies, answering each read.
    fn read_and_answer(&mut self, read_buffer: &mut [u8], context: &mut ServeContext<'_>) {
        while self.wants_to_read() {
            match self.stream.read(read_buffer) {
                Ok(0) => self.conversation.handle_eof(),
                Ok(received) => self
                    .conversation
                    .handle_input(&read_buffer[..received], context),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => self.readable = false,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.broken = true;
                    return;
                }
            }
        }
    }

    /// Writes released replies until done or `WouldBlock`.
    fn write(&mut self) {
        while !self.conversation.unsent().is_empty() {
            match self.stream.write(self.conversation.unsent()) {
                Ok(0) => self.broken = true,
                Ok(sent) => self.conversation.mark_written(sent),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => self.broken = true,
            }
            if self.broken {
                return;
            }
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
            let mut context = ServeContext {
                script: &mut self.listeners[index].script,
                counters: &self.counters,
                rng: &mut self.rng,
                now,
                reply: &mut self.scratch.reply,
                address: &mut self.scratch.address,
            };
            let connection = Connection {
                stream,
                listener: index,
                generation: self.next_generation,
                conversation: Conversation::open(peer.ip(), self.idle_limit, &mut context),
                timer: None,
                readable: false,
                broken: false,
                write_interest: false,
            };
            entry.insert(connection);
            count(&self.counters.connections);
            let open = self
                .counters
                .open_connections
                .fetch_add(1, Ordering::Relaxed)
                + 1;
            self.counters
                .peak_open_connections
                .fetch_max(open, Ordering::Relaxed);
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
        let mut context = ServeContext {
            script: &mut self.listeners[connection.listener].script,
            counters: &self.counters,
            rng: &mut self.rng,
            now,
            reply: &mut self.scratch.reply,
            address: &mut self.scratch.address,
        };
        let mut liveness = connection.step(&mut self.scratch.read_buffer, &mut context);
        let wants_write = !connection.conversation.unsent().is_empty();
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
        if let Some(deadline) = connection.conversation.poll_timeout()
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
                    connection
                        .conversation
                        .idle_deadline()
                        .is_some_and(|deadline| now >= deadline)
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
