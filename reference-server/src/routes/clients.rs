//! `POST /v1/clients`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use booking_core::{NewClient, TokenHash};

use super::{json, new_token, require_admin};
use crate::AppState;
use crate::auth::Caller;
use crate::extract::JsonBody;
use crate::model::{CreatedClient, NewClientDoc};
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
    JsonBody(input): JsonBody<NewClient>,
) -> Result<Response, Problem> {
    require_admin(actor)?;
    let token = new_token()?;
    let client = state
        .engine()
        .create_client(&input, TokenHash::of(&token))
        .await?;
    Ok(json(
        StatusCode::CREATED,
        &CreatedClient::new(&client, token),
    ))
}
