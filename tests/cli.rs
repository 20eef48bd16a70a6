//! `mxprobe verify` as users run it: the built binary against the in-repo MX farm and DNS
//! responder on loopback. Formats, stdin, CSV, bad lines, duplicates, exit codes, `--resume`
//! after a real `kill -9`, and Ctrl-C.

#![allow(
    clippy::disallowed_methods,
    reason = "these tests run the binary and servers in real time"
)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use mxprobe::sim::dns::{DnsResponder, Zone};
use mxprobe::sim::smtp::{Personality, SmtpFarm};
use serde_json::Value;

struct World {
    dns: DnsResponder,
    farm: SmtpFarm,
    port: u16,
}

/// `shop.test` with two mailboxes, `slow.test` answering every reply after 250 ms, both on
/// loopback addresses of their own.
fn world() -> World {
    world_with_slow_latency(Duration::from_millis(250))
}

/// [`world`] with `slow.test` answering every reply after `slow_latency`.
fn world_with_slow_latency(slow_latency: Duration) -> World {
    let (fast, slow) = (Ipv4Addr::new(127, 0, 0, 61), Ipv4Addr::new(127, 0, 0, 62));
    let port = loop {
        let port = TcpListener::bind((fast, 0))
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        if TcpListener::bind((slow, port)).is_ok() {
            break port;
        }
    };
    let mut slow_mx = Personality::new("mx.slow.test").catch_all();
    slow_mx.latency = slow_latency;
    let farm = SmtpFarm::start(
        vec![
            (
                SocketAddr::from((fast, port)),
                Personality::new("mx.shop.test").mailboxes(["alice@shop.test", "bob@shop.test"]),
            ),
            (SocketAddr::from((slow, port)), slow_mx),
        ],
        1,
    )
    .expect("farm");
    let mut zone = Zone::new();
    zone.mx("shop.test", 10, "mx.shop.test")
        .a("mx.shop.test", fast);
    for i in 0..40 {
        let domain = format!("d{i}.slow.test");
        zone.mx(&domain, 10, "mx.slow.test");
    }
    zone.a("mx.slow.test", slow);
    // A domain whose mail goes to a known provider's MX hosts (here, on loopback: nothing
    // connects to them), the backup first in name order.
    zone.mx("hosted.test", 10, "aspmx.l.google.com")
        .mx("hosted.test", 20, "mx.backup.test")
        .a("aspmx.l.google.com", fast)
        .a("mx.backup.test", fast);
    let dns = DnsResponder::start(zone).expect("dns");
    World { dns, farm, port }
}

impl World {
    fn command(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_mxprobe"));
        command
            .arg("verify")
            .args(["--from", "probe@probe.test", "--quiet"])
            .args(["--dns-server", &self.dns.addr().to_string()])
            .args(["--smtp-port", &self.port.to_string()])
            .arg("--allow-private-mx")
            .args(["--domain-rate", "0", "--retries", "0"]);
        command
    }
}

fn run(mut command: Command, stdin: Option<&[u8]>) -> Output {
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("run mxprobe");
    if let Some(bytes) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(bytes)
            .expect("write stdin");
    }
    drop(child.stdin.take());
    child.wait_with_output().expect("wait")
}

fn jsonl(output: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}")))
        .collect()
}

fn by_line(records: &[Value]) -> HashMap<u64, &Value> {
    records
        .iter()
        .map(|r| (r["line"].as_u64().expect("line"), r))
        .collect()
}

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("mxprobe-cli-{}-{name}", std::process::id()))
}

