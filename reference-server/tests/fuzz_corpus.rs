//! Replays the committed corpus of the `http_request` fuzz target
//! (`fuzz/corpus/http_request/*`) through the same entry point the fuzzer runs, so every
//! request a fuzzer kept is re-checked by the normal test suite.

use std::path::PathBuf;

#[path = "fuzz/http_request.rs"]
mod http_request;

#[test]
fn http_request_corpus() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/http_request");
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {} is missing: {e}", dir.display()));
    let mut count = 0;
    for entry in entries {
        let path = entry.expect("corpus entry").path();
        let data = std::fs::read(&path).expect("read corpus file");
        http_request::http_request(&data);
        count += 1;
    }
    assert!(count > 0, "the http_request corpus is empty");
}
