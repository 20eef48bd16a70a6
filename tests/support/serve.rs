//! What the tests of `mxprobe serve` share: a simulated world, the service started on a
//! store, and a real HTTP client (ureq).

#![allow(
    dead_code,
    reason = "each test crate that includes this module uses part of it"
)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mxprobe::sim::dns::{DnsResponder, Zone};
use mxprobe::sim::smtp::{Personality, SmtpFarm};
use serde_json::{Value, json};

pub const TOKEN_A: &str = "token-a-0123456789abcdef";
pub const TOKEN_B: &str = "token-b-0123456789abcdef";

/// Longest a test waits for something that should happen at once: a hang guard, not a
/// measurement.
pub const HANG_GUARD: Duration = Duration::from_secs(90);

pub struct World {
    pub dns: DnsResponder,
    pub _farm: SmtpFarm,
    pub port: u16,
}

/// `shop.test` with two mailboxes; `slow.test`'s 40 domains answering every reply after
/// `slow_latency`, a catch-all.
pub fn world(slow_latency: Duration) -> World {
    let (fast, slow) = (Ipv4Addr::new(127, 0, 0, 71), Ipv4Addr::new(127, 0, 0, 72));
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
        zone.mx(&format!("d{i}.slow.test"), 10, "mx.slow.test");
    }
    zone.a("mx.slow.test", slow);
    let dns = DnsResponder::start(zone).expect("dns");
    World {
        dns,
        _farm: farm,
        port,
    }
}

impl World {
    /// The engine's flags, pointed at this world.
    pub fn engine_args(&self) -> Vec<String> {
        [
            "--from",
            "probe@probe.test",
            "--dns-server",
            &self.dns.addr().to_string(),
            "--smtp-port",
            &self.port.to_string(),
            "--allow-private-mx",
            "--domain-rate",
            "0",
            "--retries",
            "0",
        ]
        .iter()
        .map(ToString::to_string)
        .collect()
    }

    pub fn verify(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_mxprobe"));
        command
            .arg("verify")
            .arg("--quiet")
            .args(self.engine_args());
        command
    }
}

pub fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mxprobe-serve-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join(name)
}

/// A running `mxprobe serve`.
pub struct Server {
    pub child: Child,
    pub base: String,
    pub stderr: std::sync::mpsc::Receiver<String>,
}

impl Server {
    /// Starts the service on `store` with this world's engine and `extra` flags; waits until it
    /// listens.
    pub fn start(world: &World, store: &PathBuf, extra: &[&str]) -> Self {
        Self::start_with(&world.engine_args(), store, extra)
    }

    /// Starts the service on `store` with the engine flags `engine` and `extra` flags.
    pub fn start_with(engine: &[String], store: &PathBuf, extra: &[&str]) -> Self {
        let tokens = temp("tokens");
        std::fs::write(&tokens, format!("# two owners\n{TOKEN_A}\n{TOKEN_B}\n")).expect("tokens");
        let mut command = Command::new(env!("CARGO_BIN_EXE_mxprobe"));
        command
            .arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .arg("--store")
            .arg(store)
            .arg("--tokens")
            .arg(&tokens)
            .args(engine)
            .args(extra)
            .env_remove("MXPROBE_TOKENS")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("start mxprobe serve");
        let stderr = child.stderr.take().expect("stderr");
        let (lines, received) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                if lines.send(line).is_err() {
                    return;
                }
            }
        });
        let deadline = Instant::now() + HANG_GUARD;
        let base = loop {
            let line = received
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|_| {
                    child.kill().ok();
                    panic!("mxprobe serve did not start listening")
                });
            if let Some(address) = line.strip_prefix("mxprobe serve: listening on ") {
                break address.to_owned();
            }
        };
        Self {
            child,
            base,
            stderr: received,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Waits for the process to exit; fails if it does not within the hang guard.
    pub fn wait(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + HANG_GUARD;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "mxprobe serve did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Everything the service said on stderr so far.
    pub fn said(&self) -> Vec<String> {
        self.stderr.try_iter().collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(HANG_GUARD))
        .build()
        .into()
}

/// An HTTP answer: status, headers we look at, body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    /// A refusal: the status and the error's code, and a message that says something.
    pub fn refused(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{}", self.body);
        let error = &self.json()["error"];
        assert_eq!(error["code"], code, "{}", self.body);
        assert!(
            error["message"].as_str().is_some_and(|m| m.len() > 10),
            "{}",
            self.body
        );
    }
}

pub fn answer(response: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Answer {
    let mut response = response.expect("an HTTP answer");
    let headers = response
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                value.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_string()
        .expect("body");
    Answer {
        status,
        headers,
        body,
    }
}

pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

pub fn get(server: &Server, path: &str, token: &str) -> Answer {
    answer(
        agent()
            .get(server.url(path))
            .header("Authorization", bearer(token))
            .call(),
    )
}

pub fn post(server: &Server, path: &str, token: &str, content_type: &str, body: &[u8]) -> Answer {
    answer(
        agent()
            .post(server.url(path))
            .header("Authorization", bearer(token))
            .content_type(content_type)
            .send(body),
    )
}

/// A POST whose body is written on a thread of its own while the answer is read: a server
/// that refuses a body part way answers before the client has sent it all, and a client that
/// only reads after writing would see a broken pipe instead of the answer.
pub fn raw_post(server: &Server, path: &str, content_type: &str, body: &[u8]) -> Answer {
    let mut stream =
        TcpStream::connect(server.base.trim_start_matches("http://")).expect("connect");
    stream.set_read_timeout(Some(HANG_GUARD)).expect("timeout");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN_A}\r\nContent-Type: \
         {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut writer = stream.try_clone().expect("clone");
    let body = body.to_vec();
    let written = std::thread::spawn(move || {
        // The server may stop reading (and close) once it has refused: not an error here.
        let _ = writer
            .write_all(head.as_bytes())
            .and_then(|()| writer.write_all(&body));
    });
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    written.join().expect("writer thread");
    let reply = String::from_utf8_lossy(&reply).into_owned();
    let (head, body) = reply
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no answer: {reply:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status: {head}"));
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_owned(),
    }
}

pub fn real_time(server: &Server, address: &str) -> Answer {
    let body = json!({ "address": address }).to_string();
    post(
        server,
        "/v1/verify",
        TOKEN_A,
        "application/json",
        body.as_bytes(),
    )
}

/// Waits until job `id` is no longer running; returns its status.
pub fn wait_for_job(server: &Server, id: &str, token: &str) -> Value {
    let deadline = Instant::now() + HANG_GUARD;
    loop {
        let job = get(server, &format!("/v1/jobs/{id}"), token);
        assert_eq!(job.status, 200, "{}", job.body);
        let job = job.json();
        if job["state"] != "running" {
            return job;
        }
        assert!(Instant::now() < deadline, "job still running: {job}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Drops the elapsed_ms column (the one before `provider` and `tls`, the last two) of a CSV
/// text: it is the one thing two runs differ in.
pub fn without_elapsed(csv: &str) -> Vec<String> {
    // `provider` and `tls` are never quoted here.
    csv.lines()
        .map(|line| {
            let mut tail = line.rsplitn(4, ',');
            let (tls, provider, _elapsed) = (tail.next(), tail.next(), tail.next());
            match (tail.next(), provider, tls) {
                (Some(head), Some(provider), Some(tls)) => format!("{head},{provider},{tls}"),
                _ => line.to_owned(),
            }
        })
        .collect()
}
