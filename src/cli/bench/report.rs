//! What `mxprobe bench` measured, and its two renderings: tables for people, one JSON object
//! for scripts.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};

use super::histogram::Histogram;
use super::memory::Resident;
use mxprobe::driver::cpu::CpuTime;
use mxprobe::engine::{EngineStats, VerifyResult};
use mxprobe::sim::world::{ShowcaseCase, WorldSpec};
use mxprobe::verdict::Reason;

/// Everything one run measured.
#[derive(Debug)]
pub struct Report {
    pub world: WorldFigures,
    pub showcase: Vec<ShowcaseRow>,
    pub load: LoadReport,
    pub notices: Vec<String>,
}

/// How the world was built and where it listened.
#[derive(Debug)]
pub struct WorldFigures {
    pub domains: usize,
    /// `None` when the world runs in another process.
    pub mx_hosts: Option<usize>,
    pub smtp_port: u16,
    pub dns: String,
    pub latency: Duration,
    pub jitter: Duration,
    pub pipelining: bool,
    pub tls: bool,
    pub farm_threads: usize,
    pub shares: [(&'static str, f64); 5],
}

impl WorldFigures {
    pub fn new(spec: &WorldSpec, dns: SocketAddr, smtp_port: u16, mx_hosts: Option<usize>) -> Self {
        Self {
            domains: spec.domains,
            mx_hosts,
            smtp_port,
            dns: dns.to_string(),
            latency: spec.latency,
            jitter: spec.jitter,
            pipelining: spec.pipelining,
            tls: spec.tls,
            farm_threads: spec.farm_threads,
            shares: [
                ("existing", spec.existing_share),
                ("catch_all", spec.catch_all_share),
                ("greylisting", spec.greylist_share),
                ("rejecting", spec.reject_share),
                ("providers", spec.provider_share),
            ],
        }
    }

    /// What `--serve` tells the user.
    pub fn serving_text(&self) -> String {
        format!(
            "mxprobe bench --serve: {} domains under bench.test (and the showcase's) on {} \
             simulated MX hosts at 127.10.x.y port {port}; DNS (UDP and TCP) at {dns}.\n\
             mxprobe in its own process: mxprobe bench --remote-dns {dns} --smtp-port {port} \
             (with the same world flags)\n\
             another verifier: point its resolver at {dns} (or serve DNS on 127.0.0.1:53 with \
             --dns-listen) and run the farm on port 25 (--smtp-port 25, as root).",
            thousands(self.domains as u64),
            self.mx_hosts.map_or("?".into(), |n| n.to_string()),
            port = self.smtp_port,
            dns = self.dns,
        )
    }
}

/// One showcase address: what mxprobe said and what it should have.
#[derive(Debug)]
pub struct ShowcaseRow {
    pub label: &'static str,
    pub address: &'static str,
    pub verdict: &'static str,
    pub reason: Reason,
    pub expected: Reason,
    pub attempts: u32,
    pub reply: Option<String>,
    pub detail: Option<String>,
    pub elapsed: Duration,
}

impl ShowcaseRow {
    pub fn new(case: &ShowcaseCase, result: &VerifyResult) -> Self {
        Self {
            label: case.label,
            address: case.address,
            verdict: result.verdict().as_str(),
            reason: result.reason,
            expected: case.expected,
            attempts: result.attempts,
            reply: result.smtp.as_ref().map(|reply| {
                let reply = reply.as_reply();
                let text = reply
                    .lines()
                    .next()
                    .map(|line| String::from_utf8_lossy(line).into_owned())
                    .unwrap_or_default();
                format!("{} {text}", reply.code().get())
            }),
            detail: result.detail.clone(),
            elapsed: result.elapsed,
        }
    }

    fn is_right(&self) -> bool {
        self.reason == self.expected
    }
}

/// Verdicts that disagreed with the world's answer key.
#[derive(Debug, Default)]
pub struct Wrong {
    pub count: u64,
    pub examples: Vec<WrongExample>,
}

#[derive(Debug)]
pub struct WrongExample {
    pub address: String,
    pub got: Reason,
    pub expected: Reason,
    pub detail: Option<String>,
}

impl WrongExample {
    pub fn new(result: &VerifyResult, expected: Reason) -> Self {
        Self {
            address: result.address.clone(),
            got: result.reason,
            expected,
            detail: result.detail.clone(),
        }
    }
}

/// One thread's CPU time over the timed phase.
#[derive(Debug)]
pub struct ThreadFigures {
    pub name: String,
    pub time: CpuTime,
    /// Share of the wall time it ran.
    pub busy: f64,
}

impl ThreadFigures {
    pub fn new(name: &str, time: CpuTime, wall: Duration) -> Self {
        Self {
            name: name.to_owned(),
            time,
            busy: share(time.total(), wall),
        }
    }
}

/// CPU time over the timed phase.
#[derive(Debug)]
pub struct CpuFigures {
    pub engine: Option<ThreadFigures>,
    pub farm: Vec<ThreadFigures>,
    pub process: Option<CpuTime>,
    pub process_busy: f64,
    pub cores: usize,
    /// Engine CPU per address, per RCPT and per SMTP session.
    pub per_address: Option<Duration>,
    pub per_probe: Option<Duration>,
    pub per_session: Option<Duration>,
}

impl CpuFigures {
    pub fn new(
        engine: Option<CpuTime>,
        farm: Vec<ThreadFigures>,
        process: Option<CpuTime>,
        wall: Duration,
        addresses: u64,
        probes: u64,
        sessions: u64,
    ) -> Self {
        let per =
            |time: CpuTime, count: u64| (count > 0).then(|| time.total().div_f64(count as f64));
        Self {
            per_address: engine.and_then(|t| per(t, addresses)),
            per_probe: engine.and_then(|t| per(t, probes)),
            per_session: engine.and_then(|t| per(t, sessions)),
            engine: engine.map(|time| ThreadFigures::new("mxprobe-engine", time, wall)),
            farm,
            process_busy: process.map_or(0.0, |t| share(t.total(), wall)),
            process,
            cores: std::thread::available_parallelism().map_or(1, usize::from),
        }
    }

    fn busiest_farm_thread(&self) -> Option<&ThreadFigures> {
        self.farm.iter().max_by(|a, b| a.busy.total_cmp(&b.busy))
    }
}

/// Resident memory around the timed phase.
#[derive(Debug)]
pub struct MemoryFigures {
    pub before: Option<Resident>,
    pub after: Option<Resident>,
    /// Whether the peak was reset at the start of the phase (else it is the process's).
    pub peak_is_the_phases: bool,
    pub peak_sessions: u64,
    /// Whether the farm's end of each session is in this process, and so in the figures.
    pub farm_in_process: bool,
}

impl MemoryFigures {
    pub fn new(
        before: Option<Resident>,
        after: Option<Resident>,
        peak_is_the_phases: bool,
        peak_sessions: u64,
        farm_in_process: bool,
    ) -> Self {
        Self {
            before,
            after,
            peak_is_the_phases,
            peak_sessions,
            farm_in_process,
        }
    }

    pub fn peak(&self) -> Option<u64> {
        self.after.map(|r| r.peak)
    }

    /// The peak's growth over the resident size before the phase, per session at the most in
    /// flight: the session, its addresses and those queued behind it, the verdicts in transit —
    /// and the farm's end of it when the farm runs in this process (then an upper bound on
    /// what a session costs the engine).
    pub fn per_session(&self) -> Option<u64> {
        let (before, after) = (self.before?, self.after?);
        if !self.peak_is_the_phases || self.peak_sessions == 0 {
            return None;
        }
        Some(after.peak.saturating_sub(before.now) / self.peak_sessions)
    }
}

/// What held the timed phase back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bottleneck {
    /// A farm thread ran nearly all the time: the figures are the farm's limit, not mxprobe's.
    Farm,
    /// The engine thread ran nearly all the time.
    Engine,
    /// Every core was busy (engine, farm and the bench's own threads share them).
    Cores,
    /// No one was busy: the run waited on latency, as its concurrency allows.
    Waiting,
    /// CPU times could not be read.
    Unmeasured,
}

impl Bottleneck {
    pub fn judge(cpu: &CpuFigures, saturated: f64) -> Self {
        let Some(engine) = &cpu.engine else {
            return Self::Unmeasured;
        };
        if cpu
            .busiest_farm_thread()
            .is_some_and(|thread| thread.busy >= saturated)
        {
            Self::Farm
        } else if engine.busy >= saturated {
            Self::Engine
        } else if cpu.process_busy >= saturated * cpu.cores as f64 {
            Self::Cores
        } else {
            Self::Waiting
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Farm => "farm",
            Self::Engine => "engine",
            Self::Cores => "cores",
            Self::Waiting => "waiting",
            Self::Unmeasured => "unmeasured",
        }
    }

