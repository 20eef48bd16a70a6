//! The command line, thin over the library: each subcommand parses its flags, calls the
//! library, and formats what comes back. Messages for people go to stderr; results to stdout.
//!
//! Exit status: 0 when every input got an answer (a domain that does not exist is an answer),
//! 1 on a fatal error (the message says what to do), 2 on a usage error (clap's).

#![allow(
    clippy::disallowed_methods,
    reason = "the CLI may read the clock; the library's core never does"
)]

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

mod bench;
mod config_file;
mod engine_args;
mod fleet;
mod input;
mod mx;
mod output;
mod progress;
mod resume;
mod serve;
mod verify;

/// Tells whether a mailbox exists without sending mail: DNS MX lookup, then EHLO, MAIL FROM,
/// RCPT TO and QUIT on the preferred mail server. It never sends DATA.
///
/// `verify` checks addresses; `mx` shows how a domain's mail is routed; `bench` runs the
/// engine against a simulated world on loopback and measures it.
#[derive(Debug, Parser)]
#[command(name = "mxprobe", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Verify addresses: syntax, DNS, then EHLO / MAIL FROM / RCPT TO / QUIT at the
    /// preferred MX (never DATA). One verdict per input line: deliverable, undeliverable,
    /// risky or unknown, with the reason and the reply that decided.
    Verify(Box<verify::VerifyArgs>),
    /// Show how each domain's mail is routed: MX hosts by preference with their addresses, or
    /// why there is none (no such domain, null MX, no MX and no address, DNS failure).
    Mx(mx::MxArgs),
    /// Run the real engine against a simulated world on loopback (an SMTP farm and a DNS
    /// responder on threads of this process): a verdict table, then throughput, time per
    /// address, CPU and memory, and what the bottleneck was. Needs no network.
    Bench(Box<bench::BenchArgs>),
    /// Run the HTTP service: POST /v1/verify for one address in real time, /v1/jobs for bulk
    /// lists (uploaded, watched, downloaded as CSV or JSON Lines), a page for people at /, and
    /// /metrics. Jobs and verdicts are kept in a SQLite store that survives crashes.
    Serve(Box<serve::ServeArgs>),
    /// Be one prober of a fleet: pull batches of addresses from a NATS JetStream work queue
    /// shared with other workers, verify them with this machine's engine and addresses, and
    /// publish the results (see docs/scaling.md). One machine needs no NATS: use verify or
    /// serve.
    Worker(Box<fleet::worker::WorkerArgs>),
    /// Print the shell completion script for SHELL (bash, zsh, fish, elvish, powershell):
    /// `mxprobe completions bash > /etc/bash_completion.d/mxprobe`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), made from the same definitions as --help:
    /// `mxprobe man > /usr/local/share/man/man1/mxprobe.1`. With a subcommand's name, that
    /// subcommand's page (`mxprobe man serve > mxprobe-serve.1`).
    Man {
        /// A subcommand (verify, mx, bench, serve); none for the main page.
        command: Option<String>,
    },
}

/// How results are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned text for people.
    Human,
    /// One JSON object per line, for scripts.
    Jsonl,
    /// Comma-separated values with a header row, for spreadsheets.
    Csv,
}

impl Format {
    /// The format asked for, or human on a terminal and JSON Lines otherwise.
    fn resolve(asked: Option<Self>) -> Self {
        asked.unwrap_or(if std::io::stdout().is_terminal() {
            Self::Human
        } else {
            Self::Jsonl
        })
    }
}

/// Writes the completion script for `shell` to standard output.
fn completions(shell: clap_complete::Shell) -> Result<(), String> {
    use clap::CommandFactory;
    let mut command = Cli::command();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(shell, &mut command, "mxprobe", &mut out);
    std::io::Write::flush(&mut out).map_err(|e| format!("cannot write the script: {e}"))
}

/// Writes the manual page of mxprobe, or of one of its subcommands, to standard output.
fn man(subcommand: Option<&str>) -> Result<(), String> {
    use clap::CommandFactory;
    let command = Cli::command();
    let page = match subcommand {
        None => command,
        Some(name) => {
            let names: Vec<String> = command
                .get_subcommands()
                .map(|sub| sub.get_name().to_owned())
                .collect();
            command
                .find_subcommand(name)
                .cloned()
                .map(|sub| sub.name(format!("mxprobe-{name}")))
                .ok_or_else(|| format!("no subcommand {name:?}; there are: {}", names.join(", ")))?
        }
    };
    let mut out = std::io::stdout().lock();
    clap_mangen::Man::new(page)
        .render(&mut out)
        .and_then(|()| std::io::Write::flush(&mut out))
        .map_err(|e| format!("cannot write the page: {e}"))
}

/// Parses the command line and runs the command.
pub fn run() -> ExitCode {
    let args = match config_file::expand::<Cli>(std::env::args_os().collect()) {
        Ok(args) => args,
        Err(message) => {
            #[allow(
                clippy::print_stderr,
                reason = "the CLI reports fatal errors on stderr"
            )]
            {
                eprintln!("mxprobe: {message}");
            }
            return ExitCode::from(2);
        }
    };
    let cli = Cli::parse_from(args);
    let result = match cli.command {
        Command::Verify(args) => verify::run(*args),
        Command::Mx(args) => mx::run(args).map(|()| 0),
        Command::Bench(args) => bench::run(*args),
        Command::Serve(args) => serve::run(*args),
        Command::Worker(args) => fleet::worker::run(*args),
        Command::Completions { shell } => completions(shell).map(|()| 0),
        Command::Man { command } => man(command.as_deref()).map(|()| 0),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(message) => {
            #[allow(
                clippy::print_stderr,
                reason = "the CLI reports fatal errors on stderr"
            )]
            {
                eprintln!("mxprobe: {message}");
            }
            ExitCode::from(1)
        }
    }
}
