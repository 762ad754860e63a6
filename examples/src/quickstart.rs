//! Embedding the booking engine: a professional with weekly hours in Berlin, a client, the
//! free slots of a day, a booking, a refused double booking, and a cancellation.
//!
//! Run it with `cargo run -p examples --bin quickstart`.

#![forbid(unsafe_code)]

use std::sync::Arc;

use booking_core::schedule::ScheduleInput;
use booking_core::{
    Actor, BookingEngine, BookingRequest, EngineConfig, Error, GeoPoint, ManualClock, NewClient,
    NewProfessional, TimeRange, TokenHash,
};
use booking_memory::MemoryStore;
use chrono::{Duration, TimeZone, Utc};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A fixed clock keeps the example's output stable; use `SystemClock` in real code.
    let clock = ManualClock::new(
        Utc.with_ymd_and_hms(2027, 3, 1, 7, 0, 0)
            .single()
            .ok_or("bad date")?,
    );
    let engine = BookingEngine::new(Arc::new(MemoryStore::new()), clock, EngineConfig::default());

    let pro = engine
        .create_professional(
            &NewProfessional {
                name: "Dr. Ada Weber".into(),
                category: "physiotherapy".into(),
                location: GeoPoint {
                    lat: 52.52,
                    lng: 13.405,
                },
                hourly_rate_cents: 8_000,
                currency: "eur".into(),
                timezone: "Europe/Berlin".into(),
                is_active: None,
            },
            TokenHash::of("ada-secret-token"),
        )
        .await?;
    let schedule: ScheduleInput = serde_json::from_str(
        r#"{"timezone": "Europe/Berlin",
            "weekly": [{"weekday": "mon", "start": "09:00", "end": "12:00"},
                       {"weekday": "mon", "start": "13:00", "end": "17:00"}],
            "buffer_after_minutes": 15, "slot_step_minutes": 30}"#,
    )?;
    engine
        .set_schedule(Actor::Professional(pro.id), pro.id, schedule.validate()?)
        .await?;
    let client = engine
        .create_client(
            &NewClient {
                name: "Lin".into(),
                email: "lin@example.com".into(),
            },
            TokenHash::of("lin-secret-token"),
        )
        .await?;

    // Free one-hour slots on Monday 2027-03-01 (times are UTC; Berlin is UTC+1).
    let day = TimeRange::new(
        Utc.with_ymd_and_hms(2027, 3, 1, 0, 0, 0)
            .single()
            .ok_or("bad date")?,
        Utc.with_ymd_and_hms(2027, 3, 2, 0, 0, 0)
            .single()
            .ok_or("bad date")?,
    )?;
    let slots = engine
        .availability(pro.id, day, Duration::minutes(60))
        .await?;
    println!(
        "{} free one-hour slots, the first at {}",
        slots.len(),
        slots[0].start()
    );

    let request = BookingRequest {
        client_id: client.id,
        professional_id: pro.id,
        range: slots[0],
        request_ref: None,
    };
    let booking = engine.create_booking(&request).await?.booking().clone();
    println!(
        "booked {} .. {}: {} for {} {}",
        booking.range.start(),
        booking.range.end(),
        booking.status,
        booking.price.amount_cents,
        booking.price.currency
    );

    // The same slot again is refused, and so is one inside the 15-minute buffer.
    match engine.create_booking(&request).await {
        Err(Error::SlotUnavailable) => println!("double booking refused"),
        other => return Err(format!("expected a refusal, got {other:?}").into()),
    }

    let cancelled = engine
        .cancel_booking(Actor::Client(client.id), booking.id)
        .await?;
    println!("cancelled: {}", cancelled.status);
    let again = engine
        .availability(pro.id, day, Duration::minutes(60))
        .await?;
    assert_eq!(again.len(), slots.len(), "the slot is free again");
    println!("{} free slots again", again.len());
    Ok(())
}
