//! Fresh databases for tests and benchmarks. Not part of the public API.
//!
//! Every test gets its own database on the server of `DATABASE_URL` (default
//! [`DEFAULT_URL`]), cloned from a migrated template (`CREATE DATABASE .. TEMPLATE`, much
//! faster than migrating each time) and dropped when its store is dropped. The template is
//! built once per schema version (its name carries a hash of the migrations) under an
//! advisory lock, so concurrent test processes share it safely.
//!
//! When the server is unreachable: in CI (`CI` set to any true value: `1`, `true`, `True`,
//! `yes`, ...) or with `BOOKING_REQUIRE_POSTGRES` true, that is a panic with a clear
//! message; otherwise one `SKIPPED: postgres unreachable ...` line on stderr (counted by
//! `scripts/test.sh`) and `None`, so the caller returns early.

use std::future::Future;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection};
use tokio::sync::OnceCell;

use crate::{MIGRATOR, PgStore};

pub mod private_server;

/// The statements a `POST /v1/bookings` of the reference server sends, in order, verbatim
/// (with `$n` parameters), so that a benchmark can run the same SQL without the adapter
/// (`bench/src/bin/load` feeds them to pgbench).
pub mod sql {
    /// `principal_for_token`.
    pub const SELECT_PRINCIPAL: &str = crate::store::sql::SELECT_PRINCIPAL;
    /// `IdempotencyStore::begin`, common cases.
    pub const IDEMPOTENCY_CLAIM_OR_READ: &str = crate::store::sql::CLAIM_OR_READ;
    /// `get_professional`.
    pub const SELECT_PROFESSIONAL: &str = crate::store::sql::SELECT_PROFESSIONAL;
    /// `find_booking_by_request`.
    pub const FIND_BOOKING_BY_REQUEST: &str = crate::store::sql::FIND_BY_REQUEST;
    /// `get_client`.
    pub const SELECT_CLIENT: &str = crate::store::sql::SELECT_CLIENT;
    /// `get_schedule`.
    pub const SELECT_SCHEDULE: &str = crate::store::sql::SELECT_SCHEDULE;
    /// `insert_booking`, when no hold that ran out overlaps the slot.
    pub const INSERT_BOOKING: &str = crate::store::sql::INSERT_FAST;
    /// `IdempotencyStore::complete`.
    pub const IDEMPOTENCY_COMPLETE: &str = crate::store::sql::COMPLETE;
    /// `RequestStore::begin_booking`: the idempotency claim with the booking's context.
    pub const BEGIN_BOOKING: &str = crate::store::sql::CLAIM_WITH_CONTEXT;
    /// `RequestStore::availability_snapshot`.
    pub const AVAILABILITY_SNAPSHOT: &str = crate::store::sql::AVAILABILITY_SNAPSHOT;
    /// `PaymentStore::payment_obligations` (`$1` now, `$2` limit), for index checks.
    pub const PAYMENT_OBLIGATIONS: &str = crate::store::sql::OBLIGATIONS;

    // The webhook path (`bench/src/bin/webhook_load` feeds these to
    // pgbench): intake records an event, the inbox worker claims a batch and settles each
    // event in one transaction.

    /// `InboxStore::record` (`$1` provider, `$2` event id, `$3` list id, `$4` type,
    /// `$5` payload, `$6` now).
    pub const INBOX_RECORD: &str = crate::store::sql::RECORD;
    /// `InboxStore::claim_due` (`$1` now, `$2` limit, `$3` lease, `$4` lease end).
    pub const INBOX_CLAIM: &str = crate::store::sql::CLAIM_DUE;
    /// `get_booking` (`$1` id): the engine reads the booking an event names before it
    /// settles.
    pub const SELECT_BOOKING: &str = crate::store::sql::SELECT_BOOKING;
    /// `settle_payment`, first in its transaction: locks the inbox event the lease owns
    /// (`$1` provider, `$2` event id, `$3` lease).
    pub const SETTLE_LOCK_EVENT: &str = crate::store::sql::LOCK_OWNED_EVENT;
    /// `settle_payment`: takes the insert lock of the booking's professional (`$1` id).
    pub const SETTLE_LOCK_PROFESSIONAL: &str = crate::store::sql::LOCK_PROFESSIONAL_OF;
    /// `settle_payment`: locks and reads the booking (`$1` id).
    pub const SETTLE_LOCK_BOOKING: &str = crate::store::sql::LOCK_BOOKING;
    /// `settle_payment`: writes the booking back (`$1` professional, `$2` id, `$3` status,
    /// `$4` hold expiry, `$5` request reference, `$6` updated at, `$7`..`$13` the payment).
    pub const SETTLE_WRITE: &str = crate::store::sql::WRITE;
    /// `settle_payment`: records the booking's domain event in the outbox (`$1` id, `$2`
    /// kind, `$3` booking, `$4` professional, `$5` occurred at, `$6` payload).
    pub const SETTLE_OUTBOX: &str = crate::store::sql::RECORD_ONE;
    /// `settle_payment`, last in its transaction: marks the event processed (`$1`
    /// provider, `$2` event id, `$3` lease, `$4` now).
    pub const SETTLE_MARK_PROCESSED: &str = crate::store::sql::MARK_PROCESSED;

