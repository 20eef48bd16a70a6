//! `mxprobe worker`: one prober of a fleet. It pulls batches of addresses from the JetStream
//! work queue through the durable consumer every worker shares, verifies them with its own
//! engine, publishes one result per line, and only then acks the batch.
//!
//! # Delivery
//!
//! At least once, with results made idempotent: each result carries the message id
//! `<job>:<line>`, so when a batch is verified twice (its worker died after publishing and
//! before acking, or the ack was lost) the results stream drops the second copy. A worker that
//! dies leaves its batches unacked; JetStream hands them to another worker after the ack wait.
//! A batch still open sends "in progress" every third of the ack wait (greylisting retries and
//! slow servers take minutes), so a live worker keeps its batches. A batch delivered more than
//! `--max-deliver` times is not verified again: each of its lines is answered
//! `unknown/temporary_failure` with a detail saying so, never dropped. A message that is not a
//! batch goes to the dead-letter stream with the reason, and is terminated.
//!
//! # Real time
//!
//! Every worker also answers real-time requests (`mxprobe.verify`, one worker of the queue
//! group each): ahead of its batches, at the latest at the request's deadline. Nothing is
//! acked or stored: a worker that dies with a request leaves its caller to ask again.
//!
//! # Back-pressure
//!
//! The worker pulls only while what it holds is below what its engine takes in
//! (`Config::intake`: its sessions' worth plus the lookahead), a batch at most
//! [`MAX_BATCH_LINES`] addresses; the rest waits in the stream for the workers with room.
//!
//! # Shape
//!
//! A tokio runtime for NATS; the engine on its own thread, its verdicts handed over through a
//! channel by its callback. One task pulls; the main loop submits, gathers, publishes and acks.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, pull};
use async_nats::jetstream::message::{AckKind, Acker, PublishMessage as Publish};
use async_nats::jetstream::{self, Context};
use async_nats::{HeaderMap, Subject};
use clap::Args;
use futures_util::StreamExt;
use mxprobe::address::Address;
use mxprobe::{Engine, Reason, SubmitOptions, VerifyResult};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Notify, mpsc};

use super::wire::{
    DEAD_SUBJECT, DomainFacts, MAX_ACK_PENDING, MAX_BATCH_LINES, REASON_HEADER, VERIFY_GROUP,
    VERIFY_SUBJECT, VerifyRequest, WORKERS, WorkBatch, ensure_streams, facts_bucket, is_facts_key,
    patiently, result_id, results_subject,
};
use crate::cli::engine_args::EngineArgs;

/// Results remembered for repeats within and across batches.
const REMEMBERED: usize = 20_000;

/// Engine tags from here on are real-time requests'; batches' lines count up from 0.
const REAL_TIME_TAGS: u64 = 1 << 63;

/// Real-time requests a worker holds at most; more are refused ("busy") for the caller to
/// ask again, so that no one who can publish on the subject can grow a worker's memory.
const MAX_REAL_TIME: usize = 1024;

/// The longest a call to the facts bucket may take: a fact is a hint, and a bucket that does
/// not answer (its leader moving after a lost node) must not hold up verdicts.
const KV_TIMEOUT: Duration = Duration::from_millis(500);

/// Facts waiting to be put in the bucket, at most; more are dropped (hints).
const FACTS_QUEUE: usize = 4096;

/// Flags of `mxprobe worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// The NATS server (with JetStream on) to take work from: nats://HOST:PORT, or a
    /// cluster's servers, comma-separated.
    #[arg(long, value_name = "URL[,URL...]", env = "MXPROBE_NATS")]
    nats: String,

    #[command(flatten)]
    replicas: super::Replicas,

    /// Seconds a batch may go unacknowledged before JetStream gives it to another worker. A
    /// live worker says "in progress" every third of it, however long its batch takes.
    #[arg(
        long = "ack-wait",
        value_name = "SECS",
        default_value_t = 60,
        env = "MXPROBE_ACK_WAIT"
    )]
    ack_wait: u64,

    /// Deliveries of a batch before its lines are answered unknown instead of verified again
    /// (workers kept dying or timing out on it).
    #[arg(
        long = "max-deliver",
        value_name = "N",
        default_value_t = 5,
        env = "MXPROBE_MAX_DELIVER"
    )]
    max_deliver: u32,

    /// Read settings from this TOML file: each key a flag's long name, each value what the
    /// flag takes. Flags and environment variables win over it.
    #[arg(long, value_name = "FILE", env = "MXPROBE_CONFIG")]
    config: Option<PathBuf>,

    #[command(flatten)]
    engine: EngineArgs,
}

