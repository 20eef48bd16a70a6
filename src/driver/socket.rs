//! The driver's sockets: one table type that keeps them, and one recipe each for opening a TCP
//! connection and a UDP socket. The engine's SMTP connections ([`SmtpSockets`], in
//! `socket/smtp.rs`) and the DNS client's sockets ([`DnsSockets`], in `socket/dns.rs`) are
//! both a [`SocketTable`] opened with these recipes; what those two files add is only what
//! their protocol does on an event.
//!
//! - **Tokens**: a table hands out `mio` tokens from its own range, one per open socket, so
//!   the loop tells the tables apart by the token alone; a token is reused only after its
//!   socket has left the table. A table whose range is full opens no more (`EMFILE`, which the
//!   caller treats as running out of descriptors; the ranges are 2^30 wide).
//! - **Registration**: a socket is registered when it enters the table, with the interest its
//!   protocol asks for, and leaves it by [`remove`](SocketTable::remove) — dropping the socket
//!   closes the descriptor, which takes it out of the poll set (epoll forgets a descriptor
//!   when its last reference closes: one system call saved per socket) — or by
//!   [`deregister`](SocketTable::deregister), which says so to `epoll` first.
//! - **Connect** ([`connect_tcp`]): a socket nonblocking from birth (IPv4 or IPv6 as the peer
//!   is), `TCP_NODELAY` (a probe writes small commands and waits for each answer, a DNS client
//!   writes one query: Nagle's algorithm would only add delay), bound to a source address if
//!   one is given, then `connect`, which answers `EINPROGRESS`. The first event after it says
//!   the attempt is over, and the caller asks `take_error` whether it failed.
//! - **UDP** ([`connect_udp`]): bound to port 0 so the kernel picks a random ephemeral port
//!   (Linux randomises it), and *connected* to the peer: the kernel drops datagrams from any
//!   other source and reports ICMP "port unreachable" as an error on the next read.
//! - **Out of resources** ([`is_out_of_resources`]): `EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`,
//!   `EADDRNOTAVAIL` (the ephemeral ports ran out) say "the system is out of something", not
//!   "the peer is unreachable".

mod dns;
mod smtp;

use std::collections::HashMap;
use std::hash::Hash;
use std::io::{self, ErrorKind};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::Range;

use mio::event::Source;
use mio::net::{TcpStream, UdpSocket};
use mio::{Interest, Registry, Token};
use slab::Slab;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

pub(crate) use dns::{DnsInput, DnsSockets};
pub(crate) use smtp::SmtpSockets;

/// What a table keeps per socket: the socket and its protocol's state around it.
trait Registered {
    /// The socket, for `epoll`.
    fn source(&mut self) -> &mut dyn Source;
}

/// Open sockets of one kind, each under a `mio` token from the table's range and known by the
/// `Id` its state machine gave it (a connection, a DNS try). Slots are the slab's keys: the
/// token of slot `k` is the range's start plus `k`.
#[derive(Debug)]
struct SocketTable<Id, S> {
    slots: Slab<S>,
    by_id: HashMap<Id, usize>,
    tokens: Range<usize>,
}

impl<Id: Copy + Eq + Hash, S: Registered> SocketTable<Id, S> {
    /// No sockets yet; tokens from `tokens` only.
    fn new(tokens: Range<usize>) -> Self {
        Self {
            slots: Slab::new(),
            by_id: HashMap::new(),
            tokens,
        }
    }

    /// True if `token` names an open socket of this table.
    fn owns(&self, token: Token) -> bool {
        self.slot(token).is_some()
    }

    /// The slot `token` names, if it is this table's and its socket is open.
    fn slot(&self, token: Token) -> Option<usize> {
        if !self.tokens.contains(&token.0) {
            return None;
        }
        let slot = token.0 - self.tokens.start;
        self.slots.contains(slot).then_some(slot)
    }

    /// The slot `token` names and its socket, if it is this table's and open.
    fn by_token(&mut self, token: Token) -> Option<(usize, &mut S)> {
        let slot = token.0.checked_sub(self.tokens.start)?;
        if token.0 >= self.tokens.end {
            return None;
        }
        Some((slot, self.slots.get_mut(slot)?))
    }

    /// The slot of the socket known as `id`.
    fn slot_of(&self, id: Id) -> Option<usize> {
        self.by_id.get(&id).copied()
    }

    /// The socket in `slot`, if it is open.
    fn get_mut(&mut self, slot: usize) -> Option<&mut S> {
        self.slots.get_mut(slot)
    }

    /// Open sockets.
    fn len(&self) -> usize {
        self.slots.len()
    }

    /// Registers `socket` for `interest` and keeps it as `id`. On an error the socket is
    /// dropped, and with it its descriptor.
    fn insert(
        &mut self,
        registry: &Registry,
        id: Id,
        mut socket: S,
        interest: Interest,
    ) -> io::Result<()> {
        let entry = self.slots.vacant_entry();
        let token = self.tokens.start + entry.key();
        if !self.tokens.contains(&token) {
            return Err(io::Error::from_raw_os_error(libc::EMFILE));
        }
        registry.register(socket.source(), Token(token), interest)?;
        self.by_id.insert(id, entry.key());
        entry.insert(socket);
        Ok(())
    }

    /// Changes what the socket in `slot` is watched for.
    fn reregister(
        &mut self,
        registry: &Registry,
        slot: usize,
        interest: Interest,
    ) -> io::Result<()> {
        let token = Token(self.tokens.start + slot);
        match self.slots.get_mut(slot) {
            Some(socket) => registry.reregister(socket.source(), token, interest),
            None => Err(ErrorKind::NotFound.into()),
        }
    }

