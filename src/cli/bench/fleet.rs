//! `mxprobe bench --fleet N --nats URL`: the fleet measured on this machine. The world runs in
//! this process; `N` `mxprobe worker` processes of this binary take a job of `--addresses`
//! generated addresses from the JetStream work queue of the NATS server at `--nats`, which the
//! bench publishes as batches of one domain, as `serve --nats` does. Timed from the first
//! batch published to the last result read; every verdict is checked against the world's
//! answer key, and every line must be answered once. The workers' CPU (read from `/proc`
//! before they are stopped) per address is what going through NATS costs a prober, beside the
//! engine's own CPU per address of an in-process run.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{AckPolicy, PullConsumer, pull};
use futures_util::StreamExt;
use mxprobe::driver::cpu;
use serde_json::{Value, json};

use super::super::fleet::link::{WorkOrder, batches, connect};
use super::super::fleet::wire::{RESULTS_STREAM, WORK_SUBJECT, results_subject};
use super::{BenchArgs, Target};

/// The workers, killed on drop.
struct Workers(Vec<Child>);

impl Drop for Workers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs the fleet measurement and prints it.
pub fn run(target: &Target<'_>, args: &BenchArgs, nats: &str) -> Result<u8, String> {
    let count = args.addresses;
    let job = format!("bench-{}-{}", std::process::id(), count);
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let per_worker = (args.concurrency / args.fleet.max(1)).max(1).to_string();
    let mut workers = Workers(Vec::new());
    for _ in 0..args.fleet {
        let child = Command::new(&exe)
            .args(["worker", "--nats", nats, "--from", "probe@probe.bench.test"])
            .args(["--dns-server", &target.dns.to_string()])
            .args(["--smtp-port", &target.smtp_port.to_string()])
            .args(["--allow-private-mx", "--domain-rate", "0"])
            .args(["--concurrency", &per_worker, "--per-mx", &per_worker])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start a worker: {e}"))?;
        workers.0.push(child);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let spec = target.spec.clone();
    let (wall, answered, wrong, twice) = runtime.block_on(async {
        let js = connect(nats, 1).await?;
        let stream = js
            .get_stream(RESULTS_STREAM)
            .await
            .map_err(|e| format!("the results stream: {e}"))?;
        let name = format!("bench-{job}");
        let consumer: PullConsumer = stream
            .get_or_create_consumer(
                &name,
                pull::Config {
                    durable_name: Some(name.clone()),
                    filter_subject: results_subject(&job),
                    ack_policy: AckPolicy::Explicit,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| format!("a results consumer: {e}"))?;
        let lines: Vec<(u64, String)> = (0..count)
            .map(|i| (i + 1, spec.address(i).address))
            .collect();
        let started = Instant::now();
        let mut acks = Vec::new();
        for batch in batches(WorkOrder {
            job: job.clone(),
            lines,
        }) {
            let payload = serde_json::to_vec(&batch).map_err(|e| e.to_string())?;
            acks.push(
                js.publish(WORK_SUBJECT, payload.into())
                    .await
                    .map_err(|e| format!("cannot publish work: {e}"))?,
            );
        }
        for ack in acks {
            ack.await
                .map_err(|e| format!("the work stream did not take a batch: {e}"))?;
        }
        let mut seen = HashSet::new();
        let mut by_line: BTreeMap<u64, String> = BTreeMap::new();
        let mut twice = 0u64;
        let mut last_progress = (0, Instant::now());
        while (by_line.len() as u64) < count {
            if by_line.len() > last_progress.0 {
                last_progress = (by_line.len(), Instant::now());
            } else if last_progress.1.elapsed() > Duration::from_secs(60) {
                return Err(format!(
                    "{} of {count} lines answered, and none for a minute",
                    by_line.len()
                ));
            }
            if let Some(status) = workers
                .0
                .iter_mut()
                .find_map(|child| child.try_wait().ok().flatten())
            {
                return Err(format!(
                    "a worker exited ({status}): try `mxprobe worker` by hand"
                ));
            }
            let Ok(mut messages) = consumer
                .fetch()
                .max_messages(2000)
                .expires(Duration::from_millis(500))
                .messages()
                .await
            else {
                continue;
            };
            while let Some(Ok(message)) = messages.next().await {
                let sequence = message.info().map_or(0, |info| info.stream_sequence);
                let _ = message.ack().await;
                if !seen.insert(sequence) {
                    continue;
                }
                let record: Value = serde_json::from_slice(&message.payload)
                    .map_err(|e| format!("a result is not JSON: {e}"))?;
                let line = record["line"].as_u64().unwrap_or(0);
                let reason = record["reason"].as_str().unwrap_or("").to_owned();
                if by_line.insert(line, reason).is_some() {
                    twice += 1;
                }
            }
        }
        let wall = started.elapsed();
        let _ = stream.delete_consumer(&name).await;
        let wrong = by_line
            .iter()
            .filter(|(line, reason)| spec.expected(**line - 1).as_str() != reason.as_str())
            .count() as u64;
        Ok::<_, String>((wall, by_line.len() as u64, wrong, twice))
    })?;
    let worker_cpu: Duration = workers
        .0
        .iter()
        .filter_map(|child| cpu::of_process(child.id()))
        .map(|t| t.total())
        .sum();
    drop(workers);
    let per_sec = answered as f64 / wall.as_secs_f64().max(1e-9);
    let cpu_per_address = worker_cpu.div_f64(answered.max(1) as f64);
    let text = if args.json {
        json!({
            "fleet": {
                "workers": args.fleet,
                "addresses": answered,
                "wall_s": wall.as_secs_f64(),
                "addresses_per_s": per_sec,
                "wrong": wrong,
                "answered_twice": twice,
                "workers_cpu_s": worker_cpu.as_secs_f64(),
                "workers_cpu_per_address_us": cpu_per_address.as_secs_f64() * 1e6,
            }
        })
        .to_string()
            + "\n"
    } else {
        format!(
            "mxprobe bench --fleet: {} worker process{} on NATS at {nats}, the world in this \
             process\n  addresses       {answered} ({wrong} wrong, {twice} answered twice)\n  \
             wall time       {:.3} s\n  addresses/s     {per_sec:.0}\n  workers' CPU    {:.2} s \
             = {:.1} µs per address\n",
            args.fleet,
            if args.fleet == 1 { "" } else { "es" },
            wall.as_secs_f64(),
            worker_cpu.as_secs_f64(),
            cpu_per_address.as_secs_f64() * 1e6
        )
    };
    std::io::stdout()
        .lock()
        .write_all(text.as_bytes())
        .map_err(|e| format!("cannot write the report: {e}"))?;
    if wrong > 0 || twice > 0 {
        return Err(format!(
            "{wrong} wrong verdicts and {twice} lines answered twice: the fleet is broken"
        ));
    }
    Ok(0)
}
