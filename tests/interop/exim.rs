//! The whole engine against a real Exim, the other MTA most mail servers run, which offers
//! PIPELINING: NSD serves the test zone, Exim runs from a private configuration on
//! 127.0.0.88 with an ACL that knows two mailboxes. The verdicts must be right, and the same
//! list through `mxprobe serve`, as a job and in real time, must get the same ones. Exim offers
//! STARTTLS, so the first session holds QUIT back until its replies are in (a `530` would have
//! it start over on the same connection); once Exim has answered RCPT in plain text, the next
//! sessions put QUIT at the end of their pipelined group (RFC 2920 §3.1), and Exim must have
//! taken it so, from the library and the service alike: every connection "closed by QUIT", no
//! synchronization error, no message received.
//!
//! Exim is not installed (its package conflicts with Postfix's): `tests/interop/exim-unpack`
//! extracts it into `target/interop-exim`, which is where this test looks.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mxprobe::verdict::{Reason, Verdict};

use crate::support::{
    Nsd, RealTime, TempDir, engine_config, free_port, rows, summary, through_the_service, verify,
    wait_until_serving,
};

/// The loopback address Exim listens on.
const EXIM_IP: &str = "127.0.0.88";

fn zone() -> String {
    format!(
        "$ORIGIN exim.interop.test.\n\
         $TTL 300\n\
         @ IN SOA ns hostmaster 1 3600 600 86400 60\n\
         @ IN NS ns\n\
         ns IN A 127.0.0.53\n\
         mx IN A {EXIM_IP}\n\
         @ IN MX 10 mx\n"
    )
}

/// Where `exim-unpack` puts Exim, relative to the crate.
fn unpacked() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/interop-exim")
}

/// The unpacked Exim, or `None` after saying why the test is skipped (a failure under CI).
fn require_exim() -> Option<PathBuf> {
    let exim = unpacked().join("usr/sbin/exim4");
    if exim.is_file() {
        return Some(exim);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "Exim is not unpacked; under CI it must be (.ci/run runs tests/interop/exim-unpack)"
    );
    eprintln!("SKIPPED: Exim is not unpacked (run tests/interop/exim-unpack as root)");
    None
}

fn configuration(dir: &Path, port: u16) -> String {
    let dir = dir.display();
    format!(
        "keep_environment =\n\
         local_interfaces = <; {EXIM_IP}.{port}\n\
         exim_user = root\n\
         exim_group = root\n\
         never_users =\n\
         spool_directory = {dir}/spool\n\
         log_file_path = {dir}/%slog\n\
         primary_hostname = mx.exim.interop.test\n\
         domainlist local_domains = exim.interop.test\n\
         acl_smtp_rcpt = check_rcpt\n\
         host_lookup =\n\
         rfc1413_hosts =\n\
         log_selector = +smtp_connection +smtp_protocol_error +smtp_syntax_error +pipelining\n\
         \n\
         begin acl\n\
         check_rcpt:\n  \
           accept domains = +local_domains\n         \
                  local_parts = alice : bob\n  \
           deny   message = 5.1.1 <$local_part@$domain>: no such user\n\
         \n\
         begin routers\n\
         begin transports\n"
    )
}

/// Exim in the foreground from a private configuration, killed on drop.
struct Exim {
    child: Child,
    dir: TempDir,
    port: u16,
}

