//! The HTTP service's side of the fleet (`mxprobe serve --nats`): jobs' lines go out as work
//! batches, and the results the workers publish come back into the job's store.
//!
//! - **Out**: the feeder hands over a job's unanswered lines ([`WorkOrder`], a chunk of a few
//!   hundred); the orders waiting are taken together, up to [`COALESCE_LINES`] lines, so that
//!   a busy service sends a domain's lines in few batches. They are grouped by job and domain
//!   (a line that is not an address goes with the others that are not), cut into batches of at
//!   most [`MAX_BATCH_LINES`] and published on the work subject with a message id made of the
//!   job and the batch's lines ([`batch_id`]), so a batch published twice within the work
//!   stream's duplicate window is taken once. A publish NATS does not confirm is tried again, a
//!   second later, until it is: a NATS outage delays the job, it loses nothing.
//! - **In**: the service's own durable consumer ([`results_consumer_name`]: `mxprobe-serve`,
//!   or `mxprobe-serve-<name>` with `--nats-name`) reads every result. Each is handed to the
//!   store's writer, and acked only once the writer says it is saved: a service killed in
//!   between gets the result again at its next start. A result of a job this service does not
//!   run (finished, cancelled, another front end's) is acked and left: another front end reads
//!   it through a consumer of its own, so front ends sharing a fleet need names of their own.
//! - **Real time**: `POST /v1/verify` is a NATS request to one worker of the fleet
//!   ([`verify`]), answered by that worker's engine at the latest at the request's deadline.

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, PullConsumer, pull};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, Context};
use futures_util::StreamExt;
use mxprobe::VerifyResult;
use mxprobe::address::Address;
use tokio::sync::{mpsc, oneshot};

use super::wire::{
    MAX_BATCH_LINES, REASON_HEADER, RESULTS_STREAM, VERIFY_SUBJECT, VerifyRequest, WORK_SUBJECT,
    WorkBatch, WorkLine, ensure_streams, patiently,
};

/// The durable consumer a front end reads results through: `mxprobe-serve`, or
/// `mxprobe-serve-<name>` for a named one (`--nats-name`).
pub fn results_consumer_name(name: Option<&str>) -> String {
    name.map_or_else(
        || "mxprobe-serve".to_owned(),
        |name| format!("mxprobe-serve-{name}"),
    )
}

/// The most lines the publisher takes from the orders waiting before it batches them.
pub const COALESCE_LINES: usize = 20_000;

/// Lines of a job to send to the fleet.
#[derive(Debug)]
pub struct WorkOrder {
    /// The job.
    pub job: String,
    /// Line numbers and addresses as submitted.
    pub lines: Vec<(u64, String)>,
}

/// Connects to NATS (`urls`: one server or several, comma-separated) and makes the fleet's
/// streams, in `replicas` copies, waiting up to a minute for JetStream to take them (a cluster
/// just started elects its leaders first).
pub async fn connect(urls: &str, replicas: usize) -> Result<Context, String> {
    let js = jetstream::new(super::wire::connect(urls).await?);
    patiently(|| ensure_streams(&js, replicas), complain).await?;
    Ok(js)
}

/// An order's lines as batches of one domain each, at most [`MAX_BATCH_LINES`] lines, the
/// lines in their order.
pub fn batches(order: WorkOrder) -> Vec<WorkBatch> {
    let mut by_domain: BTreeMap<String, Vec<WorkLine>> = BTreeMap::new();
    for (line, address) in order.lines {
        let domain = Address::parse(&address)
            .map(|a| a.domain().to_owned())
            .unwrap_or_default();
        by_domain
            .entry(domain)
            .or_default()
            .push(WorkLine { line, address });
    }
    let mut batches = Vec::new();
    for lines in by_domain.into_values() {
        let mut lines = lines.into_iter().peekable();
        while lines.peek().is_some() {
            batches.push(WorkBatch {
                job: order.job.clone(),
                lines: lines.by_ref().take(MAX_BATCH_LINES).collect(),
            });
        }
    }
    batches
}

/// The message id of `batch`: its job, its first line, and a hash of all its lines. The same
/// batch published again (a retry) has the same id, and the stream takes it once; a batch of
/// other lines starting at the same one (a job's lines sent again after a restart, grouped
/// otherwise) has another, and is not mistaken for a copy.
pub fn batch_id(batch: &WorkBatch) -> String {
    // FNV-1a over the line numbers: stable across builds and machines, unlike `DefaultHasher`.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for line in &batch.lines {
        for byte in line.line.to_le_bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    let first = batch.lines.first().map_or(0, |l| l.line);
    format!("{}:{first}:{hash:016x}", batch.job)
}