    fn explain(self, cpu: &CpuFigures) -> String {
        let engine = cpu.engine.as_ref().map_or(0.0, |t| t.busy);
        let farm = cpu.busiest_farm_thread().map_or(0.0, |t| t.busy);
        if cpu.farm.is_empty() {
            return match self {
                Self::Engine => format!("the engine: its thread was busy {}", percent(engine)),
                Self::Cores => format!(
                    "this process's cores: all {} busy ({} engine)",
                    cpu.cores,
                    percent(engine)
                ),
                Self::Waiting | Self::Farm => format!(
                    "not the engine (busy {}); the farm runs in another process, so look at its \
                     CPU there",
                    percent(engine)
                ),
                Self::Unmeasured => {
                    "not measured: this system does not report thread CPU times".into()
                }
            };
        }
        match self {
            Self::Farm => format!(
                "the farm: a farm thread was busy {}; mxprobe could go faster than this \
                 (add --farm-threads if cores are free)",
                percent(farm)
            ),
            Self::Engine => format!(
                "the engine: its thread was busy {}, the farm's busiest {}",
                percent(engine),
                percent(farm)
            ),
            Self::Cores => format!(
                "the machine: all {} cores busy ({} engine, {} farm, the rest the bench's own \
                 threads)",
                cpu.cores,
                percent(engine),
                percent(farm)
            ),
            Self::Waiting => format!(
                "waiting: neither the engine ({}) nor the farm ({}) was saturated; latency and \
                 concurrency set the pace",
                percent(engine),
                percent(farm)
            ),
            Self::Unmeasured => "not measured: this system does not report thread CPU times".into(),
        }
    }
}

/// The timed phase.
#[derive(Debug)]
pub struct LoadReport {
    pub addresses: u64,
    pub concurrency: usize,
    pub rcpts_per_session_asked: usize,
    pub wall: Duration,
    pub times: Histogram,
    pub verdicts: Vec<(Reason, u64)>,
    pub wrong: Wrong,
    pub stats: EngineStats,
    pub dns_queries: u64,
    /// DATA commands the farm saw, when it runs in this process (mxprobe must send none).
    pub data_commands: Option<u64>,
    /// TLS handshakes the farm completed, when it runs in this process.
    pub tls_handshakes: Option<u64>,
    /// The farm's [`reply_rounds`](mxprobe::sim::smtp::FarmStats::reply_rounds), when it runs
    /// in this process.
    pub reply_rounds: Option<u64>,
    /// The wall time if every slot waited on latency all the time and did nothing else.
    pub ideal: Option<Duration>,
    pub cpu: CpuFigures,
    pub memory: MemoryFigures,
    pub bottleneck: Bottleneck,
}

impl LoadReport {
    fn per_second(&self, count: u64) -> f64 {
        count as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    fn rcpts_per_session(&self) -> f64 {
        self.stats.rcpts as f64 / self.stats.sessions.max(1) as f64
    }
}

impl Report {
    /// Prints the report on stdout.
    pub fn print(&self, json: bool) -> Result<(), String> {
        let text = if json {
            let mut text = self.to_json().to_string();
            text.push('\n');
            text
        } else {
            self.to_text()
        };
        std::io::stdout()
            .lock()
            .write_all(text.as_bytes())
            .map_err(|e| format!("cannot write the report: {e}"))
    }

