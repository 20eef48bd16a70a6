//! The one place that does I/O and reads the clock: `mio` event loops around the sans-IO
//! state machines.
//!
//! - `socket.rs`: the sockets. One table type (`SocketTable`: tokens from its own range, a
//!   slab of sockets, registration with `epoll`) and one recipe each for a nonblocking TCP
//!   connect (with an optional source address) and a connected UDP socket. On top of them,
//!   what each protocol does on an event:
//!   - `socket/smtp.rs`: the engine's SMTP connections (`SmtpSockets`): carries out the
//!     scheduler's `ConnIo`, drains reads into the scheduler, writes what it has.
//!   - `socket/dns.rs`: the DNS client's UDP and TCP sockets (`DnsSockets`): carries out the
//!     client's `Transmit`s and hands what it reads back to the loop as `DnsInput`s, through
//!     a closure, so that the same sockets serve the engine's scheduler and the resolver
//!     alone.
//! - `engine.rs`: [`Engine`], the scheduler on its own thread and loop, fed through a
//!   [`Handle`], verdicts as [`Results`] or to a callback.
//! - `lanes.rs`: the engine's SMTP connections in two lanes, the sessions of real-time
//!   addresses served between every few events of a turn rather than in turn with the bulk
//!   ones.
//! - `routes.rs`: an event loop that runs the [`Resolver`](crate::dns::Resolver) alone, for
//!   `mxprobe mx` and for tests ([`resolve_routes`]).
//! - `os.rs`: the open-file limit ([`raise_open_files_limit`], [`RESERVED_FDS`]) and the
//!   seed from the OS ([`os_seed`]).
//! - `cpu.rs` (feature `sim`): CPU time of the process and its threads, from `/proc`, for
//!   `mxprobe bench`.
//!
//! The rules every loop here keeps (STYLE.md habit 8): the state machine decides what happens;
//! the loop drains each readiness event until `WouldBlock`, feeds what it read and the current
//! instant in, carries out what comes back, and sleeps in `poll` until the next event or the
//! deadline the state machine names — never longer, never busy.

#![allow(
    clippy::disallowed_methods,
    reason = "the driver is the one place that reads the clock"
)]

#[cfg(feature = "sim")]
pub mod cpu;
mod engine;
mod lanes;
mod os;
mod routes;
mod socket;

pub use engine::{Engine, EngineReport, EngineSnapshot, EngineStopped, Handle, NoResult, Results};
pub use os::{RESERVED_FDS, os_seed, raise_open_files_limit};
pub use routes::{RouteResolution, resolve_routes};
use socket::{DnsInput, DnsSockets, SmtpSockets};