#[test]
fn jsonl_from_arguments_follows_the_schema() {
    let world = world();
    let mut command = world.command();
    command.args([
        "--format",
        "jsonl",
        "alice@shop.test",
        "nobody@shop.test",
        "not an address",
    ]);
    let output = run(command, None);
    assert!(output.status.success(), "{output:?}");
    let records = jsonl(&output);
    assert_eq!(records.len(), 3);
    let lines = by_line(&records);
    let alice = lines[&1];
    // The field names and their order are the output contract (DESIGN.md §3).
    let keys: Vec<&str> = alice
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "address",
            "verdict",
            "reason",
            "domain",
            "mx",
            "ip",
            "smtp",
            "catch_all",
            "flags",
            "attempts",
            "elapsed_ms",
            "line",
            "detail",
            "suggestion",
            "provider",
            "tls"
        ]
    );
    assert_eq!(alice["verdict"], "deliverable");
    assert_eq!(alice["reason"], "accepted");
    assert_eq!(alice["mx"], "mx.shop.test");
    assert_eq!(alice["ip"], "127.0.0.61");
    assert_eq!(alice["smtp"]["code"], 250);
    assert_eq!(alice["smtp"]["enhanced"], "2.1.5");
    assert_eq!(alice["catch_all"], false);
    assert_eq!(lines[&2]["reason"], "mailbox_not_found");
    assert_eq!(lines[&3]["reason"], "invalid_syntax");
    assert!(
        lines[&3]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("only inside quotes")),
        "{}",
        lines[&3]
    );
}

#[test]
fn stdin_with_comments_bad_lines_and_duplicates() {
    let world = world();
    let mut command = world.command();
    command.args(["--input", "-", "--format", "jsonl"]);
    let input = b"# a list\nalice@shop.test\n\nALICE@shop.test\nbad\xffline@shop.test\nalice@shop.test\nnobody@shop.test\n";
    let output = run(command, Some(input));
    assert!(output.status.success(), "{output:?}");
    let records = jsonl(&output);
    let lines = by_line(&records);
    assert_eq!(
        lines.len(),
        5,
        "every address line, each once: {records:#?}"
    );
    for line in [2, 6] {
        assert_eq!(lines[&line]["reason"], "accepted");
        assert_eq!(lines[&line]["address"], "alice@shop.test");
    }
    // Case-insensitive domain, case kept in the local part: a different mailbox.
    assert_eq!(lines[&4]["address"], "ALICE@shop.test");
    assert_eq!(lines[&5]["reason"], "invalid_syntax");
    assert!(
        lines[&5]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("line 5 is not valid UTF-8"))
    );
    assert_eq!(lines[&7]["reason"], "mailbox_not_found");
    // The duplicate was verified once: one session, one RCPT for it.
    let attempts: u64 = [2, 6]
        .iter()
        .map(|l| lines[l]["attempts"].as_u64().unwrap_or(0))
        .max()
        .unwrap_or(0);
    assert_eq!(attempts, 1);
}

#[test]
fn csv_in_and_out() {
    let world = world();
    let input = temp("in.csv");
    std::fs::write(
        &input,
        "name,email\nAlice,alice@shop.test\n\"Doe, John\",john@shop.test\n",
    )
    .expect("write");
    let mut command = world.command();
    command
        .arg("--input")
        .arg(&input)
        .args(["--column", "email", "--format", "csv"]);
    let output = run(command, None);
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8(output.stdout).expect("UTF-8");
    let mut rows = text.lines();
    assert_eq!(
        rows.next(),
        Some(
            "line,address,verdict,reason,detail,domain,mx,ip,smtp_code,smtp_enhanced,smtp_message,catch_all,role,disposable,free,suggestion,attempts,elapsed_ms,provider,tls"
        )
    );
    let mut rows: Vec<&str> = rows.collect();
    rows.sort();
    assert!(
        rows[0].starts_with("2,alice@shop.test,deliverable,accepted,"),
        "{rows:?}"
    );
    assert!(
        rows[1].starts_with("3,john@shop.test,undeliverable,mailbox_not_found,"),
        "{rows:?}"
    );
    std::fs::remove_file(input).ok();
}

#[test]
fn human_output_is_aligned_and_uncolored_off_a_terminal() {
    let world = world();
    let mut command = world.command();
    command.args(["--format", "human", "alice@shop.test"]);
    let output = run(command, None);
    let text = String::from_utf8(output.stdout).expect("UTF-8");
    assert!(text.starts_with("alice@shop.test "), "{text}");
    assert!(text.contains("deliverable   accepted"), "{text}");
    assert!(!text.contains('\x1b'), "no color off a terminal");
}

