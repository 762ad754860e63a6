#![no_main]
//! Fuzz target: sequences of store operations (through the engine) on a fresh memory store
//! against the reference model; see `booking_core::testing::fuzz::model_sequence` and
//! `booking_core::testing::model::run_sequence`. Corpus replayed by
//! `booking-memory/tests/fuzz_corpus.rs`.

use std::sync::{Arc, OnceLock};

use booking_core::testing::{fuzz, model};
use booking_memory::MemoryStore;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread runtime")
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let (initial, steps) = fuzz::model_sequence(data);
    let store = Arc::new(MemoryStore::new());
    if let Err(e) = runtime().block_on(model::run_sequence(store, initial, &steps)) {
        panic!("the memory store diverged from the model: {e}");
    }
});
