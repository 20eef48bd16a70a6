//! The DNS client through the real event loop and real sockets, against the in-repo responder
//! (`mxprobe::sim::dns`) and the misbehaviour a real server will not produce on demand.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use mxprobe::dns::{
    LookupConfig, LookupFailure, MailRoute, NameserverConfig, ResolverConfig, RouteError,
};
use mxprobe::driver::resolve_routes;
use mxprobe::sim::dns::{DnsResponder, Misbehaviour, Zone};

/// Short timeouts: a try waits 200 ms, a lookup at most 2 s.
fn config(servers: &[SocketAddr]) -> ResolverConfig {
    let mut nameservers = NameserverConfig::with_servers(servers.to_vec());
    nameservers.timeout = Duration::from_millis(200);
    let mut lookups = LookupConfig::new(nameservers);
    lookups.lookup_timeout = Duration::from_secs(2);
    ResolverConfig::new(lookups)
}

fn route(servers: &[SocketAddr], domain: &str) -> Result<MailRoute, RouteError> {
    resolve_routes(config(servers), &[domain.to_owned()], 1)
        .expect("event loop")
        .remove(0)
        .result
}

/// One domain with one MX host and its address, and the given misbehaviour on the domain.
fn responder(how: Option<Misbehaviour>) -> DnsResponder {
    let mut zone = Zone::new();
    zone.mx("d.example", 10, "mx.d.example")
        .a("mx.d.example", Ipv4Addr::new(127, 0, 0, 25));
    if let Some(how) = how {
        zone.misbehave("d.example", how);
    }
    DnsResponder::start(zone).expect("start responder")
}

fn assert_routed(result: &Result<MailRoute, RouteError>) {
    let route = result.as_ref().expect("a route");
    assert_eq!(route.hosts.len(), 1);
    assert_eq!(route.hosts[0].name, "mx.d.example");
    assert_eq!(
        route.hosts[0].addresses,
        [std::net::IpAddr::from([127, 0, 0, 25])]
    );
}

#[test]
fn a_well_behaved_server_routes() {
    let server = responder(None);
    assert_routed(&route(&[server.addr()], "d.example"));
    assert_eq!(server.udp_queries(), 1, "glue saves the address lookups");
}

#[test]
fn forged_answers_never_count_and_the_next_server_answers() {
    for how in [
        Misbehaviour::SpoofedId,
        Misbehaviour::WrongQuestion,
        Misbehaviour::Garbage,
        Misbehaviour::Silent,
    ] {
        let bad = responder(Some(how));
        let good = responder(None);
        let result = route(&[bad.addr(), good.addr()], "d.example");
        assert_routed(&result);
        assert!(
            bad.udp_queries() >= 1,
            "{how:?}: the first server was asked"
        );
        assert_eq!(good.udp_queries(), 1, "{how:?}: the second server answered");
    }
}

#[test]
fn forged_answers_alone_end_in_a_timeout_not_a_verdict() {
    for how in [
        Misbehaviour::SpoofedId,
        Misbehaviour::WrongQuestion,
        Misbehaviour::Garbage,
        Misbehaviour::Silent,
    ] {
        let bad = responder(Some(how));
        assert_eq!(
            route(&[bad.addr()], "d.example"),
            Err(RouteError::DnsFailure(LookupFailure::Timeout)),
            "{how:?}"
        );
        // Two attempts at one server, 200 ms then 400 ms.
        assert_eq!(bad.udp_queries(), 2, "{how:?}");
    }
}

#[test]
fn server_errors_move_on_and_alone_are_dns_failures() {
    for (how, rcode) in [
        (Misbehaviour::ServFail, ResponseCode::ServFail),
        (Misbehaviour::Refused, ResponseCode::Refused),
    ] {
        let bad = responder(Some(how));
        let good = responder(None);
        assert_routed(&route(&[bad.addr(), good.addr()], "d.example"));
        let alone = route(&[bad.addr()], "d.example");
        match alone {
            Err(RouteError::DnsFailure(LookupFailure::ServerError(code))) => {
                assert_eq!(code, rcode);
            }
            other => panic!("{how:?}: {other:?}"),
        }
    }
}

