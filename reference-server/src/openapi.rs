//! The OpenAPI 3.1 document served at `/openapi.json`.
//!
//! Operations and schemas come from the handlers' `#[utoipa::path]` attributes, the types
//! in [`crate::model`] and the documentation-only mirrors in [`schemas`]; the error
//! responses each operation can give come from its [`ProblemCode`](crate::problem::ProblemCode)s
//! in [`errors`], all pointing at the shared `Problem` response.

pub mod errors;
pub mod schemas;

use utoipa::openapi::RefOr;
use utoipa::openapi::path::{Operation, ParameterIn, PathItem};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use self::errors::Problems;
use crate::routes::{bookings, clients, ops, professionals, subscriptions, webhooks};

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
        webhooks::stripe_webhook,
        webhooks::list_dead_letters,
        webhooks::replay_dead_letter,
        subscriptions::create_subscription,
        subscriptions::list_subscriptions,
        subscriptions::delete_subscription,
        subscriptions::list_deliveries,
        subscriptions::redeliver,
        ops::healthz,
        ops::readyz,
        ops::metrics,
        ops::openapi,
    ),
    components(schemas(schemas::ProblemDoc, schemas::FieldErrorDoc)),
    modifiers(&Security, &Problems, &Inputs),
    tags(
        (name = "clients"), (name = "professionals"), (name = "schedules"),
        (name = "bookings"), (name = "webhooks"), (name = "operations")
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

/// The header every idempotent `POST` requires.
const IDEMPOTENCY_KEY_HEADER: &str = "Idempotency-Key";

/// `Idempotency-Key`: 1 to 255 visible ASCII characters (`!` to `~`), or such a key in
/// double quotes (`"abc"` means `abc`). Spelled out: any 1 to 255 visible characters but
/// `""` (an empty quoted key), or a quoted key of 254 or 255 characters.
const IDEMPOTENCY_KEY_PATTERN: &str =
    r#"^([!-~]|[!#-~][!-~]{1,254}|"[!#-~]|"[!-~]{2,254}|"[!-~]{254,255}")$"#;

/// Schemas the attributes cannot say: the time zone list, the `Idempotency-Key` header.
struct Inputs;

impl Modify for Inputs {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.schemas.insert(
            schemas::TIME_ZONE_SCHEMA.to_owned(),
            RefOr::T(schemas::time_zone_component()),
        );
        let key = ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(257))
            .pattern(Some(IDEMPOTENCY_KEY_PATTERN))
            .build();
        for item in openapi.paths.paths.values_mut() {
            for op in operations(item) {
                for p in op.parameters.iter_mut().flatten() {
                    if p.parameter_in == ParameterIn::Header && p.name == IDEMPOTENCY_KEY_HEADER {
                        p.schema = Some(RefOr::T(key.clone().into()));
                    }
                }
            }
        }
    }
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
    ]
    .into_iter()
    .flatten()
}

/// OpenAPI links, so that a client (and schemathesis' stateful phase) can follow a created
/// resource's id to the operations on it: `(path, method, status, link name, target
/// operation id, where the target's `id` comes from)`. A new professional has no schedule
/// yet, so its schedule and availability are linked from the schedule's `PUT`.
#[rustfmt::skip]
const LINKS: &[(&str, &str, &str, &str, &str, &str)] = &[
    ("/v1/professionals", "post", "201", "GetProfessional", "get_professional", BODY_ID),
    ("/v1/professionals", "post", "201", "UpdateProfessional", "update_professional", BODY_ID),
    ("/v1/professionals", "post", "201", "PutSchedule", "put_schedule", BODY_ID),
    ("/v1/professionals/{id}/schedule", "put", "200", "GetSchedule", "get_schedule", PATH_ID),
    ("/v1/professionals/{id}/schedule", "put", "200", "GetAvailability", "availability", PATH_ID),
    ("/v1/bookings", "post", "201", "GetBooking", "get_booking", BODY_ID),
    ("/v1/bookings", "post", "201", "CancelBooking", "cancel_booking", BODY_ID),
    ("/v1/bookings", "post", "201", "RescheduleBooking", "reschedule_booking", BODY_ID),
    ("/v1/admin/webhook-subscriptions", "post", "201", "ListDeliveries", "list_deliveries", BODY_ID),
    ("/v1/admin/webhook-subscriptions", "post", "201", "DeleteSubscription", "delete_subscription", BODY_ID),
];

/// The `id` of the response body.
const BODY_ID: &str = "$response.body#/id";
/// The `id` path parameter of the request.
const PATH_ID: &str = "$request.path.id";

/// The links of [`LINKS`] as `(path, method, status, name, link object)`.
fn links() -> Vec<(
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    serde_json::Value,
)> {
    LINKS
        .iter()
        .map(|&(path, method, status, name, target, id)| {
            let link = serde_json::json!({
                "operationId": target,
                "parameters": {"id": id},
                "description": format!("`{id}` is the `id` of `{target}`."),
            });
            (path, method, status, name, link)
        })
        .collect()
}

