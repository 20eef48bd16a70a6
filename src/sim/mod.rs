//! Simulated peers on loopback, for the tests and for `mxprobe bench`: one implementation of
//! each, used by both.
//!
//! - [`dns`]: a DNS responder (UDP and TCP) serving a zone given in code, with per-name
//!   misbehaviours a real server will not produce (silence, garbage, spoofed IDs, wrong
//!   questions, forced truncation, errors).
//! - [`smtp`]: a farm of SMTP servers on loopback, one scripted personality per address
//!   (mailboxes, catch-all, greylisting, refusals, latency) and the failures a prober must
//!   survive (silence, garbage, hang-ups, dripped and tarpitted replies); it counts DATA.
//! - [`net`]: an in-memory world for deterministic simulations of the whole engine: the same
//!   dialogue and DNS answer logic behind virtual sockets, on a virtual clock, with seeded
//!   faults and a stamp on every reply that says what it answered.
//! - [`providers`]: the big mail systems mxprobe has profiles for, as personalities that answer
//!   as each provider documents (banners, refusals, throttling).
//! - [`socks5`]: a SOCKS5 proxy (CONNECT, optional username/password) relaying on a mio loop,
//!   for `mxprobe bench --proxy` and the tests.
//! - [`tls`]: a self-signed certificate and the rustls server configuration that presents it,
//!   for the simulated servers' STARTTLS.
//! - [`DocWorld`]: the smallest world, `example.test` with two mailboxes, for examples and doc
//!   tests.
//! - [`world`]: both of them built into a generated world of thousands of domains, with
//!   addresses whose right verdicts are known, for `mxprobe bench`.
//!
//! The loopback simulators run on threads of their own and may read the clock (they sleep to
//! model latency); [`net`] reads none: its caller passes the time. The sans-IO core never
//! reads it.

#![allow(
    clippy::disallowed_methods,
    reason = "the simulator models servers in real time: it may read the clock"
)]

pub mod dns;
mod doc_world;
pub mod net;
pub mod providers;
pub mod smtp;
pub mod socks5;
pub mod tls;
pub mod world;

pub use doc_world::DocWorld;
