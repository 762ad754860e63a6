//! Shared by the Postgres test binaries: fresh databases (see
//! `booking_postgres::test_support`) and the conformance factory.

#![allow(dead_code)] // each test binary uses a different part

use std::sync::Arc;

use async_trait::async_trait;
use booking_core::testing::StoreFactory;
use booking_postgres::PgStore;
use booking_postgres::test_support;

/// Pool size of an ordinary test store (races in the suite use a handful of tasks).
pub const POOL: u32 = 8;

/// A store on a fresh database, or `None` when Postgres is unreachable and not required
/// (a loud `SKIPPED` has been printed; the test returns).
pub async fn store() -> Option<PgStore> {
    test_support::fresh_store(POOL).await
}

/// The conformance suite's factory: each check on a fresh database, dropped afterwards.
pub struct PgFactory;

#[async_trait]
impl StoreFactory for PgFactory {
    type Store = PgStore;

    async fn new_store(&self) -> Option<Arc<PgStore>> {
        // `None` skips the check after the loud SKIPPED notice; with
        // BOOKING_REQUIRE_POSTGRES=1 `fresh_store` has panicked instead.
        test_support::fresh_store(POOL).await.map(Arc::new)
    }
}
