//! [`SubmitOptions`]: what a front end says about one submission besides the address — how
//! urgent it is ([`Priority`]) and how long its caller will wait ([`deadline`]).
//!
//! An API front end serves two kinds of caller from one engine: a person at a sign-up form
//! waiting for one answer, and a bulk list of millions. The first must not queue behind the
//! second, and must get an answer in time even when a server is slow: at the deadline the
//! caller gets `unknown/timeout`, and the probe goes on in the background, so that its answer
//! is there for the next submission of that mailbox (it joins the probe still in flight, or
//! finds the result the engine remembers: [`remember_results`]).
//!
//! [`deadline`]: SubmitOptions::deadline
//! [`remember_results`]: crate::ConfigBuilder::remember_results

use std::time::Duration;

/// How urgent a submission is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Priority {
    /// Lists: taken in as the engine has room, in turn with every other domain.
    #[default]
    Bulk,
    /// Someone is waiting: taken in at once, even when the engine is full of bulk work, and
    /// probed ahead of it — first in its domain's queue, its domain first in line for the
    /// next free session, without the short wait that lets bulk addresses of a domain share a
    /// session. Politeness still holds: the per-MX and per-domain caps apply.
    RealTime,
}

/// Per-submission options. The default is a bulk submission without a deadline.
///
/// ```
/// use std::time::Duration;
/// use mxprobe::engine::{Priority, SubmitOptions};
///
/// let signup = SubmitOptions::real_time().deadline(Duration::from_secs(8));
/// assert_eq!(signup.priority, Priority::RealTime);
/// assert_eq!(SubmitOptions::default().priority, Priority::Bulk);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct SubmitOptions {
    /// Real-time ahead of bulk.
    pub priority: Priority,
    /// The longest the caller waits, from submission: past it the submission's result is
    /// `unknown/timeout` (its `detail` says why), while the probe goes on. `None`: the result
    /// comes when the probe ends, however long retries and slow servers make that.
    pub deadline: Option<Duration>,
}

impl SubmitOptions {
    /// A bulk submission without a deadline (the default).
    #[must_use]
    pub fn bulk() -> Self {
        Self::default()
    }

    /// A real-time submission without a deadline.
    #[must_use]
    pub fn real_time() -> Self {
        Self {
            priority: Priority::RealTime,
            deadline: None,
        }
    }

    /// The same with a deadline.
    #[must_use]
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }
}
