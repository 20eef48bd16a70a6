//! The outcome policy: what becomes of an address when a session says something about it, and
//! what the scheduler learns of the server that said it.
//!
//! Two pure functions, one for an address ([`decide`]) and one for the catch-all control
//! ([`decide_control`]): an outcome and the few facts that weigh on it in, a [`Decision`] out.
//! They read no clock, touch no state and allocate only the verdict's own text; the scheduler
//! carries the decision out (queues, timers, counters). Every rule of persistence lives here:
//!
//! - **4xx** (greylisting, temporary failures): asked again after the retry delay, doubled at
//!   each retry, until the retries run out; then the 4xx is the verdict.
//! - **Throttled** (a reply the provider's profile reads as "slow down"): the provider is left
//!   alone for its backoff and the address waits for it without spending a retry, at most
//!   [`MAX_THROTTLES`] times; then the reply is its verdict.
//! - **Accepted by a provider that accepts every recipient** at RCPT (its profile says so):
//!   `risky/accept_all`, with the profile's reason in the detail; never `deliverable`.
//! - **Accepted** while the domain's catch-all answer is pending: held for it.
//! - **Connection failures** (refused, closed, 421, a silent greeting, a failed TLS handshake
//!   after STARTTLS): the server cools down and the address moves to the next MX; when the
//!   last one failed too, its failure is the verdict (`connection_failed`, with `tls_failed`
//!   in the detail for TLS). Postfix too treats a silent server like one that cannot be
//!   reached.
//! - **Closed for want of TLS** (`421 ... TLS required` where STARTTLS was offered): asked
//!   again, and the domain's sessions say STARTTLS first from then on; at most
//!   [`MAX_HAND_BACKS`] times, then `unknown/temporary_failure`.
//! - **Too many recipients**: the domain's sessions get smaller and the address waits for the
//!   next one, at most [`MAX_HAND_BACKS`] times.
//! - **The SOCKS5 proxy failed** before the server was reached: nothing is known of the
//!   server, which is not cooled down; the address is asked again through the next proxy of
//!   the pool, at most [`MAX_PROXY_ATTEMPTS`] times in all, then `unknown/connection_failed`
//!   with the proxy's failure as the detail. Never a verdict on the mailbox. Detours (this and
//!   the next) have a count of their own, apart from the server's hand-backs.
//! - **Refused by the prober's address** (a blocklist naming the client) while another source
//!   address of the pool is well: asked again from that one, at most [`MAX_PROXY_ATTEMPTS`]
//!   sessions in all.
//! - **Unconfirmed** (a session could not vouch for the answer): the server is asked in
//!   lock-step from now on, and the address once more before the misalignment is its verdict.
//! - Anything else a reply or a failure decided is the verdict.
//!
//! Tests are a table of (outcome, facts) → decision.

use std::net::IpAddr;
use std::time::Duration;

use super::calibration::Calibration;
use super::job::Decided;
use crate::providers::{Meaning, Provider, Rule};
use crate::session::{Failure, HandBack, Misalignment, RecipientOutcome, Wait};
use crate::smtp::reply::OwnedReply;
use crate::tls::TlsVersion;
use crate::verdict::{Reason, Stage};

/// Hand-backs for "too many recipients" before an address is given up on.
pub const MAX_HAND_BACKS: u16 = 4;

/// Sessions that failed an address for the prober's own means (its proxy, its source address)
/// before the last failure is its verdict.
pub const MAX_PROXY_ATTEMPTS: u16 = 3;

/// "Slow down" replies an address waits out; the one after is its verdict.
pub const MAX_THROTTLES: u8 = 3;

/// What read an RCPT reply beyond the generic table, if anything did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum ReadBy {
    /// Calibration judged an unexplained refusal against the rest of its session.
    Calibration(Calibration),
    /// The profile of the provider the session was at.
    Profile(&'static Provider, &'static Rule),
}

/// What one outcome teaches about the server that gave it, whoever it was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ServerNote {
    /// It refused a connection, closed it, answered 421 or kept silent: leave it alone a while.
    CoolDown,
    /// A pipelined session there could not vouch for its replies: no more pipelining there.
    LockStep,
    /// It takes at most this many recipients a session.
    AtMost(usize),
}

/// What becomes of the address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Action {
    /// This is its verdict.
    Finish(Decided),
    /// A 4xx with retries left: ask again after `delay`, keeping the reply in case the
    /// retries run out.
    RetryAfter {
        /// The wait: the retry delay, doubled for each retry made.
        delay: Duration,
        /// The 4xx, the verdict if no later answer decides.
        last_temporary: Decided,
    },
    /// Accepted: hold it for the domain's catch-all answer, which decides what the acceptance
    /// means.
    Hold(Decided),
    /// Handed back for taking fewer recipients than were sent: at the head of the queue for a
    /// smaller session (one more hand-back counted).
    Requeue,
    /// The session could not vouch for its answer: ask once more, without pipelining.
    LockStepRetry,
    /// Its server failed: ask the next MX (one more failover counted).
    FailOver,
    /// Its server failed and it was the last: this is its verdict, and a failover counted.
    LastServerFailed(Decided),
    /// Its provider said "slow down": at the head of the queue, to wait for the provider's
    /// gate to open again (one more throttle counted, no retry spent).
    Throttled,
    /// The prober's own means failed it (its SOCKS5 proxy, or its source address refused by
    /// name): at the head of the queue, for the next proxy or address (one more detour
    /// counted).
    Detour,
}

/// What the scheduler does about one outcome for an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Decision {
    /// What to remember of the server.
    pub(super) server: Option<ServerNote>,
    /// What becomes of the address.
    pub(super) action: Action,
}

