//! Connection settings.

use std::fmt;
use std::time::Duration;

/// How to reach PostgreSQL and how big the pool is.
///
/// ```
/// use booking_postgres::PgConfig;
/// let config = PgConfig::from_url("postgres://app:secret@db:5432/booking");
/// assert_eq!(config.max_connections, 10);
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
}

impl PgConfig {
    /// Defaults for `url`: at most 10 connections, none kept idle, 5 s to acquire one,
    /// statements cancelled after 5 s.
    pub fn from_url(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_connections: 10,
            min_connections: 0,
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Some(Duration::from_secs(5)),
        }
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
}
