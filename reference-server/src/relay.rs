//! The outbox relay to NATS JetStream (when `NATS_URL` is set).
//!
//! A relay claims the next unmarked outbox events for [`Consumer::Nats`]
//! ([`booking_core::store::OutboxStore::claim_events`]: at most one per booking, so per
//! booking events leave in the order they happened), publishes each to the `BOOKINGS`
//! stream on subject `bookings.<event_type>` with header `Nats-Msg-Id` = the event id,
//! waits for JetStream's acknowledgements and marks the acknowledged events. Nothing is
//! held in a database transaction while it talks to NATS.
//!
//! * **At least once, deduplicated.** A relay that dies between publishing and marking
//!   leaves its claim to run out ([`CLAIM_LEASE`]); the events are claimed again and
//!   published again with the same `Nats-Msg-Id`, which JetStream drops inside the stream's
//!   duplicate window ([`DUPLICATE_WINDOW`], longer than the lease).
//! * **Several instances.** Claims are exclusive (`FOR UPDATE SKIP LOCKED` on PostgreSQL),
//!   so any number of server instances can run the relay at once.
//! * **NATS down.** Publishing fails, nothing is marked, and the relay backs off
//!   exponentially (with full jitter, up to [`MAX_BACKOFF`]) and reconnects; the events
//!   wait in the outbox.
//!
//! Metrics: `outbox_events_published_total`, `outbox_publish_failures_total`,
//! `outbox_relay_lag_seconds` (from the event's `occurred_at` to its acknowledgement).

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use axum::body::Bytes;
use booking_core::events::{Consumer, DomainEvent};
use booking_core::webhook::{Next, RetryPolicy};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::AppState;
use crate::model::EventView;

/// How long a claim keeps its events from other relays.
pub const CLAIM_LEASE: chrono::Duration = chrono::Duration::seconds(30);
/// JetStream's duplicate window on the stream the relay creates.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
/// Events claimed at once.
pub const BATCH: usize = 256;
/// The longest pause between attempts while NATS is unreachable.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How often an idle relay looks for new events.
const IDLE_POLL: Duration = Duration::from_millis(200);

/// Where the relay publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsConfig {
    /// `NATS_URL`.
    pub url: String,
    /// The stream (`BOOKINGS`).
    pub stream: String,
    /// The subject prefix (`bookings`): events go to `<prefix>.<event_type>`.
    pub subject_prefix: String,
}

impl NatsConfig {
    /// The contract's stream and subjects on the server at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            stream: "BOOKINGS".into(),
            subject_prefix: "bookings".into(),
        }
    }
}

/// Why a publishing round failed.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// NATS could not be reached or refused the stream.
    #[error("NATS: {0}")]
    Nats(String),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] booking_core::Error),
}

/// A connected relay.
#[derive(Debug, Clone)]
pub struct Relay {
    config: NatsConfig,
    js: jetstream::Context,
}

