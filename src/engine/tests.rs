//! The scheduler driven by hand: DNS answered from a table, SMTP servers played by closures,
//! the clock moved by hand. For what the end-to-end tests cannot pin down: exact retry times,
//! caps, turns, back-offs.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, MX};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::*;
use crate::dns::Transmit;
use crate::verdict::Reason;

/// A fake SMTP server: the reply to each command line.
type Server = Box<dyn FnMut(&str) -> String>;

struct Harness {
    scheduler: Scheduler,
    now: Instant,
    /// Domain → its MX hosts: (preference, address).
    zone: HashMap<String, Vec<(u16, Ipv4Addr)>>,
    /// Domain → the name its MX hosts are under (`mx0.{name}`...), when not the domain's own.
    hosts: HashMap<String, String>,
    /// (domain, MX index) → that host's whole name, overriding the two above.
    named: HashMap<(String, usize), String>,
    /// Connections asked for and not yet played, in order.
    connects: Vec<(ConnId, SocketAddr, Instant)>,
    /// Every connection ever asked for.
    history: Vec<(ConnId, SocketAddr, Instant)>,
    results: Vec<VerifyResult>,
    /// DNS queries not answered yet: answered by `settle`, as a real server answers after
    /// the burst of submissions that caused them.
    queries: Vec<(crate::dns::SocketId, SocketAddr, Vec<u8>)>,
    /// What the client wrote in each round of the last connection played: one command per
    /// round is lock-step, several are a pipelined group.
    rounds: Vec<Vec<String>>,
}

/// The settings as the builder makes them, open for a test to change one by one.
fn config() -> EngineConfig {
    crate::Config::builder()
        .sender("probe@probe.test")
        .nameserver("192.0.2.53:53".parse().expect("addr"))
        .domain_rate(None)
        // The fake servers are on loopback.
        .allow_private_mx(true)
        .build()
        .expect("a valid configuration")
        .engine
}

impl Harness {
    fn new(config: EngineConfig) -> Self {
        Self {
            scheduler: Scheduler::new(crate::Config { engine: config }, [5; 32]),
            now: Instant::now(),
            zone: HashMap::new(),
            hosts: HashMap::new(),
            named: HashMap::new(),
            connects: Vec::new(),
            history: Vec::new(),
            results: Vec::new(),
            queries: Vec::new(),
            rounds: Vec::new(),
        }
    }

    fn mx(&mut self, domain: &str, preference: u16, ip: [u8; 4]) -> &mut Self {
        self.zone
            .entry(domain.to_owned())
            .or_default()
            .push((preference, Ipv4Addr::from(ip)));
        self
    }

    /// The domain's MX hosts are named under `suffix` (`mx0.{suffix}`...): a provider's.
    fn hosted_at(&mut self, domain: &str, suffix: &str) -> &mut Self {
        self.hosts.insert(domain.to_owned(), suffix.to_owned());
        self
    }

    /// Submits an address; sessions start with [`Self::settle`].
    fn submit(&mut self, address: &str) {
        let tag = self.scheduler.stats().submitted;
        self.scheduler.submit(address, tag, self.now);
        self.drain();
    }

    /// Answers the DNS queries asked so far and lets the batch hold pass: sessions for what
    /// was submitted start.
    fn settle(&mut self) {
        self.settle_dns();
        self.advance(BATCH_HOLD);
    }

    /// Answers the DNS queries asked so far, and no more.
    fn settle_dns(&mut self) {
        while !self.queries.is_empty() {
            for (socket, server, payload) in std::mem::take(&mut self.queries) {
                let answer = self.answer(&payload);
                self.scheduler.handle_udp(socket, server, &answer, self.now);
                self.drain();
            }
        }
    }

    /// Answers DNS, records connections and results, until nothing moves.
    fn drain(&mut self) {
        loop {
            let mut moved = false;
            while let Some(transmit) = self.scheduler.poll_dns_transmit() {
                if let Transmit::Udp {
                    socket,
                    server,
                    payload,
                } = transmit
                {
                    self.queries.push((socket, server, payload));
                }
            }
            while let Some(io) = self.scheduler.poll_conn_io() {
                if let ConnIo::Connect { conn, to, .. } = io {
                    self.connects.push((conn, to, self.now));
                    self.history.push((conn, to, self.now));
                }
                moved = true;
            }
            while let Some(result) = self.scheduler.poll_result() {
                self.results.push(result);
                moved = true;
            }
            if !moved {
                return;
            }
        }
    }

    /// MX records with glue for the zone's domains; NXDOMAIN otherwise.
    fn answer(&self, query: &[u8]) -> Vec<u8> {
        let query = Message::from_vec(query).expect("valid query");
        let question = query.queries[0].clone();
        let mut answer = Message::response(query.metadata.id, OpCode::Query);
        answer.add_query(question.clone());
        let name = question.name.to_ascii();
        let domain = name.trim_end_matches('.');
        match self.zone.get(domain) {
            Some(hosts) if question.query_type == RecordType::MX => {
                for (i, (preference, ip)) in hosts.iter().enumerate() {
                    let under = self.hosts.get(domain).map_or(domain, String::as_str);
                    let host = self
                        .named
                        .get(&(domain.to_owned(), i))
                        .cloned()
                        .unwrap_or_else(|| format!("mx{i}.{under}"));
                    let exchange = Name::from_ascii(format!("{host}.")).expect("name");
                    answer.add_answer(Record::from_rdata(
                        question.name.clone(),
                        300,
                        RData::MX(MX::new(*preference, exchange.clone())),
                    ));
                    answer.add_additional(Record::from_rdata(exchange, 300, RData::A(A(*ip))));
                }
            }
            _ => answer.metadata.response_code = ResponseCode::NXDomain,
        }
        answer.to_vec().expect("encodes")
    }

    /// Plays the oldest pending connection against `server` to its end.
    fn play(&mut self, server: Server) -> (ConnId, Vec<String>) {
        let (conn, _, _) = self.connects.remove(0);
        self.scheduler.handle_connected(conn, self.now);
        self.play_connected(conn, server)
    }

    /// Answers the SOCKS5 handshake on the oldest pending connection, a proxy's: no
    /// authentication, then the CONNECT with `reply` (0: the tunnel opens). Returns the
    /// connection and where the CONNECT asked to go.
    fn socks5(&mut self, reply: u8) -> (ConnId, Vec<u8>) {
        let (conn, _, _) = self.connects.remove(0);
        self.scheduler.handle_connected(conn, self.now);
        let greeting = self.scheduler.output(conn).len();
        self.scheduler.consume_output(conn, greeting);
        self.scheduler.handle_input(conn, &[5, 0], self.now);
        let request = self.scheduler.output(conn).to_vec();
        self.scheduler.consume_output(conn, request.len());
        self.scheduler
            .handle_input(conn, &[5, reply, 0, 1, 10, 0, 0, 1, 0x30, 0x39], self.now);
        self.drain();
        (conn, request)
    }

    /// Plays a connection already open (a tunnel through a proxy) against `server`.
    fn play_connected(&mut self, conn: ConnId, mut server: Server) -> (ConnId, Vec<String>) {
        let mut heard = Vec::new();
        self.rounds.clear();
        self.scheduler
            .handle_input(conn, b"220 mx.test ESMTP\r\n", self.now);
        let mut guard = 0;
        while self.scheduler.has_conn(conn) {
            guard += 1;
            assert!(guard < 100, "the conversation does not end");
            let output = String::from_utf8(self.scheduler.output(conn).to_vec()).expect("UTF-8");
            self.scheduler.consume_output(conn, output.len());
            let mut replies = String::new();
            for line in output.lines() {
                heard.push(line.to_owned());
                replies.push_str(&server(line));
            }
            self.rounds
                .push(output.lines().map(str::to_owned).collect::<Vec<_>>());
            if replies.is_empty() {
                break;
            }
            self.scheduler
                .handle_input(conn, replies.as_bytes(), self.now);
        }
        self.drain();
        (conn, heard)
    }

    fn advance(&mut self, by: Duration) {
        let until = self.now + by;
        while let Some(at) = self.scheduler.poll_timeout() {
            if at > until {
                break;
            }
            self.now = self.now.max(at);
            self.scheduler.handle_timeout(self.now);
            self.drain();
        }
        self.now = until;
    }

    fn result(&self, address: &str) -> &VerifyResult {
        self.results
            .iter()
            .find(|r| r.address == address)
            .unwrap_or_else(|| panic!("no result for {address}: {:#?}", self.results))
    }
}

/// A server that knows `mailboxes` and answers everything else as Postfix would.
fn postfix(mailboxes: &'static [&'static str]) -> Server {
    server_refusing(mailboxes, "550 5.1.1 User unknown\r\n")
}

/// A server that knows `mailboxes` and answers every other RCPT with `refusal` (a whole reply
/// line, CRLF included).
fn server_refusing(mailboxes: &'static [&'static str], refusal: &'static str) -> Server {
    Box::new(move |line: &str| {
        let upper = line.to_ascii_uppercase();
        if upper.starts_with("EHLO") {
            "250-mx.test\r\n250 PIPELINING\r\n".into()
        } else if upper.starts_with("MAIL") || upper.starts_with("RSET") {
            "250 2.1.0 Ok\r\n".into()
        } else if let Some(rest) = upper.strip_prefix("RCPT TO:<") {
            let mailbox = rest.trim_end_matches('>').to_ascii_lowercase();
            if mailboxes.contains(&mailbox.as_str()) {
                "250 2.1.5 Ok\r\n".into()
            } else {
                refusal.into()
            }
        } else if upper.starts_with("QUIT") {
            "221 2.0.0 Bye\r\n".into()
        } else {
            "502 5.5.2 Error\r\n".into()
        }
    })
}

