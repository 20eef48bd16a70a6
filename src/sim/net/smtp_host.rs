//! The server end of one in-memory SMTP connection: the loopback farm's sans-IO
//! [`Dialogue`] and [`Outbox`] behind a virtual socket, with every reply stamped with an id and
//! at most one [`Corruption`] applied to a group of replies.
//!
//! A client write arrives as one read, so a pipelined group reaches the dialogue as one read
//! (what [`Behaviour::LosesPipelinedReplies`] reacts to), as it does over loopback.
//!
//! The world speaks no TLS: its scripts have no certificate, so a personality whose
//! [`Tls`](crate::sim::smtp::Tls) offers STARTTLS advertises it and answers it `454 4.7.0 TLS
//! not available due to local problem` (as Postfix does when its TLS context failed to load),
//! and one that requires TLS refuses its transactions with `530`. The dialogue never waits for
//! a handshake here.

use std::net::IpAddr;
use std::time::Instant;

use rand::RngExt;
use rand::rngs::StdRng;

use super::faults::Corruption;
use super::log::{Fate, ReplyLog, ReplyRecord, STAMP_PREFIX};
use crate::sim::smtp::{
    AnswerContext, Behaviour, Counters, DEFAULT_IDLE_LIMIT, Dialogue, GARBAGE_LINGER, InRead,
    MAX_LINE, Outbox, ServerScript,
};

/// What the command a reply answered was, as far as corrupting faults care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answers {
    Mail,
    Rcpt,
    Other,
}

/// One reply on its way to the outbox.
#[derive(Debug, Clone)]
struct Stamped {
    bytes: Vec<u8>,
    /// `None` for bytes that are not an SMTP reply (a [`Behaviour::Garbage`] greeting).
    id: Option<u64>,
    code: u16,
    answers: Answers,
    /// Which `answer` call of its read wrote it: the replies of one call go out in one write.
    call: usize,
}

/// What a server needs from the world to answer.
pub(crate) struct HostContext<'a> {
    pub(crate) script: &'a mut ServerScript,
    pub(crate) counters: &'a Counters,
    pub(crate) replies: &'a mut ReplyLog,
    pub(crate) rng: &'a mut StdRng,
    pub(crate) conn: u64,
    pub(crate) client: IpAddr,
    pub(crate) now: Instant,
    /// Set when a corruption was applied: what it was, for the trace.
    pub(crate) note: &'a mut Option<String>,
}

/// The server end of one connection.
#[derive(Debug)]
pub(crate) struct ServerEnd {
    dialogue: Dialogue,
    /// Received bytes not yet answered: at most one partial line.
    input: Vec<u8>,
    outbox: Outbox,
    idle_deadline: Instant,
    /// When a [`Behaviour::Garbage`] server hangs up regardless.
    close_deadline: Option<Instant>,
    /// The corruption still to apply, if any.
    corruption: Option<Corruption>,
    /// Bytes of the greeting, stamp included, if the server greeted in SMTP.
    greeting_len: Option<usize>,
    /// The server sent a 421: it announced it is closing the channel.
    said_421: bool,
}

impl ServerEnd {
    /// Accepts a connection: the greeting goes into the outbox (not yet out).
    pub(crate) fn accept(context: &mut HostContext<'_>, corruption: Option<Corruption>) -> Self {
        let now = context.now;
        let mut reply = Vec::new();
        let dialogue = Dialogue::open(context.script, context.client, &mut reply);
        let behaviour = context.script.personality.behaviour;
        let mut outbox = Outbox::new(now, behaviour == Behaviour::Drip);
        let greeting_due = now + context.script.reply_delay(context.rng);
        let stamped = stamp(&reply, "(greeting)", 0, context);
        let greeting_len = stamped
            .first()
            .filter(|first| first.id.is_some())
            .map(|first| first.bytes.len());
        let said_421 = stamped.iter().any(|r| r.code == 421);
        let greeting: Vec<u8> = stamped
            .iter()
            .flat_map(|r| r.bytes.iter().copied())
            .collect();
        if !greeting.is_empty() {
            outbox.push(&greeting, greeting_due, now);
        }
        Self {
            dialogue,
            input: Vec::new(),
            outbox,
            idle_deadline: now + DEFAULT_IDLE_LIMIT,
            close_deadline: (behaviour == Behaviour::Garbage)
                .then(|| greeting_due + GARBAGE_LINGER),
            corruption,
            greeting_len,
            said_421,
        }
    }

    /// How long the greeting is on the wire, if the server greeted in SMTP.
    pub(crate) fn greeting_len(&self) -> Option<usize> {
        self.greeting_len
    }

    /// True once the server has sent (or decided) a 421.
    pub(crate) fn said_421(&self) -> bool {
        self.said_421
    }

