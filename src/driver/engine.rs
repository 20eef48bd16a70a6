//! [`Engine`]: the scheduler on its own thread and `mio` loop, fed through a [`Handle`] from
//! any thread, with verdicts coming back as [`Results`] (or to a callback).
//!
//! # The loop
//!
//! One thread, one `mio::Poll`: a [`mio::Waker`] (token 0) for the handle, the DNS client's
//! sockets and the SMTP connections each under their own range of tokens (the connections of
//! real-time sessions in a lane of their own, served between every few events of a turn: see
//! `lanes.rs`). Every turn: take the real-time submissions (a channel of their own, taken
//! whatever the room), then bulk ones while the scheduler has room (a bounded channel makes a
//! fast producer wait: ten million input lines never sit in memory at once), carry out what
//! the scheduler asks for, hand out verdicts (on a bounded channel as well: a slow consumer
//! slows the intake, it does not grow memory), then sleep in `poll` until an event, a wakeup
//! or the scheduler's next deadline. An idle engine sleeps without a timeout and uses no CPU.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token, Waker};

use super::lanes::{Lanes, URGENT_EVERY};
use super::{DnsInput, DnsSockets};
use crate::Config;
use crate::dns::ResolverStats;
use crate::engine::{Census, EngineStats, Priority, Scheduler, SubmitOptions, VerifyResult};

const WAKER: Token = Token(0);
const DNS_TOKENS: usize = 1;
const SMTP_TOKENS: usize = 1 << 30;
/// The upper half of the SMTP tokens: the urgent lane's ([`Lanes`]).
const URGENT_SMTP_TOKENS: usize = SMTP_TOKENS + (usize::MAX - SMTP_TOKENS) / 2;
/// The urgent lane's `Poll` in the main one ([`Lanes`]).
const URGENT: Token = Token(usize::MAX);

/// How long in-flight sessions may run after a stop before they are abandoned.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// How often the loop looks whether a slow consumer has made room for more verdicts.
const CONSUMER_POLL: Duration = Duration::from_millis(10);

/// How often the loop refreshes the [`EngineSnapshot`] a [`Handle`] reads.
const SNAPSHOT_EVERY: Duration = Duration::from_millis(250);

/// Places in each of the two channels (submissions in, verdicts out). The loop drains both
/// every turn, so a few thousand keep it busy; more would only be memory (a channel allocates
/// and touches all its places up front).
const CHANNEL_CAPACITY: usize = 4096;

/// Places in the channel of real-time submissions: each is someone waiting, so there are few,
/// and they are taken every turn whatever the engine's room.
const URGENT_CAPACITY: usize = 256;

/// Events handled between two hand-outs of verdicts within a turn.
const HAND_OUT_EVERY: usize = 256;

/// Sockets the DNS client may hold at once, for the file-descriptor budget.
const DNS_SOCKETS: u64 = 512;

/// What a handle sends the loop. A submission with options carries them boxed: the channel
/// allocates and touches all its places up front, and most submissions have none.
enum Message {
    Submit(String, u64),
    SubmitWith(String, u64, Box<SubmitOptions>),
    /// A domain's catch-all answer learned elsewhere ([`Handle::know_catch_all`]).
    KnowCatchAll(String, bool),
    /// How long a domain's greylisting held an address elsewhere
    /// ([`Handle::know_greylist_wait`]).
    KnowGreylistWait(String, Duration),
    Finish,
}

impl Message {
    fn submission(address: String, tag: u64, options: SubmitOptions) -> Self {
        if options == SubmitOptions::default() {
            Self::Submit(address, tag)
        } else {
            Self::SubmitWith(address, tag, Box::new(options))
        }
    }
}

/// Submits addresses to a running [`Engine`] from any thread. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Handle {
    sender: SyncSender<Message>,
    /// Real-time submissions: a channel of their own, taken in before the bulk one and
    /// whether or not the engine is full, so that they never wait behind a list.
    urgent: SyncSender<Message>,
    /// Set by [`stop`](Handle::stop). A flag, not a message: a stop must not queue behind
    /// thousands of submissions the engine has no room for.
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
    /// The engine's counters as of the loop's last refresh.
    snapshot: Arc<Mutex<EngineSnapshot>>,
}

