//! Keyset pagination: a [`Page`] of a list, the [`Cursor`] where the next one starts, and
//! the page-size check every list shares.

use std::fmt;
use std::str::FromStr;

use crate::domain::{Booking, Professional};
use crate::error::{Error, Result};

/// One page of a keyset-paginated list.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The items, in list order.
    pub items: Vec<T>,
    /// Where the next page starts; `None` on the last page.
    pub next_cursor: Option<Cursor>,
}

/// A keyset position: the sort key of the last item returned.
///
/// Rendered as an opaque string; clients must not build their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cursor {
    /// Primary sort key (microseconds since the epoch for bookings, cents for professionals).
    pub primary: i64,
    /// Tie breaker: the id.
    pub id: uuid::Uuid,
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.primary, self.id.simple())
    }
}

impl FromStr for Cursor {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::invalid("cursor", "is not a cursor returned by this list");
        let (p, id) = s.split_once('.').ok_or_else(bad)?;
        Ok(Self {
            primary: p.parse().map_err(|_| bad())?,
            id: uuid::Uuid::try_parse(id).map_err(|_| bad())?,
        })
    }
}

impl Cursor {
    /// The cursor after booking `b` in `(start, id)` order.
    pub fn after_booking(b: &Booking) -> Self {
        Self {
            primary: b.range.start().timestamp_micros(),
            id: b.id.as_uuid(),
        }
    }

    /// The cursor after professional `p` in `(hourly_rate_cents, id)` order.
    pub fn after_professional(p: &Professional) -> Self {
        Self {
            primary: p.hourly_rate_cents,
            id: p.id.as_uuid(),
        }
    }
}

/// Page size validation shared by adapters and the server: 1..=100.
pub fn check_limit(limit: u32) -> Result<u32> {
    if (1..=100).contains(&limit) {
        Ok(limit)
    } else {
        Err(Error::invalid("limit", "must be between 1 and 100"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_roundtrip_and_rejects_garbage() {
        let c = Cursor {
            primary: -42,
            id: uuid::Uuid::from_u128(7),
        };
        assert_eq!(c.to_string().parse::<Cursor>().unwrap(), c);
        assert!("nope".parse::<Cursor>().is_err());
        assert!("1.zz".parse::<Cursor>().is_err());
    }
}
