//! The resolver driven by hand: no socket, a clock moved by hand, responses built for each case.
//! Grouped by what the test is about: routing, transport, spoofing, aliases, cache.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::*;

const SERVER_1: &str = "192.0.2.1:53";
const SERVER_2: &str = "192.0.2.2:53";

fn name(text: &str) -> Name {
    Name::from_ascii(text).expect("test name")
}

fn addr(text: &str) -> SocketAddr {
    text.parse().expect("test address")
}

/// A query the resolver sent, decoded, with where it went.
#[derive(Debug, Clone)]
struct Sent {
    socket: SocketId,
    server: SocketAddr,
    tcp: bool,
    query: Message,
}

impl Sent {
    fn qname(&self) -> String {
        self.query.queries[0].name.to_ascii()
    }

    fn qtype(&self) -> RecordType {
        self.query.queries[0].query_type
    }

    /// A response to this query, built by `fill`.
    fn respond(&self, fill: impl FnOnce(&mut Message)) -> Vec<u8> {
        let mut message = Message::response(self.query.metadata.id, OpCode::Query);
        message.metadata.recursion_available = true;
        message.add_query(self.query.queries[0].clone());
        fill(&mut message);
        message.to_vec().expect("test response encodes")
    }
}

struct Harness {
    resolver: Resolver,
    now: Instant,
    sent: Vec<Sent>,
    closed: Vec<SocketId>,
    events: Vec<RouteEvent>,
}

impl Harness {
    fn new(servers: &[&str]) -> Self {
        Self::with_seed(servers, [7; 32])
    }

    fn with_seed(servers: &[&str], seed: [u8; 32]) -> Self {
        let nameservers = NameserverConfig::with_servers(servers.iter().map(|s| addr(s)).collect());
        let config = ResolverConfig::new(LookupConfig::new(nameservers));
        Self::with_config(config, seed)
    }

    fn with_config(config: ResolverConfig, seed: [u8; 32]) -> Self {
        Self {
            resolver: Resolver::new(config, seed),
            now: Instant::now(),
            sent: Vec::new(),
            closed: Vec::new(),
            events: Vec::new(),
        }
    }

    fn resolve(&mut self, domain: &str) -> RouteId {
        let id = self.resolver.resolve(domain, self.now);
        self.drain();
        id
    }

    /// Takes every output of the resolver.
    fn drain(&mut self) {
        while let Some(transmit) = self.resolver.poll_transmit() {
            match transmit {
                Transmit::Udp {
                    socket,
                    server,
                    payload,
                } => self.sent.push(Sent {
                    socket,
                    server,
                    tcp: false,
                    query: Message::from_vec(&payload).expect("the resolver sends valid queries"),
                }),
                Transmit::Tcp {
                    socket,
                    server,
                    payload,
                } => {
                    let len = usize::from(u16::from_be_bytes([payload[0], payload[1]]));
                    assert_eq!(len, payload.len() - 2, "TCP frame length");
                    self.sent.push(Sent {
                        socket,
                        server,
                        tcp: true,
                        query: Message::from_vec(&payload[2..]).expect("valid query"),
                    });
                }
                Transmit::Close { socket } => self.closed.push(socket),
            }
        }
        while let Some(event) = self.resolver.poll_event() {
            self.events.push(event);
        }
    }

    /// The queries sent and not yet looked at.
    fn take_sent(&mut self) -> Vec<Sent> {
        std::mem::take(&mut self.sent)
    }

    /// The one query sent since the last look.
    fn one_sent(&mut self) -> Sent {
        let sent = self.take_sent();
        assert_eq!(sent.len(), 1, "expected one query, got {sent:#?}");
        sent.into_iter().next().expect("one")
    }

    fn udp(&mut self, sent: &Sent, from: SocketAddr, bytes: &[u8]) {
        self.resolver.handle_udp(sent.socket, from, bytes, self.now);
        self.drain();
    }

    fn reply(&mut self, sent: &Sent, fill: impl FnOnce(&mut Message)) {
        let bytes = sent.respond(fill);
        if sent.tcp {
            let framed = tcp_frame(&bytes);
            self.resolver.handle_tcp(sent.socket, &framed, self.now);
            self.drain();
        } else {
            self.udp(sent, sent.server, &bytes);
        }
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        if self
            .resolver
            .poll_timeout()
            .is_some_and(|at| at <= self.now)
        {
            self.resolver.handle_timeout(self.now);
        }
        self.drain();
    }

    /// Moves the clock through each deadline the resolver names, to `limit` later.
    fn run_timers(&mut self, limit: Duration) {
        let end = self.now + limit;
        while let Some(at) = self.resolver.poll_timeout() {
            if at > end {
                break;
            }
            self.now = self.now.max(at);
            self.resolver.handle_timeout(self.now);
            self.drain();
        }
        self.now = end;
    }

