//! The whole engine end to end, in addresses per second: a batch of generated addresses
//! through the real DNS client, sockets, sessions, parser and scheduler, against the simulated
//! world of `sim::world` (SMTP farm and DNS responder on loopback, on threads of this process),
//! as `mxprobe bench` runs it.
//!
//! - `engine/batch_5000_addresses_100_domains`: a fresh engine each iteration (so each one
//!   resolves its 100 domains and runs their catch-all controls), 5,000 addresses, at most 8
//!   per session, concurrency 200, no latency. Engine and farm share the machine's two cores.
//!
//! Run with `cargo bench --bench engine`; figures are in docs/benchmarks.md. `mxprobe bench`
//! measures the same path at scale, with CPU and memory figures.

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mxprobe::sim::world::{World, WorldSpec};
use mxprobe::{Config, Engine};

const ADDRESSES: u64 = 5000;
const DOMAINS: usize = 100;
const CONCURRENCY: usize = 200;

fn config(world: &World) -> Config {
    Config::builder()
        .sender("probe@bench.test")
        .helo_name("probe.bench.test")
        .nameserver(world.dns_addr())
        .smtp_port(world.smtp_port())
        .allow_private_mx(true)
        .concurrency(CONCURRENCY)
        .per_mx(CONCURRENCY)
        .domain_rate(None)
        .build()
        .expect("a valid configuration")
}

/// Verifies the batch and checks every verdict against the world's answer key.
fn run_batch(world: &World) {
    let (engine, results) = Engine::start(config(world)).expect("the engine starts");
    let handle = engine.handle();
    let spec = world.spec().clone();
    let producer = std::thread::spawn(move || {
        for index in 0..ADDRESSES {
            handle
                .submit(spec.address(index).address, index)
                .expect("the engine takes addresses");
        }
        handle.finish();
    });
    let mut answered = 0;
    for result in results {
        assert_eq!(
            result.reason,
            world.spec().expected(result.tag),
            "{result:?}"
        );
        answered += 1;
    }
    producer.join().expect("the producer finishes");
    engine.join().expect("the engine ends cleanly");
    assert_eq!(answered, ADDRESSES);
}

fn engine(c: &mut Criterion) {
    let world = World::start(WorldSpec {
        domains: DOMAINS,
        ..WorldSpec::default()
    })
    .expect("the simulated world starts");
    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(ADDRESSES));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(15));
    group.bench_function("batch_5000_addresses_100_domains", |b| {
        b.iter(|| run_batch(&world));
    });
    group.finish();
}

criterion_group!(benches, engine);
criterion_main!(benches);