#[test]
fn exit_codes_and_messages_say_what_to_do() {
    let world = world();
    // Usage errors are clap's: 2.
    let output = run(world.command(), None);
    assert_eq!(output.status.code(), Some(2), "no address and no --input");
    let mut command = world.command();
    command.args(["--resume", "a@shop.test"]);
    assert_eq!(
        run(command, None).status.code(),
        Some(2),
        "--resume needs --output"
    );
    // Fatal errors: 1, with a message that names the fix.
    let mut command = Command::new(env!("CARGO_BIN_EXE_mxprobe"));
    command.args(["verify", "--from", "bad sender", "a@shop.test"]);
    let output = run(command, None);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("--from"),
        "{output:?}"
    );
    let mut command = world.command();
    command.args(["--input", "/nonexistent/list.txt"]);
    let output = run(command, None);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot open /nonexistent/list.txt"));
    // A setting out of its range is refused before anything is probed, naming its flag.
    for (flag, value) in [
        ("--concurrency", "0"),
        ("--timeout", "0"),
        ("--retry-delay", "0"),
    ] {
        let mut command = world.command();
        command.args([flag, value, "a@shop.test"]);
        let output = run(command, None);
        assert_eq!(output.status.code(), Some(1), "{flag} {value}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.starts_with(&format!("mxprobe: {flag}:")), "{stderr}");
        assert!(output.stdout.is_empty(), "no verdict from a bad setting");
    }
}

/// 40 addresses at a server that answers each reply after 250 ms, one session at a time.
fn slow_list(name: &str) -> (PathBuf, Vec<String>) {
    let addresses: Vec<String> = (0..40).map(|i| format!("user{i}@d{i}.slow.test")).collect();
    let input = temp(&format!("slow-{name}.txt"));
    std::fs::write(&input, addresses.join("\n") + "\n").expect("write");
    (input, addresses)
}

fn wait_for_lines(path: &PathBuf, at_least: usize, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let lines = std::fs::read_to_string(path).map_or(0, |t| t.lines().count());
        if lines >= at_least {
            return;
        }
        assert!(
            child.try_wait().expect("wait").is_none(),
            "finished too early"
        );
        assert!(Instant::now() < deadline, "no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn check_complete(output: &PathBuf, addresses: &[String]) {
    let text = std::fs::read_to_string(output).expect("read output");
    let mut seen: HashMap<u64, usize> = HashMap::new();
    for line in text.lines() {
        let record: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        *seen
            .entry(record["line"].as_u64().expect("line"))
            .or_default() += 1;
        assert_eq!(record["reason"], "accepted");
    }
    for line in 1..=addresses.len() as u64 {
        assert_eq!(
            seen.get(&line),
            Some(&1),
            "line {line} must appear exactly once: {seen:?}"
        );
    }
}

/// Longest a test waits for the binary to do something it should do at once: a hang guard,
/// not a measurement.
const HANG_GUARD: Duration = Duration::from_secs(60);

/// Waits for `child` to exit; kills it and fails if it has not within [`HANG_GUARD`].
fn wait_guarded(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + HANG_GUARD;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if Instant::now() > deadline {
            child.kill().ok();
            panic!("mxprobe still running after {HANG_GUARD:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The lines of `child`'s stderr as they come, read on a thread of their own; the channel
/// closes at EOF.
fn stderr_lines(child: &mut Child) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let stderr = child.stderr.take().expect("stderr piped");
    let (lines, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { return };
            if lines.send(line).is_err() {
                return;
            }
        }
    });
    received
}

#[test]
fn resume_after_kill_9_loses_nothing_and_repeats_nothing() {
    let world = world();
    let (input, addresses) = slow_list("kill");
    let output = temp("killed.jsonl");
    std::fs::remove_file(&output).ok();
    let mut command = world.command();
    command
        .arg("--input")
        .arg(&input)
        .arg("--output")
        .arg(&output)
        .args(["--resume", "--concurrency", "2", "--no-catch-all"]);
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    wait_for_lines(&output, 5, &mut child);
    // kill -9, for real.
    child.kill().expect("kill");
    child.wait().expect("reap");
    let partial = std::fs::read_to_string(&output)
        .expect("read")
        .lines()
        .count();
    assert!(partial < addresses.len(), "killed before the end");
    let status = run(command, None).status;
    assert!(status.success());
    check_complete(&output, &addresses);
    std::fs::remove_file(output).ok();
    std::fs::remove_file(input).ok();
}

#[test]
fn ctrl_c_stops_cleanly_and_resume_finishes() {
    let world = world();
    let (input, addresses) = slow_list("sigint");
    let output = temp("interrupted.jsonl");
    std::fs::remove_file(&output).ok();
    let mut command = world.command();
    command
        .arg("--input")
        .arg(&input)
        .arg("--output")
        .arg(&output)
        .args(["--resume", "--concurrency", "2", "--no-catch-all"]);
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    wait_for_lines(&output, 3, &mut child);
    let pid = i32::try_from(child.id()).expect("pid");
    // SIGINT, as Ctrl-C sends.
    assert_eq!(unsafe_free_kill(pid), 0);
    let status = wait_guarded(&mut child);
    assert_eq!(status.code(), Some(130));
    let stopped_at = std::fs::read_to_string(&output)
        .expect("read")
        .lines()
        .count();
    // The rest of the list would take most of half a minute: it was not asked.
    assert!(
        stopped_at < addresses.len(),
        "stopped before the end: {stopped_at} of {}",
        addresses.len()
    );
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read");
    assert!(stderr.contains("--resume"), "{stderr}");
    // Whatever was written is whole, valid JSON Lines.
    for line in std::fs::read_to_string(&output).expect("read").lines() {
        serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("{line}: {e}"));
    }
    assert!(run(command, None).status.success());
    check_complete(&output, &addresses);
    std::fs::remove_file(output).ok();
    std::fs::remove_file(input).ok();
}

