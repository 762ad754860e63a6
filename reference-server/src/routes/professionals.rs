//! Professionals: create, read, update, search; schedules; availability.

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use booking_core::schedule::ScheduleInput;
use booking_core::store::ProfessionalQuery;
use booking_core::store::Registered;
use booking_core::{
    Category, NewProfessional, Principal, ProfessionalId, ProfessionalPatch, TimeRange, TokenHash,
};
use chrono::Duration;
use utoipa::IntoParams;

use super::{json, require_admin};
use crate::AppState;
use crate::auth::Caller;
use crate::cursor::{self, QueryDigest};
use crate::extract::{DeferredJson, IdPath, JsonBody, QueryParams};
use crate::idempotency::IdempotentRequest;
use crate::model::{
    Availability, CreatedProfessional, NewProfessionalDoc, ProfessionalList, ProfessionalPatchDoc,
    ProfessionalView, ScheduleDoc, ScheduleInputDoc, SlotView,
};
use crate::problem::Problem;

/// Creates a professional (admin only) and returns their API token once.
#[utoipa::path(
    post,
    path = "/v1/professionals",
    tag = "professionals",
    request_body = NewProfessionalDoc,
    params(("Idempotency-Key" = String, Header, description = "1 to 255 visible ASCII characters")),
    responses((status = 201, description = "The professional, with its API token (shown only once)", body = CreatedProfessional)),
    security(("bearer" = []))
)]
pub async fn create_professional(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Extension(request): Extension<IdempotentRequest>,
    JsonBody(input): JsonBody<NewProfessional>,
) -> Result<Response, Problem> {
    require_admin(actor)?;
    // Derived from the request, so a retry or a replay yields the same token (see
    // `crate::secrets`).
    let request_ref = request.request_ref();
    let token = state.token_secret().api_token(&request_ref)?;
    let p = state
        .engine()
        .register_professional(&input, TokenHash::of(&token), Some(&request_ref))
        .await?;
    if let Registered::Existing(existing) = &p {
        let owner = Principal::Professional(existing.id);
        crate::secrets::ensure_owner(&state, &token, owner).await?;
    }
    Ok(json(
        StatusCode::CREATED,
        &CreatedProfessional {
            professional: ProfessionalView::from(p.get()),
            api_token: token,
        },
    ))
}

/// A professional.
#[utoipa::path(
    get,
    path = "/v1/professionals/{id}",
    tag = "professionals",
    params(("id" = Uuid, Path, description = "Professional id")),
    responses((status = 200, description = "The professional", body = ProfessionalView)),
    security(("bearer" = []))
)]
pub async fn get_professional(
    State(state): State<AppState>,
    _caller: Caller,
    IdPath(id): IdPath<ProfessionalId>,
) -> Result<Response, Problem> {
    let p = state.engine().get_professional(id).await?;
    Ok(json(StatusCode::OK, &ProfessionalView::from(&p)))
}

/// Partially updates a professional (admin or the professional).
#[utoipa::path(
    patch,
    path = "/v1/professionals/{id}",
    tag = "professionals",
    params(("id" = Uuid, Path, description = "Professional id")),
    request_body = ProfessionalPatchDoc,
    responses((status = 200, description = "The updated professional", body = ProfessionalView)),
    security(("bearer" = []))
)]
pub async fn update_professional(
    State(state): State<AppState>,
    Caller(actor): Caller,
    IdPath(id): IdPath<ProfessionalId>,
    body: DeferredJson,
) -> Result<Response, Problem> {
    // Existence and permission before the body: 404/403 come before 400/422.
    let engine = state.engine();
    engine.may_manage_professional(actor, id).await?;
    let patch: ProfessionalPatch = body.parse()?;
    let p = engine.update_professional(actor, id, &patch).await?;
    Ok(json(StatusCode::OK, &ProfessionalView::from(&p)))
}

/// Search filters of `GET /v1/professionals`.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct SearchParams {
    /// Only this category (a lower-case slug).
    #[param(pattern = r"^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$")]
    category: Option<String>,
    /// Minimum hourly rate in cents, inclusive.
    #[param(minimum = 0, maximum = 9223372036854775807_i64)]
    min_rate_cents: Option<i64>,
    /// Maximum hourly rate in cents, inclusive; not less than `min_rate_cents`.
    #[param(minimum = 0, maximum = 9223372036854775807_i64)]
    max_rate_cents: Option<i64>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    /// `next_cursor` of the previous page of the same query (any other value: 400).
    #[param(pattern = r"^[A-Za-z0-9_-]{44}$")]
    cursor: Option<String>,
}

