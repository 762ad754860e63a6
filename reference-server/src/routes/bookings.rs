//! Bookings: create, read, list, cancel, reschedule.

use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use booking_core::idempotency::StoredResponse;
use booking_core::{
    Actor, AnsweredRequest, Booking, BookingFilter, BookingId, BookingRequest, BookingStatus,
    Error, FieldError, Inserted, ProfessionalId, TimeRange,
};
use utoipa::IntoParams;

use super::json;
use crate::AppState;
use crate::auth::Caller;
use crate::cursor::{self, QueryDigest};
use crate::extract::{IdPath, JsonBody, QueryParams, parse_instant};
use crate::idempotency::{
    AnswerStored, IdempotentRequest, PrefetchedBooking, live_response, stored_response,
};
use crate::model::{BookingList, BookingView, NewBookingBody, RescheduleBody};
use crate::problem::Problem;

/// Parses `start`/`end` of a body into a range, reporting every bad field.
fn parse_range(start: &str, end: &str, errors: &mut Vec<FieldError>) -> Option<TimeRange> {
    const MSG: &str = "must be an RFC 3339 instant such as 2027-03-01T09:00:00Z";
    let s = parse_instant(start);
    if s.is_none() {
        errors.push(FieldError::new("start", MSG));
    }
    let e = parse_instant(end);
    if e.is_none() {
        errors.push(FieldError::new("end", MSG));
    }
    match TimeRange::new(s?, e?) {
        Ok(r) => Some(r),
        Err(Error::Invalid(errs)) => {
            errors.extend(errs);
            None
        }
        Err(other) => {
            errors.push(FieldError::new("end", other.to_string()));
            None
        }
    }
}

fn conflict_metric(e: &Error) {
    if matches!(e, Error::SlotUnavailable) {
        metrics::counter!("booking_conflicts_total").increment(1);
    }
}

/// Books a slot (clients only). Without payments configured the booking is `confirmed`.
#[utoipa::path(
    post,
    path = "/v1/bookings",
    tag = "bookings",
    request_body = NewBookingBody,
    params(("Idempotency-Key" = String, Header, description = "1 to 255 visible ASCII characters")),
    responses((status = 201, description = "The booking (also when a retry finds the booking its first attempt created)", body = BookingView)),
    security(("bearer" = []))
)]
pub async fn create_booking(
    State(state): State<AppState>,
    Caller(actor): Caller,
    idem: Option<Extension<IdempotentRequest>>,
    prefetched: Option<Extension<PrefetchedBooking>>,
    JsonBody(body): JsonBody<NewBookingBody>,
) -> Result<Response, Problem> {
    let Actor::Client(client_id) = actor else {
        return Err(Problem::forbidden("only clients may book"));
    };
    let mut errors = Vec::new();
    let professional_id = body.professional_id.trim().parse::<ProfessionalId>().ok();
    if professional_id.is_none() {
        errors.push(FieldError::new("professional_id", "must be a UUID"));
    }
    let range = parse_range(&body.start, &body.end, &mut errors);
    let (Some(professional_id), Some(range), true) = (professional_id, range, errors.is_empty())
    else {
        return Err(Problem::validation(errors));
    };
    let engine = state.engine();
    let mut request = BookingRequest {
        client_id,
        professional_id,
        range,
        request_ref: None,
    };
    let (inserted, answered) = match idem {
        Some(Extension(i)) => {
            request.request_ref = Some(i.request_ref());
            // The 201 answer is stored in the booking's own atomic step.
            let answer = AnsweredRequest {
                scope: &i.scope,
                key: &i.key,
                lease: i.lease,
                context: prefetched.map(|Extension(PrefetchedBooking(c))| c),
                render: &created_response,
            };
            engine.create_booking_answered(&request, answer).await
        }
        None => engine.create_booking(&request).await.map(|i| (i, false)),
    }
    .inspect_err(conflict_metric)?;
    let booking = match inserted {
        Inserted::Created(b) => {
            metrics::counter!("bookings_created_total").increment(1);
            b
        }
        // The first attempt's booking, as a reader sees it now.
        Inserted::Existing(b) => engine.present(b),
    };
    let mut res = live_response(created_response(&booking));
    if answered {
        res.extensions_mut().insert(AnswerStored);
    }
    Ok(res)
}

/// The 201 answer for `booking`: its view, with `Location`.
fn created_response(booking: &Booking) -> StoredResponse {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/bookings/{}", booking.id)) {
        headers.insert(header::LOCATION, v);
    }
    // A view holds only strings and integers: serializing it cannot fail.
    let body = serde_json::to_vec(&BookingView::from(booking)).unwrap_or_default();
    stored_response(StatusCode::CREATED, &headers, body)
}

