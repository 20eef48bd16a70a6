//! The invariants checked on a verdict, on the scheduler's census and on the world.

use std::fmt;

use mxprobe::Config;
use mxprobe::engine::{Census, VerifyResult};
use mxprobe::sim::net::{Fate, Network, ReplyLog, stamp_of};
use mxprobe::verdict::Reason;

/// An invariant broken, with what shows it.
#[derive(Debug, Clone)]
pub struct Violation {
    /// The invariant, as the harness's documentation names it.
    pub invariant: &'static str,
    /// What happened.
    pub detail: String,
    /// The connection involved, for the trace excerpt.
    pub conn: Option<u64>,
    /// The submission involved, for the trace excerpt.
    pub tag: Option<u64>,
    /// What was special about the connection involved (its server's behaviour, the faults
    /// there), to group failures by cause.
    pub cause: String,
}

impl Violation {
    pub fn new(invariant: &'static str, detail: String) -> Self {
        Self {
            invariant,
            detail,
            conn: None,
            tag: None,
            cause: String::new(),
        }
    }

    pub fn on_conn(mut self, conn: u64) -> Self {
        self.conn = Some(conn);
        self
    }

    pub fn because(mut self, cause: String) -> Self {
        self.cause = cause;
        self
    }

    pub fn on_tag(mut self, tag: u64) -> Self {
        self.tag = Some(tag);
        self
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.invariant, self.detail)
    }
}

/// A verdict in one trace line.
pub fn describe(result: &VerifyResult) -> String {
    let smtp = result.smtp.as_ref().map_or_else(String::new, |reply| {
        format!(
            " smtp={:?}",
            String::from_utf8_lossy(reply.as_reply().wire()).trim_end()
        )
    });
    format!(
        "result #{} {} {}/{}{smtp} attempts={}",
        result.tag,
        result.address,
        result.verdict(),
        result.reason.as_str(),
        result.attempts
    )
}

/// A `deliverable` (or `accept_all`) is backed by a 250/251 that answered the address's own
/// RCPT; a `mailbox_not_found` (or `mailbox_disabled`) by a 5yz that did. The reply's stamp
/// says which command it answered.
pub fn alignment(result: &VerifyResult, net: &Network) -> Result<(), Violation> {
    let replies: &ReplyLog = net.replies();
    let (invariant, wanted, code_fits): (&'static str, &str, fn(u16) -> bool) = match result.reason
    {
        Reason::Accepted | Reason::AcceptAll => (
            "a deliverable is a 250/251 to its own RCPT",
            "a 250/251",
            |code| code == 250 || code == 251,
        ),
        Reason::MailboxNotFound | Reason::MailboxDisabled => (
            "an undeliverable mailbox is a 5yz to its own RCPT",
            "a 5yz",
            |code| (500..600).contains(&code),
        ),
        _ => return Ok(()),
    };
    let fail = |detail: String, conn: Option<u64>| {
        let violation = Violation::new(invariant, detail).on_tag(result.tag);
        Err(match conn {
            Some(conn) => violation.on_conn(conn).because(net.story(conn)),
            None => violation,
        })
    };
    let Some(reply) = &result.smtp else {
        return fail(format!("{} without a reply", describe(result)), None);
    };
    let reply = reply.as_reply();
    let Some(id) = reply.lines().last().and_then(stamp_of) else {
        return fail(
            format!("{}: the reply carries no stamp", describe(result)),
            None,
        );
    };
    let Some(record) = replies.get(id) else {
        return fail(
            format!("{}: no reply {id} in the world", describe(result)),
            None,
        );
    };
    let code = reply.code().get();
    let mailbox = result.mailbox.as_deref().unwrap_or_default();
    if !code_fits(code) || record.fate == Fate::Injected || !is_rcpt_for(&record.command, mailbox) {
        return fail(
            format!(
                "{}: reply {id} ({code}) answered {:?} on c{} ({:?}); wanted {wanted} to \
                 RCPT TO:<{mailbox}>",
                describe(result),
                record.command,
                record.conn,
                record.fate
            ),
            Some(record.conn),
        );
    }
    Ok(())
}

/// Whether `command` is `RCPT TO:<mailbox …>` for this mailbox, case aside.
fn is_rcpt_for(command: &str, mailbox: &str) -> bool {
    let Some(head) = command.get(..8) else {
        return false;
    };
    if !head.eq_ignore_ascii_case("RCPT TO:") {
        return false;
    }
    let path = command[8..].trim_start();
    let Some(inner) = path.strip_prefix('<').and_then(|p| p.split_once('>')) else {
        return false;
    };
    inner.0.to_lowercase() == mailbox.to_lowercase()
}

/// The census stays within what the work submitted and in flight explains:
///
/// - `jobs` ≤ addresses submitted and not yet answered;
/// - `held + queued` ≤ `jobs` (an address waits in one place at a time);
/// - `jobs` ≤ the submissions not yet answered, plus those answered at their deadline (whose
///   probes go on);
/// - `sessions` ≤ `concurrency`;
/// - `domains` ≤ addresses submitted (one per distinct domain at most);
/// - `timers` ≤ 4 × (`sessions` + `domains` + `jobs` + 2) + 1024: one live entry per session,
///   domain wake-up and retry, plus the back-off and the scheduling pass; the heap keeps at
///   most as many dead entries as live ones above its compaction floor of 1,024 entries.
pub fn census(
    census: &Census,
    config: &Config,
    submitted: usize,
    answered: usize,
    past_deadline: u64,
) -> Result<(), Violation> {
    // A submission answered at its deadline leaves its probe running in the background.
    let open = submitted.saturating_sub(answered) + usize::try_from(past_deadline).unwrap_or(0);
    let timer_bound = 4 * (census.sessions + census.domains + census.jobs + 2) + 1024;
    let broken = if census.jobs > open {
        Some(format!("{} jobs for {open} open addresses", census.jobs))
    } else if census.held + census.queued > census.jobs {
        Some(format!(
            "{} held and {} queued for {} jobs: an address waits in two places",
            census.held, census.queued, census.jobs
        ))
    } else if census.sessions > config.concurrency() {
        Some(format!(
            "{} sessions, concurrency {}",
            census.sessions,
            config.concurrency()
        ))
    } else if census.domains > submitted {
        Some(format!(
            "{} domains for {submitted} addresses",
            census.domains
        ))
    } else if census.timers > timer_bound {
        Some(format!("{} timers, bound {timer_bound}", census.timers))
    } else {
        None
    };
    match broken {
        Some(detail) => Err(Violation::new(
            "memory and timers bounded",
            format!("{detail}; census {census:?}"),
        )),
        None => Ok(()),
    }
}

/// The world itself stays bounded: what it has in flight is what the open connections and
/// sockets explain.
pub fn world_bounded(net: &Network) -> Result<(), Violation> {
    let bound = 64 * (net.links() + 64) + 4096;
    if net.in_flight() > bound {
        return Err(Violation::new(
            "memory and timers bounded",
            format!(
                "the world has {} things in flight for {} connections",
                net.in_flight(),
                net.links()
            ),
        ));
    }
    Ok(())
}
