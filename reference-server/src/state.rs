//! [`AppState`]: what every handler and worker shares, built once from the [`Config`].

use std::fmt;
use std::sync::Arc;

use axum::body::Bytes;
use booking_core::{BookingEngine, Clock, Store, SystemClock, TokenHash};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::config::{self, Config};
use crate::{auth, metrics, openapi, search_cache, secrets};

/// The engine as the server uses it: any store behind one pointer, any clock (the system
/// clock outside tests).
pub type Engine = BookingEngine<dyn Store, Arc<dyn Clock>>;

/// Shared state of the handlers.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    webhook_secrets: Vec<booking_core::WebhookSecret>,
    webhook_policy: booking_core::RetryPolicy,
    inbox_wakeup: tokio::sync::Notify,
    outbox_consumers: Vec<booking_core::events::Consumer>,
    outbox_retention: chrono::Duration,
    outbound: config::OutboundConfig,
    outbound_policy: booking_core::RetryPolicy,
    admin_token_hash: TokenHash,
    principals: auth::PrincipalCache,
    token_secret: secrets::TokenSecret,
    metrics: PrometheusHandle,
    openapi_json: Bytes,
    search_cache: search_cache::SearchCache,
}

impl fmt::Debug for AppState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

impl AppState {
    /// State over `store`, with the engine settings from `config`, the admin token and,
    /// when payments are on, the payment gateway.
    pub fn new(
        store: Arc<dyn Store>,
        config: &Config,
        admin_token: &str,
        payments: Option<Arc<dyn booking_core::payment::PaymentGateway>>,
    ) -> Self {
        Self::with_clock(store, Arc::new(SystemClock), config, admin_token, payments)
    }

    /// [`AppState::new`] with the engine reading time from `clock` instead of the system
    /// clock: for tests that move time (hold expiry, leases, key TTLs).
    #[doc(hidden)]
    pub fn with_clock(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        config: &Config,
        admin_token: &str,
        payments: Option<Arc<dyn booking_core::payment::PaymentGateway>>,
    ) -> Self {
        let mut engine = BookingEngine::new(store, clock, config.engine_config());
        if let Some(gateway) = payments {
            engine = engine.with_payments(gateway, config.payment_hold_ttl());
        }
        Self {
            inner: Arc::new(Inner {
                engine,
                webhook_secrets: config.webhook_signing_secrets(),
                webhook_policy: config.webhook.retry_policy(),
                inbox_wakeup: tokio::sync::Notify::new(),
                outbox_consumers: config.outbox_consumers(),
                outbox_retention: config.outbox_retention_period(),
                outbound: config.outbound,
                outbound_policy: config.outbound.retry_policy(),
                admin_token_hash: TokenHash::of(admin_token),
                principals: auth::PrincipalCache::default(),
                token_secret: secrets::TokenSecret::from_setting(config.token_secret.as_deref()),
                metrics: metrics::handle(),
                openapi_json: openapi::shared_json(),
                search_cache: config.search_cache(),
            }),
        }
    }

    /// The cache of search pages (in-process, or Redis with `REDIS_URL`).
    pub fn search_cache(&self) -> &search_cache::SearchCache {
        &self.inner.search_cache
    }

    /// The secrets Stripe signs webhook deliveries with (several while one is rotated).
    pub fn webhook_secrets(&self) -> &[booking_core::WebhookSecret] {
        &self.inner.webhook_secrets
    }

    /// How failed inbound events are retried and how long processed ones are kept.
    pub fn webhook_policy(&self) -> &booking_core::RetryPolicy {
        &self.inner.webhook_policy
    }

    /// The outbox consumers this server runs: an event is pruned only once all of them
    /// delivered it.
    pub fn outbox_consumers(&self) -> &[booking_core::events::Consumer] {
        &self.inner.outbox_consumers
    }

    /// How long delivered domain events stay in the outbox.
    pub fn outbox_retention(&self) -> chrono::Duration {
        self.inner.outbox_retention
    }

    /// Outbound webhook settings.
    pub fn outbound_config(&self) -> &config::OutboundConfig {
        &self.inner.outbound
    }

    /// How failed outbound deliveries are retried (24 h window).
    pub fn outbound_policy(&self) -> &booking_core::RetryPolicy {
        &self.inner.outbound_policy
    }

    /// Wakes the inbox worker (an event was recorded or replayed).
    pub fn wake_inbox(&self) {
        self.inner.inbox_wakeup.notify_one();
    }

    /// Resolves when [`AppState::wake_inbox`] was called.
    pub async fn inbox_woken(&self) {
        self.inner.inbox_wakeup.notified().await;
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The hash of the admin token.
    pub fn admin_token_hash(&self) -> &TokenHash {
        &self.inner.admin_token_hash
    }

    /// The cache of authenticated principals.
    pub fn principals(&self) -> &auth::PrincipalCache {
        &self.inner.principals
    }

    /// The key API tokens are derived with (see [`secrets`]).
    pub fn token_secret(&self) -> &secrets::TokenSecret {
        &self.inner.token_secret
    }

    /// The metrics handle.
    pub fn metrics(&self) -> &PrometheusHandle {
        &self.inner.metrics
    }

    /// The OpenAPI document as JSON.
    pub fn openapi_json(&self) -> Bytes {
        self.inner.openapi_json.clone()
    }
}