/// The engine's counters while it runs, refreshed four times a second: what a service's
/// metrics show ([`Handle::snapshot`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EngineSnapshot {
    /// The scheduler's counters.
    pub stats: EngineStats,
    /// The DNS client's counters.
    pub resolver: ResolverStats,
    /// What the scheduler holds: addresses, queues, sessions.
    pub census: Census,
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

impl Handle {
    /// Submits an address as a user wrote it; `tag` comes back in its result. Waits while
    /// the engine's input queue is full, so a fast producer cannot outrun memory.
    pub fn submit(&self, address: impl Into<String>, tag: u64) -> Result<(), EngineStopped> {
        self.submit_with(address, tag, SubmitOptions::default())
    }

    /// [`submit`](Self::submit) with a priority and a deadline. A real-time submission is
    /// taken in at once, ahead of every bulk one waiting, even when the engine is full.
    pub fn submit_with(
        &self,
        address: impl Into<String>,
        tag: u64,
        options: SubmitOptions,
    ) -> Result<(), EngineStopped> {
        let channel = match options.priority {
            Priority::RealTime => &self.urgent,
            Priority::Bulk => &self.sender,
        };
        channel
            .send(Message::submission(address.into(), tag, options))
            .map_err(|_| EngineStopped)?;
        self.wake();
        Ok(())
    }

    /// [`submit`](Self::submit)s each of `submissions` (address and tag, bulk), ringing the
    /// engine once for them all rather than once each: a feeder that hands over addresses a
    /// chunk at a time saves a system call per address, and the engine an event. When the
    /// engine's way in is full the engine is rung first, then the call waits for room, as
    /// `submit` does.
    pub fn submit_many(
        &self,
        submissions: impl IntoIterator<Item = (String, u64)>,
    ) -> Result<(), EngineStopped> {
        // Whether submissions went in since the engine was last rung.
        let mut unrung = false;
        for (address, tag) in submissions {
            let message = Message::submission(address, tag, SubmitOptions::default());
            match self.sender.try_send(message) {
                Ok(()) => {}
                Err(TrySendError::Full(message)) => {
                    self.wake();
                    self.sender.send(message).map_err(|_| EngineStopped)?;
                }
                Err(TrySendError::Disconnected(_)) => return Err(EngineStopped),
            }
            unrung = true;
        }
        if unrung {
            self.wake();
        }
        Ok(())
    }

    /// Domain `domain`'s catch-all answer, learned elsewhere (another prober of a fleet, a
    /// store): taken like [`ConfigBuilder::known_catch_all`](crate::ConfigBuilder::known_catch_all)
    /// if the engine has not met the domain yet, so its accepted addresses need no control.
    /// Goes ahead of bulk submissions: send it before the domain's addresses.
    pub fn know_catch_all(&self, domain: &str, accepts_any: bool) -> Result<(), EngineStopped> {
        self.urgent
            .send(Message::KnowCatchAll(domain.to_owned(), accepts_any))
            .map_err(|_| EngineStopped)?;
        self.wake();
        Ok(())
    }

    /// How long domain `domain`'s greylisting held an address elsewhere (another prober of a
    /// fleet; [`VerifyResult::greylist_wait`](crate::VerifyResult::greylist_wait) there)
    /// before its server answered: the first retry after its "try again later" waits about
    /// that long instead of the configured retry delay ([`Scheduler::know_greylist_wait`]).
    /// Goes ahead of bulk submissions.
    ///
    /// [`Scheduler::know_greylist_wait`]: crate::engine::Scheduler::know_greylist_wait
    pub fn know_greylist_wait(&self, domain: &str, wait: Duration) -> Result<(), EngineStopped> {
        self.urgent
            .send(Message::KnowGreylistWait(domain.to_owned(), wait))
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

    /// The engine's counters, as of at most a quarter of a second ago.
    #[must_use]
    pub fn snapshot(&self) -> EngineSnapshot {
        *self.snapshot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wake(&self) {
        // A failed wake means the loop is gone; submit already reports that.
        let _ = self.waker.wake();
    }
}

/// The verdicts of a running [`Engine`], as they complete (not in submission order: the tag
/// says which is which). Read them blocking (`for result in results`, [`recv`](Self::recv)),
/// with a timeout ([`recv_timeout`](Self::recv_timeout)) or without waiting
/// ([`try_recv`](Self::try_recv)). The engine holds back verdicts nobody reads, and then
/// takes in no more addresses: read them as they come. Dropping `Results` discards the rest.
#[derive(Debug)]
pub struct Results {
    receiver: Receiver<VerifyResult>,
}

/// Why [`Results::recv_timeout`] or [`Results::try_recv`] came back without a verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoResult {
    /// None yet: the engine is still at work.
    NotYet,
    /// None ever again: the engine has ended and every verdict has been read.
    Ended,
}

impl Results {
    /// The next verdict, waiting for it; `None` once the engine has ended and every verdict
    /// has been read.
    pub fn recv(&self) -> Option<VerifyResult> {
        self.receiver.recv().ok()
    }

