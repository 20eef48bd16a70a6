//! [`Resolver`]: the sans-IO DNS client the driver feeds.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hickory_proto::rr::Name;

pub use super::lookup::{
    LookupConfig, LookupFailure, LookupStats, Outcome, RecordSet, SocketId, Transmit,
};
use super::lookup::{Lookups, Waiter};
use super::route::{AddressFamilies, MailRoute, RouteError, RouteLookup, Step};

/// How the resolver works: nameservers, timing, cache, and what a route holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolverConfig {
    /// Nameservers, tries, lookup deadline, cache.
    pub lookups: LookupConfig,
    /// Which addresses of the exchanges to look up. Default both.
    pub families: AddressFamilies,
    /// Most exchanges a route keeps, after sorting. Default 10: more than any failover
    /// needs, few enough that a domain with a hundred MX records costs little.
    pub max_hosts: usize,
    /// The most one route lookup may take, MX and address lookups together. Default 45 s.
    pub route_timeout: Duration,
}

impl ResolverConfig {
    /// The defaults around the given lookup configuration.
    #[must_use]
    pub fn new(lookups: LookupConfig) -> Self {
        Self {
            lookups,
            families: AddressFamilies::Both,
            max_hosts: 10,
            route_timeout: Duration::from_secs(45),
        }
    }
}

/// Names one route lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteId(pub u64);

/// A route lookup finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteEvent {
    /// Which lookup.
    pub id: RouteId,
    /// Its result.
    pub result: Result<MailRoute, RouteError>,
}

/// What the resolver has done, for statistics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResolverStats {
    /// The record lookups underneath.
    pub lookups: LookupStats,
    /// Route lookups started.
    pub routes: u64,
    /// Route lookups that hit their deadline.
    pub route_timeouts: u64,
    /// Entries in the cache.
    pub cached: usize,
}

/// The sans-IO DNS client: domains in, mail routes out.
///
/// # Calling contract
///
/// Inputs, each with the current time (`now` never goes backwards):
/// - [`resolve`](Self::resolve): a domain to route;
/// - [`handle_udp`](Self::handle_udp), [`handle_tcp`](Self::handle_tcp),
///   [`handle_socket_closed`](Self::handle_socket_closed): what happened on the sockets it
///   asked for;
/// - [`handle_timeout`](Self::handle_timeout): the instant [`poll_timeout`](Self::poll_timeout)
///   named has come.
///
/// After every input, drain the outputs: [`poll_transmit`](Self::poll_transmit) until `None`
/// (open sockets, send, close), [`poll_event`](Self::poll_event) until `None` (finished
/// routes), then ask [`poll_timeout`](Self::poll_timeout) when to call again.
///
/// The resolver owns no socket and reads no clock, so every path is testable with hand-made
/// packets and a hand-moved clock. Randomness (query IDs, the shuffle of equal MX preferences)
/// comes from a CSPRNG seeded by the caller: seed it from the operating system in production,
/// with a constant in tests.
#[derive(Debug)]
pub struct Resolver {
    config: ResolverConfig,
    lookups: Lookups,
    routes: HashMap<u64, RouteLookup>,
    route_timers: BinaryHeap<Reverse<(Instant, u64)>>,
    events: VecDeque<RouteEvent>,
    next_route: u64,
    route_timeouts: u64,
}

impl Resolver {
    /// A resolver with an empty cache.
    #[must_use]
    pub fn new(config: ResolverConfig, seed: [u8; 32]) -> Self {
        let lookups = Lookups::new(config.lookups.clone(), seed);
        Self {
            config,
            lookups,
            routes: HashMap::new(),
            route_timers: BinaryHeap::new(),
            events: VecDeque::new(),
            next_route: 0,
            route_timeouts: 0,
        }
    }

    /// Starts routing `domain` (ASCII, as `Address::domain` gives it; a trailing dot is
    /// optional). The result comes as a [`RouteEvent`], at once if the cache knows enough.
    pub fn resolve(&mut self, domain: &str, now: Instant) -> RouteId {
        let id = self.next_route;
        self.next_route += 1;
        let name = match Name::from_ascii(domain) {
            Ok(mut name) if !domain.is_empty() && !name.is_root() => {
                name.set_fqdn(true);
                name
            }
            _ => {
                self.events.push_back(RouteEvent {
                    id: RouteId(id),
                    result: Err(RouteError::DnsFailure(LookupFailure::InvalidName)),
                });
                return RouteId(id);
            }
        };
        let deadline = now + self.config.route_timeout;
        let route = RouteLookup::new(name, self.config.families, self.config.max_hosts, deadline);
        let (question, slot) = route.first_question();
        self.routes.insert(id, route);
        self.route_timers.push(Reverse((deadline, id)));
        self.lookups.want(question, Waiter { route: id, slot }, now);
        self.dispatch(now);
        RouteId(id)
    }

