//! `mxprobe serve`: the engine behind an HTTP API — one address at a time in real time, and
//! bulk jobs uploaded, watched and downloaded — with a SQLite store that loses nothing it
//! acknowledged.
//!
//! ```text
//!   HTTP (tokio, hyper, axum) ──submit──► engine thread (mio) ──verdicts──► writer thread
//!        │  ▲ real-time verdicts by tag ◄───────┘                         (owns the store)
//!        │  └──── reads: store readers on blocking threads                       │
//!        └──► jobs committed ──► feeder thread ──lines──► engine                ▼
//!                                   ▲  unanswered lines, cache ◄── store (WAL) ◄┘
//! ```
//!
//! The engine keeps its own thread and event loop; HTTP runs on a small tokio runtime. A
//! job's upload is streamed into the store and committed before the `202`; the feeder then
//! gives its lines to the engine, a chunk per job in turn, and the writer saves each verdict
//! under its line. After a crash or restart the feeder picks up every running job where its
//! saved verdicts stop: each line is answered exactly once.
//!
//! SIGTERM or Ctrl-C: stop accepting, let requests in progress finish (real-time ones get
//! their verdict), stop the engine (sessions in flight finish for a few seconds), save what
//! came back, exit. What was not asked is asked after the next start.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use clap::Args;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use mxprobe::store::Store;
use mxprobe::{Engine, Handle, VerifyResult};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Semaphore, oneshot};
use tokio_io_timeout::TimeoutStream;

use super::engine_args::EngineArgs;
use super::fleet;

mod api;
mod auth;
mod feeder;
mod limits;
mod metrics;
mod records;
mod tags;
mod webhook;
mod writer;

use auth::Auth;
use feeder::{Feed, Feeder, Sink};
use limits::Limits;
use metrics::Metrics;
use tags::Tag;
use writer::Op;

/// Verdicts the engine remembers for repeats that come before the cache has them.
const REMEMBERED: usize = 10_000;

/// The longest a real-time request may wait for its verdict (a worker of the fleet allows as
/// much).
const MAX_VERIFY_TIMEOUT: Duration = Duration::from_millis(fleet::wire::MAX_VERIFY_TIMEOUT_MS);

