//! [`resolve_routes`]: an event loop that runs the DNS client alone, from domains to mail
//! routes. `mxprobe mx` is built on it, and so are the DNS integration tests.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::time::Instant;

use mio::{Events, Poll};

use super::{DnsInput, DnsSockets};
use crate::dns::{MailRoute, Resolver, ResolverConfig, RouteError, RouteId};

/// One domain's routing, as [`resolve_routes`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteResolution {
    /// The domain as given.
    pub domain: String,
    /// Its route, or why there is none.
    pub result: Result<MailRoute, RouteError>,
}

/// Routes `domains` (ASCII, as `Address::domain` gives them) and returns one result per domain,
/// in the order given. At most `concurrency` routes are in flight at once, so that a long list
/// does not open a socket per domain at the same moment; and new routes wait while the open
/// sockets near the file-descriptor limit (raised first, see
/// [`raise_open_files_limit`](super::raise_open_files_limit)).
///
/// Errors are the event loop's own (no `epoll`, no randomness from the OS); every DNS failure
/// is a result.
pub fn resolve_routes(
    config: ResolverConfig,
    domains: &[String],
    concurrency: usize,
) -> io::Result<Vec<RouteResolution>> {
    // Each route in flight holds a few sockets at most moments: its lookup's tries.
    let fd_limit = super::raise_open_files_limit(concurrency as u64 * 4 + super::RESERVED_FDS)?;
    let socket_budget = usize::try_from(fd_limit.saturating_sub(super::RESERVED_FDS))
        .unwrap_or(usize::MAX)
        .max(8);
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let mut resolver = Resolver::new(config, super::os_seed()?);
    let mut sockets = DnsSockets::new(0..usize::MAX);
    let mut waiting: VecDeque<usize> = (0..domains.len()).collect();
    let mut in_flight: HashMap<RouteId, usize> = HashMap::new();
    let mut results: Vec<Option<Result<MailRoute, RouteError>>> = vec![None; domains.len()];
    let mut done = 0;
    while done < domains.len() {
        let now = Instant::now();
        // Room for a route: under the cap, and sockets for its first tries (a lookup of the
        // MX, then of the exchanges' addresses, several at once).
        while in_flight.len() < concurrency.max(1) && sockets.len() + 8 <= socket_budget {
            let Some(index) = waiting.pop_front() else {
                break;
            };
            let id = resolver.resolve(&domains[index], now);
            in_flight.insert(id, index);
        }
        while let Some(transmit) = resolver.poll_transmit() {
            sockets.transmit(poll.registry(), transmit, |input| {
                feed(&mut resolver, input, now);
            });
        }
        while let Some(event) = resolver.poll_event() {
            if let Some(index) = in_flight.remove(&event.id) {
                results[index] = Some(event.result);
                done += 1;
            }
        }
        if done == domains.len() {
            break;
        }
        // Routes may have finished at once (from the cache): admit more before sleeping.
        if in_flight.len() < concurrency.max(1)
            && !waiting.is_empty()
            && sockets.len() + 8 <= socket_budget
        {
            continue;
        }
        let timeout = resolver
            .poll_timeout()
            .map(|at| at.saturating_duration_since(Instant::now()));
        match poll.poll(&mut events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        let now = Instant::now();
        for event in &events {
            sockets.ready(poll.registry(), event.token(), |input| {
                feed(&mut resolver, input, now);
            });
        }
        if resolver.poll_timeout().is_some_and(|at| at <= now) {
            resolver.handle_timeout(now);
        }
    }
    Ok(domains
        .iter()
        .zip(results)
        .map(|(domain, result)| RouteResolution {
            domain: domain.clone(),
            // Every index reached `done` with a result; a missing one cannot occur.
            result: result.unwrap_or(Err(RouteError::DnsFailure(
                crate::dns::LookupFailure::Timeout,
            ))),
        })
        .collect())
}

/// Hands what happened on a DNS socket to the resolver.
fn feed(resolver: &mut Resolver, input: DnsInput<'_>, now: Instant) {
    match input {
        DnsInput::Udp {
            socket,
            from,
            bytes,
        } => resolver.handle_udp(socket, from, bytes, now),
        DnsInput::Tcp { socket, bytes } => resolver.handle_tcp(socket, bytes, now),
        DnsInput::Closed { socket } => resolver.handle_socket_closed(socket, now),
    }
}