#[test]
fn one_lookup_one_session_and_the_control_last() {
    let mut h = Harness::new(config());
    h.mx("one.test", 10, [127, 0, 0, 9]);
    for local in ["a", "b", "c"] {
        h.submit(&format!("{local}@one.test"));
    }
    h.settle();
    assert_eq!(h.connects.len(), 1, "one session for three addresses");
    assert_eq!(
        h.connects[0].1,
        "127.0.0.9:25".parse::<SocketAddr>().expect("addr")
    );
    let (_, heard) = h.play(postfix(&["a@one.test", "c@one.test"]));
    let rcpts: Vec<&String> = heard.iter().filter(|l| l.starts_with("RCPT")).collect();
    assert_eq!(rcpts.len(), 4);
    assert!(
        rcpts[3].len() > "RCPT TO:<@one.test>".len() + 15,
        "the control comes last: {rcpts:?}"
    );
    assert_eq!(h.result("a@one.test").reason, Reason::Accepted);
    assert_eq!(h.result("a@one.test").catch_all, Some(false));
    assert_eq!(h.result("b@one.test").reason, Reason::MailboxNotFound);
    // A later address at the same domain: no lookup, no second control.
    h.submit("d@one.test");
    h.settle();
    let (_, heard) = h.play(postfix(&[]));
    assert_eq!(heard.iter().filter(|l| l.starts_with("RCPT")).count(), 1);
    assert_eq!(h.scheduler.resolver_stats().lookups.lookups, 1);
    assert_eq!(h.scheduler.stats().controls, 1);
}

#[test]
fn a_partial_batch_waits_briefly_for_company_and_a_full_one_does_not() {
    let mut config = config();
    config.catch_all = false;
    config.rcpts_per_session = 3;
    let mut h = Harness::new(config);
    h.mx("one.test", 10, [127, 0, 0, 9]);
    h.mx("two.test", 10, [127, 0, 0, 8]);
    h.submit("a@one.test");
    h.submit("a@two.test");
    h.submit("b@two.test");
    h.submit("c@two.test");
    h.settle_dns();
    h.advance(Duration::ZERO);
    assert_eq!(h.connects.len(), 1, "the full batch goes at once");
    assert_eq!(h.connects[0].1.ip(), IpAddr::from([127, 0, 0, 8]));
    h.advance(BATCH_HOLD / 2);
    h.submit("b@one.test");
    h.advance(BATCH_HOLD / 2);
    assert_eq!(
        h.connects.len(),
        2,
        "the partial batch goes once its first has waited"
    );
    let (_, heard) = h.play(postfix(&[]));
    let (_, heard) = if heard.iter().any(|l| l.contains("two.test")) {
        h.play(postfix(&[]))
    } else {
        (ConnId(0), heard)
    };
    let rcpts = heard.iter().filter(|l| l.starts_with("RCPT")).count();
    assert_eq!(
        rcpts, 2,
        "the one that came during the hold joined: {heard:?}"
    );
}

#[test]
fn a_partial_session_waits_for_the_one_in_flight_at_its_domain() {
    let mut config = config();
    config.catch_all = false;
    config.rcpts_per_session = 3;
    let mut h = Harness::new(config);
    h.mx("one.test", 10, [127, 0, 0, 9]);
    for local in ["a", "b", "c", "d"] {
        h.submit(&format!("{local}@one.test"));
    }
    h.settle();
    h.advance(Duration::from_secs(1));
    assert_eq!(h.connects.len(), 1, "three go, the fourth waits for them");
    let (_, heard) = h.play(postfix(&[]));
    assert_eq!(heard.iter().filter(|l| l.starts_with("RCPT")).count(), 3);
    h.advance(Duration::ZERO);
    assert_eq!(h.connects.len(), 1, "then the fourth goes");
    let (_, heard) = h.play(postfix(&[]));
    assert_eq!(heard.iter().filter(|l| l.starts_with("RCPT")).count(), 1);
    assert_eq!(h.results.len(), 4);
}

#[test]
fn greylisting_is_retried_after_the_configured_delays() {
    let mut config = config();
    config.catch_all = false;
    config.retry_delay = Duration::from_secs(120);
    config.retries = 2;
    let mut h = Harness::new(config);
    h.mx("grey.test", 10, [127, 0, 0, 9]);
    h.submit("a@grey.test");
    h.settle();
    let start = h.now;
    let grey: fn() -> Server = || {
        Box::new(|line: &str| {
            if line.starts_with("RCPT") {
                "451 4.7.1 Greylisted, try again later\r\n".into()
            } else {
                postfix(&[])(line)
            }
        })
    };
    h.play(grey());
    assert!(h.results.is_empty());
    h.advance(Duration::from_secs(119));
    assert!(h.connects.is_empty(), "not before 120 s");
    h.advance(Duration::from_secs(1));
    assert_eq!(h.connects.len(), 1, "the first retry at 120 s");
    h.play(grey());
    h.advance(Duration::from_secs(239));
    assert!(
        h.connects.is_empty(),
        "the second retry waits twice as long"
    );
    h.advance(Duration::from_secs(1));
    assert_eq!(h.connects.len(), 1);
    assert_eq!(h.connects[0].2 - start, Duration::from_secs(360));
    h.play(postfix(&["a@grey.test"]));
    let result = h.result("a@grey.test");
    assert_eq!(result.reason, Reason::Accepted);
    assert_eq!(result.attempts, 3);
    assert_eq!(h.scheduler.stats().retries, 2);
}

#[test]
fn retries_run_out_as_greylisted_with_the_last_reply() {
    let mut config = config();
    config.catch_all = false;
    config.retries = 1;
    config.retry_delay = Duration::from_secs(10);
    let mut h = Harness::new(config);
    h.mx("grey.test", 10, [127, 0, 0, 9]);
    h.submit("a@grey.test");
    h.settle();
    for _ in 0..2 {
        h.play(Box::new(|line: &str| {
            if line.starts_with("RCPT") {
                "450 4.2.0 Greylisted\r\n".into()
            } else {
                postfix(&[])(line)
            }
        }));
        h.advance(Duration::from_secs(10));
    }
    let result = h.result("a@grey.test");
    assert_eq!(result.reason, Reason::Greylisted);
    assert_eq!(
        result.smtp.as_ref().map(|r| r.as_reply().code().get()),
        Some(450)
    );
}

#[test]
fn out_of_sockets_means_back_off_and_try_again_not_a_verdict() {
    let mut h = Harness::new(config());
    h.mx("one.test", 10, [127, 0, 0, 9]);
    h.submit("a@one.test");
    h.settle();
    let (conn, _, _) = h.connects.remove(0);
    h.scheduler.handle_no_resources(conn, h.now);
    h.drain();
    assert!(h.results.is_empty(), "no verdict from our own shortage");
    assert!(h.connects.is_empty(), "no new connection at once");
    h.advance(Duration::from_millis(100));
    assert_eq!(h.connects.len(), 1, "tried again after the back-off");
    h.play(postfix(&["a@one.test"]));
    assert_eq!(h.result("a@one.test").reason, Reason::Accepted);
    assert_eq!(h.scheduler.stats().resource_backoffs, 1);
}

#[test]
fn the_per_mx_cap_holds_across_domains() {
    let mut config = config();
    config.per_mx = 3;
    config.catch_all = false;
    let mut h = Harness::new(config);
    for i in 0..10 {
        let domain = format!("d{i}.test");
        h.mx(&domain, 10, [127, 0, 0, 9]);
        h.submit(&format!("a@{domain}"));
    }
    h.settle();
    assert_eq!(h.connects.len(), 3, "three sessions at the shared MX");
    h.play(postfix(&[]));
    assert_eq!(h.connects.len(), 3, "one ended, one started");
    while !h.connects.is_empty() {
        h.play(postfix(&[]));
        assert!(h.connects.len() <= 3);
    }
    assert_eq!(h.results.len(), 10);
    assert_eq!(h.scheduler.stats().peak_sessions, 3);
}

#[test]
fn a_backup_mx_is_used_only_when_the_first_fails() {
    let mut config = config();
    config.per_mx = 1;
    config.catch_all = false;
    config.rcpts_per_session = 1;
    let mut h = Harness::new(config);
    h.mx("two.test", 10, [127, 0, 0, 1])
        .mx("two.test", 20, [127, 0, 0, 2]);
    h.submit("a@two.test");
    h.submit("b@two.test");
    h.settle();
    // One session at the primary; the second address waits for it, not for the backup.
    assert_eq!(h.connects.len(), 1);
    assert_eq!(h.connects[0].1.ip(), IpAddr::from([127, 0, 0, 1]));
    // The primary refuses the connection: both go to the backup.
    let (conn, _, _) = h.connects.remove(0);
    h.scheduler.handle_closed(conn, h.now);
    h.drain();
    assert_eq!(h.connects.len(), 1);
    assert_eq!(h.connects[0].1.ip(), IpAddr::from([127, 0, 0, 2]));
    h.play(postfix(&["a@two.test", "b@two.test"]));
    h.play(postfix(&["a@two.test", "b@two.test"]));
    assert_eq!(h.result("a@two.test").mx.as_deref(), Some("mx1.two.test"));
    assert_eq!(h.result("b@two.test").reason, Reason::Accepted);
}

#[test]
fn every_mx_failing_is_connection_failed() {
    let mut h = Harness::new(config());
    h.mx("dead.test", 10, [127, 0, 0, 1])
        .mx("dead.test", 20, [127, 0, 0, 2]);
    h.submit("a@dead.test");
    h.settle();
    for _ in 0..2 {
        let (conn, _, _) = h.connects.remove(0);
        h.scheduler.handle_closed(conn, h.now);
        h.drain();
    }
    assert_eq!(h.result("a@dead.test").reason, Reason::ConnectionFailed);
    assert_eq!(h.scheduler.stats().failovers, 2);
}

#[test]
fn domains_take_turns() {
    let mut config = config();
    config.concurrency = 2;
    config.catch_all = false;
    config.rcpts_per_session = 1;
    let mut h = Harness::new(config);
    h.mx("big.test", 10, [127, 0, 0, 1]);
    for i in 0..50 {
        h.submit(&format!("u{i}@big.test"));
    }
    for small in ["s1", "s2", "s3", "s4"] {
        let domain = format!("{small}.test");
        h.mx(&domain, 10, [127, 0, 0, 2]);
        h.submit(&format!("a@{domain}"));
    }
    h.settle();
    // Play sessions in order; the small domains must not wait for the big one's 50.
    for _ in 0..12 {
        if h.connects.is_empty() {
            break;
        }
        h.play(postfix(&[]));
    }
    for small in ["s1", "s2", "s3", "s4"] {
        let address = format!("a@{small}.test");
        assert!(
            h.results.iter().any(|r| r.address == address),
            "{address} waited behind the big domain"
        );
    }
}

