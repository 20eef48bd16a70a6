//! `mxprobe bench`: the real engine against a simulated world in the same process, and what
//! it cost.
//!
//! The world ([`mxprobe::sim::world`]) is an SMTP farm and a DNS responder on loopback, on
//! threads of their own. Against it run two phases of the real engine — its DNS client, its
//! sockets, its parser, its scheduler and verdicts, nothing stubbed:
//!
//! 1. the showcase: one address per behaviour worth seeing, with the verdict mxprobe gave and
//!    the one it should have;
//! 2. the load: `--addresses` generated addresses at `--concurrency`, timed. Every verdict is
//!    checked against the world's answer key, per-address times go into a histogram, and the
//!    engine thread's CPU time, the farm threads' CPU time and the process's resident memory
//!    are read around the phase, to say how fast, at what cost, and what held it back.
//!
//! `--serve` starts the world alone and prints where it is and its addresses, for measuring
//! another verifier on the same farm — or mxprobe itself in a process of its own:
//! `--remote-dns` runs the two phases against a world another `mxprobe bench --serve` started
//! with the same world flags, so that memory and CPU figures are the engine's alone.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Args;

use mxprobe::driver::cpu::{self, CpuTime};
use mxprobe::driver::raise_open_files_limit;
use mxprobe::session::Timeouts;
use mxprobe::sim::smtp::SmtpFarm;
use mxprobe::sim::socks5::Socks5Proxy;
use mxprobe::sim::world::{SHOWCASE, World, WorldSpec};
use mxprobe::socks5::Proxy;
use mxprobe::tls::StartTls;
use mxprobe::verdict::Reason;
use mxprobe::{Config, ConfigBuilder, Engine, VerifyResult};

mod fleet;
mod histogram;
mod http;
mod memory;
mod report;

use histogram::Histogram;
use report::{
    Bottleneck, CpuFigures, LoadReport, MemoryFigures, Report, ShowcaseRow, ThreadFigures,
    WorldFigures, Wrong,
};

/// The farm's threads, by the names `sim::smtp` gives them.
const FARM_THREADS: &str = "sim-smtp-";

/// Busy at least this share of the wall time counts as saturated.
const SATURATED: f64 = 0.9;

/// File descriptors the world and the process need besides the two ends of every session.
const WORLD_FDS: u64 = 1024;

