//! One run: the real [`Scheduler`] against the in-memory world, with this file playing the
//! driver's part exactly as `src/driver` does, and every invariant checked as it goes.
//!
//! The driver's contract, as `src/driver/engine.rs`, `socket/smtp.rs` and `socket/dns.rs`
//! carry it out, and as it is mirrored here:
//!
//! - each turn: take the submissions that are due, then carry out every [`ConnIo`] (connect;
//!   close, writing `last_words` first if the socket takes them), then every DNS
//!   [`Transmit`], then hand out the verdicts;
//! - then the events that are due, one after the other: a connection up →
//!   `handle_connected` and write; bytes → `handle_input`, and write if the session still
//!   runs; EOF, reset or refusal → `handle_closed`; DNS datagrams, stream bytes and closes to
//!   the resolver;
//! - then `handle_timeout` if `poll_timeout` has come;
//! - a write hands over all of `output()` (a virtual socket takes everything) and reports it
//!   with `consume_output`;
//! - when nothing is due, the clock jumps to the earliest of the scheduler's deadline, the
//!   world's next event and the next submission.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use mxprobe::Config;
use mxprobe::dns::{SocketId, Transmit};
use mxprobe::engine::{ConnId, ConnIo, Scheduler, SubmitOptions, VerifyResult};
use mxprobe::sim::net::{ClientEvent, Network, Scenario};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::bounds::Bounds;
use super::check::{self, Violation};
use super::config;

/// Loop turns at one instant before the run counts as live-locked.
const MAX_TURNS_PER_INSTANT: u64 = 200_000;

/// Mixed into the seed for the submission times.
const SUBMIT_STREAM: u64 = 0x5b3e_1700_0000_0002;

/// Mixed into the seed for the front end's traffic: repeats, priorities, deadlines.
const FRONT_END_STREAM: u64 = 0xf207_e9d0_0000_0003;

/// What a run submits besides the scenario's addresses, each once, in bulk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Traffic {
    /// Only that: the runs the regression seeds were found in.
    Plain,
    /// For half the seeds (drawn), what an API front end adds: repeats of addresses (some
    /// while the first is in flight, some after), real-time submissions, deadlines, and an
    /// engine that remembers results.
    Drawn,
}

/// One submission to make: when, its tag, the address, its options.
type Submission = (Duration, u64, String, SubmitOptions);

/// What the client side knows of one SMTP connection.
#[derive(Debug, Default)]
struct ConnTrack {
    /// The client wrote QUIT on it.
    quit_written: bool,
    /// The server's close or reset reached the client.
    saw_closed: bool,
}

/// What a finished run leaves for the caller.
#[derive(Debug)]
pub struct Outcome {
    /// The invariants broken, the first breach of each, in the order they happened.
    pub violations: Vec<Violation>,
    /// Digest of the whole trace.
    pub digest: u64,
    /// Lines in the trace.
    pub lines: u64,
    /// The trace's first lines (all of a normal run).
    pub trace: Vec<String>,
    /// Virtual time the run took.
    pub duration: Duration,
    /// Verdicts handed out.
    pub results: usize,
    /// How many results had each reason.
    pub reasons: BTreeMap<&'static str, u64>,
    /// Connections opened.
    pub connections: u64,
    /// A one-line summary of the world.
    pub summary: String,
}

/// One run in progress.
pub struct Run {
    scenario: Scenario,
    config: Config,
    scheduler: Scheduler,
    net: Network,
    origin: Instant,
    now: Instant,
    /// Submissions not yet made.
    pending: VecDeque<Submission>,
    /// Every submission made, by tag.
    submitted: BTreeMap<u64, String>,
    /// The deadline of each submission made with one.
    deadlines: BTreeMap<u64, Instant>,
    results: BTreeMap<u64, VerifyResult>,
    conns: BTreeMap<u64, ConnTrack>,
    bounds: Bounds,
    connections: u64,
    turns_at_instant: u64,
    /// Breaches that do not stop the run (a wrong verdict, a missing QUIT): the run goes on,
    /// so that the invariants after them are checked too.
    violations: Vec<Violation>,
}

