//! Throughput of address parsing and flagging, in addresses per second.
//!
//! Parsing runs on every line of an input file that may hold ten million addresses, so it must
//! cost far less than a probe. Run with `cargo bench --bench address`; figures are in
//! docs/benchmarks.md.
//!
//! - `parse_and_flags/list_mix`: 1,000 addresses as a real list holds them — mostly plain
//!   ASCII at free providers and company domains, some with display names, role accounts,
//!   disposable domains, IDN domains, UTF-8 local parts and invalid ones.
//! - `parse_and_flags/plain`: the common case alone, `first.last@company.example`.
//! - `parse_only/plain` and `flags_only/plain`: the two halves of the common case.
//! - `suggest/unknown_domain`: the typo check for a domain on no list, the most expensive case;
//!   an engine runs it once per domain, not once per address.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mxprobe::address::{Address, suggest_domain};

/// 20 shapes of address, repeated to 1,000 with varied local parts.
fn list_mix() -> Vec<String> {
    let shapes = [
        "john.smith{}@gmail.com",
        "j.doe{}@company.example",
        "mary{}@outlook.com",
        "m.mueller{}@web.de",
        "info{}@shop.example.co.uk",
        "sales+q{}@company.example",
        "Anna Example <anna{}@yahoo.com>",
        "  bob{}@example.org  ",
        "user{}@mailinator.com",
        "p.nowak{}@wp.pl",
        "ceo{}@startup.io",
        "jane_doe{}@hotmail.com",
        "josé{}@bücher.example",
        "k{}@xn--mnchen-3ya.de",
        "t.tanaka{}@yahoo.co.jp",
        "support{}@bigcorp.example",
        "alex{}@gmial.com",
        "not an address {}",
        "double..dot{}@example.com",
        "mailto:liam{}@icloud.com",
    ];
    (0..1000)
        .map(|i| shapes[i % shapes.len()].replace("{}", &(i / shapes.len()).to_string()))
        .collect()
}

fn parse_and_flag(raw: &str) -> u32 {
    match Address::parse(raw) {
        Ok(address) => {
            let flags = address.flags();
            1 + u32::from(flags.role) + u32::from(flags.disposable) * 2 + u32::from(flags.free) * 4
        }
        Err(_) => 0,
    }
}

fn benches(c: &mut Criterion) {
    let mix = list_mix();
    let mut group = c.benchmark_group("parse_and_flags");
    group.throughput(Throughput::Elements(mix.len() as u64));
    group.bench_function("list_mix", |b| {
        b.iter(|| {
            mix.iter()
                .map(|raw| parse_and_flag(black_box(raw)))
                .sum::<u32>()
        });
    });
    group.throughput(Throughput::Elements(1));
    group.bench_function("plain", |b| {
        b.iter(|| parse_and_flag(black_box("first.last@company.example")));
    });
    group.finish();

    let mut group = c.benchmark_group("parse_only");
    group.throughput(Throughput::Elements(1));
    group.bench_function("plain", |b| {
        b.iter(|| Address::parse(black_box("first.last@company.example")).is_ok());
    });
    group.finish();

    let plain = Address::parse("first.last@company.example").expect("valid");
    let mut group = c.benchmark_group("flags_only");
    group.throughput(Throughput::Elements(1));
    group.bench_function("plain", |b| b.iter(|| black_box(&plain).flags()));
    group.finish();

    let mut group = c.benchmark_group("suggest");
    group.throughput(Throughput::Elements(1));
    group.bench_function("unknown_domain", |b| {
        b.iter(|| suggest_domain(black_box("company.example")));
    });
    group.finish();
}

criterion_group!(address, benches);
criterion_main!(address);