    fn result(&mut self, id: RouteId) -> Result<MailRoute, RouteError> {
        let index = self
            .events
            .iter()
            .position(|e| e.id == id)
            .unwrap_or_else(|| panic!("no result for {id:?}; events {:#?}", self.events));
        self.events.remove(index).result
    }
}

fn mx(owner: &str, preference: u16, exchange: &str) -> Record {
    Record::from_rdata(
        name(owner),
        300,
        RData::MX(MX::new(preference, name(exchange))),
    )
}

fn a(owner: &str, ip: [u8; 4]) -> Record {
    Record::from_rdata(name(owner), 300, RData::A(A(Ipv4Addr::from(ip))))
}

fn aaaa(owner: &str, ip: &str) -> Record {
    Record::from_rdata(
        name(owner),
        300,
        RData::AAAA(AAAA(ip.parse::<Ipv6Addr>().expect("v6"))),
    )
}

fn soa(zone: &str, minimum: u32) -> Record {
    let soa = SOA::new(
        name("ns.example."),
        name("hostmaster.example."),
        1,
        3600,
        600,
        86400,
        minimum,
    );
    Record::from_rdata(name(zone), 3600, RData::SOA(soa))
}

fn hosts(route: &MailRoute) -> Vec<(String, u16, Vec<IpAddr>)> {
    route
        .hosts
        .iter()
        .map(|h| (h.name.clone(), h.preference, h.addresses.clone()))
        .collect()
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("ip")
}

/// Answers every pending A/AAAA query: `addresses` maps a name (with trailing dot) to its
/// addresses; names not in the map get NXDOMAIN.
fn answer_addresses(h: &mut Harness, addresses: &HashMap<&str, Vec<&str>>) {
    for sent in h.take_sent() {
        let qname = sent.qname();
        let qtype = sent.qtype();
        match addresses.get(qname.as_str()) {
            Some(ips) => h.reply(&sent, |m| {
                for text in ips {
                    match (ip(text), qtype) {
                        (IpAddr::V4(v4), RecordType::A) => m.add_answer(a(&qname, v4.octets())),
                        (IpAddr::V6(v6), RecordType::AAAA) => {
                            m.add_answer(aaaa(&qname, &v6.to_string()))
                        }
                        _ => m,
                    };
                }
                m.add_authority(soa("example.", 60));
            }),
            None => h.reply(&sent, |m| {
                m.metadata.response_code = ResponseCode::NXDomain;
                m.add_authority(soa("example.", 60));
            }),
        }
    }
}

mod routing {
    use super::*;

    #[test]
    fn mx_hosts_in_preference_order_with_glue() {
        let mut h = Harness::new(&[SERVER_1]);
        let id = h.resolve("Example.COM");
        let query = h.one_sent();
        assert_eq!(
            (query.qname().as_str(), query.qtype()),
            ("example.com.", RecordType::MX)
        );
        assert_eq!(query.server, addr(SERVER_1));
        h.reply(&query, |m| {
            m.add_answer(mx("example.com.", 20, "mx2.example.com."));
            m.add_answer(mx("example.com.", 10, "MX1.example.com."));
            m.add_additional(a("mx1.example.com.", [192, 0, 2, 10]));
            m.add_additional(aaaa("mx1.example.com.", "2001:db8::10"));
            m.add_additional(a("mx2.example.com.", [192, 0, 2, 20]));
        });
        assert!(
            h.take_sent().is_empty(),
            "glue makes address queries unnecessary"
        );
        let route = h.result(id).expect("route");
        assert_eq!(route.domain, "example.com");
        assert!(!route.implicit);
        assert_eq!(
            hosts(&route),
            [
                (
                    "mx1.example.com".into(),
                    10,
                    vec![ip("192.0.2.10"), ip("2001:db8::10")]
                ),
                ("mx2.example.com".into(), 20, vec![ip("192.0.2.20")]),
            ]
        );
    }

    #[test]
    fn exchanges_without_glue_are_resolved() {
        let mut h = Harness::new(&[SERVER_1]);
        let id = h.resolve("example.com");
        let query = h.one_sent();
        h.reply(&query, |m| {
            m.add_answer(mx("example.com.", 10, "mx1.example.net."));
            m.add_answer(mx("example.com.", 20, "mx2.example.net."));
        });
        let questions: Vec<(String, RecordType)> =
            h.sent.iter().map(|s| (s.qname(), s.qtype())).collect();
        assert_eq!(
            questions,
            [
                ("mx1.example.net.".into(), RecordType::A),
                ("mx1.example.net.".into(), RecordType::AAAA),
                ("mx2.example.net.".into(), RecordType::A),
                ("mx2.example.net.".into(), RecordType::AAAA),
            ]
        );
        let addresses = HashMap::from([
            ("mx1.example.net.", vec!["192.0.2.1", "2001:db8::1"]),
            ("mx2.example.net.", vec!["192.0.2.2"]),
        ]);
        answer_addresses(&mut h, &addresses);
        let route = h.result(id).expect("route");
        assert_eq!(
            hosts(&route),
            [
                (
                    "mx1.example.net".into(),
                    10,
                    vec![ip("192.0.2.1"), ip("2001:db8::1")]
                ),
                ("mx2.example.net".into(), 20, vec![ip("192.0.2.2")]),
            ]
        );
    }