    fn to_text(&self) -> String {
        let mut out = String::new();
        self.write_text(&mut out)
            .expect("writing to a String cannot fail");
        out
    }

    fn write_text(&self, out: &mut String) -> std::fmt::Result {
        let world = &self.world;
        let hosts = match world.mx_hosts {
            Some(hosts) => format!("on {hosts} MX hosts in this process"),
            None => "in another process (--remote-dns)".to_owned(),
        };
        writeln!(
            out,
            "mxprobe bench: a simulated world on loopback: {} domains {hosts} (port {}), DNS at \
             {}",
            thousands(world.domains as u64),
            world.smtp_port,
            world.dns
        )?;
        writeln!(
            out,
            "latency {} ms, jitter {} ms, {}{}, {} farm thread{}",
            millis(world.latency),
            millis(world.jitter),
            if world.pipelining {
                "pipelining"
            } else {
                "no pipelining"
            },
            if world.tls {
                ", STARTTLS at every session"
            } else {
                ""
            },
            world.farm_threads,
            if world.farm_threads == 1 { "" } else { "s" }
        )?;
        for notice in &self.notices {
            writeln!(out, "note: {notice}")?;
        }
        if !self.showcase.is_empty() {
            self.write_showcase(out)?;
        }
        self.write_load(out)
    }

