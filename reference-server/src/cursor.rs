//! Opaque list cursors: the store's keyset [`Cursor`] plus a digest of the query's filters,
//! base64url-encoded, so that a cursor from one query is rejected (400) on another.

use base64::Engine as _;
use booking_core::Cursor;
use sha2::{Digest, Sha256};

use crate::problem::Problem;

const VERSION: u8 = 1;
const LEN: usize = 1 + 8 + 16 + 8;

/// A digest of a list query's filters (not of its page size or cursor).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryDigest([u8; 8]);

impl QueryDigest {
    /// Digests the named list and its filter values, in order.
    pub fn of(list: &str, filters: &[(&str, Option<String>)]) -> Self {
        let mut h = Sha256::new();
        h.update(list.as_bytes());
        for (name, value) in filters {
            h.update([0]);
            h.update(name.as_bytes());
            match value {
                Some(v) => {
                    h.update([1]);
                    h.update(v.as_bytes());
                }
                None => h.update([2]),
            }
        }
        let full = h.finalize();
        let mut out = [0u8; 8];
        out.copy_from_slice(&full[..8]);
        Self(out)
    }
}

/// Encodes `cursor` for the query digested as `digest`.
pub fn encode(cursor: &Cursor, digest: QueryDigest) -> String {
    let mut bytes = Vec::with_capacity(LEN);
    bytes.push(VERSION);
    bytes.extend_from_slice(&cursor.primary.to_be_bytes());
    bytes.extend_from_slice(cursor.id.as_bytes());
    bytes.extend_from_slice(&digest.0);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes a cursor for the query digested as `digest`; anything else is 400
/// `malformed_request`.
pub fn decode(raw: &str, digest: QueryDigest) -> Result<Cursor, Problem> {
    let bad = || Problem::malformed("`cursor` is not a cursor returned by this query");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw.trim())
        .map_err(|_| bad())?;
    if bytes.len() != LEN || bytes[0] != VERSION || bytes[25..] != digest.0 {
        return Err(bad());
    }
    let mut primary = [0u8; 8];
    primary.copy_from_slice(&bytes[1..9]);
    let id = uuid::Uuid::from_slice(&bytes[9..25]).map_err(|_| bad())?;
    Ok(Cursor {
        primary: i64::from_be_bytes(primary),
        id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_query_binding() {
        let c = Cursor {
            primary: -5,
            id: uuid::Uuid::from_u128(42),
        };
        let d1 = QueryDigest::of("bookings", &[("status", Some("confirmed".into()))]);
        let d2 = QueryDigest::of("bookings", &[("status", None)]);
        let s = encode(&c, d1);
        assert_eq!(decode(&s, d1).unwrap(), c);
        assert!(decode(&s, d2).is_err());
        assert!(decode("garbage!", d1).is_err());
        assert!(decode("", d1).is_err());
    }
}

/// Query parameters of a list that takes no filters: a page of it.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct PageParams {
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    /// `next_cursor` of the previous page (any other value: 400).
    #[param(pattern = r"^[A-Za-z0-9_-]{44}$")]
    cursor: Option<String>,
}

/// The page a list request asks for: its `limit` (1 to 100, default 20) and its `cursor`,
/// which must have been returned by the same query (`digest`). Called once the list's other
/// parameters are read: every bad parameter, these two included, is answered together.
pub fn requested_page(
    mut q: crate::extract::QueryParams,
    digest: QueryDigest,
) -> Result<(u32, Option<Cursor>), Problem> {
    let limit = q.limit();
    let raw_cursor = q.raw("cursor").map(str::to_owned);
    q.finish()?;
    let after = raw_cursor.map(|c| decode(&c, digest)).transpose()?;
    Ok((limit, after))
}