/// What weighs on an address's outcome besides the outcome itself.
#[derive(Debug, Clone, Copy)]
pub(super) struct Facts<'a> {
    /// The MX host and address the session was at (`None` if the target is gone).
    pub(super) mx: Option<&'a str>,
    pub(super) ip: Option<IpAddr>,
    /// What read the reply beyond the generic table, if anything did.
    pub(super) read_by: Option<ReadBy>,
    /// The provider of the server the session was at, if its profile applies.
    pub(super) provider: Option<&'static Provider>,
    /// Recipients of the session that got a reply so far.
    pub(super) answered: usize,
    /// Retries after a 4xx made so far.
    pub(super) retries: u16,
    /// Retries allowed (`ConfigBuilder::retries`).
    pub(super) retries_allowed: u32,
    /// The wait before the first retry (`ConfigBuilder::retry_delay`).
    pub(super) retry_delay: Duration,
    /// How long the domain's greylisting has been seen to hold an address, if it has: the
    /// first retry after its "try again later" waits that long instead.
    pub(super) greylist_wait: Option<Duration>,
    /// True if an accepted address waits for the domain's catch-all answer: controls are on
    /// and the answer is not in.
    pub(super) awaits_catch_all: bool,
    /// Servers that failed the address so far.
    pub(super) failovers: u16,
    /// The domain's mail-server addresses.
    pub(super) targets: usize,
    /// Hand-backs for "too many recipients" so far.
    pub(super) handed_back: u16,
    /// The address was already asked again without pipelining.
    pub(super) lock_step: bool,
    /// "Slow down" replies waited out so far.
    pub(super) throttled: u8,
    /// What went wrong with the SOCKS5 proxy, if the session's proxy failed.
    pub(super) proxy_failure: Option<&'a str>,
    /// The TLS version the session spoke, if it did.
    pub(super) tls: Option<TlsVersion>,
    /// How the session's TLS handshake failed, if it did.
    pub(super) tls_failure: Option<&'a str>,
    /// The server refused the session's source address by name, and another address of the
    /// pool is well.
    pub(super) refused_by_address: bool,
    /// Detours so far: sessions that failed the address for the prober's own means.
    pub(super) detours: u8,
}

impl Facts<'_> {
    /// A verdict from the server the session was at.
    fn decided(
        &self,
        reason: Reason,
        reply: Option<OwnedReply>,
        detail: Option<String>,
    ) -> Decided {
        Decided {
            reason,
            reply,
            mx: self.mx.map(str::to_owned),
            ip: self.ip,
            detail,
            tls: self.tls,
        }
    }
}

/// What one outcome for an address decides.
pub(super) fn decide(outcome: RecipientOutcome, facts: &Facts<'_>) -> Decision {
    let server = server_note(&outcome, facts.answered);
    let action = match outcome {
        RecipientOutcome::Replied {
            stage,
            reply,
            reason,
        } => {
            let detail = match facts.read_by {
                Some(ReadBy::Calibration(rule)) => Some(rule.detail(&reply.as_reply())),
                Some(ReadBy::Profile(provider, rule)) => {
                    Some(format!("{} profile: {}", provider.name, rule.note))
                }
                None => (stage != Stage::RcptTo)
                    .then(|| format!("the server answered at {}", stage.as_str())),
            };
            let throttled = matches!(
                facts.read_by,
                Some(ReadBy::Profile(_, rule)) if rule.means == Meaning::Throttled
            );
            let accepts_everyone = facts
                .provider
                .filter(|_| stage == Stage::RcptTo && reason == Reason::Accepted)
                .and_then(|provider| {
                    let cited = provider.profile.accepts_every_recipient.as_ref()?;
                    Some((provider, cited))
                });
            if reason == Reason::Blocked
                && facts.refused_by_address
                && u16::from(facts.detours).saturating_add(1) < MAX_PROXY_ATTEMPTS
            {
                // Refused by the prober's address: asked again from another.
                Action::Detour
            } else if throttled && facts.throttled < MAX_THROTTLES {
                Action::Throttled
            } else if let Some((provider, cited)) = accepts_everyone {
                let detail = format!("{} profile: {}", provider.name, cited.detail);
                Action::Finish(facts.decided(Reason::AcceptAll, Some(reply), Some(detail)))
            } else if !throttled
                && matches!(reason, Reason::Greylisted | Reason::TemporaryFailure)
                && u32::from(facts.retries) < facts.retries_allowed.min(u16::MAX.into())
            {
                Action::RetryAfter {
                    delay: match facts.greylist_wait {
                        Some(wait) if reason == Reason::Greylisted && facts.retries == 0 => {
                            after_known_greylisting(wait)
                        }
                        _ => facts
                            .retry_delay
                            .saturating_mul(2u32.saturating_pow(u32::from(facts.retries))),
                    },
                    last_temporary: facts.decided(reason, Some(reply), detail),
                }
            } else {
                let decided = facts.decided(reason, Some(reply), detail);
                if reason == Reason::Accepted && facts.awaits_catch_all {
                    Action::Hold(decided)
                } else {
                    Action::Finish(decided)
                }
            }
        }
        RecipientOutcome::Smtputf8Unsupported => Action::Finish(facts.decided(
            Reason::Smtputf8Unsupported,
            None,
            Some("the address needs SMTPUTF8 and the server does not offer it".into()),
        )),
        RecipientOutcome::HandedBack(
            why @ (HandBack::ConnectFailed
            | HandBack::ServiceUnavailable
            | HandBack::ConnectionLost),
        ) => {
            let reason = if why == HandBack::ServiceUnavailable {
                Reason::TemporaryFailure
            } else {
                Reason::ConnectionFailed
            };
            fail_over(facts, reason, &why)
        }
        RecipientOutcome::Failed(failure @ Failure::Timeout(Wait::Reply(Stage::Greeting))) => {
            // If it was the last server, the timeout is the precise reason.
            fail_over(facts, Reason::Timeout, &failure)
        }
        RecipientOutcome::HandedBack(HandBack::ProxyFailed) => {
            if u16::from(facts.detours).saturating_add(1) >= MAX_PROXY_ATTEMPTS {
                let why = facts.proxy_failure.map_or_else(
                    || HandBack::ProxyFailed.to_string(),
                    |failure| format!("proxy_failed: {failure}"),
                );
                Action::Finish(Decided {
                    reason: Reason::ConnectionFailed,
                    reply: None,
                    mx: facts.mx.map(str::to_owned),
                    ip: facts.ip,
                    detail: Some(why),
                    tls: None,
                })
            } else {
                Action::Detour
            }
        }
        RecipientOutcome::HandedBack(why @ HandBack::TlsRequired) => {
            // The server closed for want of TLS: the domain's next session says STARTTLS
            // first (the scheduler marks it); not the server's failure, not a verdict.
            if facts.handed_back.saturating_add(1) >= MAX_HAND_BACKS {
                Action::Finish(facts.decided(Reason::TemporaryFailure, None, Some(why.to_string())))
            } else {
                Action::Requeue
            }
        }
        RecipientOutcome::HandedBack(HandBack::TlsFailed) => {
            // The handshake after STARTTLS failed (a broken TLS stack, or a certificate
            // `--tls-verify` refused): the domain leaves that server alone a while, like one
            // that cannot be reached, and the next MX may do better. Never a verdict.
            let why = format!(
                "tls_failed: {}",
                facts
                    .tls_failure
                    .unwrap_or("the TLS handshake after STARTTLS failed")
            );
            fail_over(facts, Reason::ConnectionFailed, &why)
        }
        RecipientOutcome::HandedBack(
            why @ (HandBack::TooManyRecipients | HandBack::ResetRefused),
        ) => {
            if facts.handed_back.saturating_add(1) >= MAX_HAND_BACKS {
                Action::Finish(facts.decided(Reason::TemporaryFailure, None, Some(why.to_string())))
            } else {
                Action::Requeue
            }
        }
        RecipientOutcome::Unconfirmed(misalignment) => {
            if facts.lock_step {
                // Unproven twice because the server went silent: a timeout; otherwise the
                // server broke the exchange.
                let reason = match &misalignment {
                    Misalignment::Unproven(Some(Failure::Timeout(_))) => Reason::Timeout,
                    _ => Reason::ProtocolError,
                };
                Action::Finish(facts.decided(
                    reason,
                    misalignment.reply().cloned(),
                    Some(misalignment.to_string()),
                ))
            } else {
                Action::LockStepRetry
            }
        }
        RecipientOutcome::Failed(failure) => {
            let (reason, reply) = match &failure {
                Failure::Timeout(_) => (Reason::Timeout, None),
                Failure::Protocol(violation) => (Reason::ProtocolError, violation.reply().cloned()),
            };
            Action::Finish(facts.decided(reason, reply, Some(failure.to_string())))
        }
        RecipientOutcome::Unencodable(error) => Action::Finish(Decided {
            reason: Reason::InvalidSyntax,
            reply: None,
            mx: None,
            ip: None,
            detail: Some(error.to_string()),
            tls: None,
        }),
    };
    Decision { server, action }
}

