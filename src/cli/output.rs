//! Verdicts written out: JSON Lines (the schema of DESIGN.md §3), CSV, or aligned text for
//! people. Records are formatted whole into a buffer, and the buffer is written, whole lines
//! only, when it fills or whenever the caller has nothing more at hand (no verdict waiting):
//! one system call for many records when verdicts pour in, none held back when they trickle.
//! A run killed mid-write leaves at most one record cut short, at the end, which `--resume`
//! cuts off before it appends.

use std::io::{self, Write};

use super::Format;
use mxprobe::record::reply_text;
use mxprobe::{Record, Verdict};

/// The CSV columns, in order.
pub const CSV_HEADER: &str = "line,address,verdict,reason,detail,domain,mx,ip,smtp_code,\
smtp_enhanced,smtp_message,catch_all,role,disposable,free,suggestion,attempts,elapsed_ms,provider,\
tls";

/// Records buffered beyond this are written at once.
const BUFFER: usize = 64 * 1024;

/// Writes records in one format, whole lines each.
pub struct Writer {
    out: Box<dyn Write + Send>,
    format: Format,
    color: bool,
    /// Whole records not yet written.
    buffer: Vec<u8>,
    /// Write every record at once: the output is a terminal, which a person reads as it comes
    /// and which the progress line shares.
    write_through: bool,
}

impl Writer {
    /// `color` applies to the human format only; `write_through` writes each record at once
    /// (for a terminal).
    pub fn new(
        out: Box<dyn Write + Send>,
        format: Format,
        color: bool,
        write_through: bool,
    ) -> Self {
        Self {
            out,
            format,
            color,
            buffer: Vec::with_capacity(BUFFER + 4096),
            write_through,
        }
    }

    /// The CSV header, for a new file.
    pub fn header(&mut self) -> io::Result<()> {
        if self.format == Format::Csv {
            self.out.write_all(CSV_HEADER.as_bytes())?;
            self.out.write_all(b"\n")?;
            self.out.flush()?;
        }
        Ok(())
    }

