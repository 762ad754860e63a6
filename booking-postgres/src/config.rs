//! Connection settings.

use std::fmt;
use std::time::Duration;

/// How to reach PostgreSQL and how big the pool is.
///
/// ```
/// use booking_postgres::PgConfig;
/// let config = PgConfig::from_url("postgres://app:secret@db:5432/booking");
/// assert_eq!(config.max_connections, 10);
/// assert_eq!(config.clock, booking_postgres::PgClock::Database);
/// // The password never shows up in logs.
/// assert!(!format!("{config:?}").contains("secret"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct PgConfig {
    /// A `postgres://` URL (user, password, host, port, database and libpq-style query
    /// parameters such as `sslmode`).
    pub url: String,
    /// Upper bound of the pool.
    pub max_connections: u32,
    /// Connections kept open while idle.
    pub min_connections: u32,
    /// How long a call waits for a free connection before it fails with
    /// [`booking_core::Error::Unavailable`].
    pub acquire_timeout: Duration,
    /// Server-side `statement_timeout` of every connection (`None`: the server default).
    /// A statement cancelled by it fails with [`booking_core::Error::Unavailable`].
    pub statement_timeout: Option<Duration>,
    /// Server-side `lock_timeout` of every connection (`None`: the server default, no
    /// limit): how long a statement waits for a lock, e.g. the lock an insert takes on its
    /// professional, before it fails with [`booking_core::Error::Unavailable`]. Keep it
    /// below `statement_timeout`, so that a caller queued behind a stuck holder learns
    /// it quickly and the pool's connections are not all spent waiting.
    pub lock_timeout: Option<Duration>,
    /// Server-side `idle_in_transaction_session_timeout` of every connection (`None`: the
    /// server default, no limit): a session that sits inside a transaction without sending
    /// a statement for this long (its client froze, crashed or lost the network) is
    /// terminated by the server, which releases its locks. The adapter's transactions
    /// never pause between statements, so this only ever cuts a stuck client.
    pub idle_in_transaction_timeout: Option<Duration>,
    /// TCP keepalive of every connection, set on the server's side of the socket
    /// (`tcp_keepalives_idle` = this, `tcp_keepalives_interval` = a third of it,
    /// `tcp_keepalives_count` = 3, `tcp_user_timeout` = this): the server notices a client
    /// host that vanished (no FIN: power loss, partition) after about twice this and ends
    /// its session. `None`: the server's defaults (usually the kernel's two hours). sqlx
    /// sets no keepalive on the client's side; its calls are bounded by the server's
    /// timeouts and the caller's. Only TCP connections have keepalives (not Unix sockets).
    pub tcp_keepalive: Option<Duration>,
    /// Whose clock decides hold expiry and stamps the times the store writes
    /// (default [`PgClock::Database`]).
    pub clock: PgClock,
}

/// Whose clock a [`PgStore`](crate::PgStore) uses for the decisions that compare with a
/// hold's deadline (`hold_expires_at`) and for the times it writes on bookings.
///
/// Every storage operation of booking-core receives `now` from the engine's
/// [`Clock`](booking_core::Clock): the wall clock of the application server that handles the
/// request. Several servers on one database can disagree about it (clock skew), and then
/// about whether a hold has run out: one server could release a slot another still shows
/// as held. With [`PgClock::Database`] there is one clock, the database server's, and the
/// servers cannot disagree.
///
/// In `Database` mode the store ignores the `now` argument for:
///
/// * every comparison with `hold_expires_at`: the release of holds that ran out in the way
///   of an insert, confirm, reschedule or payment; the expiry sweep; the effective status
///   of a transition, a reschedule or a payment; the status filter of lists; blocked
///   ranges and the availability snapshot; payment obligations;
/// * the times it writes on bookings and their domain events: `created_at` and
///   `updated_at` are the database's time, and a new hold's `hold_expires_at` keeps the
///   length the engine gave it (`hold_expires_at - created_at`) from the database's time.
///   Returned bookings are read back as stored, so callers see the database's times.
///   Exception: a write that stores an idempotent request's answer in the same statement
///   (`insert_booking_answered`, `attach_payment` with an answer) keeps the engine's
///   stamps, because the engine rendered that answer from them and a replay must show
///   what the first response showed. Its hold deadline is then the engine's too, but it
///   is still *compared* on the database's clock, so servers still agree on it.
///
/// The database's time is `now()`: the start of the transaction, which for the
/// one-statement operations is the start of that statement, and one fixed instant for
/// every statement of a multi-statement transaction. Where Rust code decides after
/// reading a row (the status machine, payment changes) it reads `now()` in the statement
/// that reads the row, so no round trip is added.
///
/// `settle_payment` uses the database's time for its whole transaction, including the
/// inbox event's `processed_at`. The rest stays on the caller's clock in both modes:
/// idempotency records (`locked_until`, `expires_at`) and the webhook inbox's own
/// operations (leases, due times, dead letters), whose decisions booking-core's pure
/// functions make from a `now` given before any row is read and whose deadlines are
/// written from that same clock; professionals' `updated_at`; and the ids of domain events
/// (UUID v7 from the engine's time; the outbox's order is its sequence, not the ids).
///
/// [`PgClock::Caller`] uses the `now` argument everywhere, as the memory adapter does. It
/// is what tests with a manual clock need (the conformance suite runs in it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum PgClock {
    /// The database server's clock decides hold expiry and stamps booking times.
    #[default]
    Database,
    /// The `now` argument of each call (the engine's [`Clock`](booking_core::Clock)).
    Caller,
}

