//! A record read back: the [`VerifyResult`] a stored record's JSON was written from, for the
//! front ends that keep records (the service's store, `verify --store`) and give them out again
//! in any format.
//!
//! The record has everything the output formats show. What it lacks is rebuilt: the mailbox
//! from the address, the reply from its code, enhanced code and text (as the server would have
//! sent it, so that it parses back to the same reply). Bytes a server sent that were not UTF-8
//! were written as U+FFFD, and stay so.

use std::time::Duration;

use serde::Deserialize;

use crate::address::{Address, Flags, popular_provider};
use crate::engine::VerifyResult;
use crate::smtp::reply::{Limits, Status, parse_reply};
use crate::tls::TlsVersion;
use crate::verdict::Reason;

/// The fields of a record, owned, as they are read.
#[derive(Debug, Deserialize)]
struct Stored {
    address: String,
    reason: String,
    domain: Option<String>,
    mx: Option<String>,
    ip: Option<std::net::IpAddr>,
    smtp: Option<StoredReply>,
    catch_all: Option<bool>,
    flags: StoredFlags,
    attempts: u32,
    elapsed_ms: u64,
    line: u64,
    detail: Option<String>,
    suggestion: Option<String>,
    transcript: Option<String>,
    /// Absent from records written before the field existed.
    #[serde(default)]
    tls: Option<String>,
}

#[derive(Debug, Deserialize)]
struct StoredReply {
    code: u16,
    message: String,
}

#[derive(Debug, Deserialize)]
#[allow(
    clippy::struct_excessive_bools,
    reason = "the record's flags, as they are"
)]
struct StoredFlags {
    role: bool,
    disposable: bool,
    free: bool,
}

impl VerifyResult {
    /// The result a record's JSON ([`VerifyResult::record`], serialised) was made from, or why
    /// the text is not such a record. Its `tag` is the record's `line`.
    pub fn from_record_json(json: &str) -> Result<Self, String> {
        let stored: Stored =
            serde_json::from_str(json).map_err(|e| format!("not a record: {e}"))?;
        let reason = Reason::ALL
            .into_iter()
            .find(|reason| reason.as_str() == stored.reason)
            .ok_or_else(|| format!("not a record: no reason {:?}", stored.reason))?;
        let smtp = stored.smtp.map(|reply| rebuild_reply(&reply)).transpose()?;
        let suggestion = match stored.suggestion {
            None => None,
            Some(name) => Some(
                popular_provider(&name)
                    .ok_or_else(|| format!("not a record: no provider {name:?} to suggest"))?,
            ),
        };
        let mailbox = Address::parse(&stored.address)
            .ok()
            .map(|address| address.mailbox().to_owned());
        Ok(Self {
            tag: stored.line,
            address: stored.address,
            mailbox,
            domain: stored.domain,
            reason,
            detail: stored.detail,
            mx: stored.mx,
            ip: stored.ip,
            smtp,
            catch_all: stored.catch_all,
            flags: Flags {
                role: stored.flags.role,
                disposable: stored.flags.disposable,
                free: stored.flags.free,
            },
            suggestion,
            attempts: stored.attempts,
            elapsed: Duration::from_millis(stored.elapsed_ms),
            transcript: stored.transcript,
            tls: match stored.tls {
                None => None,
                Some(name) => Some(
                    TlsVersion::parse(&name)
                        .ok_or_else(|| format!("not a record: no TLS version {name:?}"))?,
                ),
            },
            greylist_wait: None,
        })
    }
}

/// The reply as the server sent it: each line of the text after the code (the enhanced code
/// is part of the text, as it was on the wire).
fn rebuild_reply(reply: &StoredReply) -> Result<crate::smtp::reply::OwnedReply, String> {
    let lines: Vec<&str> = reply.message.split('\n').collect();
    let mut wire = String::new();
    for (n, line) in lines.iter().enumerate() {
        let separator = if n + 1 == lines.len() { ' ' } else { '-' };
        wire.push_str(&format!("{}{separator}{line}\r\n", reply.code));
    }
    match parse_reply(wire.as_bytes(), &Limits::DEFAULT) {
        Ok(Status::Complete(parsed)) => Ok(parsed.into_owned()),
        _ => Err(format!(
            "not a record: an SMTP reply that does not parse ({wire:?})"
        )),
    }
}