    #[test]
    fn equal_preferences_are_shuffled_and_lower_ones_come_first() {
        let mut orders = std::collections::HashSet::new();
        for seed in 0..40u8 {
            let mut h = Harness::with_seed(&[SERVER_1], [seed; 32]);
            let id = h.resolve("example.com");
            let query = h.one_sent();
            h.reply(&query, |m| {
                for (pref, host) in [(20, "c"), (10, "a"), (10, "b"), (20, "d")] {
                    let exchange = format!("{host}.example.com.");
                    m.add_answer(mx("example.com.", pref, &exchange));
                    m.add_additional(a(&exchange, [192, 0, 2, 1]));
                }
            });
            let route = h.result(id).expect("route");
            let names: Vec<String> = route.hosts.iter().map(|h| h.name.clone()).collect();
            assert_eq!(
                route.hosts.iter().map(|h| h.preference).collect::<Vec<_>>(),
                [10, 10, 20, 20]
            );
            orders.insert(names);
        }
        assert_eq!(
            orders.len(),
            4,
            "both pairs appear in both orders: {orders:?}"
        );
    }

    #[test]
    fn nodata_means_the_domain_is_its_own_mail_host() {
        let mut h = Harness::new(&[SERVER_1]);
        let id = h.resolve("example.com");
        let query = h.one_sent();
        h.reply(&query, |m| {
            m.add_authority(soa("example.com.", 300));
        });
        let addresses = HashMap::from([("example.com.", vec!["192.0.2.80", "2001:db8::80"])]);
        assert_eq!(h.sent.len(), 2);
        answer_addresses(&mut h, &addresses);
        let route = h.result(id).expect("route");
        assert!(route.implicit);
        assert_eq!(
            hosts(&route),
            [(
                "example.com".into(),
                0,
                vec![ip("192.0.2.80"), ip("2001:db8::80")]
            )]
        );
    }

    #[test]
    fn nodata_without_an_address_is_no_mail_server() {
        let mut h = Harness::new(&[SERVER_1]);
        let id = h.resolve("example.com");
        let query = h.one_sent();
        h.reply(&query, |m| {
            m.add_authority(soa("example.com.", 300));
        });
        for sent in h.take_sent() {
            h.reply(&sent, |m| {
                m.add_authority(soa("example.com.", 300));
            });
        }
        assert_eq!(h.result(id), Err(RouteError::NoMailServer));
    }

    #[test]
    fn nxdomain_is_domain_not_found() {
        let mut h = Harness::new(&[SERVER_1]);
        let id = h.resolve("nowhere.example");
        let query = h.one_sent();
        h.reply(&query, |m| {
            m.metadata.response_code = ResponseCode::NXDomain;
            m.add_authority(soa("example.", 300));
        });
        assert_eq!(h.result(id), Err(RouteError::DomainNotFound));
        assert!(h.take_sent().is_empty());
    }

    #[test]
    fn a_null_mx_accepts_no_mail_and_nothing_more_is_asked() {
        let mut h = Harness::new(&[SERVER_1]);
        let id = h.resolve("example.com");
        let query = h.one_sent();
        h.reply(&query, |m| {
            m.add_answer(mx("example.com.", 0, "."));
        });
        assert_eq!(h.result(id), Err(RouteError::NullMx));
        assert!(h.take_sent().is_empty());
    }

    #[test]
    fn a_null_mx_beside_real_exchanges_is_ignored() {
        let mut h = Harness::new(&[SERVER_1]);
        let id = h.resolve("example.com");
        let query = h.one_sent();
        h.reply(&query, |m| {
            m.add_answer(mx("example.com.", 0, "."));
            m.add_answer(mx("example.com.", 10, "mx.example.com."));
            m.add_additional(a("mx.example.com.", [192, 0, 2, 25]));
        });
        let route = h.result(id).expect("route");
        assert_eq!(
            hosts(&route),
            [("mx.example.com".into(), 10, vec![ip("192.0.2.25")])]
        );
    }

    #[test]
    fn exchanges_that_do_not_exist_leave_no_mail_server() {
        let mut h = Harness::new(&[SERVER_1]);
        let id = h.resolve("example.com");
        let query = h.one_sent();
        h.reply(&query, |m| {
            m.add_answer(mx("example.com.", 10, "gone.example.net."));
        });
        answer_addresses(&mut h, &HashMap::new());
        assert_eq!(h.result(id), Err(RouteError::NoMailServer));
    }

