//! [`Record`]: one verdict as the output schema has it — the JSON object of `mxprobe verify`'s
//! JSON Lines, of the HTTP service and of anything an embedder writes.
//!
//! The field names and their order are the schema (DESIGN.md §3): fields are only ever added,
//! never renamed or removed, and a test pins them. A record borrows from its [`VerifyResult`],
//! so writing one allocates nothing beyond the output.
//!
//! ```
//! use mxprobe::{Reason, VerifyResult};
//! let result = VerifyResult::unprobed(7, "not an address", Reason::InvalidSyntax, Some("no @".into()));
//! let json = serde_json::to_string(&result.record())?;
//! assert!(json.starts_with(r#"{"address":"not an address","verdict":"undeliverable","reason":"invalid_syntax""#));
//! # Ok::<(), serde_json::Error>(())
//! ```

use std::fmt;
use std::net::IpAddr;

use serde::Serialize;
use serde::ser::{SerializeStruct, Serializer};

use crate::address::Flags;
use crate::engine::VerifyResult;
use crate::smtp::reply::OwnedReply;
use crate::tls::TlsVersion;
use crate::verdict::{Reason, Verdict};

/// One verdict in the output schema. Made by [`VerifyResult::record`]; the fields are public so
/// that a front end can report a shared result for another occurrence of the address (its own
/// text and line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// The address as submitted.
    pub address: &'a str,
    /// deliverable, undeliverable, risky, unknown.
    pub verdict: Verdict,
    /// Why.
    pub reason: Reason,
    /// The domain, lower-case ASCII, if the address parsed.
    pub domain: Option<&'a str>,
    /// The MX host whose reply decided.
    pub mx: Option<&'a str>,
    /// Its address.
    pub ip: Option<IpAddr>,
    /// The SMTP reply that decided: `{"code", "enhanced", "message"}`.
    pub smtp: Option<&'a OwnedReply>,
    /// Whether the domain accepts any local part; `null` when not tested or inconclusive.
    pub catch_all: Option<bool>,
    /// Role account, disposable domain, free provider.
    pub flags: Flags,
    /// SMTP sessions that asked about this address.
    pub attempts: u32,
    /// From submission to verdict, in milliseconds.
    pub elapsed_ms: u64,
    /// The submission's tag: the CLI and the service submit the input line, from 1.
    pub line: u64,
    /// A sentence for people where the reason alone does not say everything.
    pub detail: Option<&'a str>,
    /// A popular provider the domain probably misspells.
    pub suggestion: Option<&'static str>,
    /// The mail system that MX host belongs to, if mxprobe knows it
    /// ([`providers`](crate::providers)): its stable id (`google`, `microsoft365`...).
    pub provider: Option<&'static str>,
    /// The TLS version of the session whose reply decided (`TLSv1.3`, `TLSv1.2`), `null` if it
    /// spoke plain text (STARTTLS: `--starttls`).
    pub tls: Option<TlsVersion>,
    /// The SMTP conversation, when transcripts were asked for; left out otherwise.
    pub transcript: Option<&'a str>,
}

/// The schema's field names, in order (`transcript` only when present).
pub const FIELDS: [&str; 17] = [
    "address",
    "verdict",
    "reason",
    "domain",
    "mx",
    "ip",
    "smtp",
    "catch_all",
    "flags",
    "attempts",
    "elapsed_ms",
    "line",
    "detail",
    "suggestion",
    "provider",
    "tls",
    "transcript",
];

impl VerifyResult {
    /// This result as the output schema has it.
    #[must_use]
    pub fn record(&self) -> Record<'_> {
        Record {
            address: &self.address,
            verdict: self.verdict(),
            reason: self.reason,
            domain: self.domain.as_deref(),
            mx: self.mx.as_deref(),
            ip: self.ip,
            smtp: self.smtp.as_ref(),
            catch_all: self.catch_all,
            flags: self.flags,
            attempts: self.attempts,
            elapsed_ms: u64::try_from(self.elapsed.as_millis()).unwrap_or(u64::MAX),
            line: self.tag,
            detail: self.detail.as_deref(),
            suggestion: self.suggestion,
            provider: self
                .mx
                .as_deref()
                .and_then(crate::providers::by_mx_host)
                .map(|provider| provider.id.as_str()),
            tls: self.tls,
            transcript: self.transcript.as_deref(),
        }
    }
}

impl Serialize for Record<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let fields = if self.transcript.is_some() { 17 } else { 16 };
        let mut s = serializer.serialize_struct("Record", fields)?;
        s.serialize_field("address", self.address)?;
        s.serialize_field("verdict", &self.verdict)?;
        s.serialize_field("reason", &self.reason)?;
        s.serialize_field("domain", &self.domain)?;
        s.serialize_field("mx", &self.mx)?;
        s.serialize_field("ip", &self.ip)?;
        s.serialize_field("smtp", &self.smtp.map(Smtp))?;
        s.serialize_field("catch_all", &self.catch_all)?;
        s.serialize_field("flags", &self.flags)?;
        s.serialize_field("attempts", &self.attempts)?;
        s.serialize_field("elapsed_ms", &self.elapsed_ms)?;
        s.serialize_field("line", &self.line)?;
        s.serialize_field("detail", &self.detail)?;
        s.serialize_field("suggestion", &self.suggestion)?;
        s.serialize_field("provider", &self.provider)?;
        s.serialize_field("tls", &self.tls)?;
        if let Some(transcript) = self.transcript {
            s.serialize_field("transcript", transcript)?;
        } else {
            s.skip_field("transcript")?;
        }
        s.end()
    }
}

/// The reply that decided: `{"code":550,"enhanced":"5.1.1","message":"..."}`.
struct Smtp<'a>(&'a OwnedReply);

impl Serialize for Smtp<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let reply = self.0.as_reply();
        let mut s = serializer.serialize_struct("Smtp", 3)?;
        s.serialize_field("code", &reply.code().get())?;
        s.serialize_field("enhanced", &reply.enhanced().map(Displayed))?;
        s.serialize_field("message", &Message(self.0))?;
        s.end()
    }
}

/// A value written through its `Display`, without an intermediate `String`.
struct Displayed<T>(T);

impl<T: fmt::Display> Serialize for Displayed<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

/// A reply's text as the record's `smtp.message` has it: its lines joined by newlines, codes
/// left out, bytes that are not UTF-8 replaced by U+FFFD. Written through `Display`, without an
/// intermediate `String`.
#[must_use]
pub fn reply_text(reply: &OwnedReply) -> impl fmt::Display + '_ {
    Message(reply)
}

/// See [`reply_text`].
struct Message<'a>(&'a OwnedReply);

impl Serialize for Message<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl fmt::Display for Message<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, line) in self.0.as_reply().lines().enumerate() {
            if n > 0 {
                f.write_str("\n")?;
            }
            for chunk in line.utf8_chunks() {
                f.write_str(chunk.valid())?;
                if !chunk.invalid().is_empty() {
                    f.write_str("\u{FFFD}")?;
                }
            }
        }
        Ok(())
    }
}

impl Serialize for Verdict {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl Serialize for Reason {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl Serialize for Flags {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Flags", 3)?;
        s.serialize_field("role", &self.role)?;
        s.serialize_field("disposable", &self.disposable)?;
        s.serialize_field("free", &self.free)?;
        s.end()
    }
}

mod read_back;

#[cfg(test)]
mod tests;