    /// One read's worth of bytes from the client: every line it completes is answered, and
    /// the replies queued.
    pub(crate) fn receive(&mut self, bytes: &[u8], context: &mut HostContext<'_>) {
        self.idle_deadline = context.now + DEFAULT_IDLE_LIMIT;
        if !self.dialogue.listens() {
            return;
        }
        self.input.extend_from_slice(bytes);
        let mut group: Vec<Stamped> = Vec::new();
        let mut consumed = 0;
        let mut in_read = InRead::First;
        let mut calls = 0;
        let mut reply = Vec::new();
        while self.dialogue.listens() {
            let Some(newline) = memchr::memchr(b'\n', &self.input[consumed..]) else {
                break;
            };
            let line = &self.input[consumed..=consumed + newline];
            consumed += newline + 1;
            reply.clear();
            if line.len() > MAX_LINE {
                self.dialogue.line_too_long(&mut reply);
            } else {
                let mut answer = AnswerContext {
                    script: context.script,
                    counters: context.counters,
                    client: context.client,
                    now: context.now,
                    address: &mut String::new(),
                };
                self.dialogue.answer(line, in_read, &mut answer, &mut reply);
            }
            in_read = InRead::Later;
            let command = String::from_utf8_lossy(line.trim_ascii_end()).into_owned();
            group.extend(stamp(&reply, &command, calls, context));
            calls += 1;
        }
        if self.dialogue.listens() {
            self.input.drain(..consumed);
            if self.input.len() >= MAX_LINE {
                reply.clear();
                self.dialogue.line_too_long(&mut reply);
                group.extend(stamp(&reply, "(line too long)", calls, context));
                self.input.clear();
            }
        } else {
            self.input.clear();
        }
        self.said_421 |= group.iter().any(|r| r.code == 421);
        self.corrupt(&mut group, context);
        // As over loopback: what one call wrote goes out in one write, after its own delay.
        let mut start = 0;
        while start < group.len() {
            let call = group[start].call;
            let end = start + group[start..].iter().take_while(|r| r.call == call).count();
            let bytes: Vec<u8> = group[start..end]
                .iter()
                .flat_map(|r| r.bytes.iter().copied())
                .collect();
            let due = context.now + context.script.reply_delay(context.rng);
            self.outbox.push(&bytes, due, context.now);
            start = end;
        }
    }

    /// Applies the connection's corruption to `group`, if it has one left and the group
    /// offers a place for it (the group answers a RCPT, and for a swap two neighbours differ).
    fn corrupt(&mut self, group: &mut Vec<Stamped>, context: &mut HostContext<'_>) {
        let Some(corruption) = self.corruption else {
            return;
        };
        let rcpts: Vec<usize> = (0..group.len())
            .filter(|&i| group[i].answers == Answers::Rcpt)
            .collect();
        if rcpts.is_empty() {
            return;
        }
        let pick = rcpts[context.rng.random_range(0..rcpts.len())];
        let id_of = |reply: &Stamped| reply.id.unwrap_or(0);
        let note = match corruption {
            Corruption::Drop => {
                let dropped = group.remove(pick);
                context.replies.set_fate(id_of(&dropped), Fate::Dropped);
                format!("dropped reply {}", id_of(&dropped))
            }
            Corruption::Duplicate => {
                let copy = group[pick].clone();
                context.replies.set_fate(id_of(&copy), Fate::Duplicated);
                let note = format!("duplicated reply {}", id_of(&copy));
                group.insert(pick + 1, copy);
                note
            }
            Corruption::Inject => {
                let id = context.replies.add(ReplyRecord {
                    conn: context.conn,
                    command: "(injected)".into(),
                    code: 250,
                    fate: Fate::Injected,
                });
                let bytes = format!("250 2.1.5 Ok{STAMP_PREFIX}{id})\r\n").into_bytes();
                let at = context.rng.random_range(0..=group.len());
                let call = group.get(at).or(group.last()).map_or(0, |r| r.call);
                group.insert(
                    at,
                    Stamped {
                        bytes,
                        id: Some(id),
                        code: 250,
                        answers: Answers::Other,
                        call,
                    },
                );
                format!("injected reply {id}")
            }
            Corruption::Swap => {
                let swappable: Vec<usize> = (0..group.len().saturating_sub(1))
                    .filter(|&i| swappable(&group[i], &group[i + 1]))
                    .collect();
                if swappable.is_empty() {
                    return;
                }
                let i = swappable[context.rng.random_range(0..swappable.len())];
                group.swap(i, i + 1);
                format!(
                    "swapped replies {} and {}",
                    id_of(&group[i + 1]),
                    id_of(&group[i])
                )
            }
        };
        self.corruption = None;
        *context.note = Some(note);
    }

