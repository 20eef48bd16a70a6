//! One served connection, sans-IO: [`Conversation`] takes the bytes a client sent at the instant
//! they arrived and gives back the reply bytes due by each instant, as the farm's latency model
//! says. The event loop (`event_loop.rs`) puts a socket on each side of it; the tests put a
//! hand-moved clock.
//!
//! # Calling contract
//!
//! - Inputs: [`Conversation::handle_input`] for each read (a read that completes several lines
//!   is a pipelined group), [`Conversation::handle_eof`] when the client stops sending, and
//!   [`Conversation::handle_timeout`] whenever time has passed: at the latest at
//!   [`Conversation::poll_timeout`] and at [`Conversation::idle_deadline`].
//! - Outputs: after any input, [`Conversation::unsent`] holds every reply byte due by then;
//!   the caller writes what it can and reports it with [`Conversation::mark_written`].
//!   [`Conversation::wants_input`] says whether to read on, [`Conversation::is_finished`]
//!   whether to close.
//! - `now` never goes backwards. No I/O and no clock; scratch buffers are the caller's, so a
//!   reply costs no allocation on the common paths.
//!
//! # STARTTLS
//!
//! The TLS layer ([`TlsLayer`]) sits between the socket side of this type and the dialogue.
//! Everything up to and including the `220` to STARTTLS leaves in plain text, when the latency
//! model says; every byte received after the read that brought the STARTTLS line is TLS, and
//! is decrypted before the dialogue sees it; every reply released after the `220` is encrypted
//! as it is released (held back by rustls until the handshake is done). Plain text that came
//! in the same read after the STARTTLS line is discarded, not answered, and counted
//! ([`Counters::starttls_injections`]): CVE-2011-0411. A client whose bytes are not TLS gets
//! rustls' alert and the connection closes.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;

use super::dialogue::{AnswerContext, Counters, Dialogue, InRead, ServerScript, count};
use super::outbox::Outbox;
use super::tls_layer::{Received, TlsLayer};
use super::{Behaviour, GARBAGE_LINGER, MAX_LINE, Tls};

/// What a [`Tls::BrokenHandshake`] server answers the client's first TLS bytes with.
const BROKEN_HANDSHAKE_REPLY: &[u8] = b"garbage\r\n";

/// Undelivered reply bytes past which the server stops reading from a connection until its
/// client reads some of them.
pub(crate) const UNSENT_LIMIT: usize = 256 * 1024;

/// What serving one input needs besides the conversation: the listener's script, the loop's
/// counters, jitter and scratch space, and the time.
pub(crate) struct ServeContext<'a> {
    pub(crate) script: &'a mut ServerScript,
    pub(crate) counters: &'a Counters,
    pub(crate) rng: &'a mut StdRng,
    pub(crate) now: Instant,
    /// Scratch space for one reply.
    pub(crate) reply: &'a mut Vec<u8>,
    /// Scratch space for a lowercased address.
    pub(crate) address: &'a mut String,
}

/// The server side of one connection: the dialogue, the partial line not yet answered and the
/// replies on their way out.
#[derive(Debug)]
pub(crate) struct Conversation {
    client: IpAddr,
    dialogue: Dialogue,
    /// Received bytes not yet answered: at most one partial line, below [`MAX_LINE`].
    input: Vec<u8>,
    outbox: Outbox,
    idle_limit: Duration,
    idle_deadline: Instant,
    /// When a [`Behaviour::Garbage`] server hangs up regardless.
    close_deadline: Option<Instant>,
    input_closed: bool,
    transport: Transport,
}

/// What carries the dialogue's bytes over the socket.
#[derive(Debug)]
enum Transport {
    /// Plain text, as every session begins: the outbox is the wire.
    Plain,
    /// STARTTLS was answered `220`: the first `plain_left` bytes still in the outbox (the
    /// `220` and anything queued before it) go in plain text, everything after through `layer`.
    Tls {
        layer: Box<TlsLayer>,
        plain_left: usize,
    },
    /// A [`Tls::BrokenHandshake`] server after its `220`: it answers the client's first bytes
    /// with [`BROKEN_HANDSHAKE_REPLY`], in plain text, and hangs up.
    BrokenTls,
}