/// The server failed the address: the next MX, or, after the last, `reason` with `why`.
fn fail_over(facts: &Facts<'_>, reason: Reason, why: &dyn std::fmt::Display) -> Action {
    if usize::from(facts.failovers.saturating_add(1)) >= facts.targets {
        Action::LastServerFailed(facts.decided(
            reason,
            None,
            Some(format!("every mail server failed; the last: {why}")),
        ))
    } else {
        Action::FailOver
    }
}

/// What an outcome for an address teaches about its server.
fn server_note(outcome: &RecipientOutcome, answered: usize) -> Option<ServerNote> {
    match outcome {
        RecipientOutcome::HandedBack(HandBack::TooManyRecipients | HandBack::ResetRefused) => {
            // The server takes fewer recipients per session than we sent: send fewer.
            Some(ServerNote::AtMost(answered.max(1)))
        }
        _ => control_server_note(outcome),
    }
}

/// What an outcome for the control teaches about its server: what one for an address does,
/// less the recipient limit (the control is the last recipient; the addresses before it say
/// how many the server took).
fn control_server_note(outcome: &RecipientOutcome) -> Option<ServerNote> {
    match outcome {
        RecipientOutcome::HandedBack(
            HandBack::ConnectFailed
            | HandBack::ConnectionLost
            | HandBack::ServiceUnavailable
            | HandBack::TlsFailed,
        )
        | RecipientOutcome::Failed(Failure::Timeout(Wait::Reply(Stage::Greeting))) => {
            Some(ServerNote::CoolDown)
        }
        RecipientOutcome::Unconfirmed(_) => Some(ServerNote::LockStep),
        _ => None,
    }
}

/// What the catch-all control's outcome says of the domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ControlAnswer {
    /// `true`: a random local part was accepted, the domain accepts anything.
    Known(bool),
    /// Nothing decided and the budget allows: send the control again (one more attempt
    /// counted).
    AskAgain,
    /// Nothing decided and nothing more will: the answer stays unknown.
    Inconclusive,
    /// Nothing decided, and the budget would allow another try, but the run is stopping: the
    /// addresses waiting for the answer are left for the next run.
    Unasked,
}

/// What weighs on the control's outcome besides the outcome itself.
#[derive(Debug, Clone, Copy)]
pub(super) struct ControlFacts {
    /// Retries allowed an address (`ConfigBuilder::retries`): the control's budget starts there.
    pub(super) retries_allowed: u32,
    /// The domain's mail-server addresses: one more try each.
    pub(super) targets: usize,
    /// Controls that did not decide so far.
    pub(super) attempts: u32,
    /// The run is stopping: nothing is asked again.
    pub(super) stopping: bool,
    /// The outcome is a reply the provider's profile reads as "slow down", whatever command
    /// it answered: the control is asked again once the provider's gate opens.
    pub(super) throttled: bool,
}

