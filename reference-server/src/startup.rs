//! Start-up: the router with its layers, [`Application`] (store connection, bind, serve
//! with the background workers, graceful shutdown) and the shutdown signal.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::{get, post};
use booking_core::payment::PaymentGateway;
use booking_core::{Clock, Store, SystemClock};
use tokio::net::TcpListener;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;

use crate::config::{self, Config};
use crate::state::AppState;
use crate::{auth, extract, idempotency, metrics, outbound, problem, relay, routes, stripe};
use crate::{telemetry, workers};

/// The largest accepted request body: 64 KiB.
pub const BODY_LIMIT: usize = 64 * 1024;

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
                .layer(telemetry::trace_layer())
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

/// Parts of an [`Application`] a test replaces (see [`Application::build_with`]); each
/// `None` is built from the [`Config`] as usual.
#[doc(hidden)]
#[derive(Clone, Default)]
pub struct Overrides {
    /// The engine's clock instead of the system clock. With PostgreSQL the store then
    /// decides hold expiry on this clock too ([`booking_postgres::PgClock::Caller`]).
    pub clock: Option<Arc<dyn Clock>>,
    /// The store instead of the one `database_url` names.
    pub store: Option<Arc<dyn Store>>,
    /// The payment gateway instead of Stripe's (payments are on even without `stripe`).
    pub payments: Option<Arc<dyn PaymentGateway>>,
}

impl fmt::Debug for Overrides {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Overrides")
            .field("clock", &self.clock.is_some())
            .field("store", &self.store.is_some())
            .field("payments", &self.payments.is_some())
            .finish()
    }
}

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
        Self::build_with(config, Overrides::default()).await
    }

    /// [`Application::build`] with parts replaced (see [`Overrides`]): for tests.
    #[doc(hidden)]
    pub async fn build_with(config: Config, overrides: Overrides) -> Result<Self, StartupError> {
        let payments = match (overrides.payments, &config.stripe) {
            (Some(gateway), _) => Some(gateway),
            (None, Some(stripe)) => Some(payment_gateway(stripe)?),
            (None, None) => None,
        };
        if config.token_secret.is_none() && config.database_url.is_some() {
            tracing::warn!(
                "BOOKING_TOKEN_SECRET is not set: API tokens are derived with a random \
                 per-process secret, so a replay or retry of a create served after a restart \
                 (or by another instance) answers 409 api_token_unrecoverable"
            );
        }
        let store = match overrides.store {
            Some(store) => store,
            // A test's clock must decide hold expiry in the database too.
            None => connect_store(&config, overrides.clock.is_some()).await?,
        };
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
        let clock = overrides.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let state = AppState::with_clock(store, clock, &config, &admin_token, payments);
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
fn payment_gateway(stripe: &config::StripeConfig) -> Result<Arc<dyn PaymentGateway>, StartupError> {
    let gateway = stripe::StripeGateway::new(
        &stripe.secret_key,
        stripe.api_base.as_deref(),
        stripe.timeout,
    )
    .map_err(|e| StartupError::Config(format!("Stripe: {e}")))?;
    Ok(Arc::new(gateway))
}

/// The store `config` names: PostgreSQL (migrated) with `DATABASE_URL`, memory otherwise.
/// `caller_clock`: the PostgreSQL store decides hold expiry on the engine's clock rather
/// than the database's (a test's injected clock).
async fn connect_store(
    config: &Config,
    caller_clock: bool,
) -> Result<Arc<dyn Store>, StartupError> {
    let Some(database) = config.database() else {
        return Ok(Arc::new(booking_memory::MemoryStore::new()));
    };
    let mut pg = database.pg_options();
    if caller_clock {
        pg.clock = booking_postgres::PgClock::Caller;
    }
    tracing::info!(
        url = %pg.redacted_url(),
        max_connections = pg.max_connections,
        "connecting to PostgreSQL"
    );
    let mut store = booking_postgres::PgStore::connect(&pg)
        .await
        .map_err(|e| StartupError::Store(e.to_string()))?;
    if let Some(read) = database.replica_options() {
        let read = booking_postgres::PgConfig {
            clock: pg.clock,
            ..read
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