/// How long requests in progress get to finish after SIGTERM.
const DRAIN: Duration = Duration::from_secs(30);

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The address and port to listen on. Anything but loopback needs API tokens.
    #[arg(
        long,
        value_name = "IP:PORT",
        default_value = "127.0.0.1:8025",
        env = "MXPROBE_LISTEN"
    )]
    listen: SocketAddr,

    /// The SQLite file of jobs, results and the verdict cache (made if missing).
    #[arg(
        long,
        value_name = "FILE",
        default_value = "mxprobe.db",
        env = "MXPROBE_STORE"
    )]
    store: PathBuf,

    /// A file of API tokens, one per line (or `sha256:` and a token's hash). Tokens also come
    /// from the environment variable MXPROBE_TOKENS, comma separated.
    #[arg(long = "tokens", value_name = "FILE", env = "MXPROBE_TOKENS_FILE")]
    tokens: Option<PathBuf>,

    /// Serve without tokens: everyone is one owner. Refused unless --listen is loopback.
    #[arg(long = "no-auth", env = "MXPROBE_NO_AUTH")]
    no_auth: bool,

    /// Requests per second per token (bursts of as many).
    #[arg(long = "rate-limit", value_name = "PER_SEC", default_value_t = NonZeroU32::new(50).expect("50 > 0"), env = "MXPROBE_RATE_LIMIT")]
    rate_limit: NonZeroU32,

    /// Addresses per token per day (UTC), real-time and bulk together.
    #[arg(
        long = "daily-addresses",
        value_name = "N",
        default_value_t = 1_000_000,
        env = "MXPROBE_DAILY_ADDRESSES"
    )]
    daily_addresses: u64,

    /// Jobs running at once per token.
    #[arg(
        long = "max-jobs",
        value_name = "N",
        default_value_t = 4,
        env = "MXPROBE_MAX_JOBS"
    )]
    max_jobs: usize,

    /// The largest upload, in megabytes.
    #[arg(
        long = "max-upload-mb",
        value_name = "MB",
        default_value_t = 1024,
        env = "MXPROBE_MAX_UPLOAD_MB"
    )]
    max_upload_mb: u64,

    /// Connections open at once; more wait to be accepted.
    #[arg(
        long = "max-connections",
        value_name = "N",
        default_value_t = 1024,
        env = "MXPROBE_MAX_CONNECTIONS"
    )]
    max_connections: usize,

    /// Seconds a client may take to send its request's headers, and between two pieces of
    /// its body; a slower one is cut off.
    #[arg(
        long = "read-timeout",
        value_name = "SECS",
        default_value_t = 30,
        env = "MXPROBE_READ_TIMEOUT"
    )]
    read_timeout: u64,

    /// Seconds a client may take nothing of a response (a download it stopped reading); then
    /// its connection is cut off.
    #[arg(
        long = "write-timeout",
        value_name = "SECS",
        default_value_t = 60,
        env = "MXPROBE_WRITE_TIMEOUT"
    )]
    write_timeout: u64,

    /// Milliseconds a real-time request waits for its verdict when it does not say
    /// (`timeout_ms`); then it is answered unknown/timeout and the probe goes on into the cache.
    #[arg(
        long = "verify-timeout-ms",
        value_name = "MS",
        default_value_t = 30_000,
        env = "MXPROBE_VERIFY_TIMEOUT_MS"
    )]
    verify_timeout_ms: u64,

    /// Read settings from this TOML file: each key a flag's long name, each value what the
    /// flag takes (see docs/operating.md). Flags and environment variables win over it.
    #[arg(long, value_name = "FILE", env = "MXPROBE_CONFIG")]
    config: Option<PathBuf>,

    /// Call webhooks at special-purpose addresses (loopback, private, link-local...): by
    /// default a job's webhook cannot aim the service at its own network.
    #[arg(
        long = "allow-private-webhooks",
        env = "MXPROBE_ALLOW_PRIVATE_WEBHOOKS"
    )]
    allow_private_webhooks: bool,

    /// Send jobs and real-time requests to a fleet of `mxprobe worker`s through NATS
    /// (JetStream on; one server, or a cluster's, comma-separated) instead of verifying them
    /// here: jobs' lines go out as work batches and the results come back into the store
    /// (docs/scaling.md).
    #[arg(long, value_name = "URL[,URL...]", env = "MXPROBE_NATS")]
    nats: Option<String>,

    #[command(flatten)]
    replicas: fleet::Replicas,

    /// This front end's name among those sharing one fleet (letters, digits, - and _): each
    /// reads the results through a durable consumer of its own, `mxprobe-serve-<NAME>`, so
    /// give every front end its own, and keep it across restarts. Without it the consumer is
    /// `mxprobe-serve`: one front end.
    #[arg(long = "nats-name", value_name = "NAME", value_parser = front_end_name, env = "MXPROBE_NATS_NAME")]
    nats_name: Option<String>,

    #[command(flatten)]
    engine: EngineArgs,
}

/// A `--nats-name`: 1 to 32 letters, digits, `-` or `_` (it is part of a consumer's name).
fn front_end_name(name: &str) -> Result<String, String> {
    if (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(name.to_owned())
    } else {
        Err("give 1 to 32 letters, digits, - or _".into())
    }
}

/// Lines in flight to a fleet at most (`serve --nats`): the workers' engines together hold
/// far more than this service's own would.
const FLEET_WINDOW: usize = 200_000;

/// Where a fleet's results go: the store's writer, under the job's slot.
struct FleetResults {
    slots: writer::Slots,
    writer: mpsc::Sender<Op>,
    metrics: Arc<Metrics>,
}

impl fleet::link::ResultSink for FleetResults {
    fn deliver(&mut self, job: &str, mut result: VerifyResult) -> bool {
        let slot = self
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|(_, id)| id.as_str() == job)
            .map(|(slot, _)| *slot);
        let Some(slot) = slot else {
            return false;
        };
        result.tag = Tag::Line {
            slot,
            line: result.tag,
        }
        .pack();
        self.metrics.verdict(result.reason, false);
        self.writer.send(Op::Line(result)).is_ok()
    }

    fn saved(&mut self) -> oneshot::Receiver<()> {
        let (done, saved) = oneshot::channel();
        let _ = self.writer.send(Op::Sync(done));
        saved
    }
}

/// The limits a request meets.
#[derive(Debug, Clone)]
pub struct Settings {
    max_upload: u64,
    body_timeout: Duration,
    verify_timeout: Duration,
    max_verify_timeout: Duration,
}

