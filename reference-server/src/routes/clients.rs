//! `POST /v1/clients`.

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use booking_core::store::Registered;
use booking_core::{NewClient, Principal, TokenHash};

use super::{json, require_admin};
use crate::AppState;
use crate::auth::Caller;
use crate::extract::JsonBody;
use crate::idempotency::IdempotentRequest;
use crate::model::CreatedClient;
use crate::openapi::schemas::NewClientDoc;
use crate::problem::Problem;

/// Creates a client (admin only) and returns their API token once.
#[utoipa::path(
    post,
    path = "/v1/clients",
    tag = "clients",
    request_body = NewClientDoc,
    params(("Idempotency-Key" = String, Header, description = "1 to 255 visible ASCII characters")),
    responses((status = 201, description = "The client, with its API token (shown only once)", body = CreatedClient)),
    security(("bearer" = []))
)]
pub async fn create_client(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Extension(request): Extension<IdempotentRequest>,
    JsonBody(input): JsonBody<NewClient>,
) -> Result<Response, Problem> {
    require_admin(actor)?;
    // Derived from the request, so a retry or a replay yields the same token (see
    // `crate::secrets`).
    let request_ref = request.request_ref();
    let token = state.token_secret().api_token(&request_ref)?;
    let client = state
        .engine()
        .register_client(&input, TokenHash::of(&token), Some(&request_ref))
        .await?;
    if let Registered::Existing(c) = &client {
        crate::secrets::ensure_owner(&state, &token, Principal::Client(c.id)).await?;
    }
    Ok(json(
        StatusCode::CREATED,
        &CreatedClient::new(client.get(), token),
    ))
}
