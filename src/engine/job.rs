//! One submitted address from submission to verdict ([`Job`]), who a session asks about
//! ([`Member`]), and a reply that decided ([`Decided`]).
//!
//! A busy engine holds a hundred thousand jobs, so a [`Job`] is kept to 64 bytes (a size test
//! holds it there): the domain is a 32-bit index, the time a 64-bit count from the engine's
//! epoch, the counters 16-bit, and what few addresses need sits behind one box ([`Rare`]).

use std::net::IpAddr;
use std::time::Duration;

use super::special_purpose::SpecialRange;
use crate::address::Address;
use crate::dns::RouteError;
use crate::smtp::reply::OwnedReply;
use crate::tls::TlsVersion;
use crate::verdict::Reason;

use super::domain::DomainId;

/// Names a job in the scheduler's table.
pub(super) type JobId = super::slab::Key;

/// One submitted address, until its verdict.
#[derive(Debug)]
pub(super) struct Job {
    pub(super) tag: u64,
    pub(super) address: Address,
    /// When it was submitted, in nanoseconds since the scheduler's epoch.
    pub(super) submitted: u64,
    pub(super) rare: Option<Box<Rare>>,
    domain: u32,
    /// Sessions it was sent in.
    pub(super) attempts: u16,
    /// Times it was asked again after a 4xx.
    pub(super) retries: u16,
    /// Mail servers that failed it.
    pub(super) failovers: u16,
    /// Times a server handed it back for taking fewer recipients than were sent.
    pub(super) handed_back: u16,
    /// "Slow down" replies from its provider waited out.
    pub(super) throttled: u8,
    /// Sessions that failed it for the prober's own means (a SOCKS5 proxy that failed, a
    /// source address refused by name) and sent it to the next proxy or address.
    pub(super) detours: u8,
    /// Asked again without pipelining once already, after a session could not vouch for its
    /// answer: its sessions are lock-step from now on.
    pub(super) lock_step: bool,
    /// Someone is waiting ([`Priority::RealTime`](super::Priority::RealTime)): first in its
    /// domain's queue.
    pub(super) urgent: bool,
}

impl Job {
    /// A job not yet asked about.
    pub(super) fn new(tag: u64, address: Address, submitted: u64, domain: DomainId) -> Self {
        Self {
            tag,
            address,
            submitted,
            rare: None,
            domain: u32::try_from(domain).expect("fewer than 2^32 domains"),
            attempts: 0,
            retries: 0,
            failovers: 0,
            handed_back: 0,
            throttled: 0,
            detours: 0,
            lock_step: false,
            urgent: false,
        }
    }

    pub(super) fn domain(&self) -> DomainId {
        self.domain as DomainId
    }

    /// What only some addresses have, made on first use.
    pub(super) fn rare(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Box::default)
    }
}

/// What only some addresses have.
#[derive(Debug, Default)]
pub(super) struct Rare {
    /// The last 4xx reply, kept for the verdict if the retries run out.
    pub(super) last_temporary: Option<Decided>,
    /// The conversations it was part of (`--transcript`).
    pub(super) transcript: Option<String>,
    /// The deadline of the job's own submission, in nanoseconds since the epoch.
    pub(super) deadline: Option<u64>,
    /// The job's own submission was answered `unknown/timeout` at its deadline: the probe
    /// goes on for the submissions that joined it and for the results remembered.
    pub(super) answered: bool,
    /// Later submissions of the same mailbox, which get the job's result.
    pub(super) joined: Vec<Joined>,
    /// When its server first said "greylisted, try again later", in nanoseconds since the
    /// epoch, and which of the domain's servers it was.
    pub(super) greylisted_at: Option<u64>,
    pub(super) greylisted_by: Option<usize>,
    /// The retry after that was timed by the domain's known greylisting wait.
    pub(super) timed_by_known_wait: bool,
    /// How long the greylisting held it, once its server answered after all.
    pub(super) greylist_wait: Option<Duration>,
}

/// A submission of a mailbox already in flight, waiting for that probe's result.
#[derive(Debug)]
pub(super) struct Joined {
    /// Its tag.
    pub(super) tag: u64,
    /// Its text as submitted.
    pub(super) address: String,
    /// When it was submitted, in nanoseconds since the epoch.
    pub(super) submitted: u64,
    /// Its deadline, in nanoseconds since the epoch.
    pub(super) deadline: Option<u64>,
}

/// Who a session's recipient is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Member {
    Job(JobId),
    /// The catch-all control: a random local part at the domain.
    Control,
}

/// A reply that decided, with the host that gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Decided {
    pub(super) reason: Reason,
    pub(super) reply: Option<OwnedReply>,
    pub(super) mx: Option<String>,
    pub(super) ip: Option<IpAddr>,
    pub(super) detail: Option<String>,
    /// The TLS version of the session whose reply decided, if it spoke TLS.
    pub(super) tls: Option<TlsVersion>,
}

impl Decided {
    /// The verdict of every address at a domain whose mail route could not be found.
    pub(super) fn route_failed(error: RouteError) -> Self {
        Self {
            reason: error.reason(),
            reply: None,
            mx: None,
            ip: None,
            detail: Some(error.to_string()),
            tls: None,
        }
    }

    /// The verdict of every address at a domain whose mail servers this prober cannot reach:
    /// `ip` (at `host`) is of an address family it does not connect over (`why`). The servers
    /// exist: `unknown`, never a verdict on the domain.
    pub(super) fn unreachable(host: &str, ip: IpAddr, why: &str) -> Self {
        let family = if ip.is_ipv4() { "IPv4" } else { "IPv6" };
        Self {
            reason: Reason::ConnectionFailed,
            reply: None,
            mx: Some(host.to_owned()),
            ip: Some(ip),
            detail: Some(format!(
                "no mail server of the domain can be reached from this prober: {host} is {ip}, \
                 an {family} address, and {why}"
            )),
            tls: None,
        }
    }

    /// The verdict of every address at a domain whose every mail server is at a
    /// special-purpose address (RFC 6890): no packet goes there unless the configuration
    /// allows it.
    pub(super) fn only_special_purpose(host: &str, ip: IpAddr, range: &SpecialRange) -> Self {
        Self {
            reason: Reason::NoMailServer,
            reply: None,
            mx: Some(host.to_owned()),
            ip: Some(ip),
            detail: Some(format!(
                "every mail server of the domain is at a special-purpose address ({host} is \
                 {ip}, in {range}); mxprobe does not connect to such addresses unless allowed \
                 (--allow-private-mx)"
            )),
            tls: None,
        }
    }
}

#[cfg(test)]
mod size_tests {
    use super::*;

    /// The engine holds up to `concurrency × rcpts_per_session + lookahead` of these (about
    /// 100,000 at 10,000 sessions): their size is most of its memory per session.
    #[test]
    fn a_held_address_stays_small() {
        assert!(
            std::mem::size_of::<Job>() <= 64,
            "{}",
            std::mem::size_of::<Job>()
        );
        assert!(std::mem::size_of::<Address>() <= 24);
        // A slot of the jobs table: the job and its stamp.
        assert!(std::mem::size_of::<(u32, Job)>() <= 72);
    }
}
