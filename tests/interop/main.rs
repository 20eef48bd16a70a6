//! Interop tests: mxprobe against real servers from Debian packages, started by the test itself
//! on loopback with a private configuration.
//!
//! `.ci/run` installs the packages (and unpacks Exim, whose package conflicts with Postfix's). Where a package is missing, a test fails under CI (`CI`
//! set: a green CI must mean the real thing ran) and is skipped with a note elsewhere, so that
//! `cargo test` still works on a machine without them.

#![allow(
    clippy::disallowed_methods,
    reason = "these tests start real servers and wait for them in real time"
)]
#![allow(
    clippy::print_stderr,
    reason = "a skipped interop test says so on stderr"
)]

mod exim;
mod nsd;
mod postfix;
mod socks5;
mod support;

/// Where a server program lives, if it is installed.
fn find_program(name: &str) -> Option<std::path::PathBuf> {
    [
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
        "/usr/local/sbin",
        "/usr/local/bin",
    ]
    .iter()
    .map(|dir| std::path::Path::new(dir).join(name))
    .find(|path| path.is_file())
}

/// The program `name`, or `None` after saying why the test is skipped. Under CI a missing
/// program fails the test instead.
fn require_program(name: &str, package: &str) -> Option<std::path::PathBuf> {
    if let Some(path) = find_program(name) {
        return Some(path);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{name} is not installed; under CI it must be (.ci/run installs the Debian package {package})"
    );
    eprintln!(
        "SKIPPED: {name} is not installed (apt-get install {package}); the interop test did not run"
    );
    None
}
