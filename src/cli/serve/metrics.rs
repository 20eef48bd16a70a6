//! `GET /metrics`: the service and its engine in the Prometheus text format (OpenMetrics, as
//! `prometheus-client` writes it).
//!
//! Verdicts are counted as they are given, by verdict, reason and where they came from (a
//! probe or the cache); real-time latency is a histogram. The engine's own counters (sessions,
//! RCPTs, retries, DNS queries) and queue depths are read from its snapshot at each scrape.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use mxprobe::{EngineSnapshot, Reason};

/// A verdict's labels.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerdictLabels {
    verdict: &'static str,
    reason: &'static str,
    /// `probe` or `cache`.
    source: &'static str,
}

/// A request's labels.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    /// `verify`, `jobs`, … (the endpoint's name, not its path).
    endpoint: &'static str,
    status: u16,
}

/// The service's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// One scrape at a time: each brings the engine's counters up to its snapshot.
    scrape: std::sync::Mutex<()>,
    verdicts: Family<VerdictLabels, Counter>,
    requests: Family<RequestLabels, Counter>,
    real_time_seconds: Histogram,
    lines_in_flight: Gauge,
    // The engine's, brought up to its snapshot at each scrape.
    sessions: Counter,
    rcpts: Counter,
    retries: Counter,
    failovers: Counter,
    throttled: Counter,
    proxy_failures: Counter,
    tls_sessions: Counter,
    tls_failures: Counter,
    sources_benched: Counter,
    controls: Counter,
    dns_queries: Counter,
    dns_timeouts: Counter,
    sessions_in_flight: Gauge,
    addresses_in_engine: Gauge,
    addresses_queued: Gauge,
    addresses_held: Gauge,
}

impl Metrics {
    /// The metrics, registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("mxprobe");
        let metrics = Self {
            verdicts: Family::default(),
            requests: Family::default(),
            real_time_seconds: Histogram::new(exponential_buckets(0.005, 2.0, 14)),
            lines_in_flight: Gauge::default(),
            sessions: Counter::default(),
            rcpts: Counter::default(),
            retries: Counter::default(),
            failovers: Counter::default(),
            throttled: Counter::default(),
            proxy_failures: Counter::default(),
            tls_sessions: Counter::default(),
            tls_failures: Counter::default(),
            sources_benched: Counter::default(),
            controls: Counter::default(),
            dns_queries: Counter::default(),
            dns_timeouts: Counter::default(),
            sessions_in_flight: Gauge::default(),
            addresses_in_engine: Gauge::default(),
            addresses_queued: Gauge::default(),
            addresses_held: Gauge::default(),
            registry: Registry::default(),
            scrape: std::sync::Mutex::new(()),
        };
        let m = &metrics;
        registry.register(
            "verdicts",
            "Verdicts given, by verdict, reason and source (probe or cache)",
            m.verdicts.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests answered, by endpoint and status",
            m.requests.clone(),
        );
        registry.register(
            "real_time_seconds",
            "Time to answer POST /v1/verify, in seconds",
            m.real_time_seconds.clone(),
        );
        registry.register(
            "bulk_lines_in_flight",
            "Job lines given to the engine and not yet saved",
            m.lines_in_flight.clone(),
        );
        registry.register("smtp_sessions", "SMTP sessions opened", m.sessions.clone());
        registry.register(
            "rcpt_probes",
            "RCPT TO commands sent (probes, controls included)",
            m.rcpts.clone(),
        );
        registry.register(
            "retries",
            "Addresses asked again after a 4xx reply",
            m.retries.clone(),
        );
        registry.register(
            "failovers",
            "Addresses moved to the next MX after a connection failure",
            m.failovers.clone(),
        );
        registry.register(
            "throttled",
            "Addresses that waited for their provider after it said \"slow down\"",
            m.throttled.clone(),
        );
        registry.register(
            "proxy_failures",
            "Sessions whose SOCKS5 proxy failed before the server was reached",
            m.proxy_failures.clone(),
        );
        registry.register(
            "tls_sessions",
            "Sessions that spoke TLS after STARTTLS",
            m.tls_sessions.clone(),
        );
        registry.register(
            "tls_failures",
            "Sessions whose TLS handshake after STARTTLS failed",
            m.tls_failures.clone(),
        );
        registry.register(
            "sources_benched",
            "Times a source address was benched for refusals that named it",
            m.sources_benched.clone(),
        );
        registry.register(
            "catch_all_controls",
            "Catch-all control probes sent",
            m.controls.clone(),
        );
        registry.register(
            "dns_queries",
            "DNS queries sent, UDP and TCP",
            m.dns_queries.clone(),
        );
        registry.register(
            "dns_timeouts",
            "DNS queries that timed out",
            m.dns_timeouts.clone(),
        );
        registry.register(
            "smtp_sessions_in_flight",
            "SMTP sessions open now",
            m.sessions_in_flight.clone(),
        );
        registry.register(
            "engine_addresses",
            "Addresses in the engine without a verdict yet",
            m.addresses_in_engine.clone(),
        );
        registry.register(
            "engine_queued",
            "Addresses queued in their domain, waiting for a session",
            m.addresses_queued.clone(),
        );
        registry.register(
            "engine_held",
            "Addresses answered and waiting for their domain's catch-all control",
            m.addresses_held.clone(),
        );
        Self {
            registry,
            ..metrics
        }
    }

    /// Counts a verdict given.
    pub fn verdict(&self, reason: Reason, cached: bool) {
        self.verdicts
            .get_or_create(&VerdictLabels {
                verdict: reason.verdict().as_str(),
                reason: reason.as_str(),
                source: if cached { "cache" } else { "probe" },
            })
            .inc();
    }

    /// Counts a request answered.
    pub fn request(&self, endpoint: &'static str, status: u16) {
        self.requests
            .get_or_create(&RequestLabels { endpoint, status })
            .inc();
    }

    /// Records how long a real-time request took.
    pub fn real_time(&self, seconds: f64) {
        self.real_time_seconds.observe(seconds);
    }

    /// The metrics as text, with the engine's brought up to `snapshot`.
    pub fn render(&self, snapshot: &EngineSnapshot, lines_in_flight: usize) -> String {
        let _one_at_a_time = self
            .scrape
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let stats = &snapshot.stats;
        let lookups = &snapshot.resolver.lookups;
        catch_up(&self.sessions, stats.sessions);
        catch_up(&self.rcpts, stats.rcpts);
        catch_up(&self.retries, stats.retries);
        catch_up(&self.failovers, stats.failovers);
        catch_up(&self.throttled, stats.throttled);
        catch_up(&self.proxy_failures, stats.proxy_failures);
        catch_up(&self.tls_sessions, stats.tls_sessions);
        catch_up(&self.tls_failures, stats.tls_failures);
        catch_up(&self.sources_benched, stats.sources_benched);
        catch_up(&self.controls, stats.controls);
        catch_up(&self.dns_queries, lookups.udp_queries + lookups.tcp_queries);
        catch_up(&self.dns_timeouts, lookups.timeouts);
        let census = &snapshot.census;
        self.sessions_in_flight.set(gauge(census.sessions));
        self.addresses_in_engine.set(gauge(census.jobs));
        self.addresses_queued.set(gauge(census.queued));
        self.addresses_held.set(gauge(census.held));
        self.lines_in_flight.set(gauge(lines_in_flight));
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// Moves a counter up to the engine's total (the engine only counts up).
fn catch_up(counter: &Counter, total: u64) {
    let now = counter.get();
    if total > now {
        counter.inc_by(total - now);
    }
}

fn gauge(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