/// Adds [`links`] to the serialised document. (utoipa 5.5 serialises its `Link` with
/// snake_case field names, `operation_id` instead of `operationId`, so the links are
/// written as JSON here.)
fn add_links(doc: &mut serde_json::Value) {
    for (path, method, status, name, link) in links() {
        let Some(response) = doc
            .pointer_mut(&format!(
                "/paths/{}/{method}/responses/{status}",
                pointer_escape(path)
            ))
            .and_then(serde_json::Value::as_object_mut)
        else {
            continue;
        };
        let links = response
            .entry("links")
            .or_insert_with(|| serde_json::json!({}));
        if let Some(links) = links.as_object_mut() {
            links.insert(name.to_owned(), link);
        }
    }
}

/// Escapes a JSON pointer segment (RFC 6901).
fn pointer_escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// The document as a value (without its links; see [`json`]).
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document as JSON bytes, links included, built once per process (it never changes
/// while the binary runs, and building it is most of the cost of a new [`AppState`]).
///
/// [`AppState`]: crate::AppState
pub fn shared_json() -> axum::body::Bytes {
    static DOC: std::sync::OnceLock<axum::body::Bytes> = std::sync::OnceLock::new();
    DOC.get_or_init(|| axum::body::Bytes::from(json())).clone()
}

/// The document as JSON bytes, links included.
pub fn json() -> Vec<u8> {
    let mut doc = serde_json::to_value(document()).unwrap_or_else(|_| serde_json::json!({}));
    add_links(&mut doc);
    serde_json::to_vec(&doc).unwrap_or_else(|_| b"{}".to_vec())
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    fn doc() -> Value {
        serde_json::from_slice(&super::json()).unwrap()
    }

    fn operations(doc: &Value) -> impl Iterator<Item = (&String, &String, &Value)> {
        doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, item)| {
                item.as_object()
                    .unwrap()
                    .iter()
                    .map(move |(method, op)| (path, method, op))
            })
    }

    #[test]
    fn links_name_existing_operations_and_their_id_parameter() {
        let doc = doc();
        let ids: Vec<&str> = operations(&doc)
            .filter_map(|(_, _, op)| op["operationId"].as_str())
            .collect();
        let mut count = 0;
        for (path, method, op) in operations(&doc) {
            for (status, response) in op["responses"].as_object().unwrap() {
                for (name, link) in response["links"].as_object().into_iter().flatten() {
                    let target = link["operationId"].as_str().unwrap_or_default();
                    assert!(ids.contains(&target), "{method} {path} {status} {name}");
                    assert!(link["parameters"]["id"].is_string(), "{name}");
                    count += 1;
                }
            }
        }
        assert_eq!(count, super::links().len());
    }

    #[test]
    fn request_bodies_refuse_unknown_fields() {
        let doc = doc();
        let mut seen = 0;
        for (path, method, op) in operations(&doc) {
            let Some(schema) = op.pointer("/requestBody/content/application~1json/schema") else {
                continue;
            };
            // The Stripe webhook takes any Stripe event (an inline object), as signed.
            let Some(reference) = schema["$ref"].as_str() else {
                assert_eq!(path, "/v1/webhooks/stripe");
                continue;
            };
            let name = reference.rsplit('/').next().unwrap();
            let component = &doc["components"]["schemas"][name];
            assert_eq!(
                component["additionalProperties"],
                Value::Bool(false),
                "{method} {path}: {name}"
            );
            seen += 1;
        }
        assert_eq!(seen, 7);
        for nested in [
            "LocationInput",
            "WeeklyInterval",
            "DateOverride",
            "LocalInterval",
        ] {
            assert_eq!(
                doc["components"]["schemas"][nested]["additionalProperties"],
                Value::Bool(false),
                "{nested}"
            );
        }
    }

    #[test]
    fn every_idempotency_key_header_has_the_key_syntax() {
        let doc = doc();
        let mut seen = 0;
        let mut posts = 0;
        for (path, method, op) in operations(&doc) {
            if method == "post" && path.starts_with("/v1/") && !path.starts_with("/v1/webhooks/") {
                posts += 1;
            }
            for p in op["parameters"].as_array().into_iter().flatten() {
                if p["name"] == super::IDEMPOTENCY_KEY_HEADER {
                    assert_eq!(
                        p["schema"]["pattern"],
                        super::IDEMPOTENCY_KEY_PATTERN,
                        "{path}"
                    );
                    assert_eq!(p["required"], true, "{path}");
                    seen += 1;
                }
            }
        }
        assert_eq!(
            seen, posts,
            "every POST under /v1 but the webhooks takes the key"
        );
    }

    #[test]
    fn the_time_zone_enum_is_what_the_server_parses() {
        let doc = doc();
        let names = doc["components"]["schemas"][super::schemas::TIME_ZONE_SCHEMA]["enum"]
            .as_array()
            .unwrap()
            .clone();
        assert_eq!(names.len(), chrono_tz::TZ_VARIANTS.len());
        for name in &names {
            let name = name.as_str().unwrap();
            assert!(booking_core::domain::parse_timezone(name).is_ok(), "{name}");
        }
        assert!(names.contains(&Value::from("Europe/Berlin")));
    }
}
