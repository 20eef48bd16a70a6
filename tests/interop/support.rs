//! What the interop tests share: temporary directories, free ports, NSD with a zone, and a run
//! of the engine.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
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