    /// Moves what is due towards the client: the bytes to send now. Call at
    /// [`next_deadline`](Self::next_deadline) and after every receive.
    pub(crate) fn release(&mut self, script: &ServerScript, now: Instant) -> Vec<u8> {
        if !self.dialogue.is_over() && now >= self.idle_deadline {
            let mut reply = Vec::new();
            self.dialogue.time_out(script, &mut reply);
            if !reply.is_empty() {
                self.said_421 = true;
                self.outbox.push(&reply, now, now);
            }
        }
        self.outbox.release_due(now);
        let bytes = self.outbox.unsent().to_vec();
        self.outbox.mark_written(bytes.len());
        bytes
    }

    /// True once the server is done: everything decided is out and the dialogue is over, or
    /// a [`Behaviour::Garbage`] server's linger has passed.
    pub(crate) fn wants_close(&self, now: Instant) -> bool {
        self.close_deadline.is_some_and(|deadline| now >= deadline)
            || (self.outbox.is_empty() && self.dialogue.is_over())
    }

    /// When [`release`](Self::release) or [`wants_close`](Self::wants_close) next has
    /// something to do.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let idle = (!self.dialogue.is_over()).then_some(self.idle_deadline);
        [self.outbox.next_deadline(), self.close_deadline, idle]
            .into_iter()
            .flatten()
            .min()
    }
}

/// Whether swapping `a` and `b` makes a different stream a client could tell apart: their
/// bytes differ beyond the stamp, and they are not a MAIL and a RCPT acceptance (see the
/// module documentation of `faults`).
fn swappable(a: &Stamped, b: &Stamped) -> bool {
    if a.id.is_none() || b.id.is_none() {
        return false;
    }
    let both_positive = a.code / 100 == 2 && b.code / 100 == 2;
    let mail_and_rcpt = matches!(
        (a.answers, b.answers),
        (Answers::Mail, Answers::Rcpt) | (Answers::Rcpt, Answers::Mail)
    );
    if both_positive && mail_and_rcpt {
        return false;
    }
    unstamped(&a.bytes) != unstamped(&b.bytes)
}

/// A reply's bytes without its stamp.
fn unstamped(bytes: &[u8]) -> &[u8] {
    let text = bytes.trim_ascii_end();
    match memchr::memmem::rfind(text, STAMP_PREFIX.as_bytes()) {
        Some(at) => &text[..at],
        None => text,
    }
}

/// Cuts what one `answer` call wrote into replies, stamps each on its last line and records
/// it: the first as the answer to `command`, any further one as unsolicited. Bytes that are
/// not an SMTP reply go out as they are, without an id.
fn stamp(
    written: &[u8],
    command: &str,
    call: usize,
    context: &mut HostContext<'_>,
) -> Vec<Stamped> {
    let mut replies = Vec::new();
    let mut start = 0;
    let mut rest = written;
    let mut offset = 0;
    while !rest.is_empty() {
        let end = memchr::memchr(b'\n', rest).map_or(rest.len(), |lf| lf + 1);
        let line = &rest[..end];
        let is_smtp = line.len() >= 3 && line[..3].iter().all(u8::is_ascii_digit);
        if !is_smtp {
            replies.push(Stamped {
                bytes: written[start..].to_vec(),
                id: None,
                code: 0,
                answers: Answers::Other,
                call,
            });
            return replies;
        }
        offset += end;
        rest = &rest[end..];
        if line.get(3) == Some(&b'-') {
            continue;
        }
        let code = line[..3]
            .iter()
            .fold(0_u16, |code, digit| code * 10 + u16::from(digit - b'0'));
        let what = if replies.is_empty() {
            command.to_owned()
        } else {
            "(unsolicited)".to_owned()
        };
        let answers = if !replies.is_empty() {
            Answers::Other
        } else if starts_with_ignore_case(command, "MAIL") {
            Answers::Mail
        } else if starts_with_ignore_case(command, "RCPT") {
            Answers::Rcpt
        } else {
            Answers::Other
        };
        let id = context.replies.add(ReplyRecord {
            conn: context.conn,
            command: what,
            code,
            fate: Fate::Sent,
        });
        let reply = &written[start..offset];
        let body = reply.trim_ascii_end();
        let mut bytes = Vec::with_capacity(reply.len() + 16);
        bytes.extend_from_slice(body);
        bytes.extend_from_slice(format!("{STAMP_PREFIX}{id})").as_bytes());
        bytes.extend_from_slice(&reply[body.len()..]);
        replies.push(Stamped {
            bytes,
            id: Some(id),
            code,
            answers,
            call,
        });
        start = offset;
    }
    replies
}

fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}
