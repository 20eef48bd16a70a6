//! The store's one writer: a thread that owns the writing connection and does what the
//! others ask, in order — uploads, commits, cancels, and the results that pour in from the
//! engine, saved in batches (one transaction for up to [`BATCH`] results).
//!
//! Results of a job's lines are saved under the job's name; the results of real-time requests
//! go to the verdict cache only. The cache entries of saved results are written many at a time
//! in mailbox order ([`Store::flush_cache`]): when the store holds
//! [`CACHE_BATCH`](mxprobe::store::CACHE_BATCH) of them, when a job finishes, when results
//! pause for [`IDLE`], and before the writer stops. Once a batch is saved the feeder hears of
//! the room it made.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use mxprobe::store::{JobId, Store, StoreError, Upload};
use mxprobe::{Reason, VerifyResult};
use tokio::sync::oneshot;

use super::tags::Tag;

/// Results saved in one transaction at most.
pub const BATCH: usize = 2_000;

/// What the writer is asked to do.
pub enum Op {
    /// The verdict on a job's line (tagged [`Tag::Line`]).
    Line(VerifyResult),
    /// A real-time verdict: cached.
    Cache(VerifyResult),
    /// Cached verdicts given to a job's lines without a probe.
    Records {
        /// The job.
        job: JobId,
        /// Line, reason, record JSON.
        records: Vec<(u64, Reason, String)>,
    },
    /// Start an upload for an owner.
    Begin {
        owner: String,
        reply: oneshot::Sender<Result<Upload, StoreError>>,
    },
    /// Add lines to an upload; the upload comes back with the outcome.
    Lines {
        upload: Upload,
        lines: Vec<(u64, String)>,
        reply: oneshot::Sender<(Upload, Result<(), StoreError>)>,
    },
    /// Commit an upload.
    Commit {
        upload: Upload,
        reply: oneshot::Sender<Result<JobId, StoreError>>,
    },
    /// Drop an upload.
    Abandon(Upload),
    /// Cancel a job of an owner.
    Cancel {
        owner: String,
        id: JobId,
        reply: oneshot::Sender<Result<bool, StoreError>>,
    },
    /// A job's webhook was called, or given up on.
    WebhookCalled { id: JobId, delivered: bool },
    /// Answer once everything sent before is saved.
    Sync(oneshot::Sender<()>),
}

/// Which job each slot is: filled by the feeder before a line of the job is submitted.
pub type Slots = Arc<Mutex<HashMap<u32, JobId>>>;

/// The writer thread and its way in.
pub struct Writer {
    pub sender: Sender<Op>,
    pub thread: JoinHandle<()>,
}

/// Starts the writer on `store` (opened for writing). `in_flight` counts lines submitted and
/// not yet saved: the writer takes saved ones off and rings `room`.
pub fn start(
    store: Store,
    slots: Slots,
    in_flight: Arc<AtomicUsize>,
    room: SyncSender<()>,
) -> std::io::Result<Writer> {
    let (sender, receiver) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("mxprobe-store".into())
        .spawn(move || {
            run(&mut State {
                store,
                slots,
                in_flight,
                room,
                lines: Vec::new(),
                cache: Vec::new(),
                receiver,
            });
        })?;
    Ok(Writer { sender, thread })
}

struct State {
    store: Store,
    slots: Slots,
    in_flight: Arc<AtomicUsize>,
    room: SyncSender<()>,
    /// Line verdicts not yet saved.
    lines: Vec<VerifyResult>,
    /// Real-time verdicts not yet cached.
    cache: Vec<VerifyResult>,
    receiver: Receiver<Op>,
}

/// How long the writer waits for more before it writes the cache entries it holds back
/// ([`Store::flush_cache`]): results have stopped coming, for now.
const IDLE: Duration = Duration::from_millis(200);

