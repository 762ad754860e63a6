//! Rows to domain values and back. Every column list lives here, next to its decoder.

use std::ops::Bound;

use booking_core::auth::Principal;
use booking_core::domain::{
    Booking, BookingId, BookingStatus, Category, Client, ClientId, Currency, GeoPoint, Money,
    Professional, ProfessionalId, TimeRange, parse_timezone,
};
use booking_core::idempotency::{
    Fingerprint, IdempotencyKey, IdempotencyRecord, LeaseId, RecordState, Scope, StoredResponse,
};
use booking_core::payment::Payment;
use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::postgres::PgRow;
use sqlx::postgres::types::PgRange;
use sqlx::types::Json;

use crate::error::PgError;

/// The columns [`booking`] reads, in a `&'static str` usable with `concat!`.
macro_rules! booking_columns {
    () => {
        "id, professional_id, client_id, starts_at, ends_at, blocked_range, status, \
         price_cents, currency, hold_expires_at, request_ref, created_at, updated_at, \
         payment_provider, payment_intent_id, payment_client_secret, \
         payment_amount_refunded_cents, payment_refund_owed, payment_refund_id, \
         payment_intent_closed"
    };
}
pub(crate) use booking_columns;

/// The payment columns of `bookings`, in the order [`bind_payment`] binds them.
macro_rules! payment_columns {
    () => {
        "payment_provider, payment_intent_id, payment_client_secret, \
         payment_amount_refunded_cents, payment_refund_owed, payment_refund_id, \
         payment_intent_closed"
    };
}
pub(crate) use payment_columns;

/// The columns [`professional`] reads.
macro_rules! professional_columns {
    () => {
        "id, name, category, lat, lng, hourly_rate_cents, currency, timezone, is_active, \
         created_at, updated_at"
    };
}
pub(crate) use professional_columns;

/// The columns [`idempotency_record`] reads.
macro_rules! idempotency_columns {
    () => {
        "scope, key, fingerprint, lease_id, locked_until, response_status, response_headers, \
         response_body, created_at, expires_at"
    };
}
pub(crate) use idempotency_columns;

/// A half-open `[start, end)` range as a `tstzrange`.
pub(crate) fn pg_range(r: &TimeRange) -> PgRange<DateTime<Utc>> {
    PgRange {
        start: Bound::Included(r.start()),
        end: Bound::Excluded(r.end()),
    }
}

/// A `tstzrange` that must be `[start, end)` with finite bounds.
pub(crate) fn bounds(r: PgRange<DateTime<Utc>>) -> Result<(DateTime<Utc>, DateTime<Utc>), PgError> {
    match (r.start, r.end) {
        (Bound::Included(s), Bound::Excluded(e)) => Ok((s, e)),
        other => Err(PgError::corrupt(format!(
            "range is not [start, end): {other:?}"
        ))),
    }
}

pub(crate) fn time_range(r: PgRange<DateTime<Utc>>) -> Result<TimeRange, PgError> {
    let (s, e) = bounds(r)?;
    TimeRange::new(s, e).map_err(PgError::corrupt)
}

