//! What the fleet says on NATS: the streams, the subjects, and the messages.
//!
//! - **Work** (`mxprobe.work`, stream `MXPROBE_WORK`, work-queue retention): one message is a
//!   [`WorkBatch`], the addresses of one job at one domain (at most [`MAX_BATCH_LINES`]), so
//!   that a worker's sessions and the domain's catch-all control stay together. Every worker
//!   pulls through one durable consumer, [`WORKERS`]; a message is acked once its results are
//!   stored, so a worker that dies leaves its batch to another after the ack wait.
//! - **Results** (`mxprobe.results.<job>`, stream `MXPROBE_RESULTS`): one message per line, the
//!   record's JSON (its `line` the job's line), with the message id `<job>:<line>`: the
//!   stream's duplicate window drops a second copy of a redelivered batch's results.
//! - **Dead letters** (`mxprobe.dead`, stream `MXPROBE_DEAD`): a work message that is not a
//!   batch, as it came, with the reason in the `Mxprobe-Reason` header.
//! - **Real time** (`mxprobe.verify`, core NATS request-reply, no stream): a
//!   [`VerifyRequest`] goes to one worker of the queue group [`VERIFY_GROUP`], which answers
//!   with the record's JSON by its deadline, or with an empty body and the reason in the
//!   `Mxprobe-Reason` header. Nothing is stored: the caller waits, and one that waits in vain
//!   asks again.

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use serde::{Deserialize, Serialize};

/// The work stream and its subject.
pub const WORK_STREAM: &str = "MXPROBE_WORK";
pub const WORK_SUBJECT: &str = "mxprobe.work";
/// The results stream; results of job `j` are on `mxprobe.results.j`.
pub const RESULTS_STREAM: &str = "MXPROBE_RESULTS";
pub const RESULTS_SUBJECTS: &str = "mxprobe.results.>";
/// Where malformed work goes.
pub const DEAD_STREAM: &str = "MXPROBE_DEAD";
pub const DEAD_SUBJECT: &str = "mxprobe.dead";
/// The durable pull consumer every worker shares.
pub const WORKERS: &str = "mxprobe-workers";
/// The header that says why a message is a dead letter, or why a real-time request got no
/// record.
pub const REASON_HEADER: &str = "Mxprobe-Reason";
/// Where real-time requests go, and the queue group of the workers that answer them (one
/// worker each).
pub const VERIFY_SUBJECT: &str = "mxprobe.verify";
pub const VERIFY_GROUP: &str = "mxprobe-workers";
/// The longest a real-time request may wait, as `serve` allows.
pub const MAX_VERIFY_TIMEOUT_MS: u64 = 120_000;
/// The longest address a real-time request may carry: more than any address can be (an
/// RFC 5321 path is at most 256 octets), less than anything a worker need mind.
const MAX_REQUEST_ADDRESS: usize = 1024;
/// The most addresses a batch should carry: one domain's share of a few sessions.
pub const MAX_BATCH_LINES: usize = 100;
/// The most batches the workers' consumer lets the whole fleet hold unacked: far more than
/// any fleet's engines take in (a worker pulls only what its own engine can hold), so that
/// the limit is theirs, not JetStream's default of 1,000.
pub const MAX_ACK_PENDING: i64 = 1_000_000;
/// How long the results stream remembers a message id: longer than a batch can take to be
/// delivered again after a worker died with it (the ack wait, a few times over).
pub const RESULTS_DUPLICATE_WINDOW: Duration = Duration::from_secs(3600);
/// How long results are kept in their stream: a service that reads them may be down for days
/// (it keeps what it has read in its own store).
pub const RESULTS_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// The key-value bucket of domain facts the fleet shares ([`DomainFacts`] as JSON under the
/// domain's name), kept a day (as `serve` trusts its own catch-all answers).
pub const FACTS_BUCKET: &str = "mxprobe-domains";
pub const FACTS_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// A domain's facts in [`FACTS_BUCKET`], each learned by some worker; one not known is left
/// out: `{"catch_all":true,"greylist_wait_ms":301500,"provider":"google"}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainFacts {
    /// Whether the domain accepts any local part (its catch-all control's answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catch_all: Option<bool>,
    /// The shortest wait its greylisting has been seen to need before the server answered, in
    /// milliseconds: a worker retries its "try again later" after about that long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub greylist_wait_ms: Option<u64>,
    /// The provider whose servers take its mail (`docs/providers.md`), for the people who
    /// read the bucket: every worker finds it from the MX host names itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
}

