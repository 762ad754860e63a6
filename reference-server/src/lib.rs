//! # reference-server
//!
//! The reference HTTP server over [`booking_core`]: a thin axum application with
//! bearer-token auth, an idempotency layer, RFC 9457 problem responses, an OpenAPI 3.1
//! document, Prometheus metrics and background workers. The HTTP guide is the repository's
//! `docs/http/`; `WALKTHROUGH.md` beside this crate shows it with curl.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use reference_server::{Application, Config};
//! let app = Application::build(Config { listen: "127.0.0.1:0".into(), ..Config::default() }).await?;
//! println!("listening on {}", app.local_addr());
//! app.run_until_stopped().await?;
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod auth;
pub mod config;
pub mod cursor;
pub mod extract;
pub mod idempotency;
pub mod metrics;
pub mod model;
pub mod openapi;
pub mod outbound;
pub mod problem;
pub mod relay;
pub mod routes;
pub mod search_cache;
pub mod secrets;
pub mod stripe;
pub mod workers;

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{Request, StatusCode};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::{get, post};
use booking_core::idempotency::IdempotencyPolicy;
use booking_core::{BookingEngine, EngineConfig, Store, SystemClock, TokenHash};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};

pub use config::{Config, ConfigError};

/// The largest accepted request body: 64 KiB.
pub const BODY_LIMIT: usize = 64 * 1024;

/// The engine as the server uses it: any store behind one pointer, the system clock.
pub type Engine = BookingEngine<dyn Store, SystemClock>;

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