/// A batch being verified: its acker, its job, and the records of its lines so far.
struct Open {
    acker: Acker,
    job: String,
    remaining: usize,
    records: Vec<(u64, String)>,
}

/// Runs the worker until SIGINT or SIGTERM, then finishes the batches it holds.
pub fn run(args: WorkerArgs) -> Result<u8, String> {
    if args.ack_wait < 3 {
        return Err("--ack-wait: at least 3 seconds".into());
    }
    let config = args
        .engine
        .config(|builder| builder.remember_results(REMEMBERED))?;
    let capacity = config.intake();
    let (verdicts, mut verdicts_rx) = mpsc::unbounded_channel::<VerifyResult>();
    let engine = Engine::start_with_callback(config, move |result| {
        let _ = verdicts.send(result);
    })
    .map_err(|e| format!("cannot start the engine: {e}"))?;
    for notice in engine.notices() {
        say(notice);
    }
    let handle = engine.handle();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("mxprobe-worker")
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let outcome = runtime.block_on(async {
        let client = super::wire::connect(&args.nats).await?;
        let js = jetstream::new(client.clone());
        let replicas = args.replicas.get();
        let ack_wait = Duration::from_secs(args.ack_wait);
        let (facts, consumer) = patiently(
            || set_up(&js, replicas, ack_wait),
            |m| say(&format!("mxprobe: {m}")),
        )
        .await?;
        // What the results teach of their domains goes to the bucket from a task of its own,
        // off the path of verdicts and answers.
        let (learned, learned_rx) = mpsc::channel::<(String, DomainFacts)>(FACTS_QUEUE);
        let sharer = tokio::spawn(share_facts(facts.clone(), learned_rx));
        say(&format!(
            "mxprobe: worker pulling from {} at {} ({capacity} addresses at most in hand)",
            WORKERS, args.nats
        ));

        let held = Arc::new(AtomicUsize::new(0));
        let room = Arc::new(Notify::new());
        let (pulled, mut pulled_rx) = mpsc::channel::<jetstream::Message>(64);
        let puller = tokio::spawn(pull_work(
            consumer,
            Arc::clone(&held),
            Arc::clone(&room),
            capacity,
            pulled,
        ));

        let mut requests = client
            .queue_subscribe(VERIFY_SUBJECT, VERIFY_GROUP.into())
            .await
            .map_err(|e| format!("cannot listen on {VERIFY_SUBJECT}: {e}"))?;

        let mut terminate =
            signal(SignalKind::terminate()).map_err(|e| format!("cannot watch SIGTERM: {e}"))?;
        let mut open: HashMap<u64, Open> = HashMap::new();
        let mut tags: HashMap<u64, (u64, u64)> = HashMap::new();
        let mut next_tag = 0u64;
        let mut next_open = 0u64;
        // Real-time requests in the engine: tag → where the answer goes.
        let mut waiting: HashMap<u64, Subject> = HashMap::new();
        let mut next_real_time = REAL_TIME_TAGS;
        let mut progress = tokio::time::interval(ack_wait / 3);
        let mut stopping = false;
        let mut listening = true;
        let mut draining = false;
        loop {
            if stopping && listening && !draining {
                // New requests go to the other workers from now on; those on their way here
                // are still read, and answered.
                // A drain NATS did not take (it is away) ends the listening here and now.
                listening = requests.drain().await.is_ok();
                draining = true;
            }
            if stopping && !listening && open.is_empty() && waiting.is_empty() {
                break;
            }
            tokio::select! {
                request = requests.next(), if listening => {
                    let Some(request) = request else {
                        if draining {
                            listening = false;
                            continue;
                        }
                        return Err("the NATS connection ended".to_owned());
                    };
                    // A request no one waits for (published, not asked) is not verified.
                    let Some(reply) = request.reply else { continue };
                    let asked = VerifyRequest::parse(&request.payload).and_then(|asked| {
                        if waiting.len() < MAX_REAL_TIME {
                            Ok(asked)
                        } else {
                            Err(format!(
                                "busy: this worker holds {MAX_REAL_TIME} real-time requests; ask again"
                            ))
                        }
                    });
                    match asked {
                        Ok(asked) => {
                            know_domain(&facts, &handle, &asked.address).await;
                            let tag = next_real_time;
                            next_real_time += 1;
                            let options = SubmitOptions::real_time().deadline(asked.timeout());
                            tokio::task::block_in_place(|| handle.submit_with(asked.address, tag, options))
                                .map_err(|e| format!("the engine stopped: {e}"))?;
                            waiting.insert(tag, reply);
                        }
                        Err(why) => {
                            let mut headers = HeaderMap::new();
                            headers.insert(REASON_HEADER, why.as_str());
                            let _ = client
                                .publish_with_headers(reply, headers, Vec::new().into())
                                .await;
                        }
                    }
                }
                message = pulled_rx.recv(), if !stopping => {
                    let Some(message) = message else {
                        return Err("the NATS connection ended".to_owned());
                    };
                    let id = next_open;
                    next_open += 1;
                    let submitted = Submitting { id, handle: &handle, facts: &facts, next_tag: &mut next_tag, tags: &mut tags };
                    match accept(&js, message, args.max_deliver, submitted).await? {
                        Some(batch) => {
                            // The puller counted a full batch; this one holds `remaining`.
                            let lines = batch.remaining;
                            if lines > MAX_BATCH_LINES {
                                held.fetch_add(lines - MAX_BATCH_LINES, Ordering::SeqCst);
                            } else {
                                release(&held, &room, MAX_BATCH_LINES - lines);
                            }
                            open.insert(id, batch);
                        }
                        None => release(&held, &room, MAX_BATCH_LINES),
                    }
                }
                Some(mut result) = verdicts_rx.recv() => {
                    // One worker's catch-all answer and greylisting wait serve the fleet (a
                    // full queue drops the fact: a hint).
                    if let Some(fact) = learned_facts(&result) {
                        let _ = learned.try_send(fact);
                    }
                    if let Some(reply) = waiting.remove(&result.tag) {
                        result.tag = 1;
                        let json = serde_json::to_string(&result.record())
                            .map_err(|e| format!("cannot write a record: {e}"))?;
                        // A caller gone, or NATS away: the caller asks again.
                        let _ = client.publish(reply, json.into()).await;
                        continue;
                    }
                    let Some((id, line)) = tags.remove(&result.tag) else { continue };
                    let Some(batch) = open.get_mut(&id) else { continue };
                    result.tag = line;
                    let json = serde_json::to_string(&result.record())
                        .map_err(|e| format!("cannot write a record: {e}"))?;
                    batch.records.push((line, json));
                    batch.remaining -= 1;
                    if batch.remaining == 0 {
                        let batch = open.remove(&id).expect("the batch is open");
                        let lines = batch.records.len();
                        // NATS may be away (restarting, a network cut): the batch stays
                        // unacked, and comes back after the ack wait to be answered again.
                        if let Err(why) = finish(&js, batch).await {
                            say(&format!("mxprobe: a batch's results were not stored ({why}); it will come back"));
                        }
                        release(&held, &room, lines);
                    }
                }
                _ = progress.tick() => {
                    for batch in open.values() {
                        // Lost "in progress" acks cost at most a redelivery, which the results'
                        // ids make harmless.
                        let _ = batch.acker.ack_with(AckKind::Progress).await;
                    }
                }
                _ = tokio::signal::ctrl_c() => {
                    if stopping {
                        // The batches in hand stay unacked: another worker gets them after the
                        // ack wait.
                        say("mxprobe: quitting now; the batches in hand go to other workers");
                        return Ok(false);
                    }
                    say("mxprobe: stopping: finishing the batches in hand (Ctrl-C again to quit now)");
                    stopping = true;
                }
                _ = terminate.recv(), if !stopping => {
                    say("mxprobe: stopping: finishing the batches in hand");
                    stopping = true;
                }
            }
        }
        puller.abort();
        // The facts still queued go in, briefly.
        drop(learned);
        let _ = tokio::time::timeout(Duration::from_secs(2), sharer).await;
        Ok(true)
    });
    // Finished cleanly, the engine has nothing left; otherwise its sessions are cut short.
    if outcome == Ok(true) {
        handle.finish();
    } else {
        handle.stop();
    }
    let _ = engine.join();
    outcome.map(|_| 0)
}

