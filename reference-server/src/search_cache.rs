//! Cached pages of `GET /v1/professionals`.
//!
//! A page is stored for its query (filters, page size, cursor) *and the current generation*.
//! Every create or update of a professional bumps the generation after its change committed,
//! so the next search misses and reads the store: no page from before a change is ever
//! served after it (versioned pages, not best-effort deletes; old pages just age out).
//!
//! * In-process (default): a bounded `moka` cache keyed by generation and query, and an
//!   atomic generation.
//! * Redis (`REDIS_URL`): pages and the generation live in Redis (`INCR`), so every
//!   instance sees every other instance's bumps. A page's key is its query; its value
//!   starts with the generation it was computed in, and a lookup reads the generation and
//!   the page in one `MGET` and uses the page only when the two match (one round trip per
//!   search; a page of an older generation is a miss, then overwritten). Each Redis call
//!   has a short deadline; when Redis is unreachable, searches are answered from the
//!   store. A bump that could not reach Redis is retried before this instance uses the
//!   cache again; until then it bypasses it.
//!   (Another instance that still reaches Redis may serve pages of the old generation for at
//!   most the TTL in that split: the price of an unreachable shared cache.)
//! * Off ([`SearchCache::disabled`], a zero `search_cache_ttl` in a hand-built `Config`;
//!   the environment never asks for it): every search reads the store. For benchmarks of
//!   the uncached path.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use redis::AsyncCommands as _;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use sha2::{Digest, Sha256};

/// How long one Redis call may take before the search goes to the store instead.
const REDIS_DEADLINE: Duration = Duration::from_millis(150);

/// Pages the in-process cache holds at most.
const LOCAL_CAPACITY: u64 = 20_000;

/// The search page cache; see the module docs.
pub struct SearchCache {
    backend: Backend,
    ttl: Duration,
}

enum Backend {
    Local {
        generation: AtomicU64,
        pages: moka::sync::Cache<String, Bytes>,
    },
    /// No cache: every search reads the store.
    Off,
    Redis {
        client: redis::Client,
        manager: tokio::sync::OnceCell<ConnectionManager>,
        prefix: String,
        /// A bump did not reach Redis; it is retried before the cache is used again.
        bump_pending: AtomicBool,
    },
}

impl std::fmt::Debug for SearchCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.backend {
            Backend::Local { .. } => "in-process",
            Backend::Off => "off",
            Backend::Redis { .. } => "redis",
        };
        f.debug_struct("SearchCache")
            .field("backend", &kind)
            .field("ttl", &self.ttl)
            .finish()
    }
}

/// The cache key of one page: a digest of everything that selects it.
pub fn page_key(parts: &[(&str, Option<String>)]) -> String {
    let mut h = Sha256::new();
    for (name, value) in parts {
        h.update(name.as_bytes());
        match value {
            Some(v) => {
                h.update([1]);
                h.update((v.len() as u64).to_be_bytes());
                h.update(v.as_bytes());
            }
            None => h.update([0]),
        }
    }
    hex::encode(&h.finalize()[..16])
}

impl SearchCache {
    /// An in-process cache whose pages live at most `ttl`.
    pub fn in_process(ttl: Duration) -> Self {
        Self {
            backend: Backend::Local {
                generation: AtomicU64::new(0),
                pages: moka::sync::Cache::builder()
                    .max_capacity(LOCAL_CAPACITY)
                    .time_to_live(ttl)
                    .build(),
            },
            ttl,
        }
    }

    /// No cache at all: [`lookup`](Self::lookup) is always `None`, so every search reads
    /// the store (for measuring the uncached path).
    pub fn disabled() -> Self {
        Self {
            backend: Backend::Off,
            ttl: Duration::ZERO,
        }
    }