/// A booking (its client, its professional or the admin).
#[utoipa::path(
    get,
    path = "/v1/bookings/{id}",
    tag = "bookings",
    params(("id" = Uuid, Path, description = "Booking id")),
    responses((status = 200, description = "The booking", body = BookingView)),
    security(("bearer" = []))
)]
pub async fn get_booking(
    State(state): State<AppState>,
    Caller(actor): Caller,
    IdPath(id): IdPath<BookingId>,
) -> Result<Response, Problem> {
    let b = state.engine().get_booking(actor, id).await?;
    Ok(json(StatusCode::OK, &BookingView::from(&b)))
}

/// Filters of `GET /v1/bookings`.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ListParams {
    /// Only this status (`pending_payment`, `confirmed`, `cancelled`, `expired`).
    status: Option<crate::model::StatusView>,
    /// Only bookings starting at or after this instant (RFC 3339).
    from: Option<chrono::DateTime<chrono::Utc>>,
    /// Only bookings starting before this instant (RFC 3339); not before `from`.
    to: Option<chrono::DateTime<chrono::Utc>>,
    /// Only this professional's bookings.
    professional_id: Option<uuid::Uuid>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    /// `next_cursor` of the previous page of the same query (any other value: 400).
    #[param(pattern = r"^[A-Za-z0-9_-]{44}$")]
    cursor: Option<String>,
}

/// The caller's bookings (admin: all), ordered by `start`.
#[utoipa::path(
    get,
    path = "/v1/bookings",
    tag = "bookings",
    params(ListParams),
    responses((status = 200, description = "A page of bookings", body = BookingList)),
    security(("bearer" = []))
)]
pub async fn list_bookings(
    State(state): State<AppState>,
    Caller(actor): Caller,
    mut q: QueryParams,
) -> Result<Response, Problem> {
    let status = q.get_with(
        "status",
        "must be one of pending_payment, confirmed, cancelled, expired",
        |s| BookingStatus::parse(s).ok(),
    );
    let from = q.instant("from");
    let to = q.instant("to");
    if let (Some(f), Some(t)) = (from, to)
        && f > t
    {
        q.error("to", "must not be before from");
    }
    let professional_id = q.get_with("professional_id", "must be a UUID", |s| {
        s.trim().parse::<ProfessionalId>().ok()
    });
    let digest = QueryDigest::of(
        "bookings",
        &[
            ("caller", Some(actor.scope_name())),
            ("status", status.map(|s| s.as_str().to_owned())),
            ("from", from.map(|t| t.timestamp_micros().to_string())),
            ("to", to.map(|t| t.timestamp_micros().to_string())),
            ("professional_id", professional_id.map(|p| p.to_string())),
        ],
    );
    let (limit, after) = cursor::requested_page(q, digest)?;
    let page = state
        .engine()
        .list_bookings(
            actor,
            &BookingFilter {
                status,
                from,
                to,
                professional_id,
                limit: Some(limit),
                after,
            },
        )
        .await?;
    Ok(json(
        StatusCode::OK,
        &BookingList {
            data: page.items.iter().map(BookingView::from).collect(),
            next_cursor: page.next_cursor.map(|c| cursor::encode(&c, digest)),
        },
    ))
}

/// Cancels a booking (its client, its professional or the admin).
#[utoipa::path(
    post,
    path = "/v1/bookings/{id}/cancel",
    tag = "bookings",
    params(
        ("id" = Uuid, Path, description = "Booking id"),
        ("Idempotency-Key" = String, Header, description = "1 to 255 visible ASCII characters")
    ),
    responses((status = 200, description = "The cancelled booking", body = BookingView)),
    security(("bearer" = []))
)]
pub async fn cancel_booking(
    State(state): State<AppState>,
    Caller(actor): Caller,
    IdPath(id): IdPath<BookingId>,
) -> Result<Response, Problem> {
    let b = state.engine().cancel_booking(actor, id).await?;
    Ok(json(StatusCode::OK, &BookingView::from(&b)))
}

/// Moves a booking to a new range of the same length (its client only), atomically.
#[utoipa::path(
    post,
    path = "/v1/bookings/{id}/reschedule",
    tag = "bookings",
    params(
        ("id" = Uuid, Path, description = "Booking id"),
        ("Idempotency-Key" = String, Header, description = "1 to 255 visible ASCII characters")
    ),
    request_body = RescheduleBody,
    responses((status = 200, description = "The moved booking", body = BookingView)),
    security(("bearer" = []))
)]
pub async fn reschedule_booking(
    State(state): State<AppState>,
    Caller(actor): Caller,
    IdPath(id): IdPath<BookingId>,
    JsonBody(body): JsonBody<RescheduleBody>,
) -> Result<Response, Problem> {
    let mut errors = Vec::new();
    let Some(range) = parse_range(&body.start, &body.end, &mut errors) else {
        return Err(Problem::validation(errors));
    };
    let b = state
        .engine()
        .reschedule_booking(actor, id, range)
        .await
        .inspect_err(conflict_metric)?;
    Ok(json(StatusCode::OK, &BookingView::from(&b)))
}