/// What the scheduler does about the control's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ControlDecision {
    /// What to remember of the server.
    pub(super) server: Option<ServerNote>,
    /// What becomes of the domain's catch-all answer.
    pub(super) answer: ControlAnswer,
}

/// What one outcome for the catch-all control decides.
///
/// Every control that did not decide counts against one budget (the retries, one try per MX
/// address, and two more for hand-backs), whatever the reason: a control that could be asked
/// again for free would keep a domain whose servers have gone away busy forever, with
/// accepted addresses held waiting for it.
pub(super) fn decide_control(outcome: &RecipientOutcome, facts: &ControlFacts) -> ControlDecision {
    let budget = facts
        .retries_allowed
        .saturating_add(u32::try_from(facts.targets).unwrap_or(u32::MAX))
        .saturating_add(2);
    let answer = match outcome {
        RecipientOutcome::Replied {
            stage: Stage::RcptTo,
            reason: Reason::Accepted,
            ..
        } => ControlAnswer::Known(true),
        RecipientOutcome::Replied {
            stage: Stage::RcptTo,
            reason: Reason::MailboxNotFound | Reason::MailboxDisabled,
            ..
        } => ControlAnswer::Known(false),
        RecipientOutcome::Replied { .. } if facts.throttled => again(facts, budget),
        RecipientOutcome::Replied {
            stage: Stage::RcptTo,
            reason: Reason::Greylisted | Reason::TemporaryFailure,
            ..
        }
        | RecipientOutcome::HandedBack(_)
        | RecipientOutcome::Unconfirmed(_)
        | RecipientOutcome::Failed(Failure::Timeout(Wait::Reply(Stage::Greeting))) => {
            again(facts, budget)
        }
        _ => ControlAnswer::Inconclusive,
    };
    ControlDecision {
        server: control_server_note(outcome),
        answer,
    }
}

/// The first retry after a greylisting domain's "try again later", when the wait it needed
/// before is known (this engine's, or a fleet's): that wait and a tenth, so that the retry
/// comes after the server's period however the last one fell, within a second and an hour.
pub(super) fn after_known_greylisting(wait: Duration) -> Duration {
    wait.saturating_add(wait / 10)
        .clamp(Duration::from_secs(1), Duration::from_secs(3600))
}