impl PgClock {
    /// The instant to bind where SQL reads `COALESCE($n, now())`: `None` (the database's
    /// time) in `Database` mode, `now` in `Caller` mode.
    pub(crate) fn bind(
        self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        match self {
            PgClock::Database => None,
            PgClock::Caller => Some(now),
        }
    }

    /// The instant to decide with in Rust: `db_now` (read in the statement that read the
    /// row) in `Database` mode, `now` in `Caller` mode.
    pub(crate) fn pick(
        self,
        now: chrono::DateTime<chrono::Utc>,
        db_now: chrono::DateTime<chrono::Utc>,
    ) -> chrono::DateTime<chrono::Utc> {
        match self {
            PgClock::Database => db_now,
            PgClock::Caller => now,
        }
    }
}

impl PgConfig {
    /// Defaults for `url`: at most 10 connections, none kept idle, 5 s to acquire one,
    /// statements cancelled after 5 s, lock waits after 2 s, sessions idle inside a
    /// transaction terminated after 5 s, TCP keepalive after 30 s of silence, the
    /// database's clock ([`PgClock::Database`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = booking_postgres::PgConfig::from_url("postgres://db/booking");
    /// assert!(config.lock_timeout < config.statement_timeout);
    /// assert_eq!(config.idle_in_transaction_timeout, Some(Duration::from_secs(5)));
    /// assert_eq!(config.tcp_keepalive, Some(Duration::from_secs(30)));
    /// ```
    pub fn from_url(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_connections: 10,
            min_connections: 0,
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Some(Duration::from_secs(5)),
            lock_timeout: Some(Duration::from_secs(2)),
            idle_in_transaction_timeout: Some(Duration::from_secs(5)),
            tcp_keepalive: Some(Duration::from_secs(30)),
            clock: PgClock::Database,
        }
    }

    /// The server settings every connection starts with (`options` of the startup
    /// message), in the units PostgreSQL reads without a suffix (milliseconds, seconds for
    /// the keepalive idle and interval).
    pub(crate) fn session_settings(&self) -> Vec<(&'static str, String)> {
        // Unit-less values are milliseconds; 0 would mean "no timeout", so round up.
        let ms = |d: Duration| d.as_millis().max(1).to_string();
        let secs = |d: Duration| d.as_secs().max(1).to_string();
        let mut settings = Vec::new();
        if let Some(t) = self.statement_timeout {
            settings.push(("statement_timeout", ms(t)));
        }
        if let Some(t) = self.lock_timeout {
            settings.push(("lock_timeout", ms(t)));
        }
        if let Some(t) = self.idle_in_transaction_timeout {
            settings.push(("idle_in_transaction_session_timeout", ms(t)));
        }
        if let Some(t) = self.tcp_keepalive {
            settings.push(("tcp_keepalives_idle", secs(t)));
            settings.push(("tcp_keepalives_interval", secs(t / 3)));
            settings.push(("tcp_keepalives_count", "3".to_owned()));
            settings.push(("tcp_user_timeout", ms(t)));
        }
        settings
    }

    /// The URL with any password replaced by `***`, for logs.
    pub fn redacted_url(&self) -> String {
        redact(&self.url)
    }
}

impl fmt::Debug for PgConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgConfig")
            .field("url", &self.redacted_url())
            .field("max_connections", &self.max_connections)
            .field("min_connections", &self.min_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .field("lock_timeout", &self.lock_timeout)
            .field(
                "idle_in_transaction_timeout",
                &self.idle_in_transaction_timeout,
            )
            .field("tcp_keepalive", &self.tcp_keepalive)
            .field("clock", &self.clock)
            .finish()
    }
}

/// Replaces the password of `scheme://user:password@host/..` with `***`.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction() {
        assert_eq!(
            redact("postgres://u:p@h:5432/db?sslmode=require"),
            "postgres://u:***@h:5432/db?sslmode=require"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("postgres://h/db"), "postgres://h/db");
        assert_eq!(redact("not a url"), "not a url");
    }

    #[test]
    fn session_settings() {
        let config = PgConfig {
            statement_timeout: Some(Duration::from_millis(1500)),
            lock_timeout: Some(Duration::from_micros(10)),
            idle_in_transaction_timeout: Some(Duration::from_secs(3)),
            tcp_keepalive: Some(Duration::from_secs(9)),
            ..PgConfig::from_url("postgres://h/db")
        };
        let owned = config.session_settings();
        let settings: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(
            settings,
            [
                ("statement_timeout", "1500"),
                ("lock_timeout", "1"),
                ("idle_in_transaction_session_timeout", "3000"),
                ("tcp_keepalives_idle", "9"),
                ("tcp_keepalives_interval", "3"),
                ("tcp_keepalives_count", "3"),
                ("tcp_user_timeout", "9000"),
            ]
        );
        let none = PgConfig {
            statement_timeout: None,
            lock_timeout: None,
            idle_in_transaction_timeout: None,
            tcp_keepalive: None,
            ..config
        };
        assert!(none.session_settings().is_empty());
    }
}
