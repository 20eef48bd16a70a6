//! CPU time used by this process and its threads, as Linux's `/proc` reports it, so the engine
//! can say what a run cost it and `mxprobe bench` can say which thread was the bottleneck.
//!
//! `/proc/…/stat` counts user and system time in clock ticks of `USER_HZ`, which Linux fixes
//! at 100 per second for user space on every architecture: figures are good to 10 ms, plenty
//! for runs of seconds. Elsewhere than Linux every reading is `None`.

use std::fs;
use std::ops::Sub;
use std::time::Duration;

/// Clock ticks per second in `/proc/*/stat` (`USER_HZ`).
const TICKS_PER_SECOND: u64 = 100;

/// User and system CPU time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct CpuTime {
    /// Time running the program's own code.
    pub user: Duration,
    /// Time in the kernel on its behalf (system calls: sockets, `epoll`).
    pub system: Duration,
}

impl CpuTime {
    /// User plus system.
    #[must_use]
    pub fn total(&self) -> Duration {
        self.user + self.system
    }
}

impl Sub for CpuTime {
    type Output = Self;

    /// The time used between two readings; saturates rather than going negative.
    fn sub(self, earlier: Self) -> Self {
        Self {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }
}

/// The calling thread's CPU time so far.
#[must_use]
pub fn this_thread() -> Option<CpuTime> {
    read_stat("/proc/thread-self/stat")
}

/// The whole process's CPU time so far, every thread included (finished ones too).
#[must_use]
pub fn this_process() -> Option<CpuTime> {
    read_stat("/proc/self/stat")
}

/// Process `pid`'s CPU time so far (a child this process started, say).
#[must_use]
pub fn of_process(pid: u32) -> Option<CpuTime> {
    read_stat(&format!("/proc/{pid}/stat"))
}

/// The live threads of this process whose name starts with `prefix` (names as given to
/// `std::thread::Builder::name`, cut to 15 bytes by Linux), with their CPU time so far.
#[must_use]
pub fn threads_named(prefix: &str) -> Vec<(String, CpuTime)> {
    let Ok(tasks) = fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for task in tasks.flatten() {
        let path = task.path();
        let Ok(name) = fs::read_to_string(path.join("comm")) else {
            continue;
        };
        let name = name.trim_end();
        if !name.starts_with(prefix) {
            continue;
        }
        if let Some(time) = read_stat(&path.join("stat").to_string_lossy()) {
            found.push((name.to_owned(), time));
        }
    }
    found.sort();
    found
}

fn read_stat(path: &str) -> Option<CpuTime> {
    parse_stat(&fs::read_to_string(path).ok()?)
}

/// `utime` and `stime` from a `/proc/*/stat` line: fields 14 and 15, counted after the command
/// name, which is in parentheses and may itself hold spaces and parentheses.
fn parse_stat(stat: &str) -> Option<CpuTime> {
    let (_, after_name) = stat.rsplit_once(')')?;
    // Field 3 (state) is the first after the name; utime is field 14.
    let mut fields = after_name.split_ascii_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(CpuTime {
        user: ticks(user),
        system: ticks(system),
    })
}

fn ticks(count: u64) -> Duration {
    Duration::from_millis(count * (1000 / TICKS_PER_SECOND))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_found_after_a_name_with_spaces_and_parentheses() {
        let stat = "4242 (odd (name) x) R 1 4242 4242 0 -1 4194560 100 0 0 0 1234 56 0 0 20 0 \
                    3 0 12345 1000000 500 18446744073709551615";
        assert_eq!(
            parse_stat(stat),
            Some(CpuTime {
                user: Duration::from_millis(12_340),
                system: Duration::from_millis(560),
            })
        );
        assert_eq!(parse_stat("no parenthesis here"), None);
        assert_eq!(parse_stat("1 (short) R 1 2"), None);
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn this_thread_and_process_are_read_and_named_threads_found() {
        let mut spin = 0u64;
        let started = std::time::Instant::now();
        while started.elapsed() < Duration::from_millis(50) {
            spin = std::hint::black_box(spin.wrapping_add(1));
        }
        let thread = this_thread().expect("linux has /proc/thread-self");
        let process = this_process().expect("linux has /proc/self");
        assert!(process.total() >= thread.total());
        let worker = std::thread::Builder::new()
            .name("cpu-test-named".into())
            .spawn(|| std::thread::sleep(Duration::from_millis(300)))
            .expect("spawn");
        std::thread::sleep(Duration::from_millis(50));
        let named = threads_named("cpu-test-n");
        worker.join().expect("join");
        assert_eq!(named.len(), 1, "{named:?}");
        assert_eq!(named[0].0, "cpu-test-named");
    }
}
