//! `mxprobe verify`: addresses in (arguments, a file, standard input, CSV), one verdict per
//! input line out, as each completes.
//!
//! Three threads: a reader that turns input lines into submissions (skipping lines an earlier
//! run finished), the engine, and this one, which writes verdicts as they come. A fourth waits
//! for Ctrl-C: once stops taking work and lets the probes in flight finish; twice exits at
//! once, after the lines being written.
//!
//! It is built on the library's public API alone: [`Config`], [`Engine`], the [`Record`] of
//! the output schema. Duplicates are the engine's too: a repeat of a mailbox in flight joins
//! its probe, and one finished lately is answered from the engine's memory of the last
//! [`REMEMBERED`] results — so the command line parses nothing twice and keeps no table of
//! its own, and its memory does not grow with the input.
//!
//! [`Record`]: mxprobe::Record

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use clap::Args;

use super::Format;
use super::engine_args::EngineArgs;
use super::input::{Column, Input, Item, count_lines};
use super::output::{Tally, Writer};
use super::progress::{Progress, summary};
use super::resume::{DoneLines, read_done};
use mxprobe::address::Address;
use mxprobe::store::Store;
use mxprobe::{Engine, Handle, NoResult, Reason, VerifyResult};

/// Verdicts the engine remembers for later repeats of a mailbox (a few hundred bytes each: 20,000
/// are a few megabytes). A repeat further back than this is verified again: right, only not
/// deduplicated, and memory stays bounded whatever the input's size.
pub const REMEMBERED: usize = 20_000;

/// The exit status after Ctrl-C, as shells expect (128 + SIGINT).
pub const INTERRUPTED: u8 = 130;

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Addresses to verify. Use --input for a file or standard input.
    #[arg(
        value_name = "ADDRESS",
        conflicts_with = "input",
        required_unless_present = "input"
    )]
    addresses: Vec<String>,

    /// Read addresses from FILE (`-` for standard input): one per line (blank lines and `#`
    /// comments skipped), or CSV with --column.
    #[arg(long, short = 'i', value_name = "FILE|-")]
    input: Option<PathBuf>,

    /// Read the input as CSV and take addresses from this column, by header name or by number
    /// from 1 (a first row whose column holds no '@' is taken for a header).
    #[arg(long, value_name = "NAME|N", requires = "input")]
    column: Option<Column>,

    /// Write verdicts to FILE instead of standard output.
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,

    /// Output format [default: human on a terminal, jsonl otherwise].
    #[arg(long, value_enum)]
    format: Option<Format>,

    /// Append to --output and skip the input lines it already has verdicts for: rerun the
    /// same command after a crash, kill or Ctrl-C and nothing is lost or done twice.
    #[arg(long, requires = "output")]
    resume: bool,

    #[command(flatten)]
    engine: EngineArgs,

    /// Keep verdicts in this SQLite file (the store `mxprobe serve` uses) and answer repeats
    /// from it: a mailbox with a fresh verdict there is not probed again (each reason has its
    /// time to live; unknowns are never reused).
    #[arg(long, value_name = "FILE")]
    store: Option<PathBuf>,

    /// No progress line and no summary on stderr.
    #[arg(long, short = 'q')]
    quiet: bool,
}

/// What the reader and the writer share: the output and its counts.
struct Shared {
    writer: Writer,
    tally: Tally,
    progress: Progress,
    transcript: bool,
    failed: Option<String>,
    /// The store of `--store`, and the verdicts not yet cached in it.
    store: Option<(Store, Vec<VerifyResult>)>,
}

/// Verdicts cached in one transaction at most.
const CACHE_BATCH: usize = 1_000;

impl Shared {
    fn write(&mut self, result: &VerifyResult) {
        if self.failed.is_some() {
            return;
        }
        let mut record = result.record();
        if !self.transcript {
            record.transcript = None;
        }
        // On a shared terminal, the progress line makes way for the record, then returns.
        self.progress.clear();
        if let Err(e) = self.writer.write(&record) {
            self.failed = Some(format!("cannot write the verdicts: {e}"));
            return;
        }
        self.tally.add(result.verdict());
        self.progress.update(&self.tally);
    }

    /// Writes a verdict the engine gave, and keeps it for the store.
    fn write_probed(&mut self, result: VerifyResult) {
        self.write(&result);
        if let Some((_, pending)) = &mut self.store {
            pending.push(result);
            if pending.len() >= CACHE_BATCH {
                self.save();
            }
        }
    }

    /// Caches the verdicts kept for the store.
    fn save(&mut self) {
        let Some((store, pending)) = &mut self.store else {
            return;
        };
        if pending.is_empty() {
            return;
        }
        if let Err(e) = store.cache_all(pending, SystemTime::now()) {
            self.failed
                .get_or_insert(format!("--store: cannot keep the verdicts: {e}"));
        }
        pending.clear();
    }

