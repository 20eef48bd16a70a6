//! [`Engine`]: the scheduler on its own thread and `mio` loop, fed through a handle from any
//! thread, with verdicts coming back on a channel.
//!
//! ```
//! use std::net::{Ipv4Addr, SocketAddr, TcpListener};
//! use mxprobe::dns::{LookupConfig, NameserverConfig, ResolverConfig};
//! use mxprobe::driver::Engine;
//! use mxprobe::engine::EngineConfig;
//! use mxprobe::session::{Sender, SessionConfig};
//! use mxprobe::sim::{dns::{DnsResponder, Zone}, smtp::{Personality, SmtpFarm}};
//! use mxprobe::verdict::Reason;
//!
//! // A simulated MX for example.test on loopback, and DNS that points at it.
//! let mx = Ipv4Addr::new(127, 0, 0, 26);
//! let port = TcpListener::bind((mx, 0))?.local_addr()?.port();
//! let _farm = SmtpFarm::start(
//!     vec![(SocketAddr::from((mx, port)), Personality::new("mx.example.test").mailbox("alice@example.test"))],
//!     1,
//! )?;
//! let mut zone = Zone::new();
//! zone.mx("example.test", 10, "mx.example.test").a("mx.example.test", mx);
//! let dns = DnsResponder::start(zone)?;
//!
//! let session = SessionConfig::new("probe.example.test", Sender::Mailbox("probe@example.test".into()));
//! let resolver = ResolverConfig::new(LookupConfig::new(NameserverConfig::with_servers(vec![dns.addr()])));
//! let mut config = EngineConfig::new(session, resolver);
//! config.smtp_port = port;
//! config.allow_private_mx = true; // the simulated MX is on loopback
//!
//! let engine = Engine::start(config)?;
//! let handle = engine.handle();
//! handle.submit("alice@example.test", 1).unwrap();
//! handle.submit("nobody@example.test", 2).unwrap();
//! handle.finish();
//! let mut reasons: Vec<(u64, Reason)> = engine.results().iter().map(|r| (r.tag, r.reason)).collect();
//! reasons.sort();
//! assert_eq!(reasons, [(1, Reason::Accepted), (2, Reason::MailboxNotFound)]);
//! let report = engine.join()?;
//! assert_eq!(report.stats.sessions, 1);
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # The loop
//!
//! One thread, one `mio::Poll`: a [`mio::Waker`] (token 0) for the handle, the DNS client's
//! sockets and the SMTP connections each under their own range of tokens. Every turn: take
//! submissions while the scheduler has room (a bounded channel makes a fast producer wait:
//! ten million input lines never sit in memory at once), carry out what the scheduler asks
//! for, hand out verdicts (on a bounded channel as well: a slow consumer slows the intake, it
//! does not grow memory), then sleep in `poll` until an event, a wakeup or the scheduler's
//! next deadline. An idle engine sleeps without a timeout and uses no CPU.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token, Waker};

use super::{DnsInput, DnsSockets, SmtpSockets};
use crate::engine::{EngineConfig, EngineStats, Scheduler, VerifyResult};

const WAKER: Token = Token(0);
const DNS_TOKENS: usize = 1;
const SMTP_TOKENS: usize = 1 << 30;

/// How long in-flight sessions may run after a stop before they are abandoned.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// How often the loop looks whether a slow consumer has made room for more verdicts.
const CONSUMER_POLL: Duration = Duration::from_millis(10);

/// Places in each of the two channels (submissions in, verdicts out). The loop drains both
/// every turn, so a few thousand keep it busy; more would only be memory (a channel allocates
/// and touches all its places up front).
const CHANNEL_CAPACITY: usize = 4096;

/// Events handled between two hand-outs of verdicts within a turn.
const HAND_OUT_EVERY: usize = 256;

/// Sockets the DNS client may hold at once, for the file-descriptor budget.
const DNS_SOCKETS: u64 = 512;

enum Message {
    Submit(String, u64),
    Finish,
}

/// Submits addresses to a running [`Engine`] from any thread.
#[derive(Debug, Clone)]
pub struct EngineHandle {
    sender: SyncSender<Message>,
    /// Set by [`stop`](EngineHandle::stop). A flag, not a message: a stop must not queue behind
    /// thousands of submissions the engine has no room for.
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
}

/// The engine has stopped and takes no more addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineStopped;

impl std::fmt::Display for EngineStopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the engine has stopped")
    }
}

impl std::error::Error for EngineStopped {}

impl EngineHandle {
    /// Submits an address as a user wrote it; `tag` comes back in its result. Waits while
    /// the engine's input queue is full.
    pub fn submit(&self, address: impl Into<String>, tag: u64) -> Result<(), EngineStopped> {
        self.sender
            .send(Message::Submit(address.into(), tag))
            .map_err(|_| EngineStopped)?;
        self.wake();
        Ok(())
    }

