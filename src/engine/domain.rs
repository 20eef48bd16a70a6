//! A domain's state between its first address and the end of the run, or until it is
//! forgotten, idle ([`Domain::is_forgettable`]): its route, its mail servers in failover order,
//! its queue, its catch-all answer, and the caps that keep the engine polite to it and to the
//! servers it shares with other domains.
//!
//! Guarantees the types keep:
//! - A domain's targets exist only once its route is [`RouteState::Ready`]; a
//!   [`RouteState::Failed`] domain carries the verdict every address there gets.
//! - The catch-all control moves `Untested → Testing → Known | Inconclusive | Untested` (asked
//!   again); [`CatchAll::Known`] and [`CatchAll::Inconclusive`] are final. A stop moves a
//!   control not yet answered to [`CatchAll::Unasked`], also final: an accepted address there
//!   gets no verdict in this run, for without the control "accepted" may mean "accepts
//!   anything".
//! - [`MxSlots`] counts sessions per mail-server address across every domain that shares it,
//!   and remembers who waited for a slot, so that a session ending wakes them.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::job::{Decided, JobId};
use super::policy::{ControlAnswer, ServerNote};
use crate::address::Address;
use crate::providers::Provider;

/// Names a domain: its index in the scheduler's table. A domain idle long enough may be
/// forgotten and its index given to another ([`Domain::is_forgettable`]); nothing refers to it
/// by then.
pub(super) type DomainId = usize;

/// How long a server that refused a connection, or closed it, is left alone.
pub const TARGET_COOLDOWN: Duration = Duration::from_secs(60);

/// What is known of whether the domain accepts any local part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CatchAll {
    /// The control has not been sent (or must be sent again).
    Untested,
    /// The control is in a session.
    Testing,
    /// The answer: `true` if a random local part was accepted.
    Known(bool),
    /// The control could not be asked within its budget: the answer stays unknown.
    Inconclusive,
    /// The run stopped before the control was answered: the addresses accepted here are left
    /// for the next run, which asks the control.
    Unasked,
}

/// Where the domain's mail route stands.
#[derive(Debug)]
pub(super) enum RouteState {
    Resolving,
    Ready,
    /// Every address at the domain gets this verdict.
    Failed(Decided),
}

/// One address of one MX host, in failover order.
#[derive(Debug)]
pub(super) struct Target {
    pub(super) host: String,
    pub(super) ip: IpAddr,
    cooldown_until: Option<Instant>,
    /// A pipelined session here could not vouch for its replies: no more pipelining here.
    pub(super) lock_step: bool,
    /// The provider whose profile applies here, if the host is a known provider's and the
    /// profiles are on.
    pub(super) provider: Option<&'static Provider>,
}

impl Target {
    /// A server not yet tried.
    pub(super) fn new(host: String, ip: IpAddr, provider: Option<&'static Provider>) -> Self {
        Self {
            host,
            ip,
            cooldown_until: None,
            lock_step: false,
            provider,
        }
    }
}

/// One domain and every address submitted there.
#[derive(Debug)]
pub(super) struct Domain {
    pub(super) name: String,
    pub(super) route: RouteState,
    pub(super) targets: Vec<Target>,
    pub(super) queue: VecDeque<JobId>,
    catch_all: CatchAll,
    /// The shortest wait its greylisting has been seen to need (an address held, then
    /// answered): the first retry after a "try again later" here waits about that long.
    pub(super) greylist_wait: Option<Duration>,
    /// Controls sent that did not decide.
    control_attempts: u32,
    /// Accepted addresses waiting for the catch-all answer.
    pub(super) held: Vec<(JobId, Decided)>,
    /// Its place in the source-address rotation: its connections come from the pool's address
    /// of their server's family at this place (the same one every time, for greylisters).
    pub(super) source_slot: usize,
    /// Proxies its sessions failed through: each failure moves it to the next proxy of the
    /// pool (its place in the rotation is `source_slot` plus this).
    pub(super) proxy_offset: usize,
    /// Source addresses that were refused by name here: each moves the domain to the next
    /// address of the pool (its place is `source_slot` plus this).
    pub(super) source_offset: usize,
    /// The domain rate cap: no new connection before this.
    next_connect_at: Option<Instant>,
    /// The deadline in the timer heap this domain waits for, if any.
    pub(super) wake_at: Option<Instant>,
    /// In the scheduler's ready queue.
    pub(super) in_ready: bool,
    /// In the scheduler's line of domains with real-time work.
    pub(super) in_urgent: bool,
    /// Most addresses per session here: lowered when the server says "too many recipients".
    pub(super) batch_limit: usize,
    /// Sessions in flight here.
    pub(super) sessions: usize,
    /// A server of the domain closed a session for want of TLS (`421 ... TLS required`): its
    /// sessions say STARTTLS first from now on.
    pub(super) tls_first: bool,
    /// Facts of the domain name, worked out once for all its addresses.
    pub(super) disposable: bool,
    pub(super) free: bool,
    pub(super) suggestion: Option<&'static str>,
}

