//! Professionals: create, read, update, search; schedules; availability.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use booking_core::schedule::ScheduleInput;
use booking_core::search::{GeoFilter, TextQuery};
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
    Availability, CreatedProfessional, ProfessionalList, ProfessionalView, SlotView,
};
use crate::openapi::schemas::{
    NewProfessionalDoc, ProfessionalPatchDoc, ScheduleDoc, ScheduleInputDoc,
};
use crate::problem::Problem;
use crate::search_cache::page_key;
use sha2::{Digest, Sha256};

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
    // After the commit: the next search misses the cache and sees this professional.
    state.search_cache().bump().await;
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
    state.search_cache().bump().await;
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
    /// Latitude of the search centre in degrees. `lat`, `lng` and `radius_km` come together
    /// or not at all (422 otherwise); with them, only professionals within `radius_km`
    /// (great-circle distance on a sphere of 6371.0088 km) are returned, nearest first, each
    /// with `distance_km`.
    #[param(minimum = -90, maximum = 90)]
    lat: Option<f64>,
    /// Longitude of the search centre in degrees.
    #[param(minimum = -180, maximum = 180)]
    lng: Option<f64>,
    /// Search radius in kilometres, greater than 0 and at most 20000.
    #[param(exclusive_minimum = 0, maximum = 20000)]
    radius_km: Option<f64>,
    /// Text: trimmed, 1 to 100 characters, no control characters. Split at whitespace into
    /// terms; a professional matches when every term is a substring of their name or of
    /// their category, ignoring the case of ASCII letters (`ann` finds "Anna" and "JOANNE";
    /// `é` does not find "É").
    #[param(min_length = 1, max_length = 100)]
    q: Option<String>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    /// `next_cursor` of the previous page of the same query (any other value: 400).
    #[param(pattern = r"^[A-Za-z0-9_-]{44}$")]
    cursor: Option<String>,
}

/// Active professionals matching every filter given.
///
/// Ordered by `(hourly_rate_cents, id)`; with a geo filter (`lat`, `lng`, `radius_km`) by
/// distance, then id, and each result carries `distance_km`.
#[utoipa::path(
    get,
    path = "/v1/professionals",
    tag = "professionals",
    params(
        SearchParams,
        ("If-None-Match" = Option<String>, Header, description = "An `ETag` of an earlier answer: 304 if the page is unchanged")
    ),
    responses(
        (status = 200, description = "A page of professionals", body = ProfessionalList,
         headers(("ETag" = String, description = "Digest of this page"),
                 ("Cache-Control" = String, description = "`private, no-cache`: revalidate with If-None-Match"))),
        (status = 304, description = "Not modified: the page named by If-None-Match is still current",
         headers(("ETag" = String, description = "Digest of the page")))
    ),
    security(("bearer" = []))
)]
pub async fn search_professionals(
    State(state): State<AppState>,
    _caller: Caller,
    headers: HeaderMap,
    mut q: QueryParams,
) -> Result<Response, Problem> {
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
    let near = geo_filter(&mut q);
    let text = match q.raw("q").map(str::to_owned) {
        Some(raw) => q.take(TextQuery::parse(&raw)),
        None => None,
    };
    let mut filters = vec![
        ("category", category.as_ref().map(ToString::to_string)),
        ("min_rate_cents", min_rate_cents.map(|n| n.to_string())),
        ("max_rate_cents", max_rate_cents.map(|n| n.to_string())),
    ];
    // Appended only when present, so that cursors of rate-ordered queries stay valid.
    if let Some(g) = &near {
        let c = g.center();
        filters.push((
            "near",
            Some(format!("{:?},{:?},{:?}", c.lat, c.lng, g.radius_km())),
        ));
    }
    if let Some(t) = &text {
        filters.push(("q", Some(t.terms().join(" "))));
    }
    let digest = QueryDigest::of("professionals", &filters);
    let (limit, after) = cursor::requested_page(q, digest)?;
    filters.push(("limit", Some(limit.to_string())));
    filters.push(("cursor", after.map(|c| cursor::encode(&c, digest))));
    let key = page_key(&filters);
    let cache = state.search_cache();
    let lookup = cache.lookup(&key).await;
    if let Some(page) = lookup.as_ref().and_then(|l| l.page.clone()) {
        return Ok(cached_page(page, &headers));
    }
    let query = ProfessionalQuery {
        category,
        min_rate_cents,
        max_rate_cents,
        near,
        text,
        limit,
        after,
    };
    let page = state.engine().search_professionals(&query).await?;
    let list = ProfessionalList {
        data: page
            .items
            .iter()
            .map(|p| ProfessionalView {
                distance_km: query.distance_km(p),
                ..ProfessionalView::from(p)
            })
            .collect(),
        next_cursor: page.next_cursor.map(|c| cursor::encode(&c, digest)),
    };
    let body = Bytes::from(
        serde_json::to_vec(&list)
            .map_err(|e| Problem::internal(&format!("serialising a search page: {e}")))?,
    );
    if let Some(l) = lookup {
        cache.put(l.generation, &key, body.clone()).await;
    }
    Ok(cached_page(body, &headers))
}

/// `Cache-Control` of search answers: any cache may keep them but must revalidate (a
/// change of a professional is visible at once), which `ETag`/`If-None-Match` makes cheap.
const SEARCH_CACHE_CONTROL: &str = "private, no-cache";

/// A search page with its `ETag` (a digest of the body), or 304 when `If-None-Match`
/// names it.
fn cached_page(body: Bytes, request: &HeaderMap) -> Response {
    let digest = Sha256::digest(&body);
    let etag = format!("\"{}\"", hex::encode(&digest[..16]));
    let matches = request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|t| t == "*" || t == etag || t.strip_prefix("W/") == Some(etag.as_str()));
    let mut res = if matches {
        let mut r = Response::new(axum::body::Body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        let mut r = Response::new(axum::body::Body::from(body));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        r
    };
    let h = res.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(SEARCH_CACHE_CONTROL),
    );
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    res
}

/// `lat`, `lng` and `radius_km`: all three or none; each a finite number in range.
fn geo_filter(q: &mut QueryParams) -> Option<GeoFilter> {
    const NAMES: [&str; 3] = ["lat", "lng", "radius_km"];
    let given = NAMES.map(|n| q.raw(n).is_some());
    if given.iter().all(|g| !g) {
        return None;
    }
    let number = |s: &str| s.trim().parse::<f64>().ok().filter(|n| n.is_finite());
    let mut values = [None; 3];
    for (i, name) in NAMES.into_iter().enumerate() {
        if given[i] {
            values[i] = q.get_with(name, "must be a number", number);
        } else {
            q.error(name, "is required with lat, lng and radius_km");
        }
    }
    match values {
        [Some(lat), Some(lng), Some(radius)] => q.take(GeoFilter::new(lat, lng, radius)),
        _ => None,
    }
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