    #[test]
    fn failed_exchange_lookups_are_a_dns_failure_not_a_verdict() {
        let mut h = Harness::new(&[SERVER_1]);
        let id = h.resolve("example.com");
        let query = h.one_sent();
        h.reply(&query, |m| {
            m.add_answer(mx("example.com.", 10, "mx.example.net."));
        });
        for sent in h.take_sent() {
            h.reply(&sent, |m| m.metadata.response_code = ResponseCode::ServFail);
        }
        // One server, two attempts: each question is asked twice before it fails.
        for sent in h.take_sent() {
            h.reply(&sent, |m| m.metadata.response_code = ResponseCode::ServFail);
        }
        assert_eq!(
            h.result(id),
            Err(RouteError::DnsFailure(LookupFailure::ServerError(
                ResponseCode::ServFail
            )))
        );
    }

    #[test]
    fn a_host_that_resolves_is_kept_when_another_fails() {
        let mut h = Harness::new(&[SERVER_1]);
        let id = h.resolve("example.com");
        let query = h.one_sent();
        h.reply(&query, |m| {
            m.add_answer(mx("example.com.", 10, "broken.example.net."));
            m.add_answer(mx("example.com.", 20, "ok.example.net."));
        });
        for _ in 0..2 {
            for sent in h.take_sent() {
                if sent.qname() == "ok.example.net." {
                    h.reply(&sent, |m| {
                        if sent.qtype() == RecordType::A {
                            m.add_answer(a("ok.example.net.", [192, 0, 2, 7]));
                        }
                    });
                } else {
                    h.reply(&sent, |m| m.metadata.response_code = ResponseCode::Refused);
                }
            }
        }
        let route = h.result(id).expect("route");
        assert_eq!(
            hosts(&route),
            [("ok.example.net".into(), 20, vec![ip("192.0.2.7")])]
        );
    }

    #[test]
    fn only_the_configured_families_are_asked() {
        let nameservers = NameserverConfig::with_servers(vec![addr(SERVER_1)]);
        let mut config = ResolverConfig::new(LookupConfig::new(nameservers));
        config.families = AddressFamilies::V4;
        let mut h = Harness::with_config(config, [1; 32]);
        let id = h.resolve("example.com");
        let query = h.one_sent();
        h.reply(&query, |m| {
            m.add_answer(mx("example.com.", 10, "mx.example.com."));
            m.add_additional(aaaa("mx.example.com.", "2001:db8::25"));
        });
        // IPv6 glue is of no use to an IPv4-only route: the A record is asked for.
        let sent = h.one_sent();
        assert_eq!(
            (sent.qname().as_str(), sent.qtype()),
            ("mx.example.com.", RecordType::A)
        );
        h.reply(&sent, |m| {
            m.add_answer(a("mx.example.com.", [192, 0, 2, 25]));
        });
        assert_eq!(
            hosts(&h.result(id).expect("route"))[0].2,
            [ip("192.0.2.25")]
        );
    }

    #[test]
    fn invalid_domains_fail_at_once() {
        let mut h = Harness::new(&[SERVER_1]);
        for domain in ["", ".", "a..b", &"x".repeat(64)] {
            let id = h.resolve(domain);
            assert_eq!(
                h.result(id),
                Err(RouteError::DnsFailure(LookupFailure::InvalidName)),
                "{domain:?}"
            );
        }
        assert!(h.take_sent().is_empty());
    }

    #[test]
    fn route_errors_map_to_reasons() {
        use crate::verdict::Reason;
        assert_eq!(RouteError::DomainNotFound.reason(), Reason::DomainNotFound);
        assert_eq!(RouteError::NullMx.reason(), Reason::NullMx);
        assert_eq!(RouteError::NoMailServer.reason(), Reason::NoMailServer);
        assert_eq!(
            RouteError::DnsFailure(LookupFailure::Timeout).reason(),
            Reason::DnsFailure
        );
    }
}

mod transport {
    use super::*;

    #[test]
    fn silence_retransmits_to_the_next_server_then_times_out() {
        let nameservers = NameserverConfig::with_servers(vec![addr(SERVER_1), addr(SERVER_2)]);
        let mut lookups = LookupConfig::new(nameservers);
        lookups.lookup_timeout = Duration::from_secs(60);
        let mut h = Harness::with_config(ResolverConfig::new(lookups), [7; 32]);
        let id = h.resolve("example.com");
        let first = h.one_sent();
        assert_eq!(first.server, addr(SERVER_1));
        h.advance(Duration::from_millis(4_999));
        assert!(h.take_sent().is_empty(), "no retransmit before the timeout");
        h.advance(Duration::from_millis(1));
        let second = h.one_sent();
        assert_eq!(second.server, addr(SERVER_2));
        assert_ne!(
            second.socket, first.socket,
            "a fresh socket, so a fresh port"
        );
        assert_ne!(
            second.query.metadata.id, first.query.metadata.id,
            "a fresh ID"
        );
        // Round two waits twice as long.
        h.advance(Duration::from_secs(5));
        let third = h.one_sent();
        assert_eq!(third.server, addr(SERVER_1));
        h.advance(Duration::from_secs(9));
        assert!(h.take_sent().is_empty());
        h.advance(Duration::from_secs(1));
        let fourth = h.one_sent();
        assert_eq!(fourth.server, addr(SERVER_2));
        // Four tries (2 attempts x 2 servers): after the last one's wait, the lookup fails.
        h.advance(Duration::from_secs(9));
        assert!(h.events.is_empty());
        h.advance(Duration::from_secs(1));
        assert_eq!(
            h.result(id),
            Err(RouteError::DnsFailure(LookupFailure::Timeout))
        );
        assert_eq!(h.resolver.stats().lookups.timeouts, 1);
        for socket in [first.socket, second.socket, third.socket, fourth.socket] {
            assert!(
                h.closed.contains(&socket),
                "every socket is closed at the end"
            );
        }
        assert!(
            h.resolver.poll_timeout().is_none(),
            "nothing left to wait for"
        );
    }

