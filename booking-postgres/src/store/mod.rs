//! [`PgStore`]: the storage traits of booking-core on a PostgreSQL pool.

mod bookings;
mod directory;
mod idempotency;
mod inbox;
mod outbox;
mod payments;
mod purge;
mod requests;
mod webhooks;

/// Statement texts shared with benchmarks (through `test_support::sql`).
pub(crate) mod sql {
    pub(crate) use super::bookings::{
        EXPIRE_DUE, FIND_BY_REQUEST, INSERT_FAST, LOCK_BOOKING, SELECT_BOOKING, list_bookings,
    };
    pub(crate) use super::directory::{
        SELECT_CLIENT, SELECT_PRINCIPAL, SELECT_PROFESSIONAL, SELECT_SCHEDULE, search_statement,
    };
    pub(crate) use super::idempotency::{CLAIM_OR_READ, COMPLETE, PURGE as IDEMPOTENCY_PURGE};
    pub(crate) use super::inbox::{CLAIM_DUE, MARK_PROCESSED, RECORD};
    pub(crate) use super::outbox::{EVENTS_AFTER, EVENTS_FIRST, RECORD_ONE};
    pub(crate) use super::payments::{LOCK_OWNED_EVENT, LOCK_PROFESSIONAL_OF, OBLIGATIONS, WRITE};
    pub(crate) use super::requests::{AVAILABILITY_SNAPSHOT, CLAIM_WITH_CONTEXT};
}

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use booking_core::store::HealthCheck;
use booking_core::{Error, Result};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::MIGRATOR;
use crate::config::{PgClock, PgConfig};
use crate::error::{PgError, RetryPolicy};

/// The PostgreSQL store: implements every storage trait of booking-core
/// ([`booking_core::Store`]). Cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    /// Optional pool on a read replica for search; the primary answers when it fails.
    read_pool: Option<PgPool>,
    retry: RetryPolicy,
    /// Whose clock decides hold expiry (see [`PgClock`]).
    clock: PgClock,
    /// Kept alive as long as any clone of the store (test harness: drops the database).
    attachment: Option<Arc<dyn Any + Send + Sync>>,
    /// Where each batched purge stopped (shared by the clones).
    purge: Arc<purge::PurgeCursors>,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("pool_size", &self.pool.size())
            .field("idle", &self.pool.num_idle())
            .field("clock", &self.clock)
            .field("read_replica", &self.read_pool.is_some())
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Opens a pool as configured (and one connection, to fail early when the server is
    /// unreachable). Runs no migrations: call [`PgStore::migrate`].
    ///
    /// A URL that does not parse is [`Error::Invalid`]; an unreachable server is
    /// [`Error::Unavailable`].
    pub async fn connect(config: &PgConfig) -> Result<Self> {
        let pool = pool_options(config)
            .connect_with(connect_options(config)?)
            .await
            .map_err(|e| {
                tracing::warn!(url = %config.redacted_url(), error = %e, "postgres: cannot connect");
                Error::from(PgError::from(e))
            })?;
        Ok(Self::from_pool(pool).with_clock(config.clock))
    }

    /// Like [`PgStore::connect`] but opens no connection until the first call.
    pub fn connect_lazy(config: &PgConfig) -> Result<Self> {
        Ok(
            Self::from_pool(pool_options(config).connect_lazy_with(connect_options(config)?))
                .with_clock(config.clock),
        )
    }

    /// A store over an existing pool (its settings are the caller's), on the database's
    /// clock ([`PgClock::Database`]; see [`PgStore::with_clock`]).
    pub fn from_pool(pool: PgPool) -> Self {
        Self {
            pool,
            read_pool: None,
            retry: RetryPolicy::default(),
            clock: PgClock::Database,
            attachment: None,
            purge: Arc::default(),
        }
    }

    /// The same store deciding hold expiry on `clock`'s time (see [`PgClock`]).
    ///
    /// ```no_run
    /// # fn demo(pool: sqlx::PgPool) {
    /// use booking_postgres::{PgClock, PgStore};
    /// // Tests driven by a manual clock decide with the `now` they pass.
    /// let store = PgStore::from_pool(pool).with_clock(PgClock::Caller);
    /// assert_eq!(store.clock(), PgClock::Caller);
    /// # }
    /// ```
    pub fn with_clock(mut self, clock: PgClock) -> Self {
        self.clock = clock;
        self
    }

    /// Whose clock decides hold expiry.
    pub fn clock(&self) -> PgClock {
        self.clock
    }

    /// Serves searches ([`booking_core::store::DirectoryStore::search_professionals`]) and
    /// availability reads ([`booking_core::store::RequestStore::availability_snapshot`])
    /// from a pool on `config`, e.g. a streaming read replica, opened lazily like
    /// [`PgStore::connect_lazy`]. Writes and every other read (a booking's own checks
    /// included) stay on the primary. When a read fails on the replica (unreachable, not
    /// migrated yet, cancelled), it is answered from the primary instead. A replica lags: a
    /// change may show up there a moment after its write returned.
    pub fn with_read_replica(mut self, config: &PgConfig) -> Result<Self> {
        self.read_pool = Some(pool_options(config).connect_lazy_with(connect_options(config)?));
        Ok(self)
    }

    /// The read replica's pool, if one is configured.
    pub fn read_pool(&self) -> Option<&PgPool> {
        self.read_pool.as_ref()
    }

    /// Applies the embedded [`MIGRATOR`] migrations that are not applied yet. Safe to run at
    /// every start-up and from several processes at once (sqlx serialises them with an
    /// advisory lock).
    pub async fn migrate(&self) -> Result<()> {
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|e| Error::from(PgError::from(e)))
    }

    /// The underlying pool (for health probes, tests and tools).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        if let Some(read) = &self.read_pool {
            read.close().await;
        }
        self.pool.close().await;
    }

    /// Keeps `value` alive as long as any clone of the store. The test harness attaches the
    /// guard that drops a per-test database.
    #[doc(hidden)]
    pub fn with_attachment(mut self, value: Arc<dyn Any + Send + Sync>) -> Self {
        self.attachment = Some(value);
        self
    }
}