impl Conversation {
    /// Greets a client that connected at `context.now`: the greeting is queued, due one reply
    /// delay later.
    pub(crate) fn open(
        client: IpAddr,
        idle_limit: Duration,
        context: &mut ServeContext<'_>,
    ) -> Self {
        let now = context.now;
        context.reply.clear();
        let dialogue = Dialogue::open(context.script, client, context.reply);
        let behaviour = context.script.personality.behaviour;
        let mut outbox = Outbox::new(now, behaviour == Behaviour::Drip);
        let greeting_due = now + context.script.reply_delay(context.rng);
        if !context.reply.is_empty() {
            outbox.push(context.reply, greeting_due, now);
            count(&context.counters.reply_rounds);
        }
        outbox.release_due(now);
        Self {
            client,
            dialogue,
            input: Vec::new(),
            outbox,
            idle_limit,
            idle_deadline: now + idle_limit,
            close_deadline: (behaviour == Behaviour::Garbage)
                .then(|| greeting_due + GARBAGE_LINGER),
            input_closed: false,
            transport: Transport::Plain,
        }
    }

    /// The bytes of one read: every line they complete is answered, the replies queued. After
    /// STARTTLS the bytes are TLS records, decrypted first.
    pub(crate) fn handle_input(&mut self, bytes: &[u8], context: &mut ServeContext<'_>) {
        self.idle_deadline = context.now + self.idle_limit;
        match &mut self.transport {
            Transport::Plain => {
                if self.dialogue.listens() {
                    self.input.extend_from_slice(bytes);
                    self.answer_complete_lines(context);
                }
            }
            Transport::Tls { layer, .. } => match layer.receive(bytes, &mut self.input) {
                Received::Failed => {
                    self.dialogue.hang_up();
                    self.input.clear();
                }
                Received::Ok {
                    handshake_completed,
                } => {
                    if handshake_completed {
                        count(&context.counters.tls_handshakes);
                        self.dialogue.tls_started();
                    }
                    if self.dialogue.listens() {
                        self.answer_complete_lines(context);
                    } else {
                        self.input.clear();
                    }
                }
            },
            Transport::BrokenTls => {
                if !self.dialogue.is_over() {
                    self.dialogue.hang_up();
                    let due = context.now + context.script.reply_delay(context.rng);
                    if self.outbox.push(BROKEN_HANDSHAKE_REPLY, due, context.now) {
                        count(&context.counters.reply_rounds);
                    }
                }
            }
        }
        self.outbox.release_due(context.now);
        self.seal_released();
    }

    /// The client will send nothing more.
    pub(crate) fn handle_eof(&mut self) {
        self.input_closed = true;
    }

    /// Time has passed: past the idle limit the server says 421 (if it speaks at all) and ends
    /// the session; replies due by now are released.
    pub(crate) fn handle_timeout(
        &mut self,
        now: Instant,
        script: &ServerScript,
        reply: &mut Vec<u8>,
    ) {
        if !self.dialogue.is_over() && now >= self.idle_deadline {
            reply.clear();
            self.dialogue.time_out(script, reply);
            self.outbox.push(reply, now, now);
        }
        self.outbox.release_due(now);
        self.seal_released();
    }

    /// Bytes for the socket, due and not yet written: plain text, or after STARTTLS (and its
    /// `220`) TLS records.
    pub(crate) fn unsent(&self) -> &[u8] {
        match &self.transport {
            Transport::Plain | Transport::BrokenTls => self.outbox.unsent(),
            Transport::Tls { plain_left, .. } if *plain_left > 0 => {
                let plain = self.outbox.unsent();
                &plain[..plain.len().min(*plain_left)]
            }
            Transport::Tls { layer, .. } => layer.unsent(),
        }
    }

    /// The first `count` bytes of [`Conversation::unsent`] have been written.
    pub(crate) fn mark_written(&mut self, count: usize) {
        match &mut self.transport {
            Transport::Plain | Transport::BrokenTls => self.outbox.mark_written(count),
            Transport::Tls { plain_left, .. } if *plain_left > 0 => {
                self.outbox.mark_written(count);
                *plain_left = plain_left.saturating_sub(count);
                self.seal_released();
            }
            Transport::Tls { layer, .. } => layer.mark_written(count),
        }
    }

    /// Whether the server reads on: the client may still send, the session is not over, and
    /// the client is reading its replies.
    pub(crate) fn wants_input(&self) -> bool {
        !self.input_closed && !self.dialogue.is_over() && self.backlog() < UNSENT_LIMIT
    }

