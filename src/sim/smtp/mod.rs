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
//! a test can assert that mxprobe never sent one. It speaks STARTTLS (RFC 3207) as the
//! personality's [`Tls`] says: offered, required at MAIL or at RCPT, advertised but unavailable,
//! or a handshake that fails; TLS is real (rustls) with a self-signed certificate per farm
//! ([`SmtpFarm::tls_cert_pem`]), and the farm counts completed handshakes and plain text injected
//! after STARTTLS ([`FarmStats::tls_handshakes`], [`FarmStats::starttls_injections`]).
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
//!   does not read its replies); under TLS, TLS records waiting for the socket count among the
//!   undelivered replies, and rustls' own state (its record buffers, some tens of KiB) comes on
//!   top. Greylist memory is not: it keeps every triplet for the life of the farm, as a
//!   greylister keeps them for days.
//! - After STARTTLS, bytes leave in plain text up to and including the `220`, and as TLS after
//!   it; plain text the client sent after its STARTTLS line in the same read is never answered.
//!   TLS handshake records cost no simulated latency; replies inside TLS keep the latency model.
//! - Nothing a client sends makes a farm thread panic (bytes that are not TLS after STARTTLS get
//!   an alert and a close). A client holds only its own connection,
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
//! - `personality.rs`: [`Personality`], [`Greeting`], [`Behaviour`], [`Tls`]: what a server is
//!   like.
//! - `dialogue.rs`: the SMTP side of one connection, sans-IO: command lines in, reply bytes out
//!   (`ServerScript`, `Dialogue`). The loopback farm and the in-memory world of
//!   [`crate::sim::net`] both serve through it: one implementation of every personality.
//! - `outbox.rs`: the latency model, sans-IO: replies held until due, dripped, then written.
//! - `tls_layer.rs`: the TLS after STARTTLS, sans-IO: ciphertext in, plaintext to the dialogue;
//!   released replies in, ciphertext to the socket (`TlsLayer`, on rustls).
//! - `conversation.rs`: one served connection, sans-IO: a client's bytes in at an instant, reply
//!   bytes out when due (`Conversation`); the table tests drive it on a hand-moved clock.
//! - `event_loop.rs`: the threads, sockets and timers that put a `Conversation` on each
//!   connection.
//! - this file: the farm as its users see it: [`SmtpFarm`], its options, its certificate and its
//!   counters.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

mod conversation;
mod dialogue;
mod event_loop;
mod outbox;
mod personality;
mod tls_layer;

pub(crate) use dialogue::{AnswerContext, Counters, Dialogue, InRead, ServerScript};
pub(crate) use outbox::Outbox;
pub use personality::{Behaviour, Greeting, Personality, Throttle, Tls};

use crate::sim::tls::SelfSigned;

use event_loop::{ListenerSlot, RunningLoop};

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

/// The most host names a farm's certificate carries besides `localhost`: the first distinct
/// hostnames of its TLS personalities, in listener order. A certificate naming every host of a
/// generated world would make each handshake carry kilobytes of names; a client that verifies
/// a host past them sees a name mismatch, as against a real MX whose certificate does not name
/// it.
pub const MAX_CERT_NAMES: usize = 64;

/// How long a listener stops accepting after `accept` fails for want of descriptors or memory,
/// so a farm out of file descriptors does not spin.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// How a farm runs, beyond its listeners. `FarmOptions::default()` is one thread named
/// `sim-smtp-0`, a [`DEFAULT_IDLE_LIMIT`] and seed 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FarmOptions {
    /// Event-loop threads, at least 1. More threads than listeners would idle, so the farm
    /// starts at most one per listener.
    pub threads: usize,
    /// How long a connection may go without input before the server closes it.
    pub idle_limit: Duration,
    /// Seeds the jitter of every thread, so a run can be repeated.
    pub seed: u64,
    /// The event-loop threads are named this, then `-` and their number: `sim-smtp-0`, … by
    /// default. Linux keeps 15 bytes of a thread's name.
    pub thread_name: &'static str,
}

