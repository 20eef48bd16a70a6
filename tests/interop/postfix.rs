//! The whole engine against a real Postfix: NSD serves the test zone, Postfix runs from a
//! private configuration on 127.0.0.77:25 and [::1]:25 with virtual mailboxes (unknown users
//! rejected at RCPT), a catch-all domain, a domain whose first MX is dead and one whose only MX
//! is reached over IPv6. The verdicts must be right;
//! the same list through `mxprobe serve`, as a job and in real time, must get the same ones;
//! and Postfix's own log must show that no DATA or BDAT ever came.
//!
//! STARTTLS: Postfix has a self-signed certificate and offers TLS everywhere; a second listener,
//! 127.0.0.79:25 (the MX of `tls.interop.test`), requires it before MAIL FROM
//! (`smtpd_tls_security_level = encrypt`). The default asks there over TLS on the same
//! connection, `always` uses TLS at the first listener too, `never` gets the 530, and
//! `--tls-verify` takes the certificate only when told to trust it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mxprobe::verdict::{Reason, Verdict};

use crate::support::{
    Nsd, RealTime, TempDir, engine_config, rows, summary, through_the_service, verify,
};

/// The loopback address Postfix listens on, and one where nothing listens (a dead MX).
const POSTFIX_IP: &str = "127.0.0.77";
const DEAD_IP: &str = "127.0.0.78";
/// Where Postfix requires TLS before MAIL FROM.
const TLS_IP: &str = "127.0.0.79";

fn zone() -> String {
    format!(
        "$ORIGIN interop.test.\n\
         $TTL 300\n\
         @ IN SOA ns.interop.test. hostmaster.interop.test. 1 3600 600 86400 60\n\
         @ IN NS ns\n\
         ns IN A 127.0.0.53\n\
         mx IN A {POSTFIX_IP}\n\
         mx6 IN AAAA ::1\n\
         mxtls IN A {TLS_IP}\n\
         dead IN A {DEAD_IP}\n\
         mail IN MX 10 mx\n\
         catchall IN MX 10 mx\n\
         failover IN MX 10 dead\n\
         failover IN MX 20 mx\n\
         v6 IN MX 10 mx6\n\
         tls IN MX 10 mxtls\n"
    )
}

