//! `mxprobe bench --http`: the HTTP service measured against the engine alone and against
//! `verify`, on the same simulated world.
//!
//! The world runs in this process; the service and `verify` run as child processes of this
//! binary (so their memory is their own), pointed at it:
//!
//! 1. **Real time, engine alone**: `--http-requests` unique addresses, real-time, from
//!    `--http-clients` threads each waiting for its verdict before the next, on an engine in
//!    this process. Latency p50/p99.
//! 2. **Real time over HTTP, idle service**: the same through `POST /v1/verify`. Requests per
//!    second, p50/p99, and what HTTP adds to the engine's.
//! 3. **Bulk**: `verify --input` on a list of `--addresses` generated addresses, timed; then the
//!    same list as a job through `POST /v1/jobs`, timed from the upload's start to the job's
//!    end, while one client keeps asking real-time requests (their p99 against the idle one),
//!    and the service's resident memory is read at each quarter of the job.
//!
//! The real-time addresses of all three phases are at [`REAL_TIME_DOMAIN`], whose server runs
//! on a farm thread of its own and gets no bulk address: under the job, a real-time request
//! waits for mxprobe alone, not for a simulated server busy with the job's sessions. Each phase
//! has addresses of its own, so none is in any cache.
//!
//! Every real-time verdict, and every verdict count of the job, is checked against the world's
//! answer key; a wrong one fails the run.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use mxprobe::sim::world::{Generated, REAL_TIME_DOMAIN, WorldSpec};
use mxprobe::verdict::Reason;
use mxprobe::{Engine, SubmitOptions, VerifyResult};
use serde_json::{Value, json};

use super::histogram::Histogram;
use super::{BenchArgs, Target, build, engine_config};

/// What the HTTP benchmark measured.
struct Figures {
    engine_alone: Latency,
    idle: Latency,
    idle_per_sec: f64,
    verify_per_sec: f64,
    job_per_sec: f64,
    under_load: Latency,
    /// The service's resident memory at 25, 50, 75 and 100 % of the job, in bytes.
    rss: Vec<(u8, u64)>,
    wrong: u64,
}

#[derive(Debug, Clone, Copy)]
struct Latency {
    count: u64,
    p50: Duration,
    p99: Duration,
}

impl Latency {
    fn of(histogram: &Histogram) -> Self {
        Self {
            count: histogram.count(),
            p50: histogram.quantile(0.50),
            p99: histogram.quantile(0.99),
        }
    }
}