#[test]
fn the_domain_rate_spaces_new_connections() {
    let mut config = config();
    config.domain_rate = Some(2.0);
    config.catch_all = false;
    config.rcpts_per_session = 1;
    config.per_mx = 10;
    let mut h = Harness::new(config);
    h.mx("slow.test", 10, [127, 0, 0, 1]);
    for i in 0..4 {
        h.submit(&format!("u{i}@slow.test"));
    }
    h.settle();
    h.advance(Duration::from_secs(2));
    let times: Vec<Duration> = h
        .history
        .iter()
        .map(|(_, _, at)| *at - h.history[0].2)
        .collect();
    assert_eq!(
        times,
        [0, 500, 1000, 1500].map(Duration::from_millis),
        "two new connections a second"
    );
}

#[test]
fn an_accepted_address_waits_for_the_catch_all_answer() {
    let mut h = Harness::new(config());
    h.mx("all.test", 10, [127, 0, 0, 9]);
    h.submit("a@all.test");
    h.settle();
    // The server accepts everything, the control included.
    h.play(Box::new(|line: &str| {
        if line.starts_with("RCPT") {
            "250 2.1.5 Ok\r\n".into()
        } else {
            postfix(&[])(line)
        }
    }));
    let result = h.result("a@all.test");
    assert_eq!(result.reason, Reason::AcceptAll);
    assert_eq!(result.catch_all, Some(true));
}

/// An answer learned while the engine runs (another prober of a fleet) serves a domain met
/// after it; a domain already met keeps its own.
#[test]
fn a_catch_all_answer_learned_while_running_serves_domains_not_yet_met() {
    let mut h = Harness::new(config());
    h.mx("all.test", 10, [127, 0, 0, 9]);
    h.mx("met.test", 10, [127, 0, 0, 10]);
    h.submit("a@met.test");
    h.scheduler.know_catch_all("ALL.test", true);
    h.scheduler.know_catch_all("met.test", true);
    h.submit("a@all.test");
    h.settle();
    let mut rcpts = Vec::new();
    for _ in 0..2 {
        let (_, heard) = h.play(Box::new(|line: &str| {
            if line.starts_with("RCPT") {
                "250 2.1.5 Ok\r\n".into()
            } else {
                postfix(&[])(line)
            }
        }));
        rcpts.push(heard.iter().filter(|line| line.starts_with("RCPT")).count());
    }
    rcpts.sort_unstable();
    assert_eq!(rcpts, [1, 2], "no control at all.test, one at met.test");
    assert_eq!(h.result("a@all.test").reason, Reason::AcceptAll);
    assert_eq!(
        h.result("a@met.test").catch_all,
        Some(true),
        "its own control's answer"
    );
}

#[test]
fn a_catch_all_answer_known_before_the_run_sends_no_control() {
    let config = crate::Config::builder()
        .sender("probe@probe.test")
        .nameserver("192.0.2.53:53".parse().expect("addr"))
        .domain_rate(None)
        .allow_private_mx(true)
        .known_catch_all([
            ("all.test".to_owned(), true),
            ("some.test".to_owned(), false),
        ])
        .build()
        .expect("a valid configuration")
        .engine;
    let mut h = Harness::new(config);
    h.mx("all.test", 10, [127, 0, 0, 9]);
    h.mx("some.test", 10, [127, 0, 0, 10]);
    h.submit("a@all.test");
    h.submit("b@some.test");
    h.settle();
    let accept_all = || -> Server {
        Box::new(|line: &str| {
            if line.starts_with("RCPT") {
                "250 2.1.5 Ok\r\n".into()
            } else {
                postfix(&[])(line)
            }
        })
    };
    for _ in 0..2 {
        let (_, heard) = h.play(accept_all());
        let rcpts = heard.iter().filter(|line| line.starts_with("RCPT")).count();
        assert_eq!(rcpts, 1, "the address's RCPT, no control: {heard:?}");
    }
    let all = h.result("a@all.test");
    assert_eq!((all.reason, all.catch_all), (Reason::AcceptAll, Some(true)));
    let some = h.result("b@some.test");
    assert_eq!(
        (some.reason, some.catch_all),
        (Reason::Accepted, Some(false))
    );
}

#[test]
fn a_stop_drops_what_was_not_asked_and_keeps_what_is_in_flight() {
    let mut config = config();
    config.catch_all = false;
    config.rcpts_per_session = 1;
    config.per_mx = 1;
    let mut h = Harness::new(config);
    h.mx("one.test", 10, [127, 0, 0, 9]);
    h.submit("a@one.test");
    h.submit("b@one.test");
    h.settle();
    assert_eq!(h.connects.len(), 1);
    assert_eq!(h.scheduler.abandon_queued(), 1);
    h.play(postfix(&["a@one.test"]));
    assert_eq!(h.results.len(), 1);
    assert_eq!(h.result("a@one.test").reason, Reason::Accepted);
    assert!(h.connects.is_empty(), "nothing new starts after a stop");
    assert!(h.scheduler.is_idle());
}

/// A stop with the catch-all control unanswered: the addresses accepted there, before and
/// after the stop, get no verdict (an acceptance may be the catch-all's); they count as
/// dropped, for the next run to ask.
#[test]
fn a_stop_before_the_control_answers_leaves_the_accepted_addresses_unanswered() {
    let greylisting_the_control = || -> Server {
        Box::new(|line: &str| {
            if ["<a@", "<b@", "<c@"]
                .iter()
                .any(|a| line.starts_with(&format!("RCPT TO:{a}")))
            {
                "250 2.1.5 Ok\r\n".into()
            } else if line.starts_with("RCPT TO:<d@") {
                "550 5.1.1 No such user\r\n".into()
            } else if line.starts_with("RCPT") {
                "450 4.7.1 Greylisted, try again later\r\n".into()
            } else {
                postfix(&[])(line)
            }
        })
    };
    // Held for a control that must be asked again, when the stop comes: the domain's rate
    // keeps the next session waiting.
    let mut slow = config();
    slow.domain_rate = Some(1.0 / 60.0);
    let mut h = Harness::new(slow);
    h.mx("one.test", 10, [127, 0, 0, 9]);
    h.submit("a@one.test");
    h.settle();
    h.play(greylisting_the_control());
    assert!(h.results.is_empty(), "a@ waits for the control's answer");
    assert!(h.connects.is_empty(), "the next session waits for the rate");
    assert_eq!(h.scheduler.abandon_queued(), 1);
    assert!(
        h.results.is_empty(),
        "no verdict without the control's answer"
    );
    assert!(h.scheduler.is_idle());
    assert_eq!(h.scheduler.dropped_by_stop(), 1);

    // In flight when the stop comes: the control is greylisted after it, and an address of
    // another session is accepted after that.
    let mut two_each = config();
    two_each.rcpts_per_session = 2;
    let mut h = Harness::new(two_each);
    h.mx("one.test", 10, [127, 0, 0, 9]);
    for address in ["a@one.test", "b@one.test", "c@one.test", "d@one.test"] {
        h.submit(address);
    }
    h.settle();
    assert_eq!(h.connects.len(), 2, "two sessions: {:?}", h.connects);
    assert_eq!(
        h.scheduler.abandon_queued(),
        0,
        "every address is in a session"
    );
    let (_, first) = h.play(greylisting_the_control());
    assert_eq!(first.len(), 6, "a@, b@ and the control: {first:?}");
    let (_, second) = h.play(greylisting_the_control());
    assert_eq!(second.len(), 5, "c@ and d@: {second:?}");
    assert_eq!(h.results.len(), 1, "{:#?}", h.results);
    assert_eq!(h.result("d@one.test").reason, Reason::MailboxNotFound);
    assert_eq!(h.scheduler.dropped_by_stop(), 3, "a@, b@ and c@");
    assert!(h.scheduler.is_idle());
    // A session that cannot open after the stop (no sockets left): its addresses and its
    // control are left for the next run, not queued for a session that will never start.
    let mut h = Harness::new(config());
    h.mx("one.test", 10, [127, 0, 0, 9]);
    h.submit("a@one.test");
    h.settle();
    let (conn, _, _) = h.connects.remove(0);
    assert_eq!(h.scheduler.abandon_queued(), 0);
    h.scheduler.handle_no_resources(conn, h.now);
    assert_eq!(h.scheduler.dropped_by_stop(), 1);
    assert!(h.scheduler.is_idle());
    assert!(h.results.is_empty());
}

/// A server that greylists each recipient's first `times` RCPTs (`greylisted` counts them,
/// across sessions), and takes every recipient after.
fn greylister(
    greylisted: &std::rc::Rc<std::cell::RefCell<HashMap<String, usize>>>,
    times: usize,
) -> Server {
    let greylisted = std::rc::Rc::clone(greylisted);
    Box::new(move |line: &str| {
        if let Some(rest) = line.strip_prefix("RCPT TO:<") {
            let mut greylisted = greylisted.borrow_mut();
            let count = greylisted.entry(rest.to_owned()).or_default();
            *count += 1;
            if *count <= times {
                "450 4.2.0 Greylisted, see https://postgrey.schweikert.ch/\r\n".into()
            } else {
                "250 2.1.5 Ok\r\n".into()
            }
        } else {
            postfix(&[])(line)
        }
    })
}

