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

use std::fmt;
use std::time::Duration;

/// Server settings.
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    /// `address:port` to bind (`BOOKING_LISTEN`, default `127.0.0.1:8080`; port 0 picks a
    /// free one).
    pub listen: String,
    /// PostgreSQL URL (`DATABASE_URL`); `None` uses the in-memory store.
    pub database_url: Option<String>,
    /// The admin bearer token (`BOOKING_ADMIN_TOKEN`); `None`: generate one at start-up.
    pub admin_token: Option<String>,
    /// The key API tokens are derived with (`BOOKING_TOKEN_SECRET`, at least 32
    /// characters); `None`: a random one per process (see the module docs).
    pub token_secret: Option<String>,
    /// How long a `pending_payment` hold blocks its slot (`BOOKING_HOLD_TTL_SECONDS`,
    /// default 900). Only used once payments are configured.
    pub hold_ttl: Duration,
    /// How long idempotency keys are kept (`BOOKING_IDEMPOTENCY_TTL_SECONDS`, default 86400).
    pub idempotency_ttl: Duration,
    /// Stripe, when `STRIPE_SECRET_KEY` is set: bookings are then `pending_payment` holds
    /// paid through a PaymentIntent. `None`: bookings are confirmed at once.
    pub stripe: Option<StripeConfig>,
    /// `STRIPE_WEBHOOK_SECRETS`: the secrets Stripe signs webhook deliveries with (several
    /// while one is rotated). Empty: every delivery is refused (400 `invalid_signature`).
    pub webhook_secrets: Vec<String>,
    /// How inbound webhook events are retried and kept.
    pub webhook: WebhookConfig,
    /// `NATS_URL`: the outbox relay publishes domain events to NATS JetStream.
    pub nats_url: Option<String>,
    /// `BOOKING_OUTBOX_RETENTION_DAYS`: how long delivered domain events stay in the outbox.
    pub outbox_retention: Duration,
    /// Outbound webhook deliveries.
    pub outbound: OutboundConfig,
    /// Requests taking longer are answered 408 (default 30 s).
    pub request_timeout: Duration,
    /// How often the background workers run (default 5 s).
    pub sweep_interval: Duration,
    /// Upper bound of the PostgreSQL pool (`BOOKING_DB_MAX_CONNECTIONS`, default
    /// [`DEFAULT_DB_MAX_CONNECTIONS`]).
    pub db_max_connections: u32,
    /// Server-side `statement_timeout` of every PostgreSQL connection
    /// (`BOOKING_DB_STATEMENT_TIMEOUT_MS`, default 5 s; `None`: the server's default).
    pub db_statement_timeout: Option<Duration>,
    /// `DATABASE_READ_URL`: a read replica of `DATABASE_URL` that serves searches (the
    /// primary answers when it fails); ignored without `DATABASE_URL`.
    pub database_read_url: Option<String>,
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
}

/// The default of [`Config::db_max_connections`].
pub const DEFAULT_DB_MAX_CONNECTIONS: u32 = 16;

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("database_url", &self.database_url.as_ref().map(|_| "<set>"))
            .field("admin_token", &self.admin_token.as_ref().map(|_| "<set>"))
            .field("token_secret", &self.token_secret.as_ref().map(|_| "<set>"))
            .field("hold_ttl", &self.hold_ttl)
            .field("idempotency_ttl", &self.idempotency_ttl)
            .field("stripe", &self.stripe)
            .field("webhook_secrets", &self.webhook_secrets.len())
            .field("webhook", &self.webhook)
            .field("nats_url", &self.nats_url)
            .field("outbox_retention", &self.outbox_retention)
            .field("outbound", &self.outbound)
            .field("request_timeout", &self.request_timeout)
            .field("sweep_interval", &self.sweep_interval)
            .field("db_max_connections", &self.db_max_connections)
            .field("db_statement_timeout", &self.db_statement_timeout)
            .field(
                "database_read_url",
                &self.database_read_url.as_ref().map(|_| "<set>"),
            )
            .field("redis_url", &self.redis_url.as_ref().map(|_| "<set>"))
            .field("redis_prefix", &self.redis_prefix)
            .field("search_cache_ttl", &self.search_cache_ttl)
            .finish()
    }
}

