//! The client side of a SOCKS5 proxy handshake (RFC 1928, with RFC 1929's username and
//! password), sans-IO: what to write to the proxy, and what its bytes say.
//!
//! Where port 25 is blocked (most cloud machines, most home lines), probes go out through a
//! SOCKS5 proxy that can reach it. A [`Handshake`] runs on the proxy connection before the
//! SMTP session: it offers "no authentication" (and username/password when it has
//! [`Credentials`]), answers the proxy's choice, asks it to CONNECT to the mail server (by
//! address, or by the MX host's name for a proxy that resolves names itself:
//! [`Handshake::by_name`], `socks5h://`), and reads the reply. After that the connection is the mail server's: the bytes that followed the
//! reply in the same read belong to the SMTP session, and pipelining works through the tunnel
//! as it does without one.
//!
//! # Guarantees
//!
//! - No I/O and no clock: bytes in, bytes out. The caller's connect deadline bounds the whole
//!   handshake.
//! - Any byte sequence from the proxy, split anywhere, ends in [`Progress::Pending`],
//!   [`Progress::Open`] or a [`ProxyError`]: never a panic, and never more than the 262 bytes
//!   of the longest reply buffered.
//! - A [`ProxyError`] says whose fault it was: [`ProxyError::reaches_the_server`] is true only
//!   for the proxy's reports that the mail server itself refused or could not be reached, which
//!   are what a direct connection failure would be; every other error is the proxy's, and must
//!   never become a verdict on an address.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// A username and password for a proxy (RFC 1929): each 1 to 255 bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    username: Vec<u8>,
    password: Vec<u8>,
}

impl Credentials {
    /// Checked credentials.
    ///
    /// # Errors
    ///
    /// If either is empty or longer than 255 bytes (RFC 1929 §2 has one byte for each length).
    pub fn new(username: &str, password: &str) -> Result<Self, String> {
        for (what, value) in [("username", username), ("password", password)] {
            if value.is_empty() || value.len() > 255 {
                return Err(format!(
                    "a SOCKS5 {what} is 1 to 255 bytes (RFC 1929), not {}",
                    value.len()
                ));
            }
        }
        Ok(Self {
            username: username.as_bytes().to_vec(),
            password: password.as_bytes().to_vec(),
        })
    }

    /// The username.
    #[must_use]
    pub fn username(&self) -> String {
        String::from_utf8_lossy(&self.username).into_owned()
    }
}

impl fmt::Debug for Credentials {
    /// The password never shows.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username())
            .field("password", &"…")
            .finish()
    }
}

/// A SOCKS5 proxy to probe through: its address and, if it wants them, credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxy {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The username and password it wants, if any.
    pub credentials: Option<Credentials>,
    /// CONNECT by the MX host's name, which the proxy resolves in its own network
    /// (`socks5h://`, as curl spells it), instead of by the address mxprobe resolved.
    pub resolves_names: bool,
}

impl Proxy {
    /// Reads `socks5://[user:password@]host:port`, the host an IP address (IPv6 in brackets);
    /// `%` escapes in the username and password are decoded. `socks5h://` is the same proxy
    /// asked to CONNECT by name ([`Proxy::resolves_names`]).
    ///
    /// ```
    /// use mxprobe::socks5::Proxy;
    ///
    /// assert!(Proxy::parse("socks5h://127.0.0.1:1080")?.resolves_names);
    /// assert!(!Proxy::parse("socks5://127.0.0.1:1080")?.resolves_names);
    /// # Ok::<(), String>(())
    /// ```
    ///
    /// ```
    /// use mxprobe::socks5::Proxy;
    ///
    /// let proxy = Proxy::parse("socks5://probe:p%40ss@127.0.0.1:1080")?;
    /// assert_eq!(proxy.addr.port(), 1080);
    /// assert_eq!(proxy.credentials.map(|c| c.username()).as_deref(), Some("probe"));
    /// assert!(Proxy::parse("http://127.0.0.1:8080").is_err());
    /// # Ok::<(), String>(())
    /// ```
    ///
    /// # Errors
    ///
    /// A sentence saying what is wrong and what is expected.
    pub fn parse(text: &str) -> Result<Self, String> {
        let expected = "expected socks5://[user:password@]IP:PORT (or socks5h:// for a proxy \
                        that resolves the mail servers' names)";
        let (rest, resolves_names) = match text.strip_prefix("socks5://") {
            Some(rest) => (rest, false),
            None => (
                text.strip_prefix("socks5h://")
                    .ok_or_else(|| format!("{text:?} is not a SOCKS5 proxy: {expected}"))?,
                true,
            ),
        };
        let (userinfo, host) = match rest.rsplit_once('@') {
            Some((userinfo, host)) => (Some(userinfo), host),
            None => (None, rest),
        };
        let host = host.trim_end_matches('/');
        let addr: SocketAddr = host.parse().map_err(|_| {
            format!("{host:?} is not an IP address and port: {expected} (the proxy's own address, not a name)")
        })?;
        let credentials = match userinfo {
            None => None,
            Some(userinfo) => {
                let (user, password) = userinfo.split_once(':').ok_or_else(|| {
                    format!("the proxy's credentials need a password: {expected}")
                })?;
                Some(Credentials::new(
                    &percent_decode(user)?,
                    &percent_decode(password)?,
                )?)
            }
        };
        Ok(Self {
            addr,
            credentials,
            resolves_names,
        })
    }
}

