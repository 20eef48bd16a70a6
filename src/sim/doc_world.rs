//! [`DocWorld`]: the smallest world worth verifying against, for examples and doc tests:
//! `example.test`, whose MX knows `alice@example.test` and `bob@example.test`, on loopback.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};

use super::dns::{DnsResponder, Zone};
use super::smtp::{Personality, SmtpFarm};

/// A DNS responder serving `example.test` and the one SMTP server its MX names, both on
/// loopback and both stopped when this is dropped. Point the engine at
/// [`dns`](Self::dns) and [`smtp_port`](Self::smtp_port), and allow private MX addresses
/// (the MX is at 127.0.0.25).
#[derive(Debug)]
pub struct DocWorld {
    dns: DnsResponder,
    _farm: SmtpFarm,
    smtp_port: u16,
}

impl DocWorld {
    /// The MX's address.
    pub const MX: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 25);

    /// Starts the responder and the server on free ports.
    pub fn start() -> io::Result<Self> {
        let smtp_port = TcpListener::bind((Self::MX, 0))?.local_addr()?.port();
        let farm = SmtpFarm::start(
            vec![(
                SocketAddr::from((Self::MX, smtp_port)),
                Personality::new("mx.example.test")
                    .mailboxes(["alice@example.test", "bob@example.test"]),
            )],
            1,
        )?;
        let mut zone = Zone::new();
        zone.mx("example.test", 10, "mx.example.test")
            .a("mx.example.test", Self::MX);
        let dns = DnsResponder::start(zone)?;
        Ok(Self {
            dns,
            _farm: farm,
            smtp_port,
        })
    }

    /// Where the DNS responder listens.
    #[must_use]
    pub fn dns(&self) -> SocketAddr {
        self.dns.addr()
    }

    /// The port the SMTP server listens on.
    #[must_use]
    pub fn smtp_port(&self) -> u16 {
        self.smtp_port
    }
}
