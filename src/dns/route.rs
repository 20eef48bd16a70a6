//! Mail routing (RFC 5321 §5.1): from a domain to the hosts that take its mail, in the order to
//! try them, or the reason there are none.
//!
//! - **MX records** are sorted by preference, lowest first; hosts of equal preference are
//!   shuffled, so that load spreads as the domain intends ("MUST randomize", §5.1).
//! - **Null MX** (RFC 7505): a single `MX 0 .` says the domain accepts no mail. Nothing is
//!   connected to: [`RouteError::NullMx`]. A `.` among real exchanges is a misconfiguration;
//!   the real exchanges are used.
//! - **No MX records** (NODATA): the domain itself is the mail host, at preference 0 — the
//!   "implicit MX" — if it has an address.
//! - **NXDOMAIN**: the domain does not exist: [`RouteError::DomainNotFound`].
//! - **Exchanges** are resolved to addresses (A and AAAA, as configured), from the glue of the
//!   additional section when the server sent it, by queries otherwise. Hosts without any
//!   address are dropped; if none is left, [`RouteError::NoMailServer`].
//!
//! "The domain says no" and "DNS did not answer" stay apart: NXDOMAIN, null MX and exchanges
//! that do not exist are definitive; SERVFAIL, REFUSED and timeouts are
//! [`RouteError::DnsFailure`], never a verdict on the domain. When some exchanges resolved and
//! others failed, the route holds the ones that resolved.

use std::fmt;
use std::net::IpAddr;
use std::time::Instant;

use hickory_proto::rr::{Name, RData, RecordType};
use rand::Rng;
use rand::seq::SliceRandom;

use super::lookup::{LookupFailure, Outcome};
use super::message::Question;
use crate::verdict::Reason;

/// Which address families to resolve exchanges to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressFamilies {
    /// A records only.
    V4,
    /// AAAA records only.
    V6,
    /// Both.
    Both,
}

impl AddressFamilies {
    fn types(self) -> &'static [RecordType] {
        match self {
            Self::V4 => &[RecordType::A],
            Self::V6 => &[RecordType::AAAA],
            Self::Both => &[RecordType::A, RecordType::AAAA],
        }
    }
}

/// One host that takes a domain's mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MxHost {
    /// The exchange's name, lower-case, without the trailing dot.
    pub name: String,
    /// Its MX preference (0 for an implicit MX).
    pub preference: u16,
    /// Its addresses: IPv4 first, then IPv6, each in the order DNS gave them.
    pub addresses: Vec<IpAddr>,
}

/// Where a domain's mail goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailRoute {
    /// The domain, lower-case ASCII, without the trailing dot.
    pub domain: String,
    /// The hosts to try, in order. Never empty.
    pub hosts: Vec<MxHost>,
    /// True if the domain has no MX records and its own address is used (RFC 5321 §5.1).
    pub implicit: bool,
}

/// Why a domain has no route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteError {
    /// NXDOMAIN: the domain does not exist.
    DomainNotFound,
    /// The domain publishes a null MX (RFC 7505): it accepts no mail.
    NullMx,
    /// MX records exist but no exchange has an address, or there are no MX records and the
    /// domain has no address either.
    NoMailServer,
    /// DNS did not answer; nothing is known about the domain.
    DnsFailure(LookupFailure),
}

impl RouteError {
    /// The verdict reason this routing failure means.
    #[must_use]
    pub const fn reason(self) -> Reason {
        match self {
            Self::DomainNotFound => Reason::DomainNotFound,
            Self::NullMx => Reason::NullMx,
            Self::NoMailServer => Reason::NoMailServer,
            Self::DnsFailure(_) => Reason::DnsFailure,
        }
    }
}

impl fmt::Display for RouteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DomainNotFound => f.write_str("the domain does not exist (NXDOMAIN)"),
            Self::NullMx => f.write_str("the domain accepts no mail (null MX, RFC 7505)"),
            Self::NoMailServer => f.write_str("no mail server of the domain has an address"),
            Self::DnsFailure(failure) => write!(f, "DNS failure: {failure}"),
        }
    }
}

/// The slot of the MX question; exchange questions use `host * 2 + family`.
pub(crate) const MX_SLOT: u32 = u32::MAX;

