//! The OpenAPI 3.1 document served at `/openapi.json`.
//!
//! Operations and schemas come from the handlers' `#[utoipa::path]` attributes and the
//! types in [`crate::model`]; the error responses every operation can give are added from
//! one table here, all pointing at the shared `Problem` response.

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::model;
use crate::routes::{bookings, clients, ops, professionals};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Booking engine reference server",
        description = "Clients book time with professionals; never double-booked. Errors are RFC 9457 problem documents with a stable `code`. Every POST under /v1 requires an `Idempotency-Key` header; a completed request replays with `Idempotent-Replayed: true`.",
        license(name = "MIT OR Apache-2.0")
    ),
    paths(
        clients::create_client,
        professionals::create_professional,
        professionals::search_professionals,
        professionals::get_professional,
        professionals::update_professional,
        professionals::put_schedule,
        professionals::get_schedule,
        professionals::availability,
        bookings::create_booking,
        bookings::list_bookings,
        bookings::get_booking,
        bookings::cancel_booking,
        bookings::reschedule_booking,
        ops::healthz,
        ops::readyz,
        ops::metrics,
        ops::openapi,
    ),
    components(schemas(model::ProblemDoc, model::FieldErrorDoc)),
    modifiers(&Security, &Problems),
    tags(
        (name = "clients"), (name = "professionals"), (name = "schedules"),
        (name = "bookings"), (name = "operations")
    )
)]
struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Error statuses per operation, beyond the ones every `/v1` operation can give
/// (401, 408, 500, 503).
const ERRORS: &[(&str, &str, &[u16])] = &[
    ("post", "/v1/clients", &[400, 403, 409, 413, 422]),
    ("post", "/v1/professionals", &[400, 403, 409, 413, 422]),
    ("get", "/v1/professionals", &[400, 422]),
    ("get", "/v1/professionals/{id}", &[404]),
    (
        "patch",
        "/v1/professionals/{id}",
        &[400, 403, 404, 413, 422],
    ),
    (
        "put",
        "/v1/professionals/{id}/schedule",
        &[400, 403, 404, 413, 422],
    ),
    ("get", "/v1/professionals/{id}/schedule", &[404]),
    ("get", "/v1/professionals/{id}/availability", &[404, 422]),
    ("post", "/v1/bookings", &[400, 403, 404, 409, 413, 422]),
    ("get", "/v1/bookings", &[400, 422]),
    ("get", "/v1/bookings/{id}", &[404]),
    (
        "post",
        "/v1/bookings/{id}/cancel",
        &[400, 403, 404, 409, 413, 422],
    ),
    (
        "post",
        "/v1/bookings/{id}/reschedule",
        &[400, 403, 404, 409, 413, 422],
    ),
    ("get", "/readyz", &[503]),
];

struct Problems;

impl Modify for Problems {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.responses.insert(
            "Problem".to_owned(),
            RefOr::T(
                ResponseBuilder::new()
                    .description("An RFC 9457 problem document; `code` says what went wrong")
                    .content(
                        crate::problem::PROBLEM_JSON,
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("Problem")))
                            .build(),
                    )
                    .build(),
            ),
        );
        for (method, path, extra) in ERRORS {
            let Some(item) = openapi.paths.paths.get_mut(*path) else {
                continue;
            };
            let op: Option<&mut Operation> = match *method {
                "get" => item.get.as_mut(),
                "post" => item.post.as_mut(),
                "put" => item.put.as_mut(),
                "patch" => item.patch.as_mut(),
                _ => None,
            };
            let Some(op) = op else { continue };
            let common: &[u16] = if path.starts_with("/v1/") {
                &[401, 408, 500, 503]
            } else {
                &[]
            };
            for status in extra.iter().chain(common) {
                op.responses.responses.insert(
                    status.to_string(),
                    RefOr::Ref(Ref::from_response_name("Problem")),
                );
            }
        }
    }
}

/// The document as a value.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document as JSON bytes.
pub fn json() -> Vec<u8> {
    serde_json::to_vec(&document()).unwrap_or_else(|_| b"{}".to_vec())
}