/// Runs the three phases against `target` and prints the figures.
pub fn run(target: &Target<'_>, args: &BenchArgs, concurrency: usize) -> Result<u8, String> {
    let dir = std::env::temp_dir().join(format!("mxprobe-bench-http-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
    let outcome = run_in(target, args, concurrency, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    let figures = outcome?;
    print(&figures, args)?;
    Ok(0)
}

fn run_in(
    target: &Target<'_>,
    args: &BenchArgs,
    concurrency: usize,
    dir: &Path,
) -> Result<Figures, String> {
    let spec = &target.spec;
    let bulk = args.addresses;
    let requests = args.http_requests;
    let clients = args.http_clients.max(1);
    // Real-time addresses, a range of indexes for each phase: none is in any cache.
    let mut next_index = 0;
    let mut take = |n: u64| {
        let range = next_index..next_index + n;
        next_index += n;
        range
    };

    say("bench --http: real time, engine alone");
    let engine_alone = engine_real_time(target, args, concurrency, take(requests), clients)?;

    let list = dir.join("list.txt");
    write_list(&list, spec, bulk)?;
    let flags = engine_flags(target, concurrency);

    say(&format!("bench --http: verify, {bulk} addresses"));
    let started = Instant::now();
    let status = Command::new(current_exe()?)
        .arg("verify")
        .args(&flags)
        .args(["--quiet", "--format", "jsonl", "--input"])
        .arg(&list)
        .args(["--output", "/dev/null"])
        .status()
        .map_err(|e| format!("cannot run verify: {e}"))?;
    if !status.success() {
        return Err(format!("verify failed: {status}"));
    }
    let verify_per_sec = bulk as f64 / started.elapsed().as_secs_f64();

    say("bench --http: the service, idle, real time");
    let mut service = Service::start(&dir.join("bench.db"), &flags)?;
    let started = Instant::now();
    let idle = http_real_time(&service.base, take(requests), clients, spec)?;
    let idle_per_sec = requests as f64 / started.elapsed().as_secs_f64();

    say(&format!(
        "bench --http: the service, a job of {bulk} addresses"
    ));
    let BulkFigures {
        per_sec: job_per_sec,
        under_load,
        rss,
        wrong,
    } = bulk_job(&mut service, &list, spec, bulk, take(requests * 100))?;
    Ok(Figures {
        engine_alone,
        idle,
        idle_per_sec,
        verify_per_sec,
        job_per_sec,
        under_load,
        rss,
        wrong,
    })
}

/// Phase 1: real-time submissions on an engine in this process, `clients` at a time.
fn engine_real_time(
    target: &Target<'_>,
    args: &BenchArgs,
    concurrency: usize,
    indices: std::ops::Range<u64>,
    clients: u64,
) -> Result<Latency, String> {
    let config = build(engine_config(target, args, concurrency))?;
    let waiting: Arc<Mutex<std::collections::HashMap<u64, mpsc::Sender<VerifyResult>>>> =
        Arc::default();
    let routes = Arc::clone(&waiting);
    let engine = Engine::start_with_callback(config, move |result: VerifyResult| {
        let sender = routes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&result.tag);
        if let Some(sender) = sender {
            let _ = sender.send(result);
        }
    })
    .map_err(|e| format!("cannot start the engine: {e}"))?;
    let timings = Timings::default();
    let spec = target.spec.clone();
    let threads: Vec<_> = split(indices, clients)
        .into_iter()
        .map(|range| {
            let (handle, waiting, timings, spec) = (
                engine.handle(),
                Arc::clone(&waiting),
                timings.clone(),
                spec.clone(),
            );
            std::thread::spawn(move || {
                for index in range {
                    let (sender, receiver) = mpsc::channel();
                    waiting
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(index, sender);
                    let real_time = spec.real_time_address(index);
                    let started = Instant::now();
                    if handle
                        .submit_with(real_time.address.clone(), index, SubmitOptions::real_time())
                        .is_err()
                    {
                        return;
                    }
                    let outcome = match receiver.recv_timeout(Duration::from_secs(60)) {
                        Ok(result) => check(&real_time, result.reason.as_str()),
                        Err(_) => Err(format!("{}: no verdict in 60 s", real_time.address)),
                    };
                    timings.record(started, outcome);
                }
            })
        })
        .collect();
    join_clients(threads)?;
    engine.handle().finish();
    engine
        .join()
        .map_err(|e| format!("the engine failed: {e}"))?;
    timings.latency()
}

/// Phase 2: the same through `POST /v1/verify`.
fn http_real_time(
    base: &str,
    indices: std::ops::Range<u64>,
    clients: u64,
    spec: &WorldSpec,
) -> Result<Latency, String> {
    let timings = Timings::default();
    let threads: Vec<_> = split(indices, clients)
        .into_iter()
        .map(|range| {
            let (base, timings, spec) = (base.to_owned(), timings.clone(), spec.clone());
            std::thread::spawn(move || {
                let agent = http_agent();
                for index in range {
                    let started = Instant::now();
                    let outcome = verify_one(&agent, &base, &spec.real_time_address(index));
                    timings.record(started, outcome);
                }
            })
        })
        .collect();
    join_clients(threads)?;
    timings.latency()
}

/// What a phase's client threads measured: the latency of each request that got its right
/// verdict, and what went wrong with the others.
#[derive(Clone, Default)]
struct Timings {
    histogram: Arc<Mutex<Histogram>>,
    failures: Arc<Mutex<Vec<String>>>,
}

impl Timings {
    /// A request begun at `started` ended with `outcome`.
    fn record(&self, started: Instant, outcome: Result<(), String>) {
        match outcome {
            Ok(()) => self
                .histogram
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .record(started.elapsed()),
            Err(e) => self
                .failures
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(e),
        }
    }

    /// The phase's latency, or its first failure as the phase's error.
    fn latency(&self) -> Result<Latency, String> {
        if let Some(failure) = self
            .failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .first()
        {
            return Err(format!("a real-time request failed: {failure}"));
        }
        let histogram = self
            .histogram
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Ok(Latency::of(&histogram))
    }
}

/// Waits for a phase's client threads.
fn join_clients(threads: Vec<std::thread::JoinHandle<()>>) -> Result<(), String> {
    for thread in threads {
        thread
            .join()
            .map_err(|_| "a client thread panicked".to_owned())?;
    }
    Ok(())
}

/// Whether `reason` is the one the answer key gives for `real_time`.
fn check(real_time: &Generated, reason: &str) -> Result<(), String> {
    if reason == real_time.expected.as_str() {
        Ok(())
    } else {
        Err(format!(
            "{}: {reason}, where the answer key says {}",
            real_time.address, real_time.expected
        ))
    }
}

/// One `POST /v1/verify`, its verdict checked against the answer key.
fn verify_one(agent: &ureq::Agent, base: &str, real_time: &Generated) -> Result<(), String> {
    let body = json!({ "address": real_time.address }).to_string();
    let mut response = agent
        .post(format!("{base}/v1/verify"))
        .content_type("application/json")
        .send(body.as_bytes())
        .map_err(|e| e.to_string())?;
    let text = response
        .body_mut()
        .read_to_string()
        .map_err(|e| e.to_string())?;
    if response.status() != 200 {
        return Err(format!("{}: {text}", response.status()));
    }
    let record: Value = serde_json::from_str(&text)
        .map_err(|e| format!("{}: not JSON ({e}): {text}", real_time.address))?;
    check(real_time, record["reason"].as_str().unwrap_or_default())
}

/// Phase 3: the list as a job, real time alongside, memory at each quarter.
fn bulk_job(
    service: &mut Service,
    list: &Path,
    spec: &WorldSpec,
    count: u64,
    real_time: std::ops::Range<u64>,
) -> Result<BulkFigures, String> {
    let agent = http_agent();
    let done = Arc::new(AtomicBool::new(false));
    let timings = Timings::default();
    let alongside = {
        let (base, done, timings, spec) = (
            service.base.clone(),
            Arc::clone(&done),
            timings.clone(),
            spec.clone(),
        );
        std::thread::spawn(move || {
            let client = http_agent();
            for index in real_time {
                if done.load(Ordering::SeqCst) {
                    return;
                }
                let started = Instant::now();
                let outcome = verify_one(&client, &base, &spec.real_time_address(index));
                timings.record(started, outcome);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let started = Instant::now();
    let file = std::fs::File::open(list).map_err(|e| format!("cannot read the list: {e}"))?;
    let mut response = agent
        .post(format!("{}/v1/jobs", service.base))
        .content_type("text/plain")
        .send(ureq::SendBody::from_owned_reader(file))
        .map_err(|e| format!("the upload failed: {e}"))?;
    let created: Value = serde_json::from_str(
        &response
            .body_mut()
            .read_to_string()
            .map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let id = created["id"]
        .as_str()
        .ok_or_else(|| format!("the upload was refused: {created}"))?
        .to_owned();
    say(&format!(
        "bench --http: the upload was committed after {:.2} s",
        started.elapsed().as_secs_f64()
    ));
    let mut rss: Vec<(u8, u64)> = Vec::new();
    let job = loop {
        std::thread::sleep(Duration::from_millis(100));
        let mut response = agent
            .get(format!("{}/v1/jobs/{id}", service.base))
            .call()
            .map_err(|e| e.to_string())?;
        let job: Value = serde_json::from_str(
            &response
                .body_mut()
                .read_to_string()
                .map_err(|e| e.to_string())?,
        )
        .map_err(|e| e.to_string())?;
        let progress = job["progress"].as_f64().unwrap_or(0.0);
        let quarter = [25u8, 50, 75, 100]
            .into_iter()
            .rfind(|q| progress * 100.0 >= f64::from(*q));
        if let Some(quarter) = quarter
            && rss.last().is_none_or(|(q, _)| *q < quarter)
            && let Some(bytes) = service.resident()
        {
            rss.push((quarter, bytes));
        }
        if job["state"] != "running" {
            break job;
        }
        service.check()?;
    };
    let per_sec = count as f64 / started.elapsed().as_secs_f64();
    done.store(true, Ordering::SeqCst);
    alongside
        .join()
        .map_err(|_| "the real-time client panicked".to_owned())?;
    let under_load = timings.latency()?;
    // Every verdict against the answer key, by reason.
    let mut expected = std::collections::HashMap::<&str, u64>::new();
    for index in 0..count {
        *expected.entry(spec.expected(index).as_str()).or_default() += 1;
    }
    let wrong: u64 = Reason::ALL
        .iter()
        .map(|reason| {
            let got = job["reasons"][reason.as_str()].as_u64().unwrap_or(0);
            let want = expected.get(reason.as_str()).copied().unwrap_or(0);
            got.abs_diff(want)
        })
        .sum::<u64>()
        / 2;
    Ok(BulkFigures {
        per_sec,
        under_load,
        rss,
        wrong,
    })
}

/// What the bulk phase measured.
struct BulkFigures {
    per_sec: f64,
    under_load: Latency,
    rss: Vec<(u8, u64)>,
    wrong: u64,
}

/// The service as a child process.
struct Service {
    child: Child,
    base: String,
}

impl Service {
    fn start(store: &Path, flags: &[String]) -> Result<Self, String> {
        let mut child = Command::new(current_exe()?)
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--no-auth", "--store"])
            .arg(store)
            .args(flags)
            .args([
                "--rate-limit",
                "1000000",
                "--daily-addresses",
                "1000000000000",
            ])
            .args(["--max-upload-mb", "100000", "--max-jobs", "1000"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start mxprobe serve: {e}"))?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let (lines, received) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                if let Some(address) = line.strip_prefix("mxprobe serve: listening on ") {
                    let _ = lines.send(address.to_owned());
                } else {
                    say(&line);
                }
            }
        });
        let base = received
            .recv_timeout(Duration::from_secs(60))
            .map_err(|_| "mxprobe serve did not start".to_owned())?;
        Ok(Self { child, base })
    }

    /// The service's resident memory, from `/proc`.
    fn resident(&self) -> Option<u64> {
        super::memory::resident_of(self.child.id()).map(|resident| resident.now)
    }

    /// Fails if the service has exited.
    fn check(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!("mxprobe serve exited: {status}")),
            Err(e) => Err(e.to_string()),
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The engine flags `verify` and `serve` get: the same engine `bench` runs.
fn engine_flags(target: &Target<'_>, concurrency: usize) -> Vec<String> {
    let period = target.spec.greylist_period;
    let retry = (period + period / 10 + Duration::from_millis(50))
        .as_secs()
        .max(1);
    [
        "--from",
        "probe@probe.bench.test",
        "--dns-server",
        &target.dns.to_string(),
        "--smtp-port",
        &target.smtp_port.to_string(),
        "--allow-private-mx",
        "--concurrency",
        &concurrency.to_string(),
        "--per-mx",
        &concurrency.to_string(),
        "--domain-rate",
        "0",
        "--retry-delay",
        &retry.to_string(),
    ]
    .iter()
    .map(ToString::to_string)
    .collect()
}

fn write_list(path: &Path, spec: &WorldSpec, count: u64) -> Result<(), String> {
    let file = std::fs::File::create(path).map_err(|e| format!("cannot write the list: {e}"))?;
    let mut out = std::io::BufWriter::new(file);
    for index in 0..count {
        writeln!(out, "{}", spec.address(index).address)
            .map_err(|e| format!("cannot write the list: {e}"))?;
    }
    out.flush()
        .map_err(|e| format!("cannot write the list: {e}"))
}

/// `range` cut into `parts` runs.
fn split(range: std::ops::Range<u64>, parts: u64) -> Vec<std::ops::Range<u64>> {
    let size = (range.end - range.start).div_ceil(parts.max(1));
    (0..parts)
        .map(|n| {
            let start = range.start + n * size;
            start.min(range.end)..(start + size).min(range.end)
        })
        .filter(|r| !r.is_empty())
        .collect()
}

fn http_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(3600)))
        .build()
        .into()
}

fn current_exe() -> Result<std::path::PathBuf, String> {
    std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))
}

fn print(figures: &Figures, args: &BenchArgs) -> Result<(), String> {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut out = std::io::stdout().lock();
    let text = if args.json {
        json!({
            "real_time": {
                "domain": REAL_TIME_DOMAIN,
                "own_server": true,
                "engine_alone": {"count": figures.engine_alone.count, "p50_ms": ms(figures.engine_alone.p50), "p99_ms": ms(figures.engine_alone.p99)},
                "http_idle": {"count": figures.idle.count, "per_sec": figures.idle_per_sec, "p50_ms": ms(figures.idle.p50), "p99_ms": ms(figures.idle.p99)},
                "http_under_bulk": {"count": figures.under_load.count, "p50_ms": ms(figures.under_load.p50), "p99_ms": ms(figures.under_load.p99)},
            },
            "bulk": {
                "addresses": args.addresses,
                "verify_per_sec": figures.verify_per_sec,
                "job_per_sec": figures.job_per_sec,
                "ratio": figures.job_per_sec / figures.verify_per_sec,
                "wrong": figures.wrong,
                "service_rss_bytes": figures.rss.iter().map(|(q, b)| json!({"progress": q, "bytes": b})).collect::<Vec<_>>(),
            },
        })
        .to_string()
    } else {
        let mut text = String::new();
        let line = |text: &mut String, s: String| {
            text.push_str(&s);
            text.push('\n');
        };
        line(
            &mut text,
            "real time (one address per request, each client waits for its verdict)".into(),
        );
        line(
            &mut text,
            format!(
                "  addresses at {REAL_TIME_DOMAIN}: a server of its own, on a farm thread no bulk address uses"
            ),
        );
        line(
            &mut text,
            format!(
                "  engine alone     {:>6} requests  p50 {:>7.2} ms  p99 {:>7.2} ms",
                figures.engine_alone.count,
                ms(figures.engine_alone.p50),
                ms(figures.engine_alone.p99)
            ),
        );
        line(
            &mut text,
            format!(
                "  HTTP, idle       {:>6} requests  p50 {:>7.2} ms  p99 {:>7.2} ms  {:>8.0} requests/s",
                figures.idle.count,
                ms(figures.idle.p50),
                ms(figures.idle.p99),
                figures.idle_per_sec
            ),
        );
        line(
            &mut text,
            format!(
                "  HTTP adds                          p50 {:>7.2} ms  p99 {:>7.2} ms",
                ms(figures.idle.p50.saturating_sub(figures.engine_alone.p50)),
                ms(figures.idle.p99.saturating_sub(figures.engine_alone.p99))
            ),
        );
        line(
            &mut text,
            format!(
                "  HTTP, bulk job   {:>6} requests  p50 {:>7.2} ms  p99 {:>7.2} ms  ({:.2}x the idle p99)",
                figures.under_load.count,
                ms(figures.under_load.p50),
                ms(figures.under_load.p99),
                figures.under_load.p99.as_secs_f64() / figures.idle.p99.as_secs_f64().max(1e-9)
            ),
        );
        line(&mut text, format!("bulk, {} addresses", args.addresses));
        line(
            &mut text,
            format!(
                "  verify           {:>10.0} addresses/s",
                figures.verify_per_sec
            ),
        );
        line(
            &mut text,
            format!(
                "  job over HTTP    {:>10.0} addresses/s  ({:.2}x verify), {} verdicts off the answer key",
                figures.job_per_sec,
                figures.job_per_sec / figures.verify_per_sec,
                figures.wrong
            ),
        );
        let rss: Vec<String> = figures
            .rss
            .iter()
            .map(|(q, b)| format!("{q} %: {:.1} MiB", *b as f64 / f64::from(1 << 20)))
            .collect();
        line(&mut text, format!("  service RSS      {}", rss.join(", ")));
        text
    };
    writeln!(out, "{text}").map_err(|e| format!("cannot write the report: {e}"))
}

fn say(message: &str) {
    #[allow(clippy::print_stderr, reason = "bench reports progress on stderr")]
    {
        eprintln!("{message}");
    }
}