/// Wrong verdicts kept as examples for the report.
const WRONG_EXAMPLES: usize = 5;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Generated addresses verified in the timed phase.
    #[arg(long, default_value_t = 200_000, value_name = "N")]
    addresses: u64,

    /// Generated domains; addresses are spread evenly over them.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    domains: usize,

    /// SMTP sessions in flight at once.
    #[arg(long, short = 'c', default_value_t = 1000, value_name = "N")]
    concurrency: usize,

    /// Milliseconds every simulated server waits before each reply, the greeting included:
    /// the network round trip it models.
    #[arg(long, default_value_t = 0.0, value_name = "MS")]
    latency: f64,

    /// A uniform random extra of up to this many milliseconds on each reply.
    #[arg(long, default_value_t = 0.0, value_name = "MS")]
    jitter: f64,

    /// Addresses of one domain asked in one session (one RCPT each).
    #[arg(long, default_value_t = 8, value_name = "N")]
    rcpts_per_session: usize,

    /// Servers do not advertise PIPELINING: every command waits for the previous reply.
    #[arg(long)]
    no_pipelining: bool,

    /// The share of generated addresses whose mailbox exists.
    #[arg(long, default_value_t = 0.7, value_name = "0..1")]
    existing_share: f64,

    /// The share of domains whose server accepts every recipient.
    #[arg(long, default_value_t = 0.1, value_name = "0..1")]
    catch_all_share: f64,

    /// The share of domains whose server greylists (the run then waits out the greylisting
    /// period, as a real one would).
    #[arg(long, default_value_t = 0.0, value_name = "0..1")]
    greylist_share: f64,

    /// The share of domains whose server refuses the prober at greeting (554 5.7.1).
    #[arg(long, default_value_t = 0.05, value_name = "0..1")]
    reject_share: f64,

    /// The share of domains hosted at the big mail systems mxprobe has profiles for (Gmail,
    /// Outlook.com, Yahoo...: their MX names, replies and rate limits). Their politeness then
    /// sets the pace of those addresses: see docs/providers.md.
    #[arg(long, default_value_t = 0.0, value_name = "0..1")]
    provider_share: f64,

    /// How long greylisting servers refuse a new recipient, in milliseconds.
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    greylist_period: u64,

    /// Event-loop threads of the simulated farm.
    #[arg(long, default_value_t = 1, value_name = "N")]
    farm_threads: usize,

    /// The farm's port on each of its loopback addresses (127.10.x.y); 0 finds a free one. 25
    /// needs root.
    #[arg(long, default_value_t = 0, value_name = "PORT")]
    smtp_port: u16,

    /// Where the DNS responder listens, UDP and TCP; 127.0.0.1:53 (as root) lets the
    /// system's resolver or another verifier use it.
    #[arg(long, default_value = "127.0.0.1:0", value_name = "IP:PORT")]
    dns_listen: SocketAddr,

    /// Skip the showcase; run the timed phase only.
    #[arg(long)]
    no_showcase: bool,

    /// Probe through a SOCKS5 proxy running in this process (`mxprobe::sim::socks5`, a thread
    /// of its own): what a proxy costs, beside the direct figures.
    #[arg(long)]
    proxy: bool,

    /// Measure a fleet instead: this many `mxprobe worker` processes of this binary take the
    /// --addresses from the JetStream work queue of the NATS server at --nats (docs/scaling.md).
    #[arg(long, value_name = "N", default_value_t = 0, requires = "nats")]
    fleet: usize,

    /// The NATS server (JetStream on) of --fleet: nats://HOST:PORT.
    #[arg(long, value_name = "URL", requires = "fleet")]
    nats: Option<String>,

    /// STARTTLS at every session: the world's servers offer it (a self-signed certificate) and
    /// the prober says it at each one (`--starttls always`): what a TLS handshake costs, beside
    /// the plain figures.
    #[arg(long)]
    tls: bool,

    /// Probe the providers of `--provider-share` with the generic rules and limits only: what
    /// their profiles are worth shows as wrong verdicts (their simulated servers throttle a
    /// prober that goes faster than the profile).
    #[arg(long)]
    no_provider_profiles: bool,

    /// Print one JSON object instead of the tables.
    #[arg(long)]
    json: bool,

    /// Start the world only: print where its DNS and SMTP listen to stderr and its showcase
    /// and --addresses generated addresses to stdout, one per line, then serve until Ctrl-C.
    #[arg(long)]
    serve: bool,

    /// With --serve, print `address,verdict,reason` lines: the answer key.
    #[arg(long, requires = "serve")]
    expected: bool,

    /// Start no world: verify against the one `mxprobe bench --serve` started, whose DNS
    /// listens here, with --smtp-port its farm's port. Give both the same world flags
    /// (--domains, the shares, --seed) so the answer key matches.
    #[arg(
        long,
        value_name = "IP:PORT",
        conflicts_with = "serve",
        requires = "smtp_port"
    )]
    remote_dns: Option<SocketAddr>,

    /// Seeds which domains are which kind, which mailboxes exist and the farm's jitter.
    #[arg(long, value_name = "N")]
    seed: Option<u64>,

    /// Measure the HTTP service instead (`mxprobe serve`, as a child process): real-time
    /// latency against the engine alone, and a job of --addresses addresses against `verify`
    /// on the same world, with real-time requests alongside. Real-time addresses are at a
    /// server of their own, on a farm thread the job does not use.
    #[arg(long, conflicts_with_all = ["serve", "remote_dns"])]
    http: bool,

    /// With --http: real-time requests in each real-time phase.
    #[arg(long, default_value_t = 2000, value_name = "N", requires = "http")]
    http_requests: u64,

    /// With --http: real-time clients at once, each waiting for its verdict before the next.
    #[arg(long, default_value_t = 4, value_name = "N", requires = "http")]
    http_clients: u64,
}

impl BenchArgs {
    fn spec(&self) -> Result<WorldSpec, String> {
        let millis = |name: &str, value: f64| {
            if value.is_finite() && value >= 0.0 {
                Ok(Duration::from_secs_f64(value / 1000.0))
            } else {
                Err(format!(
                    "--{name} must be a number of milliseconds >= 0, not {value}"
                ))
            }
        };
        let defaults = WorldSpec::default();
        let spec = WorldSpec {
            domains: self.domains,
            existing_share: self.existing_share,
            catch_all_share: self.catch_all_share,
            greylist_share: self.greylist_share,
            reject_share: self.reject_share,
            provider_share: self.provider_share,
            greylist_period: Duration::from_millis(self.greylist_period),
            latency: millis("latency", self.latency)?,
            jitter: millis("jitter", self.jitter)?,
            pipelining: !self.no_pipelining,
            tls: self.tls,
            farm_threads: self.farm_threads,
            smtp_port: self.smtp_port,
            dns_addr: self.dns_listen,
            seed: self.seed.unwrap_or(defaults.seed),
        };
        spec.validate()?;
        if self.concurrency == 0 || self.rcpts_per_session == 0 {
            return Err("--concurrency and --rcpts-per-session must be at least 1".into());
        }
        Ok(spec)
    }
}