    fn write_showcase(&self, out: &mut String) -> std::fmt::Result {
        writeln!(out, "\nWhat mxprobe decides:")?;
        let width = |f: fn(&ShowcaseRow) -> usize| self.showcase.iter().map(f).max().unwrap_or(0);
        let label_width = width(|r| r.label.len());
        let address_width = width(|r| r.address.len());
        let verdict_width = width(|r| r.verdict.len() + 1 + r.reason.as_str().len());
        for row in &self.showcase {
            let verdict = format!("{}/{}", row.verdict, row.reason);
            let evidence = match (&row.reply, &row.detail) {
                // The reply broke the session rather than answered it: say how, then show it.
                (Some(reply), Some(detail)) if row.reason == Reason::ProtocolError => {
                    format!("{detail}: {reply}")
                }
                (Some(reply), _) => reply.clone(),
                (None, Some(detail)) => detail.clone(),
                (None, None) => String::new(),
            };
            let mark = if row.is_right() {
                String::new()
            } else {
                format!("  WRONG, expected {}", row.expected)
            };
            let sessions = if row.attempts > 1 {
                format!(" ({} sessions)", row.attempts)
            } else {
                String::new()
            };
            writeln!(
                out,
                "  {:<label_width$}  {:<address_width$}  {:<verdict_width$}  {}{}{}",
                row.label,
                row.address,
                verdict,
                truncate(&evidence, 60),
                sessions,
                mark
            )?;
        }
        Ok(())
    }

