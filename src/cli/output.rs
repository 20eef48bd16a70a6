//! Verdicts written out: JSON Lines (the schema of DESIGN.md §3), CSV, or aligned text for
//! people. Each verdict is formatted whole and written with one call, then flushed, so an
//! interrupted run leaves whole lines only, and `--resume` can read them back.

use std::io::{self, Write};

use serde::Serialize;

use super::Format;
use mxprobe::engine::VerifyResult;
use mxprobe::verdict::Verdict;

/// One verdict as the output schema has it. Field names and order are a contract.
#[derive(Debug, Serialize)]
pub struct Record<'a> {
    /// The address as written on its input line.
    pub address: &'a str,
    pub verdict: &'static str,
    pub reason: &'static str,
    pub domain: Option<&'a str>,
    pub mx: Option<&'a str>,
    pub ip: Option<String>,
    pub smtp: Option<Smtp>,
    pub catch_all: Option<bool>,
    pub flags: Flags,
    pub attempts: u32,
    pub elapsed_ms: u64,
    /// The input line (or the position among the command-line arguments), from 1.
    pub line: u64,
    /// A sentence for people where the reason alone does not say everything.
    pub detail: Option<&'a str>,
    /// A popular provider the domain probably misspells.
    pub suggestion: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transcript: Option<&'a str>,
}

/// The reply that decided.
#[derive(Debug, Serialize)]
pub struct Smtp {
    pub code: u16,
    pub enhanced: Option<String>,
    /// The reply's text, its lines joined by newlines, codes left out.
    pub message: String,
}

#[derive(Debug, Serialize)]
pub struct Flags {
    pub role: bool,
    pub disposable: bool,
    pub free: bool,
}

impl<'a> Record<'a> {
    /// The record of `result`, reported for the input `address` on `line` (a duplicate
    /// shares its first occurrence's result but keeps its own text and line).
    pub fn new(result: &'a VerifyResult, address: &'a str, line: u64, transcript: bool) -> Self {
        Self {
            address,
            verdict: result.verdict().as_str(),
            reason: result.reason.as_str(),
            domain: result.domain.as_deref(),
            mx: result.mx.as_deref(),
            ip: result.ip.map(|ip| ip.to_string()),
            smtp: result.smtp.as_ref().map(|reply| {
                let reply = reply.as_reply();
                Smtp {
                    code: reply.code().get(),
                    enhanced: reply.enhanced().map(|e| e.to_string()),
                    message: reply
                        .lines()
                        .map(|line| String::from_utf8_lossy(line).into_owned())
                        .collect::<Vec<_>>()
                        .join("\n"),
                }
            }),
            catch_all: result.catch_all,
            flags: Flags {
                role: result.flags.role,
                disposable: result.flags.disposable,
                free: result.flags.free,
            },
            attempts: result.attempts,
            elapsed_ms: u64::try_from(result.elapsed.as_millis()).unwrap_or(u64::MAX),
            line,
            detail: result.detail.as_deref(),
            suggestion: result.suggestion,
            transcript: if transcript {
                result.transcript.as_deref()
            } else {
                None
            },
        }
    }
}

/// The CSV columns, in order.
pub const CSV_HEADER: &str = "line,address,verdict,reason,detail,domain,mx,ip,smtp_code,\
smtp_enhanced,smtp_message,catch_all,role,disposable,free,suggestion,attempts,elapsed_ms";

/// Writes records in one format, one flushed line each.
pub struct Writer {
    out: Box<dyn Write + Send>,
    format: Format,
    color: bool,
    line: Vec<u8>,
}

impl Writer {
    /// `color` applies to the human format only.
    pub fn new(out: Box<dyn Write + Send>, format: Format, color: bool) -> Self {
        Self {
            out,
            format,
            color,
            line: Vec::with_capacity(512),
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

    /// Formats `record` and writes it whole, then flushes.
    pub fn write(&mut self, record: &Record<'_>) -> io::Result<()> {
        self.line.clear();
        match self.format {
            Format::Jsonl => {
                serde_json::to_writer(&mut self.line, record).map_err(io::Error::other)?;
            }
            Format::Csv => csv_line(&mut self.line, record)?,
            Format::Human => human_line(&mut self.line, record, self.color),
        }
        self.line.push(b'\n');
        self.out.write_all(&self.line)?;
        self.out.flush()
    }
}

fn csv_line(buffer: &mut Vec<u8>, record: &Record<'_>) -> io::Result<()> {
    let smtp = record.smtp.as_ref();
    let fields: [String; 18] = [
        record.line.to_string(),
        record.address.to_owned(),
        record.verdict.to_owned(),
        record.reason.to_owned(),
        record.detail.unwrap_or_default().to_owned(),
        record.domain.unwrap_or_default().to_owned(),
        record.mx.unwrap_or_default().to_owned(),
        record.ip.clone().unwrap_or_default(),
        smtp.map(|s| s.code.to_string()).unwrap_or_default(),
        smtp.and_then(|s| s.enhanced.clone()).unwrap_or_default(),
        smtp.map(|s| s.message.replace('\n', " "))
            .unwrap_or_default(),
        record.catch_all.map(|c| c.to_string()).unwrap_or_default(),
        record.flags.role.to_string(),
        record.flags.disposable.to_string(),
        record.flags.free.to_string(),
        record.suggestion.unwrap_or_default().to_owned(),
        record.attempts.to_string(),
        record.elapsed_ms.to_string(),
    ];
    let mut writer = csv::WriterBuilder::new()
        .has_headers(false)
        .terminator(csv::Terminator::Any(b'\r'))
        .from_writer(Vec::new());
    writer.write_record(&fields).map_err(io::Error::other)?;
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

/// `address  verdict  reason  detail-or-reply`, the verdict colored on a terminal: green
/// deliverable, red undeliverable, yellow risky, blue unknown.
fn human_line(buffer: &mut Vec<u8>, record: &Record<'_>, color: bool) {
    let verdict = record.verdict;
    let paint = match verdict {
        "deliverable" => "32",
        "undeliverable" => "31",
        "risky" => "33",
        _ => "34",
    };
    // The input is untrusted too, and a line refused for a control character holds one: it is
    // shown escaped (`a@x.test\r`), never written to the terminal as it is.
    let mut text = format!("{:<40} ", printable(record.address));
    if color {
        text.push_str(&format!("\x1b[{paint}m{verdict:<13}\x1b[0m "));
    } else {
        text.push_str(&format!("{verdict:<13} "));
    }
    text.push_str(&format!("{:<20}", record.reason));
    let why = match (&record.smtp, record.detail) {
        (Some(smtp), _) => format!(
            "{} {}",
            smtp.code,
            smtp.message.lines().next().unwrap_or_default()
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
}
