//! Configuration from the environment (every variable and its default: `docs/configuration.md`).
//!
//! Besides `BOOKING_LISTEN`, `DATABASE_URL`, the admin token and the two TTLs:
//!
//! | variable | meaning |
//! |---|---|
//! | `BOOKING_TOKEN_SECRET` | key (at least 32 characters) the API tokens of new clients and professionals are derived with, so that a replay of the create returns the same token while only its hash is stored (see [`crate::secrets`]); the same on every instance |
//!
//! Unset, each process draws a random token secret at start-up: fine for the in-memory
//! store (which is gone after a restart anyway), but with PostgreSQL a replay or a retry of
//! `POST /v1/clients` / `/v1/professionals` served after a restart or by another instance
//! answers 409 `api_token_unrecoverable`; the server warns at start-up. Rotating the secret
//! has the same effect on creates made before the rotation whose idempotency keys are still
//! live (24 h by default); tokens already handed out keep working, since only their hashes
//! are checked.
//!
//! Payments and webhooks (with `STRIPE_SECRET_KEY`, `STRIPE_WEBHOOK_SECRETS` and
//! `STRIPE_API_BASE`):
//!
//! | variable | meaning |
//! |---|---|
//! | `STRIPE_TIMEOUT_MS` | bound of every call to Stripe in milliseconds, 100 to 60000 (default 10000) |
//! | `BOOKING_WEBHOOK_MAX_ATTEMPTS` | attempts at processing an inbound event before it is dead-lettered, 1 to 100 (default 20) |
//! | `BOOKING_WEBHOOK_RETRY_BASE_MS` | the first retry's backoff ceiling in milliseconds, doubled per attempt up to 15 minutes, with full jitter (default 2000) |
//! | `BOOKING_WEBHOOK_RETENTION_DAYS` | how long processed event ids are kept for deduplication before they are pruned, 1 to 365 (default 30) |
//!
//! | `BOOKING_WEBHOOK_ALLOW_PRIVATE` | `true`: outbound webhook subscriptions may target loopback and private addresses (tests, local development); anything else refuses them (422) |
//! | `BOOKING_OUTBOX_RETENTION_DAYS` | how long domain events stay in the outbox once every enabled consumer (the NATS relay with `NATS_URL`) delivered them, 1 to 365 (default 7) |
//!
//! `STRIPE_SECRET_KEY` needs `STRIPE_WEBHOOK_SECRETS` (payments are confirmed by webhooks).
//!
//! Two tune the PostgreSQL pool (they are ignored with the in-memory store):
//!
//! | variable | meaning |
//! |---|---|
//! | `BOOKING_DB_MAX_CONNECTIONS` | upper bound of the connection pool, 1 to 1000 (default [`DEFAULT_DB_MAX_CONNECTIONS`]) |
//! | `BOOKING_DB_STATEMENT_TIMEOUT_MS` | server-side `statement_timeout` of every connection in milliseconds; `0` turns it off (default 5000) |
//!
//! The pool default was picked by measurement (`reference-server/scripts/load.sh` at 64
//! concurrent connections on a 2-core machine with PostgreSQL on the same host): a pool
//! much larger than the database's cores only adds contention. Keep the sum over all server
//! processes below the database's `max_connections`.
//!
//! ## Where each setting goes
//!
//! [`Config`] keeps the settings flat (one field per variable); the methods below group
//! them by the part of the server that uses them:
//!
//! | user | built by | settings |
//! |---|---|---|
//! | the listener and the router | [`crate::startup`] | `listen`, `request_timeout` |
//! | authentication | [`crate::AppState`] | `admin_token`, `token_secret` |
//! | the PostgreSQL store | [`Config::database`] -> [`DatabaseConfig::pg_options`], [`DatabaseConfig::replica_options`] | `database_url`, `database_read_url`, `db_max_connections`, `db_statement_timeout`, `db_lock_timeout`, `db_idle_in_transaction_timeout`, `db_tcp_keepalive`, `db_acquire_timeout` |
//! | the engine | [`Config::engine_config`], [`Config::payment_hold_ttl`] | `idempotency_ttl`, `idempotency_lease`, `hold_ttl` |
//! | payments and the Stripe webhook | [`StripeConfig`], [`Config::webhook_signing_secrets`], [`WebhookConfig::retry_policy`] | `stripe`, `webhook_secrets`, `webhook` |
//! | domain events out | [`Config::outbox_consumers`], [`Config::outbox_retention_period`], [`OutboundConfig`] | `nats_url`, `outbox_retention`, `outbound` |
//! | the search cache | [`Config::search_cache`] | `redis_url`, `redis_prefix`, `search_cache_ttl` |
//! | the background workers | [`crate::workers::spawn`] | `sweep_interval` |

