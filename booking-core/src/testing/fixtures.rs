//! Ready-made engines, professionals and clients for checks and users' own tests.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Duration, TimeZone, Utc};

use crate::auth::{Actor, TokenHash};
use crate::clock::ManualClock;
use crate::domain::{
    Booking, BookingStatus, Client, GeoPoint, NewClient, NewProfessional, Professional, TimeRange,
};
use crate::engine::{BookingEngine, BookingRequest, EngineConfig};
use crate::error::Result;
use crate::schedule::Schedule;
use crate::store::{Inserted, Store};

/// The instant every fixture clock starts at: 2027-03-01T08:00:00Z.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2027, 3, 1, 8, 0, 0)
        .single()
        .expect("a valid fixed instant")
}

/// `t0() + minutes`.
pub fn at(minutes: i64) -> DateTime<Utc> {
    t0() + Duration::minutes(minutes)
}

/// The range `[t0 + start, t0 + end)` in minutes.
pub fn range(start: i64, end: i64) -> TimeRange {
    TimeRange::new(at(start), at(end)).expect("fixture range with start < end")
}

static UNIQUE: AtomicU64 = AtomicU64::new(0);

/// A process-wide unique suffix for tokens, names and keys.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        UNIQUE.fetch_add(1, Ordering::Relaxed)
    )
}

/// An engine on a manual clock with one professional (always open, no buffers unless
/// given) and one client.
pub struct Fixture<S: Store + ?Sized> {
    /// The engine under test.
    pub engine: BookingEngine<S, ManualClock>,
    /// Its clock, starting at [`t0`].
    pub clock: ManualClock,
    /// A professional at 6,000 cents an hour.
    pub pro: Professional,
    /// A client.
    pub client: Client,
}

impl<S: Store + ?Sized> Fixture<S> {
    /// Bookings are confirmed at once.
    pub async fn new(store: Arc<S>) -> Self {
        Self::with_config(store, EngineConfig::default()).await
    }

    /// Bookings start as 15-minute holds.
    pub async fn with_holds(store: Arc<S>) -> Self {
        Self::with_config(
            store,
            EngineConfig {
                hold_ttl: Some(Duration::minutes(15)),
                ..EngineConfig::default()
            },
        )
        .await
    }

    /// Any configuration.
    pub async fn with_config(store: Arc<S>, config: EngineConfig) -> Self {
        let clock = ManualClock::new(t0());
        let engine = BookingEngine::new(store, clock.clone(), config);
        let pro = new_professional(&engine).await;
        let client = new_client(&engine).await;
        Self {
            engine,
            clock,
            pro,
            client,
        }
    }

    /// Sets the fixture professional's buffers (always open otherwise).
    pub async fn set_buffers(&self, before_minutes: u32, after_minutes: u32) {
        let mut s = Schedule::always_open(self.pro.timezone);
        s.buffer_before_minutes = before_minutes;
        s.buffer_after_minutes = after_minutes;
        self.engine
            .set_schedule(Actor::Admin, self.pro.id, s)
            .await
            .expect("set schedule");
    }

    /// Books `[start, end)` minutes after [`t0`] for the fixture client.
    pub async fn book(&self, start: i64, end: i64) -> Result<Booking> {
        self.book_for(&self.pro, &self.client, range(start, end))
            .await
    }

    /// Books `range` with `pro` for `client`.
    pub async fn book_for(
        &self,
        pro: &Professional,
        client: &Client,
        range: TimeRange,
    ) -> Result<Booking> {
        let inserted = self
            .engine
            .create_booking(&BookingRequest {
                client_id: client.id,
                professional_id: pro.id,
                range,
                request_ref: None,
            })
            .await?;
        match inserted {
            Inserted::Created(b) => Ok(b),
            Inserted::Existing(b) => panic!("unexpected Existing for a request without ref: {b:?}"),
        }
    }

    /// The booking as the admin sees it now.
    pub async fn reload(&self, b: &Booking) -> Booking {
        self.engine
            .get_booking(Actor::Admin, b.id)
            .await
            .expect("booking exists")
    }

    /// The effective status of a booking now.
    pub async fn status(&self, b: &Booking) -> BookingStatus {
        self.reload(b).await.status
    }
}

/// Creates an active, always-open professional with a fresh token.
pub async fn new_professional<S: Store + ?Sized>(
    engine: &BookingEngine<S, ManualClock>,
) -> Professional {
    let p = engine
        .create_professional(
            &NewProfessional {
                name: unique("Pro"),
                category: "massage".into(),
                location: GeoPoint {
                    lat: 52.52,
                    lng: 13.405,
                },
                hourly_rate_cents: 6_000,
                currency: "eur".into(),
                timezone: "Europe/Berlin".into(),
                is_active: None,
            },
            TokenHash::of(&unique("pro-token")),
        )
        .await
        .expect("create professional");
    engine
        .set_schedule(Actor::Admin, p.id, Schedule::always_open(p.timezone))
        .await
        .expect("set schedule");
    p
}

/// Creates a client with a fresh token.
pub async fn new_client<S: Store + ?Sized>(engine: &BookingEngine<S, ManualClock>) -> Client {
    engine
        .create_client(
            &NewClient {
                name: unique("Client"),
                email: format!("{}@example.com", unique("c")),
            },
            TokenHash::of(&unique("client-token")),
        )
        .await
        .expect("create client")
}
