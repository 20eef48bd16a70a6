//! Bring your own event loop: mxprobe's sans-IO [`Scheduler`] driven from a tokio runtime with
//! tokio's sockets, in the manner of quinn over quinn-proto.
//!
//! The scheduler decides everything; a driver carries out what it asks (`poll_*`, `output`) and
//! feeds back what happened with the current [`Instant`] (`handle_*`): see [`Scheduler`]'s
//! calling contract. One task owns the scheduler; each socket has a task that sends what it
//! reads to the owner as an [`Event`]; each connection a writer task. `tests/engine_farm.rs`
//! runs the mio driver's end-to-end scenarios through this one too. `cargo run --example
//! tokio_driver` verifies four addresses at a simulated `example.test`.

#![allow(
    clippy::disallowed_methods,
    clippy::print_stdout,
    reason = "a driver reads the clock"
)]

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mxprobe::dns::{SocketId, Transmit};
use mxprobe::engine::{ConnId, ConnIo, EngineStats, Scheduler};
use mxprobe::{Config, VerifyResult};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};
use tokio::sync::mpsc::{self, UnboundedSender};
use tokio::task::AbortHandle;

/// What the socket tasks tell the task that owns the scheduler.
pub enum Event {
    /// An SMTP connection is up; its writer is ready.
    Connected(ConnId, UnboundedSender<Vec<u8>>),
    /// An SMTP connection could not be opened.
    ConnectFailed(ConnId, io::Error),
    /// Bytes from an SMTP server.
    Input(ConnId, Vec<u8>),
    /// An SMTP connection ended or broke.
    Closed(ConnId),
    /// A datagram for the DNS client.
    Udp(SocketId, SocketAddr, Vec<u8>),
    /// Stream bytes for the DNS client.
    Tcp(SocketId, Vec<u8>),
    /// A DNS socket failed or ended.
    DnsClosed(SocketId),
}

/// How long to sleep when the scheduler names no deadline.
const IDLE: Duration = Duration::from_secs(60);

/// One SMTP connection: its reading task and, once connected, its writer.
type Conn = (AbortHandle, Option<UnboundedSender<Vec<u8>>>);

/// Runs the scheduler until `submissions` closes and every address has its verdict, sending
/// verdicts to `results` as they complete. `seed` feeds the scheduler's CSPRNG.
pub async fn run(
    config: Config,
    seed: [u8; 32],
    mut submissions: mpsc::Receiver<(String, u64)>,
    results: UnboundedSender<VerifyResult>,
) -> EngineStats {
    let intake = config.intake();
    let mut scheduler = Scheduler::new(config, seed);
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let (mut conns, mut dns) = (HashMap::new(), HashMap::new());
    let mut input_open = true;
    loop {
        carry_out(&mut scheduler, &mut conns, &mut dns, &events_tx);
        while let Some(result) = scheduler.poll_result() {
            let _ = results.send(result);
        }
        if !input_open && scheduler.is_idle() {
            return scheduler.stats();
        }
        let deadline = (scheduler.poll_timeout()).unwrap_or_else(|| Instant::now() + IDLE);
        let room = scheduler.pending() < intake;
        tokio::select! {
            biased;
            Some(event) = events.recv() => handle(&mut scheduler, &mut conns, &mut dns, event),
            submission = submissions.recv(), if input_open && room => match submission {
                Some((address, tag)) => scheduler.submit(&address, tag, Instant::now()),
                None => input_open = false,
            },
            () = tokio::time::sleep_until(deadline.into()) => {
                scheduler.handle_timeout(Instant::now());
            }
        }
    }
}

/// Feeds one event to the scheduler, then writes what the connection has to say.
fn handle(
    scheduler: &mut Scheduler,
    conns: &mut HashMap<ConnId, Conn>,
    dns: &mut HashMap<SocketId, AbortHandle>,
    event: Event,
) {
    let now = Instant::now();
    // An event of a socket the scheduler already closed is stale, and dropped. A socket's
    // entry goes when its end is reported.
    match event {
        Event::Connected(conn, writer) if conns.contains_key(&conn) => {
            conns.entry(conn).and_modify(|c| c.1 = Some(writer));
            scheduler.handle_connected(conn, now);
            write(scheduler, conns, conn);
        }
        Event::Input(conn, bytes) if conns.contains_key(&conn) => {
            scheduler.handle_input(conn, &bytes, now);
            write(scheduler, conns, conn);
        }
        Event::ConnectFailed(conn, error) if conns.remove(&conn).is_some() => {
            if out_of_resources(&error) {
                scheduler.handle_no_resources(conn, now);
            } else {
                scheduler.handle_closed(conn, now);
            }
        }
        Event::Closed(conn) if conns.remove(&conn).is_some() => scheduler.handle_closed(conn, now),
        Event::Udp(socket, from, bytes) if dns.contains_key(&socket) => {
            scheduler.handle_udp(socket, from, &bytes, now);
        }
        Event::Tcp(socket, bytes) if dns.contains_key(&socket) => {
            scheduler.handle_tcp(socket, &bytes, now);
        }
        Event::DnsClosed(socket) if dns.remove(&socket).is_some() => {
            scheduler.handle_dns_closed(socket, now);
        }
        _ => {}
    }
}