/// The search cache `config` asks for: Redis with `REDIS_URL`, in-process otherwise, none
/// with a zero TTL (only a hand-built `Config` has one; benchmarks of the uncached path).
fn search_cache_for(config: &Config) -> search_cache::SearchCache {
    let ttl = config.search_cache_ttl;
    if ttl.is_zero() {
        return search_cache::SearchCache::disabled();
    }
    if let Some(url) = &config.redis_url {
        match search_cache::SearchCache::redis(url, &config.redis_prefix, ttl) {
            Ok(cache) => return cache,
            // The configuration checked the URL; this is only a belt for hand-built configs.
            Err(e) => tracing::warn!(error = %e, "search cache: using the in-process cache"),
        }
    }
    search_cache::SearchCache::in_process(ttl)
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
        let idempotency_ttl = chrono::Duration::from_std(config.idempotency_ttl)
            .unwrap_or_else(|_| chrono::Duration::hours(24));
        let engine_config = EngineConfig {
            idempotency: IdempotencyPolicy {
                ttl: idempotency_ttl,
                ..IdempotencyPolicy::default()
            },
            ..EngineConfig::default()
        };
        let mut engine = BookingEngine::new(store, SystemClock, engine_config);
        if let Some(gateway) = payments {
            let ttl = chrono::Duration::from_std(config.hold_ttl)
                .unwrap_or_else(|_| chrono::Duration::minutes(15));
            engine = engine.with_payments(gateway, ttl);
        }
        // Blank entries were dropped by the configuration; what is left is usable.
        let webhook_secrets = config
            .webhook_secrets
            .iter()
            .filter_map(|s| booking_core::WebhookSecret::new(s.clone()).ok())
            .collect();
        Self {
            inner: Arc::new(Inner {
                engine,
                webhook_secrets,
                webhook_policy: config.webhook.retry_policy(),
                inbox_wakeup: tokio::sync::Notify::new(),
                // The webhook fan-out always runs (see `Application::run_until`).
                outbox_consumers: if config.nats_url.is_some() {
                    vec![
                        booking_core::events::Consumer::Nats,
                        booking_core::events::Consumer::Webhooks,
                    ]
                } else {
                    vec![booking_core::events::Consumer::Webhooks]
                },
                outbox_retention: chrono::Duration::from_std(config.outbox_retention)
                    .unwrap_or_else(|_| chrono::Duration::days(7)),
                outbound: config.outbound,
                outbound_policy: config.outbound.retry_policy(),
                admin_token_hash: TokenHash::of(admin_token),
                principals: auth::PrincipalCache::default(),
                token_secret: secrets::TokenSecret::from_setting(config.token_secret.as_deref()),
                metrics: metrics::handle(),
                openapi_json: Bytes::from(openapi::json()),
                search_cache: search_cache_for(config),
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

/// The complete application: routes and layers over `state`.
pub fn router(state: AppState, config: &Config) -> Router {
    use routes::{bookings, clients, ops, professionals, subscriptions, webhooks};
    let idem = || from_fn_with_state(state.clone(), idempotency::idempotent);
    let v1 = Router::new()
        .route(
            "/v1/clients",
            post(clients::create_client).route_layer(idem()),
        )
        .route(
            "/v1/professionals",
            post(professionals::create_professional)
                .route_layer(idem())
                .get(professionals::search_professionals),
        )
        .route(
            "/v1/professionals/{id}",
            get(professionals::get_professional).patch(professionals::update_professional),
        )
        .route(
            "/v1/professionals/{id}/schedule",
            get(professionals::get_schedule).put(professionals::put_schedule),
        )
        .route(
            "/v1/professionals/{id}/availability",
            get(professionals::availability),
        )
        .route(
            "/v1/bookings",
            post(bookings::create_booking)
                .route_layer(idem())
                .get(bookings::list_bookings),
        )
        .route("/v1/bookings/{id}", get(bookings::get_booking))
        .route(
            "/v1/bookings/{id}/cancel",
            post(bookings::cancel_booking)
                .route_layer(idem())
                .route_layer(from_fn(extract::require_uuid_id)),
        )
        .route(
            "/v1/bookings/{id}/reschedule",
            post(bookings::reschedule_booking)
                .route_layer(idem())
                .route_layer(from_fn(extract::require_uuid_id)),
        )
        .route(
            "/v1/admin/webhooks/dead-letters",
            get(webhooks::list_dead_letters),
        )
        .route(
            "/v1/admin/webhooks/dead-letters/{event_id}/replay",
            post(webhooks::replay_dead_letter).route_layer(idem()),
        )
        .route(
            "/v1/admin/webhook-subscriptions",
            post(subscriptions::create_subscription)
                .route_layer(idem())
                .get(subscriptions::list_subscriptions),
        )
        .route(
            "/v1/admin/webhook-subscriptions/{id}",
            axum::routing::delete(subscriptions::delete_subscription),
        )
        .route(
            "/v1/admin/webhook-subscriptions/{id}/deliveries",
            get(subscriptions::list_deliveries),
        )
        .route(
            "/v1/admin/webhook-deliveries/{id}/redeliver",
            post(subscriptions::redeliver)
                .route_layer(idem())
                .route_layer(from_fn(extract::require_uuid_id)),
        )
        .route_layer(from_fn_with_state(state.clone(), auth::require_caller));
    let public = Router::new()
        .route("/v1/webhooks/stripe", post(webhooks::stripe_webhook))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi));
    v1.merge(public)
        .route_layer(from_fn(metrics::capture_route))
        .fallback(problem::route_not_found)
        .method_not_allowed_fallback(problem::method_not_allowed)
        .layer(
            tower::ServiceBuilder::new()
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(|req: &Request<Body>| {
                            let id = req
                                .headers()
                                .get("x-request-id")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("-");
                            tracing::info_span!(
                                "request",
                                method = %req.method(),
                                path = %req.uri().path(),
                                request_id = %id,
                            )
                        })
                        .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
                )
                .layer(PropagateRequestIdLayer::x_request_id())
                .layer(from_fn(metrics::track))
                .layer(from_fn(problem::ensure_problem))
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::REQUEST_TIMEOUT,
                    config.request_timeout,
                ))
                .layer(tower_http::limit::RequestBodyLimitLayer::new(BODY_LIMIT)),
        )
        .with_state(state)
}

/// Why the server could not start.
#[derive(Debug)]
pub enum StartupError {
    /// A configuration value is unusable.
    Config(String),
    /// The listen address could not be bound.
    Bind(std::io::Error),
    /// The store could not be reached or migrated.
    Store(String),
}

impl fmt::Display for StartupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartupError::Config(m) => write!(f, "configuration: {m}"),
            StartupError::Bind(e) => write!(f, "cannot bind the listen address: {e}"),
            StartupError::Store(m) => write!(f, "store: {m}"),
        }
    }
}

impl std::error::Error for StartupError {}

/// A built server: bound, with its store connected (and migrated), not yet serving.
pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    state: AppState,
    config: Config,
    admin_token: String,
    admin_token_generated: bool,
    sender: outbound::Sender,
}