/// What `result` teaches of its domain: the catch-all answer, the greylisting wait, the
/// provider; `None` if nothing, or if the domain cannot be a key.
fn learned_facts(result: &VerifyResult) -> Option<(String, DomainFacts)> {
    let domain = result.domain.as_deref().filter(|d| is_facts_key(d))?;
    let learned = DomainFacts {
        catch_all: result.catch_all,
        greylist_wait_ms: result
            .greylist_wait
            .map(|wait| u64::try_from(wait.as_millis()).unwrap_or(u64::MAX)),
        provider: result
            .mx
            .as_deref()
            .and_then(mxprobe::providers::by_mx_host)
            .map(|provider| provider.id.clone()),
    };
    (learned != DomainFacts::default()).then(|| (domain.to_owned(), learned))
}

/// Puts the facts results teach in the fleet's bucket, each merged with what is there (the
/// result's catch-all answer over the bucket's, the shorter wait), and only when it changes
/// the entry: an entry's day runs from its last change. `seen` remembers each domain's entry
/// as last read or put (bounded: forgetting only costs a read), so that a result that teaches
/// nothing new costs no call. Two workers putting at once may lose one's fact: a fact is a
/// hint, and a lost one costs a control or a retry, never a verdict. Every call has
/// [`KV_TIMEOUT`].
async fn share_facts(
    facts: jetstream::kv::Store,
    mut learned: mpsc::Receiver<(String, DomainFacts)>,
) {
    let mut seen: HashMap<String, DomainFacts> = HashMap::new();
    while let Some((domain, fact)) = learned.recv().await {
        if let Some(entry) = seen.get(&domain)
            && entry.merged(&fact) == *entry
        {
            continue;
        }
        let there = match tokio::time::timeout(KV_TIMEOUT, facts.get(domain.as_str())).await {
            Ok(Ok(Some(value))) => {
                serde_json::from_slice::<DomainFacts>(&value).unwrap_or_default()
            }
            Ok(Ok(None)) => DomainFacts::default(),
            // Not answered: tried again with the domain's next result.
            _ => continue,
        };
        let wanted = there.merged(&fact);
        if wanted != there
            && let Ok(value) = serde_json::to_vec(&wanted)
        {
            let put = tokio::time::timeout(KV_TIMEOUT, facts.put(domain.as_str(), value.into()));
            if !matches!(put.await, Ok(Ok(_))) {
                continue;
            }
        }
        if seen.len() >= 100_000 {
            seen.clear();
        }
        seen.insert(domain, wanted);
    }
}