impl Run {
    /// The run of `seed`, its clock starting at `origin`.
    pub fn new(seed: u64, origin: Instant, traffic: Traffic) -> Self {
        let scenario = Scenario::generate(seed);
        let front_end = &mut StdRng::seed_from_u64(seed ^ FRONT_END_STREAM);
        let front_end =
            (traffic == Traffic::Drawn && front_end.random_bool(0.5)).then_some(front_end);
        let remember = match &front_end {
            Some(_) => StdRng::seed_from_u64(seed ^ FRONT_END_STREAM ^ 1).random_range(0..=8),
            None => 0,
        };
        let config = config::engine_config(seed, remember);
        let rng = &mut StdRng::seed_from_u64(seed ^ SUBMIT_STREAM);
        let spread = if rng.random_bool(0.5) {
            Duration::ZERO
        } else {
            Duration::from_millis(rng.random_range(1..=5_000))
        };
        let mut times: Vec<Duration> = scenario
            .addresses
            .iter()
            .map(|_| rng.random_range(Duration::ZERO..=spread))
            .collect();
        times.sort_unstable();
        let mut pending: Vec<Submission> = times
            .iter()
            .zip(&scenario.addresses)
            .enumerate()
            .map(|(tag, (at, address))| {
                (*at, tag as u64, address.clone(), SubmitOptions::default())
            })
            .collect();
        if let Some(rng) = front_end {
            front_end_traffic(&mut pending, spread, rng);
        }
        let last = pending.iter().map(|s| s.0).max().unwrap_or_default();
        let addresses: Vec<String> = pending.iter().map(|s| s.2.clone()).collect();
        let bounds = Bounds::of(&scenario, &addresses, &config, last);
        let pending = VecDeque::from(pending);
        let mut net = Network::new(&scenario, origin);
        net.note(origin, &scenario.summary());
        net.note(origin, &format!("config: {config:?}"));
        net.note(origin, &format!("bounds: {bounds:?}"));
        Self {
            scheduler: config::scheduler(config.clone(), seed),
            scenario,
            config,
            net,
            origin,
            now: origin,
            pending,
            submitted: BTreeMap::new(),
            deadlines: BTreeMap::new(),
            results: BTreeMap::new(),
            conns: BTreeMap::new(),
            bounds,
            connections: 0,
            turns_at_instant: 0,
            violations: Vec::new(),
        }
    }

    /// Runs to the end, or to the first broken invariant.
    pub fn finish(mut self) -> Outcome {
        if let Err(violation) = self.run() {
            self.breach(violation);
        }
        let trace = self.net.trace();
        Outcome {
            violations: self.violations,
            digest: trace.digest(),
            lines: trace.count(),
            trace: trace.lines().to_vec(),
            duration: self.now - self.origin,
            results: self.results.len(),
            reasons: self
                .results
                .values()
                .fold(BTreeMap::new(), |mut reasons, r| {
                    *reasons.entry(r.reason.as_str()).or_default() += 1;
                    reasons
                }),
            connections: self.connections,
            summary: self.scenario.summary(),
        }
    }

    fn run(&mut self) -> Result<(), Violation> {
        loop {
            self.submit_due();
            self.flush()?;
            if self.pending.is_empty() && self.scheduler.is_idle() {
                return self.at_the_end();
            }
            let mut moved = false;
            while let Some(event) = self.net.poll(self.now) {
                self.deliver(event);
                moved = true;
            }
            if self
                .scheduler
                .poll_timeout()
                .is_some_and(|at| at <= self.now)
            {
                self.scheduler.handle_timeout(self.now);
                moved = true;
            }
            if moved {
                self.turns_at_instant += 1;
                if self.turns_at_instant > MAX_TURNS_PER_INSTANT {
                    return Err(Violation::new(
                        "the run ends in bounded time",
                        format!(
                            "{MAX_TURNS_PER_INSTANT} turns at {:?} without the clock moving: a \
                             live-lock",
                            self.now - self.origin
                        ),
                    )
                    .because("live-lock".into()));
                }
                continue;
            }
            let next = [
                self.scheduler.poll_timeout(),
                self.net.next_at(),
                self.pending.front().map(|(at, ..)| self.origin + *at),
            ]
            .into_iter()
            .flatten()
            .min();
            let Some(next) = next else {
                return Err(Violation::new(
                    "the run ends in bounded time",
                    format!(
                        "stuck: {} addresses without a verdict, and nothing will ever happen \
                         (no deadline, no event); census {:?}",
                        self.submitted.len() - self.results.len(),
                        self.scheduler.census()
                    ),
                )
                .because("stuck".into()));
            };
            if next - self.origin > self.bounds.duration {
                return Err(Violation::new(
                    "the run ends in bounded time",
                    format!(
                        "still running at the bound of {:?} ({} of {} verdicts, {} connections); \
                         census {:?}",
                        self.bounds.duration,
                        self.results.len(),
                        self.scenario.addresses.len(),
                        self.connections,
                        self.scheduler.census()
                    ),
                )
                .because("past the time bound".into()));
            }
            if next > self.now {
                self.now = next;
                self.turns_at_instant = 0;
            }
        }
    }