impl Domain {
    /// The domain of `address`, its route not yet known.
    pub(super) fn new(address: &Address, source_slot: usize, batch_limit: usize) -> Self {
        let flags = address.flags();
        Self {
            name: address.domain().to_owned(),
            route: RouteState::Resolving,
            source_slot,
            batch_limit,
            disposable: flags.disposable,
            free: flags.free,
            suggestion: address.domain_suggestion(),
            ..Self::forgotten()
        }
    }

    /// What a forgotten domain's place in the table holds until a new domain takes it:
    /// nothing on the heap, nothing learned (a new domain starts from it).
    pub(super) fn forgotten() -> Self {
        Self {
            name: String::new(),
            route: RouteState::Ready,
            targets: Vec::new(),
            queue: VecDeque::new(),
            catch_all: CatchAll::Untested,
            greylist_wait: None,
            control_attempts: 0,
            held: Vec::new(),
            source_slot: 0,
            proxy_offset: 0,
            source_offset: 0,
            next_connect_at: None,
            wake_at: None,
            in_ready: false,
            in_urgent: false,
            batch_limit: 1,
            sessions: 0,
            tls_first: false,
            disposable: false,
            free: false,
            suggestion: None,
        }
    }

    /// The route is known: these servers, in failover order.
    pub(super) fn route_ready(&mut self, targets: Vec<Target>) {
        self.targets = targets;
        self.route = RouteState::Ready;
    }

    /// Something a session could start for: queued addresses, or held ones whose control must
    /// be sent.
    pub(super) fn has_work(&self) -> bool {
        !self.queue.is_empty() || (self.catch_all == CatchAll::Untested && !self.held.is_empty())
    }

    /// True if nothing of the domain is under way or pending at `now`: no route being looked
    /// up, no address queued, held or in a session, no control in flight, and no politeness
    /// still counting (its connection rate, its servers' cooldowns, a wake-up). Forgetting it
    /// then loses only what is learned again: its route (from the DNS cache), and small
    /// per-server facts; its catch-all answer and greylisting wait are kept by name.
    pub(super) fn is_forgettable(&self, now: Instant) -> bool {
        !matches!(self.route, RouteState::Resolving)
            && self.queue.is_empty()
            && self.held.is_empty()
            && self.sessions == 0
            && self.catch_all != CatchAll::Testing
            && !self.in_ready
            && !self.in_urgent
            && self.wake_at.is_none_or(|at| at <= now)
            && self.next_connect_at.is_none_or(|at| at <= now)
            && self
                .targets
                .iter()
                .all(|t| t.cooldown_until.is_none_or(|until| until <= now))
    }

    /// The catch-all answer, once known.
    pub(super) fn catch_all_known(&self) -> Option<bool> {
        match self.catch_all {
            CatchAll::Known(known) => Some(known),
            _ => None,
        }
    }

    /// Greylisting here held an address for `wait` before the server answered: the shortest
    /// such wait is kept, the tightest bound on the server's period seen.
    pub(super) fn learn_greylist_wait(&mut self, wait: Duration) {
        self.greylist_wait = Some(self.greylist_wait.map_or(wait, |known| known.min(wait)));
    }

    /// The catch-all answer is known from before the run: no control is sent.
    pub(super) fn know_catch_all(&mut self, accepts_any: bool) {
        self.catch_all = CatchAll::Known(accepts_any);
    }

    /// True while an accepted address must wait for the catch-all answer (or, once a stop
    /// left it unasked, cannot have a verdict).
    pub(super) fn awaits_catch_all(&self) -> bool {
        matches!(
            self.catch_all,
            CatchAll::Untested | CatchAll::Testing | CatchAll::Unasked
        )
    }

    /// True once a stop left the catch-all control unanswered: an accepted address here
    /// gets no verdict in this run.
    pub(super) fn catch_all_unasked(&self) -> bool {
        self.catch_all == CatchAll::Unasked
    }

    /// Keeps an accepted address until the catch-all answer; true if the control still has to
    /// be sent (the domain must be scheduled for it).
    pub(super) fn hold(&mut self, job: JobId, decided: Decided) -> bool {
        self.held.push((job, decided));
        self.catch_all == CatchAll::Untested
    }

    /// True if the catch-all control is due: not yet sent, or to be sent again.
    pub(super) fn control_due(&self) -> bool {
        self.catch_all == CatchAll::Untested
    }

    /// Puts the control in the next session if it is due; true if it was.
    pub(super) fn take_control(&mut self) -> bool {
        if self.catch_all == CatchAll::Untested {
            self.catch_all = CatchAll::Testing;
            true
        } else {
            false
        }
    }

    /// The session that was to carry the control never started: it is due again.
    pub(super) fn control_unsent(&mut self) {
        self.catch_all = CatchAll::Untested;
    }

    /// The run is stopping: the queue is dropped, and unless a control is in flight (or its
    /// answer is in) the control stays unasked and the addresses held for it are let go:
    /// returned, for the scheduler to drop their jobs (an acceptance without the control's
    /// answer is no verdict).
    pub(super) fn abandon(&mut self) -> Vec<JobId> {
        self.queue.clear();
        self.in_ready = false;
        self.in_urgent = false;
        if self.catch_all == CatchAll::Untested {
            self.catch_all = CatchAll::Unasked;
            self.held.drain(..).map(|(job, _)| job).collect()
        } else {
            Vec::new()
        }
    }