/// `%XX` escapes decoded (the rest as it is).
fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| {
                    format!("{text:?} has a % that is not followed by two hex digits")
                })?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{text:?} does not decode to UTF-8"))
}

/// Why a handshake failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyError {
    /// The proxy accepts none of the methods offered (0xFF): it wants credentials mxprobe
    /// was not given, or others than username/password.
    NoAcceptableMethod,
    /// The proxy chose a method that was not offered.
    UnofferedMethod(u8),
    /// The proxy refused the username and password (its RFC 1929 status).
    AuthenticationFailed(u8),
    /// The proxy refused the CONNECT: its RFC 1928 reply code.
    Refused(u8),
    /// The proxy broke the protocol: what it sent instead.
    Protocol(&'static str),
}

impl ProxyError {
    /// True if the proxy reports that the mail server itself could not be reached or refused
    /// the connection (network or host unreachable, connection refused, TTL expired): what a
    /// direct connection would have met. Every other failure is the proxy's own.
    #[must_use]
    pub const fn reaches_the_server(&self) -> bool {
        matches!(self, Self::Refused(3..=6))
    }
}

/// RFC 1928 §6's meaning of a reply code.
fn reply_meaning(code: u8) -> &'static str {
    match code {
        1 => "general SOCKS server failure",
        2 => "connection not allowed by ruleset",
        3 => "network unreachable",
        4 => "host unreachable",
        5 => "connection refused",
        6 => "TTL expired",
        7 => "command not supported",
        8 => "address type not supported",
        _ => "unassigned reply code",
    }
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoAcceptableMethod => f.write_str(
                "the SOCKS5 proxy accepts none of the offered methods (no authentication, \
                 username/password): give it credentials it takes",
            ),
            Self::UnofferedMethod(method) => write!(
                f,
                "the SOCKS5 proxy chose method {method:#04x}, which was not offered"
            ),
            Self::AuthenticationFailed(status) => write!(
                f,
                "the SOCKS5 proxy refused the username and password (status {status}): check \
                 the credentials in --proxy"
            ),
            Self::Refused(code) => write!(
                f,
                "the SOCKS5 proxy answered CONNECT with reply {code} ({})",
                reply_meaning(*code)
            ),
            Self::Protocol(what) => write!(f, "the SOCKS5 proxy broke the protocol: {what}"),
        }
    }
}

impl std::error::Error for ProxyError {}

/// Where a handshake stands after some input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// More bytes are needed (and maybe [`Handshake::output`] has some to write).
    Pending,
    /// The tunnel is open. The input's bytes from `leftover` on came after the reply: they
    /// are the mail server's, the start of its greeting.
    Open {
        /// Where the server's bytes start in the input just handed over.
        leftover: usize,
    },
}

/// What the handshake waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// The method selection: VER, METHOD.
    Method,
    /// The RFC 1929 status: VER (1), STATUS.
    Auth,
    /// The CONNECT reply: VER, REP, RSV, ATYP, BND.ADDR, BND.PORT.
    Reply,
    /// The tunnel is open; nothing more is read here.
    Open,
    /// It failed.
    Failed,
}

