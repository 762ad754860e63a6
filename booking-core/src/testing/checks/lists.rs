//! Booking lists: keyset pages, filters and cursors ([`BookingStore::list_bookings`]).
//!
//! [`BookingStore::list_bookings`]: crate::store::BookingStore::list_bookings

use std::collections::HashSet;
use std::sync::Arc;

use chrono::Duration;

use super::super::fixtures::{Fixture, at, new_client, new_professional, range};
use super::support::all_bookings;
use crate::auth::Actor;
use crate::domain::{Booking, BookingStatus};
use crate::engine::BookingFilter;
use crate::error::{Entity, Error};
use crate::store::{Cursor, Store};

/// `BookingStore::list_bookings`: keyset pages in `(start, id)` order, no gaps, no duplicates.
pub async fn pagination_has_no_gaps_or_duplicates<S: Store + ?Sized>(store: Arc<S>) {
    let fx = Fixture::new(store).await;
    // 25 bookings, some sharing a start across professionals (tie-break on id).
    let other = new_professional(&fx.engine).await;
    let mut expected = Vec::new();
    for i in 0..15 {
        expected.push(fx.book(i * 60, i * 60 + 30).await.expect("book").id);
    }
    for i in 0..10 {
        expected.push(
            fx.book_for(&other, &fx.client, range(i * 60, i * 60 + 30))
                .await
                .expect("book")
                .id,
        );
    }
    let mut seen = Vec::new();
    let mut after = None;
    let mut added = false;
    let mut early = None;
    loop {
        let page = fx
            .engine
            .list_bookings(
                Actor::Client(fx.client.id),
                &BookingFilter {
                    limit: Some(4),
                    after,
                    ..BookingFilter::default()
                },
            )
            .await
            .expect("page");
        assert!(page.items.len() <= 4);
        seen.extend(page.items.iter().map(|b| (b.range.start(), b.id)));
        if !added {
            // Rows added while paging, before and after the cursor, don't disturb it.
            added = true;
            // The first page ends at start 60; [30, 45) sorts before the cursor.
            early = Some(fx.book(30, 45).await.expect("booking before the cursor").id);
            let late = fx.book(10_000, 10_030).await.expect("late booking");
            expected.push(late.id);
        }
        match page.next_cursor {
            Some(c) => {
                // Cursors survive a round trip through their text form.
                after = Some(c.to_string().parse::<Cursor>().expect("cursor parses"));
            }
            None => break,
        }
    }
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "ordered by (start, id)");
    let ids: HashSet<_> = seen.iter().map(|(_, id)| *id).collect();
    assert_eq!(ids.len(), seen.len(), "no duplicates");
    let want: HashSet<_> = expected.into_iter().collect();
    assert_eq!(ids, want, "no gaps");
    let early = early.expect("added while paging");
    assert!(
        !ids.contains(&early),
        "a row added before the cursor is not served"
    );
    let listed = all_bookings(&fx, Actor::Client(fx.client.id)).await;
    assert!(
        listed.iter().any(|b| b.id == early),
        "a new walk from the start serves it"
    );
    // A limit outside 1..=100 is refused.
    for bad in [0, 101] {
        let r = fx
            .engine
            .list_bookings(
                Actor::Admin,
                &BookingFilter {
                    limit: Some(bad),
                    ..BookingFilter::default()
                },
            )
            .await;
        assert!(matches!(r, Err(Error::Invalid(_))));
    }
}

/// `BookingStore::list_bookings`: filters by owner, effective status and start window.
pub async fn list_filters_by_owner_status_and_time<S: Store + ?Sized>(store: Arc<S>) {
    let fx = Fixture::with_holds(store).await;
    let other_pro = new_professional(&fx.engine).await;
    let other_client = new_client(&fx.engine).await;
    let a = fx.book(60, 120).await.expect("a"); // hold, will expire
    let b = fx.book(180, 240).await.expect("b");
    fx.engine.confirm_booking(b.id).await.expect("confirm b");
    let c = fx
        .book_for(&other_pro, &other_client, range(60, 120))
        .await
        .expect("c");
    fx.clock.advance(Duration::minutes(16)); // a's hold ran out (not swept)
    let ids = |v: Vec<Booking>| v.into_iter().map(|b| b.id).collect::<Vec<_>>();
    let list = |actor, filter: BookingFilter| {
        let engine = &fx.engine;
        async move {
            engine
                .list_bookings(actor, &filter)
                .await
                .expect("list")
                .items
        }
    };
    assert_eq!(
        ids(list(Actor::Client(fx.client.id), BookingFilter::default()).await),
        vec![a.id, b.id]
    );
    assert_eq!(
        ids(list(Actor::Professional(other_pro.id), BookingFilter::default()).await),
        vec![c.id]
    );
    assert_eq!(
        ids(list(Actor::Admin, BookingFilter::default()).await).len(),
        3
    );
    let expired = list(
        Actor::Admin,
        BookingFilter {
            status: Some(BookingStatus::Expired),
            ..BookingFilter::default()
        },
    )
    .await;
    // a and c start together: the list orders them by id.
    let mut want_expired = vec![a.id, c.id];
    want_expired.sort();
    assert_eq!(
        ids(expired.clone()),
        want_expired,
        "effective status, before any sweep"
    );
    assert!(expired.iter().all(|b| b.status == BookingStatus::Expired));
    let confirmed = list(
        Actor::Admin,
        BookingFilter {
            status: Some(BookingStatus::Confirmed),
            ..BookingFilter::default()
        },
    )
    .await;
    assert_eq!(ids(confirmed), vec![b.id]);
    let window = list(
        Actor::Admin,
        BookingFilter {
            from: Some(at(60)),
            to: Some(at(180)),
            ..BookingFilter::default()
        },
    )
    .await;
    assert_eq!(ids(window).len(), 2, "start in [from, to)");
    let by_pro = list(
        Actor::Admin,
        BookingFilter {
            professional_id: Some(fx.pro.id),
            ..BookingFilter::default()
        },
    )
    .await;
    assert_eq!(ids(by_pro), vec![a.id, b.id]);
    // The client of other bookings sees none of fx's.
    let theirs = list(
        Actor::Client(other_client.id),
        BookingFilter {
            professional_id: Some(fx.pro.id),
            ..BookingFilter::default()
        },
    )
    .await;
    assert!(theirs.is_empty());
    assert_eq!(
        fx.engine
            .get_booking(Actor::Client(other_client.id), a.id)
            .await,
        Err(Error::NotFound(Entity::Booking))
    );
}