impl Default for Config {
    /// The documented defaults: memory store on `127.0.0.1:8080`, generated admin token.
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".to_owned(),
            database_url: None,
            admin_token: None,
            token_secret: None,
            hold_ttl: Duration::from_secs(900),
            idempotency_ttl: Duration::from_secs(86_400),
            stripe: None,
            webhook_secrets: Vec::new(),
            webhook: WebhookConfig::default(),
            nats_url: None,
            outbox_retention: Duration::from_secs(7 * 86_400),
            outbound: OutboundConfig::default(),
            request_timeout: Duration::from_secs(30),
            sweep_interval: Duration::from_secs(5),
            db_max_connections: DEFAULT_DB_MAX_CONNECTIONS,
            db_statement_timeout: Some(Duration::from_secs(5)),
            database_read_url: None,
            redis_url: None,
            redis_prefix: "booking:".to_owned(),
            search_cache_ttl: Duration::from_secs(60),
        }
    }
}

/// A configuration value that cannot be used.
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
        let ms = |d: Duration| {
            chrono::Duration::milliseconds(d.as_millis().try_into().unwrap_or(i64::MAX))
        };
        booking_core::RetryPolicy {
            base: ms(self.retry_base),
            max_attempts: self.max_attempts,
            retention: ms(self.retention),
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
        let ms = |d: Duration| {
            chrono::Duration::milliseconds(d.as_millis().try_into().unwrap_or(i64::MAX))
        };
        booking_core::RetryPolicy {
            base: ms(self.retry_base),
            cap: ms(self.retry_cap),
            give_up_after: Some(ms(self.give_up_after)),
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

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads settings through `lookup` (a variable name to its value); empty values count
    /// as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |k: &str| lookup(k).filter(|v| !v.trim().is_empty());
        let mut c = Self::default();
        if let Some(l) = get("BOOKING_LISTEN") {
            c.listen = l.trim().to_owned();
        }
        c.database_url = get("DATABASE_URL");
        c.database_read_url = get("DATABASE_READ_URL").map(|u| u.trim().to_owned());
        if let Some(url) = get("REDIS_URL") {
            redis::parse_redis_url(url.trim())
                .ok_or_else(|| ConfigError("REDIS_URL is not a redis:// URL".into()))?;
            c.redis_url = Some(url.trim().to_owned());
        }
        if let Some(p) = get("BOOKING_REDIS_PREFIX") {
            c.redis_prefix = p.trim().to_owned();
        }
        if let Some(v) = get("BOOKING_SEARCH_CACHE_TTL_SECONDS") {
            c.search_cache_ttl = seconds("BOOKING_SEARCH_CACHE_TTL_SECONDS", &v, 86_400)?;
        }
        if let Some(t) = get("BOOKING_ADMIN_TOKEN") {
            if t.len() < 16 {
                return Err(ConfigError(
                    "BOOKING_ADMIN_TOKEN must be at least 16 characters".into(),
                ));
            }
            c.admin_token = Some(t);
        }
        if let Some(t) = get("BOOKING_TOKEN_SECRET") {
            if t.chars().count() < 32 {
                return Err(ConfigError(
                    "BOOKING_TOKEN_SECRET must be at least 32 characters \
                     (e.g. `openssl rand -base64 32`)"
                        .into(),
                ));
            }
            c.token_secret = Some(t);
        }
        if let Some(v) = get("BOOKING_HOLD_TTL_SECONDS") {
            c.hold_ttl = seconds("BOOKING_HOLD_TTL_SECONDS", &v, 86_400)?;
        }
        if let Some(v) = get("BOOKING_IDEMPOTENCY_TTL_SECONDS") {
            c.idempotency_ttl = seconds("BOOKING_IDEMPOTENCY_TTL_SECONDS", &v, 30 * 86_400)?;
        }
        if let Some(v) = get("STRIPE_WEBHOOK_SECRETS") {
            c.webhook_secrets = v
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect();
        }
        if let Some(secret_key) = get("STRIPE_SECRET_KEY") {
            if c.webhook_secrets.is_empty() {
                return Err(ConfigError(
                    "STRIPE_SECRET_KEY is set but STRIPE_WEBHOOK_SECRETS is not: payments are \
                     confirmed by Stripe's webhooks, so their signing secret is needed"
                        .into(),
                ));
            }
            let mut stripe = StripeConfig {
                secret_key: secret_key.trim().to_owned(),
                api_base: get("STRIPE_API_BASE").map(|b| b.trim().to_owned()),
                timeout: Duration::from_secs(10),
            };
            if let Some(v) = get("STRIPE_TIMEOUT_MS") {
                stripe.timeout = match v.trim().parse::<u64>() {
                    Ok(ms) if (100..=60_000).contains(&ms) => Duration::from_millis(ms),
                    _ => {
                        return Err(ConfigError(
                            "STRIPE_TIMEOUT_MS must be a whole number of milliseconds from 100 \
                             to 60000"
                                .into(),
                        ));
                    }
                };
            }
            c.stripe = Some(stripe);
        }
        c.nats_url = get("NATS_URL").map(|u| u.trim().to_owned());
        if let Some(v) = get("BOOKING_WEBHOOK_ALLOW_PRIVATE") {
            c.outbound.allow_private = match v.trim() {
                "true" | "1" => true,
                "false" | "0" => false,
                _ => {
                    return Err(ConfigError(
                        "BOOKING_WEBHOOK_ALLOW_PRIVATE must be `true` or `false`".into(),
                    ));
                }
            };
        }
        if let Some(v) = get("BOOKING_OUTBOX_RETENTION_DAYS") {
            c.outbox_retention = match v.trim().parse::<u64>() {
                Ok(d) if (1..=365).contains(&d) => Duration::from_secs(d * 86_400),
                _ => {
                    return Err(ConfigError(
                        "BOOKING_OUTBOX_RETENTION_DAYS must be a whole number from 1 to 365".into(),
                    ));
                }
            };
        }
        if let Some(v) = get("BOOKING_WEBHOOK_MAX_ATTEMPTS") {
            c.webhook.max_attempts = match v.trim().parse::<u32>() {
                Ok(n) if (1..=100).contains(&n) => n,
                _ => {
                    return Err(ConfigError(
                        "BOOKING_WEBHOOK_MAX_ATTEMPTS must be a whole number from 1 to 100".into(),
                    ));
                }
            };
        }
        if let Some(v) = get("BOOKING_WEBHOOK_RETRY_BASE_MS") {
            c.webhook.retry_base = match v.trim().parse::<u64>() {
                Ok(ms) if (1..=600_000).contains(&ms) => Duration::from_millis(ms),
                _ => {
                    return Err(ConfigError(
                        "BOOKING_WEBHOOK_RETRY_BASE_MS must be a whole number of milliseconds \
                         from 1 to 600000"
                            .into(),
                    ));
                }
            };
        }
        if let Some(v) = get("BOOKING_WEBHOOK_RETENTION_DAYS") {
            c.webhook.retention = match v.trim().parse::<u64>() {
                Ok(d) if (1..=365).contains(&d) => Duration::from_secs(d * 86_400),
                _ => {
                    return Err(ConfigError(
                        "BOOKING_WEBHOOK_RETENTION_DAYS must be a whole number from 1 to 365"
                            .into(),
                    ));
                }
            };
        }
        if let Some(v) = get("BOOKING_DB_MAX_CONNECTIONS") {
            c.db_max_connections = match v.trim().parse::<u32>() {
                Ok(n) if (1..=1000).contains(&n) => n,
                _ => {
                    return Err(ConfigError(
                        "BOOKING_DB_MAX_CONNECTIONS must be a whole number from 1 to 1000".into(),
                    ));
                }
            };
        }
        if let Some(v) = get("BOOKING_DB_STATEMENT_TIMEOUT_MS") {
            c.db_statement_timeout = match v.trim().parse::<u64>() {
                Ok(0) => None,
                Ok(ms) if ms <= 3_600_000 => Some(Duration::from_millis(ms)),
                _ => {
                    return Err(ConfigError(
                        "BOOKING_DB_STATEMENT_TIMEOUT_MS must be a whole number of milliseconds \
                         from 0 (off) to 3600000"
                            .into(),
                    ));
                }
            };
        }
        Ok(c)
    }
}

