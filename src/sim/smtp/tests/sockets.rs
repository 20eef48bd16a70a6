//! Smoke tests over loopback for what only the event loop does: accept, read and write real
//! sockets, fire timers, count, spread listeners over threads, stop on drop. What a server says
//! and when is tested by table in `mod.rs`; here a blocking client only checks that the loop
//! delivers it. No upper bound on wall time but hang guards: the machine may be busy.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConnection, RootCertStore, StreamOwned};

use super::*;
use crate::tls::TlsClient;

type TlsStream = StreamOwned<ClientConnection, TcpStream>;

const READY: &str = "220 2.0.0 Ready to start TLS\r\n";

/// Longest a test waits for something that should happen at once: a hang guard, not a
/// measurement.
const HANG_GUARD: Duration = Duration::from_secs(30);

/// A blocking test client that reads whole SMTP replies, over a socket or, after STARTTLS,
/// over rustls.
struct Client<S = TcpStream> {
    stream: S,
    received: Vec<u8>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect_timeout(&addr, HANG_GUARD).unwrap();
        stream.set_read_timeout(Some(HANG_GUARD)).unwrap();
        stream.set_nodelay(true).unwrap();
        Self {
            stream,
            received: Vec::new(),
        }
    }

    /// Says STARTTLS, checks its `220` came alone, and puts a rustls client of `tls` for
    /// `name` on the socket; the handshake runs with the first read or write.
    fn start_tls(mut self, tls: &TlsClient, name: &str) -> Client<TlsStream> {
        assert_eq!(self.command("STARTTLS"), READY);
        assert!(self.received.is_empty(), "nothing after the 220");
        let name = ServerName::try_from(name.to_owned()).unwrap();
        Client {
            stream: StreamOwned::new(tls.connect(name).unwrap(), self.stream),
            received: Vec::new(),
        }
    }
}

impl<S: Read + Write> Client<S> {
    fn send(&mut self, text: &str) {
        self.stream.write_all(text.as_bytes()).unwrap();
    }

    /// One line, line ending included; `None` at EOF.
    fn line(&mut self) -> Option<String> {
        loop {
            if let Some(newline) = self.received.iter().position(|&byte| byte == b'\n') {
                let line: Vec<u8> = self.received.drain(..=newline).collect();
                return Some(String::from_utf8(line).unwrap());
            }
            let mut chunk = [0; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(received) => self.received.extend_from_slice(&chunk[..received]),
                Err(error) => panic!(
                    "no complete line after {HANG_GUARD:?} ({error}); got {:?}",
                    String::from_utf8_lossy(&self.received)
                ),
            }
        }
    }

    /// One complete reply, every line of a multi-line one.
    fn reply(&mut self) -> String {
        let mut reply = String::new();
        loop {
            let Some(line) = self.line() else {
                panic!("EOF inside a reply; got {reply:?}");
            };
            reply.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return reply;
            }
        }
    }

    fn command(&mut self, line: &str) -> String {
        self.send(&format!("{line}\r\n"));
        self.reply()
    }

    /// Asserts that the server closes without sending anything more.
    fn expect_close(&mut self) {
        assert_eq!(self.line(), None, "expected the server to close");
        assert!(self.received.is_empty(), "{:?}", self.received);
    }
}

fn loopback(host: u8) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::new(127, 0, 0, host), 0))
}

fn farm_of(personality: Personality) -> SmtpFarm {
    SmtpFarm::start(vec![(loopback(1), personality)], 1).unwrap()
}

fn greeted(farm: &SmtpFarm) -> Client {
    let mut client = Client::connect(farm.addrs()[0]);
    let greeting = client.reply();
    assert!(greeting.starts_with("220 "), "{greeting:?}");
    client
}