/// One SOCKS5 handshake, from the greeting to the CONNECT reply.
///
/// ```
/// use mxprobe::socks5::{Handshake, Progress};
///
/// let mut h = Handshake::new("192.0.2.25:25".parse()?, None);
/// assert_eq!(h.output(), [5, 1, 0]); // version 5, one method: no authentication
/// h.consume_output(3);
/// assert_eq!(h.handle_input(&[5, 0])?, Progress::Pending);
/// assert_eq!(h.output(), [5, 1, 0, 1, 192, 0, 2, 25, 0, 25]); // CONNECT 192.0.2.25:25
/// h.consume_output(10);
/// let reply = [5, 0, 0, 1, 127, 0, 0, 1, 0x9c, 0x40];
/// let greeting = b"220 mx.example ESMTP\r\n";
/// let input = [&reply[..], greeting].concat();
/// assert_eq!(h.handle_input(&input)?, Progress::Open { leftover: 10 });
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Handshake {
    target: SocketAddr,
    /// The target's host name, when the proxy is to resolve it (CONNECT with ATYP 3).
    name: Option<Box<str>>,
    credentials: Option<Credentials>,
    step: Step,
    out: Vec<u8>,
    out_start: usize,
    /// The part of the reply read so far.
    buffer: Vec<u8>,
}

/// The longest reply: VER, REP, RSV, ATYP, a 255-byte name with its length, the port.
const MAX_REPLY: usize = 4 + 1 + 255 + 2;

impl Handshake {
    /// A handshake to tunnel to `target`, offering username/password too if `credentials`
    /// are given. The greeting is ready in [`output`](Self::output).
    #[must_use]
    pub fn new(target: SocketAddr, credentials: Option<Credentials>) -> Self {
        let out = if credentials.is_some() {
            vec![5, 2, 0, 2]
        } else {
            vec![5, 1, 0]
        };
        Self {
            target,
            name: None,
            credentials,
            step: Step::Method,
            out,
            out_start: 0,
            buffer: Vec::with_capacity(16),
        }
    }

    /// The same handshake, asking the proxy to CONNECT to `host` (at `target`'s port) by name,
    /// for the proxy to resolve (RFC 1928 §5, ATYP 3). A name that cannot go in the request
    /// (empty, over 255 bytes, or not a plain ASCII host name) leaves the CONNECT by address.
    #[must_use]
    pub fn by_name(mut self, host: &str) -> Self {
        let host = host.trim_end_matches('.');
        let plain = !host.is_empty()
            && host.len() <= 255
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
        if plain {
            self.name = Some(host.into());
        }
        self
    }

    /// The mail server the tunnel goes to.
    #[must_use]
    pub const fn target(&self) -> SocketAddr {
        self.target
    }

    /// The name the proxy is asked to resolve, if it is.
    #[must_use]
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Bytes to write to the proxy.
    #[must_use]
    pub fn output(&self) -> &[u8] {
        &self.out[self.out_start..]
    }

    /// `n` bytes of [`output`](Self::output) were written.
    pub fn consume_output(&mut self, n: usize) {
        self.out_start = (self.out_start + n).min(self.out.len());
        if self.out_start == self.out.len() {
            self.out.clear();
            self.out_start = 0;
        }
    }

    /// True once the tunnel is open.
    #[must_use]
    pub fn is_open(&self) -> bool {
        self.step == Step::Open
    }

    /// Bytes from the proxy.
    ///
    /// # Errors
    ///
    /// Why the tunnel cannot be opened. After an error (or once open) further input is
    /// refused with [`ProxyError::Protocol`].
    pub fn handle_input(&mut self, bytes: &[u8]) -> Result<Progress, ProxyError> {
        let mut used = 0;
        while used < bytes.len() {
            let want = match self.step {
                Step::Method | Step::Auth => 2,
                Step::Reply => self.reply_len().unwrap_or(5),
                Step::Open | Step::Failed => {
                    return Err(ProxyError::Protocol("bytes after the handshake ended"));
                }
            };
            let take = want
                .saturating_sub(self.buffer.len())
                .min(bytes.len() - used);
            self.buffer.extend_from_slice(&bytes[used..used + take]);
            used += take;
            if self.buffer.len() < want {
                continue;
            }
            // A reply's length is known only once its address type is in.
            if self.step == Step::Reply
                && self.reply_len().is_none_or(|len| self.buffer.len() < len)
            {
                continue;
            }
            // A proxy answers what it was sent: a reply while the request is still unwritten
            // comes from a proxy that does not speak the protocol (and would send the SMTP
            // session's commands to the proxy).
            if !self.output().is_empty() {
                self.step = Step::Failed;
                return Err(ProxyError::Protocol(
                    "a reply came before its request was sent",
                ));
            }
            let step = self.step;
            let result = match step {
                Step::Method => self.on_method(),
                Step::Auth => self.on_auth(),
                _ => self.on_reply(),
            };
            self.buffer.clear();
            if let Err(error) = result {
                self.step = Step::Failed;
                return Err(error);
            }
            if self.step == Step::Open {
                return Ok(Progress::Open { leftover: used });
            }
        }
        Ok(Progress::Pending)
    }

