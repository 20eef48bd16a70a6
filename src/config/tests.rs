use std::net::SocketAddr;
use std::time::Duration;

use super::*;

fn dns() -> SocketAddr {
    "127.0.0.1:5353".parse().unwrap()
}

fn valid() -> ConfigBuilder {
    Config::builder()
        .sender("verify@example.com")
        .nameserver(dns())
}

#[test]
fn the_defaults_are_the_documented_ones() {
    let config = valid().build().unwrap();
    assert_eq!(config.helo_name(), "example.com");
    assert_eq!(
        config.sender(),
        &Sender::Mailbox("verify@example.com".into())
    );
    assert_eq!(config.nameservers(), [dns()]);
    assert_eq!(config.smtp_port(), 25);
    assert_eq!(config.concurrency(), 100);
    assert_eq!(config.rcpts_per_session(), 8);
    assert_eq!(config.intake(), 100 * 8 + 16_384);
    let engine = &config.engine;
    assert_eq!(engine.per_mx, 4);
    assert_eq!(engine.domain_rate, Some(10.0));
    assert!(engine.catch_all);
    assert_eq!(engine.retries, 2);
    assert_eq!(engine.retry_delay, Duration::from_secs(120));
    assert!(!engine.allow_private_mx);
    assert!(!engine.allow_address_literals);
    assert_eq!((engine.remember_results, engine.late_results), (0, false));
    assert!(engine.session.pipelining);
    assert!(!engine.session.transcript);
    assert_eq!(engine.session.timeouts, Timeouts::default());
}

#[test]
fn flat_settings_reach_the_engine() {
    let config = valid()
        .helo_name(" probe.example.com ")
        .nameserver("127.0.0.2:53".parse().unwrap())
        .dns_timeout(Duration::from_secs(2))
        .dns_attempts(3)
        .dns_lookup_timeout(Duration::from_secs(9))
        .dns_route_timeout(Duration::from_secs(19))
        .smtp_port(2525)
        .concurrency(7)
        .per_mx(2)
        .domain_rate(None)
        .rcpts_per_session(3)
        .catch_all(false)
        .retries(0)
        .retry_delay(Duration::from_secs(1))
        .timeout(Duration::from_secs(20))
        .pipelining(false)
        .max_recipients_per_transaction(2)
        .transcript(true)
        .source_ips(["127.0.0.9".parse().unwrap()])
        .allow_address_literals(true)
        .allow_private_mx(true)
        .lookahead(10)
        .remember_results(5)
        .late_results(true)
        .build()
        .unwrap();
    assert_eq!(config.helo_name(), "probe.example.com");
    assert_eq!(
        config.nameservers(),
        [dns(), "127.0.0.2:53".parse().unwrap()]
    );
    let engine = &config.engine;
    let nameservers = &engine.resolver.lookups.nameservers;
    assert_eq!(nameservers.timeout, Duration::from_secs(2));
    assert_eq!(nameservers.attempts, 3);
    assert_eq!(
        engine.resolver.lookups.lookup_timeout,
        Duration::from_secs(9)
    );
    assert_eq!(engine.resolver.route_timeout, Duration::from_secs(19));
    assert_eq!(
        (engine.smtp_port, engine.concurrency, engine.per_mx),
        (2525, 7, 2)
    );
    assert_eq!(engine.domain_rate, None);
    assert_eq!(engine.rcpts_per_session, 3);
    assert!(!engine.catch_all);
    assert_eq!(engine.retries, 0);
    assert_eq!(engine.session.timeouts.rcpt_to, Duration::from_secs(20));
    assert_eq!(engine.session.timeouts.quit, Duration::from_secs(5));
    assert_eq!(engine.session.timeouts.session, Duration::from_secs(120));
    assert!(!engine.session.pipelining);
    assert_eq!(engine.session.max_recipients_per_transaction, 2);
    assert!(config.transcript());
    assert_eq!(
        engine.source_ips,
        ["127.0.0.9".parse::<std::net::IpAddr>().unwrap()]
    );
    assert!(engine.allow_address_literals && engine.allow_private_mx);
    assert_eq!((engine.remember_results, engine.late_results), (5, true));
    assert_eq!(config.intake(), 7 * 3 + 10);
}

#[test]
fn the_null_sender_needs_an_ehlo_name() {
    let no_name = Config::builder().null_sender().nameserver(dns()).build();
    assert_eq!(no_name, Err(ConfigError::NoHeloName));
    let config = Config::builder()
        .null_sender()
        .helo_name("probe.example.com")
        .nameserver(dns())
        .build()
        .unwrap();
    assert_eq!(config.sender(), &Sender::Null);
}

