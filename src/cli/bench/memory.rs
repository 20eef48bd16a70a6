//! This process's resident memory, from Linux's `/proc/self/status`: now (`VmRSS`) and at its
//! peak (`VmHWM`), which can be reset so a phase's peak is its own.

use std::fs;

/// Resident memory now and at the peak, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resident {
    /// `VmRSS`.
    pub now: u64,
    /// `VmHWM`: the most since start, or since the last [`reset_peak`].
    pub peak: u64,
}

/// Reads both figures; `None` where `/proc` does not have them (not Linux).
pub fn resident() -> Option<Resident> {
    parse_status(&fs::read_to_string("/proc/self/status").ok()?)
}

/// Both figures of another process, by its id.
pub fn resident_of(pid: u32) -> Option<Resident> {
    parse_status(&fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

/// Makes the peak start again from the current size (`echo 5 > /proc/self/clear_refs`, Linux
/// 4.0 and later). Returns whether it worked; if not, the peak is the whole process's.
pub fn reset_peak() -> bool {
    fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn parse_status(status: &str) -> Option<Resident> {
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|line| line.starts_with(name))?;
        let kib: u64 = line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kib * 1024)
    };
    Some(Resident {
        now: field("VmRSS:")?,
        peak: field("VmHWM:")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields_are_read_in_bytes() {
        let status = "Name:\tmxprobe\nVmPeak:\t  200000 kB\nVmHWM:\t   40960 kB\nVmRSS:\t   \
                      20480 kB\nThreads:\t5\n";
        assert_eq!(
            parse_status(status),
            Some(Resident {
                now: 20 << 20,
                peak: 40 << 20,
            })
        );
        assert_eq!(parse_status("Name:\tx\n"), None);
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn this_process_is_read() {
        let resident = resident().expect("linux has /proc/self/status");
        assert!(resident.peak >= resident.now && resident.now > 0);
    }
}