fn connect_options(config: &PgConfig) -> Result<PgConnectOptions> {
    let invalid = || Error::invalid("database_url", "is not a valid postgres:// URL");
    if !(config.url.starts_with("postgres://") || config.url.starts_with("postgresql://")) {
        return Err(invalid());
    }
    let mut options: PgConnectOptions = config.url.parse().map_err(|_| invalid())?;
    options = options.application_name("booking-postgres");
    let settings = config.session_settings();
    if !settings.is_empty() {
        options = options.options(settings);
    }
    Ok(options)
}

fn pool_options(config: &PgConfig) -> PgPoolOptions {
    liveness_check(PgPoolOptions::new())
        .max_connections(config.max_connections.max(1))
        .min_connections(config.min_connections.min(config.max_connections))
        .acquire_timeout(config.acquire_timeout)
}

/// Connections that sat idle for a while are pinged before use; busy ones are not (sqlx's
/// default pings on every acquire: one extra round trip per transaction). A connection
/// that died while busy fails its next statement, which is reported as `Unavailable`.
pub(crate) fn liveness_check(options: PgPoolOptions) -> PgPoolOptions {
    options
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > IDLE_BEFORE_PING {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
}

/// See [`liveness_check`].
const IDLE_BEFORE_PING: std::time::Duration = std::time::Duration::from_secs(10);

#[async_trait]
impl HealthCheck for PgStore {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(|e| Error::from(PgError::from(e)))
    }
}

/// `limit` (already checked to be 1..=100) plus one, to learn whether another page follows.
fn fetch_limit(limit: u32) -> i64 {
    i64::from(limit) + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_send<T: Send>(_: &T) {}

    /// The inherent async methods are spawnable (their futures are `Send`).
    #[allow(dead_code)]
    fn futures_are_send(store: &PgStore, config: &PgConfig) {
        is_send(&store.migrate());
        is_send(&PgStore::connect(config));
        is_send(&store.close());
    }
}
