//! The engine's decisions, sans-IO: addresses in, one verdict per address out.
//!
//! ```text
//! submit ─► Address::parse ─► domain queue ─► Resolver (one MX lookup per domain)
//!                                 │
//!                                 ▼
//!            batch of up to 8 addresses (+ one catch-all control) ─► Session on the first
//!            MX that is not failing, within the caps ─► outcomes ─► retry / fail over /
//!            hold for the catch-all answer / verdict
//! ```
//!
//! - `config.rs`: the settings as the scheduler reads them (built and checked by
//!   [`ConfigBuilder`](crate::ConfigBuilder), whose methods give the reasoning behind each
//!   default).
//! - `scheduler.rs`: [`Scheduler`], the sans-IO entry points (`submit`, `handle_*`, `poll_*`)
//!   and the wiring between the parts below: starting sessions (batching, domains taking
//!   turns, the caps), collecting what they settle, carrying out what the policy decides.
//! - `policy.rs`: the outcome policy, a pure function: an outcome and its facts in, a decision
//!   out (retry with backoff, hold for the catch-all answer, fail over to the next MX, ask
//!   again in lock-step or in a smaller session, or the verdict). Tested by table.
//! - `domain.rs`: a domain's state and transitions: its route, its MX targets in failover
//!   order with their cooldowns, its queue, the catch-all control's state, the domain-rate
//!   cap, and the per-MX-address slots shared across domains.
//! - `job.rs`: one address until its verdict, kept to 64 bytes; the reply that decided it.
//! - `timers.rs`: the heap of deadlines, with lazy deletion and compaction.
//! - `duplicates.rs`: the mailboxes in flight (a second submission joins the first one's
//!   probe) and the results remembered for later submissions.
//! - `submission.rs`: [`SubmitOptions`]: real-time ahead of bulk, and a deadline.
//! - `calibration.rs`: what a permanent refusal the reply table cannot explain means, judged
//!   against the rest of its session.
//! - `proxies.rs`, `sources.rs`: the SOCKS5 proxies and the source addresses, in rotation per
//!   domain, with their health (`strikes.rs`: failures in a row, and the bench they earn).
//! - `gates.rs`: the politeness owed to a provider as a whole ([`crate::providers`]): its
//!   connection rate across all the domains it hosts, and its backoff after "slow down".
//! - `result.rs`: [`VerifyResult`], and the rules that combine facts into the final verdict.
//! - `slab.rs`: the table of jobs, with stamped keys.
//! - [`special_purpose`]: the RFC 6890 ranges no probe connects to unless allowed.
//!
//! The driver (`crate::driver::Engine`) runs a scheduler on a `mio` loop; tests drive one by
//! hand.

mod calibration;
mod config;
mod domain;
mod duplicates;
mod gates;
mod job;
mod policy;
mod proxies;
mod result;
mod scheduler;
mod slab;
mod sources;
pub mod special_purpose;
mod strikes;
mod submission;
mod timers;

pub(crate) use config::EngineConfig;
pub use domain::TARGET_COOLDOWN;
pub use policy::MAX_HAND_BACKS;
pub use result::VerifyResult;
pub use scheduler::{BATCH_HOLD, Census, ConnId, ConnIo, EngineStats, Scheduler};
pub use submission::{Priority, SubmitOptions};

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "a test needs an origin for its hand-moved clock"
)]
mod tests;
