//! Calibration: what a permanent refusal the reply table cannot explain means, judged against
//! the rest of its session.
//!
//! A 5yz to RCPT refuses that recipient for good (RFC 5321 §4.2.1), but a reply such as
//! `550 5.2.4`, `550 5.0.0 Rejected` or `521 5.3.0` does not say whether the mailbox is missing
//! or the server refuses this prober whatever it asks ([`crate::verdict::read_rcpt`] marks
//! such replies `unexplained`). The session that received it knows more: what the same server,
//! on the same connection, answered for the other recipients and for the catch-all control (a
//! random local part that surely does not exist). Three rules, in order:
//!
//! 1. **Accepted alongside.** The server accepted another recipient (or the control) in the
//!    session: it takes recipients from this prober, so refusing this one is about this
//!    mailbox: `undeliverable/mailbox_not_found`.
//! 2. **Blanket refusal.** Every recipient of the session, the catch-all control included, got
//!    the same refusal (same code, same enhanced code): the server refuses the prober, not the
//!    mailboxes: `unknown/blocked`, whatever the code.
//! 3. **Uncalibrated.** Neither: the reply is read by its code alone (550, 551, 553: no such
//!    mailbox; any other: `unknown/blocked`).
//!
//! Policy refusals (x.7.x, 554, a blocklist in the text) are never calibrated: they are
//! decided by the table, and never become a verdict on a mailbox. Which rule decided goes into
//! the verdict's `detail`. docs/verdicts.md has the reasoning.

use crate::session::RecipientOutcome;
use crate::smtp::{EnhancedCode, Reply};
use crate::verdict::{Reason, Stage, read_rcpt};

/// The rule that decided an unexplained refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Calibration {
    /// The same session had a recipient accepted: `mailbox_not_found`.
    AcceptedAlongside,
    /// Every recipient and the catch-all control got the same refusal: `blocked`.
    Blanket,
    /// Nothing to compare with: the code alone decided.
    Uncalibrated,
}

impl Calibration {
    /// The verdict's `detail` for a refusal this rule decided.
    pub(super) fn detail(self, reply: &Reply<'_>) -> String {
        let mut code = reply.code().get().to_string();
        if let Some(enhanced) = reply.enhanced() {
            code = format!("{code} {enhanced}");
        }
        match self {
            Self::AcceptedAlongside => format!(
                "calibrated: a permanent refusal ({code}) whose code does not say why, from a \
                 server that accepted other recipients in the same session: the mailbox is \
                 refused, not the prober"
            ),
            Self::Blanket => format!(
                "calibrated: every recipient of the session and the catch-all control got the \
                 same refusal ({code}): the server refuses the prober, which says nothing about \
                 the mailbox"
            ),
            Self::Uncalibrated => format!(
                "uncalibrated: a permanent refusal ({code}) whose code does not say why, and \
                 nothing else in the session to compare it with: read by its code alone"
            ),
        }
    }
}

/// The code and enhanced code of an unexplained refusal, if `outcome` is one.
fn unexplained(outcome: &RecipientOutcome) -> Option<(u16, Option<EnhancedCode>)> {
    let RecipientOutcome::Replied {
        stage: Stage::RcptTo,
        reply,
        ..
    } = outcome
    else {
        return None;
    };
    let reply = reply.as_reply();
    read_rcpt(&reply)
        .unexplained
        .then(|| (reply.code().get(), reply.enhanced()))
}