    /// Writes out what is buffered: nothing more is at hand for now.
    fn flush(&mut self) {
        self.save();
        if self.failed.is_none()
            && let Err(e) = self.writer.flush()
        {
            self.failed = Some(format!("cannot write the verdicts: {e}"));
        }
    }
}

fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    // A panic elsewhere must not stop the verdicts already made from being written.
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `verify`; returns the exit status.
pub fn run(args: VerifyArgs) -> Result<u8, String> {
    let started = Instant::now();
    // The store is made (if new) before its reader opens it beside the writer.
    let (store, cache) = match &args.store {
        Some(path) => {
            let store =
                Store::open(path).map_err(|e| format!("--store {}: {e}", path.display()))?;
            let reader =
                Store::open_reader(path).map_err(|e| format!("--store {}: {e}", path.display()))?;
            (Some(store), Some(reader))
        }
        None => (None, None),
    };
    // Catch-all answers the store had in the last day are not asked again.
    let known = match &cache {
        Some(reader) => reader
            .known_catch_all(SystemTime::now())
            .map_err(|e| format!("--store: {e}"))?,
        None => Vec::new(),
    };
    let config = args
        .engine
        .config(|builder| builder.remember_results(REMEMBERED).known_catch_all(known))?;
    let config_verifies_tls = config.tls_verifies();
    let format = args.format.unwrap_or(match &args.output {
        None if std::io::stdout().is_terminal() => Format::Human,
        _ => Format::Jsonl,
    });
    if args.resume && format == Format::Human {
        return Err("--resume reads the output back: use --format jsonl or csv".into());
    }

    // Output, and what an earlier run already did.
    let (done, has_content) = match (&args.output, args.resume) {
        (Some(path), true) => read_done(path, format).map_err(|e| e.to_string())?,
        _ => (DoneLines::default(), false),
    };
    let (out, color, terminal): (Box<dyn Write + Send>, bool, bool) = match &args.output {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .append(args.resume)
                .truncate(!args.resume)
                .open(path)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            (Box::new(file), false, false)
        }
        None => {
            let terminal = std::io::stdout().is_terminal();
            let color = terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
            (Box::new(std::io::stdout()), color, terminal)
        }
    };
    // On a terminal each record goes out as it comes, past the progress line they share;
    // elsewhere records are buffered and go out whole when no verdict is waiting.
    let mut writer = Writer::new(out, format, color, terminal);
    if !has_content {
        writer
            .header()
            .map_err(|e| format!("cannot write the verdicts: {e}"))?;
    }

    let input = match &args.input {
        Some(path) => Input::open(path, args.column.clone()).map_err(|e| e.to_string())?,
        None => Input::arguments(args.addresses.clone()),
    };
    let show_progress = !args.quiet && std::io::stderr().is_terminal();
    // Counted only for the progress line: a long file is read twice otherwise.
    let total = match &args.input {
        Some(path) if show_progress => count_lines(path),
        Some(_) => None,
        None => Some(args.addresses.len() as u64),
    };
    let resumed = done.len();

    let (engine, results) =
        Engine::start(config).map_err(|e| format!("cannot start the engine: {e}"))?;
    for notice in engine.notices() {
        say(&format!("mxprobe: {notice}"));
    }
    let shared = Arc::new(Mutex::new(Shared {
        writer,
        tally: Tally::default(),
        progress: Progress::new(show_progress, total, resumed),
        transcript: args.engine.transcript,
        failed: None,
        store: store.map(|store| (store, Vec::new())),
    }));

    let interrupted = Arc::new(AtomicBool::new(false));
    watch_signals(
        engine.handle(),
        Arc::clone(&shared),
        Arc::clone(&interrupted),
    )?;
    let reader = {
        let handle = engine.handle();
        let shared = Arc::clone(&shared);
        let interrupted = Arc::clone(&interrupted);
        std::thread::Builder::new()
            .name("mxprobe-input".into())
            .spawn(move || read_input(input, &done, &handle, &shared, &interrupted, cache.as_ref()))
            .map_err(|e| format!("cannot start the input thread: {e}"))?
    };

    // Verdicts as they come, buffered while more are waiting, written out whenever none is.
    loop {
        let result = match results.try_recv() {
            Ok(result) => result,
            Err(NoResult::NotYet) => {
                lock(&shared).flush();
                match results.recv() {
                    Some(result) => result,
                    None => break,
                }
            }
            Err(NoResult::Ended) => break,
        };
        lock(&shared).write_probed(result);
    }
    lock(&shared).flush();
    let report = engine
        .join()
        .map_err(|e| format!("the engine failed: {e}"))?;
    let interrupted = interrupted.load(Ordering::SeqCst);
    let input_error = if interrupted {
        // The reader may be blocked on standard input; it ends with the process.
        None
    } else {
        reader
            .join()
            .map_err(|_| "the input thread panicked".to_owned())?
    };
    let mut guard = lock(&shared);
    guard.progress.clear();
    if let Some(failure) = guard.failed.take() {
        return Err(failure);
    }
    if let Some(error) = input_error {
        return Err(error);
    }
    // An interrupted run says so even with --quiet: the user must know to resume.
    if !args.quiet || interrupted {
        say(&summary(
            &guard.tally,
            started.elapsed(),
            interrupted,
            resumed,
        ));
    }
    // What the prober's own means went through, which no verdict says: said even with --quiet.
    let stats = &report.stats;
    if stats.sources_benched > 0 {
        say(&format!(
            "mxprobe: a source address was benched {} time(s): servers refused it by name \
             (blocklists); its domains moved to the other --source-ip addresses",
            stats.sources_benched
        ));
    }
    if stats.proxy_failures > 0 {
        say(&format!(
            "mxprobe: {} session(s) failed at the SOCKS5 proxy before reaching a server; their \
             addresses were asked again through the next proxy (proxy_failed in the detail \
             where every attempt failed)",
            stats.proxy_failures
        ));
    }
    if stats.tls_failures > 0 {
        say(&format!(
            "mxprobe: {} TLS handshake(s) after STARTTLS failed; their addresses were asked at \
             the next MX (tls_failed in the detail where every server failed){}",
            stats.tls_failures,
            if config_verifies_tls {
                ": --tls-verify refuses certificates that do not chain to a trusted root or \
                 name the MX host"
            } else {
                ""
            }
        ));
    }
    Ok(if interrupted { INTERRUPTED } else { 0 })
}

