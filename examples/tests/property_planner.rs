//! A property test of *your* code with the public proptest strategies of
//! `booking_core::testing` (feature `testing`, as a dev-dependency).
//!
//! The code under test, [`plan_first_come`], is the kind a client application writes: given
//! booking requests in arrival order, predict which ones a professional's calendar will
//! accept. The strategies draw request lists on a grid with many overlaps
//! ([`booking_requests`]); the properties check the planner on its own and against the
//! engine itself, over the in-memory store.
//!
//! Run it with `cargo test -p examples --test property_planner`.

use std::sync::Arc;

use booking_core::testing::Fixture;
use booking_core::testing::fixtures::at;
use booking_core::testing::strategies::{booking_requests, time_range};
use booking_core::{Error, TimeRange};
use booking_memory::MemoryStore;
use proptest::prelude::*;

/// The user's code: which of `requests` (in arrival order) get booked when each is
/// accepted unless it overlaps one accepted before it. Ranges are half-open, so touching
/// ranges do not overlap.
fn plan_first_come(requests: &[TimeRange]) -> Vec<bool> {
    let mut accepted: Vec<TimeRange> = Vec::new();
    requests
        .iter()
        .map(|r| {
            let free = accepted.iter().all(|a| !a.overlaps(r));
            if free {
                accepted.push(*r);
            }
            free
        })
        .collect()
}

/// What the engine decides for the same requests, booked one after another.
fn engine_decisions(requests: &[TimeRange]) -> Vec<bool> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime");
    runtime.block_on(async {
        let fx = Fixture::new(Arc::new(MemoryStore::new())).await;
        let mut decisions = Vec::with_capacity(requests.len());
        for r in requests {
            match fx.book_for(&fx.pro, &fx.client, *r).await {
                Ok(_) => decisions.push(true),
                Err(Error::SlotUnavailable) => decisions.push(false),
                Err(other) => panic!("unexpected answer for {r:?}: {other}"),
            }
        }
        decisions
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Accepted requests never overlap, and every refused one overlaps an accepted one.
    #[test]
    fn plan_is_free_of_overlaps_and_refuses_only_for_a_reason(
        requests in booking_requests(at(60), 8 * 60, 15, 1..24)
    ) {
        let plan = plan_first_come(&requests);
        let accepted: Vec<&TimeRange> =
            requests.iter().zip(&plan).filter(|(_, ok)| **ok).map(|(r, _)| r).collect();
        for (i, a) in accepted.iter().enumerate() {
            for b in &accepted[i + 1..] {
                prop_assert!(!a.overlaps(b), "{a:?} and {b:?} were both accepted");
            }
        }
        for (r, ok) in requests.iter().zip(&plan) {
            prop_assert!(*ok || accepted.iter().any(|a| a.overlaps(r)), "{r:?} refused for nothing");
        }
    }

    /// The planner predicts the engine exactly (a professional who is always open and has
    /// no buffers).
    #[test]
    fn plan_agrees_with_the_engine(requests in booking_requests(at(60), 8 * 60, 15, 1..16)) {
        prop_assert_eq!(plan_first_come(&requests), engine_decisions(&requests));
    }

    /// A request that only touches an accepted one is accepted too.
    #[test]
    fn back_to_back_requests_are_both_planned(first in time_range(at(60), 8 * 60, 15, 120)) {
        let next = TimeRange::new(first.end(), first.end() + first.duration())
            .expect("a non-empty range");
        prop_assert_eq!(plan_first_come(&[first, next]), vec![true, true]);
    }
}
