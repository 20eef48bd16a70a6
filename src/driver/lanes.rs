//! [`Lanes`]: the engine's SMTP connections in two lanes, so that a real-time session is not
//! served in turn with a thousand bulk ones.
//!
//! A loop turn handles every event `epoll` has ready, thousands when the engine is full, and a
//! reply that arrives meanwhile waits for the turn's end and then for every event ready before
//! it. Measured with `mxprobe bench --http` at a thousand bulk sessions on two shared cores,
//! that made a real-time verdict take a few hundred milliseconds (four round trips, each
//! waiting a turn) where an idle engine takes one or two. So a session that carries a
//! real-time address ([`ConnIo::Connect`]'s `urgent`) gets its socket registered with a `Poll`
//! of its own, whose descriptor sits in the main `Poll` under one token: the main loop wakes
//! for it like for any socket, and also looks at it every [`URGENT_EVERY`] events of a turn
//! ([`Lanes::serve_urgent`]). The urgent lane's sockets take their own range of tokens.
//!
//! Within a turn only the urgent lane's connection operations are carried out at once; the bulk
//! lane's wait, in order, for the turn's end ([`Lanes::flush`]). A bulk socket opened
//! mid-turn could take the token of one closed earlier in the turn whose event is still in the
//! turn's list, and read that stale event as its own.

use std::collections::VecDeque;
use std::io;
use std::ops::Range;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Registry, Token};

use super::SmtpSockets;
use crate::engine::{ConnIo, Scheduler};

/// Events of a turn handled between two looks at the urgent lane.
pub(super) const URGENT_EVERY: usize = 64;

/// Events taken from the urgent lane's `Poll` at a time: its sessions are few.
const URGENT_EVENTS: usize = 64;

/// The two lanes of SMTP connections.
#[derive(Debug)]
pub(super) struct Lanes {
    bulk: SmtpSockets,
    urgent: SmtpSockets,
    urgent_poll: Poll,
    urgent_events: Events,
    /// Operations on bulk connections that came up mid-turn: carried out at its end.
    deferred: VecDeque<ConnIo>,
}

impl Lanes {
    /// Empty lanes: bulk sockets take tokens from `bulk`, urgent ones from `urgent`; the
    /// urgent lane's `Poll` is registered with `registry` (the main one) under `token`.
    pub(super) fn new(
        registry: &Registry,
        token: Token,
        bulk: Range<usize>,
        urgent: Range<usize>,
    ) -> io::Result<Self> {
        let urgent_poll = Poll::new()?;
        registry.register(
            &mut SourceFd(&urgent_poll.as_raw_fd()),
            token,
            Interest::READABLE,
        )?;
        Ok(Self {
            bulk: SmtpSockets::new(bulk),
            urgent: SmtpSockets::new(urgent),
            urgent_poll,
            urgent_events: Events::with_capacity(URGENT_EVENTS),
            deferred: VecDeque::new(),
        })
    }

    /// True if `token` names a bulk socket: its event is for [`Lanes::bulk_ready`].
    pub(super) fn owns(&self, token: Token) -> bool {
        self.bulk.owns(token)
    }

    /// Handles a readiness event of a bulk socket.
    pub(super) fn bulk_ready(
        &mut self,
        event: &mio::event::Event,
        scheduler: &mut Scheduler,
        now: Instant,
    ) {
        self.bulk.ready(event, scheduler, now);
    }

    /// Carries out every connection operation waiting, the deferred ones first: at a turn's
    /// start, when no event of the turn before is left to misread.
    pub(super) fn flush(&mut self, registry: &Registry, scheduler: &mut Scheduler, now: Instant) {
        while let Some(io) = self.deferred.pop_front() {
            self.carry_out(registry, io, scheduler, now);
        }
        while let Some(io) = scheduler.poll_conn_io() {
            self.carry_out(registry, io, scheduler, now);
        }
    }

    /// Handles what the urgent lane has ready, then carries out the urgent lane's connection
    /// operations and defers the rest. For the middle of a turn.
    pub(super) fn serve_urgent(&mut self, scheduler: &mut Scheduler) -> io::Result<()> {
        if !self.urgent.is_empty() {
            loop {
                match self
                    .urgent_poll
                    .poll(&mut self.urgent_events, Some(Duration::ZERO))
                {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
                let now = Instant::now();
                let mut taken = 0;
                for event in &self.urgent_events {
                    taken += 1;
                    self.urgent.ready(event, scheduler, now);
                }
                if taken < URGENT_EVENTS {
                    break;
                }
            }
        }
        let now = Instant::now();
        while let Some(io) = scheduler.poll_conn_io() {
            if self.is_urgent(&io) {
                self.urgent
                    .carry_out(self.urgent_poll.registry(), io, scheduler, now);
            } else {
                self.deferred.push_back(io);
            }
        }
        Ok(())
    }

    /// Whether `io` is the urgent lane's: a connection opened for a real-time session, or the
    /// closing of one.
    fn is_urgent(&self, io: &ConnIo) -> bool {
        match io {
            ConnIo::Connect { urgent, .. } => *urgent,
            ConnIo::Close { conn, .. } => self.urgent.holds(*conn),
        }
    }

    /// Carries out `io` in its lane.
    fn carry_out(
        &mut self,
        registry: &Registry,
        io: ConnIo,
        scheduler: &mut Scheduler,
        now: Instant,
    ) {
        if self.is_urgent(&io) {
            self.urgent
                .carry_out(self.urgent_poll.registry(), io, scheduler, now);
        } else {
            self.bulk.carry_out(registry, io, scheduler, now);
        }
    }
}