/// Greylisting that held an address, then let it through, says how long in the result (to
/// the start of the session that got through); the domain's next "try again later" is retried
/// after that wait and a tenth instead of the retry delay. A retry so timed that goes through
/// confirms the wait and leaves it; one greylisted again replaces it with the new sample, kept
/// within what the configured retries would wait in all. A wait learned elsewhere (a fleet)
/// serves a domain not yet met.
#[test]
fn a_greylisting_wait_learned_times_the_domains_next_first_retry() {
    let mut config = config();
    config.catch_all = false;
    let retry_delay = config.retry_delay;
    let mut h = Harness::new(config);
    h.mx("grey.test", 10, [127, 0, 0, 9]);
    h.mx("told.test", 10, [127, 0, 0, 10]);
    let seen = std::rc::Rc::new(std::cell::RefCell::new(HashMap::new()));
    let first_retry_in =
        |h: &mut Harness| h.scheduler.poll_timeout().expect("the retry's timer") - h.now;
    h.submit("a@grey.test");
    h.settle();
    h.play(greylister(&seen, 1));
    assert!(h.results.is_empty(), "greylisted: asked again later");
    assert_eq!(first_retry_in(&mut h), retry_delay, "nothing learned yet");
    h.advance(retry_delay);
    h.play(greylister(&seen, 1));
    let a = h.result("a@grey.test");
    assert_eq!(a.reason, Reason::Accepted);
    assert_eq!(a.greylist_wait, Some(retry_delay));

    // The domain's next addresses: retried after the wait learned and a tenth, which their
    // passing confirms, not lengthens.
    for address in ["b@grey.test", "c@grey.test"] {
        h.submit(address);
        h.settle();
        h.play(greylister(&seen, 1));
        assert_eq!(first_retry_in(&mut h), retry_delay + retry_delay / 10);
        h.advance(retry_delay + retry_delay / 10);
        h.play(greylister(&seen, 1));
        assert_eq!(h.result(address).reason, Reason::Accepted);
    }

    // A wait learned elsewhere, for a domain not yet met; too short for this server, which
    // greylists twice: the next sample (330 s, then 240 s more) replaces it, kept within the
    // 120 + 240 s the configured retries wait in all.
    h.scheduler
        .know_greylist_wait("TOLD.test", Duration::from_secs(300));
    h.submit("d@told.test");
    h.settle();
    h.play(greylister(&seen, 2));
    assert_eq!(first_retry_in(&mut h), Duration::from_secs(330));
    h.advance(Duration::from_secs(330));
    h.play(greylister(&seen, 2));
    assert_eq!(first_retry_in(&mut h), Duration::from_secs(240));
    h.advance(Duration::from_secs(240));
    h.play(greylister(&seen, 2));
    assert_eq!(
        h.result("d@told.test").greylist_wait,
        Some(Duration::from_secs(570))
    );
    h.submit("e@told.test");
    h.settle();
    h.play(greylister(&seen, 2));
    assert_eq!(first_retry_in(&mut h), Duration::from_secs(396));
}

/// A long-lived engine forgets the domains it is done with once its table is big enough: their
/// places go to new domains, and what they learned that costs probes (the catch-all answer) is
/// kept by name. A domain with an address still pending (a greylisting retry), or whose
/// politeness still counts (a server cooling down), is kept.
#[test]
fn idle_domains_are_forgotten_and_their_catch_all_answers_kept() {
    let mut h = Harness::new(config());
    h.scheduler.forget_domains_from(4);
    let seen = std::rc::Rc::new(std::cell::RefCell::new(HashMap::new()));
    for (i, name) in [
        "one.test",
        "two.test",
        "grey.test",
        "cool.test",
        "five.test",
        "six.test",
    ]
    .iter()
    .enumerate()
    {
        h.mx(name, 10, [127, 0, 0, 10 + u8::try_from(i).expect("few")]);
    }
    for domain in ["one.test", "two.test", "grey.test", "cool.test"] {
        h.submit(&format!("a@{domain}"));
    }
    h.settle();
    assert_eq!(h.connects.len(), 4);
    for _ in 0..2 {
        h.play(postfix(&["a@one.test", "a@two.test"]));
    }
    h.play(greylister(&seen, 1));
    // cool.test's server refuses the connection: it cools down for a minute.
    let (conn, _, _) = h.connects.remove(0);
    h.scheduler.handle_closed(conn, h.now);
    h.drain();
    assert_eq!(h.result("a@one.test").catch_all, Some(false));
    assert_eq!(h.scheduler.census().domains, 4);

    // A fifth domain: the table is looked over. one.test and two.test are done with; grey.test
    // waits for its retry, cool.test for its server's cooldown.
    h.advance(Duration::from_secs(1));
    h.submit("a@five.test");
    assert_eq!(h.scheduler.stats().domains_forgotten, 2);
    assert_eq!(h.scheduler.census().domains, 3);
    h.settle();
    h.play(postfix(&["a@five.test"]));
    assert_eq!(h.result("a@five.test").reason, Reason::Accepted);

    // one.test again: looked up again, but its catch-all answer was kept: no control.
    h.submit("b@one.test");
    h.settle();
    let (_, heard) = h.play(postfix(&["b@one.test"]));
    let rcpts: Vec<_> = heard.iter().filter(|l| l.starts_with("RCPT")).collect();
    assert_eq!(rcpts, ["RCPT TO:<b@one.test>"], "{heard:?}");
    assert_eq!(h.result("b@one.test").catch_all, Some(false));
    assert_eq!(h.result("b@one.test").reason, Reason::Accepted);

    // grey.test's retry still finds its domain.
    // (Its catch-all control is greylisted too, and asked again.)
    for _ in 0..2_000 {
        if h.results.iter().any(|r| r.address == "a@grey.test") {
            break;
        }
        h.advance(Duration::from_secs(1));
        while !h.connects.is_empty() {
            h.play(greylister(&seen, 1));
        }
    }
    let grey = h.result("a@grey.test");
    assert_eq!(
        (grey.reason, grey.domain.as_deref()),
        (Reason::Accepted, Some("grey.test"))
    );
    assert!(h.scheduler.is_idle());
}

#[test]
fn invalid_and_literal_addresses_need_no_network() {
    let mut h = Harness::new(config());
    h.submit("not an address");
    h.submit("a@[127.0.0.1]");
    assert!(h.connects.is_empty());
    assert_eq!(h.result("not an address").reason, Reason::InvalidSyntax);
    assert!(
        h.result("a@[127.0.0.1]")
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("literal"))
    );
}

/// A session's deadline entry outlives the session (by up to a reply timeout: 30 s by
/// default); at thousands of sessions a second the dead entries would outnumber the live ones
/// a hundredfold. The heap is compacted instead: it stays within twice what is live.
#[test]
fn the_timer_heap_does_not_keep_the_deadlines_of_ended_sessions() {
    let mut config = config();
    config.catch_all = false;
    config.rcpts_per_session = 1;
    config.concurrency = 1;
    let mut h = Harness::new(config);
    h.mx("one.test", 10, [127, 0, 0, 9]);
    let sessions = 5_000;
    for i in 0..sessions {
        h.submit(&format!("user{i}@one.test"));
    }
    h.settle();
    let start = h.now;
    let mut most = 0;
    for _ in 0..sessions {
        h.play(postfix(&[]));
        most = most.max(h.scheduler.timer_entries());
    }
    assert_eq!(
        h.now, start,
        "no deadline passed: every dead entry is still in the heap's way"
    );
    assert_eq!(h.results.len(), sessions);
    assert!(
        most <= 2 * 1024,
        "{most} timer entries for one session at a time"
    );
}

/// A server that mishandles PIPELINING as one seen in the wild: of the group MAIL, RCPT...,
/// QUIT it answers MAIL and QUIT, and loses the RCPT replies in between.
fn loses_rcpt_replies() -> Server {
    Box::new(|line: &str| {
        let upper = line.to_ascii_uppercase();
        if upper.starts_with("EHLO") {
            "250-mx.test\r\n250 PIPELINING\r\n".into()
        } else if upper.starts_with("MAIL") {
            "250 2.1.0 Ok\r\n".into()
        } else if upper.starts_with("QUIT") {
            "221 2.0.0 Bye\r\n".into()
        } else {
            String::new()
        }
    })
}

#[test]
fn replies_lost_under_pipelining_mean_asking_again_in_lock_step() {
    let mut h = Harness::new(config());
    h.mx("drops.test", 10, [127, 0, 0, 9]);
    h.submit("a@drops.test");
    h.submit("b@drops.test");
    h.settle();
    h.play(loses_rcpt_replies());
    assert!(
        h.results.is_empty(),
        "no verdict from the 221: {:#?}",
        h.results
    );
    assert_eq!(h.scheduler.stats().lock_step_retries, 2);
    h.advance(Duration::ZERO);
    assert_eq!(h.connects.len(), 1, "asked again at once");
    h.play(postfix(&["a@drops.test"]));
    assert!(
        h.rounds.iter().all(|round| round.len() == 1),
        "lock-step, one command per round: {:?}",
        h.rounds
    );
    let a = h.result("a@drops.test");
    assert_eq!((a.reason, a.attempts), (Reason::Accepted, 2));
    assert_eq!(
        a.smtp.as_ref().map(|r| r.as_reply().code().get()),
        Some(250)
    );
    assert_eq!(h.result("b@drops.test").reason, Reason::MailboxNotFound);
    assert_eq!(h.result("a@drops.test").catch_all, Some(false));
    // The server is not asked with pipelining again, whoever the address.
    h.submit("c@drops.test");
    h.settle();
    h.play(postfix(&["c@drops.test"]));
    assert!(h.rounds.iter().all(|round| round.len() == 1));
    assert_eq!(h.result("c@drops.test").reason, Reason::Accepted);
}

#[test]
fn an_address_unconfirmed_twice_is_a_protocol_error_with_the_reply_that_showed_it() {
    let mut config = config();
    config.catch_all = false;
    let mut h = Harness::new(config);
    h.mx("drops.test", 10, [127, 0, 0, 9]);
    h.submit("a@drops.test");
    h.settle();
    h.play(loses_rcpt_replies());
    h.advance(Duration::ZERO);
    // In lock-step it answers RCPT with a code RCPT may not get.
    h.play(Box::new(|line: &str| {
        let upper = line.to_ascii_uppercase();
        if upper.starts_with("RCPT") {
            "354 go ahead\r\n".into()
        } else if upper.starts_with("QUIT") {
            "221 Bye\r\n".into()
        } else {
            "250 Ok\r\n".into()
        }
    }));
    let a = h.result("a@drops.test");
    assert_eq!(a.reason, Reason::ProtocolError);
    assert_eq!(
        a.smtp.as_ref().map(|r| r.as_reply().code().get()),
        Some(354)
    );
    assert!(
        a.detail
            .as_deref()
            .is_some_and(|d| d.contains("354 to RCPT TO"))
    );
}