/// The orders waiting after `first`, up to [`COALESCE_LINES`] lines in all, merged job by job
/// (in the order the jobs came).
fn coalesce(first: WorkOrder, orders: &mut mpsc::UnboundedReceiver<WorkOrder>) -> Vec<WorkOrder> {
    let mut lines = first.lines.len();
    let mut merged = vec![first];
    while lines < COALESCE_LINES {
        let Ok(order) = orders.try_recv() else { break };
        lines += order.lines.len();
        match merged.iter_mut().find(|m| m.job == order.job) {
            Some(same) => same.lines.extend(order.lines),
            None => merged.push(order),
        }
    }
    merged
}

/// Publishes every order that comes, batch by batch, until the sender is dropped.
pub async fn publish_orders(js: Context, mut orders: mpsc::UnboundedReceiver<WorkOrder>) {
    while let Some(order) = orders.recv().await {
        for batch in coalesce(order, &mut orders).into_iter().flat_map(batches) {
            let Ok(payload) = serde_json::to_vec(&batch) else {
                continue;
            };
            let id = batch_id(&batch);
            loop {
                let publish = PublishMessage::build()
                    .payload(payload.clone().into())
                    .message_id(&id);
                let stored = match js.send_publish(WORK_SUBJECT, publish).await {
                    Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                match stored {
                    Ok(()) => break,
                    Err(why) => {
                        complain(&format!(
                            "a work batch of job {} was not stored ({why}); trying again",
                            batch.job
                        ));
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        }
    }
}

/// How long past a real-time request's deadline the service waits for its worker's answer
/// (the worker answers at the deadline itself; this covers the trip and a busy worker).
const VERIFY_MARGIN: Duration = Duration::from_secs(5);

/// Why a real-time request got no verdict from the fleet.
#[derive(Debug, PartialEq, Eq)]
pub enum VerifyError {
    /// No worker listens for real-time requests.
    NoWorker,
    /// The worker that took it did not answer in time (it died, or NATS went away).
    NoAnswer,
    /// The worker refused it, or its answer was not a record: the reason.
    Failed(String),
}

impl std::fmt::Display for VerifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoWorker => f.write_str("no worker of the fleet is running; start one"),
            Self::NoAnswer => {
                f.write_str("the worker that took the request did not answer in time; try again")
            }
            Self::Failed(why) => write!(f, "the worker could not verify it: {why}"),
        }
    }
}

/// Asks one worker of the fleet to verify `request`'s address: its verdict, as the worker's
/// engine gave it (`unknown/timeout` at the deadline).
pub async fn verify(
    client: &async_nats::Client,
    request: &VerifyRequest,
) -> Result<VerifyResult, VerifyError> {
    let payload = serde_json::to_vec(request).map_err(|e| VerifyError::Failed(e.to_string()))?;
    let asked = async_nats::Request::new()
        .payload(payload.into())
        .timeout(Some(request.timeout() + VERIFY_MARGIN));
    let reply = client
        .send_request(VERIFY_SUBJECT, asked)
        .await
        .map_err(|e| match e.kind() {
            async_nats::RequestErrorKind::NoResponders => VerifyError::NoWorker,
            async_nats::RequestErrorKind::TimedOut => VerifyError::NoAnswer,
            _ => VerifyError::Failed(format!("NATS: {e}")),
        })?;
    if let Some(why) = reply
        .headers
        .as_ref()
        .and_then(|headers| headers.get(REASON_HEADER))
    {
        return Err(VerifyError::Failed(why.to_string()));
    }
    let result = VerifyResult::from_record_json(&String::from_utf8_lossy(&reply.payload))
        .map_err(|e| VerifyError::Failed(format!("its answer is not a record: {e}")))?;
    // Whoever answers on the subject, its answer goes into the cache only for the address
    // asked.
    if result.address != request.address {
        return Err(VerifyError::Failed(format!(
            "its answer is for another address, {:?}",
            result.address
        )));
    }
    Ok(result)
}

/// What the results reader hands a result to.
pub trait ResultSink: Send + 'static {
    /// Job `job`'s result `result` (its tag the line): false if this service does not run
    /// the job.
    fn deliver(&mut self, job: &str, result: VerifyResult) -> bool;
    /// Resolves once everything delivered so far is saved.
    fn saved(&mut self) -> oneshot::Receiver<()>;
}