    #[test]
    fn the_lookup_timeout_caps_the_tries() {
        // Defaults: 5 s, 2 attempts, 2 servers would take 30 s; the lookup timeout is 20 s.
        let mut h = Harness::new(&[SERVER_1, SERVER_2]);
        let id = h.resolve("example.com");
        h.run_timers(Duration::from_secs(19));
        assert_eq!(h.take_sent().len(), 3);
        assert!(h.events.is_empty());
        h.advance(Duration::from_secs(1));
        assert_eq!(
            h.result(id),
            Err(RouteError::DnsFailure(LookupFailure::Timeout))
        );
        assert!(h.take_sent().is_empty());
    }

    #[test]
    fn a_late_answer_to_an_earlier_try_still_counts() {
        let mut h = Harness::new(&[SERVER_1, SERVER_2]);
        let id = h.resolve("example.com");
        let first = h.one_sent();
        h.advance(Duration::from_secs(5));
        let _second = h.one_sent();
        h.reply(&first, |m| {
            m.metadata.response_code = ResponseCode::NXDomain;
        });
        assert_eq!(h.result(id), Err(RouteError::DomainNotFound));
    }

    #[test]
    fn servfail_moves_on_to_the_next_server_at_once() {
        let mut h = Harness::new(&[SERVER_1, SERVER_2]);
        let id = h.resolve("example.com");
        let first = h.one_sent();
        h.reply(&first, |m| {
            m.metadata.response_code = ResponseCode::ServFail
        });
        let second = h.one_sent();
        assert_eq!(second.server, addr(SERVER_2));
        assert!(h.closed.contains(&first.socket));
        h.reply(&second, |m| {
            m.add_answer(mx("example.com.", 10, "mx.example.com."));
            m.add_additional(a("mx.example.com.", [192, 0, 2, 1]));
        });
        assert!(h.result(id).is_ok());
    }

    #[test]
    fn refused_everywhere_is_a_dns_failure() {
        let mut h = Harness::new(&[SERVER_1, SERVER_2]);
        let id = h.resolve("example.com");
        for _ in 0..4 {
            let sent = h.one_sent();
            h.reply(&sent, |m| m.metadata.response_code = ResponseCode::Refused);
        }
        assert_eq!(
            h.result(id),
            Err(RouteError::DnsFailure(LookupFailure::ServerError(
                ResponseCode::Refused
            )))
        );
        assert!(h.take_sent().is_empty());
    }

    #[test]
    fn an_unreachable_server_is_skipped_at_once() {
        let mut h = Harness::new(&[SERVER_1, SERVER_2]);
        let id = h.resolve("example.com");
        let first = h.one_sent();
        h.resolver.handle_socket_closed(first.socket, h.now);
        h.drain();
        let second = h.one_sent();
        assert_eq!(second.server, addr(SERVER_2));
        h.resolver.handle_socket_closed(second.socket, h.now);
        h.drain();
        for _ in 0..2 {
            let sent = h.one_sent();
            h.resolver.handle_socket_closed(sent.socket, h.now);
            h.drain();
        }
        assert_eq!(
            h.result(id),
            Err(RouteError::DnsFailure(LookupFailure::Unreachable))
        );
    }

    #[test]
    fn truncation_moves_to_tcp_and_partial_reads_are_reassembled() {
        let mut h = Harness::new(&[SERVER_1]);
        let id = h.resolve("example.com");
        let udp = h.one_sent();
        h.reply(&udp, |m| m.metadata.truncation = true);
        let tcp = h.one_sent();
        assert!(tcp.tcp);
        assert_eq!(tcp.server, addr(SERVER_1));
        assert!(h.closed.contains(&udp.socket));
        let bytes = tcp.respond(|m| {
            for i in 0..60u8 {
                let exchange = format!("mx{i}.example.com.");
                m.add_answer(mx("example.com.", u16::from(i), &exchange));
                m.add_additional(a(&exchange, [192, 0, 2, i]));
            }
        });
        let framed = tcp_frame(&bytes);
        assert!(framed.len() > 1232, "larger than a UDP answer may be");
        for chunk in framed.chunks(7) {
            h.resolver.handle_tcp(tcp.socket, chunk, h.now);
            h.drain();
        }
        let route = h.result(id).expect("route");
        assert_eq!(route.hosts.len(), 10, "capped at max_hosts");
        assert_eq!(route.hosts[0].name, "mx0.example.com");
        assert_eq!(h.resolver.stats().lookups.tcp_queries, 1);
    }