#[test]
fn truncation_is_answered_over_tcp() {
    let server = responder(Some(Misbehaviour::Truncate));
    assert_routed(&route(&[server.addr()], "d.example"));
    assert_eq!(server.tcp_queries(), 1);
}

#[test]
fn a_large_answer_arrives_over_tcp() {
    let mut zone = Zone::new();
    for i in 0..80u8 {
        let exchange = format!("a-long-exchange-name-to-fill-the-answer-{i:02}.big.example");
        zone.mx("big.example", u16::from(i), &exchange)
            .a(&exchange, Ipv4Addr::new(127, 0, 1, i));
    }
    let server = DnsResponder::start(zone).expect("start");
    let route = route(&[server.addr()], "big.example").expect("route");
    assert_eq!(route.hosts.len(), 10);
    assert_eq!(route.hosts[0].preference, 0);
    assert_eq!(server.tcp_queries(), 1);
}

#[test]
fn formerr_to_edns_is_asked_again_without_it() {
    let server = responder(Some(Misbehaviour::FormErrOnEdns));
    assert_routed(&route(&[server.addr()], "d.example"));
    assert_eq!(server.udp_queries(), 2);
}

#[test]
fn a_late_answer_still_counts() {
    // The answer comes after 300 ms: the second try (at 200 ms) is already out, but the first
    // try's socket is still open and its answer is accepted.
    let server = responder(Some(Misbehaviour::Delay(Duration::from_millis(300))));
    assert_routed(&route(&[server.addr()], "d.example"));
}

#[test]
fn ipv6_nameservers_work() {
    let mut zone = Zone::new();
    zone.mx("d.example", 10, "mx.d.example")
        .a("mx.d.example", Ipv4Addr::new(127, 0, 0, 25));
    let Ok(server) = DnsResponder::start_on("[::1]:0".parse().expect("addr"), zone) else {
        eprintln!("SKIPPED: no IPv6 loopback on this machine");
        return;
    };
    assert_routed(&route(&[server.addr()], "d.example"));
}

/// Thousands of routes submitted at once: the resolver paces them under its cap on lookups on
/// the wire (256), and each domain still costs one query.
#[test]
fn thousands_of_routes_at_once_cost_one_query_each() {
    let mut zone = Zone::new();
    let domains: Vec<String> = (0..3000).map(|i| format!("d{i}.example")).collect();
    for domain in &domains {
        zone.mx(domain, 10, "mx.shared.example");
    }
    zone.a("mx.shared.example", Ipv4Addr::new(127, 0, 0, 25));
    let server = DnsResponder::start(zone).expect("start");
    let mut nameservers = NameserverConfig::with_servers(vec![server.addr()]);
    nameservers.timeout = Duration::from_secs(2);
    let results = resolve_routes(
        ResolverConfig::new(LookupConfig::new(nameservers)),
        &domains,
        3000,
    )
    .expect("event loop");
    assert_eq!(results.len(), 3000);
    for result in &results {
        let route = result.result.as_ref().expect("routed");
        assert_eq!(route.hosts[0].name, "mx.shared.example");
    }
    // One MX query per domain; the shared exchange's address is glue.
    assert_eq!(server.udp_queries(), 3000);
}

#[test]
fn one_domain_asked_many_times_is_looked_up_once() {
    let server = responder(None);
    let domains = vec!["d.example".to_owned(); 1000];
    let results = resolve_routes(config(&[server.addr()]), &domains, 1000).expect("event loop");
    assert!(results.iter().all(|r| r.result.is_ok()));
    assert_eq!(server.udp_queries(), 1);
}
