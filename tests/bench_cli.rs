//! `mxprobe bench` as users run it: the built binary, its simulated world in process, in
//! another process (`--serve` and `--remote-dns`), its JSON and its tables. Small runs: these
//! check that the figures are there and the verdicts right, not how fast (benchmarks do that).

#![allow(
    clippy::disallowed_methods,
    reason = "these tests run the binary in real time"
)]

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn mxprobe() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mxprobe"))
}

fn run(command: &mut Command) -> Output {
    command.stdin(Stdio::null()).output().expect("run mxprobe")
}

fn json(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "exit {:?}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&output.stdout));
    })
}

/// The world flags both processes of a two-process run must share.
const WORLD: [&str; 8] = [
    "--domains",
    "40",
    "--catch-all-share",
    "0.2",
    "--reject-share",
    "0.1",
    "--seed",
    "7",
];

#[test]
fn json_has_every_figure_and_every_verdict_is_right() {
    let output = run(mxprobe()
        .args(["bench", "--json", "--addresses", "3000"])
        .args(WORLD));
    let report = json(&output);
    let showcase = report["showcase"].as_array().expect("showcase");
    assert_eq!(showcase.len(), 12);
    for row in showcase {
        assert_eq!(row["right"], true, "{row}");
    }
    let greylisted = showcase
        .iter()
        .find(|row| row["address"] == "alice@greylisting.test")
        .expect("the greylisting case");
    assert_eq!(greylisted["attempts"], 2, "{greylisted}");
    // A server that loses pipelined replies (answering the group with 250, 221) gets no
    // verdict from the 221: the address is asked again without pipelining.
    let drops = showcase
        .iter()
        .find(|row| row["address"] == "alice@drops-replies.test")
        .expect("the lost-replies case");
    assert_eq!(
        (&drops["reason"], &drops["attempts"]),
        (&Value::from("accepted"), &Value::from(2)),
        "{drops}"
    );
    assert!(
        drops["reply"]
            .as_str()
            .is_some_and(|r| r.starts_with("250")),
        "{drops}"
    );
    let extra = showcase
        .iter()
        .find(|row| row["address"] == "alice@extra-reply.test")
        .expect("the extra-reply case");
    assert_eq!(extra["reason"], "protocol_error", "{extra}");

    let load = &report["load"];
    assert_eq!(load["addresses"], 3000);
    assert_eq!(load["wrong"], 0, "{load}");
    assert_eq!(load["data_commands"], 0, "mxprobe never sends DATA");
    let counted: u64 = load["verdicts"]
        .as_object()
        .expect("verdicts")
        .values()
        .map(|n| n.as_u64().expect("count"))
        .sum();
    assert_eq!(counted, 3000);
    for kind in ["accepted", "mailbox_not_found", "accept_all", "blocked"] {
        assert!(load["verdicts"][kind].as_u64() > Some(0), "{kind}: {load}");
    }
    assert!(load["addresses_per_s"].as_f64() > Some(0.0));
    assert!(load["probes_per_s"].as_f64() >= load["addresses_per_s"].as_f64());
    let times = &load["per_address_ms"];
    assert_eq!(times["count"], 3000);
    assert!(times["p50"].as_f64() <= times["p99"].as_f64());
    assert!(times["p99"].as_f64() <= times["max"].as_f64());
    assert!(load["sessions"].as_u64() > Some(0));
    assert!(load["rcpts_per_session"].as_f64() <= Some(9.0));
    assert!(load["peak_sessions"].as_u64() >= Some(1));
    assert!(load["cpu"]["engine"]["user_s"].as_f64().is_some(), "{load}");
    assert!(
        load["cpu"]["farm"]
            .as_array()
            .is_some_and(|f| !f.is_empty())
    );
    assert!(load["memory"]["peak_rss_bytes"].as_u64() > Some(0));
    let bottleneck = load["bottleneck"].as_str().expect("bottleneck");
    assert!(["farm", "engine", "cores", "waiting"].contains(&bottleneck));
    // No latency: no ideal to compare with.
    assert_eq!(load["ideal_s"], Value::Null);
}