mod env;

use std::fmt;
use std::time::Duration;

use booking_core::EngineConfig;
use booking_core::events::Consumer;
use booking_core::idempotency::IdempotencyPolicy;

/// Server settings, one field per environment variable (see the module docs for which
/// part of the server uses each).
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    // ---- the listener and the router -------------------------------------------------
    /// `address:port` to bind (`BOOKING_LISTEN`, default `127.0.0.1:8080`; port 0 picks a
    /// free one).
    pub listen: String,
    /// Requests taking longer are answered 408 (default 30 s).
    pub request_timeout: Duration,

    // ---- authentication --------------------------------------------------------------
    /// The admin bearer token (`BOOKING_ADMIN_TOKEN`); `None`: generate one at start-up.
    pub admin_token: Option<String>,
    /// The key API tokens are derived with (`BOOKING_TOKEN_SECRET`, at least 32
    /// characters); `None`: a random one per process (see the module docs).
    pub token_secret: Option<String>,

    // ---- the store ([`Config::database`]) ---------------------------------------------
    /// PostgreSQL URL (`DATABASE_URL`); `None` uses the in-memory store.
    pub database_url: Option<String>,
    /// `DATABASE_READ_URL`: a read replica of `DATABASE_URL` that serves searches (the
    /// primary answers when it fails); ignored without `DATABASE_URL`.
    pub database_read_url: Option<String>,
    /// Upper bound of the PostgreSQL pool (`BOOKING_DB_MAX_CONNECTIONS`, default
    /// [`DEFAULT_DB_MAX_CONNECTIONS`]).
    pub db_max_connections: u32,
    /// Server-side `statement_timeout` of every PostgreSQL connection
    /// (`BOOKING_DB_STATEMENT_TIMEOUT_MS`, default 5 s; `None`: the server's default).
    pub db_statement_timeout: Option<Duration>,
    /// Server-side `lock_timeout` (`BOOKING_DB_LOCK_TIMEOUT_MS`, default 2 s, below the
    /// statement timeout; `None`: off): a booking queued behind a stuck holder of its
    /// professional's lock answers 503 instead of waiting.
    pub db_lock_timeout: Option<Duration>,
    /// Server-side `idle_in_transaction_session_timeout`
    /// (`BOOKING_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS`, default 5 s; `None`: off): a session
    /// frozen inside a transaction is cut and its locks released.
    pub db_idle_in_transaction_timeout: Option<Duration>,
    /// TCP keepalive idle time of the database's side of each connection
    /// (`BOOKING_DB_TCP_KEEPALIVE_SECS`, default 30 s; `None`: the server's default).
    pub db_tcp_keepalive: Option<Duration>,
    /// How long a request waits for a pool connection before it answers 503
    /// (`BOOKING_DB_ACQUIRE_TIMEOUT_MS`, default 5 s).
    pub db_acquire_timeout: Duration,

    // ---- the engine ([`Config::engine_config`]) ---------------------------------------
    /// How long idempotency keys are kept (`BOOKING_IDEMPOTENCY_TTL_SECONDS`, default 86400).
    pub idempotency_ttl: Duration,
    /// How long an attempt owns its idempotency key before a retry may take it over
    /// (`BOOKING_IDEMPOTENCY_LEASE_SECONDS`, default 60). Only a crashed process leaves a
    /// key to its lease: a panic, a timeout or a client disconnect frees it at once.
    pub idempotency_lease: Duration,
    /// How long a `pending_payment` hold blocks its slot (`BOOKING_HOLD_TTL_SECONDS`,
    /// default 900). Only used once payments are configured.
    pub hold_ttl: Duration,

    // ---- payments and the Stripe webhook ----------------------------------------------
    /// Stripe, when `STRIPE_SECRET_KEY` is set: bookings are then `pending_payment` holds
    /// paid through a PaymentIntent. `None`: bookings are confirmed at once.
    pub stripe: Option<StripeConfig>,
    /// `STRIPE_WEBHOOK_SECRETS`: the secrets Stripe signs webhook deliveries with (several
    /// while one is rotated). Empty: every delivery is refused (400 `invalid_signature`).
    pub webhook_secrets: Vec<String>,
    /// How inbound webhook events are retried and kept.
    pub webhook: WebhookConfig,

    // ---- domain events out -----------------------------------------------------------
    /// `NATS_URL`: the outbox relay publishes domain events to NATS JetStream.
    pub nats_url: Option<String>,
    /// `BOOKING_OUTBOX_RETENTION_DAYS`: how long delivered domain events stay in the outbox.
    pub outbox_retention: Duration,
    /// Outbound webhook deliveries.
    pub outbound: OutboundConfig,

    // ---- the search cache ([`Config::search_cache`]) ----------------------------------
    /// `REDIS_URL`: keep search pages in this Redis (shared by all instances); `None`: an
    /// in-process cache.
    pub redis_url: Option<String>,
    /// `BOOKING_REDIS_PREFIX`: the prefix of every Redis key (default `booking:`).
    pub redis_prefix: String,
    /// `BOOKING_SEARCH_CACHE_TTL_SECONDS`: how long a cached search page lives (default 60;
    /// changes invalidate at once, the TTL only bounds memory and a Redis split). Zero turns
    /// the cache off; the environment rejects 0, so only a hand-built `Config` (a benchmark
    /// of the uncached path) can ask for that.
    pub search_cache_ttl: Duration,

    // ---- the background workers ------------------------------------------------------
    /// How often the background workers run (default 5 s).
    pub sweep_interval: Duration,
}