/// The world the engine runs against: the one this process started, or a remote one.
struct Target<'w> {
    spec: WorldSpec,
    dns: SocketAddr,
    smtp_port: u16,
    /// The farm, when it runs in this process.
    farm: Option<&'w SmtpFarm>,
    /// The SOCKS5 proxy the probes go through, if `--proxy`.
    proxy: Option<SocketAddr>,
}

impl<'w> Target<'w> {
    fn local(world: &'w World) -> Self {
        Self {
            spec: world.spec().clone(),
            dns: world.dns_addr(),
            smtp_port: world.smtp_port(),
            farm: Some(world.farm()),
            proxy: None,
        }
    }
}

pub fn run(args: BenchArgs) -> Result<u8, String> {
    let spec = args.spec()?;
    let mut notices = Vec::new();
    // A proxy in this process holds two more descriptors per session.
    let proxy_fds = if args.proxy { 2 } else { 0 };
    let proxy = if args.proxy {
        let proxy = Socks5Proxy::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), None)
            .map_err(|e| format!("cannot start the SOCKS5 proxy: {e}"))?;
        notices.push(format!(
            "the probes go through a SOCKS5 proxy in this process ({}, a thread of its own)",
            proxy.addr()
        ));
        Some(proxy)
    } else {
        None
    };
    let proxy_addr = proxy.as_ref().map(Socks5Proxy::addr);
    if let Some(dns) = args.remote_dns {
        let concurrency = fit_concurrency(args.concurrency, 1 + proxy_fds, &mut notices)?;
        let target = Target {
            spec,
            dns,
            smtp_port: args.smtp_port,
            farm: None,
            proxy: proxy_addr,
        };
        return measure(&target, &args, concurrency, notices);
    }
    let concurrency = fit_concurrency(args.concurrency, 2 + proxy_fds, &mut notices)?;
    let world = World::start(spec).map_err(|e| format!("cannot start the simulated world: {e}"))?;
    if args.serve {
        return serve(&world, &args);
    }
    let target = Target {
        proxy: proxy_addr,
        ..Target::local(&world)
    };
    if args.http {
        return http::run(&target, &args, concurrency);
    }
    if let Some(nats) = args.nats.as_deref().filter(|_| args.fleet > 0) {
        return fleet::run(&target, &args, nats);
    }
    measure(&target, &args, concurrency, notices)
}

/// Both phases and the report.
fn measure(
    target: &Target<'_>,
    args: &BenchArgs,
    concurrency: usize,
    mut notices: Vec<String>,
) -> Result<u8, String> {
    let showcase = if args.no_showcase {
        Vec::new()
    } else {
        run_showcase(target, args)?
    };
    let load = run_load(target, args, concurrency, &mut notices)?;
    let report = Report {
        world: WorldFigures::new(
            &target.spec,
            target.dns,
            target.smtp_port,
            target.farm.map(|farm| farm.addrs().len()),
        ),
        showcase,
        load,
        notices,
    };
    report.print(args.json)?;
    Ok(0)
}

/// Each session holds a descriptor at each end it has in this process (`ends`: 2 when the
/// farm runs here too): the concurrency must fit the open-file limit. Lowers it, with a
/// notice, when the limit cannot be raised that far.
fn fit_concurrency(asked: usize, ends: u64, notices: &mut Vec<String>) -> Result<usize, String> {
    let wanted = ends * asked as u64 + WORLD_FDS;
    let limit = raise_open_files_limit(wanted)
        .map_err(|e| format!("cannot read the open-file limit: {e}"))?;
    if limit >= wanted {
        return Ok(asked);
    }
    let fits = (limit.saturating_sub(WORLD_FDS) / ends).max(1);
    notices.push(format!(
        "the open-file limit is {limit}: {asked} sessions need {wanted} descriptors here; \
         running {fits} at once (raise the limit with `ulimit -n {wanted}`, as root if it is \
         above the hard limit)"
    ));
    Ok(usize::try_from(fits).unwrap_or(1))
}

