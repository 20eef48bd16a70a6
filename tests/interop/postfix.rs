//! The whole engine against a real Postfix: NSD serves the test zone, Postfix runs from a
//! private configuration on 127.0.0.77:25 with virtual mailboxes (unknown users rejected at
//! RCPT), a catch-all domain and a domain whose first MX is dead. The verdicts must be right,
//! and Postfix's own log must show that no DATA or BDAT ever came.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mxprobe::verdict::{Reason, Verdict};

use crate::support::{Nsd, TempDir, engine_config, summary, verify};

/// The loopback address Postfix listens on, and one where nothing listens (a dead MX).
const POSTFIX_IP: &str = "127.0.0.77";
const DEAD_IP: &str = "127.0.0.78";

fn zone() -> String {
    format!(
        "$ORIGIN interop.test.\n\
         $TTL 300\n\
         @ IN SOA ns.interop.test. hostmaster.interop.test. 1 3600 600 86400 60\n\
         @ IN NS ns\n\
         ns IN A 127.0.0.53\n\
         mx IN A {POSTFIX_IP}\n\
         dead IN A {DEAD_IP}\n\
         mail IN MX 10 mx\n\
         catchall IN MX 10 mx\n\
         failover IN MX 10 dead\n\
         failover IN MX 20 mx\n"
    )
}

/// Postfix from a private configuration directory, stopped on drop.
struct Postfix {
    dir: TempDir,
}

impl Postfix {
    fn start(postfix: &Path) -> Self {
        let dir = TempDir::new("postfix");
        let root = dir.path();
        for sub in ["etc", "spool", "data", "mail"] {
            std::fs::create_dir_all(root.join(sub)).expect("create directory");
        }
        let etc = root.join("etc");
        std::fs::write(etc.join("main.cf"), main_cf(root)).expect("main.cf");
        std::fs::write(etc.join("master.cf"), MASTER_CF.replace("{ip}", POSTFIX_IP))
            .expect("master.cf");
        std::fs::write(
            etc.join("vmailbox"),
            "alice@mail.interop.test alice/\nbob@mail.interop.test bob/\n\
             alice@failover.interop.test alice-failover/\n",
        )
        .expect("vmailbox");
        std::fs::write(
            etc.join("valias"),
            "@catchall.interop.test alice@mail.interop.test\n",
        )
        .expect("valias");
        // Postfix's master runs as root and its daemons as `postfix`: the data directory must
        // be theirs, the mail directory the virtual delivery user's.
        run_ok(
            Command::new("chown")
                .arg("postfix:postfix")
                .arg(root.join("data")),
        );
        run_ok(
            Command::new("chown")
                .arg("65534:65534")
                .arg(root.join("mail")),
        );
        run_ok(Command::new(postfix).arg("-c").arg(&etc).arg("start"));
        let addr = format!("{POSTFIX_IP}:25").parse().expect("address");
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "Postfix did not start; its log:\n{}",
                std::fs::read_to_string(root.join("maillog")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Self { dir }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("maillog")).unwrap_or_default()
    }