fn run(state: &mut State) {
    // Block for the first op, then take what else is waiting, saving verdicts in batches.
    loop {
        let op = if state.store.cache_pending() == 0 {
            state.receiver.recv().ok()
        } else {
            match state.receiver.recv_timeout(IDLE) {
                Ok(op) => Some(op),
                Err(RecvTimeoutError::Timeout) => {
                    state.flush_cache();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => None,
            }
        };
        let Some(op) = op else {
            break;
        };
        state.handle(op);
        loop {
            if state.lines.len() >= BATCH {
                state.save();
            }
            match state.receiver.try_recv() {
                Ok(op) => state.handle(op),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    state.save();
                    state.flush_cache();
                    return;
                }
            }
        }
        state.save();
    }
    state.save();
    state.flush_cache();
}

impl State {
    fn handle(&mut self, op: Op) {
        let now = SystemTime::now();
        match op {
            Op::Line(result) => self.lines.push(result),
            Op::Cache(result) => self.cache.push(result),
            Op::Records { job, records } => {
                if let Err(e) = self.store.save_records(&job, &records, now) {
                    complain(&format!("cannot save cached verdicts of job {job}: {e}"));
                }
            }
            Op::Begin { owner, reply } => {
                let _ = reply.send(self.store.begin_job(&owner, now));
            }
            Op::Lines {
                mut upload,
                lines,
                reply,
            } => {
                let borrowed: Vec<(u64, &str)> =
                    lines.iter().map(|(n, text)| (*n, text.as_str())).collect();
                let outcome = self.store.upload(&mut upload, &borrowed);
                let _ = reply.send((upload, outcome));
            }
            Op::Commit { upload, reply } => {
                let _ = reply.send(self.store.commit_job(upload));
            }
            Op::Abandon(upload) => {
                if let Err(e) = self.store.abandon_job(upload) {
                    complain(&format!("cannot remove an abandoned upload: {e}"));
                }
            }
            Op::Cancel { owner, id, reply } => {
                let _ = reply.send(self.store.cancel(&owner, &id, now));
            }
            Op::WebhookCalled { id, delivered } => {
                if let Err(e) = self.store.webhook_called(&id, delivered) {
                    complain(&format!("cannot record job {id}'s webhook: {e}"));
                }
            }
            Op::Sync(reply) => {
                self.save();
                self.flush_cache();
                let _ = reply.send(());
            }
        }
    }

    /// Writes the cache entries of saved results held back.
    fn flush_cache(&mut self) {
        if let Err(e) = self.store.flush_cache(SystemTime::now()) {
            complain(&format!(
                "cannot cache verdicts: {e}; their mailboxes will be probed again"
            ));
        }
    }

    /// Saves the verdicts waiting: each job's in one transaction, then the cache's.
    fn save(&mut self) {
        let now = SystemTime::now();
        if !self.lines.is_empty() {
            let count = self.lines.len();
            let mut by_job: HashMap<u32, Vec<VerifyResult>> = HashMap::new();
            for mut result in self.lines.drain(..) {
                if let Tag::Line { slot, line } = Tag::unpack(result.tag) {
                    // Stored and shown under its line, as `verify` shows it.
                    result.tag = line;
                    by_job.entry(slot).or_default().push(result);
                }
            }
            let slots = self
                .slots
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            for (slot, results) in by_job {
                let Some(job) = slots.get(&slot) else {
                    complain(&format!("verdicts for job slot {slot}, which no job has"));
                    continue;
                };
                if let Err(e) = self.store.save_results(job, &results, now) {
                    complain(&format!(
                        "cannot save {} verdicts of job {job}: {e}; its lines will be asked \
                         again after a restart",
                        results.len()
                    ));
                }
            }
            // Saturating: a result can come twice (a fleet's redelivery), and is saved once.
            let _ = self
                .in_flight
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                    Some(n.saturating_sub(count))
                });
            let _ = self.room.try_send(());
        }
        for result in self.cache.drain(..) {
            if let Err(e) = self.store.cache(&result, now) {
                complain(&format!("cannot cache a verdict: {e}"));
            }
        }
    }
}

/// The writer's trouble, on stderr: it has nobody else to tell.
fn complain(message: &str) {
    #[allow(clippy::print_stderr, reason = "the service logs to stderr")]
    {
        eprintln!("mxprobe serve: {message}");
    }
}

/// Opens the store for writing at `path`, or says what is wrong with it.
pub fn open(path: &Path) -> Result<Store, String> {
    Store::open(path).map_err(|e| format!("--store {}: {e}", path.display()))
}
