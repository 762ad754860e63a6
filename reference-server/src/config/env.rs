//! Reading [`Config`] from the environment: one variable after another, each checked
//! against its range; the first unusable one is the error.

use std::time::Duration;

use super::{Config, ConfigError, StripeConfig};

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
            c.db_statement_timeout = optional_ms("BOOKING_DB_STATEMENT_TIMEOUT_MS", &v)?;
        }
        let lock_timeout = get("BOOKING_DB_LOCK_TIMEOUT_MS");
        if let Some(v) = &lock_timeout {
            c.db_lock_timeout = optional_ms("BOOKING_DB_LOCK_TIMEOUT_MS", v)?;
        }
        if let Some(v) = get("BOOKING_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS") {
            c.db_idle_in_transaction_timeout =
                optional_ms("BOOKING_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS", &v)?;
        }
        if let Some(v) = get("BOOKING_DB_TCP_KEEPALIVE_SECS") {
            c.db_tcp_keepalive = match v.trim() {
                "0" => None,
                v => Some(seconds("BOOKING_DB_TCP_KEEPALIVE_SECS", v, 7_200)?),
            };
        }
        if let Some(v) = get("BOOKING_DB_ACQUIRE_TIMEOUT_MS") {
            c.db_acquire_timeout =
                optional_ms("BOOKING_DB_ACQUIRE_TIMEOUT_MS", &v)?.ok_or_else(|| {
                    ConfigError("BOOKING_DB_ACQUIRE_TIMEOUT_MS must be at least 1".into())
                })?;
        }
        // A lock wait must give up before the statement does, or the statement timeout
        // cuts it first. A lowered statement timeout takes the default lock timeout down
        // with it (to half); both set and out of order is an error.
        if let (Some(lock), Some(statement)) = (c.db_lock_timeout, c.db_statement_timeout)
            && lock >= statement
        {
            if lock_timeout.is_some() {
                return Err(ConfigError(
                    "BOOKING_DB_LOCK_TIMEOUT_MS must be below BOOKING_DB_STATEMENT_TIMEOUT_MS"
                        .into(),
                ));
            }
            c.db_lock_timeout = Some(statement / 2);
        }
        if let Some(v) = get("BOOKING_IDEMPOTENCY_LEASE_SECONDS") {
            c.idempotency_lease = seconds("BOOKING_IDEMPOTENCY_LEASE_SECONDS", &v, 3_600)?;
        }
        Ok(c)
    }
}

/// Milliseconds from 0 (`None`: off) to one hour.
fn optional_ms(name: &str, value: &str) -> Result<Option<Duration>, ConfigError> {
    match value.trim().parse::<u64>() {
        Ok(0) => Ok(None),
        Ok(ms) if ms <= 3_600_000 => Ok(Some(Duration::from_millis(ms))),
        _ => Err(ConfigError(format!(
            "{name} must be a whole number of milliseconds from 0 (off) to 3600000"
        ))),
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
        let db = from(&[
            ("BOOKING_DB_LOCK_TIMEOUT_MS", "700"),
            ("BOOKING_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS", "0"),
            ("BOOKING_DB_TCP_KEEPALIVE_SECS", "12"),
            ("BOOKING_DB_ACQUIRE_TIMEOUT_MS", "900"),
            ("BOOKING_IDEMPOTENCY_LEASE_SECONDS", "5"),
            ("DATABASE_URL", "postgres://h/db"),
        ])
        .unwrap();
        let pg = db.database().unwrap().pg_options();
        assert_eq!(pg.lock_timeout, Some(Duration::from_millis(700)));
        assert_eq!(pg.idle_in_transaction_timeout, None);
        assert_eq!(pg.tcp_keepalive, Some(Duration::from_secs(12)));
        assert_eq!(pg.acquire_timeout, Duration::from_millis(900));
        assert_eq!(
            db.engine_config().idempotency.lease,
            chrono::Duration::seconds(5)
        );
        // The defaults are the adapter's.
        let defaults = from(&[("DATABASE_URL", "postgres://h/db")]).unwrap();
        let adapter = booking_postgres::PgConfig::from_url("postgres://h/db");
        let pg = defaults.database().unwrap().pg_options();
        assert_eq!(pg.lock_timeout, adapter.lock_timeout);
        assert_eq!(
            pg.idle_in_transaction_timeout,
            adapter.idle_in_transaction_timeout
        );
        assert_eq!(pg.tcp_keepalive, adapter.tcp_keepalive);
        assert_eq!(pg.acquire_timeout, adapter.acquire_timeout);
        assert_eq!(
            defaults.engine_config().idempotency.lease,
            chrono::Duration::seconds(60)
        );
        assert!(from(&[("BOOKING_DB_LOCK_TIMEOUT_MS", "5000")]).is_err());
        let short = from(&[("BOOKING_DB_STATEMENT_TIMEOUT_MS", "300")]).unwrap();
        assert_eq!(short.db_lock_timeout, Some(Duration::from_millis(150)));
        assert!(from(&[("BOOKING_DB_ACQUIRE_TIMEOUT_MS", "0")]).is_err());
        assert!(from(&[("BOOKING_IDEMPOTENCY_LEASE_SECONDS", "0")]).is_err());
        assert!(from(&[("BOOKING_DB_TCP_KEEPALIVE_SECS", "x")]).is_err());
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

    #[test]
    fn settings_reach_their_users() {
        assert!(from(&[]).unwrap().database().is_none());
        let c = from(&[
            ("DATABASE_URL", "postgres://u:pw@primary/db"),
            ("DATABASE_READ_URL", "postgres://u:pw@replica/db"),
            ("BOOKING_DB_MAX_CONNECTIONS", "7"),
            ("BOOKING_DB_STATEMENT_TIMEOUT_MS", "250"),
            ("BOOKING_IDEMPOTENCY_TTL_SECONDS", "3600"),
            ("BOOKING_HOLD_TTL_SECONDS", "60"),
        ])
        .unwrap();
        let db = c.database().unwrap();
        assert!(!format!("{db:?}").contains("pw"));
        let pg = db.pg_options();
        assert_eq!(pg.url, "postgres://u:pw@primary/db");
        assert_eq!(pg.max_connections, 7);
        assert_eq!(pg.statement_timeout, Some(Duration::from_millis(250)));
        let read = db.replica_options().unwrap();
        assert_eq!(read.url, "postgres://u:pw@replica/db");
        assert_eq!(read.max_connections, 7);
        assert_eq!(read.acquire_timeout, Duration::from_secs(1));
        assert_eq!(
            c.engine_config().idempotency.ttl,
            chrono::Duration::hours(1)
        );
        assert_eq!(c.payment_hold_ttl(), chrono::Duration::minutes(1));
        assert_eq!(c.outbox_consumers().len(), 1);
    }
}
