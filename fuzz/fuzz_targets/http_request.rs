#![no_main]
//! Fuzz target: see `reference-server/tests/fuzz/http_request.rs` (shared with the corpus
//! replay test `reference-server/tests/fuzz_corpus.rs`).

#[path = "../../reference-server/tests/fuzz/http_request.rs"]
mod http_request;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    http_request::http_request(data);
});
