//! The one place that does I/O and reads the clock: `mio` event loops around the sans-IO
//! state machines.
//!
//! - `dns_sockets.rs`: the DNS client's UDP and TCP sockets ([`DnsSockets`]).
//! - `smtp_sockets.rs`: the engine's SMTP connections ([`SmtpSockets`]).
//! - `engine.rs`: [`Engine`], the scheduler on its own thread and loop, fed through a
//!   [`Handle`], verdicts as [`Results`] or to a callback.
//! - `cpu.rs` (feature `sim`): CPU time of the process and its threads, from `/proc`, for
//!   `mxprobe bench`.
//! - `routes.rs`: an event loop that runs the [`Resolver`](crate::dns::Resolver) alone, for
//!   `mxprobe mx` and for tests ([`resolve_routes`]).
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
mod dns_sockets;
mod engine;
mod routes;
mod smtp_sockets;

pub use dns_sockets::{DnsClient, DnsSockets};
pub use engine::{Engine, EngineReport, EngineStopped, Handle, NoResult, Results};
pub use routes::{RouteResolution, resolve_routes};
pub use smtp_sockets::SmtpSockets;

/// File descriptors kept free for everything that is not a probe socket: stdio, the epoll
/// instance, output and input files, the simulator's sockets in benchmarks.
pub const RESERVED_FDS: u64 = 64;

/// Raises the soft limit on open files (`RLIMIT_NOFILE`) toward `wanted` and returns the soft
/// limit now in force. Above the hard limit only a privileged process (root, or
/// `CAP_SYS_RESOURCE`) may go, up to the kernel's `fs.nr_open`; this tries, and otherwise stops
/// at the hard limit. A loop with thousands of sockets in flight needs more than the common
/// default of 1,024; one that cannot have them must know before it opens them, and run fewer
/// at once, rather than fail with `EMFILE` halfway.
pub fn raise_open_files_limit(wanted: u64) -> std::io::Result<u64> {
    let soft = rlimit::increase_nofile_limit(wanted)?;
    if soft >= wanted {
        return Ok(soft);
    }
    // Refused without the privilege; the soft limit raised above stays.
    match rlimit::setrlimit(rlimit::Resource::NOFILE, wanted, wanted) {
        Ok(()) => Ok(wanted),
        Err(_) => Ok(soft),
    }
}

/// 32 bytes from the operating system's CSPRNG, to seed the sans-IO core's random numbers
/// (DNS query IDs, MX shuffles, catch-all local parts).
pub fn os_seed() -> std::io::Result<[u8; 32]> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(seed)
}
