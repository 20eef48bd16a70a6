//! What goes wrong in the in-memory world, and how often: a [`FaultPlan`] drawn once per run
//! from the seed, so some runs are clean and some hostile.
//!
//! # The faults
//!
//! | fault | where | what the client sees |
//! |---|---|---|
//! | split | each chunk of server output | the bytes in several deliveries, cut at random bytes |
//! | delay | each delivery | it arrives later (never before the bytes sent before it) |
//! | refuse | a connect | the connection fails (`handle_closed`) |
//! | hang | a connect | nothing, ever: the client's own connect timeout must fire |
//! | hang up | a connection | the server's bytes up to a random count, then EOF |
//! | reset | a connection | at a random moment, the connection is gone both ways |
//! | corrupt | a connection, at most once | one of [`Corruption`] in a group of replies |
//! | DNS drop | a query | no answer: the client retries or times out |
//! | DNS truncate | a UDP query | TC=1 and no records: the client asks again over TCP |
//! | DNS SERVFAIL | a query | SERVFAIL |
//! | vanish | the run, once | from a random moment on, every SMTP connect is refused, every connection reset, DNS is silent |
//!
//! # At most one stream-corrupting fault per connection
//!
//! Dropping, duplicating, swapping or injecting a reply each leave a byte stream a careful
//! client can tell from a correct one (a reply too many or too few shows at QUIT, a swap shows
//! in the recipient a reply names). Two of them on one connection can cancel out: drop R1's
//! reply and duplicate R2's, and the stream has the right number of replies in a plausible
//! order, which no client could tell from the truth. So each connection gets at most one, and
//! none on a server whose personality already corrupts its stream
//! ([`Behaviour::LosesPipelinedReplies`](crate::sim::smtp::Behaviour::LosesPipelinedReplies),
//! [`Behaviour::ExtraReply`](crate::sim::smtp::Behaviour::ExtraReply)). A swap is made only
//! between replies whose bytes differ (two plain `250 2.1.5 Ok` swapped are the same stream),
//! and never between a MAIL FROM acceptance and a RCPT acceptance (they differ in the
//! enhanced code alone, `2.1.0` against `2.1.5`, which this world does not ask a client to
//! check).

use std::time::Duration;

use rand::RngExt;
use rand::rngs::StdRng;

/// One way to corrupt a group of replies (the replies to one read of pipelined commands).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Corruption {
    /// One reply is never sent.
    Drop,
    /// One reply is sent twice.
    Duplicate,
    /// Two neighbouring replies trade places.
    Swap,
    /// A `250 2.1.5 Ok` nobody asked for goes out among them.
    Inject,
}

impl Corruption {
    const ALL: [Self; 4] = [Self::Drop, Self::Duplicate, Self::Swap, Self::Inject];
}

/// How often each fault strikes in one run. Probabilities are per occasion (per chunk, per
/// connection, per query).
#[derive(Debug, Clone, PartialEq)]
pub struct FaultPlan {
    /// A chunk of server output is split into several deliveries.
    pub split: f64,
    /// A delivery is held back by up to [`FaultPlan::max_delay`].
    pub delay: f64,
    /// The longest extra delay.
    pub max_delay: Duration,
    /// A connect is refused.
    pub refuse: f64,
    /// A connect never completes.
    pub hang: f64,
    /// The server hangs up after a random number of bytes.
    pub hang_up: f64,
    /// The connection is reset at a random moment.
    pub reset: f64,
    /// The connection's replies meet one [`Corruption`].
    pub corrupt: f64,
    /// A DNS query gets no answer.
    pub dns_drop: f64,
    /// A UDP DNS answer is truncated.
    pub dns_truncate: f64,
    /// A DNS query is answered SERVFAIL.
    pub dns_servfail: f64,
    /// When every server vanishes, counted from the world's origin; `None`: they stay.
    pub vanish_at: Option<Duration>,
}

impl FaultPlan {
    /// No faults at all.
    #[must_use]
    pub fn clean() -> Self {
        Self {
            split: 0.0,
            delay: 0.0,
            max_delay: Duration::ZERO,
            refuse: 0.0,
            hang: 0.0,
            hang_up: 0.0,
            reset: 0.0,
            corrupt: 0.0,
            dns_drop: 0.0,
            dns_truncate: 0.0,
            dns_servfail: 0.0,
            vanish_at: None,
        }
    }

    /// A plan drawn from `rng`: about a quarter of runs clean, the others with each fault at
    /// its own rate up to a ceiling, and one in six with servers that vanish.
    pub fn random(rng: &mut StdRng) -> Self {
        if rng.random_bool(0.25) {
            return Self::clean();
        }
        let mut rate = |ceiling: f64| {
            if rng.random_bool(0.5) {
                rng.random_range(0.0..ceiling)
            } else {
                0.0
            }
        };
        let split = rate(0.6);
        let delay = rate(0.4);
        let refuse = rate(0.15);
        let hang = rate(0.05);
        let hang_up = rate(0.15);
        let reset = rate(0.08);
        let corrupt = rate(0.4);
        let dns_drop = rate(0.3);
        let dns_truncate = rate(0.4);
        let dns_servfail = rate(0.1);
        let max_delay = Duration::from_millis(rng.random_range(1..3_000));
        let vanish_at = rng
            .random_bool(1.0 / 6.0)
            .then(|| Duration::from_millis(rng.random_range(0..40_000)));
        Self {
            split,
            delay,
            max_delay,
            refuse,
            hang,
            hang_up,
            reset,
            corrupt,
            dns_drop,
            dns_truncate,
            dns_servfail,
            vanish_at,
        }
    }

    /// The corruption a new connection will meet, if any.
    pub(crate) fn corruption(&self, rng: &mut StdRng) -> Option<Corruption> {
        chance(rng, self.corrupt)
            .then(|| Corruption::ALL[rng.random_range(0..Corruption::ALL.len())])
    }
}

/// True with probability `p` (0 and below: never, without drawing).
pub(crate) fn chance(rng: &mut StdRng, p: f64) -> bool {
    p > 0.0 && rng.random_bool(p.min(1.0))
}
