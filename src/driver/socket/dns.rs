//! The sockets of the DNS client: what [`Transmit`] asks for, made real with the driver's
//! [`SocketTable`] and its recipes, and what happens on them handed back to the loop, which
//! feeds the [`Resolver`](crate::dns::Resolver) (alone, or inside the engine's scheduler).
//!
//! - **UDP** ([`connect_udp`]): one socket per try, on a random port and connected to the
//!   server, so ICMP "port unreachable" comes back as an error on the next read, which becomes
//!   `handle_socket_closed` — a dead server is skipped at once instead of after a timeout. The
//!   resolver checks the source again anyway (RFC 5452).
//! - **TCP** ([`connect_tcp`]): completion of the nonblocking connect seen as writability and
//!   confirmed with `take_error` and `peer_addr`, then the framed query written as the socket
//!   accepts it, then every byte read handed over until EOF.
//! - **Inputs** go back to the loop as [`DnsInput`]s, through a closure called for each
//!   one as it is read: these sockets know nothing of the client they serve.
//! - **Interest**: readable, and writable too while a query waits to be written; once it is
//!   written the socket is re-registered for readability alone.
//!
//! Every readiness event is drained until `WouldBlock`, since mio's notifications are
//! edge-triggered; spurious wakeups find nothing and do nothing.

