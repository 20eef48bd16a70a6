//! mxprobe tells whether a mailbox exists without sending mail.
//!
//! For each address it checks the syntax, finds the domain's mail servers with its own DNS
//! client, opens SMTP to the preferred MX, says EHLO, MAIL FROM, RCPT TO — and QUIT. It never
//! sends DATA. The RCPT reply, a catch-all control probe and the DNS facts become one verdict
//! per address: [`Verdict`] (`deliverable`, `undeliverable`, `risky`, `unknown`) and the
//! precise [`Reason`] it follows from.
//!
//! # Verifying a list
//!
//! Build a [`Config`], start an [`Engine`] (its own thread and event loop), submit addresses
//! through a [`Handle`] from any thread, and read the [`VerifyResult`]s as they complete:
//!
//! ```
//! use mxprobe::{Config, Engine};
//! # let world = mxprobe::sim::DocWorld::start()?; // example.test, simulated on loopback
//! # let dns = world.dns();
//!
//! let config = Config::builder()
//!     .sender("verify@example.com")
//!     .nameserver(dns) // default: the nameservers of /etc/resolv.conf
//! #   .smtp_port(world.smtp_port()).allow_private_mx(true)
//!     .build()?;
//! let (engine, results) = Engine::start(config)?;
//! let handle = engine.handle();
//! std::thread::spawn(move || {
//!     let list = ["alice@example.test", "nobody@example.test", "not an address"];
//!     for (line, address) in list.into_iter().enumerate() {
//!         handle.submit(address, line as u64).expect("the engine runs until finish");
//!     }
//!     handle.finish();
//! });
//! for result in results {
//!     println!("{} {} {}", result.address, result.verdict(), result.reason);
//! }
//! let report = engine.join()?;
//! # assert_eq!(report.stats.finished, 3);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Results come in completion order; the tag given to [`Handle::submit`] says which is which.
//! [`VerifyResult::record`] gives the [`Record`] of the output schema, the JSON object
//! `mxprobe verify` writes. Submissions wait while the engine is full, and the engine holds
//! back verdicts nobody reads, so a list of any length runs in bounded memory — submit from one
//! thread and read on another, as above. [`Engine::start_with_callback`] calls a function with
//! each verdict instead. [`Handle::submit_with`] takes [`SubmitOptions`]: real-time ahead of
//! bulk, and a deadline. A mailbox submitted again while it is being probed joins that probe.
//!
//! # Bring your own event loop
//!
//! [`Engine`] is one way to run the engine. The engine itself, [`engine::Scheduler`], is a
//! sans-IO state machine: it takes submissions, received bytes and the current [`Instant`]
//! as arguments, and hands back connections to open, bytes to send, DNS datagrams, deadlines
//! and verdicts. It never touches a socket and never reads the clock. Drive it from any loop:
//! `examples/tokio_driver.rs` runs it on tokio with tokio's sockets.
//!
//! [`Instant`]: std::time::Instant
//!
//! # Layers
//!
//! ```text
//! addresses ─► address ─► engine ─► dns ─► engine ─► session ─► verdict ─► record
//!                          ▲                  ▲
//!                          └──── driver (mio) ┘   sockets, timers, the clock
//! ```
//!
//! Dependencies run one way: `driver → engine → {session, dns, address} → {smtp, verdict}`.
//! Everything below the driver is *sans-IO*: plain state machines that take received bytes and
//! `now: Instant` as arguments and hand back bytes to send and the next deadline. They never
//! touch a socket and never read the clock — clippy enforces the latter (`clippy.toml`) — so every
//! protocol path can be tested byte for byte and fuzzed.
//!
//! - [`smtp`]: the streaming SMTP reply parser, reply and enhanced codes, EHLO extensions, and
//!   the command encoder that refuses CR, LF and NUL and has no way to say DATA.
//! - [`address`]: address syntax (RFC 5321/5322/6531), IDNA, flags (role, disposable, free),
//!   typo suggestions.
//! - [`verdict`]: what a reply means: [`Verdict`], [`Reason`], the RFC 3463 table.
//! - [`dns`]: the DNS client: lookups, cache, mail routes (MX, then A/AAAA).
//! - [`session`]: one SMTP probe session (EHLO, MAIL FROM, RCPT TO…, QUIT).
//! - [`engine`]: the [`Scheduler`](engine::Scheduler): queues, batching, politeness, failover,
//!   retries, the catch-all control.
//! - [`driver`]: the `mio` event loop around the scheduler: [`Engine`].
//! - [`providers`]: the big mail systems and security gateways, recognised by their MX hosts,
//!   with what their replies mean and the politeness they ask for.
//! - [`socks5`]: the client side of a SOCKS5 proxy handshake (RFC 1928, RFC 1929), sans-IO.
//! - [`tls`]: STARTTLS's settings: when to say it, how much to trust the server's certificate
//!   (rustls, driven sans-IO inside the session).
//! - `sim` (feature `sim`): simulated DNS and SMTP servers, for tests and `mxprobe bench`.
//!
//! # Stability
//!
//! mxprobe is before 1.0. The embedding API — the items re-exported at the crate root
//! ([`Config`], [`ConfigBuilder`], [`ConfigError`], [`Engine`], [`Handle`], [`Results`],
//! [`VerifyResult`], [`Record`], [`Verdict`], [`Reason`]) and the JSON record's field names —
//! is what the project keeps stable: it changes only with a minor version and a CHANGELOG
//! entry, and the record's fields are only ever added. The modules under it (`engine`,
//! `session`, `dns`, `smtp`, …) are public for those who drive the engine themselves, test or
//! fuzz it; they may change between minor versions.
//!
//! # Features
//!
//! - `cli` (default): the `mxprobe` command line. Implies `sim`.
//! - `sim`: the simulated world and CPU accounting. An embedder's build leaves both out with
//!   `default-features = false`.
//! - `store` (in `cli`): the on-disk store of jobs, results and the verdict cache (SQLite),
//!   for long-running front ends.
//! - `upload` (in `cli`): the streaming parser of bulk-job uploads (plain lines, a JSON array of
//!   strings, CSV), sans-IO and in bounded memory, for the HTTP service.

#![deny(missing_docs)]

pub mod address;
pub mod config;
pub mod dns;
pub mod driver;
pub mod engine;
pub mod providers;
pub mod record;
pub mod session;
#[cfg(feature = "sim")]
pub mod sim;
pub mod smtp;
pub mod socks5;
#[cfg(feature = "store")]
pub mod store;
pub mod tls;
#[cfg(feature = "upload")]
pub mod upload;
pub mod verdict;

pub use config::{Config, ConfigBuilder, ConfigError, IpVersion};
pub use driver::{Engine, EngineReport, EngineSnapshot, EngineStopped, Handle, NoResult, Results};
pub use engine::{Priority, SubmitOptions, VerifyResult};
pub use record::Record;
pub use verdict::{Reason, Verdict};

/// The examples of README.md, compiled and run as doc tests so they cannot rot.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
