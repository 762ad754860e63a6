//! Replays the committed corpus of the `store_ops` fuzz target (`fuzz/corpus/store_ops/*`):
//! each input decodes to a model sequence ([`booking_core::testing::fuzz::model_sequence`])
//! that runs against a fresh memory store and must agree with the reference model.

use std::path::PathBuf;
use std::sync::Arc;

use booking_core::testing::{fuzz, model};
use booking_memory::MemoryStore;

#[tokio::test]
async fn store_ops_corpus() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/store_ops");
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {} is missing: {e}", dir.display()));
    let mut count = 0;
    for entry in entries {
        let path = entry.expect("corpus entry").path();
        let data = std::fs::read(&path).expect("read corpus file");
        let (initial, steps) = fuzz::model_sequence(&data);
        if let Err(e) = model::run_sequence(Arc::new(MemoryStore::new()), initial, &steps).await {
            panic!(
                "{}: the memory store diverged from the model: {e}",
                path.display()
            );
        }
        count += 1;
    }
    assert!(count > 0, "the store_ops corpus is empty");
}
