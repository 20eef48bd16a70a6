//! The feeder: a thread that takes jobs' unanswered lines from the store and gives them to
//! the engine — a chunk from each running job in turn, so that a big job does not starve the
//! next — while keeping at most a window of lines in flight (submitted, not yet saved).
//!
//! A line whose mailbox has a fresh verdict in the cache is answered from it without a probe:
//! the same list twice probes nothing twice. Jobs left running by a crash or a restart are
//! picked up at start; each line is asked until its verdict is saved, and saved only once.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::{Arc, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use mxprobe::address::Address;
use mxprobe::store::{JobId, Store};
use mxprobe::{Handle, Reason};

use super::super::fleet::link::WorkOrder;
use super::records::cached_record;
use super::tags::{MAX_SLOT, Tag};
use super::writer::{Op, Slots};

/// Lines taken from one job before the next job's turn.
const CHUNK: usize = 256;

/// What the feeder is told.
pub enum Feed {
    /// A job was committed: start its work.
    Job(JobId),
    /// A job was cancelled: submit no more of it.
    Cancel(JobId),
    /// The service is shutting down.
    Stop,
}

struct Running {
    id: JobId,
    slot: u32,
    /// The last line submitted or answered from the cache.
    cursor: u64,
}

/// Where lines go to be verified.
pub enum Sink {
    /// This service's engine.
    Engine(Handle),
    /// A fleet of workers, through NATS (`serve --nats`).
    Fleet(tokio::sync::mpsc::UnboundedSender<WorkOrder>),
}

impl Sink {
    /// Sends job `job`'s `lines` (in slot `slot`) to be verified.
    fn submit(&self, job: &JobId, slot: u32, lines: Vec<(u64, String)>) -> Result<(), String> {
        match self {
            Self::Engine(handle) => handle
                .submit_many(
                    lines
                        .into_iter()
                        .map(|(line, text)| (text, Tag::Line { slot, line }.pack())),
                )
                .map_err(|_| "the engine has stopped".to_owned()),
            Self::Fleet(orders) => orders
                .send(WorkOrder {
                    job: job.to_string(),
                    lines,
                })
                .map_err(|_| "the NATS publisher has stopped".to_owned()),
        }
    }
}

/// Everything the feeder works with.
pub struct Feeder {
    pub store: PathBuf,
    pub sink: Sink,
    pub slots: Slots,
    pub in_flight: Arc<AtomicUsize>,
    /// Lines in flight at most.
    pub window: usize,
    pub writer: Sender<Op>,
    pub inbox: Receiver<Feed>,
    pub room: Receiver<()>,
}

impl Feeder {
    /// Starts the feeder thread.
    pub fn start(self) -> std::io::Result<JoinHandle<()>> {
        std::thread::Builder::new()
            .name("mxprobe-feeder".into())
            .spawn(move || {
                if let Err(e) = self.run() {
                    #[allow(clippy::print_stderr, reason = "the service logs to stderr")]
                    {
                        eprintln!("mxprobe serve: the feeder stopped: {e}; restart the service");
                    }
                }
            })
    }

    fn run(self) -> Result<(), String> {
        let reader = Store::open_reader(&self.store).map_err(|e| e.to_string())?;
        let mut running: VecDeque<Running> = VecDeque::new();
        let mut next_slot: u32 = 0;
        let mut start = |id: JobId, running: &mut VecDeque<Running>| -> Result<(), String> {
            if next_slot > MAX_SLOT {
                return Err("out of job slots; restart the service".into());
            }
            let slot = next_slot;
            next_slot += 1;
            self.slots
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(slot, id.clone());
            running.push_back(Running {
                id,
                slot,
                cursor: 0,
            });
            Ok(())
        };
        for id in reader.running_jobs().map_err(|e| e.to_string())? {
            start(id, &mut running)?;
        }
        loop {
            // Orders first.
            loop {
                let feed = if running.is_empty() {
                    match self.inbox.recv_timeout(Duration::from_secs(1)) {
                        Ok(feed) => feed,
                        Err(RecvTimeoutError::Timeout) => break,
                        Err(RecvTimeoutError::Disconnected) => return Ok(()),
                    }
                } else {
                    match self.inbox.try_recv() {
                        Ok(feed) => feed,
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => return Ok(()),
                    }
                };
                match feed {
                    Feed::Job(id) => start(id, &mut running)?,
                    Feed::Cancel(id) => running.retain(|job| job.id != id),
                    Feed::Stop => return Ok(()),
                }
            }
            let Some(mut job) = running.pop_front() else {
                continue;
            };
            if self.in_flight.load(Ordering::SeqCst) >= self.window {
                running.push_front(job);
                // Saved verdicts ring; a missed ring costs at most this wait.
                let _ = self.room.recv_timeout(Duration::from_millis(50));
                continue;
            }
            let lines = reader
                .unanswered(&job.id, job.cursor, CHUNK)
                .map_err(|e| e.to_string())?;
            let Some(&(last, _)) = lines.last() else {
                // Every line is submitted or answered: the job's turns are over. Its slot
                // stays, for the verdicts still in flight.
                continue;
            };
            job.cursor = last;
            let mut cached = from_cache(&reader, &lines).into_iter();
            let mut records: Vec<(u64, Reason, String)> = Vec::new();
            let mut submissions = Vec::with_capacity(lines.len());
            for (line, text) in lines {
                if let Some(Some((reason, record))) = cached.next() {
                    records.push((line, reason, record));
                    continue;
                }
                submissions.push((line, text));
            }
            self.in_flight
                .fetch_add(submissions.len(), Ordering::SeqCst);
            // The chunk rings the engine once, or is one order to the fleet.
            self.sink.submit(&job.id, job.slot, submissions)?;
            if !records.is_empty() {
                let _ = self.writer.send(Op::Records {
                    job: job.id.clone(),
                    records,
                });
            }
            running.push_back(job);
        }
    }
}

/// The cached verdict of each of `lines` (line and text) whose mailbox has a fresh one, in
/// their order, looked up in one read of the store. A lookup that fails is a miss: the line is
/// probed.
fn from_cache(reader: &Store, lines: &[(u64, String)]) -> Vec<Option<(Reason, String)>> {
    let addresses: Vec<Option<Address>> = lines
        .iter()
        .map(|(_, text)| Address::parse(text).ok())
        .collect();
    let mailboxes = addresses.iter().flatten().map(Address::mailbox);
    let mut found = reader
        .cached_all(mailboxes, SystemTime::now())
        .unwrap_or_default()
        .into_iter();
    lines
        .iter()
        .zip(&addresses)
        .map(|((line, text), address)| {
            // Only a line that parsed had its mailbox looked up.
            address.as_ref()?;
            let record = found.next()??;
            cached_record(&record, text, *line)
        })
        .collect()
}
