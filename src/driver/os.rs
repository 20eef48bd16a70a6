//! What the driver asks of the operating system besides sockets: room for them (the open-file
//! limit, and the descriptors kept back for everything else) and the seed for the sans-IO
//! core's random numbers. Called once when a loop starts, never on the hot path.

/// File descriptors kept free for everything that is not a probe socket: stdio, the epoll
/// instance, output and input files, the simulator's sockets in benchmarks.
pub const RESERVED_FDS: u64 = 64;

/// Raises the soft limit on open files (`RLIMIT_NOFILE`) toward `wanted` and returns the soft
/// limit now in force. Above the hard limit only a privileged process (root, or
/// `CAP_SYS_RESOURCE`) may go, up to the kernel's `fs.nr_open`; this tries, and otherwise stops
/// at the hard limit. A loop with thousands of sockets in flight needs more than the common
/// default of 1,024; one that cannot have them must know before it opens them, and run fewer
/// at once, rather than fail with `EMFILE` halfway.
pub fn raise_open_files_limit(wanted: u64) -> std::io::Result<u64> {
    let soft = rlimit::increase_nofile_limit(wanted)?;
    if soft >= wanted {
        return Ok(soft);
    }
    // Refused without the privilege; the soft limit raised above stays.
    match rlimit::setrlimit(rlimit::Resource::NOFILE, wanted, wanted) {
        Ok(()) => Ok(wanted),
        Err(_) => Ok(soft),
    }
}

/// 32 bytes from the operating system's CSPRNG, to seed the sans-IO core's random numbers
/// (DNS query IDs, MX shuffles, catch-all local parts).
pub fn os_seed() -> std::io::Result<[u8; 32]> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(seed)
}