    /// The next verdict, waiting at most `timeout` for it.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<VerifyResult, NoResult> {
        self.receiver.recv_timeout(timeout).map_err(|e| match e {
            RecvTimeoutError::Timeout => NoResult::NotYet,
            RecvTimeoutError::Disconnected => NoResult::Ended,
        })
    }

    /// The next verdict if one is ready, without waiting.
    pub fn try_recv(&self) -> Result<VerifyResult, NoResult> {
        self.receiver.try_recv().map_err(|e| match e {
            TryRecvError::Empty => NoResult::NotYet,
            TryRecvError::Disconnected => NoResult::Ended,
        })
    }
}

impl Iterator for Results {
    type Item = VerifyResult;

    fn next(&mut self) -> Option<VerifyResult> {
        self.recv()
    }
}

impl Iterator for &Results {
    type Item = VerifyResult;

    fn next(&mut self) -> Option<VerifyResult> {
        self.recv()
    }
}

/// What a finished run did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
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
    #[cfg(feature = "sim")]
    pub cpu: Option<super::cpu::CpuTime>,
}

/// A running engine. See the module documentation.
#[derive(Debug)]
pub struct Engine {
    handle: Handle,
    thread: JoinHandle<io::Result<EngineReport>>,
    notices: Vec<String>,
}

/// Where the engine thread puts verdicts.
enum Consumer {
    /// A bounded channel to [`Results`].
    Channel(SyncSender<VerifyResult>),
    /// A callback, called on the engine thread.
    Callback(Box<dyn FnMut(VerifyResult) + Send>),
}

impl Engine {
    /// Starts the engine on a thread of its own, its verdicts coming back as [`Results`].
    ///
    /// Raises the open-file limit toward what the concurrency needs; if the system does not
    /// allow that much, runs at a lower concurrency and says so in
    /// [`notices`](Self::notices) rather than failing halfway with `EMFILE`. The errors are
    /// the system's: no event loop, no thread, no randomness.
    pub fn start(config: Config) -> io::Result<(Self, Results)> {
        let (sender, receiver) = mpsc::sync_channel(CHANNEL_CAPACITY);
        let engine = Self::spawn(config, Consumer::Channel(sender))?;
        Ok((engine, Results { receiver }))
    }

    /// Starts the engine with `on_result` called for each verdict as it completes, on the
    /// engine's own thread: keep it short (write a line, send it on), as the engine does
    /// nothing else meanwhile.
    pub fn start_with_callback(
        config: Config,
        on_result: impl FnMut(VerifyResult) + Send + 'static,
    ) -> io::Result<Self> {
        Self::spawn(config, Consumer::Callback(Box::new(on_result)))
    }