/// The default of [`Config::db_max_connections`].
pub const DEFAULT_DB_MAX_CONNECTIONS: u32 = 16;

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |v: &Option<String>| v.as_ref().map(|_| "<set>");
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("request_timeout", &self.request_timeout)
            .field("admin_token", &set(&self.admin_token))
            .field("token_secret", &set(&self.token_secret))
            .field("database_url", &set(&self.database_url))
            .field("database_read_url", &set(&self.database_read_url))
            .field("db_max_connections", &self.db_max_connections)
            .field("db_statement_timeout", &self.db_statement_timeout)
            .field("idempotency_ttl", &self.idempotency_ttl)
            .field("hold_ttl", &self.hold_ttl)
            .field("stripe", &self.stripe)
            .field("webhook_secrets", &self.webhook_secrets.len())
            .field("webhook", &self.webhook)
            .field("nats_url", &self.nats_url)
            .field("outbox_retention", &self.outbox_retention)
            .field("outbound", &self.outbound)
            .field("redis_url", &set(&self.redis_url))
            .field("redis_prefix", &self.redis_prefix)
            .field("search_cache_ttl", &self.search_cache_ttl)
            .field("sweep_interval", &self.sweep_interval)
            .finish()
    }
}

impl Default for Config {
    /// The documented defaults: memory store on `127.0.0.1:8080`, generated admin token.
    fn default() -> Self {
        // The PostgreSQL adapter's own defaults.
        let pg = booking_postgres::PgConfig::from_url(String::new());
        Self {
            listen: "127.0.0.1:8080".to_owned(),
            request_timeout: Duration::from_secs(30),
            admin_token: None,
            token_secret: None,
            database_url: None,
            database_read_url: None,
            db_max_connections: DEFAULT_DB_MAX_CONNECTIONS,
            db_statement_timeout: pg.statement_timeout,
            db_lock_timeout: pg.lock_timeout,
            db_idle_in_transaction_timeout: pg.idle_in_transaction_timeout,
            db_tcp_keepalive: pg.tcp_keepalive,
            db_acquire_timeout: pg.acquire_timeout,
            idempotency_ttl: Duration::from_secs(86_400),
            idempotency_lease: IdempotencyPolicy::default()
                .lease
                .to_std()
                .unwrap_or(Duration::from_secs(60)),
            hold_ttl: Duration::from_secs(900),
            stripe: None,
            webhook_secrets: Vec::new(),
            webhook: WebhookConfig::default(),
            nats_url: None,
            outbox_retention: Duration::from_secs(7 * 86_400),
            outbound: OutboundConfig::default(),
            redis_url: None,
            redis_prefix: "booking:".to_owned(),
            search_cache_ttl: Duration::from_secs(60),
            sweep_interval: Duration::from_secs(5),
        }
    }
}

/// A `std` duration as a `chrono` one, or `fallback` if it does not fit.
fn chrono_or(d: Duration, fallback: chrono::Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(fallback)
}

/// A `std` duration as a `chrono` one in whole milliseconds, saturating.
fn chrono_ms(d: Duration) -> chrono::Duration {
    chrono::Duration::milliseconds(d.as_millis().try_into().unwrap_or(i64::MAX))
}