    /// Records a breach (the first of each invariant) and goes on.
    fn breach(&mut self, violation: Violation) {
        let line = format!("VIOLATION {violation}");
        self.net.note(self.now, &line);
        if !self
            .violations
            .iter()
            .any(|v| v.invariant == violation.invariant)
        {
            self.violations.push(violation);
        }
    }

    fn submit_due(&mut self) {
        while let Some((at, ..)) = self.pending.front() {
            if self.origin + *at > self.now {
                return;
            }
            let Some((_, tag, address, options)) = self.pending.pop_front() else {
                return;
            };
            let note = match (options.priority, options.deadline) {
                (mxprobe::Priority::Bulk, None) => String::new(),
                (priority, deadline) => format!(" ({priority:?}, deadline {deadline:?})"),
            };
            self.net
                .note(self.now, &format!("submit #{tag} {address}{note}"));
            self.scheduler.submit_with(&address, tag, options, self.now);
            if let Some(deadline) = options.deadline {
                self.deadlines.insert(tag, self.now + deadline);
            }
            self.submitted.insert(tag, address);
        }
    }

    /// Carries out what the scheduler asks for, and takes its verdicts.
    fn flush(&mut self) -> Result<(), Violation> {
        while let Some(io) = self.scheduler.poll_conn_io() {
            match io {
                ConnIo::Connect { conn, to, .. } => {
                    self.connections += 1;
                    if self.connections > self.bounds.connections {
                        return Err(Violation::new(
                            "the run ends in bounded time",
                            format!(
                                "connection {} opened, past the bound of {} (last one c{} to {to}); \
                                 census {:?}",
                                self.connections,
                                self.bounds.connections,
                                conn.0,
                                self.scheduler.census()
                            ),
                        )
                        .because("past the connection bound".into()));
                    }
                    self.conns.insert(conn.0, ConnTrack::default());
                    self.net.connect(conn.0, to, self.now);
                }
                ConnIo::Close { conn, last_words } => {
                    if !last_words.is_empty() && self.net.send(conn.0, &last_words, self.now) {
                        self.wrote(conn.0, &last_words);
                    }
                    self.net.close(conn.0, self.now);
                    self.check_quit(conn.0);
                }
            }
        }
        while let Some(transmit) = self.scheduler.poll_dns_transmit() {
            match transmit {
                Transmit::Udp {
                    socket,
                    server,
                    payload,
                } => self.net.udp(socket.0, server, payload, self.now),
                Transmit::Tcp {
                    socket,
                    server,
                    payload,
                } => self.net.tcp(socket.0, server, payload, self.now),
                Transmit::Close { socket } => self.net.dns_close(socket.0, self.now),
            }
        }
        while let Some(result) = self.scheduler.poll_result() {
            self.take(result);
        }
        check::census(
            &self.scheduler.census(),
            &self.config,
            self.submitted.len(),
            self.results.len(),
            self.scheduler.stats().past_deadline,
        )?;
        check::world_bounded(&self.net)
    }

    fn deliver(&mut self, event: ClientEvent) {
        let now = self.now;
        match event {
            ClientEvent::Connected(conn) => {
                self.scheduler.handle_connected(ConnId(conn), now);
                self.write(conn);
            }
            ClientEvent::Data(conn, bytes) => {
                self.scheduler.handle_input(ConnId(conn), &bytes, now);
                if self.scheduler.has_conn(ConnId(conn)) {
                    self.write(conn);
                }
            }
            ClientEvent::Closed(conn) => {
                if let Some(track) = self.conns.get_mut(&conn) {
                    track.saw_closed = true;
                }
                self.scheduler.handle_closed(ConnId(conn), now);
            }
            ClientEvent::Udp {
                socket,
                from,
                bytes,
            } => self
                .scheduler
                .handle_udp(SocketId(socket), from, &bytes, now),
            ClientEvent::Tcp { socket, bytes } => {
                self.scheduler.handle_tcp(SocketId(socket), &bytes, now);
            }
            ClientEvent::DnsClosed(socket) => {
                self.scheduler.handle_dns_closed(SocketId(socket), now);
            }
        }
    }

    /// Writes what the session has for `conn`.
    fn write(&mut self, conn: u64) {
        let output = self.scheduler.output(ConnId(conn)).to_vec();
        if output.is_empty() || !self.net.send(conn, &output, self.now) {
            return;
        }
        self.scheduler.consume_output(ConnId(conn), output.len());
        self.wrote(conn, &output);
    }