    /// Whether the connection should close now: a [`Behaviour::Garbage`] server's linger is
    /// over, or every reply is written and nothing more will be said or heard.
    pub(crate) fn is_finished(&self, now: Instant) -> bool {
        self.close_deadline.is_some_and(|deadline| now >= deadline)
            || (self.backlog() == 0 && (self.dialogue.is_over() || self.input_closed))
    }

    /// Bytes decided and not yet written: replies, and TLS records.
    fn backlog(&self) -> usize {
        let sealed = match &self.transport {
            Transport::Tls { layer, .. } => layer.unsent().len(),
            Transport::Plain | Transport::BrokenTls => 0,
        };
        self.outbox.backlog() + sealed
    }

    /// Under TLS, once the plain-text `220` is out: encrypts every released reply, and says
    /// close_notify after the last.
    fn seal_released(&mut self) {
        let Transport::Tls { layer, plain_left } = &mut self.transport else {
            return;
        };
        if *plain_left > 0 {
            return;
        }
        let released = self.outbox.unsent();
        if !released.is_empty() {
            let length = released.len();
            layer.send(released);
            self.outbox.mark_written(length);
        }
        if self.dialogue.is_over() && self.outbox.is_empty() {
            layer.close();
        }
    }

    /// STARTTLS was just answered `220`: what follows the `220` on the wire is TLS (or, for a
    /// [`Tls::BrokenHandshake`] server, not quite).
    fn start_tls(&mut self, script: &ServerScript) {
        if !matches!(self.transport, Transport::Plain) {
            return;
        }
        self.transport = if script.personality.tls == Tls::BrokenHandshake {
            Transport::BrokenTls
        } else {
            match script.tls_config().map(TlsLayer::new) {
                Some(Ok(layer)) => Transport::Tls {
                    layer: Box::new(layer),
                    plain_left: self.outbox.backlog(),
                },
                // The dialogue says 220 only with a configuration, which rustls takes: the
                // farm's own. Failing that, the client gets no TLS and the 220 is the last word.
                Some(Err(_)) | None => {
                    self.dialogue.hang_up();
                    Transport::Plain
                }
            }
        };
    }

    /// When a reply or a dripped byte falls due, or a linger ends: the next instant
    /// [`Conversation::handle_timeout`] has something to do, the idle limit aside.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        match (self.outbox.next_deadline(), self.close_deadline) {
            (Some(reply), Some(close)) => Some(reply.min(close)),
            (reply, close) => reply.or(close),
        }
    }

    /// When the client's silence ends the session, unless it already has.
    pub(crate) fn idle_deadline(&self) -> Option<Instant> {
        (!self.dialogue.is_over()).then_some(self.idle_deadline)
    }

    /// Answers every complete line in `input` and keeps the partial one, if any. Called once
    /// per read: the lines it answers are the ones that read completed.
    fn answer_complete_lines(&mut self, context: &mut ServeContext<'_>) {
        let mut consumed = 0;
        let mut in_read = InRead::First;
        while self.dialogue.listens() {
            let Some(newline) = memchr::memchr(b'\n', &self.input[consumed..]) else {
                break;
            };
            let line = &self.input[consumed..=consumed + newline];
            consumed += newline + 1;
            let reply = &mut *context.reply;
            reply.clear();
            if line.len() > MAX_LINE {
                self.dialogue.line_too_long(reply);
            } else {
                let mut answer_context = AnswerContext {
                    script: context.script,
                    counters: context.counters,
                    client: self.client,
                    now: context.now,
                    address: context.address,
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
            if self.dialogue.is_starting_tls() {
                // Postfix purges what the client sent after STARTTLS before the handshake
                // (CVE-2011-0411): it is never answered.
                if consumed < self.input.len() {
                    count(&context.counters.starttls_injections);
                }
                self.start_tls(context.script);
            }
            self.input.clear();
            return;
        }
        self.input.drain(..consumed);
        if self.input.len() >= MAX_LINE {
            // No line ending within MAX_LINE bytes: whatever follows, the line is too long.
            let reply = &mut *context.reply;
            reply.clear();
            self.dialogue.line_too_long(reply);
            let due = context.now + context.script.reply_delay(context.rng);
            self.outbox.push(reply, due, context.now);
            self.input.clear();
        }
    }
}
