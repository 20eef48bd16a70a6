//! What a simulated server is like: [`Personality`], with its [`Greeting`], its [`Behaviour`]
//! and its STARTTLS ([`Tls`]).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

#[cfg(doc)]
use super::{DRIP_INTERVAL, GARBAGE_LINGER};

/// What one listening address is like: its name, its mailboxes and its manners. Start from
/// [`Personality::new`] and chain the builder methods:
///
/// ```
/// use std::time::Duration;
/// use mxprobe::sim::smtp::Personality;
///
/// let strict = Personality::new("mx1.farm.test")
///     .mailbox("alice@farm.test")
///     .greylist(Duration::from_secs(300))
///     .max_rcpt_per_session(10)
///     .latency(Duration::from_millis(50));
/// # assert!(strict.mailboxes.contains("alice@farm.test"));
/// ```
#[derive(Debug, Clone)]
pub struct Personality {
    /// The name in the greeting and the EHLO reply, e.g. `mx1.farm.test`. It must not contain
    /// CR or LF.
    pub hostname: String,
    /// Full addresses that exist; RCPT compares them case-insensitively.
    pub mailboxes: HashSet<String>,
    /// Local-part prefixes: at every domain this server receives for, a local part that is one
    /// of them followed by digits exists (case-insensitively). Generated worlds of millions of
    /// mailboxes use this instead of listing them.
    pub mailbox_prefixes: Vec<String>,
    /// Every RCPT is accepted, whether the mailbox exists or not.
    pub catch_all: bool,
    /// Greylisting: a RCPT for a (client IP, sender, recipient) triplet first seen less than
    /// this long ago gets `451 4.7.1`; afterwards it is answered normally. Triplets are
    /// remembered per listener, across connections, for the life of the farm.
    pub greylist: Option<Duration>,
    /// What the server says on connect.
    pub greeting: Greeting,
    /// After this many RCPT commands in one session, every further one gets `452 4.5.3`.
    pub max_rcpt_per_session: Option<usize>,
    /// Advertise PIPELINING after EHLO. The server handles pipelined commands either way.
    pub pipelining: bool,
    /// Advertise SMTPUTF8 after EHLO.
    pub smtputf8: bool,
    /// MAIL FROM gets `553 5.1.8 <sender>: Sender address rejected: Domain not found`.
    pub reject_sender: bool,
    /// Added before every reply, the greeting included: the network round trip it models.
    pub latency: Duration,
    /// A uniform random extra in `[0, jitter]` added to each reply's latency.
    pub jitter: Duration,
    /// How the server misbehaves, if it does.
    pub behaviour: Behaviour,
    /// The greeting's text after `220 `, instead of `{hostname} ESMTP mxprobe-sim`: a real
    /// system's banner.
    pub greeting_text: Option<String>,
    /// The first line of the EHLO reply after `250-`, instead of the hostname.
    pub ehlo_text: Option<String>,
    /// The reply to a RCPT for a mailbox that does not exist, instead of Postfix's `550 5.1.1`
    /// (lines joined by CRLF, without the last CRLF).
    pub unknown_reply: Option<String>,
    /// Replies to RCPT for particular addresses (lowercase keys), whatever else is true of
    /// them: a disabled or full mailbox as a real system says it.
    pub replies: HashMap<String, String>,
    /// A rate limit, as big mail systems keep one: see [`Throttle`].
    pub throttle: Option<Throttle>,
    /// Client addresses refused at greeting as a blocklisted client is ([`Greeting::Refuse`]'s
    /// reply, naming the client), whatever the greeting for others.
    pub refused_clients: HashSet<std::net::IpAddr>,
    /// Whether the server offers STARTTLS (RFC 3207), requires it, or botches it: see [`Tls`].
    /// [`Tls::None`] by default.
    pub tls: Tls,
}

