//! `mxprobe serve`, the real binary, over real HTTP (ureq) on loopback, against a simulated
//! world (DNS responder and SMTP farm on loopback addresses of this test's own).
//!
//! Real time and bulk end to end, the CSV a job gives against the CSV `verify` gives, owners
//! kept apart, every refusal a JSON error, limits, slow clients cut off (sending and reading),
//! `kill -9` mid-job
//! and SIGTERM: nothing acknowledged is lost and every line is answered exactly once.

#![allow(
    clippy::disallowed_methods,
    reason = "these tests run the binary and servers in real time"
)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

#[path = "support/serve.rs"]
mod support;

use support::*;

#[test]
fn real_time_and_a_bulk_job_give_the_verdicts_verify_gives() {
    let world = world(Duration::from_millis(1));
    let store = temp("e2e.db");
    let server = Server::start(&world, &store, &[]);

    // A list with what verify skips and what it refuses.
    let list = "# customers\nalice@shop.test\n\nbob@shop.test\r\nnobody@shop.test\nnot an address\n  carol@shop.test  \nuser1@d1.slow.test\nalice@shop.test\n";
    let created = post(&server, "/v1/jobs", TOKEN_A, "text/plain", list.as_bytes());
    assert_eq!(created.status, 202, "{}", created.body);
    let id = created.json()["id"].as_str().expect("id").to_owned();
    assert_eq!(created.json()["lines"], 7);
    assert_eq!(created.headers["location"], format!("/v1/jobs/{id}"));
    let job = wait_for_job(&server, &id, TOKEN_A);
    assert_eq!(job["state"], "finished", "{job}");
    assert_eq!(
        (job["lines"].as_u64(), job["answered"].as_u64()),
        (Some(7), Some(7))
    );
    assert_eq!(job["verdicts"]["deliverable"], 3, "{job}");
    assert_eq!(job["reasons"]["invalid_syntax"], 1, "{job}");

    let jsonl = get(
        &server,
        &format!("/v1/jobs/{id}/results?format=jsonl"),
        TOKEN_A,
    );
    assert_eq!(jsonl.status, 200);
    assert_eq!(jsonl.headers["content-type"], "application/x-ndjson");
    let lines: Vec<u64> = jsonl
        .body
        .lines()
        .map(|line| {
            serde_json::from_str::<Value>(line).expect("json")["line"]
                .as_u64()
                .expect("line")
        })
        .collect();
    assert_eq!(
        lines,
        [2, 4, 5, 6, 7, 8, 9],
        "input order, verify's line numbers"
    );
    let after = get(&server, &format!("/v1/jobs/{id}/results?after=6"), TOKEN_A);
    assert_eq!(after.body.lines().count(), 3);

    // The CSV download is what `verify --format csv` writes for the same file.
    let csv = get(
        &server,
        &format!("/v1/jobs/{id}/results?format=csv"),
        TOKEN_A,
    );
    assert_eq!(csv.status, 200);
    let input = temp("e2e-list.txt");
    std::fs::write(&input, list).expect("list");
    let output = world
        .verify()
        .args(["--format", "csv", "--input"])
        .arg(&input)
        .output()
        .expect("verify");
    let expected = String::from_utf8(output.stdout).expect("utf-8");
    let ours = without_elapsed(&csv.body);
    let mut theirs = without_elapsed(&expected);
    // verify writes in completion order, the service in input order.
    theirs[1..].sort_by_key(|row| row.split(',').next().and_then(|n| n.parse::<u64>().ok()));
    assert_eq!(ours, theirs);

    // Real time, after the job (whose domains' facts would otherwise differ from verify's
    // fresh run: catch-all state known or not).
    let alice = real_time(&server, "alice@shop.test");
    assert_eq!(alice.status, 200, "{}", alice.body);
    let record = alice.json();
    assert_eq!(
        (&record["verdict"], &record["reason"], &record["line"]),
        (&json!("deliverable"), &json!("accepted"), &json!(1))
    );
    assert_eq!(
        alice.headers["x-mxprobe-cache"], "hit",
        "the job's verdict, cached"
    );
    let nobody = real_time(&server, "nobody2@shop.test").json();
    assert_eq!(nobody["reason"], "mailbox_not_found");
    // The same mailbox again, written otherwise: the verdict, under its own text, and from the
    // cache once the writer has stored it (it does so after answering).
    let deadline = Instant::now() + HANG_GUARD;
    loop {
        let again = real_time(&server, "alice@SHOP.test");
        assert_eq!(again.json()["address"], "alice@SHOP.test");
        assert_eq!(again.json()["reason"], "accepted");
        if again.headers["x-mxprobe-cache"] == "hit" {
            break;
        }
        assert!(Instant::now() < deadline, "never cached");
        std::thread::sleep(Duration::from_millis(20));
    }

    // What the job taught about the domain: its catch-all answer (a random local part was
    // refused), kept for everyone.
    let domain = get(&server, "/v1/domains/SHOP.test", TOKEN_B);
    assert_eq!(domain.status, 200, "{}", domain.body);
    let facts = domain.json();
    assert_eq!(
        (
            &facts["domain"],
            &facts["catch_all"],
            &facts["greylisting_seen_ms"]
        ),
        (&json!("shop.test"), &json!(false), &Value::Null)
    );
    assert!(facts["catch_all_checked_ms"].as_u64().is_some(), "{facts}");
    assert_eq!(facts["provider"], Value::Null, "mx.shop.test is nobody's");
    let unknown = get(&server, "/v1/domains/never.test", TOKEN_B).json();
    assert_eq!(
        (&unknown["catch_all"], &unknown["catch_all_checked_ms"]),
        (&Value::Null, &Value::Null)
    );
    for bad in [
        "not%20a%20domain",
        "a%40b.test",
        "x.test%3E",
        "%5B127.0.0.1%5D",
    ] {
        assert_eq!(
            get(&server, &format!("/v1/domains/{bad}"), TOKEN_B).status,
            400,
            "{bad}"
        );
    }

    // Results of more than one page (1,000 lines a page) come whole and in order.
    let long: String = (0..2_500).map(|i| format!("user{i}@shop.test\n")).collect();
    let long = post(&server, "/v1/jobs", TOKEN_A, "text/plain", long.as_bytes());
    let long = long.json()["id"].as_str().expect("id").to_owned();
    assert_eq!(wait_for_job(&server, &long, TOKEN_A)["state"], "finished");
    let all = get(&server, &format!("/v1/jobs/{long}/results"), TOKEN_A).body;
    let lines: Vec<u64> = all
        .lines()
        .map(|line| {
            serde_json::from_str::<Value>(line).expect("json")["line"]
                .as_u64()
                .expect("line")
        })
        .collect();
    assert_eq!(lines, (1..=2_500).collect::<Vec<u64>>());
    let csv = get(
        &server,
        &format!("/v1/jobs/{long}/results?format=csv&after=1500"),
        TOKEN_A,
    );
    assert_eq!(
        csv.body.lines().count(),
        1 + 1_000,
        "the header and lines 1501 to 2500"
    );

    // A multipart upload well over axum's 2 MB default, as the page sends it.
    let boundary = "mxprobe-boundary-7d1e";
    let mut multipart = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"column\"\r\n\r\n1\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.csv\"\r\nContent-Type: text/csv\r\n\r\n"
    )
    .into_bytes();
    for i in 0..150_000 {
        multipart.extend_from_slice(format!("user{i}@shop.test,\"a name\"\n").as_bytes());
    }
    multipart.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    assert!(multipart.len() > 4 << 20);
    let big = post(
        &server,
        "/v1/jobs",
        TOKEN_B,
        &format!("multipart/form-data; boundary={boundary}"),
        &multipart,
    );
    assert_eq!(big.status, 202, "{}", big.body);
    assert_eq!(big.json()["lines"], 150_000);
    let big_id = big.json()["id"].as_str().expect("id").to_owned();
    let cancelled = answer(
        agent()
            .delete(server.url(&format!("/v1/jobs/{big_id}")))
            .header("Authorization", bearer(TOKEN_B))
            .call(),
    );
    assert_eq!(cancelled.status, 200, "{}", cancelled.body);
    assert_eq!(cancelled.json()["state"], "cancelled");

    let listed = get(&server, "/v1/jobs", TOKEN_A).json();
    assert_eq!(
        listed["jobs"].as_array().map(Vec::len),
        Some(2),
        "the list and the long one"
    );
    assert_eq!(listed["next"], Value::Null);
    // A full page has a next one: here empty (TOKEN_B has one job, the cancelled upload).
    let page = get(&server, "/v1/jobs?limit=1", TOKEN_B).json();
    assert_eq!(page["jobs"].as_array().map(Vec::len), Some(1));
    let next = page["next"].as_str().expect("a next page").to_owned();
    assert_eq!(
        get(&server, &next, TOKEN_B).json()["jobs"]
            .as_array()
            .map(Vec::len),
        Some(0)
    );
    get(&server, "/v1/jobs?limit=0", TOKEN_A).refused(400, "bad_request");
    let metrics = get(&server, "/metrics", TOKEN_A);
    assert_eq!(metrics.status, 200);
    for name in [
        "mxprobe_verdicts_total{",
        "mxprobe_smtp_sessions_total ",
        "mxprobe_dns_queries_total ",
        "mxprobe_real_time_seconds_bucket",
        "mxprobe_engine_queued ",
    ] {
        assert!(
            metrics.body.contains(name),
            "{name} missing:\n{}",
            metrics.body
        );
    }
    assert_eq!(get(&server, "/healthz", TOKEN_A).status, 200);
    std::fs::remove_file(&store).ok();
}