    fn spawn(mut config: Config, consumer: Consumer) -> io::Result<Self> {
        let mut notices = Vec::new();
        let wanted = config.concurrency() as u64 + DNS_SOCKETS + super::RESERVED_FDS;
        let limit = super::raise_open_files_limit(wanted)?;
        if limit < wanted {
            let fits = limit
                .saturating_sub(DNS_SOCKETS + super::RESERVED_FDS)
                .max(1);
            notices.push(format!(
                "the open-file limit is {limit}, too low for {} sessions at once; running {fits} \
                 (raise it with `ulimit -n {wanted}`)",
                config.concurrency()
            ));
            config = config.with_concurrency_lowered_to(usize::try_from(fits).unwrap_or(1));
        }
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let own_waker = Arc::clone(&waker);
        let (sender, inbox) = mpsc::sync_channel(CHANNEL_CAPACITY);
        let (urgent, urgent_inbox) = mpsc::sync_channel(URGENT_CAPACITY);
        let inboxes = Inboxes {
            bulk: inbox,
            urgent: urgent_inbox,
        };
        let seed = super::os_seed()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let snapshot = Arc::new(Mutex::new(EngineSnapshot::default()));
        let published = Arc::clone(&snapshot);
        let thread = std::thread::Builder::new()
            .name("mxprobe-engine".into())
            .spawn(move || {
                let shared = Shared {
                    inboxes: &inboxes,
                    stop: &stopped,
                    snapshot: &published,
                };
                let report = run(poll, config, seed, &shared, consumer);
                // The loop's own reference to its waker, dropped only now: were the last
                // handle's the only one, a handle dropped right after its wake-up (`finish`,
                // then `join`) would close the eventfd with the wake-up still pending, and
                // epoll forgets a closed descriptor's events: the loop would sleep for ever.
                drop(own_waker);
                report
            })?;
        Ok(Self {
            handle: Handle {
                sender,
                urgent,
                stop,
                waker,
                snapshot,
            },
            thread,
            notices,
        })
    }

    /// A handle to submit addresses with; clone it for other threads.
    #[must_use]
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Things the caller should tell the user (a lowered concurrency).
    #[must_use]
    pub fn notices(&self) -> &[String] {
        &self.notices
    }

    /// Waits for the engine to end (after [`Handle::finish`] or [`Handle::stop`]) and
    /// returns what it did. The engine ends only once its verdicts are taken: read the
    /// [`Results`] to the end (on another thread, or before joining), or drop them.
    pub fn join(self) -> io::Result<EngineReport> {
        drop(self.handle);
        self.thread
            .join()
            .map_err(|_| io::Error::other("the engine thread panicked"))?
    }
}

/// The verdicts' way out.
struct Outbox {
    consumer: Consumer,
    /// False once the consumer has gone: verdicts are then dropped, and the run still
    /// finishes honestly.
    listening: bool,
}

impl Outbox {
    /// Hands the scheduler's verdicts to the consumer. A channel takes them while it has
    /// room; those it has no room for stay in the scheduler and count in its pending: a slow
    /// consumer slows the producer, not memory.
    fn hand_out(&mut self, scheduler: &mut Scheduler) {
        while let Some(result) = scheduler.poll_result() {
            if !self.listening {
                continue;
            }
            match &mut self.consumer {
                Consumer::Callback(on_result) => on_result(result),
                Consumer::Channel(sender) => match sender.try_send(result) {
                    Ok(()) => {}
                    Err(TrySendError::Full(result)) => {
                        scheduler.unpoll_result(result);
                        return;
                    }
                    Err(TrySendError::Disconnected(_)) => self.listening = false,
                },
            }
        }
    }
}

/// The two ways in: bulk submissions (and the finish), and real-time ones.
struct Inboxes {
    bulk: Receiver<Message>,
    urgent: Receiver<Message>,
}

impl Inboxes {
    /// Takes every real-time submission waiting.
    fn take_urgent(&self, scheduler: &mut Scheduler, now: Instant) {
        while let Ok(message) = self.urgent.try_recv() {
            match message {
                Message::Submit(address, tag) => scheduler.submit(&address, tag, now),
                Message::SubmitWith(address, tag, options) => {
                    scheduler.submit_with(&address, tag, *options, now);
                }
                Message::KnowCatchAll(domain, accepts_any) => {
                    scheduler.know_catch_all(&domain, accepts_any);
                }
                Message::KnowGreylistWait(domain, wait) => {
                    scheduler.know_greylist_wait(&domain, wait);
                }
                Message::Finish => {}
            }
        }
    }
}

/// What the engine thread shares with its [`Handle`]s.
struct Shared<'a> {
    inboxes: &'a Inboxes,
    stop: &'a AtomicBool,
    snapshot: &'a Mutex<EngineSnapshot>,
}