    fn write_load(&self, out: &mut String) -> std::fmt::Result {
        let load = &self.load;
        writeln!(
            out,
            "\nThroughput: {} generated addresses, concurrency {}, up to {} per session",
            thousands(load.addresses),
            thousands(load.concurrency as u64),
            load.rcpts_per_session_asked
        )?;
        let verdicts: Vec<String> = load
            .verdicts
            .iter()
            .map(|(reason, n)| format!("{reason} {}", thousands(*n)))
            .collect();
        writeln!(out, "  verdicts        {}", verdicts.join(", "))?;
        if load.wrong.count == 0 {
            writeln!(
                out,
                "  right           all {} (checked against the world's answer key)",
                thousands(load.stats.finished)
            )?;
        } else {
            writeln!(
                out,
                "  right           {} of {}: {} WRONG",
                thousands(load.stats.finished - load.wrong.count),
                thousands(load.stats.finished),
                thousands(load.wrong.count)
            )?;
            for example in &load.wrong.examples {
                writeln!(
                    out,
                    "                  {}: {} instead of {}{}",
                    example.address,
                    example.got,
                    example.expected,
                    example
                        .detail
                        .as_ref()
                        .map_or(String::new(), |d| format!(" ({d})"))
                )?;
            }
        }
        writeln!(out, "  wall time       {:.3} s", load.wall.as_secs_f64())?;
        writeln!(
            out,
            "  addresses/s     {}",
            thousands(load.per_second(load.stats.finished).round() as u64)
        )?;
        writeln!(
            out,
            "  probes/s        {} (RCPT commands, catch-all controls included)",
            thousands(load.per_second(load.stats.rcpts).round() as u64)
        )?;
        writeln!(
            out,
            "  per address     p50 {}  p90 {}  p99 {}  max {} (submission to verdict)",
            short(load.times.quantile(0.5)),
            short(load.times.quantile(0.9)),
            short(load.times.quantile(0.99)),
            short(load.times.max())
        )?;
        writeln!(
            out,
            "  sessions        {} ({:.1} RCPTs each), {} at most at once; {} retries, {} DNS \
             queries{}",
            thousands(load.stats.sessions),
            load.rcpts_per_session(),
            thousands(load.stats.peak_sessions),
            thousands(load.stats.retries),
            thousands(load.dns_queries),
            load.data_commands
                .map_or(String::new(), |data| format!(", {data} DATA"))
                + &load
                    .tls_handshakes
                    .filter(|n| *n > 0)
                    .map_or(String::new(), |n| format!(
                        ", {} TLS handshakes",
                        thousands(n)
                    ))
        )?;
        if let (Some(ideal), Some(rounds)) = (load.ideal, load.reply_rounds) {
            writeln!(
                out,
                "  vs ideal        {:.3} s = {} waits x latency / concurrency: {:.2}x",
                ideal.as_secs_f64(),
                thousands(rounds),
                load.wall.as_secs_f64() / ideal.as_secs_f64().max(1e-9)
            )?;
        }
        let cpu = &load.cpu;
        match &cpu.engine {
            Some(engine) => writeln!(
                out,
                "  engine CPU      {:.2} s user + {:.2} s sys = {} per address, {} per probe, \
                 {} per session (busy {})",
                engine.time.user.as_secs_f64(),
                engine.time.system.as_secs_f64(),
                cpu.per_address.map_or("-".into(), micros),
                cpu.per_probe.map_or("-".into(), micros),
                cpu.per_session.map_or("-".into(), micros),
                percent(engine.busy)
            )?,
            None => writeln!(out, "  engine CPU      not reported by this system")?,
        }
        if let Some(busiest) = cpu.busiest_farm_thread() {
            let total: Duration = cpu.farm.iter().map(|t| t.time.total()).sum();
            writeln!(
                out,
                "  farm CPU        {:.2} s over {} thread{} (busiest {})",
                total.as_secs_f64(),
                cpu.farm.len(),
                if cpu.farm.len() == 1 { "" } else { "s" },
                percent(busiest.busy)
            )?;
        }
        if let Some(process) = cpu.process {
            writeln!(
                out,
                "  process CPU     {:.2} s on {} cores ({:.2} cores busy)",
                process.total().as_secs_f64(),
                cpu.cores,
                cpu.process_busy
            )?;
        }
        let memory = &load.memory;
        if let Some(peak) = memory.peak() {
            let per_session = memory.per_session().map_or(String::new(), |bytes| {
                format!(
                    "; {} per session in flight ({} at most{})",
                    bytes_text(bytes),
                    thousands(memory.peak_sessions),
                    if memory.farm_in_process {
                        ", the farm's end counted too"
                    } else {
                        ""
                    }
                )
            });
            writeln!(
                out,
                "  memory          peak RSS {}, {} before{}",
                bytes_text(peak),
                memory
                    .before
                    .map_or("-".into(), |before| bytes_text(before.now)),
                per_session
            )?;
        }
        writeln!(
            out,
            "  bottleneck      {}",
            load.bottleneck.explain(&load.cpu)
        )
    }