    /// Formats `record` into the buffer, and writes the buffer if it is full.
    pub fn write(&mut self, record: &Record<'_>) -> io::Result<()> {
        let start = self.buffer.len();
        let formatted = match self.format {
            Format::Jsonl => {
                serde_json::to_writer(&mut self.buffer, record).map_err(io::Error::other)
            }
            Format::Csv => csv_line(&mut self.buffer, record),
            Format::Human => {
                human_line(&mut self.buffer, record, self.color);
                Ok(())
            }
        };
        if let Err(e) = formatted {
            // Nothing of a record that failed to format is written.
            self.buffer.truncate(start);
            return Err(e);
        }
        self.buffer.push(b'\n');
        if self.write_through || self.buffer.len() >= BUFFER {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes what is buffered, and flushes it to the file or terminal.
    pub fn flush(&mut self) -> io::Result<()> {
        if !self.buffer.is_empty() {
            self.out.write_all(&self.buffer)?;
            self.buffer.clear();
        }
        self.out.flush()
    }
}

fn csv_line(buffer: &mut Vec<u8>, record: &Record<'_>) -> io::Result<()> {
    let smtp = record.smtp.map(|reply| reply.as_reply());
    let fields: [String; 20] = [
        record.line.to_string(),
        record.address.to_owned(),
        record.verdict.as_str().to_owned(),
        record.reason.as_str().to_owned(),
        record.detail.unwrap_or_default().to_owned(),
        record.domain.unwrap_or_default().to_owned(),
        record.mx.unwrap_or_default().to_owned(),
        record.ip.map(|ip| ip.to_string()).unwrap_or_default(),
        smtp.map(|s| s.code().get().to_string()).unwrap_or_default(),
        smtp.and_then(|s| s.enhanced().map(|e| e.to_string()))
            .unwrap_or_default(),
        record
            .smtp
            .map(|reply| reply_text(reply).to_string().replace('\n', " "))
            .unwrap_or_default(),
        record.catch_all.map(|c| c.to_string()).unwrap_or_default(),
        record.flags.role.to_string(),
        record.flags.disposable.to_string(),
        record.flags.free.to_string(),
        record.suggestion.unwrap_or_default().to_owned(),
        record.attempts.to_string(),
        record.elapsed_ms.to_string(),
        record.provider.unwrap_or_default().to_owned(),
        record
            .tls
            .map(|v| v.as_str())
            .unwrap_or_default()
            .to_owned(),
    ];
    csv_fields(buffer, &fields)
}

/// The CSV row of a record as its JSON (as the store keeps it): the same row
/// [`Writer`] writes for the record itself.
pub fn csv_line_from_json(buffer: &mut Vec<u8>, record: &serde_json::Value) -> io::Result<()> {
    // A JSON value as a CSV cell: text as it is, numbers and booleans as written, null empty.
    let cell = |value: Option<&serde_json::Value>| match value {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(serde_json::Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
    };
    let field = |name: &str| cell(record.get(name));
    let smtp = |name: &str| cell(record.get("smtp").and_then(|smtp| smtp.get(name)));
    let flag = |name: &str| cell(record.get("flags").and_then(|flags| flags.get(name)));
    let fields: [String; 20] = [
        field("line"),
        field("address"),
        field("verdict"),
        field("reason"),
        field("detail"),
        field("domain"),
        field("mx"),
        field("ip"),
        smtp("code"),
        smtp("enhanced"),
        smtp("message").replace('\n', " "),
        field("catch_all"),
        flag("role"),
        flag("disposable"),
        flag("free"),
        field("suggestion"),
        field("attempts"),
        field("elapsed_ms"),
        field("provider"),
        field("tls"),
    ];
    csv_fields(buffer, &fields)
}

/// One CSV row of `fields`, without its terminator.
fn csv_fields(buffer: &mut Vec<u8>, fields: &[String; 20]) -> io::Result<()> {
    let mut writer = csv::WriterBuilder::new()
        .has_headers(false)
        .terminator(csv::Terminator::Any(b'\r'))
        .from_writer(Vec::new());
    writer.write_record(fields).map_err(io::Error::other)?;
    let mut bytes = writer
        .into_inner()
        .map_err(|e| io::Error::other(e.to_string()))?;
    // One record, one line: drop the terminator; the caller adds "\n".
    if bytes.last() == Some(&b'\r') {
        bytes.pop();
    }
    buffer.extend_from_slice(&bytes);
    Ok(())
}

/// `address  verdict  reason  detail-or-reply [provider]`, the verdict colored on a terminal:
/// green deliverable, red undeliverable, yellow risky, blue unknown.
fn human_line(buffer: &mut Vec<u8>, record: &Record<'_>, color: bool) {
    let verdict = record.verdict.as_str();
    let paint = match record.verdict {
        Verdict::Deliverable => "32",
        Verdict::Undeliverable => "31",
        Verdict::Risky => "33",
        Verdict::Unknown => "34",
    };
    // The input is untrusted too, and a line refused for a control character holds one: it is
    // shown escaped (`a@x.test\r`), never written to the terminal as it is.
    let mut text = format!("{:<40} ", printable(record.address));
    if color {
        text.push_str(&format!("\x1b[{paint}m{verdict:<13}\x1b[0m "));
    } else {
        text.push_str(&format!("{verdict:<13} "));
    }
    text.push_str(&format!("{:<20}", record.reason.as_str()));
    let why = match (record.smtp, record.detail) {
        (Some(reply), _) => format!(
            "{} {}",
            reply.as_reply().code().get(),
            reply_text(reply)
                .to_string()
                .lines()
                .next()
                .unwrap_or_default()
        ),
        (None, Some(detail)) => detail.to_owned(),
        (None, None) => String::new(),
    };
    if !why.is_empty() {
        text.push(' ');
        // Server text is untrusted: no control characters reach the terminal.
        text.extend(why.chars().map(|c| if c.is_control() { '?' } else { c }));
    }
    if let Some(suggestion) = record.suggestion {
        text.push_str(&format!(" (did you mean {suggestion}?)"));
    }
    if let Some(provider) = record.provider {
        text.push_str(&format!(" [{provider}]"));
    }
    buffer.extend_from_slice(text.trim_end().as_bytes());
}

/// `text` with every control character escaped as Rust writes it (`\r`, `\u{1b}`).
fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            escaped.extend(c.escape_debug());
        } else {
            escaped.push(c);
        }
    }
    std::borrow::Cow::Owned(escaped)
}