#[test]
fn mail_servers_at_special_purpose_addresses_get_no_packet() {
    let mut config = config();
    config.allow_private_mx = false;
    config.allow_address_literals = true;
    let mut h = Harness::new(config);
    h.mx("inside.test", 10, [10, 0, 0, 5]);
    h.mx("metadata.test", 10, [169, 254, 169, 254]);
    h.mx("loopback.test", 10, [127, 0, 0, 1]);
    h.mx("cgnat.test", 10, [100, 64, 0, 1]);
    // A private first MX is skipped, a public second one used. (No socket exists in this
    // harness: nothing is ever sent to 11.0.0.25.)
    h.mx("mixed.test", 10, [192, 168, 1, 25])
        .mx("mixed.test", 20, [11, 0, 0, 25]);
    for address in [
        "a@inside.test",
        "a@metadata.test",
        "a@loopback.test",
        "a@cgnat.test",
        "a@mixed.test",
        "a@[127.0.0.1]",
        "a@[IPv6:::1]",
        "a@[IPv6:::ffff:10.0.0.1]",
        "a@[IPv6:fe80::1]",
        "a@[IPv6:fd00::25]",
        "a@[IPv6:fec0::1]",
        "a@[IPv6:ff02::1]",
    ] {
        h.submit(address);
    }
    h.settle();
    assert_eq!(h.connects.len(), 1, "only the public MX: {:?}", h.connects);
    assert_eq!(h.connects[0].1.ip(), IpAddr::from([11, 0, 0, 25]));
    for (address, range) in [
        ("a@inside.test", "10.0.0.0/8 (private-use"),
        ("a@metadata.test", "169.254.0.0/16 (link-local"),
        ("a@loopback.test", "127.0.0.0/8 (loopback"),
        ("a@cgnat.test", "100.64.0.0/10 (shared address space"),
        ("a@[127.0.0.1]", "127.0.0.0/8 (loopback"),
        ("a@[IPv6:::1]", "::1/128 (loopback"),
        ("a@[IPv6:::ffff:10.0.0.1]", "10.0.0.0/8 (private-use"),
        ("a@[IPv6:fe80::1]", "fe80::/10 (link-local"),
        ("a@[IPv6:fd00::25]", "fc00::/7 (unique-local"),
        ("a@[IPv6:fec0::1]", "fec0::/10 (site-local"),
        ("a@[IPv6:ff02::1]", "ff00::/8 (multicast"),
    ] {
        let result = h.result(address);
        assert_eq!(result.reason, Reason::NoMailServer, "{address}");
        let detail = result.detail.as_deref().unwrap_or_default();
        assert!(detail.contains(range), "{address}: {detail}");
        assert!(detail.contains("--allow-private-mx"), "{address}: {detail}");
        assert!(result.smtp.is_none() && result.attempts == 0, "{address}");
    }
}

#[test]
fn allowing_private_mail_servers_connects_to_them() {
    let mut config = config();
    config.allow_private_mx = true;
    config.allow_address_literals = true;
    let mut h = Harness::new(config);
    h.mx("inside.test", 10, [10, 0, 0, 5]);
    h.submit("a@inside.test");
    h.submit("a@[127.0.0.1]");
    h.settle();
    let mut ips: Vec<IpAddr> = h.connects.iter().map(|c| c.1.ip()).collect();
    ips.sort();
    assert_eq!(
        ips,
        [IpAddr::from([10, 0, 0, 5]), IpAddr::from([127, 0, 0, 1])]
    );
}

/// A server that answers RCPT for mailboxes it does not know with `refusal`.
fn refusing_with(mailboxes: &'static [&'static str], refusal: &'static str) -> Server {
    Box::new(move |line: &str| {
        let upper = line.to_ascii_uppercase();
        if upper.starts_with("EHLO") {
            "250-mx.test\r\n250 PIPELINING\r\n".into()
        } else if let Some(rest) = upper.strip_prefix("RCPT TO:<") {
            let mailbox = rest.trim_end_matches('>').to_ascii_lowercase();
            if mailboxes.contains(&mailbox.as_str()) {
                "250 2.1.5 Ok\r\n".into()
            } else {
                format!("{refusal}\r\n")
            }
        } else if upper.starts_with("QUIT") {
            "221 2.0.0 Bye\r\n".into()
        } else {
            "250 2.0.0 Ok\r\n".into()
        }
    })
}

#[test]
fn an_unexplained_refusal_beside_an_acceptance_is_a_missing_mailbox() {
    let mut h = Harness::new(config());
    h.mx("odd.test", 10, [127, 0, 0, 9]);
    h.submit("alice@odd.test");
    h.submit("nobody@odd.test");
    h.settle();
    h.play(refusing_with(&["alice@odd.test"], "521 5.3.0 Not here"));
    assert_eq!(h.result("alice@odd.test").reason, Reason::Accepted);
    let nobody = h.result("nobody@odd.test");
    assert_eq!(nobody.reason, Reason::MailboxNotFound);
    let detail = nobody.detail.as_deref().unwrap_or_default();
    assert!(
        detail.starts_with("calibrated") && detail.contains("521 5.3.0"),
        "{detail}"
    );
    assert_eq!(
        nobody.smtp.as_ref().map(|r| r.as_reply().code().get()),
        Some(521)
    );
}

#[test]
fn the_same_unexplained_refusal_for_all_and_the_control_is_blocked() {
    let mut h = Harness::new(config());
    h.mx("walled.test", 10, [127, 0, 0, 9]);
    h.submit("alice@walled.test");
    h.submit("bob@walled.test");
    h.settle();
    h.play(refusing_with(&[], "550 5.0.0 Rejected"));
    for address in ["alice@walled.test", "bob@walled.test"] {
        let result = h.result(address);
        assert_eq!(result.reason, Reason::Blocked, "{address}");
        assert!(
            result
                .detail
                .as_deref()
                .is_some_and(|d| d.contains("catch-all control got the same refusal")),
            "{:?}",
            result.detail
        );
        assert_eq!(
            result.catch_all, None,
            "a blanket refusal says nothing of catch-all"
        );
    }
}

#[test]
fn an_unexplained_refusal_alone_is_read_by_its_code() {
    let mut config = config();
    config.catch_all = false;
    let mut h = Harness::new(config);
    h.mx("odd.test", 10, [127, 0, 0, 9]);
    h.submit("x@odd.test");
    h.submit("y@odd2.test");
    h.mx("odd2.test", 10, [127, 0, 0, 8]);
    h.settle();
    h.play(refusing_with(
        &[],
        "550 5.2.4 Mailing list expansion problem",
    ));
    h.play(refusing_with(&[], "521 Delivery not authorized"));
    let x = h.result("x@odd.test");
    assert_eq!(x.reason, Reason::MailboxNotFound);
    assert!(
        x.detail
            .as_deref()
            .is_some_and(|d| d.starts_with("uncalibrated"))
    );
    let y = h.result("y@odd2.test");
    assert_eq!(
        y.reason,
        Reason::Blocked,
        "521 is refused for good, but not a verdict"
    );
}

#[test]
fn a_server_that_never_answers_quit_leaves_answers_unproven_then_timed_out() {
    let mut config = config();
    config.catch_all = false;
    let mut h = Harness::new(config);
    h.mx("mute.test", 10, [127, 0, 0, 9]);
    h.submit("a@mute.test");
    h.settle();
    let mute_at_quit = || -> Server {
        Box::new(|line: &str| {
            if line.to_ascii_uppercase().starts_with("QUIT") {
                String::new()
            } else {
                "250 2.1.5 Ok\r\n".into()
            }
        })
    };
    h.play(mute_at_quit());
    h.advance(Duration::from_secs(6));
    assert!(
        h.results.is_empty(),
        "a 250 nothing vouches for is no verdict"
    );
    assert_eq!(h.scheduler.stats().lock_step_retries, 1);
    h.play(mute_at_quit());
    h.advance(Duration::from_secs(6));
    let a = h.result("a@mute.test");
    assert_eq!((a.reason, a.attempts), (Reason::Timeout, 2));
    assert!(
        a.detail
            .as_deref()
            .is_some_and(|d| d.contains("QUIT reply")),
        "{:?}",
        a.detail
    );
}

/// The nine-minute hang: addresses accepted and held for the catch-all control, the control
/// handed back (here by a 452), and then the servers gone. Each control-only session failed to
/// connect and handed the control back for free, so a new one started at every tick of the
/// domain's rate, forever. Every try of the control counts now, and a refused connection
/// cools the server down.
#[test]
fn a_control_whose_servers_vanish_gives_up_and_the_held_addresses_get_their_verdicts() {
    let mut config = config();
    config.domain_rate = Some(10.0);
    let mut h = Harness::new(config);
    h.mx("gone.test", 10, [127, 0, 0, 9]);
    h.submit("a@gone.test");
    h.settle();
    // a is accepted; the control, last, is refused for "too many recipients".
    h.play(Box::new(|line: &str| {
        let upper = line.to_ascii_uppercase();
        if upper.starts_with("EHLO") {
            "250-mx.test\r\n250 PIPELINING\r\n".into()
        } else if upper.starts_with("RCPT TO:<A@") {
            "250 2.1.5 Ok\r\n".into()
        } else if upper.starts_with("RCPT") {
            "452 4.5.3 Error: too many recipients\r\n".into()
        } else if upper.starts_with("QUIT") {
            "221 2.0.0 Bye\r\n".into()
        } else {
            "250 2.0.0 Ok\r\n".into()
        }
    }));
    assert!(h.results.is_empty(), "a is held for the control");
    // From now on every connection is refused.
    let mut refused = 0;
    for _ in 0..10_000 {
        if !h.results.is_empty() {
            break;
        }
        while let Some((conn, _, _)) = (!h.connects.is_empty()).then(|| h.connects.remove(0)) {
            h.scheduler.handle_closed(conn, h.now);
            h.drain();
            refused += 1;
        }
        h.advance(Duration::from_millis(100));
    }
    let a = h.result("a@gone.test");
    assert_eq!((a.reason, a.catch_all), (Reason::Accepted, None));
    assert!(
        refused <= 5,
        "{refused} connections to a server that is gone"
    );
    assert!(h.scheduler.is_idle());
}