    #[test]
    fn formerr_to_edns_asks_again_without_it() {
        let mut h = Harness::new(&[SERVER_1]);
        let id = h.resolve("example.com");
        let first = h.one_sent();
        assert!(first.query.edns.is_some());
        h.reply(&first, |m| m.metadata.response_code = ResponseCode::FormErr);
        let second = h.one_sent();
        assert!(second.query.edns.is_none());
        assert_eq!(second.server, addr(SERVER_1));
        h.reply(&second, |m| {
            m.metadata.response_code = ResponseCode::NXDomain;
        });
        assert_eq!(h.result(id), Err(RouteError::DomainNotFound));
    }

    #[test]
    fn garbage_on_tcp_ends_that_try() {
        let mut h = Harness::new(&[SERVER_1]);
        let id = h.resolve("example.com");
        let udp = h.one_sent();
        h.reply(&udp, |m| m.metadata.truncation = true);
        let tcp = h.one_sent();
        h.resolver
            .handle_tcp(tcp.socket, &[0, 4, 1, 2, 3, 4], h.now);
        h.drain();
        assert!(h.closed.contains(&tcp.socket));
        // The next UDP try goes out.
        let next = h.one_sent();
        assert!(!next.tcp);
        h.reply(&next, |m| m.metadata.response_code = ResponseCode::NXDomain);
        assert_eq!(h.result(id), Err(RouteError::DomainNotFound));
    }

    #[test]
    fn a_route_has_a_deadline_of_its_own() {
        let nameservers = NameserverConfig::with_servers(vec![addr(SERVER_1)]);
        let mut config = ResolverConfig::new(LookupConfig::new(nameservers));
        config.route_timeout = Duration::from_secs(3);
        let mut h = Harness::with_config(config, [3; 32]);
        let id = h.resolve("example.com");
        h.run_timers(Duration::from_secs(3));
        assert_eq!(
            h.result(id),
            Err(RouteError::DnsFailure(LookupFailure::Timeout))
        );
        assert_eq!(h.resolver.stats().route_timeouts, 1);
        assert_eq!(h.resolver.routes_in_flight(), 0);
    }
}

mod pacing {
    use super::*;

    fn with_cap(cap: usize) -> Harness {
        let nameservers = NameserverConfig::with_servers(vec![addr(SERVER_1)]);
        let mut lookups = LookupConfig::new(nameservers);
        lookups.max_in_flight = cap;
        Harness::with_config(ResolverConfig::new(lookups), [9; 32])
    }

    #[test]
    fn thousands_of_lookups_can_be_in_flight_at_once() {
        let mut h = with_cap(5_000);
        let ids: Vec<RouteId> = (0..5_000)
            .map(|i| h.resolve(&format!("d{i}.example")))
            .collect();
        let sent = h.take_sent();
        assert_eq!(sent.len(), 5_000, "all on the wire at once");
        assert_eq!(h.resolver.lookups_on_the_wire(), 5_000);
        let sockets: std::collections::HashSet<SocketId> = sent.iter().map(|s| s.socket).collect();
        assert_eq!(sockets.len(), 5_000, "a socket each");
        for query in &sent {
            h.reply(query, |m| {
                let owner = query.qname();
                m.add_answer(mx(&owner, 10, "mx.example."));
                m.add_additional(a("mx.example.", [192, 0, 2, 1]));
            });
        }
        for id in ids {
            assert!(h.result(id).is_ok());
        }
        assert_eq!(h.resolver.lookups_in_flight(), 0);
    }

