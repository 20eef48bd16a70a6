//! The fleet against a real NATS server with JetStream (Debian's `nats-server`), started by
//! the test on loopback: worker processes take batches of a job from the work queue, verify
//! them against the simulated world, and publish one result per line. Every line must be
//! answered exactly once, with the verdict the world's answer key gives (the one a single
//! `mxprobe verify` gives, which `mxprobe bench` checks), also when a worker is killed with
//! SIGKILL mid-run and when a malformed message lands on the work subject (it goes to the
//! dead-letter stream with its reason, and the workers go on).
//!
//! The test writes the work messages itself, as JSON: it pins the wire format a producer other
//! than `mxprobe serve` would follow (`{"job", "lines": [{"line", "address"}]}`, results on
//! `mxprobe.results.<job>` with the message id `<job>:<line>`).

#![allow(
    clippy::disallowed_methods,
    reason = "these tests run servers and processes in real time"
)]
#![allow(clippy::print_stderr, reason = "a skipped test says so")]

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "support/serve.rs"]
mod support;

use async_nats::jetstream::{self, consumer};
use futures_util::StreamExt;
use mxprobe::sim::world::{World, WorldSpec};
use serde_json::{Value, json};

const NATS_SERVER: &str = "/usr/sbin/nats-server";

/// A nats-server with JetStream on loopback, its store in a directory of its own; killed on
/// drop.
struct Nats {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Nats {
    /// Starts it, or says why the test cannot run (and fails under CI).
    fn start() -> Option<Self> {
        if !std::path::Path::new(NATS_SERVER).exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "{NATS_SERVER} is missing: .ci/run installs nats-server"
            );
            eprintln!("SKIPPED: {NATS_SERVER} is not installed (apt-get install nats-server)");
            return None;
        }
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let dir = std::env::temp_dir().join(format!("mxprobe-nats-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("store dir");
        let child = spawn(port, &dir);
        wait_until_listening(port);
        Some(Self { child, port, dir })
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server and starts it again on the same port and store: what a crash and a
    /// supervisor's restart look like from the fleet.
    fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(Duration::from_millis(500));
        self.child = spawn(self.port, &self.dir);
        wait_until_listening(self.port);
    }
}

fn spawn(port: u16, dir: &std::path::Path) -> Child {
    Command::new(NATS_SERVER)
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string()])
        .arg("-sd")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nats-server")
}