impl Harness {
    /// Submits with options; the tag is the submission's number.
    fn submit_with(&mut self, address: &str, options: SubmitOptions) -> u64 {
        let tag = self.scheduler.stats().submitted;
        self.scheduler.submit_with(address, tag, options, self.now);
        self.drain();
        tag
    }

    fn results_for(&self, tag: u64) -> Vec<&VerifyResult> {
        self.results.iter().filter(|r| r.tag == tag).collect()
    }
}

#[test]
fn a_mailbox_submitted_again_while_in_flight_joins_the_probe() {
    let mut config = config();
    config.catch_all = false;
    let mut h = Harness::new(config);
    h.mx("one.test", 10, [127, 0, 0, 9]);
    h.submit("alice@one.test");
    h.submit("Alice <alice@one.test>");
    h.submit("bob@one.test");
    h.settle();
    h.submit("alice@one.test"); // while the session waits to be played
    let (_, heard) = h.play(postfix(&["alice@one.test"]));
    let rcpts: Vec<&String> = heard.iter().filter(|l| l.starts_with("RCPT")).collect();
    assert_eq!(rcpts.len(), 2, "alice asked once: {rcpts:?}");
    assert_eq!(h.results.len(), 4, "every submission answered");
    for tag in [0, 1, 3] {
        let results = h.results_for(tag);
        assert_eq!(results.len(), 1, "tag {tag}: exactly one result");
        assert_eq!(results[0].reason, Reason::Accepted);
        assert_eq!(
            results[0].smtp.as_ref().map(|r| r.as_reply().code().get()),
            Some(250)
        );
    }
    assert_eq!(
        h.results_for(1)[0].address,
        "Alice <alice@one.test>",
        "its own text"
    );
    assert_eq!(h.results_for(2)[0].reason, Reason::MailboxNotFound);
    let stats = h.scheduler.stats();
    assert_eq!((stats.joined, stats.sessions, stats.finished), (2, 1, 4));
    assert_eq!(h.scheduler.pending(), 0);
    assert!(h.scheduler.is_idle());
}

#[test]
fn joined_submissions_count_as_pending_so_memory_stays_bounded() {
    let mut h = Harness::new(config());
    h.mx("one.test", 10, [127, 0, 0, 9]);
    for _ in 0..5 {
        h.submit("alice@one.test");
    }
    assert_eq!(h.scheduler.pending(), 5, "one job, four waiting on it");
    assert_eq!(h.scheduler.census().jobs, 1);
}

#[test]
fn finished_results_are_remembered_only_when_asked() {
    for (remember, expected_sessions) in [(0, 2), (10, 1)] {
        let mut config = config();
        config.catch_all = false;
        config.remember_results = remember;
        let mut h = Harness::new(config);
        h.mx("one.test", 10, [127, 0, 0, 9]);
        h.submit("alice@one.test");
        h.settle();
        h.play(postfix(&["alice@one.test"]));
        h.submit("alice@one.test");
        h.settle();
        while !h.connects.is_empty() {
            h.play(postfix(&["alice@one.test"]));
        }
        let again = h.results_for(1);
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].reason, Reason::Accepted);
        assert_eq!(again[0].address, "alice@one.test");
        let stats = h.scheduler.stats();
        assert_eq!(
            stats.sessions, expected_sessions,
            "remember {remember}: {:#?}",
            h.results
        );
        assert_eq!(stats.remembered, u64::from(remember > 0));
        assert_eq!(h.scheduler.census().remembered, usize::from(remember > 0));
    }
}

#[test]
fn at_its_deadline_a_submission_is_answered_timeout_and_the_probe_goes_on() {
    let mut config = config();
    config.catch_all = false;
    config.remember_results = 10;
    let mut h = Harness::new(config);
    h.mx("slow.test", 10, [127, 0, 0, 9]);
    let hurried = h.submit_with(
        "alice@slow.test",
        SubmitOptions::real_time().deadline(Duration::from_secs(5)),
    );
    let patient = h.submit_with("alice@slow.test", SubmitOptions::bulk());
    h.settle();
    assert_eq!(h.connects.len(), 1);
    h.advance(Duration::from_secs(4));
    assert!(h.results.is_empty(), "nothing before the deadline");
    h.advance(Duration::from_secs(2));
    let answered = h.results_for(hurried);
    assert_eq!(answered.len(), 1);
    assert_eq!(answered[0].reason, Reason::Timeout);
    assert_eq!(answered[0].verdict(), crate::Verdict::Unknown);
    assert!(
        answered[0]
            .detail
            .as_deref()
            .unwrap_or_default()
            .contains("5s"),
        "{:?}",
        answered[0].detail
    );
    assert!(
        h.results_for(patient).is_empty(),
        "the other waits for the probe"
    );
    // The server answers at last: the patient one gets the verdict, the hurried one nothing
    // more, and the verdict is remembered.
    h.play(postfix(&["alice@slow.test"]));
    assert_eq!(h.results_for(hurried).len(), 1, "never answered twice");
    assert_eq!(h.results_for(patient)[0].reason, Reason::Accepted);
    let later = h.submit_with("alice@slow.test", SubmitOptions::real_time());
    assert_eq!(h.results_for(later)[0].reason, Reason::Accepted);
    let stats = h.scheduler.stats();
    assert_eq!(
        (stats.past_deadline, stats.remembered, stats.sessions),
        (1, 1, 1)
    );
    assert!(h.scheduler.is_idle());
}

#[test]
fn with_late_results_a_submission_answered_at_its_deadline_gets_the_probes_own_verdict_too() {
    for late in [false, true] {
        let mut config = config();
        config.catch_all = false;
        config.late_results = late;
        let mut h = Harness::new(config);
        h.mx("slow.test", 10, [127, 0, 0, 9]);
        let hurried = h.submit_with(
            "alice@slow.test",
            SubmitOptions::real_time().deadline(Duration::from_secs(5)),
        );
        h.settle();
        h.advance(Duration::from_secs(6));
        assert_eq!(h.results_for(hurried)[0].reason, Reason::Timeout);
        h.play(postfix(&["alice@slow.test"]));
        let reasons: Vec<Reason> = h.results_for(hurried).iter().map(|r| r.reason).collect();
        if late {
            assert_eq!(reasons, [Reason::Timeout, Reason::Accepted]);
        } else {
            assert_eq!(reasons, [Reason::Timeout]);
        }
        let stats = h.scheduler.stats();
        assert_eq!((stats.finished, stats.late), (1, u64::from(late)));
        assert!(h.scheduler.is_idle());
    }
}

#[test]
fn a_deadline_after_the_verdict_changes_nothing() {
    let mut config = config();
    config.catch_all = false;
    let mut h = Harness::new(config);
    h.mx("one.test", 10, [127, 0, 0, 9]);
    let tag = h.submit_with(
        "alice@one.test",
        SubmitOptions::bulk().deadline(Duration::from_secs(5)),
    );
    h.settle();
    h.play(postfix(&[]));
    h.advance(Duration::from_secs(10));
    let results = h.results_for(tag);
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].reason, Reason::MailboxNotFound);
    assert_eq!(h.scheduler.stats().past_deadline, 0);
}

#[test]
fn real_time_work_takes_the_next_free_session_ahead_of_bulk() {
    let mut config = config();
    config.catch_all = false;
    config.concurrency = 1;
    config.rcpts_per_session = 2;
    let mut h = Harness::new(config);
    h.mx("bulk.test", 10, [127, 0, 0, 9]);
    h.mx("other.test", 10, [127, 0, 0, 10]);
    h.mx("now.test", 10, [127, 0, 0, 8]);
    for local in ["a", "b", "c", "d"] {
        h.submit(&format!("{local}@bulk.test"));
        h.submit(&format!("{local}@other.test"));
    }
    h.settle();
    assert_eq!(h.connects.len(), 1, "the one session is taken by bulk work");
    h.submit_with("x@now.test", SubmitOptions::real_time());
    h.settle_dns();
    h.play(postfix(&[]));
    h.advance(Duration::ZERO);
    assert_eq!(h.connects.len(), 1);
    assert_eq!(
        h.connects[0].1.ip(),
        IpAddr::from([127, 0, 0, 8]),
        "the real-time domain goes next, without waiting for company"
    );
    let (_, heard) = h.play(postfix(&[]));
    assert!(heard.iter().any(|l| l.contains("x@now.test")), "{heard:?}");
}

/// At a server whose sessions are all taken (the per-MX cap), a real-time domain waiting for
/// a slot gets the next one, ahead of the bulk domains waiting for the same server.
#[test]
fn at_a_full_server_real_time_work_takes_the_next_slot() {
    let mut config = config();
    config.catch_all = false;
    config.concurrency = 10;
    config.per_mx = 1;
    config.rcpts_per_session = 2;
    let mut h = Harness::new(config);
    for domain in ["bulk1.test", "bulk2.test", "bulk3.test", "now.test"] {
        h.mx(domain, 10, [127, 0, 0, 9]);
    }
    for local in ["a", "b", "c", "d"] {
        for domain in ["bulk1.test", "bulk2.test", "bulk3.test"] {
            h.submit(&format!("{local}@{domain}"));
        }
    }
    h.settle();
    assert_eq!(h.connects.len(), 1, "one session at the server at once");
    h.submit_with("x@now.test", SubmitOptions::real_time());
    h.settle_dns();
    h.advance(Duration::ZERO);
    assert_eq!(
        h.connects.len(),
        1,
        "the real-time domain waits for the slot too"
    );
    h.play(postfix(&[]));
    h.advance(Duration::ZERO);
    let (_, heard) = h.play(postfix(&[]));
    assert!(
        heard.iter().any(|l| l.contains("x@now.test")),
        "the freed slot went to bulk work: {heard:?}"
    );
}

