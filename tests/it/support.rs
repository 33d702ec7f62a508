//! Helpers shared by the integration tests.

use std::path::PathBuf;

/// A file under `tests/conformance/`, or the file an environment variable
/// names instead.
pub fn corpus_path(env: &str, default_name: &str) -> PathBuf {
    match std::env::var_os(env) {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/conformance")
            .join(default_name),
    }
}

/// Pass/fail/skip tallies with the failures' details.
#[derive(Default)]
pub struct Tally {
    pub passed: usize,
    pub failed: Vec<String>,
    pub skipped: Vec<String>,
}

impl Tally {
    pub fn record(&mut self, id: &str, result: Result<(), String>) {
        match result {
            Ok(()) => self.passed += 1,
            Err(e) => self.failed.push(format!("{id}: {e}")),
        }
    }

    /// Prints `<what>: N passed, M failed, K skipped` and fails the test
    /// when anything failed.
    pub fn finish(self, what: &str) {
        for f in &self.failed {
            eprintln!("FAILED {f}");
        }
        for s in &self.skipped {
            eprintln!("skipped {s}");
        }
        println!(
            "{what}: {} passed, {} failed, {} skipped",
            self.passed,
            self.failed.len(),
            self.skipped.len()
        );
        assert!(
            self.failed.is_empty(),
            "{} {what} cases failed",
            self.failed.len()
        );
    }
}