fn wait_until_listening(port: u16) {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(Instant::now() < deadline, "nats-server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Workers started by this test process, for their log files' names.
static WORKERS_STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A worker process, killed on drop, and the file its stderr goes to.
struct Worker(Child, PathBuf);

impl Worker {
    /// A worker that answers a batch delivered more than `max_deliver` times unknown.
    fn start(nats: &Nats, world: &World, max_deliver: u32) -> Self {
        Self::start_on(&nats.url(), world, max_deliver, &["--retries", "0"])
    }

    /// The same on the NATS servers `urls` (comma-separated), with `extra` flags (`--retries`
    /// among them).
    fn start_on(urls: &str, world: &World, max_deliver: u32, extra: &[&str]) -> Self {
        let log = support::temp(&format!(
            "worker-{}.err",
            WORKERS_STARTED.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        ));
        let child = Command::new(env!("CARGO_BIN_EXE_mxprobe"))
            .args(["worker", "--nats", urls, "--ack-wait", "3"])
            .args(["--max-deliver", &max_deliver.to_string()])
            .args(extra)
            .args(["--from", "probe@probe.test", "--allow-private-mx"])
            .args(["--dns-server", &world.dns_addr().to_string()])
            .args(["--smtp-port", &world.smtp_port().to_string()])
            .args(["--concurrency", "200", "--per-mx", "200"])
            .args(["--domain-rate", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("the worker's log"))
            .spawn()
            .expect("start a worker");
        Self(child, log)
    }

    /// What it said on stderr so far.
    fn said(&self) -> String {
        std::fs::read_to_string(&self.1).unwrap_or_default()
    }

    /// SIGKILL: no goodbye, its batches left unacked.
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.1);
    }
}

/// A small world with no greylisting (its waits would only slow the test).
fn world() -> World {
    World::start(WorldSpec {
        domains: 200,
        ..WorldSpec::default()
    })
    .expect("world")
}

/// The engine flags of a `verify` or `serve` at `world`, and `extra`.
fn engine_flags(world: &World, extra: &[&str]) -> Vec<String> {
    let dns = world.dns_addr().to_string();
    let port = world.smtp_port().to_string();
    ["--from", "probe@probe.test", "--allow-private-mx"]
        .iter()
        .chain(&["--dns-server", dns.as_str(), "--smtp-port", port.as_str()])
        .chain(extra)
        .map(ToString::to_string)
        .collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Publishes job `job`'s `count` generated addresses as batches of one domain each (at most
/// 100 lines), line `i + 1` being address `i`; returns the lines' expected reasons.
async fn publish_job(
    js: &jetstream::Context,
    world: &World,
    job: &str,
    count: u64,
) -> BTreeMap<u64, String> {
    publish_lines(js, world, job, 0..count).await
}

/// The same for the generated addresses `indices`.
async fn publish_lines(
    js: &jetstream::Context,
    world: &World,
    job: &str,
    indices: std::ops::Range<u64>,
) -> BTreeMap<u64, String> {
    let spec = world.spec();
    let mut by_domain: HashMap<String, Vec<Value>> = HashMap::new();
    let mut expected = BTreeMap::new();
    for index in indices {
        let generated = spec.address(index);
        let domain = generated
            .address
            .rsplit_once('@')
            .map(|(_, d)| d.to_owned())
            .unwrap_or_default();
        by_domain
            .entry(domain)
            .or_default()
            .push(json!({"line": index + 1, "address": generated.address}));
        expected.insert(index + 1, generated.expected.as_str().to_owned());
    }
    // One at a time: a stream whose copies have just elected their leader may not take the
    // first ones yet (nothing is stored then, and the batch is sent again).
    let deadline = Instant::now() + Duration::from_secs(30);
    for lines in by_domain.into_values() {
        for chunk in lines.chunks(100) {
            let batch = json!({"job": job, "lines": chunk}).to_string();
            loop {
                let ack = js
                    .publish("mxprobe.work", batch.clone().into())
                    .await
                    .expect("publish");
                match ack.await {
                    Ok(_) => break,
                    Err(e)
                        if e.kind() == jetstream::context::PublishErrorKind::StreamNotFound
                            && Instant::now() < deadline =>
                    {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(e) => panic!("the work stream did not take a batch: {e}"),
                }
            }
        }
    }
    expected
}

/// Reads job `job`'s results until `count` lines are in (or the deadline), calling `midway`
/// once when `at` of them are; returns each line's records, in the order they came: two for a
/// line are two messages in the results stream. It pulls through a durable consumer with short
/// fetches, so it rides out a NATS restart.
async fn collect(
    js: &jetstream::Context,
    job: &str,
    count: usize,
    at: usize,
    mut midway: impl FnMut(),
) -> BTreeMap<u64, Vec<Value>> {
    let name = format!("collector-{job}");
    let mut got: BTreeMap<u64, Vec<Value>> = BTreeMap::new();
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut called = false;
    // After the last line, two more seconds for a second answer to any line to show.
    let mut quiet_until: Option<Instant> = None;
    loop {
        assert!(
            Instant::now() < deadline,
            "{} of {count} lines answered in time",
            got.len()
        );
        if quiet_until.is_some_and(|until| Instant::now() >= until) {
            return got;
        }
        let consumer: Result<consumer::PullConsumer, _> =
            match js.get_stream("MXPROBE_RESULTS").await {
                Ok(stream) => {
                    stream
                        .get_or_create_consumer(
                            &name,
                            consumer::pull::Config {
                                durable_name: Some(name.clone()),
                                filter_subject: format!("mxprobe.results.{job}"),
                                ..Default::default()
                            },
                        )
                        .await
                }
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
        let Ok(consumer) = consumer else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let Ok(mut batch) = consumer
            .fetch()
            .max_messages(1000)
            .expires(Duration::from_millis(500))
            .messages()
            .await
        else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        while let Some(Ok(message)) = batch.next().await {
            // The collector's own acks can be lost (NATS restarting): a message it is given
            // again has the same stream sequence, and is one result, not two.
            let sequence = message.info().expect("a JetStream message").stream_sequence;
            let _ = message.ack().await;
            if !seen.insert(sequence) {
                continue;
            }
            let record: Value = serde_json::from_slice(&message.payload).expect("a record");
            let line = record["line"].as_u64().expect("line");
            got.entry(line).or_default().push(record);
            total += 1;
            if total >= at && !called {
                called = true;
                midway();
            }
        }
        if got.len() >= count && quiet_until.is_none() {
            quiet_until = Some(Instant::now() + Duration::from_secs(2));
        }
    }
}

/// Every line once, and its reason the one expected.
fn check(expected: &BTreeMap<u64, String>, got: &BTreeMap<u64, Vec<Value>>) {
    let twice: Vec<_> = got.iter().filter(|(_, r)| r.len() > 1).take(5).collect();
    assert!(twice.is_empty(), "lines answered more than once: {twice:?}");
    let wrong: Vec<_> = expected
        .iter()
        .filter(|(line, reason)| {
            got.get(line).and_then(|r| r[0]["reason"].as_str()) != Some(reason.as_str())
        })
        .take(10)
        .map(|(line, reason)| (line, reason, got.get(line)))
        .collect();
    assert!(wrong.is_empty(), "wrong or missing verdicts: {wrong:?}");
}

/// Waits until some worker has made the fleet's streams.
async fn wait_for_streams(js: &jetstream::Context) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while js.get_stream("MXPROBE_RESULTS").await.is_err() {
        assert!(Instant::now() < deadline, "no worker made the streams");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One worker takes the whole job (it holds far more than 12,000 addresses); a third of the
/// way through two more start, and the first is killed with SIGKILL. The job can then finish
/// only through JetStream redelivering the dead worker's unacked batches to the late ones:
/// every line answered once, with the answer key's verdict. A malformed message on the way
/// goes to the dead letters.
#[test]
fn a_fleet_answers_every_line_once_when_a_worker_is_killed() {
    let Some(nats) = Nats::start() else {
        return;
    };
    let world = world();
    const COUNT: u64 = 12_000;
    runtime().block_on(async {
        let client = async_nats::connect(nats.url()).await.expect("connect");
        let js = jetstream::new(client);
        let mut first = Worker::start(&nats, &world, 5);
        let mut late: Vec<Worker> = Vec::new();
        wait_for_streams(&js).await;
        js.publish("mxprobe.work", "this is not a batch".into())
            .await
            .expect("publish")
            .await
            .expect("taken");
        let expected = publish_job(&js, &world, "job1", COUNT).await;
        let got = collect(&js, "job1", COUNT as usize, COUNT as usize / 3, || {
            late.push(Worker::start(&nats, &world, 5));
            late.push(Worker::start(&nats, &world, 5));
            first.kill();
        })
        .await;
        assert_eq!(late.len(), 2, "the midway point came");
        check(&expected, &got);
        // The fleet's batches in hand are bounded by the workers, not JetStream's default.
        let info = js
            .get_stream("MXPROBE_WORK")
            .await
            .expect("the work stream")
            .consumer_info("mxprobe-workers")
            .await
            .expect("the workers' consumer");
        assert_eq!(info.config.max_ack_pending, 1_000_000);

        // The malformed message: a dead letter with its reason.
        let mut dead = js.get_stream("MXPROBE_DEAD").await.expect("dead letters");
        let state = dead.info().await.expect("info").state.clone();
        assert_eq!(state.messages, 1, "{state:?}");
        let letter = dead
            .get_raw_message(state.first_sequence)
            .await
            .expect("the letter");
        assert_eq!(&letter.payload[..], b"this is not a batch");
        let reason = letter
            .headers
            .get("Mxprobe-Reason")
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default();
        assert!(reason.contains("not a work batch"), "{reason}");
    });
}

/// NATS killed and started again a third of the way through a job: the workers and the
/// results ride it out (unstored results and unacked batches come back), and every line is
/// answered once, rightly.
#[test]
fn a_job_finishes_when_nats_restarts_mid_run() {
    let Some(mut nats) = Nats::start() else {
        return;
    };
    let world = world();
    const COUNT: u64 = 6_000;
    runtime().block_on(async {
        let client = async_nats::connect(nats.url()).await.expect("connect");
        let js = jetstream::new(client);
        let _workers: Vec<Worker> = (0..2).map(|_| Worker::start(&nats, &world, 5)).collect();
        wait_for_streams(&js).await;
        let expected = publish_job(&js, &world, "job2", COUNT).await;
        let got = collect(&js, "job2", COUNT as usize, COUNT as usize / 3, || {
            nats.restart()
        })
        .await;
        check(&expected, &got);
    });
}

/// A batch delivered more times than `--max-deliver` allows is answered, not verified again
/// and never dropped: here a worker takes the whole job and dies, and the late worker, allowed
/// one delivery, answers what the dead one left `unknown/temporary_failure`, saying why.
#[test]
fn a_batch_delivered_too_often_is_answered_unknown() {
    let Some(nats) = Nats::start() else {
        return;
    };
    let world = world();
    const COUNT: u64 = 3_000;
    runtime().block_on(async {
        let client = async_nats::connect(nats.url()).await.expect("connect");
        let js = jetstream::new(client);
        let mut first = Worker::start(&nats, &world, 1);
        let mut late = None;
        wait_for_streams(&js).await;
        let expected = publish_job(&js, &world, "job3", COUNT).await;
        let got = collect(&js, "job3", COUNT as usize, 1, || {
            first.kill();
            late = Some(Worker::start(&nats, &world, 1));
        })
        .await;
        assert!(late.is_some());
        let twice: Vec<_> = got.iter().filter(|(_, r)| r.len() > 1).take(5).collect();
        assert!(twice.is_empty(), "lines answered more than once: {twice:?}");
        assert_eq!(got.len(), COUNT as usize);
        let mut given_up = 0;
        for (line, records) in &got {
            let record = &records[0];
            let detail = record["detail"].as_str().unwrap_or_default();
            if detail.contains("delivered 2 times") {
                given_up += 1;
                assert_eq!(record["verdict"], "unknown", "{record}");
                assert_eq!(record["reason"], "temporary_failure", "{record}");
            } else {
                assert_eq!(
                    record["reason"].as_str(),
                    expected.get(line).map(String::as_str)
                );
            }
        }
        assert!(given_up > 0, "the dead worker left nothing");
    });
}

/// `mxprobe serve --nats` with three workers: a 20,000-line job uploaded through the HTTP API goes out as
/// work, one worker is killed with SIGKILL mid-job, and the job finishes with every line
/// answered once, as `mxprobe verify` answers it on the same world; the results download as
/// they would without a fleet.
#[test]
fn a_job_through_the_service_is_verified_by_the_fleet() {
    let Some(nats) = Nats::start() else {
        return;
    };
    let world = world();
    const COUNT: u64 = 20_000;
    let spec = world.spec();
    let list: String = (0..COUNT).map(|i| spec.address(i).address + "\n").collect();
    let engine = engine_flags(&world, &["--domain-rate", "0", "--retries", "0"]);
    let store = support::temp("fleet-store.sqlite");
    let _ = std::fs::remove_file(&store);
    let server = support::Server::start_with(&engine, &store, &["--nats", &nats.url()]);
    let mut workers: Vec<Worker> = (0..3).map(|_| Worker::start(&nats, &world, 5)).collect();
    let created = support::post(
        &server,
        "/v1/jobs",
        support::TOKEN_A,
        "text/plain",
        list.as_bytes(),
    );
    assert_eq!(created.status, 202, "{}", created.body);
    let id = created.json()["id"].as_str().expect("id").to_owned();
    // Kill a worker once a third of the job is in.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let job = support::get(&server, &format!("/v1/jobs/{id}"), support::TOKEN_A).json();
        if job["answered"].as_u64().unwrap_or(0) >= COUNT / 3 || job["state"] != "running" {
            break;
        }
        assert!(Instant::now() < deadline, "the job does not move: {job}");
        std::thread::sleep(Duration::from_millis(50));
    }
    workers[0].kill();
    let job = support::wait_for_job(&server, &id, support::TOKEN_A);
    assert_eq!(job["state"], "finished", "{job}");
    let results = support::get(
        &server,
        &format!("/v1/jobs/{id}/results?format=jsonl"),
        support::TOKEN_A,
    );
    let mut by_line: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for line in results.body.lines() {
        let record: Value = serde_json::from_str(line).expect("a record");
        by_line
            .entry(record["line"].as_u64().expect("line"))
            .or_default()
            .push(record["reason"].as_str().expect("reason").to_owned());
    }
    assert_eq!(by_line.len(), COUNT as usize);
    assert!(
        by_line.values().all(|r| r.len() == 1),
        "a line answered twice"
    );
    // As `mxprobe verify` answers the same list on the same world.
    let verified = Command::new(env!("CARGO_BIN_EXE_mxprobe"))
        .arg("verify")
        .args(&engine)
        .args(["--format", "jsonl", "--quiet", "--input", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(list.as_bytes())?;
            child.wait_with_output()
        })
        .expect("run verify");
    let mut differ = Vec::new();
    for line in String::from_utf8_lossy(&verified.stdout).lines() {
        let record: Value = serde_json::from_str(line).expect("a record");
        let n = record["line"].as_u64().expect("line");
        let reason = record["reason"].as_str().expect("reason");
        if by_line.get(&n).map(|r| r[0].as_str()) != Some(reason) {
            differ.push((n, reason.to_owned(), by_line.get(&n).cloned()));
        }
    }
    assert!(
        differ.is_empty(),
        "the fleet and verify differ: {:?}",
        &differ[..differ.len().min(10)]
    );
}

/// `mxprobe bench --fleet 2 --nats URL`: two workers take a generated job, every verdict is
/// the answer key's, no line twice, and the workers' CPU per address is reported.
#[test]
fn bench_measures_a_fleet() {
    let Some(nats) = Nats::start() else {
        return;
    };
    let output = Command::new(env!("CARGO_BIN_EXE_mxprobe"))
        .args(["bench", "--json", "--no-showcase", "--addresses", "3000"])
        .args(["--domains", "200", "--concurrency", "200"])
        .args(["--fleet", "2", "--nats", &nats.url()])
        .stdin(Stdio::null())
        .output()
        .expect("run bench");
    assert!(output.status.success(), "{output:?}");
    let report: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let fleet = &report["fleet"];
    assert_eq!(fleet["workers"], 2, "{report}");
    assert_eq!(fleet["addresses"], 3000, "{report}");
    assert_eq!(fleet["wrong"], 0, "{report}");
    assert_eq!(fleet["answered_twice"], 0, "{report}");
    assert!(
        fleet["workers_cpu_per_address_us"]
            .as_f64()
            .is_some_and(|us| us > 0.0),
        "{report}"
    );
}

/// A worker's catch-all answers go into the fleet's key-value bucket, and a later worker takes
/// them instead of sending controls: a second job at the same domains costs far fewer RCPTs, and
/// its verdicts (accept-all ones included) are still the answer key's.
#[test]
fn one_workers_catch_all_answers_serve_the_fleet() {
    let Some(nats) = Nats::start() else {
        return;
    };
    let world = world();
    runtime().block_on(async {
        let client = async_nats::connect(nats.url()).await.expect("connect");
        let js = jetstream::new(client);
        let rcpts = || world.farm().stats().rcpt_commands;

        let mut first = Worker::start(&nats, &world, 5);
        wait_for_streams(&js).await;
        let before = rcpts();
        let expected = publish_lines(&js, &world, "factsa", 0..400).await;
        check(&expected, &collect(&js, "factsa", 400, 400, || ()).await);
        let rcpts_a = rcpts() - before;
        first.kill();
        let bucket = js
            .get_key_value("mxprobe-domains")
            .await
            .expect("the bucket");
        let keys = bucket.keys().await.expect("keys").count().await;
        assert!(keys >= 100, "{keys} domains' answers shared");

        let _second = Worker::start(&nats, &world, 5);
        let before = rcpts();
        let expected = publish_lines(&js, &world, "factsb", 400..800).await;
        check(&expected, &collect(&js, "factsb", 400, 400, || ()).await);
        let rcpts_b = rcpts() - before;
        assert!(
            rcpts_b + 100 < rcpts_a,
            "the second job sent {rcpts_b} RCPTs, the first {rcpts_a}: the controls were not spared"
        );
    });
}

/// A worker's greylisting waits go into the fleet's bucket too, and a later worker retries a
/// greylisted address of those domains after that wait instead of its retry delay: every
/// address of the second job is answered at its second attempt, where the first job's needed
/// three (retried after 1 s, well inside the servers' 3 s period, then after 2 s more).
#[test]
fn one_workers_greylisting_waits_serve_the_fleet() {
    let Some(nats) = Nats::start() else {
        return;
    };
    let world = World::start(WorldSpec {
        domains: 20,
        catch_all_share: 0.0,
        reject_share: 0.0,
        greylist_share: 1.0,
        greylist_period: Duration::from_secs(3),
        ..WorldSpec::default()
    })
    .expect("world");
    let flags = ["--retries", "3", "--retry-delay", "1"];
    runtime().block_on(async {
        let client = async_nats::connect(nats.url()).await.expect("connect");
        let js = jetstream::new(client);
        let attempts = |got: &BTreeMap<u64, Vec<Value>>| -> Vec<u64> {
            let mut attempts: Vec<u64> = got
                .values()
                .map(|records| records[0]["attempts"].as_u64().expect("attempts"))
                .collect();
            attempts.sort_unstable();
            attempts.dedup();
            attempts
        };
        let mut first = Worker::start_on(&nats.url(), &world, 5, &flags);
        wait_for_streams(&js).await;
        let expected = publish_job(&js, &world, "greya", 200).await;
        let got = collect(&js, "greya", 200, 200, || ()).await;
        check(&expected, &got);
        assert_eq!(attempts(&got), [3], "greylisted twice, then answered");
        first.kill();
        let bucket = js
            .get_key_value("mxprobe-domains")
            .await
            .expect("the bucket");
        let domain = world.spec().address(0).address;
        let domain = domain.rsplit_once('@').expect("@").1;
        let facts: Value = serde_json::from_slice(
            &bucket
                .get(domain)
                .await
                .expect("get")
                .expect("the first domain's facts"),
        )
        .expect("json");
        let wait = facts["greylist_wait_ms"].as_u64().expect("a wait shared");
        assert!((3_000..4_500).contains(&wait), "{facts}");

        // The next job, at the same domains, other mailboxes (lines 201 to 400).
        let _second = Worker::start_on(&nats.url(), &world, 5, &flags);
        let expected = publish_lines(&js, &world, "greyb", 200..400).await;
        let got = collect(&js, "greyb", 200, 200, || ()).await;
        check(&expected, &got);
        assert_eq!(attempts(&got), [2], "retried once, after the wait shared");
    });
}

/// SIGTERM: a worker with nothing in hand stops at once, and cleanly.
#[test]
fn a_worker_stops_cleanly_on_sigterm() {
    let Some(nats) = Nats::start() else {
        return;
    };
    let world = world();
    let mut worker = Worker::start(&nats, &world, 5);
    runtime().block_on(async {
        let client = async_nats::connect(nats.url()).await.expect("connect");
        wait_for_streams(&jetstream::new(client)).await;
    });
    let status = Command::new("kill")
        .args(["-TERM", &worker.0.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let exited = loop {
        if let Some(status) = worker.0.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "the worker did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exited.success(), "{exited:?}");
}

/// `serve --nats`: a real-time `POST /v1/verify` goes to one worker of the fleet by NATS
/// request-reply and comes back with the answer key's verdict; the verdict reaches the
/// service's cache. With no worker running, the request is refused at once with a reason, and
/// a worker answers a malformed request with one.
#[test]
fn real_time_requests_are_answered_by_a_worker() {
    let Some(nats) = Nats::start() else {
        return;
    };
    let world = world();
    let engine = engine_flags(&world, &[]);
    let store = support::temp("fleet-real-time.sqlite");
    let _ = std::fs::remove_file(&store);
    let server = support::Server::start_with(&engine, &store, &["--nats", &nats.url()]);
    let spec = world.spec();

    // No worker: refused at once, saying why.
    let asked = Instant::now();
    let refused = support::real_time(&server, &spec.address(0).address);
    refused.refused(503, "unavailable");
    assert!(refused.body.contains("no worker"), "{}", refused.body);
    assert!(asked.elapsed() < Duration::from_secs(5), "not at once");

    let _workers: Vec<Worker> = (0..2).map(|_| Worker::start(&nats, &world, 5)).collect();
    // The workers listen once they have started.
    let deadline = Instant::now() + Duration::from_secs(30);
    let first = loop {
        let answer = support::real_time(&server, &spec.address(0).address);
        if answer.status == 200 {
            break answer;
        }
        assert!(
            Instant::now() < deadline,
            "no worker answers: {}",
            answer.body
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        first.json()["reason"],
        spec.address(0).expected.as_str(),
        "{}",
        first.body
    );
    for index in 1..40 {
        let generated = spec.address(index);
        let answer = support::real_time(&server, &generated.address);
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_eq!(
            answer.headers.get("x-mxprobe-cache").map(String::as_str),
            Some("miss")
        );
        let record = answer.json();
        assert_eq!(record["address"], generated.address.as_str());
        assert_eq!(
            record["reason"],
            generated.expected.as_str(),
            "{}",
            answer.body
        );
    }
    // The fleet's verdict is in the service's cache (written a moment after the answer).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let again = support::real_time(&server, &spec.address(1).address);
        assert_eq!(again.status, 200, "{}", again.body);
        if again.headers.get("x-mxprobe-cache").map(String::as_str) == Some("hit") {
            assert_eq!(again.json()["reason"], spec.address(1).expected.as_str());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the verdict never reached the cache"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // A malformed request straight on NATS: an empty answer, the reason in a header.
    runtime().block_on(async {
        let client = async_nats::connect(nats.url()).await.expect("connect");
        let reply = client
            .request("mxprobe.verify", "not json".into())
            .await
            .expect("a worker answers");
        let reason = reply
            .headers
            .as_ref()
            .and_then(|headers| headers.get("Mxprobe-Reason"))
            .map(ToString::to_string)
            .unwrap_or_default();
        assert!(reason.contains("not a verify request"), "{reason:?}");
        assert!(reply.payload.is_empty());
    });
}

/// Three nats-servers clustered on loopback, JetStream on each; killed on drop.
struct Cluster {
    nodes: Vec<Option<Child>>,
    client_ports: Vec<u16>,
    dir: PathBuf,
}

impl Cluster {
    fn start() -> Option<Self> {
        if !std::path::Path::new(NATS_SERVER).exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "{NATS_SERVER} is missing: .ci/run installs nats-server"
            );
            eprintln!("SKIPPED: {NATS_SERVER} is not installed (apt-get install nats-server)");
            return None;
        }
        let free = || {
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .expect("bind")
                .local_addr()
                .expect("addr")
                .port()
        };
        let client_ports: Vec<u16> = (0..3).map(|_| free()).collect();
        let route_ports: Vec<u16> = (0..3).map(|_| free()).collect();
        let routes = route_ports
            .iter()
            .map(|port| format!("nats://127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(",");
        let dir = std::env::temp_dir().join(format!(
            "mxprobe-nats-cluster-{}-{}",
            std::process::id(),
            client_ports[0]
        ));
        let nodes = (0..3)
            .map(|i| {
                let store = dir.join(format!("n{i}"));
                std::fs::create_dir_all(&store).expect("store dir");
                Some(
                    Command::new(NATS_SERVER)
                        .args(["-js", "-a", "127.0.0.1", "-p", &client_ports[i].to_string()])
                        .args(["-n", &format!("n{i}"), "--cluster_name", "mxprobe"])
                        .args(["--cluster", &format!("nats://127.0.0.1:{}", route_ports[i])])
                        .args(["--routes", &routes])
                        .arg("-sd")
                        .arg(&store)
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .spawn()
                        .expect("start nats-server"),
                )
            })
            .collect();
        for port in &client_ports {
            wait_until_listening(*port);
        }
        Some(Self {
            nodes,
            client_ports,
            dir,
        })
    }

    /// Every node's URL, comma-separated, `first` first.
    fn urls(&self, first: usize) -> String {
        (0..3)
            .map(|i| format!("nats://127.0.0.1:{}", self.client_ports[(first + i) % 3]))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// SIGKILL to node `i`: a lost machine.
    fn kill(&mut self, i: usize) {
        if let Some(mut node) = self.nodes[i].take() {
            let _ = node.kill();
            let _ = node.wait();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..3 {
            self.kill(i);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The deployment docs/scaling.md describes: a NATS cluster of three, the streams made with
/// `--nats-replicas 3`. One worker is given every node, the other the first only (it learns
/// the others from it); that node, which the second is connected to, is killed with SIGKILL a
/// third of the way through. It loses nothing: the workers move to the other nodes, and every
/// line is answered once, rightly.
#[test]
fn a_job_survives_the_loss_of_a_node_of_a_nats_cluster_of_three() {
    let Some(mut cluster) = Cluster::start() else {
        return;
    };
    let world = world();
    const COUNT: u64 = 6_000;
    runtime().block_on(async {
        // The producer and the collector on node 2, which stays up.
        let client = async_nats::connect(format!("nats://127.0.0.1:{}", cluster.client_ports[2]))
            .await
            .expect("connect");
        let js = jetstream::new(client);
        // JetStream elects its meta leader a moment after the cluster forms: the workers retry
        // their start until it has.
        let urls = [
            cluster.urls(0),
            format!("nats://127.0.0.1:{}", cluster.client_ports[0]),
        ];
        let mut workers: Vec<Worker> = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while js.get_stream("MXPROBE_RESULTS").await.is_err() {
            assert!(Instant::now() < deadline, "no worker made the streams");
            workers.retain_mut(|w| w.0.try_wait().ok().flatten().is_none());
            while workers.len() < 2 {
                workers.push(Worker::start_on(
                    &urls[workers.len()],
                    &world,
                    5,
                    &["--nats-replicas", "3", "--retries", "0"],
                ));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        for name in [
            "MXPROBE_WORK",
            "MXPROBE_RESULTS",
            "MXPROBE_DEAD",
            "KV_mxprobe-domains",
        ] {
            let deadline = Instant::now() + Duration::from_secs(30);
            // Made, and with a leader elected among its copies (until then JetStream takes
            // nothing on its subjects).
            let replicas = loop {
                if let Ok(mut stream) = js.get_stream(name).await
                    && let Ok(info) = stream.info().await
                    && info
                        .cluster
                        .as_ref()
                        .is_some_and(|cluster| cluster.leader.is_some())
                {
                    break info.config.num_replicas;
                }
                assert!(Instant::now() < deadline, "no stream {name} with a leader");
                tokio::time::sleep(Duration::from_millis(200)).await;
            };
            assert_eq!(replicas, 3, "{name}");
        }
        let expected = publish_job(&js, &world, "job-cluster", COUNT).await;
        let got = collect(
            &js,
            "job-cluster",
            COUNT as usize,
            COUNT as usize / 3,
            || {
                cluster.kill(0);
            },
        )
        .await;
        check(&expected, &got);
        for worker in &mut workers {
            assert!(
                worker.0.try_wait().ok().flatten().is_none(),
                "a worker died with the node: {}",
                worker.said()
            );
        }
    });
}

/// Two front ends (`serve --nats`, each with its own `--nats-name` and store) share one fleet:
/// each reads every result through a consumer of its own and keeps its own jobs', so both jobs
/// finish with every line once, rightly, though the worker's results of both come on one
/// stream.
#[test]
fn two_front_ends_share_one_fleet() {
    let Some(nats) = Nats::start() else {
        return;
    };
    let world = world();
    const COUNT: u64 = 3_000;
    let spec = world.spec();
    let engine = engine_flags(&world, &["--domain-rate", "0", "--retries", "0"]);
    let _worker = Worker::start(&nats, &world, 5);
    let fronts: Vec<(support::Server, PathBuf)> = ["east", "west"]
        .iter()
        .map(|name| {
            let store = support::temp(&format!("fleet-front-{name}.sqlite"));
            let _ = std::fs::remove_file(&store);
            let server = support::Server::start_with(
                &engine,
                &store,
                &["--nats", &nats.url(), "--nats-name", name],
            );
            (server, store)
        })
        .collect();
    // Each front end its own half of the generated addresses.
    let jobs: Vec<String> = fronts
        .iter()
        .enumerate()
        .map(|(i, (server, _))| {
            let list: String = (0..COUNT)
                .map(|n| spec.address(i as u64 * COUNT + n).address + "\n")
                .collect();
            let created = support::post(
                server,
                "/v1/jobs",
                support::TOKEN_A,
                "text/plain",
                list.as_bytes(),
            );
            assert_eq!(created.status, 202, "{}", created.body);
            created.json()["id"].as_str().expect("id").to_owned()
        })
        .collect();
    for (i, ((server, _), id)) in fronts.iter().zip(&jobs).enumerate() {
        let job = support::wait_for_job(server, id, support::TOKEN_A);
        assert_eq!(job["state"], "finished", "{job}");
        let results = support::get(
            server,
            &format!("/v1/jobs/{id}/results?format=jsonl"),
            support::TOKEN_A,
        );
        let mut seen = BTreeMap::new();
        for line in results.body.lines() {
            let record: Value = serde_json::from_str(line).expect("a record");
            let n = record["line"].as_u64().expect("line");
            let expected = spec.address(i as u64 * COUNT + n - 1);
            assert_eq!(record["address"], expected.address.as_str());
            assert_eq!(record["reason"], expected.expected.as_str(), "{record}");
            assert!(seen.insert(n, ()).is_none(), "line {n} twice");
        }
        assert_eq!(seen.len(), COUNT as usize);
    }
    for (_, store) in &fronts {
        let _ = std::fs::remove_file(store);
    }
}

/// SIGTERM to a worker holding a real-time request: it leaves the queue group, answers the
/// request with its verdict, and exits cleanly.
#[test]
fn a_stopping_worker_answers_the_real_time_requests_it_holds() {
    let Some(nats) = Nats::start() else {
        return;
    };
    let world = World::start(WorldSpec {
        domains: 20,
        latency: Duration::from_millis(300),
        ..WorldSpec::default()
    })
    .expect("world");
    let engine = engine_flags(&world, &[]);
    let store = support::temp("fleet-stopping.sqlite");
    let _ = std::fs::remove_file(&store);
    let server = support::Server::start_with(&engine, &store, &["--nats", &nats.url()]);
    let spec = world.spec().clone();
    let mut worker = Worker::start(&nats, &world, 5);
    let deadline = Instant::now() + Duration::from_secs(30);
    while support::real_time(&server, &spec.address(0).address).status != 200 {
        assert!(Instant::now() < deadline, "the worker never answered");
        std::thread::sleep(Duration::from_millis(200));
    }
    let generated = spec.address(1);
    let rcpts_before = world.farm().stats().rcpt_commands;
    let asked = {
        let base = server.base.clone();
        let address = generated.address.clone();
        std::thread::spawn(move || {
            support::answer(
                support::agent()
                    .post(format!("{base}/v1/verify"))
                    .header("Authorization", support::bearer(support::TOKEN_A))
                    .content_type("application/json")
                    .send(json!({ "address": address }).to_string().as_bytes()),
            )
        })
    };
    // Once its RCPT has reached the server, well inside the session (every reply takes 300 ms).
    let deadline = Instant::now() + Duration::from_secs(20);
    while world.farm().stats().rcpt_commands <= rcpts_before {
        assert!(
            Instant::now() < deadline,
            "the request never reached the server"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let status = Command::new("kill")
        .args(["-TERM", &worker.0.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let answered = asked.join().expect("the request's thread");
    assert_eq!(answered.status, 200, "{}", answered.body);
    assert_eq!(
        answered.json()["reason"],
        generated.expected.as_str(),
        "{}",
        answered.body
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let exited = loop {
        if let Some(status) = worker.0.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "the worker did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exited.success(), "{exited:?}");
    let _ = std::fs::remove_file(&store);
}
