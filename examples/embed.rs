//! Embedding mxprobe: the engine on its own thread, addresses submitted from another, verdicts
//! consumed as they complete and written as the JSON records of the output schema.
//!
//! So that it runs anywhere without touching the internet, this example starts mxprobe's own
//! simulators on loopback ([`DocWorld`]: a DNS responder for `example.test` and an MX with two
//! mailboxes) and points the engine at them. In production, leave out `nameserver` (the
//! system's resolv.conf is read), `smtp_port` (25) and `allow_private_mx`.
//!
//! ```text
//! cargo run --example embed
//! ```

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "an example program prints its results"
)]

use std::thread;

use mxprobe::sim::DocWorld;
use mxprobe::{Config, Engine};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let world = DocWorld::start()?;

    // Who the prober says it is, where DNS is, how much it does at once. `build` refuses what
    // could not be probed with, before anything starts.
    let config = Config::builder()
        .sender("verify@example.test")
        .nameserver(world.dns())
        .smtp_port(world.smtp_port())
        // mxprobe's own simulators listen on loopback, where it connects only when told to.
        .allow_private_mx(true)
        .concurrency(50)
        .build()?;

    let (engine, results) = Engine::start(config)?;
    for notice in engine.notices() {
        eprintln!("mxprobe: {notice}");
    }

    // A producer on another thread: submit waits while the engine is full.
    let handle = engine.handle();
    let producer = thread::spawn(move || {
        let addresses = [
            "alice@example.test",
            "nobody@example.test",
            "Bob <bob@example.test>",
            "not-an-address",
        ];
        for (line, address) in addresses.into_iter().enumerate() {
            if handle.submit(address, line as u64 + 1).is_err() {
                break;
            }
        }
        handle.finish();
    });

    // Verdicts arrive as they complete, not in submission order; the tag says which is which.
    for result in results {
        println!("{}", serde_json::to_string(&result.record())?);
    }
    producer
        .join()
        .map_err(|_| "the producer thread panicked")?;
    let report = engine.join()?;
    eprintln!(
        "{} addresses, {} SMTP sessions, {} DNS lookups, {:.0?}",
        report.stats.finished,
        report.stats.sessions,
        report.resolver.lookups.lookups,
        report.elapsed
    );
    Ok(())
}