    fn config_dir(&self) -> PathBuf {
        self.dir.path().join("etc")
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = Command::new("postfix")
            .arg("-c")
            .arg(self.config_dir())
            .arg("stop")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn run_ok(command: &mut Command) {
    let output = command.output().expect("run command");
    assert!(output.status.success(), "{command:?} failed: {output:?}");
}

fn main_cf(root: &Path) -> String {
    let root = root.display();
    format!(
        "compatibility_level = 3.6\n\
         queue_directory = {root}/spool\n\
         data_directory = {root}/data\n\
         mail_owner = postfix\n\
         setgid_group = postdrop\n\
         myhostname = mx.interop.test\n\
         mydomain = interop.test\n\
         mydestination =\n\
         # master.cf names the one address to listen on; Postfix's own check of\n\
         # inet_interfaces only knows interface addresses, and 127.0.0.77 is not one.\n\
         inet_interfaces = loopback-only\n\
         inet_protocols = ipv4\n\
         # mxprobe must look like a stranger, not a trusted local client.\n\
         mynetworks = 192.0.2.0/24\n\
         virtual_mailbox_domains = mail.interop.test, failover.interop.test\n\
         virtual_mailbox_maps = texthash:{root}/etc/vmailbox\n\
         virtual_mailbox_base = {root}/mail\n\
         virtual_uid_maps = static:65534\n\
         virtual_gid_maps = static:65534\n\
         virtual_alias_domains = catchall.interop.test\n\
         virtual_alias_maps = texthash:{root}/etc/valias\n\
         # Test settings: no flow-control delay, no reverse lookups of the client.\n\
         in_flow_delay = 0\n\
         smtpd_peername_lookup = no\n\
         smtpd_banner = $myhostname ESMTP Postfix (mxprobe interop)\n\
         maillog_file = {root}/maillog\n\
         maillog_file_prefixes = {root}\n\
         alias_maps =\n\
         alias_database =\n\
         biff = no\n"
    )
}

/// Every service chrooted off (the private queue directory has no chroot environment).
const MASTER_CF: &str = "\
{ip}:smtp inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
";

#[test]
fn verdicts_against_postfix() {
    let Some(nsd_program) = crate::require_program("nsd", "nsd") else {
        return;
    };
    let Some(postfix_program) = crate::require_program("postfix", "postfix") else {
        return;
    };
    if !Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"))
    {
        assert!(
            std::env::var_os("CI").is_none(),
            "the Postfix interop test needs root (Postfix's master does); CI runs as root"
        );
        eprintln!("SKIPPED: the Postfix interop test needs root");
        return;
    }
    let nsd = Nsd::start(&nsd_program, "interop.test.", &zone());
    let postfix = Postfix::start(&postfix_program);

    let config = engine_config(nsd.addr);
    let addresses = [
        "alice@mail.interop.test",
        "Bob@mail.interop.test",
        "nobody@mail.interop.test",
        "josé@mail.interop.test",
        "whoever@catchall.interop.test",
        "alice@failover.interop.test",
        "alice@gone.interop.test",
    ];
    let results = verify(config, &addresses);
    assert_eq!(
        summary(&results),
        [
            (
                "alice@mail.interop.test",
                Verdict::Deliverable,
                Reason::Accepted
            ),
            (
                "Bob@mail.interop.test",
                Verdict::Deliverable,
                Reason::Accepted
            ),
            (
                "nobody@mail.interop.test",
                Verdict::Undeliverable,
                Reason::MailboxNotFound
            ),
            (
                "josé@mail.interop.test",
                Verdict::Undeliverable,
                Reason::MailboxNotFound
            ),
            (
                "whoever@catchall.interop.test",
                Verdict::Risky,
                Reason::AcceptAll
            ),
            (
                "alice@failover.interop.test",
                Verdict::Deliverable,
                Reason::Accepted
            ),
            (
                "alice@gone.interop.test",
                Verdict::Undeliverable,
                Reason::DomainNotFound
            ),
        ],
        "{results:#?}\nPostfix log:\n{}",
        postfix.log()
    );
    let nobody = &results[2];
    assert_eq!(
        nobody.smtp.as_ref().map(|r| r.as_reply().code().get()),
        Some(550)
    );
    assert_eq!(nobody.mx.as_deref(), Some("mx.interop.test"));
    assert_eq!(results[0].catch_all, Some(false));
    assert_eq!(
        results[5].mx.as_deref(),
        Some("mx.interop.test"),
        "failed over from the dead MX"
    );

    // The same list through `mxprobe serve`, as a job and in real time: the same verdicts.
    let served = through_the_service(nsd.addr, &addresses);
    assert_eq!(
        served,
        summary(&results)
            .iter()
            .map(|(address, verdict, reason)| {
                (
                    address.to_string(),
                    verdict.as_str().to_owned(),
                    reason.as_str().to_owned(),
                )
            })
            .collect::<Vec<_>>(),
        "Postfix log:\n{}",
        postfix.log()
    );

    // Postfix logs one line per session with a count per command: no data=, no bdat=.
    std::thread::sleep(Duration::from_millis(300));
    let log = postfix.log();
    // (`commands=0/0` is the test's own check that Postfix was listening.)
    let sessions: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("postfix/smtpd") && line.contains(" disconnect from "))
        .filter(|line| !line.ends_with("commands=0/0"))
        .collect();
    assert!(!sessions.is_empty(), "no session in Postfix's log:\n{log}");
    for line in &sessions {
        assert!(
            !line.contains(" data=") && !line.contains(" bdat="),
            "DATA was sent: {line}"
        );
        assert!(
            line.contains(" quit=1"),
            "a session ended without QUIT: {line}"
        );
    }
    assert!(
        !log.contains("postfix/cleanup"),
        "a message entered Postfix's queue:\n{log}"
    );
}

/// `addresses` as a job of `mxprobe serve` (the real binary, its store in a temporary
/// directory), then one of them again in real time: (address, verdict, reason) per line.
fn through_the_service(
    dns: std::net::SocketAddr,
    addresses: &[&str],
) -> Vec<(String, String, String)> {
    use std::io::BufRead;
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
        .args(["--allow-private-mx", "--domain-rate", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mxprobe serve");
    let stderr = child.stderr.take().expect("stderr");
    let (lines, said) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = lines.send(line);
        }
    });
    let base = loop {
        let line = said
            .recv_timeout(Duration::from_secs(60))
            .expect("mxprobe serve listens");
        if let Some(address) = line.strip_prefix("mxprobe serve: listening on ") {
            break address.to_owned();
        }
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into();
    let text = |response: Result<ureq::http::Response<ureq::Body>, ureq::Error>| {
        response
            .expect("an answer")
            .body_mut()
            .read_to_string()
            .expect("a body")
    };
    let list = addresses.join("\n");
    let created: serde_json::Value = serde_json::from_str(&text(
        agent
            .post(format!("{base}/v1/jobs"))
            .content_type("text/plain")
            .send(list.as_bytes()),
    ))
    .expect("json");
    let id = created["id"].as_str().expect("a job").to_owned();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let job: serde_json::Value =
            serde_json::from_str(&text(agent.get(format!("{base}/v1/jobs/{id}")).call()))
                .expect("json");
        if job["state"] == "finished" {
            break;
        }
        assert!(Instant::now() < deadline, "the job did not finish: {job}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let results = text(agent.get(format!("{base}/v1/jobs/{id}/results")).call());
    let rows: Vec<(String, String, String)> = results
        .lines()
        .map(|line| {
            let record: serde_json::Value = serde_json::from_str(line).expect("json");
            let field = |name: &str| record[name].as_str().unwrap_or_default().to_owned();
            (field("address"), field("verdict"), field("reason"))
        })
        .collect();
    let alice: serde_json::Value = serde_json::from_str(&text(
        agent
            .post(format!("{base}/v1/verify"))
            .content_type("application/json")
            .send(br#"{"address": "bob@mail.interop.test"}"#.as_slice()),
    ))
    .expect("json");
    assert_eq!(
        (&alice["verdict"], &alice["reason"]),
        (
            &serde_json::json!("deliverable"),
            &serde_json::json!("accepted")
        ),
        "{alice}"
    );
    let _ = child.kill();
    let _ = child.wait();
    rows
}