impl Relay {
    /// Connects to NATS and makes sure the stream exists (created if missing, with the
    /// subjects `<prefix>.>` and the duplicate window).
    pub async fn connect(config: NatsConfig) -> Result<Self, RelayError> {
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(5))
            .request_timeout(Some(Duration::from_secs(10)))
            .connect(config.url.as_str())
            .await
            .map_err(|e| RelayError::Nats(e.to_string()))?;
        let js = jetstream::new(client);
        js.get_or_create_stream(stream::Config {
            name: config.stream.clone(),
            subjects: vec![format!("{}.>", config.subject_prefix)],
            duplicate_window: DUPLICATE_WINDOW,
            ..Default::default()
        })
        .await
        .map_err(|e| RelayError::Nats(e.to_string()))?;
        Ok(Self { config, js })
    }

    /// The subject of `event`.
    pub fn subject(&self, event: &DomainEvent) -> String {
        format!("{}.{}", self.config.subject_prefix, event.kind.as_str())
    }

    /// Publishes `events` (pipelined) and returns those JetStream acknowledged, in order.
    /// The first failure ends the round: later events are not acknowledged either.
    pub async fn publish(&self, events: &[DomainEvent]) -> Result<Vec<DomainEvent>, RelayError> {
        let mut pending = Vec::with_capacity(events.len());
        for event in events {
            let body = serde_json::to_vec(&EventView::from(event))
                .map_err(|e| RelayError::Nats(format!("serialising an event: {e}")))?;
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Nats-Msg-Id", event.id.to_string().as_str());
            let ack = self
                .js
                .publish_with_headers(self.subject(event), headers, Bytes::from(body))
                .await
                .map_err(|e| RelayError::Nats(e.to_string()))?;
            pending.push((event, ack));
        }
        let mut acked = Vec::with_capacity(pending.len());
        for (event, ack) in pending {
            match ack.await {
                Ok(_) => acked.push(event.clone()),
                Err(e) => {
                    if acked.is_empty() {
                        return Err(RelayError::Nats(e.to_string()));
                    }
                    break;
                }
            }
        }
        Ok(acked)
    }

    /// One round: claims up to `limit` events, publishes them and marks the acknowledged
    /// ones; returns how many were marked.
    pub async fn round(&self, state: &AppState, limit: usize) -> Result<usize, RelayError> {
        let engine = state.engine();
        let store = engine.store();
        let claim = store
            .claim_events(Consumer::Nats, engine.now(), limit, CLAIM_LEASE)
            .await?;
        if claim.events.is_empty() {
            return Ok(0);
        }
        let acked = match self.publish(&claim.events).await {
            Ok(a) => a,
            Err(e) => {
                metrics::counter!("outbox_publish_failures_total").increment(1);
                return Err(e);
            }
        };
        let now = engine.now();
        let ids: Vec<_> = acked.iter().map(|e| e.id).collect();
        let marked = store
            .mark_events(Consumer::Nats, claim.lease, &ids, now)
            .await?;
        metrics::counter!("outbox_events_published_total").increment(marked as u64);
        for e in &acked {
            let lag = (now - e.occurred_at).num_milliseconds().max(0) as f64 / 1000.0;
            metrics::histogram!("outbox_relay_lag_seconds").record(lag);
        }
        if acked.len() < claim.events.len() {
            metrics::counter!("outbox_publish_failures_total").increment(1);
        }
        Ok(marked)
    }
}

/// Spawns the relay loop: connect (retrying with backoff), publish rounds while there are
/// events, poll when idle; ends soon after `shutdown` becomes `true`.
pub fn spawn(
    state: AppState,
    config: NatsConfig,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut relay: Option<Relay> = None;
        let mut failures: u32 = 0;
        loop {
            let pause = match relay.as_ref() {
                None => match Relay::connect(config.clone()).await {
                    Ok(r) => {
                        tracing::info!(url = %config.url, stream = %config.stream, "outbox relay connected to NATS");
                        relay = Some(r);
                        failures = 0;
                        Duration::ZERO
                    }
                    Err(e) => {
                        failures = failures.saturating_add(1);
                        tracing::warn!(error = %e, "outbox relay cannot reach NATS; retrying");
                        backoff(failures)
                    }
                },
                Some(r) => match r.round(&state, BATCH).await {
                    Ok(n) if n >= BATCH => Duration::ZERO,
                    Ok(_) => {
                        failures = 0;
                        IDLE_POLL
                    }
                    Err(e) => {
                        failures = failures.saturating_add(1);
                        tracing::warn!(error = %e, "outbox relay round failed; backing off");
                        if matches!(e, RelayError::Nats(_)) {
                            relay = None;
                        }
                        backoff(failures)
                    }
                },
            };
            tokio::select! {
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        break;
                    }
                }
                _ = tokio::time::sleep(pause) => {}
            }
        }
        tracing::debug!("outbox relay stopped");
    })
}

/// Full-jitter exponential backoff after `failures` failures in a row (1 or more): uniform
/// in `[0, min(MAX_BACKOFF, 100 ms * 2^failures))`, from the engine's [`RetryPolicy`].
fn backoff(failures: u32) -> Duration {
    let policy = RetryPolicy {
        base: chrono::Duration::milliseconds(200),
        cap: chrono::Duration::from_std(MAX_BACKOFF).unwrap_or(chrono::Duration::MAX),
        max_attempts: u32::MAX,
        ..RetryPolicy::default()
    };
    let random = crate::workers::jitter();
    match policy.next(failures, random) {
        Next::RetryIn(delay) => delay.to_std().unwrap_or(MAX_BACKOFF),
        // Only after u32::MAX failures: the relay never gives up, it waits the longest.
        Next::DeadLetter => MAX_BACKOFF.mul_f64(random),
    }
}