    /// `expire_due_holds` (`$1` now, `NULL` for the database's; `$2` the limit), for tests
    /// of its plan.
    #[doc(hidden)]
    pub const EXPIRE_DUE_HOLDS: &str = crate::store::sql::EXPIRE_DUE;
    /// `IdempotencyStore::purge_expired`, one batch (`$1` now, `$2` limit, `$3` where the
    /// previous full batch stopped, `NULL` for the beginning): the purge test checks its plan.
    #[doc(hidden)]
    pub const IDEMPOTENCY_PURGE: &str = crate::store::sql::IDEMPOTENCY_PURGE;

    /// `OutboxStore::events_after` from the start (`$1` limit), for index checks.
    #[doc(hidden)]
    pub const OUTBOX_EVENTS_FIRST: &str = crate::store::sql::EVENTS_FIRST;
    /// `OutboxStore::events_after` after an event (`$1` its `seq`, `$2` limit).
    #[doc(hidden)]
    pub const OUTBOX_EVENTS_AFTER: &str = crate::store::sql::EVENTS_AFTER;

    /// `EXPLAIN` of the first statement `search_professionals` runs for `query` (the
    /// radius walk, the text walk or the rate-ordered page), with its parameters bound, for
    /// tests of its plan.
    #[doc(hidden)]
    pub fn explain_search(
        query: &booking_core::store::ProfessionalQuery,
    ) -> Result<sqlx::QueryBuilder<sqlx::Postgres>, booking_core::Error> {
        let limit = booking_core::store::check_limit(query.limit)?;
        Ok(crate::store::sql::search_statement(
            "EXPLAIN ", query, limit,
        ))
    }

    /// `EXPLAIN` of the statement `list_bookings` runs for `query` (`now`: the store's
    /// clock, `None` for the database's), with its parameters bound, for tests of its plan.
    #[doc(hidden)]
    pub fn explain_list_bookings(
        query: &booking_core::store::BookingQuery,
        now: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<sqlx::QueryBuilder<sqlx::Postgres>, booking_core::Error> {
        let limit = booking_core::store::check_limit(query.limit)?;
        crate::store::sql::list_bookings("EXPLAIN ", query, now, limit)
    }
}

/// The server used when `DATABASE_URL` is not set.
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Advisory lock (on the maintenance database) serialising template builds.
const TEMPLATE_LOCK: i64 = 0x626b_746d_706c_0001;

/// `DATABASE_URL`, or [`DEFAULT_URL`].
pub fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_URL.to_owned())
}

/// Whether `value` counts as true for a flag in the environment: anything but empty,
/// `0`, `false`, `no` or `off` (any case, surrounding blanks ignored). So `CI=true`,
/// `CI=1`, `CI=True` and `CI=yes` are all true. `scripts/test.sh` applies the same rule.
///
/// ```
/// use booking_postgres::test_support::is_true;
/// assert!(is_true("1") && is_true("true") && is_true("True") && is_true("yes"));
/// assert!(!is_true("") && !is_true("0") && !is_true("false") && !is_true(" FALSE "));
/// ```
pub fn is_true(value: &str) -> bool {
    let v = value.trim().to_ascii_lowercase();
    !matches!(v.as_str(), "" | "0" | "false" | "no" | "off")
}

/// Whether the environment variable `name` is set to a true value (see [`is_true`]).
pub fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| is_true(&v))
}

/// Whether the tests run in CI (`CI` set to a true value): there, a backing service that
/// cannot be reached is a failure, never a skip.
pub fn in_ci() -> bool {
    env_flag("CI")
}