impl fmt::Debug for Application {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Application")
            .field("local_addr", &self.local_addr)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Application {
    /// Connects the store (PostgreSQL with migrations when `database_url` is set, memory
    /// otherwise), binds `listen` (port 0: a free port) and prepares the routes.
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        let payments = match &config.stripe {
            Some(stripe) => Some(payment_gateway(stripe)?),
            None => None,
        };
        if config.token_secret.is_none() && config.database_url.is_some() {
            tracing::warn!(
                "BOOKING_TOKEN_SECRET is not set: API tokens are derived with a random \
                 per-process secret, so a replay or retry of a create served after a restart \
                 (or by another instance) answers 409 api_token_unrecoverable"
            );
        }
        let store = connect_store(&config).await?;
        let (admin_token, admin_token_generated) = match &config.admin_token {
            Some(t) => (t.clone(), false),
            None => (
                auth::generate_token()
                    .map_err(|e| StartupError::Config(format!("no randomness: {e}")))?,
                true,
            ),
        };
        let listener = TcpListener::bind(&config.listen)
            .await
            .map_err(StartupError::Bind)?;
        let local_addr = listener.local_addr().map_err(StartupError::Bind)?;
        let state = AppState::new(store, &config, &admin_token, payments);
        let sender = outbound::Sender::new(config.outbound.allow_private, config.outbound.timeout)
            .map_err(StartupError::Config)?;
        Ok(Self {
            sender,
            listener,
            local_addr,
            state,
            config,
            admin_token,
            admin_token_generated,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.local_addr.port()
    }

    /// The admin token (configured or generated).
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// Whether the admin token was generated (and should be shown to the operator once).
    pub fn admin_token_generated(&self) -> bool {
        self.admin_token_generated
    }

    /// The shared state.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The routes, for in-process use (`tower::ServiceExt::oneshot`).
    pub fn router(&self) -> Router {
        router(self.state.clone(), &self.config)
    }

    /// Serves until SIGTERM or Ctrl-C, then stops accepting, finishes in-flight requests,
    /// stops the workers and returns.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `signal` completes, then shuts down gracefully.
    pub async fn run_until(
        self,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let router = self.router();
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let workers = workers::spawn(
            self.state.clone(),
            self.config.sweep_interval,
            stop_rx.clone(),
        );
        let relay = self.config.nats_url.as_ref().map(|url| {
            relay::spawn(
                self.state.clone(),
                relay::NatsConfig::new(url),
                stop_rx.clone(),
            )
        });
        let webhooks = outbound::spawn(self.state.clone(), self.sender.clone(), stop_rx.clone());
        let inbox = workers::spawn_inbox(self.state.clone(), stop_rx);
        let served = axum::serve(self.listener, router)
            .with_graceful_shutdown(signal)
            .await;
        let _ = stop_tx.send(true);
        let _ = workers.await;
        let _ = inbox.await;
        let _ = webhooks.await;
        if let Some(relay) = relay {
            let _ = relay.await;
        }
        tracing::info!("server stopped");
        served
    }
}

/// The Stripe gateway `stripe` describes.
fn payment_gateway(
    stripe: &config::StripeConfig,
) -> Result<Arc<dyn booking_core::payment::PaymentGateway>, StartupError> {
    let gateway = stripe::StripeGateway::new(
        &stripe.secret_key,
        stripe.api_base.as_deref(),
        stripe.timeout,
    )
    .map_err(|e| StartupError::Config(format!("Stripe: {e}")))?;
    Ok(Arc::new(gateway))
}

async fn connect_store(config: &Config) -> Result<Arc<dyn Store>, StartupError> {
    match &config.database_url {
        None => Ok(Arc::new(booking_memory::MemoryStore::new())),
        Some(url) => {
            let pg = booking_postgres::PgConfig {
                max_connections: config.db_max_connections,
                statement_timeout: config.db_statement_timeout,
                ..booking_postgres::PgConfig::from_url(url.clone())
            };
            tracing::info!(
                url = %pg.redacted_url(),
                max_connections = pg.max_connections,
                "connecting to PostgreSQL"
            );
            let mut store = booking_postgres::PgStore::connect(&pg)
                .await
                .map_err(|e| StartupError::Store(e.to_string()))?;
            if let Some(read_url) = &config.database_read_url {
                let read = booking_postgres::PgConfig {
                    // A replica that is down costs a search at most this before the
                    // primary answers it.
                    acquire_timeout: std::time::Duration::from_secs(1),
                    ..booking_postgres::PgConfig {
                        url: read_url.clone(),
                        ..pg.clone()
                    }
                };
                tracing::info!(url = %read.redacted_url(), "searches read from a replica");
                store = store
                    .with_read_replica(&read)
                    .map_err(|e| StartupError::Store(format!("DATABASE_READ_URL: {e}")))?;
            }
            store
                .migrate()
                .await
                .map_err(|e| StartupError::Store(format!("migrations failed: {e}")))?;
            Ok(Arc::new(store))
        }
    }
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutdown signal received; draining");
}

/// Installs the `tracing` subscriber: `RUST_LOG` (default `info`) to standard error.
pub fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}
