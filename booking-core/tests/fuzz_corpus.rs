//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/*`) through the fuzz entry
//! points, so every input a fuzzer kept is re-checked by the normal test suite.

#![cfg(feature = "testing")]

use std::path::PathBuf;

use booking_core::testing::fuzz;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {} is missing: {e}", dir.display()));
    let mut count = 0;
    for entry in entries {
        let path = entry.expect("corpus entry").path();
        let data = std::fs::read(&path).expect("read corpus file");
        run(&data);
        count += 1;
    }
    assert!(count > 0, "corpus {target} is empty");
}

#[test]
fn schedule_json_corpus() {
    replay("schedule_json", fuzz::schedule_json);
}

#[test]
fn idempotency_input_corpus() {
    replay("idempotency_input", fuzz::idempotency_input);
}

#[test]
fn directory_input_corpus() {
    replay("directory_input", fuzz::directory_input);
}

#[test]
fn webhook_signature_corpus() {
    replay("webhook_signature", fuzz::webhook_signature);
}

#[test]
fn stripe_event_corpus() {
    replay("stripe_event", fuzz::stripe_event);
}