impl DomainFacts {
    /// What `self` knows with what `other` adds: `other`'s catch-all answer and provider
    /// where it has them (newer), the shorter greylisting wait.
    #[must_use]
    pub fn merged(&self, other: &Self) -> Self {
        Self {
            catch_all: other.catch_all.or(self.catch_all),
            greylist_wait_ms: match (self.greylist_wait_ms, other.greylist_wait_ms) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
            provider: other.provider.clone().or_else(|| self.provider.clone()),
        }
    }
}

/// True if `domain` can be a key of [`FACTS_BUCKET`] (NATS keys: `[-/_=.a-zA-Z0-9]+`, not
/// starting or ending with a dot).
pub fn is_facts_key(domain: &str) -> bool {
    !domain.is_empty()
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && domain
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'/' | b'_' | b'=' | b'.'))
}

/// How long a process waits at its start for JetStream to take its streams and consumers (a
/// cluster just started elects its leaders first); then it gives up, saying why.
pub const JETSTREAM_PATIENCE: Duration = Duration::from_secs(60);

/// Runs `attempt` once a second until it succeeds, for at most [`JETSTREAM_PATIENCE`]; the
/// first failure goes to `say` ("waiting for JetStream: ..."), the last is the error.
pub async fn patiently<T, F, Fut>(mut attempt: F, say: impl Fn(&str)) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let patience = tokio::time::Instant::now() + JETSTREAM_PATIENCE;
    let mut said = false;
    loop {
        match attempt().await {
            Ok(done) => return Ok(done),
            Err(why) if tokio::time::Instant::now() < patience => {
                if !said {
                    say(&format!("waiting for JetStream: {why}"));
                    said = true;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(why) => return Err(why),
        }
    }
}

/// Connects to NATS: `urls` is one server or several, comma-separated (the members of a
/// cluster to try first; the client also learns the others from the server it reaches, and
/// moves to one of them when its server goes away).
pub async fn connect(urls: &str) -> Result<async_nats::Client, String> {
    let servers: Vec<&str> = urls
        .split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .collect();
    if servers.is_empty() {
        return Err("--nats: give a NATS server, nats://HOST:PORT".into());
    }
    async_nats::connect(servers)
        .await
        .map_err(|e| format!("--nats {urls}: {e}"))
}

/// The fleet's bucket of domain facts, made if it does not exist, with `replicas` copies.
/// Its stream is made as a key-value bucket's is (ADR-8: `KV_<bucket>` on `$KV.<bucket>.>`,
/// one message per key): async-nats's own `create_key_value` asks for settings nats-server 2.9
/// does not answer as it expects.
pub async fn facts_bucket(
    js: &jetstream::Context,
    replicas: usize,
) -> Result<jetstream::kv::Store, String> {
    js.get_or_create_stream(stream::Config {
        name: format!("KV_{FACTS_BUCKET}"),
        subjects: vec![format!("$KV.{FACTS_BUCKET}.>")],
        max_messages_per_subject: 1,
        max_age: FACTS_MAX_AGE,
        storage: stream::StorageType::File,
        num_replicas: replicas,
        discard: stream::DiscardPolicy::New,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        ..Default::default()
    })
    .await
    .map_err(|e| format!("cannot make the key-value bucket {FACTS_BUCKET}: {e}"))?;
    js.get_key_value(FACTS_BUCKET)
        .await
        .map_err(|e| format!("cannot open the key-value bucket {FACTS_BUCKET}: {e}"))
}

/// The addresses of one job at one domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkBatch {
    /// The job: letters, digits, `-` and `_` (it is a subject token).
    pub job: String,
    /// The lines, each its number in the job and the address as submitted.
    pub lines: Vec<WorkLine>,
}