#[test]
fn a_real_time_submission_of_a_queued_address_moves_it_ahead() {
    let mut config = config();
    config.catch_all = false;
    config.concurrency = 1;
    config.rcpts_per_session = 2;
    let mut h = Harness::new(config);
    h.mx("bulk.test", 10, [127, 0, 0, 9]);
    for local in ["a", "b", "c", "d", "e", "f"] {
        h.submit(&format!("{local}@bulk.test"));
    }
    h.settle();
    assert_eq!(h.connects.len(), 1, "a and b in flight, the rest queued");
    h.submit_with("f@bulk.test", SubmitOptions::real_time());
    let mut order = Vec::new();
    while !h.connects.is_empty() {
        let (_, heard) = h.play(postfix(&[]));
        order.extend(heard.into_iter().filter(|l| l.starts_with("RCPT")));
        h.advance(BATCH_HOLD);
    }
    assert_eq!(
        order.len(),
        6,
        "f asked once for both submissions: {order:?}"
    );
    assert_eq!(order[2], "RCPT TO:<f@bulk.test>", "{order:?}");
    assert_eq!(h.results.len(), 7);
    assert_eq!(h.scheduler.stats().joined, 1);
}

// Provider profiles: the engine applies the profile of the MX host a session goes to.

fn rcpts(heard: &[String]) -> Vec<&String> {
    heard.iter().filter(|l| l.starts_with("RCPT")).collect()
}

#[test]
fn a_profile_reads_what_the_generic_table_misreads_and_says_so() {
    const NO_SUCH: &str = "550 5.7.1 No such user!\r\n";
    for profiles in [true, false] {
        let mut config = config();
        config.provider_profiles = profiles;
        let mut h = Harness::new(config);
        h.mx("ya.test", 10, [127, 0, 0, 9])
            .hosted_at("ya.test", "yandex.net");
        h.submit("a@ya.test");
        h.submit("b@ya.test");
        h.settle();
        h.play(server_refusing(&["a@ya.test"], NO_SUCH));
        let b = h.result("b@ya.test");
        if profiles {
            assert_eq!(b.reason, Reason::MailboxNotFound);
            let detail = b.detail.as_deref().unwrap_or_default();
            assert!(
                detail.starts_with("Yandex Mail (Yandex 360) profile:"),
                "{detail}"
            );
        } else {
            // The generic table reads 5.7.1 as a policy refusal.
            assert_eq!(b.reason, Reason::Blocked);
        }
        assert_eq!(h.result("a@ya.test").reason, Reason::Accepted);
        assert_eq!(b.record().provider, Some("yandex"), "recognised either way");
    }
}

#[test]
fn a_provider_that_accepts_everyone_gets_no_control_and_never_deliverable() {
    let mut h = Harness::new(config());
    h.mx("yh.test", 10, [127, 0, 0, 9])
        .hosted_at("yh.test", "mta5.am0.yahoodns.net");
    h.submit("a@yh.test");
    h.submit("b@yh.test");
    h.settle();
    let (_, heard) = h.play(server_refusing(&["a@yh.test", "b@yh.test"], ""));
    assert_eq!(rcpts(&heard).len(), 2, "no catch-all control: {heard:?}");
    assert_eq!(h.scheduler.stats().controls, 0);
    for address in ["a@yh.test", "b@yh.test"] {
        let result = h.result(address);
        assert_eq!(result.reason, Reason::AcceptAll, "{address}");
        assert_eq!(result.catch_all, None, "not tested");
        let detail = result.detail.as_deref().unwrap_or_default();
        assert!(detail.contains("only after DATA"), "{detail}");
        assert_eq!(
            result.smtp.as_ref().map(|r| r.as_reply().code().get()),
            Some(250)
        );
    }
}

#[test]
fn a_provider_that_takes_one_rcpt_a_session_gets_one_and_the_control_its_own() {
    let mut h = Harness::new(config());
    h.mx("hm.test", 10, [127, 0, 0, 9])
        .hosted_at("hm.test", "hotmail-com.olc.protection.outlook.com");
    for local in ["a", "b", "c"] {
        h.submit(&format!("{local}@hm.test"));
    }
    h.settle();
    // The profile's pace is 2 connections a second and 2 sessions at one server address.
    h.advance(Duration::from_secs(5));
    assert_eq!(h.connects.len(), 2, "two sessions at the server at once");
    let mut sessions = Vec::new();
    while !h.connects.is_empty() {
        let (_, heard) = h.play(postfix(&["a@hm.test", "c@hm.test"]));
        sessions.push(
            rcpts(&heard)
                .iter()
                .map(|l| (*l).clone())
                .collect::<Vec<_>>(),
        );
        h.advance(Duration::from_secs(1));
    }
    assert_eq!(
        sessions.len(),
        4,
        "the control and three addresses: {sessions:?}"
    );
    for rcpts in &sessions {
        assert_eq!(rcpts.len(), 1, "one RCPT a session: {sessions:?}");
    }
    assert!(
        !sessions[0][0].contains("a@hm.test"),
        "the control goes first, alone: {sessions:?}"
    );
    let times: Vec<Instant> = h.history.iter().map(|(_, _, at)| *at).collect();
    for pair in times.windows(2) {
        assert!(
            pair[1] - pair[0] >= Duration::from_millis(500),
            "connections 2 a second at most: {times:?}"
        );
    }
    assert_eq!(h.result("a@hm.test").reason, Reason::Accepted);
    assert_eq!(h.result("a@hm.test").catch_all, Some(false));
    assert_eq!(h.result("b@hm.test").reason, Reason::MailboxNotFound);
}

#[test]
fn slow_down_closes_the_providers_gate_and_spends_no_retry() {
    const THROTTLE: &str = "451 4.7.500 Access denied, please try again later. (AS843)\r\n";
    let mut config = config();
    config.catch_all = false;
    config.retries = 0;
    config.throttle_backoff = Some(Duration::from_secs(30));
    let mut h = Harness::new(config);
    h.mx("m1.test", 10, [127, 0, 0, 9])
        .hosted_at("m1.test", "m1-test.mail.protection.outlook.com");
    h.mx("m2.test", 10, [127, 0, 0, 8])
        .hosted_at("m2.test", "m2-test.mail.protection.outlook.com");
    h.submit("a@m1.test");
    h.settle();
    let throttled_at = h.now;
    h.play(server_refusing(&[], THROTTLE));
    assert!(
        h.results.is_empty(),
        "no verdict, no retry spent: {:?}",
        h.results
    );
    assert_eq!(h.scheduler.stats().throttled, 1);
    // Another domain at the same provider waits for the gate too.
    h.submit("b@m2.test");
    h.settle();
    h.advance(Duration::from_secs(29));
    assert!(
        h.connects.is_empty(),
        "the provider is left alone for its backoff"
    );
    h.advance(Duration::from_secs(2));
    assert_eq!(h.connects.len(), 2, "both domains go once the gate opens");
    assert!(
        h.connects
            .iter()
            .all(|(_, _, at)| *at >= throttled_at + Duration::from_secs(30))
    );
    h.play(postfix(&["a@m1.test"]));
    h.advance(Duration::from_secs(1));
    h.play(postfix(&[]));
    assert_eq!(h.result("a@m1.test").reason, Reason::Accepted);
    assert_eq!(h.result("b@m2.test").reason, Reason::MailboxNotFound);
    assert_eq!(h.scheduler.stats().retries, 0);
}

#[test]
fn slow_down_too_often_is_the_verdict_with_the_providers_reply() {
    const THROTTLE: &str = "451 4.7.500 Access denied, please try again later. (AS843)\r\n";
    let mut config = config();
    config.catch_all = false;
    config.throttle_backoff = Some(Duration::from_secs(10));
    let mut h = Harness::new(config);
    h.mx("m1.test", 10, [127, 0, 0, 9])
        .hosted_at("m1.test", "m1-test.mail.protection.outlook.com");
    h.submit("a@m1.test");
    h.settle();
    for _ in 0..=policy::MAX_THROTTLES {
        assert_eq!(h.connects.len(), 1);
        h.play(server_refusing(&[], THROTTLE));
        h.advance(Duration::from_secs(11));
    }
    let a = h.result("a@m1.test");
    assert_eq!(a.reason, Reason::TemporaryFailure);
    assert_eq!(
        a.attempts,
        u32::from(policy::MAX_THROTTLES) + 1,
        "waited out 3, the 4th decides"
    );
    assert!(
        a.detail
            .as_deref()
            .unwrap_or_default()
            .contains("throttles")
    );
    assert_eq!(h.scheduler.stats().retries, 0, "throttles are not retries");
}

#[test]
fn a_421_the_profile_reads_is_a_verdict_not_a_failover() {
    let mut config = config();
    config.catch_all = false;
    let mut h = Harness::new(config);
    h.mx("ws.test", 10, [127, 0, 0, 9])
        .mx("ws.test", 20, [127, 0, 0, 8])
        .hosted_at("ws.test", "aspmx.l.google.com");
    h.submit("a@ws.test");
    h.settle();
    h.play(Box::new(|line: &str| {
        if line.to_ascii_uppercase().starts_with("RCPT") {
            "421 4.7.0 IP not in whitelist for RCPT domain, closing connection. - gsmtp\r\n".into()
        } else if line.to_ascii_uppercase().starts_with("EHLO") {
            "250 mx.google.com\r\n".into()
        } else {
            "250 2.1.0 OK\r\n".into()
        }
    }));
    h.advance(Duration::from_secs(1));
    assert!(h.connects.is_empty(), "no failover to the second MX");
    let a = h.result("a@ws.test");
    assert_eq!(a.reason, Reason::Blocked);
    assert_eq!(
        a.smtp.as_ref().map(|r| r.as_reply().code().get()),
        Some(421)
    );
    assert!(
        a.detail
            .as_deref()
            .unwrap_or_default()
            .contains("listed IP addresses")
    );
}