/// The engine thread: the loop described in the module documentation.
fn run(
    mut poll: Poll,
    config: Config,
    seed: [u8; 32],
    shared: &Shared<'_>,
    consumer: Consumer,
) -> io::Result<EngineReport> {
    let Shared {
        inboxes,
        stop,
        snapshot,
    } = *shared;
    let mut published = Instant::now();
    let mut outbox = Outbox {
        consumer,
        listening: true,
    };
    let started = Instant::now();
    let concurrency = config.concurrency();
    let max_pending = config.intake();
    let mut scheduler = Scheduler::new(config, seed);
    let mut dns = DnsSockets::new(DNS_TOKENS..SMTP_TOKENS);
    let mut smtp = Lanes::new(
        poll.registry(),
        URGENT,
        SMTP_TOKENS..URGENT_SMTP_TOKENS,
        URGENT_SMTP_TOKENS..usize::MAX,
    )?;
    let mut events = Events::with_capacity(4096);
    let mut input_open = true;
    let mut stop_deadline: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if stop_deadline.is_none() && stop.load(Ordering::SeqCst) {
            input_open = false;
            scheduler.abandon_queued();
            stop_deadline = Some(now + STOP_GRACE);
        }
        // Real-time submissions first, whatever the room: someone waits for each. Then bulk
        // ones while there is room; a full scheduler leaves them in the bounded channel, and
        // the producer waits. Real-time ones are taken again after: any sent before a finish
        // are in their channel by the time the finish is read.
        let mut intake_full = false;
        if stop_deadline.is_none() {
            inboxes.take_urgent(&mut scheduler, now);
        }
        while input_open && stop_deadline.is_none() {
            if scheduler.pending() >= max_pending {
                intake_full = true;
                break;
            }
            match inboxes.bulk.try_recv() {
                Ok(Message::Submit(address, tag)) => scheduler.submit(&address, tag, now),
                Ok(Message::SubmitWith(address, tag, options)) => {
                    scheduler.submit_with(&address, tag, *options, now);
                }
                Ok(Message::KnowCatchAll(domain, accepts_any)) => {
                    scheduler.know_catch_all(&domain, accepts_any);
                }
                Ok(Message::KnowGreylistWait(domain, wait)) => {
                    scheduler.know_greylist_wait(&domain, wait);
                }
                Ok(Message::Finish) | Err(TryRecvError::Disconnected) => input_open = false,
                Err(TryRecvError::Empty) => break,
            }
        }
        if stop_deadline.is_none() {
            inboxes.take_urgent(&mut scheduler, now);
        }
        smtp.flush(poll.registry(), &mut scheduler, now);
        while let Some(transmit) = scheduler.poll_dns_transmit() {
            dns.transmit(poll.registry(), transmit, |input| {
                feed_dns(&mut scheduler, input, now);
            });
        }
        outbox.hand_out(&mut scheduler);
        // Fresh every SNAPSHOT_EVERY while busy, and whenever the work runs out, so that an
        // idle engine's snapshot is its final state.
        if now.saturating_duration_since(published) >= SNAPSHOT_EVERY || scheduler.is_idle() {
            published = now;
            // Never wait for a reader: a busy lock skips this refresh.
            if let Ok(mut slot) = snapshot.try_lock() {
                *slot = EngineSnapshot {
                    stats: scheduler.stats(),
                    resolver: scheduler.resolver_stats(),
                    census: scheduler.census(),
                };
            }
        }
        let done = !input_open && scheduler.is_idle();
        let grace_over = stop_deadline.is_some_and(|deadline| now >= deadline);
        if done || grace_over {
            break;
        }
        let mut timeout = scheduler
            .poll_timeout()
            .map(|at| at.saturating_duration_since(now));
        // Keep the snapshot fresh while work is in hand.
        if !scheduler.is_idle() {
            timeout = Some(timeout.map_or(SNAPSHOT_EVERY, |t| t.min(SNAPSHOT_EVERY)));
        }
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
            // Real-time work between every few events, and when its lane rings.
            if token == URGENT || n % URGENT_EVERY == URGENT_EVERY - 1 {
                if stop_deadline.is_none() {
                    inboxes.take_urgent(&mut scheduler, Instant::now());
                }
                smtp.serve_urgent(&mut scheduler)?;
                outbox.hand_out(&mut scheduler);
            }
            if token == WAKER || token == URGENT {
                continue;
            }
            if smtp.owns(token) {
                smtp.bulk_ready(event, &mut scheduler, now);
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
        abandoned: scheduler.dropped_by_stop() + scheduler.pending(),
        elapsed: started.elapsed(),
        concurrency,
        #[cfg(feature = "sim")]
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
