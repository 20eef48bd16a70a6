//! The sockets of the DNS client: what [`Transmit`] asks for, made real with `socket2` and
//! `mio`, and what happens on them fed back to the [`Resolver`].
//!
//! - **UDP**: one socket per try, bound to port 0 so the kernel picks a random ephemeral port
//!   (Linux randomises it), and *connected* to the server: the kernel then drops datagrams from
//!   any other source before they reach us, and reports ICMP "port unreachable" as an error on
//!   the next read, which becomes `handle_socket_closed` — a dead server is skipped at once
//!   instead of after a timeout. The resolver checks the source again anyway (RFC 5452).
//! - **TCP**: a nonblocking connect (`EINPROGRESS`), completion seen as writability and
//!   confirmed with `take_error`, then the framed query written as the socket accepts it,
//!   then every byte read handed over until EOF.
//!
//! Every readiness event is drained until `WouldBlock`, since mio's notifications are
//! edge-triggered; spurious wakeups find nothing and do nothing.

use std::collections::HashMap;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Instant;

use mio::net::{TcpStream, UdpSocket};
use mio::{Interest, Registry, Token};
use slab::Slab;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::dns::{Resolver, SocketId, Transmit};
use crate::engine::Scheduler;

/// Whatever holds the DNS client: the resolver alone, or the engine's scheduler around it.
pub trait DnsClient {
    /// The next socket operation.
    fn poll_transmit(&mut self) -> Option<Transmit>;
    /// A datagram arrived.
    fn handle_udp(&mut self, socket: SocketId, from: SocketAddr, bytes: &[u8], now: Instant);
    /// Stream bytes arrived.
    fn handle_tcp(&mut self, socket: SocketId, bytes: &[u8], now: Instant);
    /// The socket failed or closed.
    fn handle_socket_closed(&mut self, socket: SocketId, now: Instant);
}

impl DnsClient for Resolver {
    fn poll_transmit(&mut self) -> Option<Transmit> {
        Resolver::poll_transmit(self)
    }
    fn handle_udp(&mut self, socket: SocketId, from: SocketAddr, bytes: &[u8], now: Instant) {
        Resolver::handle_udp(self, socket, from, bytes, now);
    }
    fn handle_tcp(&mut self, socket: SocketId, bytes: &[u8], now: Instant) {
        Resolver::handle_tcp(self, socket, bytes, now);
    }
    fn handle_socket_closed(&mut self, socket: SocketId, now: Instant) {
        Resolver::handle_socket_closed(self, socket, now);
    }
}

impl DnsClient for Scheduler {
    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.poll_dns_transmit()
    }
    fn handle_udp(&mut self, socket: SocketId, from: SocketAddr, bytes: &[u8], now: Instant) {
        Scheduler::handle_udp(self, socket, from, bytes, now);
    }
    fn handle_tcp(&mut self, socket: SocketId, bytes: &[u8], now: Instant) {
        Scheduler::handle_tcp(self, socket, bytes, now);
    }
    fn handle_socket_closed(&mut self, socket: SocketId, now: Instant) {
        self.handle_dns_closed(socket, now);
    }
}

/// Largest datagram or read: a DNS message over TCP is at most 65,535 octets, and the resolver
/// advertises 1,232 for UDP.
const READ_BUFFER: usize = 65_536;

#[derive(Debug)]
enum DnsSocket {
    Udp {
        id: SocketId,
        socket: UdpSocket,
        /// The query, until the socket has taken it.
        unsent: Option<Vec<u8>>,
    },
    Tcp {
        id: SocketId,
        stream: TcpStream,
        connected: bool,
        out: Vec<u8>,
        written: usize,
    },
}

/// Whether a socket still has bytes to write (and so wants writability) after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Writing {
    Pending,
    Done,
}

impl DnsSocket {
    fn id(&self) -> SocketId {
        match self {
            Self::Udp { id, .. } | Self::Tcp { id, .. } => *id,
        }
    }

    fn writing(&self) -> Writing {
        let pending = match self {
            Self::Udp { unsent, .. } => unsent.is_some(),
            Self::Tcp { out, written, .. } => *written < out.len(),
        };
        if pending {
            Writing::Pending
        } else {
            Writing::Done
        }
    }
}

