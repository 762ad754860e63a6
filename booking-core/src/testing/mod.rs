//! The adapter conformance suite, proptest strategies and a reference model
//! (feature `testing`).
//!
//! Every behaviour that storage adapters promise is a named async check in [`checks`];
//! [`conformance_suite!`](crate::conformance_suite) expands to one `#[test]` per check for
//! an adapter. An adapter of your own runs the very same suite:
//!
//! ```ignore
//! use std::sync::Arc;
//! use booking_core::testing::StoreFactory;
//!
//! struct MyFactory;
//!
//! #[async_trait::async_trait]
//! impl StoreFactory for MyFactory {
//!     type Store = my_adapter::MyStore;
//!     async fn new_store(&self) -> Option<Arc<Self::Store>> {
//!         Some(Arc::new(my_adapter::MyStore::new()))
//!     }
//! }
//!
//! booking_core::conformance_suite!(MyFactory);
//! ```

pub mod checks;
pub mod faulty;
pub mod fixtures;
pub mod fuzz;
pub mod gateway;
pub mod model;
pub mod strategies;

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;

use crate::store::Store;

pub use fixtures::Fixture;

/// Creates a fresh, empty store for one check.
#[async_trait]
pub trait StoreFactory: Send + Sync + 'static {
    /// The adapter under test.
    type Store: Store + 'static;

    /// A new empty store (for a database adapter: on a fresh database).
    ///
    /// `None` skips the check: for a backend that is not reachable outside CI. The factory
    /// should say so loudly; in CI it should panic instead, so that nothing is skipped there.
    async fn new_store(&self) -> Option<Arc<Self::Store>>;
}

/// Runs one check against a fresh store on a multi-thread runtime (so race checks really
/// race). Used by [`conformance_suite!`](crate::conformance_suite).
pub fn run<F, C, Fut>(factory: &F, check: C)
where
    F: StoreFactory,
    C: FnOnce(Arc<F::Store>) -> Fut,
    Fut: Future<Output = ()>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("build a tokio runtime for the conformance check");
    runtime.block_on(async {
        if let Some(store) = factory.new_store().await {
            check(store).await;
        }
    });
}

/// The names of the checks [`conformance_suite!`](crate::conformance_suite) runs, in its order.
///
/// A test in [`checks`] compares them with the checks its modules define.
pub const CHECK_NAMES: &[&str] = crate::conformance_suite!(@list [@names]);

/// Expands to one `#[test]` per conformance check, each on a fresh store from the factory.
///
/// The argument is an expression whose type implements [`StoreFactory`].
#[macro_export]
macro_rules! conformance_suite {
    ($factory:expr) => {
        $crate::conformance_suite!(@list [@tests $factory]);
    };
    // The one list of checks, handed to `@tests` (one `#[test]` each) or `@names`
    // ([`CHECK_NAMES`](crate::testing::CHECK_NAMES)).
    (@list [$($then:tt)*]) => {
        $crate::conformance_suite! {$($then)*;
            back_to_back_bookings_do_not_conflict,
            overlapping_booking_is_refused,
            buffers_widen_the_blocked_range,
            professionals_do_not_share_slots,
            legal_transitions_apply,
            illegal_transitions_are_refused_and_change_nothing,
            hold_blocks_until_it_expires,
            expired_hold_reconfirms_only_if_the_slot_is_free,
            sweep_expires_due_holds_once,
            cancel_releases_the_slot,
            reschedule_moves_atomically,
            reschedule_into_a_taken_slot_changes_nothing,
            reschedule_may_overlap_its_own_old_range,
            retry_of_a_created_booking_returns_it,
            key_reused_after_expiry_is_a_new_request,
            pagination_has_no_gaps_or_duplicates,
            forged_booking_cursor_is_refused,
            list_filters_by_owner_status_and_time,
            list_combines_owner_professional_cursor_and_from,
            idempotency_replays_the_stored_response,
            idempotency_rejects_a_different_request,
            idempotency_in_flight_until_the_lease_runs_out,
            idempotency_only_the_lease_owner_completes,
            idempotency_abandon_lets_a_retry_run,
            idempotency_keys_expire_and_are_purged,
            idempotency_purge_in_batches_leaves_nothing_due,
            idempotency_scopes_are_independent,
            outbox_records_each_change_once,
            failed_operations_record_no_event,
            directory_roundtrip_and_tokens,
            retry_of_a_created_subject_returns_it,
            race_one_request_ref_one_subject,
            search_filters_and_paginates,
            schedule_roundtrip,
            booking_outside_availability_is_refused,
            availability_excludes_blocked_slots,
            race_many_tasks_one_slot_one_winner,
            race_overlapping_requests_never_overlap,
            race_one_idempotency_key_one_start,
            race_reschedule_against_new_booking,
            race_retries_of_one_idempotent_request,
            race_for_the_slot_of_an_expired_hold,
            race_cancel_against_reschedule,
            race_outbox_readers_during_writes,
            state_machine_matches_the_model,
            booking_and_its_answer_commit_together,
            stale_lease_stores_no_answer,
            refused_or_existing_insert_stores_no_answer,
            begin_booking_reads_the_context,
            answered_create_refuses_unknown_parties_and_finds_retries,
            availability_snapshot_matches_its_parts,
            stale_snapshots_decide_on_the_stored_row,
            inbox_duplicate_record_changes_nothing,
            inbox_claim_hides_rows_from_a_second_claimer,
            inbox_lease_expiry_returns_the_row,
            inbox_only_the_owning_lease_settles,
            inbox_retry_is_not_due_before_its_time,
            inbox_dead_letters_list_and_replay,
            inbox_prune_removes_only_old_processed_rows,
            inbox_prune_in_batches_leaves_nothing_behind,
            race_inbox_claims_never_claim_one_event_twice,
            paid_booking_is_a_hold_with_an_intent,
            provider_failure_leaves_the_slot_free,
            retry_after_a_crash_pays_the_same_hold,
            intent_and_answer_commit_together,
            payment_confirms_a_hold_once,
            payment_after_expiry_confirms_or_refunds,
            owed_refund_is_issued_by_the_sweep,
            canceled_intent_cancels_and_failure_keeps_the_hold,
            cancelled_hold_cancels_its_intent,
            expired_hold_intent_is_cancelled_by_the_sweep,
            refunds_are_recorded_on_the_payment,
            foreign_events_are_ignored,
            settle_needs_the_owning_lease,
            payment_events_commute,
            outbox_claims_hand_out_each_booking_in_order,
            outbox_claims_are_exclusive_until_they_run_out,
            outbox_prune_keeps_unmarked_and_recent_events,
            race_outbox_claimers_lose_and_repeat_nothing,
            webhook_subscriptions_roundtrip_and_paginate,
            webhook_fan_out_filters_by_type_and_professional,
            webhook_fan_out_is_exactly_once_under_a_stale_lease,
            webhook_delivery_claims_are_exclusive,
            webhook_retry_is_scheduled_and_failure_is_final,
            webhook_redeliver_keeps_the_id,
            webhook_delete_stops_new_deliveries,
            search_by_radius_orders_by_distance,
            search_text_matches_every_term,
            search_matches_brute_force_and_pages_cleanly,
        }
    };
    (@names; $($name:ident),* $(,)?) => {
        &[$(stringify!($name)),*]
    };
    (@tests $factory:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::testing::run(&$factory, |store| $crate::testing::checks::$name(store));
            }
        )*
    };
}