    /// No more addresses: the engine ends once every submitted one has its verdict.
    pub fn finish(&self) {
        let _ = self.sender.send(Message::Finish);
        self.wake();
    }

    /// Stop soon: addresses not yet being probed are dropped without a verdict (a rerun asks
    /// them), sessions in flight get a few seconds to finish, then the engine ends.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.wake();
    }

    fn wake(&self) {
        // A failed wake means the loop is gone; submit already reports that.
        let _ = self.waker.wake();
    }
}

/// What a finished run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineReport {
    /// The scheduler's counters.
    pub stats: EngineStats,
    /// The DNS client's counters.
    pub resolver: crate::dns::ResolverStats,
    /// Addresses dropped without a verdict by a stop.
    pub abandoned: usize,
    /// From start to end.
    pub elapsed: Duration,
    /// The concurrency the run used (lower than asked if the file limit did not allow it).
    pub concurrency: usize,
    /// CPU time the engine thread used, where the system reports it (Linux).
    pub cpu: Option<super::cpu::CpuTime>,
}

/// A running engine. See the module documentation.
#[derive(Debug)]
pub struct Engine {
    handle: EngineHandle,
    results: Receiver<VerifyResult>,
    thread: JoinHandle<io::Result<EngineReport>>,
    notices: Vec<String>,
}

impl Engine {
    /// Starts the engine on a thread of its own. Raises the open-file limit toward what the
    /// concurrency needs; if the system does not allow that much, runs at a lower concurrency
    /// and says so in [`notices`](Self::notices) rather than failing halfway with `EMFILE`.
    ///
    /// A configuration the prober cannot probe with (an EHLO name or sender that cannot be
    /// written into a command) is refused here with [`io::ErrorKind::InvalidInput`], the
    /// [`ConfigError`](crate::session::ConfigError) inside saying what to fix: the prober's own
    /// mistake never becomes a verdict on a mailbox.
    pub fn start(mut config: EngineConfig) -> io::Result<Self> {
        config
            .validate()
            .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, error))?;
        let mut notices = Vec::new();
        let wanted = config.concurrency as u64 + DNS_SOCKETS + super::RESERVED_FDS;
        let limit = super::raise_open_files_limit(wanted)?;
        if limit < wanted {
            let fits = limit
                .saturating_sub(DNS_SOCKETS + super::RESERVED_FDS)
                .max(1);
            notices.push(format!(
                "the open-file limit is {limit}, too low for {} sessions at once; running {fits} \
                 (raise it with `ulimit -n {wanted}`)",
                config.concurrency
            ));
            config.concurrency = usize::try_from(fits).unwrap_or(1);
        }
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (sender, inbox) = mpsc::sync_channel(CHANNEL_CAPACITY);
        let (outbox, results) = mpsc::sync_channel(CHANNEL_CAPACITY);
        let seed = super::os_seed()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("mxprobe-engine".into())
            .spawn(move || run(poll, config, seed, &inbox, &stopped, &outbox))?;
        Ok(Self {
            handle: EngineHandle {
                sender,
                stop,
                waker,
            },
            results,
            thread,
            notices,
        })
    }

    /// A handle to submit addresses with; clone it for other threads.
    #[must_use]
    pub fn handle(&self) -> EngineHandle {
        self.handle.clone()
    }

    /// The verdicts, as they complete. The iterator ends when the engine does.
    #[must_use]
    pub fn results(&self) -> &Receiver<VerifyResult> {
        &self.results
    }

    /// Things the caller should tell the user (a lowered concurrency).
    #[must_use]
    pub fn notices(&self) -> &[String] {
        &self.notices
    }

    /// Waits for the engine to end (after [`EngineHandle::finish`] or
    /// [`EngineHandle::stop`]) and returns what it did.
    pub fn join(self) -> io::Result<EngineReport> {
        drop(self.handle);
        drop(self.results);
        self.thread
            .join()
            .map_err(|_| io::Error::other("the engine thread panicked"))?
    }
}

/// The verdicts' way out: the consumer's bounded channel.
struct Outbox<'a> {
    sender: &'a SyncSender<VerifyResult>,
    /// False once the consumer has gone: verdicts are then dropped, and the run still
    /// finishes honestly.
    listening: bool,
}

impl Outbox<'_> {
    /// Hands the scheduler's verdicts to the consumer while its channel has room. Those it
    /// has no room for stay in the scheduler and count in its pending: a slow consumer slows
    /// the producer, not memory.
    fn hand_out(&mut self, scheduler: &mut Scheduler) {
        while let Some(result) = scheduler.poll_result() {
            if !self.listening {
                continue;
            }
            match self.sender.try_send(result) {
                Ok(()) => {}
                Err(TrySendError::Full(result)) => {
                    scheduler.unpoll_result(result);
                    return;
                }
                Err(TrySendError::Disconnected(_)) => self.listening = false,
            }
        }
    }
}