    /// The control's answer came (or did not): the catch-all state it leaves.
    pub(super) fn settle_control(&mut self, answer: ControlAnswer) {
        self.catch_all = match answer {
            ControlAnswer::Known(known) => CatchAll::Known(known),
            ControlAnswer::AskAgain => {
                self.control_attempts += 1;
                CatchAll::Untested
            }
            ControlAnswer::Inconclusive => CatchAll::Inconclusive,
            ControlAnswer::Unasked => CatchAll::Unasked,
        };
    }

    /// Controls sent that did not decide, so far.
    pub(super) fn control_attempts(&self) -> u32 {
        self.control_attempts
    }

    /// Applies what an outcome taught about the server at `target`.
    pub(super) fn learn(&mut self, target: usize, note: ServerNote, now: Instant) {
        match note {
            ServerNote::CoolDown => self.cool_down(target, now),
            ServerNote::LockStep => self.lock_step(target),
            ServerNote::AtMost(recipients) => self.limit_batch(recipients),
        }
    }

    /// The server at `target` refused a connection or closed it: it is left alone for
    /// [`TARGET_COOLDOWN`].
    fn cool_down(&mut self, target: usize, now: Instant) {
        if let Some(t) = self.targets.get_mut(target) {
            t.cooldown_until = Some(now + TARGET_COOLDOWN);
        }
    }

    /// A pipelined session at `target` could not vouch for its replies: sessions there are
    /// lock-step from now on.
    fn lock_step(&mut self, target: usize) {
        if let Some(t) = self.targets.get_mut(target) {
            t.lock_step = true;
        }
    }

    /// The servers take at most `recipients` a session.
    fn limit_batch(&mut self, recipients: usize) {
        self.batch_limit = self.batch_limit.min(recipients);
    }

    /// The first target not cooling down (a lower-preference MX only after the ones before),
    /// or, if all are, when the first cooldown ends (`None` without targets).
    pub(super) fn available_target(&self, now: Instant) -> Result<usize, Option<Instant>> {
        self.targets
            .iter()
            .position(|t| t.cooldown_until.is_none_or(|until| until <= now))
            .ok_or_else(|| self.targets.iter().filter_map(|t| t.cooldown_until).min())
    }

    /// When the domain rate cap allows the next connection, if not yet at `now`.
    pub(super) fn rate_wait(&self, now: Instant) -> Option<Instant> {
        self.next_connect_at.filter(|at| *at > now)
    }

    /// A session starts here at `now`: counts it, and spaces the next connection by the
    /// domain rate (connections a second; none, or not positive, for no cap).
    pub(super) fn session_started(&mut self, now: Instant, rate: Option<f64>) {
        self.sessions += 1;
        if let Some(rate) = rate.filter(|r| *r > 0.0) {
            self.next_connect_at = Some(now + Duration::from_secs_f64(1.0 / rate));
        }
    }

    /// Asks to be woken at `at`; true if that is sooner than the wake already set (the caller
    /// arms a timer for it).
    pub(super) fn wake(&mut self, at: Instant) -> bool {
        if self.wake_at.is_none_or(|w| at < w) {
            self.wake_at = Some(at);
            true
        } else {
            false
        }
    }
}

/// Whose sessions a cap counts: a source address (`None`: the system's choice) at a server
/// address. Servers count their clients by address, so each source of a pool has its own
/// allowance at each server.
pub(super) type SlotKey = (Option<IpAddr>, IpAddr);

/// The per-MX-address cap: sessions in flight per server address and source address, whichever
/// domains they are for (many domains share one mail server, and politeness is owed to the
/// server).
#[derive(Debug, Default)]
pub(super) struct MxSlots {
    in_use: HashMap<SlotKey, usize>,
    /// Domains that found the server full, to be scheduled when a slot frees.
    waiters: HashMap<SlotKey, Vec<DomainId>>,
}

impl MxSlots {
    /// Every domain waiting for a slot.
    pub(super) fn waiting_domains(&self) -> impl Iterator<Item = DomainId> + '_ {
        self.waiters.values().flatten().copied()
    }

    /// True if `key` has `cap` sessions (or more) in flight.
    pub(super) fn is_full(&self, key: SlotKey, cap: usize) -> bool {
        self.in_use.get(&key).copied().unwrap_or(0) >= cap
    }

    /// `domain` waits for a slot at `key`.
    pub(super) fn wait(&mut self, key: SlotKey, domain: DomainId) {
        self.waiters.entry(key).or_default().push(domain);
    }

    /// A session starts at `key`.
    pub(super) fn take(&mut self, key: SlotKey) {
        *self.in_use.entry(key).or_insert(0) += 1;
    }

    /// A session at `key` ended or never started: the domains that waited for a slot there.
    pub(super) fn release(&mut self, key: SlotKey) -> Option<Vec<DomainId>> {
        if let Some(count) = self.in_use.get_mut(&key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.in_use.remove(&key);
            }
        }
        self.waiters.remove(&key)
    }
}
