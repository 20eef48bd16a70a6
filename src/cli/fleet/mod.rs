//! The fleet: many probers sharing one list over NATS JetStream, for users whose politeness
//! limits per prober address, not one machine's cores, bound how fast a list can go.
//!
//! - `wire.rs`: the streams, subjects and messages every member of the fleet agrees on.
//! - `worker.rs`: `mxprobe worker`: pulls batches of addresses from the work queue, verifies
//!   them with its own engine (its own `--source-ip` addresses, its own politeness), publishes
//!   one result per line, then acks the batch.
//! - `link.rs`: `mxprobe serve --nats`'s side: jobs' lines out as batches, results back into
//!   the store.
//!
//! A single machine needs none of this: `verify` and `serve` run the engine in process.

pub mod link;
pub mod wire;
pub mod worker;