    /// The length of the CONNECT reply, once its first five bytes are in.
    fn reply_len(&self) -> Option<usize> {
        let address = match (self.buffer.get(3), self.buffer.get(4)) {
            (Some(1), _) => 4,
            (Some(4), _) => 16,
            (Some(3), Some(len)) => 1 + usize::from(*len),
            // An unknown type: the reply is judged on its first bytes (see `on_reply`).
            (Some(_), Some(_)) => 1,
            _ => return None,
        };
        Some((4 + address + 2).min(MAX_REPLY))
    }

    fn on_method(&mut self) -> Result<(), ProxyError> {
        if self.buffer[0] != 5 {
            return Err(ProxyError::Protocol(
                "its method selection is not version 5",
            ));
        }
        match self.buffer[1] {
            0 => {
                self.connect();
                Ok(())
            }
            2 => {
                let Some(credentials) = &self.credentials else {
                    return Err(ProxyError::UnofferedMethod(2));
                };
                // RFC 1929 §2: VER 1, ULEN, UNAME, PLEN, PASSWD. Lengths are 1..=255: checked
                // by `Credentials::new`.
                self.out.push(1);
                self.out.push(credentials.username.len() as u8);
                self.out.extend_from_slice(&credentials.username);
                self.out.push(credentials.password.len() as u8);
                self.out.extend_from_slice(&credentials.password);
                self.step = Step::Auth;
                Ok(())
            }
            0xFF => Err(ProxyError::NoAcceptableMethod),
            other => Err(ProxyError::UnofferedMethod(other)),
        }
    }

    fn on_auth(&mut self) -> Result<(), ProxyError> {
        if self.buffer[0] != 1 {
            return Err(ProxyError::Protocol(
                "its username/password status is not version 1",
            ));
        }
        match self.buffer[1] {
            0 => {
                self.connect();
                Ok(())
            }
            status => Err(ProxyError::AuthenticationFailed(status)),
        }
    }

    /// Writes the CONNECT request (RFC 1928 §4) and waits for its reply.
    fn connect(&mut self) {
        self.out.extend_from_slice(&[5, 1, 0]);
        match (self.name.as_deref(), self.target.ip()) {
            (Some(name), _) => {
                self.out.push(3);
                // At most 255 bytes: checked by `by_name`.
                self.out.push(name.len() as u8);
                self.out.extend_from_slice(name.as_bytes());
            }
            (None, IpAddr::V4(ip)) => {
                self.out.push(1);
                self.out.extend_from_slice(&ip.octets());
            }
            (None, IpAddr::V6(ip)) => {
                self.out.push(4);
                self.out.extend_from_slice(&ip.octets());
            }
        }
        self.out
            .extend_from_slice(&self.target.port().to_be_bytes());
        self.step = Step::Reply;
    }