/// Reads results through the durable consumer `consumer` and hands them to `sink`, acking each
/// once the sink has saved it; for ever, riding out NATS restarts.
pub async fn read_results(js: Context, consumer: String, mut sink: impl ResultSink) {
    let prefix = "mxprobe.results.";
    loop {
        let Some(consumer) = results_consumer(&js, &consumer).await else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        loop {
            let fetched = consumer
                .fetch()
                .max_messages(1000)
                .expires(Duration::from_secs(1))
                .messages()
                .await;
            let Ok(mut messages) = fetched else {
                break;
            };
            let mut to_ack = Vec::new();
            while let Some(message) = messages.next().await {
                let Ok(message) = message else { break };
                let (message, acker) = message.split();
                let job = message.subject.as_str().strip_prefix(prefix).unwrap_or("");
                match VerifyResult::from_record_json(&String::from_utf8_lossy(&message.payload)) {
                    Ok(result) => {
                        if sink.deliver(job, result) {
                            to_ack.push(acker);
                            continue;
                        }
                    }
                    Err(why) => complain(&format!("a result of job {job} is unreadable: {why}")),
                }
                // Not ours, or not a result: nothing to save.
                let _ = acker.ack().await;
            }
            if !to_ack.is_empty() {
                let _ = sink.saved().await;
                for acker in to_ack {
                    let _ = acker.ack().await;
                }
            }
        }
    }
}

async fn results_consumer(js: &Context, name: &str) -> Option<PullConsumer> {
    let stream = js.get_stream(RESULTS_STREAM).await.ok()?;
    stream
        .get_or_create_consumer(
            name,
            pull::Config {
                durable_name: Some(name.into()),
                ack_policy: AckPolicy::Explicit,
                ack_wait: Duration::from_secs(60),
                ..Default::default()
            },
        )
        .await
        .ok()
}

fn complain(message: &str) {
    #[allow(clippy::print_stderr, reason = "the service logs to stderr")]
    {
        eprintln!("mxprobe serve: {message}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_order_becomes_batches_of_one_domain_each_in_line_order() {
        let mut lines: Vec<(u64, String)> = (1..=250)
            .map(|n| {
                (
                    n,
                    format!("u{n}@{}.test", if n % 2 == 0 { "a" } else { "b" }),
                )
            })
            .collect();
        lines.push((251, "not an address".into()));
        let batches = batches(WorkOrder {
            job: "j".into(),
            lines,
        });
        assert_eq!(
            batches.len(),
            5,
            "125 and 125 in batches of 100, and one stray"
        );
        for batch in &batches {
            assert!(batch.lines.len() <= MAX_BATCH_LINES);
            let domains: std::collections::HashSet<_> = batch
                .lines
                .iter()
                .map(|l| l.address.rsplit_once('@').map(|(_, d)| d))
                .collect();
            assert_eq!(domains.len(), 1, "{batch:?}");
            assert!(batch.lines.windows(2).all(|w| w[0].line < w[1].line));
        }
        let total: usize = batches.iter().map(|b| b.lines.len()).sum();
        assert_eq!(total, 251);
    }

    #[test]
    fn the_orders_waiting_go_together_job_by_job() {
        let (send, mut orders) = mpsc::unbounded_channel();
        let order = |job: &str, from: u64| WorkOrder {
            job: job.into(),
            lines: (from..from + 256)
                .map(|n| (n, format!("u{n}@a.test")))
                .collect(),
        };
        for from in [1, 257, 513] {
            send.send(order("j", from)).unwrap();
        }
        send.send(order("k", 1)).unwrap();
        let first = orders.try_recv().unwrap();
        let merged = coalesce(first, &mut orders);
        assert_eq!(merged.len(), 2);
        assert_eq!((merged[0].job.as_str(), merged[0].lines.len()), ("j", 768));
        assert_eq!((merged[1].job.as_str(), merged[1].lines.len()), ("k", 256));
        let j = batches(merged.into_iter().next().unwrap());
        assert_eq!(j.len(), 8, "768 lines of one domain in batches of 100");
        // More than COALESCE_LINES waiting: the rest for the next round.
        for from in 0..100 {
            send.send(order("j", from * 256 + 1)).unwrap();
        }
        let first = orders.try_recv().unwrap();
        let lines: usize = coalesce(first, &mut orders)
            .iter()
            .map(|o| o.lines.len())
            .sum();
        assert!(
            (COALESCE_LINES..COALESCE_LINES + 256).contains(&lines),
            "{lines}"
        );
        assert!(orders.try_recv().is_ok(), "the rest waits");
    }

    #[test]
    fn a_batch_id_names_its_lines() {
        let batch = |lines: &[u64]| WorkBatch {
            job: "j".into(),
            lines: lines
                .iter()
                .map(|&line| WorkLine {
                    line,
                    address: format!("u{line}@a.test"),
                })
                .collect(),
        };
        assert_eq!(batch_id(&batch(&[3, 9])), batch_id(&batch(&[3, 9])));
        assert_ne!(batch_id(&batch(&[3, 9])), batch_id(&batch(&[3, 9, 12])));
        assert!(batch_id(&batch(&[3, 9])).starts_with("j:3:"));
    }
}
