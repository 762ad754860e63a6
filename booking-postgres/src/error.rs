//! The adapter's private error and its one mapping into [`booking_core::Error`].

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use booking_core::{Entity, Error};

/// What can go wrong inside the adapter. Never shown to clients: it is mapped into the
/// core's semantic [`Error`] by `From` below, and only that mapping decides what a caller
/// sees.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PgError {
    /// The driver, the pool or the server.
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
    /// Applying migrations.
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A row that the domain types reject (a bug or a hand-edited database).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// A domain decision made inside a transaction (not found, illegal transition, ...);
    /// passed through unchanged.
    #[error(transparent)]
    Domain(#[from] Error),
}

/// SQLSTATE codes the adapter reacts to.
pub(crate) mod sqlstate {
    /// `unique_violation`.
    pub const UNIQUE_VIOLATION: &str = "23505";
    /// `foreign_key_violation`.
    pub const FOREIGN_KEY_VIOLATION: &str = "23503";
    /// `exclusion_violation`: two active bookings would overlap.
    pub const EXCLUSION_VIOLATION: &str = "23P01";
    /// `serialization_failure`: retried.
    pub const SERIALIZATION_FAILURE: &str = "40001";
    /// `deadlock_detected`: retried.
    pub const DEADLOCK_DETECTED: &str = "40P01";
    /// `query_canceled` (e.g. `statement_timeout`).
    pub const QUERY_CANCELED: &str = "57014";
    /// `lock_not_available` (e.g. `lock_timeout`).
    pub const LOCK_NOT_AVAILABLE: &str = "55P03";
    /// `read_only_sql_transaction`: connected to a standby after a fail-over.
    pub const READ_ONLY_SQL_TRANSACTION: &str = "25006";
}

impl PgError {
    /// The SQLSTATE of a database error.
    pub(crate) fn code(&self) -> Option<String> {
        match self {
            PgError::Sqlx(sqlx::Error::Database(db)) => db.code().map(|c| c.into_owned()),
            _ => None,
        }
    }

    /// The violated constraint of a database error.
    pub(crate) fn constraint(&self) -> Option<&str> {
        match self {
            PgError::Sqlx(sqlx::Error::Database(db)) => db.constraint(),
            _ => None,
        }
    }

    /// Whether this is a violation of `constraint` with SQLSTATE `code`.
    pub(crate) fn violates(&self, code: &str, constraint: &str) -> bool {
        self.code().as_deref() == Some(code) && self.constraint() == Some(constraint)
    }

    /// Whether the whole transaction may simply be run again (serialization failure,
    /// deadlock).
    pub(crate) fn is_retryable(&self) -> bool {
        matches!(
            self.code().as_deref(),
            Some(sqlstate::SERIALIZATION_FAILURE | sqlstate::DEADLOCK_DETECTED)
        )
    }

    /// A row the domain rejects.
    pub(crate) fn corrupt(what: impl std::fmt::Display) -> Self {
        PgError::Corrupt(what.to_string())
    }
}

/// The entity a unique constraint protects, by constraint name.
fn entity_of_unique(constraint: &str) -> Option<Entity> {
    Some(match constraint {
        "professionals_pkey" => Entity::Professional,
        "clients_pkey" => Entity::Client,
        "bookings_pkey" | "bookings_request_ref_key" => Entity::Booking,
        "schedules_pkey" => Entity::Schedule,
        "idempotency_keys_pkey" => Entity::IdempotencyKey,
        "webhook_subscriptions_pkey" => Entity::WebhookSubscription,
        _ => return None,
    })
}

/// The one place where adapter errors become semantic errors.
impl From<PgError> for Error {
    fn from(e: PgError) -> Self {
        match e {
            PgError::Domain(e) => e,
            PgError::Corrupt(what) => {
                tracing::error!(error = %what, "postgres: corrupt row");
                Error::Internal(format!("corrupt row: {what}"))
            }
            PgError::Migrate(m) => {
                tracing::error!(error = %m, "postgres: migration failed");
                match m {
                    sqlx::migrate::MigrateError::Execute(inner)
                    | sqlx::migrate::MigrateError::ExecuteMigration(inner, _) => {
                        Error::from(PgError::Sqlx(inner))
                    }
                    other => Error::Internal(format!("migration failed: {other}")),
                }
            }
            PgError::Sqlx(err) => map_sqlx(err),
        }
    }
}