    fn to_json(&self) -> Value {
        let world = &self.world;
        let load = &self.load;
        let seconds = |d: Duration| d.as_secs_f64();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let micros_f = |d: Duration| d.as_secs_f64() * 1e6;
        let cpu_time =
            |t: &CpuTime| json!({"user_s": seconds(t.user), "system_s": seconds(t.system)});
        let thread = |t: &ThreadFigures| {
            json!({"name": t.name, "user_s": seconds(t.time.user),
                   "system_s": seconds(t.time.system), "busy": t.busy})
        };
        let shares: serde_json::Map<String, Value> = world
            .shares
            .iter()
            .map(|(name, share)| ((*name).to_owned(), json!(share)))
            .collect();
        json!({
            "world": {
                "domains": world.domains,
                "mx_hosts": world.mx_hosts,
                "smtp_port": world.smtp_port,
                "dns": world.dns,
                "latency_ms": ms(world.latency),
                "jitter_ms": ms(world.jitter),
                "pipelining": world.pipelining,
                "tls": world.tls,
                "farm_threads": world.farm_threads,
                "shares": shares,
            },
            "notices": self.notices,
            "showcase": self.showcase.iter().map(|row| json!({
                "label": row.label,
                "address": row.address,
                "verdict": row.verdict,
                "reason": row.reason.as_str(),
                "expected": row.expected.as_str(),
                "right": row.is_right(),
                "attempts": row.attempts,
                "reply": row.reply,
                "detail": row.detail,
                "elapsed_ms": ms(row.elapsed),
            })).collect::<Vec<_>>(),
            "load": {
                "addresses": load.addresses,
                "concurrency": load.concurrency,
                "wall_s": seconds(load.wall),
                "addresses_per_s": load.per_second(load.stats.finished),
                "probes_per_s": load.per_second(load.stats.rcpts),
                "per_address_ms": {
                    "count": load.times.count(),
                    "p50": ms(load.times.quantile(0.5)),
                    "p90": ms(load.times.quantile(0.9)),
                    "p99": ms(load.times.quantile(0.99)),
                    "max": ms(load.times.max()),
                },
                "verdicts": load.verdicts.iter()
                    .map(|(reason, n)| (reason.as_str().to_owned(), json!(n)))
                    .collect::<serde_json::Map<String, Value>>(),
                "wrong": load.wrong.count,
                "wrong_examples": load.wrong.examples.iter().map(|e| json!({
                    "address": e.address, "got": e.got.as_str(),
                    "expected": e.expected.as_str(), "detail": e.detail,
                })).collect::<Vec<_>>(),
                "sessions": load.stats.sessions,
                "rcpts": load.stats.rcpts,
                "rcpts_per_session": load.rcpts_per_session(),
                "peak_sessions": load.stats.peak_sessions,
                "retries": load.stats.retries,
                "controls": load.stats.controls,
                "dns_queries": load.dns_queries,
                "data_commands": load.data_commands,
                "tls_handshakes": load.tls_handshakes,
                "reply_rounds": load.reply_rounds,
                "ideal_s": load.ideal.map(seconds),
                "vs_ideal": load.ideal.map(|ideal| seconds(load.wall) / seconds(ideal).max(1e-9)),
                "cpu": {
                    "engine": load.cpu.engine.as_ref().map(thread),
                    "engine_per_address_us": load.cpu.per_address.map(micros_f),
                    "engine_per_probe_us": load.cpu.per_probe.map(micros_f),
                    "engine_per_session_us": load.cpu.per_session.map(micros_f),
                    "farm": load.cpu.farm.iter().map(thread).collect::<Vec<_>>(),
                    "process": load.cpu.process.as_ref().map(cpu_time),
                    "process_busy_cores": load.cpu.process_busy,
                    "cores": load.cpu.cores,
                },
                "memory": {
                    "rss_before_bytes": load.memory.before.map(|r| r.now),
                    "peak_rss_bytes": load.memory.peak(),
                    "peak_is_the_phases": load.memory.peak_is_the_phases,
                    "farm_in_process": load.memory.farm_in_process,
                    "per_session_bytes": load.memory.per_session(),
                },
                "bottleneck": load.bottleneck.as_str(),
                "bottleneck_detail": load.bottleneck.explain(&load.cpu),
            },
        })
    }
}

/// A message for people, on stderr.
pub fn say(message: &str) {
    #[allow(clippy::print_stderr, reason = "the CLI talks to people on stderr")]
    {
        eprintln!("{message}");
    }
}

fn share(part: Duration, whole: Duration) -> f64 {
    part.as_secs_f64() / whole.as_secs_f64().max(1e-9)
}

fn percent(share: f64) -> String {
    format!("{:.0}%", share * 100.0)
}

fn millis(duration: Duration) -> String {
    let ms = duration.as_secs_f64() * 1000.0;
    if ms.fract() == 0.0 {
        format!("{ms:.0}")
    } else {
        format!("{ms:.1}")
    }
}

fn micros(duration: Duration) -> String {
    format!("{:.1} µs", duration.as_secs_f64() * 1e6)
}

/// A duration in the unit that reads best: µs, ms or s.
fn short(duration: Duration) -> String {
    let secs = duration.as_secs_f64();
    if secs < 0.001 {
        format!("{:.0} µs", secs * 1e6)
    } else if secs < 1.0 {
        format!("{:.1} ms", secs * 1e3)
    } else {
        format!("{secs:.2} s")
    }
}

fn bytes_text(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    let b = bytes as f64;
    if b < KIB * 10.0 {
        format!("{:.2} KiB", b / KIB)
    } else if b < KIB * KIB * 10.0 {
        format!("{:.0} KiB", b / KIB)
    } else {
        format!("{:.0} MiB", b / KIB / KIB)
    }
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_owned()
    } else {
        let cut: String = text.chars().take(width.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(short(Duration::from_micros(250)), "250 µs");
        assert_eq!(short(Duration::from_micros(12_340)), "12.3 ms");
        assert_eq!(short(Duration::from_millis(2500)), "2.50 s");
        assert_eq!(bytes_text(2560), "2.50 KiB");
        assert_eq!(bytes_text(40 << 20), "40 MiB");
        assert_eq!(truncate("abcdef", 4), "abc…");
    }

    fn figures(engine_busy: f64, farm_busy: f64, process_busy: f64) -> CpuFigures {
        let thread = |name: &str, busy: f64| ThreadFigures {
            name: name.into(),
            time: CpuTime::default(),
            busy,
        };
        CpuFigures {
            engine: Some(thread("mxprobe-engine", engine_busy)),
            farm: vec![thread("sim-smtp-0", farm_busy)],
            process: Some(CpuTime::default()),
            process_busy,
            cores: 2,
            per_address: None,
            per_probe: None,
            per_session: None,
        }
    }

    #[test]
    fn the_bottleneck_is_whoever_was_saturated() {
        assert_eq!(
            Bottleneck::judge(&figures(0.5, 0.95, 1.5), 0.9),
            Bottleneck::Farm
        );
        assert_eq!(
            Bottleneck::judge(&figures(0.95, 0.5, 1.5), 0.9),
            Bottleneck::Engine
        );
        assert_eq!(
            Bottleneck::judge(&figures(0.85, 0.8, 1.9), 0.9),
            Bottleneck::Cores
        );
        assert_eq!(
            Bottleneck::judge(&figures(0.1, 0.1, 0.3), 0.9),
            Bottleneck::Waiting
        );
        let mut unmeasured = figures(0.1, 0.1, 0.3);
        unmeasured.engine = None;
        assert_eq!(Bottleneck::judge(&unmeasured, 0.9), Bottleneck::Unmeasured);
    }
}