/// Tells the engine what the fleet knows of `address`'s domain: a catch-all answer another
/// worker found spares it the control, and a greylisting wait times its first retry (a miss,
/// or NATS away, only means the control is sent and the retry waits `--retry-delay`).
async fn know_domain(facts: &jetstream::kv::Store, handle: &mxprobe::Handle, address: &str) {
    if let Some(domain) = Address::parse(address)
        .ok()
        .map(|a| a.domain().to_owned())
        .filter(|d| is_facts_key(d))
        && let Ok(Ok(Some(value))) =
            tokio::time::timeout(KV_TIMEOUT, facts.get(domain.as_str())).await
        && let Ok(known) = serde_json::from_slice::<DomainFacts>(&value)
    {
        // The engine's way in may be full for a moment: wait for it off the runtime's workers.
        tokio::task::block_in_place(|| {
            if let Some(accepts_any) = known.catch_all {
                let _ = handle.know_catch_all(&domain, accepts_any);
            }
            if let Some(ms) = known.greylist_wait_ms {
                let _ = handle.know_greylist_wait(&domain, Duration::from_millis(ms));
            }
        });
    }
}

/// The fleet's streams, its facts bucket and the workers' consumer, made if they do not exist.
async fn set_up(
    js: &Context,
    replicas: usize,
    ack_wait: Duration,
) -> Result<(jetstream::kv::Store, jetstream::consumer::PullConsumer), String> {
    let work = ensure_streams(js, replicas).await?;
    let facts = facts_bucket(js, replicas).await?;
    let consumer = work
        .get_or_create_consumer(
            WORKERS,
            pull::Config {
                durable_name: Some(WORKERS.into()),
                ack_policy: AckPolicy::Explicit,
                ack_wait,
                // Redelivered for ever: the worker itself answers a batch delivered too
                // often, so that no line is ever dropped.
                max_deliver: -1,
                // The whole fleet's batches in hand: JetStream's default (1,000) would starve
                // a fleet of many workers; each worker bounds its own by what its engine
                // takes in.
                max_ack_pending: MAX_ACK_PENDING,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| format!("cannot make the consumer {WORKERS}: {e}"))?;
    Ok((facts, consumer))
}

/// `lines` addresses left the worker's hands (answered, or never verified): room for more.
fn release(held: &AtomicUsize, room: &Notify, lines: usize) {
    let _ = held.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
        Some(n.saturating_sub(lines))
    });
    room.notify_one();
}

