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

/// `--nats-replicas`, for every process that may be the one to make the fleet's streams.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct Replicas {
    /// Copies JetStream keeps of each of the fleet's streams, when this process is the one
    /// that makes them: 3 on a NATS cluster of three, so that a lost node loses nothing.
    #[arg(
        long = "nats-replicas",
        value_name = "N",
        default_value_t = 1,
        value_parser = clap::value_parser!(u8).range(1..=5),
        env = "MXPROBE_NATS_REPLICAS"
    )]
    nats_replicas: u8,
}

impl Replicas {
    /// The copies asked for.
    pub fn get(self) -> usize {
        usize::from(self.nats_replicas)
    }
}