#[test]
fn jobs_are_their_owners_alone_and_tokens_are_required() {
    let world = world(Duration::from_millis(1));
    let store = temp("owners.db");
    let server = Server::start(&world, &store, &[]);
    let created = post(
        &server,
        "/v1/jobs",
        TOKEN_A,
        "application/json",
        br#"["alice@shop.test"]"#,
    );
    assert_eq!(created.status, 202, "{}", created.body);
    let id = created.json()["id"].as_str().expect("id").to_owned();
    wait_for_job(&server, &id, TOKEN_A);
    for path in [
        format!("/v1/jobs/{id}"),
        format!("/v1/jobs/{id}/results"),
        format!("/v1/jobs/{id}/results?format=csv"),
    ] {
        get(&server, &path, TOKEN_B).refused(404, "not_found");
    }
    let deleted = answer(
        agent()
            .delete(server.url(&format!("/v1/jobs/{id}")))
            .header("Authorization", bearer(TOKEN_B))
            .call(),
    );
    deleted.refused(404, "not_found");
    assert_eq!(get(&server, "/v1/jobs", TOKEN_B).json()["jobs"], json!([]));
    // A finished job cannot be cancelled; its owner is told so.
    let deleted = answer(
        agent()
            .delete(server.url(&format!("/v1/jobs/{id}")))
            .header("Authorization", bearer(TOKEN_A))
            .call(),
    );
    deleted.refused(409, "not_running");

    let anonymous = answer(agent().get(server.url("/v1/jobs")).call());
    anonymous.refused(401, "unauthorized");
    assert!(anonymous.headers["www-authenticate"].starts_with("Bearer"));
    get(&server, "/v1/jobs", "token-c-0123456789abcdef").refused(401, "unauthorized");
    get(&server, "/v1/jobs/not-a-job-id", TOKEN_A).refused(404, "not_found");
    get(&server, "/v1/nothing-here", TOKEN_A).refused(404, "not_found");
    answer(agent().put(server.url("/v1/jobs")).send(&b""[..])).refused(405, "method_not_allowed");
    drop(server);

    // --no-auth is for loopback alone.
    let output = Command::new(env!("CARGO_BIN_EXE_mxprobe"))
        .args(["serve", "--no-auth", "--listen", "0.0.0.0:0", "--store"])
        .arg(&store)
        .args(world.engine_args())
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--no-auth") && stderr.contains("loopback"),
        "{stderr}"
    );
    std::fs::remove_file(&store).ok();
}