    /// A datagram arrived on `socket` from `from`.
    pub fn handle_udp(
        &mut self,
        socket: SocketId,
        from: SocketAddr,
        datagram: &[u8],
        now: Instant,
    ) {
        self.lookups.handle_udp(socket, from, datagram, now);
        self.dispatch(now);
    }

    /// Bytes arrived on the TCP connection `socket`.
    pub fn handle_tcp(&mut self, socket: SocketId, bytes: &[u8], now: Instant) {
        self.lookups.handle_tcp(socket, bytes, now);
        self.dispatch(now);
    }

    /// `socket` failed or the peer closed it (connection refused, ICMP unreachable, EOF).
    pub fn handle_socket_closed(&mut self, socket: SocketId, now: Instant) {
        self.lookups.handle_socket_closed(socket, now);
        self.dispatch(now);
    }

    /// Time has come: retransmit, give up, time out routes.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.lookups.handle_timeout(now);
        while let Some(&Reverse((at, id))) = self.route_timers.peek() {
            if at > now {
                break;
            }
            self.route_timers.pop();
            if self.routes.get(&id).is_some_and(|r| r.deadline == at) {
                self.routes.remove(&id);
                self.route_timeouts += 1;
                self.events.push_back(RouteEvent {
                    id: RouteId(id),
                    result: Err(RouteError::DnsFailure(LookupFailure::Timeout)),
                });
            }
        }
        self.dispatch(now);
    }

    /// The next socket operation for the driver.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.lookups.poll_transmit()
    }

    /// The next finished route.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<RouteEvent> {
        self.events.pop_front()
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next, if anything waits.
    #[must_use]
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        while let Some(&Reverse((at, id))) = self.route_timers.peek() {
            if self.routes.get(&id).is_some_and(|r| r.deadline == at) {
                break;
            }
            self.route_timers.pop();
        }
        let route = self.route_timers.peek().map(|Reverse((at, _))| *at);
        match (self.lookups.poll_timeout(), route) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Route lookups not finished yet.
    #[must_use]
    pub fn routes_in_flight(&self) -> usize {
        self.routes.len()
    }

    /// Record lookups started and not finished, queued ones included.
    #[must_use]
    pub fn lookups_in_flight(&self) -> usize {
        self.lookups.in_flight()
    }

    /// Record lookups on the wire now (at most `LookupConfig::max_in_flight`).
    #[must_use]
    pub fn lookups_on_the_wire(&self) -> usize {
        self.lookups.on_the_wire()
    }

    /// Counters.
    #[must_use]
    pub fn stats(&self) -> ResolverStats {
        ResolverStats {
            lookups: self.lookups.stats(),
            routes: self.next_route,
            route_timeouts: self.route_timeouts,
            cached: self.lookups.cached(),
        }
    }

    /// Hands finished record lookups to the routes waiting for them, which may ask more
    /// questions (answered at once from the cache, or sent), until nothing is ready.
    fn dispatch(&mut self, now: Instant) {
        while let Some(ready) = self.lookups.poll_ready() {
            let Some(route) = self.routes.get_mut(&ready.waiter.route) else {
                // The route timed out meanwhile; the answer still went into the cache.
                continue;
            };
            let step = route.on_outcome(ready.waiter.slot, &ready.outcome, self.lookups.rng());
            match step {
                Step::Wait => {}
                Step::Ask(questions) => {
                    for (question, slot) in questions {
                        let waiter = Waiter {
                            route: ready.waiter.route,
                            slot,
                        };
                        self.lookups.want(question, waiter, now);
                    }
                }
                Step::Done(result) => {
                    self.routes.remove(&ready.waiter.route);
                    self.events.push_back(RouteEvent {
                        id: RouteId(ready.waiter.route),
                        result,
                    });
                }
            }
        }
    }
}