/// `BookingStore::list_bookings`: owner, `professional_id`, cursor and `from` combine.
pub async fn list_combines_owner_professional_cursor_and_from<S: Store + ?Sized>(store: Arc<S>) {
    // The later of cursor and `from` bounds the page, a professional asking for another's
    // bookings gets none, a client's list narrows to one professional, and a last page
    // exactly `limit` long has no next cursor.
    let fx = Fixture::new(store).await;
    let other_pro = new_professional(&fx.engine).await;
    let other_client = new_client(&fx.engine).await;
    let b1 = fx.book(60, 90).await.expect("b1");
    let b2 = fx.book(120, 150).await.expect("b2");
    let b3 = fx
        .book_for(&other_pro, &fx.client, range(180, 210))
        .await
        .expect("b3");
    let b4 = fx
        .book_for(&other_pro, &other_client, range(240, 270))
        .await
        .expect("b4");
    let b5 = fx
        .book_for(&fx.pro, &other_client, range(300, 330))
        .await
        .expect("b5");
    let page = |actor, filter: BookingFilter| {
        let engine = &fx.engine;
        async move { engine.list_bookings(actor, &filter).await.expect("list") }
    };
    let ids = |v: &[Booking]| v.iter().map(|b| b.id).collect::<Vec<_>>();
    let for_pro = |p| BookingFilter {
        professional_id: Some(p),
        ..BookingFilter::default()
    };

    let own = page(Actor::Professional(fx.pro.id), for_pro(fx.pro.id)).await;
    assert_eq!(ids(&own.items), [b1.id, b2.id, b5.id]);
    let others = page(Actor::Professional(fx.pro.id), for_pro(other_pro.id)).await;
    assert!(others.items.is_empty() && others.next_cursor.is_none());
    let client = Actor::Client(fx.client.id);
    assert_eq!(
        ids(&page(client, for_pro(other_pro.id)).await.items),
        [b3.id]
    );
    assert_eq!(
        ids(&page(client, for_pro(fx.pro.id)).await.items),
        [b1.id, b2.id]
    );

    let limited = |limit, after, from| BookingFilter {
        limit: Some(limit),
        after,
        from,
        ..BookingFilter::default()
    };
    let all = page(Actor::Admin, limited(5, None, None)).await;
    assert_eq!(ids(&all.items), [b1.id, b2.id, b3.id, b4.id, b5.id]);
    assert_eq!(all.next_cursor, None, "a full last page has no next cursor");
    let first = page(Actor::Admin, limited(2, None, None)).await;
    assert_eq!(ids(&first.items), [b1.id, b2.id]);
    let cursor = first.next_cursor.expect("more to come");
    let from_later = page(Actor::Admin, limited(2, Some(cursor), Some(at(240)))).await;
    assert_eq!(
        ids(&from_later.items),
        [b4.id, b5.id],
        "from is past the cursor"
    );
    let from_earlier = page(Actor::Admin, limited(2, Some(cursor), Some(at(0)))).await;
    assert_eq!(
        ids(&from_earlier.items),
        [b3.id, b4.id],
        "the cursor is past from"
    );
    let mine = page(client, limited(1, Some(cursor), Some(at(0)))).await;
    assert_eq!(
        ids(&mine.items),
        [b3.id],
        "a client's list: the same bounds"
    );
}

/// A forged cursor whose position no booking can have is refused, not passed to the store.
pub async fn forged_booking_cursor_is_refused<S: Store + ?Sized>(store: Arc<S>) {
    let fx = Fixture::new(store).await;
    fx.book(60, 120).await.expect("book");
    for primary in [i64::MIN, -100_000 * 365 * 86_400 * 1_000_000, i64::MAX] {
        let r = fx
            .engine
            .list_bookings(
                Actor::Admin,
                &BookingFilter {
                    after: Some(Cursor {
                        primary,
                        id: uuid::Uuid::nil(),
                    }),
                    ..BookingFilter::default()
                },
            )
            .await;
        assert!(matches!(r, Err(Error::Invalid(_))), "{primary}: {r:?}");
    }
}
