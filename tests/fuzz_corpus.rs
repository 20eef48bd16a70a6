//! Replays every file of the fuzz seeds, the fuzz corpus and `fuzz/artifacts` through the same
//! property checks the fuzz targets run, on stable Rust: a crash the fuzzer once found, or an
//! input it once covered, stays covered by CI without nightly.

use std::path::{Path, PathBuf};

#[path = "../fuzz/src/lib.rs"]
#[allow(
    dead_code,
    reason = "shared with the fuzz crate; each target uses what it needs"
)]
mod checks;

/// The targets, by the name of their folder under `fuzz/seeds`, `fuzz/corpus` and
/// `fuzz/artifacts`.
/// A target's property check: panics if a guarantee is broken.
type Check = fn(&[u8]);

const TARGETS: [(&str, Check); 8] = [
    ("smtp_reply", checks::smtp_reply),
    ("ehlo", checks::ehlo),
    ("command", checks::command),
    ("address", checks::address),
    ("dns_response", checks::dns_response),
    ("session", checks::session),
    ("upload", checks::upload),
    ("socks5", checks::socks5),
];

fn files_of(target: &str) -> Vec<PathBuf> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut files = Vec::new();
    for kind in ["seeds", "corpus", "artifacts"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(kind).join(target)) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("readable directory entry").path();
            if path.is_file() {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn replay(target: &str, check: Check) -> usize {
    let files = files_of(target);
    let mut failed = Vec::new();
    for path in &files {
        let data = match std::fs::read(path) {
            Ok(data) => data,
            // A fuzzer running in this checkout replaces corpus files as it shrinks them.
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            Err(error) => panic!("{}: {error}", path.display()),
        };
        if std::panic::catch_unwind(|| check(&data)).is_err() {
            failed.push(path.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{target}: these inputs fail: {failed:#?}"
    );
    files.len()
}

#[test]
fn smtp_reply_corpus_holds() {
    let (name, check) = TARGETS[0];
    assert!(replay(name, check) > 0, "the smtp_reply seeds are missing");
}

#[test]
fn ehlo_corpus_holds() {
    let (name, check) = TARGETS[1];
    assert!(replay(name, check) > 0, "the ehlo seeds are missing");
}

#[test]
fn command_corpus_holds() {
    let (name, check) = TARGETS[2];
    assert!(replay(name, check) > 0, "the command seeds are missing");
}

#[test]
fn address_corpus_holds() {
    let (name, check) = TARGETS[3];
    assert!(replay(name, check) > 0, "the address seeds are missing");
}

#[test]
fn dns_response_corpus_holds() {
    let (name, check) = TARGETS[4];
    assert!(
        replay(name, check) > 0,
        "the dns_response seeds are missing"
    );
}

#[test]
fn session_corpus_holds() {
    let (name, check) = TARGETS[5];
    assert!(replay(name, check) > 0, "the session seeds are missing");
}

#[test]
fn upload_corpus_holds() {
    let (name, check) = TARGETS[6];
    assert!(replay(name, check) > 0, "the upload seeds are missing");
}

#[test]
fn socks5_corpus_holds() {
    let (name, check) = TARGETS[7];
    assert!(replay(name, check) > 0, "the socks5 seeds are missing");
}

#[test]
fn every_target_has_seeds() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    for (target, _) in TARGETS {
        assert!(
            fuzz.join("seeds").join(target).is_dir(),
            "fuzz/seeds/{target}"
        );
        assert!(
            fuzz.join("fuzz_targets")
                .join(format!("{target}.rs"))
                .is_file(),
            "fuzz/fuzz_targets/{target}.rs"
        );
    }
}
