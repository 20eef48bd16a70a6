//! Records as the service stores and shows them: a cached verdict given to another line, a
//! job's progress as JSON, and stored records as CSV rows identical to `verify --format csv`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mxprobe::store::{JobState, JobSummary};
use mxprobe::{Reason, Verdict};
use serde_json::{Map, Value, json};

/// A cached record given to `text` on `line`: its `address` and `line` are this line's, the
/// rest is the verdict the mailbox had. `None` if the record does not read back.
pub fn cached_record(record: &str, text: &str, line: u64) -> Option<(Reason, String)> {
    let mut fields: Map<String, Value> = serde_json::from_str(record).ok()?;
    let reason = fields.get("reason")?.as_str()?;
    let reason = Reason::ALL.into_iter().find(|r| r.as_str() == reason)?;
    fields.insert("address".into(), Value::from(text));
    fields.insert("line".into(), Value::from(line));
    Some((reason, serde_json::to_string(&fields).ok()?))
}

/// A job as `GET /v1/jobs/{id}` shows it, at `now`.
pub fn job_json(job: &JobSummary, now: SystemTime) -> Value {
    let mut verdicts = Map::new();
    for verdict in [
        Verdict::Deliverable,
        Verdict::Undeliverable,
        Verdict::Risky,
        Verdict::Unknown,
    ] {
        let count: u64 = job
            .reasons
            .iter()
            .filter(|(reason, _)| reason.verdict() == verdict)
            .map(|(_, n)| n)
            .sum();
        verdicts.insert(verdict.as_str().into(), Value::from(count));
    }
    let reasons: Map<String, Value> = job
        .reasons
        .iter()
        .map(|(reason, n)| (reason.as_str().to_owned(), Value::from(*n)))
        .collect();
    let end = job.finished.unwrap_or(now);
    let elapsed = end.duration_since(job.created).unwrap_or(Duration::ZERO);
    let rate = if elapsed.as_secs_f64() > 0.0 {
        job.answered as f64 / elapsed.as_secs_f64()
    } else {
        0.0
    };
    let left = job.lines.saturating_sub(job.answered);
    let eta =
        (job.state == JobState::Running && rate > 0.0).then(|| (left as f64 / rate).ceil() as u64);
    let id = job.id.as_str();
    json!({
        "id": id,
        "state": job.state.as_str(),
        "created_ms": millis(job.created),
        "finished_ms": job.finished.map(millis),
        "lines": job.lines,
        "answered": job.answered,
        "progress": if job.lines == 0 { 1.0 } else { job.answered as f64 / job.lines as f64 },
        "verdicts": verdicts,
        "reasons": reasons,
        "rate_per_sec": (rate * 10.0).round() / 10.0,
        "eta_secs": eta,
        "links": {
            "self": format!("/v1/jobs/{id}"),
            "results_jsonl": format!("/v1/jobs/{id}/results?format=jsonl"),
            "results_csv": format!("/v1/jobs/{id}/results?format=csv"),
        },
    })
}

/// Milliseconds since the Unix epoch, as the API's JSON gives times.
pub fn millis(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