use std::io::{self, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::ops::Range;

use mio::event::Source;
use mio::net::{TcpStream, UdpSocket};
use mio::{Interest, Registry, Token};

use super::{Registered, SocketTable, connect_tcp, connect_udp};
use crate::dns::{SocketId, Transmit};

/// What happened on one of the DNS client's sockets, handed back to the loop, which feeds it
/// to whatever holds the client: the resolver alone (`handle_udp`, `handle_tcp`,
/// `handle_socket_closed`) or the engine's scheduler around it (`handle_udp`, `handle_tcp`,
/// `handle_dns_closed`). The bytes borrow the sockets' one read buffer, reused for every read:
/// no allocation per datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DnsInput<'a> {
    /// A datagram arrived.
    Udp {
        /// The try it arrived on.
        socket: SocketId,
        /// Its source.
        from: SocketAddr,
        /// The datagram.
        bytes: &'a [u8],
    },
    /// Stream bytes arrived.
    Tcp {
        /// The try they arrived on.
        socket: SocketId,
        /// What one read returned.
        bytes: &'a [u8],
    },
    /// The socket failed, closed, or could not be opened (`EMFILE`, no route): a try that
    /// failed, after which the client moves on to the next server or ends the lookup. The
    /// socket is already gone from the table.
    Closed {
        /// The try.
        socket: SocketId,
    },
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

impl Registered for DnsSocket {
    fn source(&mut self) -> &mut dyn Source {
        match self {
            Self::Udp { socket, .. } => socket,
            Self::Tcp { stream, .. } => stream,
        }
    }
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

/// The DNS client's sockets, registered with one `mio::Poll` under tokens from one range.
#[derive(Debug)]
pub(crate) struct DnsSockets {
    sockets: SocketTable<SocketId, DnsSocket>,
    buffer: Box<[u8]>,
}

impl DnsSockets {
    /// No sockets yet; tokens from `tokens` only.
    #[must_use]
    pub(crate) fn new(tokens: Range<usize>) -> Self {
        Self {
            sockets: SocketTable::new(tokens),
            buffer: vec![0; READ_BUFFER].into_boxed_slice(),
        }
    }

    /// True if `token` is one of these sockets'.
    #[must_use]
    pub(crate) fn owns(&self, token: Token) -> bool {
        self.sockets.owns(token)
    }

    /// Open sockets.
    #[must_use]
    pub(crate) fn len(&self) -> usize {
        self.sockets.len()
    }

    /// Carries out one of the client's transmits. A socket that could not be opened comes
    /// back through `on_input` as [`DnsInput::Closed`].
    pub(crate) fn transmit(
        &mut self,
        registry: &Registry,
        transmit: Transmit,
        mut on_input: impl FnMut(DnsInput<'_>),
    ) {
        let opened = match transmit {
            Transmit::Udp {
                socket,
                server,
                payload,
            } => self
                .open_udp(registry, socket, server, payload)
                .map_err(|_| socket),
            Transmit::Tcp {
                socket,
                server,
                payload,
            } => self
                .open_tcp(registry, socket, server, payload)
                .map_err(|_| socket),
            Transmit::Close { socket } => {
                self.close(registry, socket);
                Ok(())
            }
        };
        if let Err(socket) = opened {
            on_input(DnsInput::Closed { socket });
        }
    }

    /// Handles readiness of one of these sockets' tokens: drains the socket, handing what it
    /// read to `on_input` as it goes, and a failure last, as [`DnsInput::Closed`].
    pub(crate) fn ready(
        &mut self,
        registry: &Registry,
        token: Token,
        mut on_input: impl FnMut(DnsInput<'_>),
    ) {
        let Some((key, socket)) = self.sockets.by_token(token) else {
            return;
        };
        let id = socket.id();
        let was_writing = socket.writing();
        let outcome = match socket {
            DnsSocket::Udp { socket, unsent, .. } => {
                drain_udp(socket, unsent, &mut self.buffer, id, &mut on_input)
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
                &mut on_input,
            ),
        };
        match outcome {
            // Everything written: from now on only readability matters.
            Ok(Writing::Done) if was_writing == Writing::Pending => {
                if self
                    .sockets
                    .reregister(registry, key, Interest::READABLE)
                    .is_err()
                {
                    self.close(registry, id);
                    on_input(DnsInput::Closed { socket: id });
                }
            }
            Ok(_) => {}
            Err(_) => {
                self.close(registry, id);
                on_input(DnsInput::Closed { socket: id });
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
        let socket = connect_udp(server)?;
        let unsent = match socket.send(&payload) {
            Ok(_) => None,
            Err(e) if e.kind() == ErrorKind::WouldBlock => Some(payload),
            Err(e) => return Err(e),
        };
        let interest = if unsent.is_some() {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        let socket = DnsSocket::Udp { id, socket, unsent };
        self.sockets.insert(registry, id, socket, interest)
    }

    fn open_tcp(
        &mut self,
        registry: &Registry,
        id: SocketId,
        server: SocketAddr,
        payload: Vec<u8>,
    ) -> io::Result<()> {
        let stream = connect_tcp(server, None)?;
        let socket = DnsSocket::Tcp {
            id,
            stream,
            connected: false,
            out: payload,
            written: 0,
        };
        self.sockets.insert(
            registry,
            id,
            socket,
            Interest::READABLE | Interest::WRITABLE,
        )
    }

    fn close(&mut self, registry: &Registry, id: SocketId) {
        self.sockets.deregister(registry, id);
    }
}

/// Sends what is unsent, then reads datagrams until `WouldBlock`.
fn drain_udp(
    socket: &UdpSocket,
    unsent: &mut Option<Vec<u8>>,
    buffer: &mut [u8],
    id: SocketId,
    on_input: &mut impl FnMut(DnsInput<'_>),
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
            Ok((len, from)) => on_input(DnsInput::Udp {
                socket: id,
                from,
                bytes: &buffer[..len],
            }),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(Writing::Done),
            // ICMP port unreachable on a connected socket, and the like.
            Err(e) => return Err(e),
        }
    }
}

/// Completes the connect, writes what is left, and reads until `WouldBlock` or EOF.
fn drive_tcp(
    stream: &mut TcpStream,
    connected: &mut bool,
    out: &[u8],
    written: &mut usize,
    buffer: &mut [u8],
    id: SocketId,
    on_input: &mut impl FnMut(DnsInput<'_>),
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
            Ok(n) => on_input(DnsInput::Tcp {
                socket: id,
                bytes: &buffer[..n],
            }),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(Writing::Done),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}
