//! The engine's SMTP connections: what [`ConnIo`] asks for, made real with `socket2` and `mio`,
//! and what happens on them fed back to the [`Scheduler`].
//!
//! - **Connect**: a nonblocking socket (IPv4 or IPv6 as the target is), `TCP_NODELAY` (a probe
//!   writes small commands and waits for each answer: Nagle's algorithm would only add delay),
//!   bound to the configured source address if there is one, then `connect`, which answers
//!   `EINPROGRESS`. The first event after it says the attempt is over (epoll reports a
//!   connecting socket only when the handshake completes or fails); `take_error` tells which,
//!   since writable alone can also mean "failed". The socket is read only when the event says
//!   it is readable.
//! - **Out of resources** (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`, `EADDRNOTAVAIL` when the
//!   ephemeral ports run out): the scheduler is told so, requeues the addresses and backs
//!   off; nothing is lost and nothing counts as the server's failure.
//! - **Readiness**: a socket is registered once, for reading and writing, and never
//!   re-registered: mio is edge-triggered, so a writable edge comes only when the socket was
//!   full and has room again, and costs nothing otherwise (tokio registers its sockets the same
//!   way). A socket costs one `epoll_ctl` in its life; closing it takes it out of the set.
//! - **Reads** drain the socket: until `WouldBlock`, or until a read returns less than it
//!   asked for, which on a stream socket means the receive queue was emptied (whatever arrives
//!   later raises a new edge), saving the `read` that would only say `WouldBlock`. `Ok(0)` is
//!   the peer's close. **Writes** take what the socket accepts; the rest waits for the next
//!   writable edge.
//! - **Close**: the session's last words (its QUIT) are written if the socket takes them at
//!   once, then the socket is closed without lingering.

use std::collections::HashMap;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use mio::event::Event;
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use slab::Slab;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::engine::{ConnId, ConnIo, Scheduler};

/// Bytes read per `read` call.
const READ_CHUNK: usize = 16 * 1024;

#[derive(Debug)]
struct SmtpSocket {
    conn: ConnId,
    stream: TcpStream,
    connected: bool,
}

/// The engine's SMTP sockets, registered with one `mio::Poll` under tokens from `first_token`
/// up to (not including) `end_token`.
#[derive(Debug)]
pub struct SmtpSockets {
    sockets: Slab<SmtpSocket>,
    by_conn: HashMap<ConnId, usize>,
    first_token: usize,
    buffer: Box<[u8]>,
}

impl SmtpSockets {
    /// No sockets yet; tokens from `first_token` up.
    #[must_use]
    pub fn new(first_token: usize) -> Self {
        Self {
            sockets: Slab::new(),
            by_conn: HashMap::new(),
            first_token,
            buffer: vec![0; READ_CHUNK].into_boxed_slice(),
        }
    }

    /// True if `token` names one of these sockets.
    #[must_use]
    pub fn owns(&self, token: Token) -> bool {
        token
            .0
            .checked_sub(self.first_token)
            .is_some_and(|key| self.sockets.contains(key))
    }

    /// Open connections.
    #[must_use]
    pub fn len(&self) -> usize {
        self.sockets.len()
    }