    /// Notes what the client wrote on `conn`: QUIT, and never DATA or BDAT.
    fn wrote(&mut self, conn: u64, bytes: &[u8]) {
        for line in bytes.split(|&b| b == b'\n') {
            let line = line.trim_ascii();
            let verb = line.split(|&b| b == b' ').next().unwrap_or_default();
            if verb.eq_ignore_ascii_case(b"QUIT") {
                if let Some(track) = self.conns.get_mut(&conn) {
                    track.quit_written = true;
                }
            } else if verb.eq_ignore_ascii_case(b"DATA") || verb.eq_ignore_ascii_case(b"BDAT") {
                let detail = format!(
                    "the client wrote {:?} on c{conn}",
                    String::from_utf8_lossy(line)
                );
                self.breach(Violation::new("no DATA or BDAT ever", detail).on_conn(conn));
            }
        }
    }

    /// QUIT on every session that got a greeting, unless the server closed first.
    fn check_quit(&mut self, conn: u64) {
        let Some(track) = self.conns.get(&conn) else {
            return;
        };
        if self.net.greeted(conn)
            && !track.quit_written
            && !track.saw_closed
            && !self.net.said_421(conn)
        {
            let violation = Violation::new(
                "QUIT on every session that got a greeting",
                format!(
                    "c{conn} got a whole greeting, the server did not close first, and the \
                     client closed without QUIT"
                ),
            )
            .on_conn(conn)
            .because(self.net.story(conn));
            self.breach(violation);
        }
    }

    /// Takes a verdict: exactly one per submission, aligned with the reply it cites.
    fn take(&mut self, result: VerifyResult) {
        let line = check::describe(&result);
        self.net.note(self.now, &line);
        if !self.submitted.contains_key(&result.tag) {
            self.breach(Violation::new(
                "every address gets exactly one result",
                format!("a result for tag {}, which was never submitted", result.tag),
            ));
            return;
        }
        if let Some(first) = self.results.get(&result.tag) {
            let detail = format!(
                "a second result for #{} {}: first {}, now {line}",
                result.tag,
                result.address,
                check::describe(first),
            );
            self.breach(
                Violation::new("every address gets exactly one result", detail).on_tag(result.tag),
            );
            return;
        }
        if let Err(violation) = check::alignment(&result, &self.net) {
            self.breach(violation);
        }
        if let Some(&deadline) = self.deadlines.get(&result.tag)
            && self.now > deadline
        {
            let late = self.now - deadline;
            self.breach(
                Violation::new(
                    "a submission with a deadline is answered by it",
                    format!("{line}: {late:?} after its deadline"),
                )
                .on_tag(result.tag),
            );
        }
        self.results.insert(result.tag, result);
    }

    fn at_the_end(&mut self) -> Result<(), Violation> {
        self.net.note(self.now, "the scheduler is idle");
        for (tag, address) in &self.submitted {
            if !self.results.contains_key(tag) {
                return Err(Violation::new(
                    "every address gets exactly one result",
                    format!("#{tag} {address} got none, and the scheduler is idle"),
                )
                .on_tag(*tag));
            }
        }
        if self.net.data_commands() > 0 {
            return Err(Violation::new(
                "no DATA or BDAT ever",
                format!(
                    "the servers received {} DATA or BDAT",
                    self.net.data_commands()
                ),
            ));
        }
        Ok(())
    }
}

/// Adds what an API front end sends to the scenario's submissions: repeats of a fifth of the
/// addresses (at a random later time: some while the first is in flight, some after), and to
/// any submission a quarter's chance of being real-time and a quarter's of a deadline of 1 to
/// 60 seconds. Sorted by time after, the scenario's own submissions first at equal times.
fn front_end_traffic(pending: &mut Vec<Submission>, spread: Duration, rng: &mut StdRng) {
    let originals = pending.len();
    if originals > 0 {
        let repeats = rng.random_range(0..=originals / 5 + 1);
        for n in 0..repeats {
            let (at, _, address, _) = pending[rng.random_range(0..originals)].clone();
            let later = rng.random_range(Duration::ZERO..=spread + Duration::from_secs(30));
            let tag = (originals + n) as u64;
            pending.push((at + later, tag, address, SubmitOptions::default()));
        }
    }
    for (.., options) in pending.iter_mut() {
        if rng.random_bool(0.25) {
            *options = SubmitOptions::real_time();
        }
        if rng.random_bool(0.25) {
            *options = options.deadline(Duration::from_millis(rng.random_range(1_000..=60_000)));
        }
    }
    pending.sort_by_key(|(at, tag, ..)| (*at, *tag));
}