/// The reader thread: input lines to submissions. Returns a fatal input error, if any.
fn read_input(
    mut input: Input,
    done: &DoneLines,
    handle: &Handle,
    shared: &Mutex<Shared>,
    interrupted: &AtomicBool,
    cache: Option<&Store>,
) -> Option<String> {
    let outcome = loop {
        if interrupted.load(Ordering::SeqCst) {
            break None;
        }
        let item = match input.next_item() {
            Ok(Some(item)) => item,
            Ok(None) => break None,
            Err(error) => break Some(format!("cannot read the input: {error}")),
        };
        match item {
            Item::Address { line, .. } | Item::Unreadable { line, .. } if done.contains(line) => {}
            Item::Unreadable { line, text, detail } => {
                lock(shared).write(&unreadable(line, text, detail));
            }
            Item::Address { line, text } => {
                if let Some(cached) = cache.and_then(|store| cached(store, &text, line)) {
                    lock(shared).write(&cached);
                } else if handle.submit(text, line).is_err() {
                    break None;
                }
            }
        }
    };
    handle.finish();
    outcome
}

/// The fresh verdict `cache` has for the mailbox of `text`, given to this line.
fn cached(cache: &Store, text: &str, line: u64) -> Option<VerifyResult> {
    let mailbox = Address::parse(text).ok()?;
    let record = cache.cached(mailbox.mailbox(), SystemTime::now()).ok()??;
    let mut result = VerifyResult::from_record_json(&record).ok()?;
    result.tag = line;
    result.address = text.to_owned();
    Some(result)
}

/// The verdict of a line that cannot be read.
fn unreadable(line: u64, text: String, detail: String) -> VerifyResult {
    VerifyResult {
        tag: line,
        address: text,
        mailbox: None,
        domain: None,
        reason: Reason::InvalidSyntax,
        detail: Some(detail),
        mx: None,
        ip: None,
        smtp: None,
        catch_all: None,
        flags: mxprobe::address::Flags::default(),
        suggestion: None,
        attempts: 0,
        elapsed: Duration::ZERO,
        transcript: None,
        tls: None,
        greylist_wait: None,
    }
}

/// Ctrl-C (or SIGTERM) once: stop taking work, let the probes in flight finish. Twice: exit
/// now, after the line being written (the output stays whole lines).
fn watch_signals(
    handle: Handle,
    shared: Arc<Mutex<Shared>>,
    interrupted: Arc<AtomicBool>,
) -> Result<(), String> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .map_err(|e| format!("cannot watch for Ctrl-C: {e}"))?;
    std::thread::Builder::new()
        .name("mxprobe-signals".into())
        .spawn(move || {
            for _ in signals.forever() {
                if interrupted.swap(true, Ordering::SeqCst) {
                    let mut guard = lock(&shared);
                    guard.flush();
                    guard.progress.clear();
                    say("mxprobe: stopped; rerun the same command with --resume to finish");
                    std::process::exit(i32::from(INTERRUPTED));
                }
                lock(&shared).progress.clear();
                say("mxprobe: stopping: finishing the probes in flight (Ctrl-C again to quit at once)");
                handle.stop();
            }
        })
        .map_err(|e| format!("cannot watch for Ctrl-C: {e}"))?;
    Ok(())
}

/// A message for people, on stderr.
fn say(message: &str) {
    #[allow(clippy::print_stderr, reason = "the CLI talks to people on stderr")]
    {
        eprintln!("{message}");
    }
}
