//! The directory: professionals, clients, tokens, retried registrations and search
//! filters ([`DirectoryStore`]).
//!
//! [`DirectoryStore`]: crate::store::DirectoryStore

use std::sync::Arc;

use chrono::Duration;

use super::super::fixtures::{Fixture, at, unique};
use crate::auth::{Actor, Principal, TokenHash};
use crate::domain::{GeoPoint, NewClient, NewProfessional, ProfessionalPatch};
use crate::error::{Entity, Error};
use crate::store::Registered;
use crate::store::{ProfessionalQuery, Store};

/// `DirectoryStore`: subjects round trip, tokens authenticate once, updates are checked.
pub async fn directory_roundtrip_and_tokens<S: Store + ?Sized>(store: Arc<S>) {
    let fx = Fixture::new(store).await;
    let token = unique("tok");
    let p = fx
        .engine
        .create_professional(
            &NewProfessional {
                name: "Róisín Ó Briain".into(),
                category: "yoga".into(),
                location: GeoPoint {
                    lat: -33.8688,
                    lng: 151.2093,
                },
                hourly_rate_cents: 12_345,
                currency: "aud".into(),
                timezone: "Australia/Sydney".into(),
                is_active: Some(true),
            },
            TokenHash::of(&token),
        )
        .await
        .expect("create");
    assert_eq!(fx.engine.get_professional(p.id).await.expect("get"), p);
    assert_eq!(
        fx.engine.authenticate(&token).await.expect("auth"),
        Some(Principal::Professional(p.id))
    );
    assert_eq!(fx.engine.authenticate("unknown").await.expect("auth"), None);
    // A second subject with the same token hash is refused.
    let dup = fx
        .engine
        .create_client(
            &NewClient {
                name: "x".into(),
                email: "x@example.com".into(),
            },
            TokenHash::of(&token),
        )
        .await;
    assert!(matches!(dup, Err(Error::AlreadyExists(_))), "{dup:?}");
    let ctoken = unique("ctok");
    let c = fx
        .engine
        .create_client(
            &NewClient {
                name: "Zoë".into(),
                email: "zoe@example.com".into(),
            },
            TokenHash::of(&ctoken),
        )
        .await
        .expect("client");
    assert_eq!(fx.engine.get_client(c.id).await.expect("get"), c);
    assert_eq!(
        fx.engine.authenticate(&ctoken).await.expect("auth"),
        Some(Principal::Client(c.id))
    );
    // Updates: self or admin only; validated; atomic.
    fx.clock.advance(Duration::minutes(1));
    let patch = ProfessionalPatch {
        hourly_rate_cents: Some(9_000),
        name: Some("Róisín".into()),
        ..ProfessionalPatch::default()
    };
    let updated = fx
        .engine
        .update_professional(Actor::Professional(p.id), p.id, &patch)
        .await
        .expect("self update");
    assert_eq!(updated.hourly_rate_cents, 9_000);
    assert_eq!(updated.updated_at, at(1));
    assert_eq!(
        fx.engine.get_professional(p.id).await.expect("get"),
        updated
    );
    let r = fx
        .engine
        .update_professional(Actor::Client(c.id), p.id, &patch)
        .await;
    assert!(matches!(r, Err(Error::Forbidden(_))));
    let bad = ProfessionalPatch {
        location: Some(GeoPoint {
            lat: 95.0,
            lng: 0.0,
        }),
        ..ProfessionalPatch::default()
    };
    let r = fx
        .engine
        .update_professional(Actor::Admin, p.id, &bad)
        .await;
    assert!(matches!(r, Err(Error::Invalid(_))));
    assert_eq!(
        fx.engine.get_professional(p.id).await.expect("get"),
        updated
    );
    let missing = crate::domain::ProfessionalId::new_at(at(0));
    assert_eq!(
        fx.engine.get_professional(missing).await,
        Err(Error::NotFound(Entity::Professional))
    );
    assert_eq!(
        fx.engine
            .update_professional(Actor::Admin, missing, &patch)
            .await,
        Err(Error::NotFound(Entity::Professional))
    );
}

pub(super) fn subject_client() -> NewClient {
    NewClient {
        name: "Lin".into(),
        email: "lin@example.com".into(),
    }
}

fn subject_professional() -> NewProfessional {
    NewProfessional {
        name: "Ada".into(),
        category: "physiotherapy".into(),
        location: GeoPoint {
            lat: 52.52,
            lng: 13.405,
        },
        hourly_rate_cents: 8_000,
        currency: "eur".into(),
        timezone: "Europe/Berlin".into(),
        is_active: None,
    }
}

