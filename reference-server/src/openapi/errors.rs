//! The error responses of each operation, as [`ProblemCode`]s: the document lists the
//! status of every code an operation can answer with, each pointing at the shared
//! `Problem` response.

use std::collections::BTreeSet;

use utoipa::Modify;
use utoipa::openapi::path::Operation;
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};

use crate::problem::ProblemCode::{self, *};

/// Codes every authenticated `/v1` operation can give: no or an unknown token, the request
/// timeout, an internal error, the store being down.
const AUTHENTICATED: &[ProblemCode] = &[Unauthorized, RequestTimeout, Internal, StoreUnavailable];

/// Codes of the Stripe webhook, which is signed rather than authenticated (no 401).
const SIGNED: &[ProblemCode] = &[RequestTimeout, Internal, StoreUnavailable];

/// Codes of the idempotency layer, on every `POST` under `/v1` but the webhook: a body
/// that does not parse or is too large, a missing or invalid key (422), a key still in
/// flight or reused with another request.
const IDEMPOTENT: &[ProblemCode] = &[
    MalformedRequest,
    IdempotencyKeyMissing,
    PayloadTooLarge,
    IdempotencyRequestInFlight,
    IdempotencyKeyReused,
    ValidationFailed,
];

/// The codes of each operation, as `(method, path, codes)`, beyond those of its kind (see
/// [`common_codes`]).
#[rustfmt::skip]
pub const OPERATION_ERRORS: &[(&str, &str, &[ProblemCode])] = &[
    ("post", "/v1/clients", &[Forbidden, ApiTokenUnrecoverable]),
    ("post", "/v1/professionals", &[Forbidden, ApiTokenUnrecoverable]),
    ("get", "/v1/professionals", &[MalformedRequest, ValidationFailed]),
    ("get", "/v1/professionals/{id}", &[NotFound]),
    ("patch", "/v1/professionals/{id}", &[MalformedRequest, Forbidden, NotFound, PayloadTooLarge, ValidationFailed]),
    ("put", "/v1/professionals/{id}/schedule", &[MalformedRequest, Forbidden, NotFound, PayloadTooLarge, ValidationFailed]),
    ("get", "/v1/professionals/{id}/schedule", &[NotFound]),
    ("get", "/v1/professionals/{id}/availability", &[NotFound, ValidationFailed]),
    ("post", "/v1/bookings", &[Forbidden, NotFound, SlotUnavailable, OutsideAvailability, PaymentProviderUnavailable]),
    ("get", "/v1/bookings", &[MalformedRequest, ValidationFailed]),
    ("get", "/v1/bookings/{id}", &[NotFound]),
    ("post", "/v1/bookings/{id}/cancel", &[Forbidden, NotFound, InvalidState]),
    ("post", "/v1/bookings/{id}/reschedule", &[Forbidden, NotFound, InvalidState, SlotUnavailable, OutsideAvailability]),
    ("post", "/v1/webhooks/stripe", &[MalformedRequest, InvalidSignature, PayloadTooLarge]),
    ("get", "/v1/admin/webhooks/dead-letters", &[MalformedRequest, Forbidden, ValidationFailed]),
    ("post", "/v1/admin/webhooks/dead-letters/{event_id}/replay", &[Forbidden, NotFound, InvalidState]),
    ("post", "/v1/admin/webhook-subscriptions", &[Forbidden]),
    ("get", "/v1/admin/webhook-subscriptions", &[MalformedRequest, Forbidden, ValidationFailed]),
    ("delete", "/v1/admin/webhook-subscriptions/{id}", &[Forbidden, NotFound]),
    ("get", "/v1/admin/webhook-subscriptions/{id}/deliveries", &[MalformedRequest, Forbidden, NotFound, ValidationFailed]),
    ("post", "/v1/admin/webhook-deliveries/{id}/redeliver", &[Forbidden, NotFound]),
    ("get", "/readyz", &[StoreUnavailable]),
];

/// The codes every operation of this kind can give: the webhook's, those of an idempotent
/// `POST` under `/v1`, those of any other `/v1` operation; none outside `/v1`.
pub fn common_codes(method: &str, path: &str) -> Vec<ProblemCode> {
    if path.starts_with("/v1/webhooks/") {
        SIGNED.to_vec()
    } else if path.starts_with("/v1/") && method == "post" {
        [AUTHENTICATED, IDEMPOTENT].concat()
    } else if path.starts_with("/v1/") {
        AUTHENTICATED.to_vec()
    } else {
        Vec::new()
    }
}

/// Every code `method path` can answer with.
pub fn operation_codes(method: &str, path: &str) -> BTreeSet<ProblemCode> {
    let own = OPERATION_ERRORS
        .iter()
        .filter(|(m, p, _)| *m == method && *p == path)
        .flat_map(|(_, _, codes)| codes.iter().copied());
    common_codes(method, path).into_iter().chain(own).collect()
}

/// Adds the shared `Problem` response and each operation's error statuses.
pub(crate) struct Problems;

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
        for (method, path, _) in OPERATION_ERRORS {
            let Some(item) = openapi.paths.paths.get_mut(*path) else {
                continue;
            };
            let op: Option<&mut Operation> = match *method {
                "get" => item.get.as_mut(),
                "post" => item.post.as_mut(),
                "put" => item.put.as_mut(),
                "patch" => item.patch.as_mut(),
                "delete" => item.delete.as_mut(),
                _ => None,
            };
            let Some(op) = op else { continue };
            let statuses: BTreeSet<u16> = operation_codes(method, path)
                .into_iter()
                .map(|code| code.status().as_u16())
                .collect();
            for status in statuses {
                op.responses.responses.insert(
                    status.to_string(),
                    RefOr::Ref(Ref::from_response_name("Problem")),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every row names an operation of the document, and every `/v1` operation has a row.
    #[test]
    fn the_table_and_the_document_name_the_same_operations() {
        let doc: serde_json::Value =
            serde_json::from_slice(&crate::openapi::json()).expect("the document is JSON");
        let paths = doc["paths"].as_object().expect("paths");
        for (method, path, _) in OPERATION_ERRORS {
            assert!(paths[*path][*method].is_object(), "{method} {path}");
        }
        for (path, item) in paths {
            for method in item.as_object().expect("path item").keys() {
                let listed = OPERATION_ERRORS
                    .iter()
                    .any(|(m, p, _)| m == method && p == path);
                assert!(listed || !path.starts_with("/v1/"), "{method} {path}");
            }
        }
    }

    /// The statuses an operation documents are exactly those of its codes.
    #[test]
    fn documented_statuses_come_from_the_codes() {
        let doc: serde_json::Value =
            serde_json::from_slice(&crate::openapi::json()).expect("the document is JSON");
        for (method, path, _) in OPERATION_ERRORS {
            let responses = doc["paths"][*path][*method]["responses"]
                .as_object()
                .expect("responses");
            let documented: BTreeSet<u16> = responses
                .iter()
                .filter(|(_, r)| r["$ref"] == "#/components/responses/Problem")
                .filter_map(|(status, _)| status.parse().ok())
                .collect();
            let expected: BTreeSet<u16> = operation_codes(method, path)
                .iter()
                .map(|c| c.status().as_u16())
                .collect();
            assert_eq!(documented, expected, "{method} {path}");
        }
        assert!(operation_codes("post", "/v1/bookings").contains(&SlotUnavailable));
        assert!(!operation_codes("get", "/v1/bookings/{id}").contains(&SlotUnavailable));
    }
}