impl Default for FarmOptions {
    fn default() -> Self {
        Self {
            threads: 1,
            idle_limit: DEFAULT_IDLE_LIMIT,
            seed: 0,
            thread_name: "sim-smtp",
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
    /// The most connections that were open at once (on one thread: a farm of one listener
    /// gives that listener's).
    pub peak_open_connections: u64,
    /// The most RCPT commands one connection sent.
    pub peak_rcpts_in_session: u64,
    /// Transactions a [`Throttle`] slowed down.
    pub throttled_transactions: u64,
    /// TLS handshakes completed after STARTTLS.
    pub tls_handshakes: u64,
    /// STARTTLS commands followed, in the same read, by plain text the server discarded
    /// unanswered (the command injection of CVE-2011-0411). mxprobe must keep this at 0.
    pub starttls_injections: u64,
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
    /// The certificate every TLS personality presents, if any personality has TLS.
    certificate: Option<SelfSigned>,
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
        let certificate = farm_certificate(&listeners);
        let tls_config = certificate.as_ref().map(SelfSigned::server_config);
        for (index, (addr, personality)) in listeners.into_iter().enumerate() {
            let mut script = ServerScript::new(personality)?;
            if let Some(config) = &tls_config {
                script = script.with_tls(Arc::clone(config));
            }
            let slot = ListenerSlot::bind(addr, script)?;
            addrs.push(slot.local_addr()?);
            slots_per_loop[index % thread_count].push(slot);
        }
        let mut farm = Self {
            addrs,
            stop: Arc::new(AtomicBool::new(false)),
            loops: Vec::with_capacity(thread_count),
            certificate,
        };
        // From here on an error drops `farm`, which stops the loops already started.
        for (index, slots) in slots_per_loop.into_iter().enumerate() {
            let running = event_loop::spawn(index, slots, &farm.stop, options)?;
            farm.loops.push(running);
        }
        Ok(farm)
    }

    /// The bound addresses, in the order the listeners were given.
    #[must_use]
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.addrs.clone()
    }

    /// The certificate the farm's servers present after STARTTLS, PEM, for a client that
    /// verifies (mxprobe's `--tls-ca`): self-signed, naming `localhost` and the hostnames of
    /// the TLS personalities (at most [`MAX_CERT_NAMES`] of them, those a certificate can
    /// carry). `None` if no personality has TLS, when the farm makes no certificate.
    #[must_use]
    pub fn tls_cert_pem(&self) -> Option<&str> {
        self.certificate.as_ref().map(SelfSigned::cert_pem)
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
            total.peak_open_connections = total
                .peak_open_connections
                .max(counters.peak_open_connections.load(Ordering::Relaxed));
            total.peak_rcpts_in_session = total
                .peak_rcpts_in_session
                .max(counters.peak_rcpts_in_session.load(Ordering::Relaxed));
            total.throttled_transactions += counters.throttled_transactions.load(Ordering::Relaxed);
            total.tls_handshakes += counters.tls_handshakes.load(Ordering::Relaxed);
            total.starttls_injections += counters.starttls_injections.load(Ordering::Relaxed);
        }
        total
    }
}

/// The farm's certificate, if any personality has TLS: one key pair (about a millisecond),
/// naming `localhost` and the first [`MAX_CERT_NAMES`] distinct hostnames of the TLS
/// personalities that can be certificate names (ASCII letters, digits, `-` and `.`).
fn farm_certificate(listeners: &[(SocketAddr, Personality)]) -> Option<SelfSigned> {
    let mut names: Vec<&str> = vec!["localhost"];
    let mut any_tls = false;
    for (_, personality) in listeners {
        if personality.tls == Tls::None {
            continue;
        }
        any_tls = true;
        let name = personality.hostname.as_str();
        let nameable = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if nameable && names.len() <= MAX_CERT_NAMES && !names.contains(&name) {
            names.push(name);
        }
    }
    any_tls.then(|| SelfSigned::new(&names))
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

#[cfg(test)]
mod tests;