/// What a server does about STARTTLS (RFC 3207). Every variant but [`Tls::None`] advertises
/// `STARTTLS` in the EHLO reply before TLS. Once TLS is up (RFC 3207 §4.2) the server has
/// forgotten the session: a MAIL before a new EHLO or HELO gets `503 5.5.1 Error: send
/// HELO/EHLO first`, the EHLO reply no longer advertises STARTTLS, and a second STARTTLS gets
/// Postfix's `554 5.5.1 Error: TLS already active`. Plain text the client wrote after its
/// STARTTLS line, in the same read, is discarded as Postfix discards it (the command
/// injection of CVE-2011-0411) and counted in
/// [`FarmStats::starttls_injections`](super::FarmStats::starttls_injections).
///
/// The farm presents one self-signed certificate
/// ([`SmtpFarm::tls_cert_pem`](super::SmtpFarm::tls_cert_pem)). The in-memory world of
/// [`crate::sim::net`] has none: there every variant but [`Tls::None`] answers STARTTLS with
/// `454 4.7.0 TLS not available due to local problem`, as Postfix does when its TLS context
/// failed to load.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Tls {
    /// STARTTLS is not advertised and gets `502 5.5.1 Error: command not implemented`, as from
    /// a Postfix with `smtpd_tls_security_level = none`.
    #[default]
    None,
    /// Advertised; `STARTTLS` gets `220 2.0.0 Ready to start TLS` and the connection then
    /// speaks TLS. Plain-text sessions work as without it (Postfix's `may`).
    Offered,
    /// As [`Tls::Offered`], and before TLS every MAIL gets `530 5.7.0 Must issue a STARTTLS
    /// command first` (Postfix's `encrypt`); so a RCPT gets the usual `503 5.5.1 Error: need
    /// MAIL command`.
    Required,
    /// As [`Tls::Offered`], but MAIL is accepted in plain text and every RCPT before TLS gets
    /// `530 5.7.0 Must issue a STARTTLS command first`, as an Exim RCPT ACL can say it.
    RequiredAtRcpt,
    /// As [`Tls::Offered`], but every RCPT before TLS gets Gmail's `421 4.7.0 TLS required for
    /// RCPT domain, closing connection. - gsmtp` and the server closes the connection (a Google
    /// Workspace domain that requires TLS): STARTTLS must come in the next session.
    RequiredClosing,
    /// Advertised but broken: `STARTTLS` gets `454 4.7.0 TLS not available due to local
    /// problem`, and MAIL gets `530` as under [`Tls::Required`]: no transaction is possible.
    Unavailable,
    /// Advertised; `STARTTLS` gets `220 2.0.0 Ready to start TLS`, then the server answers the
    /// client's first TLS bytes with `garbage\r\n` (not TLS) and closes: the client's
    /// handshake fails.
    BrokenHandshake,
}

/// A server that limits how fast a client may come: each transaction (MAIL FROM accepted)
/// counts; one that starts while `per_second` others have started in the second before it,
/// or that is among the listener's `first` transactions, is throttled, and every RCPT in it
/// gets `reply`, whoever it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Throttle {
    /// Transactions the listener takes in any one second.
    pub per_second: usize,
    /// Transactions throttled whatever the rate, from the listener's first: a new client
    /// deferred, as Exchange Online defers a sending address it does not know yet.
    pub first: usize,
    /// What each RCPT of a transaction over the rate gets (lines joined by CRLF, without the
    /// last CRLF).
    pub reply: String,
}

/// What a server says when a client connects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Greeting {
    /// `220 {hostname} ESMTP mxprobe-sim`.
    Normal,
    /// `554 5.7.1 Service unavailable; Client host [ip] blocked using zen.spamhaus.org`, then
    /// `503 5.5.1 Error: no SMTP service here` to every command but QUIT, as RFC 5321 §3.1 asks
    /// of a server that refuses at greeting.
    Refuse,
    /// `421 4.7.0 {hostname} Error: too many connections from ip`, then the server closes.
    Unavailable,
}

/// A way a server fails a client, on top of its [`Personality`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Speaks SMTP as described in the module docs.
    Normal,
    /// Accepts the connection and never sends a byte: the client must time out. The server
    /// closes when the client does, or after the idle limit.
    Silent,
    /// Greets with `HTTP/1.1 400 Bad Request` (not SMTP), ignores what the client sends and
    /// closes [`GARBAGE_LINGER`] after the greeting, or when the client closes.
    Garbage,
    /// Sends the greeting, then closes.
    CloseAfterGreeting,
    /// Answers normally up to MAIL FROM, answers that with `250 2.1.0 Ok` (even if the sender
    /// would be rejected), then closes without answering anything else.
    CloseAfterMail,
    /// Sends every reply one byte per [`DRIP_INTERVAL`].
    Drip,
    /// Delays every reply, the greeting included, by this long on top of the latency: meant to
    /// exceed the client's timeouts.
    Tarpit(Duration),
    /// Mishandles PIPELINING, as a server seen in the wild does: when one read brings several
    /// command lines (a pipelined group, e.g. `MAIL FROM`, `RCPT TO` × n and `QUIT` in one
    /// write), it answers the first normally and drops the replies to the RCPT commands after it
    /// in that read; a QUIT in the read is answered `221 2.0.0 Bye` and the server closes.
    /// Commands that come one per read (lock-step) are answered normally. A client that wrote
    /// MAIL, RCPT, RCPT and QUIT at once reads `250 2.1.0 Ok`, `221 2.0.0 Bye` and EOF.
    LosesPipelinedReplies,
    /// Sends one reply nobody asked for: right after its reply to MAIL FROM, in the same write,
    /// `250 2.1.5 Ok`, as if a RCPT had been answered. Otherwise normal.
    ExtraReply,
}

impl Personality {
    /// A well-behaved server named `hostname` with no mailboxes: PIPELINING and SMTPUTF8
    /// advertised, no greylisting, no recipient limit, no latency.
    #[must_use]
    pub fn new(hostname: &str) -> Self {
        Self {
            hostname: hostname.to_owned(),
            mailboxes: HashSet::new(),
            mailbox_prefixes: Vec::new(),
            catch_all: false,
            greylist: None,
            greeting: Greeting::Normal,
            max_rcpt_per_session: None,
            pipelining: true,
            smtputf8: true,
            reject_sender: false,
            latency: Duration::ZERO,
            jitter: Duration::ZERO,
            behaviour: Behaviour::Normal,
            greeting_text: None,
            ehlo_text: None,
            unknown_reply: None,
            replies: HashMap::new(),
            throttle: None,
            refused_clients: HashSet::new(),
            tls: Tls::None,
        }
    }

