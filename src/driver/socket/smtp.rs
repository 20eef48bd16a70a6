//! The engine's SMTP connections: what [`ConnIo`] asks for, made real with the driver's
//! [`SocketTable`] and [`connect_tcp`], and what happens on them fed back to the [`Scheduler`].
//!
//! - **Connect**: the first event after the nonblocking connect says the attempt is over
//!   (epoll reports a connecting socket only when the handshake completes or fails);
//!   `take_error` tells which, since writable alone can also mean "failed". The socket is read
//!   only when the event says it is readable.
//! - **Out of resources** (see [`is_out_of_resources`]): the scheduler is told so, requeues
//!   the addresses and backs off; nothing is lost and nothing counts as the server's failure.
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

use std::io::{self, ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::time::Instant;

use mio::event::{Event, Source};
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use super::{Registered, SocketTable, connect_tcp, is_out_of_resources};
use crate::engine::{ConnId, ConnIo, Scheduler};

/// Bytes read per `read` call.
const READ_CHUNK: usize = 16 * 1024;

#[derive(Debug)]
struct SmtpSocket {
    conn: ConnId,
    stream: TcpStream,
    connected: bool,
}

impl Registered for SmtpSocket {
    fn source(&mut self) -> &mut dyn Source {
        &mut self.stream
    }
}

/// The engine's SMTP sockets, registered with one `mio::Poll` under tokens from one range.
#[derive(Debug)]
pub(crate) struct SmtpSockets {
    sockets: SocketTable<ConnId, SmtpSocket>,
    buffer: Box<[u8]>,
}

impl SmtpSockets {
    /// No sockets yet; tokens from `tokens` only.
    #[must_use]
    pub(crate) fn new(tokens: Range<usize>) -> Self {
        Self {
            sockets: SocketTable::new(tokens),
            buffer: vec![0; READ_CHUNK].into_boxed_slice(),
        }
    }

    /// True if `token` names one of these sockets.
    #[must_use]
    pub(crate) fn owns(&self, token: Token) -> bool {
        self.sockets.owns(token)
    }

    /// True if connection `conn` is one of these sockets.
    #[must_use]
    pub(crate) fn holds(&self, conn: ConnId) -> bool {
        self.sockets.slot_of(conn).is_some()
    }

    /// True if no socket is open.
    #[must_use]
    pub(crate) fn is_empty(&self) -> bool {
        self.sockets.len() == 0
    }

    /// Carries out one connection operation of the scheduler's, registering a new socket with
    /// `registry`.
    pub(crate) fn carry_out(
        &mut self,
        registry: &Registry,
        io: ConnIo,
        scheduler: &mut Scheduler,
        now: Instant,
    ) {
        match io {
            ConnIo::Connect { conn, to, from, .. } => match self.open(registry, conn, to, from) {
                Ok(()) => {}
                Err(e) if is_out_of_resources(&e) => scheduler.handle_no_resources(conn, now),
                Err(_) => scheduler.handle_closed(conn, now),
            },
            ConnIo::Close { conn, last_words } => self.close(conn, &last_words),
        }
    }

    /// Handles a readiness event of one of these sockets.
    pub(crate) fn ready(&mut self, event: &Event, scheduler: &mut Scheduler, now: Instant) {
        let readable = event.is_readable() || event.is_read_closed() || event.is_error();
        let Some((key, socket)) = self.sockets.by_token(event.token()) else {
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
    pub(crate) fn write(&mut self, conn: ConnId, scheduler: &mut Scheduler, now: Instant) {
        let Some(key) = self.sockets.slot_of(conn) else {
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
        let stream = connect_tcp(to, from)?;
        let socket = SmtpSocket {
            conn,
            stream,
            connected: false,
        };
        self.sockets.insert(
            registry,
            conn,
            socket,
            Interest::READABLE | Interest::WRITABLE,
        )
    }

    /// Closes the connection; dropping the stream closes the descriptor, which takes it out of
    /// the poll set.
    fn close(&mut self, conn: ConnId, last_words: &[u8]) {
        let Some(mut socket) = self.sockets.remove(conn) else {
            return;
        };
        if socket.connected && !last_words.is_empty() {
            // Best effort: the QUIT goes if the socket takes it now; the session is over
            // either way.
            let _ = socket.stream.write(last_words);
        }
    }
}