    fn on_reply(&mut self) -> Result<(), ProxyError> {
        if self.buffer[0] != 5 {
            return Err(ProxyError::Protocol("its CONNECT reply is not version 5"));
        }
        match self.buffer[1] {
            0 => {}
            code => return Err(ProxyError::Refused(code)),
        }
        if !matches!(self.buffer[3], 1 | 3 | 4) {
            return Err(ProxyError::Protocol(
                "its CONNECT reply has an unknown address type",
            ));
        }
        self.step = Step::Open;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVER: &str = "192.0.2.25:25";

    fn handshake(credentials: Option<Credentials>) -> Handshake {
        let mut h = Handshake::new(SERVER.parse().expect("addr"), credentials);
        let n = h.output().len();
        h.consume_output(n);
        h
    }

    const CONNECT_V4: [u8; 10] = [5, 1, 0, 1, 192, 0, 2, 25, 0, 25];
    const OK_V4: [u8; 10] = [5, 0, 0, 1, 10, 0, 0, 1, 0x30, 0x39];

    /// `socks5h://`: the CONNECT names the host (ATYP 3) for the proxy to resolve; a name that
    /// cannot go in the request leaves it by address.
    #[test]
    fn by_name_the_connect_carries_the_host_name() {
        let mut h = Handshake::new(SERVER.parse().expect("addr"), None).by_name("mx.example.");
        assert_eq!(h.name(), Some("mx.example"));
        h.consume_output(3);
        assert_eq!(h.handle_input(&[5, 0]), Ok(Progress::Pending));
        assert_eq!(h.output(), b"\x05\x01\x00\x03\x0amx.example\x00\x19");
        h.consume_output(h.output().len());
        assert_eq!(h.handle_input(&OK_V4), Ok(Progress::Open { leftover: 10 }));
        for unfit in [
            "",
            ".",
            &"a".repeat(256),
            "mx\0.example",
            "mx example",
            "mx\r\n.example",
        ] {
            let mut h = handshake(None).by_name(unfit);
            assert_eq!(h.name(), None, "{unfit:?}");
            assert_eq!(h.handle_input(&[5, 0]), Ok(Progress::Pending));
            assert_eq!(h.output(), CONNECT_V4);
        }
        assert!(Proxy::parse("socks5h://u:p@127.0.0.1:1080").is_ok_and(|p| p.resolves_names));
        assert!(Proxy::parse("socks4://127.0.0.1:1080").is_err());
    }

    #[test]
    fn without_credentials_no_authentication_then_connect() {
        let mut h = Handshake::new(SERVER.parse().expect("addr"), None);
        assert_eq!(h.output(), [5, 1, 0]);
        h.consume_output(3);
        assert_eq!(h.handle_input(&[5, 0]), Ok(Progress::Pending));
        assert_eq!(h.output(), CONNECT_V4);
        h.consume_output(10);
        assert_eq!(h.handle_input(&OK_V4), Ok(Progress::Open { leftover: 10 }));
        assert!(h.is_open());
    }

    #[test]
    fn with_credentials_username_and_password_are_sent_when_chosen() {
        let credentials = Credentials::new("probe", "s3cret").expect("valid");
        let mut h = Handshake::new(SERVER.parse().expect("addr"), Some(credentials.clone()));
        assert_eq!(h.output(), [5, 2, 0, 2]);
        h.consume_output(4);
        assert_eq!(h.handle_input(&[5, 2]), Ok(Progress::Pending));
        assert_eq!(h.output(), b"\x01\x05probe\x06s3cret");
        h.consume_output(14);
        assert_eq!(h.handle_input(&[1, 0]), Ok(Progress::Pending));
        assert_eq!(h.output(), CONNECT_V4);
        // A proxy that needs none skips the subnegotiation.
        let mut h = handshake(Some(credentials));
        assert_eq!(h.handle_input(&[5, 0]), Ok(Progress::Pending));
        assert_eq!(h.output(), CONNECT_V4);
        assert!(!format!("{:?}", Credentials::new("u", "hidden").expect("ok")).contains("hidden"));
    }

    #[test]
    fn ipv6_targets_and_name_replies() {
        let mut h = Handshake::new("[2001:db8::25]:25".parse().expect("addr"), None);
        h.consume_output(3);
        assert_eq!(h.handle_input(&[5, 0]), Ok(Progress::Pending));
        let mut expected = vec![5, 1, 0, 4];
        expected.extend_from_slice(
            &"2001:db8::25"
                .parse::<std::net::Ipv6Addr>()
                .expect("ip")
                .octets(),
        );
        expected.extend_from_slice(&[0, 25]);
        assert_eq!(h.output(), expected);
        h.consume_output(expected.len());
        // The proxy may name its bound address by domain name.
        let reply = [&[5u8, 0, 0, 3, 5][..], b"proxy", &[0, 80]].concat();
        assert_eq!(
            h.handle_input(&reply),
            Ok(Progress::Open {
                leftover: reply.len()
            })
        );
    }

    #[test]
    fn input_split_anywhere_gives_the_same_result_and_the_greeting_is_left_over() {
        let greeting = b"220 mx.example ESMTP\r\n";
        // The method selection, split anywhere, then the reply and the server's greeting,
        // split anywhere: each request is written before its reply comes, as a proxy answers.
        let stream = [&OK_V4[..], greeting].concat();
        for method_cut in 0..=2 {
            for cut in 0..=stream.len() {
                for second in cut..=stream.len() {
                    let mut h = handshake(None);
                    for piece in [&[5u8, 0][..method_cut], &[5u8, 0][method_cut..]] {
                        assert_eq!(h.handle_input(piece), Ok(Progress::Pending));
                    }
                    h.consume_output(h.output().len());
                    let mut opened_at = None;
                    let pieces = [&stream[..cut], &stream[cut..second], &stream[second..]];
                    let mut consumed = 0;
                    for piece in pieces {
                        if opened_at.is_some() {
                            break;
                        }
                        match h.handle_input(piece) {
                            Ok(Progress::Open { leftover }) => {
                                opened_at = Some(consumed + leftover);
                            }
                            Ok(Progress::Pending) => {}
                            Err(e) => panic!("cut {cut}/{second}: {e}"),
                        }
                        consumed += piece.len();
                    }
                    assert_eq!(opened_at, Some(10), "cut {cut}/{second}");
                }
            }
        }
    }

    #[test]
    fn a_reply_before_its_request_was_sent_is_a_broken_proxy() {
        let mut h = handshake(None);
        // The method selection and a CONNECT success in one read: the CONNECT was never sent.
        let input = [&[5u8, 0][..], &OK_V4].concat();
        assert!(matches!(
            h.handle_input(&input),
            Err(ProxyError::Protocol(_))
        ));
    }

    #[test]
    fn failures_say_whose_fault_they_are() {
        let refused = |code: u8| {
            let mut h = handshake(None);
            let _ = h.handle_input(&[5, 0]);
            h.consume_output(h.output().len());
            h.handle_input(&[5, code, 0, 1, 0, 0, 0, 0, 0, 0])
                .expect_err("refused")
        };
        for code in 3..=6 {
            assert!(refused(code).reaches_the_server(), "{code}");
        }
        for code in [1, 2, 7, 8, 9, 255] {
            let error = refused(code);
            assert!(!error.reaches_the_server(), "{code}");
            assert!(
                error.to_string().contains(&format!("reply {code}")),
                "{error}"
            );
        }
        let mut h = handshake(None);
        assert_eq!(
            h.handle_input(&[5, 0xFF]),
            Err(ProxyError::NoAcceptableMethod)
        );
        let mut h = handshake(None);
        assert_eq!(h.handle_input(&[5, 2]), Err(ProxyError::UnofferedMethod(2)));
        let mut h = handshake(Some(Credentials::new("u", "p").expect("ok")));
        let _ = h.handle_input(&[5, 2]);
        h.consume_output(h.output().len());
        assert_eq!(
            h.handle_input(&[1, 1]),
            Err(ProxyError::AuthenticationFailed(1))
        );
        let mut h = handshake(None);
        assert!(matches!(
            h.handle_input(b"HTTP/1.1 400"),
            Err(ProxyError::Protocol(_))
        ));
        assert!(
            matches!(h.handle_input(&[5, 0]), Err(ProxyError::Protocol(_))),
            "failed for good"
        );
    }

    #[test]
    fn proxies_are_read_from_urls() {
        let proxy = Proxy::parse("socks5://[::1]:1080").expect("valid");
        assert_eq!(proxy.addr, "[::1]:1080".parse().expect("addr"));
        assert_eq!(proxy.credentials, None);
        let proxy = Proxy::parse("socks5://a%3Ab:c%25d@10.0.0.1:9050/").expect("valid");
        assert_eq!(
            proxy.credentials,
            Some(Credentials::new("a:b", "c%d").expect("ok"))
        );
        for bad in [
            "127.0.0.1:1080",
            "socks4://127.0.0.1:1080",
            "socks5://proxy.example:1080",
            "socks5://user@127.0.0.1:1080",
            "socks5://u:%zz@127.0.0.1:1080",
            "socks5://:p@127.0.0.1:1080",
        ] {
            assert!(Proxy::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn credentials_are_checked() {
        assert!(Credentials::new("", "p").is_err());
        assert!(Credentials::new("u", &"p".repeat(256)).is_err());
        assert!(Credentials::new(&"u".repeat(255), "p").is_ok());
    }

    #[test]
    fn any_bytes_end_in_a_result_never_a_panic() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..2000 {
            let mut h = handshake(Some(Credentials::new("u", "p").expect("ok")));
            let len = (state % 300) as usize;
            let mut bytes = Vec::with_capacity(len);
            for _ in 0..len {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                bytes.push((state >> 24) as u8);
            }
            for chunk in bytes.chunks((state % 7 + 1) as usize) {
                if h.handle_input(chunk).is_err() {
                    break;
                }
            }
            assert!(h.buffer.len() <= MAX_REPLY);
        }
    }
}