/// The engine configuration both phases start from: the world's DNS and port, and the
/// politeness limits lifted (the farm is ours and welcomes the load; `verify` keeps them).
fn engine_config(target: &Target<'_>, args: &BenchArgs, concurrency: usize) -> ConfigBuilder {
    // Retry greylisted addresses once the period is surely over.
    let period = target.spec.greylist_period;
    Config::builder()
        .sender("probe@probe.bench.test")
        .nameserver(target.dns)
        .smtp_port(target.smtp_port)
        // The simulated world is on loopback.
        .allow_private_mx(true)
        .concurrency(concurrency)
        .per_mx(concurrency)
        .domain_rate(None)
        .rcpts_per_session(args.rcpts_per_session)
        .retry_delay(period + period / 10 + Duration::from_millis(50))
        .provider_profiles(!args.no_provider_profiles)
        .starttls(if args.tls {
            StartTls::Always
        } else {
            StartTls::WhenRequired
        })
        .proxies(target.proxy.map(|addr| Proxy {
            addr,
            credentials: None,
            resolves_names: false,
        }))
}

/// The configuration built, or why not, for the user.
fn build(builder: ConfigBuilder) -> Result<Config, String> {
    builder.build().map_err(|e| e.to_string())
}

/// Phase 1: every showcase address, with short timeouts so the silent server costs seconds.
fn run_showcase(target: &Target<'_>, args: &BenchArgs) -> Result<Vec<ShowcaseRow>, String> {
    let spec = &target.spec;
    let slowest_reply = spec.latency + spec.jitter;
    let config = build(
        engine_config(target, args, SHOWCASE.len())
            .timeouts(Timeouts::all(Duration::from_secs(2) + slowest_reply * 4)),
    )?;
    let (engine, verdicts) =
        Engine::start(config).map_err(|e| format!("cannot start the engine: {e}"))?;
    let handle = engine.handle();
    for (tag, case) in SHOWCASE.iter().enumerate() {
        handle
            .submit(case.address, tag as u64)
            .map_err(|e| e.to_string())?;
    }
    handle.finish();
    let mut results: Vec<Option<VerifyResult>> = vec![None; SHOWCASE.len()];
    for result in verdicts {
        let tag = result.tag as usize;
        results[tag] = Some(result);
    }
    engine
        .join()
        .map_err(|e| format!("the engine failed: {e}"))?;
    SHOWCASE
        .iter()
        .zip(results)
        .map(|(case, result)| {
            let result = result
                .ok_or_else(|| format!("the engine returned no verdict for {}", case.address))?;
            Ok(ShowcaseRow::new(case, &result))
        })
        .collect()
}