/// Where a batch's lines go: the engine, under tags that name the batch and the line.
struct Submitting<'a> {
    /// The batch's id among the open ones.
    id: u64,
    handle: &'a mxprobe::Handle,
    /// The fleet's domain facts: a catch-all answer found there spares the domain a control.
    facts: &'a jetstream::kv::Store,
    next_tag: &'a mut u64,
    /// Engine tag → (batch id, line).
    tags: &'a mut HashMap<u64, (u64, u64)>,
}

/// Pulls batches while the worker holds fewer addresses than its engine takes in, and hands
/// them to the main loop. `held` counts addresses taken and not yet answered.
async fn pull_work(
    consumer: jetstream::consumer::Consumer<pull::Config>,
    held: Arc<AtomicUsize>,
    room: Arc<Notify>,
    capacity: usize,
    pulled: mpsc::Sender<jetstream::Message>,
) {
    loop {
        let in_hand = held.load(Ordering::SeqCst);
        if in_hand + MAX_BATCH_LINES > capacity && in_hand > 0 {
            room.notified().await;
            continue;
        }
        let want = ((capacity.saturating_sub(in_hand)) / MAX_BATCH_LINES).clamp(1, 64);
        let batch = consumer
            .fetch()
            .max_messages(want)
            .expires(Duration::from_secs(1))
            .messages()
            .await;
        let Ok(mut messages) = batch else {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        };
        while let Some(message) = messages.next().await {
            let Ok(message) = message else { break };
            // Counted as a full batch until the main loop knows its size.
            held.fetch_add(MAX_BATCH_LINES, Ordering::SeqCst);
            if pulled.send(message).await.is_err() {
                return;
            }
        }
    }
}

/// Takes one pulled message: a batch to verify (submitted; returned open), or one answered
/// already or left for later (a dead letter, a batch delivered too often, one whose answer
/// NATS would not take: `None`, said on stderr). Only the engine's end is an error.
async fn accept(
    js: &Context,
    message: jetstream::Message,
    max_deliver: u32,
    to: Submitting<'_>,
) -> Result<Option<Open>, String> {
    match answer(js, message, max_deliver, to).await {
        Ok(open) => Ok(open),
        Err(Answering::Fatal(why)) => Err(why),
        Err(Answering::Later(why)) => {
            say(&format!(
                "mxprobe: a work message was left for later: {why}"
            ));
            Ok(None)
        }
    }
}