fn seconds(name: &str, value: &str, max: u64) -> Result<Duration, ConfigError> {
    match value.trim().parse::<u64>() {
        Ok(n) if (1..=max).contains(&n) => Ok(Duration::from_secs(n)),
        _ => Err(ConfigError(format!(
            "{name} must be a whole number of seconds from 1 to {max}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(|k| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
    }

    #[test]
    fn defaults_and_overrides() {
        let c = from(&[]).unwrap();
        assert_eq!(c, Config::default());
        let c = from(&[
            ("BOOKING_LISTEN", "0.0.0.0:9000"),
            ("BOOKING_ADMIN_TOKEN", "0123456789abcdef"),
            ("BOOKING_TOKEN_SECRET", "token-secret-0123456789abcdefghij"),
            ("BOOKING_HOLD_TTL_SECONDS", "60"),
            ("BOOKING_IDEMPOTENCY_TTL_SECONDS", "3600"),
            ("DATABASE_URL", "postgres://u:secret@h/db"),
            ("BOOKING_DB_MAX_CONNECTIONS", "32"),
            ("BOOKING_DB_STATEMENT_TIMEOUT_MS", "250"),
        ])
        .unwrap();
        assert_eq!(c.listen, "0.0.0.0:9000");
        assert_eq!(c.db_max_connections, 32);
        assert_eq!(c.db_statement_timeout, Some(Duration::from_millis(250)));
        assert_eq!(c.hold_ttl, Duration::from_secs(60));
        assert_eq!(c.idempotency_ttl, Duration::from_secs(3600));
        // The password of the URL (`secret` alone is in the field name `token_secret`).
        assert!(!format!("{c:?}").contains("u:secret"));
        assert!(!format!("{c:?}").contains("0123456789abcdef"));
        assert_eq!(
            c.token_secret.as_deref(),
            Some("token-secret-0123456789abcdefghij")
        );
        let off = from(&[("BOOKING_DB_STATEMENT_TIMEOUT_MS", "0")]).unwrap();
        assert_eq!(off.db_statement_timeout, None);
        assert!(!c.outbound.allow_private);
        let open = from(&[("BOOKING_WEBHOOK_ALLOW_PRIVATE", "true")]).unwrap();
        assert!(open.outbound.allow_private);
        assert_eq!(
            open.outbound.retry_policy().give_up_after,
            Some(chrono::Duration::hours(24))
        );
    }

    #[test]
    fn rejects_bad_values() {
        assert!(from(&[("BOOKING_HOLD_TTL_SECONDS", "-1")]).is_err());
        assert!(from(&[("BOOKING_HOLD_TTL_SECONDS", "0")]).is_err());
        assert!(from(&[("BOOKING_IDEMPOTENCY_TTL_SECONDS", "abc")]).is_err());
        assert!(from(&[("BOOKING_ADMIN_TOKEN", "short")]).is_err());
        assert!(from(&[("BOOKING_TOKEN_SECRET", "too-short-for-a-key")]).is_err());
        assert!(from(&[("BOOKING_DB_MAX_CONNECTIONS", "0")]).is_err());
        assert!(from(&[("BOOKING_DB_MAX_CONNECTIONS", "many")]).is_err());
        assert!(from(&[("BOOKING_DB_STATEMENT_TIMEOUT_MS", "-5")]).is_err());
        assert!(from(&[("BOOKING_WEBHOOK_ALLOW_PRIVATE", "yes please")]).is_err());
        assert!(from(&[("REDIS_URL", "http://cache:6379")]).is_err());
        assert!(from(&[("BOOKING_SEARCH_CACHE_TTL_SECONDS", "0")]).is_err());
    }

    #[test]
    fn search_settings() {
        let c = from(&[
            ("REDIS_URL", " redis://:pw@cache:6379/2 "),
            ("BOOKING_REDIS_PREFIX", "tenant-a:"),
            ("BOOKING_SEARCH_CACHE_TTL_SECONDS", "30"),
            ("DATABASE_READ_URL", "postgres://u:secret@replica/db"),
        ])
        .unwrap();
        assert_eq!(c.redis_url.as_deref(), Some("redis://:pw@cache:6379/2"));
        assert_eq!(c.redis_prefix, "tenant-a:");
        assert_eq!(c.search_cache_ttl, Duration::from_secs(30));
        assert_eq!(
            c.database_read_url.as_deref(),
            Some("postgres://u:secret@replica/db")
        );
        let shown = format!("{c:?}");
        assert!(
            !shown.contains(":pw@") && !shown.contains("u:secret@"),
            "{shown}"
        );
    }
}