/// Postfix from a private configuration directory, stopped on drop.
struct Postfix {
    dir: TempDir,
    /// Its certificate, PEM: what `--tls-ca` trusts.
    cert_pem: String,
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
        std::fs::write(
            etc.join("master.cf"),
            MASTER_CF
                .replace("{ip}", POSTFIX_IP)
                .replace("{tls_ip}", TLS_IP),
        )
        .expect("master.cf");
        let cert = mxprobe::sim::tls::SelfSigned::new(&["mx.interop.test", "mxtls.interop.test"]);
        std::fs::write(etc.join("cert.pem"), cert.cert_pem()).expect("cert.pem");
        std::fs::write(etc.join("key.pem"), cert.key_pem()).expect("key.pem");
        std::fs::write(
            etc.join("vmailbox"),
            "alice@mail.interop.test alice/\nbob@mail.interop.test bob/\n\
             alice@failover.interop.test alice-failover/\n\
             alice@v6.interop.test alice-v6/\n\
             alice@tls.interop.test alice-tls/\n",
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
        Self {
            dir,
            cert_pem: cert.cert_pem().to_owned(),
        }
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
         inet_protocols = all\n\
         # mxprobe must look like a stranger, not a trusted local client.\n\
         mynetworks = 192.0.2.0/24\n\
         virtual_mailbox_domains = mail.interop.test, failover.interop.test, v6.interop.test,\n\
         \x20 tls.interop.test\n\
         virtual_mailbox_maps = texthash:{root}/etc/vmailbox\n\
         virtual_mailbox_base = {root}/mail\n\
         virtual_uid_maps = static:65534\n\
         virtual_gid_maps = static:65534\n\
         virtual_alias_domains = catchall.interop.test\n\
         virtual_alias_maps = texthash:{root}/etc/valias\n\
         # Test settings: no flow-control delay, no reverse lookups of the client.\n\
         in_flow_delay = 0\n\
         smtpd_peername_lookup = no\n\
         # STARTTLS offered everywhere; master.cf makes it required on one listener.\n\
         smtpd_tls_security_level = may\n\
         smtpd_tls_cert_file = {root}/etc/cert.pem\n\
         smtpd_tls_key_file = {root}/etc/key.pem\n\
         smtpd_tls_loglevel = 1\n\
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
[::1]:smtp inet n - n - - smtpd
{tls_ip}:smtp inet n - n - - smtpd -o smtpd_tls_security_level=encrypt
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
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
        "alice@v6.interop.test",
        "nobody@v6.interop.test",
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
            (
                "alice@v6.interop.test",
                Verdict::Deliverable,
                Reason::Accepted
            ),
            (
                "nobody@v6.interop.test",
                Verdict::Undeliverable,
                Reason::MailboxNotFound
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
    for v6 in &results[7..9] {
        assert_eq!(v6.ip, Some("::1".parse().expect("ip")), "over IPv6: {v6:?}");
    }

    // The same list through `mxprobe serve`, as a job and in real time: the same verdicts.
    let bob = RealTime {
        address: "bob@mail.interop.test",
        verdict: Verdict::Deliverable,
        reason: Reason::Accepted,
    };
    // Postfix listens on port 25, where mxprobe connects by default.
    let served = through_the_service(nsd.addr, 25, &addresses, &bob);
    assert_eq!(served, rows(&results), "Postfix log:\n{}", postfix.log());

    starttls_against_postfix(&nsd, &postfix);

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
        // After a failed TLS handshake (the certificate `--tls-verify` refused) nothing may
        // be said in plain text, QUIT included.
        assert!(
            line.contains(" quit=1") || line.contains(" starttls=0/1"),
            "a session ended without QUIT: {line}"
        );
    }
    assert!(
        !log.contains("postfix/cleanup"),
        "a message entered Postfix's queue:\n{log}"
    );
}

/// STARTTLS against the same Postfix: required on one listener, offered on the other.
fn starttls_against_postfix(nsd: &Nsd, postfix: &Postfix) {
    let tls_of = |results: &[mxprobe::VerifyResult]| -> Vec<Option<&str>> {
        results
            .iter()
            .map(|r| r.tls.map(mxprobe::tls::TlsVersion::as_str))
            .collect()
    };
    let addresses = [
        "alice@tls.interop.test",
        "nobody@tls.interop.test",
        "alice@mail.interop.test",
    ];
    // The default: TLS where Postfix demands it (530 at MAIL FROM), plain text elsewhere.
    let results = verify(engine_config(nsd.addr), &addresses);
    assert_eq!(
        summary(&results),
        [
            (
                "alice@tls.interop.test",
                Verdict::Deliverable,
                Reason::Accepted
            ),
            (
                "nobody@tls.interop.test",
                Verdict::Undeliverable,
                Reason::MailboxNotFound
            ),
            (
                "alice@mail.interop.test",
                Verdict::Deliverable,
                Reason::Accepted
            ),
        ],
        "{results:#?}\nPostfix log:\n{}",
        postfix.log()
    );
    assert_eq!(
        tls_of(&results),
        [Some("TLSv1.3"), Some("TLSv1.3"), None],
        "{results:#?}"
    );
    assert_eq!(results[1].mx.as_deref(), Some("mxtls.interop.test"));

    // `always`: TLS at the listener that only offers it too.
    let always = verify(
        engine_config(nsd.addr).starttls(mxprobe::tls::StartTls::Always),
        &addresses,
    );
    assert_eq!(summary(&always), summary(&results), "{always:#?}");
    assert_eq!(tls_of(&always), [Some("TLSv1.3"); 3], "{always:#?}");

    // `never`: Postfix's 530 is the answer, and it is no verdict on the mailbox.
    let never = verify(
        engine_config(nsd.addr).starttls(mxprobe::tls::StartTls::Never),
        &addresses[..1],
    );
    assert_eq!(never[0].verdict(), Verdict::Unknown, "{never:#?}");
    assert_eq!(
        never[0].smtp.as_ref().map(|r| r.as_reply().code().get()),
        Some(530)
    );

    // `--tls-verify`: Postfix's self-signed certificate, trusted, passes; not trusted, the
    // handshake fails and the address is `unknown/connection_failed`, `tls_failed` in the detail.
    let roots = mxprobe::tls::TlsClient::roots_from_pem(postfix.cert_pem.as_bytes()).expect("PEM");
    let trusted = verify(
        engine_config(nsd.addr).tls(mxprobe::tls::TlsClient::verified(roots).expect("roots")),
        &addresses[..1],
    );
    assert_eq!(trusted[0].reason, Reason::Accepted, "{trusted:#?}");
    assert_eq!(tls_of(&trusted), [Some("TLSv1.3")]);
    let strict =
        mxprobe::tls::TlsClient::verified(mxprobe::tls::TlsClient::mozilla_roots()).expect("roots");
    let refused = verify(engine_config(nsd.addr).tls(strict), &addresses[..1]);
    assert_eq!(refused[0].reason, Reason::ConnectionFailed, "{refused:#?}");
    let detail = refused[0].detail.as_deref().unwrap_or_default();
    assert!(detail.contains("tls_failed: "), "{detail}");

    // Postfix's side: TLS sessions established.
    let log = postfix.log();
    assert!(
        log.contains("TLS connection established from"),
        "no TLS session in Postfix's log:\n{log}"
    );
    // One session: EHLO, MAIL refused (530), STARTTLS, EHLO again, MAIL taken: the start over
    // happened on the same connection.
    assert!(
        log.lines()
            .any(|l| l.contains(" disconnect from ") && l.contains("ehlo=2 starttls=1 mail=1/2")),
        "no session started over after a 530:\n{log}"
    );
}