impl Exim {
    fn start(exim: &Path) -> Self {
        let dir = TempDir::new("exim");
        std::fs::create_dir_all(dir.path().join("spool")).expect("spool directory");
        let port = free_port();
        let config = dir.path().join("exim.conf");
        std::fs::write(&config, configuration(dir.path(), port)).expect("configuration");
        let mut child = Command::new(exim)
            .env(
                "LD_LIBRARY_PATH",
                unpacked().join("usr/lib/x86_64-linux-gnu"),
            )
            .arg("-C")
            .arg(&config)
            .arg("-bdf")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start exim");
        let addr = format!("{EXIM_IP}:{port}").parse().expect("address");
        if !wait_until_serving(addr, &mut child) {
            let _ = child.kill();
            let output = child.wait_with_output().expect("exim's output");
            panic!(
                "Exim did not start: {}\n{}",
                String::from_utf8_lossy(&output.stderr),
                std::fs::read_to_string(dir.path().join("mainlog")).unwrap_or_default()
            );
        }
        Self { child, dir, port }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mainlog")).unwrap_or_default()
    }
}

impl Drop for Exim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn verdicts_against_exim_with_quit_in_the_pipelined_group() {
    let Some(nsd_program) = crate::require_program("nsd", "nsd") else {
        return;
    };
    let Some(exim_program) = require_exim() else {
        return;
    };
    let nsd = Nsd::start(&nsd_program, "exim.interop.test.", &zone());
    let exim = Exim::start(&exim_program);

    // One address a session, one session at a time: the first session teaches the engine that
    // Exim takes MAIL FROM in plain text, the later ones use it.
    let config = engine_config(nsd.addr)
        .transcript(true)
        .smtp_port(exim.port)
        .per_mx(1)
        .rcpts_per_session(1);

    let addresses = [
        "alice@exim.interop.test",
        "nobody@exim.interop.test",
        "bob@exim.interop.test",
    ];
    let results = verify(config, &addresses);
    assert_eq!(
        summary(&results),
        [
            (
                "alice@exim.interop.test",
                Verdict::Deliverable,
                Reason::Accepted
            ),
            (
                "nobody@exim.interop.test",
                Verdict::Undeliverable,
                Reason::MailboxNotFound
            ),
            (
                "bob@exim.interop.test",
                Verdict::Deliverable,
                Reason::Accepted
            ),
        ],
        "{results:#?}\nExim's log:\n{}",
        exim.log()
    );
    assert_eq!(results[0].catch_all, Some(false), "the control was refused");

    // The first session (alice's): QUIT after the replies, STARTTLS being offered. A later one
    // (bob's): QUIT in the group, written before the first reply to it came back.
    for (result, in_group) in [(&results[0], false), (&results[2], true)] {
        let transcript = result.transcript.as_deref().unwrap_or_default();
        let quit = transcript.find("> QUIT").expect("QUIT was sent");
        let first_rcpt_reply = transcript
            .find("< 250 Accepted")
            .expect("an RCPT was accepted");
        assert_eq!(
            quit < first_rcpt_reply,
            in_group,
            "{}: QUIT in the pipelined group should be {in_group}:\n{transcript}",
            result.address
        );
        assert!(transcript.contains("< 221 "), "no 221:\n{transcript}");
    }

    // The same list through `mxprobe serve`, as a job and in real time: the same verdicts.
    // (Exim lower-cases the local part before its ACL, so Bob is bob.)
    let bob = RealTime {
        address: "Bob@exim.interop.test",
        verdict: Verdict::Deliverable,
        reason: Reason::Accepted,
    };
    let served = through_the_service(nsd.addr, exim.port, &addresses, &bob);
    assert_eq!(served, rows(&results), "Exim's log:\n{}", exim.log());

    std::thread::sleep(Duration::from_millis(300));
    let log = exim.log();
    let sessions = log
        .lines()
        .filter(|line| line.contains("SMTP connection from (probe.interop.test)"))
        .count();
    assert!(sessions > 0, "no probe session in Exim's log:\n{log}");
    for line in log
        .lines()
        .filter(|line| line.contains("(probe.interop.test)") && line.contains("closed by"))
    {
        assert!(line.ends_with("closed by QUIT"), "{line}\n{log}");
    }
    for bad in ["synchronization error", "protocol error", " <= "] {
        assert!(!log.contains(bad), "Exim logged {bad:?}:\n{log}");
    }
}