/// Why a message was not taken.
enum Answering {
    /// The worker cannot go on.
    Fatal(String),
    /// NATS did not take what the message needed; unacked, it comes back.
    Later(String),
}

async fn answer(
    js: &Context,
    message: jetstream::Message,
    max_deliver: u32,
    to: Submitting<'_>,
) -> Result<Option<Open>, Answering> {
    let delivered = message.info().map_or(1, |info| info.delivered);
    let (message, acker) = message.split();
    let batch = match WorkBatch::parse(&message.payload) {
        Ok(batch) => batch,
        Err(why) => {
            let dead = Publish::build()
                .payload(message.payload.clone())
                .header(REASON_HEADER, why.as_str());
            js.send_publish(DEAD_SUBJECT, dead)
                .await
                .map_err(|e| Answering::Later(format!("cannot publish a dead letter: {e}")))?
                .await
                .map_err(|e| {
                    Answering::Later(format!("the dead-letter stream did not take it: {e}"))
                })?;
            say(&format!(
                "mxprobe: a work message went to {DEAD_SUBJECT}: {why}"
            ));
            let _ = acker.ack_with(AckKind::Term).await;
            return Ok(None);
        }
    };
    if delivered > i64::from(max_deliver) {
        let detail = format!(
            "the batch was delivered {delivered} times without an answer (workers died or \
             stopped on it); not asked again"
        );
        let records = batch
            .lines
            .iter()
            .map(|l| {
                let result = VerifyResult::unprobed(
                    l.line,
                    &l.address,
                    Reason::TemporaryFailure,
                    Some(detail.clone()),
                );
                serde_json::to_string(&result.record())
                    .map(|json| (l.line, json))
                    .map_err(|e| Answering::Fatal(format!("cannot write a record: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        finish(
            js,
            Open {
                acker,
                job: batch.job,
                remaining: 0,
                records,
            },
        )
        .await
        .map_err(Answering::Later)?;
        return Ok(None);
    }
    // The batch's domain's catch-all answer, if another worker found it.
    if let Some(first) = batch
        .lines
        .iter()
        .find(|l| Address::parse(&l.address).is_ok())
    {
        know_domain(to.facts, to.handle, &first.address).await;
    }
    let count = batch.lines.len();
    let mut submissions = Vec::with_capacity(count);
    for line in batch.lines {
        let tag = *to.next_tag;
        *to.next_tag += 1;
        to.tags.insert(tag, (to.id, line.line));
        submissions.push((line.address, tag));
    }
    // The engine's way in may be full for a moment: wait for it off the runtime's workers.
    tokio::task::block_in_place(|| to.handle.submit_many(submissions))
        .map_err(|e| Answering::Fatal(format!("the engine stopped: {e}")))?;
    Ok(Some(Open {
        acker,
        job: batch.job,
        remaining: count,
        records: Vec::with_capacity(count),
    }))
}

/// Publishes a batch's results, waits until the stream has them all, then acks the batch.
async fn finish(js: &Context, batch: Open) -> Result<(), String> {
    let subject = results_subject(&batch.job);
    let mut acks = Vec::with_capacity(batch.records.len());
    for (line, json) in batch.records {
        let publish = Publish::build()
            .payload(json.into())
            .message_id(result_id(&batch.job, line));
        acks.push(
            js.send_publish(subject.clone(), publish)
                .await
                .map_err(|e| format!("cannot publish a result: {e}"))?,
        );
    }
    for ack in acks {
        ack.await
            .map_err(|e| format!("the results stream did not take a result: {e}"))?;
    }
    batch
        .acker
        .double_ack()
        .await
        .map_err(|e| format!("cannot ack a batch: {e}"))
}

#[allow(
    clippy::print_stderr,
    reason = "a worker's notices are for the people running it"
)]
fn say(message: &str) {
    eprintln!("{message}");
}
