//! Engine behaviour that the conformance suite (which is about stores) does not pin: the
//! settings an engine reports, the booking-length limit at its exact boundary, who may
//! manage a professional, the order of a list's time bounds, and what an answered
//! request shows when logged.

use std::sync::Arc;

use booking_core::idempotency::{IdempotencyKey, LeaseId, Scope, StoredResponse};
use booking_core::{
    Actor, AnsweredRequest, BookingEngine, BookingFilter, ClientId, EngineConfig, Error, GeoPoint,
    ManualClock, NewProfessional, Professional, ProfessionalId, Schedule, TimeRange, TokenHash,
};
use booking_memory::MemoryStore;
use chrono::{DateTime, Duration, TimeZone, Utc};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2027, 3, 1, 8, 0, 0)
        .single()
        .expect("a valid instant")
}

fn engine(config: EngineConfig) -> BookingEngine<MemoryStore, ManualClock> {
    BookingEngine::new(
        Arc::new(MemoryStore::new()),
        ManualClock::new(now()),
        config,
    )
}

fn new_professional() -> NewProfessional {
    NewProfessional {
        name: "Ada".into(),
        category: "physiotherapy".into(),
        location: GeoPoint::new(52.52, 13.405).expect("a valid point"),
        hourly_rate_cents: 8_000,
        currency: "eur".into(),
        timezone: "UTC".into(),
        is_active: None,
    }
}

fn professional() -> Professional {
    new_professional()
        .validate(ProfessionalId::new_at(now()), now())
        .expect("a valid professional")
}

#[test]
fn the_engine_reports_the_settings_it_was_built_with() {
    let config = EngineConfig {
        hold_ttl: Some(Duration::minutes(7)),
        max_booking_length: Duration::hours(3),
        ..EngineConfig::default()
    };
    assert_ne!(config, EngineConfig::default());
    assert_eq!(*engine(config).config(), config);
}

/// Needs the fake gateway of `booking_core::testing`.
#[cfg(feature = "testing")]
#[test]
fn payments_are_on_only_with_a_gateway_and_set_the_hold_ttl() {
    use booking_core::payment::PaymentGateway;
    use booking_core::testing::gateway::FakeGateway;

    let engine = engine(EngineConfig::default());
    assert!(engine.payments().is_none());
    let gateway: Arc<dyn PaymentGateway> = Arc::new(FakeGateway::new());
    let engine = engine.with_payments(Arc::clone(&gateway), Duration::minutes(15));
    let on = engine.payments().expect("payments are on");
    assert!(Arc::ptr_eq(on, &gateway));
    assert_eq!(engine.config().hold_ttl, Some(Duration::minutes(15)));
}

#[test]
fn a_booking_may_last_exactly_the_longest_length_and_not_a_minute_more() {
    let config = EngineConfig {
        max_booking_length: Duration::hours(3),
        ..EngineConfig::default()
    };
    let engine = engine(config);
    let pro = professional();
    let schedule = Schedule::always_open(chrono_tz::UTC);
    let start = now() + Duration::hours(1);
    let check = |length: Duration| {
        let range = TimeRange::new(start, start + length).unwrap();
        engine.check_bookable_with(&pro, Some(&schedule), &range, now())
    };
    assert!(check(Duration::hours(3)).is_ok());
    assert!(check(Duration::hours(3) - Duration::minutes(1)).is_ok());
    let Err(Error::Invalid(errors)) = check(Duration::hours(3) + Duration::minutes(1)) else {
        panic!("a booking longer than the limit must be refused");
    };
    assert_eq!(errors[0].field, "end");
    assert_eq!(errors[0].message, "a booking lasts at most 180 minutes");
}

#[tokio::test(flavor = "current_thread")]
async fn only_the_professional_or_an_admin_may_manage_a_professional() {
    let engine = engine(EngineConfig::default());
    let ada = engine
        .create_professional(&new_professional(), TokenHash::of("ada"))
        .await
        .unwrap();
    let other = engine
        .create_professional(&new_professional(), TokenHash::of("other"))
        .await
        .unwrap();
    assert!(
        engine
            .may_manage_professional(Actor::Admin, ada.id)
            .await
            .is_ok()
    );
    assert!(
        engine
            .may_manage_professional(Actor::Professional(ada.id), ada.id)
            .await
            .is_ok()
    );
    for stranger in [
        Actor::Professional(other.id),
        Actor::Client(ClientId::new_at(now())),
    ] {
        assert!(matches!(
            engine.may_manage_professional(stranger, ada.id).await,
            Err(Error::Forbidden(_))
        ));
    }
    let missing = ProfessionalId::new_at(now());
    assert!(matches!(
        engine.may_manage_professional(Actor::Admin, missing).await,
        Err(Error::NotFound(_))
    ));
}

#[tokio::test(flavor = "current_thread")]
async fn a_list_may_be_bounded_to_one_instant_but_not_reversed() {
    let engine = engine(EngineConfig::default());
    let list = |from: DateTime<Utc>, to: DateTime<Utc>| {
        let filter = BookingFilter {
            from: Some(from),
            to: Some(to),
            ..BookingFilter::default()
        };
        let engine = &engine;
        async move { engine.list_bookings(Actor::Admin, &filter).await }
    };
    assert!(list(now(), now()).await.is_ok());
    assert!(list(now(), now() + Duration::hours(1)).await.is_ok());
    let Err(Error::Invalid(errors)) = list(now() + Duration::hours(1), now()).await else {
        panic!("a reversed range must be refused");
    };
    assert_eq!(errors[0].field, "to");
}

#[test]
fn an_answered_request_logs_its_scope_key_and_lease_but_not_its_renderer() {
    let scope = Scope::new("client:42");
    let key = IdempotencyKey::parse("order-7").unwrap();
    let lease = LeaseId::new_at(now());
    let render = |_: &booking_core::Booking| StoredResponse {
        status: 201,
        headers: Vec::new(),
        body: Vec::new(),
    };
    let request = AnsweredRequest {
        scope: &scope,
        key: &key,
        lease,
        context: None,
        render: &render,
    };
    let logged = format!("{request:?}");
    assert!(logged.starts_with("AnsweredRequest {"), "{logged}");
    for part in [
        "client:42",
        "order-7",
        &format!("{lease:?}"),
        "context: false",
    ] {
        assert!(logged.contains(part), "{part} missing from {logged}");
    }
}