    /// A cache in the Redis at `url`; every key starts with `prefix`. Connects lazily, so a
    /// Redis that is down at start-up only means searches go to the store until it is up.
    pub fn redis(url: &str, prefix: &str, ttl: Duration) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| format!("REDIS_URL: {e}"))?;
        Ok(Self {
            backend: Backend::Redis {
                client,
                manager: tokio::sync::OnceCell::new(),
                prefix: prefix.to_owned(),
                bump_pending: AtomicBool::new(false),
            },
            ttl,
        })
    }

    /// The current generation and the page stored for `key` in it, if any; `None` when
    /// the cache cannot be used right now (then the search reads the store and stores
    /// nothing). On Redis this is one round trip: `MGET` of the generation and the page,
    /// which is used only when it was stored in that generation.
    pub async fn lookup(&self, key: &str) -> Option<Lookup> {
        match &self.backend {
            Backend::Local { generation, pages } => {
                let generation = generation.load(Ordering::Acquire);
                let page = pages.get(&local_key(generation, key));
                Some(Lookup { generation, page })
            }
            Backend::Off => None,
            Backend::Redis {
                prefix,
                bump_pending,
                ..
            } => {
                if bump_pending.load(Ordering::Acquire) {
                    self.bump().await;
                    if bump_pending.load(Ordering::Acquire) {
                        return None;
                    }
                }
                let mut conn = self.connection().await?;
                let keys = [generation_key(prefix), page_key_in_redis(prefix, key)];
                let (generation, stored): (Option<u64>, Option<Vec<u8>>) =
                    deadline(conn.mget(&keys)).await?;
                let generation = generation.unwrap_or(0);
                let page = stored.and_then(|v| page_of_generation(v, generation));
                Some(Lookup { generation, page })
            }
        }
    }

    /// Stores a page for `key`, computed in generation `generation` (best effort).
    pub async fn put(&self, generation: u64, key: &str, page: Bytes) {
        match &self.backend {
            Backend::Local { pages, .. } => pages.insert(local_key(generation, key), page),
            Backend::Off => {}
            Backend::Redis { prefix, .. } => {
                let Some(mut conn) = self.connection().await else {
                    return;
                };
                let key = page_key_in_redis(prefix, key);
                let value = tagged_page(generation, &page);
                let ttl = self.ttl.as_secs().max(1);
                let _: Option<()> = deadline(conn.set_ex(key, value, ttl)).await;
            }
        }
    }

    /// Starts a new generation: call after a change of a professional has committed.
    pub async fn bump(&self) {
        match &self.backend {
            Backend::Local { generation, pages } => {
                generation.fetch_add(1, Ordering::AcqRel);
                pages.invalidate_all();
            }
            Backend::Off => {}
            Backend::Redis {
                prefix,
                bump_pending,
                ..
            } => {
                let done = match self.connection().await {
                    Some(mut conn) => {
                        let n: Option<u64> =
                            deadline(conn.incr(generation_key(prefix), 1u64)).await;
                        n.is_some()
                    }
                    None => false,
                };
                if !done {
                    tracing::warn!("search cache: Redis unreachable; bypassing the cache");
                }
                bump_pending.store(!done, Ordering::Release);
            }
        }
    }

    /// The Redis connection manager (created on first use), if Redis is configured.
    async fn connection(&self) -> Option<ConnectionManager> {
        let Backend::Redis {
            client, manager, ..
        } = &self.backend
        else {
            return None;
        };
        manager
            .get_or_try_init(|| async {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(REDIS_DEADLINE))
                    .set_response_timeout(Some(REDIS_DEADLINE))
                    .set_number_of_retries(1);
                ConnectionManager::new_lazy_with_config(client.clone(), config)
            })
            .await
            .inspect_err(|e| tracing::warn!(error = %e, "search cache: Redis client"))
            .ok()
            .cloned()
    }
}

/// What [`SearchCache::lookup`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    /// The generation the search runs in: store its page with [`SearchCache::put`] under it.
    pub generation: u64,
    /// The page for the key, stored in this generation, if any.
    pub page: Option<Bytes>,
}

/// The in-process cache's key of the page for `key` in generation `generation`.
fn local_key(generation: u64, key: &str) -> String {
    format!("{generation}:{key}")
}

/// The Redis key of the generation.
fn generation_key(prefix: &str) -> String {
    format!("{prefix}search:generation")
}

