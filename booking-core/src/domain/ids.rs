use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        ///
        /// A UUID v7 whose timestamp comes from the injected clock, so ids sort by
        /// creation time without the engine reading the wall clock.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh id stamped with `now`.
            pub fn new_at(now: DateTime<Utc>) -> Self {
                Self(new_v7(now))
            }

            /// Wraps an existing UUID (for instance one read from storage).
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// The underlying UUID.
            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }
    };
}

fn new_v7(now: DateTime<Utc>) -> Uuid {
    let secs = u64::try_from(now.timestamp()).unwrap_or(0);
    let ts = uuid::Timestamp::from_unix(uuid::NoContext, secs, now.timestamp_subsec_nanos());
    Uuid::new_v7(ts)
}

typed_id!(
    /// Identifies a professional.
    ProfessionalId
);
typed_id!(
    /// Identifies a client.
    ClientId
);
typed_id!(
    /// Identifies a booking.
    BookingId
);
typed_id!(
    /// Identifies a domain event in the outbox.
    EventId
);
typed_id!(
    /// Identifies an outbound webhook subscription.
    SubscriptionId
);
typed_id!(
    /// Identifies one outbound webhook delivery (an event for a subscription); the same on
    /// every retry and redelivery.
    DeliveryId
);

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn ids_are_v7_and_sort_by_clock() {
        let t0 = Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap();
        let a = BookingId::new_at(t0);
        let b = BookingId::new_at(t0 + chrono::Duration::milliseconds(2));
        assert_eq!(a.as_uuid().get_version_num(), 7);
        assert!(a < b);
        assert_eq!(a.to_string().parse::<BookingId>().unwrap(), a);
    }
}