/// Active professionals, ordered by `(hourly_rate_cents, id)`.
///
/// The geo filters (`lat`, `lng`, `radius_km`) and the text filter `q` are not supported
/// yet: a request that sends any of them is refused with 422 `validation_failed`.
#[utoipa::path(
    get,
    path = "/v1/professionals",
    tag = "professionals",
    params(SearchParams),
    responses((status = 200, description = "A page of professionals", body = ProfessionalList)),
    security(("bearer" = []))
)]
pub async fn search_professionals(
    State(state): State<AppState>,
    _caller: Caller,
    mut q: QueryParams,
) -> Result<Response, Problem> {
    for unsupported in ["lat", "lng", "radius_km", "q"] {
        if q.raw(unsupported).is_some() {
            q.error(unsupported, "not supported yet");
        }
    }
    let category = q.get_with(
        "category",
        "must be a lower-case slug of 1-64 characters (a-z, 0-9, -)",
        |s| Category::parse(s).ok(),
    );
    let rate = |s: &str| s.parse::<i64>().ok().filter(|n| *n >= 0);
    let min_rate_cents = q.get_with("min_rate_cents", "must be a non-negative integer", rate);
    let max_rate_cents = q.get_with("max_rate_cents", "must be a non-negative integer", rate);
    if let (Some(min), Some(max)) = (min_rate_cents, max_rate_cents)
        && min > max
    {
        q.error("max_rate_cents", "must not be less than min_rate_cents");
    }
    let limit = q.limit();
    let digest = QueryDigest::of(
        "professionals",
        &[
            ("category", category.as_ref().map(ToString::to_string)),
            ("min_rate_cents", min_rate_cents.map(|n| n.to_string())),
            ("max_rate_cents", max_rate_cents.map(|n| n.to_string())),
        ],
    );
    let raw_cursor = q.raw("cursor").map(str::to_owned);
    q.finish()?;
    let after = raw_cursor.map(|c| cursor::decode(&c, digest)).transpose()?;
    let page = state
        .engine()
        .search_professionals(&ProfessionalQuery {
            category,
            min_rate_cents,
            max_rate_cents,
            limit,
            after,
        })
        .await?;
    Ok(json(
        StatusCode::OK,
        &ProfessionalList {
            data: page.items.iter().map(ProfessionalView::from).collect(),
            next_cursor: page.next_cursor.map(|c| cursor::encode(&c, digest)),
        },
    ))
}

/// Replaces a professional's schedule (admin or the professional).
#[utoipa::path(
    put,
    path = "/v1/professionals/{id}/schedule",
    tag = "schedules",
    params(("id" = Uuid, Path, description = "Professional id")),
    request_body = ScheduleInputDoc,
    responses((status = 200, description = "The stored schedule", body = ScheduleDoc)),
    security(("bearer" = []))
)]
pub async fn put_schedule(
    State(state): State<AppState>,
    Caller(actor): Caller,
    IdPath(id): IdPath<ProfessionalId>,
    body: DeferredJson,
) -> Result<Response, Problem> {
    // Existence and permission come before parsing and validation, so that a caller who
    // may not change the schedule learns nothing from the body's errors.
    let engine = state.engine();
    engine.may_manage_professional(actor, id).await?;
    let input: ScheduleInput = body.parse()?;
    let schedule = input.validate()?;
    let stored = engine.set_schedule(actor, id, schedule).await?;
    Ok(json(StatusCode::OK, &stored))
}

/// A professional's schedule.
#[utoipa::path(
    get,
    path = "/v1/professionals/{id}/schedule",
    tag = "schedules",
    params(("id" = Uuid, Path, description = "Professional id")),
    responses((status = 200, description = "The schedule", body = ScheduleDoc)),
    security(("bearer" = []))
)]
pub async fn get_schedule(
    State(state): State<AppState>,
    _caller: Caller,
    IdPath(id): IdPath<ProfessionalId>,
) -> Result<Response, Problem> {
    let schedule = state.engine().get_schedule(id).await?;
    Ok(json(StatusCode::OK, &schedule))
}

/// Query of `GET /v1/professionals/{id}/availability`.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct AvailabilityParams {
    /// Window start, RFC 3339.
    from: chrono::DateTime<chrono::Utc>,
    /// Window end, RFC 3339; after `from` and at most 31 days after it (else 422).
    to: chrono::DateTime<chrono::Utc>,
    /// Slot length in minutes, 5 to 1440.
    #[param(minimum = 5, maximum = 1440)]
    duration_minutes: i64,
}

/// Bookable slots of a professional in a window.
#[utoipa::path(
    get,
    path = "/v1/professionals/{id}/availability",
    tag = "schedules",
    params(("id" = Uuid, Path, description = "Professional id"), AvailabilityParams),
    responses((status = 200, description = "Bookable slots, ascending", body = Availability)),
    security(("bearer" = []))
)]
pub async fn availability(
    State(state): State<AppState>,
    _caller: Caller,
    IdPath(id): IdPath<ProfessionalId>,
    mut q: QueryParams,
) -> Result<Response, Problem> {
    let from = q.required_instant("from");
    let to = q.required_instant("to");
    let duration = if q.raw("duration_minutes").is_none() {
        q.error("duration_minutes", "is required");
        None
    } else {
        q.get_with(
            "duration_minutes",
            "must be a whole number of minutes from 5 to 1440",
            |s| s.parse::<i64>().ok().and_then(Duration::try_minutes),
        )
    };
    let window = match (from, to) {
        (Some(f), Some(t)) if t <= f => {
            q.error("to", "must be after from");
            None
        }
        (Some(f), Some(t)) => match TimeRange::new(f, t) {
            Ok(w) => Some(w),
            Err(_) => {
                q.error("to", "the query range must be at most 31 days");
                None
            }
        },
        _ => None,
    };
    q.finish()?;
    let (Some(window), Some(duration)) = (window, duration) else {
        return Err(Problem::validation(Vec::new()));
    };
    let slots = state.engine().availability(id, window, duration).await?;
    Ok(json(
        StatusCode::OK,
        &Availability {
            slots: slots.iter().map(SlotView::from).collect(),
        },
    ))
}