/// Waits for the farm's threads to have counted what the client already saw happen (a close
/// is counted just before the socket closes, but the client may look first), then returns the
/// counts.
fn settled_stats(farm: &SmtpFarm, settled: impl Fn(&FarmStats) -> bool) -> FarmStats {
    let deadline = Instant::now() + HANG_GUARD;
    loop {
        let stats = farm.stats();
        if settled(&stats) || Instant::now() > deadline {
            return stats;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// Drops `farm` on a thread of its own and fails if that does not return within the guard.
fn drop_within_guard(farm: SmtpFarm) {
    let (dropped, done) = mpsc::channel();
    thread::spawn(move || {
        drop(farm);
        let _ = dropped.send(());
    });
    done.recv_timeout(HANG_GUARD)
        .expect("dropping the farm did not stop its threads");
}

#[test]
fn a_lock_step_conversation_is_served_and_counted() {
    let farm = farm_of(mx());
    let mut client = Client::connect(farm.addrs()[0]);
    assert_eq!(client.reply(), GREETING);
    assert_eq!(client.command("EHLO probe.test"), EHLO_REPLY);
    assert_eq!(client.command("MAIL FROM:<probe@probe.test>"), MAIL_OK);
    assert_eq!(client.command("RCPT TO:<alice@farm.test>"), RCPT_OK);
    assert_eq!(client.command("RCPT TO:<nobody@farm.test>"), NOBODY_550);
    assert_eq!(
        client.command("DATA"),
        "554 5.5.1 Error: no valid recipients\r\n"
    );
    assert_eq!(client.command("RSET"), OK);
    assert_eq!(client.command("QUIT"), BYE);
    client.expect_close();
    let stats = settled_stats(&farm, |stats| stats.open_connections == 0);
    assert_eq!(
        stats,
        FarmStats {
            connections: 1,
            sessions_completed: 1,
            rcpt_commands: 2,
            mail_commands: 1,
            data_commands: 1,
            open_connections: 0,
            reply_rounds: 8,
            peak_open_connections: 1,
            peak_rcpts_in_session: 2,
            throttled_transactions: 0,
            tls_handshakes: 0,
            starttls_injections: 0,
        }
    );
}

#[test]
fn held_replies_are_sent_when_their_timer_fires() {
    let latency = Duration::from_millis(200);
    let farm = farm_of(mx().latency(latency));
    let connected = Instant::now();
    let mut client = Client::connect(farm.addrs()[0]);
    assert_eq!(client.reply(), GREETING);
    assert!(connected.elapsed() >= latency, "{:?}", connected.elapsed());
    let asked = Instant::now();
    // A pipelined group, held together and written together.
    client.send("MAIL FROM:<probe@probe.test>\r\nRCPT TO:<alice@farm.test>\r\nQUIT\r\n");
    assert_eq!(client.reply(), MAIL_OK);
    assert!(asked.elapsed() >= latency, "{:?}", asked.elapsed());
    assert_eq!(client.reply(), RCPT_OK);
    assert_eq!(client.reply(), BYE);
    client.expect_close();
    let stats = settled_stats(&farm, |stats| stats.open_connections == 0);
    assert_eq!(
        stats.reply_rounds, 2,
        "the greeting, then one wait for the group"
    );
}

#[test]
fn the_idle_sweep_tells_an_idle_client_and_closes() {
    let idle_limit = Duration::from_millis(200);
    let farm = SmtpFarm::start_with(
        vec![(loopback(1), mx())],
        FarmOptions {
            idle_limit,
            ..FarmOptions::default()
        },
    )
    .unwrap();
    let mut client = greeted(&farm);
    let idle_since = Instant::now();
    assert_eq!(client.reply(), TIMEOUT_421);
    assert!(idle_since.elapsed() >= idle_limit - Duration::from_millis(20));
    client.expect_close();
}

#[test]
fn listeners_on_several_loopback_addresses_keep_their_personalities() {
    let farm = SmtpFarm::start(
        vec![
            (loopback(2), mx()),
            (
                loopback(3),
                Personality::new("catchall.farm.test").catch_all(),
            ),
            (loopback(4), Personality::new(MX).greeting(Greeting::Refuse)),
            (
                loopback(5),
                Personality::new(MX).greeting(Greeting::Unavailable),
            ),
        ],
        2,
    )
    .unwrap();
    let addrs = farm.addrs();
    let hosts: Vec<IpAddr> = addrs.iter().map(SocketAddr::ip).collect();
    assert_eq!(
        hosts,
        [2, 3, 4, 5].map(|host| IpAddr::from(Ipv4Addr::new(127, 0, 0, host)))
    );
    for (addr, expected_rcpt) in [(addrs[0], "550 5.1.1"), (addrs[1], "250 2.1.5")] {
        let mut client = Client::connect(addr);
        client.reply();
        client.command("MAIL FROM:<probe@probe.test>");
        let reply = client.command("RCPT TO:<nobody@farm.test>");
        assert!(reply.starts_with(expected_rcpt), "{addr}: {reply:?}");
    }
    assert!(Client::connect(addrs[2]).reply().starts_with("554 5.7.1"));
    let mut unavailable = Client::connect(addrs[3]);
    assert!(unavailable.reply().starts_with("421 4.7.0"));
    unavailable.expect_close();
    assert_eq!(farm.stats().connections, 4);
}

#[test]
fn five_hundred_concurrent_sessions_all_complete() {
    const CLIENTS: usize = 500;
    const CLIENT_THREADS: usize = 10;
    // Two sockets per session in this process, plus whatever other tests hold.
    rlimit::increase_nofile_limit(4096).unwrap();
    let farm = farm_of(mx());
    let addr = farm.addrs()[0];
    let clients: Vec<Client> = (0..CLIENTS).map(|_| Client::connect(addr)).collect();
    let mut groups: Vec<Vec<Client>> = (0..CLIENT_THREADS).map(|_| Vec::new()).collect();
    for (index, client) in clients.into_iter().enumerate() {
        groups[index % CLIENT_THREADS].push(client);
    }
    let workers: Vec<_> = groups
        .into_iter()
        .map(|mut group| {
            thread::spawn(move || {
                for client in &mut group {
                    assert!(client.reply().starts_with("220 "));
                }
                for client in &mut group {
                    client.send(
                        "EHLO probe.test\r\nMAIL FROM:<probe@probe.test>\r\n\
                         RCPT TO:<alice@farm.test>\r\nQUIT\r\n",
                    );
                }
                for client in &mut group {
                    let codes: Vec<String> =
                        (0..4).map(|_| client.reply()[..3].to_owned()).collect();
                    assert_eq!(codes, ["250", "250", "250", "221"]);
                    client.expect_close();
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    let stats = settled_stats(&farm, |stats| stats.open_connections == 0);
    assert_eq!(stats.connections, CLIENTS as u64);
    assert_eq!(stats.sessions_completed, CLIENTS as u64);
    assert_eq!(stats.rcpt_commands, CLIENTS as u64);
    assert_eq!(stats.open_connections, 0);
}

#[test]
fn drop_stops_the_threads_and_closes_everything() {
    // An hour's latency: a connection waiting on that timer must not hold the drop up.
    let far = Duration::from_secs(3600);
    let farm = SmtpFarm::start(
        vec![
            (loopback(1), Personality::new(MX)),
            (loopback(1), Personality::new(MX).latency(far)),
        ],
        2,
    )
    .unwrap();
    let addrs = farm.addrs();
    let mut idle = greeted(&farm);
    let mut waiting = Client::connect(addrs[1]);
    // Accepted, not still in the backlog, where closing the listener would reset it.
    settled_stats(&farm, |stats| stats.connections == 2);
    drop_within_guard(farm);
    assert_eq!(idle.line(), None, "open connections are closed");
    assert_eq!(
        waiting.line(),
        None,
        "a connection waiting on a timer is closed"
    );
    for addr in addrs {
        assert!(TcpStream::connect(addr).is_err(), "{addr} still listens");
    }
}

#[test]
fn drop_wakes_a_loop_that_has_no_timer() {
    // No connection ever: the loop polls with no timeout, and only the waker can end it.
    let farm = farm_of(Personality::new(MX));
    let addr = farm.addrs()[0];
    drop_within_guard(farm);
    assert!(TcpStream::connect(addr).is_err(), "{addr} still listens");
}

#[test]
fn start_refuses_what_it_cannot_serve_and_says_why() {
    let no_threads = SmtpFarm::start(vec![(loopback(1), Personality::new(MX))], 0);
    let error = no_threads.unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
    assert!(error.to_string().contains("threads >= 1"), "{error}");

    let bad_name = SmtpFarm::start(vec![(loopback(1), Personality::new("mx\r\n250 x"))], 1);
    let error = bad_name.unwrap_err();
    assert!(error.to_string().contains("CR or LF"), "{error}");

    let taken = farm_of(Personality::new(MX));
    let again = SmtpFarm::start(vec![(taken.addrs()[0], Personality::new(MX))], 1);
    let error = again.unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::AddrInUse);
    assert!(error.to_string().contains("port 0"), "{error}");
}

#[test]
fn a_farm_without_listeners_starts_and_stops() {
    let farm = SmtpFarm::start(Vec::new(), 4).unwrap();
    assert!(farm.addrs().is_empty());
    assert_eq!(farm.stats(), FarmStats::default());
}

#[test]
fn starttls_over_loopback_turns_the_session_into_tls_against_the_farms_certificate() {
    let farm = farm_of(mx().tls(Tls::Offered).latency(Duration::from_millis(20)));
    // Verified against the farm's own certificate, which names the host.
    let pem = farm
        .tls_cert_pem()
        .expect("a TLS personality gets a certificate");
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let verified = TlsClient::verified(roots).unwrap();
    let mut client = greeted(&farm);
    let ehlo = client.command("EHLO probe.test");
    assert!(ehlo.contains("\r\n250-STARTTLS\r\n"), "{ehlo:?}");
    let mut client = client.start_tls(&verified, MX);
    assert_eq!(
        client.command("EHLO probe.test"),
        EHLO_REPLY,
        "no STARTTLS in TLS"
    );
    assert_eq!(client.command("MAIL FROM:<probe@probe.test>"), MAIL_OK);
    assert_eq!(client.command("RCPT TO:<alice@farm.test>"), RCPT_OK);
    assert_eq!(client.command("RCPT TO:<nobody@farm.test>"), NOBODY_550);
    assert_eq!(
        client.command("STARTTLS"),
        "554 5.5.1 Error: TLS already active\r\n"
    );
    assert_eq!(client.command("QUIT"), BYE);
    client.expect_close();
    let stats = settled_stats(&farm, |stats| stats.open_connections == 0);
    assert_eq!(stats.tls_handshakes, 1);
    assert_eq!(stats.starttls_injections, 0);
    assert_eq!(stats.sessions_completed, 1);
    assert_eq!(stats.rcpt_commands, 2);
}

#[test]
fn over_loopback_injected_commands_are_counted_and_a_broken_handshake_fails_the_client() {
    let farm = SmtpFarm::start(
        vec![
            (loopback(1), mx().tls(Tls::Required)),
            (loopback(1), mx().tls(Tls::BrokenHandshake)),
        ],
        1,
    )
    .unwrap();
    let addrs = farm.addrs();
    let mut required = Client::connect(addrs[0]);
    assert_eq!(required.reply(), GREETING);
    assert!(
        required
            .command("MAIL FROM:<probe@probe.test>")
            .starts_with("530 5.7.0 ")
    );
    // The injected MAIL is discarded: the 220 comes alone and the handshake still works.
    required.send("STARTTLS\r\nMAIL FROM:<probe@probe.test>\r\n");
    assert_eq!(required.reply(), READY);
    let name = ServerName::try_from(MX).unwrap().to_owned();
    let tls = TlsClient::unverified();
    let mut required = Client {
        stream: StreamOwned::new(tls.connect(name).unwrap(), required.stream),
        received: Vec::new(),
    };
    assert_eq!(required.command("EHLO probe.test"), EHLO_REPLY);
    assert_eq!(required.command("MAIL FROM:<probe@probe.test>"), MAIL_OK);
    let stats = settled_stats(&farm, |stats| stats.tls_handshakes == 1);
    assert_eq!(stats.starttls_injections, 1);
    assert_eq!(stats.mail_commands, 2, "the one refused and the one in TLS");

    let mut broken = Client::connect(addrs[1]);
    assert_eq!(broken.reply(), GREETING);
    let mut broken = broken.start_tls(&tls, MX);
    let error = broken
        .stream
        .write_all(b"EHLO probe.test\r\n")
        .and_then(|()| {
            let mut chunk = [0; 64];
            broken.stream.read(&mut chunk).map(|_| ())
        });
    let error = error.expect_err("the client's handshake fails");
    assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{error}");
    assert_eq!(farm.stats().tls_handshakes, 1);
}