fn map_sqlx(err: sqlx::Error) -> Error {
    use sqlx::Error as E;
    match err {
        E::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            let constraint = db.constraint().unwrap_or_default().to_owned();
            match code.as_str() {
                sqlstate::EXCLUSION_VIOLATION => Error::SlotUnavailable,
                sqlstate::UNIQUE_VIOLATION => match entity_of_unique(&constraint) {
                    Some(entity) => Error::AlreadyExists(entity),
                    None => internal("unique violation", &constraint, db.message()),
                },
                sqlstate::FOREIGN_KEY_VIOLATION
                    if constraint == "schedules_professional_id_fkey" =>
                {
                    Error::NotFound(Entity::Professional)
                }
                sqlstate::SERIALIZATION_FAILURE | sqlstate::DEADLOCK_DETECTED => {
                    tracing::warn!(code, "postgres: transaction kept conflicting, giving up");
                    Error::Unavailable("the database is busy; retry the request".into())
                }
                sqlstate::QUERY_CANCELED | sqlstate::LOCK_NOT_AVAILABLE => {
                    tracing::warn!(
                        code,
                        message = db.message(),
                        "postgres: statement cancelled"
                    );
                    Error::Unavailable("the database did not answer in time".into())
                }
                // 22008 datetime_field_overflow, 22003 numeric_value_out_of_range: a value
                // (an instant or amount from a client) beyond what the column keeps. The
                // engine refuses such values first; this is the backstop.
                "22008" | "22003" => {
                    Error::invalid("", "a value is out of the range the database can store")
                }
                sqlstate::READ_ONLY_SQL_TRANSACTION => {
                    Error::Unavailable("the database is read-only (fail-over?)".into())
                }
                // 08: connection exception, 53: insufficient resources (too many
                // connections, disk full), 57P0x: shutting down / starting up.
                c if c.starts_with("08") || c.starts_with("53") || c.starts_with("57P") => {
                    tracing::warn!(code, message = db.message(), "postgres: unavailable");
                    Error::Unavailable("the database is unavailable".into())
                }
                _ => internal(&code, &constraint, db.message()),
            }
        }
        E::PoolTimedOut => Error::Unavailable("no database connection available in time".into()),
        E::PoolClosed => Error::Unavailable("the connection pool is closed".into()),
        E::Io(io) => {
            tracing::warn!(error = %io, "postgres: i/o error");
            Error::Unavailable("the database connection failed".into())
        }
        E::Tls(tls) => {
            tracing::warn!(error = %tls, "postgres: tls error");
            Error::Unavailable("the database connection failed (tls)".into())
        }
        other => {
            tracing::error!(error = %other, "postgres: unexpected error");
            Error::Internal(format!("database error: {other}"))
        }
    }
}

fn internal(code: &str, constraint: &str, message: &str) -> Error {
    tracing::error!(
        code,
        constraint,
        message,
        "postgres: unexpected database error"
    );
    Error::Internal(format!("database error {code} {constraint}: {message}"))
}

/// How often a transaction that hit a serialization failure or a deadlock is run again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RetryPolicy {
    /// Attempts in all (at least one).
    pub attempts: u32,
    /// Back-off before the first retry; doubled each time, with jitter.
    pub base_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 5,
            base_delay: Duration::from_millis(2),
        }
    }
}

impl RetryPolicy {
    /// Sleeps before retry number `retry` (1-based): `base * 2^(retry-1)`, plus up to as much
    /// again of jitter so that the transactions that collided do not collide again.
    pub(crate) async fn backoff(&self, retry: u32) {
        let base = self
            .base_delay
            .saturating_mul(1 << retry.saturating_sub(1).min(10));
        let jitter_nanos = u64::try_from(base.as_nanos()).unwrap_or(u64::MAX).max(1);
        let random = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        tokio::time::sleep(base + Duration::from_nanos(random % jitter_nanos)).await;
    }
}

