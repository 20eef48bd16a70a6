//! Webhooks: a job's URL called once when the job has ended (finished or cancelled), with the
//! job as `GET /v1/jobs/{id}` shows it.
//!
//! A thread of its own looks for ended jobs with a webhook still to call (once a second, in the
//! store, so that jobs that ended before a restart are called too), POSTs
//! `{"event": "job.ended", "job": {...}}`, and tries again after 2, 10, 60 and 300 seconds while
//! the receiver fails (no answer, or not 2xx). Whether it was delivered or given up on is
//! stored: a webhook is never called again after a 2xx.
//!
//! A URL is the client's: its host must not lead into the service's own network. Names are
//! resolved by a resolver that drops special-purpose addresses (RFC 6890: loopback, private,
//! link-local...) at the moment of connecting, so a name cannot be re-pointed in between;
//! `--allow-private-webhooks` lifts that, for receivers on an intranet.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use mxprobe::engine::special_purpose::special_purpose;
use mxprobe::store::{JobId, Store};
use serde_json::json;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

use super::records::job_json;
use super::writer::Op;

/// Waits before the second, third... attempt.
const BACKOFF: [Duration; 4] = [
    Duration::from_secs(2),
    Duration::from_secs(10),
    Duration::from_secs(60),
    Duration::from_secs(300),
];

/// How often the store is asked for jobs that have ended.
const POLL: Duration = Duration::from_secs(1);

/// The longest URL a job may give.
pub const MAX_URL: usize = 2048;

/// A webhook URL as a client gave it, or what is wrong with it.
pub fn check_url(text: &str) -> Result<(), String> {
    if text.len() > MAX_URL {
        return Err(format!("webhook: a URL of at most {MAX_URL} bytes"));
    }
    let uri: Uri = text
        .parse()
        .map_err(|e| format!("webhook: not a URL ({e})"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err("webhook: an http:// or https:// URL".into()),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err("webhook: the URL names no host".into());
    }
    Ok(())
}

/// A call to make: when, which attempt, the job, its owner, the URL.
type Due = (Instant, usize, JobId, String, String);

/// The webhook thread.
pub struct Webhooks {
    pub store: PathBuf,
    pub writer: Sender<Op>,
    pub allow_private: bool,
}

impl Webhooks {
    /// Starts the thread; it ends when the returned sender is dropped.
    pub fn start(self) -> std::io::Result<(Sender<()>, JoinHandle<()>)> {
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("mxprobe-webhooks".into())
            .spawn(move || self.run(&stopped))?;
        Ok((stop, thread))
    }

    fn run(self, stopped: &Receiver<()>) {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(10)))
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(concat!("mxprobe/", env!("CARGO_PKG_VERSION")))
            .build();
        let agent = ureq::Agent::with_parts(
            config,
            DefaultConnector::default(),
            PublicOnly {
                inner: DefaultResolver::default(),
                allow_private: self.allow_private,
            },
        );
        let mut known: HashSet<JobId> = HashSet::new();
        // (when, attempt, job, owner, url), soonest first.
        let mut queue: BinaryHeap<Reverse<Due>> = BinaryHeap::new();
        let mut reader: Option<Store> = None;
        let mut next_poll = Instant::now();
        loop {
            let now = Instant::now();
            if now >= next_poll {
                next_poll = now + POLL;
                if reader.is_none() {
                    reader = Store::open_reader(&self.store).ok();
                }
                if let Some(store) = &reader
                    && let Ok(due) = store.webhooks_due()
                {
                    for (id, owner, url) in due {
                        if known.insert(id.clone()) {
                            queue.push(Reverse((now, 0, id, owner, url)));
                        }
                    }
                }
            }
            while queue.peek().is_some_and(|Reverse(entry)| entry.0 <= now) {
                let Some(Reverse((_, attempt, id, owner, url))) = queue.pop() else {
                    break;
                };
                let Some(store) = &reader else {
                    queue.push(Reverse((now + POLL, attempt, id, owner, url)));
                    break;
                };
                let job = match store.job(&owner, &id) {
                    Ok(Some(job)) => job,
                    _ => continue,
                };
                let body = json!({"event": "job.ended", "job": job_json(&job, SystemTime::now())});
                let sent = agent
                    .post(&url)
                    .content_type("application/json")
                    .send(body.to_string().as_bytes());
                match sent {
                    Ok(response) if response.status().is_success() => {
                        let _ = self.writer.send(Op::WebhookCalled {
                            id,
                            delivered: true,
                        });
                    }
                    outcome => {
                        let why = match outcome {
                            Ok(response) => format!("it answered {}", response.status()),
                            Err(ureq::Error::HostNotFound) => {
                                "its host has no address that is not special-purpose (loopback, \
                                 private...; --allow-private-webhooks allows those)"
                                    .to_owned()
                            }
                            Err(e) => e.to_string(),
                        };
                        if let Some(wait) = BACKOFF.get(attempt) {
                            say(&format!(
                                "webhook of job {id} to {url} failed: {why}; trying again in {wait:?}"
                            ));
                            queue.push(Reverse((now + *wait, attempt + 1, id, owner, url)));
                        } else {
                            say(&format!(
                                "webhook of job {id} to {url} failed {} times: {why}; given up",
                                attempt + 1
                            ));
                            let _ = self.writer.send(Op::WebhookCalled {
                                id,
                                delivered: false,
                            });
                        }
                    }
                }
            }
            let wake = queue
                .peek()
                .map_or(next_poll, |Reverse(entry)| entry.0.min(next_poll));
            match stopped.recv_timeout(wake.saturating_duration_since(Instant::now())) {
                Err(RecvTimeoutError::Timeout) => {}
                Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }
}

/// The system's resolver, without the special-purpose addresses (unless allowed).
#[derive(Debug)]
struct PublicOnly {
    inner: DefaultResolver,
    allow_private: bool,
}

impl Resolver for PublicOnly {
    fn resolve(
        &self,
        uri: &Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let resolved = self.inner.resolve(uri, config, timeout)?;
        if self.allow_private {
            return Ok(resolved);
        }
        let mut kept = self.empty();
        kept.truncate(0);
        for address in resolved
            .iter()
            .filter(|a| special_purpose(a.ip()).is_none())
        {
            kept.push(*address);
        }
        if kept.is_empty() {
            return Err(ureq::Error::HostNotFound);
        }
        Ok(kept)
    }
}

fn say(message: &str) {
    #[allow(clippy::print_stderr, reason = "the service logs to stderr")]
    {
        eprintln!("mxprobe serve: {message}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_urls_are_http_with_a_host() {
        check_url("https://hooks.example.com/mxprobe?x=1").unwrap();
        check_url("http://127.0.0.1:8080/").unwrap();
        for bad in [
            "",
            "hooks.example.com",
            "ftp://x/",
            "https://",
            "javascript:alert(1)",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
        assert!(check_url(&format!("https://x.example/{}", "a".repeat(MAX_URL))).is_err());
    }
}