/// Hands the connection's pending output to its writer.
fn write(scheduler: &mut Scheduler, conns: &HashMap<ConnId, Conn>, conn: ConnId) {
    if let Some((_, Some(writer))) = conns.get(&conn)
        && let output = scheduler.output(conn).to_vec()
        && !output.is_empty()
    {
        scheduler.consume_output(conn, output.len());
        let _ = writer.send(output);
    }
}

/// Opens and closes what the scheduler asks for.
fn carry_out(
    scheduler: &mut Scheduler,
    conns: &mut HashMap<ConnId, Conn>,
    dns: &mut HashMap<SocketId, AbortHandle>,
    events: &UnboundedSender<Event>,
) {
    while let Some(io) = scheduler.poll_conn_io() {
        match io {
            ConnIo::Connect { conn, to, from, .. } => {
                let task = tokio::spawn(smtp_connection(conn, to, from, events.clone()));
                conns.insert(conn, (task.abort_handle(), None));
            }
            ConnIo::Close { conn, last_words } => {
                // The writer sends the QUIT and closes; the reader is stopped at once.
                if let Some((task, writer)) = conns.remove(&conn) {
                    writer.map(|w| w.send(last_words));
                    task.abort();
                }
            }
        }
    }
    while let Some(transmit) = scheduler.poll_dns_transmit() {
        match transmit {
            Transmit::Udp { socket, .. } | Transmit::Tcp { socket, .. } => {
                let task = tokio::spawn(dns_socket(socket, transmit, events.clone()));
                dns.insert(socket, task.abort_handle());
            }
            Transmit::Close { socket } => {
                if let Some(task) = dns.remove(&socket) {
                    task.abort();
                }
            }
        }
    }
}

/// Connects (from `from`, if given), then reads until the connection ends.
async fn smtp_connection(
    conn: ConnId,
    to: SocketAddr,
    from: Option<std::net::IpAddr>,
    events: UnboundedSender<Event>,
) {
    let stream = async {
        let socket = if to.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        if let Some(ip) = from {
            socket.bind(SocketAddr::new(ip, 0))?;
        }
        socket.connect(to).await
    };
    let (mut reader, mut write_half) = match stream.await {
        Ok(stream) => stream.into_split(),
        Err(error) => {
            let _ = events.send(Event::ConnectFailed(conn, error));
            return;
        }
    };
    let (writer, mut outgoing) = mpsc::unbounded_channel::<Vec<u8>>();
    tokio::spawn(async move {
        while let Some(bytes) = outgoing.recv().await {
            write_half.write_all(&bytes).await?;
        }
        write_half.shutdown().await
    });
    let _ = events.send(Event::Connected(conn, writer));
    let mut buffer = vec![0; 16 * 1024];
    loop {
        match reader.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let _ = events.send(Event::Input(conn, buffer[..n].to_vec()));
            }
        }
    }
    let _ = events.send(Event::Closed(conn));
}

/// Sends one DNS query, over UDP from a new socket or over TCP, and passes on what comes back
/// until the socket fails, the stream ends, or the scheduler closes it.
async fn dns_socket(socket: SocketId, transmit: Transmit, events: UnboundedSender<Event>) {
    let _: io::Result<()> = async {
        let mut buffer = vec![0; 64 * 1024];
        match transmit {
            Transmit::Udp {
                server, payload, ..
            } => {
                let any = if server.is_ipv4() {
                    "0.0.0.0:0"
                } else {
                    "[::]:0"
                };
                let udp = UdpSocket::bind(any).await?;
                udp.send_to(&payload, server).await?;
                loop {
                    let (n, from) = udp.recv_from(&mut buffer).await?;
                    let _ = events.send(Event::Udp(socket, from, buffer[..n].to_vec()));
                }
            }
            Transmit::Tcp {
                server, payload, ..
            } => {
                let mut stream = TcpStream::connect(server).await?;
                stream.write_all(&payload).await?;
                loop {
                    match stream.read(&mut buffer).await? {
                        0 => return Ok(()),
                        n => drop(events.send(Event::Tcp(socket, buffer[..n].to_vec()))),
                    }
                }
            }
            Transmit::Close { .. } => Ok(()),
        }
    }
    .await;
    let _ = events.send(Event::DnsClosed(socket));
}

/// The system is out of sockets: not the server's fault.
fn out_of_resources(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// Verifies four addresses at mxprobe's simulated `example.test`.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let world = mxprobe::sim::DocWorld::start()?;
    let config = Config::builder()
        .sender("verify@example.test")
        .nameserver(world.dns())
        .smtp_port(world.smtp_port())
        .allow_private_mx(true)
        .build()?;
    let (submit, submissions) = mpsc::channel(1024);
    let (results, mut verdicts) = mpsc::unbounded_channel();
    let seed = mxprobe::driver::os_seed()?;
    let engine = tokio::spawn(run(config, seed, submissions, results));
    for (line, user) in ["alice", "nobody", "bob", "not an"].into_iter().enumerate() {
        submit
            .send((format!("{user}@example.test"), line as u64))
            .await?;
    }
    drop(submit);
    while let Some(result) = verdicts.recv().await {
        println!("{}", serde_json::to_string(&result.record())?);
    }
    let stats = engine.await?;
    println!("{} sessions", stats.sessions);
    Ok(())
}
