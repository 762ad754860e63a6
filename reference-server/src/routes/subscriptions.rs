//! Outbound webhooks, admin side: subscriptions and their delivery logs. Sending happens
//! in [`crate::outbound`].

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine as _;
use booking_core::webhook::outbound::{NewSubscription, Subscription};
use booking_core::{DeliveryId, Entity, Error, FieldError, ProfessionalId, SubscriptionId};
use sha2::{Digest, Sha256};

use super::{json, require_admin};
use crate::AppState;
use crate::auth::Caller;
use crate::cursor::{self, QueryDigest};
use crate::extract::{IdPath, JsonBody, QueryParams};
use crate::idempotency::IdempotentRequest;
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

/// The id of the subscription created by `request`: a UUID v7 stamped with the key's first
/// use, its random bits taken from the request's reference. Every attempt of one request
/// gets the same id, so a retry after a crash (whose first attempt created the subscription
/// but stored no answer) finds that subscription instead of making a second one.
pub fn subscription_id_for(request: &IdempotentRequest) -> SubscriptionId {
    let digest = Sha256::digest(format!("webhook-subscription:{}", request.request_ref()));
    let mut bits = [0u8; 10];
    bits.copy_from_slice(&digest[..10]);
    let millis = u64::try_from(request.first_seen.timestamp_millis()).unwrap_or(0);
    SubscriptionId::from_uuid(uuid::Builder::from_unix_timestamp_millis(millis, &bits).into_uuid())
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
    Extension(idempotent): Extension<IdempotentRequest>,
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
    let mut subscription = Subscription::new(request, new_secret()?, state.engine().now());
    subscription.id = subscription_id_for(&idempotent);
    let store = state.engine().store();
    match store.create_subscription(&subscription).await {
        Ok(()) => {}
        // An earlier attempt of this very request created it: answer with that one.
        Err(Error::AlreadyExists(Entity::WebhookSubscription)) => {
            subscription = store
                .get_subscription(subscription.id)
                .await?
                .ok_or(Error::AlreadyExists(Entity::WebhookSubscription))?;
        }
        Err(e) => return Err(e.into()),
    }
    Ok(json(
        StatusCode::CREATED,
        &CreatedSubscription::from(&subscription),
    ))
}

/// Outbound webhook subscriptions, oldest first (admin). Secrets are not listed.
#[utoipa::path(
    get,
    path = "/v1/admin/webhook-subscriptions",
    tag = "webhooks",
    params(cursor::PageParams),
    responses((status = 200, description = "A page of subscriptions", body = SubscriptionList)),
    security(("bearer" = []))
)]
pub async fn list_subscriptions(
    State(state): State<AppState>,
    Caller(actor): Caller,
    q: QueryParams,
) -> Result<Response, Problem> {
    require_admin(actor)?;
    let digest = QueryDigest::of("webhook-subscriptions", &[]);
    let (limit, after) = cursor::requested_page(q, digest)?;
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
    params(("id" = Uuid, Path, description = "Subscription id"), cursor::PageParams),
    responses((status = 200, description = "A page of deliveries", body = DeliveryList)),
    security(("bearer" = []))
)]
pub async fn list_deliveries(
    State(state): State<AppState>,
    Caller(actor): Caller,
    IdPath(id): IdPath<SubscriptionId>,
    q: QueryParams,
) -> Result<Response, Problem> {
    require_admin(actor)?;
    let digest = QueryDigest::of(
        "webhook-deliveries",
        &[("subscription", Some(id.to_string()))],
    );
    let (limit, after) = cursor::requested_page(q, digest)?;
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

#[cfg(test)]
mod tests {
    use booking_core::idempotency::{Fingerprint, IdempotencyKey, LeaseId, Scope};
    use chrono::{TimeZone, Utc};

    use super::*;

    fn request(key: &str, fingerprint: u8) -> IdempotentRequest {
        let first_seen = Utc
            .with_ymd_and_hms(2027, 3, 1, 9, 0, 0)
            .single()
            .expect("instant");
        IdempotentRequest {
            scope: Scope::new("admin"),
            key: IdempotencyKey::parse(key).expect("key"),
            fingerprint: Fingerprint([fingerprint; 32]),
            first_seen,
            lease: LeaseId::new_at(first_seen),
        }
    }

    #[test]
    fn every_attempt_of_one_request_gets_one_subscription_id() {
        let a = request("k1", 1);
        let mut retry = a.clone();
        retry.lease = LeaseId::new_at(a.first_seen + chrono::Duration::seconds(5));
        let id = subscription_id_for(&a);
        assert_eq!(id, subscription_id_for(&retry), "a retry finds the same id");
        assert_eq!(id.as_uuid().get_version_num(), 7);
        assert_ne!(id, subscription_id_for(&request("k2", 1)));
        assert_ne!(id, subscription_id_for(&request("k1", 2)));
    }

    #[test]
    fn secrets_are_fresh_and_well_formed() {
        let a = new_secret().expect("secret");
        let b = new_secret().expect("secret");
        assert_ne!(a, b);
        assert!(a.starts_with("whsec_") && a.len() == 6 + 43);
    }
}