#[test]
fn a_catch_all_answer_at_a_provider_says_what_the_profile_knows_of_it() {
    let mut h = Harness::new(config());
    h.mx("relay.test", 10, [127, 0, 0, 9])
        .hosted_at("relay.test", "relay-test.mail.protection.outlook.com");
    h.submit("a@relay.test");
    h.settle();
    let (_, heard) = h.play(server_refusing(&[], "250 2.1.5 Recipient OK\r\n"));
    assert_eq!(rcpts(&heard).len(), 2, "the address and the control");
    let a = h.result("a@relay.test");
    assert_eq!(a.reason, Reason::AcceptAll);
    assert_eq!(a.catch_all, Some(true));
    let detail = a.detail.as_deref().unwrap_or_default();
    assert!(
        detail.starts_with("Microsoft 365 (Exchange Online) profile:")
            && detail.contains("Internal Relay"),
        "{detail}"
    );
}

#[test]
fn held_addresses_are_let_go_when_the_next_server_cannot_ask_the_control() {
    const GREY: &str = "451 4.7.1 Greylisted, try again later\r\n";
    let mut h = Harness::new(config());
    h.mx("mixed.test", 10, [127, 0, 0, 9])
        .mx("mixed.test", 20, [127, 0, 0, 8]);
    h.named
        .insert(("mixed.test".into(), 1), "mta5.am0.yahoodns.net".into());
    h.submit("a@mixed.test");
    h.settle();
    // The first server accepts the address and greylists the control (the last RCPT).
    let mut rcpts_seen = 0;
    h.play(Box::new(move |line: &str| {
        let upper = line.to_ascii_uppercase();
        if upper.starts_with("RCPT") {
            rcpts_seen += 1;
            if rcpts_seen == 1 {
                "250 2.1.5 Ok\r\n".into()
            } else {
                GREY.into()
            }
        } else if upper.starts_with("QUIT") {
            "221 2.0.0 Bye\r\n".into()
        } else {
            "250 ok\r\n".into()
        }
    }));
    assert!(h.results.is_empty(), "held for the control");
    // The control is asked again; the first server refuses the connection and cools down.
    h.advance(Duration::from_secs(1));
    let (conn, _, _) = h.connects.remove(0);
    h.scheduler.handle_closed(conn, h.now);
    h.drain();
    h.advance(Duration::from_secs(1));
    // The next server is Yahoo's, where a control means nothing: the address goes.
    let a = h.result("a@mixed.test");
    assert_eq!(a.reason, Reason::Accepted);
    assert_eq!(a.catch_all, None);
    assert!(h.scheduler.is_idle());
}

#[test]
fn a_providers_domains_take_turns_at_its_gate_and_real_time_goes_first() {
    let mut config = config();
    config.catch_all = false;
    let mut h = Harness::new(config);
    for domain in ["big1.test", "big2.test", "small.test"] {
        h.mx(domain, 10, [127, 0, 0, 9]).hosted_at(
            domain,
            &format!("{}.aspmx.l.google.com", domain.replace('.', "-")),
        );
    }
    for n in 0..40 {
        h.submit(&format!("u{n}@big1.test"));
        h.submit(&format!("u{n}@big2.test"));
    }
    h.settle();
    let tag = h.submit_with("alice@small.test", SubmitOptions::real_time());
    h.settle_dns();
    // Google's profile: 5 connections a second, 2 sessions at one server address.
    let mut order = Vec::new();
    for _ in 0..8 {
        h.advance(Duration::from_millis(250));
        while !h.connects.is_empty() {
            let (_, heard) = h.play(postfix(&[]));
            let rcpt = rcpts(&heard)
                .first()
                .map(|l| (*l).clone())
                .unwrap_or_default();
            order.push(
                rcpt.split('@')
                    .nth(1)
                    .unwrap_or_default()
                    .trim_end_matches('>')
                    .to_owned(),
            );
        }
    }
    let small = order.iter().position(|d| d == "small.test");
    assert!(
        small.is_some_and(|at| at <= 2),
        "real-time goes at the next opening: {order:?}"
    );
    assert_eq!(h.results_for(tag).len(), 1);
    // The first session went before anyone waited; from then on the line is first come,
    // first served, and the two bulk domains (five sessions each) take turns.
    let bulk: Vec<&String> = order.iter().filter(|d| d.starts_with("big")).collect();
    assert!(bulk.len() >= 9, "{order:?}");
    assert!(
        bulk[1..9].windows(2).all(|pair| pair[0] != pair[1]),
        "the bulk domains take turns: {order:?}"
    );
}

#[test]
fn slow_down_at_mail_from_is_waited_for_and_the_control_asked_again() {
    let mut config = config();
    config.throttle_backoff = Some(Duration::from_secs(5));
    let mut h = Harness::new(config);
    h.mx("ws.test", 10, [127, 0, 0, 9])
        .hosted_at("ws.test", "aspmx.l.google.com");
    h.submit("a@ws.test");
    h.settle();
    h.play(Box::new(|line: &str| {
        if line.to_ascii_uppercase().starts_with("MAIL") {
            "421 4.7.0 Try again later, closing connection. - gsmtp\r\n".into()
        } else {
            "250 mx.google.com\r\n".into()
        }
    }));
    assert!(h.results.is_empty(), "waits for the provider");
    h.advance(Duration::from_secs(4));
    assert!(h.connects.is_empty(), "the backoff holds");
    h.advance(Duration::from_secs(2));
    // The server now accepts every recipient: the control, asked again, says so.
    let (_, heard) = h.play(server_refusing(&[], "250 2.1.5 OK\r\n"));
    assert_eq!(
        rcpts(&heard).len(),
        2,
        "the address and the control: {heard:?}"
    );
    let a = h.result("a@ws.test");
    assert_eq!(a.reason, Reason::AcceptAll);
    assert_eq!(a.catch_all, Some(true));
    assert_eq!(h.scheduler.stats().throttled, 1);
}

#[test]
fn a_proxy_that_never_opens_the_tunnel_fails_itself_not_the_server() {
    let mut config = config();
    config.catch_all = false;
    config.retries = 0;
    config.proxies = vec![crate::socks5::Proxy::parse("socks5://127.0.0.50:1080").expect("valid")];
    let mut h = Harness::new(config);
    h.mx("tunnel.test", 10, [127, 0, 0, 9]);
    h.submit("a@tunnel.test");
    h.settle();
    h.advance(Duration::from_millis(10));
    assert_eq!(h.connects.len(), 1);
    let (conn, to, _) = h.connects.remove(0);
    assert_eq!(to, "127.0.0.50:1080".parse::<SocketAddr>().expect("addr"));
    h.scheduler.handle_connected(conn, h.now);
    assert_eq!(
        h.scheduler.output(conn),
        [5, 1, 0],
        "the SOCKS5 greeting first"
    );
    h.scheduler.consume_output(conn, 3);
    h.drain();
    // The proxy says nothing, past every deadline; the next attempts never even connect.
    for _ in 0..policy::MAX_PROXY_ATTEMPTS {
        h.advance(Duration::from_secs(400));
    }
    assert_eq!(
        h.history.len(),
        usize::from(policy::MAX_PROXY_ATTEMPTS),
        "one session per attempt"
    );
    let a = h.result("a@tunnel.test");
    assert_eq!(a.reason, Reason::ConnectionFailed);
    let detail = a.detail.as_deref().unwrap_or_default();
    assert!(
        detail.starts_with("proxy_failed: ") && detail.contains("did not open"),
        "{detail}"
    );
    assert_eq!(
        h.scheduler.stats().proxy_failures,
        u64::from(policy::MAX_PROXY_ATTEMPTS)
    );
    assert_eq!(h.scheduler.stats().failovers, 0, "the server is not blamed");
}

/// A proxy whose own port 25 is blocked reports every server unreachable (SOCKS5 reply 4) while
/// the other proxy of the pool reaches them: after five different servers its reports are its
/// own failures, its domains move to the other proxy, and their addresses get real answers.
#[test]
fn a_proxy_that_reaches_no_server_while_another_does_is_taken_out() {
    let mut config = config();
    config.catch_all = false;
    config.retries = 0;
    let blocked: SocketAddr = "127.0.0.50:1080".parse().expect("addr");
    let good: SocketAddr = "127.0.0.51:1080".parse().expect("addr");
    config.proxies = [blocked, good]
        .iter()
        .map(|addr| crate::socks5::Proxy::parse(&format!("socks5://{addr}")).expect("valid"))
        .collect();
    let mut h = Harness::new(config);
    for d in 0..24u8 {
        h.mx(&format!("d{d}.test"), 10, [127, 0, 1, d]);
        h.submit(&format!("a@d{d}.test"));
    }
    h.settle();
    let mut guard = 0;
    while h.results.len() < 24 {
        guard += 1;
        assert!(
            guard < 500,
            "the run does not end: {} results",
            h.results.len()
        );
        // The good proxy's tunnels first, so that the pool knows a proxy that reaches servers.
        h.connects.sort_by_key(|(_, to, _)| *to != good);
        if h.connects.is_empty() {
            h.advance(Duration::from_secs(1));
            continue;
        }
        let to = h.connects[0].1;
        if to == good {
            let (conn, _) = h.socks5(0);
            h.play_connected(conn, postfix(&[]));
        } else {
            assert_eq!(to, blocked);
            h.socks5(4);
        }
        h.drain();
    }
    let unknown: Vec<&VerifyResult> = h
        .results
        .iter()
        .filter(|r| r.reason == Reason::ConnectionFailed)
        .collect();
    // Only the servers it reported before it was suspect count as unreachable.
    assert!(
        unknown.len() <= super::proxies::UNREACHABLE_TO_SUSPECT,
        "{unknown:#?}"
    );
    assert!(
        h.results
            .iter()
            .filter(|r| r.reason == Reason::MailboxNotFound)
            .count()
            >= 24 - super::proxies::UNREACHABLE_TO_SUSPECT,
        "{:#?}",
        h.results
    );
    for r in &unknown {
        let detail = r.detail.as_deref().unwrap_or_default();
        assert!(
            !detail.contains("proxy_failed"),
            "the server's failure: {detail}"
        );
    }
    assert!(h.scheduler.stats().proxy_failures >= 1);
}
