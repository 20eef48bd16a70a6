//! SMTP bytes to values and back, with no I/O and no clock.
//!
//! - [`reply`]: the streaming, zero-copy reply parser ([`parse_reply`], [`ReplyReader`]) and the
//!   server-side reply encoder.
//! - [`code`]: reply codes and enhanced status codes as numbers.
//! - [`ehlo`]: the extensions an EHLO reply offers.
//! - [`command`]: the commands a probe sends, encoded into a caller's buffer. There is no DATA.
//! - [`path`]: the wire grammar of mailboxes and HELO names, the last gate before the wire.
//!
//! Everything here is a pure function of its input: it never panics on bytes from the network,
//! and the fuzz targets in `fuzz/` exist to keep that sentence true.

pub mod code;
pub mod command;
pub mod ehlo;
pub mod path;
pub mod reply;

pub use code::{EnhancedClass, EnhancedCode, ReplyClass, ReplyCode};
pub use command::{Command, CommandError, ReversePath};
pub use ehlo::{Ehlo, Extensions, parse_ehlo};
pub use reply::{
    Limits, OwnedReply, Quirk, Quirks, Reply, ReplyError, ReplyReader, Status, parse_reply,
};