/// A host being resolved.
#[derive(Debug)]
struct PendingHost {
    name: Name,
    preference: u16,
    v4: Vec<IpAddr>,
    v6: Vec<IpAddr>,
    /// Questions not yet answered for this host.
    outstanding: u8,
}

#[derive(Debug)]
enum Stage {
    /// Waiting for the MX answer.
    Mx,
    /// Waiting for the addresses of the exchanges (or of the domain itself, if implicit).
    Addresses {
        hosts: Vec<PendingHost>,
        implicit: bool,
        failure: Option<LookupFailure>,
        nxdomain: bool,
    },
}

/// One domain's route lookup. It asks questions through `ask` and is told their outcomes with
/// [`RouteLookup::on_outcome`]; it never touches the network.
#[derive(Debug)]
pub(crate) struct RouteLookup {
    domain: Name,
    families: AddressFamilies,
    max_hosts: usize,
    stage: Stage,
    pub(crate) deadline: Instant,
}

/// What a route lookup asks for next, or its result.
pub(crate) enum Step {
    /// Ask these questions, each tagged with its slot.
    Ask(Vec<(Question, u32)>),
    /// Done.
    Done(Result<MailRoute, RouteError>),
    /// Keep waiting.
    Wait,
}

impl RouteLookup {
    pub(crate) fn new(
        domain: Name,
        families: AddressFamilies,
        max_hosts: usize,
        deadline: Instant,
    ) -> Self {
        Self {
            domain,
            families,
            max_hosts: max_hosts.max(1),
            stage: Stage::Mx,
            deadline,
        }
    }

    /// The first question: the domain's MX records.
    pub(crate) fn first_question(&self) -> (Question, u32) {
        (Question::new(&self.domain, RecordType::MX), MX_SLOT)
    }

    /// Takes the outcome of the question asked in `slot`.
    pub(crate) fn on_outcome(&mut self, slot: u32, outcome: &Outcome, rng: &mut impl Rng) -> Step {
        match (&mut self.stage, slot) {
            (Stage::Mx, MX_SLOT) => self.on_mx(outcome, rng),
            (Stage::Addresses { .. }, MX_SLOT) | (Stage::Mx, _) => Step::Wait,
            (Stage::Addresses { .. }, slot) => self.on_address(slot, outcome),
        }
    }

    fn on_mx(&mut self, outcome: &Outcome, rng: &mut impl Rng) -> Step {
        let records = match outcome {
            Outcome::NxDomain => return Step::Done(Err(RouteError::DomainNotFound)),
            Outcome::Failed(failure) => return Step::Done(Err(RouteError::DnsFailure(*failure))),
            Outcome::NoData => {
                // RFC 5321 §5.1: no MX records, so the domain is its own mail host.
                let host = PendingHost {
                    name: self.domain.clone(),
                    preference: 0,
                    v4: Vec::new(),
                    v6: Vec::new(),
                    outstanding: 0,
                };
                return self.resolve_hosts(vec![host], true, &[]);
            }
            Outcome::Records(records) => records,
        };
        let mut exchanges: Vec<(u16, Name)> = records
            .data
            .iter()
            .filter_map(|data| match data {
                RData::MX(mx) => Some((mx.preference, mx.exchange.to_lowercase())),
                _ => None,
            })
            .collect();
        if exchanges.is_empty() {
            return Step::Done(Err(RouteError::NoMailServer));
        }
        // RFC 7505 §3: "a domain that advertises a null MX MUST NOT advertise any other MX
        // RR"; one that does anyway is treated as the real exchanges say.
        exchanges.retain(|(_, exchange)| !exchange.is_root());
        if exchanges.is_empty() {
            return Step::Done(Err(RouteError::NullMx));
        }
        exchanges.sort_by_key(|(preference, _)| *preference);
        exchanges.dedup_by(|later, earlier| later.1 == earlier.1);
        // A stable sort followed by a shuffle of each run of equal preferences.
        let mut start = 0;
        while start < exchanges.len() {
            let preference = exchanges[start].0;
            let end = exchanges[start..]
                .iter()
                .position(|(p, _)| *p != preference)
                .map_or(exchanges.len(), |len| start + len);
            exchanges[start..end].shuffle(rng);
            start = end;
        }
        exchanges.truncate(self.max_hosts);
        let hosts = exchanges
            .into_iter()
            .map(|(preference, name)| PendingHost {
                name,
                preference,
                v4: Vec::new(),
                v6: Vec::new(),
                outstanding: 0,
            })
            .collect();
        self.resolve_hosts(hosts, false, &records.additionals)
    }