/// Counts per verdict, for the progress line and the summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub deliverable: u64,
    pub undeliverable: u64,
    pub risky: u64,
    pub unknown: u64,
}

impl Tally {
    pub fn add(&mut self, verdict: Verdict) {
        match verdict {
            Verdict::Deliverable => self.deliverable += 1,
            Verdict::Undeliverable => self.undeliverable += 1,
            Verdict::Risky => self.risky += 1,
            Verdict::Unknown => self.unknown += 1,
        }
    }

    pub fn total(&self) -> u64 {
        self.deliverable + self.undeliverable + self.risky + self.unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_in_the_input_are_shown_escaped() {
        assert_eq!(printable("alice@example.com"), "alice@example.com");
        assert_eq!(
            printable("a@x.test\r\nRCPT TO:<b@x.test>"),
            "a@x.test\\r\\nRCPT TO:<b@x.test>"
        );
        assert_eq!(printable("a\u{1b}[2J@x.test\t"), "a\\u{1b}[2J@x.test\\t");
        assert_eq!(printable("a\u{85}@x.test"), "a\\u{85}@x.test");
    }

    /// The service writes CSV from stored JSON; `verify` from the record: the rows are the
    /// same, byte for byte.
    #[test]
    fn csv_from_the_stored_json_is_csv_from_the_record() {
        use mxprobe::smtp::reply::{Limits, Status, parse_reply};
        use mxprobe::{Reason, VerifyResult};
        let Ok(Status::Complete(reply)) = parse_reply(
            b"550-5.1.1 no such user, \"sorry\"\r\n550 5.1.1 try, again\r\n",
            &Limits::DEFAULT,
        ) else {
            panic!("a reply");
        };
        let mut rich = VerifyResult {
            mailbox: Some("bob@example.com".into()),
            domain: Some("example.com".into()),
            mx: Some("mx.example.com".into()),
            ip: Some("192.0.2.7".parse().unwrap()),
            smtp: Some(reply.into_owned()),
            catch_all: Some(false),
            suggestion: Some("gmail.com"),
            attempts: 2,
            elapsed: std::time::Duration::from_millis(1234),
            ..decided(7, "Bob, <bob@example.com>", Reason::MailboxNotFound)
        };
        rich.flags.role = true;
        let bare = decided(1, "not an address", Reason::InvalidSyntax);
        let mut detailed = decided(3, "x@y.test", Reason::Timeout);
        detailed.detail = Some("no reply within 30s, \"then\" nothing".into());
        for result in [rich, bare, detailed] {
            let record = result.record();
            let (mut direct, mut stored) = (Vec::new(), Vec::new());
            csv_line(&mut direct, &record).unwrap();
            let json = serde_json::to_value(record).unwrap();
            csv_line_from_json(&mut stored, &json).unwrap();
            assert_eq!(
                String::from_utf8(stored).unwrap(),
                String::from_utf8(direct).unwrap()
            );
        }
    }

    fn decided(line: u64, text: &str, reason: mxprobe::Reason) -> mxprobe::VerifyResult {
        mxprobe::VerifyResult {
            tag: line,
            address: text.into(),
            mailbox: None,
            domain: None,
            reason,
            detail: None,
            mx: None,
            ip: None,
            smtp: None,
            catch_all: None,
            flags: mxprobe::address::Flags::default(),
            suggestion: None,
            attempts: 0,
            elapsed: std::time::Duration::ZERO,
            transcript: None,
            tls: None,
            greylist_wait: None,
        }
    }
}
