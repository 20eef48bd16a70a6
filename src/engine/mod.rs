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
//! - `config.rs`: the knobs, with the reasoning behind each default.
//! - `scheduler.rs`: [`Scheduler`], the state machine: per-domain queues, batching,
//!   politeness (global, per-MX-address and per-domain-rate caps; domains take turns), MX
//!   failover in preference order, greylisting retries with backoff, the catch-all control.
//! - `result.rs`: [`VerifyResult`], and the rules that combine facts into the final verdict.
//!
//! The driver (`crate::driver::Engine`) runs a scheduler on a `mio` loop; tests drive one by
//! hand.

mod calibration;
mod config;
mod domain;
mod job;
mod policy;
mod result;
mod scheduler;
mod slab;
pub mod special_purpose;
mod timers;

pub use config::EngineConfig;
pub use domain::TARGET_COOLDOWN;
pub use policy::MAX_HAND_BACKS;
pub use result::VerifyResult;
pub use scheduler::{BATCH_HOLD, Census, ConnId, ConnIo, EngineStats, Scheduler};

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "a test needs an origin for its hand-moved clock"
)]
mod tests;
