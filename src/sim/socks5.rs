//! A SOCKS5 proxy on loopback (RFC 1928 CONNECT, no authentication or RFC 1929
//! username/password), for `mxprobe bench --proxy` and the tests: one mio event loop on a thread
//! of its own relaying bytes between each client and the server it asked for.
//!
//! It speaks the server side of what [`crate::socks5`] speaks the client side of, and nothing
//! more: CONNECT by IPv4 or IPv6 address (a name is refused with reply 8, "address type not
//! supported"), a success reply carrying the proxy's own address, then a byte-for-byte relay
//! until either side closes. A target that refuses gets the client reply 5; a client that
//! breaks the protocol is closed. Dropping the [`Socks5Proxy`] stops and joins its thread.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;

const LISTENER: Token = Token(usize::MAX - 1);
const WAKE: Token = Token(usize::MAX);
const READ_CHUNK: usize = 16 * 1024;

/// What the proxy has done, at the moment of asking.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Client connections accepted.
    pub clients: u64,
    /// Tunnels opened (CONNECT answered with success).
    pub tunnels: u64,
    /// Clients refused: wrong credentials, a CONNECT that failed, a broken request.
    pub refused: u64,
}

#[derive(Debug, Default)]
struct Counters {
    clients: AtomicU64,
    tunnels: AtomicU64,
    refused: AtomicU64,
}

/// A running proxy; dropping it stops it.
#[derive(Debug)]
pub struct Socks5Proxy {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
    counters: Arc<Counters>,
    thread: Option<JoinHandle<()>>,
}

impl Socks5Proxy {
    /// Listens on `listen` (port 0 lets the OS choose) and serves on a thread of its own;
    /// with `credentials` (username, password), clients must give them (RFC 1929).
    ///
    /// # Errors
    ///
    /// If the address cannot be bound or the thread cannot start.
    pub fn start(listen: SocketAddr, credentials: Option<(String, String)>) -> io::Result<Self> {
        let mut listener = TcpListener::bind(listen)?;
        let addr = listener.local_addr()?;
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(Counters::default());
        let mut state = Loop {
            poll,
            listener,
            credentials,
            tunnels: Slab::new(),
            stop: Arc::clone(&stop),
            counters: Arc::clone(&counters),
        };
        let thread = thread::Builder::new()
            .name("sim-socks5".into())
            .spawn(move || state.run())?;
        Ok(Self {
            addr,
            stop,
            waker,
            counters,
            thread: Some(thread),
        })
    }