/// Calibrates the unexplained refusals among the outcomes a finished session handed out last
/// (`settled`; `members` is how many recipients the session had, `is_control` tells the
/// catch-all control, `explained` the outcomes, by index, that a provider profile has read
/// already). Rewrites their reason, and returns the rule that decided each, or `None` when
/// nothing needed calibrating (most sessions: no allocation then).
pub(super) fn calibrate<M>(
    settled: &mut [(M, RecipientOutcome)],
    members: usize,
    is_control: impl Fn(&M) -> bool,
    explained: impl Fn(usize) -> bool,
) -> Option<Vec<Option<Calibration>>> {
    let unexplained = |i: usize, outcome: &RecipientOutcome| {
        if explained(i) {
            None
        } else {
            unexplained(outcome)
        }
    };
    let first = settled
        .iter()
        .enumerate()
        .find_map(|(i, (_, outcome))| unexplained(i, outcome))?;
    let accepted = settled.iter().any(|(_, outcome)| {
        matches!(
            outcome,
            RecipientOutcome::Replied {
                stage: Stage::RcptTo,
                reason: Reason::Accepted,
                ..
            }
        )
    });
    let blanket = settled.len() == members
        && settled.iter().any(|(member, _)| is_control(member))
        && settled
            .iter()
            .enumerate()
            .all(|(i, (_, outcome))| unexplained(i, outcome) == Some(first));
    let rule = if accepted {
        Calibration::AcceptedAlongside
    } else if blanket {
        Calibration::Blanket
    } else {
        Calibration::Uncalibrated
    };
    let notes = settled
        .iter_mut()
        .enumerate()
        .map(|(i, (_, outcome))| {
            unexplained(i, outcome)?;
            if let RecipientOutcome::Replied { reason, .. } = outcome {
                match rule {
                    Calibration::AcceptedAlongside => *reason = Reason::MailboxNotFound,
                    Calibration::Blanket => *reason = Reason::Blocked,
                    Calibration::Uncalibrated => {}
                }
            }
            Some(rule)
        })
        .collect();
    Some(notes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::reply::{Limits, Status, parse_reply};

    /// A session's last outcomes from replies: `(is the control, the RCPT reply)`.
    fn session(replies: &[(bool, &str)]) -> Vec<(bool, RecipientOutcome)> {
        replies
            .iter()
            .map(|(control, wire)| {
                let Ok(Status::Complete(reply)) = parse_reply(wire.as_bytes(), &Limits::DEFAULT)
                else {
                    panic!("{wire:?}");
                };
                let reason = crate::verdict::classify(Stage::RcptTo, &reply);
                let outcome = RecipientOutcome::Replied {
                    stage: Stage::RcptTo,
                    reply: reply.into_owned(),
                    reason,
                };
                (*control, outcome)
            })
            .collect()
    }

    fn reasons(settled: &[(bool, RecipientOutcome)]) -> Vec<Option<Reason>> {
        settled.iter().map(|(_, o)| o.reason()).collect()
    }

    const ODD: &str = "550 5.2.4 Mailing list expansion problem\r\n";
    const ODD_521: &str = "521 5.3.0 No\r\n";
    const OK: &str = "250 2.1.5 Ok\r\n";

    #[test]
    fn accepted_alongside_makes_an_unexplained_refusal_a_missing_mailbox() {
        let mut settled = session(&[(false, OK), (false, ODD_521), (true, "550 5.1.1 no\r\n")]);
        let len = settled.len();
        let notes = calibrate(&mut settled, len, |c| *c, |_| false).expect("one to calibrate");
        assert_eq!(
            reasons(&settled),
            [
                Some(Reason::Accepted),
                Some(Reason::MailboxNotFound),
                Some(Reason::MailboxNotFound)
            ]
        );
        assert_eq!(notes, [None, Some(Calibration::AcceptedAlongside), None]);
    }

    #[test]
    fn the_same_refusal_for_everyone_and_the_control_is_a_blanket_refusal() {
        for odd in [ODD, ODD_521, "550 Rejected\r\n"] {
            let mut settled = session(&[(false, odd), (false, odd), (true, odd)]);
            let notes = calibrate(&mut settled, 3, |c| *c, |_| false).expect("calibrated");
            assert_eq!(reasons(&settled), [Some(Reason::Blocked); 3], "{odd:?}");
            assert_eq!(notes, [Some(Calibration::Blanket); 3]);
        }
    }

    #[test]
    fn without_the_control_or_with_one_answer_missing_it_is_not_blanket() {
        let mut settled = session(&[(false, ODD), (false, ODD)]);
        calibrate(&mut settled, 2, |c| *c, |_| false).expect("calibrated");
        assert_eq!(reasons(&settled), [Some(Reason::MailboxNotFound); 2]);
        let mut settled = session(&[(false, ODD), (true, ODD)]);
        // A third recipient was settled earlier (say, SMTPUTF8 unsupported).
        let notes = calibrate(&mut settled, 3, |c| *c, |_| false).expect("calibrated");
        assert_eq!(notes, [Some(Calibration::Uncalibrated); 2]);
        // Different enhanced codes are not the same refusal.
        let mut settled = session(&[(false, ODD), (true, "550 5.3.0 No\r\n")]);
        calibrate(&mut settled, 2, |c| *c, |_| false).expect("calibrated");
        assert_eq!(reasons(&settled), [Some(Reason::MailboxNotFound); 2]);
    }

    #[test]
    fn uncalibrated_refusals_keep_the_code_reading() {
        let mut settled = session(&[(false, ODD_521)]);
        let notes = calibrate(&mut settled, 1, |c| *c, |_| false).expect("calibrated");
        assert_eq!(reasons(&settled), [Some(Reason::Blocked)]);
        assert_eq!(notes, [Some(Calibration::Uncalibrated)]);
    }

    #[test]
    fn explained_replies_need_nothing() {
        let mut settled = session(&[
            (false, OK),
            (false, "550 5.1.1 <a@x>: User unknown\r\n"),
            (false, "554 5.7.1 blocked\r\n"),
            (true, "550 5.7.1 Client host rejected\r\n"),
        ]);
        assert_eq!(calibrate(&mut settled, 4, |c| *c, |_| false), None);
    }

    #[test]
    fn a_policy_refusal_is_never_calibrated_into_a_missing_mailbox() {
        let mut settled = session(&[
            (false, OK),
            (false, "550 5.0.0 Rejected: listed at a DNSBL\r\n"),
            (
                false,
                "521 5.0.0 Delivery not authorized, message refused by policy\r\n",
            ),
        ]);
        assert_eq!(calibrate(&mut settled, 3, |c| *c, |_| false), None);
        assert_eq!(reasons(&settled)[1..], [Some(Reason::Blocked); 2]);
    }

    #[test]
    fn the_detail_names_the_rule_and_the_codes() {
        let Ok(Status::Complete(reply)) = parse_reply(ODD.as_bytes(), &Limits::DEFAULT) else {
            panic!()
        };
        assert!(
            Calibration::Blanket
                .detail(&reply)
                .starts_with("calibrated: every recipient of the session and the catch-all control got the same refusal (550 5.2.4)")
        );
        assert!(
            Calibration::Uncalibrated
                .detail(&reply)
                .starts_with("uncalibrated")
        );
    }
}