/// Phase 2: the timed run over generated addresses.
fn run_load(
    target: &Target<'_>,
    args: &BenchArgs,
    concurrency: usize,
    notices: &mut Vec<String>,
) -> Result<LoadReport, String> {
    let spec = target.spec.clone();
    let config = build(engine_config(target, args, concurrency))?;
    let count = args.addresses;

    let farm_before = target.farm.map(SmtpFarm::stats);
    let farm_cpu_before = cpu::threads_named(FARM_THREADS);
    let process_cpu_before = cpu::this_process();
    let peak_reset = memory::reset_peak();
    let memory_before = memory::resident();
    let started = Instant::now();

    let (engine, results) =
        Engine::start(config).map_err(|e| format!("cannot start the engine: {e}"))?;
    notices.extend(engine.notices().iter().cloned());
    let handle = engine.handle();
    let producer_spec = spec.clone();
    let producer = std::thread::Builder::new()
        .name("bench-producer".into())
        .spawn(move || {
            for index in 0..count {
                if handle
                    .submit(producer_spec.address(index).address, index)
                    .is_err()
                {
                    return;
                }
            }
            handle.finish();
        })
        .map_err(|e| format!("cannot start a thread: {e}"))?;

    let mut times = Histogram::default();
    let mut verdicts = [0u64; Reason::ALL.len()];
    let mut wrong = Wrong::default();
    for result in results {
        times.record(result.elapsed);
        verdicts[reason_index(result.reason)] += 1;
        let expected = spec.expected(result.tag);
        if result.reason != expected {
            wrong.count += 1;
            if wrong.examples.len() < WRONG_EXAMPLES {
                wrong
                    .examples
                    .push(report::WrongExample::new(&result, expected));
            }
        }
    }
    let engine_report = engine
        .join()
        .map_err(|e| format!("the engine failed: {e}"))?;
    let wall = started.elapsed();
    producer
        .join()
        .map_err(|_| "the address producer panicked".to_owned())?;

    let memory_after = memory::resident();
    let farm_after = target.farm.map(SmtpFarm::stats);
    let farm_cpu_after = cpu::threads_named(FARM_THREADS);
    let process_cpu = cpu::this_process()
        .zip(process_cpu_before)
        .map(|(after, before)| after - before);

    let farm_threads: Vec<ThreadFigures> = farm_cpu_after
        .iter()
        .map(|(name, after)| {
            let before = farm_cpu_before
                .iter()
                .find(|(n, _)| n == name)
                .map_or(CpuTime::default(), |(_, t)| *t);
            ThreadFigures::new(name, *after - before, wall)
        })
        .collect();
    let cpu = CpuFigures::new(
        engine_report.cpu,
        farm_threads,
        process_cpu,
        wall,
        count,
        engine_report.stats.rcpts,
        engine_report.stats.sessions,
    );
    let memory = MemoryFigures::new(
        memory_before,
        memory_after,
        peak_reset,
        engine_report.stats.peak_sessions,
        target.farm.is_some(),
    );
    let farm_delta = farm_after.zip(farm_before).map(|(after, before)| {
        (
            after.reply_rounds - before.reply_rounds,
            after.data_commands - before.data_commands,
            after.tls_handshakes - before.tls_handshakes,
        )
    });
    let rounds = farm_delta.map(|(rounds, _, _)| rounds);
    let mean_delay = spec.latency + spec.jitter / 2;
    let ideal = rounds
        .filter(|_| !mean_delay.is_zero())
        .map(|rounds| mean_delay.mul_f64(rounds as f64 / engine_report.concurrency.max(1) as f64));
    let bottleneck = Bottleneck::judge(&cpu, SATURATED);
    Ok(LoadReport {
        addresses: count,
        concurrency: engine_report.concurrency,
        rcpts_per_session_asked: args.rcpts_per_session,
        wall,
        times,
        verdicts: Reason::ALL
            .iter()
            .zip(verdicts)
            .filter(|(_, n)| *n > 0)
            .map(|(reason, n)| (*reason, n))
            .collect(),
        wrong,
        stats: engine_report.stats,
        dns_queries: engine_report.resolver.lookups.udp_queries
            + engine_report.resolver.lookups.tcp_queries,
        data_commands: farm_delta.map(|(_, data, _)| data),
        tls_handshakes: farm_delta.map(|(_, _, tls)| tls),
        reply_rounds: rounds,
        ideal,
        cpu,
        memory,
        bottleneck,
    })
}

fn reason_index(reason: Reason) -> usize {
    Reason::ALL
        .iter()
        .position(|r| *r == reason)
        .expect("Reason::ALL lists every reason")
}

/// `--serve`: the world alone, until Ctrl-C or SIGTERM.
fn serve(world: &World, args: &BenchArgs) -> Result<u8, String> {
    use std::io::Write;

    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .map_err(|e| format!("cannot watch for Ctrl-C: {e}"))?;
    }
    let figures = WorldFigures::new(
        world.spec(),
        world.dns_addr(),
        world.smtp_port(),
        Some(world.farm().addrs().len()),
    );
    report::say(&figures.serving_text());
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut line = |address: &str, expected: Reason| {
        if args.expected {
            writeln!(out, "{address},{},{expected}", expected.verdict())
        } else {
            writeln!(out, "{address}")
        }
    };
    let written: std::io::Result<()> = (|| {
        for case in &SHOWCASE {
            line(case.address, case.expected)?;
        }
        for index in 0..args.addresses {
            let generated = world.spec().address(index);
            line(&generated.address, generated.expected)?;
        }
        Ok(())
    })();
    written
        .and_then(|()| out.flush())
        .map_err(|e| format!("cannot write the addresses: {e}"))?;
    drop(out);
    report::say("serving; Ctrl-C stops");
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let stats = world.farm().stats();
    report::say(&format!(
        "served {} connections, {} RCPT, {} DATA",
        stats.connections, stats.rcpt_commands, stats.data_commands
    ));
    Ok(0)
}