/// The DNS client's sockets, registered with one `mio::Poll` under tokens from `first_token`
/// on.
#[derive(Debug)]
pub struct DnsSockets {
    sockets: Slab<DnsSocket>,
    by_id: HashMap<SocketId, usize>,
    first_token: usize,
    buffer: Box<[u8]>,
}

impl DnsSockets {
    /// No sockets yet. Tokens from `first_token` up are this set's; the caller keeps others
    /// below it.
    #[must_use]
    pub fn new(first_token: usize) -> Self {
        Self {
            sockets: Slab::new(),
            by_id: HashMap::new(),
            first_token,
            buffer: vec![0; READ_BUFFER].into_boxed_slice(),
        }
    }

    /// True if `token` is one of these sockets'.
    #[must_use]
    pub fn owns(&self, token: Token) -> bool {
        token.0 >= self.first_token && self.sockets.contains(token.0 - self.first_token)
    }

    /// Open sockets.
    #[must_use]
    pub fn len(&self) -> usize {
        self.sockets.len()
    }

    /// True if no socket is open.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.sockets.is_empty()
    }

    /// Carries out every transmit the resolver has, and feeds back failures to open or send.
    pub fn flush(&mut self, registry: &Registry, resolver: &mut impl DnsClient, now: Instant) {
        while let Some(transmit) = resolver.poll_transmit() {
            let failed = match transmit {
                Transmit::Udp {
                    socket,
                    server,
                    payload,
                } => self
                    .open_udp(registry, socket, server, payload)
                    .err()
                    .map(|_| socket),
                Transmit::Tcp {
                    socket,
                    server,
                    payload,
                } => self
                    .open_tcp(registry, socket, server, payload)
                    .err()
                    .map(|_| socket),
                Transmit::Close { socket } => {
                    self.close(registry, socket);
                    None
                }
            };
            // A socket that could not be opened (EMFILE, no route) is a try that failed: the
            // resolver moves on to the next server, or ends the lookup.
            if let Some(socket) = failed {
                resolver.handle_socket_closed(socket, now);
            }
        }
    }

    /// Handles readiness of one of these sockets' tokens.
    pub fn ready(
        &mut self,
        registry: &Registry,
        token: Token,
        resolver: &mut impl DnsClient,
        now: Instant,
    ) {
        let Some(key) = token.0.checked_sub(self.first_token) else {
            return;
        };
        let Some(socket) = self.sockets.get_mut(key) else {
            return;
        };
        let id = socket.id();
        let was_writing = socket.writing();
        let outcome = match socket {
            DnsSocket::Udp { socket, unsent, .. } => {
                drain_udp(socket, unsent, &mut self.buffer, id, resolver, now)
            }
            DnsSocket::Tcp {
                stream,
                connected,
                out,
                written,
                ..
            } => drive_tcp(
                stream,
                connected,
                out,
                written,
                &mut self.buffer,
                id,
                resolver,
                now,
            ),
        };
        match outcome {
            // Everything written: from now on only readability matters.
            Ok(Writing::Done) if was_writing == Writing::Pending => {
                let result = match socket {
                    DnsSocket::Udp { socket, .. } => {
                        registry.reregister(socket, token, Interest::READABLE)
                    }
                    DnsSocket::Tcp { stream, .. } => {
                        registry.reregister(stream, token, Interest::READABLE)
                    }
                };
                if result.is_err() {
                    self.close(registry, id);
                    resolver.handle_socket_closed(id, now);
                }
            }
            Ok(_) => {}
            Err(_) => {
                self.close(registry, id);
                resolver.handle_socket_closed(id, now);
            }
        }
    }

    fn open_udp(
        &mut self,
        registry: &Registry,
        id: SocketId,
        server: SocketAddr,
        payload: Vec<u8>,
    ) -> io::Result<()> {
        let socket = Socket::new(
            Domain::for_address(server),
            Type::DGRAM,
            Some(Protocol::UDP),
        )?;
        socket.set_nonblocking(true)?;
        socket.bind(&SockAddr::from(unspecified_for(server)))?;
        socket.connect(&SockAddr::from(server))?;
        let mut socket = UdpSocket::from_std(socket.into());
        let unsent = match socket.send(&payload) {
            Ok(_) => None,
            Err(e) if e.kind() == ErrorKind::WouldBlock => Some(payload),
            Err(e) => return Err(e),
        };
        let entry = self.sockets.vacant_entry();
        let token = Token(self.first_token + entry.key());
        let interest = if unsent.is_some() {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        registry.register(&mut socket, token, interest)?;
        self.by_id.insert(id, entry.key());
        entry.insert(DnsSocket::Udp { id, socket, unsent });
        Ok(())
    }

    fn open_tcp(
        &mut self,
        registry: &Registry,
        id: SocketId,
        server: SocketAddr,
        payload: Vec<u8>,
    ) -> io::Result<()> {
        let socket = Socket::new(
            Domain::for_address(server),
            Type::STREAM,
            Some(Protocol::TCP),
        )?;
        socket.set_nonblocking(true)?;
        socket.set_tcp_nodelay(true)?;
        match socket.connect(&SockAddr::from(server)) {
            Ok(()) => {}
            // A nonblocking connect reports EINPROGRESS; completion shows as writability.
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        let mut stream = TcpStream::from_std(socket.into());
        let entry = self.sockets.vacant_entry();
        let token = Token(self.first_token + entry.key());
        registry.register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)?;
        self.by_id.insert(id, entry.key());
        entry.insert(DnsSocket::Tcp {
            id,
            stream,
            connected: false,
            out: payload,
            written: 0,
        });
        Ok(())
    }

    fn close(&mut self, registry: &Registry, id: SocketId) {
        let Some(key) = self.by_id.remove(&id) else {
            return;
        };
        let mut socket = self.sockets.remove(key);
        // Deregistering can only fail for a socket mio does not know; closing follows anyway.
        let _ = match &mut socket {
            DnsSocket::Udp { socket, .. } => registry.deregister(socket),
            DnsSocket::Tcp { stream, .. } => registry.deregister(stream),
        };
    }
}