/// What every handler shares.
pub struct App {
    auth: Auth,
    limits: Limits,
    handle: Handle,
    /// Real-time requests waiting, by tag.
    waiters: Arc<Mutex<HashMap<u64, oneshot::Sender<VerifyResult>>>>,
    /// With `--nats`: real-time requests go to the fleet's workers through this client.
    fleet: Option<async_nats::Client>,
    serial: AtomicU64,
    writer: mpsc::Sender<Op>,
    feeder: mpsc::Sender<Feed>,
    readers: Arc<Mutex<Vec<Store>>>,
    store_path: PathBuf,
    metrics: Arc<Metrics>,
    in_flight: Arc<AtomicUsize>,
    settings: Settings,
    shutting_down: AtomicBool,
}

/// Runs the service until SIGTERM or Ctrl-C.
pub fn run(args: ServeArgs) -> Result<u8, String> {
    let auth = if args.no_auth {
        if !args.listen.ip().is_loopback() {
            return Err(format!(
                "--no-auth: refused on {}, which is not loopback: anyone who reaches it could \
                 use the service; give API tokens (--tokens FILE or MXPROBE_TOKENS)",
                args.listen
            ));
        }
        Auth::Open
    } else {
        Auth::from_sources(
            args.tokens.as_deref(),
            std::env::var("MXPROBE_TOKENS").ok().as_deref(),
        )?
    };
    if !(1..=MAX_VERIFY_TIMEOUT.as_millis()).contains(&u128::from(args.verify_timeout_ms)) {
        return Err(format!(
            "--verify-timeout-ms: give 1 to {} (a real-time request waits at most that long)",
            MAX_VERIFY_TIMEOUT.as_millis()
        ));
    }
    // A real-time probe that outlives its request's deadline still reaches the cache; a
    // repeat of a mailbox just verified is answered from the engine's memory until the cache
    // has it.
    let store = writer::open(&args.store)?;
    // Read once now: a store that cannot be read stops the start, not the first request.
    store
        .running_jobs()
        .map_err(|e| format!("--store {}: {e}", args.store.display()))?;
    // Catch-all answers had in the last day are not asked again.
    let known = store
        .known_catch_all(SystemTime::now())
        .map_err(|e| format!("--store {}: {e}", args.store.display()))?;
    let config = args.engine.config(|builder| {
        builder
            .late_results(true)
            .remember_results(REMEMBERED)
            .known_catch_all(known)
    })?;
    let window = if args.nats.is_some() {
        config.intake().max(FLEET_WINDOW)
    } else {
        config.intake()
    };
    // Built first: a fleet's NATS link lives on it.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("mxprobe-http")
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the HTTP runtime: {e}"))?;

    let slots: writer::Slots = Arc::default();
    let in_flight = Arc::new(AtomicUsize::new(0));
    let (room, room_rx) = mpsc::sync_channel(1);
    let writer = writer::start(store, Arc::clone(&slots), Arc::clone(&in_flight), room)
        .map_err(|e| format!("cannot start the store writer: {e}"))?;
    let metrics = Arc::new(Metrics::new());
    let waiters: Arc<Mutex<HashMap<u64, oneshot::Sender<VerifyResult>>>> = Arc::default();

    let engine = {
        let waiters = Arc::clone(&waiters);
        let writer = writer.sender.clone();
        let metrics = Arc::clone(&metrics);
        Engine::start_with_callback(config, move |result: VerifyResult| {
            match Tag::unpack(result.tag) {
                Tag::RealTime(_) => {
                    let waiter = waiters
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .remove(&result.tag);
                    if let Some(waiter) = waiter {
                        let _ = waiter.send(result.clone());
                    }
                    let _ = writer.send(Op::Cache(result));
                }
                Tag::Line { .. } => {
                    metrics.verdict(result.reason, false);
                    let _ = writer.send(Op::Line(result));
                }
            }
        })
        .map_err(|e| format!("cannot start the engine: {e}"))?
    };
    for notice in engine.notices() {
        say(notice);
    }
    let (sink, fleet_client) = match &args.nats {
        None => (Sink::Engine(engine.handle()), None),
        Some(url) => {
            let js = runtime.block_on(fleet::link::connect(url, args.replicas.get()))?;
            let client = js.client();
            let (orders, orders_rx) = tokio::sync::mpsc::unbounded_channel();
            runtime.spawn(fleet::link::publish_orders(js.clone(), orders_rx));
            runtime.spawn(fleet::link::read_results(
                js,
                fleet::link::results_consumer_name(args.nats_name.as_deref()),
                FleetResults {
                    slots: Arc::clone(&slots),
                    writer: writer.sender.clone(),
                    metrics: Arc::clone(&metrics),
                },
            ));
            say(&format!(
                "mxprobe serve: jobs and real-time requests go to the fleet on {url}"
            ));
            (Sink::Fleet(orders), Some(client))
        }
    };
    let (feed, inbox) = mpsc::channel();
    let feeder = Feeder {
        store: args.store.clone(),
        sink,
        slots,
        in_flight: Arc::clone(&in_flight),
        window,
        writer: writer.sender.clone(),
        inbox,
        room: room_rx,
    }
    .start()
    .map_err(|e| format!("cannot start the feeder: {e}"))?;

    let (webhooks, webhook_thread) = webhook::Webhooks {
        store: args.store.clone(),
        writer: writer.sender.clone(),
        allow_private: args.allow_private_webhooks,
    }
    .start()
    .map_err(|e| format!("cannot start the webhook thread: {e}"))?;

    let app = Arc::new(App {
        auth,
        limits: Limits::new(args.rate_limit, args.daily_addresses, args.max_jobs),
        handle: engine.handle(),
        waiters,
        fleet: fleet_client,
        serial: AtomicU64::new(0),
        writer: writer.sender.clone(),
        feeder: feed.clone(),
        readers: Arc::default(),
        store_path: args.store.clone(),
        metrics,
        in_flight,
        settings: Settings {
            max_upload: args.max_upload_mb.saturating_mul(1 << 20),
            body_timeout: Duration::from_secs(args.read_timeout.max(1)),
            verify_timeout: Duration::from_millis(args.verify_timeout_ms),
            max_verify_timeout: MAX_VERIFY_TIMEOUT,
        },
        shutting_down: AtomicBool::new(false),
    });
    let served = runtime.block_on(serve(
        Arc::clone(&app),
        args.listen,
        args.max_connections.max(1),
        Deadlines {
            header: Duration::from_secs(args.read_timeout.max(1)),
            write: Duration::from_secs(args.write_timeout.max(1)),
        },
    ));
    // Stop in order: no more lines, the engine's sessions end, their verdicts are saved.
    let _ = feed.send(Feed::Stop);
    let _ = feeder.join();
    let handle = engine.handle();
    handle.stop();
    drop(handle);
    let report = engine
        .join()
        .map_err(|e| format!("the engine failed: {e}"))?;
    // Webhooks not yet called are called after the next start.
    drop(webhooks);
    let _ = webhook_thread.join();
    let (synced, done) = oneshot::channel();
    let _ = writer.sender.send(Op::Sync(synced));
    let _ = done.blocking_recv();
    drop(app);
    drop(writer.sender);
    let _ = writer.thread.join();
    served?;
    say(&format!(
        "mxprobe serve: stopped after {} verdicts; unanswered lines are asked at the next start",
        report.stats.finished
    ));
    Ok(0)
}