/// Runs `$op` (an expression producing a fresh future each time) until it succeeds, fails
/// with an error that is not worth retrying, or the retry policy is exhausted; maps the
/// error into [`booking_core::Error`].
macro_rules! retrying {
    ($policy:expr, $op:expr) => {{
        let policy: $crate::error::RetryPolicy = $policy;
        let mut attempt: u32 = 1;
        loop {
            match $op.await {
                Err(e) if e.is_retryable() && attempt < policy.attempts => {
                    tracing::debug!(attempt, error = %e, "postgres: retrying transaction");
                    policy.backoff(attempt).await;
                    attempt += 1;
                }
                other => break other.map_err(booking_core::Error::from),
            }
        }
    }};
}
pub(crate) use retrying;

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    /// A database error with a chosen SQLSTATE and constraint.
    #[derive(Debug)]
    struct FakeDbError {
        code: &'static str,
        constraint: Option<&'static str>,
    }

    impl std::fmt::Display for FakeDbError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "fake {}", self.code)
        }
    }

    impl std::error::Error for FakeDbError {}

    impl sqlx::error::DatabaseError for FakeDbError {
        fn message(&self) -> &str {
            "fake message"
        }
        fn code(&self) -> Option<Cow<'_, str>> {
            Some(Cow::Borrowed(self.code))
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn constraint(&self) -> Option<&str> {
            self.constraint
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            sqlx::error::ErrorKind::Other
        }
    }

    fn db(code: &'static str, constraint: Option<&'static str>) -> PgError {
        PgError::Sqlx(sqlx::Error::Database(Box::new(FakeDbError {
            code,
            constraint,
        })))
    }

    #[test]
    fn sqlstates_map_to_semantic_errors() {
        let cases: Vec<(PgError, Error)> = vec![
            (
                db("23P01", Some("bookings_no_overlap")),
                Error::SlotUnavailable,
            ),
            (
                db("23505", Some("bookings_pkey")),
                Error::AlreadyExists(Entity::Booking),
            ),
            (
                db("23505", Some("professionals_pkey")),
                Error::AlreadyExists(Entity::Professional),
            ),
            (
                db("23505", Some("clients_pkey")),
                Error::AlreadyExists(Entity::Client),
            ),
            (
                db("23503", Some("schedules_professional_id_fkey")),
                Error::NotFound(Entity::Professional),
            ),
        ];
        for (pg, expected) in cases {
            assert_eq!(Error::from(pg), expected);
        }
        for code in ["22008", "22003"] {
            assert!(
                matches!(Error::from(db(code, None)), Error::Invalid(_)),
                "{code} should be Invalid"
            );
        }
        for code in [
            "40001", "40P01", "57014", "55P03", "25006", "08006", "53300", "57P01",
        ] {
            assert!(
                matches!(Error::from(db(code, None)), Error::Unavailable(_)),
                "{code} should be Unavailable"
            );
        }
        for e in [
            PgError::Sqlx(sqlx::Error::PoolTimedOut),
            PgError::Sqlx(sqlx::Error::PoolClosed),
            PgError::Sqlx(sqlx::Error::Io(std::io::Error::other("reset"))),
        ] {
            assert!(matches!(Error::from(e), Error::Unavailable(_)));
        }
        // Anything else is Internal; an unknown unique constraint too.
        assert!(matches!(Error::from(db("42P01", None)), Error::Internal(_)));
        assert!(matches!(
            Error::from(db("23505", Some("mystery_key"))),
            Error::Internal(_)
        ));
        // Domain errors pass through unchanged.
        assert_eq!(
            Error::from(PgError::Domain(Error::NotFound(Entity::Booking))),
            Error::NotFound(Entity::Booking)
        );
        assert!(db("40P01", None).is_retryable() && db("40001", None).is_retryable());
        assert!(!db("23P01", None).is_retryable());
    }

    fn policy() -> RetryPolicy {
        RetryPolicy {
            attempts: 5,
            base_delay: Duration::from_micros(10),
        }
    }

    #[tokio::test]
    async fn serialization_failures_and_deadlocks_are_retried_then_unavailable() {
        // Fails twice, then succeeds: the caller sees only the success.
        let calls = AtomicU32::new(0);
        let op = || async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 => Err(db("40001", None)),
                1 => Err(db("40P01", None)),
                n => Ok(n),
            }
        };
        let r: Result<u32, Error> = retrying!(policy(), op());
        assert_eq!(r, Ok(2));
        assert_eq!(calls.load(Ordering::SeqCst), 3);

        // Always deadlocking: bounded attempts, then Unavailable.
        let calls = AtomicU32::new(0);
        let op = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(db("40P01", None))
        };
        let r = retrying!(policy(), op());
        assert!(matches!(r, Err(Error::Unavailable(_))), "{r:?}");
        assert_eq!(calls.load(Ordering::SeqCst), 5);

        // Other errors are not retried.
        let calls = AtomicU32::new(0);
        let op = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(db("23P01", None))
        };
        assert_eq!(retrying!(policy(), op()), Err(Error::SlotUnavailable));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