    /// Fills hosts from glue, and asks for the addresses of the others.
    fn resolve_hosts(
        &mut self,
        mut hosts: Vec<PendingHost>,
        implicit: bool,
        glue: &[hickory_proto::rr::Record],
    ) -> Step {
        let mut questions = Vec::new();
        for (index, host) in hosts.iter_mut().enumerate() {
            for record in glue.iter().filter(|r| r.name == host.name) {
                match record.data {
                    RData::A(a) if self.families != AddressFamilies::V6 => host.v4.push(a.0.into()),
                    RData::AAAA(aaaa) if self.families != AddressFamilies::V4 => {
                        host.v6.push(aaaa.0.into());
                    }
                    _ => {}
                }
            }
            if !host.v4.is_empty() || !host.v6.is_empty() {
                continue;
            }
            for (family, &qtype) in self.families.types().iter().enumerate() {
                let slot = u32::try_from(index * 2 + family).unwrap_or(u32::MAX - 1);
                questions.push((Question::new(&host.name, qtype), slot));
                host.outstanding += 1;
            }
        }
        self.stage = Stage::Addresses {
            hosts,
            implicit,
            failure: None,
            nxdomain: false,
        };
        if questions.is_empty() {
            return self.finish();
        }
        Step::Ask(questions)
    }

    fn on_address(&mut self, slot: u32, outcome: &Outcome) -> Step {
        let Stage::Addresses {
            hosts,
            failure,
            nxdomain,
            ..
        } = &mut self.stage
        else {
            return Step::Wait;
        };
        let index = (slot / 2) as usize;
        let Some(host) = hosts.get_mut(index) else {
            return Step::Wait;
        };
        if host.outstanding == 0 {
            return Step::Wait;
        }
        host.outstanding -= 1;
        match outcome {
            Outcome::Records(records) => {
                for data in &records.data {
                    match data {
                        RData::A(a) => host.v4.push(a.0.into()),
                        RData::AAAA(aaaa) => host.v6.push(aaaa.0.into()),
                        _ => {}
                    }
                }
            }
            Outcome::NoData => {}
            Outcome::NxDomain => *nxdomain = true,
            Outcome::Failed(why) => *failure = failure.or(Some(*why)),
        }
        if hosts.iter().any(|h| h.outstanding > 0) {
            return Step::Wait;
        }
        self.finish()
    }

    /// All questions answered: the route, or why there is none.
    fn finish(&mut self) -> Step {
        let Stage::Addresses {
            hosts,
            implicit,
            failure,
            nxdomain,
        } = std::mem::replace(&mut self.stage, Stage::Mx)
        else {
            return Step::Wait;
        };
        let resolved: Vec<MxHost> = hosts
            .into_iter()
            .filter(|h| !h.v4.is_empty() || !h.v6.is_empty())
            .map(|h| MxHost {
                name: display_name(&h.name),
                preference: h.preference,
                addresses: h.v4.into_iter().chain(h.v6).collect(),
            })
            .collect();
        if !resolved.is_empty() {
            return Step::Done(Ok(MailRoute {
                domain: display_name(&self.domain),
                hosts: resolved,
                implicit,
            }));
        }
        Step::Done(Err(match (failure, implicit && nxdomain) {
            // Nothing resolved and some lookup failed: maybe it would have.
            (Some(failure), _) => RouteError::DnsFailure(failure),
            // The domain vanished between the MX and the address lookup.
            (None, true) => RouteError::DomainNotFound,
            (None, false) => RouteError::NoMailServer,
        }))
    }
}

/// A name as people write it: lower-case, no trailing dot.
fn display_name(name: &Name) -> String {
    let mut text = name.to_lowercase().to_ascii();
    if text.len() > 1 && text.ends_with('.') {
        text.pop();
    }
    text
}