/// Whether an unreachable server must fail the tests: in CI ([`in_ci`]) or with
/// `BOOKING_REQUIRE_POSTGRES` set to a true value.
pub fn postgres_required() -> bool {
    in_ci() || env_flag("BOOKING_REQUIRE_POSTGRES")
}

/// Reports a skipped test: one line `SKIPPED: <why>` written straight to stderr (the test
/// harness captures `eprintln!` of passing tests), which `scripts/test.sh` counts so that
/// a skipped test is not counted as passed. Call it once per skipped test.
pub fn report_skipped(why: &str) {
    // One write, so that parallel tests cannot split the line.
    let line = format!("\nSKIPPED: {why}\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// Connection options of the server (its maintenance database, as named in the URL).
pub fn server_options() -> Result<PgConnectOptions, String> {
    database_url()
        .parse::<PgConnectOptions>()
        .map_err(|e| format!("DATABASE_URL does not parse: {e}"))
}

async fn connect(options: &PgConnectOptions) -> Result<PgConnection, String> {
    match tokio::time::timeout(Duration::from_secs(10), PgConnection::connect_with(options)).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("connecting timed out after 10 s".into()),
    }
}

async fn execute(conn: &mut PgConnection, sql: String) -> Result<(), String> {
    conn.execute(AssertSqlSafe(sql))
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// A name derived from the embedded migrations: a schema change gets a new template.
fn template_name() -> String {
    let mut h = DefaultHasher::new();
    for m in MIGRATOR.iter() {
        m.version.hash(&mut h);
        m.checksum.hash(&mut h);
    }
    format!("booking_tmpl_{:016x}", h.finish())
}

async fn build_template(server: &PgConnectOptions) -> Result<String, String> {
    let name = template_name();
    let mut admin = connect(server).await?;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(TEMPLATE_LOCK)
        .execute(&mut admin)
        .await
        .map_err(|e| e.to_string())?;
    let result = build_template_locked(server, &mut admin, &name).await;
    let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(TEMPLATE_LOCK)
        .execute(&mut admin)
        .await;
    let _ = admin.close().await;
    result.map(|()| name)
}

async fn build_template_locked(
    server: &PgConnectOptions,
    admin: &mut PgConnection,
    name: &str,
) -> Result<(), String> {
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(name)
            .fetch_one(&mut *admin)
            .await
            .map_err(|e| e.to_string())?;
    if exists {
        return Ok(());
    }
    // Build under a temporary name and rename when complete, so a half-built template is
    // never used.
    let building = format!("booking_tmpl_build_{}", uuid::Uuid::now_v7().simple());
    execute(admin, format!("CREATE DATABASE \"{building}\"")).await?;
    if let Err(e) = migrate_database(server.clone().database(&building)).await {
        let _ = execute(
            admin,
            format!("DROP DATABASE IF EXISTS \"{building}\" WITH (FORCE)"),
        )
        .await;
        return Err(format!("migrating the template database failed: {e}"));
    }
    execute(
        admin,
        format!("ALTER DATABASE \"{building}\" RENAME TO \"{name}\""),
    )
    .await
}

/// Runs the migrations on the database of `options` through a one-connection pool.
async fn migrate_database(options: PgConnectOptions) -> Result<(), String> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .map_err(|e| e.to_string())?;
    let store = PgStore::from_pool(pool);
    let result = store.migrate().await.map_err(|e| e.to_string());
    store.close().await;
    result
}

static TEMPLATE: OnceCell<Result<String, String>> = OnceCell::const_new();

/// Boxed so that the future handed to the `OnceCell` is plainly `Send` (borrowed options
/// in a closure-returned future trip up the higher-ranked `Send` check).
fn template_once(
    server: PgConnectOptions,
) -> Pin<Box<dyn Future<Output = Result<String, String>> + Send>> {
    Box::pin(async move { build_template(&server).await })
}

/// What to do when the server cannot be used.
fn unreachable<T>(reason: &str) -> Option<T> {
    let url = crate::config::redact(&database_url());
    if postgres_required() {
        panic!(
            "PostgreSQL is required (CI or BOOKING_REQUIRE_POSTGRES is true) but the server \
             at {url} cannot be used: {reason}. Start a server or point DATABASE_URL at one."
        );
    }
    report_skipped(&format!(
        "postgres unreachable ({url}): {reason} (set BOOKING_REQUIRE_POSTGRES=1 to make \
         this a failure)"
    ));
    None
}

/// A database of its own, dropped (`WITH (FORCE)`) when this value is dropped.
pub struct TestDatabase {
    server: PgConnectOptions,
    name: String,
}

impl std::fmt::Debug for TestDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDatabase")
            .field("name", &self.name)
            .finish()
    }
}