/// One line of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkLine {
    /// Its number in the job, from 1.
    pub line: u64,
    /// The address as submitted.
    pub address: String,
}

impl WorkBatch {
    /// The batch a message carries, or why it is not one.
    pub fn parse(payload: &[u8]) -> Result<Self, String> {
        let batch: Self =
            serde_json::from_slice(payload).map_err(|e| format!("not a work batch: {e}"))?;
        if !is_job_id(&batch.job) {
            return Err(format!(
                "the job id {:?} is not 1 to 64 letters, digits, - or _",
                batch.job
            ));
        }
        if batch.lines.is_empty() {
            return Err("the batch has no lines".into());
        }
        Ok(batch)
    }
}

/// One real-time request: an address to verify within `timeout_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// The address as submitted (it is checked by the worker's engine like any other).
    pub address: String,
    /// How long the caller waits: the worker answers `unknown/timeout` at that deadline.
    pub timeout_ms: u64,
}

impl VerifyRequest {
    /// The request a message carries, or why it is not one.
    pub fn parse(payload: &[u8]) -> Result<Self, String> {
        let request: Self = serde_json::from_slice(payload)
            .map_err(|e| format!("not a verify request {{\"address\", \"timeout_ms\"}}: {e}"))?;
        if request.address.len() > MAX_REQUEST_ADDRESS {
            return Err(format!(
                "the address is {} bytes long; at most {MAX_REQUEST_ADDRESS}",
                request.address.len()
            ));
        }
        if !(1..=MAX_VERIFY_TIMEOUT_MS).contains(&request.timeout_ms) {
            return Err(format!(
                "timeout_ms {} is out of range: from 1 to {MAX_VERIFY_TIMEOUT_MS}",
                request.timeout_ms
            ));
        }
        Ok(request)
    }