impl Config {
    /// The store's settings: `Some` with `DATABASE_URL` (PostgreSQL), `None` for the
    /// in-memory store.
    pub fn database(&self) -> Option<DatabaseConfig> {
        let url = self.database_url.clone()?;
        Some(DatabaseConfig {
            url,
            read_url: self.database_read_url.clone(),
            max_connections: self.db_max_connections,
            statement_timeout: self.db_statement_timeout,
            lock_timeout: self.db_lock_timeout,
            idle_in_transaction_timeout: self.db_idle_in_transaction_timeout,
            tcp_keepalive: self.db_tcp_keepalive,
            acquire_timeout: self.db_acquire_timeout,
        })
    }

    /// The engine's settings: idempotency keys live `idempotency_ttl` and an attempt owns
    /// its key for `idempotency_lease`; holds are set by [`Config::payment_hold_ttl`] once
    /// payments are on.
    pub fn engine_config(&self) -> EngineConfig {
        EngineConfig {
            idempotency: IdempotencyPolicy {
                ttl: chrono_or(self.idempotency_ttl, chrono::Duration::hours(24)),
                lease: chrono_or(self.idempotency_lease, chrono::Duration::seconds(60)),
            },
            ..EngineConfig::default()
        }
    }

    /// How long a payment hold blocks its slot (`hold_ttl`), for
    /// [`booking_core::BookingEngine::with_payments`].
    pub fn payment_hold_ttl(&self) -> chrono::Duration {
        chrono_or(self.hold_ttl, chrono::Duration::minutes(15))
    }

    /// The secrets inbound Stripe webhooks are verified with (blank entries were dropped
    /// when the environment was read).
    pub fn webhook_signing_secrets(&self) -> Vec<booking_core::WebhookSecret> {
        self.webhook_secrets
            .iter()
            .filter_map(|s| booking_core::WebhookSecret::new(s.clone()).ok())
            .collect()
    }

    /// The outbox consumers this server runs: the webhook fan-out always (see
    /// [`crate::Application::run_until`]), the NATS relay with `NATS_URL`. An event is
    /// pruned only once all of them delivered it.
    pub fn outbox_consumers(&self) -> Vec<Consumer> {
        if self.nats_url.is_some() {
            vec![Consumer::Nats, Consumer::Webhooks]
        } else {
            vec![Consumer::Webhooks]
        }
    }

    /// How long delivered domain events stay in the outbox (`outbox_retention`).
    pub fn outbox_retention_period(&self) -> chrono::Duration {
        chrono_or(self.outbox_retention, chrono::Duration::days(7))
    }

    /// The search cache these settings ask for: Redis with `REDIS_URL`, in-process
    /// otherwise, none with a zero TTL (only a hand-built `Config` has one; benchmarks of
    /// the uncached path).
    pub fn search_cache(&self) -> crate::search_cache::SearchCache {
        use crate::search_cache::SearchCache;
        let ttl = self.search_cache_ttl;
        if ttl.is_zero() {
            return SearchCache::disabled();
        }
        if let Some(url) = &self.redis_url {
            match SearchCache::redis(url, &self.redis_prefix, ttl) {
                Ok(cache) => return cache,
                // The environment checked the URL; this is only a belt for hand-built configs.
                Err(e) => tracing::warn!(error = %e, "search cache: using the in-process cache"),
            }
        }
        SearchCache::in_process(ttl)
    }
}

/// The PostgreSQL store: the primary's pool and an optional read replica
/// (see [`Config::database`]).
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseConfig {
    /// `DATABASE_URL`.
    pub url: String,
    /// `DATABASE_READ_URL`.
    pub read_url: Option<String>,
    /// `BOOKING_DB_MAX_CONNECTIONS`: the bound of each pool.
    pub max_connections: u32,
    /// `BOOKING_DB_STATEMENT_TIMEOUT_MS`.
    pub statement_timeout: Option<Duration>,
    /// `BOOKING_DB_LOCK_TIMEOUT_MS`.
    pub lock_timeout: Option<Duration>,
    /// `BOOKING_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS`.
    pub idle_in_transaction_timeout: Option<Duration>,
    /// `BOOKING_DB_TCP_KEEPALIVE_SECS`.
    pub tcp_keepalive: Option<Duration>,
    /// `BOOKING_DB_ACQUIRE_TIMEOUT_MS`.
    pub acquire_timeout: Duration,
}

impl fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &"<set>")
            .field("read_url", &self.read_url.as_ref().map(|_| "<set>"))
            .field("max_connections", &self.max_connections)
            .field("statement_timeout", &self.statement_timeout)
            .field("lock_timeout", &self.lock_timeout)
            .field(
                "idle_in_transaction_timeout",
                &self.idle_in_transaction_timeout,
            )
            .field("tcp_keepalive", &self.tcp_keepalive)
            .field("acquire_timeout", &self.acquire_timeout)
            .finish()
    }
}