/// `kill -INT pid` through the `kill` command: no unsafe code in the tests.
fn unsafe_free_kill(pid: i32) -> i32 {
    Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .map_or(-1, |s| s.code().unwrap_or(-1))
}

#[test]
fn a_second_ctrl_c_exits_at_once_with_whole_lines() {
    // slow.test never answers in time: the probes in flight at the first Ctrl-C hold the
    // graceful stop for its whole grace, so only the second Ctrl-C can end the run early.
    // shop.test answers at once: its two lines say the run is under way.
    let world = world_with_slow_latency(Duration::from_secs(3600));
    let (input, _) = slow_list("twice");
    let mut list = String::from("alice@shop.test\nbob@shop.test\n");
    list.push_str(&std::fs::read_to_string(&input).expect("read list"));
    std::fs::write(&input, list).expect("write list");
    let output = temp("twice.jsonl");
    std::fs::remove_file(&output).ok();
    let mut command = world.command();
    command
        .arg("--input")
        .arg(&input)
        .arg("--output")
        .arg(&output)
        // Room for every session at once, so shop.test's is never stuck behind slow ones.
        .args(["--concurrency", "64", "--no-catch-all"]);
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = stderr_lines(&mut child);
    wait_for_lines(&output, 2, &mut child);
    let pid = i32::try_from(child.id()).expect("pid");
    assert_eq!(unsafe_free_kill(pid), 0);
    // The first Ctrl-C has been heard (two sent at once could arrive as one).
    loop {
        let line = stderr
            .recv_timeout(HANG_GUARD)
            .expect("mxprobe says it is stopping");
        if line.contains("mxprobe: stopping") {
            break;
        }
    }
    assert_eq!(unsafe_free_kill(pid), 0);
    let status = wait_guarded(&mut child);
    assert_eq!(status.code(), Some(130));
    let said: Vec<String> = stderr.iter().collect();
    assert!(
        said.iter()
            .any(|line| line.starts_with("mxprobe: stopped;")),
        "the second Ctrl-C ended the run: {said:?}"
    );
    assert!(
        !said
            .iter()
            .any(|line| line.starts_with("interrupted after")),
        "not the graceful stop, which waits for the probes in flight: {said:?}"
    );
    let text = std::fs::read_to_string(&output).expect("read");
    assert!(text.is_empty() || text.ends_with('\n'), "whole lines only");
    for line in text.lines() {
        serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("{line}: {e}"));
    }
    std::fs::remove_file(output).ok();
    std::fs::remove_file(input).ok();
}