    /// The deadline.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// True if `id` can name a job in a subject: 1 to 64 of `[A-Za-z0-9_-]`.
pub fn is_job_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The subject job `job`'s results are published on.
pub fn results_subject(job: &str) -> String {
    format!("mxprobe.results.{job}")
}

/// The message id of a line's result: the stream drops a second result for the same line.
pub fn result_id(job: &str, line: u64) -> String {
    format!("{job}:{line}")
}

/// The fleet's streams, made if they do not exist (every process does this at start, so any
/// may come first), each kept in `replicas` copies: on a NATS cluster of three, 3, so that a
/// lost node loses nothing. A stream made already keeps the copies it was made with.
pub async fn ensure_streams(
    js: &jetstream::Context,
    replicas: usize,
) -> Result<stream::Stream, String> {
    let work = js
        .get_or_create_stream(stream::Config {
            name: WORK_STREAM.into(),
            subjects: vec![WORK_SUBJECT.into()],
            retention: stream::RetentionPolicy::WorkQueue,
            storage: stream::StorageType::File,
            num_replicas: replicas,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        })
        .await
        .map_err(|e| format!("cannot make the stream {WORK_STREAM}: {e}"))?;
    js.get_or_create_stream(stream::Config {
        name: RESULTS_STREAM.into(),
        subjects: vec![RESULTS_SUBJECTS.into()],
        storage: stream::StorageType::File,
        duplicate_window: RESULTS_DUPLICATE_WINDOW,
        max_age: RESULTS_MAX_AGE,
        num_replicas: replicas,
        ..Default::default()
    })
    .await
    .map_err(|e| format!("cannot make the stream {RESULTS_STREAM}: {e}"))?;
    js.get_or_create_stream(stream::Config {
        name: DEAD_STREAM.into(),
        subjects: vec![DEAD_SUBJECT.into()],
        storage: stream::StorageType::File,
        num_replicas: replicas,
        ..Default::default()
    })
    .await
    .map_err(|e| format!("cannot make the stream {DEAD_STREAM}: {e}"))?;
    Ok(work)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_reads_back_and_bad_ones_say_why() {
        let batch = WorkBatch {
            job: "job-1".into(),
            lines: vec![WorkLine {
                line: 3,
                address: "alice@example.com".into(),
            }],
        };
        let json = serde_json::to_vec(&batch).unwrap();
        assert_eq!(WorkBatch::parse(&json), Ok(batch));
        for (bad, why) in [
            (&b"garbage"[..], "not a work batch"),
            (
                br#"{"job":"a.b","lines":[{"line":1,"address":"x"}]}"#,
                "job id",
            ),
            (
                br#"{"job":"","lines":[{"line":1,"address":"x"}]}"#,
                "job id",
            ),
            (br#"{"job":"j","lines":[]}"#, "no lines"),
        ] {
            let error = WorkBatch::parse(bad).unwrap_err();
            assert!(error.contains(why), "{error}");
        }
        assert_eq!(result_id("j", 7), "j:7");
        assert_eq!(results_subject("j"), "mxprobe.results.j");
    }

    #[test]
    fn domain_facts_merge_and_read_back_from_before_they_grew() {
        let old: DomainFacts = serde_json::from_str(r#"{"catch_all":true}"#).unwrap();
        assert_eq!(old.catch_all, Some(true));
        assert_eq!(old.greylist_wait_ms, None);
        let grey = DomainFacts {
            greylist_wait_ms: Some(300_000),
            provider: Some("google".into()),
            ..DomainFacts::default()
        };
        let both = old.merged(&grey);
        assert_eq!(
            serde_json::to_string(&both).unwrap(),
            r#"{"catch_all":true,"greylist_wait_ms":300000,"provider":"google"}"#
        );
        let shorter = DomainFacts {
            catch_all: Some(false),
            greylist_wait_ms: Some(200_000),
            provider: None,
        };
        assert_eq!(
            both.merged(&shorter),
            DomainFacts {
                catch_all: Some(false),
                greylist_wait_ms: Some(200_000),
                provider: Some("google".into()),
            }
        );
        let longer = DomainFacts {
            greylist_wait_ms: Some(900_000),
            ..DomainFacts::default()
        };
        assert_eq!(both.merged(&longer), both, "the shorter wait stays");
        assert_eq!(
            serde_json::to_string(&DomainFacts::default()).unwrap(),
            "{}"
        );
    }

    #[test]
    fn a_verify_request_reads_back_and_bad_ones_say_why() {
        let request = VerifyRequest {
            address: "alice@example.com".into(),
            timeout_ms: 5_000,
        };
        let json = serde_json::to_vec(&request).unwrap();
        assert_eq!(VerifyRequest::parse(&json), Ok(request));
        let long = format!(
            r#"{{"address":"{}@x.test","timeout_ms":1}}"#,
            "a".repeat(2000)
        );
        for (bad, why) in [
            (&b"garbage"[..], "not a verify request"),
            (br#"{"address":"a@b.test"}"#, "not a verify request"),
            (
                br#"{"address":"a@b.test","timeout_ms":1,"x":1}"#,
                "not a verify request",
            ),
            (br#"{"address":"a@b.test","timeout_ms":0}"#, "out of range"),
            (
                br#"{"address":"a@b.test","timeout_ms":120001}"#,
                "out of range",
            ),
            (long.as_bytes(), "bytes long"),
        ] {
            let error = VerifyRequest::parse(bad).unwrap_err();
            assert!(error.contains(why), "{error}");
        }
    }
}
