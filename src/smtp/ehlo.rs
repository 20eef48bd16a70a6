//! What a server offers in its EHLO reply (RFC 5321 §4.1.1.1), reduced to what a probe uses.
//!
//! ```text
//! ehlo-ok-rsp  = ( "250" SP Domain [ SP ehlo-greet ] CRLF )
//!              / ( "250-" Domain [ SP ehlo-greet ] CRLF
//!                  *( "250-" ehlo-line CRLF )
//!                  "250" SP ehlo-line CRLF )
//! ehlo-line    = ehlo-keyword *( SP ehlo-param )
//! ehlo-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
//! ehlo-param   = 1*(%d33-126)
//! ```
//!
//! Keywords match case-insensitively. The extensions a probe acts on are flags and values here;
//! every other keyword is kept, upper-cased, with its parameters, for transcripts and for
//! extensions a later version learns to use. Lines that are not an `ehlo-line` (Microsoft's old
//! `AUTH=LOGIN`, stray text) are kept the same way rather than refused — an odd capability list
//! is no reason to abandon a probe — and blank lines are skipped. Parsing never panics, and the
//! result owns its data so it can outlive the reply buffer.

use std::fmt;

use super::code::ReplyCode;
use super::reply::Reply;

/// What the server said about message size (RFC 1870).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeLimit {
    /// `SIZE n`, n > 0: the largest message the server accepts, in octets.
    Max(u64),
    /// `SIZE 0`: "no maximum message size is in force".
    NoLimit,
    /// `SIZE` without a usable number: "no information is conveyed".
    Unstated,
}

/// A keyword the probe does not act on, kept as the server sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtherExtension {
    /// The keyword, upper-cased (`AUTH`, `DSN`, `XCLIENT`).
    pub keyword: String,
    /// Everything after the keyword, without surrounding whitespace (`PLAIN LOGIN`); may be
    /// empty.
    pub params: String,
}

/// The service extensions of one server, from its EHLO reply.
///
/// `Extensions::default()` is a server that offers nothing: what a HELO fallback gives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extensions {
    pipelining: bool,
    smtputf8: bool,
    eight_bit_mime: bool,
    size: Option<SizeLimit>,
    starttls: bool,
    enhanced_status_codes: bool,
    chunking: bool,
    others: Vec<OtherExtension>,
}

impl Extensions {
    /// PIPELINING (RFC 2920): commands may be sent in groups without waiting for each reply.
    #[must_use]
    pub fn pipelining(&self) -> bool {
        self.pipelining
    }

    /// SMTPUTF8 (RFC 6531): the server accepts UTF-8 mailboxes.
    #[must_use]
    pub fn smtputf8(&self) -> bool {
        self.smtputf8
    }

    /// 8BITMIME (RFC 6152).
    #[must_use]
    pub fn eight_bit_mime(&self) -> bool {
        self.eight_bit_mime
    }

    /// SIZE (RFC 1870), if advertised.
    #[must_use]
    pub fn size(&self) -> Option<SizeLimit> {
        self.size
    }

    /// STARTTLS (RFC 3207).
    #[must_use]
    pub fn starttls(&self) -> bool {
        self.starttls
    }

    /// ENHANCEDSTATUSCODES (RFC 2034): replies carry `class.subject.detail` codes.
    #[must_use]
    pub fn enhanced_status_codes(&self) -> bool {
        self.enhanced_status_codes
    }

    /// CHUNKING (RFC 3030). A probe never sends BDAT; it is recorded for completeness.
    #[must_use]
    pub fn chunking(&self) -> bool {
        self.chunking
    }

    /// Every other keyword, in the order the server listed them.
    #[must_use]
    pub fn others(&self) -> &[OtherExtension] {
        &self.others
    }

    fn add_line(&mut self, line: &[u8]) {
        let line = line.trim_ascii();
        if line.is_empty() {
            return;
        }
        let (keyword, params) = match line.iter().position(|&b| b == b' ' || b == b'\t') {
            Some(space) => (&line[..space], line[space + 1..].trim_ascii()),
            None => (line, &b""[..]),
        };
        let is = |name: &str| keyword.eq_ignore_ascii_case(name.as_bytes());
        if is("PIPELINING") {
            self.pipelining = true;
        } else if is("SMTPUTF8") {
            self.smtputf8 = true;
        } else if is("8BITMIME") {
            self.eight_bit_mime = true;
        } else if is("SIZE") {
            self.size = Some(size_limit(params));
        } else if is("STARTTLS") {
            self.starttls = true;
        } else if is("ENHANCEDSTATUSCODES") {
            self.enhanced_status_codes = true;
        } else if is("CHUNKING") {
            self.chunking = true;
        } else {
            self.others.push(OtherExtension {
                keyword: String::from_utf8_lossy(keyword).to_ascii_uppercase(),
                params: String::from_utf8_lossy(params).into_owned(),
            });
        }
    }
}

/// `SIZE [n]`: a decimal number of octets, 0 meaning no limit (RFC 1870 §4).
fn size_limit(params: &[u8]) -> SizeLimit {
    let digits = params
        .split(u8::is_ascii_whitespace)
        .next()
        .unwrap_or_default();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return SizeLimit::Unstated;
    }
    // At most 20 digits fit a u64; a longer number is a limit no message reaches.
    let value = digits.iter().try_fold(0u64, |n, d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    });
    match value {
        Some(0) => SizeLimit::NoLimit,
        Some(n) => SizeLimit::Max(n),
        None => SizeLimit::Max(u64::MAX),
    }
}