#[test]
fn latency_gives_an_ideal_the_run_cannot_beat() {
    let output = run(mxprobe()
        .args(["bench", "--json", "--no-showcase", "--addresses", "400"])
        .args([
            "--latency",
            "50",
            "--concurrency",
            "20",
            "--rcpts-per-session",
            "1",
        ])
        .args(WORLD));
    let load = &json(&output)["load"];
    assert_eq!(load["wrong"], 0, "{load}");
    let vs_ideal = load["vs_ideal"].as_f64().expect("an ideal with latency");
    // Every wait costs at least the latency: the run can only be slower than the ideal.
    assert!(vs_ideal >= 0.98, "{load}");
    assert_eq!(load["peak_sessions"], 20);
}

/// Through the in-process SOCKS5 proxy (`mxprobe::sim::socks5`) every verdict is still right,
/// showcase included (its silent server and its server that loses pipelined replies too), and
/// the report says the probes went through it.
#[test]
fn through_a_socks5_proxy_every_verdict_is_right() {
    let output = run(mxprobe()
        .args(["bench", "--json", "--addresses", "2000", "--proxy"])
        .args(WORLD));
    let report = json(&output);
    assert_eq!(report["load"]["wrong"], 0, "{report}");
    for row in report["showcase"].as_array().expect("showcase") {
        assert_eq!(row["right"], true, "{row}");
    }
    assert!(
        report["notices"]
            .as_array()
            .expect("notices")
            .iter()
            .any(|n| n.as_str().is_some_and(|n| n.contains("SOCKS5 proxy"))),
        "{report}"
    );
}

/// With STARTTLS at every session every verdict is still right, showcase included, each
/// session made a TLS handshake, and the engine's CPU per session is reported.
#[test]
fn with_starttls_at_every_session_every_verdict_is_right() {
    let output = run(mxprobe()
        .args(["bench", "--json", "--addresses", "2000", "--tls"])
        .args(WORLD));
    let report = json(&output);
    assert_eq!(report["world"]["tls"], true, "{report}");
    let load = &report["load"];
    assert_eq!(load["wrong"], 0, "{report}");
    for row in report["showcase"].as_array().expect("showcase") {
        assert_eq!(row["right"], true, "{row}");
    }
    let sessions = load["sessions"].as_u64().expect("sessions");
    let handshakes = load["tls_handshakes"].as_u64().expect("handshakes");
    // Sessions refused at greeting never get as far as STARTTLS.
    assert!(handshakes > 0 && handshakes <= sessions, "{load}");
    // Linux reports the engine thread's CPU.
    assert!(
        load["cpu"]["engine_per_session_us"]
            .as_f64()
            .is_some_and(|us| us > 0.0),
        "{load}"
    );
}

#[test]
fn tables_show_the_verdicts_above_the_figures() {
    let output = run(mxprobe().args(["bench", "--addresses", "500"]).args(WORLD));
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    let decides = text
        .find("What mxprobe decides")
        .expect("the showcase table");
    let throughput = text.find("addresses/s").expect("the figures");
    assert!(decides < throughput, "{text}");
    for expected in [
        "deliverable/accepted",
        "undeliverable/mailbox_not_found",
        "risky/accept_all",
        "(2 sessions)",
        "undeliverable/null_mx",
        "undeliverable/domain_not_found",
        "unknown/timeout",
        "unknown/blocked",
        "risky/disposable",
        "undeliverable/invalid_syntax",
        "all 500 (checked against the world's answer key)",
        "bottleneck",
    ] {
        assert!(text.contains(expected), "{expected} missing from:\n{text}");
    }
    assert!(!text.contains("WRONG"), "{text}");
}