impl TestDatabase {
    /// A fresh, migrated database; `None` when the server is unreachable and not required.
    pub async fn create() -> Option<Self> {
        Self::create_inner(true).await
    }

    /// A fresh database without any migration applied (for migration tests).
    pub async fn create_unmigrated() -> Option<Self> {
        Self::create_inner(false).await
    }

    async fn create_inner(migrated: bool) -> Option<Self> {
        let server = match server_options() {
            Ok(s) => s,
            Err(e) => return unreachable(&e),
        };
        let template = if migrated {
            match TEMPLATE.get_or_init(|| template_once(server.clone())).await {
                Ok(t) => t.clone(),
                Err(e) => return unreachable(e),
            }
        } else {
            "template1".to_owned()
        };
        let name = format!("booking_test_{}", uuid::Uuid::now_v7().simple());
        let created = async {
            let mut admin = connect(&server).await?;
            let r = execute(
                &mut admin,
                format!("CREATE DATABASE \"{name}\" TEMPLATE \"{template}\""),
            )
            .await;
            let _ = admin.close().await;
            r
        }
        .await;
        match created {
            Ok(()) => Some(Self { server, name }),
            Err(e) => unreachable(&format!("creating a test database failed: {e}")),
        }
    }

    /// A `postgres://` URL of this database: `DATABASE_URL` with the database name
    /// replaced.
    pub fn url(&self) -> String {
        let base = database_url();
        let (scheme, rest) = base
            .split_once("://")
            .unwrap_or(("postgres", base.as_str()));
        let path_start = rest.find('/').unwrap_or(rest.len());
        let query = rest[path_start..]
            .find('?')
            .map(|q| &rest[path_start + q..])
            .unwrap_or("");
        format!("{scheme}://{}/{}{query}", &rest[..path_start], self.name)
    }

    /// The database name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Connection options of this database.
    pub fn connect_options(&self) -> PgConnectOptions {
        self.server.clone().database(&self.name)
    }

    /// Runs `sql` (a query returning one `bigint`, e.g. a count) on a connection of its
    /// own, for tools that check what they wrote without depending on sqlx.
    pub async fn query_i64(&self, sql: &str) -> Result<i64, String> {
        let mut conn = connect(&self.connect_options()).await?;
        let value = sqlx::query_scalar::<_, i64>(AssertSqlSafe(sql.to_owned()))
            .fetch_one(&mut conn)
            .await
            .map_err(|e| e.to_string());
        let _ = conn.close().await;
        value
    }

    /// A store on this database with a pool of at most `max_connections`; the database is
    /// dropped when the last clone of the store is. The store decides with the `now` its
    /// callers pass ([`PgClock::Caller`](crate::PgClock)), as tests on a manual clock need;
    /// [`PgStore::with_clock`] switches it to the database's clock.
    pub async fn into_store(self, max_connections: u32) -> PgStore {
        let pool = crate::store::liveness_check(PgPoolOptions::new())
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(60))
            .connect_with(
                self.connect_options()
                    .options([("statement_timeout", "60000")]),
            )
            .await
            .unwrap_or_else(|e| panic!("connect to test database {}: {e}", self.name));
        PgStore::from_pool(pool)
            .with_clock(crate::PgClock::Caller)
            .with_attachment(Arc::new(self))
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let server = self.server.clone();
        let name = std::mem::take(&mut self.name);
        // Drop may run inside a runtime or outside one: use a thread with its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let mut admin = connect(&server).await?;
                let r = execute(
                    &mut admin,
                    format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
                )
                .await;
                let _ = admin.close().await;
                r.map_err(|e| format!("drop database {name}: {e}"))
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("warning: {e}"),
            Err(_) => eprintln!("warning: dropping a test database panicked"),
        }
    }
}

/// A store on a fresh database (see [`TestDatabase`]), or `None` when skipped.
pub async fn fresh_store(max_connections: u32) -> Option<PgStore> {
    Some(
        TestDatabase::create()
            .await?
            .into_store(max_connections)
            .await,
    )
}