    /// Where it listens.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its counters now.
    #[must_use]
    pub fn stats(&self) -> ProxyStats {
        ProxyStats {
            clients: self.counters.clients.load(Ordering::Relaxed),
            tunnels: self.counters.tunnels.load(Ordering::Relaxed),
            refused: self.counters.refused.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Socks5Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // A failed wake leaves the loop asleep until its next event; nothing better can be
        // done from a destructor.
        let _ = self.waker.wake();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Where one client's conversation with the proxy stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Waiting for VER, NMETHODS, METHODS.
    Greeting,
    /// Waiting for the RFC 1929 username and password.
    Auth,
    /// Waiting for the CONNECT request.
    Request,
    /// Connecting to the target.
    Connecting,
    /// Relaying.
    Relay,
}

/// One client and, once asked for, its server.
#[derive(Debug)]
struct Tunnel {
    client: TcpStream,
    server: Option<TcpStream>,
    stage: Stage,
    /// Bytes from the client not yet understood (before the relay).
    pending: Vec<u8>,
    to_client: Vec<u8>,
    to_server: Vec<u8>,
    /// Close once `to_client` is written (a refusal, or the server hung up).
    closing: bool,
    /// The server's socket is registered with the poll.
    server_registered: bool,
}

struct Loop {
    poll: Poll,
    listener: TcpListener,
    credentials: Option<(String, String)>,
    tunnels: Slab<Tunnel>,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
}

/// Tokens: a tunnel's client is `2k`, its server `2k + 1`.
fn client_token(key: usize) -> Token {
    Token(key * 2)
}

fn server_token(key: usize) -> Token {
    Token(key * 2 + 1)
}

impl Loop {
    fn run(&mut self) {
        let mut events = Events::with_capacity(256);
        while !self.stop.load(Ordering::Acquire) {
            if self
                .poll
                .poll(&mut events, Some(Duration::from_secs(1)))
                .is_err()
            {
                continue;
            }
            for event in &events {
                match event.token() {
                    WAKE => {}
                    LISTENER => self.accept(),
                    Token(token) => self.step(token / 2),
                }
            }
        }
    }

    fn accept(&mut self) {
        loop {
            let mut client = match self.listener.accept() {
                Ok((client, _)) => client,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    // Out of descriptors or memory: the listener's edge is spent, so it is
                    // armed again and the clients still waiting are taken at the next turn.
                    let _ = self.poll.registry().reregister(
                        &mut self.listener,
                        LISTENER,
                        Interest::READABLE,
                    );
                    return;
                }
            };
            self.counters.clients.fetch_add(1, Ordering::Relaxed);
            let entry = self.tunnels.vacant_entry();
            let key = entry.key();
            if self
                .poll
                .registry()
                .register(&mut client, client_token(key), Interest::READABLE)
                .is_err()
            {
                continue;
            }
            entry.insert(Tunnel {
                client,
                server: None,
                stage: Stage::Greeting,
                pending: Vec::new(),
                to_client: Vec::new(),
                to_server: Vec::new(),
                closing: false,
                server_registered: false,
            });
        }
    }

    /// Does whatever tunnel `key` can do now; closes it when it is over.
    fn step(&mut self, key: usize) {
        let Some(tunnel) = self.tunnels.get_mut(key) else {
            return;
        };
        let credentials = self.credentials.as_ref();
        let open = step_tunnel(tunnel, credentials, &self.counters);
        if !open {
            let mut tunnel = self.tunnels.remove(key);
            let _ = self.poll.registry().deregister(&mut tunnel.client);
            if let Some(server) = tunnel.server.as_mut() {
                let _ = self.poll.registry().deregister(server);
            }
            return;
        }
        // Interest: read both sides; write where bytes wait, and on the server's socket while
        // its connection is being made.
        let registry = self.poll.registry();
        let client_interest = if tunnel.to_client.is_empty() {
            Interest::READABLE
        } else {
            Interest::READABLE | Interest::WRITABLE
        };
        let _ = registry.reregister(&mut tunnel.client, client_token(key), client_interest);
        if let Some(server) = tunnel.server.as_mut() {
            let interest = if tunnel.stage == Stage::Connecting || !tunnel.to_server.is_empty() {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            let done = if tunnel.server_registered {
                registry.reregister(server, server_token(key), interest)
            } else {
                registry.register(server, server_token(key), interest)
            };
            tunnel.server_registered = done.is_ok();
        }
    }
}

/// Reads what the client and server sent, answers and relays; false when the tunnel is over.
fn step_tunnel(
    tunnel: &mut Tunnel,
    credentials: Option<&(String, String)>,
    counters: &Counters,
) -> bool {
    // The client's bytes.
    let mut buf = [0u8; READ_CHUNK];
    loop {
        match tunnel.client.read(&mut buf) {
            Ok(0) => {
                // The client is done: what it sent last (its QUIT) still goes to the server.
                if let Some(server) = tunnel.server.as_mut()
                    && tunnel.stage == Stage::Relay
                {
                    let _ = flush(server, &mut tunnel.to_server);
                }
                return false;
            }
            Ok(n) if tunnel.stage == Stage::Relay => tunnel.to_server.extend_from_slice(&buf[..n]),
            Ok(n) => tunnel.pending.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    // The handshake, as far as the bytes go.
    while !tunnel.closing && matches!(tunnel.stage, Stage::Greeting | Stage::Auth | Stage::Request)
    {
        match answer(tunnel, credentials, counters) {
            Some(true) => {}
            Some(false) => break,
            None => {
                counters.refused.fetch_add(1, Ordering::Relaxed);
                tunnel.closing = true;
            }
        }
    }
    // The server's side.
    if tunnel.stage == Stage::Connecting
        && let Some(server) = tunnel.server.as_mut()
    {
        match (server.take_error(), server.peer_addr()) {
            (Ok(None), Ok(_)) => {
                tunnel
                    .to_client
                    .extend_from_slice(&success(server.local_addr().ok()));
                tunnel.stage = Stage::Relay;
                counters.tunnels.fetch_add(1, Ordering::Relaxed);
                tunnel.to_server.append(&mut tunnel.pending);
            }
            (Ok(None), Err(e)) if e.kind() == io::ErrorKind::NotConnected => {}
            _ => {
                tunnel.to_client.extend_from_slice(&refusal(5));
                counters.refused.fetch_add(1, Ordering::Relaxed);
                tunnel.closing = true;
                tunnel.server = None;
                tunnel.server_registered = false;
            }
        }
    }
    if tunnel.stage == Stage::Relay
        && let Some(server) = tunnel.server.as_mut()
    {
        loop {
            match server.read(&mut buf) {
                Ok(0) => {
                    tunnel.closing = true;
                    break;
                }
                Ok(n) => tunnel.to_client.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    tunnel.closing = true;
                    break;
                }
            }
        }
        if !flush(server, &mut tunnel.to_server) {
            return false;
        }
    }
    if !flush(&mut tunnel.client, &mut tunnel.to_client) {
        return false;
    }
    !(tunnel.closing && tunnel.to_client.is_empty())
}

/// Writes what `out` holds until the socket would block; false if the socket failed.
fn flush(stream: &mut TcpStream, out: &mut Vec<u8>) -> bool {
    while !out.is_empty() {
        match stream.write(out) {
            Ok(0) => return false,
            Ok(n) => {
                out.drain(..n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    true
}

/// Answers the next complete message of the handshake: `Some(true)` if one was answered,
/// `Some(false)` if more bytes are needed, `None` if the client is refused (the refusal is in
/// `to_client`).
fn answer(
    tunnel: &mut Tunnel,
    credentials: Option<&(String, String)>,
    _counters: &Counters,
) -> Option<bool> {
    let p = &tunnel.pending;
    match tunnel.stage {
        Stage::Greeting => {
            if p.len() < 2 {
                return Some(false);
            }
            if p[0] != 5 {
                return None;
            }
            let n = usize::from(p[1]);
            if p.len() < 2 + n {
                return Some(false);
            }
            let methods = &p[2..2 + n];
            let want = if credentials.is_some() { 2 } else { 0 };
            if !methods.contains(&want) {
                tunnel.to_client.extend_from_slice(&[5, 0xFF]);
                return None;
            }
            tunnel.to_client.extend_from_slice(&[5, want]);
            tunnel.pending.drain(..2 + n);
            tunnel.stage = if want == 2 {
                Stage::Auth
            } else {
                Stage::Request
            };
            Some(true)
        }
        Stage::Auth => {
            let (user, password) = credentials?;
            // The lengths come as the bytes do: wait for them.
            let Some(ulen) = p.get(1).map(|len| usize::from(*len)) else {
                return Some(false);
            };
            let Some(plen) = p.get(2 + ulen).map(|len| usize::from(*len)) else {
                return Some(false);
            };
            if p.len() < 3 + ulen + plen {
                return Some(false);
            }
            let ok = p[0] == 1
                && &p[2..2 + ulen] == user.as_bytes()
                && &p[3 + ulen..3 + ulen + plen] == password.as_bytes();
            tunnel.pending.drain(..3 + ulen + plen);
            if !ok {
                tunnel.to_client.extend_from_slice(&[1, 1]);
                return None;
            }
            tunnel.to_client.extend_from_slice(&[1, 0]);
            tunnel.stage = Stage::Request;
            Some(true)
        }
        Stage::Request => {
            if p.len() < 5 {
                return Some(false);
            }
            if p[0] != 5 || p[1] != 1 {
                tunnel.to_client.extend_from_slice(&refusal(7));
                return None;
            }
            let (ip, len): (IpAddr, usize) = match p[3] {
                1 if p.len() >= 10 => (Ipv4Addr::new(p[4], p[5], p[6], p[7]).into(), 10),
                4 if p.len() >= 22 => {
                    let mut octets = [0u8; 16];
                    octets.copy_from_slice(&p[4..20]);
                    (Ipv6Addr::from(octets).into(), 22)
                }
                1 | 4 => return Some(false),
                _ => {
                    tunnel.to_client.extend_from_slice(&refusal(8));
                    return None;
                }
            };
            let port = u16::from_be_bytes([p[len - 2], p[len - 1]]);
            tunnel.pending.drain(..len);
            match TcpStream::connect(SocketAddr::new(ip, port)) {
                Ok(server) => {
                    tunnel.server = Some(server);
                    tunnel.stage = Stage::Connecting;
                    Some(false)
                }
                Err(_) => {
                    tunnel.to_client.extend_from_slice(&refusal(5));
                    None
                }
            }
        }
        _ => Some(false),
    }
}

/// A success reply naming `bound` (or 0.0.0.0:0).
fn success(bound: Option<SocketAddr>) -> Vec<u8> {
    let bound = bound.unwrap_or_else(|| SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)));
    let mut reply = vec![5, 0, 0];
    match bound.ip() {
        IpAddr::V4(ip) => {
            reply.push(1);
            reply.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            reply.push(4);
            reply.extend_from_slice(&ip.octets());
        }
    }
    reply.extend_from_slice(&bound.port().to_be_bytes());
    reply
}

/// A failure reply with `code`.
fn refusal(code: u8) -> Vec<u8> {
    vec![5, code, 0, 1, 0, 0, 0, 0, 0, 0]
}
