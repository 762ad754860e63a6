//! Stripe webhooks in: intake (verify, record once, answer at once) and the admin's
//! dead-letter list and replay. Processing happens in [`crate::workers`].

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use booking_core::engine::STRIPE;
use booking_core::webhook::inbox::{InboxEvent, InboxKey, NewInboxEvent, Recorded};
use booking_core::webhook::{DEFAULT_TOLERANCE, EventHeader, verify};
use booking_core::{Entity, Error};

use super::{json, require_admin};
use crate::AppState;
use crate::auth::Caller;
use crate::cursor::{self, QueryDigest};
use crate::extract::QueryParams;
use crate::model::{DeadLetterList, DeadLetterView, WebhookAck};
use crate::problem::Problem;

/// Receives a Stripe event: verifies `Stripe-Signature`, records the event id once in the
/// inbox and answers 200 at once (a duplicate delivery too, changing nothing). The event is
/// processed in the background, with retries and a dead letter after the last attempt.
#[utoipa::path(
    post,
    path = "/v1/webhooks/stripe",
    tag = "webhooks",
    params(("Stripe-Signature" = String, Header, description = "`t=<unix time>,v1=<hex HMAC-SHA256 of \"{t}.{raw body}\">`, one or more `v1`")),
    request_body(content = Object, content_type = "application/json", description = "A Stripe event, exactly as Stripe signed it"),
    responses(
        (status = 200, description = "Accepted, or a duplicate of an accepted event. A missing or bad signature is 400 `invalid_signature`; a body that is not a Stripe event, 400 `malformed_request`", body = WebhookAck)
    ),
    security(())
)]
pub async fn stripe_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let now = state.engine().now();
    let header = headers.get("stripe-signature").map(|v| v.as_bytes());
    if let Err(e) = verify(
        header,
        &body,
        state.webhook_secrets(),
        now,
        DEFAULT_TOLERANCE,
    ) {
        metrics::counter!("webhook_signature_failures_total").increment(1);
        return Err(Error::BadSignature(e).into());
    }
    let event = EventHeader::parse(&body)
        .map_err(|e| Problem::malformed(format!("not a Stripe event: {e}")))?;
    let key = InboxKey::new(STRIPE, &event.id).map_err(Problem::from)?;
    let new = NewInboxEvent::new(key, &event.type_name, body.to_vec()).map_err(Problem::from)?;
    let recorded = state.engine().store().record(&new, now).await?;
    metrics::counter!("webhook_events_received_total").increment(1);
    let duplicate = recorded == Recorded::Duplicate;
    if duplicate {
        metrics::counter!("webhook_duplicates_total").increment(1);
    } else {
        state.wake_inbox();
    }
    Ok(json(
        StatusCode::OK,
        &WebhookAck {
            received: true,
            duplicate,
        },
    ))
}

/// Inbound events whose processing failed after every retry, oldest first (admin).
#[utoipa::path(
    get,
    path = "/v1/admin/webhooks/dead-letters",
    tag = "webhooks",
    params(cursor::PageParams),
    responses((status = 200, description = "A page of dead-lettered events", body = DeadLetterList)),
    security(("bearer" = []))
)]
pub async fn list_dead_letters(
    State(state): State<AppState>,
    Caller(actor): Caller,
    q: QueryParams,
) -> Result<Response, Problem> {
    require_admin(actor)?;
    let digest = QueryDigest::of("dead-letters", &[]);
    let (limit, after) = cursor::requested_page(q, digest)?;
    let page = state
        .engine()
        .store()
        .list_dead_letters(limit, after)
        .await?;
    Ok(json(
        StatusCode::OK,
        &DeadLetterList {
            data: page.items.iter().map(DeadLetterView::from).collect(),
            next_cursor: page.next_cursor.map(|c| cursor::encode(&c, digest)),
        },
    ))
}

/// Puts a dead-lettered event back in the queue, due now with its attempts reset (admin).
/// The answer is the event as queued; processing follows in the background.
#[utoipa::path(
    post,
    path = "/v1/admin/webhooks/dead-letters/{event_id}/replay",
    tag = "webhooks",
    params(
        ("event_id" = String, Path, description = "The Stripe event id (`evt_…`)"),
        ("Idempotency-Key" = String, Header, description = "1 to 255 visible ASCII characters")
    ),
    responses((status = 200, description = "The event, pending again", body = DeadLetterView)),
    security(("bearer" = []))
)]
pub async fn replay_dead_letter(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(event_id): Path<String>,
) -> Result<Response, Problem> {
    require_admin(actor)?;
    let key = InboxKey::new(STRIPE, event_id)
        .map_err(|_| Problem::from(Error::NotFound(Entity::InboxEvent)))?;
    let now = state.engine().now();
    let event: InboxEvent = state.engine().store().replay_dead_letter(&key, now).await?;
    metrics::counter!("webhook_replays_total").increment(1);
    state.wake_inbox();
    Ok(json(StatusCode::OK, &DeadLetterView::from(&event)))
}