#[test]
fn bad_input_is_a_json_error_and_stores_nothing() {
    let world = world(Duration::from_millis(1));
    let store = temp("bad.db");
    let server = Server::start(
        &world,
        &store,
        &["--max-upload-mb", "1", "--daily-addresses", "60000"],
    );
    let verify =
        |content_type: &str, body: &[u8]| post(&server, "/v1/verify", TOKEN_A, content_type, body);
    verify("application/json", b"{\"address\": ").refused(400, "bad_request");
    verify(
        "application/json",
        br#"{"address": "a@shop.test", "extra": 1}"#,
    )
    .refused(400, "bad_request");
    verify("application/json", br#"{"address": 7}"#).refused(400, "bad_request");
    verify(
        "application/json",
        br#"{"address": "a@shop.test", "timeout_ms": 0}"#,
    )
    .refused(400, "bad_request");
    verify("text/plain", b"alice@shop.test").refused(415, "unsupported_media_type");
    verify("application/json", &vec![b' '; 64 * 1024]).refused(413, "too_large");

    let jobs =
        |content_type: &str, body: &[u8]| post(&server, "/v1/jobs", TOKEN_A, content_type, body);
    jobs("application/json", br#"["a@shop.test", 7]"#).refused(400, "bad_request");
    jobs("application/json", br#"{"addresses": []}"#).refused(400, "bad_request");
    jobs("text/plain", b"a@shop.test\n\x00\x01\x02binary\n").refused(400, "bad_request");
    jobs("text/plain", b"a@shop.test\n\xff\xfe not utf-8\n").refused(400, "bad_request");
    jobs("application/octet-stream", b"a@shop.test\n").refused(415, "unsupported_media_type");
    post(
        &server,
        "/v1/jobs?column=nope",
        TOKEN_A,
        "text/csv",
        b"email,name\na@shop.test,A\n",
    )
    .refused(400, "bad_request");
    post(
        &server,
        "/v1/jobs?colum=email",
        TOKEN_A,
        "text/csv",
        b"email\na@shop.test\n",
    )
    .refused(400, "bad_request");
    // A 10 MB line: refused long before it is all read into memory.
    let mut long = b"a@shop.test\n".to_vec();
    long.extend(std::iter::repeat_n(b'x', 10 << 20));
    raw_post(&server, "/v1/jobs", "text/plain", &long).refused(400, "bad_request");
    // Over the upload limit (1 MB here), in short lines.
    let big: Vec<u8> = (0..100_000)
        .flat_map(|i| format!("user{i}@shop.test\n").into_bytes())
        .collect();
    raw_post(&server, "/v1/jobs", "text/plain", &big).refused(413, "too_large");
    // Over the day's addresses (60,000 here).
    let many: Vec<u8> = (0..60_001)
        .flat_map(|i| format!("{i}@x.t\n").into_bytes())
        .collect();
    let over = jobs("text/plain", &many);
    over.refused(429, "rate_limited");
    assert!(
        over.headers["retry-after"]
            .parse::<u64>()
            .is_ok_and(|s| s >= 1)
    );
    // Nothing of any of these was stored.
    assert_eq!(get(&server, "/v1/jobs", TOKEN_A).json()["jobs"], json!([]));
    drop(server);
    std::fs::remove_file(&store).ok();
}

#[test]
fn limits_answer_429_with_retry_after_and_slow_clients_are_cut_off() {
    let world = world(Duration::from_millis(1));
    let store = temp("limits.db");
    let server = Server::start(
        &world,
        &store,
        &[
            "--rate-limit",
            "5",
            "--max-jobs",
            "1",
            "--read-timeout",
            "1",
        ],
    );
    let statuses: Vec<Answer> = (0..12).map(|_| get(&server, "/v1/jobs", TOKEN_A)).collect();
    let limited = statuses
        .iter()
        .find(|a| a.status == 429)
        .expect("a 429 within 12 requests at 5/s");
    limited.refused(429, "rate_limited");
    assert!(
        limited.headers["retry-after"]
            .parse::<u64>()
            .is_ok_and(|s| s >= 1)
    );
    // The other token has a bucket of its own.
    assert_eq!(get(&server, "/v1/jobs", TOKEN_B).status, 200);

    // A slow client: headers never finished. The server closes the connection.
    let mut stream =
        TcpStream::connect(server.base.trim_start_matches("http://")).expect("connect");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .expect("write");
    stream.set_read_timeout(Some(HANG_GUARD)).expect("timeout");
    let started = Instant::now();
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    assert!(started.elapsed() < HANG_GUARD, "never cut off");
    // A slow body: the server answers 408 or closes.
    let mut stream =
        TcpStream::connect(server.base.trim_start_matches("http://")).expect("connect");
    stream
        .write_all(
            format!(
                "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN_B}\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\na@shop.test\n"
            )
            .as_bytes(),
        )
        .expect("write");
    stream.set_read_timeout(Some(HANG_GUARD)).expect("timeout");
    let mut reply = String::new();
    let _ = stream.read_to_string(&mut reply);
    assert!(
        reply.is_empty() || reply.starts_with("HTTP/1.1 408"),
        "{reply}"
    );
    assert_eq!(
        get(&server, "/v1/jobs", TOKEN_B).json()["jobs"],
        json!([]),
        "nothing stored"
    );
    std::fs::remove_file(&store).ok();
}

/// Every line of `addresses` answered exactly once in job `id`'s results, each accepted.
fn check_every_line_once(server: &Server, id: &str, count: usize) {
    let results = get(server, &format!("/v1/jobs/{id}/results"), TOKEN_A);
    let mut seen: HashMap<u64, usize> = HashMap::new();
    for line in results.body.lines() {
        let record: Value = serde_json::from_str(line).expect("json");
        assert_eq!(record["verdict"], "risky", "{record}");
        *seen
            .entry(record["line"].as_u64().expect("line"))
            .or_default() += 1;
    }
    for line in 1..=count as u64 {
        assert_eq!(seen.get(&line), Some(&1), "line {line}: {seen:?}");
    }
    assert_eq!(seen.len(), count);
}

#[test]
fn a_job_killed_mid_way_finishes_after_a_restart_with_every_line_once() {
    let world = world(Duration::from_millis(100));
    let store = temp("kill.db");
    std::fs::remove_file(&store).ok();
    let list: String = (0..400)
        .map(|i| format!("user{i}@d{}.slow.test\n", i % 40))
        .collect();
    let id = {
        let mut server = Server::start(&world, &store, &["--concurrency", "4", "--per-mx", "2"]);
        let created = post(&server, "/v1/jobs", TOKEN_A, "text/plain", list.as_bytes());
        assert_eq!(created.status, 202, "{}", created.body);
        let id = created.json()["id"].as_str().expect("id").to_owned();
        // Wait for some verdicts, not all.
        let deadline = Instant::now() + HANG_GUARD;
        loop {
            let job = get(&server, &format!("/v1/jobs/{id}"), TOKEN_A).json();
            let answered = job["answered"].as_u64().unwrap_or(0);
            assert!(
                answered < 400,
                "finished before the kill: make the world slower"
            );
            if answered >= 20 {
                break;
            }
            assert!(Instant::now() < deadline, "no progress: {job}");
            std::thread::sleep(Duration::from_millis(20));
        }
        server.signal("-KILL");
        server.wait();
        id
    };
    let server = Server::start(&world, &store, &[]);
    let job = wait_for_job(&server, &id, TOKEN_A);
    assert_eq!(job["state"], "finished", "{job}");
    assert_eq!(job["answered"], 400);
    check_every_line_once(&server, &id, 400);
    std::fs::remove_file(&store).ok();
}

#[test]
fn sigterm_answers_the_requests_in_progress_and_keeps_the_job() {
    let world = world(Duration::from_millis(300));
    let store = temp("term.db");
    std::fs::remove_file(&store).ok();
    let list: String = (0..200)
        .map(|i| format!("user{i}@d{}.slow.test\n", i % 40))
        .collect();
    let mut server = Server::start(&world, &store, &["--concurrency", "2", "--per-mx", "1"]);
    let created = post(&server, "/v1/jobs", TOKEN_A, "text/plain", list.as_bytes());
    let id = created.json()["id"].as_str().expect("id").to_owned();
    // A real-time request in progress when SIGTERM comes: it still gets its verdict.
    let base = server.base.clone();
    let in_progress = std::thread::spawn(move || {
        answer(
            agent()
                .post(format!("{base}/v1/verify"))
                .header("Authorization", bearer(TOKEN_A))
                .content_type("application/json")
                .send(
                    json!({"address": "late@d39.slow.test", "timeout_ms": 120_000})
                        .to_string()
                        .as_bytes(),
                ),
        )
    });
    std::thread::sleep(Duration::from_millis(100));
    server.signal("-TERM");
    let answered = in_progress.join().expect("request thread");
    assert_eq!(answered.status, 200, "{}", answered.body);
    assert_eq!(answered.json()["reason"], "accept_all", "{}", answered.body);
    let status = server.wait();
    assert!(status.success(), "{status:?}: {:?}", server.said());
    // Started again, the job goes on to the end.
    let server = Server::start(&world, &store, &[]);
    let job = wait_for_job(&server, &id, TOKEN_A);
    assert_eq!(job["state"], "finished", "{job}");
    check_every_line_once(&server, &id, 200);
    std::fs::remove_file(&store).ok();
}

/// Every method and path of docs/openapi.json is served (the unit test holds the router's
/// list against the document; this holds the running server to it).
#[test]
fn every_documented_route_is_served() {
    let world = world(Duration::from_millis(1));
    let store = temp("routes.db");
    let server = Server::start(&world, &store, &[]);
    let document = get(&server, "/openapi.json", TOKEN_A).json();
    let job = "0123456789abcdef0123456789abcdef";
    for (path, item) in document["paths"].as_object().expect("paths") {
        let url = server.url(&path.replace("{id}", job));
        for method in item
            .as_object()
            .expect("item")
            .keys()
            .filter(|m| *m != "parameters")
        {
            let request = ureq::http::Request::builder()
                .method(method.to_uppercase().as_str())
                .uri(&url)
                .header("Authorization", bearer(TOKEN_A))
                .header("Content-Type", "application/json")
                .body(Vec::new())
                .expect("request");
            let answered = answer(agent().run(request));
            assert_ne!(answered.status, 405, "{method} {path}: {}", answered.body);
            if !path.contains("{id}") {
                assert_ne!(answered.status, 404, "{method} {path}: {}", answered.body);
            } else {
                answered.refused(404, "not_found");
            }
        }
    }
    std::fs::remove_file(&store).ok();
}

/// A receiver of webhooks on loopback: answers each request with the next status of
/// `statuses` (then 200), and hands over each request's body.
fn webhook_receiver(statuses: Vec<u16>) -> (String, std::sync::mpsc::Receiver<Value>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let (bodies, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut statuses = statuses.into_iter();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(value) = lower.strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap_or(0);
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).expect("body");
            let status = statuses.next().unwrap_or(200);
            let _ = stream.write_all(
                format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            );
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            if bodies.send(body).is_err() {
                return;
            }
        }
    });
    (url, received)
}

