//! [`run_against`]: the property over a store, and the check that it reached the hard
//! cases.

use std::sync::{Arc, Mutex, PoisonError};

use proptest::test_runner::{Config, TestCaseError, TestRunner};
use proptest_state_machine::ReferenceStateMachine;

use super::system::{System, fail};
use super::{EngineModel, Expected, HardCases, ModelState, STEPS, Step};
use crate::events::EventKind;
use crate::store::Store;

/// Sequences per run.
const CASES: u32 = 32;
/// Each hard case must happen in at least this many of the [`CASES`] sequences. Each
/// happens in more than half of the sequences (see the strategy's test), so fewer than 4
/// of 32 has a probability near 10^-7 unless the strategy stopped reaching it.
const MIN_SEQUENCES_PER_HARD_CASE: usize = 4;

/// Runs one step on both sides and compares answers, outbox events and bookings.
async fn run_step<S: Store + ?Sized>(
    system: &mut System<S>,
    model: &mut ModelState,
    step: &Step,
) -> Result<(), TestCaseError> {
    let before = model.clone();
    let expected = model.step(step);
    system.step(&before, step, &expected).await?;
    let by_kind = |mut v: Vec<(EventKind, usize)>| {
        v.sort_by_key(|(k, i)| (k.as_str(), *i));
        v
    };
    let want = by_kind(model.events[before.events.len()..].to_vec());
    let got = by_kind(system.events().await?);
    if got != want {
        return Err(fail(format!(
            "{step:?} recorded events {got:?}, model {want:?}"
        )));
    }
    // A step that recorded nothing changed nothing (a change left unrecorded would still
    // show at the next check); the others, and time passing, are checked at once.
    if want.is_empty() && !matches!(step, Step::Advance(_) | Step::Sweep) {
        return Ok(());
    }
    let mut touched: Vec<usize> = want.iter().map(|(_, i)| *i).collect();
    if let Expected::Change(i, _) = expected {
        touched.push(i);
    }
    system.check(model, &touched).await
}

/// Runs `steps` from `initial` on a fresh professional set of `store` and compares every
/// answer, outbox event and booking with the model, as [`run_against`] does for each
/// drawn sequence. Returns the hard cases the sequence met, or the first divergence.
///
/// This is the entry point for sequences that come from elsewhere than the strategy: the
/// `store_ops` fuzz target decodes them from bytes ([`crate::testing::fuzz::model_sequence`]).
pub async fn run_sequence<S: Store + ?Sized + 'static>(
    store: Arc<S>,
    initial: ModelState,
    steps: &[Step],
) -> Result<HardCases, String> {
    let mut model = initial;
    let outcome = async {
        let mut system = System::new(store, &model, None).await?;
        for step in steps {
            run_step(&mut system, &mut model, step).await?;
        }
        system.check(&model, &[]).await
    }
    .await;
    outcome.map(|()| model.hard).map_err(|e| e.to_string())
}

/// Fails unless each hard case happened in at least [`MIN_SEQUENCES_PER_HARD_CASE`] of the
/// sequences `met` (one entry per sequence that passed).
fn assert_hard_cases_reached(met: &[HardCases]) {
    for (i, (name, _)) in HardCases::default().named().into_iter().enumerate() {
        let reached = met.iter().filter(|h| h.named()[i].1 > 0).count();
        assert!(
            reached >= MIN_SEQUENCES_PER_HARD_CASE,
            "the model reached {name} in only {reached} of {} sequences (want at least \
             {MIN_SEQUENCES_PER_HARD_CASE}); per sequence: {met:?}",
            met.len()
        );
    }
}

/// Runs the state-machine property against `store`: `CASES` (32) random step sequences, each
/// on its own professionals, clients and clock. Panics with the shrunk failing sequence on
/// a divergence, or if a hard case of the idempotency protocol (replay, in flight,
/// mismatch, lease takeover, crash-retry, TTL expiry) happened in too few sequences.
pub async fn run_against<S: Store + ?Sized + 'static>(store: Arc<S>) {
    let handle = tokio::runtime::Handle::current();
    let config = Config {
        cases: CASES,
        max_shrink_iters: 256,
        failure_persistence: None,
        ..Config::default()
    };
    let cursor = Mutex::new(None);
    let met = Mutex::new(Vec::new());
    #[allow(clippy::result_large_err)]
    let result = tokio::task::block_in_place(|| {
        let mut runner = TestRunner::new(config);
        runner.run(
            &EngineModel::sequential_strategy(STEPS),
            |(initial, steps, seen)| {
                handle.block_on(async {
                    let mut model = initial;
                    let start = *cursor.lock().unwrap_or_else(PoisonError::into_inner);
                    let mut system = System::new(Arc::clone(&store), &model, start).await?;
                    for step in &steps {
                        run_step(&mut system, &mut model, step).await?;
                        if let Some(seen) = &seen {
                            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        }
                    }
                    system.check(&model, &[]).await?;
                    *cursor.lock().unwrap_or_else(PoisonError::into_inner) = system.cursor;
                    met.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(model.hard);
                    Ok(())
                })
            },
        )
    });
    if let Err(e) = result {
        panic!("the engine diverged from the model: {e}");
    }
    assert_hard_cases_reached(&met.into_inner().unwrap_or_else(PoisonError::into_inner));
}