/// The Redis key of the page for `key` (whatever its generation: see [`tagged_page`]).
fn page_key_in_redis(prefix: &str, key: &str) -> String {
    format!("{prefix}search:page:{key}")
}

/// A Redis value: the generation `page` was computed in, 8 bytes big-endian, then `page`.
fn tagged_page(generation: u64, page: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(8 + page.len());
    value.extend_from_slice(&generation.to_be_bytes());
    value.extend_from_slice(page);
    value
}

/// The page in a Redis value made by [`tagged_page`] when it was stored in `generation`.
fn page_of_generation(value: Vec<u8>, generation: u64) -> Option<Bytes> {
    let value = Bytes::from(value);
    (value.get(..8)? == generation.to_be_bytes().as_slice()).then(|| value.slice(8..))
}

/// Runs a Redis call with [`REDIS_DEADLINE`]; any failure is `None` (and logged).
async fn deadline<T>(call: impl Future<Output = redis::RedisResult<T>>) -> Option<T> {
    match tokio::time::timeout(REDIS_DEADLINE, call).await {
        Ok(Ok(v)) => Some(v),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "search cache: Redis call failed");
            None
        }
        Err(_) => {
            tracing::debug!("search cache: Redis call timed out");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_pages_belong_to_their_generation() {
        let cache = SearchCache::in_process(Duration::from_secs(60));
        let first = cache.lookup("k").await.expect("local is always usable");
        assert_eq!(first.page, None);
        cache
            .put(first.generation, "k", Bytes::from_static(b"page"))
            .await;
        let hit = cache.lookup("k").await.expect("usable");
        assert_eq!(hit.page.as_deref(), Some(&b"page"[..]));
        assert_eq!(hit.generation, first.generation);
        cache.bump().await;
        let after = cache.lookup("k").await.expect("usable");
        assert_ne!(after.generation, first.generation);
        assert_eq!(after.page, None);
        // A page computed before the bump and stored after it is not served.
        cache
            .put(first.generation, "k", Bytes::from_static(b"old"))
            .await;
        assert_eq!(cache.lookup("k").await.expect("usable").page, None);
    }

    #[test]
    fn a_redis_value_is_a_page_only_in_its_generation() {
        let value = tagged_page(7, b"page");
        assert_eq!(value[..8], 7u64.to_be_bytes());
        assert_eq!(
            page_of_generation(value.clone(), 7).as_deref(),
            Some(&b"page"[..])
        );
        assert_eq!(page_of_generation(value, 8), None);
        assert_eq!(
            page_of_generation(7u64.to_be_bytes().to_vec(), 7).as_deref(),
            Some(&b""[..])
        );
        assert_eq!(page_of_generation(b"short".to_vec(), 0), None);
    }

    #[tokio::test]
    async fn unreachable_redis_is_bypassed() {
        // Port 1 on localhost: connection refused at once.
        let cache = SearchCache::redis("redis://127.0.0.1:1/", "t:", Duration::from_secs(60))
            .expect("a valid URL");
        assert_eq!(cache.lookup("k").await, None);
        cache.bump().await;
        cache.put(0, "k", Bytes::from_static(b"x")).await;
        assert_eq!(cache.lookup("k").await, None);
    }

    #[tokio::test]
    async fn disabled_cache_is_never_used() {
        let cache = SearchCache::disabled();
        assert_eq!(cache.lookup("k").await, None);
        cache.put(0, "k", Bytes::from_static(b"x")).await;
        assert_eq!(cache.lookup("k").await, None);
        cache.bump().await;
        assert_eq!(cache.lookup("k").await, None);
    }

    #[test]
    fn page_keys_separate_values_and_absence() {
        let a = page_key(&[("a", Some("1".into())), ("b", None)]);
        let b = page_key(&[("a", None), ("b", Some("1".into()))]);
        let c = page_key(&[("a", Some("1".into())), ("b", Some(String::new()))]);
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(a, page_key(&[("a", Some("1".into())), ("b", None)]));
    }
}
