//! What the interop tests share: temporary directories, free ports, NSD with a zone, a run
//! of the engine, and the same list through `mxprobe serve`.

use std::io::BufRead;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mxprobe::{Config, ConfigBuilder, Engine, Reason, Verdict, VerifyResult};

/// The engine as the MTA tests run it: DNS from `dns` only, a probe identity of the test zone,
/// no pause between sessions to a domain.
pub fn engine_config(dns: SocketAddr) -> ConfigBuilder {
    Config::builder()
        .sender("probe@interop.test")
        .helo_name("probe.interop.test")
        .nameserver(dns)
        .dns_timeout(Duration::from_secs(2))
        .domain_rate(None)
        // The real servers under test listen on loopback.
        .allow_private_mx(true)
}

/// Each result as (address, verdict, reason), for one comparison with what is expected.
pub fn summary(results: &[VerifyResult]) -> Vec<(&str, Verdict, Reason)> {
    results
        .iter()
        .map(|r| (r.address.as_str(), r.verdict(), r.reason))
        .collect()
}

/// Runs the engine on `addresses` and returns their verdicts in submission order.
pub fn verify(config: ConfigBuilder, addresses: &[&str]) -> Vec<VerifyResult> {
    let config = config.build().expect("a valid configuration");
    let (engine, results) = Engine::start(config).expect("start engine");
    let handle = engine.handle();
    for (tag, address) in addresses.iter().enumerate() {
        handle.submit(*address, tag as u64).expect("submit");
    }
    handle.finish();
    let mut results: Vec<VerifyResult> = results.collect();
    engine.join().expect("engine ran");
    results.sort_by_key(|r| r.tag);
    results
}

/// One answer as the service writes it: (address, verdict, reason), as strings.
pub type Row = (String, String, String);

/// `results` as [`Row`]s, to compare the library's verdicts with the service's.
pub fn rows(results: &[VerifyResult]) -> Vec<Row> {
    summary(results)
        .into_iter()
        .map(|(address, verdict, reason)| {
            (
                address.to_owned(),
                verdict.as_str().to_owned(),
                reason.as_str().to_owned(),
            )
        })
        .collect()
}

/// What one address verified in real time must get from the service.
pub struct RealTime<'a> {
    /// The address; one not in the job's list, so that it is probed rather than answered from
    /// the verdict cache.
    pub address: &'a str,
    /// The verdict it must get.
    pub verdict: Verdict,
    /// The reason it must get.
    pub reason: Reason,
}

/// `addresses` as a job of `mxprobe serve` (the real binary, its store in a temporary
/// directory, asking DNS at `dns` and connecting to mail servers on `smtp_port`): one [`Row`]
/// per line, in the list's order. Then `real_time` is verified through `POST /v1/verify`, and
/// its answer must be the one expected. The service is stopped before this returns.
pub fn through_the_service(
    dns: SocketAddr,
    smtp_port: u16,
    addresses: &[&str],
    real_time: &RealTime<'_>,
) -> Vec<Row> {
    let service = Service::start(dns, smtp_port);
    let rows = service.job(addresses);
    let answer = service.verify(real_time.address);
    assert_eq!(
        (&answer["verdict"], &answer["reason"]),
        (
            &serde_json::json!(real_time.verdict.as_str()),
            &serde_json::json!(real_time.reason.as_str())
        ),
        "{answer}"
    );
    rows
}

/// `mxprobe serve` without authentication on a free loopback port, killed on drop.
struct Service {
    child: Child,
    /// Its address, as `http://IP:PORT`.
    base: String,
    agent: ureq::Agent,
    _dir: TempDir,
}

