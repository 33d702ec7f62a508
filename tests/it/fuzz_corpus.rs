//! Replays the committed fuzz corpora through the fuzz targets' checks, so
//! every input a fuzzer once found interesting (crashes included, saved as
//! named regression files) stays fixed.

use std::path::PathBuf;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("corpus entry").path();
        let data = std::fs::read(&path).expect("corpus file");
        let result = std::panic::catch_unwind(|| check(&data));
        assert!(
            result.is_ok(),
            "{} fails the {target} check",
            path.display()
        );
        n += 1;
    }
    assert!(n > 0, "the {target} corpus is empty");
    println!("{target} corpus: {n} passed, 0 failed");
}

#[test]
fn fuzz_corpus_dtab() {
    replay("dtab", switchyard::routing::fuzzing::check_dtab_input);
}

#[test]
fn fuzz_corpus_http1_request() {
    replay(
        "http1_request",
        switchyard::http1::fuzzing::check_request_input,
    );
}

#[test]
fn fuzz_corpus_http1_response() {
    replay(
        "http1_response",
        switchyard::http1::fuzzing::check_response_input,
    );
}

#[test]
fn fuzz_corpus_chunked() {
    replay("chunked", switchyard::http1::fuzzing::check_chunked_input);
}