    /// True if none is open.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.sockets.is_empty()
    }

    /// Carries out every connection operation the scheduler has.
    pub fn flush(&mut self, registry: &Registry, scheduler: &mut Scheduler, now: Instant) {
        while let Some(io) = scheduler.poll_conn_io() {
            match io {
                ConnIo::Connect { conn, to, from } => match self.open(registry, conn, to, from) {
                    Ok(()) => {}
                    Err(e) if is_out_of_resources(&e) => scheduler.handle_no_resources(conn, now),
                    Err(_) => scheduler.handle_closed(conn, now),
                },
                ConnIo::Close { conn, last_words } => self.close(conn, &last_words),
            }
        }
    }

    /// Handles a readiness event of one of these sockets.
    pub fn ready(&mut self, event: &Event, scheduler: &mut Scheduler, now: Instant) {
        let token = event.token();
        let readable = event.is_readable() || event.is_read_closed() || event.is_error();
        let Some(key) = token.0.checked_sub(self.first_token) else {
            return;
        };
        let Some(socket) = self.sockets.get_mut(key) else {
            return;
        };
        let conn = socket.conn;
        if !socket.connected {
            if !readable && !event.is_writable() {
                return;
            }
            // A failed attempt is reported with an error or hang-up flag (EPOLLERR,
            // EPOLLHUP); only then is `SO_ERROR` worth a system call.
            let suspect = event.is_error() || event.is_write_closed() || event.is_read_closed();
            if suspect && !matches!(socket.stream.take_error(), Ok(None)) {
                self.close(conn, &[]);
                scheduler.handle_closed(conn, now);
                return;
            }
            socket.connected = true;
            scheduler.handle_connected(conn, now);
        }
        if readable && self.read(key, scheduler, now).is_err() {
            return;
        }
        self.write(conn, scheduler, now);
    }

    /// Writes what the scheduler has for `conn`, as far as the socket takes it.
    pub fn write(&mut self, conn: ConnId, scheduler: &mut Scheduler, now: Instant) {
        let Some(&key) = self.by_conn.get(&conn) else {
            return;
        };
        let Some(socket) = self.sockets.get_mut(key) else {
            return;
        };
        if !socket.connected {
            return;
        }
        // Until the output is written or the socket is full; a full socket raises a writable
        // edge when it has room again.
        loop {
            let output = scheduler.output(conn);
            if output.is_empty() {
                break;
            }
            match socket.stream.write(output) {
                Ok(0) => {
                    self.fail(conn, scheduler, now);
                    return;
                }
                Ok(n) => scheduler.consume_output(conn, n),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    self.fail(conn, scheduler, now);
                    return;
                }
            }
        }
    }

    /// Drains the socket (see the module documentation), feeding the scheduler. `Err` if the
    /// connection ended.
    fn read(&mut self, key: usize, scheduler: &mut Scheduler, now: Instant) -> Result<(), ()> {
        loop {
            let Some(socket) = self.sockets.get_mut(key) else {
                return Err(());
            };
            let conn = socket.conn;
            match socket.stream.read(&mut self.buffer) {
                Ok(0) => {
                    self.fail(conn, scheduler, now);
                    return Err(());
                }
                Ok(n) => {
                    scheduler.handle_input(conn, &self.buffer[..n], now);
                    // The session may have ended; its Close is carried out by the next flush.
                    if !scheduler.has_conn(conn) {
                        return Err(());
                    }
                    if n < self.buffer.len() {
                        return Ok(());
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    self.fail(conn, scheduler, now);
                    return Err(());
                }
            }
        }
    }

    /// The connection broke: close it and tell the scheduler.
    fn fail(&mut self, conn: ConnId, scheduler: &mut Scheduler, now: Instant) {
        self.close(conn, &[]);
        scheduler.handle_closed(conn, now);
    }

    fn open(
        &mut self,
        registry: &Registry,
        conn: ConnId,
        to: SocketAddr,
        from: Option<IpAddr>,
    ) -> io::Result<()> {
        let socket = new_nonblocking_socket(to)?;
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
        let mut stream = TcpStream::from_std(socket.into());
        let entry = self.sockets.vacant_entry();
        let token = Token(self.first_token + entry.key());
        registry.register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)?;
        self.by_conn.insert(conn, entry.key());
        entry.insert(SmtpSocket {
            conn,
            stream,
            connected: false,
        });
        Ok(())
    }

    /// Closes the connection; dropping the stream closes the descriptor, which takes it out of
    /// the poll set.
    fn close(&mut self, conn: ConnId, last_words: &[u8]) {
        let Some(key) = self.by_conn.remove(&conn) else {
            return;
        };
        let mut socket = self.sockets.remove(key);
        if socket.connected && !last_words.is_empty() {
            // Best effort: the QUIT goes if the socket takes it now; the session is over
            // either way.
            let _ = socket.stream.write(last_words);
        }
    }
}

/// A TCP socket for `to`'s family, nonblocking from birth where the system allows
/// (`SOCK_NONBLOCK`: one system call instead of three).
fn new_nonblocking_socket(to: SocketAddr) -> io::Result<Socket> {
    #[cfg(any(
        target_os = "android",
        target_os = "freebsd",
        target_os = "linux",
        target_os = "netbsd",
        target_os = "openbsd"
    ))]
    {
        Socket::new(
            Domain::for_address(to),
            Type::STREAM.nonblocking(),
            Some(Protocol::TCP),
        )
    }
    #[cfg(not(any(
        target_os = "android",
        target_os = "freebsd",
        target_os = "linux",
        target_os = "netbsd",
        target_os = "openbsd"
    )))]
    {
        let socket = Socket::new(Domain::for_address(to), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_nonblocking(true)?;
        Ok(socket)
    }
}

/// Errors that say "the system is out of something", not "the server is unreachable".
fn is_out_of_resources(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM | libc::EADDRNOTAVAIL)
    )
}
