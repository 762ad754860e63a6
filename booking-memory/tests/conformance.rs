//! The shared adapter conformance suite of `booking-core`, run against [`MemoryStore`].
//!
//! Not built under `cfg(booking_loom)`: there the store's locks are loom's, which only work
//! inside a loom model (see `tests/loom.rs`).

#![cfg(not(booking_loom))]

use std::sync::Arc;

use booking_core::testing::StoreFactory;
use booking_memory::MemoryStore;

/// Hands every check a fresh, empty [`MemoryStore`].
struct MemoryFactory;

#[async_trait::async_trait]
impl StoreFactory for MemoryFactory {
    type Store = MemoryStore;

    async fn new_store(&self) -> Option<Arc<Self::Store>> {
        Some(Arc::new(MemoryStore::new()))
    }
}

booking_core::conformance_suite!(MemoryFactory);