impl Service {
    /// Starts the service with the settings of [`engine_config`] (the probe identity, DNS at
    /// `dns` only with a 2 s timeout, loopback servers allowed, no pause between sessions to a
    /// domain), connecting to mail servers on `smtp_port`.
    fn start(dns: SocketAddr, smtp_port: u16) -> Self {
        let dir = TempDir::new("serve");
        let mut child = Command::new(env!("CARGO_BIN_EXE_mxprobe"))
            .args(["serve", "--no-auth", "--listen", "127.0.0.1:0", "--store"])
            .arg(dir.path().join("store.db"))
            .args([
                "--from",
                "probe@interop.test",
                "--helo",
                "probe.interop.test",
            ])
            .args(["--dns-server", &dns.to_string(), "--dns-timeout", "2"])
            .args(["--smtp-port", &smtp_port.to_string()])
            .args(["--allow-private-mx", "--domain-rate", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start mxprobe serve");
        let base = match listening_on(&mut child, Duration::from_secs(60)) {
            Ok(base) => base,
            Err(said) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("mxprobe serve did not say where it listens; it said:\n{said}");
            }
        };
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into();
        Self {
            child,
            base,
            agent,
            _dir: dir,
        }
    }

    /// Submits `addresses` as a job (one per line), waits (at most 120 s) until it is finished
    /// and returns its results.
    fn job(&self, addresses: &[&str]) -> Vec<Row> {
        let created = json(
            self.agent
                .post(format!("{}/v1/jobs", self.base))
                .content_type("text/plain")
                .send(addresses.join("\n").as_bytes()),
        );
        let Some(id) = created["id"].as_str().map(str::to_owned) else {
            panic!("no job was made: {created}");
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let job = json(self.agent.get(format!("{}/v1/jobs/{id}", self.base)).call());
            match job["state"].as_str() {
                Some("finished") => break,
                Some("running") => {}
                _ => panic!("the job is neither running nor finished: {job}"),
            }
            assert!(Instant::now() < deadline, "the job did not finish: {job}");
            std::thread::sleep(Duration::from_millis(50));
        }
        let results = text(
            self.agent
                .get(format!("{}/v1/jobs/{id}/results", self.base))
                .call(),
        );
        results.lines().map(row).collect()
    }

    /// The service's answer for `address`, verified in real time.
    fn verify(&self, address: &str) -> serde_json::Value {
        json(
            self.agent
                .post(format!("{}/v1/verify", self.base))
                .content_type("application/json")
                .send(
                    serde_json::json!({ "address": address })
                        .to_string()
                        .as_bytes(),
                ),
        )
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address `mxprobe serve` says it listens on (`http://IP:PORT`), read from its stderr
/// within `patience`; or, if it exits or stays silent that long, what it said until then.
/// Its stderr goes on being read, so that the service never blocks on a full pipe.
fn listening_on(child: &mut Child, patience: Duration) -> Result<String, String> {
    let stderr = child.stderr.take().expect("stderr is piped");
    let (lines, said) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = lines.send(line);
        }
    });
    let deadline = Instant::now() + patience;
    let mut before = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = said.recv_timeout(left) else {
            return Err(before.join("\n"));
        };
        if let Some(base) = line.strip_prefix("mxprobe serve: listening on ") {
            return Ok(base.to_owned());
        }
        before.push(line);
    }
}

/// The body of a response of the service, whatever its status.
fn text(response: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> String {
    response
        .expect("an answer")
        .body_mut()
        .read_to_string()
        .expect("a body")
}

/// The body of a response of the service, as JSON.
fn json(response: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> serde_json::Value {
    let body = text(response);
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// One line of a job's results (a JSON record) as a [`Row`]; a field it lacks is empty.
fn row(line: &str) -> Row {
    let record: serde_json::Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    let field = |name: &str| record[name].as_str().unwrap_or_default().to_owned();
    (field("address"), field("verdict"), field("reason"))
}

/// NSD running on a free loopback port, stopped on drop.
pub struct Nsd {
    child: Child,
    /// Where it answers, UDP and TCP.
    pub addr: SocketAddr,
    _dir: TempDir,
}

impl Nsd {
    /// Starts NSD serving `zone_text` as the zone `origin` (with its trailing dot).
    pub fn start(program: &Path, origin: &str, zone_text: &str) -> Self {
        let mut last_error = String::new();
        for _ in 0..5 {
            let dir = TempDir::new("nsd");
            let port = free_port();
            let path = dir.path();
            std::fs::write(path.join("zone"), zone_text).expect("write zone");
            let config = format!(
                "server:\n  ip-address: 127.0.0.1@{port}\n  port: {port}\n  username: \"\"\n  \
                 chroot: \"\"\n  zonesdir: \"{dir}\"\n  pidfile: \"{dir}/nsd.pid\"\n  \
                 database: \"\"\n  xfrdfile: \"{dir}/xfrd.state\"\n  zonelistfile: \"{dir}/zone.list\"\n  \
                 logfile: \"{dir}/nsd.log\"\n  server-count: 1\n  verbosity: 1\n  do-ip6: no\n\
                 remote-control:\n  control-enable: no\n\
                 zone:\n  name: \"{origin}\"\n  zonefile: \"zone\"\n",
                dir = path.display()
            );
            std::fs::write(path.join("nsd.conf"), config).expect("write config");
            let mut child = Command::new(program)
                .arg("-d")
                .arg("-c")
                .arg(path.join("nsd.conf"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start nsd");
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            if wait_until_serving(addr, &mut child) {
                return Self {
                    child,
                    addr,
                    _dir: dir,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
            last_error = std::fs::read_to_string(path.join("nsd.log")).unwrap_or_default();
        }
        panic!("nsd did not start; its log:\n{last_error}");
    }
}

impl Drop for Nsd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port free for both UDP and TCP on 127.0.0.1 a moment ago.
pub fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let port = udp.local_addr().expect("addr").port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Waits (at most 10 s) until the server accepts TCP connections, or the process exits.
pub fn wait_until_serving(addr: SocketAddr, child: &mut Child) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path =
            std::env::temp_dir().join(format!("mxprobe-{prefix}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).expect("create temp dir");
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