/// The engine thread: the loop described in the module documentation.
fn run(
    mut poll: Poll,
    config: EngineConfig,
    seed: [u8; 32],
    inbox: &Receiver<Message>,
    stop: &AtomicBool,
    outbox: &SyncSender<VerifyResult>,
) -> io::Result<EngineReport> {
    let mut outbox = Outbox {
        sender: outbox,
        listening: true,
    };
    let started = Instant::now();
    let concurrency = config.concurrency;
    let max_pending = (config.concurrency.max(1) * config.rcpts_per_session.max(1))
        .saturating_add(config.lookahead);
    let mut scheduler = Scheduler::new(config, seed)
        .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, error))?;
    let mut dns = DnsSockets::new(DNS_TOKENS..SMTP_TOKENS);
    let mut smtp = SmtpSockets::new(SMTP_TOKENS..usize::MAX);
    let mut events = Events::with_capacity(4096);
    let mut input_open = true;
    let mut stop_deadline: Option<Instant> = None;
    let mut abandoned = 0;
    loop {
        let now = Instant::now();
        if stop_deadline.is_none() && stop.load(Ordering::SeqCst) {
            input_open = false;
            abandoned += scheduler.abandon_queued(now);
            stop_deadline = Some(now + STOP_GRACE);
        }
        // Take submissions while there is room; a full scheduler leaves them in the bounded
        // channel, and the producer waits.
        let mut intake_full = false;
        while input_open && stop_deadline.is_none() {
            if scheduler.pending() >= max_pending {
                intake_full = true;
                break;
            }
            match inbox.try_recv() {
                Ok(Message::Submit(address, tag)) => scheduler.submit(&address, tag, now),
                Ok(Message::Finish) | Err(TryRecvError::Disconnected) => input_open = false,
                Err(TryRecvError::Empty) => break,
            }
        }
        smtp.flush(poll.registry(), &mut scheduler, now);
        while let Some(transmit) = scheduler.poll_dns_transmit() {
            dns.transmit(poll.registry(), transmit, |input| {
                feed_dns(&mut scheduler, input, now);
            });
        }
        outbox.hand_out(&mut scheduler);
        let done = !input_open && scheduler.is_idle();
        let grace_over = stop_deadline.is_some_and(|deadline| now >= deadline);
        if done || grace_over {
            break;
        }
        let mut timeout = scheduler
            .poll_timeout()
            .map(|at| at.saturating_duration_since(now));
        if let Some(deadline) = stop_deadline {
            let left = deadline.saturating_duration_since(now);
            timeout = Some(timeout.map_or(left, |t| t.min(left)));
        }
        // The consumer cannot wake us when it makes room: look again soon.
        if scheduler.has_results() {
            timeout = Some(timeout.map_or(CONSUMER_POLL, |t| t.min(CONSUMER_POLL)));
        }
        // Submissions left waiting for room that this turn has made (verdicts handed out): the
        // producer rang the waker long ago, so take them now rather than sleep.
        if intake_full && scheduler.pending() < max_pending {
            timeout = Some(Duration::ZERO);
        }
        match poll.poll(&mut events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        let now = Instant::now();
        for (n, event) in events.iter().enumerate() {
            // Thousands of sessions ending in one turn make tens of thousands of verdicts: hand
            // them out as they come, while the consumer runs on another core, rather than
            // queue them all until the turn ends.
            if n % HAND_OUT_EVERY == HAND_OUT_EVERY - 1 {
                outbox.hand_out(&mut scheduler);
            }
            let token = event.token();
            if token == WAKER {
                continue;
            }
            if smtp.owns(token) {
                smtp.ready(event, &mut scheduler, now);
            } else if dns.owns(token) {
                dns.ready(poll.registry(), token, |input| {
                    feed_dns(&mut scheduler, input, now);
                });
            }
        }
        if scheduler.poll_timeout().is_some_and(|at| at <= now) {
            scheduler.handle_timeout(now);
        }
    }
    // Whatever is still open is closed when the sockets drop.
    drop(smtp);
    drop(dns);
    Ok(EngineReport {
        stats: scheduler.stats(),
        resolver: scheduler.resolver_stats(),
        abandoned: abandoned + scheduler.pending(),
        elapsed: started.elapsed(),
        concurrency,
        cpu: super::cpu::this_thread(),
    })
}

/// Hands what happened on a DNS socket to the scheduler's DNS client.
fn feed_dns(scheduler: &mut Scheduler, input: DnsInput<'_>, now: Instant) {
    match input {
        DnsInput::Udp {
            socket,
            from,
            bytes,
        } => scheduler.handle_udp(socket, from, bytes, now),
        DnsInput::Tcp { socket, bytes } => scheduler.handle_tcp(socket, bytes, now),
        DnsInput::Closed { socket } => scheduler.handle_dns_closed(socket, now),
    }
}
