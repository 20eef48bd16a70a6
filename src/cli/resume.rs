//! `--resume`: which input lines an earlier run already wrote verdicts for.
//!
//! The output file is read back: every complete record names its input `line`. Lines found
//! are skipped by the new run, so rerunning the same command after a crash, `kill -9` or
//! Ctrl-C loses nothing and does nothing twice. A record cut short by a kill (the last line,
//! without its newline, or one that does not parse) is cut off the file before new records
//! are appended, so the file stays valid JSON Lines (or CSV).

use std::fs::OpenOptions;
use std::io::{self, BufRead, BufReader, Seek};
use std::path::Path;

use super::Format;

/// A set of line numbers, one bit each: ten million lines cost 1.25 MB.
#[derive(Debug, Default)]
pub struct DoneLines {
    bits: Vec<u64>,
    count: u64,
}

impl DoneLines {
    pub fn insert(&mut self, line: u64) {
        let (word, bit) = (usize::try_from(line / 64).unwrap_or(usize::MAX), line % 64);
        if word >= self.bits.len() {
            self.bits.resize(word + 1, 0);
        }
        if self.bits[word] & (1 << bit) == 0 {
            self.bits[word] |= 1 << bit;
            self.count += 1;
        }
    }

    pub fn contains(&self, line: u64) -> bool {
        let word = usize::try_from(line / 64).unwrap_or(usize::MAX);
        self.bits
            .get(word)
            .is_some_and(|w| w & (1 << (line % 64)) != 0)
    }

    /// How many lines are in the set.
    pub fn len(&self) -> u64 {
        self.count
    }
}

/// Reads the records of an earlier run from `path` (if it exists), cuts off a trailing partial
/// record, and returns the lines done and whether the file already has content (so a CSV
/// header is not written twice).
pub fn read_done(path: &Path, format: Format) -> io::Result<(DoneLines, bool)> {
    let file = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((DoneLines::default(), false)),
        Err(e) => {
            return Err(io::Error::new(
                e.kind(),
                format!("cannot open {} to resume: {e}", path.display()),
            ));
        }
    };
    let mut done = DoneLines::default();
    let mut reader = BufReader::new(&file);
    let mut valid_end = 0u64;
    let mut offset = 0u64;
    let mut buffer = Vec::new();
    let mut first = true;
    loop {
        buffer.clear();
        let read = reader.read_until(b'\n', &mut buffer)?;
        if read == 0 {
            break;
        }
        offset += read as u64;
        let complete = buffer.ends_with(b"\n");
        let line = if complete {
            &buffer[..buffer.len() - 1]
        } else {
            &buffer[..]
        };
        let parsed = match format {
            Format::Jsonl => jsonl_line(line),
            Format::Csv if first && line.starts_with(b"line,") => Some(None),
            Format::Csv => csv_line(line).map(Some),
            Format::Human => None,
        };
        first = false;
        match parsed {
            Some(found) if complete => {
                if let Some(line) = found {
                    done.insert(line);
                }
                valid_end = offset;
            }
            // A record cut short: it and anything after it go.
            _ => break,
        }
    }
    drop(reader);
    let has_content = valid_end > 0;
    if valid_end < file.metadata()?.len() {
        file.set_len(valid_end)?;
    }
    let mut file = file;
    file.seek(io::SeekFrom::End(0))?;
    Ok((done, has_content))
}

/// The `line` of a JSON record: `Some(Some(n))`; `None` if it does not parse.
fn jsonl_line(line: &[u8]) -> Option<Option<u64>> {
    let value: serde_json::Value = serde_json::from_slice(line).ok()?;
    Some(value.get("line").and_then(serde_json::Value::as_u64))
}

/// The first CSV field, the line number.
fn csv_line(line: &[u8]) -> Option<u64> {
    let end = memchr::memchr(b',', line)?;
    std::str::from_utf8(&line[..end]).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str, content: &[u8]) -> std::path::PathBuf {
        let path =
            std::env::temp_dir().join(format!("mxprobe-resume-{}-{name}", std::process::id()));
        std::fs::write(&path, content).expect("write");
        path
    }

    #[test]
    fn done_lines_are_a_bit_set() {
        let mut done = DoneLines::default();
        for line in [1, 64, 65, 1_000_000, 64] {
            done.insert(line);
        }
        assert_eq!(done.len(), 4);
        assert!(done.contains(64) && done.contains(1_000_000));
        assert!(!done.contains(2) && !done.contains(2_000_000));
    }

    #[test]
    fn a_record_cut_short_is_cut_off() {
        let path = temp(
            "jsonl",
            b"{\"address\":\"a@x.test\",\"line\":1}\n{\"address\":\"b@x.test\",\"line\":3}\n{\"address\":\"c@x",
        );
        let (done, has_content) = read_done(&path, Format::Jsonl).expect("read");
        assert!(has_content);
        assert_eq!(done.len(), 2);
        assert!(done.contains(1) && done.contains(3) && !done.contains(2));
        let left = std::fs::read_to_string(&path).expect("read back");
        assert!(left.ends_with("\"line\":3}\n"), "{left}");
        std::fs::remove_file(path).ok();
    }

    #[test]
    fn csv_skips_its_header() {
        let path = temp("csv", b"line,address,verdict\n4,a@x.test,deliverable\n");
        let (done, has_content) = read_done(&path, Format::Csv).expect("read");
        assert!(has_content);
        assert!(done.contains(4));
        assert_eq!(done.len(), 1);
        std::fs::remove_file(path).ok();
    }

    #[test]
    fn no_file_is_nothing_done() {
        let path = std::env::temp_dir().join("mxprobe-resume-none-at-all");
        let (done, has_content) = read_done(&path, Format::Jsonl).expect("read");
        assert_eq!(done.len(), 0);
        assert!(!has_content);
    }
}
