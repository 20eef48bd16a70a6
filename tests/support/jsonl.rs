//! The records `mxprobe verify --format jsonl` wrote, for the tests that run the binary.

use serde_json::Value;

/// Every line of `stdout` as a JSON record; a line that is not one fails the test, naming it.
pub fn records(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}")))
        .collect()
}