impl DatabaseConfig {
    /// How long a search waits for a connection of a replica that is down before the
    /// primary answers it.
    pub const REPLICA_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(1);

    /// The primary's pool: [`booking_postgres::PgConfig::from_url`]'s defaults with this
    /// pool bound, timeouts and keepalive.
    pub fn pg_options(&self) -> booking_postgres::PgConfig {
        booking_postgres::PgConfig {
            max_connections: self.max_connections,
            statement_timeout: self.statement_timeout,
            lock_timeout: self.lock_timeout,
            idle_in_transaction_timeout: self.idle_in_transaction_timeout,
            tcp_keepalive: self.tcp_keepalive,
            acquire_timeout: self.acquire_timeout,
            ..booking_postgres::PgConfig::from_url(self.url.clone())
        }
    }

    /// The read replica's pool, if there is one: the primary's settings on its URL, with
    /// [`DatabaseConfig::REPLICA_ACQUIRE_TIMEOUT`].
    pub fn replica_options(&self) -> Option<booking_postgres::PgConfig> {
        let url = self.read_url.clone()?;
        Some(booking_postgres::PgConfig {
            url,
            acquire_timeout: Self::REPLICA_ACQUIRE_TIMEOUT,
            ..self.pg_options()
        })
    }
}

/// Stripe, when payments are on.
#[derive(Clone, PartialEq, Eq)]
pub struct StripeConfig {
    /// `STRIPE_SECRET_KEY`.
    pub secret_key: String,
    /// `STRIPE_API_BASE`: another base URL for Stripe's API (a local fake in tests).
    pub api_base: Option<String>,
    /// `STRIPE_TIMEOUT_MS`: the bound of every call.
    pub timeout: Duration,
}

impl fmt::Debug for StripeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripeConfig")
            .field("secret_key", &"<set>")
            .field("api_base", &self.api_base)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Processing of inbound webhook events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebhookConfig {
    /// `BOOKING_WEBHOOK_MAX_ATTEMPTS`.
    pub max_attempts: u32,
    /// `BOOKING_WEBHOOK_RETRY_BASE_MS`.
    pub retry_base: Duration,
    /// `BOOKING_WEBHOOK_RETENTION_DAYS`.
    pub retention: Duration,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            max_attempts: 20,
            retry_base: Duration::from_secs(2),
            retention: Duration::from_secs(30 * 86_400),
        }
    }
}

impl WebhookConfig {
    /// The retry policy these settings describe.
    pub fn retry_policy(&self) -> booking_core::RetryPolicy {
        booking_core::RetryPolicy {
            base: chrono_ms(self.retry_base),
            max_attempts: self.max_attempts,
            retention: chrono_ms(self.retention),
            ..booking_core::RetryPolicy::default()
        }
    }
}

/// Outbound webhook deliveries (see [`crate::outbound`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboundConfig {
    /// `BOOKING_WEBHOOK_ALLOW_PRIVATE=true`: loopback and private targets are allowed.
    pub allow_private: bool,
    /// How long one attempt may take before it counts as failed (10 s).
    pub timeout: Duration,
    /// The first retry's backoff ceiling, doubled per failure (10 s).
    pub retry_base: Duration,
    /// The largest backoff ceiling (1 h).
    pub retry_cap: Duration,
    /// How long a delivery is retried after its first attempt (24 h).
    pub give_up_after: Duration,
    /// How often idle workers look for new events and due deliveries (200 ms).
    pub poll: Duration,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        Self {
            allow_private: false,
            timeout: Duration::from_secs(10),
            retry_base: Duration::from_secs(10),
            retry_cap: Duration::from_secs(3600),
            give_up_after: Duration::from_secs(86_400),
            poll: Duration::from_millis(200),
        }
    }
}

impl OutboundConfig {
    /// The retry policy of deliveries: [`booking_core::webhook::outbound::delivery_policy`]
    /// with these backoff settings.
    pub fn retry_policy(&self) -> booking_core::RetryPolicy {
        booking_core::RetryPolicy {
            base: chrono_ms(self.retry_base),
            cap: chrono_ms(self.retry_cap),
            give_up_after: Some(chrono_ms(self.give_up_after)),
            ..booking_core::webhook::outbound::delivery_policy()
        }
    }
}

/// A configuration value that cannot be used; the message names the variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}