#[test]
fn an_injection_line_is_refused_whole_and_nothing_is_asked_for_it() {
    let world = world();
    let mut command = world.command();
    command.args(["--input", "-", "--format", "jsonl"]);
    // The second line hides a command after a CR; a display name must be a name.
    let input = b"alice@shop.test\nnobody@shop.test\rRCPT TO:<alice@shop.test>\nx@shop.test, <bob@shop.test>\n";
    let output = run(command, Some(input));
    assert!(output.status.success(), "{output:?}");
    let records = jsonl(&output);
    let lines = by_line(&records);
    assert_eq!(lines[&1]["reason"], "accepted");
    assert_eq!(lines[&2]["reason"], "invalid_syntax");
    assert_eq!(
        lines[&2]["address"],
        "nobody@shop.test\rRCPT TO:<alice@shop.test>"
    );
    assert!(
        lines[&2]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("CR at byte 16")),
        "{}",
        lines[&2]
    );
    assert_eq!(lines[&3]["reason"], "invalid_syntax");
    assert!(lines[&2]["mx"].is_null() && lines[&3]["mx"].is_null());
}

#[test]
fn mail_servers_in_private_ranges_need_allow_private_mx() {
    let world = world();
    let mut command = Command::new(env!("CARGO_BIN_EXE_mxprobe"));
    command
        .arg("verify")
        .args(["--from", "probe@probe.test", "--quiet", "--format", "jsonl"])
        .args(["--dns-server", &world.dns.addr().to_string()])
        .args(["--smtp-port", &world.port.to_string()])
        .arg("alice@shop.test");
    let output = run(command, None);
    assert!(output.status.success(), "{output:?}");
    let records = jsonl(&output);
    assert_eq!(records[0]["verdict"], "undeliverable");
    assert_eq!(records[0]["reason"], "no_mail_server");
    let detail = records[0]["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("127.0.0.0/8 (loopback") && detail.contains("--allow-private-mx"),
        "{detail}"
    );
    assert!(records[0]["smtp"].is_null());
    // `mx` shows what `verify` would refuse.
    let mut command = Command::new(env!("CARGO_BIN_EXE_mxprobe"));
    command
        .args(["mx", "--format", "human"])
        .args(["--dns-server", &world.dns.addr().to_string()])
        .arg("shop.test");
    let output = run(command, None);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("127.0.0.61 (special-purpose: 127.0.0.0/8 (loopback, RFC 1122))"),
        "{text}"
    );
}

/// With --store, a second run of the same list probes nothing: every verdict it can reuse comes
/// from the store, in any format, the same as the first run gave.
#[test]
fn a_list_verified_twice_with_a_store_is_probed_once() {
    let world = world();
    let store = temp("verify-store.db");
    std::fs::remove_file(&store).ok();
    let list = "alice@shop.test\nnobody@shop.test\nnot an address\nuser3@d3.slow.test\n";
    let run_with_store = |format: &str| {
        let mut command = world.command();
        command
            .args(["--format", format, "--input", "-", "--store"])
            .arg(&store);
        let output = run(command, Some(list.as_bytes()));
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        output
    };
    let first = jsonl(&run_with_store("jsonl"));
    let rcpts = world.farm.stats().rcpt_commands;
    assert!(rcpts >= 3, "the first run probes");
    let second = jsonl(&run_with_store("jsonl"));
    assert_eq!(
        world.farm.stats().rcpt_commands,
        rcpts,
        "the second run probes nothing"
    );
    let (first, second) = (by_line(&first), by_line(&second));
    assert_eq!(first.len(), 4);
    for (line, record) in &first {
        let mut again = second[line].clone();
        let mut record = (*record).clone();
        record["elapsed_ms"] = Value::Null;
        again["elapsed_ms"] = Value::Null;
        assert_eq!(again, record);
    }
    let csv = run_with_store("csv");
    assert_eq!(world.farm.stats().rcpt_commands, rcpts);
    let csv = String::from_utf8_lossy(&csv.stdout);
    assert!(
        csv.lines()
            .any(|l| l.starts_with("1,alice@shop.test,deliverable,accepted")),
        "{csv}"
    );
    std::fs::remove_file(&store).ok();
}

