//! Throughput of the DNS client, in routes per second.
//!
//! - `route/cached`: a domain whose MX answer (with glue) is in the cache: the sans-IO
//!   resolver alone, no socket — what every address after the first costs.
//! - `route/uncached_1000_domains`: 1,000 distinct domains through the real event loop and
//!   real UDP sockets against the in-repo responder (`sim::dns`, on its own thread), with a
//!   fresh resolver each iteration so nothing is cached: one MX query per domain, the
//!   exchange's address from glue. Both ends share the machine's two cores.
//!
//! Run with `cargo bench --bench dns`; figures are in docs/benchmarks.md.

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hickory_proto::op::{Message, OpCode};
use hickory_proto::rr::rdata::{A, MX};
use hickory_proto::rr::{Name, RData, Record};
use mxprobe::dns::{LookupConfig, NameserverConfig, Resolver, ResolverConfig, Transmit};
use mxprobe::driver::resolve_routes;
use mxprobe::sim::dns::{DnsResponder, Zone};

fn config(server: std::net::SocketAddr) -> ResolverConfig {
    ResolverConfig::new(LookupConfig::new(NameserverConfig::with_servers(vec![
        server,
    ])))
}

/// A resolver that has routed `example.com` once, from a hand-made answer.
fn warmed_resolver(now: Instant) -> Resolver {
    let server = "192.0.2.1:53".parse().expect("address");
    let mut resolver = Resolver::new(config(server), [1; 32]);
    resolver.resolve("example.com", now);
    let Some(Transmit::Udp {
        socket, payload, ..
    }) = resolver.poll_transmit()
    else {
        panic!("the resolver asks for the MX record first");
    };
    let query = Message::from_vec(&payload).expect("valid query");
    let mut answer = Message::response(query.metadata.id, OpCode::Query);
    answer.add_query(query.queries[0].clone());
    let exchange = Name::from_ascii("mx.example.com.").expect("name");
    answer.add_answer(Record::from_rdata(
        Name::from_ascii("example.com.").expect("name"),
        3600,
        RData::MX(MX::new(10, exchange.clone())),
    ));
    answer.add_additional(Record::from_rdata(
        exchange,
        3600,
        RData::A(A(Ipv4Addr::new(192, 0, 2, 25))),
    ));
    resolver.handle_udp(socket, server, &answer.to_vec().expect("encodes"), now);
    while resolver.poll_transmit().is_some() {}
    assert!(resolver.poll_event().is_some_and(|e| e.result.is_ok()));
    resolver
}

fn benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("route");

    #[allow(
        clippy::disallowed_methods,
        reason = "an origin for the benchmark's clock"
    )]
    let now = Instant::now();
    let mut resolver = warmed_resolver(now);
    group.throughput(Throughput::Elements(1));
    group.bench_function("cached", |b| {
        b.iter(|| {
            resolver.resolve(black_box("example.com"), now);
            resolver.poll_event().is_some_and(|e| e.result.is_ok())
        });
    });

    let domains: Vec<String> = (0..1000).map(|i| format!("d{i}.example")).collect();
    let mut zone = Zone::new();
    for domain in &domains {
        zone.mx(domain, 10, "mx.shared.example");
    }
    zone.a("mx.shared.example", Ipv4Addr::new(127, 0, 0, 25));
    let responder = DnsResponder::start(zone).expect("start the responder");
    group.throughput(Throughput::Elements(domains.len() as u64));
    group.sample_size(20);
    group.bench_function("uncached_1000_domains", |b| {
        b.iter(|| {
            let results = resolve_routes(config(responder.addr()), &domains, 1000).expect("loop");
            assert!(results.iter().all(|r| r.result.is_ok()));
        });
    });
    group.finish();
}

criterion_group!(dns, benches);
criterion_main!(dns);