/// A control that did not decide but could: asked again while the budget lasts, unless the
/// run is stopping.
fn again(facts: &ControlFacts, budget: u32) -> ControlAnswer {
    if facts.attempts.saturating_add(1) > budget {
        ControlAnswer::Inconclusive
    } else if facts.stopping {
        ControlAnswer::Unasked
    } else {
        ControlAnswer::AskAgain
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::session::ProtocolViolation;
    use crate::smtp::CommandError;
    use crate::smtp::path::PathError;
    use crate::smtp::reply::{Limits, Status, parse_reply};

    const IP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 25));
    const MX: &str = "mx1.example";

    /// An address on its first session, at the first of two servers, three recipients of the
    /// session answered, controls on and the catch-all answer in.
    const FRESH: Facts<'static> = Facts {
        mx: Some(MX),
        ip: Some(IP),
        read_by: None,
        provider: None,
        answered: 3,
        retries: 0,
        retries_allowed: 2,
        retry_delay: Duration::from_secs(120),
        awaits_catch_all: false,
        failovers: 0,
        targets: 2,
        handed_back: 0,
        lock_step: false,
        throttled: 0,
        proxy_failure: None,
        tls: None,
        tls_failure: None,
        greylist_wait: None,
        refused_by_address: false,
        detours: 0,
    };

    fn reply(wire: &str) -> OwnedReply {
        let Ok(Status::Complete(reply)) = parse_reply(wire.as_bytes(), &Limits::DEFAULT) else {
            panic!("not a reply: {wire:?}");
        };
        reply.into_owned()
    }

    /// A reply at `stage`, which the reply table reads as `reason` (checked: the rows stay
    /// what a session would hand out).
    fn replied(stage: Stage, wire: &str, reason: Reason) -> RecipientOutcome {
        let reply = reply(wire);
        assert_eq!(
            crate::verdict::classify(stage, &reply.as_reply()),
            reason,
            "{wire:?} at {stage:?}"
        );
        RecipientOutcome::Replied {
            stage,
            reply,
            reason,
        }
    }

    fn provider(id: &str) -> &'static Provider {
        crate::providers::all()
            .iter()
            .find(|p| p.id == id)
            .unwrap_or_else(|| panic!("no provider {id}"))
    }

    /// The first rule of provider `id` that means `means`.
    fn rule(id: &str, means: Meaning) -> &'static Rule {
        provider(id)
            .profile
            .rcpt
            .iter()
            .find(|rule| rule.means == means)
            .unwrap_or_else(|| panic!("{id} has no rule that means {means:?}"))
    }

    fn read_by(id: &str, means: Meaning) -> ReadBy {
        ReadBy::Profile(provider(id), rule(id, means))
    }

    /// The example reply of provider `id`'s first rule that gives `reason`, as read by it at
    /// `stage`.
    fn profiled(id: &str, stage: Stage, reason: Reason) -> RecipientOutcome {
        let rule = provider(id)
            .profile
            .rcpt
            .iter()
            .find(|rule| rule.means.reason() == reason)
            .unwrap_or_else(|| panic!("{id} has no rule for {reason:?}"));
        RecipientOutcome::Replied {
            stage,
            reply: reply(&format!("{}\r\n", rule.example)),
            reason,
        }
    }

    fn timeout(stage: Stage) -> RecipientOutcome {
        RecipientOutcome::Failed(Failure::Timeout(Wait::Reply(stage)))
    }

    /// What a row expects of the action; a verdict is checked by reason, server and detail.
    #[derive(Debug, PartialEq)]
    enum Want {
        Finish(Reason),
        RetryAfter(Duration, Reason),
        Hold,
        Requeue,
        LockStepRetry,
        FailOver,
        LastServerFailed(Reason),
        Throttled,
        Detour,
    }

    struct Row {
        name: &'static str,
        outcome: RecipientOutcome,
        facts: Facts<'static>,
        server: Option<ServerNote>,
        want: Want,
        /// Text the verdict's detail must contain ("" for no detail at all).
        detail: &'static str,
    }

    fn row(
        name: &'static str,
        outcome: RecipientOutcome,
        facts: Facts<'static>,
        server: Option<ServerNote>,
        want: Want,
        detail: &'static str,
    ) -> Row {
        Row {
            name,
            outcome,
            facts,
            server,
            want,
            detail,
        }
    }

    /// Checks one row; returns what went wrong, if anything.
    fn check(row: Row) -> Result<(), String> {
        let replied = match &row.outcome {
            RecipientOutcome::Replied { reply, .. } => Some(reply.clone()),
            _ => None,
        };
        let unencodable = matches!(row.outcome, RecipientOutcome::Unencodable(_));
        let decision = decide(row.outcome, &row.facts);
        if decision.server != row.server {
            return Err(format!(
                "server note: got {:?}, want {:?}",
                decision.server, row.server
            ));
        }
        let (got, decided) = match decision.action {
            Action::Finish(d) => (Want::Finish(d.reason), Some(d)),
            Action::RetryAfter {
                delay,
                last_temporary,
            } => (
                Want::RetryAfter(delay, last_temporary.reason),
                Some(last_temporary),
            ),
            Action::Hold(d) => (Want::Hold, Some(d)),
            Action::Requeue => (Want::Requeue, None),
            Action::LockStepRetry => (Want::LockStepRetry, None),
            Action::FailOver => (Want::FailOver, None),
            Action::LastServerFailed(d) => (Want::LastServerFailed(d.reason), Some(d)),
            Action::Throttled => (Want::Throttled, None),
            Action::Detour => (Want::Detour, None),
        };
        if got != row.want {
            return Err(format!("action: got {got:?}, want {:?}", row.want));
        }
        let Some(decided) = decided else {
            return Ok(());
        };
        // The server that gave the verdict, except for an address that was never sent.
        let server = if unencodable {
            (None, None)
        } else {
            (row.facts.mx.map(str::to_owned), row.facts.ip)
        };
        if (decided.mx.clone(), decided.ip) != server {
            return Err(format!("server: got {:?} {:?}", decided.mx, decided.ip));
        }
        // A reply that decided is the verdict's reply.
        if let Some(reply) = replied
            && decided.reply.as_ref() != Some(&reply)
        {
            return Err(format!("reply: got {:?}", decided.reply));
        }
        match (&decided.detail, row.detail) {
            (None, "") => Ok(()),
            (Some(detail), want) if !want.is_empty() && detail.contains(want) => Ok(()),
            (got, want) => Err(format!("detail: got {got:?}, want {want:?}")),
        }
    }

    #[test]
    fn an_address_outcome_decides_by_table() {
        use RecipientOutcome::{HandedBack, Smtputf8Unsupported, Unconfirmed, Unencodable};
        use ServerNote::{AtMost, CoolDown, LockStep};
        use Want::*;

        const GREY: &str = "450 4.2.0 Greylisted, try again later\r\n";
        const BUSY: &str = "451 4.3.0 Temporary local problem\r\n";
        const OK: &str = "250 2.1.5 Ok\r\n";
        const NO_SUCH: &str = "550 5.1.1 No such user here\r\n";
        const POLICY: &str = "554 5.7.1 Client host rejected: blocked using zen.spamhaus.org\r\n";
        const ODD: &str = "550 5.2.4 Mailing list expansion problem\r\n";
        const SECS: fn(u64) -> Duration = Duration::from_secs;

        #[rustfmt::skip]
        let rows = vec![
            // 4xx: retried with backoff, then the 4xx is the verdict.
            row("greylisted, first time: retried after the delay",
                replied(Stage::RcptTo, GREY, Reason::Greylisted), FRESH,
                None, RetryAfter(SECS(120), Reason::Greylisted), ""),
            row("greylisted again: the delay doubles",
                replied(Stage::RcptTo, GREY, Reason::Greylisted), Facts { retries: 1, ..FRESH },
                None, RetryAfter(SECS(240), Reason::Greylisted), ""),
            row("a third retry waits four times the delay",
                replied(Stage::RcptTo, GREY, Reason::Greylisted),
                Facts { retries: 2, retries_allowed: 5, ..FRESH },
                None, RetryAfter(SECS(480), Reason::Greylisted), ""),
            row("greylisted with the retries spent: unknown/greylisted",
                replied(Stage::RcptTo, GREY, Reason::Greylisted), Facts { retries: 2, ..FRESH },
                None, Finish(Reason::Greylisted), ""),
            row("no retries allowed: the first 4xx decides",
                replied(Stage::RcptTo, GREY, Reason::Greylisted),
                Facts { retries_allowed: 0, ..FRESH },
                None, Finish(Reason::Greylisted), ""),
            row("greylisted where its wait is known: retried after it and a tenth",
                replied(Stage::RcptTo, GREY, Reason::Greylisted),
                Facts { greylist_wait: Some(SECS(300)), ..FRESH },
                None, RetryAfter(SECS(330), Reason::Greylisted), ""),
            row("a known wait times the first retry only",
                replied(Stage::RcptTo, GREY, Reason::Greylisted),
                Facts { greylist_wait: Some(SECS(300)), retries: 1, ..FRESH },
                None, RetryAfter(SECS(240), Reason::Greylisted), ""),
            row("a known greylisting wait says nothing of a busy server",
                replied(Stage::RcptTo, BUSY, Reason::TemporaryFailure),
                Facts { greylist_wait: Some(SECS(300)), ..FRESH },
                None, RetryAfter(SECS(120), Reason::TemporaryFailure), ""),
            row("a known wait is kept within a second and an hour",
                replied(Stage::RcptTo, GREY, Reason::Greylisted),
                Facts { greylist_wait: Some(SECS(86_400)), ..FRESH },
                None, RetryAfter(SECS(3600), Reason::Greylisted), ""),
            row("a temporary failure is retried like greylisting",
                replied(Stage::RcptTo, BUSY, Reason::TemporaryFailure), FRESH,
                None, RetryAfter(SECS(120), Reason::TemporaryFailure), ""),
            row("a temporary failure with the retries spent decides",
                replied(Stage::RcptTo, BUSY, Reason::TemporaryFailure),
                Facts { retries: 2, ..FRESH },
                None, Finish(Reason::TemporaryFailure), ""),
            row("a 4xx at MAIL FROM is retried too, and says where it came",
                replied(Stage::MailFrom, "451 4.7.1 Try again later\r\n", Reason::Greylisted),
                FRESH, None, RetryAfter(SECS(120), Reason::Greylisted),
                "the server answered at"),
            row("a 4xx is retried even while the catch-all answer is pending",
                replied(Stage::RcptTo, GREY, Reason::Greylisted),
                Facts { awaits_catch_all: true, ..FRESH },
                None, RetryAfter(SECS(120), Reason::Greylisted), ""),
            // Replies that decide.
            row("accepted, catch-all answer in: the verdict",
                replied(Stage::RcptTo, OK, Reason::Accepted), FRESH,
                None, Finish(Reason::Accepted), ""),
            row("accepted, catch-all answer pending: held for it",
                replied(Stage::RcptTo, OK, Reason::Accepted),
                Facts { awaits_catch_all: true, ..FRESH },
                None, Hold, ""),
            row("5yz mailbox not found: the verdict, never retried",
                replied(Stage::RcptTo, NO_SUCH, Reason::MailboxNotFound),
                Facts { awaits_catch_all: true, ..FRESH },
                None, Finish(Reason::MailboxNotFound), ""),
            row("a policy block: the verdict, not a mailbox's",
                replied(Stage::RcptTo, POLICY, Reason::Blocked), FRESH,
                None, Finish(Reason::Blocked), ""),
            row("a sender refused at MAIL FROM says so",
                replied(Stage::MailFrom, "553 5.1.8 Sender address rejected\r\n",
                    Reason::SenderRejected),
                FRESH, None, Finish(Reason::SenderRejected), "the server answered at mail_from"),
            row("a calibrated refusal names its rule",
                RecipientOutcome::Replied {
                    stage: Stage::RcptTo,
                    reply: reply(ODD),
                    reason: Reason::MailboxNotFound,
                },
                Facts { read_by: Some(ReadBy::Calibration(Calibration::AcceptedAlongside)), ..FRESH },
                None, Finish(Reason::MailboxNotFound),
                "calibrated: a permanent refusal (550 5.2.4)"),
            row("SMTPUTF8 needed and not offered",
                Smtputf8Unsupported, FRESH,
                None, Finish(Reason::Smtputf8Unsupported), "SMTPUTF8"),
            // Connection failures: the next MX, then the last one's failure.
            row("connection refused: the next MX",
                HandedBack(HandBack::ConnectFailed), FRESH,
                Some(CoolDown), FailOver, ""),
            row("connection refused at the last MX: connection_failed",
                HandedBack(HandBack::ConnectFailed), Facts { failovers: 1, ..FRESH },
                Some(CoolDown), LastServerFailed(Reason::ConnectionFailed),
                "every mail server failed; the last: the connection could not be made"),
            row("a domain with one MX has no next",
                HandedBack(HandBack::ConnectionLost), Facts { targets: 1, ..FRESH },
                Some(CoolDown), LastServerFailed(Reason::ConnectionFailed),
                "closed the connection"),
            row("closed for want of TLS: asked again (STARTTLS first), the server not cooled",
                HandedBack(HandBack::TlsRequired), FRESH,
                None, Requeue, ""),
            row("closed for want of TLS too often: a temporary failure",
                HandedBack(HandBack::TlsRequired),
                Facts { handed_back: MAX_HAND_BACKS - 1, ..FRESH },
                None, Finish(Reason::TemporaryFailure), "for want of TLS"),
            row("a failed TLS handshake: the next MX, the server cooled",
                HandedBack(HandBack::TlsFailed),
                Facts { tls_failure: Some("invalid peer certificate: UnknownIssuer"), ..FRESH },
                Some(CoolDown), FailOver, ""),
            row("a failed TLS handshake at the last MX: unknown, never a mailbox verdict",
                HandedBack(HandBack::TlsFailed),
                Facts {
                    tls_failure: Some("invalid peer certificate: UnknownIssuer"),
                    failovers: 1,
                    ..FRESH
                },
                Some(CoolDown), LastServerFailed(Reason::ConnectionFailed),
                "every mail server failed; the last: tls_failed: invalid peer certificate"),
            row("421: the next MX",
                HandedBack(HandBack::ServiceUnavailable), FRESH,
                Some(CoolDown), FailOver, ""),
            row("421 at the last MX: a temporary failure",
                HandedBack(HandBack::ServiceUnavailable), Facts { failovers: 1, ..FRESH },
                Some(CoolDown), LastServerFailed(Reason::TemporaryFailure), "421"),
            row("a silent greeting: the next MX",
                timeout(Stage::Greeting), FRESH,
                Some(CoolDown), FailOver, ""),
            row("a silent greeting at the last MX: a timeout",
                timeout(Stage::Greeting), Facts { failovers: 1, ..FRESH },
                Some(CoolDown), LastServerFailed(Reason::Timeout),
                "timed out waiting for the greeting reply"),
            // Other failures decide, with no failover.
            row("a timeout at RCPT decides, on the same server",
                timeout(Stage::RcptTo), FRESH,
                None, Finish(Reason::Timeout), "timed out waiting for the rcpt_to reply"),
            row("a broken protocol decides",
                RecipientOutcome::Failed(Failure::Protocol(ProtocolViolation::Unsolicited(None))),
                FRESH, None, Finish(Reason::ProtocolError), "nobody asked for"),
            row("a reply that broke the protocol is the verdict's reply",
                RecipientOutcome::Failed(Failure::Protocol(ProtocolViolation::RepliesLost(
                    reply("221 2.0.0 Bye\r\n")))),
                FRESH, None, Finish(Reason::ProtocolError), "lost their replies"),
            // Too many recipients: smaller sessions, a few times.
            row("too many recipients: requeued, sessions as big as the answered",
                HandedBack(HandBack::TooManyRecipients), FRESH,
                Some(AtMost(3)), Requeue, ""),
            row("too many recipients with none answered: one a session",
                HandedBack(HandBack::TooManyRecipients), Facts { answered: 0, ..FRESH },
                Some(AtMost(1)), Requeue, ""),
            row("RSET refused: requeued",
                HandedBack(HandBack::ResetRefused), Facts { handed_back: 2, ..FRESH },
                Some(AtMost(3)), Requeue, ""),
            row("hand-backs spent: a temporary failure",
                HandedBack(HandBack::TooManyRecipients),
                Facts { handed_back: MAX_HAND_BACKS - 1, ..FRESH },
                Some(AtMost(3)), Finish(Reason::TemporaryFailure), "no more recipients"),
            // Unconfirmed pipelined answers: once more in lock-step, then the misalignment.
            row("misaligned under pipelining: asked again in lock-step",
                Unconfirmed(Misalignment::Broken(ProtocolViolation::NamesAnotherRecipient(
                    reply("550 5.1.1 <b@example.com>: Recipient address rejected\r\n")))),
                FRESH, Some(LockStep), LockStepRetry, ""),
            row("unproven under pipelining: asked again in lock-step",
                Unconfirmed(Misalignment::Unproven(None)), FRESH,
                Some(LockStep), LockStepRetry, ""),
            row("misaligned in lock-step too: a protocol error with the reply",
                Unconfirmed(Misalignment::Broken(ProtocolViolation::RepliesLost(
                    reply("221 2.0.0 Bye\r\n")))),
                Facts { lock_step: true, ..FRESH },
                Some(LockStep), Finish(Reason::ProtocolError), "lost their replies"),
            row("unproven in lock-step, the server silent: a timeout",
                Unconfirmed(Misalignment::Unproven(Some(Failure::Timeout(Wait::Quit)))),
                Facts { lock_step: true, ..FRESH },
                Some(LockStep), Finish(Reason::Timeout), "nothing proves"),
            row("unproven in lock-step, the server gone: a protocol error",
                Unconfirmed(Misalignment::Unproven(None)),
                Facts { lock_step: true, ..FRESH },
                Some(LockStep), Finish(Reason::ProtocolError), "closed the connection"),
            // An address no command can carry.
            row("unencodable: invalid syntax, from no server",
                Unencodable(CommandError::ForwardPath(PathError::Empty)), FRESH,
                None, Finish(Reason::InvalidSyntax), "the RCPT TO address"),
            // A refusal of the prober's source address, by name.
            row("refused by the source address, another is well: asked again from it",
                replied(Stage::RcptTo, POLICY, Reason::Blocked),
                Facts { refused_by_address: true, ..FRESH },
                None, Detour, ""),
            row("refused by the source address, too often: the refusal is the answer",
                replied(Stage::RcptTo, POLICY, Reason::Blocked),
                Facts { refused_by_address: true, detours: 2, ..FRESH },
                None, Finish(Reason::Blocked), ""),
            // A SOCKS5 proxy's failure: the next proxy, never the server's fault.
            row("the proxy failed: asked again, the server not cooled",
                HandedBack(HandBack::ProxyFailed),
                Facts { proxy_failure: Some("reply 1"), handed_back: 3, ..FRESH },
                None, Detour, ""),
            row("the proxy failed on the last attempt: unknown, the proxy's failure said",
                HandedBack(HandBack::ProxyFailed),
                Facts {
                    proxy_failure: Some("the SOCKS5 proxy answered CONNECT with reply 2"),
                    detours: 2,
                    ..FRESH
                },
                None, Finish(Reason::ConnectionFailed), "proxy_failed: the SOCKS5 proxy"),
            // Provider profiles.
            row("a reply a profile read names the profile's note",
                profiled("outlook_com", Stage::RcptTo, Reason::MailboxNotFound),
                Facts { read_by: Some(read_by("outlook_com", Meaning::MailboxNotFound)), ..FRESH },
                None, Finish(Reason::MailboxNotFound), "Outlook.com and Hotmail profile:"),
            row("\"slow down\": wait for the provider, no retry spent",
                profiled("microsoft365", Stage::RcptTo, Reason::TemporaryFailure),
                Facts { read_by: Some(read_by("microsoft365", Meaning::Throttled)), ..FRESH },
                None, Throttled, ""),
            row("\"slow down\" at MAIL FROM too",
                profiled("microsoft365", Stage::MailFrom, Reason::TemporaryFailure),
                Facts { read_by: Some(read_by("microsoft365", Meaning::Throttled)), ..FRESH },
                None, Throttled, ""),
            row("\"slow down\" once too often: the verdict, not a retry",
                profiled("microsoft365", Stage::RcptTo, Reason::TemporaryFailure),
                Facts {
                    read_by: Some(read_by("microsoft365", Meaning::Throttled)),
                    throttled: MAX_THROTTLES,
                    ..FRESH
                },
                None, Finish(Reason::TemporaryFailure), "throttles this IP address"),
            row("accepted by a provider that accepts everyone: accept_all, never deliverable",
                replied(Stage::RcptTo, OK, Reason::Accepted),
                Facts { provider: Some(provider("yahoo")), awaits_catch_all: true, ..FRESH },
                None, Finish(Reason::AcceptAll), "refuse unknown mailboxes only after DATA"),
            row("a refusal from a provider that accepts everyone is still read",
                replied(Stage::RcptTo, NO_SUCH, Reason::MailboxNotFound),
                Facts { provider: Some(provider("yahoo")), ..FRESH },
                None, Finish(Reason::MailboxNotFound), ""),
            row("accepted at a provider whose 250 means something: held for the catch-all answer",
                replied(Stage::RcptTo, OK, Reason::Accepted),
                Facts { provider: Some(provider("google")), awaits_catch_all: true, ..FRESH },
                None, Hold, ""),
        ];
        let count = rows.len();
        let failures: Vec<String> = rows
            .into_iter()
            .filter_map(|row| {
                let name = row.name;
                check(row).err().map(|why| format!("{name}: {why}"))
            })
            .collect();
        assert!(
            failures.is_empty(),
            "{} of {count} rows failed:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }

    /// Two servers, two retries: a budget of six controls that do not decide.
    const CONTROL: ControlFacts = ControlFacts {
        retries_allowed: 2,
        targets: 2,
        attempts: 0,
        stopping: false,
        throttled: false,
    };

    #[test]
    fn a_control_outcome_decides_by_table() {
        use ControlAnswer::{AskAgain, Inconclusive, Known, Unasked};
        use RecipientOutcome::{HandedBack, Unconfirmed};
        use ServerNote::{CoolDown, LockStep};

        type ControlRow = (
            &'static str,
            RecipientOutcome,
            ControlFacts,
            Option<ServerNote>,
            ControlAnswer,
        );
        #[rustfmt::skip]
        let rows: Vec<ControlRow> = vec![
            ("a random local part accepted: a catch-all domain",
                replied(Stage::RcptTo, "250 2.1.5 Ok\r\n", Reason::Accepted), CONTROL,
                None, Known(true)),
            ("a random local part refused: not a catch-all",
                replied(Stage::RcptTo, "550 5.1.1 No such user\r\n", Reason::MailboxNotFound),
                CONTROL, None, Known(false)),
            ("a disabled mailbox's refusal counts as a refusal",
                replied(Stage::RcptTo, "550 5.2.1 Mailbox disabled\r\n", Reason::MailboxDisabled),
                CONTROL, None, Known(false)),
            ("greylisted: asked again",
                replied(Stage::RcptTo, "450 4.2.0 Greylisted\r\n", Reason::Greylisted), CONTROL,
                None, AskAgain),
            ("greylisted with the budget spent: inconclusive",
                replied(Stage::RcptTo, "450 4.2.0 Greylisted\r\n", Reason::Greylisted),
                ControlFacts { attempts: 6, ..CONTROL }, None, Inconclusive),
            ("the last attempt of the budget is still made",
                replied(Stage::RcptTo, "450 4.2.0 Greylisted\r\n", Reason::Greylisted),
                ControlFacts { attempts: 5, ..CONTROL }, None, AskAgain),
            ("connection refused: the server cools down, asked again",
                HandedBack(HandBack::ConnectFailed), CONTROL, Some(CoolDown), AskAgain),
            ("a silent greeting: the server cools down, asked again",
                timeout(Stage::Greeting), CONTROL, Some(CoolDown), AskAgain),
            ("too many recipients: asked again, the limit left to the addresses",
                HandedBack(HandBack::TooManyRecipients), CONTROL, None, AskAgain),
            ("unconfirmed: lock-step there, asked again",
                Unconfirmed(Misalignment::Unproven(None)), CONTROL, Some(LockStep), AskAgain),
            ("stopping: nothing is asked again, the answer is left to the next run",
                HandedBack(HandBack::ConnectFailed), ControlFacts { stopping: true, ..CONTROL },
                Some(CoolDown), Unasked),
            ("stopping, a provider's \"slow down\": left to the next run",
                replied(Stage::RcptTo, "421 4.7.0 Try again later\r\n", Reason::TemporaryFailure),
                ControlFacts { stopping: true, throttled: true, ..CONTROL }, None, Unasked),
            ("stopping, out of budget: inconclusive as ever",
                HandedBack(HandBack::ConnectFailed),
                ControlFacts { stopping: true, attempts: 100, ..CONTROL }, Some(CoolDown),
                Inconclusive),
            ("a policy block says nothing of local parts",
                replied(Stage::RcptTo, "554 5.7.1 Blocked\r\n", Reason::Blocked), CONTROL,
                None, Inconclusive),
            ("a timeout at RCPT: inconclusive",
                timeout(Stage::RcptTo), CONTROL, None, Inconclusive),
            ("an answer before RCPT: inconclusive",
                replied(Stage::MailFrom, "553 5.1.8 Sender address rejected\r\n",
                    Reason::SenderRejected),
                CONTROL, None, Inconclusive),
            ("a provider's \"slow down\", at MAIL FROM too: asked again",
                replied(Stage::MailFrom, "421 4.7.0 [TSS04] Messages deferred\r\n",
                    Reason::Greylisted),
                ControlFacts { throttled: true, ..CONTROL }, None, AskAgain),
            ("\"slow down\" with the budget spent: inconclusive",
                replied(Stage::MailFrom, "421 4.7.0 [TSS04] Messages deferred\r\n",
                    Reason::Greylisted),
                ControlFacts { throttled: true, attempts: 6, ..CONTROL }, None, Inconclusive),
        ];
        let count = rows.len();
        let failures: Vec<String> = rows
            .into_iter()
            .filter_map(|(name, outcome, facts, server, answer)| {
                let got = decide_control(&outcome, &facts);
                let want = ControlDecision { server, answer };
                (got != want).then(|| format!("{name}: got {got:?}, want {want:?}"))
            })
            .collect();
        assert!(
            failures.is_empty(),
            "{} of {count} rows failed:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
}