#[test]
fn a_webhook_is_called_when_the_job_ends_and_again_while_it_fails() {
    let world = world(Duration::from_millis(1));
    let store = temp("webhook.db");
    let server = Server::start(&world, &store, &["--allow-private-webhooks"]);
    let (url, calls) = webhook_receiver(vec![503]);
    let created = post(
        &server,
        &format!("/v1/jobs?webhook={url}"),
        TOKEN_A,
        "text/plain",
        b"alice@shop.test\nnobody@shop.test\n",
    );
    assert_eq!(created.status, 202, "{}", created.body);
    let id = created.json()["id"].as_str().expect("id").to_owned();
    // The first call fails (503): it is made again, after 2 s.
    for attempt in 1..=2 {
        let call = calls.recv_timeout(HANG_GUARD).expect("a webhook call");
        assert_eq!(call["event"], "job.ended", "attempt {attempt}: {call}");
        assert_eq!(call["job"]["id"], id.as_str());
        assert_eq!(call["job"]["state"], "finished");
        assert_eq!(call["job"]["answered"], 2);
    }
    post(
        &server,
        "/v1/jobs?webhook=ftp://x/",
        TOKEN_A,
        "text/plain",
        b"a@shop.test\n",
    )
    .refused(400, "bad_request");
    drop(server);

    // Without --allow-private-webhooks, loopback is refused at the connection: no call.
    let server = Server::start(&world, &store, &[]);
    let (url, calls) = webhook_receiver(vec![]);
    let created = post(
        &server,
        &format!("/v1/jobs?webhook={url}"),
        TOKEN_A,
        "text/plain",
        b"alice@shop.test\n",
    );
    assert_eq!(created.status, 202, "{}", created.body);
    let deadline = Instant::now() + HANG_GUARD;
    loop {
        let said = server.said();
        if said
            .iter()
            .any(|line| line.contains("webhook") && line.contains("special-purpose"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "no refusal said");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(calls.try_recv().is_err(), "the receiver was not called");
    std::fs::remove_file(&store).ok();
}

/// A real-time request past its deadline is answered unknown/timeout; its probe goes on into
/// the cache, and the next request for the mailbox has the verdict.
#[test]
fn past_its_deadline_a_request_is_unknown_timeout_and_the_probe_goes_on_into_the_cache() {
    let world = world(Duration::from_millis(200));
    let store = temp("deadline.db");
    let server = Server::start(&world, &store, &[]);
    let body = json!({"address": "someone@d7.slow.test", "timeout_ms": 50}).to_string();
    let hurried = post(
        &server,
        "/v1/verify",
        TOKEN_A,
        "application/json",
        body.as_bytes(),
    );
    assert_eq!(hurried.status, 200, "{}", hurried.body);
    let record = hurried.json();
    assert_eq!(
        (&record["verdict"], &record["reason"]),
        (&json!("unknown"), &json!("timeout"))
    );
    assert!(
        record["detail"]
            .as_str()
            .is_some_and(|d| d.contains("goes on")),
        "{record}"
    );
    let deadline = Instant::now() + HANG_GUARD;
    loop {
        let again = real_time(&server, "someone@d7.slow.test");
        if again.headers["x-mxprobe-cache"] == "hit" {
            assert_eq!(again.json()["reason"], "accept_all", "{}", again.body);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the late verdict never reached the cache"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::fs::remove_file(&store).ok();
}

/// Jobs share the engine: a small job committed after a big one finishes long before it.
#[test]
fn a_big_job_does_not_starve_the_next_one() {
    let world = world(Duration::from_millis(50));
    let store = temp("fair.db");
    let server = Server::start(
        &world,
        &store,
        &["--concurrency", "2", "--per-mx", "2", "--max-jobs", "1"],
    );
    let big: String = (0..800)
        .map(|i| format!("user{i}@d{}.slow.test\n", i % 40))
        .collect();
    let big = post(&server, "/v1/jobs", TOKEN_A, "text/plain", big.as_bytes());
    let big = big.json()["id"].as_str().expect("id").to_owned();
    // One job at once per token (--max-jobs 1): the same token's second must wait.
    let second = post(
        &server,
        "/v1/jobs",
        TOKEN_A,
        "text/plain",
        b"alice@shop.test\n",
    );
    second.refused(429, "rate_limited");
    let message = second.json()["error"]["message"]
        .as_str()
        .map(str::to_owned);
    assert!(message.is_some_and(|m| m.contains("jobs running at once")));
    let small = post(
        &server,
        "/v1/jobs",
        TOKEN_B,
        "text/plain",
        b"alice@shop.test\nnobody@shop.test\n",
    );
    let small = small.json()["id"].as_str().expect("id").to_owned();
    let finished = wait_for_job(&server, &small, TOKEN_B);
    assert_eq!(finished["state"], "finished");
    let big = get(&server, &format!("/v1/jobs/{big}"), TOKEN_A).json();
    assert_eq!(big["state"], "running", "the big job ended first: {big}");
    assert!(big["answered"].as_u64().unwrap_or(0) < 600, "{big}");
    std::fs::remove_file(&store).ok();
}

/// At --max-connections, a further connection waits to be accepted until one closes.
#[test]
fn connections_over_the_cap_wait_their_turn() {
    let world = world(Duration::from_millis(1));
    let store = temp("cap.db");
    let server = Server::start(&world, &store, &["--max-connections", "2"]);
    let address = server.base.trim_start_matches("http://").to_owned();
    // Two connections that hold their place (headers begun, never finished).
    let mut held: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut stream = TcpStream::connect(&address).expect("connect");
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\n")
                .expect("write");
            stream
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    let (answered, third) = std::sync::mpsc::channel();
    let url = server.url("/healthz");
    std::thread::spawn(move || {
        let _ = answered.send(answer(agent().get(url).call()).status);
    });
    // A /healthz on an idle server answers in a millisecond or two; at the cap it does not.
    assert!(
        third.recv_timeout(Duration::from_millis(500)).is_err(),
        "a third connection was served beside two held ones"
    );
    held.pop();
    drop(held);
    assert_eq!(
        third
            .recv_timeout(HANG_GUARD)
            .expect("served once a place is free"),
        200
    );
    std::fs::remove_file(&store).ok();
}

/// A client that begins a download and stops reading holds its connection only until the write
/// deadline: then the place under --max-connections is free again.
#[test]
fn a_client_that_stops_reading_a_download_is_cut_off() {
    let world = world(Duration::from_millis(1));
    let store = temp("stalled.db");
    let server = Server::start(
        &world,
        &store,
        &["--max-connections", "1", "--write-timeout", "1"],
    );
    // Results of many megabytes, more than the sockets hold (invalid lines need no probe).
    let list: String = (0..40_000)
        .map(|i| format!("not an address {i}\n"))
        .collect();
    let id = post(&server, "/v1/jobs", TOKEN_A, "text/plain", list.as_bytes()).json()["id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_eq!(wait_for_job(&server, &id, TOKEN_A)["state"], "finished");

    let address: SocketAddr = server
        .base
        .trim_start_matches("http://")
        .parse()
        .expect("an address");
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("a socket");
    socket.set_recv_buffer_size(4096).expect("a small window");
    socket.connect(&address.into()).expect("connect");
    let mut stalled: TcpStream = socket.into();
    stalled
        .write_all(
            format!(
                "GET /v1/jobs/{id}/results HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN_A}\r\n\r\n"
            )
            .as_bytes(),
        )
        .expect("write");
    std::thread::sleep(Duration::from_millis(100));
    // The only place is the stalled download's until its write deadline.
    let started = Instant::now();
    assert_eq!(get(&server, "/healthz", TOKEN_A).status, 200);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(500),
        "served after {waited:?}, beside a download that should have stalled"
    );
    drop(stalled);
    std::fs::remove_file(&store).ok();
}