/// Completions and the manual page come from the same definitions as --help.
#[test]
fn completions_and_manual_pages_name_every_command() {
    let run_text = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_mxprobe"))
            .args(args)
            .output()
            .expect("run");
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("utf-8")
    };
    let bash = run_text(&["completions", "bash"]);
    for word in ["_mxprobe()", "verify", "serve", "--max-jobs", "--from"] {
        assert!(
            bash.contains(word),
            "{word} missing from the bash completions"
        );
    }
    assert!(run_text(&["completions", "zsh"]).contains("#compdef mxprobe"));
    let page = run_text(&["man"]);
    assert!(
        page.contains(".TH mxprobe 1") && page.contains("serve"),
        "{page}"
    );
    let serve = run_text(&["man", "serve"]);
    assert!(
        serve.contains("mxprobe\\-serve") && serve.contains("\\-\\-daily\\-addresses"),
        "{serve}"
    );
    let missing = Command::new(env!("CARGO_BIN_EXE_mxprobe"))
        .args(["man", "nope"])
        .output()
        .expect("run");
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("there are: verify"));
}

/// `mx` names the provider whose servers receive a domain's mail, per host and for the domain
/// (its preferred host's), in both formats.
#[test]
fn mx_names_the_provider_of_each_host() {
    let world = world();
    let mx = |format: &str| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_mxprobe"));
        command
            .args(["mx", "--format", format])
            .args(["--dns-server", &world.dns.addr().to_string()])
            .args(["hosted.test", "shop.test"]);
        let output = run(command, None);
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout).expect("UTF-8")
    };
    let lines: Vec<serde_json::Value> = mx("jsonl")
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON"))
        .collect();
    assert_eq!(lines[0]["provider"], "google");
    assert_eq!(lines[0]["hosts"][0]["name"], "aspmx.l.google.com");
    assert_eq!(lines[0]["hosts"][0]["provider"], "google");
    assert_eq!(lines[0]["hosts"][1]["provider"], serde_json::Value::Null);
    assert_eq!(lines[1]["provider"], serde_json::Value::Null);
    let human = mx("human");
    let google = human
        .lines()
        .find(|line| line.contains("aspmx.l.google.com"))
        .expect("the Google host");
    assert!(
        google.ends_with(']') && google.contains("[Google"),
        "{human}"
    );
    let backup = human
        .lines()
        .find(|line| line.contains("mx.backup.test"))
        .expect("the backup host");
    assert!(!backup.contains('['), "{human}");
}

/// A verdict decided by a known provider's MX host names the provider, in JSON and as the CSV
/// column before `tls`; one decided elsewhere does not. (The "provider" here is the farm's ordinary
/// server at a Google host name: only the name is recognised.)
#[test]
fn a_record_names_the_provider_of_the_host_that_decided() {
    let world = world();
    for format in ["jsonl", "csv"] {
        let mut command = world.command();
        command.args(["--format", format, "alice@hosted.test", "alice@shop.test"]);
        let output = run(command, None);
        assert!(output.status.success(), "{output:?}");
        let text = String::from_utf8(output.stdout).expect("UTF-8");
        let provider_of = |address: &str| -> String {
            if format == "jsonl" {
                let record = text
                    .lines()
                    .map(|line| serde_json::from_str::<serde_json::Value>(line).expect("JSON"))
                    .find(|record| record["address"] == address)
                    .expect("a record");
                assert!(record["mx"].is_string(), "{record}");
                record["provider"].as_str().unwrap_or_default().to_owned()
            } else {
                let row = text
                    .lines()
                    .find(|row| row.contains(&format!(",{address},")))
                    .expect("a row");
                row.rsplit(',').nth(1).unwrap_or_default().to_owned()
            }
        };
        assert_eq!(
            provider_of("alice@hosted.test"),
            "google",
            "{format}: {text}"
        );
        assert_eq!(provider_of("alice@shop.test"), "", "{format}: {text}");
    }
}