    /// Adds a mailbox that exists (a full address, any case).
    #[must_use]
    pub fn mailbox(mut self, address: &str) -> Self {
        self.mailboxes.insert(address.to_owned());
        self
    }

    /// Adds mailboxes that exist.
    #[must_use]
    pub fn mailboxes<I, S>(mut self, addresses: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.mailboxes.extend(addresses.into_iter().map(Into::into));
        self
    }

    /// Every local part that is `prefix` followed by digits exists, at any domain: `user` makes
    /// `user1@a.test` and `User42@b.test` exist, not `nobody@a.test` nor `userx7@a.test`. Digits
    /// only: a prober's random catch-all control (`usera8…`) must not exist by accident, as it
    /// did about once in a million controls when any local part starting with `user` did.
    #[must_use]
    pub fn mailbox_prefix(mut self, prefix: &str) -> Self {
        self.mailbox_prefixes.push(prefix.to_owned());
        self
    }

    /// Accepts every recipient.
    #[must_use]
    pub fn catch_all(mut self) -> Self {
        self.catch_all = true;
        self
    }

    /// Greylists each new (client IP, sender, recipient) triplet for `period`.
    #[must_use]
    pub fn greylist(mut self, period: Duration) -> Self {
        self.greylist = Some(period);
        self
    }

    /// Greets with `greeting`.
    #[must_use]
    pub fn greeting(mut self, greeting: Greeting) -> Self {
        self.greeting = greeting;
        self
    }

    /// Answers `452 4.5.3` to every RCPT after the first `limit` in a session.
    #[must_use]
    pub fn max_rcpt_per_session(mut self, limit: usize) -> Self {
        self.max_rcpt_per_session = Some(limit);
        self
    }

    /// Leaves PIPELINING out of the EHLO reply.
    #[must_use]
    pub fn without_pipelining(mut self) -> Self {
        self.pipelining = false;
        self
    }

    /// Leaves SMTPUTF8 out of the EHLO reply.
    #[must_use]
    pub fn without_smtputf8(mut self) -> Self {
        self.smtputf8 = false;
        self
    }

    /// Rejects every sender with `553 5.1.8`.
    #[must_use]
    pub fn reject_sender(mut self) -> Self {
        self.reject_sender = true;
        self
    }

    /// Adds `latency` before every reply.
    #[must_use]
    pub fn latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// Adds a uniform random extra in `[0, jitter]` before every reply.
    #[must_use]
    pub fn jitter(mut self, jitter: Duration) -> Self {
        self.jitter = jitter;
        self
    }

    /// Greets with `220 {text}` instead of the simulator's banner.
    #[must_use]
    pub fn greeting_text(mut self, text: &str) -> Self {
        self.greeting_text = Some(text.to_owned());
        self
    }

    /// Opens the EHLO reply with `250-{text}` instead of the hostname.
    #[must_use]
    pub fn ehlo_text(mut self, text: &str) -> Self {
        self.ehlo_text = Some(text.to_owned());
        self
    }

    /// Answers a RCPT for a mailbox that does not exist with `reply` (lines joined by CRLF,
    /// without the last CRLF).
    #[must_use]
    pub fn unknown_reply(mut self, reply: &str) -> Self {
        self.unknown_reply = Some(reply.to_owned());
        self
    }

    /// Answers a RCPT for `address` (any case) with `reply`, whatever else is true of it.
    #[must_use]
    pub fn reply_to(mut self, address: &str, reply: &str) -> Self {
        self.replies
            .insert(address.to_ascii_lowercase(), reply.to_owned());
        self
    }

    /// Throttles transactions over `per_second` in any second: their RCPTs get `reply`.
    #[must_use]
    pub fn throttle(mut self, per_second: usize, reply: &str) -> Self {
        self.throttle = Some(Throttle {
            per_second,
            first: 0,
            reply: reply.to_owned(),
        });
        self
    }

    /// Throttles the listener's first `first` transactions, whatever the rate: their RCPTs
    /// get `reply`.
    #[must_use]
    pub fn throttle_first(mut self, first: usize, reply: &str) -> Self {
        self.throttle = Some(Throttle {
            per_second: usize::MAX,
            first,
            reply: reply.to_owned(),
        });
        self
    }

    /// Refuses connections from `client` at greeting, as a blocklist would: `554 5.7.1 Service
    /// unavailable; Client host [client] blocked using zen.spamhaus.org`.
    #[must_use]
    pub fn refuse_client(mut self, client: std::net::IpAddr) -> Self {
        self.refused_clients.insert(client);
        self
    }

    /// Serves STARTTLS as `tls` says.
    #[must_use]
    pub fn tls(mut self, tls: Tls) -> Self {
        self.tls = tls;
        self
    }

    /// Misbehaves as `behaviour` says.
    #[must_use]
    pub fn behaviour(mut self, behaviour: Behaviour) -> Self {
        self.behaviour = behaviour;
        self
    }
}
