//! Outbound webhooks, admin side: subscriptions and their delivery logs. Sending happens
//! in [`crate::outbound`].

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine as _;
use booking_core::webhook::outbound::{NewSubscription, Subscription};
use booking_core::{DeliveryId, FieldError, ProfessionalId, SubscriptionId};
use utoipa::IntoParams;

use super::{json, require_admin};
use crate::AppState;
use crate::auth::Caller;
use crate::cursor::{self, QueryDigest};
use crate::extract::{IdPath, JsonBody, QueryParams};
use crate::model::{
    CreatedSubscription, DeliveryList, DeliveryView, NewSubscriptionBody, SubscriptionList,
    SubscriptionView,
};
use crate::outbound::{TargetError, check_target};
use crate::problem::Problem;

/// A fresh signing secret: `whsec_` and 32 random bytes in base64url (43 characters).
pub fn new_secret() -> Result<String, Problem> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| Problem::internal(&format!("no randomness for a secret: {e}")))?;
    Ok(format!(
        "whsec_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

/// Subscribes a URL to domain events (admin). The URL must be `http` or `https` and its
/// host must resolve to public addresses only (422 otherwise, unless the server allows
/// private targets). The answer carries the signing secret, shown only this once.
#[utoipa::path(
    post,
    path = "/v1/admin/webhook-subscriptions",
    tag = "webhooks",
    request_body = NewSubscriptionBody,
    params(("Idempotency-Key" = String, Header, description = "1 to 255 visible ASCII characters")),
    responses((status = 201, description = "The subscription, with its signing secret (shown only once)", body = CreatedSubscription)),
    security(("bearer" = []))
)]
pub async fn create_subscription(
    State(state): State<AppState>,
    Caller(actor): Caller,
    JsonBody(input): JsonBody<NewSubscriptionBody>,
) -> Result<Response, Problem> {
    require_admin(actor)?;
    let request = NewSubscription::validate(
        input.url.trim(),
        &input.event_types,
        input.professional_id.map(ProfessionalId::from_uuid),
    )?;
    if let Err(e) = check_target(&request.url, state.outbound_config().allow_private).await {
        let message = match e {
            TargetError::Private(_) => format!(
                "{e}; loopback and private targets are refused unless \
                 BOOKING_WEBHOOK_ALLOW_PRIVATE=true"
            ),
            _ => e.to_string(),
        };
        return Err(Problem::validation(vec![FieldError::new("url", message)]));
    }
    let subscription = Subscription::new(request, new_secret()?, state.engine().now());
    state
        .engine()
        .store()
        .create_subscription(&subscription)
        .await?;
    Ok(json(
        StatusCode::CREATED,
        &CreatedSubscription::from(&subscription),
    ))
}

/// Query of the subscription and delivery lists.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ListParams {
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    /// `next_cursor` of the previous page (any other value: 400).
    #[param(pattern = r"^[A-Za-z0-9_-]{44}$")]
    cursor: Option<String>,
}

/// Outbound webhook subscriptions, oldest first (admin). Secrets are not listed.
#[utoipa::path(
    get,
    path = "/v1/admin/webhook-subscriptions",
    tag = "webhooks",
    params(ListParams),
    responses((status = 200, description = "A page of subscriptions", body = SubscriptionList)),
    security(("bearer" = []))
)]
pub async fn list_subscriptions(
    State(state): State<AppState>,
    Caller(actor): Caller,
    mut q: QueryParams,
) -> Result<Response, Problem> {
    require_admin(actor)?;
    let limit = q.limit();
    let digest = QueryDigest::of("webhook-subscriptions", &[]);
    let raw_cursor = q.raw("cursor").map(str::to_owned);
    q.finish()?;
    let after = raw_cursor.map(|c| cursor::decode(&c, digest)).transpose()?;
    let page = state
        .engine()
        .store()
        .list_subscriptions(limit, after)
        .await?;
    Ok(json(
        StatusCode::OK,
        &SubscriptionList {
            data: page.items.iter().map(SubscriptionView::from).collect(),
            next_cursor: page.next_cursor.map(|c| cursor::encode(&c, digest)),
        },
    ))
}

/// Deletes a subscription and its delivery log (admin): nothing more is sent to it.
#[utoipa::path(
    delete,
    path = "/v1/admin/webhook-subscriptions/{id}",
    tag = "webhooks",
    params(("id" = Uuid, Path, description = "Subscription id")),
    responses((status = 204, description = "Deleted")),
    security(("bearer" = []))
)]
pub async fn delete_subscription(
    State(state): State<AppState>,
    Caller(actor): Caller,
    IdPath(id): IdPath<SubscriptionId>,
) -> Result<Response, Problem> {
    require_admin(actor)?;
    state.engine().store().delete_subscription(id).await?;
    let mut res = Response::new(axum::body::Body::empty());
    *res.status_mut() = StatusCode::NO_CONTENT;
    Ok(res)
}

/// A subscription's delivery log, oldest first (admin).
#[utoipa::path(
    get,
    path = "/v1/admin/webhook-subscriptions/{id}/deliveries",
    tag = "webhooks",
    params(("id" = Uuid, Path, description = "Subscription id"), ListParams),
    responses((status = 200, description = "A page of deliveries", body = DeliveryList)),
    security(("bearer" = []))
)]
pub async fn list_deliveries(
    State(state): State<AppState>,
    Caller(actor): Caller,
    IdPath(id): IdPath<SubscriptionId>,
    mut q: QueryParams,
) -> Result<Response, Problem> {
    require_admin(actor)?;
    let limit = q.limit();
    let digest = QueryDigest::of(
        "webhook-deliveries",
        &[("subscription", Some(id.to_string()))],
    );
    let raw_cursor = q.raw("cursor").map(str::to_owned);
    q.finish()?;
    let after = raw_cursor.map(|c| cursor::decode(&c, digest)).transpose()?;
    let page = state
        .engine()
        .store()
        .list_deliveries(id, limit, after)
        .await?;
    Ok(json(
        StatusCode::OK,
        &DeliveryList {
            data: page.items.iter().map(DeliveryView::from).collect(),
            next_cursor: page.next_cursor.map(|c| cursor::encode(&c, digest)),
        },
    ))
}

/// Sends a delivery again with the same delivery id (admin): it is due at once, with a new
/// 24-hour retry window; the attempt count continues.
#[utoipa::path(
    post,
    path = "/v1/admin/webhook-deliveries/{id}/redeliver",
    tag = "webhooks",
    params(
        ("id" = Uuid, Path, description = "Delivery id"),
        ("Idempotency-Key" = String, Header, description = "1 to 255 visible ASCII characters")
    ),
    responses((status = 202, description = "Queued again; sending follows in the background", body = DeliveryView)),
    security(("bearer" = []))
)]
pub async fn redeliver(
    State(state): State<AppState>,
    Caller(actor): Caller,
    IdPath(id): IdPath<DeliveryId>,
) -> Result<Response, Problem> {
    require_admin(actor)?;
    let now = state.engine().now();
    let delivery = state.engine().store().redeliver(id, now).await?;
    metrics::counter!("webhook_redeliveries_total").increment(1);
    Ok(json(StatusCode::ACCEPTED, &DeliveryView::from(&delivery)))
}