/// `DirectoryStore::insert_client` and `insert_professional`: a stored `request_ref` wins.
pub async fn retry_of_a_created_subject_returns_it<S: Store + ?Sized>(store: Arc<S>) {
    // `DirectoryStore::insert_professional` / `insert_client` with a `request_ref` already
    // stored return `Registered::Existing` with the first subject and store nothing new.
    let fx = Fixture::new(store).await;
    let (pro_ref, client_ref) = (unique("request"), unique("request"));
    let first_token = unique("tok");
    let Registered::Created(pro) = fx
        .engine
        .register_professional(
            &subject_professional(),
            TokenHash::of(&first_token),
            Some(&pro_ref),
        )
        .await
        .expect("first attempt")
    else {
        panic!("the first attempt creates");
    };
    // A retry, later, even with another token hash: the first professional, nothing new.
    fx.clock.advance(Duration::minutes(1));
    let retry_token = unique("tok");
    let again = fx
        .engine
        .register_professional(
            &subject_professional(),
            TokenHash::of(&retry_token),
            Some(&pro_ref),
        )
        .await
        .expect("retry");
    assert_eq!(again, Registered::Existing(pro.clone()));
    assert_eq!(
        fx.engine.authenticate(&retry_token).await.expect("auth"),
        None
    );
    // The usual retry carries the same token (derived from the request): same answer.
    let same = fx
        .engine
        .register_professional(
            &subject_professional(),
            TokenHash::of(&first_token),
            Some(&pro_ref),
        )
        .await
        .expect("retry with the same token");
    assert_eq!(same, Registered::Existing(pro.clone()));
    assert_eq!(
        fx.engine.authenticate(&first_token).await.expect("auth"),
        Some(Principal::Professional(pro.id))
    );
    // Store level too, with a new id: the existing one is returned, the new id not stored.
    let mut dup = pro.clone();
    dup.id = crate::domain::ProfessionalId::new_at(at(2));
    let r = fx
        .engine
        .store()
        .insert_professional(&dup, TokenHash::of(&unique("tok")), Some(&pro_ref))
        .await
        .expect("store retry");
    assert_eq!(r, Registered::Existing(pro.clone()));
    assert_eq!(fx.engine.store().get_professional(dup.id).await, Ok(None));
    // Clients alike.
    let client_token = unique("tok");
    let Registered::Created(client) = fx
        .engine
        .register_client(
            &subject_client(),
            TokenHash::of(&client_token),
            Some(&client_ref),
        )
        .await
        .expect("client")
    else {
        panic!("the first attempt creates");
    };
    let mut dup = client.clone();
    dup.id = crate::domain::ClientId::new_at(at(2));
    let r = fx
        .engine
        .store()
        .insert_client(&dup, TokenHash::of(&unique("tok")), Some(&client_ref))
        .await
        .expect("store retry");
    assert_eq!(r, Registered::Existing(client.clone()));
    assert_eq!(fx.engine.store().get_client(dup.id).await, Ok(None));
    // A reference belongs to one subject: a client cannot take a professional's.
    let other_token = unique("tok");
    let r = fx
        .engine
        .register_client(
            &subject_client(),
            TokenHash::of(&other_token),
            Some(&pro_ref),
        )
        .await;
    assert!(matches!(r, Err(Error::AlreadyExists(_))), "{r:?}");
    assert_eq!(
        fx.engine.authenticate(&other_token).await.expect("auth"),
        None
    );
    // Another reference, or none, is another subject.
    for request_ref in [Some(unique("request")), None, None] {
        let r = fx
            .engine
            .register_client(
                &subject_client(),
                TokenHash::of(&unique("tok")),
                request_ref.as_deref(),
            )
            .await
            .expect("another client");
        let Registered::Created(c) = r else {
            panic!("a new request creates");
        };
        assert_ne!(c.id, client.id);
    }
}

/// `DirectoryStore::search_professionals`: category and rate filters over clean pages.
pub async fn search_filters_and_paginates<S: Store + ?Sized>(store: Arc<S>) {
    let fx = Fixture::new(store).await; // its professional: massage, 6000
    let mut made = vec![fx.pro.clone()];
    for (i, rate) in [3_000, 6_000, 6_000, 9_000, 12_000, 6_000]
        .into_iter()
        .enumerate()
    {
        let p = fx
            .engine
            .create_professional(
                &NewProfessional {
                    name: format!("P{i}"),
                    category: if i % 2 == 0 {
                        "massage".into()
                    } else {
                        "yoga".into()
                    },
                    location: GeoPoint { lat: 0.0, lng: 0.0 },
                    hourly_rate_cents: rate,
                    currency: "eur".into(),
                    timezone: "UTC".into(),
                    is_active: Some(i != 5),
                },
                TokenHash::of(&unique("t")),
            )
            .await
            .expect("create");
        made.push(p);
    }
    let query = |category: Option<&str>, min: Option<i64>, max: Option<i64>| ProfessionalQuery {
        category: category.map(|c| crate::domain::Category::parse(c).expect("slug")),
        min_rate_cents: min,
        max_rate_cents: max,
        near: None,
        text: None,
        limit: 2,
        after: None,
    };
    let collect = |q: ProfessionalQuery| {
        let engine = &fx.engine;
        async move {
            let mut q = q;
            let mut out = Vec::new();
            loop {
                let page = engine.search_professionals(&q).await.expect("search");
                assert!(page.items.len() <= 2);
                out.extend(page.items.iter().map(|p| (p.hourly_rate_cents, p.id)));
                match page.next_cursor {
                    Some(c) => q.after = Some(c),
                    None => return out,
                }
            }
        }
    };
    let expect = |f: &dyn Fn(&crate::domain::Professional) -> bool| {
        let mut v: Vec<_> = made
            .iter()
            .filter(|p| p.is_active && f(p))
            .map(|p| (p.hourly_rate_cents, p.id))
            .collect();
        v.sort();
        v
    };
    assert_eq!(collect(query(None, None, None)).await, expect(&|_| true));
    assert_eq!(
        collect(query(Some("massage"), None, None)).await,
        expect(&|p| p.category.as_str() == "massage")
    );
    assert_eq!(
        collect(query(None, Some(6_000), Some(9_000))).await,
        expect(&|p| (6_000..=9_000).contains(&p.hourly_rate_cents))
    );
    assert!(
        collect(query(Some("plumbing"), None, None))
            .await
            .is_empty()
    );
}
