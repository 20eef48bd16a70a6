//! The latency model of one connection, sans-IO: [`Outbox`].
//!
//! A reply to a command received at `t` is sent at `max(t + delay, when the previous reply was
//! sent)`; a [`Behaviour::Drip`](super::Behaviour::Drip) server lets the released bytes out one
//! per [`DRIP_INTERVAL`]. No reply overtakes another.

use std::collections::VecDeque;
use std::time::Instant;

use super::DRIP_INTERVAL;

/// The replies of one connection on their way out: held until due, dripped if the personality
/// drips, then written. No I/O and no clock: the connection passes the time and writes
/// [`Outbox::unsent`] itself.
#[derive(Debug)]
pub(crate) struct Outbox {
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
    pub(crate) fn new(now: Instant, drip: bool) -> Self {
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
    pub(crate) fn push(&mut self, reply: &[u8], due: Instant, now: Instant) -> bool {
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
    pub(crate) fn release_due(&mut self, now: Instant) {
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
    pub(crate) fn unsent(&self) -> &[u8] {
        &self.output[self.written..]
    }

    pub(crate) fn mark_written(&mut self, count: usize) {
        self.written += count;
        if self.written == self.output.len() {
            self.output.clear();
            self.written = 0;
        }
    }

    /// Reply bytes decided and not yet written.
    pub(crate) fn backlog(&self) -> usize {
        let dripping = self
            .trickle
            .as_ref()
            .map_or(0, |trickle| trickle.bytes.len());
        self.scheduled.len() + dripping + self.unsent().len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.backlog() == 0
    }

    /// When [`Outbox::release_due`] next has something to do, if ever.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[allow(
        clippy::disallowed_methods,
        reason = "an origin for a hand-moved clock"
    )]
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
}