#[test]
fn a_sender_is_required_and_must_be_a_plain_ascii_mailbox() {
    assert_eq!(
        Config::builder().nameserver(dns()).build(),
        Err(ConfigError::NoSender)
    );
    for bad in [
        "not an address",
        "verify@",
        "v\r\nRCPT TO:<x@y.z>@example.com",
        "jörg@example.com",
    ] {
        let error = Config::builder().sender(bad).nameserver(dns()).build();
        assert!(
            matches!(&error, Err(ConfigError::Sender { sender, .. }) if sender == bad.trim()),
            "{bad:?}: {error:?}"
        );
        assert!(error.unwrap_err().to_string().contains("MAIL FROM"));
    }
}

#[test]
fn an_ehlo_name_that_cannot_be_written_is_refused() {
    for bad in ["bad\r\nname", "two words", "", "a..b"] {
        let error = valid().helo_name(bad).build();
        assert!(
            matches!(error, Err(ConfigError::HeloName { .. })),
            "{bad:?}: {error:?}"
        );
    }
}

#[test]
fn limits_out_of_range_are_refused_by_name() {
    let cases: Vec<(ConfigBuilder, &str)> = vec![
        (valid().concurrency(0), "concurrency"),
        (valid().per_mx(0), "per_mx"),
        (valid().rcpts_per_session(0), "rcpts_per_session"),
        (valid().rcpts_per_session(101), "rcpts_per_session"),
        (valid().smtp_port(0), "smtp_port"),
        (valid().domain_rate(Some(0.0)), "domain_rate"),
        (valid().domain_rate(Some(f64::NAN)), "domain_rate"),
        (valid().domain_rate(Some(-1.0)), "domain_rate"),
        (valid().retry_delay(Duration::ZERO), "retry_delay"),
        (
            valid().throttle_backoff(Some(Duration::ZERO)),
            "throttle_backoff",
        ),
        (
            valid().throttle_backoff(Some(Duration::MAX)),
            "throttle_backoff",
        ),
        (valid().timeout(Duration::ZERO), "timeouts.connect"),
        (valid().dns_timeout(Duration::ZERO), "dns_timeout"),
        (valid().dns_attempts(0), "dns_attempts"),
        (
            valid().dns_lookup_timeout(Duration::ZERO),
            "dns_lookup_timeout",
        ),
        (
            valid().dns_route_timeout(Duration::ZERO),
            "dns_route_timeout",
        ),
        (
            valid().max_recipients_per_transaction(0),
            "max_recipients_per_transaction",
        ),
    ];
    for (builder, setting) in cases {
        match builder.build() {
            Err(ConfigError::Setting { name, .. }) => assert_eq!(name, setting),
            other => panic!("{setting}: {other:?}"),
        }
    }
}

#[test]
fn nameservers_come_from_a_resolv_conf_or_are_refused() {
    let dir = std::env::temp_dir().join(format!("mxprobe-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("resolv.conf");
    std::fs::write(
        &path,
        "nameserver 127.0.0.53\noptions timeout:3 attempts:4\n",
    )
    .unwrap();
    let config = Config::builder()
        .sender("verify@example.com")
        .resolv_conf(&path)
        .build()
        .unwrap();
    assert_eq!(config.nameservers(), ["127.0.0.53:53".parse().unwrap()]);
    assert_eq!(
        config.engine.resolver.lookups.nameservers.timeout,
        Duration::from_secs(3)
    );

    let missing = Config::builder()
        .sender("verify@example.com")
        .resolv_conf(dir.join("missing"))
        .build();
    assert!(
        matches!(missing, Err(ConfigError::Nameservers { .. })),
        "{missing:?}"
    );
    let none = Config::builder()
        .sender("verify@example.com")
        .nameservers([])
        .build();
    assert!(
        matches!(none, Err(ConfigError::Nameservers { .. })),
        "{none:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_lowered_concurrency_never_rises_or_reaches_zero() {
    let config = valid().concurrency(50).build().unwrap();
    assert_eq!(
        config.clone().with_concurrency_lowered_to(10).concurrency(),
        10
    );
    assert_eq!(
        config.clone().with_concurrency_lowered_to(0).concurrency(),
        1
    );
    assert_eq!(config.with_concurrency_lowered_to(500).concurrency(), 50);
}