fn unspecified_for(server: SocketAddr) -> SocketAddr {
    match server {
        SocketAddr::V4(_) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        SocketAddr::V6(_) => SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
    }
}

/// Sends what is unsent, then reads datagrams until `WouldBlock`.
fn drain_udp(
    socket: &UdpSocket,
    unsent: &mut Option<Vec<u8>>,
    buffer: &mut [u8],
    id: SocketId,
    resolver: &mut impl DnsClient,
    now: Instant,
) -> io::Result<Writing> {
    if let Some(payload) = unsent {
        match socket.send(payload) {
            Ok(_) => *unsent = None,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(Writing::Pending),
            Err(e) => return Err(e),
        }
    }
    loop {
        match socket.recv_from(buffer) {
            Ok((len, from)) => resolver.handle_udp(id, from, &buffer[..len], now),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(Writing::Done),
            // ICMP port unreachable on a connected socket, and the like.
            Err(e) => return Err(e),
        }
    }
}

/// Completes the connect, writes what is left, and reads until `WouldBlock` or EOF.
#[allow(
    clippy::too_many_arguments,
    reason = "the fields of one socket, split so the resolver can be borrowed alongside"
)]
fn drive_tcp(
    stream: &mut TcpStream,
    connected: &mut bool,
    out: &[u8],
    written: &mut usize,
    buffer: &mut [u8],
    id: SocketId,
    resolver: &mut impl DnsClient,
    now: Instant,
) -> io::Result<Writing> {
    if !*connected {
        // Writable after a nonblocking connect means done or failed; take_error tells which,
        // peer_addr confirms a connection really exists.
        if let Some(error) = stream.take_error()? {
            return Err(error);
        }
        match stream.peer_addr() {
            Ok(_) => *connected = true,
            Err(e) if e.kind() == ErrorKind::NotConnected => return Ok(Writing::Pending),
            Err(e) => return Err(e),
        }
    }
    while *written < out.len() {
        match stream.write(&out[*written..]) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => *written += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(Writing::Pending),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    loop {
        match stream.read(buffer) {
            Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
            Ok(n) => resolver.handle_tcp(id, &buffer[..n], now),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(Writing::Done),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}