    /// Takes the socket known as `id` out of the table; dropping it closes it, which also
    /// takes it out of the poll set.
    fn remove(&mut self, id: Id) -> Option<S> {
        let slot = self.by_id.remove(&id)?;
        Some(self.slots.remove(slot))
    }

    /// Takes the socket known as `id` out of the table and out of the poll set.
    fn deregister(&mut self, registry: &Registry, id: Id) -> Option<S> {
        let mut socket = self.remove(id)?;
        // Deregistering can only fail for a socket `epoll` does not know; closing follows
        // anyway.
        let _ = registry.deregister(socket.source());
        Some(socket)
    }
}

/// Starts a nonblocking TCP connection to `to`, from `from` if given (see the module
/// documentation). `Ok` means the attempt is under way, not that it has succeeded.
fn connect_tcp(to: SocketAddr, from: Option<IpAddr>) -> io::Result<TcpStream> {
    let socket = new_nonblocking_socket(to, Type::STREAM, Protocol::TCP)?;
    socket.set_tcp_nodelay(true)?;
    if let Some(ip) = from {
        socket.bind(&SockAddr::from(SocketAddr::new(ip, 0)))?;
    }
    match socket.connect(&SockAddr::from(to)) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        Err(e) => return Err(e),
    }
    Ok(TcpStream::from_std(socket.into()))
}

/// A nonblocking UDP socket on a random local port, connected to `to` (see the module
/// documentation).
fn connect_udp(to: SocketAddr) -> io::Result<UdpSocket> {
    let socket = new_nonblocking_socket(to, Type::DGRAM, Protocol::UDP)?;
    let any = match to {
        SocketAddr::V4(_) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        SocketAddr::V6(_) => SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
    };
    socket.bind(&SockAddr::from(any))?;
    socket.connect(&SockAddr::from(to))?;
    Ok(UdpSocket::from_std(socket.into()))
}

/// A socket for `to`'s family, nonblocking from birth where the system allows
/// (`SOCK_NONBLOCK`: one system call instead of three).
fn new_nonblocking_socket(to: SocketAddr, kind: Type, protocol: Protocol) -> io::Result<Socket> {
    #[cfg(any(
        target_os = "android",
        target_os = "freebsd",
        target_os = "linux",
        target_os = "netbsd",
        target_os = "openbsd"
    ))]
    {
        Socket::new(Domain::for_address(to), kind.nonblocking(), Some(protocol))
    }
    #[cfg(not(any(
        target_os = "android",
        target_os = "freebsd",
        target_os = "linux",
        target_os = "netbsd",
        target_os = "openbsd"
    )))]
    {
        let socket = Socket::new(Domain::for_address(to), kind, Some(protocol))?;
        socket.set_nonblocking(true)?;
        Ok(socket)
    }
}

/// Errors that say "the system is out of something", not "the peer is unreachable".
fn is_out_of_resources(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM | libc::EADDRNOTAVAIL)
    )
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, TcpListener};
    use std::time::Duration;

    use mio::{Events, Poll};

    use super::*;

    struct Udp(UdpSocket);

    impl Registered for Udp {
        fn source(&mut self) -> &mut dyn Source {
            &mut self.0
        }
    }

    fn loopback_udp() -> Udp {
        let peer = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        Udp(connect_udp(peer.local_addr().unwrap()).unwrap())
    }

    #[test]
    fn tokens_come_from_the_range_only_and_are_reused_after_removal() {
        let poll = Poll::new().unwrap();
        let mut table = SocketTable::new(10..12);
        for id in [1, 2] {
            table
                .insert(poll.registry(), id, loopback_udp(), Interest::READABLE)
                .unwrap();
        }
        assert!(table.owns(Token(10)) && table.owns(Token(11)));
        assert!(!table.owns(Token(9)) && !table.owns(Token(12)));
        assert_eq!(table.by_token(Token(12)).map(|(slot, _)| slot), None);

        let full = table
            .insert(poll.registry(), 3, loopback_udp(), Interest::READABLE)
            .unwrap_err();
        assert!(is_out_of_resources(&full));
        assert_eq!(table.len(), 2);

        assert!(table.remove(1).is_some());
        assert!(!table.owns(Token(10)));
        assert!(table.deregister(poll.registry(), 1).is_none());
        table
            .insert(poll.registry(), 3, loopback_udp(), Interest::READABLE)
            .unwrap();
        assert_eq!(table.slot_of(3), Some(0));
        assert!(table.owns(Token(10)));
    }

    #[test]
    fn a_udp_socket_is_on_a_port_of_its_own_and_connected_to_its_peer() {
        let peer = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let socket = connect_udp(peer.local_addr().unwrap()).unwrap();
        assert_ne!(socket.local_addr().unwrap().port(), 0);
        assert_eq!(socket.peer_addr().unwrap(), peer.local_addr().unwrap());
    }

    #[test]
    fn a_tcp_connect_from_a_source_address_completes_as_writability() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let to = listener.local_addr().unwrap();
        let mut stream = connect_tcp(to, Some(IpAddr::from(Ipv4Addr::LOCALHOST))).unwrap();
        let mut poll = Poll::new().unwrap();
        poll.registry()
            .register(&mut stream, Token(1), Interest::WRITABLE)
            .unwrap();
        let mut events = Events::with_capacity(4);
        poll.poll(&mut events, Some(Duration::from_secs(5)))
            .unwrap();
        assert!(
            events
                .iter()
                .any(|e| e.token() == Token(1) && e.is_writable())
        );
        assert!(stream.take_error().unwrap().is_none());
        assert_eq!(stream.peer_addr().unwrap(), to);
        assert_eq!(stream.local_addr().unwrap().ip(), Ipv4Addr::LOCALHOST);
        assert!(stream.nodelay().unwrap());
    }
}
