//! The progress line on stderr — done/total, rate, ETA, counts per verdict — redrawn at most
//! ten times a second, only when stderr is a terminal; and the one-line summary at the end.

use std::io::Write;
use std::time::{Duration, Instant};

use super::output::Tally;

/// Redraws the progress line; does nothing unless enabled.
pub struct Progress {
    enabled: bool,
    started: Instant,
    last_draw: Option<Instant>,
    total: Option<u64>,
    /// Lines done by an earlier run (`--resume`), counted in "done" but not in the rate.
    resumed: u64,
    /// True while the line is on screen.
    shown: bool,
}

impl Progress {
    pub fn new(enabled: bool, total: Option<u64>, resumed: u64) -> Self {
        Self {
            enabled,
            started: Instant::now(),
            last_draw: None,
            total,
            resumed,
            shown: false,
        }
    }

    /// Redraws if a tenth of a second has passed since the last time.
    pub fn update(&mut self, tally: &Tally) {
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        if self
            .last_draw
            .is_some_and(|last| now - last < Duration::from_millis(100))
        {
            return;
        }
        self.last_draw = Some(now);
        let done = tally.total() + self.resumed;
        let elapsed = now - self.started;
        let rate = tally.total() as f64 / elapsed.as_secs_f64().max(0.001);
        let mut line = match self.total {
            Some(total) if total > 0 => {
                let left = total.saturating_sub(done);
                let eta = if rate > 0.0 {
                    format_duration(Duration::from_secs_f64(left as f64 / rate))
                } else {
                    "?".into()
                };
                format!(
                    "{done}/{total} ({:.1}%)  {rate:.0}/s  ETA {eta}",
                    done as f64 * 100.0 / total as f64
                )
            }
            _ => format!("{done} done  {rate:.0}/s"),
        };
        line.push_str(&format!(
            "  deliverable {}  undeliverable {}  risky {}  unknown {}",
            tally.deliverable, tally.undeliverable, tally.risky, tally.unknown
        ));
        let mut stderr = std::io::stderr().lock();
        let _ = write!(stderr, "\r\x1b[2K{line}");
        let _ = stderr.flush();
        self.shown = true;
    }

    /// Clears the progress line (if it is on screen) before a record, the summary or a
    /// message; an update draws it again, a tenth of a second after the last drawing.
    pub fn clear(&mut self) {
        if self.enabled && self.shown {
            self.shown = false;
            let mut stderr = std::io::stderr().lock();
            let _ = write!(stderr, "\r\x1b[2K");
            let _ = stderr.flush();
        }
    }
}

/// `1:02:03` or `2:03`.
fn format_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

/// The one-line summary: how many, how long, how they came out.
pub fn summary(tally: &Tally, elapsed: Duration, interrupted: bool, resumed: u64) -> String {
    let mut line = format!(
        "{} {} address{} in {:.1} s: {} deliverable, {} undeliverable, {} risky, {} unknown",
        if interrupted {
            "interrupted after"
        } else {
            "verified"
        },
        tally.total(),
        if tally.total() == 1 { "" } else { "es" },
        elapsed.as_secs_f64(),
        tally.deliverable,
        tally.undeliverable,
        tally.risky,
        tally.unknown
    );
    if resumed > 0 {
        line.push_str(&format!(" ({resumed} done by an earlier run, skipped)"));
    }
    if interrupted {
        line.push_str("; rerun the same command with --resume to finish");
    }
    line
}