/// How long a connection's client may keep the service waiting.
struct Deadlines {
    /// To send its request's headers.
    header: Duration,
    /// Taking nothing of a response.
    write: Duration,
}

/// Accepts connections until SIGTERM or SIGINT, then lets the requests in progress finish.
async fn serve(
    app: Arc<App>,
    listen: SocketAddr,
    max_connections: usize,
    deadlines: Deadlines,
) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("--listen {listen}: {e}"))?;
    let bound = listener
        .local_addr()
        .map_err(|e| format!("--listen {listen}: {e}"))?;
    say(&format!("mxprobe serve: listening on http://{bound}"));
    let mut terminate =
        signal(SignalKind::terminate()).map_err(|e| format!("cannot watch SIGTERM: {e}"))?;
    let mut interrupt =
        signal(SignalKind::interrupt()).map_err(|e| format!("cannot watch SIGINT: {e}"))?;
    let router = api::router(Arc::clone(&app));
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(max_connections));
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and kin: wait, rather than spin.
                    say(&format!("mxprobe serve: accept failed: {e}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        };
        // hyper has no write deadline: a client that stopped reading a download would hold its
        // connection (and a place under --max-connections) for ever.
        let mut stream = TimeoutStream::new(stream);
        stream.set_write_timeout(Some(deadlines.write));
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(deadlines.header)
            .serve_connection(
                TokioIo::new(Box::pin(stream)),
                TowerToHyperService::new(router.clone()),
            );
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _ = connection.await;
            drop(permit);
        });
    }
    say("mxprobe serve: stopping: finishing the requests in progress");
    app.shutting_down.store(true, Ordering::SeqCst);
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        say("mxprobe serve: requests still in progress after 30 s were cut off");
    }
    Ok(())
}

/// A message for people, on stderr.
fn say(message: &str) {
    #[allow(clippy::print_stderr, reason = "the service logs to stderr")]
    {
        eprintln!("{message}");
    }
}
