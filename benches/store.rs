//! Throughput of the store behind `mxprobe serve` and `verify --store`, in results per second.
//!
//! A bulk job through the service costs the store two things per line, on top of the engine's
//! probe: the writer saves the verdict (and caches it), and the feeder reads the line and asks
//! the cache whether its mailbox was answered already. Both run on the same cores as the engine,
//! so every microsecond here is taken from probing. Run with `cargo bench --bench store`;
//! figures are in docs/benchmarks.md.
//!
//! - `save_results/batch_2000`: the writer's work, one batch of 2,000 verdicts of one job (one
//!   transaction) into a file store in WAL mode that already holds 600,000 results and their
//!   cache entries, and grows as the bench runs: each verdict a different mailbox, as a list's
//!   are. The cache entries are written [`CACHE_BATCH`](mxprobe::store::CACHE_BATCH) at a time,
//!   within some of the batches timed.
//! - `save_results/records_2000`: the same batch as records already (the cached verdicts the
//!   feeder gives to lines): what saving the results alone costs, without their cache entries.
//! - `feed/chunk_256`: the feeder's work, one chunk of 256 unanswered lines of a 600,000-line
//!   job read, and each line's mailbox looked up in the cache (a miss, as on a list's first
//!   run), a lookup at a time.
//! - `feed/chunk_256_one_read`: the same, all lookups of the chunk in one read
//!   ([`Store::cached_all`]), as the feeder does it.
//! - `feed/parse_only`, `feed/unanswered_only`: the parts of it that are not lookups.

#![allow(
    clippy::disallowed_methods,
    reason = "a benchmark times what it measures, and the store takes the wall clock's time"
)]

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mxprobe::address::Address;
use mxprobe::store::{JobId, Store};
use mxprobe::{Reason, VerifyResult};

/// Results saved in one transaction by the service's writer.
const BATCH: usize = 2_000;
/// Lines of the feeder's chunk.
const CHUNK: usize = 256;
/// Results in the store before the timing starts.
const PRELOAD: u64 = 600_000;

/// A record as the simulated world's ordinary servers produce it.
const RECORD: &str = r#"{"address":"user1@domain1.test","verdict":"deliverable","reason":"accepted","domain":"domain1.test","mx":"mx1.domain1.test","ip":"127.0.0.61","smtp":{"code":250,"enhanced":"2.1.5","message":"2.1.5 Ok"},"catch_all":false,"flags":{"role":false,"disposable":false,"free":false},"attempts":1,"elapsed_ms":3,"line":1,"detail":null,"suggestion":null,"provider":null,"tls":null}"#;

/// The result of line `line`: a mailbox of its own, at one of 1,000 domains.
fn result(template: &VerifyResult, line: u64) -> VerifyResult {
    let address = format!("user{line}@domain{}.test", line % 1_000);
    let mut result = template.clone();
    result.tag = line;
    result.mailbox = Address::parse(&address)
        .ok()
        .map(|a| a.mailbox().to_owned());
    result.domain = Some(format!("domain{}.test", line % 1_000));
    result.address = address;
    result
}

/// A fresh file store in the temporary directory, removed when dropped.
struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("mxprobe-bench-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        Self { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.join("store.db")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A job of `lines` lines committed to `store`.
fn job(store: &mut Store, lines: u64) -> JobId {
    let now = SystemTime::now();
    let mut upload = store.begin_job("bench", now).expect("begin");
    let texts: Vec<(u64, String)> = (1..=lines)
        .map(|line| (line, format!("user{line}@domain{}.test", line % 1_000)))
        .collect();
    for batch in texts.chunks(10_000) {
        let borrowed: Vec<(u64, &str)> = batch.iter().map(|(n, t)| (*n, t.as_str())).collect();
        store.upload(&mut upload, &borrowed).expect("upload");
    }
    store.commit_job(upload).expect("commit")
}

fn save_results(c: &mut Criterion) {
    let template = VerifyResult::from_record_json(RECORD).expect("a record");
    let scratch = Scratch::new("save");
    let mut store = Store::open(&scratch.path()).expect("a store");
    // A job far longer than the bench saves, so that it stays running.
    let id = job(&mut store, 1);
    let now = SystemTime::now();
    let mut next = 1;
    while next <= PRELOAD {
        let batch: Vec<VerifyResult> = (next..next + BATCH as u64)
            .map(|line| result(&template, line))
            .collect();
        store.save_results(&id, &batch, now).expect("save");
        next += BATCH as u64;
    }
    let mut group = c.benchmark_group("save_results");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(20);
    group.bench_function("batch_2000", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let batch: Vec<VerifyResult> = (next..next + BATCH as u64)
                    .map(|line| result(&template, line))
                    .collect();
                next += BATCH as u64;
                let started = Instant::now();
                black_box(store.save_results(&id, &batch, now).expect("save"));
                spent += started.elapsed();
            }
            spent
        });
    });
    group.bench_function("records_2000", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let batch: Vec<(u64, Reason, String)> = (next..next + BATCH as u64)
                    .map(|line| {
                        (
                            line,
                            Reason::Accepted,
                            RECORD.replace("user1@", &format!("user{line}@")),
                        )
                    })
                    .collect();
                next += BATCH as u64;
                let started = Instant::now();
                black_box(store.save_records(&id, &batch, now).expect("save"));
                spent += started.elapsed();
            }
            spent
        });
    });
    group.finish();
}

fn feed(c: &mut Criterion) {
    let scratch = Scratch::new("feed");
    let mut store = Store::open(&scratch.path()).expect("a store");
    let id = job(&mut store, PRELOAD);
    let reader = Store::open_reader(&scratch.path()).expect("a reader");
    let now = SystemTime::now();
    let mut cursor = 0;
    let mut group = c.benchmark_group("feed");
    group.throughput(Throughput::Elements(CHUNK as u64));
    group.bench_function("chunk_256", |b| {
        b.iter(|| {
            let lines = next_chunk(&reader, &id, &mut cursor);
            for (_, text) in &lines {
                let address = Address::parse(text).expect("an address");
                black_box(reader.cached(address.mailbox(), now).expect("a lookup"));
            }
        });
    });
    group.bench_function("chunk_256_one_read", |b| {
        b.iter(|| {
            let lines = next_chunk(&reader, &id, &mut cursor);
            let addresses: Vec<Address> = lines
                .iter()
                .map(|(_, text)| Address::parse(text).expect("an address"))
                .collect();
            black_box(
                reader
                    .cached_all(addresses.iter().map(Address::mailbox), now)
                    .expect("lookups"),
            );
        });
    });
    group.bench_function("parse_only", |b| {
        b.iter(|| {
            let lines = next_chunk(&reader, &id, &mut cursor);
            for (_, text) in &lines {
                black_box(Address::parse(text).expect("an address"));
            }
        });
    });
    group.bench_function("unanswered_only", |b| {
        b.iter(|| {
            let lines = next_chunk(&reader, &id, &mut cursor);
            black_box(lines);
        });
    });
    group.finish();
}

/// The next chunk of unanswered lines after `cursor`, from the first again at the job's end;
/// moves `cursor` past it.
fn next_chunk(reader: &Store, id: &JobId, cursor: &mut u64) -> Vec<(u64, String)> {
    let mut lines = reader.unanswered(id, *cursor, CHUNK).expect("lines");
    if lines.len() < CHUNK {
        lines = reader.unanswered(id, 0, CHUNK).expect("lines");
    }
    *cursor = lines.last().map_or(0, |(line, _)| *line);
    lines
}

criterion_group!(benches, save_results, feed);
criterion_main!(benches);