    #[test]
    fn beyond_the_cap_lookups_wait_their_turn() {
        let mut h = with_cap(3);
        let ids: Vec<RouteId> = (0..10)
            .map(|i| h.resolve(&format!("d{i}.example")))
            .collect();
        let first = h.take_sent();
        assert_eq!(first.len(), 3);
        assert_eq!(h.resolver.lookups_in_flight(), 10);
        // A queued lookup's deadline has not started yet: nothing times out while it waits.
        h.advance(Duration::from_secs(3));
        assert!(h.events.is_empty());
        // Each answer lets the next one out, in order.
        let mut answered = 0;
        let mut queue: std::collections::VecDeque<Sent> = first.into();
        while let Some(query) = queue.pop_front() {
            h.reply(&query, |m| {
                m.metadata.response_code = ResponseCode::NXDomain
            });
            answered += 1;
            queue.extend(h.take_sent());
            assert!(h.resolver.lookups_on_the_wire() <= 3);
        }
        assert_eq!(answered, 10);
        let names: Vec<String> = ids
            .iter()
            .map(|id| match h.result(*id) {
                Err(RouteError::DomainNotFound) => "nx".to_owned(),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(names, vec!["nx"; 10]);
    }
}

mod spoofing {
    use super::*;

    #[test]
    fn mismatched_responses_are_dropped_and_the_real_one_accepted() {
        let mut h = Harness::new(&[SERVER_1]);
        let id = h.resolve("example.com");
        let query = h.one_sent();
        let good = query.respond(|m| {
            m.metadata.response_code = ResponseCode::NXDomain;
        });
        // Wrong ID.
        let mut wrong_id = good.clone();
        wrong_id[0] ^= 0xff;
        h.udp(&query, query.server, &wrong_id);
        // Wrong question.
        let mut other = query.clone();
        other.query.queries[0].name = name("example.org.");
        h.udp(&query, query.server, &other.respond(|_| {}));
        // Wrong type.
        let mut other_type = query.clone();
        other_type.query.queries[0].query_type = RecordType::A;
        h.udp(&query, query.server, &other_type.respond(|_| {}));
        // Right bytes, wrong source address, then wrong source port.
        h.udp(&query, addr("192.0.2.66:53"), &good);
        h.udp(&query, addr("192.0.2.1:5353"), &good);
        // Garbage, and a compression loop.
        let mut garbage = good[..2].to_vec();
        garbage.extend_from_slice(b"\xde\xad");
        h.udp(&query, query.server, &garbage);
        let mut looped = good[..12].to_vec();
        looped.extend_from_slice(&[0xc0, 0x0c, 0x00, 0x0f, 0x00, 0x01]);
        h.udp(&query, query.server, &looped);
        assert!(h.events.is_empty(), "nothing was believed: {:?}", h.events);
        let stats = h.resolver.stats().lookups;
        assert_eq!(stats.dropped_mismatched, 5);
        assert_eq!(stats.dropped_malformed, 2);
        // The real answer still gets through.
        h.udp(&query, query.server, &good);
        assert_eq!(h.result(id), Err(RouteError::DomainNotFound));
    }

    #[test]
    fn packets_for_finished_lookups_are_dropped() {
        let mut h = Harness::new(&[SERVER_1]);
        let id = h.resolve("example.com");
        let query = h.one_sent();
        let answer = query.respond(|m| m.metadata.response_code = ResponseCode::NXDomain);
        h.udp(&query, query.server, &answer);
        assert!(h.result(id).is_err());
        h.udp(&query, query.server, &answer);
        assert!(h.events.is_empty());
    }

    #[test]
    fn ids_are_not_sequential() {
        let mut h = Harness::new(&[SERVER_1]);
        let ids: Vec<u16> = (0..8)
            .map(|i| {
                h.resolve(&format!("d{i}.example.com"));
                h.one_sent().query.metadata.id
            })
            .collect();
        let steps: std::collections::HashSet<u16> =
            ids.windows(2).map(|w| w[1].wrapping_sub(w[0])).collect();
        assert!(steps.len() > 1, "IDs {ids:?} follow a pattern");
    }
}

mod aliases {
    use super::*;

    #[test]
    fn a_cname_outside_the_answer_is_looked_up() {
        let mut h = Harness::new(&[SERVER_1]);
        let id = h.resolve("example.com");
        let query = h.one_sent();
        h.reply(&query, |m| {
            m.add_answer(Record::from_rdata(
                name("example.com."),
                60,
                RData::CNAME(CNAME(name("mail.example.net."))),
            ));
        });
        let next = h.one_sent();
        assert_eq!(
            (next.qname().as_str(), next.qtype()),
            ("mail.example.net.", RecordType::MX)
        );
        h.reply(&next, |m| {
            m.add_answer(mx("mail.example.net.", 5, "mx.example.net."));
            m.add_additional(a("mx.example.net.", [192, 0, 2, 5]));
        });
        let route = h.result(id).expect("route");
        assert_eq!(route.domain, "example.com");
        assert_eq!(
            hosts(&route),
            [("mx.example.net".into(), 5, vec![ip("192.0.2.5")])]
        );
    }

    #[test]
    fn a_cname_loop_across_responses_ends() {
        let mut h = Harness::new(&[SERVER_1]);
        let id = h.resolve("a.example");
        let first = h.one_sent();
        h.reply(&first, |m| {
            m.add_answer(Record::from_rdata(
                name("a.example."),
                60,
                RData::CNAME(CNAME(name("b.example."))),
            ));
        });
        let second = h.one_sent();
        h.reply(&second, |m| {
            m.add_answer(Record::from_rdata(
                name("b.example."),
                60,
                RData::CNAME(CNAME(name("a.example."))),
            ));
        });
        assert_eq!(
            h.result(id),
            Err(RouteError::DnsFailure(LookupFailure::AliasChain))
        );
    }

    #[test]
    fn a_long_chain_across_responses_ends() {
        let mut h = Harness::new(&[SERVER_1]);
        let id = h.resolve("c0.example");
        for i in 0..=MAX_CHAIN {
            let sent = h.one_sent();
            h.reply(&sent, |m| {
                m.add_answer(Record::from_rdata(
                    name(&format!("c{i}.example.")),
                    60,
                    RData::CNAME(CNAME(name(&format!("c{}.example.", i + 1)))),
                ));
            });
        }
        assert_eq!(
            h.result(id),
            Err(RouteError::DnsFailure(LookupFailure::AliasChain))
        );
        assert!(h.take_sent().is_empty());
    }
}

mod cache {
    use super::*;

    fn resolve_with_glue(h: &mut Harness, domain: &str) -> RouteId {
        let id = h.resolve(domain);
        let query = h.one_sent();
        h.reply(&query, |m| {
            m.add_answer(mx(&format!("{domain}."), 10, "mx.example.com."));
            m.add_additional(a("mx.example.com.", [192, 0, 2, 9]));
        });
        id
    }

    #[test]
    fn a_second_route_comes_from_the_cache() {
        let mut h = Harness::new(&[SERVER_1]);
        let first = resolve_with_glue(&mut h, "example.com");
        let route = h.result(first).expect("route");
        let second = h.resolve("EXAMPLE.com.");
        assert!(h.take_sent().is_empty(), "no query for a cached domain");
        assert_eq!(h.result(second), Ok(route));
        assert_eq!(h.resolver.stats().lookups.cache_hits, 1);
        // After the TTL (300 s) the domain is asked again.
        h.advance(Duration::from_secs(300));
        let _third = h.resolve("example.com");
        assert_eq!(h.one_sent().qname(), "example.com.");
    }

    #[test]
    fn concurrent_routes_of_one_domain_share_one_query() {
        let mut h = Harness::new(&[SERVER_1]);
        let ids: Vec<RouteId> = (0..100).map(|_| h.resolve("example.com")).collect();
        let query = h.one_sent();
        h.reply(&query, |m| {
            m.add_answer(mx("example.com.", 10, "mx.example.com."));
            m.add_additional(a("mx.example.com.", [192, 0, 2, 9]));
        });
        for id in ids {
            assert!(h.result(id).is_ok());
        }
        assert_eq!(h.resolver.stats().lookups.coalesced, 99);
        assert_eq!(h.resolver.stats().lookups.udp_queries, 1);
    }

    #[test]
    fn nxdomain_is_cached_for_the_soa_minimum() {
        let mut h = Harness::new(&[SERVER_1]);
        let id = h.resolve("gone.example");
        let query = h.one_sent();
        h.reply(&query, |m| {
            m.metadata.response_code = ResponseCode::NXDomain;
            m.add_authority(soa("example.", 120));
        });
        assert_eq!(h.result(id), Err(RouteError::DomainNotFound));
        let again = h.resolve("gone.example");
        assert!(h.take_sent().is_empty());
        assert_eq!(h.result(again), Err(RouteError::DomainNotFound));
        h.advance(Duration::from_secs(120));
        h.resolve("gone.example");
        assert_eq!(h.take_sent().len(), 1);
    }

    #[test]
    fn failures_are_cached_briefly() {
        let mut h = Harness::new(&[SERVER_1]);
        let id = h.resolve("broken.example");
        for _ in 0..2 {
            let sent = h.one_sent();
            h.reply(&sent, |m| m.metadata.response_code = ResponseCode::ServFail);
        }
        assert!(matches!(h.result(id), Err(RouteError::DnsFailure(_))));
        let again = h.resolve("broken.example");
        assert!(h.take_sent().is_empty());
        assert!(matches!(h.result(again), Err(RouteError::DnsFailure(_))));
        h.advance(Duration::from_secs(30));
        h.resolve("broken.example");
        assert_eq!(h.take_sent().len(), 1);
    }

    #[test]
    fn exchange_addresses_are_shared_across_domains() {
        let mut h = Harness::new(&[SERVER_1]);
        for domain in ["one.example", "two.example"] {
            let id = h.resolve(domain);
            let query = h.one_sent();
            h.reply(&query, |m| {
                m.add_answer(mx(&format!("{domain}."), 10, "shared-mx.example."));
            });
            if domain == "one.example" {
                answer_addresses(
                    &mut h,
                    &HashMap::from([("shared-mx.example.", vec!["192.0.2.44"])]),
                );
            } else {
                assert!(
                    h.take_sent().is_empty(),
                    "the exchange's addresses are cached"
                );
            }
            assert_eq!(
                h.result(id).expect("route").hosts[0].addresses,
                [ip("192.0.2.44")]
            );
        }
    }
}