pub(crate) fn booking(row: &PgRow) -> Result<Booking, PgError> {
    let range = TimeRange::new(row.try_get("starts_at")?, row.try_get("ends_at")?)
        .map_err(PgError::corrupt)?;
    let (blocked_start, blocked_end) = bounds(row.try_get("blocked_range")?)?;
    // Rebuilt by widening, so that a blocked range is never refused for its length.
    let blocked = range
        .widen(range.start() - blocked_start, blocked_end - range.end())
        .map_err(PgError::corrupt)?;
    let status: String = row.try_get("status")?;
    let currency: String = row.try_get("currency")?;
    Ok(Booking {
        id: BookingId::from_uuid(row.try_get("id")?),
        professional_id: ProfessionalId::from_uuid(row.try_get("professional_id")?),
        client_id: ClientId::from_uuid(row.try_get("client_id")?),
        range,
        blocked,
        status: BookingStatus::parse(&status).map_err(PgError::corrupt)?,
        price: Money {
            amount_cents: row.try_get("price_cents")?,
            currency: Currency::parse(&currency).map_err(PgError::corrupt)?,
        },
        hold_expires_at: row.try_get("hold_expires_at")?,
        request_ref: row.try_get("request_ref")?,
        payment: payment(row)?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// The payment of a booking row: `None` without an intent.
fn payment(row: &PgRow) -> Result<Option<Payment>, PgError> {
    let provider: Option<String> = row.try_get("payment_provider")?;
    let intent_id: Option<String> = row.try_get("payment_intent_id")?;
    let (provider, intent_id) = match (provider, intent_id) {
        (Some(provider), Some(intent_id)) => (provider, intent_id),
        (None, None) => return Ok(None),
        _ => return Err(PgError::corrupt("payment provider without intent, or back")),
    };
    Ok(Some(Payment {
        provider,
        intent_id,
        client_secret: row.try_get("payment_client_secret")?,
        amount_refunded_cents: row.try_get("payment_amount_refunded_cents")?,
        refund_owed: row.try_get("payment_refund_owed")?,
        refund_id: row.try_get("payment_refund_id")?,
        intent_closed: row.try_get("payment_intent_closed")?,
    }))
}

type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// Binds the next seven parameters to `payment`'s columns in [`payment_columns`] order
/// (`NULL`s and the column defaults for none).
pub(crate) fn bind_payment<'q>(query: PgQuery<'q>, payment: Option<&'q Payment>) -> PgQuery<'q> {
    query
        .bind(payment.map(|p| p.provider.as_str()))
        .bind(payment.map(|p| p.intent_id.as_str()))
        .bind(payment.and_then(|p| p.client_secret.as_deref()))
        .bind(payment.map_or(0, |p| p.amount_refunded_cents))
        .bind(payment.is_some_and(|p| p.refund_owed))
        .bind(payment.and_then(|p| p.refund_id.as_deref()))
        .bind(payment.is_some_and(|p| p.intent_closed))
}

pub(crate) fn professional(row: &PgRow) -> Result<Professional, PgError> {
    professional_at(row, "")
}

/// The professional columns selected as `p_<column>` (for statements that also read other
/// tables' columns of the same names), with `p` the professionals table's alias.
macro_rules! professional_columns_prefixed {
    () => {
        "p.id AS p_id, p.name AS p_name, p.category AS p_category, p.lat AS p_lat, \
         p.lng AS p_lng, p.hourly_rate_cents AS p_hourly_rate_cents, \
         p.currency AS p_currency, p.timezone AS p_timezone, p.is_active AS p_is_active, \
         p.created_at AS p_created_at, p.updated_at AS p_updated_at"
    };
}
pub(crate) use professional_columns_prefixed;

/// A professional read from columns named `{prefix}{column}`; `None` when the row has
/// none (a `LEFT JOIN` that found nothing: the id is `NULL`).
pub(crate) fn optional_professional_at(
    row: &PgRow,
    prefix: &str,
) -> Result<Option<Professional>, PgError> {
    let id: Option<uuid::Uuid> = row.try_get(format!("{prefix}id").as_str())?;
    match id {
        Some(_) => professional_at(row, prefix).map(Some),
        None => Ok(None),
    }
}

fn professional_at(row: &PgRow, prefix: &str) -> Result<Professional, PgError> {
    let col = |name: &str| format!("{prefix}{name}");
    let category: String = row.try_get(col("category").as_str())?;
    let currency: String = row.try_get(col("currency").as_str())?;
    let timezone: String = row.try_get(col("timezone").as_str())?;
    Ok(Professional {
        id: ProfessionalId::from_uuid(row.try_get(col("id").as_str())?),
        name: row.try_get(col("name").as_str())?,
        category: Category::parse(&category).map_err(PgError::corrupt)?,
        location: GeoPoint::new(
            row.try_get(col("lat").as_str())?,
            row.try_get(col("lng").as_str())?,
        )
        .map_err(PgError::corrupt)?,
        hourly_rate_cents: row.try_get(col("hourly_rate_cents").as_str())?,
        currency: Currency::parse(&currency).map_err(PgError::corrupt)?,
        timezone: parse_timezone(&timezone).map_err(PgError::corrupt)?,
        is_active: row.try_get(col("is_active").as_str())?,
        created_at: row.try_get(col("created_at").as_str())?,
        updated_at: row.try_get(col("updated_at").as_str())?,
    })
}

pub(crate) fn client(row: &PgRow) -> Result<Client, PgError> {
    Ok(Client {
        id: ClientId::from_uuid(row.try_get("id")?),
        name: row.try_get("name")?,
        email: row.try_get("email")?,
        created_at: row.try_get("created_at")?,
    })
}

/// `(principal_kind, principal_id)` of `api_tokens`.
pub(crate) fn principal_kind(p: &Principal) -> (&'static str, uuid::Uuid) {
    match p {
        Principal::Client(id) => ("client", id.as_uuid()),
        Principal::Professional(id) => ("professional", id.as_uuid()),
    }
}

pub(crate) fn principal(row: &PgRow) -> Result<Principal, PgError> {
    let kind: String = row.try_get("principal_kind")?;
    let id: uuid::Uuid = row.try_get("principal_id")?;
    match kind.as_str() {
        "client" => Ok(Principal::Client(ClientId::from_uuid(id))),
        "professional" => Ok(Principal::Professional(ProfessionalId::from_uuid(id))),
        other => Err(PgError::corrupt(format!(
            "unknown principal kind {other:?}"
        ))),
    }
}

pub(crate) fn fingerprint(bytes: &[u8]) -> Result<Fingerprint, PgError> {
    let arr: [u8; 32] = bytes
        .try_into()
        .map_err(|_| PgError::corrupt("fingerprint is not 32 bytes"))?;
    Ok(Fingerprint(arr))
}

pub(crate) fn idempotency_record(row: &PgRow) -> Result<IdempotencyRecord, PgError> {
    let scope: String = row.try_get("scope")?;
    let key: String = row.try_get("key")?;
    let fp: Vec<u8> = row.try_get("fingerprint")?;
    let lease: Option<uuid::Uuid> = row.try_get("lease_id")?;
    let locked_until: Option<DateTime<Utc>> = row.try_get("locked_until")?;
    let status: Option<i32> = row.try_get("response_status")?;
    let state = match (lease, locked_until, status) {
        (Some(lease), Some(locked_until), None) => RecordState::InFlight {
            lease: LeaseId(lease),
            locked_until,
        },
        (None, None, Some(status)) => {
            let headers: Json<Vec<(String, String)>> = row.try_get("response_headers")?;
            RecordState::Completed(StoredResponse {
                status: u16::try_from(status).map_err(PgError::corrupt)?,
                headers: headers.0,
                body: row.try_get("response_body")?,
            })
        }
        _ => return Err(PgError::corrupt("idempotency record in no known state")),
    };
    Ok(IdempotencyRecord {
        scope: Scope::new(scope),
        key: IdempotencyKey::parse(&key).map_err(PgError::corrupt)?,
        fingerprint: fingerprint(&fp)?,
        state,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
    })
}
