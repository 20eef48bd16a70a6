//! mxprobe's own DNS client: from a mail domain to the hosts that take its mail.
//!
//! No system resolver, no blocking `getaddrinfo`, no second runtime: the client is a sans-IO
//! state machine ([`Resolver`]) that the one event loop feeds with datagrams, stream bytes and
//! the time, and that answers with sockets to open, bytes to send and finished
//! [`MailRoute`]s. `hickory-proto` encodes queries and decodes messages; everything else —
//! which questions, which server, when to retry, what to believe, what to cache — is here.
//!
//! | file | what it is |
//! |---|---|
//! | `resolv_conf.rs` | nameservers and their timing, from `/etc/resolv.conf` or `--dns-server` |
//! | `message.rs` | queries out; responses checked against their query (RFC 5452) |
//! | `answer.rs` | what an accepted response says: records, alias, NODATA, NXDOMAIN, error; TTLs |
//! | `lookup.rs` | one (name, type) question to its outcome: tries, retransmits, TCP, EDNS fallback, coalescing |
//! | `cache.rs` | outcomes kept for their TTL (RFC 2308 for negative ones), bounded |
//! | `route.rs` | RFC 5321 §5.1 routing: MX order, equal preferences shuffled, implicit MX, null MX |
//! | `resolver.rs` | [`Resolver`], the calling contract the driver follows |
//!
//! # Guarantees
//!
//! - Every lookup and every route ends, by its deadline at the latest; nothing waits unbounded.
//! - A response is believed only if its ID, question, source address and the socket (so the
//!   random port) it arrived on match the query; anything else is dropped and counted.
//! - No input makes it panic: garbage, truncated packets and compression loops are dropped.
//! - "The domain says no" (NXDOMAIN, null MX, no mail server) and "DNS did not answer"
//!   ([`RouteError::DnsFailure`]) never mix: a DNS failure is never a verdict on an address.

mod answer;
mod cache;
mod lookup;
mod message;
mod resolv_conf;
mod resolver;
mod route;

pub use answer::MAX_CHAIN;
pub use cache::CachePolicy;
pub use message::{EDNS_PAYLOAD, Question, Rejected, check_response, encode_query, tcp_frame};
pub use resolv_conf::{DNS_PORT, NameserverConfig, ResolvConfError, parse_server};
pub use resolver::{
    LookupConfig, LookupFailure, LookupStats, Outcome, RecordSet, Resolver, ResolverConfig,
    ResolverStats, RouteEvent, RouteId, SocketId, Transmit,
};
pub use route::{AddressFamilies, MailRoute, MxHost, RouteError};

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "a test needs an origin for its hand-moved clock"
)]
mod tests;