#[test]
fn bad_settings_are_refused_with_the_setting_named() {
    let output = run(mxprobe().args(["bench", "--catch-all-share", "1.5"]));
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("catch-all share"));
    let output = run(mxprobe().args(["bench", "--latency", "-3"]));
    assert_ne!(output.status.code(), Some(0));
}

/// `--serve` in one process, `--remote-dns` in another: the world's addresses come out on
/// stdout, and the second process verifies them right.
#[test]
fn serve_and_remote_run_in_two_processes() {
    let mut server = mxprobe()
        .args(["bench", "--serve", "--expected", "--addresses", "5"])
        .args(WORLD)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the server");
    let mut stderr = BufReader::new(server.stderr.take().expect("stderr"));
    let mut banner = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !banner.contains("Ctrl-C stops") {
        assert!(Instant::now() < deadline, "no banner: {banner}");
        let mut line = String::new();
        if stderr.read_line(&mut line).expect("read stderr") == 0 {
            panic!("the server ended: {banner}");
        }
        banner.push_str(&line);
    }
    // The server keeps stdout open while it serves: read the lines it promised, no more.
    let mut out = BufReader::new(server.stdout.take().expect("stdout"));
    let mut stdout = String::new();
    for _ in 0..10 + 5 {
        out.read_line(&mut stdout).expect("read stdout");
    }
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 10 + 5, "{stdout}");
    assert!(lines.contains(&"alice@shop.test,deliverable,accepted"));
    assert!(lines.iter().all(|line| line.split(',').count() == 3));

    let port = banner
        .split("port ")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .expect("the port in the banner");
    let dns = banner
        .split("DNS (UDP and TCP) at ")
        .nth(1)
        .and_then(|rest| rest.split(".\n").next())
        .expect("the DNS address in the banner");
    let output = run(mxprobe()
        .args(["bench", "--json", "--addresses", "1000"])
        .args(["--remote-dns", dns, "--smtp-port", port])
        .args(WORLD));
    let report = json(&output);
    let kill = Command::new("kill")
        .args(["-INT", &server.id().to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());
    let status = server.wait().expect("the server ends");
    assert!(status.success(), "{status:?}");
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).expect("read stderr");
    assert!(rest.contains("0 DATA"), "{rest}");

    assert_eq!(report["world"]["mx_hosts"], Value::Null, "remote");
    assert!(
        report["showcase"]
            .as_array()
            .expect("showcase")
            .iter()
            .all(|r| r["right"] == true)
    );
    let load = &report["load"];
    assert_eq!(load["wrong"], 0, "{load}");
    assert_eq!(
        load["data_commands"],
        Value::Null,
        "not counted across processes"
    );
    assert_eq!(load["cpu"]["farm"].as_array().map(Vec::len), Some(0));
}

/// `bench --http`: the service measured against the engine and `verify`, every verdict of its
/// job right, memory read at each quarter.
#[test]
fn bench_http_measures_the_service_against_verify() {
    let output = run(mxprobe().args([
        "bench",
        "--http",
        "--json",
        "--addresses",
        "2000",
        "--http-requests",
        "40",
        "--http-clients",
        "2",
        "--concurrency",
        "50",
        "--domains",
        "40",
    ]));
    let report = json(&output);
    assert_eq!(report["bulk"]["addresses"], 2000);
    assert_eq!(report["bulk"]["wrong"], 0, "{report}");
    for phase in ["engine_alone", "http_idle"] {
        assert_eq!(report["real_time"][phase]["count"], 40, "{report}");
    }
    for figure in ["verify_per_sec", "job_per_sec", "ratio"] {
        assert!(
            report["bulk"][figure].as_f64().is_some_and(|x| x > 0.0),
            "{report}"
        );
    }
    let rss = report["bulk"]["service_rss_bytes"].as_array().expect("rss");
    assert_eq!(
        rss.last().map(|sample| &sample["progress"]),
        Some(&Value::from(100)),
        "{report}"
    );
}