/// A successful EHLO reply: the name the server gave and what it offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ehlo {
    /// The first line's text: the server's domain and optional greeting.
    pub greeting: String,
    /// The service extensions.
    pub extensions: Extensions,
}

/// The EHLO reply was not `250`: the session falls back to HELO (500, 502) or gives up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EhloRefused(pub ReplyCode);

impl fmt::Display for EhloRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the server answered EHLO with {}", self.0)
    }
}

impl std::error::Error for EhloRefused {}

/// Reads the extensions out of an EHLO reply.
///
/// ```
/// use mxprobe::smtp::{ehlo::parse_ehlo, reply::{parse_reply, Limits, Status}};
/// let wire = b"250-mx.example.com\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250 smtputf8\r\n";
/// let Ok(Status::Complete(reply)) = parse_reply(wire, &Limits::DEFAULT) else { panic!() };
/// let ehlo = parse_ehlo(&reply).unwrap();
/// assert!(ehlo.extensions.pipelining() && ehlo.extensions.smtputf8());
/// assert_eq!(ehlo.greeting, "mx.example.com");
/// ```
pub fn parse_ehlo(reply: &Reply<'_>) -> Result<Ehlo, EhloRefused> {
    if reply.code() != ReplyCode::OK {
        return Err(EhloRefused(reply.code()));
    }
    let mut lines = reply.lines();
    let greeting = lines
        .next()
        .map(|line| String::from_utf8_lossy(line.trim_ascii()).into_owned())
        .unwrap_or_default();
    let mut extensions = Extensions::default();
    for line in lines {
        extensions.add_line(line);
    }
    Ok(Ehlo {
        greeting,
        extensions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::reply::{Limits, Status, parse_reply};

    fn ehlo(wire: &[u8]) -> Result<Ehlo, EhloRefused> {
        match parse_reply(wire, &Limits::DEFAULT) {
            Ok(Status::Complete(reply)) => parse_ehlo(&reply),
            other => panic!("{}: {other:?}", wire.escape_ascii()),
        }
    }

    #[test]
    fn postfix_offers_the_usual_set() {
        let e = ehlo(
            b"250-mx.example.com\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-VRFY\r\n\
              250-ETRN\r\n250-STARTTLS\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n\
              250-DSN\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n",
        )
        .expect("250");
        let x = &e.extensions;
        assert_eq!(e.greeting, "mx.example.com");
        assert!(x.pipelining() && x.starttls() && x.enhanced_status_codes());
        assert!(x.eight_bit_mime() && x.smtputf8() && x.chunking());
        assert_eq!(x.size(), Some(SizeLimit::Max(10_240_000)));
        let others: Vec<&str> = x.others().iter().map(|o| o.keyword.as_str()).collect();
        assert_eq!(others, ["VRFY", "ETRN", "DSN"]);
    }

    #[test]
    fn keywords_are_case_insensitive_and_unknown_ones_kept() {
        let e = ehlo(b"250-mx\r\n250-pipelining\r\n250-Auth PLAIN  LOGIN\r\n250 x-custom\r\n")
            .expect("250");
        assert!(e.extensions.pipelining());
        assert_eq!(
            e.extensions.others(),
            [
                OtherExtension {
                    keyword: "AUTH".into(),
                    params: "PLAIN  LOGIN".into()
                },
                OtherExtension {
                    keyword: "X-CUSTOM".into(),
                    params: String::new()
                },
            ]
        );
    }

    #[test]
    fn size_forms() {
        let size = |line: &str| {
            let wire = format!("250-mx\r\n250 {line}\r\n");
            ehlo(wire.as_bytes()).expect("250").extensions.size()
        };
        assert_eq!(size("SIZE 52428800"), Some(SizeLimit::Max(52_428_800)));
        assert_eq!(size("SIZE 0"), Some(SizeLimit::NoLimit));
        assert_eq!(size("SIZE"), Some(SizeLimit::Unstated));
        assert_eq!(size("SIZE lots"), Some(SizeLimit::Unstated));
        assert_eq!(
            size("SIZE 99999999999999999999999"),
            Some(SizeLimit::Max(u64::MAX))
        );
        assert_eq!(size("PIPELINING"), None);
    }

    #[test]
    fn a_single_line_reply_offers_nothing() {
        let e = ehlo(b"250 mx.example.com Hello there\r\n").expect("250");
        assert_eq!(e.greeting, "mx.example.com Hello there");
        assert_eq!(e.extensions, Extensions::default());
    }

    #[test]
    fn odd_lines_are_kept_not_fatal() {
        let e =
            ehlo(b"250-mx\r\n250-AUTH=LOGIN\r\n250-\r\n250-   \r\n250 STARTTLS\r\n").expect("250");
        assert!(e.extensions.starttls());
        assert_eq!(e.extensions.others().len(), 1);
        assert_eq!(e.extensions.others()[0].keyword, "AUTH=LOGIN");
    }

    #[test]
    fn refusals_carry_the_code() {
        assert_eq!(
            ehlo(b"502 5.5.2 Error: command not recognized\r\n"),
            Err(EhloRefused(ReplyCode::new(502).expect("valid")))
        );
        assert_eq!(
            EhloRefused(ReplyCode::new(500).expect("valid")).to_string(),
            "the server answered EHLO with 500"
        );
    }
}
